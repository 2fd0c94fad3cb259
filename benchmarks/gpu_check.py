"""A prepared check of the CUDA path, in one short run (at most ~5 minutes on
one GPU), writing ``results/gpu_check.json``:

1. **parity**: the same weights and batch on the device and on the CPU give
   the same scores, loss and gradients (TF32 off; relative to the largest
   entry, at most ``1e-4``);
2. **bf16**: ``--bf16`` takes effect (the encoder's linear layers run in
   bfloat16; the loss differs from float32's) and stays within the README's
   tolerances: session vectors 2 % (relative L2), every gradient 3 %, the
   loss 0.1 %;
3. **compile**: ``--compile`` compiles on the device and agrees with eager
   to float32 rounding (``1e-5`` absolute, ``1e-4`` relative);
4. **chunked_ce**: the exact chunked softmax cross-entropy over N = 5M items
   equals the dense ``F.cross_entropy`` and, on CUDA, needs no more than the
   table's gradient and its chunk buffers beyond the inputs (the dense logits
   alone would be :math:`B \\cdot N` floats);
5. **torchrun**: ``torchrun --nproc_per_node 1`` runs ``gcsan-pyg train``
   for a short epoch on the device, and a process group on the device's
   backend (NCCL on CUDA, Gloo on the CPU) steps the data-parallel loss (CE
   and sampled softmax) and all-reduces;
6. **latency**: single-session top-20 (batch building included) on the
   Diginetica-size model (43,098 items, hidden 100): p50 / p90 / p99.

``--device cpu --quick`` runs the same logic at tiny sizes on the CPU (the
test suite does); ``--skip`` leaves checks out.

    python benchmarks/gpu_check.py                      # on a CUDA machine
    python benchmarks/gpu_check.py --device cpu --quick --skip compile
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common
import torch
import torch.nn.functional as F

from gcsan_pyg import GCSAN
from gcsan_pyg.data import SessionSamples, generate_synthetic_sessions
from gcsan_pyg.nn import chunked_softmax_cross_entropy
from gcsan_pyg.nn.chunked_softmax import default_chunk_size
from gcsan_pyg.training import SessionBatchLoader, compile_model, distributed

CHECKS = ("parity", "bf16", "compile", "chunked_ce", "torchrun", "latency")
PARITY_REL = 1e-4
BF16_VECTORS, BF16_GRADS, BF16_LOSS = 0.02, 0.03, 0.001
COMPILE_ABS, COMPILE_REL = 1e-5, 1e-4


def _sizes(quick: bool) -> dict[str, int]:
    if quick:
        return dict(num_items=500, hidden=16, batch=64, ce_items=50_000, ce_batch=32,
                    latency_items=2_000, latency_hidden=16, latency_calls=20)
    return dict(num_items=43_098, hidden=100, batch=512, ce_items=5_000_000, ce_batch=256,
                latency_items=_common.DIGINETICA_NUM_ITEMS, latency_hidden=100,
                latency_calls=300)


def _batch(num_items: int, size: int, seed: int = 0):
    data = generate_synthetic_sessions(num_items=num_items - 1, num_train_sessions=size,
                                       num_test_sessions=1, seed=seed)
    samples = SessionSamples.from_sessions(data.train_items, data.train_ptr)
    loader = SessionBatchLoader(samples, size, num_items=num_items)
    return next(iter(loader))


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| over max |b|: an error relative to the compared tensor."""
    a, b = a.detach().float().cpu(), b.detach().float().cpu()
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-30))


def _relative_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().float().cpu(), b.detach().float().cpu()
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b).clamp(min=1e-30))


