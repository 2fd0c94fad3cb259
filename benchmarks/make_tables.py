"""Renders the benchmark JSON files as Markdown: a summary of the headline
ratios, then every benchmark's table. Printed and written to
``<results>/README_tables.md``. Every figure comes from the JSON.

    python benchmarks/make_tables.py [--results DIR] [--out FILE]
"""
from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path
from typing import Any

import _common as C

README_START = "<!-- results:start -->"
README_END = "<!-- results:end -->"
ORDER = [
    ("graph_construction", "bench_graph_construction"),
    ("train_step", "bench_train_step"),
    ("inference", "bench_inference"),
    ("memory", "bench_memory"),
    ("epoch", "bench_epoch"),
    ("profile", "bench_profile"),
]


def load(results: Path) -> dict[str, dict]:
    payloads = {}
    for name, _ in ORDER:
        path = results / f"{name}.json"
        if path.is_file():
            payloads[name] = json.loads(path.read_text(encoding="utf-8"))
    return payloads


def _cases(payload: dict | None, **match: Any) -> list[dict]:
    if payload is None:
        return []
    return [c for c in payload["results"] if all(c.get(k) == v for k, v in match.items())]


def _met(ok: bool) -> str:
    return "yes" if ok else "**no**"


def summary(payloads: dict[str, dict]) -> str:
    rows: list[list[Any]] = []
    graph = payloads.get("graph_construction")
    if graph is not None:
        for t in graph.get("targets", []):
            op = ">=" if t.get("higher_is_better", True) else "<="
            met = {True: "yes", False: "**no**", None: "-"}[t["met"]]
            value = "not measured" if t["value"] is None else t["value"]
            rows.append([t["name"], value, f"{op} {t['threshold']}", met,
                         graph["environment"]["command"]])
    speed_targets = {"train_step": 3.0, "inference": 5.0}
    for name, label in (("train_step", "train step"), ("inference", "inference")):
        payload = payloads.get(name)
        for c in _cases(payload, source="diginetica"):
            cmd = payload["environment"]["command"]
            speedup = c["speedup_vs_dense"]["ours"]
            rows.append([f"{label} speed-up ours vs dense, Diginetica B={c['batch_size']}, "
                         f"L={c['max_len']}", speedup, f">= {speed_targets[name]}",
                         _met(speedup >= speed_targets[name]), cmd])
            if "ours_plain" in c["speedup_vs_dense"]:
                value = c["speedup_vs_dense"]["ours_plain"]
                rows.append([f"{label} speed-up ours vs dense, same CE and plain Adam, "
                             f"Diginetica B={c['batch_size']}, L={c['max_len']}", value,
                             f">= {speed_targets[name]}", _met(value >= speed_targets[name]),
                             cmd])
            if "speedup_ours_vs_dense_numpy" in c:
                value = c["speedup_ours_vs_dense_numpy"]
                rows.append([f"{label} speed-up ours vs dense with NumPy stacking, Diginetica "
                             f"B={c['batch_size']}", value, f">= {speed_targets[name]}",
                             _met(value >= speed_targets[name]), cmd])
            if "speedup_ours_vs_dense_trimmed" in c:
                rows.append([f"{label} speed-up ours vs dense-trimmed, Diginetica "
                             f"B={c['batch_size']}", c["speedup_ours_vs_dense_trimmed"], "-",
                             "-", cmd])
            over = c.get("step_over_output_layer") or c.get("time_over_output_layer")
            target, met = ("<= 1.5", _met(over["ours"] <= 1.5)) if name == "train_step" else (
                "-", "-")
            rows.append([f"{label} ours time / output layer alone, Diginetica "
                         f"B={c['batch_size']}", over["ours"], target, met, cmd])
    memory = payloads.get("memory")
    for c in _cases(memory, max_len=50):
        ratio = c["ratio_dense_over_ours"]
        cmd = memory["environment"]["command"]
        rows.append([f"memory dense/ours, encoder saved-for-backward, {c['source']} "
                     f"B={c['batch_size']} L=50", ratio["saved_for_backward_bytes_encoder"],
                     "-", "-", cmd])
        if ratio["peak_step_bytes"] is not None:
            rows.append([f"memory dense/ours, train-step peak, {c['source']} "
                         f"B={c['batch_size']} L=50", ratio["peak_step_bytes"], "-", "-", cmd])
    epoch = payloads.get("epoch")
    if epoch is not None:
        cfg = epoch["config"]
        scope = "full epoch" if cfg["full_epoch"] else f"first {cfg['max_batches']} batches"
        # Files written before bench_epoch's --dense-stacking existed used NumPy stacking.
        stacking = cfg.get("dense_stacking", "numpy")
        rows.append([f"epoch speed-up ours vs dense with {stacking} stacking ({scope}, "
                     f"B={cfg['batch_size']})",
                     epoch["speedup_ours_vs_dense"], "-", "-", epoch["environment"]["command"]])
    if not rows:
        return ""
    return "### Summary\n\n" + C.format_table(
        ["measure", "value", "target", "met", "command"], rows)


