"""Vectorised construction of a batched session graph from padded sequences."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch_geometric.data import Batch

from gcsan_pyg.data.item_ids import INT64_MAX, check_num_items
from gcsan_pyg.data.session_graph import SessionData, transition_edges


class _SessionBatchMeta(type(Batch), type(SessionData)):
    # PyG's Batch metaclass derives a new class from the data class on every
    # construction; this class is that derivation already, so construct it as is.
    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        return type.__call__(cls, *args, **kwargs)


class SessionBatch(Batch, SessionData, metaclass=_SessionBatchMeta):
    r"""A batch of :class:`SessionData` graphs as
    :func:`build_session_batch` builds it: one block-diagonal graph with
    :obj:`x`, :obj:`edge_index`, :obj:`alias`, :obj:`batch`, :obj:`ptr`
    (and :obj:`y`, one target per session).

    It is a full :class:`~torch_geometric.data.Batch`: :meth:`get_example`,
    and so :meth:`to_data_list`, :meth:`index_select` and indexing, give the
    sessions' graphs as :func:`session_to_graph` builds them, equal to those
    of a :class:`~torch_geometric.data.Batch` collated from them. It needs no
    slice tables for that: nodes and clicks are stored session by session
    (:obj:`ptr`, :obj:`batch`) and edges by source node, so a session's
    slices are found by a binary search when asked for. Attributes added to
    the batch afterwards are not split into the examples.
    """

    def get_example(self, idx: int) -> SessionData:
        num_graphs = self.num_graphs
        if not -num_graphs <= int(idx) < num_graphs:
            raise IndexError(f"session {int(idx)} is out of range for {num_graphs} sessions")
        idx = int(idx) % num_graphs
        first, last = int(self.ptr[idx]), int(self.ptr[idx + 1])
        bounds = torch.tensor([idx, idx + 1], device=self.x.device)
        click_lo, click_hi = torch.searchsorted(self.batch[self.alias], bounds).tolist()
        edge_lo, edge_hi = torch.searchsorted(self.batch[self.edge_index[0]], bounds).tolist()
        data = SessionData(
            x=self.x[first:last],
            edge_index=self.edge_index[:, edge_lo:edge_hi] - first,
            alias=self.alias[click_lo:click_hi] - first,
        )
        if "y" in self:
            data.y = self.y[idx : idx + 1]
        return data

    def __reduce__(self) -> Any:
        return type(self), (), self.__dict__.copy()



def check_padded_sessions(
    item_seq: Tensor,
    item_seq_len: Tensor,
    num_items: int | None = None,
) -> None:
    r"""Raises :class:`ValueError` if :obj:`item_seq` / :obj:`item_seq_len`
    are not valid right-padded sessions (see :func:`build_session_batch`),
    naming the first offending position and value."""
    _check_arguments(item_seq, item_seq_len, num_items)
    max_len = item_seq.size(1)
    bad_len = (item_seq_len < 1) | (item_seq_len > max_len)
    if bool(bad_len.any()):
        row = int(bad_len.nonzero()[0])
        raise ValueError(
            f"item_seq_len[{row}] = {int(item_seq_len[row])} is out of range: "
            f"lengths must be in [1, L={max_len}]"
        )
    valid = torch.arange(max_len, device=item_seq.device) < item_seq_len.unsqueeze(1)
    bad = valid & (item_seq < 1)
    if num_items is not None:
        bad |= valid & (item_seq >= num_items)
    if bool(bad.any()):
        row, col = (int(i) for i in bad.nonzero()[0])
        value = int(item_seq[row, col])
        if value == 0:
            reason = "the padding id 0 inside the valid part of the session"
        elif value < 0:
            reason = "a negative item id"
        else:
            reason = f"an item id >= num_items={num_items}"
        raise ValueError(f"item_seq[{row}, {col}] = {value} is {reason}")
    pad = ~valid & (item_seq != 0)
    if bool(pad.any()):
        row, col = (int(i) for i in pad.nonzero()[0])
        raise ValueError(
            f"item_seq[{row}, {col}] = {int(item_seq[row, col])} lies past the session's "
            f"length {int(item_seq_len[row])}; padding must be 0"
        )


def build_session_batch(
    item_seq: Tensor,
    item_seq_len: Tensor,
    target: Tensor | None = None,
    num_items: int | None = None,
    validate: bool = True,
) -> SessionBatch:
    r"""Builds the block-diagonal session graph of a padded batch, with torch
    ops only (no loop over sessions or positions), on :obj:`item_seq`'s device.

    The result equals collating :func:`session_to_graph` of every session
    with :class:`torch_geometric.data.Batch` (same node and edge order).

    Args:
        item_seq (LongTensor): right-padded item ids, shape :obj:`[B, L]`;
            ids in the valid part are :math:`\geq 1`, padding is 0.
        item_seq_len (LongTensor): session lengths in :math:`[1, L]`,
            shape :obj:`[B]`.
        target (LongTensor, optional): the next item of every session,
            shape :obj:`[B]`, stored as :obj:`y`; checked like the clicks.
        num_items (int, optional): size of the item table; enables the
            upper bound check on ids (clicks and targets).
        validate (bool, optional): check the input and raise
            :class:`ValueError` on bad values. (default: :obj:`True`)

    Returns:
        A :class:`SessionBatch` with :obj:`x`, :obj:`edge_index`,
        :obj:`alias`, :obj:`batch`, :obj:`ptr` (and :obj:`y`).
    """
    if validate:
        _check_arguments(item_seq, item_seq_len, num_items)
        if target is not None:
            _check_target_argument(target, item_seq.size(0))
    device = item_seq.device
    batch_size, max_len = item_seq.shape
    item_seq_len = item_seq_len.long()
    session_end = item_seq_len.cumsum(0)  # clicks are stored session by session
    if validate:
        num_clicks = _check_lengths(item_seq, item_seq_len, session_end, num_items)
    else:
        num_clicks = int(session_end[-1])
    # Work from the lengths, not from a [B, L] mask: B numbers instead of B * L.
    click_session = torch.repeat_interleave(item_seq_len, output_size=num_clicks)
    session_start = session_end - item_seq_len
    position = torch.arange(num_clicks, device=device) - session_start[click_session]
    clicks = item_seq[click_session, position].long()
    largest = None
    if validate:
        largest = _check_items(item_seq, clicks, item_seq_len, num_items, target)
    return _collate_clicks(clicks, click_session, session_end, target, num_items, largest)


def batch_from_clicks(
    clicks: Tensor,
    lengths: Tensor,
    target: Tensor | None = None,
    num_items: int | None = None,
) -> SessionBatch:
    r""":func:`build_session_batch` for sessions given flat, as a loader
    gathers them from :class:`~gcsan_pyg.data.SessionSamples`: their clicks
    concatenated session by session, in order, and their lengths
    (:math:`\geq 1`). Nothing is checked: the ids must be valid (see
    :meth:`~gcsan_pyg.data.SessionSamples.check`).

    Args:
        clicks (LongTensor): shape :obj:`[P]`.
        lengths (LongTensor): shape :obj:`[B]`, summing to :obj:`P`.
        target (LongTensor, optional): shape :obj:`[B]`, stored as :obj:`y`.
        num_items (int, optional): the item table size (saves reading the
            largest id back from the device).
    """
    session_end = lengths.cumsum(0)
    click_session = torch.repeat_interleave(lengths, output_size=clicks.numel())
    return _collate_clicks(clicks, click_session, session_end, target, num_items, None)


def _collate_clicks(clicks: Tensor, click_session: Tensor, session_end: Tensor,
                    target: Tensor | None, num_items: int | None,
                    largest: int | None) -> SessionBatch:
    batch_size = session_end.numel()
    device = clicks.device
    # One unique over (session, item) keys gives the nodes of all sessions at
    # once, sorted by session then item id, and every click's node (alias).
    if num_items is not None:
        stride = num_items
    else:
        stride = (largest if largest is not None else int(clicks.max())) + 1
    distinct = None
    if batch_size * stride > INT64_MAX:  # keys would overflow int64: rank the ids first
        distinct, ranks = torch.unique(clicks, return_inverse=True)
        stride = distinct.numel()
    else:
        ranks = clicks
    node_key, alias = torch.unique(torch.add(ranks, click_session, alpha=stride),
                                   return_inverse=True)
    node_session = node_key // stride
    x = torch.add(node_key, node_session, alpha=-stride)  # node_key % stride, cheaper
    if distinct is not None:
        x = distinct[x]

    # The pair (last click of a session, first click of the next) is no edge.
    edge_index = transition_edges(alias, node_key.numel(), breaks=session_end[:-1] - 1)
    ptr = torch.searchsorted(node_session, torch.arange(batch_size + 1, device=device))

    y = target.long() if target is not None else None
    return SessionBatch(x=x, edge_index=edge_index, alias=alias, batch=node_session, ptr=ptr, y=y)


def _check_arguments(item_seq: Tensor, item_seq_len: Tensor, num_items: int | None) -> None:
    # Types and shapes: no tensor op, no device sync.
    if not isinstance(item_seq, Tensor) or not isinstance(item_seq_len, Tensor):
        raise ValueError("'item_seq' and 'item_seq_len' must be tensors")
    check_num_items(num_items)
    for name, t in (("item_seq", item_seq), ("item_seq_len", item_seq_len)):
        if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
            raise ValueError(f"'{name}' must have an integer dtype, got {t.dtype}")
    if item_seq.dim() != 2:
        raise ValueError(f"'item_seq' must have shape [B, L], got {tuple(item_seq.shape)}")
    batch_size = item_seq.size(0)
    if item_seq_len.dim() != 1 or item_seq_len.numel() != batch_size:
        raise ValueError(
            f"'item_seq_len' must have shape [B]=[{batch_size}] to match 'item_seq' "
            f"{tuple(item_seq.shape)}, got {tuple(item_seq_len.shape)}"
        )
    if batch_size == 0:
        raise ValueError("'item_seq' holds no session (B = 0)")


def _check_lengths(
    item_seq: Tensor, item_seq_len: Tensor, session_end: Tensor, num_items: int | None
) -> int:
    # The value checks are a few reductions read back in one sync each; only
    # a failing batch pays for check_padded_sessions' search for the culprit.
    # Returns the number of clicks.
    shortest, longest = item_seq_len.aminmax()
    shortest, longest, num_clicks = torch.stack([shortest, longest, session_end[-1]]).tolist()
    if shortest < 1 or longest > item_seq.size(1):
        check_padded_sessions(item_seq, item_seq_len, num_items)
    return num_clicks


def _check_target_argument(target: Tensor, batch_size: int) -> None:
    # Type and shape of the targets: no tensor op, no device sync.
    if not isinstance(target, Tensor):
        raise ValueError("'target' must be a tensor")
    if target.dtype.is_floating_point or target.dtype.is_complex or target.dtype == torch.bool:
        raise ValueError(f"'target' must have an integer dtype, got {target.dtype}")
    if target.dim() != 1 or target.numel() != batch_size:
        raise ValueError(f"'target' must have shape [B]=[{batch_size}], got {tuple(target.shape)}")


def check_targets(lowest: int, highest: int, num_items: int | None) -> None:
    r"""Raises :class:`ValueError` unless the targets' smallest and largest id
    (read back by the caller, in the sync that checks the clicks) lie in
    :math:`[1, 	ext{num\_items} - 1]`: a target of :obj:`num_items` (the
    max-id off-by-one) or below 1 would otherwise train a wrong row."""
    if num_items is None:
        if lowest < 1:
            raise ValueError(f"target {lowest} is out of range: targets must be item ids >= 1")
        return
    if lowest < 1 or highest >= num_items:
        value = lowest if lowest < 1 else highest
        raise ValueError(f"target {value} is out of range: targets must lie in "
                         f"[1, num_items - 1] = [1, {num_items - 1}]")


def _check_items(
    item_seq: Tensor, clicks: Tensor, item_seq_len: Tensor, num_items: int | None,
    target: Tensor | None = None,
) -> int:
    # Returns the largest clicked id. The targets' range is read in the same sync.
    smallest, largest = clicks.aminmax()
    # Valid ids are >= 1, so all padding is 0 iff the nonzeros are the clicks.
    nonzero = torch.count_nonzero(item_seq)
    values = [smallest, largest, nonzero]
    if target is not None:
        values.extend(target.long().aminmax())
    smallest, largest, nonzero, *target_range = torch.stack(values).tolist()
    if target_range:
        check_targets(*target_range, num_items)
    if (
        smallest < 1
        or (num_items is not None and largest >= num_items)
        or nonzero != clicks.numel()
    ):
        check_padded_sessions(item_seq, item_seq_len, num_items)
    return largest