def _loss_and_grads(model: GCSAN, batch) -> tuple[torch.Tensor, torch.Tensor, list]:
    model.zero_grad(set_to_none=True)
    vectors = model.encode(batch)
    loss = model.loss(batch)
    loss.backward()
    grads = [p.grad.detach().clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    return vectors.detach(), loss.detach(), grads


def _model(num_items: int, hidden: int, **kwargs: Any) -> GCSAN:
    torch.manual_seed(0)
    return GCSAN(num_items, hidden_channels=hidden, inner_channels=2 * hidden, num_layers=2,
                 num_heads=2, hidden_dropout=0.0, attn_dropout=0.0, **kwargs)


def check_parity(device: torch.device, sizes: dict[str, int]) -> dict[str, Any]:
    cpu_model = _model(sizes["num_items"], sizes["hidden"]).eval()
    batch = _batch(sizes["num_items"], sizes["batch"])
    on_device = copy.deepcopy(cpu_model).to(device)
    with torch.no_grad():
        scores = _relative(on_device.full_sort_scores(batch.to(device)),
                           cpu_model.full_sort_scores(batch))
    _, loss_cpu, grads_cpu = _loss_and_grads(cpu_model, batch)
    _, loss_dev, grads_dev = _loss_and_grads(on_device, batch.to(device))
    grads = max(_relative(a, b) for a, b in zip(grads_dev, grads_cpu))
    errors = {"scores": scores, "loss": _relative(loss_dev, loss_cpu), "gradients": grads}
    return {"relative_errors": errors, "tolerance": PARITY_REL,
            "passed": all(e <= PARITY_REL for e in errors.values())}


def check_bf16(device: torch.device, sizes: dict[str, int]) -> dict[str, Any]:
    model = _model(sizes["num_items"], sizes["hidden"]).to(device).train()
    batch = _batch(sizes["num_items"], sizes["batch"], seed=1).to(device)
    vectors32, loss32, grads32 = _loss_and_grads(model, batch)
    linear_dtypes: set[torch.dtype] = set()
    hooks = [m.register_forward_hook(lambda _m, _i, out: linear_dtypes.add(out.dtype))
             for m in model.encoder.modules() if isinstance(m, torch.nn.Linear)]
    with torch.autocast(device.type, torch.bfloat16):
        vectors16, loss16, grads16 = _loss_and_grads(model, batch)
    for hook in hooks:
        hook.remove()
    errors = {"vectors_rel_l2": _relative_l2(vectors16, vectors32),
              "gradients_rel_l2": max(_relative_l2(a, b) for a, b in zip(grads16, grads32)),
              "loss_rel": abs(float(loss16) - float(loss32)) / abs(float(loss32))}
    took_effect = torch.bfloat16 in linear_dtypes and float(loss16) != float(loss32)
    passed = (took_effect and errors["vectors_rel_l2"] <= BF16_VECTORS
              and errors["gradients_rel_l2"] <= BF16_GRADS and errors["loss_rel"] <= BF16_LOSS)
    return {"took_effect": took_effect, "encoder_linear_dtypes": sorted(map(str, linear_dtypes)),
            "errors": errors, "tolerances": {"vectors_rel_l2": BF16_VECTORS,
                                             "gradients_rel_l2": BF16_GRADS,
                                             "loss_rel": BF16_LOSS}, "passed": passed}


def check_compile(device: torch.device, sizes: dict[str, int]) -> dict[str, Any]:
    model = _model(sizes["num_items"], sizes["hidden"]).to(device).eval()
    batches = [_batch(sizes["num_items"], n, seed).to(device) for n, seed in ((48, 2), (17, 3))]
    with torch.no_grad():
        eager = [model.encode(b) for b in batches]
        start = time.perf_counter()
        compiled = compile_model(model, device)
        compiled_out = [model.encode(b) for b in batches]
        seconds = time.perf_counter() - start
    abs_err = max(float((a - b).abs().max()) for a, b in zip(compiled_out, eager))
    rel_err = max(_relative(a, b) for a, b in zip(compiled_out, eager))
    return {"compiled": compiled, "compile_and_run_seconds": round(seconds, 1),
            "abs_error": abs_err, "rel_error": rel_err,
            "tolerances": {"abs": COMPILE_ABS, "rel": COMPILE_REL},
            "passed": compiled and abs_err <= COMPILE_ABS and rel_err <= COMPILE_REL}


def check_chunked_ce(device: torch.device, sizes: dict[str, int]) -> dict[str, Any]:
    num_items, batch, hidden = sizes["ce_items"], sizes["ce_batch"], 64
    generator = torch.Generator(device=device).manual_seed(0)
    table = (0.05 * torch.randn(num_items, hidden, device=device, generator=generator))
    table.requires_grad_()
    query = torch.randn(batch, hidden, device=device, generator=generator, requires_grad=True)
    target = torch.randint(1, num_items, (batch,), device=device, generator=generator)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
    loss = chunked_softmax_cross_entropy(query, table, target)
    loss.backward()
    result: dict[str, Any] = {"num_items": num_items, "batch": batch, "hidden": hidden}
    if cuda:
        torch.cuda.synchronize(device)
        peak_extra = torch.cuda.max_memory_allocated(device) - before
        chunk = default_chunk_size(batch)
        # The table's gradient, the query's, one logits chunk and its softmax
        # buffer, and the per-session statistics, plus 64 MiB of allocator slack.
        bound = (table.numel() + 2 * query.numel() + 2 * batch * chunk + 8 * batch) * 4 + 2**26
        result.update(peak_extra_bytes=peak_extra, bound_bytes=bound,
                      dense_logits_bytes=batch * num_items * 4, within_bound=peak_extra <= bound)
    table_grad = table.grad.clone()
    table.grad = None
    dense = F.cross_entropy(query.detach() @ table.t(), target)
    dense.backward()
    loss, dense = loss.detach(), dense.detach()
    result["loss_rel_error"] = abs(float(loss) - float(dense)) / abs(float(dense))
    result["table_grad_rel_error"] = _relative(table_grad, table.grad)
    result["passed"] = (result["loss_rel_error"] <= 1e-5
                        and result["table_grad_rel_error"] <= 1e-4
                        and result.get("within_bound", True))
    return result


def check_torchrun(device: torch.device, sizes: dict[str, int]) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(_common.REPO),
                                                       os.environ.get("PYTHONPATH")]))}
    runner = [sys.executable, "-m", "torch.distributed.run", "--standalone",
              "--nproc_per_node", "1"]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        cli = subprocess.run(
            [*runner, "-m", "gcsan_pyg", "train", "synthetic", "--device", str(device),
             "--num-items", str(sizes["num_items"] - 1), "--num-train-sessions", "2000",
             "--num-test-sessions", "200", "--epochs", "1", "--hidden-channels", "16",
             "--quiet", "--out", str(out), "--root", str(Path(tmp) / "cache")],
            env=env, capture_output=True, text=True, timeout=240)
        results = json.loads((out / "results.json").read_text()) if cli.returncode == 0 else {}
        group = subprocess.run(
            [*runner, str(Path(__file__).resolve()), "--group-worker", "--device", str(device)],
            env=env, capture_output=True, text=True, timeout=240)
    worker = {}
    if group.returncode == 0:
        worker = json.loads(group.stdout.strip().splitlines()[-1])
    return {
        "cli_returncode": cli.returncode,
        "cli_error_tail": cli.stderr[-2000:] if cli.returncode else None,
        "cli_test_metrics": results.get("test"),
        "group_returncode": group.returncode,
        "group_error_tail": group.stderr[-2000:] if group.returncode else None,
        "group": worker,
        "passed": cli.returncode == 0 and group.returncode == 0 and worker.get("ok") is True,
    }


