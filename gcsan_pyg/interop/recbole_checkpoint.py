"""Reading and writing RecBole ``GCSAN`` checkpoints, without RecBole.

A checkpoint written by RecBole's ``Trainer`` is a torch zip pickle whose
top-level dict holds, besides tensors, a pickled
``recbole.config.configurator.Config`` object. Reading that with plain
:func:`pickle` would import RecBole and call whatever the file names; reading
it with ``torch.load(..., weights_only=True)`` is refused. This module reads
it with a *restricted unpickler*: every global the pickle names is looked up
in a fixed allow-list and mapped to an inert stand-in (RecBole's ``Config``
becomes a plain dict, its enums their member names, class references their
dotted names, numpy scalars are rebuilt from their raw bytes). Any other
global is refused with :class:`UnsafeCheckpointError` *before* anything is
imported or called.

Public API:

* :func:`load_recbole_checkpoint` -- the checkpoint as a
  :class:`RecBoleCheckpoint` of plain values and tensors,
* :func:`recbole_hyperparameters` -- RecBole config keys to
  :class:`~gcsan_pyg.nn.GCSAN` constructor arguments,
* :func:`gcsan_from_recbole_checkpoint` -- a ready :class:`~gcsan_pyg.nn.GCSAN`,
* :func:`export_recbole_checkpoint` -- the reverse direction.
"""
from __future__ import annotations

import _compat_pickle
import io
import math
import os
import pickle
import re
import tempfile
import types
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gcsan_pyg.nn.gcsan import GCSAN

__all__ = [
    "CheckpointError",
    "CheckpointNotFoundError",
    "UnsafeCheckpointError",
    "RecBoleCheckpoint",
    "load_recbole_checkpoint",
    "recbole_hyperparameters",
    "gcsan_from_recbole_checkpoint",
    "export_recbole_checkpoint",
    "ALLOWED_GLOBALS",
]

PathLike = str | os.PathLike


# Errors -----------------------------------------------------------------------


class CheckpointError(ValueError):
    """A file that cannot be read as (or is not) a RecBole GCSAN checkpoint."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint file does not exist (also a :class:`FileNotFoundError`)."""


class UnsafeCheckpointError(CheckpointError, pickle.UnpicklingError):
    """The pickle names a global outside the allow-list; nothing of it was
    imported or called."""


# Inert stand-ins for the globals a RecBole checkpoint names -------------------


class _Sealed(type):
    """Metaclass of the stand-in classes: a pickle's BUILD opcode cannot set
    attributes on them (which would otherwise outlive the load)."""

    def __setattr__(cls, name: str, value: Any) -> None:
        raise UnsafeCheckpointError(f"refused to modify the stand-in {cls.__name__}")

    def __delattr__(cls, name: str) -> None:
        raise UnsafeCheckpointError(f"refused to modify the stand-in {cls.__name__}")


class _Guarded:
    """A shared stand-in callable that a pickle cannot modify (BUILD on it is
    refused), only call."""

    __slots__ = ("_func", "_name")

    def __init__(self, func: Callable[..., Any], name: str) -> None:
        object.__setattr__(self, "_func", func)
        object.__setattr__(self, "_name", name)

    def __call__(self, *args: Any) -> Any:
        return self._func(*args)

    def __setattr__(self, name: str, value: Any) -> None:
        raise UnsafeCheckpointError(f"refused to modify the stand-in {self._name}")

    def __setstate__(self, state: Any) -> None:
        raise UnsafeCheckpointError(f"refused to modify the stand-in {self._name}")

    def __repr__(self) -> str:
        return f"<stand-in {self._name}>"


