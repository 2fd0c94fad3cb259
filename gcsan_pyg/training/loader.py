"""Fast mini-batches of session graphs for training and evaluation."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torch_geometric.data import Batch, InMemoryDataset

from gcsan_pyg.data.session_batch import build_session_batch
from gcsan_pyg.training.distributed import shard


@dataclass
class SessionSamples:
    r"""(session prefix, next item) samples stored flat: the clicks of sample
    :math:`i` are :obj:`items[ptr[i]:ptr[i + 1]]` and its label
    :obj:`target[i]`."""

    items: Tensor
    ptr: Tensor
    target: Tensor

    def __post_init__(self) -> None:
        lengths = self.ptr[1:] - self.ptr[:-1]
        if self.ptr.numel() != self.target.numel() + 1:
            raise ValueError(
                f"'ptr' has {self.ptr.numel()} entries for {self.target.numel()} samples"
            )
        if self.target.numel() and bool((lengths < 1).any()):
            index = int((lengths < 1).nonzero()[0])
            raise ValueError(f"sample {index} has an empty session")

    def __len__(self) -> int:
        return self.target.numel()

    @property
    def lengths(self) -> Tensor:
        return self.ptr[1:] - self.ptr[:-1]

    @classmethod
    def from_lists(
        cls, sessions: Sequence[Sequence[int]], targets: Sequence[int]
    ) -> SessionSamples:
        """From Python lists of click sequences and their next items."""
        if len(sessions) != len(targets):
            raise ValueError(f"{len(sessions)} sessions but {len(targets)} targets")
        lengths = torch.tensor([len(s) for s in sessions], dtype=torch.long)
        ptr = torch.zeros(len(sessions) + 1, dtype=torch.long)
        torch.cumsum(lengths, 0, out=ptr[1:])
        items = torch.tensor([i for s in sessions for i in s], dtype=torch.long)
        return cls(items, ptr, torch.as_tensor(list(targets), dtype=torch.long))

    @classmethod
    def from_dataset(cls, dataset: InMemoryDataset) -> SessionSamples:
        r"""Reads the click sequences back out of an
        :class:`~torch_geometric.data.InMemoryDataset` of
        :class:`~gcsan_pyg.data.SessionData` in one vectorised pass
        (:obj:`x[alias]` per sample), without touching samples one by one."""
        data, slices = dataset._data, dataset.slices
        if slices is None or "alias" not in slices or getattr(data, "y", None) is None:
            raise ValueError(f"{dataset!r} does not hold SessionData samples with labels 'y'")
        click_ptr = slices["alias"]
        node_ptr = slices["x"]
        lengths = click_ptr[1:] - click_ptr[:-1]
        sample_of_click = torch.repeat_interleave(torch.arange(lengths.numel()), lengths)
        # Stored aliases are local to their sample (InMemoryDataset keeps them un-offset).
        items = data.x[data.alias + node_ptr[:-1][sample_of_click]]
        samples = cls(items, click_ptr.clone(), data.y.view(-1).clone())
        if dataset._indices is not None:  # a subset view of the stored samples
            samples = samples.select(torch.as_tensor(dataset.indices()))
        return samples

    def select(self, index: Tensor) -> SessionSamples:
        """The samples :obj:`index`, in that order."""
        lengths = self.lengths[index]
        ptr = torch.zeros(index.numel() + 1, dtype=torch.long)
        torch.cumsum(lengths, 0, out=ptr[1:])
        sample_of_click = torch.repeat_interleave(torch.arange(index.numel()), lengths)
        positions = self.ptr[index][sample_of_click] + torch.arange(int(ptr[-1])) - ptr[:-1][
            sample_of_click
        ]
        return SessionSamples(self.items[positions], ptr, self.target[index])

    def check(self, num_items: int) -> None:
        """Raises :class:`ValueError` if an id lies outside ``[1, num_items)``."""
        for name, ids in (("item", self.items), ("target", self.target)):
            bad = (ids < 1) | (ids >= num_items)
            if bool(bad.any()):
                index = int(bad.nonzero()[0])
                raise ValueError(
                    f"{name} id {int(ids[index])} (entry {index}) is outside "
                    f"[1, num_items - 1] = [1, {num_items - 1}]"
                )

    def padded(self, index: Tensor, max_length: int | None = None) -> tuple[Tensor, Tensor]:
        r"""Right-padded :obj:`[len(index), L]` clicks and lengths of the
        samples :obj:`index`; with :obj:`max_length`, longer sessions keep
        their most recent clicks."""
        start, end = self.ptr[index], self.ptr[index + 1]
        if max_length is not None:
            start = torch.maximum(start, end - max_length)
        lengths = end - start
        width = int(lengths.max())
        offsets = torch.arange(width)
        valid = offsets < lengths.unsqueeze(1)
        positions = (start.unsqueeze(1) + offsets).clamp(max=self.items.numel() - 1)
        item_seq = torch.where(valid, self.items[positions], 0)
        return item_seq, lengths


class SessionBatchLoader:
    r"""Iterates :class:`SessionSamples` as batched session graphs built by
    :func:`~gcsan_pyg.data.build_session_batch` (no per-sample Python work).

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

    def batches(self, start: int = 0) -> Iterator[Batch]:
        """The batches of the current epoch from batch :obj:`start` on (a run
        resumed in the middle of an epoch skips the ones it already took)."""
        chunks = self.order().split(self.batch_size)
        for chunk in chunks[start:]:
            item_seq, lengths = self.samples.padded(chunk, self.max_length)
            target = self.samples.target[chunk]
            if self.device is not None:
                item_seq, lengths, target = (
                    t.to(self.device, non_blocking=True) for t in (item_seq, lengths, target)
                )
            yield build_session_batch(
                item_seq, lengths, target, num_items=self.num_items, validate=False
            )

    def __iter__(self) -> Iterator[Batch]:
        return self.batches()

