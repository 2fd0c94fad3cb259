"""Memory of one training step vs the padded length L, GCSAN vs DenseGCSAN.

Three measures per batch and version, each explained in the JSON:

* ``graph_bytes``: the graph tensors the model consumes (dense: nodes, alias,
  [B, L, 2L] adjacency; ours: x, edge_index, alias, batch, ptr).
* ``saved_for_backward_bytes``: the distinct tensor storages autograd keeps
  from the forward pass for the backward pass (``saved_tensors_hooks``),
  parameters excluded, for the session encoder alone (``model.encode(batch)``) and for
  the whole loss (the output layer's [B, num_items] logits included).
* ``peak_step_bytes``: the peak of live bytes from the CPU allocator during a
  whole step (graph building, forward, backward, Adam), above what was live
  before it, read from ``torch.profiler``'s allocation events
  (``profile_memory=True``); the dense version's NumPy arrays, which that
  allocator does not see, are added.

    python benchmarks/bench_memory.py [--quick] [--threads N]
"""
from __future__ import annotations

import sys
from typing import Any

import _common as C
import torch
from torch.profiler import ProfilerActivity, profile

from gcsan_pyg.data import build_session_batch

NAME = "memory"


class SavedTensors:
    """Sums the bytes of distinct storages saved for backward, parameters excluded."""

    def __init__(self, params: list[torch.Tensor]) -> None:
        self.exclude = {p.untyped_storage().data_ptr() for p in params}
        self.storages: dict[int, int] = {}

    def pack(self, t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in self.exclude and ptr != 0:
            self.storages[ptr] = max(self.storages.get(ptr, 0), storage.nbytes())
        return t

    @property
    def nbytes(self) -> int:
        return sum(self.storages.values())


def saved_bytes(fn: Any, params: list[torch.Tensor]) -> int:
    tracker = SavedTensors(params)
    with torch.autograd.graph.saved_tensors_hooks(tracker.pack, lambda t: t):
        out = fn()
    del out
    return tracker.nbytes


def peak_bytes(fn: Any) -> int | None:
    """Peak of (allocations - frees) of the CPU allocator while ``fn`` runs."""
    try:
        from torch._C._profiler import _EventType
    except ImportError:  # pragma: no cover - private API moved
        return None
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()

    def walk(nodes: Any) -> Any:
        for node in nodes:
            yield node
            yield from walk(node.children)

    events = [e for e in walk(prof.profiler.kineto_results.experimental_event_tree())
              if e.tag == _EventType.Allocation and str(e.extra_fields.device) == "cpu"]
    events.sort(key=lambda e: e.start_time_ns)
    live = peak = 0
    for e in events:
        live += e.extra_fields.alloc_size
        peak = max(peak, live)
    return peak


def measure(ours: Any, dense: Any, triple: tuple, num_items: int) -> dict[str, Any]:
    item_seq, item_seq_len, target = triple
    batch_size, max_len = item_seq.shape
    opt_ours = torch.optim.Adam(ours.parameters(), lr=1e-3)
    opt_dense = torch.optim.Adam(dense.parameters(), lr=1e-3)

    def step_ours() -> None:
        opt_ours.zero_grad(set_to_none=True)
        batch = build_session_batch(item_seq, item_seq_len, target, num_items=num_items)
        ours.loss(batch).backward()
        opt_ours.step()

    def step_dense() -> None:
        opt_dense.zero_grad(set_to_none=True)
        dense.loss(item_seq, item_seq_len, target).backward()
        opt_dense.step()

    # One step each first, so Adam's state exists before measuring.
    step_ours()
    step_dense()
    opt_ours.zero_grad(set_to_none=True)
    opt_dense.zero_grad(set_to_none=True)

    batch = build_session_batch(item_seq, item_seq_len, target, num_items=num_items)
    ours_graph = C.tensor_bytes(*(batch[k] for k in batch.keys() if k != "y"))
    numpy_bytes = batch_size * max_len * 8 * 2 + batch_size * max_len * 2 * max_len * 4
    ours_params = list(ours.parameters())
    dense_params = list(dense.parameters())
    out = {
        "graph_bytes": {"ours": ours_graph, "dense": numpy_bytes},
        "saved_for_backward_bytes_encoder": {
            "ours": saved_bytes(lambda: ours.encode(batch), ours_params),
            "dense": saved_bytes(lambda: dense(item_seq, item_seq_len), dense_params),
        },
        "saved_for_backward_bytes_loss": {
            "ours": saved_bytes(lambda: ours.loss(batch), ours_params),
            "dense": saved_bytes(lambda: dense.loss(item_seq, item_seq_len, target),
                                 dense_params),
        },
    }
    peak_ours = peak_bytes(step_ours)
    peak_dense = peak_bytes(step_dense)
    out["peak_step_bytes"] = {
        "ours": peak_ours,
        "dense": None if peak_dense is None else peak_dense + numpy_bytes,
    }
    out["ratio_dense_over_ours"] = {
        key: (out[key]["dense"] / out[key]["ours"]
              if out[key]["ours"] and out[key]["dense"] is not None else None)
        for key in ("graph_bytes", "saved_for_backward_bytes_encoder",
                    "saved_for_backward_bytes_loss", "peak_step_bytes")
    }
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = C.base_parser(__doc__)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--max-len", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=None,
                        help="Diginetica batch size (default 512; quick: 16)")
    parser.add_argument("--sweep-batch-size", type=int, default=None)
    parser.add_argument("--lengths", type=int, nargs="+", default=None)
    args = parser.parse_args(argv)
    threads = C.setup_threads(args.threads)
    env = C.environment(argv, "bench_memory.py")
    quick = args.quick
    batch_size = args.batch_size or (16 if quick else 512)
    sweep_b = args.sweep_batch_size or (16 if quick else 128)
    lengths = args.lengths or ([10, 50] if quick else [10, 20, 50, 100, 200])
    num_items = C.DIGINETICA_NUM_ITEMS
    test = C.read_test_tsv(C.data_dir(args.data_dir) / "diginetica" / "test.tsv")

    cases = [("diginetica", batch_size, length) for length in (lengths if quick else [10, 50])]
    cases += [("synthetic", sweep_b, length) for length in lengths]
    results = []
    for source, b, max_len in cases:
        if source == "diginetica":
            batches = C.diginetica_batches(test, b, max_len, 1, args.seed)
        else:
            batches = C.synthetic_batches(b, max_len, 1, num_items, args.seed)
        ours, dense = C.make_models(num_items, args.hidden, seed=args.seed)
        # NumPy stacking: the dense graph tensors are NumPy memory of a known size (see
        # peak_step_bytes), not the reference's element-by-element torch copies.
        dense.stacking = "numpy"
        case = {"source": source, "batch_size": b, "max_len": max_len,
                "mean_session_len": batches.mean_length()}
        case.update(measure(ours, dense, batches.triples[0], num_items))
        results.append(case)
        print(f"  {source:10s} B={b:4d} L={max_len:4d}  peak ours="
              f"{case['peak_step_bytes']['ours']} dense={case['peak_step_bytes']['dense']}",
              file=sys.stderr, flush=True)

    payload = {
        "benchmark": NAME,
        "description": "Memory per training batch vs padded length L.",
        "environment": env,
        "config": {"num_items": num_items, "hidden_channels": args.hidden,
                   "diginetica_batch_size": batch_size, "sweep_batch_size": sweep_b,
                   "sweep_lengths": lengths, "threads": threads, "train_mode": True},
        "method": {
            "graph_bytes": "numel * element_size of the graph tensors of the batch (dense: "
            "nodes [B,L] int64 + alias [B,L] int64 + adjacency [B,L,2L] float32; ours: x, "
            "edge_index, alias, batch, ptr).",
            "saved_for_backward_bytes_encoder": "bytes of the distinct storages passed to "
            "torch.autograd.graph.saved_tensors_hooks' pack hook during model.encode(batch) "
            "(session representations only), parameters' storages excluded. This is the activation "
            "memory that must live from the forward to the backward pass; a view counts its "
            "whole storage once.",
            "saved_for_backward_bytes_loss": "the same over the whole loss (the [B, num_items] "
            "logits / log-softmax of the output layer included, equal in both versions).",
            "peak_step_bytes": "peak over a whole training step (graph building, forward, "
            "backward, Adam) of bytes allocated minus bytes freed through PyTorch's CPU "
            "allocator, from torch.profiler(profile_memory=True) allocation events in time "
            "order, counted from the step's start (parameters and Adam state, allocated by an "
            "earlier step, are not in it; gradients are, zero_grad(set_to_none=True)). The "
            "dense version's NumPy nodes/alias/adjacency, invisible to that allocator, are "
            "added (they live through the step: the adjacency is saved for backward); the dense "
            "model stacks them with NumPy (DenseGCSAN(stacking='numpy')) so that they are "
            "exactly those arrays. One measurement per case: allocation sizes do not depend on "
            "timing.",
        },
        "results": results,
    }
    return C.publish(args.out, NAME, payload, render)


