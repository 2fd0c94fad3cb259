"""Real interruptions of `python -m gcsan_pyg train`, and resuming afterwards."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from gcsan_pyg import GCSAN
from gcsan_pyg.cli import main
from gcsan_pyg.data import SessionSamples
from gcsan_pyg.training import (
    TrainConfig,
    Trainer,
    load_checkpoint,
    save_checkpoint,
)
from gcsan_pyg.training.interrupt import SignalCatcher, TrainingInterrupted

EPOCHS = 3
# Batch size 4: ~265 steps per epoch, so that "the middle of epoch 2" lasts a while.
OPTIONS = ["--epochs", str(EPOCHS), "--hidden-channels", "16", "--inner-channels", "32",
           "--batch-size", "4", "--lr-step", "1", "--seed", "5", "--patience", "0"]
BAR = re.compile(r"epoch (\d+)/\d+:\s+\d+%\|[^|]*\|\s*(\d+)/(\d+)")


def _command(data: Path, out: Path, root: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "gcsan_pyg", "train", str(data), "--out", str(out),
            "--root", str(root), *OPTIONS, *extra]


def _env() -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(name, None)
    return env


def _epoch_of(path: Path) -> int:
    try:
        return load_checkpoint(path)["state"]["epoch"]
    except ValueError:  # not there yet
        return 0


def _interrupt_in_epoch_2(command: list[str], out: Path, signum: int,
                          timeout: float = 120.0) -> subprocess.Popen:
    """Starts the training, waits until ``last.pt`` holds epoch 1 and the
    progress bar shows epoch 2 a few steps in, then sends :obj:`signum`."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=_env())
    progress: list[tuple[int, int, int]] = []
    chunks: list[bytes] = []

    def read() -> None:  # tqdm redraws with '\r': parse the stream as it comes
        text = ""
        while chunk := os.read(process.stderr.fileno(), 4096):
            chunks.append(chunk)
            text = (text + chunk.decode(errors="replace"))[-4096:]
            progress.extend(tuple(map(int, m)) for m in BAR.findall(text))
            text = text[-200:]

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail("the run ended or stalled before the middle of epoch 2:\n"
                        + b"".join(chunks).decode(errors="replace")[-3000:])
        if any(epoch == 2 and 5 <= step < total - 50 for epoch, step, total in progress):
            if _epoch_of(out / "last.pt") >= 1:
                break
        time.sleep(0.005)
    os.kill(process.pid, signum)
    process.wait(timeout=60)
    reader.join(timeout=10)
    process.log = b"".join(chunks).decode(errors="replace")
    return process


@pytest.fixture(scope="module")
def uninterrupted(shared_data, tmp_path_factory):
    data = shared_data / "sample_diginetica" / "srgnn_processed"
    base = tmp_path_factory.mktemp("interrupt")
    root = base / "cache"
    subprocess.run(_command(data, base / "straight", root, "--quiet"), check=True,
                   env=_env(), capture_output=True, timeout=180)
    return data, base, root


def _assert_same_run(a: Path, b: Path) -> None:
    last_a, last_b = load_checkpoint(a / "last.pt"), load_checkpoint(b / "last.pt")
    assert last_a["state"]["epoch"] == last_b["state"]["epoch"] == EPOCHS
    for name, value in last_a["model"].items():
        assert torch.equal(value, last_b["model"][name]), name  # bitwise
    for name, value in load_checkpoint(a / "best.pt")["model"].items():
        assert torch.equal(value, load_checkpoint(b / "best.pt")["model"][name]), name
    results_a = json.loads((a / "results.json").read_text())
    results_b = json.loads((b / "results.json").read_text())
    assert [h["train_loss"] for h in results_a["history"]] == [
        h["train_loss"] for h in results_b["history"]
    ]
    assert [h["valid"] for h in results_a["history"]] == [h["valid"] for h in results_b["history"]]
    assert results_a["test"] == results_b["test"]


def test_sigkill_in_the_middle_of_an_epoch_then_resume(uninterrupted):
    data, base, root = uninterrupted
    out = base / "killed"
    command = [*_command(data, out, root), "--progress"]  # the bars show when epoch 2 starts
    process = _interrupt_in_epoch_2(command, out, signal.SIGKILL)
    assert process.returncode == -signal.SIGKILL
    state = load_checkpoint(out / "last.pt")["state"]
    assert (state["epoch"], state["step"]) == (1, 0)  # epoch 2 was under way, not saved
    assert not (out / "results.json").exists()
    assert not list(out.glob("*.tmp"))
    subprocess.run(_command(data, out, root, "--quiet", "--resume"), check=True, env=_env(),
                   capture_output=True, timeout=180)
    _assert_same_run(base / "straight", out)


