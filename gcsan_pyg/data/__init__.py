"""Session data: graphs of single sessions and of padded batches."""
from gcsan_pyg.data.session_batch import build_session_batch, check_padded_sessions
from gcsan_pyg.data.session_graph import SessionData, session_to_graph

__all__ = ["SessionData", "session_to_graph", "build_session_batch", "check_padded_sessions"]

# Readers, preprocessing, synthetic data and PyG datasets.
from gcsan_pyg.data.datasets import (  # noqa: E402
    ClickCSVDataset,
    DigineticaRawDataset,
    RecBoleInterDataset,
    SessionDataset,
    SRGNNTextDataset,
    SyntheticDataset,
    YoochooseRawDataset,
    collate_samples,
    dataset_statistics,
    load_dataset,
    resolve_dataset_class,
)
from gcsan_pyg.data.preprocess import (  # noqa: E402
    SRGNNSplit,
    preprocess_diginetica,
    preprocess_yoochoose,
)
from gcsan_pyg.data.readers import (  # noqa: E402
    DataFormatError,
    augment_prefixes,
    leave_one_out,
    read_clicks,
    read_inter,
    read_samples,
    read_sessions,
    sessions_from_samples,
)
from gcsan_pyg.data.synthetic import SyntheticSessions, generate_synthetic_sessions  # noqa: E402

__all__ += [
    "DataFormatError",
    "read_sessions",
    "read_samples",
    "augment_prefixes",
    "sessions_from_samples",
    "read_clicks",
    "read_inter",
    "leave_one_out",
    "SRGNNSplit",
    "preprocess_diginetica",
    "preprocess_yoochoose",
    "SyntheticSessions",
    "generate_synthetic_sessions",
    "SessionDataset",
    "SRGNNTextDataset",
    "DigineticaRawDataset",
    "YoochooseRawDataset",
    "ClickCSVDataset",
    "RecBoleInterDataset",
    "SyntheticDataset",
    "collate_samples",
    "dataset_statistics",
    "load_dataset",
    "resolve_dataset_class",
]
