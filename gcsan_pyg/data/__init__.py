"""Session data: graphs of single sessions and of padded batches."""
from gcsan_pyg.data.session_batch import build_session_batch, check_padded_sessions
from gcsan_pyg.data.session_graph import SessionData, session_to_graph

__all__ = ["SessionData", "session_to_graph", "build_session_batch", "check_padded_sessions"]
