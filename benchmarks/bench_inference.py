"""Full-sort top-20 inference (eval mode, no_grad) of GCSAN vs DenseGCSAN from
identical weights on identical batches, against the scoring alone.

    python benchmarks/bench_inference.py [--quick] [--threads N] [--hidden H]
"""
from __future__ import annotations

import copy
import sys
from typing import Any

import _common as C
import torch

from gcsan_pyg.data import build_session_batch

NAME = "inference"
K = 20
DESCRIPTIONS = {
    "ours": "build_session_batch(item_seq, item_seq_len, num_items=...) + GCSAN.recommend(batch, "
    "k=20) (exact full-sort top-k: scores in chunks of at most 6M entries, padding id masked, "
    "blockwise_topk)",
    "dense": "DenseGCSAN.full_sort_scores(item_seq, item_seq_len) on sequences padded to L (its "
    "per-sample NumPy loop and the reference's list-to-tensor conversion included), padding id "
    "masked, topk(20)",
    "dense_numpy": "the same with DenseGCSAN(stacking='numpy'): the loop's lists stacked by NumPy "
    "first, a faster dense baseline than the reference",
    "dense_trimmed": "the same with item_seq cut to the batch's longest session first",
    "output_layer": "lower bound: the scoring alone, done as ours does it: "
    "GCSAN.top_items(fixed session representations [B, H], k=20)",
}


def _dense_topk(model: torch.nn.Module, item_seq: torch.Tensor,
                item_seq_len: torch.Tensor) -> torch.Tensor:
    scores = model.full_sort_scores(item_seq, item_seq_len)
    scores[:, 0] = float("-inf")
    return scores.topk(K, dim=-1).indices


def make_fns(ours: Any, dense: Any, batches: C.Batches, versions: tuple[str, ...],
             hidden: int) -> dict[str, Any]:
    num_items = ours.num_items
    gen = torch.Generator().manual_seed(1)
    reps = [torch.randn(t[0].size(0), hidden, generator=gen) * 0.1 for t in batches.triples]
    counters = dict.fromkeys(versions, 0)

    def pick(version: str) -> int:
        index = counters[version] % len(batches)
        counters[version] += 1
        return index

    @torch.no_grad()
    def run_ours() -> torch.Tensor:
        item_seq, item_seq_len, _ = batches.triples[pick("ours")]
        return ours.recommend(build_session_batch(item_seq, item_seq_len, num_items=num_items),
                              k=K)

    dense_numpy = copy.deepcopy(dense)
    dense_numpy.stacking = "numpy"

    @torch.no_grad()
    def run_dense() -> torch.Tensor:
        item_seq, item_seq_len, _ = batches.triples[pick("dense")]
        return _dense_topk(dense, item_seq, item_seq_len)

    @torch.no_grad()
    def run_dense_numpy() -> torch.Tensor:
        item_seq, item_seq_len, _ = batches.triples[pick("dense_numpy")]
        return _dense_topk(dense_numpy, item_seq, item_seq_len)

    @torch.no_grad()
    def run_dense_trimmed() -> torch.Tensor:
        item_seq, item_seq_len, _ = batches.triples[pick("dense_trimmed")]
        return _dense_topk(dense, item_seq[:, : int(item_seq_len.max())], item_seq_len)

    def run_output_layer() -> torch.Tensor:
        return ours.top_items(reps[pick("output_layer")], k=K)

    every = {"ours": run_ours, "dense": run_dense, "dense_numpy": run_dense_numpy,
             "dense_trimmed": run_dense_trimmed,
             "output_layer": run_output_layer}
    return {v: every[v] for v in versions}


