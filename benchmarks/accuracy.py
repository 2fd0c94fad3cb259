"""GC-SAN's accuracy on a standard session data set, under one protocol.

    python benchmarks/accuracy.py --dataset diginetica [--threads 2] [--seed 2019]
    python benchmarks/accuracy.py --dataset diginetica --quick   # the sample data, seconds
    python benchmarks/accuracy.py --dataset tmall --seed 2020 --validation-seed 2019

The protocol, the same for every data set and fixed before any test figure
was looked at:

1. The hyperparameters are those of ``benchmarks/configs/<dataset>.yaml``,
   the file ``gcsan-pyg train --config`` reads.
2. Validation: the model trains on the training sessions but the most recent
   10 % (the last in the file), which are held out; after every epoch it is
   evaluated on them (no test data is read). The number of epochs of the
   final run is the epoch of the best validation metric (the config's
   ``metric``; early stopping by its ``patience``).
3. Final run: the model trains on all training sessions for that many
   epochs and is evaluated once on the test split. This is one
   ``gcsan-pyg train`` command, recorded in the result.

A second seed (``--seed``) repeats both runs with that seed; with
``--validation-seed S`` it repeats only the final run, for the number of
epochs seed S's validation chose (that run is reused), which shows the
spread of the final test figures at the cost of one run.

A finished run is kept: rerunning the script reuses a run folder whose
``results.json`` is the same command with the config's current values (the
result says which runs were reused and each run's git commit), so a search
that stopped after validation resumes with the final run.

The result, ``benchmarks/results/accuracy_<dataset>[_seed<s>].json``, holds
the git commit, both commands, the config, the package versions, the
threads, the validation metrics per epoch, the final test Hit/MRR/NDCG@{10,20}
and the wall times, next to published figures with their sources.
"""
from __future__ import annotations

import contextlib
import io
import os
import sys
from pathlib import Path
from typing import Any

import _common as C
import torch
import yaml
from _runs import train_or_reuse

NAME = "accuracy"
CONFIGS = C.BENCH_DIR / "configs"
DATASETS = ("diginetica", "yoochoose1_64", "tmall", "retailrocket")
VALID_FRACTION = 0.1
# Figures reported on these very splits, with where they come from.
PUBLISHED: dict[str, list[dict[str, Any]]] = {
    "diginetica": [{"model": "SR-GNN", "source": "Wu et al., AAAI 2019 (SR-GNN), Table 2",
                    "Hit@20": 50.73, "MRR@20": 17.59}],
    "yoochoose1_64": [{"model": "SR-GNN", "source": "Wu et al., AAAI 2019 (SR-GNN), Table 2",
                       "Hit@20": 70.57, "MRR@20": 30.94}],
    "tmall": [
        {"model": "SR-GNN", "source": "as reported by Wang et al., SIGIR 2020 (GCE-GNN), "
         "Table 3", "Hit@20": 27.57, "MRR@20": 13.72},
        {"model": "GCE-GNN", "source": "Wang et al., SIGIR 2020 (GCE-GNN), Table 3",
         "Hit@20": 33.42, "MRR@20": 15.42},
    ],
    # Papers preprocess Retailrocket differently (see ../shared/data/README.md); no
    # figure for this split is quoted, as none could be checked against its source here.
    "retailrocket": [],
}
# Stretch goals beyond the published figures (Tmall's is GCE-GNN's figure, above).
STRETCH = {"diginetica": {"Hit@20": 52.0, "MRR@20": 18.5}}
FINAL_RUN_MINUTES = 45
SPLIT_NOTES = {
    "diginetica": "SR-GNN's split (CIKM Cup 2016; last 7 days as test)",
    "yoochoose1_64": "SR-GNN's split (most recent 1/64 of training; last day as test)",
    "tmall": "GCE-GNN's / DHCN's split",
    "retailrocket": "the MTD / COTREC-style split of ../shared/data (sessions of length >= 3; "
                    "test keeps prefixes of length >= 2, 15,132 samples); training on "
                    "prefixes of length >= 2 too (433,648 samples, the config's "
                    "min_prefix_length: 2), not on every prefix (559,816)",
}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = C.base_parser(__doc__.split("\n\n", 1)[0])
    parser.add_argument("--dataset", required=True, choices=DATASETS)
    parser.add_argument("--root", type=Path, default=C.REPO / "data_cache",
                        help="processed-data cache")
    parser.add_argument("--runs", type=Path, default=C.REPO / "runs" / "accuracy",
                        help="checkpoint folders of the two runs")
    parser.add_argument("--validation-seed", type=int, default=None,
                        help="take the number of epochs from this seed's validation run "
                             "(default: the run's own seed)")
    parser.set_defaults(seed=None)
    args = parser.parse_args(argv)
    threads = C.setup_threads(args.threads)
    env = C.environment(argv, "accuracy.py")
    config_path = CONFIGS / f"{args.dataset}.yaml"
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    seed = config["seed"] if args.seed is None else args.seed
    data = C.data_dir(args.data_dir) / (
        "sample_diginetica/srgnn_processed" if args.quick else args.dataset)

    def run_tag(run_seed: int) -> str:  # the config's own seed keeps the plain name
        return args.dataset + ("" if run_seed == config["seed"] else f"_seed{run_seed}")

    tag = run_tag(seed)
    valid_seed = seed if args.validation_seed is None else args.validation_seed

    def train_argv(run_seed: int) -> list[str]:
        argv = [str(data), "--config", str(config_path), "--root", str(args.root),
                "--threads", str(threads), "--seed", str(run_seed), "--quiet"]
        if args.quick:  # a smoke test: tiny model, two epochs
            argv += ["--hidden-channels", "16", "--inner-channels", "32", "--epochs", "2"]
        return argv

    valid_argv = [*train_argv(valid_seed), "--valid-fraction", str(VALID_FRACTION),
                  "--skip-test", "--out", str(args.runs / run_tag(valid_seed) / "valid")]
    with contextlib.redirect_stdout(io.StringIO()):
        validation, valid_reused = train_or_reuse(valid_argv, config)
    best_epoch = validation["best_epoch"]
    final_argv = [*train_argv(seed), "--valid-fraction", "0", "--epochs", str(best_epoch),
                  "--patience", "0", "--out", str(args.runs / tag / "final")]
    final, final_reused = train_or_reuse(final_argv, config)

    payload = {
        "benchmark": f"{NAME}_{tag}",
        "dataset": args.dataset,
        "split": SPLIT_NOTES[args.dataset],
        "environment": env,
        "config_file": str(config_path.relative_to(C.REPO)),
        "config": config,
        "seed": seed,
        "quick": args.quick,
        "protocol": __doc__.split("\n\n", 2)[2].split("\n\nA finished run")[0],
        "validation": {
            "seed": valid_seed,
            "command": "gcsan-pyg train " + " ".join(_relative(valid_argv)),
            "valid_fraction": VALID_FRACTION,
            "history": validation["history"],
            "best_epoch": best_epoch,
            "wall_seconds": validation["wall_seconds"],
            "git": validation["git"],
            "reused": valid_reused,
        },
        "final": {
            "command": "gcsan-pyg train " + " ".join(_relative(final_argv)),
            "epochs": best_epoch,
            "history": final["history"],
            "test": final["test"],
            "popularity_test": final["popularity_test"],
            "wall_seconds": final["wall_seconds"],
            "git": final["git"],
            "reused": final_reused,
        },
        "published": PUBLISHED[args.dataset],
    }
    return C.publish(args.out, f"{NAME}_{tag}", payload, render)


