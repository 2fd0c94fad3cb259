"""Shared helpers of the benchmark scripts: data, models, timing, JSON, tables.

Every script imports this module first; it puts the repository root on
``sys.path`` so the scripts run from a plain checkout (``python
benchmarks/<name>.py``) without installing the package.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as _dt
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from gcsan_pyg.cli import provenance  # noqa: E402
from gcsan_pyg.data import SessionSamples, SessionSplit, read_samples  # noqa: E402

DIGINETICA_NUM_ITEMS = 43_098  # max item id 43,097 + the padding id 0


# --------------------------------------------------------------------------- data


def data_dir(override: str | os.PathLike | None = None) -> Path:
    """``<repo>/../shared/data`` (or :obj:`override`); raises with a clear
    message when it is absent."""
    path = Path(override) if override is not None else REPO.parent / "shared" / "data"
    if not (path / "diginetica" / "test.tsv").is_file():
        raise FileNotFoundError(
            f"real data not found: expected {path / 'diginetica' / 'test.tsv'}. The benchmarks "
            "read Diginetica from <repo>/../shared/data (see shared/data/README.md); clone the "
            "project beside ../shared or pass --data-dir."
        )
    return path


def read_test_tsv(path: Path, limit: int | None = None) -> SessionSamples:
    """The samples of an SR-GNN ``test.tsv`` (the first :obj:`limit`)."""
    samples = read_samples(path)
    return samples if limit is None else samples.select(torch.arange(min(limit, len(samples))))


def srgnn_augment(sessions: Sequence[Sequence[int]]) -> SessionSamples:
    """SR-GNN sequence splitting of :obj:`sessions`, as the library does it."""
    return SessionSplit.from_lists([list(s) for s in sessions]).samples


def pad_sessions(samples: SessionSamples, rows: torch.Tensor | np.ndarray,
                 max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ``item_seq [B, max_len]`` and ``item_seq_len [B]`` of the
    samples :obj:`rows`; longer prefixes keep their most recent
    :obj:`max_len` clicks (the library's one truncation), as RecBole does."""
    item_seq, lengths = samples.padded(torch.as_tensor(rows), max_len)
    return torch.nn.functional.pad(item_seq, (0, max_len - item_seq.size(1))), lengths


