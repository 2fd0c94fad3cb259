import copy
import io

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from gcsan_pyg.training import lazy_adam
from gcsan_pyg.training.lazy_adam import LazyAdam

NUM_ROWS, CHANNELS = 12, 4


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _dense_params(seed=0):
    gen = _gen(seed)
    return [torch.randn(7, 3, generator=gen).requires_grad_(),
            torch.randn(5, generator=gen).requires_grad_()]


def _dense_loss(params):
    return sum((p**3).sum() + p.sum() for p in params)


@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
def test_dense_equals_adam(weight_decay):
    params, reference = _dense_params(), _dense_params()
    optimizer = LazyAdam(params, lr=0.05, betas=(0.8, 0.99), weight_decay=weight_decay)
    adam = torch.optim.Adam(reference, lr=0.05, betas=(0.8, 0.99), weight_decay=weight_decay)
    for _ in range(6):
        for group, opt in [(params, optimizer), (reference, adam)]:
            opt.zero_grad()
            _dense_loss(group).backward()
            opt.step()
    for p, r, initial in zip(params, reference, _dense_params()):
        assert torch.allclose(p, r, rtol=1e-6, atol=1e-7)
        assert not torch.allclose(p, initial)
    if lazy_adam._fused_supported(params):  # the fused kernel itself: bit for bit
        fused = _dense_params()
        adam = torch.optim.Adam(fused, lr=0.05, betas=(0.8, 0.99), weight_decay=weight_decay,
                                fused=True)
        for _ in range(6):
            adam.zero_grad()
            _dense_loss(fused).backward()
            adam.step()
        assert all(torch.equal(p, f) for p, f in zip(params, fused))


def test_dense_falls_back_to_foreach(monkeypatch):
    monkeypatch.setattr(lazy_adam, "_fused_supported", lambda params: False)
    params, reference = _dense_params(), _dense_params()
    optimizer = LazyAdam(params, lr=0.05, weight_decay=0.01)
    adam = torch.optim.Adam(reference, lr=0.05, weight_decay=0.01, foreach=True)
    for _ in range(4):
        for group, opt in [(params, optimizer), (reference, adam)]:
            opt.zero_grad()
            _dense_loss(group).backward()
            opt.step()
    assert all(torch.equal(p, r) for p, r in zip(params, reference))
    assert optimizer.state[params[0]]["step"].device.type == "cpu"


# Rows 1 and 2: every step (2 twice per lookup); row 5 from step 3 on;
# row 7 at steps 1 and 4 only; the other rows never.
LOOKUPS = [[1, 2, 2, 7], [2, 1, 2], [5, 1, 2, 2], [2, 5, 1, 7], [1, 2, 5]]


def _sparse_run(weight_decay, lookups=LOOKUPS, snapshots=None):
    table = torch.randn(NUM_ROWS, CHANNELS, generator=_gen(1)).requires_grad_()
    optimizer = LazyAdam([table], lr=0.1, weight_decay=weight_decay)
    grads = []
    for step, ids in enumerate(lookups):
        optimizer.zero_grad()
        weight = torch.randn(len(ids), CHANNELS, generator=_gen(10 + step))
        (F.embedding(torch.tensor(ids), table, sparse=True) * weight).pow(2).sum().backward()
        assert table.grad.is_sparse
        grads.append(table.grad.to_dense())
        optimizer.step()
        if snapshots is not None:
            state = optimizer.state[table]
            snapshots.append([t.clone() for t in (table, state["exp_avg"], state["exp_avg_sq"])])
    return table, optimizer, grads


def _dense_adam(initial, grads, weight_decay, rows):
    # torch.optim.Adam on the given rows only, fed the same gradients.
    param = initial[rows].clone().requires_grad_()
    adam = torch.optim.Adam([param], lr=0.1, weight_decay=weight_decay)
    for grad in grads:
        param.grad = grad[rows].clone()
        adam.step()
    return param.detach()


