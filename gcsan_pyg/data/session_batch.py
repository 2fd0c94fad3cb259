"""Vectorised construction of a batched session graph from padded sequences."""
from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data import Batch
from torch_geometric.utils import cumsum, degree

from gcsan_pyg.data.session_graph import SessionData, transition_edges

_INT64_MAX = 2**63 - 1


def check_padded_sessions(
    item_seq: Tensor,
    item_seq_len: Tensor,
    num_items: int | None = None,
) -> None:
    r"""Raises :class:`ValueError` if :obj:`item_seq` / :obj:`item_seq_len`
    are not valid right-padded sessions (see :func:`build_session_batch`)."""
    if not isinstance(item_seq, Tensor) or not isinstance(item_seq_len, Tensor):
        raise ValueError("'item_seq' and 'item_seq_len' must be tensors")
    if num_items is not None and not 1 <= num_items <= _INT64_MAX:
        raise ValueError(f"'num_items' must lie in [1, 2**63 - 1], got {num_items}")
    for name, t in (("item_seq", item_seq), ("item_seq_len", item_seq_len)):
        if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
            raise ValueError(f"'{name}' must have an integer dtype, got {t.dtype}")
    if item_seq.dim() != 2:
        raise ValueError(f"'item_seq' must have shape [B, L], got {tuple(item_seq.shape)}")
    batch_size, max_len = item_seq.shape
    if item_seq_len.dim() != 1 or item_seq_len.numel() != batch_size:
        raise ValueError(
            f"'item_seq_len' must have shape [B]=[{batch_size}] to match 'item_seq' "
            f"{tuple(item_seq.shape)}, got {tuple(item_seq_len.shape)}"
        )
    if batch_size == 0:
        raise ValueError("'item_seq' holds no session (B = 0)")
    bad_len = (item_seq_len < 1) | (item_seq_len > max_len)
    if bool(bad_len.any()):
        row = int(bad_len.nonzero()[0])
        raise ValueError(
            f"item_seq_len[{row}] = {int(item_seq_len[row])} is out of range: "
            f"lengths must be in [1, L={max_len}]"
        )
    valid = torch.arange(max_len, device=item_seq.device) < item_seq_len.unsqueeze(1)
    upper = num_items if num_items is not None else None
    bad = valid & (item_seq < 1)
    if upper is not None:
        bad |= valid & (item_seq >= upper)
    if bool(bad.any()):
        row, col = (int(i) for i in bad.nonzero()[0])
        value = int(item_seq[row, col])
        if value == 0:
            reason = "the padding id 0 inside the valid part of the session"
        elif value < 0:
            reason = "a negative item id"
        else:
            reason = f"an item id >= num_items={upper}"
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
) -> Batch:
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
            shape :obj:`[B]`, stored as :obj:`y`.
        num_items (int, optional): size of the item table; enables the
            upper bound check on ids.
        validate (bool, optional): check the input and raise
            :class:`ValueError` on bad values. (default: :obj:`True`)

    Returns:
        A :class:`~torch_geometric.data.Batch` of :class:`SessionData` with
        :obj:`x`, :obj:`edge_index`, :obj:`in_weight`, :obj:`out_weight`,
        :obj:`alias`, :obj:`batch`, :obj:`ptr` (and :obj:`y`).
    """
    if validate:
        check_padded_sessions(item_seq, item_seq_len, num_items)
    device = item_seq.device
    batch_size, max_len = item_seq.shape
    item_seq_len = item_seq_len.long()
    valid = torch.arange(max_len, device=device) < item_seq_len.unsqueeze(1)
    # Row-major: session by session, in click order; the rows are the sessions.
    click_session, position = valid.nonzero(as_tuple=True)
    clicks = item_seq[click_session, position].long()

    # One unique over (session, item) keys gives the nodes of all sessions at
    # once, sorted by session then item id, and every click's node (alias).
    stride = num_items if num_items is not None else int(clicks.max()) + 1
    distinct = None
    if batch_size * stride > _INT64_MAX:  # keys would overflow int64: rank the ids first
        distinct, ranks = torch.unique(clicks, return_inverse=True)
        stride = distinct.numel()
    else:
        ranks = clicks
    node_key, alias = torch.unique(click_session * stride + ranks, return_inverse=True)
    x = node_key % stride
    if distinct is not None:
        x = distinct[x]
    node_session = node_key // stride
    num_nodes = node_key.numel()

    # Consecutive clicks of the same session are the transitions.
    same_session = click_session[1:] == click_session[:-1]
    edge_index, in_weight, out_weight = transition_edges(
        alias[:-1][same_session], alias[1:][same_session], num_nodes
    )

    ptr = cumsum(degree(node_session, batch_size, dtype=torch.long))
    batch = Batch(
        _base_cls=SessionData,
        x=x,
        edge_index=edge_index,
        in_weight=in_weight,
        out_weight=out_weight,
        alias=alias,
        batch=node_session,
        ptr=ptr,
    )
    if target is not None:
        batch.y = target.long()
    batch._num_graphs = batch_size
    return batch
