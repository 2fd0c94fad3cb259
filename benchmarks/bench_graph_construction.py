"""Graph construction: the dense reference's per-sample loop vs the vectorised
``build_session_batch`` vs PyG's per-graph collate, plus the bytes of the
graph tensors each produces.

    python benchmarks/bench_graph_construction.py [--quick] [--threads N]
"""
from __future__ import annotations

import sys
from typing import Any

import _common as C
import torch
from dense_gcsan import dense_session_adjacency
from torch_geometric.loader.dataloader import Collater

from gcsan_pyg.data import build_session_batch, session_to_graph

NAME = "graph_construction"
VERSIONS = ("dense", "dense_numpy", "ours", "ours_novalidate", "pyg_collate", "pyg_build_collate")
DESCRIPTIONS = {
    "dense": "DenseGCSAN.forward's graph part, as the reference does it: item_seq.cpu().numpy(), "
    "the per-sample dense_session_adjacency loop, its lists turned into tensors by "
    "torch.LongTensor / torch.FloatTensor, .to(device)",
    "dense_numpy": "the same loop, its lists stacked by NumPy first "
    "(dense_session_adjacency(..., stacking='numpy')): a faster dense baseline than the reference",
    "ours": "build_session_batch(item_seq, item_seq_len, num_items=...), validate=True "
    "(the default)",
    "ours_novalidate": "build_session_batch(..., validate=False)",
    "pyg_collate": "DataLoader's collate (torch_geometric Collater -> Batch.from_data_list) of "
    "session_to_graph graphs built beforehand (as a Dataset that caches its graphs)",
    "pyg_build_collate": "session_to_graph of every session (from Python lists, as a Dataset's "
    "__getitem__ would) + the same collate",
}
TARGET_CASE = {"source": "diginetica", "batch_size": 256, "max_len": 50}


def graph_bytes(item_seq: torch.Tensor, item_seq_len: torch.Tensor, num_items: int) -> dict:
    batch_size, max_len = item_seq.shape
    # dense: nodes [B, L] int64 + alias [B, L] int64 + adjacency [B, L, 2L] float32
    dense = batch_size * max_len * 8 * 2 + batch_size * max_len * 2 * max_len * 4
    batch = build_session_batch(item_seq, item_seq_len, num_items=num_items)
    parts = {key: C.tensor_bytes(batch[key]) for key in batch.keys()}  # no y: no target given
    return {
        "dense": dense,
        "ours": sum(parts.values()),
        "ours_parts": parts,
        "num_nodes": int(batch.x.numel()),
        "num_edges": int(batch.edge_index.size(1)),
        "num_clicks": int(item_seq_len.sum()),
    }