def targets(payload: dict) -> list[dict[str, Any]]:
    """Each target of a run and whether it is met: test Hit@20 and MRR@20 at
    or above every published figure of its split (and the stretch goal), and
    a final run of at most :obj:`FINAL_RUN_MINUTES` minutes."""
    test, rows = payload["final"]["test"], []
    goals = [(f"{row['model']}'s published", row) for row in payload["published"]]
    goals += [("the stretch goal", goal) for goal in [STRETCH.get(payload["dataset"])] if goal]
    for label, goal in goals:
        for metric in ("Hit@20", "MRR@20"):
            rows.append({"name": f"test {metric} >= {label}", "value": round(test[metric], 2),
                         "threshold": goal[metric], "met": test[metric] >= goal[metric]})
    minutes = payload["final"]["wall_seconds"] / 60
    threads = payload["environment"]["torch_num_threads"]
    rows.append({"name": f"final run minutes at {threads} thread{'s' * (threads != 1)}",
                 "value": round(minutes),
                 "threshold": FINAL_RUN_MINUTES, "higher_is_better": False,
                 "met": minutes <= FINAL_RUN_MINUTES})
    return rows


def final_commit(payload: dict) -> str | None:
    """The commit of the final run's code (files older than its own record:
    the script's)."""
    return ((payload["final"].get("git") or {}).get("commit")
            or payload["environment"]["git_commit"])


def seed_label(payload: dict) -> str:
    """"seed S", and where the epochs came from another seed's validation, that seed."""
    valid_seed = payload["validation"].get("seed", payload["seed"])
    return f"seed {payload['seed']}" + (
        "" if valid_seed == payload["seed"] else f"; epochs from seed {valid_seed}'s validation")


def _relative(argv: list[str]) -> list[str]:
    """Paths beside or inside the repository as a rerun from it would type them."""
    return [os.path.relpath(arg, C.REPO) if Path(arg).is_absolute()
            and Path(arg).is_relative_to(C.REPO.parent) else arg for arg in argv]


def render(payload: dict) -> str:
    names = ["Hit@10", "MRR@10", "NDCG@10", "Hit@20", "MRR@20", "NDCG@20"]
    final = payload["final"]
    def pct(value: Any) -> str:
        return f"{value:.2f}" if isinstance(value, (int, float)) else str(value)

    rows = [[f"GC-SAN, gcsan_pyg (test, {final['epochs']} epochs)",
             *(pct(final["test"][n]) for n in names)],
            ["popularity (test)", *(pct(final["popularity_test"][n]) for n in names)]]
    for row in payload["published"]:
        rows.append([f"{row['model']}, as published ({row['source']})",
                     *(pct(row.get(n, "-")) for n in names)])
    epochs = [[e["epoch"], f"{e['train_loss']:.4f}", e["lr"], round(e["seconds"]),
               *(pct(e["valid"][n]) for n in names)] for e in payload["validation"]["history"]]
    minutes = (payload["validation"]["wall_seconds"] + final["wall_seconds"]) / 60
    return (
        f"### {payload['dataset']} ({seed_label(payload)})\n\nSplit: {payload['split']}.\n\n"
        f"{C.env_line(payload)}; {minutes:.0f} min in all. Final run: "
        f"`{final['command']}`. Metrics in percent.\n\n"
        + C.format_table(["model", *names], rows)
        + f"\n\nValidation (most recent {payload['validation']['valid_fraction']:.0%} of "
        "training sessions held out) per epoch:\n\n"
        + C.format_table(["epoch", "train loss", "lr", "seconds", *names], epochs)
    )


if __name__ == "__main__":
    torch.set_flush_denormal(True)
    main()
    sys.exit(0)
