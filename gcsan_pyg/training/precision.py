"""Compiled execution of a model."""
from __future__ import annotations

import warnings

import torch

from gcsan_pyg.data.session_batch import build_session_batch
from gcsan_pyg.nn.gcsan import GCSAN


def compile_model(model: GCSAN, device: torch.device | str = "cpu") -> bool:
    r""":func:`torch.compile` the dense parts of :obj:`model` in place: the
    forward of its gated graph cell and of its self-attention stack, with
    dynamic shapes (every batch has its own node, edge and click counts).
    The glue between them (embedding lookups, gathers, the session index
    arithmetic) stays eager: its sizes depend on the data and would break
    the graph anyway. Parameter names, and so checkpoints, do not change.

    A probe (an inference forward of a three-session batch, as evaluation
    runs it) compiles at once, so that a machine where compilation cannot
    work is found here. Only the known causes of the environment (no
    working C++ compiler, an unsupported platform or Python, no
    :func:`torch.compile`) fall back: a :class:`RuntimeWarning` says why
    and the eager forward is restored. Any other error is raised, as it
    would be a bug. The training graph (forward and backward) compiles at
    the first training step.

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
        cause = _environment_cause(error)
        if cause is None:
            raise
        reason = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
        warnings.warn(
            f"torch.compile is unavailable here, running eagerly: {type(cause).__name__}: "
            f"{reason}", RuntimeWarning, stacklevel=2,
        )
        return False
    return True


# What a machine that cannot compile raises: inductor's errors for a missing
# or failing C++ compiler (matched by name: their module is private to torch),
# the failure to start the compiler, torch.compile's own platform checks.
_ENVIRONMENT_ERRORS = ("InvalidCxxCompiler", "CppCompileError")
_ENVIRONMENT_MESSAGES = ("not yet supported for torch.compile", "has no torch.compile")


def _environment_cause(error: BaseException) -> BaseException | None:
    """The error of :obj:`error`'s chain (causes, contexts, dynamo's
    wrapped inner exception) that says the machine cannot compile, if any."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if (
            type(current).__name__ in _ENVIRONMENT_ERRORS
            or isinstance(current, OSError)
            or any(text in str(current) for text in _ENVIRONMENT_MESSAGES)
        ):
            return current
        pending += [current.__cause__, current.__context__,
                    getattr(current, "inner_exception", None)]
    return None


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
            model.encode(batch)
    finally:
        model.train(was_training)
