"""Multi-process data-parallel training: the ``torchrun`` environment, the
process group, and the few collectives the trainer needs.

Launch with ``torchrun --nproc_per_node N -m gcsan_pyg train ...``: every
process reads ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``, joins one process
group (NCCL on CUDA, Gloo on the CPU), trains a
:class:`~torch.nn.parallel.DistributedDataParallel` copy of the model on its
share of every epoch's samples, and evaluates its share of the evaluation
samples; the metric sums are added up across processes. Only rank 0 writes
files and logs.

Every function here is a no-op (or the identity) without an initialised
process group of more than one process, so the single-process code path
stays as it is.
"""
from __future__ import annotations

import inspect
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in the group.

    Attributes:
        rank (int): global rank, :obj:`0 .. world_size - 1`.
        world_size (int): number of processes.
        local_rank (int): rank on this machine (picks the CUDA device).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        """Whether more than one process trains together."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Whether this process writes files and logs (rank 0)."""
        return self.rank == 0


def torchrun_env(environ: Mapping[str, str] | None = None) -> DistInfo | None:
    """The :obj:`RANK` / :obj:`WORLD_SIZE` / :obj:`LOCAL_RANK` that
    ``torchrun`` sets, or :obj:`None` outside of it.

    Raises:
        ValueError: if the variables are set but not consistent.
    """
    environ = os.environ if environ is None else environ
    if "WORLD_SIZE" not in environ or "RANK" not in environ:
        return None
    try:
        rank = int(environ["RANK"])
        world_size = int(environ["WORLD_SIZE"])
        local_rank = int(environ.get("LOCAL_RANK", "0"))
    except ValueError as error:
        raise ValueError(
            f"bad torchrun environment (RANK/WORLD_SIZE/LOCAL_RANK): {error}"
        ) from None
    if world_size < 1 or not 0 <= rank < world_size or local_rank < 0:
        raise ValueError(
            f"bad torchrun environment: RANK={rank}, WORLD_SIZE={world_size}, "
            f"LOCAL_RANK={local_rank}"
        )
    return DistInfo(rank, world_size, local_rank)


def current() -> DistInfo:
    """This process's :class:`DistInfo`: from the initialised process group,
    else a single process."""
    if not (dist.is_available() and dist.is_initialized()):
        return DistInfo()
    env = torchrun_env()
    local_rank = env.local_rank if env is not None else 0
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank)


def resolve_device(
    device: str | torch.device | None, local_rank: int | None = None
) -> torch.device:
    """The device to train on: :obj:`"auto"` (or :obj:`None`) is CUDA where
    available, else the CPU; with :obj:`local_rank` (under ``torchrun``), a
    CUDA device without an index becomes GPU :obj:`local_rank`, so that every
    process of a machine drives its own GPU."""
    if device is None or str(device) == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda" and device.index is None and local_rank is not None:
        device = torch.device("cuda", local_rank)
    return device


def setup(
    device: str | torch.device | None = "cpu",
    backend: str | None = None,
    timeout: timedelta | None = None,
) -> tuple[DistInfo, torch.device]:
    r"""Joins the process group that ``torchrun`` describes in the
    environment (``env://``): NCCL when :obj:`device` is CUDA (after
    selecting the GPU :obj:`LOCAL_RANK`), Gloo otherwise. Outside of
    ``torchrun``, or with a single process, nothing is initialised.

    Returns:
        This process's :class:`DistInfo` and its device.
    """
    env = torchrun_env()
    if env is None or not env.enabled:
        info = env or DistInfo()
        return info, resolve_device(device, info.local_rank if env is not None else None)
    target = resolve_device(device, env.local_rank)
    if target.type == "cuda":
        torch.cuda.set_device(target)
    if not dist.is_initialized():
        options: dict[str, Any] = {}
        if timeout is not None:
            options["timeout"] = timeout
        if target.type == "cuda" and "device_id" in inspect.signature(
            dist.init_process_group
        ).parameters:
            options["device_id"] = target
        dist.init_process_group(
            backend or ("nccl" if target.type == "cuda" else "gloo"),
            rank=env.rank, world_size=env.world_size, **options,
        )
    return env, target


def cleanup() -> None:
    """Leaves the process group, if one was joined."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def shard(order: Tensor, rank: int, world_size: int, even: bool = True) -> Tensor:
    r"""This rank's share of :obj:`order`: every :obj:`world_size`-th entry
    from :obj:`rank` on (as :class:`~torch.utils.data.DistributedSampler`).

    With :obj:`even`, the order is first padded by repeating its head so that
    every rank gets the same count (and so takes the same number of training
    steps); without it, the shares are disjoint and cover :obj:`order`
    exactly once (for evaluation: no sample counted twice)."""
    if world_size == 1:
        return order
    if even and order.numel() % world_size:
        pad = world_size - order.numel() % world_size
        if order.numel():
            repeats = -(-pad // order.numel())
            order = torch.cat([order, order.repeat(repeats)[:pad]])
    return order[rank::world_size]


def all_reduce(tensor: Tensor, op: str = "sum") -> Tensor:
    """Reduces :obj:`tensor` in place across processes (:obj:`"sum"` or
    :obj:`"max"`) and returns it."""
    if current().enabled:
        reduce_op = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX}[op]
        dist.all_reduce(tensor, op=reduce_op)
    return tensor


def all_gather_object(obj: Any) -> list[Any]:
    """The :obj:`obj` of every process, by rank (:obj:`[obj]` alone)."""
    info = current()
    if not info.enabled:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank :obj:`src`'s :obj:`obj`, on every process."""
    if not current().enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def barrier() -> None:
    """Waits for every process."""
    if current().enabled:
        dist.barrier()


class LossModule(nn.Module):
    """A model's :meth:`loss` as a module's forward, which
    :class:`~torch.nn.parallel.DistributedDataParallel` wraps: it hooks the
    gradient averaging onto the parameters of the module it is given."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: Any, neg_items: Tensor | None = None,
                sampled_loss: nn.Module | None = None) -> Tensor:
        return self.model.loss(batch, neg_items=neg_items, sampled_loss=sampled_loss)

    @classmethod
    def wrap(cls, model: nn.Module, device: torch.device) -> DistributedDataParallel:
        """The :class:`~torch.nn.parallel.DistributedDataParallel` loss of
        :obj:`model`, on :obj:`device`."""
        device_ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(cls(model), device_ids=device_ids)
