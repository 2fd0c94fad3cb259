"""A generic click log (CSV/TSV of session id, item id, time), preprocessed the SR-GNN way."""
from __future__ import annotations

import os
from typing import Any

from gcsan_pyg.data.preprocess import SRGNNSplit, sessions_to_dicts, srgnn_pipeline
from gcsan_pyg.data.readers import read_clicks
from gcsan_pyg.datasets.srgnn_raw import SRGNNRawDataset


class ClickCSVDataset(SRGNNRawDataset):
    r"""A generic click log (CSV/TSV: session id, item id, timestamp; see
    :func:`~gcsan_pyg.data.readers.read_clicks`), preprocessed the SR-GNN
    way (:func:`~gcsan_pyg.data.preprocess.srgnn_pipeline`): sessions dated
    by their last click; length-1 sessions and items seen fewer than
    :obj:`min_item_support` times dropped; the test split is the last
    :obj:`test_days` days, or else the most recent :obj:`test_fraction` of
    the sessions; ids from 1 by first appearance in training
    (:obj:`item_ids` maps them back); test items unseen in training
    dropped. The last :obj:`valid_fraction` of the training sessions are
    held out for validation.

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
        min_item_support (int, optional): (default: :obj:`1`, no filter)
        **kwargs: the options of :class:`~gcsan_pyg.data.SessionDataset`.
    """

    kind = "clicks"

    def __init__(
        self,
        root: str | os.PathLike,
        path: str | os.PathLike,
        split: str = "train",
        session_col: str | int | None = None,
        item_col: str | int | None = None,
        time_col: str | int | None = None,
        delimiter: str | None = None,
        header: bool = True,
        test_days: float | None = None,
        test_fraction: float = 0.2,
        min_item_support: int = 1,
        **kwargs: Any,
    ) -> None:
        if not 0.0 <= test_fraction < 1.0:
            raise ValueError(f"'test_fraction' must be in [0, 1), got {test_fraction}")
        self.columns = (session_col, item_col, time_col)
        self.delimiter = delimiter
        self.header = header
        self.test_fraction = float(test_fraction)
        super().__init__(root, path, split, test_days, min_item_support, **kwargs)

    def options(self) -> dict[str, Any]:
        return {**super().options(), "columns": list(self.columns),
                "delimiter": self.delimiter, "header": self.header,
                "test_fraction": self.test_fraction}

    def preprocess(self) -> SRGNNSplit:
        raw = read_clicks(self.path, *self.columns, self.delimiter, self.header)
        clicks, dates = sessions_to_dicts(raw)
        return srgnn_pipeline(
            clicks, dates,
            test_days=self.test_days,
            min_item_support=self.min_item_support,
            test_fraction=None if self.test_days is not None else self.test_fraction,
        )
