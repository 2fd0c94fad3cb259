"""Atomic file writes: a reader sees the old file or the new one, never half of one."""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

PathLike = str | os.PathLike


def atomic_write(path: PathLike, write: Callable[[IO[bytes]], Any]) -> Path:
    r"""Calls :obj:`write` on a temporary file in :obj:`path`'s folder,
    flushes it to disk (:func:`os.fsync`) and renames it over :obj:`path`
    (:func:`os.replace`). An interruption or an error in :obj:`write`
    leaves :obj:`path` as it was and no temporary file behind. The folder
    is created if needed.

    Returns:
        :obj:`path` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # as a plain open() would create it
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_torch_save(obj: Any, path: PathLike) -> Path:
    """:func:`torch.save` of :obj:`obj` to :obj:`path`, atomically (see
    :func:`atomic_write`)."""
    return atomic_write(path, lambda handle: torch.save(obj, handle))


def atomic_write_text(text: str, path: PathLike) -> Path:
    """Writes :obj:`text` (UTF-8) to :obj:`path`, atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once: os.umask can only be read by setting it
