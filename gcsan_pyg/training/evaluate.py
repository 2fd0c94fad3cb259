"""Full-ranking evaluation of a model, and the popularity baseline."""
from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from tqdm.auto import tqdm

from gcsan_pyg.data.samples import SessionSamples
from gcsan_pyg.training.loader import SessionBatchLoader
from gcsan_pyg.training.metrics import TopKMetrics


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: SessionBatchLoader,
    ks: Iterable[int] = (10, 20),
    progress: bool = False,
    metrics: TopKMetrics | None = None,
) -> dict[str, float]:
    r"""Ranks every item for every sample of :obj:`loader` (the padding id
    never counts) and returns Hit/MRR/NDCG@K in percent.

    Pass :obj:`metrics` to accumulate into an existing
    :class:`TopKMetrics` (e.g. to reduce it across processes first). Its
    sums are kept on the model's device (no transfer per batch)."""
    metrics = metrics if metrics is not None else TopKMetrics(ks)
    parameter = next(model.parameters(), None)
    if parameter is not None:
        metrics.collection.to(parameter.device)
    was_training = model.training
    model.eval()
    for batch in tqdm(loader, desc="evaluate", disable=not progress, leave=False):
        metrics.update(model.recommend(batch, k=metrics.max_k), batch.y)
    model.train(was_training)
    return metrics.compute()


def popularity_baseline(
    train: SessionSamples,
    test: SessionSamples,
    num_items: int,
    ks: Iterable[int] = (10, 20),
) -> dict[str, float]:
    r"""Metrics of recommending the same most popular items to every test
    session (the "POP" baseline of the SR-GNN papers): the most frequent
    targets of the training samples (with prefix augmentation, every click
    of a training session but its first)."""
    metrics = TopKMetrics(ks)
    counts = torch.bincount(train.target, minlength=num_items)
    counts[0] = -1  # never the padding id
    top = counts.topk(metrics.max_k).indices
    metrics.update(top.expand(len(test), -1), test.target)
    return metrics.compute()