def accuracy(results: Path) -> str:
    """Every Diginetica accuracy run (benchmarks/accuracy_diginetica.py) in the folder."""
    return "\n\n".join(_accuracy_run(json.loads(path.read_text(encoding="utf-8")))
                        for path in sorted(results.glob("accuracy_diginetica*.json")))


def _accuracy_run(run: dict) -> str:
    names = ["Hit@10", "MRR@10", "Hit@20", "MRR@20", "NDCG@20"]

    def pct(value: Any) -> str:
        return f"{value:.2f}" if isinstance(value, (int, float)) else str(value)

    rows = [[f"GC-SAN, gcsan_pyg (test, best epoch {run['best_epoch']})",
             *(pct(run["test"][n]) for n in names)],
            ["popularity baseline (test)", *(pct(run["popularity_test"][n]) for n in names)]]
    for model, figures in run["published"].items():
        rows.append([f"{model}, as published", *(pct(figures.get(n, "-")) for n in names)])
    epochs = [[e["epoch"], f"{e['train_loss']:.4f}", e["lr"], round(e["seconds"]),
               *(pct(e["valid"][n]) for n in names)] for e in run["epochs"]]
    argv = run["train_command"].split()
    valid = argv[argv.index("--valid-fraction") + 1] if "--valid-fraction" in argv else "0.1"
    minutes = run["wall_seconds"] / 60
    return (
        f"### Accuracy on Diginetica (SR-GNN split), validation = last {float(valid):.0%} "
        f"of training sessions\n\n`{run['command']}` "
        f"({minutes:.0f} min, torch threads: {run['machine']['threads']}, "
        f"torch {run['machine']['torch']}, {run['date']}; metrics in percent)\n\n"
        + C.format_table(["model", *names], rows)
        + "\n\nValidation per epoch:\n\n"
        + C.format_table(["epoch", "train loss", "lr", "seconds", *names], epochs)
    )


def readme_section(results: Path) -> str:
    """What README.md shows between its results markers."""
    parts = [accuracy(results), summary(load(results))]
    body = "\n\n".join(p for p in parts if p)
    return (f"{README_START}\n<!-- generated by `python benchmarks/make_tables.py --readme "
            f"README.md` from benchmarks/results/*.json; do not edit -->\n\n{body}\n\n"
            f"{README_END}")


def update_readme(readme: Path, results: Path) -> None:
    text = readme.read_text(encoding="utf-8")
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < 0:
        raise SystemExit(f"{readme} has no {README_START} ... {README_END} markers")
    readme.write_text(text[:start] + readme_section(results) + text[end + len(README_END):],
                      encoding="utf-8")


def render_all(results: Path) -> str:
    payloads = load(results)
    parts = [summary(payloads)]
    for name, module_name in ORDER:
        if name in payloads:
            module = importlib.import_module(module_name)
            parts.append(module.render(payloads[name]))
    return "\n\n".join(p for p in parts if p) + "\n"


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--results", type=Path, default=C.RESULTS_DIR)
    parser.add_argument("--out", type=Path, default=None,
                        help="Markdown file (default: <results>/README_tables.md)")
    parser.add_argument("--readme", type=Path, default=None,
                        help="also rewrite the results section of this README")
    args = parser.parse_args(argv)
    text = "<!-- generated by benchmarks/make_tables.py from the JSON files; do not edit -->\n\n"
    text += "\n\n".join(p for p in (accuracy(args.results), render_all(args.results)) if p)
    if args.readme is not None:
        update_readme(args.readme, args.results)
    out = args.out or args.results / "README_tables.md"
    out.write_text(text, encoding="utf-8")
    print(text)
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main()
