"""``gcsan-pyg evaluate``: the metrics of a checkpoint on one split of a dataset."""
from __future__ import annotations

import argparse
import json

import torch

from gcsan_pyg.cli.data import check_same_items, checkpoint_options
from gcsan_pyg.cli.options import (
    DEFAULT_ROOT,
    TRAIN_OPTIONS,
    add_progress_flags,
    add_threads,
    positive_int,
    show_progress,
)
from gcsan_pyg.cli.recbole import inter_fields
from gcsan_pyg.data.dataset import SPLITS
from gcsan_pyg.datasets import load_dataset
from gcsan_pyg.training import TrainConfig, Trainer, load_model
from gcsan_pyg.training.distributed import resolve_device


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``gcsan-pyg evaluate``."""
    parser.description = (
        "Hit, MRR and NDCG (percent) of a checkpoint on one split of a dataset, with the data "
        "options and session truncation the checkpoint was trained with. The data must number "
        "its items as the checkpoint does (checked).")
    parser.add_argument("checkpoint", help="a checkpoint of gcsan-pyg train or import-recbole")
    parser.add_argument("data", help="the data, as for gcsan-pyg train")
    parser.add_argument("--split", default="test", choices=SPLITS,
                        help="the split to evaluate (default: test)")
    parser.add_argument("--root", default=DEFAULT_ROOT,
                        help=f"processed-data cache (default: {DEFAULT_ROOT})")
    parser.add_argument("--batch-size", type=positive_int,
                        default=TRAIN_OPTIONS["eval_batch_size"].default,
                        help=TRAIN_OPTIONS["eval_batch_size"].help_text())
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... or auto "
                                                        "(default: cpu)")
    add_threads(parser)
    add_progress_flags(parser)
    parser.add_argument("--json", action="store_true",
                        help="print the metrics as JSON (default: off, a table)")


def run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    model, payload = load_model(args.checkpoint, map_location=device)
    recorded = payload.get("data") or {}
    options = {**checkpoint_options(args.data, recorded), **inter_fields(args.data, payload)}
    dataset = load_dataset(args.data, root=args.root, split=args.split, **options)
    check_same_items(args.data, dataset, payload.get("item_ids"), model.num_items)
    dataset.check_split(args.split)
    config = TrainConfig(eval_batch_size=args.batch_size, device=str(device),
                         progress=show_progress(args.quiet, args.progress),
                         max_length=recorded.get("max_length"))
    metrics = Trainer(model, config).evaluate(dataset.samples)
    if args.json:
        print(json.dumps({"checkpoint": str(args.checkpoint), "data": str(args.data),
                          "split": args.split, "samples": len(dataset.samples),
                          "metrics": metrics}, indent=2))
    else:
        print_metrics({f"GC-SAN ({args.split})": metrics})
    return 0


def print_metrics(rows: dict[str, dict[str, float]]) -> None:
    """A table of metrics: their names, then one row per label."""
    names = list(next(iter(rows.values())))
    width = max(len(r) for r in rows)
    print(" " * width + "  " + "  ".join(f"{n:>8}" for n in names))
    for label, metrics in rows.items():
        print(f"{label:<{width}}  " + "  ".join(f"{metrics[n]:8.2f}" for n in names))
