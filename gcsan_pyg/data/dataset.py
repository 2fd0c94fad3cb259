"""The base of the session datasets: flat sessions and samples, cached once.

A dataset processes its input files once into one cached file under
``root/processed``: for every split, the sessions' clicks (flat, with
offsets) and its samples as windows over them (see
:class:`~gcsan_pyg.data.SessionSamples`). Which sessions are held out for
validation and how short a training prefix may be are chosen when the cache
is read, so the cache does not depend on them and each input is processed
once. The file name carries a fingerprint of the processing options and of
the input files (path, size, mtime): a change of either reprocesses. The
file is written atomically.

Item :obj:`i` of a dataset is a :class:`~gcsan_pyg.data.SessionData` graph
of sample :obj:`i` (:func:`~gcsan_pyg.data.session_to_graph` of its prefix,
its next item as :obj:`y`), for PyG's :class:`~torch_geometric.loader.DataLoader`;
training reads :attr:`SessionDataset.samples` directly.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch_geometric.data import Dataset

from gcsan_pyg.data.readers.lines import DataFormatError
from gcsan_pyg.data.samples import SessionSamples, offsets, session_statistics, sessions_of
from gcsan_pyg.data.session_graph import SessionData, session_to_graph
from gcsan_pyg.io import atomic_torch_save

SPLITS = ("train", "valid", "test")
#: Bumped whenever the processed layout or the processing changes.
FORMAT_VERSION = 3  # 3: flat sessions and sample windows, one file for all splits


@dataclass
class SessionSplit:
    r"""The sessions of one split and the samples drawn from them.

    Attributes:
        items (LongTensor): the sessions' clicks, concatenated.
        session_ptr (LongTensor): session :math:`k` is
            :obj:`items[session_ptr[k]:session_ptr[k + 1]]`.
        samples (SessionSamples): windows over :obj:`items`.
    """

    items: Tensor
    session_ptr: Tensor
    samples: SessionSamples

    @classmethod
    def from_sessions(cls, items: Tensor, session_ptr: Tensor) -> SessionSplit:
        """Sessions with SR-GNN's prefix augmentation (every prefix)."""
        return cls(items, session_ptr, SessionSamples.from_sessions(items, session_ptr))

    @classmethod
    def from_samples(cls, samples: SessionSamples) -> SessionSplit:
        """Samples read as such (SR-GNN's ``test.tsv``), regrouped into the
        sessions they were cut from (see :func:`~gcsan_pyg.data.samples.sessions_of`)
        and stored as windows over them."""
        items, session_ptr, group = sessions_of(samples)
        windows = SessionSamples(items, session_ptr[group], samples.length, samples.target)
        return cls(items, session_ptr, windows)

    @classmethod
    def from_lists(cls, sessions: list[list[int]]) -> SessionSplit:
        """Python lists of sessions, with every prefix as a sample."""
        items = torch.tensor([i for s in sessions for i in s], dtype=torch.long)
        return cls.from_sessions(items, offsets(torch.tensor([len(s) for s in sessions],
                                                             dtype=torch.long)))

    def state(self) -> dict[str, Tensor]:
        s = self.samples
        return {"items": self.items, "session_ptr": self.session_ptr, "start": s.start,
                "length": s.length, "target": s.target}

    @classmethod
    def from_state(cls, state: dict[str, Tensor]) -> SessionSplit:
        samples = SessionSamples(state["items"], state["start"], state["length"], state["target"])
        return cls(state["items"], state["session_ptr"], samples)

    def hold_out(self, fraction: float) -> tuple[SessionSplit, SessionSplit]:
        """The first sessions and the last :obj:`fraction` of them (rounded
        down), each with its samples."""
        num_sessions = self.session_ptr.numel() - 1
        cut = num_sessions - int(num_sessions * fraction)
        boundary = self.session_ptr[cut]
        later = self.samples.start >= boundary
        return (SessionSplit(self.items, self.session_ptr[: cut + 1], self.samples.select(~later)),
                SessionSplit(self.items, self.session_ptr[cut:], self.samples.select(later)))

    def with_min_prefix_length(self, min_prefix_length: int) -> SessionSplit:
        """The same sessions, with only the samples of prefix length
        :math:`\\geq` :obj:`min_prefix_length`."""
        if min_prefix_length <= 1:
            return self
        keep = self.samples.length >= min_prefix_length
        return SessionSplit(self.items, self.session_ptr, self.samples.select(keep))

    def statistics(self) -> dict[str, Any]:
        """See :func:`~gcsan_pyg.data.samples.session_statistics`."""
        return session_statistics(self.items, self.session_ptr, self.samples)