class Batches:
    """A fixed pool of padded batches that both versions step through in the
    same order: ``(item_seq, item_seq_len, target)`` triples."""

    def __init__(self, triples: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
                 source: str) -> None:
        self.triples = triples
        self.source = source
        self._next = 0

    def __len__(self) -> int:
        return len(self.triples)

    def next(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        triple = self.triples[self._next % len(self.triples)]
        self._next += 1
        return triple

    def mean_length(self) -> float:
        return float(torch.cat([t[1] for t in self.triples]).float().mean())


def diginetica_batches(
    samples: SessionSamples,
    batch_size: int,
    max_len: int,
    num_batches: int,
    seed: int = 0,
) -> Batches:
    """:obj:`num_batches` batches of test samples drawn at random (fixed
    seed, as a shuffling loader would), truncated/padded to :obj:`max_len`."""
    gen = np.random.default_rng(seed)
    order = gen.permutation(len(samples))
    triples = []
    for n in range(num_batches):
        rows = order[(n * batch_size) % len(order):][:batch_size]
        item_seq, item_seq_len = pad_sessions(samples, rows, max_len)
        triples.append((item_seq, item_seq_len, samples.target[rows]))
    return Batches(triples, "diginetica test prefixes")


def synthetic_batches(
    batch_size: int,
    max_len: int,
    num_batches: int,
    num_items: int = DIGINETICA_NUM_ITEMS,
    seed: int = 0,
) -> Batches:
    """Full-length sessions (every session has :obj:`max_len` clicks) of
    uniformly random item ids ``1 .. num_items - 1``."""
    gen = torch.Generator().manual_seed(seed)
    triples = []
    for _ in range(num_batches):
        item_seq = torch.randint(1, num_items, (batch_size, max_len), generator=gen)
        item_seq_len = torch.full((batch_size,), max_len, dtype=torch.long)
        target = torch.randint(1, num_items, (batch_size,), generator=gen)
        triples.append((item_seq, item_seq_len, target))
    return Batches(triples, "synthetic full-length random sessions")


# --------------------------------------------------------------------------- models


def make_models(num_items: int, hidden: int, seed: int = 0, **kwargs: Any):
    """A :class:`GCSAN` and a :class:`DenseGCSAN` holding identical weights."""
    from dense_gcsan import DenseGCSAN

    from gcsan_pyg.interop.recbole import to_recbole_state_dict
    from gcsan_pyg.nn.gcsan import GCSAN

    torch.manual_seed(seed)
    ours = GCSAN(num_items, hidden_channels=hidden, **kwargs)
    dense = DenseGCSAN(num_items, hidden_channels=hidden, **kwargs)
    dense.load_state_dict(to_recbole_state_dict(ours))
    return ours, dense


def tensor_bytes(*tensors: torch.Tensor) -> int:
    return int(sum(t.numel() * t.element_size() for t in tensors))


# --------------------------------------------------------------------------- timing


@dataclasses.dataclass
class Timings:
    """What :func:`time_alternating` measured, per version."""

    per_call: dict[str, list[float]]  # seconds per call, one value per timed sample
    first_call: dict[str, list[float]]  # each sample's first call, right after the others ran
    calls_per_sample: dict[str, int]


def time_alternating(
    fns: dict[str, Callable[[], Any]],
    repeats: int,
    warmup: int = 1,
    min_repeats: int = 2,
    budget_s: float | None = None,
    min_sample_s: float = 0.0,
) -> Timings:
    """Times every callable in :obj:`repeats` samples, interleaved in one
    process: repeat ``r`` takes one sample of every version, in an order that
    reverses every other repeat (A B C, C B A, ...) so that slow drift of a
    shared machine hits all versions alike. :obj:`warmup` untimed rounds come
    first.

    A sample is as many consecutive calls as last about :obj:`min_sample_s`
    (as estimated from the warm-up; at least one), as a training or
    inference loop makes them; its time per call is recorded, and so is its
    first call alone, which pays for the caches the other versions took
    over. With :obj:`budget_s`, the number of repeats is cut (to no fewer
    than :obj:`min_repeats`) so that the timed rounds take about that long."""
    names = list(fns)
    call_s = dict.fromkeys(names, 0.0)
    rounds = max(warmup, 1) if budget_s is not None or min_sample_s > 0 else warmup
    for _ in range(rounds):
        for name in names:
            start = time.perf_counter()
            fns[name]()
            call_s[name] = time.perf_counter() - start
    calls = {name: max(1, math.ceil(min_sample_s / call_s[name])) if call_s[name] > 0 else 1
             for name in names}
    round_s = sum(calls[name] * call_s[name] for name in names)
    if budget_s is not None and round_s > 0:
        repeats = max(min_repeats, min(repeats, int(budget_s / round_s)))
    per_call: dict[str, list[float]] = {name: [] for name in names}
    first_call: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            fns[name]()
            first_end = time.perf_counter()
            for _ in range(calls[name] - 1):
                fns[name]()
            end = time.perf_counter()
            first_call[name].append(first_end - start)
            per_call[name].append((end - start) / calls[name])
    return Timings(per_call, first_call, calls)


def timing_method(min_sample_s: float) -> str:
    """How :func:`time_alternating` timed, for a result file's ``method``."""
    sample = ("one call" if min_sample_s <= 0 else "as many consecutive calls as take about "
              f"{min_sample_s * 1e3:g} ms (at least one; see calls_per_sample)")
    return ("Versions alternate in one process (order reversed every other repeat) after one "
            f"untimed warm-up call each. A timed sample of a version is {sample}, each call on "
            "the next batch of the case's pool, which every version steps through in the same "
            "order. Reported: the median over samples of the time per call (median_s) and, "
            "apart, the median of every sample's first call (first_call_median_s), which pays "
            "for the caches the other versions took over.")


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def summarize(timings: Timings) -> dict[str, Any]:
    """Medians (and the raw samples) of :func:`time_alternating`'s output."""
    times = timings.per_call
    return {
        "repeats": len(next(iter(times.values()))),
        "calls_per_sample": timings.calls_per_sample,
        "times_s": {k: [round(v, 9) for v in vals] for k, vals in times.items()},
        "median_s": {k: median(vals) for k, vals in times.items()},
        "first_call_median_s": {k: median(vals) for k, vals in timings.first_call.items()},
    }


# --------------------------------------------------------------------------- CLI, JSON


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes and 1-2 repeats (a smoke test, seconds)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads for both versions (default: torch's)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR,
                        help=f"folder of the JSON result (default: {RESULTS_DIR})")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="the shared data folder (default: <repo>/../shared/data)")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def add_sweep_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the benchmarks that sweep Diginetica batch sizes and synthetic lengths."""
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=None)
    parser.add_argument("--sweep-batch-size", type=int, default=None)
    parser.add_argument("--lengths", type=int, nargs="+", default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--case-budget", type=float, default=None)
    add_min_sample_argument(parser)


def add_min_sample_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--min-sample", type=float, default=None,
                        help="seconds of consecutive calls per timed sample (default: the "
                        "script's; 0 = one call, the default with --quick)")


def min_sample_s(args: argparse.Namespace, default: float) -> float:
    """The --min-sample of :obj:`args`, else 0 with --quick, else :obj:`default`."""
    if args.min_sample is not None:
        if args.min_sample < 0:
            raise SystemExit("--min-sample must be >= 0")
        return args.min_sample
    return 0.0 if args.quick else default


@dataclasses.dataclass
class Sweep:
    """The cases and repeat policy of a sweep benchmark (see add_sweep_arguments)."""

    batch_sizes: list[int]
    sweep_batch_size: int
    lengths: list[int]
    repeats: int
    budget: float | None
    min_repeats: int
    pool: int  # distinct batches per case
    min_sample_s: float

    @classmethod
    def from_args(cls, args: argparse.Namespace, repeats: int, budget: float,
                  min_sample: float = 0.05) -> Sweep:
        quick = args.quick
        return cls(
            batch_sizes=args.batch_sizes or ([16] if quick else [100, 512]),
            sweep_batch_size=args.sweep_batch_size or (16 if quick else 128),
            lengths=args.lengths or ([10, 50] if quick else [10, 20, 50, 100, 200]),
            repeats=args.repeats or (2 if quick else repeats),
            budget=args.case_budget if args.case_budget is not None else (
                None if quick else budget),
            min_repeats=1 if quick else 5,
            pool=2 if quick else 4,
            min_sample_s=min_sample_s(args, min_sample),
        )

    def as_config(self) -> dict[str, Any]:
        """The settings as recorded in a result file's config."""
        return {"batch_sizes": self.batch_sizes, "sweep_batch_size": self.sweep_batch_size,
                "sweep_lengths": self.lengths, "max_repeats": self.repeats,
                "min_repeats": self.min_repeats, "case_budget_s": self.budget,
                "batches_per_case": self.pool, "min_sample_s": self.min_sample_s}

    def batches(self, source: str, batch_size: int, max_len: int, samples: SessionSamples,
                num_items: int, seed: int) -> Batches:
        """The pool of batches of one case (see :meth:`cases`)."""
        if source == "diginetica":
            return diginetica_batches(samples, batch_size, max_len, self.pool, seed)
        return synthetic_batches(batch_size, max_len, self.pool, num_items, seed)

    def time(self, fns: dict[str, Callable[[], Any]]) -> Timings:
        """:func:`time_alternating` with this sweep's repeat policy."""
        return time_alternating(fns, self.repeats, warmup=1, min_repeats=self.min_repeats,
                                budget_s=self.budget, min_sample_s=self.min_sample_s)

    def cases(self, max_len: int) -> list[tuple[str, int, int]]:
        """(source, batch size, L): Diginetica batches, then the synthetic L sweep."""
        return [("diginetica", b, max_len) for b in self.batch_sizes] + [
            ("synthetic", self.sweep_batch_size, length) for length in self.lengths]