class _RecBoleConfigState(metaclass=_Sealed):
    """Stand-in for ``recbole.config.configurator.Config``: only records the
    state dict the pickle gives it (``final_config_dict`` and friends)."""

    __slots__ = ("state",)

    def __init__(self) -> None:  # never called by pickle (NEWOBJ uses __new__)
        self.state: dict[str, Any] = {}

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(
                f"RecBole Config state must be a dict, got {type(state).__name__}"
            )
        self.state = state

    def __reduce__(self) -> Any:  # pragma: no cover - stand-ins are never re-pickled
        raise TypeError("a RecBole Config stand-in cannot be pickled")


def _recbole_enum(name: str, members: Mapping[int, str]) -> _Guarded:
    """Stand-in for a RecBole ``Enum`` class: calling it with a member's value
    (how ``Enum`` members are pickled) gives the member's name."""
    table = dict(members)

    def member(value: Any) -> str:
        if not isinstance(value, (int, str)) or isinstance(value, bool):
            raise pickle.UnpicklingError(
                f"{name} member value must be an int or str, got {type(value).__name__}"
            )
        return table.get(value, f"{name}({value!r})")  # type: ignore[arg-type]

    return _Guarded(member, f"recbole.utils.enum_type.{name}")


_DTYPE_CODE = re.compile(r"^[<>=|]?[?a-zA-Z][0-9]{0,2}$")
_NUMERIC_KINDS = frozenset("biufc")


class _NumpyDType(metaclass=_Sealed):
    """Stand-in for ``numpy.dtype``: accepts only plain numeric dtypes (bool,
    integers, floats, complex); never structured or object dtypes."""

    __slots__ = ("dtype",)

    def __init__(self, code: Any, align: Any = False, copy: Any = True) -> None:
        if not isinstance(code, str) or not _DTYPE_CODE.match(code):
            raise UnsafeCheckpointError(f"refused numpy dtype {code!r} (not a plain numeric code)")
        dtype = np.dtype(code)
        if dtype.kind not in _NUMERIC_KINDS or dtype.fields is not None or dtype.subdtype:
            raise UnsafeCheckpointError(f"refused numpy dtype {code!r} (kind {dtype.kind!r})")
        self.dtype = dtype

    def __setstate__(self, state: Any) -> None:
        # numpy's dtype state: (version, byteorder, subarray, names, fields,
        # elsize, alignment, flags); only the byte order matters here.
        if not isinstance(state, tuple) or len(state) < 5:
            raise pickle.UnpicklingError("malformed numpy dtype state")
        byteorder, subarray, names, fields = state[1:5]
        if subarray is not None or names is not None or fields is not None:
            raise UnsafeCheckpointError("refused structured numpy dtype")
        if byteorder in ("<", ">"):
            self.dtype = self.dtype.newbyteorder(byteorder)
        elif byteorder not in ("|", "="):
            raise pickle.UnpicklingError(f"malformed numpy byte order {byteorder!r}")

    def __str__(self) -> str:
        return self.dtype.str


def _numpy_scalar(dtype: Any, data: Any = None) -> bool | int | float | complex:
    """Safe stand-in for ``numpy.core.multiarray.scalar``: decodes the raw
    bytes of a numeric numpy scalar with :func:`numpy.frombuffer` and returns
    the equivalent Python scalar."""
    if not isinstance(dtype, _NumpyDType):
        raise pickle.UnpicklingError("numpy scalar needs a (stand-in) numpy dtype")
    if not isinstance(data, bytes) or len(data) != dtype.dtype.itemsize:
        raise pickle.UnpicklingError(
            f"numpy scalar of dtype {dtype} needs {dtype.dtype.itemsize} raw bytes"
        )
    return np.frombuffer(data, dtype=dtype.dtype)[0].item()


