"""The training loop: Adam with a step schedule, early stopping, checkpoints;
in one process or data-parallel over several (``torchrun``)."""
from __future__ import annotations

import contextlib
import logging
import math
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from gcsan_pyg.nn.gcsan import GCSAN
from gcsan_pyg.training import distributed
from gcsan_pyg.training.checkpoint import load_checkpoint, save_checkpoint
from gcsan_pyg.training.evaluate import evaluate
from gcsan_pyg.training.interrupt import TrainingInterrupted, _SignalCatcher
from gcsan_pyg.training.loader import SessionBatchLoader, SessionSamples
from gcsan_pyg.training.metrics import TopKMetrics
from gcsan_pyg.training.precision import compile_model

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
        device (str): :obj:`"cpu"`, :obj:`"cuda"`, :obj:`"cuda:1"`, ... or
            :obj:`"auto"` (CUDA where available). Under ``torchrun``,
            :obj:`"cuda"` means each process's own GPU :obj:`LOCAL_RANK`.
        progress (bool): show progress bars (rank 0 only).
        bf16 (bool): run the forward pass of training steps (graph cell,
            self-attention and loss) under bfloat16 autocast (CPU and CUDA);
            the softmax cross-entropy over all items computes in float32
            inside, and parameters, gradients, the optimizer and evaluation
            stay float32 (ranking thousands of item scores in bfloat16 would
            tie many).
        compile (bool): :func:`torch.compile` the model's graph cell and
            self-attention stack (see :func:`compile_model`); falls back to
            eager execution, with a warning, where the machine cannot compile.
        handle_signals (bool): on SIGINT/SIGTERM, finish the current step,
            write a resumable ``last.pt`` and raise
            :class:`TrainingInterrupted` (a repeated signal, a second or more
            later, acts at once).
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
    bf16: bool = False
    compile: bool = False
    handle_signals: bool = True

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
    # Progress inside epoch `epoch` when interrupted there (0: at its start).
    step: int = 0  # training steps taken
    epoch_loss: float = 0.0  # sum of loss * sessions over those steps (this rank's)
    epoch_count: int = 0  # sessions of those steps (this rank's)
    epoch_seconds: float = 0.0


