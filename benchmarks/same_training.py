"""Whether the code of earlier result rows trains exactly as this code does.

    python benchmarks/same_training.py [--revisions REV:LOSS ...] [--sessions 10000]
    python benchmarks/same_training.py --quick   # the sample data, HEAD against this code

Long runs (``benchmarks/results/accuracy_*.json``, ``sampled_accuracy.json``)
record the commit they ran at, and the code moves on after them. This script
trains this code and each of those revisions with one command: one epoch over
the first ``--sessions`` training sessions of Diginetica (and the first
``--test-samples`` samples of its test file), the Diginetica accuracy config,
seed 2019, 1 thread, with the loss the row used. Each revision runs from a
temporary git worktree, in a subprocess; the trained parameters are compared
bit for bit, and the test metrics. Equal parameters mean that the revision
trains as this code does, so its rows are what this code gives for their
commands.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as C
import accuracy
import torch

NAME = "same_training"
CONFIG = C.BENCH_DIR / "configs" / "diginetica.yaml"
# The loss options of each kind of row (the sampled-softmax row of issue 12's
# headline target).
LOSSES = {"CE": [], "sampled": ["--loss-type", "sampled", "--num-negatives", "8192",
                                "--negative-sampler", "popularity"]}

_TRAIN = """
import json, sys
sys.path.insert(0, sys.argv[1])
from gcsan_pyg.cli import main
sys.exit(main(["train", *json.loads(sys.argv[2])]))
"""


def recorded_revisions(results: Path) -> dict[tuple[str, str], list[str]]:
    """(commit, loss) -> the result files whose runs used that code."""
    found: dict[tuple[str, str], list[str]] = {}
    for path in sorted(results.glob("accuracy_*.json")):
        run = json.loads(path.read_text(encoding="utf-8"))
        if run.get("quick"):
            continue
        found.setdefault((accuracy.final_commit(run), run["config"]["loss_type"]),
                         []).append(path.name)
    sampled = results / "sampled_accuracy.json"
    if sampled.is_file():
        for row in json.loads(sampled.read_text(encoding="utf-8"))["results"]:
            names = found.setdefault((row["git"]["commit"], "sampled"), [])
            if sampled.name not in names:
                names.append(sampled.name)
    return found


def _subset(source: Path, out: Path, sessions: int, test_samples: int) -> Path:
    """The first training sessions and test samples of an SR-GNN folder."""
    out.mkdir()
    for name, count in (("train_sessions.txt", sessions), ("test.tsv", test_samples)):
        with open(source / name, encoding="utf-8") as src:
            lines = [line for line, _ in zip(src, range(count))]
        (out / name).write_text("".join(lines), encoding="utf-8")
    return out


def _train(code: Path, argv: list[str], out: Path) -> tuple[dict[str, Any], dict]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _TRAIN, str(code), json.dumps(argv)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"training with {code} failed:\n{proc.stderr[-3000:]}")
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    results["seconds"] = time.perf_counter() - start
    # Our own file, just written by the run above.
    checkpoint = torch.load(out / "last.pt", map_location="cpu", weights_only=False)
    return checkpoint["model"], results


def compare(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any]:
    """Which entries of two state dicts differ (tensors bit for bit, a
    module's extra state by value), and by how much at most. The sampled
    softmax's sampler (``sampled_loss.*``, in the model's state dict before
    it moved into the loss object) is loss state, not a trained parameter:
    it is left out on both sides."""
    ours, theirs = ({k: v for k, v in d.items() if not k.startswith("sampled_loss.")}
                    for d in (ours, theirs))
    if ours.keys() != theirs.keys():
        return {"parameters_equal": False, "differing": sorted(ours.keys() ^ theirs.keys()),
                "max_abs_diff": None}

    def same(a: Any, b: Any) -> bool:
        if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
            return torch.equal(a, b)
        return a == b

    differing = [key for key in ours if not same(ours[key], theirs[key])]
    diff = max((float((ours[k].double() - theirs[k].double()).abs().max()) for k in differing
                if isinstance(ours[k], torch.Tensor) and isinstance(theirs[k], torch.Tensor)
                and ours[k].shape == theirs[k].shape), default=0.0)
    return {"parameters_equal": not differing, "differing": differing, "max_abs_diff": diff}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = C.base_parser(__doc__.split("\n\n", 1)[0])
    parser.add_argument("--revisions", nargs="+", default=None, metavar="REV:LOSS",
                        help="revisions and losses to compare (default: those the result "
                             "files record; --quick: HEAD:CE)")
    parser.add_argument("--sessions", type=int, default=10_000,
                        help="training sessions: the first ones of the file")
    parser.add_argument("--test-samples", type=int, default=5_000)
    args = parser.parse_args(argv)
    env = C.environment(argv, "same_training.py")
    if args.revisions:
        wanted = {tuple(spec.rsplit(":", 1)): [] for spec in args.revisions}
    elif args.quick:
        wanted = {("HEAD", "CE"): []}
    else:
        wanted = recorded_revisions(C.RESULTS_DIR)
    for _, loss in wanted:
        if loss not in LOSSES:
            raise SystemExit(f"unknown loss {loss!r}: choose from {sorted(LOSSES)}")
    data_dir = C.data_dir(args.data_dir)

    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        data = (data_dir / "sample_diginetica" / "srgnn_processed" if args.quick else
                _subset(data_dir / "diginetica", scratch / "data", args.sessions,
                        args.test_samples))

        def command(loss: str, out: Path) -> list[str]:
            argv = [str(data), "--config", str(CONFIG), "--root", str(scratch / "cache"),
                    "--threads", "1", "--seed", "2019", "--quiet", "--valid-fraction", "0",
                    "--epochs", "1", "--patience", "0", "--out", str(out), *LOSSES[loss]]
            return argv + (["--hidden-channels", "16", "--inner-channels", "32"]
                           if args.quick else [])

        ours = {}
        for loss in sorted({loss for _, loss in wanted}):
            print(f"  this code, {loss}", file=sys.stderr, flush=True)
            out = scratch / f"ours_{loss}"
            ours[loss] = _train(C.REPO, command(loss, out), out)
        for (revision, loss), files in wanted.items():
            print(f"  {revision[:10]}, {loss}", file=sys.stderr, flush=True)
            with C.revision_tree(revision) as (tree, commit):
                out = scratch / f"{commit}_{loss}"
                theirs = _train(tree, command(loss, out), out)
            rows.append({
                "revision": commit, "loss": loss, "result_files": files,
                **compare(ours[loss][0], theirs[0]),
                "test_equal": ours[loss][1]["test"] == theirs[1]["test"],
                "test": theirs[1]["test"], "ours_test": ours[loss][1]["test"],
                "seconds": theirs[1]["seconds"], "ours_seconds": ours[loss][1]["seconds"],
            })
        shown = {str(data): "DATA", str(scratch / "cache"): "CACHE",
                 str(CONFIG): str(CONFIG.relative_to(C.REPO))}
        example = " ".join(shown.get(arg, arg) for arg in command("CE", Path("OUT")))

    payload = {
        "benchmark": NAME,
        "description": "Earlier revisions trained beside this code, parameters compared bit "
                       "for bit.",
        "environment": env,
        "config": {"data": "sample_diginetica" if args.quick else
                   f"diginetica: first {args.sessions} training sessions, first "
                   f"{args.test_samples} test samples",
                   "command": f"gcsan-pyg train {example}", "losses": LOSSES},
        "method": __doc__.split("\n\n", 2)[2].strip(),
        "results": rows,
        "targets": [{"name": f"code at {row['revision'][:7]} ({row['loss']}) trains bit for "
                             "bit as this code", "value": row["parameters_equal"],
                     "threshold": True, "met": row["parameters_equal"]} for row in rows],
    }
    return C.publish(args.out, NAME, payload, render)


def render(payload: dict) -> str:
    rows = [[row["revision"][:10], row["loss"], ", ".join(row["result_files"]) or "-",
             "yes" if row["parameters_equal"] else f"**no** ({len(row['differing'])})",
             row["max_abs_diff"], "yes" if row["test_equal"] else "**no**",
             f"{row['test']['Hit@20']:.2f} / {row['ours_test']['Hit@20']:.2f}"]
            for row in payload["results"]]
    return (f"### Same training across revisions ({C.env_line(payload)})\n\n"
            f"Data: {payload['config']['data']}; command: "
            f"`{payload['config']['command']}` (plus the loss options of the row).\n\n"
            + C.format_table(["revision", "loss", "result files", "parameters equal",
                              "max abs diff", "test metrics equal",
                              "test Hit@20 (revision / this code)"], rows))


if __name__ == "__main__":
    main()
