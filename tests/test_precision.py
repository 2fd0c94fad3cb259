"""`--compile` and `--bf16`: compiled against eager, bfloat16 against float32."""
from __future__ import annotations

import functools
import json
import warnings

import pytest
import torch

from gcsan_pyg import GCSAN
from gcsan_pyg.data import SessionSamples
from gcsan_pyg.training import SessionBatchLoader, TrainConfig, Trainer
from gcsan_pyg.training.precision import compile_model

NUM_ITEMS = 120


def _samples(n: int, seed: int, max_len: int = 25) -> SessionSamples:
    generator = torch.Generator().manual_seed(seed)
    sessions = [
        torch.randint(1, NUM_ITEMS, (int(torch.randint(1, max_len, (1,), generator=generator)),),
                      generator=generator).tolist()
        for _ in range(n)
    ]
    targets = torch.randint(1, NUM_ITEMS, (n,), generator=generator).tolist()
    return SessionSamples.from_lists(sessions, targets)


def _model(dropout: float = 0.0, **kwargs) -> GCSAN:
    torch.manual_seed(0)
    options = dict(hidden_channels=32, inner_channels=64, num_layers=2, num_heads=2, num_steps=2)
    options.update(kwargs)
    return GCSAN(NUM_ITEMS, hidden_dropout=dropout, attn_dropout=dropout, **options)


def _outputs(model: GCSAN, batches) -> list[tuple[torch.Tensor, torch.Tensor, list]]:
    """Session vectors, loss and gradients of every batch (train mode)."""
    model.train()
    out = []
    for batch in batches:
        model.zero_grad(set_to_none=True)
        vectors = model.encode(batch)
        loss = model.loss(batch)
        loss.backward()
        grads = [p.grad.clone() for p in model.parameters()]
        out.append((vectors.detach(), loss.detach(), grads))
    model.zero_grad(set_to_none=True)
    return out


def test_compiled_matches_eager():
    """Inductor (the default backend, C++ kernels on the CPU), as evaluation
    runs the model: eval mode, no gradient."""
    model = _model(num_layers=1, num_steps=1).eval()  # small: compiling is most of the time
    # Batches of different sizes, lengths, node and edge counts (dynamic shapes).
    batches = [next(iter(SessionBatchLoader(_samples(n, seed), n, num_items=NUM_ITEMS)))
               for n, seed in ((48, 1), (17, 2))]
    with torch.no_grad():
        eager = [(model.encode(b), model.recommend(b, k=20)) for b in batches]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compiled = compile_model(model)
    if not compiled:  # the precise reason, e.g. no working C++ compiler for inductor
        pytest.skip(str(next(w.message for w in caught if w.category is RuntimeWarning)))
    assert "forward" in model.gnn.__dict__ and "forward" in model.encoder.__dict__
    # Checkpoint keys unchanged.
    assert list(model.state_dict()) == list(_model(num_layers=1, num_steps=1).state_dict())
    # Float32 both ways; the compiled kernels fuse and reorder sums, so equal up to
    # float32 rounding: 1e-5 absolute on O(1) values, 1e-4 relative (measured: 4e-7).
    with torch.no_grad():
        for (vectors, top), batch in zip(eager, batches):
            torch.testing.assert_close(model.encode(batch), vectors, atol=1e-5, rtol=1e-4)
            scores = model.full_sort_scores(batch)
            # Same top-20, up to swaps of items whose scores tie within rounding.
            same = model.recommend(batch, k=20) == top
            assert same.float().mean() > 0.95
            picked = scores.gather(1, model.recommend(batch, k=20))
            torch.testing.assert_close(picked, scores.gather(1, top), atol=1e-5, rtol=1e-4)


