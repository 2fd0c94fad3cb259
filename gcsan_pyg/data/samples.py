"""(session prefix, next item) samples over one flat array of clicks: the one
sample container of the library, its augmentation, truncation and id check."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from gcsan_pyg.data.item_ids import check_item_ids


def offsets(lengths: Tensor) -> Tensor:
    r"""The :obj:`[N + 1]` running offsets :obj:`[0, l_0, l_0 + l_1, ...]`
    of :obj:`N` segment lengths (a CSR pointer)."""
    ptr = lengths.new_zeros(lengths.numel() + 1)
    torch.cumsum(lengths, 0, out=ptr[1:])
    return ptr


def window_positions(start: Tensor, length: Tensor) -> Tensor:
    r"""The positions :obj:`start[i] .. start[i] + length[i] - 1` of every
    window, concatenated in order (shape :obj:`[length.sum()]`)."""
    ptr = offsets(length)
    total = int(ptr[-1])
    owner = torch.repeat_interleave(length, output_size=total)
    return torch.arange(total, device=start.device) + (start - ptr[:-1])[owner]


@dataclass
class SessionSamples:
    r"""Samples for next-item prediction: a session prefix and the item
    clicked after it, stored flat.

    The clicks of sample :math:`i` are :obj:`items[start[i]:start[i] +
    length[i]]`, in click order, and its label is :obj:`target[i]`. Samples
    may share clicks: the prefixes of one session, as SR-GNN's augmentation
    makes them (:meth:`from_sessions`), are windows over that session's one
    copy, so a data set costs its clicks plus three numbers per sample.

    Attributes:
        items (LongTensor): the clicks, shape :obj:`[P]`.
        start (LongTensor): where each sample's prefix starts, :obj:`[S]`.
        length (LongTensor): each prefix's length, :math:`\geq 1`, :obj:`[S]`.
        target (LongTensor): each sample's next item, :obj:`[S]`.
    """

    items: Tensor
    start: Tensor
    length: Tensor
    target: Tensor

    def __post_init__(self) -> None:
        self.items, self.start, self.length, self.target = (
            torch.as_tensor(t, dtype=torch.long)
            for t in (self.items, self.start, self.length, self.target)
        )
        num = self.target.numel()
        if not all(t.dim() == 1 for t in (self.items, self.start, self.length, self.target)):
            raise ValueError("'items', 'start', 'length' and 'target' must be 1-D")
        if self.start.numel() != num or self.length.numel() != num:
            raise ValueError(f"{self.start.numel()} starts and {self.length.numel()} lengths "
                             f"for {num} targets")
        if num == 0:
            return
        shortest, first, last = torch.stack([
            self.length.min(), self.start.min(), (self.start + self.length).max()
        ]).tolist()
        if shortest < 1:
            index = int((self.length < 1).nonzero()[0])
            raise ValueError(f"sample {index} has an empty prefix (length "
                             f"{int(self.length[index])})")
        if first < 0 or last > self.items.numel():
            raise ValueError(f"a sample's prefix lies outside the {self.items.numel()} clicks")

    def __len__(self) -> int:
        return self.target.numel()

    # Construction ------------------------------------------------------------

    @classmethod
    def from_lists(cls, prefixes: Sequence[Sequence[int]],
                   targets: Sequence[int]) -> SessionSamples:
        """From Python lists of prefixes (click sequences) and their next items."""
        if len(prefixes) != len(targets):
            raise ValueError(f"{len(prefixes)} prefixes but {len(targets)} targets")
        length = torch.tensor([len(p) for p in prefixes], dtype=torch.long)
        items = torch.tensor([i for p in prefixes for i in p], dtype=torch.long)
        return cls(items, offsets(length)[:-1], length, torch.tensor(list(targets),
                                                                     dtype=torch.long))

    @classmethod
    def from_sessions(cls, items: Tensor, session_ptr: Tensor,
                      min_prefix_length: int = 1) -> SessionSamples:
        r"""SR-GNN's sequence splitting of the sessions
        :obj:`items[session_ptr[k]:session_ptr[k + 1]]`: for each session
        :math:`s` in order and :math:`i = 1, \ldots, |s| - 1` in order, the
        sample :math:`(s_{:-i}, s_{-i})`, longest prefix first (a session of
        length :math:`n` gives :math:`n - 1` samples). With
        :obj:`min_prefix_length` :math:`m`, only prefixes of length
        :math:`\geq m` (:math:`n - m` samples per session). Vectorised; the
        samples are windows over :obj:`items`.
        """
        if min_prefix_length < 1:
            raise ValueError(f"'min_prefix_length' must be >= 1, got {min_prefix_length}")
        session_len = session_ptr[1:] - session_ptr[:-1]
        per_session = (session_len - min_prefix_length).clamp(min=0)
        total = int(per_session.sum())
        owner = torch.repeat_interleave(per_session, output_size=total)
        rank = torch.arange(total) - (offsets(per_session)[:-1])[owner]
        length = session_len[owner] - 1 - rank  # the longest prefix first
        start = session_ptr[:-1][owner]
        return cls(items, start, length, items[start + length])

    # Views --------------------------------------------------------------------

    def select(self, index: Tensor) -> SessionSamples:
        """The samples :obj:`index` (indices or a mask), in that order,
        sharing this container's clicks."""
        return SessionSamples(self.items, self.start[index], self.length[index],
                              self.target[index])

    def windows(self, index: Tensor | None = None,
                max_length: int | None = None) -> tuple[Tensor, Tensor]:
        r"""The :obj:`(start, length)` of the samples :obj:`index` (all by
        default); with :obj:`max_length`, a longer prefix keeps its most
        recent :obj:`max_length` clicks, as RecBole's
        :obj:`MAX_ITEM_LIST_LENGTH` does. The one truncation of the library."""
        start = self.start if index is None else self.start[index]
        length = self.length if index is None else self.length[index]
        if max_length is not None:
            cut = (length - max_length).clamp(min=0)
            start, length = start + cut, length - cut
        return start, length

    def clicks(self, index: Tensor | None = None,
               max_length: int | None = None) -> tuple[Tensor, Tensor]:
        """The clicks of the samples :obj:`index`, concatenated in order, and
        their prefix lengths (see :meth:`windows`)."""
        start, length = self.windows(index, max_length)
        return self.items[window_positions(start, length)], length

    def padded(self, index: Tensor | None = None,
               max_length: int | None = None) -> tuple[Tensor, Tensor]:
        r"""Right-padded :obj:`[B, L]` clicks (0 = padding) and lengths of
        the samples :obj:`index`, :math:`L` their longest prefix (see
        :meth:`windows`)."""
        start, length = self.windows(index, max_length)
        width = int(length.max()) if length.numel() else 0
        column = torch.arange(width)
        valid = column < length.unsqueeze(1)
        positions = (start.unsqueeze(1) + column).clamp(max=max(self.items.numel() - 1, 0))
        return torch.where(valid, self.items[positions], 0), length

    def prefix(self, i: int) -> list[int]:
        """Sample :obj:`i`'s clicks as a list."""
        start = int(self.start[i])
        return self.items[start : start + int(self.length[i])].tolist()

    def check(self, num_items: int | None = None) -> None:
        """Raises :class:`ValueError` if a clicked or target id is not a
        real item id (see :func:`~gcsan_pyg.data.item_ids.check_item_ids`)."""
        start, length = self.windows()
        ptr = offsets(length)

        def where(entry: int) -> str:  # an entry of the prefixes laid end to end
            sample = int(torch.searchsorted(ptr, torch.tensor(entry), right=True)) - 1
            return f"sample {sample}, position {entry - int(ptr[sample])} of its prefix"

        check_item_ids(self.items[window_positions(start, length)], num_items, "clicked item",
                       where)
        check_item_ids(self.target, num_items, "target item", lambda entry: f"sample {entry}")

    def to(self, device: torch.device | str) -> SessionSamples:
        return SessionSamples(*(t.to(device) for t in (self.items, self.start, self.length,
                                                       self.target)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} samples, {self.items.numel()} clicks)"


