"""PNG plots (time and memory vs L, both versions) from the benchmark JSON.

    python benchmarks/plot.py [--results DIR]

Needs matplotlib (``pip install matplotlib``); writes into the results folder.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import _common as C

STYLE = {
    "dense": dict(color="tab:red", marker="s", label="dense reference"),
    "dense_numpy": dict(color="tab:pink", marker="P", label="dense, NumPy stacking"),
    "dense_trimmed": dict(color="tab:orange", marker="v", label="dense, trimmed to batch max"),
    "ours": dict(color="tab:blue", marker="o", label="ours (build_session_batch / GCSAN)"),
    "ours_plain": dict(color="tab:purple", marker="d",
                       label="ours with the dense version's CE and plain Adam"),
    "ours_novalidate": dict(color="tab:cyan", marker=".", label="ours, validate=False"),
    "pyg_collate": dict(color="tab:green", marker="^", label="PyG collate of prebuilt graphs"),
    "pyg_build_collate": dict(color="tab:olive", marker="D",
                              label="session_to_graph + PyG collate"),
    "output_layer": dict(color="tab:gray", marker="x", linestyle="--",
                         label="output layer alone (lower bound)"),
}


def _load(results: Path, name: str) -> dict | None:
    path = results / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _series(cases: list[dict], getter: Any) -> tuple[list[int], list[float]]:
    cases = sorted(cases, key=lambda c: c["max_len"])
    return [c["max_len"] for c in cases], [getter(c) for c in cases]


def _length_axis(ax: Any, lengths: list[int]) -> None:
    ax.set_xscale("log")
    ax.set_xticks(lengths)
    ax.set_xticklabels([str(v) for v in lengths])
    ax.minorticks_off()


def _title(payload: dict, text: str) -> str:
    env = payload["environment"]
    return f"{text}\n(torch {env['torch']}, {env['torch_num_threads']} threads, {env['date'][:10]})"


def plot_graph_construction(plt: Any, payload: dict, out: Path) -> list[Path]:
    paths = []
    sizes = sorted({c["batch_size"] for c in payload["results"]})
    batch_size = 256 if 256 in sizes else sizes[len(sizes) // 2]
    sources = ["diginetica", "synthetic"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, source in zip(axes, sources):
        cases = [c for c in payload["results"]
                 if c["source"] == source and c["batch_size"] == batch_size]
        for version in payload["results"][0]["median_s"]:
            xs, ys = _series(cases, lambda c, v=version: c["median_s"][v] * 1e3)
            ax.plot(xs, ys, **STYLE[version])
        _length_axis(ax, sorted({c["max_len"] for c in cases}))
        ax.set_yscale("log")
        ax.set_xlabel("padded length L")
        ax.set_title(f"{source}, B={batch_size}")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("median ms per batch")
    axes[1].legend(fontsize=7)
    fig.suptitle(_title(payload, "Graph construction time"), fontsize=9)
    fig.tight_layout()
    paths.append(out / "graph_construction_time.png")
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4.2))
    for source, dash in (("diginetica", "-"), ("synthetic", ":")):
        cases = [c for c in payload["results"]
                 if c["source"] == source and c["batch_size"] == batch_size]
        for version in ("dense", "ours"):
            xs, ys = _series(cases, lambda c, v=version: c["bytes"][v] / 2**20)
            style = dict(STYLE[version], linestyle=dash, label=f"{STYLE[version]['label']}, "
                         f"{source}")
            ax.plot(xs, ys, **style)
    _length_axis(ax, xs)
    ax.set_yscale("log")
    ax.set_xlabel("padded length L")
    ax.set_ylabel("graph tensors, MiB per batch")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(_title(payload, f"Graph tensor bytes, B={batch_size}"), fontsize=9)
    fig.tight_layout()
    paths.append(out / "graph_construction_memory.png")
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)
    return paths


def plot_sweep(plt: Any, payload: dict, out: Path, name: str, what: str) -> list[Path]:
    cases = [c for c in payload["results"] if c["source"] == "synthetic"]
    if not cases:
        return []
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for version in cases[0]["median_s"]:
        xs, ys = _series(cases, lambda c, v=version: c["median_s"][v] * 1e3)
        ax.plot(xs, ys, **STYLE[version])
    _length_axis(ax, xs)
    ax.set_yscale("log")
    ax.set_xlabel("session length L (synthetic, full-length)")
    ax.set_ylabel("median ms per batch")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(_title(payload, f"{what}, B={cases[0]['batch_size']}, "
                        f"hidden {payload['config']['hidden_channels']}"), fontsize=9)
    fig.tight_layout()
    path = out / f"{name}_vs_L.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return [path]


def plot_memory(plt: Any, payload: dict, out: Path) -> list[Path]:
    cases = [c for c in payload["results"] if c["source"] == "synthetic"]
    if not cases:
        return []
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, title in (
        (axes[0], "saved_for_backward_bytes_encoder", "activations saved for backward "
         "(session encoder)"),
        (axes[1], "peak_step_bytes", "peak allocator bytes of a training step"),
    ):
        for version in ("dense", "ours"):
            xs, ys = _series(cases, lambda c, v=version, k=key: (c[k][v] or 0) / 2**20)
            ax.plot(xs, ys, **STYLE[version])
        _length_axis(ax, xs)
        ax.set_yscale("log")
        ax.set_xlabel("session length L (synthetic, full-length)")
        ax.set_ylabel("MiB per batch")
        ax.set_title(title, fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(_title(payload, f"Memory per training batch, B={cases[0]['batch_size']}"),
                 fontsize=9)
    fig.tight_layout()
    path = out / "memory_vs_L.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return [path]


def plot_item_table(plt: Any, payload: dict, out: Path) -> list[Path]:
    # Step time (each loss) and top-20 ranking time against the catalogue size, B = 100.
    cases = [c for c in payload["results"] if c["batch_size"] == 100 and "median_s" in c]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for kind in dict.fromkeys(c["kind"] for c in cases):
        series = sorted((c["num_items"], c) for c in cases if c["kind"] == kind)
        sizes = [n for n, _ in series]
        axes[0].plot(sizes, [c["median_s"] * 1e3 for _, c in series], marker="o", label=kind)
        axes[1].plot(sizes, [c["peak_rss_bytes"] / 2**20 for _, c in series], marker="o",
                     label=kind)
    for ax, label in zip(axes, ("median time per call (ms)", "peak RSS (MiB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("items in the table (N)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(_title(payload, "Item table: training step per loss and top-20 ranking, "
                                 "B = 100, hidden 64"))
    fig.tight_layout()
    path = out / "item_table_vs_N.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return [path]


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--results", type=Path, default=C.RESULTS_DIR)
    args = parser.parse_args(argv)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install matplotlib); no plots written")
        return []
    results = args.results
    paths: list[Path] = []
    payload = _load(results, "graph_construction")
    if payload:
        paths += plot_graph_construction(plt, payload, results)
    for name, what in (("train_step", "Training step"), ("inference", "Full-sort inference")):
        payload = _load(results, name)
        if payload:
            paths += plot_sweep(plt, payload, results, name, what)
    payload = _load(results, "memory")
    if payload:
        paths += plot_memory(plt, payload, results)
    payload = _load(results, "item_table")
    if payload:
        paths += plot_item_table(plt, payload, results)
    for path in paths:
        print(f"wrote {path}")
    return paths


if __name__ == "__main__":
    main()
