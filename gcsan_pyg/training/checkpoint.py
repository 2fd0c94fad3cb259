"""Atomic checkpoint files and loading them back with clear errors."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from gcsan_pyg.io import atomic_torch_save
from gcsan_pyg.nn.gcsan import GCSAN

FORMAT = "gcsan_pyg.checkpoint"
FORMAT_VERSION = 2  # 2: hparams 'num_steps', 'attention_weight' (were 'step', 'weight')
# Constructor arguments renamed since format 1.
_RENAMED = {"step": "num_steps", "weight": "attention_weight"}


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    r"""Writes :obj:`payload` (tensors and plain Python values) to
    :obj:`path` atomically (:func:`~gcsan_pyg.io.atomic_torch_save`): an
    interruption leaves either the old file or the new one, never half of
    one."""
    return atomic_torch_save({"format": FORMAT, "format_version": FORMAT_VERSION, **payload},
                             path)


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    r"""Reads a checkpoint written by :func:`save_checkpoint` (tensors and
    plain values only: nothing in the file is executed).

    Raises:
        ValueError: if the file is missing, truncated or corrupt, or is not a
            gcsan_pyg checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises several types for damaged files
        raise ValueError(
            f"checkpoint {path} cannot be read (truncated, corrupt, or not a torch file): "
            f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        ) from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(
            f"{path} is not a gcsan_pyg checkpoint (no '{FORMAT}' format tag); "
            "for RecBole files use `gcsan-pyg import-recbole`"
        )
    for key in ("hparams", "model"):
        if key not in payload:
            raise ValueError(f"checkpoint {path} lacks its '{key}' entry")
    return payload


def load_model(path: str | os.PathLike, map_location: Any = "cpu") -> tuple[GCSAN, dict[str, Any]]:
    """The :class:`GCSAN` stored in a checkpoint, in eval mode, and the
    checkpoint itself."""
    payload = load_checkpoint(path, map_location)
    hparams = {_RENAMED.get(key, key): value for key, value in payload["hparams"].items()}
    try:
        model = GCSAN(**hparams)
        model.load_state_dict(payload["model"])
    except (TypeError, RuntimeError) as error:
        raise ValueError(f"checkpoint {path} does not hold a GCSAN model: {error}") from error
    return model.eval(), payload
