"""One training step (forward + backward + Adam) of GCSAN vs DenseGCSAN from
identical weights on identical batches, against the output layer alone.

    python benchmarks/bench_train_step.py [--quick] [--threads N] [--hidden H]
"""
from __future__ import annotations

import copy
import sys
from typing import Any

import _common as C
import torch
import torch.nn.functional as F

from gcsan_pyg.data import build_session_batch
from gcsan_pyg.nn import chunked_softmax_cross_entropy
from gcsan_pyg.training import LazyAdam

NAME = "train_step"
DESCRIPTIONS = {
    "ours": "GCSAN as the trainer runs it: build_session_batch(item_seq, item_seq_len, target, "
    "num_items) + model.loss(batch) (the library's fused softmax cross-entropy) + backward + "
    "fused Adam.step (zero_grad(set_to_none=True) first)",
    "ours_plain": "GCSAN with the dense version's loss and optimizer: build_session_batch + "
    "F.cross_entropy(model.encode(batch) @ table^T, target) + reg_weight * "
    "model.embedding_regularizer() "
    "+ backward + plain torch.optim.Adam.step; the graph formulation alone against dense",
    "dense": "DenseGCSAN.loss(item_seq, item_seq_len, target) (F.cross_entropy over all items + "
    "the same regulariser) on sequences padded to L (its forward runs its per-sample NumPy loop "
    "and turns the lists into tensors as the reference does) + backward + plain "
    "torch.optim.Adam.step",
    "dense_numpy": "the same with DenseGCSAN(stacking='numpy'): the loop's lists stacked by NumPy "
    "first, a faster dense baseline than the reference",
    "dense_trimmed": "the same, but item_seq cut to the batch's longest session before the call "
    "(a cheaper baseline than padding every batch to L)",
    "output_layer": "lower bound: fixed session representations [B, H] (a leaf that needs a "
    "gradient) @ item table^T, cross-entropy + the model's embedding regulariser, backward, Adam "
    "over the table, each done the fastest way this library knows (the fused "
    "chunked_softmax_cross_entropy and fused Adam that 'ours' uses)",
}


def make_steppers(num_items: int, hidden: int, seed: int, lr: float) -> dict[str, Any]:
    """Models (identical initial weights) and their optimizers."""
    ours, dense = C.make_models(num_items, hidden, seed=seed)
    dense_trimmed = copy.deepcopy(dense)
    dense_numpy = copy.deepcopy(dense)
    dense_numpy.stacking = "numpy"
    ours_plain = copy.deepcopy(ours)
    table = torch.nn.Parameter(ours.item_embedding.weight.detach().clone())
    for m in (ours, ours_plain, dense, dense_trimmed, dense_numpy):
        m.train()
    # Ours and the lower bound use the trainer's optimizer (fused Adam); the dense
    # reference uses plain Adam, as RecBole does, and so does ours_plain.
    return {
        "ours": (ours, LazyAdam(ours.parameters(), lr=lr)),
        "ours_plain": (ours_plain, torch.optim.Adam(ours_plain.parameters(), lr=lr)),
        "dense": (dense, torch.optim.Adam(dense.parameters(), lr=lr)),
        "dense_trimmed": (dense_trimmed, torch.optim.Adam(dense_trimmed.parameters(), lr=lr)),
        "dense_numpy": (dense_numpy, torch.optim.Adam(dense_numpy.parameters(), lr=lr)),
        "output_layer": (table, LazyAdam(torch.nn.ParameterList([table]).parameters(), lr=lr)),
        "reg_weight": ours.reg_weight,
    }


@torch.no_grad()
def parity_check(steppers: dict, triple: tuple) -> dict[str, float]:
    """Eval-mode (no dropout) losses of both models on one batch before any step:
    equal weights must give equal losses."""
    item_seq, item_seq_len, target = triple
    ours, dense = steppers["ours"][0], steppers["dense"][0]
    ours.eval()
    dense.eval()
    batch = build_session_batch(item_seq, item_seq_len, target, num_items=ours.num_items)
    a = float(ours.loss(batch))
    b = float(dense.loss(item_seq, item_seq_len, target))
    ours.train()
    dense.train()
    return {"loss_ours": a, "loss_dense": b, "abs_diff": abs(a - b)}


