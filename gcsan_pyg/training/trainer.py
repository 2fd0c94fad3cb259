"""The training loop: Adam with a step schedule, early stopping, checkpoints."""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from gcsan_pyg.nn.gcsan import GCSAN
from gcsan_pyg.training.checkpoint import load_checkpoint, save_checkpoint
from gcsan_pyg.training.evaluate import evaluate
from gcsan_pyg.training.loader import SessionBatchLoader, SessionSamples
from gcsan_pyg.training.metrics import TopKMetrics

log = logging.getLogger("gcsan_pyg")


@dataclass
class TrainConfig:
    r"""Trainer options. The defaults are SR-GNN's schedule: Adam, learning
    rate :math:`10^{-3}` decayed :math:`\times 0.1` every 3 epochs, L2
    :math:`10^{-5}`, batch size 100.

    Args:
        epochs (int): most epochs to run.
        batch_size (int): training sessions per step.
        eval_batch_size (int): sessions per evaluation batch.
        lr (float): initial learning rate.
        lr_step (int): epochs between learning-rate decays (0: never).
        lr_gamma (float): learning-rate decay factor.
        weight_decay (float): Adam's L2 penalty.
        patience (int): stop after this many epochs without a better
            validation :obj:`metric` (0: never stop early).
        metric (str): validation metric to select and stop on, e.g.
            :obj:`"MRR@20"` or :obj:`"Hit@20"`.
        ks (tuple of int): cut-offs of the reported metrics.
        seed (int): seed of shuffling and dropout.
        max_length (int, optional): keep the most recent clicks of longer
            sessions.
        device (str): :obj:`"cpu"`, :obj:`"cuda"`, ...
        progress (bool): show progress bars.
    """

    epochs: int = 10
    batch_size: int = 100
    eval_batch_size: int = 500
    lr: float = 1e-3
    lr_step: int = 3
    lr_gamma: float = 0.1
    weight_decay: float = 1e-5
    patience: int = 3
    metric: str = "MRR@20"
    ks: tuple[int, ...] = (10, 20)
    seed: int = 2019
    max_length: int | None = None
    device: str = "cpu"
    progress: bool = True

    def __post_init__(self) -> None:
        self.ks = tuple(int(k) for k in self.ks)
        for name in ("epochs", "batch_size", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"'{name}' must be positive, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"'lr' must be positive, got {self.lr}")
        if self.lr_step < 0 or self.patience < 0:
            raise ValueError("'lr_step' and 'patience' must be >= 0")
        name, _, k = self.metric.partition("@")
        if name not in ("Hit", "MRR", "NDCG") or not k.isdigit() or int(k) not in self.ks:
            raise ValueError(
                f"'metric' must look like 'MRR@20' with a cut-off among ks={self.ks}, "
                f"got {self.metric!r}"
            )


@dataclass
class TrainState:
    """What a resumed run needs besides the weights and the optimizer."""

    epoch: int = 0  # epochs completed
    best_score: float = -math.inf
    best_epoch: int = -1
    bad_epochs: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


def make_adam(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.Adam:
    """Adam, fused into one kernel where torch supports it: the step over the
    whole item table is a large share of a training step, and the fused
    kernel is several times faster than the per-parameter loop."""
    try:
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay, fused=True)
    except RuntimeError:  # a device or dtype without a fused kernel
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)


