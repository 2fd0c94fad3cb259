"""The errors of reading RecBole checkpoints (all :class:`ValueError`\\ s)."""
from __future__ import annotations

import pickle

__all__ = ["CheckpointError", "CheckpointNotFoundError", "UnsafeCheckpointError"]


class CheckpointError(ValueError):
    """A file that cannot be read as (or is not) a RecBole GCSAN checkpoint."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint file does not exist (also a :class:`FileNotFoundError`)."""


class UnsafeCheckpointError(CheckpointError, pickle.UnpicklingError):
    """The pickle names a global outside the allow-list; nothing of it was
    imported or called."""
