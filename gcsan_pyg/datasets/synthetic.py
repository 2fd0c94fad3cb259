"""The built-in synthetic session data set."""
from __future__ import annotations

import os
from typing import Any

from gcsan_pyg.data.dataset import ProcessedSessions, SessionDataset, SessionSplit
from gcsan_pyg.data.synthetic import generate_synthetic_sessions


class SyntheticDataset(SessionDataset):
    r"""Sessions of :func:`~gcsan_pyg.data.synthetic.generate_synthetic_sessions`
    (no input files): training and test sessions with SR-GNN's prefix
    augmentation, the last :obj:`valid_fraction` of the training sessions
    held out for validation. :obj:`num_items` is the generator's
    :obj:`num_items + 1` (ids from 1, 0 the padding).

    Args:
        root (str or PathLike): the cache folder.
        split (str, optional): the split. (default: :obj:`"train"`)
        seed (int, optional): the generator's seed. (default: :obj:`0`)
        generator_options (dict, optional): more keyword arguments of the
            generator (e.g. :obj:`num_items`, :obj:`num_train_sessions`).
        **kwargs: the options of :class:`~gcsan_pyg.data.SessionDataset`.
    """

    kind = "synthetic"

    def __init__(self, root: str | os.PathLike, split: str = "train", seed: int = 0,
                 generator_options: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self.seed = int(seed)
        self.generator_options = dict(generator_options or {})
        super().__init__(root, split, **kwargs)

    def options(self) -> dict[str, Any]:
        return {"seed": self.seed, "generator": self.generator_options}

    def build(self) -> ProcessedSessions:
        generated = generate_synthetic_sessions(seed=self.seed, **self.generator_options)
        return ProcessedSessions(
            {"train": SessionSplit.from_sessions(generated.train_items, generated.train_ptr),
             "test": SessionSplit.from_sessions(generated.test_items, generated.test_ptr)},
            num_items=generated.num_items + 1,
        )