def group_worker(device: torch.device) -> None:
    """Run by ``torchrun``: a process group on the device's backend, the
    data-parallel loss of both loss types stepped, and an all-reduce."""
    import torch.distributed as dist

    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend)
    try:
        report: dict[str, Any] = {"backend": backend, "world_size": dist.get_world_size()}
        for loss_type in ("CE", "sampled"):
            model = _model(500, 16, loss_type=loss_type, num_negatives=32).to(device)
            sampled = model.sampled_softmax().to(device) if loss_type == "sampled" else None
            wrapped = distributed.LossModule.wrap(model, device)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            losses = []
            for step in range(3):
                optimizer.zero_grad(set_to_none=True)
                loss = wrapped(_batch(500, 64, seed=step).to(device), sampled_loss=sampled)
                loss.backward()
                optimizer.step()
                losses.append(float(loss))
            report[loss_type] = losses
        total = distributed.all_reduce(torch.ones(1, device=device))
        report["all_reduce"] = float(total)
        report["ok"] = report["all_reduce"] == dist.get_world_size() and all(
            all(map(lambda v: v == v, report[k])) for k in ("CE", "sampled"))
        print(json.dumps(report))
    finally:
        dist.destroy_process_group()


def check_latency(device: torch.device, sizes: dict[str, int]) -> dict[str, Any]:
    model = GCSAN(sizes["latency_items"], hidden_channels=sizes["latency_hidden"]).to(device)
    model.eval()
    generator = torch.Generator().manual_seed(0)
    sessions = [torch.randint(1, sizes["latency_items"], (int(n),), generator=generator)
                for n in torch.randint(1, 10, (sizes["latency_calls"] + 20,), generator=generator)]
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda *a: None)
    times = []
    for i, session in enumerate(sessions):
        sync(device)
        start = time.perf_counter()
        batch = model.build_batch(session.view(1, -1).to(device),
                                  torch.tensor([session.numel()], device=device))
        top = model.recommend(batch, k=20)
        top.cpu()  # the answer back on the host, as a server needs it
        sync(device)
        if i >= 20:  # the first calls warm kernels and caches up
            times.append((time.perf_counter() - start) * 1e3)
    times.sort()

    def quantile(q: float) -> float:
        return round(times[min(len(times) - 1, int(q * len(times)))], 3)

    return {"num_items": sizes["latency_items"], "hidden": sizes["latency_hidden"],
            "calls": len(times), "p50_ms": quantile(0.5), "p90_ms": quantile(0.9),
            "p99_ms": quantile(0.99), "passed": True}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = _common.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:1, cpu, ...")
    parser.add_argument("--skip", default="", help=f"comma-separated checks to leave out, of "
                                                   f"{', '.join(CHECKS)}")
    parser.add_argument("--group-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if args.group_worker:
        group_worker(device)
        return {}
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda but this machine has no CUDA device (use "
                         "--device cpu --quick for the CPU run of the same logic)")
    skipped = {name for name in args.skip.split(",") if name}
    unknown = skipped - set(CHECKS)
    if unknown:
        raise SystemExit(f"error: --skip {','.join(sorted(unknown))}: no such check "
                         f"(checks: {', '.join(CHECKS)})")
    # Exact float32 matmuls for the parity check: TF32 would round to 10 bits.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    threads = _common.setup_threads(args.threads)
    sizes = _sizes(args.quick)
    payload: dict[str, Any] = {
        "environment": _common.environment(argv, "gpu_check.py"),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "benchmark": "gpu_check", "threads": threads, "quick": args.quick, "sizes": sizes,
        "checks": {},
    }
    for name in CHECKS:
        if name in skipped:
            continue
        start = time.perf_counter()
        result = globals()[f"check_{name}"](device, sizes)
        result["seconds"] = round(time.perf_counter() - start, 1)
        payload["checks"][name] = result
        print(f"{name}: {'passed' if result['passed'] else 'FAILED'} ({result['seconds']} s)",
              flush=True)
    payload["passed"] = all(c["passed"] for c in payload["checks"].values())
    name = "gpu_check" if device.type == "cuda" else f"gpu_check_{device.type}"
    return _common.publish(args.out, name + ("_quick" if args.quick else ""), payload,
                           lambda p: json.dumps({k: v["passed"] for k, v in p["checks"].items()}))


if __name__ == "__main__":
    sys.exit(0 if main().get("passed", True) else 1)