def test_untouched_rows_are_bit_unchanged():
    initial = torch.randn(NUM_ROWS, CHANNELS, generator=_gen(1))
    table, optimizer, _ = _sparse_run(weight_decay=0.1)
    state = optimizer.state[table]
    untouched = [0, 3, 4, 6, 8, 9, 10, 11]
    assert torch.equal(table[untouched], initial[untouched])  # weight decay included
    assert (state["exp_avg"][untouched] == 0).all() and (state["exp_avg_sq"][untouched] == 0).all()
    assert float(state["step"]) == len(LOOKUPS)


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_rows_touched_every_step_equal_dense_adam(weight_decay):
    initial = torch.randn(NUM_ROWS, CHANNELS, generator=_gen(1))
    table, _, grads = _sparse_run(weight_decay)
    expected = _dense_adam(initial, grads, weight_decay, [1, 2])
    assert torch.allclose(table[[1, 2]], expected, rtol=1e-6, atol=1e-7)
    assert not torch.allclose(table[[1, 2]], initial[[1, 2]])


def test_row_first_touched_later_equals_dense_adam_with_zero_gradients():
    # Row 5 is first touched at step 3: lazy moments start there, but the
    # bias correction uses the global step 3, exactly what dense Adam does
    # after two steps of zero gradient (zero moments, no move, no decay).
    initial = torch.randn(NUM_ROWS, CHANNELS, generator=_gen(1))
    table, _, grads = _sparse_run(weight_decay=0.0)
    assert (grads[0][5] == 0).all() and (grads[1][5] == 0).all() and (grads[2][5] != 0).all()
    expected = _dense_adam(initial, grads, 0.0, [5])
    assert torch.allclose(table[5], expected[0], rtol=1e-6, atol=1e-7)
    # Row 7 (steps 1 and 4) is where lazy and dense Adam part: dense Adam
    # moves it on its momentum at steps 2 and 3.
    assert not torch.allclose(table[7], _dense_adam(initial, grads, 0.0, [7])[0])


def test_moments_do_not_decay_on_steps_that_skip_a_row():
    snapshots = []
    _sparse_run(weight_decay=0.1, snapshots=snapshots)
    # Row 7 is skipped at steps 2 and 3: param and moments frozen.
    after_first = [t[7] for t in snapshots[0]]
    for step in (1, 2):
        assert all(torch.equal(t[7], a) for t, a in zip(snapshots[step], after_first))
    assert not torch.equal(snapshots[3][0][7], after_first[0])


