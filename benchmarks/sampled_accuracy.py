"""Sampled softmax against the exact softmax on Diginetica: test accuracy and
epoch time, trained the same way.

    python benchmarks/sampled_accuracy.py [--threads 1] [--variants S:SAMPLER ...]

Every variant runs the final run of ``benchmarks/accuracy.py --dataset
diginetica`` (its config, its number of epochs, all training sessions,
seed) with ``--loss-type sampled``, and is compared with that run's exact
cross-entropy, read from ``accuracy_diginetica.json``. A finished variant
run is kept (see ``_runs.py``).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import _common as C
from _runs import train_or_reuse

NAME = "sampled_accuracy"
VARIANTS = ["8192:popularity", "1024:popularity", "8192:uniform", "1024:uniform"]


def _epoch_seconds(history: list[dict[str, Any]]) -> float:
    return sum(e["seconds"] for e in history) / len(history)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = C.base_parser(__doc__.split("\n\n", 1)[0])
    parser.add_argument("--variants", nargs="+", default=VARIANTS,
                        help="NUM_NEGATIVES:SAMPLER pairs (default: %(default)s)")
    parser.add_argument("--exact", type=Path, default=C.RESULTS_DIR / "accuracy_diginetica.json",
                        help="the exact-CE run to compare with (benchmarks/accuracy.py)")
    parser.add_argument("--root", type=Path, default=C.REPO / "data_cache")
    parser.add_argument("--runs", type=Path, default=C.REPO / "runs" / "sampled_accuracy")
    args = parser.parse_args(argv)
    threads = C.setup_threads(args.threads)
    env = C.environment(argv, "sampled_accuracy.py")
    exact = json.loads(args.exact.read_text(encoding="utf-8"))
    # The exact run's final command, less its output folder: the same data, config,
    # epochs and seed.
    base = exact["final"]["command"].split()[2:]
    out_at = base.index("--out")
    base = base[:out_at] + base[out_at + 2:]
    base = [str(C.REPO / a) if not os.path.isabs(a) and (C.REPO / a).exists() else a
            for a in base]
    exact_row = {"test": exact["final"]["test"],
                 "epoch_seconds": _epoch_seconds(exact["final"]["history"]),
                 "command": exact["final"]["command"],
                 "git_commit": exact["environment"].get("git_commit")}
    results: list[dict[str, Any]] = []
    payload: dict[str, Any] = {}
    for variant in args.variants:
        negatives, sampler = variant.split(":")
        out = args.runs / f"{negatives}_{sampler}"
        argv_run = [*base, "--loss-type", "sampled", "--num-negatives", negatives,
                    "--negative-sampler", sampler, "--root", str(args.root), "--threads",
                    str(threads), "--out", str(out)]
        print(f"  {variant}", flush=True)
        run, reused = train_or_reuse(argv_run, exact["config"])
        row = {
            "num_negatives": int(negatives),
            "negative_sampler": sampler,
            "command": "gcsan-pyg train " + " ".join(argv_run),
            "test": run["test"],
            "history": run["history"],
            "epoch_seconds": _epoch_seconds(run["history"]),
            "wall_seconds": run["wall_seconds"],
            "git": run["git"],
            "reused": reused,
        }
        row["epoch_speedup_vs_exact"] = exact_row["epoch_seconds"] / row["epoch_seconds"]
        row["hit20_minus_exact"] = row["test"]["Hit@20"] - exact_row["test"]["Hit@20"]
        row["mrr20_minus_exact"] = row["test"]["MRR@20"] - exact_row["test"]["MRR@20"]
        results.append(row)
        # Written after every variant: a long comparison stopped early keeps what it ran.
        payload = {
            "benchmark": NAME,
            "description": "Sampled vs exact softmax on Diginetica, trained the same way.",
            "environment": env,
            "config": {"threads": threads, "variants": args.variants,
                       "exact_results": str(args.exact)},
            "method": __doc__.split("\n\n", 2)[2].strip(),
            "exact": exact_row,
            "results": results,
            "targets": _targets(results),
        }
        C.publish(args.out, NAME, payload, render)
    return payload


def _targets(results: list[dict]) -> list[dict]:
    targets = []
    for row in results:
        if (row["num_negatives"], row["negative_sampler"]) != (8192, "popularity"):
            continue
        targets += [
            {"name": "S=8k popularity: epoch speed-up over exact CE",
             "value": round(row["epoch_speedup_vs_exact"], 2), "threshold": 2.0},
            {"name": "S=8k popularity: test Hit@20 minus exact CE's (points)",
             "value": round(row["hit20_minus_exact"], 2), "threshold": -1.0},
            {"name": "S=8k popularity: test MRR@20 minus exact CE's (points)",
             "value": round(row["mrr20_minus_exact"], 2), "threshold": -0.5},
        ]
    return C.evaluate_targets(targets)


def render(payload: dict) -> str:
    exact = payload["exact"]
    rows = [["exact CE (accuracy.py's final run)", f"{exact['test']['Hit@20']:.2f}",
             f"{exact['test']['MRR@20']:.2f}", round(exact["epoch_seconds"]), "1.00", "-", "-"]]
    for r in payload["results"]:
        rows.append([f"sampled CE, S={r['num_negatives']:,}, {r['negative_sampler']}",
                     f"{r['test']['Hit@20']:.2f}", f"{r['test']['MRR@20']:.2f}",
                     round(r["epoch_seconds"]), f"{r['epoch_speedup_vs_exact']:.2f}",
                     f"{r['hit20_minus_exact']:+.2f}", f"{r['mrr20_minus_exact']:+.2f}"])
    table = C.format_table(["loss", "test Hit@20", "test MRR@20", "s / epoch",
                            "epoch speed-up", "Hit@20 vs exact", "MRR@20 vs exact"], rows)
    return (f"### Sampled softmax on Diginetica ({C.env_line(payload)})\n\n"
            "Same config, epochs, seed and data as the exact run; evaluation ranks all "
            "items.\n\n" + table + "\n\n" + C.render_targets(payload))


if __name__ == "__main__":
    main()
