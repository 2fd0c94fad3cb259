"""Stopping a training run cleanly on SIGINT/SIGTERM."""
from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any


class TrainingInterrupted(KeyboardInterrupt):
    """Raised by :meth:`Trainer.fit` after a SIGINT/SIGTERM, once the state
    after the last finished step is saved (with a checkpoint folder).

    Attributes:
        signum (int): the signal.
        epoch (int): epochs completed.
        step (int): steps taken in the epoch after those.
        checkpoint (Path, optional): the ``last.pt`` to resume from.
    """

    def __init__(self, signum: int, epoch: int, step: int, checkpoint: Path | None) -> None:
        self.signum, self.epoch, self.step, self.checkpoint = signum, epoch, step, checkpoint
        where = f"after {epoch} epoch(s) and {step} step(s)"
        saved = f"; resume from {checkpoint}" if checkpoint is not None else ""
        super().__init__(f"training stopped by {signal.Signals(signum).name} {where}{saved}")


class SignalCatcher:
    """Turns SIGINT/SIGTERM into a flag the training loop polls between
    steps; a repeat of the signal a second or more later acts as usual."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer
        self.previous: dict[int, Any] = {}
        self.first: dict[int, float] = {}

    def __enter__(self) -> SignalCatcher:
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                try:
                    self.previous[signum] = signal.signal(signum, self._handle)
                except (ValueError, OSError):  # pragma: no cover - e.g. an embedded interpreter
                    pass
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        now = time.monotonic()
        if signum in self.first and now - self.first[signum] >= 1.0:
            self._restore(signum)
            signal.raise_signal(signum)
            return
        self.first.setdefault(signum, now)
        self.trainer.stop_signal = self.trainer.stop_signal or signum

    def _restore(self, signum: int) -> None:
        previous = self.previous.get(signum)
        signal.signal(signum, previous if previous is not None else signal.SIG_DFL)

    def __exit__(self, *exc: Any) -> None:
        for signum in self.previous:
            self._restore(signum)
