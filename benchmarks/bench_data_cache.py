"""Size and build time of the processed-data cache of the real SR-GNN data
sets, for this code and, side by side, for an earlier revision of it.

    python benchmarks/bench_data_cache.py [--baseline REV] [--datasets NAME ...]

The earlier revision runs from a temporary git worktree, in a subprocess of
this interpreter, with its own ``load_dataset`` (all three splits, default
options); this code loads the three splits with two validation fractions,
to show that they share one cached file.
"""
from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as C

NAME = "data_cache"
DATASETS = ["diginetica", "yoochoose1_64", "tmall"]
# The commit before the cache held flat clicks (one file per split, graphs).
DEFAULT_BASELINE = "3410302"

_LOAD = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
try:
    from gcsan_pyg.datasets import load_dataset
except ImportError:  # revisions before the datasets package
    from gcsan_pyg.data.datasets import load_dataset
data, root, fractions = sys.argv[2], Path(sys.argv[3]), json.loads(sys.argv[4])
start = time.perf_counter()
for fraction in fractions:
    for split in ("train", "valid", "test"):
        load_dataset(data, root=root, split=split, valid_fraction=fraction)
seconds = time.perf_counter() - start
files = {p.name: p.stat().st_size for p in (root / "processed").iterdir()
         if p.suffix == ".pt" and not p.name.startswith("pre_")}
print(json.dumps({"seconds": seconds, "files": files}))
"""


def _measure(code: Path, data: Path, fractions: list[float]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as root:
        proc = subprocess.run(
            [sys.executable, "-c", _LOAD, str(code), str(data), root, json.dumps(fractions)],
            capture_output=True, text=True,
        )
    if proc.returncode != 0:
        raise RuntimeError(f"loading {data} with {code} failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["bytes"] = sum(out["files"].values())
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = C.base_parser(__doc__)
    parser.add_argument("--baseline", default=DEFAULT_BASELINE,
                        help="the git revision to compare with ('' to skip)")
    parser.add_argument("--datasets", nargs="+", default=None)
    args = parser.parse_args(argv)
    env = C.environment(argv, "bench_data_cache.py")
    names = args.datasets or (["diginetica"] if args.quick else DATASETS)
    data_dir = C.data_dir(args.data_dir)
    results = []
    tree = C.revision_tree(args.baseline) if args.baseline else contextlib.nullcontext()
    with tree as revision:
        baseline = revision[1] if revision else None
        for name in names:
            print(f"  {name}", file=sys.stderr, flush=True)
            start = time.perf_counter()
            row: dict[str, Any] = {
                "dataset": name,
                "ours": _measure(C.REPO, data_dir / name, [0.1, 0.02]),
            }
            if revision:
                row["baseline"] = _measure(revision[0], data_dir / name, [0.1])
                row["ratio_baseline_over_ours"] = (row["baseline"]["bytes"]
                                                   / row["ours"]["bytes"])
            row["wall_s"] = time.perf_counter() - start
            results.append(row)
    total = {"ours": sum(r["ours"]["bytes"] for r in results)}
    if baseline:
        total["baseline"] = sum(r["baseline"]["bytes"] for r in results)
    payload = {
        "benchmark": NAME,
        "description": "Processed-data cache: bytes on disk and build time, per data set.",
        "environment": env,
        "config": {"datasets": names, "baseline_commit": baseline,
                   "ours_valid_fractions": [0.1, 0.02], "baseline_valid_fractions": [0.1]},
        "method": __doc__.split("\n\n", 1)[1].strip(),
        "results": results,
        "total_bytes": total,
    }
    return C.publish(args.out, NAME, payload, render)


def render(payload: dict) -> str:
    rows = []
    for r in payload["results"]:
        base = r.get("baseline")
        rows.append([r["dataset"], r["ours"]["bytes"] / 2**20, len(r["ours"]["files"]),
                     r["ours"]["seconds"], base["bytes"] / 2**20 if base else "-",
                     len(base["files"]) if base else "-", base["seconds"] if base else "-",
                     r.get("ratio_baseline_over_ours", "-")])
    commit = payload["config"]["baseline_commit"]
    table = C.format_table(["data set", "cache MiB", "files", "build + load s",
                            f"baseline {str(commit)[:10]} MiB", "baseline files",
                            "baseline s", "baseline / ours"], rows)
    return (f"### Processed-data cache ({C.env_line(payload)})\n\n"
            "This code loads train/valid/test with validation fractions 0.1 and 0.02 (one "
            "cached file per data set either way); the baseline revision loads them once, with "
            "0.1.\n\n" + table)


if __name__ == "__main__":
    main()
