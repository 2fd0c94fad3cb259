"""A run's checkpoints: what ``last.pt`` and ``best.pt`` hold, writing them
(rank 0, atomically) and resuming a run from them exactly."""
from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from gcsan_pyg.training import distributed
from gcsan_pyg.training.checkpoint import load_checkpoint, save_checkpoint

if TYPE_CHECKING:
    from gcsan_pyg.training.trainer import Trainer

log = logging.getLogger("gcsan_pyg")


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


def run_payload(trainer: Trainer) -> dict[str, Any]:
    """Everything ``last.pt`` holds: weights, optimizer, schedule, progress,
    random state, the options, and the trainer's :obj:`extra` entries."""
    payload = {
        "hparams": trainer.model.hparams,
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "train_config": asdict(trainer.config),
        "state": asdict(trainer.state),
        "rng": torch.get_rng_state(),
        "world_size": trainer.dist.world_size,
        **trainer.extra,
    }
    if trainer.sampled_loss is not None:  # the loss's state, kept out of the model
        payload["loss"] = trainer.sampled_loss.state_dict()
    if trainer.device.type == "cuda":
        payload["cuda_rng"] = torch.cuda.get_rng_state(trainer.device)
    return payload


def _rank_state(trainer: Trainer) -> dict[str, Any]:
    """What differs between ranks: random streams and the partial epoch sums."""
    state = {
        "rng": torch.get_rng_state(),
        "epoch_loss": trainer.state.epoch_loss,
        "epoch_count": trainer.state.epoch_count,
    }
    if trainer.device.type == "cuda":
        state["cuda_rng"] = torch.cuda.get_rng_state(trainer.device)
    return state


def save_run(trainer: Trainer, improved: bool) -> None:
    """Writes ``last.pt`` (and ``best.pt`` when :obj:`improved`, without the
    optimizer) into the trainer's checkpoint folder; with several processes,
    rank 0 writes them with every rank's random state, and all wait until
    the files are complete."""
    folder = trainer.checkpoint_dir
    if folder is None:
        return
    payload: dict[str, Any] | None = None
    if not trainer.dist.enabled:
        payload = run_payload(trainer)
    else:
        ranks = distributed.all_gather_object(_rank_state(trainer))
        if trainer.dist.is_main:
            payload = {**run_payload(trainer), "ranks": ranks}
    if payload is not None:
        # best.pt first: a kill between the two writes leaves a last.pt one
        # epoch behind (its resumed run redoes that epoch and rewrites best.pt),
        # never a last.pt naming a best epoch that best.pt does not hold.
        if improved:
            # The weights and the record, no training state (optimizer, loss).
            best = {k: v for k, v in payload.items()
                    if k not in ("optimizer", "scheduler", "loss")}
            save_checkpoint(folder / "best.pt", best)
        save_checkpoint(folder / "last.pt", payload)
    distributed.barrier()


def read_checkpoint(path: str | Path, device: torch.device) -> dict[str, Any]:
    """:func:`~gcsan_pyg.training.load_checkpoint`; with several processes,
    rank 0 reads the file and sends it to the others (no shared file system
    needed), and an error reading it stops every rank."""
    if not distributed.current().enabled:
        return load_checkpoint(path, map_location=device)
    result: Any = None
    if distributed.current().is_main:
        try:
            result = load_checkpoint(path, map_location="cpu")
        except ValueError as error:
            result = error
    result = distributed.broadcast_object(result)
    if isinstance(result, Exception):
        raise result
    return result


#: Train options a resumed run may change: they extend or observe the run,
#: never alter its data, split, model, optimizer or random streams.
RESUMABLE_OPTIONS = frozenset({"epochs", "patience", "progress", "handle_signals",
                               "eval_batch_size", "ks"})


