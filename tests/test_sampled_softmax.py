import io
import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from gcsan_pyg.nn.sampled_softmax import (
    NegativeSampler,
    SampledSoftmaxCrossEntropy,
    sampled_softmax_cross_entropy,
)

# Entry 0 (the padding id) is ignored; items 2 and 7 have count 0, 7 the last.
COUNTS = torch.tensor([5, 3, 0, 1, 9, 4, 16, 0])


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def test_uniform_probabilities():
    sampler = NegativeSampler(COUNTS, "uniform")
    log_q = sampler.log_prob(torch.arange(8))
    assert log_q[0] == -math.inf
    assert torch.equal(log_q[1:], torch.full((7,), -math.log(7), dtype=torch.float64))
    ids = sampler.sample(20_000, generator=_gen(0))
    assert ids.dtype == torch.long and ids.shape == (20_000,)
    # Every real id, those of count 0 included, and never the padding id.
    assert torch.equal(ids.unique(), torch.arange(1, 8))


@pytest.mark.parametrize("alpha", [0.75, 1.0])
def test_popularity_log_prob(alpha):
    sampler = NegativeSampler(COUNTS, "popularity", alpha=alpha)
    weight = COUNTS.double() ** alpha
    weight[0] = 0.0
    expected = weight / weight.sum()
    q = sampler.log_prob(torch.arange(8)).exp()
    assert torch.allclose(q, expected, rtol=1e-12, atol=0)
    assert torch.equal(q == 0, torch.tensor([1, 0, 1, 0, 0, 0, 0, 1], dtype=torch.bool))


@pytest.mark.parametrize("kind", ["uniform", "popularity"])
def test_empirical_frequencies(kind):
    sampler = NegativeSampler(COUNTS, kind)
    num = 200_000
    ids = sampler.sample(num, generator=_gen(1))
    freq = torch.bincount(ids, minlength=8).double() / num
    q = sampler.log_prob(torch.arange(8)).exp()
    # Within 5 standard deviations of a binomial count, for every id.
    assert ((freq - q).abs() <= 5 * (q * (1 - q) / num).sqrt() + 1e-12).all()
    if kind == "popularity":  # items of count 0 (the last one too): never
        assert freq[[0, 2, 7]].sum() == 0


def test_popularity_draws_at_the_ends(monkeypatch):
    # A uniform draw of exactly 0 must give the first item of positive count
    # (not the padding id); one that reaches the total weight (rounding) the
    # last item of positive count, not item 7 of count 0 nor an id past N.
    sampler = NegativeSampler(COUNTS, "popularity")
    monkeypatch.setattr(torch, "rand", lambda *args, **kwargs: torch.tensor([0.0, 1.0]).double())
    assert sampler.sample(2).tolist() == [1, 6]


def test_seeded_generator_is_reproducible():
    sampler = NegativeSampler(COUNTS, "popularity")
    first = sampler.sample(100, generator=_gen(3))
    assert torch.equal(first, sampler.sample(100, generator=_gen(3)))
    assert not torch.equal(first, sampler.sample(100, generator=_gen(4)))


