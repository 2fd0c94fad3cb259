"""Where the time of GCSAN goes: ``torch.profiler`` over our training step and
our full-sort inference on Diginetica batches (default B=512), the top ops by
self CPU time, and the time per phase (``record_function`` labels set here,
around the library calls; the library itself is not touched).

    python benchmarks/bench_profile.py [--quick] [--threads N] [--top K]
"""
from __future__ import annotations

import sys
from typing import Any

import _common as C
import torch
from torch.profiler import ProfilerActivity, profile, record_function

from gcsan_pyg.data import build_session_batch
from gcsan_pyg.nn import chunked_softmax_cross_entropy
from gcsan_pyg.training import LazyAdam

NAME = "profile"
PHASE_PREFIX = "phase: "


def train_step(model: Any, opt: Any, triple: tuple, num_items: int) -> None:
    """One step, split in phases; the loss equals GCSAN.loss for loss_type='CE'."""
    item_seq, item_seq_len, target = triple
    with record_function(PHASE_PREFIX + "zero_grad"):
        opt.zero_grad(set_to_none=True)
    with record_function(PHASE_PREFIX + "build_session_batch"):
        batch = build_session_batch(item_seq, item_seq_len, target, num_items=num_items)
    with record_function(PHASE_PREFIX + "session encoder forward (model.encode(batch))"):
        session = model.encode(batch)
    with record_function(PHASE_PREFIX + "output layer forward (scores, CE, regulariser)"):
        loss = chunked_softmax_cross_entropy(
            session, model.item_embedding.weight, batch.y, model.reg_weight
        )
    with record_function(PHASE_PREFIX + "backward"):
        loss.backward()
    with record_function(PHASE_PREFIX + "Adam step"):
        opt.step()


@torch.no_grad()
def inference(model: Any, triple: tuple, num_items: int, k: int = 20) -> torch.Tensor:
    """Equals GCSAN.recommend(batch, k)."""
    item_seq, item_seq_len, _ = triple
    with record_function(PHASE_PREFIX + "build_session_batch"):
        batch = build_session_batch(item_seq, item_seq_len, num_items=num_items)
    with record_function(PHASE_PREFIX + "session encoder forward (model.encode(batch))"):
        session = model.encode(batch)
    with record_function(PHASE_PREFIX + "scores and top-k (model.top_items)"):
        return model.top_items(session, k)


def graph_build(triple: tuple, num_items: int) -> Any:
    """build_session_batch(..., validate=True), as the models call it."""
    item_seq, item_seq_len, target = triple
    with record_function(PHASE_PREFIX + "build_session_batch"):
        return build_session_batch(item_seq, item_seq_len, target, num_items=num_items)


