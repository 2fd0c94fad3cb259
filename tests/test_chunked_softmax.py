import pytest
import torch
import torch.nn.functional as F
from full_softmax import full_softmax_cross_entropy  # the previous op, now a baseline

import gcsan_pyg.nn.chunked_softmax as chunked_module
from gcsan_pyg.nn.chunked_softmax import chunked_softmax_cross_entropy, default_chunk_size

NUM_ITEMS, BATCH, CHANNELS = 103, 9, 8


def _inputs(dtype, seed=0, num_items=NUM_ITEMS):
    gen = torch.Generator().manual_seed(seed)
    # Entries ~N(0, 1): logits of spread ~sqrt(F), a softmax far from uniform.
    query = torch.randn(BATCH, CHANNELS, generator=gen, dtype=dtype)
    table = torch.randn(num_items, CHANNELS, generator=gen, dtype=dtype)
    target = torch.randint(0, num_items, (BATCH,), generator=gen)
    # Targets at both ends of the table, where partial chunks lie.
    target[0], target[1] = num_items - 1, 0
    return query, table, target


def _reference(query, table, target, reg_weight=0.0):
    # Plain autograd on the [B, N] logits.
    regulariser = torch.linalg.vector_norm(table) / table.size(0)
    return F.cross_entropy(query @ table.t(), target) + reg_weight * regulariser


def _value_and_grads(loss_fn, query, table, target, **kwargs):
    query = query.clone().requires_grad_()
    table = table.clone().requires_grad_()
    loss = loss_fn(query, table, target, **kwargs)
    loss.backward()
    return loss.detach(), query.grad, table.grad


def _assert_close(actual, expected, rel):
    # Relative per tensor: the largest error against the largest entry.
    assert actual.dtype == expected.dtype
    assert (actual - expected).abs().max() <= rel * expected.abs().max()


# 10 and 64 do not divide 103, so the last chunk (holding target[0]) is
# partial; 103 and 500 are one chunk, None picks one chunk at this size.
CHUNK_SIZES = [1, 10, 25, 64, 103, 500, None]


@pytest.mark.parametrize("reg_weight", [0.0, 0.5])
@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
def test_equals_full_softmax_float32(reg_weight, chunk_size):
    query, table, target = _inputs(torch.float32)
    expected = _value_and_grads(full_softmax_cross_entropy, query, table, target,
                                reg_weight=reg_weight)
    actual = _value_and_grads(chunked_softmax_cross_entropy, query, table, target,
                              reg_weight=reg_weight, chunk_size=chunk_size)
    for a, e in zip(actual, expected):
        _assert_close(a, e, 1e-6)


@pytest.mark.parametrize("reg_weight", [0.0, 0.5])
@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
def test_exact_in_float64(reg_weight, chunk_size):
    # Against plain autograd: full_softmax_cross_entropy rounds the 1 / B of
    # its backward to float32, so it is only float32-exact in float64.
    query, table, target = _inputs(torch.float64)
    expected = _value_and_grads(_reference, query, table, target, reg_weight=reg_weight)
    actual = _value_and_grads(chunked_softmax_cross_entropy, query, table, target,
                              reg_weight=reg_weight, chunk_size=chunk_size)
    for a, e in zip(actual, expected):
        _assert_close(a, e, 1e-12)


@pytest.mark.parametrize("chunk_size", [10, None])
def test_regulariser_gradient_of_a_zero_table_is_finite(chunk_size):
    # Issue 19.12: d||V||/dV at V = 0 is autograd's subgradient 0, not 0 / 0.
    query, table, target = _inputs(torch.float64)
    table = torch.zeros_like(table)
    expected = _value_and_grads(_reference, query, table, target, reg_weight=0.5)
    actual = _value_and_grads(chunked_softmax_cross_entropy, query, table, target,
                              reg_weight=0.5, chunk_size=chunk_size)
    assert torch.isfinite(actual[2]).all()
    for a, e in zip(actual, expected):
        _assert_close(a, e, 1e-12)


