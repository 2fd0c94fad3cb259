"""Session data: graphs of sessions and batches, readers, preprocessing, datasets."""
from gcsan_pyg.data.datasets import (
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
from gcsan_pyg.data.preprocess import SRGNNSplit, preprocess_diginetica, preprocess_yoochoose
from gcsan_pyg.data.readers import (
    DataFormatError,
    augment_prefixes,
    leave_one_out,
    read_clicks,
    read_inter,
    read_samples,
    read_sessions,
    sessions_from_samples,
)
from gcsan_pyg.data.session_batch import build_session_batch, check_padded_sessions
from gcsan_pyg.data.session_graph import SessionData, session_to_graph
from gcsan_pyg.data.synthetic import SyntheticSessions, generate_synthetic_sessions

__all__ = [
    "SessionData",
    "session_to_graph",
    "build_session_batch",
    "check_padded_sessions",
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