class _RecordOps(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        sizes = [t._values().numel() if t.is_sparse else t.numel()
                 for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
        self.ops.append((func.overloadpacket.__name__, sizes))
        return func(*args, **kwargs)


def test_sparse_step_costs_touched_rows_only():
    # Not timed: only the row gathers and scatters see the [N, F] tensors.
    table = torch.randn(100_000, CHANNELS).requires_grad_()
    optimizer = LazyAdam([table], weight_decay=0.1)
    for _ in range(2):  # the second step, once the state exists
        optimizer.zero_grad()
        F.embedding(torch.tensor([3, 1, 3, 99_999]), table, sparse=True).sum().backward()
        with _RecordOps() as record:
            optimizer.step()
    names = [name for name, _ in record.ops]
    assert "index_select" in names and "index_copy_" in names
    for name, sizes in record.ops:
        if name not in ("index_select", "index_copy_"):
            assert all(size <= 4 * CHANNELS for size in sizes), (name, sizes)


class _Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(30, 8, sparse=True)
        self.linear = nn.Linear(8, 3)

    def forward(self, ids):
        return self.linear(self.embedding(ids).mean(dim=1))


def _batches(num):
    gen = _gen(2)
    ids = [torch.randint(0, 30, (16, 5), generator=gen) for _ in range(num)]
    return [(i, i.sum(dim=1) % 3) for i in ids]  # labels the embeddings can learn


def _train(model, optimizers, batches):
    losses = []
    for ids, label in batches:
        for opt in optimizers:
            opt.zero_grad()
        loss = F.cross_entropy(model(ids), label)
        loss.backward()
        for opt in optimizers:
            opt.step()
        losses.append(float(loss.detach()))
    return losses


def test_mixed_model_trains_as_adam_plus_sparse_adam():
    torch.manual_seed(0)
    model = _Model()
    reference = copy.deepcopy(model)
    batches = _batches(20)
    # SparseAdam has the same lazy semantics but adds eps outside the bias
    # correction, which shows with the tiny embedding gradients here: a
    # negligible eps makes the two agree.
    losses = _train(model, [LazyAdam(model.parameters(), lr=0.05, eps=1e-12)], batches)
    assert model.embedding.weight.grad.is_sparse and not model.linear.weight.grad.is_sparse
    _train(reference,
           [torch.optim.Adam(reference.linear.parameters(), lr=0.05, eps=1e-12),
            torch.optim.SparseAdam(reference.embedding.parameters(), lr=0.05, eps=1e-12)],
           batches)
    for p, r in zip(model.parameters(), reference.parameters()):
        assert torch.allclose(p, r, rtol=1e-5, atol=1e-6)
    assert sum(losses[-5:]) < sum(losses[:5])


def test_state_dict_round_trip_continues_identically():
    torch.manual_seed(1)
    model = _Model()
    optimizer = LazyAdam(model.parameters(), lr=0.01, weight_decay=0.01)
    batches = _batches(6)
    _train(model, [optimizer], batches[:3])
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, buffer)
    buffer.seek(0)
    checkpoint = torch.load(buffer)
    resumed = _Model()
    resumed.load_state_dict(checkpoint["model"])
    resumed_optimizer = LazyAdam(resumed.parameters(), lr=0.5)
    resumed_optimizer.load_state_dict(checkpoint["optimizer"])
    assert resumed_optimizer.param_groups[0]["lr"] == 0.01
    _train(model, [optimizer], batches[3:])
    _train(resumed, [resumed_optimizer], batches[3:])
    for p, r in zip(model.parameters(), resumed.parameters()):
        assert torch.equal(p, r)
        assert all(torch.equal(a, b) for a, b in zip(optimizer.state[p].values(),
                                                      resumed_optimizer.state[r].values()))


def test_step_lr_schedules_both_kinds_of_parameter():
    # Against Adam + SparseAdam under their own StepLR (eps as above).
    torch.manual_seed(2)
    model = _Model()
    reference = copy.deepcopy(model)
    optimizer = LazyAdam(model.parameters(), lr=0.1, eps=1e-12)
    references = [torch.optim.Adam(reference.linear.parameters(), lr=0.1, eps=1e-12),
                  torch.optim.SparseAdam(reference.embedding.parameters(), lr=0.1, eps=1e-12)]
    schedulers = [torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.1)
                  for opt in [optimizer, *references]]
    lrs = []
    for batch in _batches(5):
        _train(model, [optimizer], [batch])
        _train(reference, references, [batch])
        for scheduler in schedulers:
            scheduler.step()
        lrs.append(optimizer.param_groups[0]["lr"])
    assert lrs == pytest.approx([0.1, 0.01, 0.01, 0.001, 0.001])
    for p, r in zip(model.parameters(), reference.parameters()):
        assert torch.allclose(p, r, rtol=1e-5, atol=1e-6)


def test_rejects_bad_arguments():
    param = torch.zeros(3, requires_grad=True)
    for kwargs in [{"lr": -1.0}, {"eps": -1.0}, {"betas": (1.0, 0.9)}, {"weight_decay": -0.1}]:
        with pytest.raises(ValueError):
            LazyAdam([param], **kwargs)
    matrix = torch.zeros(3, 3, requires_grad=True)  # a fully sparse gradient: 2 sparse dims
    matrix.grad = torch.sparse_coo_tensor(torch.tensor([[0, 1], [0, 0]]), torch.ones(2), (3, 3),
                                          check_invariants=True)
    with pytest.raises(RuntimeError, match="one sparse"):
        LazyAdam([matrix]).step()
