"""A restricted unpickler for RecBole checkpoints: it never imports or calls
what a file names.

A checkpoint written by RecBole's ``Trainer`` holds, besides tensors, a
pickled ``recbole.config.configurator.Config`` object. Plain :mod:`pickle`
would import RecBole and call whatever the file names;
``torch.load(..., weights_only=True)`` refuses the file. Here every global the
pickle names is looked up in a fixed allow-list (:data:`ALLOWED_GLOBALS`) and
mapped to an inert stand-in: RecBole's ``Config`` becomes a
:class:`ConfigStandIn` holding its state, its enums their member names, class
references their dotted names, numpy scalars are rebuilt from their raw bytes.
Any other global is refused with
:class:`~gcsan_pyg.interop.recbole.errors.UnsafeCheckpointError` *before*
anything is imported or called.
"""
from __future__ import annotations

import _compat_pickle
import io
import pickle
import re
import types
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gcsan_pyg.interop.recbole.errors import UnsafeCheckpointError

__all__ = ["ALLOWED_GLOBALS", "RESTRICTED_PICKLE", "ConfigStandIn", "to_plain"]



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


class ConfigStandIn(metaclass=_Sealed):
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
    ("recbole.config.configurator", "Config"): ConfigStandIn,
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


#: The ``pickle_module`` to hand to :func:`torch.load`: its ``Unpickler``,
#: ``load`` and ``loads`` resolve only :data:`ALLOWED_GLOBALS`.
RESTRICTED_PICKLE = types.ModuleType("gcsan_pyg.interop.recbole.restricted_pickle")
RESTRICTED_PICKLE.Unpickler = _RestrictedUnpickler  # type: ignore[attr-defined]
RESTRICTED_PICKLE.load = _restricted_load  # type: ignore[attr-defined]
RESTRICTED_PICKLE.loads = _restricted_loads  # type: ignore[attr-defined]
RESTRICTED_PICKLE.UnpicklingError = pickle.UnpicklingError  # type: ignore[attr-defined]


def to_plain(obj: Any, seen: dict[int, Any] | None = None) -> Any:
    """Turns what :data:`RESTRICTED_PICKLE` loaded into plain Python values.

    A :class:`ConfigStandIn` becomes the dict of its state, dtypes and devices
    strings, references to stand-ins their names; containers are converted
    recursively, tensors kept.

    Args:
        obj: the unpickled object.
        seen: objects already converted, by :func:`id` (keeps shared and
            self-referencing containers shared); :obj:`None` on the first call.

    Returns:
        The plain value.
    """
    seen = {} if seen is None else seen
    if isinstance(obj, (str, bytes, int, float, complex, bool, type(None), Tensor)):
        return obj
    key = id(obj)
    if key in seen:
        return seen[key]
    if isinstance(obj, ConfigStandIn):
        out: Any = {}
        seen[key] = out
        out.update(to_plain(getattr(obj, "state", {}), seen))
        return out
    if isinstance(obj, Mapping):
        out = {}
        seen[key] = out
        for k, v in obj.items():
            out[to_plain(k, seen)] = to_plain(v, seen)
        return out
    if isinstance(obj, list):
        out = []
        seen[key] = out
        out.extend(to_plain(v, seen) for v in obj)
        return out
    if isinstance(obj, (tuple, set, frozenset)):
        return type(obj)(to_plain(v, seen) for v in obj)
    if isinstance(obj, (_NumpyDType, torch.device)):
        return str(obj)
    if isinstance(obj, _Guarded):  # a bare reference to a stand-in callable
        return obj._name
    if obj is ConfigStandIn or obj is _NumpyDType:
        return obj.__name__
    return obj
