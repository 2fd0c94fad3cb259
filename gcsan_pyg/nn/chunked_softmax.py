"""Exact cross-entropy over the whole item table, walking the table in chunks
of rows so that no :obj:`[B, N]` logits buffer is ever held."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

# The automatic chunk keeps a chunk's logits within this many elements
# (128 MiB of float32), but never takes fewer rows than MIN_CHUNK_ROWS, below
# which the matmuls get too thin to run near peak speed.
CHUNK_ELEMENTS = 2**25
MIN_CHUNK_ROWS = 1024


def default_chunk_size(batch_size: int) -> int:
    r"""The number of table rows per chunk that
    :func:`chunked_softmax_cross_entropy` takes when given no
    :obj:`chunk_size`:

    .. math::
        \max\left(\texttt{MIN\_CHUNK\_ROWS},
        \left\lfloor \texttt{CHUNK\_ELEMENTS} / B \right\rfloor\right),

    so a chunk's :obj:`[B, chunk]` logits hold at most
    :obj:`CHUNK_ELEMENTS` :math:`= 2^{25}` entries (128 MiB of float32) unless
    :math:`B` exceeds :math:`2^{15}`. With :math:`B \leq 512` that is at least
    65,536 rows: one chunk for tables of that size, such as the 43,098 items
    of Diginetica.

    Args:
        batch_size (int): the number of sessions :math:`B`.
    """
    return max(MIN_CHUNK_ROWS, CHUNK_ELEMENTS // max(batch_size, 1))


class _ChunkedSoftmaxCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        query: Tensor,
        table: Tensor,
        target: Tensor,
        reg_weight: float,
        chunk_size: int | None,
    ) -> Tensor:
        # In the table's precision, also under autocast: the softmax over all
        # items is where low precision hurts most.
        ctx.query_dtype, ctx.table_dtype = query.dtype, table.dtype
        query = query.to(table.dtype)
        if chunk_size is None:
            chunk_size = default_chunk_size(query.size(0))
        elif chunk_size < 1:
            raise ValueError(f"'chunk_size' must be positive, got {chunk_size}")
        with torch.autocast(query.device.type, enabled=False):
            return _forward(ctx, query, table, target, reg_weight, chunk_size)

    @staticmethod
    def backward(ctx: Any, grad_loss: Tensor) -> tuple[Tensor | None, ...]:
        with torch.autocast(grad_loss.device.type, enabled=False):
            grad_query, grad_table = _backward(ctx, grad_loss.to(ctx.table_dtype))
        if grad_query is not None:
            grad_query = grad_query.to(ctx.query_dtype)
        return grad_query, grad_table, None, None, None


def _target_in_chunk(target: Tensor, start: int, size: int) -> tuple[Tensor, Tensor]:
    # The target's column within the chunk (clamped, to stay a valid index)
    # and whether it really lies there.
    local = target - start
    inside = (local >= 0) & (local < size)
    return local.clamp(0, size - 1).view(-1, 1), inside


def _chunk_logits(buffer: Tensor, query: Tensor, chunk: Tensor) -> Tensor:
    # Written into the front of one buffer that every chunk reuses: a single
    # chunk's memory at a time, and no fresh allocation (page faults) each.
    shape = (query.size(0), chunk.size(0))
    return torch.mm(query, chunk.t(), out=buffer[: shape[0] * shape[1]].view(shape))


def _forward(
    ctx: Any, query: Tensor, table: Tensor, target: Tensor, reg_weight: float, chunk_size: int
) -> Tensor:
    batch_size, num_items = target.numel(), table.size(0)
    run_max = query.new_full((batch_size,), float("-inf"))
    run_sum = query.new_zeros(batch_size)
    target_logit = query.new_zeros(batch_size)
    buffer = query.new_empty(batch_size * min(chunk_size, num_items))
    for start in range(0, num_items, chunk_size):
        chunk = table[start : start + chunk_size]
        logits = _chunk_logits(buffer, query, chunk)  # [B, chunk]
        local, inside = _target_in_chunk(target, start, chunk.size(0))
        picked = logits.gather(1, local).squeeze(1)
        target_logit += torch.where(inside, picked, 0.0)
        new_max = torch.maximum(run_max, logits.amax(dim=1))
        # Online log-sum-exp: rescale the sum so far to the new maximum. From
        # here on the buffer holds exp(logits - max).
        unnormalised = logits.sub_(new_max.unsqueeze(1)).exp_()
        run_sum = run_sum.mul_((run_max - new_max).exp_()).add_(unnormalised.sum(dim=1))
        run_max = new_max
    log_norm = run_max + run_sum.log()
    loss = (log_norm - target_logit).mean()
    table_norm = torch.linalg.vector_norm(table)
    ctx.reg_scale = reg_weight / num_items
    ctx.chunk_size = chunk_size
    if chunk_size >= num_items:
        # One chunk: keep its exp buffer for backward, as the unchunked op
        # does, instead of paying the matmul and the exp a second time.
        ctx.save_for_backward(query, table, target, unnormalised, run_sum, table_norm)
    else:
        ctx.save_for_backward(query, table, target, log_norm, table_norm)
    return loss + ctx.reg_scale * table_norm


def _backward(ctx: Any, grad_loss: Tensor) -> tuple[Tensor | None, Tensor | None]:
    query, table, target, *saved, table_norm = ctx.saved_tensors
    batch_size, num_items = target.numel(), table.size(0)
    need_query, need_table = ctx.needs_input_grad[:2]
    scale = grad_loss / batch_size
    grad_query = None
    grad_table = torch.empty_like(table) if need_table else None
    # d/dV of ||V||: V / ||V||, added inside the table-gradient matmul; at
    # V = 0 the subgradient 0, as autograd's norm gives (not 0 / 0 = NaN).
    norm = float(table_norm)
    beta = float(grad_loss * ctx.reg_scale) / norm if need_table and norm > 0 else 0.0
    one_chunk = len(saved) == 2
    if one_chunk:  # the forward's exp(logits - max) and its row sums
        unnormalised, row_sum = saved
    else:  # recomputed chunk by chunk
        (log_norm,) = saved
        buffer = query.new_empty(batch_size * ctx.chunk_size)
    for start in range(0, num_items, ctx.chunk_size):
        chunk = table[start : start + ctx.chunk_size]
        if one_chunk:
            grad = unnormalised.mul_(scale / row_sum.unsqueeze(1))
        else:
            logits = _chunk_logits(buffer, query, chunk)
            grad = logits.sub_(log_norm.unsqueeze(1)).exp_().mul_(scale)
        # d CE / d logits = (softmax - one_hot) / B, times the incoming grad.
        local, inside = _target_in_chunk(target, start, chunk.size(0))
        grad.scatter_add_(1, local, torch.where(inside, -scale, 0.0).to(grad.dtype).view(-1, 1))
        if need_query:
            if grad_query is None:
                grad_query = grad @ chunk
            else:
                grad_query.addmm_(grad, chunk)
        if need_table:
            rows = grad_table[start : start + chunk.size(0)]
            torch.addmm(chunk, grad.t(), query, beta=beta, out=rows)
    return grad_query, grad_table


def chunked_softmax_cross_entropy(
    query: Tensor,
    table: Tensor,
    target: Tensor,
    reg_weight: float = 0.0,
    chunk_size: int | None = None,
) -> Tensor:
    r"""Mean cross-entropy of scoring every row of :obj:`table` against
    :obj:`query`, plus :obj:`reg_weight` times the regulariser
    :math:`\lVert \mathbf{V} \rVert_2 / N`, that is
    :obj:`F.cross_entropy(query @ table.t(), target) + reg_weight *
    torch.linalg.vector_norm(table) / table.size(0)`,

    .. math::
        \frac{1}{B} \sum_b \left( \log \sum_{i=0}^{N-1}
        e^{\mathbf{q}_b^\top \mathbf{v}_i} - \mathbf{q}_b^\top
        \mathbf{v}_{t_b} \right) + \lambda \frac{\lVert \mathbf{V}
        \rVert_2}{N},

    but with extra memory :math:`O(B \cdot \text{chunk})` (one logits buffer
    that every chunk reuses) instead of :math:`O(B \cdot N)`, as in `"Cut
    Your Losses in Large-Vocabulary Language Models"
    <https://arxiv.org/abs/2411.09009>`_ (Wijmans et al., 2024).

    The forward pass walks the table in chunks of rows and keeps, per
    session, a running maximum :math:`m_b` and a running sum
    :math:`s_b = \sum_i e^{\ell_{bi} - m_b}` (rescaled by
    :math:`e^{m_b^{\text{old}} - m_b^{\text{new}}}` whenever the maximum
    grows); it saves only the log-normalisers
    :math:`\mathrm{lse}_b = m_b + \log s_b`. The backward pass recomputes a
    chunk's logits, forms its softmax :math:`e^{\ell_{bi} - \mathrm{lse}_b}`
    and the gradient :math:`(\mathrm{softmax} - \mathrm{onehot}) / B`, adds
    its product with the chunk into the query's gradient and writes the
    chunk's rows of the table's gradient, the regulariser's
    :math:`\mathbf{V} / \lVert \mathbf{V} \rVert_2` term included in the
    same matmul. When the table fits in one chunk nothing is recomputed:
    the forward's exponentials are kept and the softmax gradient is formed in
    place in their buffer: one matmul forward, two backward, as an unchunked
    fused op. Runs in
    the table's precision, also under :class:`torch.autocast`; the query's
    gradient comes back in the query's dtype.

    Args:
        query (Tensor): session representations :math:`(B, F)`.
        table (Tensor): item embeddings :math:`(N, F)`.
        target (LongTensor): target item per session :math:`(B)`.
        reg_weight (float, optional): weight :math:`\lambda` of the
            regulariser. (default: :obj:`0.0`)
        chunk_size (int, optional): table rows per chunk; :obj:`None` picks
            :func:`default_chunk_size` of :math:`B`. (default: :obj:`None`)

    Returns:
        The scalar loss.
    """
    return _ChunkedSoftmaxCrossEntropy.apply(query, table, target, reg_weight, chunk_size)
