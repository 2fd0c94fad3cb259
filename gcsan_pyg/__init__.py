"""GC-SAN for session-based recommendation, on PyTorch Geometric."""
from gcsan_pyg.data import SessionData, build_session_batch, session_to_graph
from gcsan_pyg.nn import GCSAN, SelfAttentionEncoder, SessionGatedConv

__version__ = "0.1.0"

__all__ = [
    "GCSAN",
    "SessionGatedConv",
    "SelfAttentionEncoder",
    "SessionData",
    "session_to_graph",
    "build_session_batch",
    "__version__",
]
