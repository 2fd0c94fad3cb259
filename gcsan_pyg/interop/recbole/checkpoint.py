"""Reading and writing RecBole ``GCSAN`` checkpoint files, without RecBole.

* :func:`load_recbole_checkpoint` -- any RecBole checkpoint as a
  :class:`RecBoleCheckpoint` of plain values and tensors, read with the
  restricted unpickler (:mod:`~gcsan_pyg.interop.recbole.unpickler`),
* :func:`gcsan_from_recbole_checkpoint` -- a ready :class:`~gcsan_pyg.nn.GCSAN`
  and what else the checkpoint says (session length, ``.inter`` fields, ...),
* :func:`export_recbole_checkpoint` -- the reverse direction.
"""
from __future__ import annotations

import math
import os
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gcsan_pyg.interop.recbole.config import (
    MODEL_NAMES,
    options_to_recbole,
    recbole_data_differences,
    recbole_hyperparameters,
    recbole_inter_fields,
    recbole_name,
)
from gcsan_pyg.interop.recbole.errors import (
    CheckpointError,
    CheckpointNotFoundError,
    UnsafeCheckpointError,
)
from gcsan_pyg.interop.recbole.state_dict import (
    REQUIRED_HYPERPARAMETERS,
    check_recbole_keys,
    gcsan_from_recbole_state_dict,
    recbole_num_layers,
    to_recbole_state_dict,
)
from gcsan_pyg.interop.recbole.unpickler import RESTRICTED_PICKLE, ConfigStandIn, to_plain
from gcsan_pyg.io import atomic_torch_save
from gcsan_pyg.nn.gcsan import GCSAN

__all__ = [
    "RecBoleCheckpoint",
    "load_recbole_checkpoint",
    "gcsan_from_recbole_checkpoint",
    "export_recbole_checkpoint",
]

PathLike = str | os.PathLike


# Reading ------------------------------------------------------------------------


@dataclass
class RecBoleCheckpoint:
    """A RecBole checkpoint, as plain values and tensors.

    Attributes:
        path: the file it was read from.
        config: RecBole's ``final_config_dict`` (the merged configuration) as
            a plain dict; enums are their member names (``"SEQUENTIAL"``),
            class references their dotted names, devices strings.
        state_dict: the model parameters under RecBole's key names.
        epoch: the epoch the checkpoint was saved after (0-based), if stored.
        cur_step: RecBole's early-stopping step counter, if stored.
        best_valid_score: the best validation score, as a Python float.
        other_parameter: the model's ``other_parameter()`` (plain values).
        optimizer: the optimizer's ``state_dict()``, if stored.
        raw_config: every attribute of the pickled ``Config`` object
            (``final_config_dict``, ``parameters``, ``model``, ...), plain.
    """

    path: Path
    config: dict[str, Any]
    state_dict: dict[str, Tensor]
    epoch: int | None = None
    cur_step: int | None = None
    best_valid_score: float | None = None
    other_parameter: Any = None
    optimizer: dict[str, Any] | None = None
    raw_config: dict[str, Any] = field(default_factory=dict)

    @property
    def model_name(self) -> str | None:
        """The ``model`` entry of the config (``"GCSAN"``), if any."""
        name = self.config.get("model")
        return name if isinstance(name, str) else None