def make_step_fns(steppers: dict, batches: C.Batches, versions: tuple[str, ...],
                  hidden: int) -> dict[str, Any]:
    num_items = steppers["ours"][0].num_items
    reg_weight = steppers["reg_weight"]
    gen = torch.Generator().manual_seed(1)
    reps = [torch.randn(t[0].size(0), hidden, generator=gen) * 0.1 for t in batches.triples]
    counters = dict.fromkeys(versions, 0)

    def pick(version: str) -> int:
        index = counters[version] % len(batches)
        counters[version] += 1
        return index

    def ours() -> float:
        model, opt = steppers["ours"]
        item_seq, item_seq_len, target = batches.triples[pick("ours")]
        opt.zero_grad(set_to_none=True)
        batch = build_session_batch(item_seq, item_seq_len, target, num_items=num_items)
        loss = model.loss(batch)
        loss.backward()
        opt.step()
        return loss.item()

    def ours_plain() -> float:
        model, opt = steppers["ours_plain"]
        item_seq, item_seq_len, target = batches.triples[pick("ours_plain")]
        opt.zero_grad(set_to_none=True)
        batch = build_session_batch(item_seq, item_seq_len, target, num_items=num_items)
        scores = model.encode(batch) @ model.item_embedding.weight.t()
        loss = F.cross_entropy(scores, target) + reg_weight * model.embedding_regularizer()
        loss.backward()
        opt.step()
        return loss.item()

    def dense(version: str = "dense") -> float:
        model, opt = steppers[version]
        item_seq, item_seq_len, target = batches.triples[pick(version)]
        opt.zero_grad(set_to_none=True)
        loss = model.loss(item_seq, item_seq_len, target)
        loss.backward()
        opt.step()
        return loss.item()

    def dense_numpy() -> float:
        return dense("dense_numpy")

    def dense_trimmed() -> float:
        model, opt = steppers["dense_trimmed"]
        item_seq, item_seq_len, target = batches.triples[pick("dense_trimmed")]
        opt.zero_grad(set_to_none=True)
        longest = int(item_seq_len.max())
        loss = model.loss(item_seq[:, :longest], item_seq_len, target)
        loss.backward()
        opt.step()
        return loss.item()

    def output_layer() -> float:
        table, opt = steppers["output_layer"]
        i = pick("output_layer")
        target = batches.triples[i][2]
        session = reps[i].clone().requires_grad_(True)
        opt.zero_grad(set_to_none=True)
        loss = chunked_softmax_cross_entropy(session, table, target, reg_weight)
        loss.backward()
        opt.step()
        return loss.item()

    every = {"ours": ours, "ours_plain": ours_plain, "dense": dense, "dense_numpy": dense_numpy,
             "dense_trimmed": dense_trimmed,
             "output_layer": output_layer}
    return {v: every[v] for v in versions}


