"""Which dataset reads a name or a path, and loading one split of it."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from gcsan_pyg.data.dataset import SessionDataset
from gcsan_pyg.data.readers import normalize_name
from gcsan_pyg.datasets.click_log import ClickCSVDataset
from gcsan_pyg.datasets.diginetica import DigineticaRawDataset
from gcsan_pyg.datasets.recbole_inter import RecBoleInterDataset
from gcsan_pyg.datasets.srgnn_text import SRGNNTextDataset
from gcsan_pyg.datasets.synthetic import SyntheticDataset
from gcsan_pyg.datasets.yoochoose import YoochooseRawDataset

SRGNN_FILES = ("train_sessions.txt", "test.tsv")


def _is_diginetica_header(path: Path) -> bool:
    with open(path, encoding="utf-8-sig", errors="replace") as handle:
        names = [normalize_name(n) for n in handle.readline().split(";")]
    return all(n in names for n in ("sessionid", "itemid", "timeframe", "eventdate"))


def resolve_dataset_class(name_or_path: str | os.PathLike,
                          ) -> tuple[type[SessionDataset], Path | None]:
    r"""Which dataset class reads :obj:`name_or_path`, and from where.

    Args:
        name_or_path (str or PathLike): :obj:`"synthetic"`; a folder with
            ``train_sessions.txt`` and ``test.tsv``; a raw Diginetica CSV
            (``;``-separated with a ``timeframe`` and ``eventdate`` header);
            a Yoochoose ``.dat``; a ``.inter`` file; another
            ``.csv``/``.tsv``/``.txt`` click log.

    Returns:
        :obj:`(cls, path)`; :obj:`path` is :obj:`None` for synthetic data.

    Raises:
        FileNotFoundError: when the path does not exist.
        ValueError: when the format is not recognised, or :obj:`path` is one
            file of an SR-GNN folder (the folder is the data set: give it).
    """
    if os.fspath(name_or_path) == "synthetic":
        return SyntheticDataset, None
    path = Path(name_or_path)
    if not path.exists():
        raise FileNotFoundError(
            f"dataset {os.fspath(name_or_path)!r}: no such file or folder (or use 'synthetic')"
        )
    if path.is_dir():
        if all((path / name).is_file() for name in SRGNN_FILES):
            return SRGNNTextDataset, path
        raise ValueError(f"folder {path} has no 'train_sessions.txt' + 'test.tsv' "
                         "(SR-GNN text format)")
    if path.name in SRGNN_FILES:
        raise ValueError(f"{path} is one file of an SR-GNN data set, which takes both "
                         f"{SRGNN_FILES[0]} and {SRGNN_FILES[1]}: give the folder {path.parent}")
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
    name_or_path: str | os.PathLike = "synthetic",
    root: str | os.PathLike = "data_cache",
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
            :obj:`valid_fraction`, :obj:`min_prefix_length`).

    Returns:
        A :class:`~gcsan_pyg.data.SessionDataset`.
    """
    cls, path = resolve_dataset_class(name_or_path)
    if path is None:
        return cls(root, split=split, **options)
    return cls(root, path, split=split, **options)
