"""Sampled softmax with the logQ correction: a cross-entropy whose cost does
not grow with the number of items."""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SAMPLER_KINDS = ("uniform", "popularity")


class NegativeSampler(nn.Module):
    r"""Draws negative items, with replacement, from a fixed distribution
    :math:`q` over the real item ids :math:`1, \ldots, N - 1` (the padding
    id 0 is never drawn):

    * :obj:`"uniform"`: :math:`q(j) = 1 / (N - 1)`;
    * :obj:`"popularity"`: :math:`q(j) \propto c_j^{\alpha}`, with
      :math:`c_j` the item's training count; items of count 0 are never
      drawn. :math:`\alpha = 0.75` by default, the damping of word2vec's
      negative sampling: popular items are drawn more often, but less than
      in proportion.

    The cumulative distribution is built once; a call costs
    :math:`O(S \log N)` for :math:`S` draws (a binary search per uniform
    draw), never :math:`O(N)`. The counts are a buffer, the kind and
    :math:`\alpha` extra state, so :meth:`state_dict` holds all of it and
    loading one rebuilds the distribution.

    The counts also give the data distribution
    :math:`p_{\text{data}}(j) = c_j / \sum_k c_k` of :meth:`data_prob`,
    which in-batch negatives follow when the counts are how often each item
    is a training target.

    Args:
        counts (Tensor): training count per item :math:`(N)`; entry 0 (the
            padding id) is ignored.
        kind (str, optional): :obj:`"uniform"` or :obj:`"popularity"`.
            (default: :obj:`"uniform"`)
        alpha (float, optional): exponent :math:`\alpha` of the popularity
            distribution. (default: :obj:`0.75`)
    """

    def __init__(self, counts: Tensor, kind: str = "uniform", alpha: float = 0.75) -> None:
        super().__init__()
        if counts.dim() != 1 or counts.numel() < 2:
            raise ValueError("'counts' must be one count per item, the padding id 0 included")
        self.register_buffer("counts", counts.detach().to(torch.float64).clone())
        self.register_buffer("cdf", torch.empty(0, dtype=torch.float64), persistent=False)
        self.kind, self.alpha = kind, alpha
        self._build()

    def _build(self) -> None:
        if self.kind not in SAMPLER_KINDS:
            raise ValueError(f"'kind' must be one of {SAMPLER_KINDS}, got {self.kind!r}")
        if self.kind == "popularity" and not self.alpha > 0:
            raise ValueError(f"'alpha' must be positive, got {self.alpha}")
        if (self.counts < 0).any():
            raise ValueError("'counts' must not be negative")
        self.counts[0] = 0.0  # the padding id is neither drawn nor a target
        self.total_count = float(self.counts.sum())
        if self.kind == "uniform":
            self.cdf = self.counts.new_empty(0)
            return
        weight = self.counts.pow(self.alpha)
        if not weight.sum() > 0:
            raise ValueError("'popularity' sampling needs an item of positive count")
        self.cdf = weight.cumsum(0)
        self.log_total_weight = math.log(float(self.cdf[-1]))
        # Draws lie in [0, total), but should a backend's rounding reach the
        # total, the search stays on the last item that can be drawn.
        self.max_id = int(weight.nonzero()[-1])

    def get_extra_state(self) -> dict[str, Any]:
        return {"kind": self.kind, "alpha": self.alpha}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.kind, self.alpha = state["kind"], state["alpha"]

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._build()  # the loaded counts, kind and alpha

    @property
    def num_items(self) -> int:
        return self.counts.numel()

    def sample(
        self,
        num_samples: int,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        r"""Draws :obj:`num_samples` item ids, independently from :math:`q`.

        Args:
            num_samples (int): the number of draws :math:`S`.
            device (torch.device, optional): where the ids go; the buffers'
                device by default.
            generator (torch.Generator, optional): the random source; the
                draws are made on its device.

        Returns:
            LongTensor :math:`(S)`.
        """
        draw_device = generator.device if generator is not None else self.counts.device
        device = self.counts.device if device is None else device
        if self.kind == "uniform":
            ids = torch.randint(
                1, self.num_items, (num_samples,), generator=generator, device=draw_device
            )
            return ids.to(device)
        # Inverse transform sampling: the first id whose cumulative weight
        # exceeds a uniform draw on [0, total weight).
        uniform = torch.rand(num_samples, generator=generator, device=draw_device,
                             dtype=torch.float64)
        uniform = uniform.to(self.cdf.device) * self.cdf[-1]
        ids = torch.searchsorted(self.cdf, uniform, right=True).clamp_(max=self.max_id)
        return ids.to(device)

    def log_prob(self, ids: Tensor) -> Tensor:
        r"""The log-probability :math:`\log q(j)` of drawing each id
        (:obj:`-inf` for the padding id and, under popularity, for items of
        count 0), in float64.

        Args:
            ids (LongTensor): item ids of any shape.
        """
        ids = ids.to(self.counts.device)
        if self.kind == "uniform":
            log_q = torch.full(ids.shape, -math.log(self.num_items - 1), dtype=torch.float64,
                               device=ids.device)
            return log_q.masked_fill_(ids == 0, float("-inf"))
        return self.alpha * self.counts[ids].log() - self.log_total_weight

    def data_prob(self, ids: Tensor) -> Tensor:
        r"""The training frequency :math:`p_{\text{data}}(j) = c_j / \sum_k
        c_k` of each id, in float64.

        Args:
            ids (LongTensor): item ids of any shape.
        """
        return self.counts[ids.to(self.counts.device)] / self.total_count

    def log_expected_count(self, ids: Tensor, num_samples: int, num_in_batch: int = 0) -> Tensor:
        r"""The log of how often each id is expected among a session's
        negatives: :obj:`num_samples` draws from :math:`q` and, with in-batch
        negatives, the targets of the :obj:`num_in_batch` other sessions,

        .. math::
            \log\left(S \, q(j) + (B - 1) \, p_{\text{data}}(j)\right),

        in float64.

        Args:
            ids (LongTensor): item ids of any shape.
            num_samples (int): the number of sampled negatives :math:`S`.
            num_in_batch (int, optional): :math:`B - 1` with in-batch
                negatives, else 0. (default: :obj:`0`)
        """
        expected = num_samples * self.log_prob(ids).exp()
        if num_in_batch > 0:
            expected = expected + num_in_batch * self.data_prob(ids)
        return expected.log()


def sampled_softmax_cross_entropy(
    query: Tensor,
    table: Tensor,
    target: Tensor,
    negatives: Tensor,
    log_count: Tensor,
    in_batch_log_count: Tensor | None = None,
) -> Tensor:
    r"""Mean cross-entropy of each session's target against shared sampled
    negatives, with the logQ correction of `"Sampling-Bias-Corrected Neural
    Modeling for Large Corpus Item Recommendations"
    <https://research.google/pubs/pub48840/>`_ (Yi et al., RecSys 2019).

    With logits :math:`s_{bj} = \mathbf{q}_b^\top \mathbf{v}_j`, the
    positive :math:`s_{bt}` is kept as it is and every negative :math:`j` is
    scored :math:`s_{bj} - \log E_j`, :math:`E_j` the expected number of
    times :math:`j` occurs among the session's negatives. For :math:`S`
    negatives :math:`n_1, \ldots, n_S` drawn from :math:`q`,
    :math:`E_j = S \, q(j)`, and

    .. math::
        e^{s_{bt}} + \sum_{k : n_k \neq t} \frac{e^{s_{b n_k}}}{S \, q(n_k)}

    is an unbiased estimate of the full softmax's partition function
    :math:`\sum_{j \geq 1} e^{s_{bj}}` over the real items; its log (the
    loss's normaliser) is consistent as :math:`S` grows. A negative equal to
    the session's target is masked (logit :math:`-\infty`), as the target
    already has its exact term.

    With :obj:`in_batch_log_count`, the other sessions' targets are
    negatives too (masked where equal to the session's own target, the
    diagonal included), and every negative, sampled or in-batch, is
    corrected by the expected count among all negatives,

    .. math::
        E_j = S \, q(j) + (B - 1) \, p_{\text{data}}(j),

    taking :math:`p_{\text{data}}` as the training frequency of :math:`j`
    as a target: a batch of training examples drawn at random holds each
    other target with that probability, so the sum stays unbiased, and the
    counts are known exactly (the streaming estimate of Yi et al. is for
    when they are not). An in-batch target of expected count 0 (an item
    absent from the counts) would get an infinite correction: the counts
    must cover every training target. :meth:`NegativeSampler.log_expected_count`
    gives both corrections.

    The target and negative rows are looked up with
    :func:`torch.nn.functional.embedding` and :obj:`sparse=True`, so the
    table's gradient is a sparse tensor touching :math:`O(B + S)` rows
    (step it with :class:`~gcsan_pyg.training.lazy_adam.LazyAdam`). The
    logits are corrected and normalised in at least float32, also under
    :class:`torch.autocast`.

    Args:
        query (Tensor): session representations :math:`(B, F)`.
        table (Tensor): item embeddings :math:`(N, F)`.
        target (LongTensor): target item per session :math:`(B)`.
        negatives (LongTensor): sampled negative ids, shared by all
            sessions :math:`(S)`.
        log_count (Tensor): :math:`\log E_j` of each sampled negative
            :math:`(S)`.
        in_batch_log_count (Tensor, optional): :math:`\log E_j` of each
            session's target as another session's negative :math:`(B)`;
            given, the in-batch negatives are used. (default: :obj:`None`)

    Returns:
        The scalar loss.
    """
    batch_size = target.numel()
    rows = F.embedding(torch.cat([target, negatives]), table, sparse=True)
    positive, negative = rows[:batch_size], rows[batch_size:]
    dtype = torch.promote_types(table.dtype, torch.float32)
    # Both corrections and masks act on [B, S] (and [B, B]) logits only.
    pos_logit = (query * positive).sum(dim=1).to(dtype)
    neg_logit = (query @ negative.t()).to(dtype) - log_count.to(query.device, dtype)
    neg_logit = neg_logit.masked_fill(negatives.unsqueeze(0) == target.unsqueeze(1), -math.inf)
    logits = [pos_logit.unsqueeze(1), neg_logit]
    if in_batch_log_count is not None:
        batch_logit = (query @ positive.t()).to(dtype)
        batch_logit = batch_logit - in_batch_log_count.to(query.device, dtype)
        same = target.unsqueeze(0) == target.unsqueeze(1)
        logits.append(batch_logit.masked_fill(same, -math.inf))
    logits = torch.cat(logits, dim=1)
    # The positive sits in column 0 of every row.
    return (logits.logsumexp(dim=1) - pos_logit).mean()


class SampledSoftmaxCrossEntropy(nn.Module):
    r"""Draws :obj:`num_samples` shared negatives from :obj:`sampler` per
    call and returns :func:`sampled_softmax_cross_entropy` with the logQ
    corrections of :meth:`NegativeSampler.log_expected_count`.

    Args:
        sampler (NegativeSampler): the negative distribution.
        num_samples (int): sampled negatives :math:`S` per batch.
        in_batch (bool, optional): whether the other sessions' targets are
            negatives too. (default: :obj:`False`)
    """

    def __init__(self, sampler: NegativeSampler, num_samples: int, in_batch: bool = False) -> None:
        super().__init__()
        if num_samples < 1:
            raise ValueError(f"'num_samples' must be positive, got {num_samples}")
        self.sampler, self.num_samples, self.in_batch = sampler, num_samples, in_batch

    def forward(
        self,
        query: Tensor,
        table: Tensor,
        target: Tensor,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        r"""
        Args:
            query (Tensor): session representations :math:`(B, F)`.
            table (Tensor): item embeddings :math:`(N, F)`.
            target (LongTensor): target item per session :math:`(B)`.
            generator (torch.Generator, optional): the random source of the
                negatives. (default: :obj:`None`)
        """
        negatives = self.sampler.sample(self.num_samples, device=target.device,
                                        generator=generator)
        num_in_batch = target.numel() - 1 if self.in_batch else 0
        log_count = self.sampler.log_expected_count(negatives, self.num_samples, num_in_batch)
        in_batch_log_count = None
        if self.in_batch:
            in_batch_log_count = self.sampler.log_expected_count(
                target, self.num_samples, num_in_batch
            )
        return sampled_softmax_cross_entropy(
            query, table, target, negatives, log_count, in_batch_log_count
        )

    def extra_repr(self) -> str:
        return f"num_samples={self.num_samples}, in_batch={self.in_batch}"
