"""Exact top-k items for session vectors over an item table of any size, in
bounded memory."""
from __future__ import annotations

import torch
from torch import Tensor

from gcsan_pyg.data.item_ids import check_item_ids
from gcsan_pyg.nn.blockwise_topk import blockwise_topk

#: Scores held at a time, in entries (24 MiB of float32): larger buffers come
#: fresh from the OS (page faults) on every call.
SCORE_CHUNK_ELEMENTS = 6 * 2**20


def rank_items(
    query: Tensor,
    table: Tensor,
    k: int,
    seen: tuple[Tensor, Tensor] | None = None,
    candidates: Tensor | None = None,
    chunk_elements: int | None = None,
) -> Tensor:
    r"""The :obj:`k` items of highest score :math:`\mathbf{q}_b^\top
    \mathbf{v}_i` for every row of :obj:`query`, best first, exactly, never
    the padding id 0.

    The item table is read once, in chunks of rows, each scored against all
    queries and reduced to its own top-:obj:`k`
    (:func:`~gcsan_pyg.nn.blockwise_topk`), which then merges into the
    running top-:obj:`k`: memory :math:`O(B \cdot \text{chunk})` with
    :math:`B \cdot \text{chunk} \leq` :obj:`chunk_elements`, whatever the
    table's size.

    Args:
        query (Tensor): session vectors :math:`(B, F)`.
        table (Tensor): item embeddings :math:`(N, F)`, row 0 the padding.
        k (int): how many items per session.
        seen (tuple of Tensor, optional): :obj:`(session, item)` pairs never
            to recommend, sessions ascending (e.g. the items of each session).
        candidates (LongTensor, optional): rank only these item ids (in any
            order, repeats ignored); all items by default.
        chunk_elements (int, optional): the most scores held at a time.
            (default: :data:`SCORE_CHUNK_ELEMENTS`)

    Returns:
        Item ids :math:`(B, k)`.

    Raises:
        ValueError: :obj:`k` exceeds the items a session may get (the
            candidates, or all real items, minus its :obj:`seen` ones), or a
            candidate is not a real item id.
    """
    num_sessions, num_items = query.size(0), table.size(0)
    if candidates is not None:
        check_item_ids(candidates, num_items, "candidate item")
        candidates = torch.unique(candidates)  # sorted: seen items found by binary search
    num_columns = num_items if candidates is None else candidates.numel()
    seen_column = _seen_columns(seen, candidates) if seen is not None else None
    # Column 0 of the whole table is the padding id, never ranked.
    _check_k(k, num_columns, int(candidates is None), seen, seen_column, num_sessions)
    if num_sessions == 0:
        return torch.empty(0, k, dtype=torch.long, device=query.device)

    chunk_elements = chunk_elements or SCORE_CHUNK_ELEMENTS
    chunk = max(chunk_elements // num_sessions, 2 * k)
    best_score = best_item = None
    for start in range(0, num_columns, chunk):
        end = min(start + chunk, num_columns)
        rows = table[start:end] if candidates is None else table[candidates[start:end]]
        scores = query @ rows.t()
        if candidates is None and start == 0:
            scores[:, 0] = float("-inf")
        if seen_column is not None:
            inside = (seen_column >= start) & (seen_column < end)
            scores[seen[0][inside], seen_column[inside] - start] = float("-inf")
        score, column = blockwise_topk(scores, min(k, end - start))
        column += start
        item = column if candidates is None else candidates[column]
        if best_score is not None:
            score, item = torch.cat([best_score, score], 1), torch.cat([best_item, item], 1)
        if score.size(1) > k:
            score, position = score.topk(k, dim=1)
            item = item.gather(1, position)
        best_score, best_item = score, item
    return best_item


def _seen_columns(seen: tuple[Tensor, Tensor], candidates: Tensor | None) -> Tensor:
    """The column of every seen item among the ranked ones (-1 where it is
    not ranked at all)."""
    item = seen[1]
    if candidates is None:
        return item
    position = torch.searchsorted(candidates, item).clamp(max=max(candidates.numel() - 1, 0))
    return torch.where(candidates[position] == item, position, -1)


def _check_k(k: int, num_columns: int, first_column: int, seen: tuple[Tensor, Tensor] | None,
             seen_column: Tensor | None, num_sessions: int) -> None:
    ranked = num_columns - first_column
    if not 1 <= k <= ranked:
        raise ValueError(f"'k' must lie in [1, {ranked}] (the items ranked), got {k}")
    if seen is None or seen_column is None or num_sessions == 0:
        return
    # The distinct ranked columns each session has seen.
    real = seen_column >= first_column
    pairs = torch.unique(seen[0][real] * num_columns + seen_column[real])
    count = torch.bincount(pairs // num_columns, minlength=num_sessions)
    most, session = (int(v) for v in torch.stack([count.max(), count.argmax()]).tolist())
    if k > ranked - most:
        raise ValueError(
            f"'k' = {k} exceeds the {ranked - most} items left to session {session} once its "
            f"{most} seen items are excluded (of {ranked}); ask for at most {ranked - most}"
        )