def profile_fn(fn: Any, steps: int, top: int) -> dict[str, Any]:
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            fn()
    averages = prof.key_averages()
    ops = [e for e in averages if not e.key.startswith(PHASE_PREFIX)]
    total_self = sum(e.self_cpu_time_total for e in ops)
    ops.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    top_ops = [{
        "op": e.key,
        "self_cpu_ms_per_step": e.self_cpu_time_total / 1e3 / steps,
        "self_cpu_share": e.self_cpu_time_total / total_self if total_self else 0.0,
        "calls_per_step": e.count / steps,
    } for e in ops[:top]]
    phase_events = [e for e in averages if e.key.startswith(PHASE_PREFIX)]
    phase_total = sum(e.cpu_time_total for e in phase_events)
    phases = [{
        "phase": e.key[len(PHASE_PREFIX):],
        "cpu_ms_per_step": e.cpu_time_total / 1e3 / steps,
        "share": e.cpu_time_total / phase_total if phase_total else 0.0,
    } for e in phase_events]
    phases.sort(key=lambda p: p["cpu_ms_per_step"], reverse=True)
    return {"steps": steps, "self_cpu_ms_per_step_total": total_self / 1e3 / steps,
            "phases_cpu_ms_per_step_total": phase_total / 1e3 / steps,
            "outside_aten_ops_share": (1 - total_self / phase_total) if phase_total else None,
            "top_ops_by_self_cpu": top_ops, "phases": phases}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = C.base_parser(__doc__)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--max-len", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=None, help="default 512 (quick: 16)")
    parser.add_argument("--steps", type=int, default=None, help="profiled steps (default 5)")
    parser.add_argument("--build-batch-size", type=int, default=None,
                        help="batch size of the graph-building profile (default 256; quick: 16)")
    parser.add_argument("--build-steps", type=int, default=None,
                        help="profiled graph builds (default 50)")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args(argv)
    threads = C.setup_threads(args.threads)
    env = C.environment(argv, "bench_profile.py")
    batch_size = args.batch_size or (16 if args.quick else 512)
    steps = args.steps or (1 if args.quick else 5)
    num_items = C.DIGINETICA_NUM_ITEMS
    test = C.read_test_tsv(C.data_dir(args.data_dir) / "diginetica" / "test.tsv")
    batches = C.diginetica_batches(test, batch_size, args.max_len, steps, args.seed)

    model, _ = C.make_models(num_items, args.hidden, seed=args.seed)
    opt = LazyAdam(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(2):  # warm-up (Adam state, allocator)
        train_step(model, opt, batches.next(), num_items)
    train = profile_fn(lambda: train_step(model, opt, batches.next(), num_items), steps, args.top)
    print("  profiled the training step", file=sys.stderr, flush=True)
    model.eval()
    for _ in range(2):
        inference(model, batches.next(), num_items)
    infer = profile_fn(lambda: inference(model, batches.next(), num_items), steps, args.top)
    build_b = args.build_batch_size or (16 if args.quick else 256)
    build_steps = args.build_steps or (2 if args.quick else 50)
    build_batches = C.diginetica_batches(test, build_b, args.max_len, 8, args.seed)
    for _ in range(3):
        graph_build(build_batches.next(), num_items)
    build = profile_fn(lambda: graph_build(build_batches.next(), num_items), build_steps,
                       args.top)

    payload = {
        "benchmark": NAME,
        "description": "torch.profiler breakdown of GCSAN (ours) per batch.",
        "environment": env,
        "config": {"num_items": num_items, "hidden_channels": args.hidden,
                   "batch_size": batch_size, "max_len": args.max_len, "threads": threads,
                   "profiled_steps": steps, "graph_build_batch_size": build_b,
                   "graph_build_profiled_steps": build_steps,
                   "data": "diginetica test prefixes"},
        "method": "torch.profiler (CPU activity) over `steps` consecutive steps after 2 warm-up "
        "steps; key_averages() of the ATen ops sorted by self CPU time (their sum is the total; "
        "'share' is of that total), and the CPU time (children included) of each phase label "
        "set around the library calls ('share' of the phases' sum); the phases' total minus the "
        "ops' self total is time spent outside ATen ops. The train step computes "
        "the loss as GCSAN.loss does for CE (split in two phases only to time them apart); "
        "inference equals GCSAN.recommend. Profiler overhead inflates "
        "the many tiny ops relative to the few big ones.",
        "train_step": train,
        "inference": infer,
        "graph_build": build,
    }
    return C.publish(args.out, NAME, payload, render)


def render(payload: dict) -> str:
    parts = [f"### Profile of ours ({C.env_line(payload)})\n\n"
             f"B={payload['config']['batch_size']}, Diginetica prefixes, per-step averages "
             f"over {payload['config']['profiled_steps']} steps."]
    cfg = payload["config"]
    for key, title in (("train_step", f"training step, B={cfg['batch_size']}"),
                       ("inference", f"inference, B={cfg['batch_size']}"),
                       ("graph_build", "graph building alone, "
                        f"B={cfg.get('graph_build_batch_size')}")):
        if key not in payload:
            continue
        section = payload[key]
        phases = C.format_table(["phase", "CPU ms / step", "share"],
                                [[p["phase"], p["cpu_ms_per_step"], p["share"]]
                                 for p in section["phases"]])
        ops = C.format_table(["op", "self CPU ms / step", "share", "calls / step"],
                             [[o["op"], o["self_cpu_ms_per_step"], o["self_cpu_share"],
                               o["calls_per_step"]] for o in section["top_ops_by_self_cpu"]])
        outside = section.get("outside_aten_ops_share")
        note = ("" if outside is None else
                f"; {outside:.0%} of the phases' time is outside ATen ops (Python, PyG "
                "`Batch`/`Data` bookkeeping, dispatch, profiler overhead)")
        parts.append(f"#### {title}: phases ({section['phases_cpu_ms_per_step_total']:.2f} "
                     f"ms / step; ATen ops' self CPU {section['self_cpu_ms_per_step_total']:.2f}"
                     f" ms / step{note})\n\n{phases}\n\n"
                     f"#### {title}: top ops by self CPU time\n\n{ops}")
    return "\n\n".join(parts)


if __name__ == "__main__":
    main()
