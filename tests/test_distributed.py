"""Data-parallel training over 2 CPU processes (Gloo) on the Diginetica sample."""
from __future__ import annotations

import faulthandler
import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from gcsan_pyg import GCSAN
from gcsan_pyg.data import SessionSamples
from gcsan_pyg.datasets import load_dataset
from gcsan_pyg.training import SessionBatchLoader, TrainConfig, Trainer, distributed
from gcsan_pyg.training.checkpoint import load_checkpoint, load_model
from gcsan_pyg.training.interrupt import TrainingInterrupted

WORLD_SIZE = 2
WORKER_TIMEOUT = 120  # seconds; the workers take ~15 s
CONFIG = dict(epochs=2, batch_size=64, eval_batch_size=16, lr=3e-3, patience=0, lr_step=1,
              seed=11, progress=False)


def _splits(data: Path, root: Path) -> dict[str, SessionSamples]:
    return {s: load_dataset(data, root=root, split=s).samples
            for s in ("train", "valid", "test")}


def _model(num_items: int, seed: int = 0) -> GCSAN:
    torch.manual_seed(seed)
    return GCSAN(num_items, hidden_channels=16, inner_channels=32)


def _worker(rank: int, data: str, root: str, out: str) -> None:
    torch.set_num_threads(1)
    faulthandler.dump_traceback_later(WORKER_TIMEOUT, exit=True)  # a hang shows where
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(WORLD_SIZE), LOCAL_RANK=str(rank))
    out = Path(out)
    # A file rendezvous: no port to pick (torchrun's env:// is test_torchrun_cli's).
    dist.init_process_group("gloo", init_method=f"file://{out / 'rendezvous'}", rank=rank,
                            world_size=WORLD_SIZE, timeout=timedelta(seconds=WORKER_TIMEOUT))
    info, device = distributed.setup("cpu")  # finds the group already there
    assert (info.rank, info.world_size, device.type) == (rank, WORLD_SIZE, "cpu")
    assert distributed.current() == info
    try:
        splits = _splits(Path(data), Path(root))
        train, valid, test = splits["train"], splits["valid"], splits["test"]
        num_items = load_dataset(Path(data), root=Path(root)).num_items
        report: dict = {}

        # 1. A straight run of 2 epochs.
        straight = Trainer(_model(num_items), TrainConfig(**CONFIG), checkpoint_dir=out / "a")
        straight.fit(train, valid)
        torch.save(straight.model.state_dict(), out / f"params-rank{rank}.pt")
        report["history"] = straight.state.history

        # 2. The reduced metrics of the saved best checkpoint on the test split.
        straight.model.load_state_dict(load_checkpoint(out / "a" / "best.pt")["model"])
        report["test"] = straight.evaluate(test)
        # One test sample: rank 1's evaluation share is empty (issue 19.3).
        report["one_sample"] = straight.evaluate(test.select(torch.arange(len(test)) == 0))

        # 3. One epoch, then a fresh process state resumes to 2 epochs.
        first = Trainer(_model(num_items), TrainConfig(**{**CONFIG, "epochs": 1}),
                        checkpoint_dir=out / "b")
        first.fit(train, valid)
        torch.manual_seed(1234 + rank)  # whatever happens between the runs must not matter
        resumed = Trainer(_model(num_items, seed=5), TrainConfig(**CONFIG),
                          checkpoint_dir=out / "b")
        resumed.resume(out / "b" / "last.pt")
        resumed.fit(train, valid)
        torch.save(resumed.model.state_dict(), out / f"resumed-rank{rank}.pt")

        # 4. A real SIGTERM to rank 1 alone in the middle of epoch 2: both ranks
        # stop after the same step, rank 0 saves, and a resumed run ends equal.
        stopped = Trainer(_model(num_items), TrainConfig(**CONFIG), checkpoint_dir=out / "c")
        steps = 0

        def count_steps(*args):
            nonlocal steps
            steps += 1
            if rank == 1 and steps == 13:  # in epoch 2 (9 steps per epoch and rank)
                os.kill(os.getpid(), signal.SIGTERM)

        stopped.optimizer.register_step_post_hook(count_steps)
        try:
            stopped.fit(train, valid)
            report["interrupted"] = None
        except TrainingInterrupted as error:
            report["interrupted"] = [error.signum, error.epoch, error.step]
        again = Trainer(_model(num_items, seed=9), TrainConfig(**CONFIG),
                        checkpoint_dir=out / "c")
        again.resume(out / "c" / "last.pt")
        again.fit(train, valid)
        torch.save(again.model.state_dict(), out / f"interrupted-rank{rank}.pt")
        (out / f"report-rank{rank}.json").write_text(json.dumps(report))
    finally:
        distributed.cleanup()
        faulthandler.cancel_dump_traceback_later()