@torch.no_grad()
def agreement(ours: Any, dense: Any, batches: C.Batches) -> dict[str, float]:
    """Share of top-20 items both versions return, over the whole pool (1.0 up
    to ties and float rounding), and the largest score difference."""
    same = total = 0
    max_diff = 0.0
    for item_seq, item_seq_len, _ in batches.triples:
        batch = build_session_batch(item_seq, item_seq_len, num_items=ours.num_items)
        a = ours.recommend(batch, k=K)
        b = _dense_topk(dense, item_seq, item_seq_len)
        for row_a, row_b in zip(a.tolist(), b.tolist()):
            same += len(set(row_a) & set(row_b))
            total += K
        diff = (ours.full_sort_scores(batch) - dense.full_sort_scores(item_seq, item_seq_len))
        max_diff = max(max_diff, float(diff.abs().max()))
    return {"top20_overlap": same / total, "max_abs_score_diff": max_diff}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = C.base_parser(__doc__)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--max-len", type=int, default=50)
    C.add_sweep_arguments(parser)
    args = parser.parse_args(argv)
    threads = C.setup_threads(args.threads)
    env = C.environment(argv, "bench_inference.py")
    sweep = C.Sweep.from_args(args, repeats=15, budget=5.0)
    num_items = C.DIGINETICA_NUM_ITEMS
    test = C.read_test_tsv(C.data_dir(args.data_dir) / "diginetica" / "test.tsv")

    ours, dense = C.make_models(num_items, args.hidden, seed=args.seed)
    ours.eval()
    dense.eval()
    results = []
    cases = sweep.cases(args.max_len)
    for source, batch_size, max_len in cases:
        batches = sweep.batches(source, batch_size, max_len, test, num_items,
                                args.seed)
        versions = (("ours", "dense", "dense_numpy", "dense_trimmed", "output_layer")
                    if source == "diginetica" else ("ours", "dense", "output_layer"))
        fns = make_fns(ours, dense, batches, versions, args.hidden)
        times = sweep.time(fns)
        case = {"source": source, "batch_size": batch_size, "max_len": max_len,
                "mean_session_len": batches.mean_length()}
        case.update(C.summarize(times))
        med = case["median_s"]
        case["samples_per_s"] = {k: batch_size / v for k, v in med.items()}
        case["speedup_vs_dense"] = {k: med["dense"] / med[k] for k in med if k != "dense"}
        if "dense_trimmed" in med:
            case["speedup_ours_vs_dense_trimmed"] = med["dense_trimmed"] / med["ours"]
        if "dense_numpy" in med:
            case["speedup_ours_vs_dense_numpy"] = med["dense_numpy"] / med["ours"]
        case["time_over_output_layer"] = {k: med[k] / med["output_layer"]
                                          for k in med if k != "output_layer"}
        case["agreement"] = agreement(ours, dense, batches)
        results.append(case)
        print(f"  {source:10s} B={batch_size:4d} L={max_len:4d}  "
              + "  ".join(f"{k}={v * 1e3:.1f}ms" for k, v in med.items()),
              file=sys.stderr, flush=True)

    payload = {
        "benchmark": NAME,
        "description": f"Full-sort top-{K} recommendation per batch (eval, torch.no_grad).",
        "environment": env,
        "config": {"num_items": num_items, "hidden_channels": args.hidden, "k": K,
                   "diginetica_max_len": args.max_len, **sweep.as_config(),
                   "threads": threads, "versions": DESCRIPTIONS},
        "method": "One pair of models with identical weights, eval mode. "
        + C.timing_method(sweep.min_sample_s)
        + " 'agreement' compares both versions' top-20 lists and scores on the case's batches.",
        "results": results,
    }
    return C.publish(args.out, NAME, payload, render)


def render(payload: dict) -> str:
    rows = []
    for c in payload["results"]:
        sps = c["samples_per_s"]
        rows.append([
            c["source"], c["batch_size"], c["max_len"], round(c["mean_session_len"], 1),
            c["median_s"]["ours"] * 1e3, c["median_s"]["dense"] * 1e3, sps["ours"], sps["dense"],
            sps.get("dense_numpy", "-"), sps.get("dense_trimmed", "-"), sps["output_layer"],
            c["speedup_vs_dense"]["ours"], c.get("speedup_ours_vs_dense_numpy", "-"),
            c.get("speedup_ours_vs_dense_trimmed", "-"), c["time_over_output_layer"]["ours"],
            c["agreement"]["top20_overlap"], c["repeats"],
        ])
    table = C.format_table(
        ["data", "B", "L", "mean len", "ours ms", "dense ms", "ours samples/s", "dense samples/s",
         "dense-numpy samples/s", "dense-trimmed samples/s", "scoring-only samples/s",
         "ours speed-up vs dense", "ours speed-up vs dense-numpy", "ours speed-up vs dense-trimmed",
         "ours / scoring only", "top-20 overlap", "repeats"],
        rows)
    cfg = payload["config"]
    return (f"### Inference, full-sort top-{cfg['k']} ({C.env_line(payload)})\n\n"
            f"Hidden {cfg['hidden_channels']}, {cfg['num_items']:,} items. Medians; speed-up = "
            "dense time / ours time.\n\n" + table)


if __name__ == "__main__":
    main()