def session_groups(samples: SessionSamples) -> Tensor:
    r"""The session of every sample of an augmented sample list read from a
    file (SR-GNN's ``test.txt``): sample :math:`i` continues the session of
    sample :math:`i - 1` when it is :obj:`(prev_prefix[:-1], prev_prefix[-1])`,
    else it starts a new one. Vectorised.

    Returns:
        The session index of every sample, :obj:`[S]`, ascending from 0.
    """
    num = len(samples)
    if num == 0:
        return torch.zeros(0, dtype=torch.long)
    start, length, items = samples.start, samples.length, samples.items
    prev_start, prev_len = start[:-1], length[:-1]
    candidate = (length[1:] == prev_len - 1) & (length[1:] >= 1)
    candidate &= samples.target[1:] == items[prev_start + prev_len - 1]
    # The prefix must equal the previous one's, click by click.
    pair = candidate.nonzero().view(-1)
    pos_cur = window_positions(start[1:][pair], length[1:][pair])
    pos_prev = window_positions(prev_start[pair], length[1:][pair])
    owner = torch.repeat_interleave(length[1:][pair], output_size=pos_cur.numel())
    mismatch = torch.zeros(pair.numel(), dtype=torch.long).index_add_(
        0, owner, (items[pos_cur] != items[pos_prev]).long())
    candidate[pair[mismatch > 0]] = False
    new_session = torch.cat([torch.ones(1, dtype=torch.bool), ~candidate])
    return new_session.long().cumsum(0) - 1