def setup_threads(threads: int | None) -> int:
    if threads is not None:
        if threads < 1:
            raise SystemExit(f"--threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _relative(arg: str) -> str:
    """A path inside the repository as the repository-relative path a rerun would use."""
    path = Path(arg)
    if path.is_absolute() and path.is_relative_to(REPO):
        return str(path.relative_to(REPO))
    return arg


def git_state() -> dict[str, Any]:
    """The commit of the code that ran, and whether tracked files other than
    the results differed from it (``git_dirty``); :obj:`None` outside git."""
    state = provenance.git_state(REPO)
    return {"git_commit": state["commit"], "git_dirty": state["dirty"]}


@contextlib.contextmanager
def revision_tree(revision: str) -> Iterator[tuple[Path, str]]:
    """A temporary git worktree of :obj:`revision` (detached) and its full
    commit hash, removed on exit: an earlier revision of the code, to run
    beside this one."""
    commit = subprocess.run(["git", "rev-parse", "--verify", f"{revision}^{{commit}}"],
                            cwd=REPO, check=True, capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tree:
        subprocess.run(["git", "worktree", "add", "--detach", tree, commit], cwd=REPO,
                       check=True, capture_output=True)
        try:
            yield Path(tree), commit
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", tree], cwd=REPO,
                           capture_output=True)


def environment(argv: Sequence[str] | None, script: str) -> dict[str, Any]:
    """What produced a result: command, code version, package versions,
    threads, CPU, date, load."""
    import torch_geometric

    args = [_relative(a) for a in (sys.argv[1:] if argv is None else argv)]
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        affinity = os.cpu_count()
    return {
        "command": " ".join(["python", f"benchmarks/{script}", *args]),
        **git_state(),
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_geometric": torch_geometric.__version__,
        "numpy": np.__version__,
        "torch_num_threads": torch.get_num_threads(),
        "torch_num_interop_threads": torch.get_num_interop_threads(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": affinity,
        "platform": platform.platform(),
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "contention_probe_at_start": contention_probe(),
    }


def contention_probe(numel: int = 100_000, calls: int = 30) -> dict[str, Any]:
    """Median time of one small element-wise op (``x + x`` on :obj:`numel`
    int64) at the configured thread count and at one thread. On a machine
    whose cores are busy with other work, a multi-threaded op waits for a
    descheduled worker thread, so the first number can be many times the
    second; this inflates every small op of a run, not its big matmuls."""
    x = torch.arange(numel)
    threads = torch.get_num_threads()

    def probe() -> float:
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            x + x  # noqa: B018
            times.append(time.perf_counter() - start)
        return median(times) * 1e6

    configured = probe()
    torch.set_num_threads(1)
    try:
        single = probe()
    finally:
        torch.set_num_threads(threads)
    return {
        "op": f"x + x, {numel:,} int64",
        f"median_us_at_{threads}_threads": round(configured, 2),
        "median_us_at_1_thread": round(single, 2),
    }


def write_json(out_dir: Path, name: str, payload: dict[str, Any]) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    env = payload.setdefault("environment", {})
    if hasattr(os, "getloadavg"):
        env["load_average_at_end"] = list(os.getloadavg())
    env["contention_probe_at_end"] = contention_probe()
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    return path


def publish(out_dir: Path, name: str, payload: dict[str, Any],
            render: Callable[[dict], str]) -> dict[str, Any]:
    """Writes a script's result file, prints its table and where it went;
    returns the payload (what every script's ``main`` returns)."""
    path = write_json(out_dir, name, payload)
    print(render(payload))
    print(f"\nwrote {path}")
    return payload


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (also readable as plain text)."""
    cells = [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(headers)]
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    lines += [
        "| " + " | ".join(c.ljust(w) if isinstance(v, str) else c.rjust(w)
                          for c, v, w in zip(r, row, widths)) + " |"
        for r, row in zip(cells, rows)
    ]
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        if abs(value) >= 0.01:
            return f"{value:.3g}"
        return f"{value:.2e}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def evaluate_targets(targets: list[dict]) -> list[dict]:
    """Fills each target's ``met`` from ``value`` and ``threshold``."""
    for t in targets:
        if t["value"] is None:
            t["met"] = None
        elif t.get("higher_is_better", True):
            t["met"] = bool(t["value"] >= t["threshold"])
        else:
            t["met"] = bool(t["value"] <= t["threshold"])
    return targets


def env_line(payload: dict) -> str:
    env = payload["environment"]
    commit = env.get("git_commit")
    code = "commit unknown" if not commit else (
        f"commit {commit[:10]}" + (" with uncommitted changes" if env.get("git_dirty") else ""))
    line = (f"`{env['command']}`; {code}; torch {env['torch']}, PyG {env['torch_geometric']}, "
            f"{env['torch_num_threads']} threads, {env['cpu_model']}, {env['date']}")
    probes = [env.get(k) for k in ("contention_probe_at_start", "contention_probe_at_end")]
    threads = env["torch_num_threads"]
    if all(probes) and threads > 1:
        key = f"median_us_at_{threads}_threads"
        worst = max(probes, key=lambda p: p[key] / p["median_us_at_1_thread"])
        line += (f"; contention probe (`{worst['op']}`): {worst[key]:,.0f} us at {threads} "
                 f"threads vs {worst['median_us_at_1_thread']:,.0f} us at 1 thread")
    return line


def render_targets(payload: dict) -> str:
    rows = []
    for t in payload.get("targets", []):
        op = ">=" if t.get("higher_is_better", True) else "<="
        value = "not measured" if t["value"] is None else t["value"]
        met = {True: "yes", False: "**no**", None: "-"}[t["met"]]
        rows.append([t["name"], value, f"{op} {t['threshold']}", met])
    return format_table(["target", "measured", "wanted", "met"], rows) if rows else ""
