"""One training epoch on Diginetica (train_sessions.txt with SR-GNN prefix
augmentation) for GCSAN and DenseGCSAN, identical hyperparameters, initial
weights and batch order.

    python benchmarks/bench_epoch.py --full              # the whole epoch (long)
    python benchmarks/bench_epoch.py --max-batches N     # the first N batches
    python benchmarks/bench_epoch.py --quick             # a tiny cap

Without ``--full`` or ``--max-batches`` it runs the first 20 batches. The two
versions alternate batch by batch (order reversed every other batch), both
on the same batch, so machine drift hits both alike.
"""
from __future__ import annotations

import sys
import time
from typing import Any

import _common as C
import numpy as np
import torch

from gcsan_pyg.data import batch_from_clicks
from gcsan_pyg.data.readers import read_sessions

NAME = "epoch"
DEFAULT_CAP = 20


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = C.base_parser(__doc__)
    parser.add_argument("--full", action="store_true", help="run the whole epoch")
    parser.add_argument("--max-batches", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None, help="default 512 (quick: 32)")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--max-len", type=int, default=50,
                        help="sessions keep their last max-len clicks (RecBole's default 50)")
    parser.add_argument("--dense-stacking", choices=("numpy", "reference"), default="numpy",
                        help="how the dense version turns its per-session lists into tensors "
                        "(DenseGCSAN's stacking): 'numpy' (default), the faster of the two, "
                        "so the comparison is the conservative one; 'reference' as RecBole does")
    args = parser.parse_args(argv)
    threads = C.setup_threads(args.threads)
    env = C.environment(argv, "bench_epoch.py")
    batch_size = args.batch_size or (32 if args.quick else 512)
    if args.full:
        cap = args.max_batches
    elif args.max_batches is not None:
        cap = args.max_batches
    else:
        cap = 2 if args.quick else DEFAULT_CAP
    num_items = C.DIGINETICA_NUM_ITEMS

    start = time.perf_counter()
    session_limit = 200 if args.quick else None
    sessions = read_sessions(C.data_dir(args.data_dir) / "diginetica" / "train_sessions.txt")
    sessions = sessions[:session_limit]
    train = C.srgnn_augment(sessions)
    order = torch.from_numpy(np.random.default_rng(args.seed).permutation(len(train)))
    total_batches = (len(train) + batch_size - 1) // batch_size
    num_batches = total_batches if cap is None else min(cap, total_batches)
    prep_s = time.perf_counter() - start

    ours, dense = C.make_models(num_items, args.hidden, seed=args.seed)
    dense.stacking = args.dense_stacking
    ours.train()
    dense.train()
    opts = {"ours": torch.optim.Adam(ours.parameters(), lr=args.lr),
            "dense": torch.optim.Adam(dense.parameters(), lr=args.lr)}

    def step(version: str, rows: torch.Tensor) -> float:
        opt = opts[version]
        opt.zero_grad(set_to_none=True)
        target = train.target[rows]
        if version == "ours":  # the library's path: flat clicks of the samples -> graph
            clicks, lengths = train.clicks(rows, args.max_len)
            loss = ours.loss(batch_from_clicks(clicks, lengths, target, num_items=num_items))
        else:
            item_seq, item_seq_len = C.pad_sessions(train, rows, args.max_len)
            loss = dense.loss(item_seq, item_seq_len, target)
        loss.backward()
        opt.step()
        return loss.item()

    times: dict[str, list[float]] = {"ours": [], "dense": []}
    losses: dict[str, list[float]] = {"ours": [], "dense": []}
    for n in range(num_batches):
        rows = order[n * batch_size:(n + 1) * batch_size]
        for version in ("ours", "dense") if n % 2 == 0 else ("dense", "ours"):
            t0 = time.perf_counter()
            losses[version].append(step(version, rows))
            times[version].append(time.perf_counter() - t0)
        if (n + 1) % 50 == 0:
            print(f"  batch {n + 1}/{num_batches}", file=sys.stderr, flush=True)

    samples = min(num_batches * batch_size, len(train))
    summary = {}
    for version in ("ours", "dense"):
        total = sum(times[version])
        summary[version] = {
            "batches": num_batches,
            "samples": samples,
            "total_s": total,
            "median_batch_s": C.median(times[version]),
            "samples_per_s": samples / total,
            "projected_full_epoch_s": total / num_batches * total_batches,
            "mean_loss_first_10": float(np.mean(losses[version][:10])),
            "mean_loss_last_10": float(np.mean(losses[version][-10:])),
        }
    payload = {
        "benchmark": NAME,
        "description": "Training epoch on Diginetica (SR-GNN augmentation), both versions.",
        "environment": env,
        "config": {"num_items": num_items, "hidden_channels": args.hidden, "batch_size": batch_size,
                   "optimizer": f"Adam(lr={args.lr})", "max_len": args.max_len,
                   "dense_stacking": args.dense_stacking,
                   "threads": threads, "full_epoch": cap is None, "max_batches": cap,
                   "train_samples": len(train), "batches_in_epoch": total_batches,
                   "sessions_read": len(sessions), "data_prep_s": prep_s,
                   "shuffle_seed": args.seed},
        "method": "Batches of the same samples (the library's SessionSamples of the SR-GNN "
        "augmentation) in one seeded random order; both versions step on each batch, "
        "alternating which goes first. A step, timed with perf_counter: zero_grad + (ours, as "
        "the library's loader does: gather the batch's flat clicks, truncated to max_len, and "
        "batch_from_clicks; dense: pad to [B, max_len]) + loss + backward + Adam.step. Both "
        "start from identical weights; dropout on.",
        "speedup_ours_vs_dense": summary["dense"]["total_s"] / summary["ours"]["total_s"],
        "summary": summary,
        "times_s": {k: [round(v, 6) for v in vals] for k, vals in times.items()},
        "losses": {k: [round(v, 5) for v in vals] for k, vals in losses.items()},
    }
    return C.publish(args.out, NAME, payload, render)


def render(payload: dict) -> str:
    cfg = payload["config"]
    rows = [[v, s["batches"], s["samples"], s["total_s"], s["median_batch_s"] * 1e3,
             s["samples_per_s"], s["projected_full_epoch_s"] / 60, s["mean_loss_first_10"],
             s["mean_loss_last_10"]] for v, s in payload["summary"].items()]
    scope = ("the full epoch" if cfg["full_epoch"]
             else f"the first {cfg['max_batches']} of {cfg['batches_in_epoch']:,} batches")
    table = C.format_table(["version", "batches", "samples", "total s", "median ms / batch",
                            "samples/s", "projected epoch min", "loss (first 10)",
                            "loss (last 10)"], rows)
    # Files written before --dense-stacking existed used NumPy stacking.
    stacking = cfg.get("dense_stacking", "numpy")
    return (f"### Training epoch on Diginetica ({C.env_line(payload)})\n\n"
            f"{cfg['train_samples']:,} training samples, batch {cfg['batch_size']}, "
            f"hidden {cfg['hidden_channels']}, dense version with {stacking} stacking; measured "
            f"over {scope}. Speed-up ours vs dense: "
            f"{payload['speedup_ours_vs_dense']:.2f}x.\n\n" + table)


if __name__ == "__main__":
    main()