def sessions_of(samples: SessionSamples) -> tuple[Tensor, Tensor, Tensor]:
    r"""The sessions an augmented sample list was made from (see
    :func:`session_groups`): each is its group's first (longest) prefix
    plus its label.

    Returns:
        :obj:`(items, session_ptr, group)`: the sessions and the session of
        every sample.
    """
    group = session_groups(samples)
    first = torch.ones(len(samples), dtype=torch.bool)
    first[1:] = group[1:] != group[:-1]
    head = samples.select(first)
    session_len = head.length + 1
    ptr = offsets(session_len)
    items = torch.empty(int(ptr[-1]), dtype=torch.long)
    items[window_positions(ptr[:-1], head.length)] = head.clicks()[0]
    items[ptr[1:] - 1] = head.target
    return items, ptr, group


def session_statistics(items: Tensor, session_ptr: Tensor,
                       samples: SessionSamples | None = None) -> dict[str, Any]:
    r"""Counts of the sessions :obj:`items[session_ptr[k]:session_ptr[k + 1]]`
    (and of their samples).

    Returns:
        A dict with :obj:`sessions`, :obj:`clicks`, :obj:`items` (distinct),
        :obj:`avg_length`, :obj:`min_length`, :obj:`max_length`, and with
        :obj:`samples`: :obj:`samples`, :obj:`avg_prefix_length`,
        :obj:`max_prefix_length`.
    """
    session_len = session_ptr[1:] - session_ptr[:-1]
    clicks = items[int(session_ptr[0]):int(session_ptr[-1])] if session_len.numel() else items[:0]
    empty = session_len.numel() == 0
    out: dict[str, Any] = {
        "sessions": session_len.numel(),
        "clicks": int(session_len.sum()),
        "items": int(torch.unique(clicks).numel()),
        "avg_length": 0.0 if empty else round(float(session_len.double().mean()), 4),
        "min_length": 0 if empty else int(session_len.min()),
        "max_length": 0 if empty else int(session_len.max()),
    }
    if samples is not None:
        none = len(samples) == 0
        out["samples"] = len(samples)
        out["avg_prefix_length"] = 0.0 if none else round(float(samples.length.double().mean()),
                                                          4)
        out["max_prefix_length"] = 0 if none else int(samples.length.max())
    return out
