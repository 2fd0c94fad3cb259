"""The raw Diginetica click log (CIKM Cup 2016), with SR-GNN's preprocessing."""
from __future__ import annotations

import os
from typing import Any

from gcsan_pyg.data.preprocess import SRGNNSplit, preprocess_diginetica
from gcsan_pyg.datasets.srgnn_raw import SRGNNRawDataset


class DigineticaRawDataset(SRGNNRawDataset):
    r"""The raw Diginetica ``train-item-views.csv`` with SR-GNN's
    preprocessing (:func:`~gcsan_pyg.data.preprocess.preprocess_diginetica`);
    see :class:`~gcsan_pyg.datasets.srgnn_raw.SRGNNRawDataset`.

    Args:
        root (str or PathLike): the cache folder.
        path (str or PathLike): the CSV file.
        split (str, optional): the split. (default: :obj:`"train"`)
        test_days (float, optional): the test period. (default: :obj:`7`)
        min_item_support (int, optional): (default: :obj:`5`)
        **kwargs: the options of :class:`~gcsan_pyg.data.SessionDataset`.
    """

    kind = "diginetica_raw"

    def __init__(self, root: str | os.PathLike, path: str | os.PathLike, split: str = "train",
                 test_days: float = 7, min_item_support: int = 5, **kwargs: Any) -> None:
        super().__init__(root, path, split, test_days, min_item_support, **kwargs)

    def preprocess(self) -> SRGNNSplit:
        return preprocess_diginetica(self.path, self.test_days, self.min_item_support)
