"""Session data: graphs of sessions and their batches, samples, the dataset
base, readers, SR-GNN preprocessing and synthetic data."""
from gcsan_pyg.data.dataset import ProcessedSessions, SessionDataset, SessionSplit
from gcsan_pyg.data.item_ids import check_item_ids
from gcsan_pyg.data.preprocess import SRGNNSplit, preprocess_diginetica, preprocess_yoochoose
from gcsan_pyg.data.readers import (
    DataFormatError,
    read_clicks,
    read_inter,
    read_inter_file,
    read_samples,
    read_sessions,
)
from gcsan_pyg.data.samples import SessionSamples, session_statistics, sessions_of
from gcsan_pyg.data.session_batch import (
    SessionBatch,
    batch_from_clicks,
    build_session_batch,
    check_padded_sessions,
    check_targets,
)
from gcsan_pyg.data.session_graph import SessionData, session_to_graph
from gcsan_pyg.data.synthetic import SyntheticSessions, generate_synthetic_sessions

__all__ = [
    "SessionData",
    "session_to_graph",
    "SessionBatch",
    "build_session_batch",
    "batch_from_clicks",
    "check_padded_sessions",
    "check_targets",
    "check_item_ids",
    "SessionSamples",
    "sessions_of",
    "session_statistics",
    "SessionDataset",
    "SessionSplit",
    "ProcessedSessions",
    "DataFormatError",
    "read_sessions",
    "read_samples",
    "read_clicks",
    "read_inter",
    "read_inter_file",
    "SRGNNSplit",
    "preprocess_diginetica",
    "preprocess_yoochoose",
    "SyntheticSessions",
    "generate_synthetic_sessions",
]