def _spawn(*args, timeout: float = WORKER_TIMEOUT + 30) -> None:
    context = mp.start_processes(_worker, args=args, nprocs=WORLD_SIZE, join=False,
                                 start_method="spawn")
    deadline = time.monotonic() + timeout
    while not context.join(timeout=1.0):
        if time.monotonic() > deadline:
            for process in context.processes:
                if process.is_alive():
                    process.kill()
            pytest.fail(f"distributed workers did not finish within {timeout} s")


@pytest.fixture(scope="module")
def ddp_run(shared_data, tmp_path_factory):
    data = shared_data / "sample_diginetica" / "srgnn_processed"
    out = tmp_path_factory.mktemp("ddp")
    root = out / "cache"
    splits = _splits(data, root)  # build the processed cache once, before the workers
    _spawn(str(data), str(root), str(out))
    return out, splits


def _assert_same_parameters(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_ranks_hold_identical_parameters(ddp_run):
    out, _ = ddp_run
    for name in ("params", "resumed", "interrupted"):
        ranks = [torch.load(out / f"{name}-rank{r}.pt", weights_only=True) for r in (0, 1)]
        _assert_same_parameters(*ranks)
    reports = [json.loads((out / f"report-rank{r}.json").read_text()) for r in (0, 1)]
    untimed = [[{k: v for k, v in h.items() if k not in ("seconds", "samples_per_s")}
                for h in report["history"]] for report in reports]
    assert untimed[0] == untimed[1]  # losses and metrics are reduced over the ranks
    assert len(reports[0]["history"]) == 2
    # The checkpoint (written by rank 0 only) holds the final parameters.
    last = load_checkpoint(out / "a" / "last.pt")
    assert last["world_size"] == WORLD_SIZE and len(last["ranks"]) == WORLD_SIZE
    _assert_same_parameters(last["model"], torch.load(out / "params-rank0.pt", weights_only=True))
    assert not list((out / "a").glob("*.tmp"))


def test_reduced_metrics_equal_a_single_process_evaluation(ddp_run):
    out, splits = ddp_run
    model, _ = load_model(out / "a" / "best.pt")
    single = Trainer(model, TrainConfig(**CONFIG)).evaluate(splits["test"])
    reduced = json.loads((out / "report-rank0.json").read_text())["test"]
    assert reduced.keys() == single.keys()
    # Hit counts are integers (exact); MRR/NDCG sums add float32 terms in another
    # order over two shares, hence 1e-4 (percent points).
    for name, value in single.items():
        assert reduced[name] == pytest.approx(value, abs=1e-4), name
    assert single["Hit@20"] > 0


def test_a_rank_with_an_empty_evaluation_share_works(ddp_run):
    out, splits = ddp_run
    model, _ = load_model(out / "a" / "best.pt")
    one = splits["test"].select(torch.arange(len(splits["test"])) == 0)
    single = Trainer(model, TrainConfig(**CONFIG)).evaluate(one)
    reports = [json.loads((out / f"report-rank{r}.json").read_text()) for r in (0, 1)]
    assert reports[0]["one_sample"] == reports[1]["one_sample"] == single


def test_loader_of_an_empty_share_yields_as_many_batches_as_its_length():
    samples = SessionSamples.from_lists([[1, 2]], [3])
    for rank in (0, 1):
        loader = SessionBatchLoader(samples, 4, num_replicas=2, rank=rank, even=False)
        assert len(loader) == len(list(loader)) == 1 - rank
    empty = SessionBatchLoader(samples.select(torch.tensor([False])), 4)
    assert len(empty) == len(list(empty)) == 0


@pytest.mark.parametrize("loss_type", ["sampled", "CE"])
def test_a_step_broadcasts_nothing_that_grows_with_the_catalogue(tmp_path, monkeypatch,
                                                                  loss_type):
    # Issue 19.6: the sampler's counts and cdf (float64, length N) were model
    # buffers, broadcast by DDP before every forward.
    broadcast: list[int] = []
    real = DistributedDataParallel._distributed_broadcast_coalesced

    def counting(self, tensors, *args, **kwargs):
        broadcast.append(sum(t.numel() * t.element_size() for t in tensors))
        return real(self, tensors, *args, **kwargs)

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0,
                            world_size=1)
    try:
        per_step = {}
        for num_items in (50, 5000):
            torch.manual_seed(0)
            model = GCSAN(num_items, hidden_channels=8, inner_channels=8, loss_type=loss_type,
                          num_negatives=4)
            counts = torch.ones(num_items)
            sampled_loss = model.sampled_softmax(counts) if loss_type == "sampled" else None
            ddp = distributed.LossModule.wrap(model, torch.device("cpu"))
            monkeypatch.setattr(DistributedDataParallel, "_distributed_broadcast_coalesced",
                                counting)
            broadcast.clear()
            batch = model.build_batch(torch.tensor([[1, 2, 3]]), torch.tensor([3]),
                                      torch.tensor([4]))
            ddp(batch, sampled_loss=sampled_loss).backward()
            per_step[num_items] = sum(broadcast)
            monkeypatch.undo()
        assert per_step[50] == per_step[5000] == 0
    finally:
        dist.destroy_process_group()


