"""SR-GNN's preprocessed text: ``train_sessions.txt`` and ``test.tsv``."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from gcsan_pyg.data.dataset import ProcessedSessions, SessionDataset, SessionSplit
from gcsan_pyg.data.readers import read_samples, read_sessions


class SRGNNTextDataset(SessionDataset):
    r"""SR-GNN preprocessed text: a folder with ``train_sessions.txt`` (one
    session per line, comma-separated item ids from 1) and ``test.tsv``
    (``prefix<TAB>label``), the format of the copies of Diginetica, Yoochoose
    1/64, Tmall, Nowplaying and Retailrocket that papers use.

    Training sessions get SR-GNN's prefix augmentation; the last
    :obj:`valid_fraction` of them (file order, rounded down) are held out for
    validation. The test split is ``test.tsv`` as it is (its samples are
    grouped back into the sessions they were cut from, for statistics).
    :obj:`num_items` is the largest id of train and test plus one.

    Args:
        root (str or PathLike): the cache folder.
        path (str or PathLike): the folder with the two files.
        split (str, optional): :obj:`"train"`, :obj:`"valid"` or
            :obj:`"test"`. (default: :obj:`"train"`)
        **kwargs: :obj:`valid_fraction`, :obj:`min_prefix_length`,
            :obj:`max_length`, :obj:`transform`, :obj:`force_reload`,
            :obj:`log` of :class:`~gcsan_pyg.data.SessionDataset`.
    """

    kind = "srgnn_text"

    def __init__(self, root: str | os.PathLike, path: str | os.PathLike,
                 split: str = "train", **kwargs: Any) -> None:
        self.path = Path(path)
        super().__init__(root, split, **kwargs)

    def source_files(self) -> list[Path]:
        return [self.path / "train_sessions.txt", self.path / "test.tsv"]

    def split_source(self, split: str) -> str:
        train_file, test_file = self.source_files()
        return str(test_file if split == "test" else train_file)

    def build(self) -> ProcessedSessions:
        train_file, test_file = self.source_files()
        train = SessionSplit.from_lists(read_sessions(train_file))
        test = SessionSplit.from_samples(read_samples(test_file))
        largest = max(int(split.items.max()) if split.items.numel() else 0
                      for split in (train, test))
        return ProcessedSessions({"train": train, "test": test}, num_items=largest + 1)
