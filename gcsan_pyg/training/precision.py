"""Compiled and bfloat16 execution of a model."""
from __future__ import annotations

import contextlib
import warnings
from typing import Any

import torch
from torch import Tensor, nn

from gcsan_pyg.data.session_batch import build_session_batch
from gcsan_pyg.nn.gcsan import GCSAN


def compile_model(model: GCSAN, device: torch.device | str = "cpu") -> bool:
    r""":func:`torch.compile` the dense parts of :obj:`model` in place: the
    forward of its gated graph cell and of its self-attention stack, with
    dynamic shapes (every batch has its own node, edge and click counts).
    The glue between them (embedding lookups, gathers, the session index
    arithmetic) stays eager: its sizes depend on the data and would break
    the graph anyway. Parameter names, and so checkpoints, do not change.

    A probe (an inference forward of a two-session batch, as evaluation
    runs it) compiles at once, so that a machine where compilation cannot
    work (no C++ compiler, an unsupported platform or Python, ...) is found
    here: a :class:`RuntimeWarning` says why and the eager forward is
    restored. The training graph (forward and backward) compiles at the
    first training step.

    Returns:
        Whether the model is compiled.
    """
    device = torch.device(device)
    parts = [model.gnn, model.encoder]
    try:
        if not hasattr(torch, "compile"):
            raise RuntimeError(f"torch {torch.__version__} has no torch.compile")
        for part in parts:
            part.forward = torch.compile(part.forward, dynamic=True)
        _compile_probe(model, device)
    except Exception as error:
        for part in parts:
            part.__dict__.pop("forward", None)
        reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
        warnings.warn(
            f"torch.compile is unavailable here, running eagerly: {type(error).__name__}: "
            f"{reason}", RuntimeWarning, stacklevel=2,
        )
        return False
    return True


def _compile_probe(model: GCSAN, device: torch.device) -> None:
    # 3 sessions, 9 clicks, 7 nodes, 6 edges: sizes apart from each other and
    # from 0, 1 and 2, which the compiler would otherwise specialise on (and
    # recompile for the first real batch).
    item_seq = torch.tensor([[1, 2, 3, 1], [2, 3, 0, 0], [3, 3, 1, 0]])
    item_seq = torch.where(item_seq > 0, (item_seq - 1) % (model.num_items - 1) + 1, 0)
    batch = build_session_batch(item_seq.to(device), torch.tensor([4, 2, 3], device=device),
                                num_items=model.num_items)
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(batch)
    finally:
        model.train(was_training)


@contextlib.contextmanager
def _bf16_forward(model: nn.Module, device_type: str, enabled: bool = True):
    """Within the block, :obj:`model`'s forward runs under bfloat16 autocast
    and returns float32, so that what consumes its output (the loss head,
    whose fused cross-entropy computes its own gradient) runs in float32."""
    if not enabled:
        yield
        return
    previous = model.__dict__.get("forward")
    forward = model.forward

    def run(*args: Any, **kwargs: Any) -> Tensor:
        with torch.autocast(device_type, dtype=torch.bfloat16):
            out = forward(*args, **kwargs)
        return out.float()

    model.forward = run
    try:
        yield
    finally:
        if previous is None:
            model.__dict__.pop("forward", None)
        else:
            model.forward = previous