def test_sigterm_saves_the_middle_of_the_epoch_and_resume_is_exact(uninterrupted):
    data, base, root = uninterrupted
    out = base / "terminated"
    command = [*_command(data, out, root), "--progress"]  # the bars show when epoch 2 starts
    process = _interrupt_in_epoch_2(command, out, signal.SIGTERM)
    assert process.returncode == 128 + signal.SIGTERM, process.log[-3000:]
    assert "interrupted: training stopped by SIGTERM after 1 epoch(s) and" in process.log
    state = load_checkpoint(out / "last.pt")["state"]
    assert state["epoch"] == 1 and state["step"] > 0  # the state after the last step
    assert not list(out.glob("*.tmp"))
    resumed = subprocess.run(_command(data, out, root, "--quiet", "--resume"), env=_env(),
                             capture_output=True, text=True, timeout=180, check=True)
    assert f"and {state['step']} step(s)" in resumed.stderr
    _assert_same_run(base / "straight", out)


def test_mid_epoch_checkpoint_needs_the_same_batch_size(uninterrupted, capsys):
    data, base, root = uninterrupted
    payload = load_checkpoint(base / "straight" / "last.pt")
    payload["state"].update(epoch=1, step=3)  # as if saved in the middle of epoch 2
    path = base / "mid" / "last.pt"
    save_checkpoint(path, {k: v for k, v in payload.items() if not k.startswith("format")})
    argv = ["train", str(data), "--out", str(path.parent), "--root", str(root), *OPTIONS,
            "--quiet", "--resume"]
    argv[argv.index("--batch-size") + 1] = "8"
    assert main(argv) == 2
    assert "cannot resume with changed options: --batch-size 4 in the checkpoint, 8 now" \
        in capsys.readouterr().err


# Checkpoint errors at the command line ----------------------------------------------


@pytest.fixture()
def small_run(uninterrupted, tmp_path):
    data, base, root = uninterrupted
    return data, root, base / "straight", tmp_path


def _train_resume(data: Path, root: Path, out: Path, *extra: str) -> list[str]:
    return ["train", str(data), "--out", str(out), "--root", str(root), *OPTIONS, "--quiet",
            "--resume", *extra]


def test_cli_resume_from_a_truncated_checkpoint(small_run, capsys):
    data, root, straight, tmp = small_run
    blob = (straight / "last.pt").read_bytes()
    (tmp / "last.pt").write_bytes(blob[: len(blob) // 3])
    assert main(_train_resume(data, root, tmp)) == 2
    assert "last.pt cannot be read (truncated, corrupt" in capsys.readouterr().err


def test_cli_resume_from_another_models_checkpoint(small_run, capsys):
    data, root, straight, tmp = small_run
    (tmp / "last.pt").write_bytes((straight / "last.pt").read_bytes())
    argv = _train_resume(data, root, tmp)
    argv[argv.index("--hidden-channels") + 1] = "8"
    assert main(argv) == 2
    assert "--hidden-channels 16 in the checkpoint, 8 now" in capsys.readouterr().err


def test_cli_resume_without_a_checkpoint(small_run, capsys):
    data, root, _, tmp = small_run
    assert main(_train_resume(data, root, tmp / "empty")) == 2
    assert "last.pt does not exist" in capsys.readouterr().err


def test_cli_evaluate_a_foreign_or_truncated_checkpoint(small_run, capsys):
    data, root, straight, tmp = small_run
    foreign = tmp / "foreign.pt"
    torch.save({"state_dict": {"w": torch.ones(2)}}, foreign)
    assert main(["evaluate", str(foreign), str(data), "--root", str(root), "--quiet"]) == 2
    assert "is not a gcsan_pyg checkpoint" in capsys.readouterr().err
    blob = (straight / "best.pt").read_bytes()
    (tmp / "cut.pt").write_bytes(blob[:100])
    assert main(["evaluate", str(tmp / "cut.pt"), str(data), "--root", str(root)]) == 2
    assert "cut.pt cannot be read" in capsys.readouterr().err


# Signals inside one process ---------------------------------------------------------------


def _samples(n: int) -> SessionSamples:
    return SessionSamples.from_lists([[i % 20 + 1, (i + 3) % 20 + 1] for i in range(n)],
                                     [(i + 7) % 20 + 1 for i in range(n)])


def test_sigint_between_epochs_stops_before_the_next(tmp_path):
    torch.manual_seed(0)
    trainer = Trainer(GCSAN(30, hidden_channels=8, inner_channels=16),
                      TrainConfig(epochs=5, progress=False, batch_size=16), tmp_path)
    with pytest.raises(TrainingInterrupted) as info:
        trainer.fit(_samples(64), on_epoch_end=lambda record: signal.raise_signal(signal.SIGINT))
    assert (info.value.signum, info.value.epoch, info.value.step) == (signal.SIGINT, 1, 0)
    assert info.value.checkpoint == tmp_path / "last.pt"
    assert load_checkpoint(tmp_path / "last.pt")["state"]["epoch"] == 1
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_a_repeated_signal_acts_at_once():
    trainer = Trainer(GCSAN(30, hidden_channels=8), TrainConfig(progress=False))
    with SignalCatcher(trainer) as catcher:
        signal.raise_signal(signal.SIGINT)  # first: only noted
        assert trainer.stop_signal == signal.SIGINT
        signal.raise_signal(signal.SIGINT)  # at once again: still only noted
        catcher.first[signal.SIGINT] -= 2.0  # as if the first came 2 s ago
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