@dataclass
class ProcessedSessions:
    r"""What a dataset's :meth:`SessionDataset.build` returns.

    Attributes:
        splits (dict): :obj:`"train"` and :obj:`"test"` :class:`SessionSplit`
            (and :obj:`"valid"` where the data fixes one; otherwise the
            dataset holds the last :obj:`valid_fraction` of the training
            sessions out).
        num_items (int): the item table size (max id + 1, padding 0 included).
        item_ids (list of str, optional): the raw id of every internal id
            (index 0 is :obj:`"[PAD]"`), for inputs with their own ids.
        summary (str, optional): what preprocessing kept and dropped, in
            words, for the error about a split that came out empty.
    """

    splits: dict[str, SessionSplit]
    num_items: int
    item_ids: list[str] | None = None
    summary: str | None = None


class SessionDataset(Dataset):
    r"""Base class of the session datasets (see the module doc). Subclasses
    set :attr:`kind` and implement :meth:`source_files`, :meth:`options` (the
    processing options) and :meth:`build`.

    Args:
        root (str or PathLike): the cache folder (``root/processed``).
        split (str, optional): :obj:`"train"`, :obj:`"valid"` or
            :obj:`"test"`. (default: :obj:`"train"`)
        valid_fraction (float, optional): the share of the training sessions
            (the most recent ones, last in the file) held out for
            validation, rounded down; :obj:`None` where the data fixes the
            valid split. (default: :obj:`0.1`)
        min_prefix_length (int, optional): training and validation samples
            keep only prefixes of at least this length (test stays as
            given). (default: :obj:`1`, SR-GNN's augmentation)
        max_length (int, optional): :obj:`dataset[i]` keeps the most recent
            :obj:`max_length` clicks of a longer prefix (training batches
            truncate with the trainer's own option). (default: :obj:`None`)
        transform (callable, optional): a PyG transform applied on access.
        force_reload (bool, optional): process again even if cached.
        log (bool, optional): print processing messages. (default: :obj:`False`)

    Attributes:
        samples (SessionSamples): the samples of the split.
        num_items (int): the item table size, padding id 0 included.
        item_ids (list of str, optional): raw ids, for inputs that have them.
    """

    kind = "session"

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        valid_fraction: float | None = 0.1,
        min_prefix_length: int = 1,
        max_length: int | None = None,
        transform: Any = None,
        force_reload: bool = False,
        log: bool = False,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"'split' must be one of {SPLITS}, got {split!r}")
        if valid_fraction is not None and not 0.0 <= valid_fraction < 1.0:
            raise ValueError(f"'valid_fraction' must be in [0, 1), got {valid_fraction}")
        if not isinstance(min_prefix_length, int) or min_prefix_length < 1:
            raise ValueError(f"'min_prefix_length' must be a positive int, got "
                             f"{min_prefix_length!r}")
        if max_length is not None and (not isinstance(max_length, int) or max_length < 1):
            raise ValueError(f"'max_length' must be a positive int or None, got {max_length!r}")
        self.split = split
        self.valid_fraction = valid_fraction
        self.min_prefix_length = min_prefix_length
        self.max_length = max_length
        for path in self.source_files():
            if not Path(path).is_file():
                raise FileNotFoundError(f"{type(self).__name__}: input file not found: {path}")
        self.fingerprint = self._fingerprint()
        super().__init__(os.fspath(root), transform, log=log, force_reload=force_reload)
        stored = torch.load(self.processed_paths[0], weights_only=True)
        self.num_items: int = int(stored["num_items"])
        self.item_ids: list[str] | None = stored["item_ids"]
        self.summary: str | None = stored.get("summary")  # caches before it lack it
        self.held_out_valid = "valid" not in stored["splits"]
        self.splits = self._splits({k: SessionSplit.from_state(v)
                                    for k, v in stored["splits"].items()})
        self.samples = self.splits[split].samples

    # -- to implement ------------------------------------------------------
    def source_files(self) -> list[Path]:
        """The input files (their path, size and mtime enter the fingerprint)."""
        return []

    def options(self) -> dict[str, Any]:
        """The options that change the processed output."""
        return {}

    def build(self) -> ProcessedSessions:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- the cache ---------------------------------------------------------
    def _fingerprint(self) -> str:
        files = []
        for path in self.source_files():
            stat = os.stat(path)
            files.append([os.path.abspath(path), stat.st_size, stat.st_mtime_ns])
        blob = json.dumps({"format": FORMAT_VERSION, "kind": self.kind,
                           "options": self.options(), "files": files}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @property
    def raw_dir(self) -> str:  # the inputs are read where they are
        return ""

    @property
    def raw_file_names(self) -> list[str]:
        return [os.fspath(path) for path in self.source_files()]

    @property
    def processed_file_names(self) -> list[str]:
        return [f"{self.kind}-{self.fingerprint}.pt"]

    def download(self) -> None:
        # Nothing to fetch: input files are checked in __init__, and PyG calls
        # this for a dataset without any (synthetic data).
        pass

    def process(self) -> None:
        built = self.build()
        if "train" not in built.splits or "test" not in built.splits:
            raise ValueError(f"{type(self).__name__}.build() must give 'train' and 'test'")
        atomic_torch_save({
            "format": FORMAT_VERSION,
            "kind": self.kind,
            "options": self.options(),
            "num_items": int(built.num_items),
            "item_ids": built.item_ids,
            "summary": built.summary,
            "splits": {name: split.state() for name, split in built.splits.items()},
        }, self.processed_paths[0])

    def _splits(self, stored: dict[str, SessionSplit]) -> dict[str, SessionSplit]:
        splits = dict(stored)
        if "valid" not in splits:
            if self.valid_fraction is None:
                raise ValueError(f"{type(self).__name__} needs a 'valid_fraction'")
            splits["train"], splits["valid"] = splits["train"].hold_out(self.valid_fraction)
        for name in ("train", "valid"):
            splits[name] = splits[name].with_min_prefix_length(self.min_prefix_length)
        return splits

    def split_source(self, split: str) -> str:
        """The input file that :obj:`split` comes from, for messages."""
        files = self.source_files()
        return ", ".join(os.fspath(f) for f in files) if files else f"{self.kind} data"

    def check_split(self, split: str) -> None:
        r"""Raises :class:`~gcsan_pyg.data.DataFormatError` naming the input
        file and the reason when :obj:`split` holds no sample: a whole
        epoch of training must not come before that error."""
        if len(self.splits[split].samples):
            return
        raise DataFormatError(self.split_source(split), None,
                              f"the {split} split holds no sample: {self._empty_reason(split)}")

    def _empty_reason(self, split: str) -> str:
        part = self.splits[split]
        num_sessions = part.session_ptr.numel() - 1
        if split == "valid" and self.held_out_valid:
            num_train = self.splits["train"].session_ptr.numel() - 1
            if num_sessions == 0:
                return (f"valid_fraction={self.valid_fraction} of the {num_train} training "
                        "sessions holds none out (give a larger fraction, or 0 to train "
                        "without validation)")
        if num_sessions == 0:
            if self.summary:
                return f"no {split} session is left after preprocessing ({self.summary})"
            return "the file holds no data line"
        lengths = part.session_ptr[1:] - part.session_ptr[:-1]
        if int(lengths.max()) < 2:
            return (f"its {num_sessions} session(s) all have one click (a sample needs a "
                    "prefix and a next item)")
        return (f"no prefix of its {num_sessions} session(s) is at least "
                f"min_prefix_length={self.min_prefix_length} long")

    # -- access ------------------------------------------------------------
    def len(self) -> int:
        return len(self.samples)

    def get(self, idx: int) -> SessionData:
        index = torch.tensor([idx])
        clicks, _ = self.samples.clicks(index, self.max_length)
        return session_to_graph(clicks, int(self.samples.target[idx]))

    def statistics(self) -> dict[str, Any]:
        r"""The item table size and, for every split, the counts of
        :meth:`SessionSplit.statistics`."""
        out: dict[str, Any] = {"num_items": self.num_items}
        out.update({name: self.splits[name].statistics() for name in SPLITS})
        return out

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({len(self)}, split={self.split!r}, "
                f"num_items={self.num_items})")
