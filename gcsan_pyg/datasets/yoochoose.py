"""The raw Yoochoose click log (RecSys Challenge 2015), with SR-GNN's preprocessing."""
from __future__ import annotations

import os
from typing import Any

from gcsan_pyg.data.preprocess import SRGNNSplit, preprocess_yoochoose
from gcsan_pyg.datasets.srgnn_raw import SRGNNRawDataset


class YoochooseRawDataset(SRGNNRawDataset):
    r"""The raw ``yoochoose-clicks.dat`` with SR-GNN's preprocessing
    (:func:`~gcsan_pyg.data.preprocess.preprocess_yoochoose`), keeping the
    most recent :obj:`1/fraction` of training (``yoochoose1_64``: 64); see
    :class:`~gcsan_pyg.datasets.srgnn_raw.SRGNNRawDataset`.

    Args:
        root (str or PathLike): the cache folder.
        path (str or PathLike): the ``.dat`` file.
        split (str, optional): the split. (default: :obj:`"train"`)
        fraction (int, optional): (default: :obj:`64`)
        test_days (float, optional): (default: :obj:`1`)
        min_item_support (int, optional): (default: :obj:`5`)
        **kwargs: the options of :class:`~gcsan_pyg.data.SessionDataset`.
    """

    kind = "yoochoose_raw"

    def __init__(self, root: str | os.PathLike, path: str | os.PathLike, split: str = "train",
                 fraction: int = 64, test_days: float = 1, min_item_support: int = 5,
                 **kwargs: Any) -> None:
        self.fraction = int(fraction)
        super().__init__(root, path, split, test_days, min_item_support, **kwargs)

    def options(self) -> dict[str, Any]:
        return {**super().options(), "fraction": self.fraction}

    def preprocess(self) -> SRGNNSplit:
        return preprocess_yoochoose(self.path, self.fraction, self.test_days,
                                    self.min_item_support)