def changed_options(payload: dict[str, Any], trainer: Trainer) -> list[str]:
    """Every difference between the run configuration a ``last.pt`` records
    (model hyperparameters, train options but :data:`RESUMABLE_OPTIONS`, and
    the trainer's :obj:`extra` entries, such as the command line's data
    options and item ids) and :obj:`trainer`'s, as ``--option`` phrases
    with both values."""
    changes = _differences(payload["hparams"], trainer.model.hparams)
    recorded_config = payload.get("train_config", {})
    config = {k: v for k, v in asdict(trainer.config).items()
              if k not in RESUMABLE_OPTIONS and k in recorded_config}
    changes += _differences({k: recorded_config[k] for k in config}, config)
    for key, now in trainer.extra.items():
        if key not in payload or payload[key] == now:
            continue
        if isinstance(now, dict) and isinstance(payload[key], dict):
            changes += _differences(payload[key], now)
        else:
            changes.append(f"the {key.replace('_', ' ')} differ from the checkpoint's")
    return changes


def _differences(recorded: dict[str, Any], now: dict[str, Any]) -> list[str]:
    # Options absent from one side were left at their defaults there.
    out = []
    for name in dict.fromkeys([*recorded, *now]):
        was, new = recorded.get(name), now.get(name)
        if isinstance(was, (list, tuple)) and isinstance(new, (list, tuple)):
            was, new = list(was), list(new)
        if was != new:
            out.append(f"{_option_name(name)} {_shown(was)} in the checkpoint, {_shown(new)} now")
    return out


def _option_name(name: str) -> str:
    if name == "num_items":
        return "the item count of the data"
    if name == "source":
        return "the data"
    return "--" + name.replace("_", "-")


def _shown(value: Any) -> str:
    return "(default)" if value is None else repr(value)


def restore_run(trainer: Trainer, path: str | Path) -> None:
    """Restores a ``last.pt`` written by :func:`save_run` (at the end of an
    epoch, or in the middle of one after an interruption) into
    :obj:`trainer`."""
    payload = read_checkpoint(path, trainer.device)
    changes = changed_options(payload, trainer)
    if changes:
        raise ValueError(
            f"checkpoint {path} cannot resume with changed options: {'; '.join(changes)} "
            "(resume with the checkpoint's values, or start a new run in another folder)"
        )
    for key in ("optimizer", "scheduler", "state", "rng"):
        if key not in payload:
            raise ValueError(f"checkpoint {path} cannot resume a run: no '{key}' entry")
    state = TrainState(**payload["state"])
    info, config = trainer.dist, trainer.config
    world_size = int(payload.get("world_size", 1))
    batch_size = payload.get("train_config", {}).get("batch_size", config.batch_size)
    if state.step and (world_size, batch_size) != (info.world_size, config.batch_size):
        raise ValueError(
            f"checkpoint {path} was saved in the middle of epoch {state.epoch + 1} by "
            f"{world_size} process(es) with batch size {batch_size}; resume it with the "
            f"same (here: {info.world_size} process(es), batch size {config.batch_size})"
        )
    trainer.model.load_state_dict(payload["model"])  # drops a legacy sampler, if any
    if "loss" in payload:
        trainer.sampled_loss = trainer.model.sampled_softmax().to(trainer.device)
        trainer.sampled_loss.load_state_dict(payload["loss"])
    trainer.optimizer.load_state_dict(payload["optimizer"])
    trainer.scheduler.load_state_dict(payload["scheduler"])
    trainer.state = state
    ranks = payload.get("ranks") or [{"rng": payload["rng"], "cuda_rng": payload.get("cuda_rng")}]
    if len(ranks) == info.world_size:
        mine = ranks[info.rank]
        torch.set_rng_state(mine["rng"].cpu())
        if mine.get("cuda_rng") is not None and trainer.device.type == "cuda":
            torch.cuda.set_rng_state(mine["cuda_rng"].cpu(), trainer.device)
        if "epoch_loss" in mine:
            state.epoch_loss, state.epoch_count = mine["epoch_loss"], mine["epoch_count"]
    else:
        if info.is_main:
            log.warning(
                "checkpoint %s was written by %d process(es), resumed by %d: the random "
                "streams restart, so this run will not repeat an uninterrupted one bit "
                "for bit", path, len(ranks), info.world_size,
            )
        torch.manual_seed(config.seed + info.rank + 1_000_003 * state.epoch)
    if info.is_main:
        log.info("resumed from %s after epoch %d%s", path, state.epoch,
                 f" and {state.step} step(s)" if state.step else "")