def test_large_logits_need_rescaling():
    # The maximum grows chunk after chunk: the running sum must be rescaled
    # each time, or the log-normaliser is off by orders of magnitude.
    query, table, target = _inputs(torch.float64)
    table = table * torch.linspace(0.5, 6.0, NUM_ITEMS, dtype=torch.float64).unsqueeze(1)
    expected = _value_and_grads(_reference, query, table, target)
    actual = _value_and_grads(chunked_softmax_cross_entropy, query, table, target, chunk_size=7)
    for a, e in zip(actual, expected):
        _assert_close(a, e, 1e-12)


def test_automatic_chunk(monkeypatch):
    assert default_chunk_size(100) >= 43_098 and default_chunk_size(512) >= 43_098
    assert default_chunk_size(256) * 256 * 4 <= 2**30  # 5M items: 128 MiB chunks
    assert default_chunk_size(10**6) == chunked_module.MIN_CHUNK_ROWS

    # A tiny budget: 9 sessions * 16 rows = 144 elements, so 7 chunks of 103.
    monkeypatch.setattr(chunked_module, "CHUNK_ELEMENTS", 144)
    monkeypatch.setattr(chunked_module, "MIN_CHUNK_ROWS", 4)
    assert default_chunk_size(BATCH) == 16
    query, table, target = _inputs(torch.float64, seed=1)
    seen = []
    original = chunked_module._target_in_chunk
    monkeypatch.setattr(
        chunked_module,
        "_target_in_chunk",
        lambda target, start, size: seen.append((start, size)) or original(target, start, size),
    )
    expected = _value_and_grads(_reference, query, table, target, reg_weight=0.3)
    actual = _value_and_grads(chunked_softmax_cross_entropy, query, table, target, reg_weight=0.3)
    for a, e in zip(actual, expected):
        _assert_close(a, e, 1e-12)
    # Forward and backward each walked 7 chunks, the last one of 7 rows.
    assert seen == 2 * [(start, min(16, NUM_ITEMS - start)) for start in range(0, 103, 16)]


def test_only_one_input_needs_grad():
    query, table, target = _inputs(torch.float64, seed=2)
    full = _value_and_grads(_reference, query, table, target, reg_weight=0.1)
    table_only = table.clone().requires_grad_()
    chunked_softmax_cross_entropy(query, table_only, target, 0.1, chunk_size=30).backward()
    _assert_close(table_only.grad, full[2], 1e-12)
    query_only = query.clone().requires_grad_()
    chunked_softmax_cross_entropy(query_only, table, target, 0.1, chunk_size=30).backward()
    _assert_close(query_only.grad, full[1], 1e-12)


def test_rejects_bad_chunk_size():
    query, table, target = _inputs(torch.float32)
    with pytest.raises(ValueError, match="chunk_size"):
        chunked_softmax_cross_entropy(query, table, target, chunk_size=0)


@pytest.mark.parametrize("chunk_size", [None, 20])
def test_float32_inside_autocast(chunk_size):
    query, table, target = _inputs(torch.float32, seed=3)
    table.requires_grad_()
    weight = torch.randn(CHANNELS, CHANNELS, generator=torch.Generator().manual_seed(4))
    weight.requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        session = query @ weight  # bf16 under autocast
        assert session.dtype == torch.bfloat16
        session.retain_grad()
        loss = chunked_softmax_cross_entropy(session, table, target, 0.2, chunk_size=chunk_size)
    assert loss.dtype == torch.float32
    loss.backward()
    assert session.grad.dtype == torch.bfloat16
    assert table.grad.dtype == torch.float32
    # The same as the float32 op on the bf16 session upcast.
    expected = _value_and_grads(full_softmax_cross_entropy, session.detach().float(),
                                table.detach(), target, reg_weight=0.2)
    _assert_close(loss.detach(), expected[0], 1e-6)
    _assert_close(table.grad, expected[2], 1e-6)
    _assert_close(session.grad.float(), expected[1].bfloat16().float(), 1e-2)
