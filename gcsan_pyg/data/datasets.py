"""PyG in-memory datasets of session samples, with a fingerprinted cache.

Every dataset item is a :class:`~gcsan_pyg.data.SessionData` graph of one
sample's input prefix (built as :func:`~gcsan_pyg.data.session_to_graph`
does) with the next item as :obj:`y` (shape :obj:`[1]`). The samples are
stored in the standard collated :class:`~torch_geometric.data.InMemoryDataset`
layout (:obj:`dataset._data`, :obj:`dataset.slices`), with :obj:`alias` and
:obj:`edge_index` local to each sample, so the click sequences can be rebuilt
vectorised as :obj:`x[alias + node_offset]`.

Processing builds all three splits (:obj:`"train"`, :obj:`"valid"`,
:obj:`"test"`) at once into ``root/processed``. File names carry a
fingerprint of the options and of the raw files (path, size, mtime), so a
change of either rebuilds, and an unchanged setup reloads without
reprocessing. Files are written to temporary names and moved into place
with :func:`os.replace` only when all splits are built.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import InMemoryDataset

from gcsan_pyg.data.preprocess import (
    PAD_TOKEN,
    SRGNNSplit,
    preprocess_diginetica,
    preprocess_yoochoose,
    sessions_to_dicts,
    srgnn_pipeline,
)
from gcsan_pyg.data.readers import (
    PathLike,
    Sample,
    leave_one_out,
    read_clicks,
    read_inter_file,
    read_samples,
    read_sessions,
    sessions_from_samples,
)
from gcsan_pyg.data.session_graph import SessionData
from gcsan_pyg.data.synthetic import generate_synthetic_sessions

SPLITS = ("train", "valid", "test")
#: Bumped whenever the processed layout or the processing changes.
FORMAT_VERSION = 2  # 2: no stored edge weights


# ---------------------------------------------------------------------------
# Flat sample arrays and their vectorised collation
# ---------------------------------------------------------------------------


@dataclass
class SampleArrays:
    r"""Samples as flat arrays.

    Attributes:
        clicks (np.ndarray): the prefixes' item ids, concatenated (int64).
        lengths (np.ndarray): the length of every prefix (int64, :math:`\geq 1`).
        labels (np.ndarray): the next item of every sample (int64).
    """

    clicks: np.ndarray
    lengths: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def to_samples(self) -> list[Sample]:
        """Back to a list of :obj:`(prefix, label)`."""
        ends = np.cumsum(self.lengths)
        clicks = self.clicks.tolist()
        starts = (ends - self.lengths).tolist()
        return [
            (clicks[s:e], lab) for s, e, lab in zip(starts, ends.tolist(), self.labels.tolist())
        ]


def _flatten(sessions: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.fromiter((len(s) for s in sessions), dtype=np.int64, count=len(sessions))
    flat = np.fromiter(
        itertools.chain.from_iterable(sessions), dtype=np.int64, count=int(lengths.sum())
    )
    return flat, lengths


def _truncate(starts: np.ndarray, lengths: np.ndarray, max_length: int | None):
    if max_length is None:
        return starts, lengths
    cut = np.maximum(lengths - max_length, 0)
    return starts + cut, lengths - cut


def _gather(flat: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    total = int(lengths.sum())
    offsets = np.repeat(np.cumsum(lengths) - lengths, lengths)
    pos = np.repeat(starts, lengths) + (np.arange(total, dtype=np.int64) - offsets)
    return flat[pos]


def augment_to_arrays(
    sessions: Sequence[Sequence[int]], max_length: int | None = None
) -> SampleArrays:
    r"""SR-GNN's prefix augmentation (as
    :func:`~gcsan_pyg.data.readers.augment_prefixes`, same order), vectorised.

    Args:
        sessions (sequence of sequences of int): the sessions.
        max_length (int, optional): prefixes longer than this keep their
            last :obj:`max_length` clicks.

    Returns:
        The :class:`SampleArrays`.
    """
    flat, sess_len = _flatten(sessions)
    sess_start = np.cumsum(sess_len) - sess_len
    per = np.maximum(sess_len - 1, 0)
    num = int(per.sum())
    owner = np.repeat(np.arange(len(sess_len)), per)
    within = np.arange(num, dtype=np.int64) - np.repeat(np.cumsum(per) - per, per)
    lengths = sess_len[owner] - 1 - within  # longest prefix first
    starts = sess_start[owner]
    labels = flat[starts + lengths] if num else np.zeros(0, dtype=np.int64)
    starts, lengths = _truncate(starts, lengths, max_length)
    return SampleArrays(_gather(flat, starts, lengths), lengths, labels)


def samples_to_arrays(samples: Sequence[Sample], max_length: int | None = None) -> SampleArrays:
    r"""Turns :obj:`(prefix, label)` samples into :class:`SampleArrays`.

    Args:
        samples (sequence of (prefix, label)): the samples.
        max_length (int, optional): prefixes longer than this keep their
            last :obj:`max_length` clicks.
    """
    flat, lengths = _flatten([p for p, _ in samples])
    labels = np.fromiter((int(lab) for _, lab in samples), dtype=np.int64, count=len(samples))
    starts = np.cumsum(lengths) - lengths
    starts, lengths = _truncate(starts, lengths, max_length)
    return SampleArrays(_gather(flat, starts, lengths), lengths, labels)


def _ptr(counts: np.ndarray) -> Tensor:
    out = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=out[1:])
    return torch.from_numpy(out)


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    # np.unique without return_inverse may hash (numpy >= 2.3), slower here.
    values = np.sort(values)
    if values.size:
        values = values[np.concatenate(([True], values[1:] != values[:-1]))]
    return values


def collate_samples(samples: SampleArrays) -> tuple[SessionData, dict[str, Tensor]]:
    r"""Builds the collated :class:`~torch_geometric.data.InMemoryDataset`
    storage of the samples' session graphs with numpy, without creating one
    :class:`~torch_geometric.data.Data` per sample.

    For two or more samples the result equals
    :obj:`InMemoryDataset.collate([session_to_graph(prefix, label) ...])`;
    for one or zero samples the slices are still returned (PyG returns
    :obj:`None` for one).

    Args:
        samples (SampleArrays): the samples.

    Returns:
        :obj:`(data, slices)`: a :class:`SessionData` holding the
        concatenated :obj:`x`, :obj:`edge_index`, :obj:`alias` (the last two
        local to their sample) and :obj:`y`, and the slice pointers of every
        attribute.
    """
    clicks, lengths, labels = samples.clicks, samples.lengths, samples.labels
    num = len(labels)
    if num and (int(lengths.min()) < 1 or int(clicks.min()) < 1 or int(labels.min()) < 1):
        raise ValueError("samples need non-empty prefixes and item ids >= 1")
    owner = np.repeat(np.arange(num, dtype=np.int64), lengths)
    stride = int(clicks.max()) + 1 if clicks.size else 1
    keys, node_of_click = np.unique(owner * stride + clicks, return_inverse=True)
    node_of_click = node_of_click.reshape(-1)
    x = keys % stride
    node_owner = keys // stride
    node_count = np.bincount(node_owner, minlength=num)
    node_start = np.cumsum(node_count) - node_count
    total_nodes = len(keys)

    same = owner[1:] == owner[:-1]
    src, dst = node_of_click[:-1][same], node_of_click[1:][same]
    edge_keys = _sorted_unique(src * max(total_nodes, 1) + dst)
    src, dst = edge_keys // max(total_nodes, 1), edge_keys % max(total_nodes, 1)
    edge_owner = node_owner[src]
    edge_count = np.bincount(edge_owner, minlength=num)
    edge_index = torch.from_numpy(
        np.stack([src - node_start[edge_owner], dst - node_start[edge_owner]])
    )
    alias = torch.from_numpy(node_of_click - node_start[owner])

    data = SessionData(
        x=torch.from_numpy(x),
        edge_index=edge_index,
        alias=alias,
    )
    data.y = torch.from_numpy(labels.astype(np.int64, copy=True))  # last, as in collate
    slices = {
        "x": _ptr(node_count),
        "edge_index": _ptr(edge_count),
        "alias": _ptr(lengths),
        "y": torch.arange(num + 1, dtype=torch.long),
    }
    return data, slices


# ---------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------


def session_statistics(
    sessions: Sequence[Sequence[int]], samples: SampleArrays | None = None
) -> dict[str, Any]:
    r"""Counts of a set of sessions (and of their samples).

    Args:
        sessions (sequence of sequences of int): the sessions.
        samples (SampleArrays, optional): the samples drawn from them.

    Returns:
        A dict with :obj:`sessions`, :obj:`clicks`, :obj:`items` (distinct),
        :obj:`avg_length`, :obj:`min_length`, :obj:`max_length` (of the
        sessions), and :obj:`samples`, :obj:`avg_prefix_length`,
        :obj:`max_prefix_length` when :obj:`samples` is given.
    """
    flat, lengths = _flatten(sessions)
    out: dict[str, Any] = {
        "sessions": len(lengths),
        "clicks": int(lengths.sum()),
        "items": int(np.count_nonzero(np.bincount(flat))) if flat.size else 0,
        "avg_length": round(float(lengths.mean()), 4) if len(lengths) else 0.0,
        "min_length": int(lengths.min()) if len(lengths) else 0,
        "max_length": int(lengths.max()) if len(lengths) else 0,
    }
    if samples is not None:
        out["samples"] = len(samples)
        out["avg_prefix_length"] = (
            round(float(samples.lengths.mean()), 4) if len(samples) else 0.0
        )
        out["max_prefix_length"] = int(samples.lengths.max()) if len(samples) else 0
    return out


def dataset_statistics(dataset: SessionDataset) -> dict[str, Any]:
    r"""The statistics stored with a processed dataset, for all splits.

    Args:
        dataset (SessionDataset): any split of the dataset.

    Returns:
        A dict with :obj:`num_items` (item table size, padding included),
        :obj:`split` (the dataset's own split) and one entry per split
        (:obj:`"train"`, :obj:`"valid"`, :obj:`"test"`) as given by
        :func:`session_statistics`. Session counts of SR-GNN ``test.tsv``
        files are the sessions rebuilt by
        :func:`~gcsan_pyg.data.readers.sessions_from_samples`.
    """
    out: dict[str, Any] = {"num_items": dataset.num_items, "split": dataset.split}
    out.update({k: dict(v) for k, v in dataset.meta["stats"].items()})
    return out


# ---------------------------------------------------------------------------
# Base dataset
# ---------------------------------------------------------------------------


@dataclass
class _Built:
    splits: dict[str, SampleArrays]
    sessions: dict[str, list[list[int]]]
    num_items: int
    item_ids: list[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _atomic_torch_save(obj: Any, path: str) -> str:
    """Writes :obj:`obj` to a temporary file beside :obj:`path`; returns it."""
    directory, name = os.path.split(path)
    tmp = os.path.join(directory, f".{name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "xb") as f:  # plain open: permissions follow the umask
            torch.save(obj, f)
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


class SessionDataset(InMemoryDataset):
    r"""Base class of the session datasets (see the module doc).

    Subclasses set :attr:`kind`, implement :meth:`source_files`,
    :meth:`options` and :meth:`build`.

    Args:
        root (str or PathLike): the cache folder (``root/processed``).
        split (str, optional): :obj:`"train"`, :obj:`"valid"` or
            :obj:`"test"`. (default: :obj:`"train"`)
        max_length (int, optional): prefixes longer than this keep their
            most recent :obj:`max_length` clicks. (default: :obj:`None`)
        transform (callable, optional): PyG transform applied on access.
        force_reload (bool, optional): reprocess even if cached.
            (default: :obj:`False`)
        log (bool, optional): print processing messages.
            (default: :obj:`False`)

    Attributes:
        num_items (int): the item table size (max id + 1, padding 0 included).
        item_ids (list of str, optional): for formats with raw ids, the raw
            id (as a string) of every internal id (index 0 is
            :obj:`"[PAD]"`); :obj:`None` for already remapped formats.
        meta (dict): everything stored beside the tensors (options, stats).
    """

    kind = "session"

    def __init__(
        self,
        root: PathLike,
        split: str = "train",
        max_length: int | None = None,
        transform: Callable | None = None,
        force_reload: bool = False,
        log: bool = False,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"'split' must be one of {SPLITS}, got {split!r}")
        if max_length is not None and (not isinstance(max_length, int) or max_length < 1):
            raise ValueError(f"'max_length' must be a positive int or None, got {max_length!r}")
        self.split = split
        self.max_length = max_length
        for path in self.source_files():
            if not Path(path).is_file():
                raise FileNotFoundError(f"{type(self).__name__}: input file not found: {path}")
        self._fingerprint = self._compute_fingerprint()
        super().__init__(os.fspath(root), transform, None, None, log=log,
                         force_reload=force_reload)
        out = torch.load(self.processed_paths[SPLITS.index(split)], weights_only=True)
        self.data = SessionData.from_dict(out["data"])
        self.slices = out["slices"]
        self.meta: dict[str, Any] = out["meta"]
        self.num_items: int = int(self.meta["num_items"])
        self.item_ids: list[str] | None = self.meta["item_ids"]

    # -- to implement -----------------------------------------------------
    def source_files(self) -> list[Path]:
        """The input files (their path, size and mtime enter the fingerprint)."""
        return []

    def options(self) -> dict[str, Any]:
        """The options that change the processed output."""
        return {"max_length": self.max_length}

    def build(self) -> _Built:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- cache ------------------------------------------------------------
    def _compute_fingerprint(self) -> str:
        files = []
        for path in self.source_files():
            st = os.stat(path)
            files.append([os.path.abspath(path), st.st_size, st.st_mtime_ns])
        blob = json.dumps(
            {"format": FORMAT_VERSION, "kind": self.kind, "options": self.options(),
             "files": files},
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @property
    def fingerprint(self) -> str:
        """The hash of options and input files that names the processed files."""
        return self._fingerprint

    @property
    def raw_file_names(self) -> list[str]:
        return [os.fspath(p) for p in self.source_files()]

    @property
    def raw_dir(self) -> str:  # the inputs are read where they are
        return ""

    @property
    def processed_file_names(self) -> list[str]:
        return [f"{self.kind}-{s}-{self._fingerprint}.pt" for s in SPLITS]

    def process(self) -> None:
        built = self.build()
        stats = {}
        for s in SPLITS:
            stats[s] = session_statistics(built.sessions[s], built.splits[s])
        meta = {
            "kind": self.kind,
            "format": FORMAT_VERSION,
            "options": self.options(),
            "num_items": int(built.num_items),
            "item_ids": built.item_ids,
            "stats": stats,
            **built.extra,
        }
        temps: list[str] = []
        try:
            for s in SPLITS:
                data, slices = collate_samples(built.splits[s])
                obj = {"data": data.to_dict(), "slices": slices, "meta": meta}
                temps.append(_atomic_torch_save(obj, self.processed_paths[SPLITS.index(s)]))
            for tmp, path in zip(temps, self.processed_paths):
                os.replace(tmp, path)
        finally:
            for tmp in temps:
                if os.path.exists(tmp):
                    os.unlink(tmp)

    # -- views ------------------------------------------------------------
    def item_id_map(self) -> dict[str, int] | None:
        """The raw id -> internal id mapping (inverse of :attr:`item_ids`), or
        :obj:`None` for formats without raw ids."""
        if self.item_ids is None:
            return None
        return {raw: i for i, raw in enumerate(self.item_ids) if i > 0}

    def statistics(self) -> dict[str, Any]:
        """Same as :func:`dataset_statistics` (all splits)."""
        return dataset_statistics(self)

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}({len(self)}, split={self.split!r}, num_items={self.num_items})"


def _split_valid(sessions: list[list[int]], valid_fraction: float):
    num_valid = int(len(sessions) * valid_fraction)
    cut = len(sessions) - num_valid
    return sessions[:cut], sessions[cut:]


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise ValueError(f"'{name}' must be in [0, 1), got {value}")


def _from_srgnn_split(
    result: SRGNNSplit, valid_fraction: float, max_length: int | None
) -> _Built:
    train, valid = _split_valid(result.train_sessions, valid_fraction)
    return _Built(
        splits={
            "train": augment_to_arrays(train, max_length),
            "valid": augment_to_arrays(valid, max_length),
            "test": augment_to_arrays(result.test_sessions, max_length),
        },
        sessions={"train": train, "valid": valid, "test": result.test_sessions},
        num_items=result.num_items,
        item_ids=result.item_ids,
    )


# ---------------------------------------------------------------------------
# Concrete datasets
# ---------------------------------------------------------------------------


class SRGNNTextDataset(SessionDataset):
    r"""SR-GNN preprocessed text: a folder with ``train_sessions.txt`` (one
    session per line) and ``test.tsv`` (``prefix<TAB>label``), ids from 1.

    Training sessions are augmented with SR-GNN's prefix splitting; the
    valid split is the augmentation of the last :obj:`valid_fraction` of the
    training sessions (file order, rounded down), which are then not in
    train. The test split is ``test.tsv`` as is. :obj:`num_items` is the
    largest id of train and test plus one.

    Args:
        root (str or PathLike): the cache folder.
        path (str or PathLike): the folder with the two files.
        split (str, optional): :obj:`"train"`, :obj:`"valid"` or
            :obj:`"test"`. (default: :obj:`"train"`)
        valid_fraction (float, optional): in :math:`[0, 1)`.
            (default: :obj:`0.1`)
        max_length (int, optional): keep the most recent clicks of longer
            prefixes. (default: :obj:`None`)
        **kwargs: :obj:`transform`, :obj:`force_reload`, :obj:`log`.
    """

    kind = "srgnn_text"

    def __init__(
        self,
        root: PathLike,
        path: PathLike,
        split: str = "train",
        valid_fraction: float = 0.1,
        max_length: int | None = None,
        **kwargs: Any,
    ) -> None:
        _check_fraction("valid_fraction", valid_fraction)
        self.path = Path(path)
        self.valid_fraction = float(valid_fraction)
        super().__init__(root, split, max_length, **kwargs)

    def source_files(self) -> list[Path]:
        return [self.path / "train_sessions.txt", self.path / "test.tsv"]

    def options(self) -> dict[str, Any]:
        return {**super().options(), "valid_fraction": self.valid_fraction}

    def build(self) -> _Built:
        train_file, test_file = self.source_files()
        sessions = read_sessions(train_file)
        test = read_samples(test_file)
        train, valid = _split_valid(sessions, self.valid_fraction)
        test_arrays = samples_to_arrays(test, self.max_length)
        top = max(
            max((max(s) for s in sessions), default=0),
            max((max(max(p), lab) for p, lab in test), default=0),
        )
        return _Built(
            splits={
                "train": augment_to_arrays(train, self.max_length),
                "valid": augment_to_arrays(valid, self.max_length),
                "test": test_arrays,
            },
            sessions={"train": train, "valid": valid, "test": sessions_from_samples(test)},
            num_items=top + 1,
        )


class _SRGNNRawDataset(SessionDataset):
    """A raw click log with SR-GNN's preprocessing: the shared options."""

    def __init__(
        self,
        root: PathLike,
        path: PathLike,
        split: str,
        valid_fraction: float,
        max_length: int | None,
        test_days: float,
        min_item_support: int,
        **kwargs: Any,
    ) -> None:
        _check_fraction("valid_fraction", valid_fraction)
        self.path = Path(path)
        self.valid_fraction = float(valid_fraction)
        self.test_days = test_days
        self.min_item_support = min_item_support
        super().__init__(root, split, max_length, **kwargs)

    def source_files(self) -> list[Path]:
        return [self.path]

    def options(self) -> dict[str, Any]:
        return {**super().options(), "valid_fraction": self.valid_fraction,
                "test_days": self.test_days, "min_item_support": self.min_item_support}

    def build(self) -> _Built:
        return _from_srgnn_split(self.preprocess(), self.valid_fraction, self.max_length)

    def preprocess(self) -> SRGNNSplit:  # pragma: no cover - abstract
        raise NotImplementedError


class DigineticaRawDataset(_SRGNNRawDataset):
    r"""The raw Diginetica ``train-item-views.csv`` with SR-GNN's
    preprocessing (:func:`~gcsan_pyg.data.preprocess.preprocess_diginetica`).

    The valid split is the last :obj:`valid_fraction` of the (date-sorted)
    training sessions. :obj:`item_ids` maps internal ids to raw item ids.

    Args:
        root (str or PathLike): the cache folder.
        path (str or PathLike): the CSV file.
        split (str, optional): the split. (default: :obj:`"train"`)
        valid_fraction (float, optional): (default: :obj:`0.1`)
        max_length (int, optional): (default: :obj:`None`)
        test_days (float, optional): the test period. (default: :obj:`7`)
        min_item_support (int, optional): (default: :obj:`5`)
        **kwargs: :obj:`transform`, :obj:`force_reload`, :obj:`log`.
    """

    kind = "diginetica_raw"

    def __init__(
        self,
        root: PathLike,
        path: PathLike,
        split: str = "train",
        valid_fraction: float = 0.1,
        max_length: int | None = None,
        test_days: float = 7,
        min_item_support: int = 5,
        **kwargs: Any,
    ) -> None:
        super().__init__(root, path, split, valid_fraction, max_length, test_days,
                         min_item_support, **kwargs)

    def preprocess(self) -> SRGNNSplit:
        return preprocess_diginetica(self.path, self.test_days, self.min_item_support)


class YoochooseRawDataset(_SRGNNRawDataset):
    r"""The raw ``yoochoose-clicks.dat`` with SR-GNN's preprocessing
    (:func:`~gcsan_pyg.data.preprocess.preprocess_yoochoose`), keeping the
    most recent :obj:`1/fraction` of training (``yoochoose1_64``: 64).

    Args:
        root (str or PathLike): the cache folder.
        path (str or PathLike): the ``.dat`` file.
        split (str, optional): the split. (default: :obj:`"train"`)
        fraction (int, optional): (default: :obj:`64`)
        valid_fraction (float, optional): (default: :obj:`0.1`)
        max_length (int, optional): (default: :obj:`None`)
        test_days (float, optional): (default: :obj:`1`)
        min_item_support (int, optional): (default: :obj:`5`)
        **kwargs: :obj:`transform`, :obj:`force_reload`, :obj:`log`.
    """

    kind = "yoochoose_raw"

    def __init__(
        self,
        root: PathLike,
        path: PathLike,
        split: str = "train",
        fraction: int = 64,
        valid_fraction: float = 0.1,
        max_length: int | None = None,
        test_days: float = 1,
        min_item_support: int = 5,
        **kwargs: Any,
    ) -> None:
        self.fraction = int(fraction)
        super().__init__(root, path, split, valid_fraction, max_length, test_days,
                         min_item_support, **kwargs)

    def options(self) -> dict[str, Any]:
        return {**super().options(), "fraction": self.fraction}

    def preprocess(self) -> SRGNNSplit:
        return preprocess_yoochoose(self.path, self.fraction, self.test_days,
                                    self.min_item_support)


class ClickCSVDataset(SessionDataset):
    r"""A generic click log (CSV/TSV: session id, item id, timestamp; see
    :func:`~gcsan_pyg.data.readers.read_clicks`), preprocessed the SR-GNN
    way (:func:`~gcsan_pyg.data.preprocess.srgnn_pipeline`): sessions dated by
    their last click; drop length-1 sessions and items seen fewer than
    :obj:`min_item_support` times; the test split is the last
    :obj:`test_days` days, or else the most recent :obj:`test_fraction` of
    the sessions; ids from 1 by first appearance in training; test items
    unseen in training are dropped. The valid split is the last
    :obj:`valid_fraction` of the training sessions.

    Args:
        root (str or PathLike): the cache folder.
        path (str or PathLike): the CSV/TSV file.
        split (str, optional): the split. (default: :obj:`"train"`)
        session_col, item_col, time_col (str or int, optional): the columns
            (see :func:`~gcsan_pyg.data.readers.read_clicks`).
        delimiter (str, optional): the separator (sniffed when :obj:`None`).
        header (bool, optional): the file has a header. (default: :obj:`True`)
        test_days (float, optional): the test period in days.
        test_fraction (float, optional): used when :obj:`test_days` is
            :obj:`None`. (default: :obj:`0.2`)
        valid_fraction (float, optional): (default: :obj:`0.1`)
        min_item_support (int, optional): (default: :obj:`1`, no filter)
        max_length (int, optional): (default: :obj:`None`)
        **kwargs: :obj:`transform`, :obj:`force_reload`, :obj:`log`.
    """

    kind = "clicks"

    def __init__(
        self,
        root: PathLike,
        path: PathLike,
        split: str = "train",
        session_col: str | int | None = None,
        item_col: str | int | None = None,
        time_col: str | int | None = None,
        delimiter: str | None = None,
        header: bool = True,
        test_days: float | None = None,
        test_fraction: float = 0.2,
        valid_fraction: float = 0.1,
        min_item_support: int = 1,
        max_length: int | None = None,
        **kwargs: Any,
    ) -> None:
        _check_fraction("valid_fraction", valid_fraction)
        _check_fraction("test_fraction", test_fraction)
        self.path = Path(path)
        self.columns = (session_col, item_col, time_col)
        self.delimiter = delimiter
        self.header = header
        self.test_days = test_days
        self.test_fraction = float(test_fraction)
        self.valid_fraction = float(valid_fraction)
        self.min_item_support = min_item_support
        super().__init__(root, split, max_length, **kwargs)

    def source_files(self) -> list[Path]:
        return [self.path]

    def options(self) -> dict[str, Any]:
        return {**super().options(), "columns": list(self.columns),
                "delimiter": self.delimiter, "header": self.header,
                "test_days": self.test_days, "test_fraction": self.test_fraction,
                "valid_fraction": self.valid_fraction,
                "min_item_support": self.min_item_support}

    def build(self) -> _Built:
        s, i, t = self.columns
        raw = read_clicks(self.path, s, i, t, self.delimiter, self.header)
        clicks, dates = sessions_to_dicts(raw)
        result = srgnn_pipeline(
            clicks, dates,
            test_days=self.test_days,
            min_item_support=self.min_item_support,
            test_fraction=None if self.test_days is not None else self.test_fraction,
        )
        return _from_srgnn_split(result, self.valid_fraction, self.max_length)


class RecBoleInterDataset(SessionDataset):
    r"""A RecBole atomic ``.inter`` file as RecBole 1.2.1's sequential
    datasets build it (no filtering; ``eval_args``: ``split: {LS:
    valid_and_test}``, ``order: TO``), so that a model gives the metrics
    RecBole reports for it on the same file:

    * item ids :obj:`1, 2, ...` in order of first appearance in the file's
      rows, as RecBole numbers tokens (:func:`~gcsan_pyg.data.readers
      .read_inter_file`); :obj:`item_ids` maps them back;
    * per-user sequences sorted by float32 time, ties in row order;
    * every user's samples :obj:`(s[:i], s[i])` split leave-one-out
      (:func:`~gcsan_pyg.data.readers.leave_one_out`): the last target is
      test, the second to last valid, the earlier ones train;
    * with :obj:`max_length` (RecBole's ``MAX_ITEM_LIST_LENGTH``), a prefix
      keeps its most recent :obj:`max_length` items.

    Samples are stored user by user, users in order of first appearance
    (RecBole orders them by time; the metrics do not depend on it).

    Args:
        root (str or PathLike): the cache folder.
        path (str or PathLike): the ``.inter`` file.
        split (str, optional): the split. (default: :obj:`"train"`)
        user_field, item_field, time_field (str, optional): the header field
            names (RecBole's ``USER_ID_FIELD``, ``ITEM_ID_FIELD``,
            ``TIME_FIELD``). (default: :obj:`"user_id"`, :obj:`"item_id"`,
            :obj:`"timestamp"`)
        max_length (int, optional): (default: :obj:`None`)
        **kwargs: :obj:`transform`, :obj:`force_reload`, :obj:`log`.
    """

    kind = "recbole_inter"
    # Names the numbering and ordering rules in the cache fingerprint, so a
    # cache built under other rules (before RecBole's were followed) rebuilds.
    rules = "recbole-1.2.1"

    def __init__(
        self,
        root: PathLike,
        path: PathLike,
        split: str = "train",
        user_field: str = "user_id",
        item_field: str = "item_id",
        time_field: str | None = "timestamp",
        max_length: int | None = None,
        **kwargs: Any,
    ) -> None:
        self.path = Path(path)
        self.fields = (user_field, item_field, time_field)
        super().__init__(root, split, max_length, **kwargs)

    def source_files(self) -> list[Path]:
        return [self.path]

    def options(self) -> dict[str, Any]:
        return {**super().options(), "fields": list(self.fields), "rules": self.rules}

    def build(self) -> _Built:
        inter = read_inter_file(self.path, *self.fields)
        item_ids = [PAD_TOKEN, *inter.item_tokens]
        item_dict = {token: i for i, token in enumerate(item_ids) if i > 0}
        sequences = [[item_dict[item] for item in user.items] for user in inter.users]
        samples = leave_one_out(sequences)
        sessions: dict[str, list[list[int]]] = {s: [] for s in SPLITS}
        for seq in sequences:  # the clicks each split's samples draw on
            held = max(min(2, len(seq) - 2), 0)  # the user's valid + test targets
            if len(seq) - held > 1:
                sessions["train"].append(seq[: len(seq) - held])
            if held == 2:
                sessions["valid"].append(seq[:-1])
            if held >= 1:
                sessions["test"].append(seq)
        return _Built(
            splits={s: samples_to_arrays(samples[s], self.max_length) for s in SPLITS},
            sessions=sessions,
            num_items=len(item_ids),
            item_ids=item_ids,
        )


class SyntheticDataset(SessionDataset):
    r"""Sessions of :func:`~gcsan_pyg.data.synthetic.generate_synthetic_sessions`
    (no input files). The valid split is the last :obj:`valid_fraction` of
    the training sessions; all splits are prefix-augmented.
    :obj:`num_items` is :obj:`num_items + 1` of the generator.

    Args:
        root (str or PathLike): the cache folder.
        split (str, optional): the split. (default: :obj:`"train"`)
        valid_fraction (float, optional): (default: :obj:`0.1`)
        max_length (int, optional): (default: :obj:`None`)
        seed (int, optional): (default: :obj:`0`)
        generator_options (dict, optional): more keyword arguments of the
            generator (e.g. :obj:`num_items`, :obj:`num_train_sessions`).
        **kwargs: :obj:`transform`, :obj:`force_reload`, :obj:`log`.
    """

    kind = "synthetic"

    def __init__(
        self,
        root: PathLike,
        split: str = "train",
        valid_fraction: float = 0.1,
        max_length: int | None = None,
        seed: int = 0,
        generator_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        _check_fraction("valid_fraction", valid_fraction)
        self.valid_fraction = float(valid_fraction)
        self.seed = int(seed)
        self.generator_options = dict(generator_options or {})
        super().__init__(root, split, max_length, **kwargs)

    def options(self) -> dict[str, Any]:
        return {**super().options(), "valid_fraction": self.valid_fraction,
                "seed": self.seed, "generator": self.generator_options}

    def build(self) -> _Built:
        gen = generate_synthetic_sessions(seed=self.seed, **self.generator_options)
        train, valid = _split_valid(gen.train_sessions, self.valid_fraction)
        return _Built(
            splits={
                "train": augment_to_arrays(train, self.max_length),
                "valid": augment_to_arrays(valid, self.max_length),
                "test": augment_to_arrays(gen.test_sessions, self.max_length),
            },
            sessions={"train": train, "valid": valid, "test": gen.test_sessions},
            num_items=gen.num_items + 1,
        )


# ---------------------------------------------------------------------------
# Resolution by name or path
# ---------------------------------------------------------------------------


def _is_diginetica_header(path: Path) -> bool:
    with open(path, encoding="utf-8") as f:
        first = f.readline()
    names = [n.strip().lower().replace("_", "") for n in first.split(";")]
    return all(n in names for n in ("sessionid", "itemid", "timeframe", "eventdate"))


def resolve_dataset_class(name_or_path: PathLike) -> tuple[type[SessionDataset], Path | None]:
    r"""Which dataset class reads :obj:`name_or_path`, and from where.

    Args:
        name_or_path (str or PathLike): :obj:`"synthetic"`; a folder with
            ``train_sessions.txt`` and ``test.tsv`` (or one of these files);
            a raw Diginetica CSV (``;``-separated with a ``timeframe`` and
            ``eventdate`` header); a Yoochoose ``.dat``; a ``.inter`` file;
            another ``.csv``/``.tsv``/``.txt`` click log.

    Returns:
        :obj:`(cls, path)`; :obj:`path` is :obj:`None` for synthetic data.

    Raises:
        FileNotFoundError: when the path does not exist.
        ValueError: when the format is not recognised.
    """
    if os.fspath(name_or_path) == "synthetic":
        return SyntheticDataset, None
    path = Path(name_or_path)
    if not path.exists():
        raise FileNotFoundError(
            f"dataset {os.fspath(name_or_path)!r}: no such file or folder (or use 'synthetic')"
        )
    if path.is_dir():
        if (path / "train_sessions.txt").is_file() and (path / "test.tsv").is_file():
            return SRGNNTextDataset, path
        raise ValueError(
            f"folder {path} has no 'train_sessions.txt' + 'test.tsv' (SR-GNN text format)"
        )
    if path.name in ("train_sessions.txt", "test.tsv"):
        return SRGNNTextDataset, path.parent
    suffix = path.suffix.lower()
    if suffix == ".inter":
        return RecBoleInterDataset, path
    if suffix == ".dat":
        return YoochooseRawDataset, path
    if suffix in (".csv", ".tsv", ".txt"):
        if suffix == ".csv" and _is_diginetica_header(path):
            return DigineticaRawDataset, path
        return ClickCSVDataset, path
    raise ValueError(
        f"unrecognised dataset file {path} (expected .csv, .tsv, .txt, .dat, .inter, an SR-GNN "
        "text folder or 'synthetic')"
    )


def load_dataset(
    name_or_path: PathLike = "synthetic",
    root: PathLike = "data_cache",
    split: str = "train",
    **options: Any,
) -> SessionDataset:
    r"""Loads (processing once, then from the cache) one split of a dataset
    given by name or path (see :func:`resolve_dataset_class`).

    Args:
        name_or_path (str or PathLike, optional): the dataset.
            (default: :obj:`"synthetic"`)
        root (str or PathLike, optional): the cache folder.
            (default: :obj:`"data_cache"`)
        split (str, optional): :obj:`"train"`, :obj:`"valid"` or
            :obj:`"test"`. (default: :obj:`"train"`)
        **options: the options of the dataset class (e.g.
            :obj:`max_length`, :obj:`valid_fraction`).

    Returns:
        A :class:`SessionDataset`.
    """
    cls, path = resolve_dataset_class(name_or_path)
    if path is None:
        return cls(root, split=split, **options)
    return cls(root, path, split=split, **options)


__all__ = [
    "SPLITS",
    "SampleArrays",
    "augment_to_arrays",
    "samples_to_arrays",
    "collate_samples",
    "session_statistics",
    "dataset_statistics",
    "SessionDataset",
    "SRGNNTextDataset",
    "DigineticaRawDataset",
    "YoochooseRawDataset",
    "ClickCSVDataset",
    "RecBoleInterDataset",
    "SyntheticDataset",
    "resolve_dataset_class",
    "load_dataset",
]