def run_case(batches: C.Batches, num_items: int, repeats: int, budget_s: float | None,
             versions: tuple[str, ...], min_sample_s: float) -> dict[str, Any]:
    item_seqs = [t[0] for t in batches.triples]
    lengths = [t[1] for t in batches.triples]
    as_lists = [[row[:n].tolist() for row, n in zip(s, n_)] for s, n_ in zip(item_seqs, lengths)]
    prebuilt = [[session_to_graph(seq) for seq in lists] for lists in as_lists]
    collate = Collater(None)
    counters = dict.fromkeys(versions, 0)

    def pick(version: str) -> int:
        index = counters[version] % len(item_seqs)
        counters[version] += 1
        return index

    def dense(version: str = "dense", stacking: str = "reference") -> Any:
        i = pick(version)
        device = item_seqs[i].device
        graph = dense_session_adjacency(item_seqs[i].cpu().numpy(), stacking)
        return tuple(t.to(device) for t in graph)

    def dense_numpy() -> Any:
        return dense("dense_numpy", "numpy")

    def ours() -> Any:
        i = pick("ours")
        return build_session_batch(item_seqs[i], lengths[i], num_items=num_items)

    def ours_novalidate() -> Any:
        i = pick("ours_novalidate")
        return build_session_batch(item_seqs[i], lengths[i], num_items=num_items, validate=False)

    def pyg_collate() -> Any:
        return collate(prebuilt[pick("pyg_collate")])

    def pyg_build_collate() -> Any:
        return collate([session_to_graph(seq) for seq in as_lists[pick("pyg_build_collate")]])

    every = {"dense": dense, "dense_numpy": dense_numpy, "ours": ours,
             "ours_novalidate": ours_novalidate,
             "pyg_collate": pyg_collate, "pyg_build_collate": pyg_build_collate}
    fns = {name: every[name] for name in versions}
    times = C.time_alternating(fns, repeats, warmup=1, min_repeats=3 if repeats >= 3 else 1,
                               budget_s=budget_s, min_sample_s=min_sample_s)
    out = C.summarize(times)
    med = out["median_s"]
    out["speedup_vs_dense"] = {k: med["dense"] / med[k] for k in versions if k != "dense"}
    out["speedup_vs_dense_numpy"] = {k: med["dense_numpy"] / med[k] for k in versions
                                     if k != "dense_numpy"}
    first = out["first_call_median_s"]
    out["speedup_vs_dense_first_call"] = {
        k: first["dense"] / first[k] for k in versions if k != "dense"}
    out["sessions_per_s"] = {k: len(lengths[0]) / v for k, v in med.items()}
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = C.base_parser(__doc__)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=None)
    parser.add_argument("--lengths", type=int, nargs="+", default=None)
    parser.add_argument("--repeats", type=int, default=None,
                        help="most timed repeats per case (cut to fit --case-budget)")
    parser.add_argument("--case-budget", type=float, default=None,
                        help="seconds of timed repeats per case (default 2, quick: none)")
    C.add_min_sample_argument(parser)
    args = parser.parse_args(argv)
    threads = C.setup_threads(args.threads)
    env = C.environment(argv, "bench_graph_construction.py")
    batch_sizes = args.batch_sizes or ([32] if args.quick else [128, 256, 512])
    lengths = args.lengths or ([10, 50] if args.quick else [10, 20, 50, 100, 200])
    repeats = args.repeats or (2 if args.quick else 15)
    budget = args.case_budget if args.case_budget is not None else (None if args.quick else 2.0)
    pool = 2 if args.quick else 4
    min_sample_s = C.min_sample_s(args, 0.02)
    num_items = C.DIGINETICA_NUM_ITEMS

    test = C.read_test_tsv(C.data_dir(args.data_dir) / "diginetica" / "test.tsv")
    results = []
    for source in ("diginetica", "synthetic"):
        for batch_size in batch_sizes:
            for max_len in lengths:
                if source == "diginetica":
                    batches = C.diginetica_batches(test, batch_size, max_len, pool,
                                                   seed=args.seed)
                else:
                    batches = C.synthetic_batches(batch_size, max_len, pool, num_items, args.seed)
                case = {"source": source, "batch_size": batch_size, "max_len": max_len,
                        "mean_session_len": batches.mean_length()}
                case.update(run_case(batches, num_items, repeats, budget, VERSIONS, min_sample_s))
                case["bytes"] = graph_bytes(*batches.triples[0][:2], num_items)
                case["bytes_ratio_dense_over_ours"] = (
                    case["bytes"]["dense"] / case["bytes"]["ours"])
                results.append(case)
                print(f"  {source:10s} B={batch_size:4d} L={max_len:4d}  "
                      + "  ".join(f"{k}={v * 1e3:.2f}ms" for k, v in case["median_s"].items()),
                      file=sys.stderr, flush=True)

    payload = {
        "benchmark": NAME,
        "description": "Building the batched session graph of B padded sessions of length L.",
        "environment": env,
        "config": {"num_items": num_items, "batch_sizes": batch_sizes, "lengths": lengths,
                   "max_repeats": repeats, "case_budget_s": budget, "batches_per_case": pool,
                   "min_sample_s": min_sample_s,
                   "threads": threads, "versions": DESCRIPTIONS,
                   "data": "diginetica/test.tsv prefixes drawn at random (seeded), keeping the "
                   "last L clicks, right-padded to L; synthetic: every session L uniformly random "
                   "item ids"},
        "method": C.timing_method(min_sample_s) + " Repeats: as many as fit the case budget, "
        "at least 3. Bytes: numel * element_size of the graph tensors of the first batch of the "
        "pool.",
        "results": results,
        "targets": targets(results),
    }
    return C.publish(args.out, NAME, payload, render)


def _find(results: list[dict], **match: Any) -> dict | None:
    for case in results:
        if all(case.get(k) == v for k, v in match.items()):
            return case
    return None


