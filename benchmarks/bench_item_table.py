"""The item table at catalogue sizes from Diginetica's to 5M items: training
step time and memory of the exact softmax (the previous fused op, holding
[B, N] logits, and the chunked op the library uses) and of the sampled
softmax; full-ranking top-20 time and memory.

    python benchmarks/bench_item_table.py [--quick] [--threads N]

Every case runs in a fresh subprocess (with ``--quick``, in this one), so
that its peak resident memory is its own: the memory a step needs beyond
what persists between steps is the peak RSS of the timed steps (the
kernel's high-water mark, reset after the warm-up step) minus the RSS
between steps (model, item table, Adam's moments), minus the table's dense
gradient (exact CE: allocated by every step).
"""
from __future__ import annotations

import argparse
import functools
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import _common as C
import torch

NAME = "item_table"
SIZES = [43_098, 250_000, 1_000_000, 5_000_000]
QUICK_SIZES = [43_098, 100_000]
# The previous fused op holds [B, N] float32 logits: skipped past this size.
FUSED_MAX_BYTES = 4 * 2**30
LOSSES = {
    "fused exact CE": {"loss_type": "CE"},
    "chunked exact CE": {"loss_type": "CE"},
    "sampled CE, S=1k": {"loss_type": "sampled", "num_negatives": 1024},
    "sampled CE, S=8k": {"loss_type": "sampled", "num_negatives": 8192},
}
HIDDEN = 64
ALTERNATING = "fused and chunked exact CE in turns"


def _memory() -> dict[str, int]:
    """This process's resident set and its high-water mark, in bytes."""
    values = {}
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) * 1024
    return values


def _reset_peak() -> None:
    # Linux: "5" resets the peak resident set size (VmHWM) to the current one.
    with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
        handle.write("5")


def _zipf_counts(num_items: int, seed: int) -> torch.Tensor:
    # Training counts of a catalogue whose popularity falls as 1 / rank.
    gen = torch.Generator().manual_seed(seed)
    rank = torch.randperm(num_items - 1, generator=gen).double() + 1
    return torch.cat([torch.zeros(1, dtype=torch.float64), 1e6 / rank])


@functools.cache
def _test_samples(data_dir: str) -> Any:
    return C.read_test_tsv(Path(data_dir) / "diginetica" / "test.tsv")


def run_case(case: dict[str, Any]) -> dict[str, Any]:
    """One case, in this process: a training step of one loss, or ranking."""
    from full_softmax import full_softmax_cross_entropy

    from gcsan_pyg.data import build_session_batch
    from gcsan_pyg.nn import GCSAN
    from gcsan_pyg.training import LazyAdam

    torch.set_num_threads(case["threads"])
    torch.manual_seed(0)
    num_items, batch_size = case["num_items"], case["batch_size"]
    test = _test_samples(case["data_dir"])
    rows = torch.randperm(len(test), generator=torch.Generator().manual_seed(1))[:batch_size]
    item_seq, lengths = test.padded(rows, 50)  # Diginetica prefixes: ids valid for any N
    batch = build_session_batch(item_seq, lengths, test.target[rows], num_items=num_items)
    kind = case["kind"]
    options = dict(LOSSES.get(kind, {"loss_type": "CE"}))
    model = GCSAN(num_items, hidden_channels=HIDDEN, **options)
    sampled_loss = None
    if options["loss_type"] == "sampled":
        sampled_loss = model.sampled_softmax(_zipf_counts(num_items, 0))
    table_bytes = num_items * HIDDEN * 4

    if kind == "ranking":
        model.eval()
        with torch.no_grad():
            session = model.encode(batch)

        def call() -> None:
            model.top_items(session, k=20)
        dense_grad_bytes = 0
    else:
        model.train()
        optimizer = LazyAdam(model.parameters(), lr=1e-3)

        def step(fused: bool) -> None:
            optimizer.zero_grad(set_to_none=True)
            if fused:
                loss = full_softmax_cross_entropy(model.encode(batch), model.item_embedding.weight,
                                                  batch.y, model.reg_weight)
            else:
                loss = model.loss(batch, sampled_loss=sampled_loss)
            loss.backward()
            optimizer.step()

        if kind == ALTERNATING:
            return _alternate(step, case)
        call = functools.partial(step, kind == "fused exact CE")
        dense_grad_bytes = table_bytes if options["loss_type"] == "CE" else 0

    call()  # warm-up: allocates Adam's moments and any cache
    if kind != "ranking":
        optimizer.zero_grad(set_to_none=True)
    between = _memory()["VmRSS"]
    _reset_peak()
    times = []
    while len(times) < case["min_calls"] or (sum(times) < case["min_seconds"]
                                             and len(times) < case["max_calls"]):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    peak = _memory()["VmHWM"]
    return {
        "times_s": times,
        "median_s": C.median(times),
        "rss_between_calls_bytes": between,
        "peak_rss_bytes": peak,
        "extra_bytes": peak - between - dense_grad_bytes,
        "table_bytes": table_bytes,
        "dense_grad_bytes": dense_grad_bytes,
    }