def summarize_case(times: dict, batch_size: int) -> dict[str, Any]:
    out = C.summarize(times)
    med = out["median_s"]
    out["samples_per_s"] = {k: batch_size / v for k, v in med.items()}
    out["speedup_vs_dense"] = {k: med["dense"] / med[k] for k in med if k != "dense"}
    if "dense_trimmed" in med:
        out["speedup_ours_vs_dense_trimmed"] = med["dense_trimmed"] / med["ours"]
    if "dense_numpy" in med:
        out["speedup_ours_vs_dense_numpy"] = med["dense_numpy"] / med["ours"]
        out["speedup_ours_plain_vs_dense_numpy"] = med["dense_numpy"] / med["ours_plain"]
    if "output_layer" in med:
        out["step_over_output_layer"] = {k: med[k] / med["output_layer"]
                                         for k in med if k != "output_layer"}
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = C.base_parser(__doc__)
    parser.add_argument("--hidden", type=int, default=64,
                        help="hidden size (default 64, RecBole's GCSAN default)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--max-len", type=int, default=50,
                        help="padded length of Diginetica batches (RecBole's default 50)")
    C.add_sweep_arguments(parser)
    args = parser.parse_args(argv)
    threads = C.setup_threads(args.threads)
    env = C.environment(argv, "bench_train_step.py")
    sweep = C.Sweep.from_args(args, repeats=10, budget=10.0)
    num_items = C.DIGINETICA_NUM_ITEMS
    test = C.read_test_tsv(C.data_dir(args.data_dir) / "diginetica" / "test.tsv")

    results = []
    parity = None
    cases = sweep.cases(args.max_len)
    for source, batch_size, max_len in cases:
        batches = sweep.batches(source, batch_size, max_len, test, num_items,
                                args.seed)
        versions = (("ours", "ours_plain", "dense", "dense_numpy", "dense_trimmed",
                     "output_layer")
                    if source == "diginetica" else ("ours", "ours_plain", "dense", "output_layer"))
        steppers = make_steppers(num_items, args.hidden, args.seed, args.lr)
        if parity is None:
            parity = parity_check(steppers, batches.triples[0])
        fns = make_step_fns(steppers, batches, versions, args.hidden)
        times = sweep.time(fns)
        case = {"source": source, "batch_size": batch_size, "max_len": max_len,
                "mean_session_len": batches.mean_length()}
        case.update(summarize_case(times, batch_size))
        results.append(case)
        print(f"  {source:10s} B={batch_size:4d} L={max_len:4d}  "
              + "  ".join(f"{k}={v * 1e3:.1f}ms" for k, v in case["median_s"].items()),
              file=sys.stderr, flush=True)

    payload = {
        "benchmark": NAME,
        "description": "Training step time (forward + backward + Adam) per batch.",
        "environment": env,
        "config": {"num_items": num_items, "hidden_channels": args.hidden, "num_layers": 1,
                   "num_heads": 1, "inner_channels": 256, "step": 1, "dropout": 0.2,
                   "loss_type": "CE",
                   "optimizer": f"ours: fused Adam(lr={args.lr}); ours_plain and dense: "
                   f"Adam(lr={args.lr})",
                   "diginetica_max_len": args.max_len, **sweep.as_config(),
                   "threads": threads, "versions": DESCRIPTIONS,
                   "data": "diginetica: test.tsv prefixes drawn at random (seeded), last "
                   "max_len clicks, right-padded; synthetic: full-length random sessions"},
        "method": "Fresh models with identical weights (DenseGCSAN loads "
        "to_recbole_state_dict(GCSAN)) and their own Adam per case; dropout on (train mode). "
        "Timed: the whole step, graph building included for ours, the NumPy loop included for "
        "dense. " + C.timing_method(sweep.min_sample_s),
        "parity_check_eval_mode": parity,
        "results": results,
    }
    return C.publish(args.out, NAME, payload, render)


def render(payload: dict) -> str:
    rows = []
    for c in payload["results"]:
        sps = c["samples_per_s"]
        sp = c["speedup_vs_dense"]
        ratio = c.get("step_over_output_layer", {})
        rows.append([
            c["source"], c["batch_size"], c["max_len"], round(c["mean_session_len"], 1),
            c["median_s"]["ours"] * 1e3, c["median_s"]["dense"] * 1e3,
            sps["ours"], sps.get("ours_plain", "-"), sps["dense"], sps.get("dense_numpy", "-"),
            sps.get("dense_trimmed", "-"), sps["output_layer"], sp.get("ours_plain", "-"),
            sp["ours"],
            c.get("speedup_ours_plain_vs_dense_numpy", "-"),
            c.get("speedup_ours_vs_dense_numpy", "-"),
            c.get("speedup_ours_vs_dense_trimmed", "-"),
            ratio.get("ours", "-"), ratio.get("dense", "-"), c["repeats"],
        ])
    table = C.format_table(
        ["data", "B", "L", "mean len", "ours ms", "dense ms", "ours samples/s",
         "ours-plain samples/s", "dense samples/s", "dense-numpy samples/s",
         "dense-trimmed samples/s", "output-layer samples/s",
         "ours-plain speed-up vs dense (same CE and Adam)", "ours speed-up vs dense",
         "ours-plain speed-up vs dense-numpy", "ours speed-up vs dense-numpy",
         "ours speed-up vs dense-trimmed", "ours / output layer",
         "dense / output layer", "repeats"], rows)
    cfg = payload["config"]
    parity = payload.get("parity_check_eval_mode") or {}
    return (f"### Training step ({C.env_line(payload)})\n\n"
            f"Hidden {cfg['hidden_channels']}, {cfg['num_items']:,} items, {cfg['optimizer']}. "
            "Medians; speed-up = dense time / ours time. 'ours-plain' runs the dense version's "
            "cross-entropy and plain Adam (the graph formulation alone); 'ours' adds the "
            "library's fused cross-entropy and fused Adam. `/ output layer` = step time / time of "
            "the output layer alone (its lower bound). Eval-mode loss on one batch from the same "
            f"weights: ours {parity.get('loss_ours', float('nan')):.6f}, dense "
            f"{parity.get('loss_dense', float('nan')):.6f}.\n\n" + table)


if __name__ == "__main__":
    main()
