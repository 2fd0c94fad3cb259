"""``gcsan-pyg info``: the statistics of a dataset's splits."""
from __future__ import annotations

import argparse
import json

from gcsan_pyg.cli.data import dataset_options
from gcsan_pyg.cli.options import DATA_OPTIONS, DEFAULT_ROOT, SYNTHETIC_OPTIONS, add_options
from gcsan_pyg.data.dataset import SPLITS
from gcsan_pyg.datasets import load_dataset

# The columns of the table, from the statistics of a split.
COLUMNS = ("sessions", "clicks", "items", "samples", "avg_length", "avg_prefix_length")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``gcsan-pyg info``."""
    parser.description = (
        "Counts of a dataset's train, valid and test splits, as gcsan-pyg train splits it "
        "(same data options). The item count includes no padding id.")
    parser.add_argument("data", help="the data, as for gcsan-pyg train")
    parser.add_argument("--root", default=DEFAULT_ROOT,
                        help=f"processed-data cache (default: {DEFAULT_ROOT})")
    parser.add_argument("--json", action="store_true",
                        help="print JSON: num_items (the item table size, padding id 0 "
                             "included) and one object per split (default: off, a table)")
    add_options(parser, DATA_OPTIONS, "data")
    add_options(parser, SYNTHETIC_OPTIONS, "synthetic data")


def run(args: argparse.Namespace) -> int:
    options = dataset_options(args.data, vars(args))
    dataset = load_dataset(args.data, root=args.root, **options)
    stats = dataset.statistics()
    if args.json:
        print(json.dumps({"data": str(args.data), "dataset": type(dataset).__name__, **stats},
                         indent=2))
        return 0
    print(f"{args.data} ({type(dataset).__name__}): {stats['num_items'] - 1} items")
    widths = [max(len(c), 9) for c in COLUMNS]
    print("split  " + "  ".join(f"{c:>{w}}" for c, w in zip(COLUMNS, widths)))
    for split in SPLITS:
        cells = (stats[split].get(c, "") for c in COLUMNS)
        print(f"{split:<5}  " + "  ".join(f"{c:>{w}}" for c, w in zip(cells, widths)))
    return 0