def _alternate(step: Any, case: dict[str, Any]) -> dict[str, Any]:
    # The fused and the chunked step in turns, on one model and batch: their
    # ratio is measured side by side, not across processes run minutes apart.
    times: dict[bool, list[float]] = {True: [], False: []}
    step(True)
    step(False)
    for turn in range(2 * case["alternations"]):
        for fused in ((True, False) if turn % 2 else (False, True)):
            start = time.perf_counter()
            step(fused)
            times[fused].append(time.perf_counter() - start)
    return {"times_fused_s": times[True], "times_chunked_s": times[False],
            "median_fused_s": C.median(times[True]), "median_chunked_s": C.median(times[False])}


def _spawn(case: dict[str, Any]) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__)), "--run-case", json.dumps(case)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=C.REPO)
    if proc.returncode != 0:
        raise RuntimeError(f"case {case} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = C.base_parser(__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=None)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=None)
    parser.add_argument("--run-case", default=None, help=argparse.SUPPRESS)  # one case (internal)
    args = parser.parse_args(argv)
    if args.run_case is not None:
        print(json.dumps(run_case(json.loads(args.run_case))))
        return {}
    threads = C.setup_threads(args.threads)
    env = C.environment(argv, "bench_item_table.py")
    sizes = args.sizes or (QUICK_SIZES if args.quick else SIZES)
    batch_sizes = args.batch_sizes or ([100] if args.quick else [100, 512])
    data_dir = str(C.data_dir(args.data_dir))
    base = {"threads": threads, "data_dir": data_dir, "min_calls": 1 if args.quick else 3,
            "max_calls": 2 if args.quick else 20, "min_seconds": 0.0 if args.quick else 2.0}
    cases = []
    for num_items in sizes:
        for batch_size in batch_sizes + ([256] if num_items == max(sizes) and not args.quick
                                         else []):
            for kind in [*LOSSES, "ranking"]:
                if kind == "ranking" and batch_size != 100 and not args.quick:
                    continue  # full-ranking inference: B = 100
                case = {**base, "num_items": num_items, "batch_size": batch_size, "kind": kind}
                logits_bytes = batch_size * num_items * 4
                if kind == "fused exact CE" and logits_bytes > FUSED_MAX_BYTES:
                    case["skipped"] = (f"the [B, N] logits alone would take "
                                       f"{logits_bytes / 2**30:.1f} GiB")
                else:
                    print(f"  N={num_items:,} B={batch_size} {kind}", file=sys.stderr, flush=True)
                    # A smoke test runs in this process: no fresh memory high-water mark.
                    case.update(run_case(case) if args.quick else _spawn(case))
                cases.append(case)
    # The time target's ratio, side by side in one process.
    pair = {**base, "num_items": sizes[0], "batch_size": 100, "kind": ALTERNATING,
            "alternations": 2 if args.quick else 15}
    print(f"  N={sizes[0]:,} B=100 {ALTERNATING}", file=sys.stderr, flush=True)
    pair.update(run_case(pair) if args.quick else _spawn(pair))
    cases.append(pair)
    payload = {
        "benchmark": NAME,
        "description": "Training step (forward, backward, Adam) and full-ranking top-20 "
                       "against the size of the item table.",
        "environment": env,
        "config": {"hidden_channels": HIDDEN, "sizes": sizes, "batch_sizes": batch_sizes,
                   "threads": threads, "losses": LOSSES,
                   "data": "Diginetica test prefixes (seeded draw), ids valid for every N; "
                           "sampled CE draws by a 1/rank popularity over all N items",
                   "optimizer": "gcsan_pyg.training.LazyAdam(lr=1e-3) (fused Adam on dense "
                                "gradients, lazy on sparse ones)",
                   "fused_max_logits_bytes": FUSED_MAX_BYTES},
        "method": __doc__.split("\n\n", 1)[1].strip(),
        "results": [{k: v for k, v in c.items() if k not in ("data_dir",)} for c in cases],
        "targets": _targets(cases),
    }
    return C.publish(args.out, NAME, payload, render)


def _find(cases: list[dict], **match: Any) -> dict | None:
    for case in cases:
        if all(case.get(k) == v for k, v in match.items()) and "median_s" in case:
            return case
    return None


def _targets(cases: list[dict]) -> list[dict]:
    """The issue's targets, where the cases they need were measured."""
    sizes = sorted({c["num_items"] for c in cases})
    small, large = sizes[0], sizes[-1]
    targets = []

    def add(name: str, value: float | None, threshold: float, higher: bool = True) -> None:
        targets.append({"name": name, "value": None if value is None else round(value, 3),
                        "threshold": threshold, "higher_is_better": higher})

    pair = next((c for c in cases if c["kind"] == ALTERNATING), None)
    if pair:
        add(f"chunked / fused exact CE step time, N={pair['num_items']:,}, B=100 "
            "(alternating)", pair["median_chunked_s"] / pair["median_fused_s"], 1.1,
            higher=False)
    big = _find(cases, num_items=large, batch_size=256, kind="chunked exact CE")
    if big:
        add(f"exact CE step: memory beyond table, gradient and Adam (GiB), N={large:,}, B=256",
            big["extra_bytes"] / 2**30, 1.0, higher=False)
    mid = 1_000_000 if 1_000_000 in sizes else None
    exact = _find(cases, num_items=mid, batch_size=100, kind="chunked exact CE")
    sampled = _find(cases, num_items=mid, batch_size=100, kind="sampled CE, S=8k")
    if exact and sampled:
        add("exact / sampled (S=8k) step time, N=1M, B=100",
            exact["median_s"] / sampled["median_s"], 20.0)
    first = _find(cases, num_items=small, batch_size=100, kind="sampled CE, S=8k")
    last = _find(cases, num_items=large, batch_size=100, kind="sampled CE, S=8k")
    if first and last and large > small:
        add(f"sampled (S=8k) step time at N={large:,} / at N={small:,}, B=100",
            last["median_s"] / first["median_s"], 2.0, higher=False)
    ranking = _find(cases, num_items=large, batch_size=100, kind="ranking")
    if ranking:
        add(f"top-20 ranking: memory beyond the table (MiB), N={large:,}, B=100",
            ranking["extra_bytes"] / 2**20, 256.0, higher=False)
    return C.evaluate_targets(targets)


def render(payload: dict) -> str:
    rows = []
    for c in payload["results"]:
        if c["kind"] == ALTERNATING:
            rows.append([c["num_items"], c["batch_size"], c["kind"],
                         f"{c['median_fused_s'] * 1e3:.1f} / {c['median_chunked_s'] * 1e3:.1f}",
                         "-", "-", "fused / chunked, in turns in one process"])
            continue
        if "skipped" in c:
            rows.append([c["num_items"], c["batch_size"], c["kind"], "-", "-", "-",
                         f"skipped: {c['skipped']}"])
            continue
        rows.append([c["num_items"], c["batch_size"], c["kind"], c["median_s"] * 1e3,
                     c["extra_bytes"] / 2**20, c["peak_rss_bytes"] / 2**20, ""])
    table = C.format_table(["N", "B", "what", "median ms", "extra MiB", "peak RSS MiB",
                            "note"], rows)
    return (f"### Item table ({C.env_line(payload)})\n\n"
            "A training step (forward, backward, Adam) per loss, and full-ranking top-20 "
            "(`ranking`), against the catalogue size N, hidden 64. `extra MiB`: peak memory of "
            "the timed calls beyond what persists between them (model, table, Adam's moments) "
            "and beyond the table's dense gradient (exact CE); each case in its own process.\n\n"
            + table + "\n\n" + C.render_targets(payload))


if __name__ == "__main__":
    main()