class _LossModule(nn.Module):
    """``model.loss`` as a module's forward, which
    :class:`~torch.nn.parallel.DistributedDataParallel` wraps (it hooks the
    gradient averaging onto the parameters of the module it is given)."""

    def __init__(self, model: GCSAN) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: Any, neg_items: Tensor | None = None) -> Tensor:
        return self.model.loss(batch, neg_items=neg_items)


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

    In a process group of several processes (see
    :mod:`gcsan_pyg.training.distributed`), the trainer is data-parallel:
    each epoch's shuffled samples are dealt out to the ranks (equal shares,
    so that all take the same number of steps), the loss goes through
    :class:`~torch.nn.parallel.DistributedDataParallel` (gradients averaged,
    parameters identical everywhere), evaluation metrics are summed over the
    ranks' disjoint shares, and only rank 0 writes checkpoints, logs and
    progress bars. :obj:`batch_size` is per process.

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
        self.dist = distributed.current()
        self.device = distributed.resolve_device(
            config.device, self.dist.local_rank if self.dist.enabled else None
        )
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
        self._ddp: DistributedDataParallel | None = None
        self._signal: int | None = None
        self.compiled = compile_model(model, self.device) if config.compile else False

    @property
    def _progress(self) -> bool:
        return self.config.progress and self.dist.is_main

    # Checkpoints -----------------------------------------------------------------

    def checkpoint_payload(self) -> dict[str, Any]:
        payload = {
            "hparams": self.model.hparams,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "train_config": asdict(self.config),
            "state": asdict(self.state),
            "rng": torch.get_rng_state(),
            "world_size": self.dist.world_size,
            **self.extra,
        }
        if self.device.type == "cuda":
            payload["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return payload

    def _rank_state(self) -> dict[str, Any]:
        """What differs between ranks: random streams and the partial epoch sums."""
        state = {
            "rng": torch.get_rng_state(),
            "epoch_loss": self.state.epoch_loss,
            "epoch_count": self.state.epoch_count,
        }
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return state

    def _read_checkpoint(self, path: str | Path) -> dict[str, Any]:
        """:func:`load_checkpoint`; with several processes, rank 0 reads the
        file and sends it to the others (no shared file system needed)."""
        if not self.dist.enabled:
            return load_checkpoint(path, map_location=self.device)
        result: Any = None
        if self.dist.is_main:
            try:
                result = load_checkpoint(path, map_location="cpu")
            except ValueError as error:
                result = error
        result = distributed.broadcast_object(result)
        if isinstance(result, Exception):
            raise result
        return result

    def resume(self, path: str | Path) -> None:
        """Restores a ``last.pt`` written by this trainer (at the end of an
        epoch, or in the middle of one after an interruption)."""
        payload = self._read_checkpoint(path)
        if payload["hparams"] != self.model.hparams:
            raise ValueError(
                f"checkpoint {path} was written for a model with {payload['hparams']}, "
                f"not {self.model.hparams}"
            )
        for key in ("optimizer", "scheduler", "state", "rng"):
            if key not in payload:
                raise ValueError(f"checkpoint {path} cannot resume a run: no '{key}' entry")
        state = TrainState(**payload["state"])
        world_size = int(payload.get("world_size", 1))
        batch_size = payload.get("train_config", {}).get("batch_size", self.config.batch_size)
        if state.step and (world_size, batch_size) != (self.dist.world_size,
                                                       self.config.batch_size):
            raise ValueError(
                f"checkpoint {path} was saved in the middle of epoch {state.epoch + 1} by "
                f"{world_size} process(es) with batch size {batch_size}; resume it with the "
                f"same (here: {self.dist.world_size} process(es), batch size "
                f"{self.config.batch_size})"
            )
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        self.state = state
        ranks = payload.get("ranks") or [
            {"rng": payload["rng"], "cuda_rng": payload.get("cuda_rng")}
        ]
        if len(ranks) == self.dist.world_size:
            mine = ranks[self.dist.rank]
            torch.set_rng_state(mine["rng"].cpu())
            if mine.get("cuda_rng") is not None and self.device.type == "cuda":
                torch.cuda.set_rng_state(mine["cuda_rng"].cpu(), self.device)
            if "epoch_loss" in mine:
                self.state.epoch_loss = mine["epoch_loss"]
                self.state.epoch_count = mine["epoch_count"]
        else:
            if self.dist.is_main:
                log.warning(
                    "checkpoint %s was written by %d process(es), resumed by %d: the random "
                    "streams restart, so this run will not repeat an uninterrupted one bit "
                    "for bit", path, len(ranks), self.dist.world_size,
                )
            torch.manual_seed(self.config.seed + self.dist.rank + 1_000_003 * state.epoch)
        if self.dist.is_main:
            log.info("resumed from %s after epoch %d%s", path, self.state.epoch,
                     f" and {self.state.step} step(s)" if self.state.step else "")

    # Training ----------------------------------------------------------------------

    def fit(
        self,
        train: SessionSamples,
        valid: SessionSamples | None = None,
        on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
    ) -> list[dict[str, Any]]:
        r"""Trains until :obj:`epochs` or early stopping, then loads the best
        weights (by the validation metric; the last ones without
        :obj:`valid`). Returns the per-epoch history.

        Raises:
            TrainingInterrupted: after SIGINT/SIGTERM (with
                :obj:`handle_signals`), once ``last.pt`` holds the state
                after the last finished step.
        """
        config, info = self.config, self.dist
        train.check(self.model.num_items)
        if valid is not None:
            valid.check(self.model.num_items)
        loader = SessionBatchLoader(
            train, config.batch_size, shuffle=True, seed=config.seed,
            max_length=config.max_length, device=self.device, num_items=self.model.num_items,
            num_replicas=info.world_size, rank=info.rank,
        )
        if self.state.epoch == 0 and not self.state.history and self.state.step == 0:
            torch.manual_seed(config.seed + info.rank)
        catcher = _SignalCatcher(self) if config.handle_signals else contextlib.nullcontext()
        with catcher:
            while self.state.epoch < config.epochs and not self._should_stop():
                if self._interrupt_requested():
                    raise self._interrupted()
                epoch = self.state.epoch
                loader.set_epoch(epoch)
                start = time.perf_counter() - self.state.epoch_seconds
                train_loss = self._train_epoch(loader, epoch)
                seconds = time.perf_counter() - start
                self.state.step, self.state.epoch_loss = 0, 0.0
                self.state.epoch_count, self.state.epoch_seconds = 0, 0.0
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

    def _loss_function(self) -> Callable[..., Tensor]:
        if not self.dist.enabled:
            return self.model.loss
        if self._ddp is None:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self._ddp = DistributedDataParallel(_LossModule(self.model), device_ids=device_ids)
        return self._ddp

    def _train_epoch(self, loader: SessionBatchLoader, epoch: int) -> float:
        self.model.train()
        state = self.state
        loss_function = self._loss_function()
        total, count, first = state.epoch_loss, state.epoch_count, state.step
        bar = tqdm(
            loader.batches(first), total=len(loader), initial=first,
            desc=f"epoch {epoch + 1}/{self.config.epochs}",
            disable=not self._progress, leave=False, unit="batch",
        )
        start = time.perf_counter()
        total, count = self._train_steps(bar, loss_function, total, count, start)
        if self.dist.enabled:  # the mean over all ranks' sessions
            sums = torch.tensor([total, float(count)], dtype=torch.float64, device=self.device)
            total, count = distributed.all_reduce(sums).tolist()
        return total / max(count, 1)

    def _train_steps(self, bar: tqdm, loss_function: Callable[..., Tensor], total: float,
                     count: int, start: float) -> tuple[float, int]:
        state = self.state
        for step, batch in enumerate(bar, start=state.step):
            self.optimizer.zero_grad(set_to_none=True)
            neg_items = None
            if self.model.loss_type == "BPR":  # one uniform negative per session
                neg_items = torch.randint(
                    1, self.model.num_items, (batch.num_graphs,), device=self.device
                )
            # The whole training forward under autocast; the fused CE computes in
            # float32 inside. Backward runs outside, as autocast recommends.
            with torch.autocast(self.device.type, torch.bfloat16, enabled=self.config.bf16):
                loss = loss_function(batch, neg_items=neg_items)
            loss.backward()
            self.optimizer.step()
            total += loss.item() * batch.num_graphs
            count += batch.num_graphs
            if step % 20 == 0:
                rate = (count - state.epoch_count) / max(time.perf_counter() - start, 1e-9)
                bar.set_postfix(loss=f"{total / count:.4f}", samples_s=f"{rate:.0f}")
            if self._interrupt_requested():
                bar.close()
                state.epoch_seconds += time.perf_counter() - start
                state.step, state.epoch_loss, state.epoch_count = step + 1, total, count
                self._save(improved=False)
                raise self._interrupted()
        return total, count

    def _interrupt_requested(self) -> bool:
        """Whether a signal asked to stop (on any rank: all ranks agree, so
        they stop after the same step)."""
        if not self.config.handle_signals:
            return False
        signum = self._signal or 0
        if self.dist.enabled:
            flag = torch.tensor([signum], dtype=torch.long, device=self.device)
            signum = int(distributed.all_reduce(flag, "max"))
            self._signal = signum or None
        return signum != 0

    def _interrupted(self) -> TrainingInterrupted:
        saved = self.checkpoint_dir / "last.pt" if self.checkpoint_dir is not None else None
        if saved is not None and not saved.is_file() and self.dist.is_main:
            saved = None
        error = TrainingInterrupted(self._signal or signal.SIGTERM, self.state.epoch,
                                    self.state.step, saved)
        if self.dist.is_main:
            log.warning("%s", error)
        return error

    def evaluate(self, samples: SessionSamples, metrics: TopKMetrics | None = None) -> dict:
        """Hit/MRR/NDCG@K (percent) of the current weights on :obj:`samples`
        (with several processes: each ranks its own share, and the metric
        sums are added up, so every sample counts once)."""
        info = self.dist
        loader = SessionBatchLoader(
            samples, self.config.eval_batch_size, max_length=self.config.max_length,
            device=self.device, num_items=self.model.num_items,
            num_replicas=info.world_size, rank=info.rank, even=False,
        )
        if not info.enabled:
            return evaluate(self.model, loader, self.config.ks, self._progress, metrics)
        metrics = metrics if metrics is not None else TopKMetrics(self.config.ks)
        evaluate(self.model, loader, self.config.ks, self._progress, metrics)
        accum, total = (t.to(self.device) for t in metrics.state())
        distributed.all_reduce(accum)
        distributed.all_reduce(total)
        return metrics.compute((accum, total))

    def _should_stop(self) -> bool:
        patience = self.config.patience
        return patience > 0 and self.state.bad_epochs >= patience

    def _log_epoch(self, record: dict[str, Any]) -> None:
        if not self.dist.is_main:
            return
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
        if not self.dist.enabled:
            self._write(self.checkpoint_payload(), improved)
            return
        ranks = distributed.all_gather_object(self._rank_state())
        if self.dist.is_main:
            self._write({**self.checkpoint_payload(), "ranks": ranks}, improved)
        distributed.barrier()  # the files are complete before any rank goes on

    def _write(self, payload: dict[str, Any], improved: bool) -> None:
        save_checkpoint(self.checkpoint_dir / "last.pt", payload)
        if improved:
            best = {k: v for k, v in payload.items() if k not in ("optimizer", "scheduler")}
            save_checkpoint(self.checkpoint_dir / "best.pt", best)

    def _load_best(self) -> None:
        if self.state.best_epoch in (-1, self.state.epoch):
            return
        best = self._best_weights
        if best is None and self.checkpoint_dir is not None:  # a resumed run
            best = self._read_checkpoint(self.checkpoint_dir / "best.pt")["model"]
        if best is not None:
            self.model.load_state_dict(best)
            if self.dist.is_main:
                log.info("loaded the best weights, of epoch %d", self.state.best_epoch)