def _mib(value: int | None) -> Any:
    return "-" if value is None else value / 2**20


def render(payload: dict) -> str:
    rows = []
    for c in payload["results"]:
        ratio = c["ratio_dense_over_ours"]
        rows.append([
            c["source"], c["batch_size"], c["max_len"], round(c["mean_session_len"], 1),
            _mib(c["graph_bytes"]["ours"]), _mib(c["graph_bytes"]["dense"]),
            _mib(c["saved_for_backward_bytes_encoder"]["ours"]),
            _mib(c["saved_for_backward_bytes_encoder"]["dense"]),
            ratio["saved_for_backward_bytes_encoder"],
            _mib(c["peak_step_bytes"]["ours"]), _mib(c["peak_step_bytes"]["dense"]),
            ratio["peak_step_bytes"] if ratio["peak_step_bytes"] is not None else "-",
        ])
    table = C.format_table(
        ["data", "B", "L", "mean len", "graph ours MiB", "graph dense MiB",
         "encoder saved ours MiB", "encoder saved dense MiB", "encoder saved ratio",
         "step peak ours MiB", "step peak dense MiB", "step peak ratio"], rows)
    return (f"### Memory per training batch ({C.env_line(payload)})\n\n"
            "Ratios are dense / ours. 'encoder saved' = activations kept for backward by the "
            "session encoder (output layer excluded); 'step peak' = peak live allocator bytes "
            "of a whole step above its start (output layer included). See the JSON's "
            "`method`.\n\n" + table)


if __name__ == "__main__":
    main()
