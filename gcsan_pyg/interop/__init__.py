"""Interoperability with other GC-SAN implementations (RecBole checkpoints)."""
from gcsan_pyg.interop.recbole_checkpoint import (
    ALLOWED_GLOBALS,
    CheckpointError,
    CheckpointNotFoundError,
    RecBoleCheckpoint,
    UnsafeCheckpointError,
    export_recbole_checkpoint,
    gcsan_from_recbole_checkpoint,
    load_recbole_checkpoint,
    recbole_hyperparameters,
)

__all__ = [
    "ALLOWED_GLOBALS",
    "CheckpointError",
    "CheckpointNotFoundError",
    "UnsafeCheckpointError",
    "RecBoleCheckpoint",
    "load_recbole_checkpoint",
    "recbole_hyperparameters",
    "gcsan_from_recbole_checkpoint",
    "export_recbole_checkpoint",
]