def test_resume_under_ddp_equals_an_uninterrupted_run(ddp_run):
    out, _ = ddp_run
    straight = torch.load(out / "params-rank0.pt", weights_only=True)
    _assert_same_parameters(straight, torch.load(out / "resumed-rank0.pt", weights_only=True))


def test_sigterm_to_one_rank_stops_all_after_the_same_step(ddp_run):
    out, _ = ddp_run
    reports = [json.loads((out / f"report-rank{r}.json").read_text()) for r in (0, 1)]
    assert reports[0]["interrupted"] == reports[1]["interrupted"]
    signum, epoch, step = reports[0]["interrupted"]
    assert (signum, epoch) == (signal.SIGTERM, 1) and step == 4
    straight = torch.load(out / "params-rank0.pt", weights_only=True)
    _assert_same_parameters(straight, torch.load(out / "interrupted-rank0.pt", weights_only=True))


# Sharding, without processes ---------------------------------------------------------


@pytest.mark.parametrize("n,world", [(10, 3), (9, 3), (2, 4), (1, 2), (0, 2)])
def test_shards(n, world):
    order = torch.randperm(max(n, 1))[:n]
    even = [distributed.shard(order, r, world, even=True) for r in range(world)]
    assert len({s.numel() for s in even}) == 1  # the same number of steps everywhere
    if n:
        assert set(torch.cat(even).tolist()) == set(order.tolist())
    exact = torch.cat([distributed.shard(order, r, world, even=False) for r in range(world)])
    assert sorted(exact.tolist()) == sorted(order.tolist())  # each sample once


def test_loader_shares_cover_the_single_process_order():
    samples = SessionSamples.from_lists([[i % 7 + 1] for i in range(23)], list(range(1, 24)))
    single = SessionBatchLoader(samples, 4, shuffle=True, seed=3, num_items=30)
    single.set_epoch(2)
    order = torch.cat([b.y for b in single])
    loaders = [SessionBatchLoader(samples, 4, shuffle=True, seed=3, num_items=30,
                                  num_replicas=3, rank=r) for r in range(3)]
    for loader in loaders:
        loader.set_epoch(2)
    assert {len(loader) for loader in loaders} == {2}  # ceil(ceil(23 / 3) / 4)
    shares = [torch.cat([b.y for b in loader]) for loader in loaders]
    assert all(s.numel() == 8 for s in shares)
    for r, share in enumerate(shares):  # every 3rd of the shuffled order, padded by its head
        assert torch.equal(share, torch.cat([order, order[:1]])[r::3])
    uneven = [SessionBatchLoader(samples, 4, num_replicas=3, rank=r, even=False)
              for r in range(3)]
    assert sorted(torch.cat([b.y for u in uneven for b in u]).tolist()) == list(range(1, 24))
    assert [len(u) for u in uneven] == [2, 2, 2]
    with pytest.raises(ValueError, match="rank < num_replicas"):
        SessionBatchLoader(samples, 4, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="outside"):
        SessionBatchLoader(samples, 4, num_items=10)