def _rebuild_tensor_v2(
    storage: Any,
    storage_offset: Any,
    size: Any,
    stride: Any,
    requires_grad: Any,
    backward_hooks: Any,
    metadata: Any = None,
) -> Tensor:
    """Checked front of ``torch._utils._rebuild_tensor_v2``: a plain tensor
    over a storage the checkpoint holds, no hooks, no attribute state."""
    if not isinstance(storage, torch.storage.TypedStorage):
        raise pickle.UnpicklingError("tensor rebuild needs a storage of the checkpoint")
    if not (
        isinstance(size, tuple)
        and isinstance(stride, tuple)
        and len(size) == len(stride)
        and all(_is_index(v) for v in (storage_offset, *size, *stride))
    ):
        raise pickle.UnpicklingError("malformed tensor offset / size / stride")
    if not isinstance(requires_grad, bool):
        raise pickle.UnpicklingError("malformed tensor requires_grad flag")
    if backward_hooks or metadata:
        raise UnsafeCheckpointError("refused tensor with backward hooks or attribute state")
    return torch._utils._rebuild_tensor_v2(
        storage, storage_offset, size, stride, requires_grad, OrderedDict()
    )


def _is_index(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


_MODEL_CLASS_MODULE = "recbole.model."

#: The globals a RecBole checkpoint may name, with what each is mapped to.
#: Besides these, torch itself maps every ``*Storage`` name to its own inert
#: storage-type marker, and any ``recbole.model.<...>.<Class>`` reference
#: (the config's ``model_class``) becomes its dotted name as a string.
#: Read-only.
ALLOWED_GLOBALS: Mapping[tuple[str, str], Any] = types.MappingProxyType({
    ("collections", "OrderedDict"): OrderedDict,
    ("torch", "device"): torch.device,
    ("torch._utils", "_rebuild_tensor_v2"): _Guarded(_rebuild_tensor_v2, "_rebuild_tensor_v2"),
    ("numpy", "dtype"): _NumpyDType,
    ("numpy.core.multiarray", "scalar"): _Guarded(_numpy_scalar, "numpy scalar"),
    ("numpy._core.multiarray", "scalar"): _Guarded(_numpy_scalar, "numpy scalar"),  # numpy 2
    ("recbole.config.configurator", "Config"): _RecBoleConfigState,
    ("recbole.utils.enum_type", "ModelType"): _recbole_enum(
        "ModelType",
        {
            1: "GENERAL",
            2: "SEQUENTIAL",
            3: "CONTEXT",
            4: "KNOWLEDGE",
            5: "TRADITIONAL",
            6: "DECISIONTREE",
        },
    ),
    ("recbole.utils.enum_type", "InputType"): _recbole_enum(
        "InputType", {1: "POINTWISE", 2: "PAIRWISE", 3: "LISTWISE"}
    ),
    ("recbole.utils.enum_type", "EvaluatorType"): _recbole_enum(
        "EvaluatorType", {1: "RANKING", 2: "VALUE"}
    ),
    ("yaml.loader", "FullLoader"): "yaml.loader.FullLoader",
})  # read-only


def _find_allowed(module: str, name: str) -> Any:
    if not isinstance(module, str) or not isinstance(name, str):
        raise UnsafeCheckpointError(f"refused non-string global {module!r}.{name!r}")
    target = ALLOWED_GLOBALS.get((module, name))
    if target is not None:
        return target
    if (
        module.startswith(_MODEL_CLASS_MODULE)
        and name.isidentifier()
        and all(part.isidentifier() for part in module.split("."))
    ):
        return f"{module}.{name}"  # a model class reference, kept as its name only
    raise UnsafeCheckpointError(
        f"refused global '{module}.{name}'{_python3_name(module, name)}: not on the "
        "allow-list of a RecBole checkpoint (nothing was imported or called)"
    )


def _python3_name(module: str, name: str) -> str:
    """``" (Python 3: 'builtins.eval')"`` for the Python 2 names protocols
    0-2 write (``__builtin__.eval``), else ``""``; for messages only."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    elif module in _compat_pickle.IMPORT_MAPPING:
        module = _compat_pickle.IMPORT_MAPPING[module]
    else:
        return ""
    return f" (Python 3: '{module}.{name}')"


class _RestrictedUnpickler(pickle.Unpickler):
    """:class:`pickle.Unpickler` whose :meth:`find_class` resolves only
    :data:`ALLOWED_GLOBALS` and never imports anything."""

    def find_class(self, module: str, name: str) -> Any:
        return _find_allowed(module, name)


def _restricted_load(file: Any, **kwargs: Any) -> Any:
    return _RestrictedUnpickler(file, **kwargs).load()


def _restricted_loads(data: bytes, **kwargs: Any) -> Any:
    return _RestrictedUnpickler(io.BytesIO(data), **kwargs).load()


#: The ``pickle_module`` handed to :func:`torch.load`.
_RESTRICTED_PICKLE = types.ModuleType("gcsan_pyg.interop._restricted_pickle")
_RESTRICTED_PICKLE.Unpickler = _RestrictedUnpickler  # type: ignore[attr-defined]
_RESTRICTED_PICKLE.load = _restricted_load  # type: ignore[attr-defined]
_RESTRICTED_PICKLE.loads = _restricted_loads  # type: ignore[attr-defined]
_RESTRICTED_PICKLE.UnpicklingError = pickle.UnpicklingError  # type: ignore[attr-defined]


def _plain(obj: Any, seen: dict[int, Any] | None = None) -> Any:
    """Stand-ins and containers to plain Python values (tensors kept)."""
    seen = {} if seen is None else seen
    if isinstance(obj, (str, bytes, int, float, complex, bool, type(None), Tensor)):
        return obj
    key = id(obj)
    if key in seen:
        return seen[key]
    if isinstance(obj, _RecBoleConfigState):
        out: Any = {}
        seen[key] = out
        out.update(_plain(getattr(obj, "state", {}), seen))
        return out
    if isinstance(obj, Mapping):
        out = {}
        seen[key] = out
        for k, v in obj.items():
            out[_plain(k, seen)] = _plain(v, seen)
        return out
    if isinstance(obj, list):
        out = []
        seen[key] = out
        out.extend(_plain(v, seen) for v in obj)
        return out
    if isinstance(obj, (tuple, set, frozenset)):
        return type(obj)(_plain(v, seen) for v in obj)
    if isinstance(obj, (_NumpyDType, torch.device)):
        return str(obj)
    if isinstance(obj, _Guarded):  # a bare reference to a stand-in callable
        return obj._name
    if obj is _RecBoleConfigState or obj is _NumpyDType:
        return obj.__name__
    return obj


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

    Only the globals of :data:`ALLOWED_GLOBALS` are resolved, each to an
    inert stand-in; TorchScript archives and legacy (non-zip) files are
    refused before unpickling starts. The files written by
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
            pickle_module=_RESTRICTED_PICKLE,
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
    if isinstance(raw, _RecBoleConfigState):
        raw_config = _plain(raw)
        config = raw_config.get("final_config_dict")
        if not isinstance(config, dict):
            raise CheckpointError(f"{where}: its RecBole Config has no 'final_config_dict'")
    elif isinstance(raw, Mapping):
        config = _plain(raw)
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
        other_parameter=_plain(obj.get("other_parameter")),
        optimizer=_plain(obj.get("optimizer")),
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


# RecBole config <-> GCSAN arguments -------------------------------------------

#: RecBole config key -> (GCSAN argument, conversion).
_HYPERPARAMETERS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "hidden_size": ("hidden_channels", int),
    "inner_size": ("inner_channels", int),
    "n_layers": ("num_layers", int),
    "n_heads": ("num_heads", int),
    "step": ("step", int),
    "weight": ("weight", float),
    "hidden_dropout_prob": ("hidden_dropout", float),
    "attn_dropout_prob": ("attn_dropout", float),
    "hidden_act": ("activation", str),
    "layer_norm_eps": ("layer_norm_eps", float),
    "initializer_range": ("initializer_range", float),
    "loss_type": ("loss_type", str),
    "reg_weight": ("reg_weight", float),
}


def recbole_hyperparameters(
    config: Mapping[str, Any],
    state_dict: Mapping[str, Tensor] | None = None,
) -> dict[str, Any]:
    """:class:`~gcsan_pyg.nn.GCSAN` constructor arguments from a RecBole
    config (``hidden_size`` -> ``hidden_channels``, ``inner_size`` ->
    ``inner_channels``, ``n_layers`` -> ``num_layers``, ``n_heads`` ->
    ``num_heads``, ``step``, ``weight``, ``hidden_dropout_prob`` ->
    ``hidden_dropout``, ``attn_dropout_prob`` -> ``attn_dropout``,
    ``hidden_act`` -> ``activation``, ``layer_norm_eps``,
    ``initializer_range``, ``loss_type``, ``reg_weight``).

    Keys absent from :obj:`config` are left out (the model's defaults apply).
    With :obj:`state_dict`, :obj:`num_items` is added: the row count of its
    ``item_embedding.weight``.

    Raises:
        ValueError: a value has the wrong type, or ``reg_weight`` is not a
            single number.
    """
    out: dict[str, Any] = {}
    for key, (arg, convert) in _HYPERPARAMETERS.items():
        if key not in config or config[key] is None:
            continue
        value = config[key]
        if key == "reg_weight" and isinstance(value, (list, tuple)):
            # RecBole allows a list for some models; GCSAN uses one number.
            if len(value) != 1:
                raise ValueError(f"RecBole 'reg_weight' must be one number, got {value!r}")
            value = value[0]
        try:
            if convert is str:
                if not isinstance(value, str):
                    raise TypeError
                converted: Any = value
            else:
                if isinstance(value, (bool, str)) or not isinstance(value, (int, float)):
                    raise TypeError
                converted = convert(value)
                if convert is int and converted != value:
                    raise TypeError
        except (TypeError, ValueError):
            raise ValueError(
                f"RecBole config '{key}' = {value!r} is not a valid {convert.__name__}"
            ) from None
        out[arg] = converted
    if state_dict is not None:
        table = state_dict.get("item_embedding.weight")
        if not isinstance(table, Tensor) or table.dim() != 2:
            raise ValueError("RecBole state_dict lacks a 2-D 'item_embedding.weight'")
        out["num_items"] = int(table.size(0))
    return out


def _gcsan_recbole_keys(num_layers: int) -> set[str]:
    keys = {"item_embedding.weight", "gnn.w_ih", "gnn.w_hh", "gnn.b_ih", "gnn.b_hh"}
    for lin in ("linear_edge_in", "linear_edge_out"):
        keys |= {f"gnn.{lin}.weight", f"gnn.{lin}.bias"}
    for n in range(num_layers):
        mha = f"self_attention.layer.{n}.multi_head_attention"
        ffn = f"self_attention.layer.{n}.feed_forward"
        for part in ("weight", "bias"):
            for name in ("query", "key", "value", "dense", "LayerNorm"):
                keys.add(f"{mha}.{name}.{part}")
            for name in ("dense_1", "dense_2", "LayerNorm"):
                keys.add(f"{ffn}.{name}.{part}")
    return keys


def _check_gcsan(checkpoint: RecBoleCheckpoint, num_layers: int | None) -> None:
    where = f"RecBole checkpoint {str(checkpoint.path)!r}"
    model = checkpoint.model_name
    if model is not None and model.lower() != "gcsan":
        raise CheckpointError(f"{where} is a {model!r} checkpoint, not GCSAN")
    if num_layers is None:
        num_layers = 0
        pattern = re.compile(r"^self_attention\.layer\.(\d+)\.")
        for key in checkpoint.state_dict:
            match = pattern.match(key)
            if match:
                num_layers = max(num_layers, int(match.group(1)) + 1)
    expected = _gcsan_recbole_keys(num_layers)
    missing = sorted(expected - set(checkpoint.state_dict))
    unexpected = sorted(set(checkpoint.state_dict) - expected)
    if missing or unexpected:
        raise CheckpointError(
            f"{where} is not a GCSAN checkpoint ({num_layers} layer(s)): state_dict "
            f"misses keys {missing[:8]}{' ...' if len(missing) > 8 else ''} and has "
            f"unexpected keys {unexpected[:8]}{' ...' if len(unexpected) > 8 else ''}"
        )


def gcsan_from_recbole_checkpoint(path: PathLike) -> tuple[GCSAN, dict[str, Any]]:
    """A :class:`~gcsan_pyg.nn.GCSAN` rebuilt from a RecBole ``GCSAN``
    checkpoint, in eval mode.

    Returns:
        ``(model, info)``; :obj:`info` holds ``"MAX_ITEM_LIST_LENGTH"`` (the
        session length RecBole truncated to, also as ``"max_seq_length"``;
        ``None`` if the config lacks it), ``"hyperparameters"`` (the
        constructor arguments used), ``"epoch"``, ``"cur_step"``,
        ``"best_valid_score"``, ``"dataset"`` and ``"config"`` (the full
        plain config).

    Raises:
        CheckpointError: (a :class:`ValueError`) the file is missing, unsafe,
            unreadable, or not a GCSAN checkpoint (another model, keys or
            shapes that do not fit its config); the message names the file.
    """
    checkpoint = load_recbole_checkpoint(path)
    where = f"RecBole checkpoint {str(checkpoint.path)!r}"
    try:
        hparams = recbole_hyperparameters(checkpoint.config, checkpoint.state_dict)
    except ValueError as exc:
        raise CheckpointError(f"{where}: {exc}") from None
    _check_gcsan(checkpoint, hparams.get("num_layers"))
    try:
        model = GCSAN.from_recbole(checkpoint.state_dict, **hparams)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise CheckpointError(f"{where} does not fit GCSAN: {exc}") from exc
    model.eval()
    max_len = checkpoint.config.get("MAX_ITEM_LIST_LENGTH")
    info = {
        "MAX_ITEM_LIST_LENGTH": max_len,
        "max_seq_length": max_len,
        "hyperparameters": model.hparams,
        "epoch": checkpoint.epoch,
        "cur_step": checkpoint.cur_step,
        "best_valid_score": checkpoint.best_valid_score,
        "dataset": checkpoint.config.get("dataset"),
        "config": checkpoint.config,
    }
    return model, info


# Writing ------------------------------------------------------------------------


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
    RecBole key names: ``model``, ``hidden_size``, ``inner_size``,
    ``n_layers``, ``n_heads``, ``step``, ``weight``, ``hidden_dropout_prob``,
    ``attn_dropout_prob``, ``hidden_act``, ``layer_norm_eps``,
    ``initializer_range``, ``loss_type``, ``reg_weight``,
    ``MAX_ITEM_LIST_LENGTH``, ...), ``epoch``, ``cur_step``,
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
    hp = model.hparams
    config: dict[str, Any] = {
        "model": "GCSAN",
        "dataset": dataset,
        "MAX_ITEM_LIST_LENGTH": max_seq_length,
        "hidden_size": hp["hidden_channels"],
        "inner_size": hp["inner_channels"],
        "n_layers": hp["num_layers"],
        "n_heads": hp["num_heads"],
        "step": hp["step"],
        "weight": float(hp["weight"]),
        "hidden_dropout_prob": float(hp["hidden_dropout"]),
        "attn_dropout_prob": float(hp["attn_dropout"]),
        "hidden_act": hp["activation"],
        "layer_norm_eps": float(hp["layer_norm_eps"]),
        "initializer_range": float(hp["initializer_range"]),
        "loss_type": hp["loss_type"],
        "reg_weight": float(hp["reg_weight"]),
        "item_num": hp["num_items"],
    }
    if extra_config:
        config.update(extra_config)
    state = OrderedDict(
        (key, value.detach().cpu().contiguous().clone())
        for key, value in model.to_recbole_state_dict().items()
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
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
