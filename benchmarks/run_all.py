"""Runs every benchmark in one process, then the plots and the Markdown tables.

    python benchmarks/run_all.py --quick --out /tmp/bench   # smoke test, seconds
    python benchmarks/run_all.py --threads 2                # the full runs (minutes)
    python benchmarks/run_all.py --threads 2 --with-epoch   # plus bench_epoch (capped)

The epoch benchmark runs with ``--quick`` (tiny cap) or ``--with-epoch``
(its default cap; add ``--epoch-args=--full`` for a whole epoch). The
accuracy runs (``accuracy.py``, ``sampled_accuracy.py``) are separate: they
take hours.
"""
from __future__ import annotations

import argparse
import importlib
import shlex
import sys
import time
from pathlib import Path

import _common as C

BENCHMARKS = ["bench_graph_construction", "bench_train_step", "bench_inference",
              "bench_memory", "bench_profile", "bench_item_table", "bench_data_cache"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=C.RESULTS_DIR)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--only", nargs="+", default=None, help="a subset of " + str(BENCHMARKS))
    parser.add_argument("--with-epoch", action="store_true")
    parser.add_argument("--epoch-args", default="", help="extra arguments of bench_epoch")
    parser.add_argument("--no-plots", action="store_true")
    args = parser.parse_args(argv)

    common = ["--out", str(args.out)]
    if args.quick:
        common.append("--quick")
    if args.threads is not None:
        common += ["--threads", str(args.threads)]
    if args.data_dir is not None:
        common += ["--data-dir", str(args.data_dir)]
    names = list(args.only or BENCHMARKS)
    if (args.quick or args.with_epoch) and "bench_epoch" not in names and not args.only:
        names.append("bench_epoch")

    timings = {}
    for name in names:
        extra = shlex.split(args.epoch_args) if name == "bench_epoch" else []
        if name == "bench_data_cache" and args.quick:
            extra = ["--baseline", ""]  # no worktree of an earlier revision in a smoke test
        print(f"\n=== {name} {' '.join(common + extra)}", flush=True)
        start = time.perf_counter()
        importlib.import_module(name).main(common + extra)
        timings[name] = time.perf_counter() - start
    if not args.no_plots:
        importlib.import_module("plot").main(["--results", str(args.out)])
    importlib.import_module("make_tables").main(["--results", str(args.out)])
    print("\n" + "\n".join(f"{k}: {v:.1f} s" for k, v in timings.items()), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
