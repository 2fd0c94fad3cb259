"""Full-ranking top-K metrics for next-item prediction."""
from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor
from torch_geometric.metrics import (
    LinkPredHitRatio,
    LinkPredMetricCollection,
    LinkPredMRR,
    LinkPredNDCG,
)

METRIC_TYPES = {"Hit": LinkPredHitRatio, "MRR": LinkPredMRR, "NDCG": LinkPredNDCG}


class TopKMetrics:
    r"""Hit@K (the SR-GNN papers' "P@K"), MRR@K and NDCG@K of ranked
    predictions against one target item per session.

    With a single relevant item, PyG's link-prediction metrics are exactly
    these: :class:`~torch_geometric.metrics.LinkPredHitRatio` is 1 when the
    target is in the top :math:`K`, :class:`~torch_geometric.metrics.LinkPredMRR`
    is :math:`1/\mathrm{rank}` (0 beyond :math:`K`) and
    :class:`~torch_geometric.metrics.LinkPredNDCG` is
    :math:`1/\log_2(\mathrm{rank} + 1)`.

    Args:
        ks (iterable of int, optional): cut-offs. (default: :obj:`(10, 20)`)
        names (iterable of str, optional): among :obj:`"Hit"`, :obj:`"MRR"`,
            :obj:`"NDCG"`. (default: all three)
    """

    def __init__(
        self,
        ks: Iterable[int] = (10, 20),
        names: Iterable[str] = ("Hit", "MRR", "NDCG"),
    ) -> None:
        self.ks = sorted(set(int(k) for k in ks))
        if not self.ks or self.ks[0] < 1:
            raise ValueError(f"cut-offs 'ks' must be positive integers, got {list(ks)}")
        self.names = list(names)
        unknown = set(self.names) - set(METRIC_TYPES)
        if unknown:
            raise ValueError(f"unknown metrics {sorted(unknown)}; choose from {list(METRIC_TYPES)}")
        self.collection = LinkPredMetricCollection(
            {f"{name}@{k}": METRIC_TYPES[name](k) for k in self.ks for name in self.names}
        )
        self.count = 0  # sessions seen: every one has exactly one relevant item

    @property
    def max_k(self) -> int:
        return self.ks[-1]

    def update(self, top_items: Tensor, target: Tensor) -> None:
        r"""Adds a batch: :obj:`top_items` :obj:`[B, >= max_k]` ranked item
        ids (best first) and :obj:`target` :obj:`[B]`."""
        if top_items.size(1) < self.max_k:
            raise ValueError(f"need the top {self.max_k} items, got {top_items.size(1)}")
        rows = torch.arange(target.numel(), device=target.device)
        self.collection.update(top_items[:, : self.max_k], torch.stack([rows, target]))
        self.count += target.numel()

    def state(self) -> tuple[Tensor, Tensor]:
        """Sums and counts of every metric (to add up across processes)."""
        means = torch.stack(list(self.collection.compute().values())).double()
        count = torch.full_like(means, self.count)
        return means * count, count

    def compute(self, state: tuple[Tensor, Tensor] | None = None) -> dict[str, float]:
        """The metrics in percent, keyed like ``"MRR@20"``."""
        if state is None:
            values = [float(v) * 100 for v in self.collection.compute().values()]
        else:
            sums, count = state
            values = (sums / count.clamp(min=1)).mul(100).tolist()
        return dict(zip(self.collection.keys(), values))

    def reset(self) -> None:
        self.collection.reset()
        self.count = 0
