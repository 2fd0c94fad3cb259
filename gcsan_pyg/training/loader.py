"""Fast mini-batches of session graphs for training and evaluation."""
from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from gcsan_pyg.data.samples import SessionSamples
from gcsan_pyg.data.session_batch import SessionBatch, batch_from_clicks
from gcsan_pyg.training.distributed import shard


class SessionBatchLoader:
    r"""Iterates :class:`~gcsan_pyg.data.SessionSamples` as batched session
    graphs: every batch's clicks are gathered from the samples' flat store
    and turned into a graph by :func:`~gcsan_pyg.data.batch_from_clicks`
    (no per-sample Python work).

    Args:
        samples (SessionSamples): the data.
        batch_size (int): sessions per batch.
        shuffle (bool, optional): reshuffle every epoch. (default: :obj:`False`)
        seed (int, optional): base seed of the shuffling; epoch :math:`e`
            uses :obj:`seed + e` (see :meth:`set_epoch`), so a resumed run
            sees the same order. (default: :obj:`0`)
        max_length (int, optional): keep only the most recent clicks of
            longer sessions. (default: :obj:`None`)
        device (torch.device, optional): where the batches are built.
        indices (Tensor, optional): the subset of samples this loader serves.
            (default: all)
        num_items (int, optional): the item table size; when given, every id
            is checked once against it here, and the graph builder uses it
            instead of reading the largest id of every batch back from the
            device (a host synchronisation per batch).
        num_replicas (int, optional): processes that share the samples
            (distributed training); each serves every
            :obj:`num_replicas`-th sample of the (shuffled) order from
            :obj:`rank` on. (default: :obj:`1`)
        rank (int, optional): this process's share. (default: :obj:`0`)
        even (bool, optional): with :obj:`num_replicas > 1`, pad the order by
            repeating its head so that every process gets as many samples and
            batches (training: all ranks must take the same number of steps);
            :obj:`False` gives disjoint shares that cover every sample exactly
            once (evaluation). (default: :obj:`True`)
    """

    def __init__(
        self,
        samples: SessionSamples,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        max_length: int | None = None,
        device: torch.device | str | None = None,
        indices: Tensor | None = None,
        num_items: int | None = None,
        num_replicas: int = 1,
        rank: int = 0,
        even: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"'batch_size' must be positive, got {batch_size}")
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"need 0 <= rank < num_replicas, got rank={rank}, "
                             f"num_replicas={num_replicas}")
        if num_items is not None:
            samples.check(num_items)
        self.samples = samples
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.max_length = max_length
        self.device = torch.device(device) if device is not None else None
        self.indices = torch.arange(len(samples)) if indices is None else indices
        self.num_items = num_items
        self.num_replicas = num_replicas
        self.rank = rank
        self.even = even
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-self._share_size() // self.batch_size)

    def _share_size(self) -> int:
        count, replicas = self.indices.numel(), self.num_replicas
        if replicas == 1:
            return count
        if self.even:
            return -(-count // replicas)
        return len(range(self.rank, count, replicas))

    def order(self) -> Tensor:
        """The sample indices this loader serves in the current epoch, in order."""
        order = self.indices
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            order = order[torch.randperm(order.numel(), generator=generator)]
        return shard(order, self.rank, self.num_replicas, self.even)

    def batches(self, start: int = 0) -> Iterator[SessionBatch]:
        """The batches of the current epoch from batch :obj:`start` on (a run
        resumed in the middle of an epoch skips the ones it already took)."""
        order = self.order()
        # An empty share yields no batch (split() would give one empty chunk).
        chunks = order.split(self.batch_size) if order.numel() else ()
        for chunk in chunks[start:]:
            clicks, lengths = self.samples.clicks(chunk, self.max_length)
            target = self.samples.target[chunk]
            if self.device is not None:
                clicks, lengths, target = (
                    t.to(self.device, non_blocking=True) for t in (clicks, lengths, target)
                )
            yield batch_from_clicks(clicks, lengths, target, num_items=self.num_items)

    def __iter__(self) -> Iterator[SessionBatch]:
        return self.batches()
