"""Loading the data of a command: its dataset options, its splits, and the
check that data and checkpoint number items alike."""
from __future__ import annotations

import logging
from typing import Any

import torch

from gcsan_pyg.cli.options import DATA_OPTIONS, SYNTHETIC_OPTIONS, UsageError
from gcsan_pyg.data import SessionDataset
from gcsan_pyg.data.dataset import SPLITS
from gcsan_pyg.datasets import (
    RecBoleInterDataset,
    SyntheticDataset,
    load_dataset,
    resolve_dataset_class,
)
from gcsan_pyg.training import distributed

log = logging.getLogger("gcsan_pyg")


def dataset_options(data: str, values: dict[str, Any]) -> dict[str, Any]:
    r"""The options of :obj:`data`'s dataset class among :obj:`values`
    (:data:`~gcsan_pyg.cli.options.DATA_OPTIONS`, and the synthetic
    generator's as :obj:`generator_options`), checked against that class
    before anything is read.

    Raises:
        UsageError: an option that does not apply to :obj:`data`.
        ValueError, FileNotFoundError: :obj:`data` is no dataset (see
            :func:`~gcsan_pyg.datasets.resolve_dataset_class`).
    """
    cls, _ = resolve_dataset_class(data)
    options = {k: values[k] for k in DATA_OPTIONS if values.get(k) is not None}
    generator = {k: values[k] for k in SYNTHETIC_OPTIONS if values.get(k) is not None}
    if generator and cls is not SyntheticDataset:
        flags = ", ".join(SYNTHETIC_OPTIONS[k].flag for k in generator)
        raise UsageError(f"only synthetic data takes {flags}, not {data} ({cls.__name__})")
    if generator:
        options["generator_options"] = generator
    if "valid_fraction" in options and issubclass(cls, RecBoleInterDataset):
        raise UsageError(f"--valid-fraction does not apply to {data}: a .inter file is split "
                         "by RecBole's leave-one-out (the last click of each user is test, "
                         "the one before valid)")
    return options


def checkpoint_options(data: str, recorded: dict[str, Any]) -> dict[str, Any]:
    r"""The dataset options a checkpoint recorded (its ``data`` entry, less
    ``source`` and ``max_length``) that apply to :obj:`data`: the generator's
    to synthetic data, the validation share to data without a fixed split."""
    cls, _ = resolve_dataset_class(data)
    options = {k: v for k, v in recorded.items() if k not in ("source", "max_length")}
    if cls is not SyntheticDataset:
        options.pop("generator_options", None)
    if issubclass(cls, RecBoleInterDataset):
        options.pop("valid_fraction", None)
    return options


def load_splits(data: str, root: str, options: dict[str, Any]) -> dict[str, SessionDataset]:
    """The train, valid and test splits of :obj:`data` (processed once into
    :obj:`root`, then read from there)."""
    return {split: load_dataset(data, root=root, split=split, **options) for split in SPLITS}


def load_splits_rank0_first(data: str, root: str,
                            options: dict[str, Any]) -> dict[str, SessionDataset]:
    """:func:`load_splits` under ``torchrun``: rank 0 builds the processed-data
    cache, then the others read it. A data error of rank 0 is sent to every
    rank, so that all stop with it at once instead of waiting for rank 0 in
    a collective."""
    error: Exception | None = None
    splits = None
    if distributed.current().is_main:
        try:
            splits = load_splits(data, root, options)
        except (UsageError, ValueError, FileNotFoundError) as caught:
            error = caught
    error = distributed.broadcast_object(error)
    if error is not None:
        raise error
    return splits if splits is not None else load_splits(data, root, options)


def check_splits(splits: dict[str, SessionDataset], needed: tuple[str, ...],
                 ks: tuple[int, ...]) -> None:
    """Refuses, right after loading and before any training, a needed split
    without samples (naming its file and why it is empty) and cut-offs
    :obj:`ks` beyond the catalogue.

    Raises:
        UsageError, DataFormatError: the first problem.
    """
    train = splits["train"]
    for split in needed:
        train.check_split(split)  # every split's dataset holds all three splits
    ranked = train.num_items - 1
    too_large = [k for k in ks if k > ranked]
    if too_large:
        raise UsageError(f"--ks {','.join(map(str, too_large))}: a cut-off cannot exceed the "
                         f"{ranked} items of {train.split_source('train')}")


def warn_sparse_ids(dataset: SessionDataset) -> None:
    """Logs a warning when the item ids of already-numbered data leave most
    rows of the item table unused (ids size the table: largest id + 1)."""
    if dataset.item_ids is not None:  # renumbered densely when read
        return
    used = torch.cat([part.items for part in dataset.splits.values()]).unique().numel()
    unused = dataset.num_items - 1 - used
    if unused > 10 * used and unused > 100_000:
        log.warning("the item ids of %s are sparse: %d distinct items, the largest id %d, so "
                    "%d rows of the item table are never used; number them densely from 1",
                    dataset.split_source("train"), used, dataset.num_items - 1, unused)


def check_same_items(data: str, dataset: SessionDataset, trained: list[str] | None,
                     num_items: int) -> None:
    """Refuses data whose item ids are not the checkpoint's: the id maps must
    be equal where the checkpoint has one, else the item counts.

    Raises:
        UsageError: naming the first difference.
    """
    ids = dataset.item_ids
    if trained is None:  # already-numbered ids, or a RecBole import without --inter
        if dataset.num_items != num_items:
            raise UsageError(
                f"{data} has {dataset.num_items - 1} items, the model {num_items - 1}: not the "
                "data it was trained on"
            )
        return
    if ids is None:
        raise UsageError(f"the checkpoint maps raw item ids, {data} holds already-numbered "
                         "ones: not the data it was trained on")
    if ids != trained:
        first = next((i for i, pair in enumerate(zip(trained, ids)) if pair[0] != pair[1]),
                     min(len(ids), len(trained)))
        ours, theirs = (repr(m[first]) if first < len(m) else "nothing" for m in (trained, ids))
        raise UsageError(
            f"the item ids of {data} differ from the checkpoint's ({len(ids) - 1} items, the "
            f"checkpoint {len(trained) - 1}); first at id {first}: {ours} in the checkpoint, "
            f"{theirs} in {data}: not the data it was trained on"
        )
