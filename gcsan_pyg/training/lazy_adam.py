"""Adam for models with both dense and sparse gradients: dense parameters take
PyTorch's own Adam step, sparse ones update only the rows they touch."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer
from torch.optim.adam import adam


def _fused_supported(params: list[Tensor]) -> bool:
    # The fused kernels need floating point tensors on a device that has
    # them (the CPU's came with torch 2.4 and are listed from then on).
    try:
        from torch.optim.optimizer import _get_fused_kernels_supported_devices
    except ImportError:
        return False
    devices = _get_fused_kernels_supported_devices()
    return all(p.is_floating_point() and p.device.type in devices for p in params)


class LazyAdam(Optimizer):
    r"""Adam whose sparse gradients update only the rows they touch, as
    TensorFlow's ``LazyAdam`` and :class:`torch.optim.SparseAdam`, while dense
    gradients take :class:`torch.optim.Adam`'s step, in one optimizer: an
    item table with :obj:`sparse=True` lookups and the rest of the model.

    **Dense gradients** get exactly :class:`torch.optim.Adam`'s update with
    L2 weight decay :math:`\lambda` (added to the gradient), through
    :func:`torch.optim.adam.adam` with the fused kernels where the device
    has them and the multi-tensor ones otherwise.

    **Sparse gradients** (coalesced first) update the touched rows
    :math:`R` of the parameter and of its two moments, and nothing else:

    .. math::
        \mathbf{g}_r &= \nabla_r + \lambda \boldsymbol{\theta}_r, \qquad
        \mathbf{m}_r \leftarrow \beta_1 \mathbf{m}_r + (1 - \beta_1)
        \mathbf{g}_r, \qquad
        \mathbf{v}_r \leftarrow \beta_2 \mathbf{v}_r + (1 - \beta_2)
        \mathbf{g}_r^2,

        \boldsymbol{\theta}_r &\leftarrow \boldsymbol{\theta}_r -
        \frac{\gamma}{1 - \beta_1^t} \frac{\mathbf{m}_r}
        {\sqrt{\mathbf{v}_r / (1 - \beta_2^t)} + \epsilon}
        \qquad (r \in R),

    with :math:`t` the parameter's step count, which grows on every step
    that gives the parameter a gradient, whichever rows it touches. So a
    row's moments do not decay on steps that leave it out, and weight decay
    acts on touched rows only (rows never looked up are never decayed). A
    row first touched at step :math:`t` moves exactly as under dense Adam
    with zero gradients before (with :math:`\lambda = 0`); later gaps
    differ, as dense Adam keeps moving a row on its momentum. A step costs
    :math:`O(|R| \cdot F)`, with no temporary of the parameter's size.

    Args:
        params (iterable): parameters or parameter groups.
        lr (float, optional): learning rate :math:`\gamma`.
            (default: :obj:`1e-3`)
        betas (tuple[float, float], optional): :math:`(\beta_1, \beta_2)`.
            (default: :obj:`(0.9, 0.999)`)
        eps (float, optional): :math:`\epsilon`. (default: :obj:`1e-8`)
        weight_decay (float, optional): L2 penalty :math:`\lambda`.
            (default: :obj:`0.0`)
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        if not lr >= 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not eps >= 0.0:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"Invalid beta parameters: {betas}")
        if not weight_decay >= 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        defaults = {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay}
        super().__init__(params, defaults)

    def _state(self, param: Tensor, fused: bool) -> dict[str, Tensor]:
        state = self.state[param]
        if not state:
            # As torch.optim.Adam: the step count lives on the CPU, except for
            # the fused kernels, which read it on the parameter's device.
            device = param.device if fused else "cpu"
            state["step"] = torch.zeros((), dtype=torch.float32, device=device)
            state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        elif fused and state["step"].device != param.device:  # e.g. a CPU checkpoint
            state["step"] = state["step"].to(param.device)
        return state

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """Performs a single optimization step.

        Args:
            closure (callable, optional): re-evaluates the model and returns
                the loss.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            dense = [p for p in params if not p.grad.is_sparse]
            if dense:
                self._dense_step(group, dense)
            for param in params:
                if param.grad.is_sparse:
                    self._sparse_step(group, param)
        return loss

    def _dense_step(self, group: dict[str, Any], params: list[Tensor]) -> None:
        fused = _fused_supported(params)
        states = [self._state(p, fused) for p in params]
        beta1, beta2 = group["betas"]
        adam(
            params,
            [p.grad for p in params],
            [s["exp_avg"] for s in states],
            [s["exp_avg_sq"] for s in states],
            [],
            [s["step"] for s in states],
            foreach=not fused,
            fused=fused,
            amsgrad=False,
            beta1=beta1,
            beta2=beta2,
            lr=group["lr"],
            weight_decay=group["weight_decay"],
            eps=group["eps"],
            maximize=False,
        )

    def _sparse_step(self, group: dict[str, Any], param: Tensor) -> None:
        grad = param.grad.coalesce()
        if grad.sparse_dim() != 1:
            raise RuntimeError("LazyAdam needs sparse gradients with one sparse (row) dimension")
        state = self._state(param, fused=False)
        beta1, beta2 = group["betas"]
        state["step"] += 1
        step = float(state["step"])
        rows, grad = grad.indices()[0], grad.values()
        # Gathered copies of the touched rows: updated, then written back.
        value = param.index_select(0, rows)
        if group["weight_decay"] != 0:
            grad = grad.add(value, alpha=group["weight_decay"])
        exp_avg = state["exp_avg"].index_select(0, rows).lerp_(grad, 1 - beta1)
        exp_avg_sq = state["exp_avg_sq"].index_select(0, rows)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        bias_correction1 = 1 - beta1**step
        bias_correction2_sqrt = (1 - beta2**step) ** 0.5
        denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(group["eps"])
        value.addcdiv_(exp_avg, denom, value=-group["lr"] / bias_correction1)
        param.index_copy_(0, rows, value)
        state["exp_avg"].index_copy_(0, rows, exp_avg)
        state["exp_avg_sq"].index_copy_(0, rows, exp_avg_sq)