def load_recbole_checkpoint(path: PathLike) -> RecBoleCheckpoint:
    """Reads a RecBole checkpoint (``torch.save`` zip) without RecBole and
    without executing anything the pickle names.

    Only the globals of
    :data:`~gcsan_pyg.interop.recbole.unpickler.ALLOWED_GLOBALS` are
    resolved, each to an inert stand-in; TorchScript archives and legacy
    (non-zip) files are refused before unpickling starts. The files written by
    :func:`export_recbole_checkpoint` (whose ``config`` is already a plain
    dict) are read as well.

    Args:
        path: the ``.pth`` file.

    Raises:
        CheckpointNotFoundError: the file does not exist.
        UnsafeCheckpointError: the pickle names a global outside the
            allow-list (e.g. ``posix.system``); it was neither imported nor
            called.
        CheckpointError: any other reason the file is not a readable RecBole
            checkpoint (truncated, corrupt, wrong layout). All three are
            :class:`ValueError` subclasses and name the file.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointNotFoundError(f"RecBole checkpoint {str(path)!r} does not exist")
    if not path.is_file():
        raise CheckpointError(f"RecBole checkpoint {str(path)!r} is not a regular file")
    _check_archive(path)
    try:
        obj = torch.load(
            path,
            map_location="cpu",
            pickle_module=RESTRICTED_PICKLE,
            weights_only=False,  # the restricted pickle_module replaces it
            mmap=False,
        )
    except UnsafeCheckpointError as exc:
        raise UnsafeCheckpointError(f"unsafe RecBole checkpoint {str(path)!r}: {exc}") from None
    except Exception as exc:
        raise CheckpointError(
            f"cannot read RecBole checkpoint {str(path)!r}: corrupt, or not a checkpoint "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    return _to_checkpoint(path, obj)


def _check_archive(path: Path) -> None:
    """Refuses what is not a torch zip pickle before torch sees it (torch
    would hand a TorchScript archive to ``torch.jit.load``)."""
    where = f"RecBole checkpoint {str(path)!r}"
    if not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"{where} is not a torch zip archive (truncated, corrupt, or a legacy "
            "non-zip torch file)"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            bad = archive.testzip()  # torch itself does not check the CRCs
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        raise CheckpointError(f"{where} is a corrupt zip archive: {exc}") from exc
    if bad is not None:
        raise CheckpointError(f"{where} is corrupt: record {bad!r} fails its CRC check")
    pickles = [n for n in names if n.count("/") == 1 and n.endswith("/data.pkl")]
    if len(pickles) != 1:
        raise CheckpointError(
            f"{where} is not a torch checkpoint: expected one '<name>/data.pkl' record, "
            f"found {len(pickles)}"
        )
    if any(n.endswith("/constants.pkl") or n.endswith("/code/") for n in names):
        raise CheckpointError(f"{where} is a TorchScript archive, not a checkpoint; refused")


def _to_checkpoint(path: Path, obj: Any) -> RecBoleCheckpoint:
    where = f"RecBole checkpoint {str(path)!r}"
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{where} holds a {type(obj).__name__}, not a dict")
    missing = [key for key in ("config", "state_dict") if key not in obj]
    if missing:
        raise CheckpointError(
            f"{where} lacks the top-level key(s) {missing} (has {sorted(map(str, obj))})"
        )
    state_dict = obj["state_dict"]
    if not isinstance(state_dict, Mapping) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in state_dict.items()
    ):
        raise CheckpointError(f"{where}: 'state_dict' is not a mapping of names to tensors")

    raw = obj["config"]
    if isinstance(raw, ConfigStandIn):
        raw_config = to_plain(raw)
        config = raw_config.get("final_config_dict")
        if not isinstance(config, dict):
            raise CheckpointError(f"{where}: its RecBole Config has no 'final_config_dict'")
    elif isinstance(raw, Mapping):
        config = to_plain(raw)
        raw_config = {"final_config_dict": config}
    else:
        raise CheckpointError(f"{where}: 'config' is a {type(raw).__name__}, not a Config")

    return RecBoleCheckpoint(
        path=path,
        config=config,
        state_dict=dict(state_dict),
        epoch=_opt_int(obj.get("epoch"), "epoch", where),
        cur_step=_opt_int(obj.get("cur_step"), "cur_step", where),
        best_valid_score=_opt_float(obj.get("best_valid_score"), "best_valid_score", where),
        other_parameter=to_plain(obj.get("other_parameter")),
        optimizer=to_plain(obj.get("optimizer")),
        raw_config=raw_config,
    )


def _opt_int(value: Any, name: str, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise CheckpointError(f"{where}: '{name}' is a {type(value).__name__}, not an int")
    return value


def _opt_float(value: Any, name: str, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CheckpointError(f"{where}: '{name}' is a {type(value).__name__}, not a number")
    return float(value)


# GCSAN <-> checkpoint ---------------------------------------------------------------


def gcsan_from_recbole_checkpoint(path: PathLike) -> tuple[GCSAN, dict[str, Any]]:
    """A :class:`~gcsan_pyg.nn.GCSAN` rebuilt from a RecBole ``GCSAN``
    checkpoint, in eval mode.

    The sizes come off the weights; ``n_heads``, ``step``, ``weight``,
    ``hidden_act`` and ``layer_norm_eps``, which change the scores, must be
    in the checkpoint's config (see
    :func:`~gcsan_pyg.interop.recbole.gcsan_from_recbole_state_dict`).

    Returns:
        ``(model, info)``; :obj:`info` holds ``"MAX_ITEM_LIST_LENGTH"`` (the
        session length RecBole truncated to, also as ``"max_seq_length"``;
        ``None`` if the config lacks it), ``"inter_fields"`` (the ``.inter``
        fields it read, as :class:`~gcsan_pyg.data.RecBoleInterDataset`
        options), ``"data_differences"`` (its data settings that
        :class:`~gcsan_pyg.data.RecBoleInterDataset` does not reproduce, see
        :func:`~gcsan_pyg.interop.recbole.recbole_data_differences`),
        ``"hyperparameters"`` (the constructor arguments used), ``"epoch"``,
        ``"cur_step"``, ``"best_valid_score"``, ``"dataset"`` and ``"config"``
        (the full plain config).

    Raises:
        CheckpointError: (a :class:`ValueError`) the file is missing, unsafe,
            unreadable, or not a GCSAN checkpoint (another model, keys or
            shapes that do not fit its config, a config without one of the
            values above); the message names the file.
    """
    checkpoint = load_recbole_checkpoint(path)
    where = f"RecBole checkpoint {str(checkpoint.path)!r}"
    model_name = checkpoint.model_name
    if model_name is not None and model_name.lower() != "gcsan":
        raise CheckpointError(f"{where} is a {model_name!r} checkpoint, not GCSAN")
    try:
        hparams = recbole_hyperparameters(checkpoint.config)
    except ValueError as exc:
        raise CheckpointError(f"{where}: {exc}") from None
    missing = [recbole_name(name) for name in REQUIRED_HYPERPARAMETERS if name not in hparams]
    if missing:
        raise CheckpointError(
            f"{where}: its config lacks {missing}, which change GCSAN's scores and cannot be "
            "read off the weights"
        )
    try:
        check_recbole_keys(checkpoint.state_dict, recbole_num_layers(checkpoint.state_dict))
    except ValueError as exc:
        raise CheckpointError(f"{where} is not a GCSAN checkpoint: {exc}") from None
    try:
        model = gcsan_from_recbole_state_dict(checkpoint.state_dict, **hparams)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise CheckpointError(f"{where} does not fit GCSAN: {exc}") from exc
    model.eval()
    config = checkpoint.config
    max_len = config.get("MAX_ITEM_LIST_LENGTH")
    info = {
        "MAX_ITEM_LIST_LENGTH": max_len,
        "max_seq_length": max_len,
        "inter_fields": recbole_inter_fields(config),
        "data_differences": recbole_data_differences(config),
        "hyperparameters": model.hparams,
        "epoch": checkpoint.epoch,
        "cur_step": checkpoint.cur_step,
        "best_valid_score": checkpoint.best_valid_score,
        "dataset": config.get("dataset"),
        "config": config,
    }
    return model, info


def export_recbole_checkpoint(
    model: GCSAN,
    path: PathLike,
    max_seq_length: int = 50,
    *,
    epoch: int = 0,
    best_valid_score: float | None = None,
    dataset: str | None = None,
    extra_config: Mapping[str, Any] | None = None,
) -> Path:
    """Writes :obj:`model` as a RecBole-style ``GCSAN`` checkpoint.

    The top level mirrors RecBole's ``Trainer``: ``config`` (a plain dict of
    RecBole key names: ``model``, ``dataset``, ``MAX_ITEM_LIST_LENGTH`` and
    every model argument under its RecBole name, ``hidden_size``,
    ``inner_size``, ``n_layers``, ``n_heads``, ``step``, ``weight``, ...; see
    :data:`~gcsan_pyg.interop.recbole.MODEL_NAMES`), ``epoch``, ``cur_step``,
    ``best_valid_score``, ``state_dict`` (RecBole key names, CPU tensors),
    ``other_parameter`` (``{}``) and ``optimizer`` (``None``: no optimizer
    state). It holds only dicts, numbers, strings and tensors, so it loads with
    ``torch.load(..., weights_only=True)`` as well as with
    :func:`load_recbole_checkpoint`; RecBole's model can take its
    ``state_dict`` directly, but RecBole cannot resume training from it (no
    ``Config`` object, no optimizer state).

    The file is written to a temporary name beside :obj:`path` and renamed.

    Returns:
        :obj:`path` as a :class:`~pathlib.Path`.
    """
    if not isinstance(model, GCSAN):
        raise TypeError(f"'model' must be a GCSAN, got {type(model).__name__}")
    if isinstance(max_seq_length, bool) or not isinstance(max_seq_length, int):
        raise TypeError(f"'max_seq_length' must be an int, got {type(max_seq_length).__name__}")
    if max_seq_length < 1:
        raise ValueError(f"'max_seq_length' must be >= 1, got {max_seq_length}")
    if best_valid_score is not None and not math.isfinite(float(best_valid_score)):
        raise ValueError(f"'best_valid_score' must be finite, got {best_valid_score}")
    # RecBole's GCSAN knows the model's own options; the sampled-softmax ones
    # only shape training, which RecBole would run as CE over all items.
    known = {ours for ours, _ in MODEL_NAMES.values()}
    hparams = {name: value for name, value in model.hparams.items() if name in known}
    if hparams["loss_type"] == "sampled":
        hparams["loss_type"] = "CE"
    num_items = model.num_items
    config: dict[str, Any] = {
        "model": "GCSAN",
        "dataset": dataset,
        "MAX_ITEM_LIST_LENGTH": max_seq_length,
        **{name: MODEL_NAMES[name][1](value)
           for name, value in options_to_recbole(hparams).items()},
        "item_num": num_items,
    }
    if extra_config:
        config.update(extra_config)
    state = OrderedDict(
        (key, value.cpu().contiguous()) for key, value in to_recbole_state_dict(model).items()
    )
    payload = {
        "config": config,
        "epoch": int(epoch),
        "cur_step": 0,
        "best_valid_score": None if best_valid_score is None else float(best_valid_score),
        "state_dict": state,
        "other_parameter": {},
        "optimizer": None,
    }
    return atomic_torch_save(payload, path)
