"""One click session as a PyG graph."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torch_geometric.data import Data

from gcsan_pyg.data.item_ids import check_item_ids, check_num_items


class SessionData(Data):
    r"""A click session as a directed graph, as GC-SAN sees it.

    Attributes:
        x (LongTensor): the distinct item ids of the session, one node each,
            in ascending order. Shape :obj:`[num_nodes]`.
        edge_index (LongTensor): the deduplicated transitions between
            consecutive clicks (a click repeated in a row gives a self-loop).
            Shape :obj:`[2, num_edges]`. (SR-GNN's edge weights, one over
            the degrees, are no data: :class:`~gcsan_pyg.nn.SessionGatedConv`
            aggregates by mean.)
        alias (LongTensor): the node of every click, in click order.
            Shape :obj:`[session_length]`.
        y (LongTensor, optional): the next item to predict. Shape :obj:`[1]`.

    When batched, :obj:`alias` is offset by the node count like
    :obj:`edge_index`, so it indexes the batch's node tensor, and
    :obj:`batch.batch[batch.alias]` maps every click position to its session.
    """

    def __inc__(self, key: str, value: Any, *args: Any, **kwargs: Any) -> Any:
        if key == "alias":
            return self.num_nodes
        return super().__inc__(key, value, *args, **kwargs)


def transition_edges(alias: Tensor, num_nodes: int, breaks: Tensor | None = None) -> Tensor:
    r"""The deduplicated transitions :math:`alias_i \to alias_{i+1}` between
    consecutive clicks, sorted by (source, target), as an :obj:`edge_index`.
    No edge leaves the clicks at the positions :obj:`breaks` (the ends of
    sessions in a batch)."""
    edge_key = torch.add(alias[1:], alias[:-1], alpha=num_nodes)
    if breaks is not None and breaks.numel() > 0:
        # One key above every real one for the pairs across sessions: unique
        # sorts it last, where it is cut off (cheaper than masking).
        edge_key = torch.unique(edge_key.index_fill_(0, breaks, num_nodes * num_nodes))[:-1]
    else:
        edge_key = torch.unique(edge_key)
    source = edge_key // num_nodes
    target = torch.add(edge_key, source, alpha=-num_nodes)  # edge_key % num_nodes, cheaper
    return torch.stack([source, target])


def session_to_graph(
    items: Sequence[int] | Tensor,
    target: int | None = None,
    num_items: int | None = None,
) -> SessionData:
    r"""Turns one click session into a :class:`SessionData` graph.

    Nodes are the session's distinct items (ascending ids); an edge
    :math:`u \to v` exists when a click on :math:`u` is directly followed by
    a click on :math:`v`; a transition clicked twice is one edge (SR-GNN's
    degree normalisation counts deduplicated edges).

    Args:
        items (sequence of int or LongTensor): the item ids in click order,
            each :math:`\geq 1` (0 is the padding id).
        target (int, optional): the next item, stored as :obj:`y`.
        num_items (int, optional): the size of the item table (padding id
            included); when given, ids :math:`\geq` :obj:`num_items` are
            rejected.
    """
    check_num_items(num_items)
    try:
        seq = torch.as_tensor(items)
    except (TypeError, RuntimeError, OverflowError) as error:  # e.g. ids beyond int64
        raise ValueError(f"'items' must be integer item ids (64-bit): {error}") from None
    if seq.dim() != 1:
        raise ValueError(f"'items' must be a 1-D sequence, got shape {tuple(seq.shape)}")
    if seq.numel() == 0:
        raise ValueError("'items' is an empty session; a session needs at least one click")
    if seq.dtype.is_floating_point or seq.dtype.is_complex or seq.dtype == torch.bool:
        raise ValueError(f"'items' must hold integer item ids, got dtype {seq.dtype}")
    seq = seq.long()
    check_item_ids(seq, num_items, "session's item")

    x, alias = torch.unique(seq, sorted=True, return_inverse=True)
    data = SessionData(x=x, edge_index=transition_edges(alias, x.numel()), alias=alias)
    if target is not None:
        try:
            data.y = torch.tensor([int(target)])
        except (RuntimeError, OverflowError):  # beyond int64
            raise ValueError(f"target item id {target} is not a 64-bit integer") from None
        check_item_ids(data.y, num_items, "target item")
    return data