def test_torchrun_environment_and_devices():
    assert distributed.torchrun_env({}) is None
    info = distributed.torchrun_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert (info.rank, info.world_size, info.local_rank, info.is_main) == (3, 4, 1, False)
    with pytest.raises(ValueError, match="bad torchrun environment"):
        distributed.torchrun_env({"RANK": "4", "WORLD_SIZE": "4"})
    with pytest.raises(ValueError, match="bad torchrun environment"):
        distributed.torchrun_env({"RANK": "x", "WORLD_SIZE": "4"})
    assert distributed.resolve_device("cuda", 3) == torch.device("cuda", 3)
    assert distributed.resolve_device("cuda:1", 3) == torch.device("cuda", 1)
    assert distributed.resolve_device("cuda") == torch.device("cuda")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert distributed.resolve_device("auto").type == expected
    assert distributed.current() == distributed.DistInfo()  # no process group here


# The real launcher ------------------------------------------------------------------------


def test_torchrun_cli(shared_data, tmp_path):
    data = shared_data / "sample_diginetica" / "srgnn_processed"
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("RANK", None)
    env.pop("WORLD_SIZE", None)
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
         str(WORLD_SIZE), "-m", "gcsan_pyg", "train", str(data), "--out", str(out),
         "--root", str(tmp_path / "cache"), "--epochs", "2", "--hidden-channels", "16",
         "--inner-channels", "32", "--quiet", "--seed", "3",
         # The sampled softmax's sparse table gradient, reduced across the processes
         # (the workers above train with the exact softmax's dense one).
         "--loss-type", "sampled", "--num-negatives", "64"],
        capture_output=True, text=True, env=env, timeout=150,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("GC-SAN (test)") == 1  # rank 0 alone prints
    results = json.loads((out / "results.json").read_text())
    assert results["world_size"] == WORLD_SIZE and len(results["history"]) == 2
    evaluated = subprocess.run(
        [sys.executable, "-m", "gcsan_pyg", "evaluate", str(out / "best.pt"), str(data),
         "--root", str(tmp_path / "cache"), "--quiet"],
        capture_output=True, text=True, env=env, timeout=60, check=True,
    )
    names = evaluated.stdout.splitlines()[0].split()
    values = [float(v) for v in evaluated.stdout.splitlines()[1].split()[2:]]
    for name, value in zip(names, values):
        assert value == pytest.approx(results["test"][name], abs=0.01), name


def test_torchrun_data_error_on_rank_0_stops_every_rank_with_that_error(tmp_path):
    """Rank 0 reads the data while the others wait: its data error reaches
    every rank, which all exit with it (no rank left waiting on a collective)."""
    data = tmp_path / "bad"
    data.mkdir()
    (data / "train_sessions.txt").write_text("1,2,3\n4,x,5\n")
    (data / "test.tsv").write_text("1,2\t3\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("RANK", None)
    env.pop("WORLD_SIZE", None)
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
         str(WORLD_SIZE), "-m", "gcsan_pyg", "train", str(data), "--out", str(tmp_path / "out"),
         "--root", str(tmp_path / "cache"), "--quiet"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert result.returncode != 0
    message = f"{data / 'train_sessions.txt'}, line 2: non-integer token 'x'"
    assert result.stderr.count(message) == WORLD_SIZE, result.stderr[-3000:]
    assert "]: Traceback" not in result.stderr, result.stderr[-3000:]  # no rank crashed
