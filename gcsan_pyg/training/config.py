"""The options of a training run."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainConfig:
    r"""Trainer options. The defaults are SR-GNN's schedule: Adam, learning
    rate :math:`10^{-3}` decayed :math:`\times 0.1` every 3 epochs, L2
    :math:`10^{-5}`, batch size 100.

    Args:
        epochs (int): most epochs to run.
        batch_size (int): training sessions per step.
        eval_batch_size (int): sessions per evaluation batch.
        lr (float): initial learning rate.
        lr_step (int): epochs between learning-rate decays (0: never).
        lr_gamma (float): learning-rate decay factor.
        weight_decay (float): Adam's L2 penalty.
        patience (int): stop after this many epochs without a better
            validation :obj:`metric` (0: never stop early).
        metric (str): validation metric to select and stop on, e.g.
            :obj:`"MRR@20"` or :obj:`"Hit@20"`.
        ks (tuple of int): cut-offs of the reported metrics.
        seed (int): seed of shuffling and dropout.
        max_length (int, optional): keep the most recent clicks of longer
            sessions.
        device (str): :obj:`"cpu"`, :obj:`"cuda"`, :obj:`"cuda:1"`, ... or
            :obj:`"auto"` (CUDA where available). Under ``torchrun``,
            :obj:`"cuda"` means each process's own GPU :obj:`LOCAL_RANK`.
        progress (bool): show progress bars (rank 0 only).
        bf16 (bool): run the forward pass of training steps (graph cell,
            self-attention and loss) under bfloat16 autocast (CPU and CUDA);
            the softmax cross-entropy over all items computes in float32
            inside, and parameters, gradients, the optimizer and evaluation
            stay float32 (ranking thousands of item scores in bfloat16 would
            tie many).
        compile (bool): :func:`torch.compile` the model's graph cell and
            self-attention stack (see :func:`compile_model`); falls back to
            eager execution, with a warning, where the machine cannot compile.
        handle_signals (bool): on SIGINT/SIGTERM, finish the current step,
            write a resumable ``last.pt`` and raise
            :class:`TrainingInterrupted` (a repeated signal, a second or more
            later, acts at once).
    """

    epochs: int = 10
    batch_size: int = 100
    eval_batch_size: int = 500
    lr: float = 1e-3
    lr_step: int = 3
    lr_gamma: float = 0.1
    weight_decay: float = 1e-5
    patience: int = 3
    metric: str = "MRR@20"
    ks: tuple[int, ...] = (10, 20)
    seed: int = 2019
    max_length: int | None = None
    device: str = "cpu"
    progress: bool = True
    bf16: bool = False
    compile: bool = False
    handle_signals: bool = True

    def __post_init__(self) -> None:
        self.ks = tuple(int(k) for k in self.ks)
        for name in ("epochs", "batch_size", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"'{name}' must be positive, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"'lr' must be positive, got {self.lr}")
        if self.lr_step < 0 or self.patience < 0:
            raise ValueError("'lr_step' and 'patience' must be >= 0")
        name, _, k = self.metric.partition("@")
        if name not in ("Hit", "MRR", "NDCG") or not k.isdigit() or int(k) not in self.ks:
            raise ValueError(
                f"'metric' must look like 'MRR@20' with a cut-off among ks={self.ks}, "
                f"got {self.metric!r}"
            )