def targets(results: list[dict]) -> list[dict]:
    out = []
    case = _find(results, **TARGET_CASE)
    out.append({
        "name": "graph construction speed-up",
        "description": "dense loop median / build_session_batch median at B=256, L=50, "
        "Diginetica prefixes",
        "threshold": 100.0,
        "value": None if case is None else case["speedup_vs_dense"]["ours"],
        "value_novalidate": None if case is None else case["speedup_vs_dense"]["ours_novalidate"],
        "value_first_call": None if case is None else (
            case["speedup_vs_dense_first_call"]["ours"]),
    })
    out.append({
        "name": "graph construction speed-up vs dense with NumPy stacking",
        "description": "dense loop with NumPy stacking median / build_session_batch median at "
        "B=256, L=50, Diginetica prefixes (a faster baseline than the reference)",
        "threshold": 100.0,
        "value": None if case is None else case["speedup_vs_dense_numpy"]["ours"],
    })
    case = _find(results, source="diginetica", max_len=50)
    out.append({
        "name": "graph tensors smaller at L=50 (Diginetica)",
        "description": "dense bytes / ours bytes, Diginetica prefixes, L=50",
        "threshold": 10.0,
        "value": None if case is None else case["bytes_ratio_dense_over_ours"],
    })
    case = _find(results, source="synthetic", max_len=50)
    out.append({
        "name": "graph tensors smaller at L=50 (synthetic full-length)",
        "description": "dense bytes / ours bytes, full-length random sessions, L=50",
        "threshold": 10.0,
        "value": None if case is None else case["bytes_ratio_dense_over_ours"],
    })
    # Linear growth: ours bytes per click position should stay flat over L.
    syn = [c for c in results if c["source"] == "synthetic"]
    if syn:
        batch_size = max(c["batch_size"] for c in syn)
        per_l = {c["max_len"]: c["bytes"]["ours"] / (c["batch_size"] * c["max_len"])
                 for c in syn if c["batch_size"] == batch_size}
        dense_per_l = {c["max_len"]: c["bytes"]["dense"] / (c["batch_size"] * c["max_len"])
                       for c in syn if c["batch_size"] == batch_size}
        spread = max(per_l.values()) / min(per_l.values())
        out.append({
            "name": "ours graph bytes grow linearly with L (synthetic full-length)",
            "description": f"max/min over L of ours bytes / (B*L) at B={batch_size}; 1.0 = "
            "exactly linear (dense bytes / (B*L) is listed for contrast: it grows with L)",
            "threshold": 1.1,
            "higher_is_better": False,
            "value": spread,
            "ours_bytes_per_position": per_l,
            "dense_bytes_per_position": dense_per_l,
        })
    return C.evaluate_targets(out)


def render(payload: dict) -> str:
    rows = []
    for c in payload["results"]:
        med = c["median_s"]
        sp = c["speedup_vs_dense"]
        rows.append([
            c["source"], c["batch_size"], c["max_len"], round(c["mean_session_len"], 1),
            med["dense"] * 1e3, med["dense_numpy"] * 1e3, med["ours"] * 1e3,
            c["first_call_median_s"]["ours"] * 1e3, med["pyg_collate"] * 1e3,
            med["pyg_build_collate"] * 1e3, sp["ours"], c["speedup_vs_dense_numpy"]["ours"],
            c["speedup_vs_dense_first_call"]["ours"], sp["ours_novalidate"], sp["pyg_collate"],
            sp["pyg_build_collate"], c["bytes"]["dense"] / 1024, c["bytes"]["ours"] / 1024,
            c["bytes_ratio_dense_over_ours"], c["repeats"],
        ])
    table = C.format_table(
        ["data", "B", "L", "mean len", "dense ms", "dense-numpy ms", "ours ms",
         "ours first-call ms", "collate ms", "build+collate ms", "ours x", "ours x dense-numpy",
         "ours first-call x", "ours (no validate) x", "collate x",
         "build+collate x", "dense KiB", "ours KiB", "bytes ratio", "repeats"], rows)
    return (f"### Graph construction ({C.env_line(payload)})\n\n"
            "Median ms per batch over samples of consecutive calls; `first-call`: the first "
            "call of each sample alone, right after the other versions ran (cold caches); `x` = "
            "dense time / that version's time (`x dense-numpy`: over the dense loop with NumPy "
            "stacking). Bytes: graph tensors of one batch.\n\n"
            + table + "\n\n" + C.render_targets(payload))


if __name__ == "__main__":
    main()