class Trainer:
    r"""Trains a :class:`~gcsan_pyg.GCSAN` on :class:`SessionSamples`.

    Every epoch ends with a validation pass, one log line of metrics, and,
    with :obj:`checkpoint_dir`, an atomic ``last.pt`` (everything needed to
    resume: weights, optimizer, scheduler, RNG, epoch, history) and
    ``best.pt`` (the best weights so far).

    Args:
        model (GCSAN): the model.
        config (TrainConfig): options.
        checkpoint_dir (str or Path, optional): where checkpoints go.
        extra (dict, optional): stored in every checkpoint (e.g. the item id
            mapping and the data options, for :command:`gcsan-pyg recommend`).
    """

    def __init__(
        self,
        model: GCSAN,
        config: TrainConfig,
        checkpoint_dir: str | Path | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.config = config
        self.device = torch.device(config.device)
        self.model = model.to(self.device)
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.extra = extra or {}
        self.optimizer = make_adam(model, config.lr, config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.StepLR(
            self.optimizer,
            step_size=config.lr_step if config.lr_step > 0 else 10**9,
            gamma=config.lr_gamma,
        )
        self.state = TrainState()
        self._best_weights: dict[str, torch.Tensor] | None = None

    # Checkpoints -----------------------------------------------------------------

    def checkpoint_payload(self) -> dict[str, Any]:
        return {
            "hparams": self.model.hparams,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "train_config": asdict(self.config),
            "state": asdict(self.state),
            "rng": torch.get_rng_state(),
            **self.extra,
        }

    def resume(self, path: str | Path) -> None:
        """Restores a ``last.pt`` written by this trainer."""
        payload = load_checkpoint(path, map_location=self.device)
        if payload["hparams"] != self.model.hparams:
            raise ValueError(
                f"checkpoint {path} was written for a model with {payload['hparams']}, "
                f"not {self.model.hparams}"
            )
        for key in ("optimizer", "scheduler", "state", "rng"):
            if key not in payload:
                raise ValueError(f"checkpoint {path} cannot resume a run: no '{key}' entry")
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        self.state = TrainState(**payload["state"])
        torch.set_rng_state(payload["rng"].cpu())
        log.info("resumed from %s after epoch %d", path, self.state.epoch)

    # Training ----------------------------------------------------------------------

    def fit(
        self,
        train: SessionSamples,
        valid: SessionSamples | None = None,
        on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
    ) -> list[dict[str, Any]]:
        r"""Trains until :obj:`epochs` or early stopping, then loads the best
        weights (by the validation metric; the last ones without
        :obj:`valid`). Returns the per-epoch history."""
        config = self.config
        train.check(self.model.num_items)
        if valid is not None:
            valid.check(self.model.num_items)
        loader = SessionBatchLoader(
            train, config.batch_size, shuffle=True, seed=config.seed,
            max_length=config.max_length, device=self.device,
        )
        if self.state.epoch == 0 and not self.state.history:
            torch.manual_seed(config.seed)
        while self.state.epoch < config.epochs and not self._should_stop():
            epoch = self.state.epoch
            loader.set_epoch(epoch)
            start = time.perf_counter()
            train_loss = self._train_epoch(loader, epoch)
            seconds = time.perf_counter() - start
            record: dict[str, Any] = {
                "epoch": epoch + 1,
                "train_loss": train_loss,
                "lr": self.optimizer.param_groups[0]["lr"],
                "seconds": round(seconds, 2),
                "samples_per_s": round(len(train) / seconds, 1),
            }
            self.scheduler.step()
            if valid is not None:
                record["valid"] = self.evaluate(valid)
                score = record["valid"][config.metric]
            else:
                score = -train_loss
            self.state.epoch = epoch + 1
            improved = score > self.state.best_score
            if improved:
                self.state.best_score, self.state.best_epoch = score, epoch + 1
                self.state.bad_epochs = 0
                self._best_weights = {
                    k: v.detach().clone() for k, v in self.model.state_dict().items()
                }
            else:
                self.state.bad_epochs += 1
            self.state.history.append(record)
            self._log_epoch(record)
            self._save(improved)
            if on_epoch_end is not None:
                on_epoch_end(record)
        self._load_best()
        return self.state.history

    def _train_epoch(self, loader: SessionBatchLoader, epoch: int) -> float:
        self.model.train()
        total, count = 0.0, 0
        bar = tqdm(
            loader, desc=f"epoch {epoch + 1}/{self.config.epochs}",
            disable=not self.config.progress, leave=False, unit="batch",
        )
        start = time.perf_counter()
        for step, batch in enumerate(bar):
            self.optimizer.zero_grad(set_to_none=True)
            neg_items = None
            if self.model.loss_type == "BPR":  # one uniform negative per session
                neg_items = torch.randint(
                    1, self.model.num_items, (batch.num_graphs,), device=self.device
                )
            loss = self.model.loss(batch, neg_items=neg_items)
            loss.backward()
            self.optimizer.step()
            total += loss.item() * batch.num_graphs
            count += batch.num_graphs
            if step % 20 == 0:
                rate = count / max(time.perf_counter() - start, 1e-9)
                bar.set_postfix(loss=f"{total / count:.4f}", samples_s=f"{rate:.0f}")
        return total / max(count, 1)

    def evaluate(self, samples: SessionSamples, metrics: TopKMetrics | None = None) -> dict:
        """Hit/MRR/NDCG@K (percent) of the current weights on :obj:`samples`."""
        loader = SessionBatchLoader(
            samples, self.config.eval_batch_size, max_length=self.config.max_length,
            device=self.device,
        )
        return evaluate(self.model, loader, self.config.ks, self.config.progress, metrics)

    def _should_stop(self) -> bool:
        patience = self.config.patience
        return patience > 0 and self.state.bad_epochs >= patience

    def _log_epoch(self, record: dict[str, Any]) -> None:
        parts = [
            f"epoch {record['epoch']:3d}",
            f"loss {record['train_loss']:.4f}",
            f"lr {record['lr']:.1e}",
            f"{record['samples_per_s']:.0f} samples/s",
        ]
        parts += [f"{name} {value:.2f}" for name, value in record.get("valid", {}).items()]
        log.info(" | ".join(parts))

    def _save(self, improved: bool) -> None:
        if self.checkpoint_dir is None:
            return
        payload = self.checkpoint_payload()
        save_checkpoint(self.checkpoint_dir / "last.pt", payload)
        if improved:
            best = {k: v for k, v in payload.items() if k not in ("optimizer", "scheduler")}
            save_checkpoint(self.checkpoint_dir / "best.pt", best)

    def _load_best(self) -> None:
        if self.state.best_epoch in (-1, self.state.epoch):
            return
        best = self._best_weights
        if best is None and self.checkpoint_dir is not None:  # a resumed run
            best = load_checkpoint(self.checkpoint_dir / "best.pt", self.device)["model"]
        if best is not None:
            self.model.load_state_dict(best)
            log.info("loaded the best weights, of epoch %d", self.state.best_epoch)