def test_compiled_training_graph_matches_eager(monkeypatch):
    """The training path (forward and backward through AOTAutograd) with the
    'aot_eager' backend, which traces and partitions like inductor but runs
    the traced graph eagerly (inductor's code generation is the test above)."""
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="aot_eager"))
    model = _model(num_layers=1, num_steps=1)  # no dropout: compiled graphs draw their own masks
    batches = [next(iter(SessionBatchLoader(_samples(n, seed), n, num_items=NUM_ITEMS)))
               for n, seed in ((48, 1), (17, 2))]
    eager = _outputs(model, batches)
    assert compile_model(model)
    for (v_e, l_e, g_e), (v_c, l_c, g_c) in zip(eager, _outputs(model, batches)):
        torch.testing.assert_close(v_c, v_e, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(l_c, l_e, atol=1e-6, rtol=1e-5)
        for a, b in zip(g_c, g_e):
            torch.testing.assert_close(a, b, atol=1e-7, rtol=1e-5)


class InvalidCxxCompiler(RuntimeError):
    """Named as inductor's error for a machine without a working C++ compiler."""


def _compile_raising(error: Exception):
    def compile_(fn, **kwargs):
        def call(*args, **kw):
            raise error
        return call
    return compile_


def test_compile_falls_back_to_eager_with_a_warning(monkeypatch):
    broken = _compile_raising(InvalidCxxCompiler("no working C++ compiler found"))

    monkeypatch.setattr(torch, "compile", broken)
    model = _model()
    batch = next(iter(SessionBatchLoader(_samples(8, 4), 8, num_items=NUM_ITEMS)))
    expected = model.encode(batch)
    with pytest.warns(RuntimeWarning, match="torch.compile is unavailable here, running "
                                            "eagerly: InvalidCxxCompiler: no working C"):
        assert compile_model(model) is False
    assert "forward" not in model.gnn.__dict__ and "forward" not in model.encoder.__dict__
    assert torch.equal(model.encode(batch), expected)
    with pytest.warns(RuntimeWarning, match="unavailable"):
        trainer = Trainer(_model(), TrainConfig(compile=True, progress=False))
    assert trainer.compiled is False


def test_compile_errors_of_our_own_code_are_raised(monkeypatch):
    """Only a known cause of the environment (no C++ compiler, an unsupported
    platform) falls back to eager; any other error is a bug and propagates."""
    monkeypatch.setattr(torch, "compile", _compile_raising(TypeError("a bug in a forward")))
    model = _model()
    with pytest.raises(TypeError, match="a bug in a forward"):
        compile_model(model)
    assert "forward" not in model.gnn.__dict__ and "forward" not in model.encoder.__dict__
    # The cause may sit deep in the chain dynamo wraps it in.
    try:
        raise InvalidCxxCompiler("no compiler")
    except InvalidCxxCompiler as inner:
        wrapped = RuntimeError("backend 'inductor' raised")
        wrapped.__cause__ = inner
    monkeypatch.setattr(torch, "compile", _compile_raising(wrapped))
    with pytest.warns(RuntimeWarning, match="InvalidCxxCompiler: no compiler"):
        assert compile_model(_model()) is False


def test_bf16_forward_loss_and_gradients_close_to_float32():
    model = _model()
    batch = next(iter(SessionBatchLoader(_samples(128, 7), 128, num_items=NUM_ITEMS)))
    reference = _outputs(model, [batch])[0]
    with torch.autocast("cpu", torch.bfloat16):  # what TrainConfig(bf16=True) does
        low = _outputs(model, [batch])[0]
    vectors, loss, grads = low
    vectors = vectors.float()
    assert all(g.dtype == torch.float32 for g in grads)
    # bfloat16 keeps 8 significant bits (relative step 2**-8 = 0.4%). Measured on
    # this model: session vectors within 0.34% (relative L2), loss within 4e-6,
    # every parameter's gradient within 0.8%; the bounds leave a margin of >= 4x.
    assert (vectors - reference[0]).norm() / reference[0].norm() < 2e-2
    assert torch.nn.functional.cosine_similarity(vectors, reference[0]).min() > 0.999
    assert loss.item() != reference[1].item()
    assert loss.item() == pytest.approx(reference[1].item(), rel=1e-4)
    for name, a, b in zip(dict(model.named_parameters()), grads, reference[2]):
        assert (a - b).norm() <= 3e-2 * b.norm() + 1e-8, name


def test_bf16_training_close_to_float32():
    train, valid = _samples(256, 8), _samples(64, 9)
    config = dict(epochs=2, batch_size=32, lr=3e-3, progress=False, patience=0)
    full = Trainer(_model(dropout=0.1), TrainConfig(**config))
    full.fit(train, valid)
    low = Trainer(_model(dropout=0.1), TrainConfig(bf16=True, **config))
    low.fit(train, valid)
    assert all(p.dtype == torch.float32 for p in low.model.parameters())
    assert all(p.grad is None or p.grad.dtype == torch.float32 for p in low.model.parameters())
    # Same seed, same batches: the epoch losses move off float32 (autocast
    # took effect) but agree to 0.1% (measured: 1e-5 to 3e-5).
    for a, b in zip(full.state.history, low.state.history):
        assert b["train_loss"] != a["train_loss"]
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-3)
    # Evaluation stays float32: the same weights give the same metrics either way.
    assert low.evaluate(valid) == Trainer(low.model, TrainConfig(progress=False)).evaluate(valid)


def test_cli_bf16_and_compile_options(shared_data, tmp_path, monkeypatch, capsys):
    """--bf16 (here from a config file), --compile and --device auto, through
    TrainConfig and the Trainer into results.json; dynamo's cheap 'eager'
    backend (inductor is tested above)."""
    from gcsan_pyg.cli import main

    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    data = shared_data / "sample_diginetica" / "srgnn_processed"
    config = tmp_path / "run.yaml"
    config.write_text("bf16: true\nepochs: 1\n")
    code = main(["train", str(data), "--config", str(config), "--compile", "--num-layers", "1",
                 "--hidden-channels", "16", "--out", str(tmp_path / "out"), "--root",
                 str(tmp_path / "cache"), "--quiet", "--device", "auto"])
    assert code == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["train_config"]["bf16"] is True and results["train_config"]["compile"] is True
    assert results["compiled"] is True and results["world_size"] == 1
    assert results["train_config"]["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    assert "GC-SAN (test)" in capsys.readouterr().out


def test_bf16_autocast_reaches_the_training_loss():
    """With ``bf16=True`` the encoder's matmuls of a training step run in
    bfloat16 (recorded by a hook) and the loss moves off float32, within the
    documented tolerance."""
    samples = _samples(128, 11)
    losses, dtypes = {}, {}
    for bf16 in (False, True):
        model = _model()
        seen: list[torch.dtype] = []
        model.encoder.layers[-1].ffn_in.register_forward_hook(
            lambda module, args, out, seen=seen: seen.append(out.dtype)
        )
        trainer = Trainer(model, TrainConfig(epochs=1, batch_size=128, lr=1e-3, progress=False,
                                             bf16=bf16, handle_signals=False))
        losses[bf16] = trainer.fit(samples)[0]["train_loss"]
        dtypes[bf16] = set(seen)
    assert dtypes == {False: {torch.float32}, True: {torch.bfloat16}}
    assert losses[True] != losses[False]
    assert losses[True] == pytest.approx(losses[False], rel=1e-3)
