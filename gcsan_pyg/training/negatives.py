"""Negative items for the BPR loss."""
from __future__ import annotations

import torch
from torch import Tensor


def uniform_negatives(target: Tensor, num_items: int) -> Tensor:
    r"""One negative item per session, uniform over the real items other than
    its :obj:`target` (ids :math:`1 .. N - 1`, :math:`N` = :obj:`num_items`):
    the distribution of RecBole's draw-again-while-equal sampler, in one draw
    of :math:`N - 2` values shifted past the target.

    Args:
        target (LongTensor): the positive item of every session, :obj:`[B]`,
            ids in :math:`[1, N - 1]`.
        num_items (int): the item table size, padding id 0 included.

    Returns:
        LongTensor :obj:`[B]`, never equal to :obj:`target` row by row.
    """
    if num_items < 3:
        raise ValueError(f"BPR needs a negative other than the target, so at least two real "
                         f"items (num_items >= 3), got num_items={num_items}")
    negative = torch.randint(1, num_items - 1, target.shape, device=target.device)
    return negative + (negative >= target).long()
