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
    # bench_epoch run by an earlier revision (its commit is in the file), to
    # compare the epoch of this code with that of the code before a change.
    ("epoch_baseline", "bench_epoch"),
    ("profile", "bench_profile"),
    ("item_table", "bench_item_table"),
    ("data_cache", "bench_data_cache"),
    ("sampled_accuracy", "sampled_accuracy"),
    ("same_training", "same_training"),
]
ACCURACY_DATASETS = ("diginetica", "yoochoose1_64", "tmall", "retailrocket")


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
    for name in ("epoch", "epoch_baseline"):
        epoch = payloads.get(name)
        if epoch is None:
            continue
        cfg = epoch["config"]
        scope = "full epoch" if cfg["full_epoch"] else f"first {cfg['max_batches']} batches"
        # Files written before bench_epoch's --dense-stacking existed used NumPy stacking.
        stacking = cfg.get("dense_stacking", "numpy")
        commit = epoch["environment"].get("git_commit")
        rows.append([f"epoch speed-up ours vs dense with {stacking} stacking ({scope}, "
                     f"B={cfg['batch_size']}, {cfg['threads']} threads"
                     + (f", code at {commit[:7]})" if commit else ")"),
                     epoch["speedup_ours_vs_dense"], "-", "-", epoch["environment"]["command"]])
    for name in ("item_table", "sampled_accuracy"):
        payload = payloads.get(name)
        for t in (payload or {}).get("targets", []):
            op = ">=" if t.get("higher_is_better", True) else "<="
            met = {True: "yes", False: "**no**", None: "-"}[t["met"]]
            value = "not measured" if t["value"] is None else t["value"]
            rows.append([t["name"], value, f"{op} {t['threshold']}", met,
                         payload["environment"]["command"]])
    same = payloads.get("same_training")
    for row in (same or {}).get("results", []):
        equal = row["parameters_equal"]
        rows.append([f"code at {row['revision'][:7]} ({row['loss']}; "
                     f"{', '.join(row['result_files']) or 'no result file'}) trains as this "
                     "code", "equal" if equal else f"{len(row['differing'])} tensors differ",
                     "bit for bit", _met(equal), same["environment"]["command"]])
    cache = payloads.get("data_cache")
    if cache is not None and "baseline" in cache["total_bytes"]:
        total = cache["total_bytes"]
        names = ", ".join(cache["config"]["datasets"])
        rows.append([f"processed cache smaller than at {cache['config']['baseline_commit'][:10]} "
                     f"({names})", round(total["baseline"] / total["ours"], 2), "> 1",
                     _met(total["baseline"] > total["ours"]), cache["environment"]["command"]])
    if not rows:
        return ""
    return "### Summary\n\n" + C.format_table(
        ["measure", "value", "target", "met", "command"], rows)


def accuracy(results: Path) -> str:
    """The accuracy runs of benchmarks/accuracy.py in the folder: one table
    of every data set's test figures next to the published ones, then each
    run's own tables."""
    import accuracy as run_accuracy

    runs = {name: [run for run in (json.loads(path.read_text(encoding="utf-8"))
                                   for path in sorted(results.glob(f"accuracy_{name}*.json")))
                   if not run.get("quick")]
            for name in ACCURACY_DATASETS}
    if not any(runs.values()):
        return ""
    rows = []
    for name, dataset_runs in runs.items():
        for run in dataset_runs:
            test, final = run["final"]["test"], run["final"]
            commit = run_accuracy.final_commit(run)
            rows.append([f"{name} ({run_accuracy.seed_label(run)})", "GC-SAN, gcsan_pyg",
                         f"{test['Hit@20']:.2f}", f"{test['MRR@20']:.2f}", final["epochs"],
                         f"{final['wall_seconds'] / 60:.0f}",
                         f"this code at {str(commit)[:7]}: `{final['command']}`"])
        if not dataset_runs:
            rows.append([name, "GC-SAN, gcsan_pyg", "not run yet", "-", "-", "-",
                         f"`python benchmarks/accuracy.py --dataset {name}`"])
        for published in run_accuracy.PUBLISHED[name]:
            rows.append(["", f"{published['model']}, as published",
                         f"{published['Hit@20']:.2f}", f"{published['MRR@20']:.2f}", "-", "-",
                         published["source"]])
    overview = C.format_table(["data set", "model", "test Hit@20", "test MRR@20", "epochs",
                               "final run min", "source"], rows)
    runs = [run for dataset_runs in runs.values() for run in dataset_runs]
    goals = [[f"{run['dataset']} ({run_accuracy.seed_label(run)})", t["name"], str(t["value"]),
              f"{'>=' if t.get('higher_is_better', True) else '<='} {t['threshold']}",
              _met(t["met"])] for run in runs for t in run_accuracy.targets(run)]
    overview += "\n\nTargets:\n\n" + C.format_table(
        ["data set", "measure", "value", "target", "met"], goals)
    return ("### Accuracy\n\n" + overview + "\n\n"
            + "\n\n".join(run_accuracy.render(run) for run in runs))


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
