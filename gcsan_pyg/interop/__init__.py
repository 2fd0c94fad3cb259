"""Interoperability with other GC-SAN implementations. All of RecBole's lives
in :mod:`gcsan_pyg.interop.recbole`; its public names are re-exported here."""
from gcsan_pyg.interop import recbole
from gcsan_pyg.interop.recbole import *  # noqa: F403 (its __all__, re-exported)

__all__ = ["recbole", *recbole.__all__]
