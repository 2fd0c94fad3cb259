"""The library's previous cross-entropy over the whole item table, fused
with the scoring matmul and the embedding regulariser, holding the whole
:obj:`[B, N]` logits: the baseline that the chunked op
(:func:`gcsan_pyg.nn.chunked_softmax_cross_entropy`, the library's CE now)
is measured and tested against. It lives with the benchmarks, outside the
package, because nothing in the library uses it any more."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


class _FullSoftmaxCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, query: Tensor, table: Tensor, target: Tensor, reg_weight: float
    ) -> Tensor:
        # In the table's precision, also under autocast: the softmax over all
        # items is where low precision hurts most.
        ctx.query_dtype = query.dtype
        query = query.to(table.dtype)
        with torch.autocast(query.device.type, enabled=False):
            return _forward(ctx, query, table, target, reg_weight)

    @staticmethod
    def backward(ctx: Any, grad_loss: Tensor) -> tuple[Tensor | None, ...]:
        with torch.autocast(grad_loss.device.type, enabled=False):
            grad_query, grad_table = _backward(ctx, grad_loss.float())
        if grad_query is not None:
            grad_query = grad_query.to(ctx.query_dtype)
        return grad_query, grad_table, None, None


def _forward(ctx: Any, query: Tensor, table: Tensor, target: Tensor, reg_weight: float) -> Tensor:
    logits = query @ table.t()  # [B, num_items], the largest tensor of a step
    target_logit = logits.gather(1, target.view(-1, 1)).squeeze(1)
    row_max = logits.amax(dim=1, keepdim=True)
    # From here on the buffer holds exp(logits - max), reused by backward.
    unnormalised = logits.sub_(row_max).exp_()
    row_sum = unnormalised.sum(dim=1)
    log_norm = row_max.squeeze(1) + row_sum.log()
    loss = (log_norm - target_logit).mean()
    table_norm = torch.linalg.vector_norm(table)
    ctx.reg_scale = reg_weight / table.size(0)
    ctx.save_for_backward(query, table, target, unnormalised, row_sum, table_norm)
    return loss + ctx.reg_scale * table_norm


def _backward(ctx: Any, grad_loss: Tensor) -> tuple[Tensor | None, Tensor | None]:
    query, table, target, unnormalised, row_sum, table_norm = ctx.saved_tensors
    batch_size = target.numel()
    # d CE / d logits = (softmax - one_hot) / B, in place in the saved buffer.
    grad = unnormalised.mul_((grad_loss / batch_size) / row_sum.unsqueeze(1))
    grad.scatter_add_(
        1, target.view(-1, 1), grad.new_full((batch_size, 1), -float(grad_loss) / batch_size)
    )
    grad_query = grad @ table if ctx.needs_input_grad[0] else None
    grad_table = None
    if ctx.needs_input_grad[1]:
        # d/dV of ||V||: V / ||V||, added inside the same matmul kernel.
        beta = grad_loss * ctx.reg_scale / table_norm
        grad_table = torch.addmm(table, grad.t(), query, beta=float(beta))
    return grad_query, grad_table


def full_softmax_cross_entropy(
    query: Tensor, table: Tensor, target: Tensor, reg_weight: float = 0.0
) -> Tensor:
    r"""Mean cross-entropy of scoring every row of :obj:`table` against
    :obj:`query`, plus :obj:`reg_weight` times the regulariser
    :math:`\lVert \mathbf{V} \rVert_2 / N`:

    .. code-block:: python

        F.cross_entropy(query @ table.t(), target)
        + reg_weight * torch.linalg.vector_norm(table) / table.size(0)

    computed with fewer passes over the two largest tensors of a training
    step: the softmax gradient is formed in place in the logits buffer, and
    the regulariser's gradient is added inside the table-gradient matmul.

    Args:
        query (Tensor): session representations :math:`(B, F)`.
        table (Tensor): item embeddings :math:`(N, F)`.
        target (LongTensor): target item per session :math:`(B)`.
        reg_weight (float, optional): weight of the regulariser.
            (default: :obj:`0.0`)
    """
    return _FullSoftmaxCrossEntropy.apply(query, table, target, reg_weight)
