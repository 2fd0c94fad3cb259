"""The training loop: Adam with a step schedule, validation and early
stopping; in one process or data-parallel over several (``torchrun``)."""
from __future__ import annotations

import contextlib
import copy
import functools
import logging
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from gcsan_pyg.data.samples import SessionSamples
from gcsan_pyg.nn.gcsan import GCSAN
from gcsan_pyg.nn.sampled_softmax import SampledSoftmaxCrossEntropy
from gcsan_pyg.training import distributed
from gcsan_pyg.training.config import TrainConfig
from gcsan_pyg.training.evaluate import evaluate
from gcsan_pyg.training.interrupt import SignalCatcher, TrainingInterrupted
from gcsan_pyg.training.lazy_adam import LazyAdam
from gcsan_pyg.training.loader import SessionBatchLoader
from gcsan_pyg.training.metrics import TopKMetrics
from gcsan_pyg.training.negatives import uniform_negatives
from gcsan_pyg.training.precision import compile_model
from gcsan_pyg.training.resume import TrainState, read_checkpoint, restore_run, save_run

log = logging.getLogger("gcsan_pyg")


class Trainer:
    r"""Trains a :class:`~gcsan_pyg.GCSAN` on
    :class:`~gcsan_pyg.data.SessionSamples`.

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
        # Adam, fused over the dense gradients; rows of a sparse gradient
        # (sampled softmax) are stepped lazily, at O(rows touched).
        self.optimizer = LazyAdam(model.parameters(), lr=config.lr,
                                  weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.StepLR(
            self.optimizer,
            step_size=config.lr_step if config.lr_step > 0 else 10**9,
            gamma=config.lr_gamma,
        )
        self.state = TrainState()
        self._best_weights: dict[str, torch.Tensor] | None = None
        self._loss_module: Callable[..., Tensor] | None = None
        # The sampled softmax's loss object (its sampler's item counts), made by fit().
        self.sampled_loss: SampledSoftmaxCrossEntropy | None = None
        self.stop_signal: int | None = None  # the signal that asked to stop, if any
        self.compiled = compile_model(model, self.device) if config.compile else False

    @property
    def _progress(self) -> bool:
        return self.config.progress and self.dist.is_main

    def resume(self, path: str | Path) -> None:
        """Restores a ``last.pt`` written by this trainer (at the end of an
        epoch, or in the middle of one after an interruption); see
        :func:`~gcsan_pyg.training.resume.restore_run`."""
        restore_run(self, path)

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
        loader = SessionBatchLoader(  # checks every id of the samples
            train, config.batch_size, shuffle=True, seed=config.seed,
            max_length=config.max_length, device=self.device, num_items=self.model.num_items,
            num_replicas=info.world_size, rank=info.rank,
        )
        if self.model.loss_type == "sampled":  # the sampler's popularity: training targets
            counts = torch.bincount(train.target, minlength=self.model.num_items)
            counts[0] = 0  # as the sampler stores them
            resumed = self.sampled_loss
            if resumed is not None and not torch.equal(resumed.sampler.counts.cpu(),
                                                        counts.double()):
                raise ValueError("these training samples are not those of the resumed run: "
                                 "their item counts differ from the checkpoint's")
            self.sampled_loss = self.model.sampled_softmax(counts).to(self.device)
        if self.state.epoch == 0 and not self.state.history and self.state.step == 0:
            torch.manual_seed(config.seed + info.rank)
        catcher = SignalCatcher(self) if config.handle_signals else contextlib.nullcontext()
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
                    self._best_weights = copy.deepcopy(self.model.state_dict())
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
            return functools.partial(self.model.loss, sampled_loss=self.sampled_loss)
        if self._loss_module is None:
            self._loss_module = distributed.LossModule.wrap(self.model, self.device)
        # Not a submodule of the wrapped loss: DDP broadcasts none of its state.
        return functools.partial(self._loss_module, sampled_loss=self.sampled_loss)

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
                neg_items = uniform_negatives(batch.y, self.model.num_items)
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
        signum = self.stop_signal or 0
        if self.dist.enabled:
            flag = torch.tensor([signum], dtype=torch.long, device=self.device)
            signum = int(distributed.all_reduce(flag, "max"))
            self.stop_signal = signum or None
        return signum != 0

    def _interrupted(self) -> TrainingInterrupted:
        saved = self.checkpoint_dir / "last.pt" if self.checkpoint_dir is not None else None
        if saved is not None and not saved.is_file() and self.dist.is_main:
            saved = None
        error = TrainingInterrupted(self.stop_signal or signal.SIGTERM, self.state.epoch,
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
        save_run(self, improved)

    def _load_best(self) -> None:
        if self.state.best_epoch in (-1, self.state.epoch):
            return
        best = self._best_weights
        if best is None and self.checkpoint_dir is not None:  # a resumed run
            best = read_checkpoint(self.checkpoint_dir / "best.pt", self.device)["model"]
        if best is not None:
            self.model.load_state_dict(best)
            if self.dist.is_main:
                log.info("loaded the best weights, of epoch %d", self.state.best_epoch)
