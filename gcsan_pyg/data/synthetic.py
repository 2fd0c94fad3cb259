"""A seeded synthetic session generator with learnable structure.

Sessions are walks of a sparse first-order Markov chain over the items:
every item has a few successors (drawn with a Zipf-like popularity skew)
with decreasing transition probabilities, and with a small probability the
walk jumps to a popular item instead. A model that learns the transitions
beats popularity by a wide margin, which makes the data useful for smoke
tests of training.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from gcsan_pyg.data.samples import offsets


@dataclass
class SyntheticSessions:
    r"""The output of :func:`generate_synthetic_sessions`: sessions stored
    flat, session :math:`k` of a split being
    :obj:`items[session_ptr[k]:session_ptr[k + 1]]`.

    Attributes:
        train_items (LongTensor), train_ptr (LongTensor): the training sessions.
        test_items (LongTensor), test_ptr (LongTensor): the test sessions.
        num_items (int): the number of real items; ids are
            :obj:`1 .. num_items` and the item table (padding 0 included)
            has :obj:`num_items + 1` rows.
    """

    train_items: Tensor
    train_ptr: Tensor
    test_items: Tensor
    test_ptr: Tensor
    num_items: int


def generate_synthetic_sessions(
    num_items: int = 1000,
    num_train_sessions: int = 3000,
    num_test_sessions: int = 750,
    seed: int = 0,
    num_successors: int = 4,
    zipf_exponent: float = 1.1,
    noise: float = 0.1,
    mean_length: float = 5.0,
    max_length: int = 20,
) -> SyntheticSessions:
    r"""Generates sessions from a random sparse Markov chain over items.

    Args:
        num_items (int, optional): the number of items (ids
            :obj:`1 .. num_items`). (default: :obj:`1000`)
        num_train_sessions (int, optional): training sessions.
            (default: :obj:`3000`)
        num_test_sessions (int, optional): test sessions.
            (default: :obj:`750`)
        seed (int, optional): the random seed; equal seeds and options give
            equal output. (default: :obj:`0`)
        num_successors (int, optional): successors of each item; their
            transition probabilities halve from one to the next.
            (default: :obj:`4`)
        zipf_exponent (float, optional): popularity of the item of rank
            :math:`r` is proportional to :math:`r^{-a}` (a continuous Zipf law).
            (default: :obj:`1.1`)
        noise (float, optional): probability that a step jumps to an item
            drawn by popularity instead. (default: :obj:`0.1`)
        mean_length (float, optional): mean session length (geometric,
            at least 2). (default: :obj:`5.0`)
        max_length (int, optional): longest session. (default: :obj:`20`)

    Returns:
        A :class:`SyntheticSessions` (every session has length
        :math:`\geq 2`). Its cost is linear in :obj:`num_items` and in the
        number of clicks, with no Python loop over items or sessions, so a
        catalogue of millions of items takes seconds.
    """
    if num_items < 2:
        raise ValueError(f"'num_items' must be >= 2, got {num_items}")
    if num_train_sessions < 0 or num_test_sessions < 0:
        raise ValueError("session counts must be >= 0")
    if num_successors < 1:
        raise ValueError(f"'num_successors' must be >= 1, got {num_successors}")
    if not 0.0 <= noise <= 1.0:
        raise ValueError(f"'noise' must be in [0, 1], got {noise}")
    if max_length < 2 or mean_length < 2:
        raise ValueError("'mean_length' and 'max_length' must be >= 2")

    rng = np.random.default_rng(seed)
    # Zipf-like popularity over a random order of the items (0-based here):
    # the item of rank r is drawn with probability ~ r^-a.
    item_of_rank = rng.permutation(num_items)

    def draw(exponent: float, size: int | tuple[int, ...]) -> np.ndarray:
        return item_of_rank[zipf_ranks(rng, exponent, num_items, size)]

    # Successors follow a milder skew than the starts and jumps (the square
    # root of popularity) so that the chain, not popularity alone, explains
    # most transitions.
    succ = draw(zipf_exponent / 2, (num_items, num_successors))
    weights = 0.5 ** np.arange(num_successors)
    cum = np.cumsum(weights / weights.sum())
    cum[-1] = 1.0

    total = num_train_sessions + num_test_sessions
    # length = 2 + Geometric(p) - 1 has mean 1 + 1/p = mean_length.
    p = 1.0 / (mean_length - 1.0)
    lengths = np.minimum(1 + rng.geometric(p, size=total), max_length)
    walk = np.zeros((total, max_length), dtype=np.int64)
    walk[:, 0] = draw(zipf_exponent, total)
    for t in range(1, max_length):
        cur = walk[:, t - 1]
        pick = np.searchsorted(cum, rng.random(total), side="right")
        nxt = succ[cur, np.minimum(pick, num_successors - 1)]
        jump = rng.random(total) < noise
        nxt[jump] = draw(zipf_exponent, int(jump.sum()))
        walk[:, t] = nxt
    walk += 1  # ids from 1
    kept = np.arange(max_length) < lengths[:, None]
    lengths = torch.from_numpy(lengths.astype(np.int64))
    ptr = offsets(lengths)
    items = torch.from_numpy(walk[kept])  # row-major: session by session, in order
    cut = int(ptr[num_train_sessions])
    return SyntheticSessions(
        items[:cut], ptr[: num_train_sessions + 1],
        items[cut:], ptr[num_train_sessions:] - cut, num_items,
    )


def zipf_ranks(rng: np.random.Generator, exponent: float, num: int,
               size: int | tuple[int, ...]) -> np.ndarray:
    r"""0-based ranks :math:`r - 1` drawn with density :math:`\propto r^{-a}`
    on :math:`[1, n + 1)` (a continuous Zipf law, floored), by inverting its
    CDF in closed form: :math:`O(1)` per draw, whatever :obj:`num`, so a
    catalogue of :math:`10^7` items costs no per-item work.

    Args:
        rng (numpy.random.Generator): the source of uniform draws.
        exponent (float): the Zipf exponent :math:`a > 0`.
        num (int): the number of ranks :math:`n`; ranks lie in
            :math:`[0, n - 1]`.
        size (int or tuple): the shape of the draw.
    """
    u = rng.random(size)
    if abs(exponent - 1.0) < 1e-12:
        rank = np.exp(u * np.log(num + 1.0))
    else:
        power = 1.0 - exponent
        rank = (1.0 + u * ((num + 1.0) ** power - 1.0)) ** (1.0 / power)
    return np.minimum(rank.astype(np.int64) - 1, num - 1)
