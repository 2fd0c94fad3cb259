"""The shared part of the raw click logs that SR-GNN's preprocessing reads."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from gcsan_pyg.data.dataset import ProcessedSessions, SessionDataset, SessionSplit
from gcsan_pyg.data.preprocess import SRGNNSplit


class SRGNNRawDataset(SessionDataset):
    r"""A raw click log preprocessed as SR-GNN does (see
    :mod:`gcsan_pyg.data.preprocess`): training sessions with prefix
    augmentation, the last :obj:`valid_fraction` of them (by date) held out
    for validation, test sessions of the last :obj:`test_days` days, item
    ids remapped (:obj:`item_ids` maps them back). Subclasses implement
    :meth:`preprocess`.

    Args:
        root (str or PathLike): the cache folder.
        path (str or PathLike): the raw file.
        split (str, optional): the split. (default: :obj:`"train"`)
        test_days (float, optional): the test period in days (a subclass may
            date its test split otherwise when :obj:`None`).
        min_item_support (int): items clicked fewer times are dropped.
        **kwargs: the options of :class:`~gcsan_pyg.data.SessionDataset`.
    """

    def __init__(self, root: str | os.PathLike, path: str | os.PathLike, split: str,
                 test_days: float | None, min_item_support: int, **kwargs: Any) -> None:
        self.path = Path(path)
        self.test_days = test_days
        self.min_item_support = min_item_support
        super().__init__(root, split, **kwargs)

    def source_files(self) -> list[Path]:
        return [self.path]

    def options(self) -> dict[str, Any]:
        return {"test_days": self.test_days, "min_item_support": self.min_item_support}

    def build(self) -> ProcessedSessions:
        result = self.preprocess()
        return ProcessedSessions(
            {"train": SessionSplit.from_lists(result.train_sessions),
             "test": SessionSplit.from_lists(result.test_sessions)},
            num_items=result.num_items,
            item_ids=result.item_ids,
            summary=result.summary(),
        )

    def preprocess(self) -> SRGNNSplit:  # pragma: no cover - abstract
        raise NotImplementedError
