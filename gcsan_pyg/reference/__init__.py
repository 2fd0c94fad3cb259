"""The dense-adjacency GC-SAN (RecBole's formulation): parity and benchmark baseline."""
from gcsan_pyg.reference.dense_gcsan import DenseGCSAN, dense_session_adjacency

__all__ = ["DenseGCSAN", "dense_session_adjacency"]