class _RecordOps(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        sizes = [t.numel() for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
        self.ops.append((func.overloadpacket.__name__, sizes))
        return func(*args, **kwargs)


@pytest.mark.parametrize("kind", ["uniform", "popularity"])
def test_per_call_cost_does_not_grow_with_num_items(kind):
    # Not timed: every op a call runs either touches O(S) elements or is a
    # binary search / lookup into the precomputed [N] tables.
    num_items, num_samples = 100_000, 10
    sampler = NegativeSampler(torch.randint(0, 5, (num_items,), generator=_gen(5)), kind)
    with _RecordOps() as record:
        ids = sampler.sample(num_samples, generator=_gen(6))
        sampler.log_expected_count(ids, num_samples, num_in_batch=3)
    assert record.ops
    for name, sizes in record.ops:
        if name not in ("searchsorted", "index", "select"):
            assert all(size <= num_samples for size in sizes), (name, sizes)
    assert ("searchsorted" in [name for name, _ in record.ops]) == (kind == "popularity")


def test_state_dict_round_trip():
    source = NegativeSampler(COUNTS, "popularity", alpha=1.0)
    buffer = io.BytesIO()
    torch.save(source.state_dict(), buffer)
    buffer.seek(0)
    target = NegativeSampler(torch.ones(8), "uniform")
    target.load_state_dict(torch.load(buffer))
    assert target.kind == "popularity" and target.alpha == 1.0
    assert torch.equal(target.counts, source.counts)
    ids = torch.arange(8)
    assert torch.equal(target.log_prob(ids), source.log_prob(ids))
    assert torch.equal(target.sample(50, generator=_gen(7)), source.sample(50, generator=_gen(7)))


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="kind"):
        NegativeSampler(COUNTS, "zipf")
    with pytest.raises(ValueError, match="negative"):
        NegativeSampler(torch.tensor([0, 1, -1]))
    with pytest.raises(ValueError, match="positive count"):
        NegativeSampler(torch.tensor([3, 0, 0]), "popularity")


def test_log_expected_count_and_loss_by_hand():
    # q = (0, 1/4, 1/2, 1/4) and p_data = q for these counts with alpha = 1.
    sampler = NegativeSampler(torch.tensor([0, 1, 2, 1]), "popularity", alpha=1.0)
    ids = torch.tensor([1, 2, 3])
    assert torch.allclose(sampler.log_expected_count(ids, 2),
                          torch.tensor([0.5, 1.0, 0.5], dtype=torch.float64).log())
    # 2 samples and 2 other sessions' targets: 2 q + 2 p_data = 4 q.
    assert torch.allclose(sampler.log_expected_count(ids, 2, num_in_batch=2),
                          torch.tensor([1.0, 2.0, 1.0], dtype=torch.float64).log())

    table = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    query = torch.tensor([[1.0, 1.0], [2.0, -1.0]])
    target = torch.tensor([2, 1])
    negatives = torch.tensor([1, 3])
    log_count = sampler.log_expected_count(negatives, 2)  # log(1/2) twice
    loss = sampled_softmax_cross_entropy(query, table, target, negatives, log_count)
    # Session 0: positive <q, v2> = 2, negatives 1 and 3 at 1 + log 2, 2 + log 2.
    first = math.log(math.exp(2) + 2 * math.exp(1) + 2 * math.exp(2)) - 2
    # Session 1: positive <q, v1> = 2; negative 1 is its target: masked.
    second = math.log(math.exp(2) + 2 * math.exp(1)) - 2
    assert math.isclose(float(loss), (first + second) / 2, rel_tol=1e-6)


def _problem(num_items=50, batch_size=6, channels=8, num_samples=12, seed=0):
    gen = _gen(seed)
    query = torch.randn(batch_size, channels, generator=gen)
    table = torch.randn(num_items, channels, generator=gen)
    target = torch.randint(1, num_items, (batch_size,), generator=gen)
    negatives = torch.randint(1, num_items, (num_samples,), generator=gen)
    log_count = torch.randn(num_samples, generator=gen)
    return query, table, target, negatives, log_count


def test_negative_equal_to_target_is_masked():
    query, table, target, negatives, log_count = _problem()
    negatives[3] = target[0]
    log_count.requires_grad_()
    session = query[:1]
    loss = sampled_softmax_cross_entropy(session, table, target[:1], negatives, log_count)
    keep = torch.arange(negatives.numel()) != 3
    removed = sampled_softmax_cross_entropy(session, table, target[:1], negatives[keep],
                                            log_count[keep])
    assert torch.allclose(loss, removed, rtol=1e-6, atol=0)
    loss.backward()
    assert log_count.grad[3] == 0 and (log_count.grad[keep] != 0).all()


def _loop_reference(query, table, target, negatives, log_count, in_batch_log_count=None):
    # Each session's candidate list built one by one.
    losses = []
    for b in range(target.numel()):
        scores = [query[b] @ table[target[b]]]
        for j, c in zip(negatives.tolist(), log_count):
            if j != target[b]:
                scores.append(query[b] @ table[j] - c)
        if in_batch_log_count is not None:
            for j, c in zip(target.tolist(), in_batch_log_count):
                if j != target[b]:
                    scores.append(query[b] @ table[j] - c)
        scores = torch.stack(scores)
        losses.append(scores.logsumexp(0) - scores[0])
    return torch.stack(losses).mean()


@pytest.mark.parametrize("in_batch", [False, True])
def test_matches_loop_reference(in_batch):
    query, table, target, negatives, log_count = _problem(seed=1)
    target[4] = target[1]  # a repeated target: masked as each other's negative
    negatives[0] = target[2]
    in_batch_log_count = torch.randn(target.numel(), generator=_gen(2)) if in_batch else None
    loss = sampled_softmax_cross_entropy(query, table, target, negatives, log_count,
                                         in_batch_log_count)
    expected = _loop_reference(query, table, target, negatives, log_count, in_batch_log_count)
    assert torch.allclose(loss, expected, rtol=1e-6, atol=0)


@pytest.mark.parametrize("in_batch", [False, True])
def test_table_gradient_is_sparse_on_used_rows(in_batch):
    query, table, target, negatives, _ = _problem(seed=2)
    sampler = NegativeSampler(torch.randint(1, 9, (50,), generator=_gen(3)), "popularity")
    num_in_batch = target.numel() - 1 if in_batch else 0
    log_count = sampler.log_expected_count(negatives, negatives.numel(), num_in_batch)
    in_batch_log_count = None
    if in_batch:
        in_batch_log_count = sampler.log_expected_count(target, negatives.numel(), num_in_batch)
    sparse_table = table.clone().requires_grad_()
    sampled_softmax_cross_entropy(query, sparse_table, target, negatives, log_count,
                                  in_batch_log_count).backward()
    grad = sparse_table.grad
    assert grad.is_sparse
    used = set(target.tolist()) | set(negatives.tolist())
    assert set(grad.coalesce().indices()[0].tolist()) <= used
    assert grad._nnz() <= target.numel() + negatives.numel()
    # The same values as the dense gradient of the loop reference.
    dense_table = table.clone().requires_grad_()
    _loop_reference(query, dense_table, target, negatives, log_count.float(),
                    None if in_batch_log_count is None else in_batch_log_count.float()).backward()
    assert torch.allclose(grad.to_dense(), dense_table.grad, rtol=1e-5, atol=1e-7)
    untouched = torch.ones(50, dtype=torch.bool)
    untouched[list(used)] = False
    assert (dense_table.grad[untouched] == 0).all()


@pytest.mark.parametrize("kind", ["uniform", "popularity"])
def test_converges_to_full_softmax(kind):
    # Many negatives: the corrected sum estimates the partition function
    # over the real items 1 .. N - 1 (the padding row is never a negative).
    num_items, batch_size = 200, 8
    gen = _gen(4)
    query = torch.randn(batch_size, 8, generator=gen)
    table = torch.randn(num_items, 8, generator=gen)
    target = torch.randint(1, num_items, (batch_size,), generator=gen)
    # Skewed counts: under popularity, the uniform correction is 3.4% off.
    sampler = NegativeSampler(torch.arange(num_items) ** 2 + 1, kind)
    full = F.cross_entropy((query @ table.t())[:, 1:], target - 1)
    loss_fn = SampledSoftmaxCrossEntropy(sampler, num_samples=200_000)
    losses = [loss_fn(query, table, target, generator=_gen(10 + i)) for i in range(3)]
    assert math.isclose(float(torch.stack(losses).mean()), float(full), rel_tol=0.01)


def test_in_batch_converges_to_full_softmax():
    # Few sampled negatives, many in-batch ones: the estimate holds only if
    # these are corrected by their data frequency (skewed here, unlike the
    # uniform sampler's q). Averaged over batches of targets drawn from it.
    num_items, batch_size, num_samples = 30, 1000, 20
    gen = _gen(5)
    table = torch.randn(num_items, 8, generator=gen)
    sampler = NegativeSampler(torch.arange(num_items) ** 2 + 1, "uniform")
    loss_fn = SampledSoftmaxCrossEntropy(sampler, num_samples, in_batch=True)
    data_prob = sampler.data_prob(torch.arange(num_items))
    full, sampled = 0.0, 0.0
    for _ in range(4):
        query = torch.randn(batch_size, 8, generator=gen)
        target = torch.multinomial(data_prob, batch_size, replacement=True, generator=gen)
        full += float(F.cross_entropy((query @ table.t())[:, 1:], target - 1))
        sampled += float(loss_fn(query, table, target, generator=gen))
    # Off by about 3.5% with (B - 1) q(j) in place of (B - 1) p_data(j).
    assert math.isclose(sampled, full, rel_tol=0.015)


def test_module_equals_functional():
    query, table, target, _, _ = _problem(seed=5)
    sampler = NegativeSampler(torch.randint(1, 9, (50,), generator=_gen(6)), "popularity")
    loss_fn = SampledSoftmaxCrossEntropy(sampler, num_samples=30, in_batch=True)
    loss = loss_fn(query, table, target, generator=_gen(7))
    negatives = sampler.sample(30, generator=_gen(7))
    expected = sampled_softmax_cross_entropy(
        query, table, target, negatives, sampler.log_expected_count(negatives, 30, 5),
        sampler.log_expected_count(target, 30, 5),
    )
    assert torch.equal(loss, expected)
    assert "num_samples=30, in_batch=True" in repr(loss_fn)
