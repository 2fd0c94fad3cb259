"""Exact top-k over a wide score matrix, without a k-selection over every entry."""
from __future__ import annotations

import torch
from torch import Tensor


def blockwise_topk(scores: Tensor, k: int, block_size: int = 32) -> tuple[Tensor, Tensor]:
    r"""The :obj:`k` largest entries of every row of :obj:`scores` and their
    column indices, best first: the values of :obj:`scores.topk(k, dim=1)`
    exactly, the same indices up to the order of tied values.

    The columns of a row are dealt into :math:`m` blocks of :obj:`block_size`
    (block :math:`b` holds the columns :math:`b, b + m, b + 2m, \ldots`; the
    last :math:`N - m \cdot` :obj:`block_size` columns form one more block).
    The :obj:`k` largest entries of a row lie in at most :obj:`k` blocks,
    and those are among the :obj:`k` blocks with the largest maxima (a block
    left out has :obj:`k` others whose maxima all reach its own). So one max
    per block, a top-:obj:`k` over the block maxima and a top-:obj:`k` over
    the :math:`k \cdot` :obj:`block_size` entries of the chosen blocks
    replace the selection over all columns, which dominates full-ranking
    inference over tens of thousands of items. Interleaved blocks make the
    maxima a reduction across rows of contiguous memory, several times
    faster than maxima of short contiguous runs.

    Args:
        scores (Tensor): shape :obj:`[B, N]`.
        k (int): how many entries per row, :math:`1 \leq k \leq N`.
        block_size (int, optional): columns per block. (default: :obj:`32`)

    Returns:
        :obj:`(values, indices)`, both of shape :obj:`[B, k]`.
    """
    num_rows, num_cols = scores.shape
    if not 1 <= k <= num_cols:
        raise ValueError(f"'k' must lie in [1, {num_cols}] (the number of columns), got {k}")
    num_blocks = num_cols // block_size
    if num_blocks < 4 * k:  # too few blocks to skip any work
        return scores.topk(k, dim=1)
    body_cols = num_blocks * block_size
    body = scores.contiguous()[:, :body_cols].view(num_rows, block_size, num_blocks)
    block = body.amax(dim=1).topk(k, dim=1).indices  # [B, k]
    offsets = torch.arange(0, body_cols, num_blocks, device=scores.device)
    columns = (block.unsqueeze(2) + offsets).view(num_rows, -1)
    if body_cols < num_cols:  # the last, partial block is always a candidate
        tail = torch.arange(body_cols, num_cols, device=scores.device)
        columns = torch.cat([columns, tail.expand(num_rows, -1)], dim=1)
    values, position = scores.gather(1, columns).topk(k, dim=1)
    return values, columns.gather(1, position)
