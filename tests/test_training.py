import math

import pytest
import torch

from gcsan_pyg import GCSAN
from gcsan_pyg.data import SessionSamples
from gcsan_pyg.training import (
    SessionBatchLoader,
    TopKMetrics,
    TrainConfig,
    Trainer,
    load_checkpoint,
    load_model,
    popularity_baseline,
    save_checkpoint,
    uniform_negatives,
)

NUM_ITEMS = 60


def successor_samples(n, seed):
    generator = torch.Generator().manual_seed(seed)
    sessions, targets = [], []
    for _ in range(n):
        length = int(torch.randint(1, 5, (1,), generator=generator))
        start = int(torch.randint(1, NUM_ITEMS - length - 1, (1,), generator=generator))
        sessions.append(list(range(start, start + length)))
        targets.append(start + length)
    return SessionSamples.from_lists(sessions, targets)


def small_model(seed=0):
    torch.manual_seed(seed)
    return GCSAN(NUM_ITEMS, hidden_channels=16, inner_channels=32)


# Metrics ------------------------------------------------------------------------


def test_metrics_against_hand_computed_values():
    metrics = TopKMetrics(ks=(1, 3))
    top = torch.tensor([[5, 2, 9], [1, 2, 3], [4, 8, 6], [7, 3, 1]])
    target = torch.tensor([2, 7, 4, 1])  # ranks 2, miss, 1, 3
    metrics.update(top, target)
    out = metrics.compute()
    assert out["Hit@1"] == pytest.approx(100 * 1 / 4)
    assert out["Hit@3"] == pytest.approx(100 * 3 / 4)
    assert out["MRR@1"] == pytest.approx(100 * 1 / 4)
    assert out["MRR@3"] == pytest.approx(100 * (1 / 2 + 1 + 1 / 3) / 4)
    ndcg3 = (1 / math.log2(3) + 1 + 1 / math.log2(4)) / 4
    assert out["NDCG@3"] == pytest.approx(100 * ndcg3, rel=1e-5)
    # Accumulates over batches.
    metrics.update(torch.tensor([[9, 8, 7]]), torch.tensor([9]))
    assert metrics.compute()["Hit@1"] == pytest.approx(100 * 2 / 5)
    metrics.reset()
    assert metrics.compute()["Hit@1"] == 0.0


def test_metrics_reject_bad_arguments():
    with pytest.raises(ValueError, match="positive"):
        TopKMetrics(ks=(0,))
    with pytest.raises(ValueError, match="unknown metrics"):
        TopKMetrics(names=("AUC",))
    with pytest.raises(ValueError, match="need the top 20 items"):
        TopKMetrics().update(torch.ones(2, 5, dtype=torch.long), torch.ones(2, dtype=torch.long))


def test_popularity_baseline():
    train = SessionSamples.from_lists([[1, 2], [2, 3], [2]], [3, 2, 4])
    test = SessionSamples.from_lists([[5], [1]], [2, 5])
    out = popularity_baseline(train, test, num_items=6, ks=(1, 3))
    # Counts: 2 -> 4, 3 -> 2, 1 -> 1, 4 -> 1, 5 -> 0: 2 is first, 5 never in the top 3.
    assert out["Hit@1"] == pytest.approx(50.0)
    assert out["Hit@3"] == pytest.approx(50.0)
    assert out["MRR@3"] == pytest.approx(50.0)


# Loader ---------------------------------------------------------------------------


def test_loader_covers_every_sample_once_and_reshuffles_per_epoch():
    samples = successor_samples(103, seed=1)
    loader = SessionBatchLoader(samples, batch_size=10, shuffle=True, seed=5)
    assert len(loader) == 11
    seen = torch.cat([b.y for b in loader])
    assert sorted(seen.tolist()) == sorted(samples.target.tolist())
    first = torch.cat([b.y for b in loader])
    loader.set_epoch(1)
    second = torch.cat([b.y for b in loader])
    loader.set_epoch(0)
    assert torch.equal(first, torch.cat([b.y for b in loader]))
    assert not torch.equal(first, second)


def test_loader_truncates_to_the_most_recent_clicks():
    samples = SessionSamples.from_lists([[1, 2, 3, 4, 5], [6]], [7, 8])
    batch = next(iter(SessionBatchLoader(samples, batch_size=2, max_length=3)))
    assert batch.x[batch.alias].tolist() == [3, 4, 5, 6]


def test_samples_reject_bad_values():
    with pytest.raises(ValueError, match=r"sample 1 has an empty prefix \(length 0\)"):
        SessionSamples.from_lists([[1], []], [2, 3])
    with pytest.raises(ValueError, match=r"target item id 99 \(sample 0\)"):
        SessionSamples.from_lists([[1]], [99]).check(NUM_ITEMS)


def test_bpr_negatives_never_equal_the_target_and_are_uniform():
    # Issue 19.10: randint(1, N) drew the target itself as a "negative".
    torch.manual_seed(0)
    target = torch.tensor([1, 2, 3, 4]).repeat(5000)
    negative = uniform_negatives(target, 5)
    assert not (negative == target).any()
    assert negative.min() >= 1 and negative.max() <= 4
    # Uniform over the three other items: each pair (target, negative) ~ 5000 / 3.
    counts = torch.zeros(5, 5).index_put_((target, negative), torch.ones(target.numel()),
                                          accumulate=True)[1:, 1:]
    off_diagonal = counts[~torch.eye(4, dtype=torch.bool)]
    assert (off_diagonal - 5000 / 3).abs().max() < 5 * (5000 * 2 / 9) ** 0.5
    with pytest.raises(ValueError, match=r"at least two real items \(num_items >= 3\)"):
        uniform_negatives(torch.tensor([1]), 2)


def test_trainer_draws_bpr_negatives_other_than_the_target(monkeypatch):
    model = GCSAN(4, hidden_channels=8, inner_channels=8, loss_type="BPR")
    pairs = []
    original = model.loss

    def spy(data, target=None, neg_items=None, sampled_loss=None):
        pairs.append((data.y.clone(), neg_items.clone()))
        return original(data, target, neg_items, sampled_loss)

    monkeypatch.setattr(model, "loss", spy)
    samples = SessionSamples.from_lists([[1], [2], [3], [1, 2]] * 50, [2, 3, 1, 3] * 50)
    Trainer(model, TrainConfig(epochs=1, batch_size=20, progress=False)).fit(samples)
    target, negative = (torch.cat(t) for t in zip(*pairs))
    assert target.numel() == 200 and not (negative == target).any()


# Trainer and checkpoints -------------------------------------------------------------


def test_trainer_learns_and_beats_popularity(tmp_path):
    train, valid = successor_samples(1500, 0), successor_samples(300, 1)
    trainer = Trainer(
        small_model(),
        TrainConfig(epochs=4, lr=5e-3, progress=False, batch_size=50),
        checkpoint_dir=tmp_path,
    )
    history = trainer.fit(train, valid)
    assert len(history) == 4
    final = history[-1]["valid"]
    pop = popularity_baseline(train, valid, NUM_ITEMS)
    assert final["Hit@20"] > 2 * pop["Hit@20"]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert (tmp_path / "last.pt").is_file() and (tmp_path / "best.pt").is_file()
    assert not list(tmp_path.glob("*.tmp"))
    model, payload = load_model(tmp_path / "best.pt")
    assert payload["state"]["best_epoch"] == trainer.state.best_epoch


def test_resume_gives_the_parameters_of_an_uninterrupted_run(tmp_path):
    train, valid = successor_samples(400, 0), successor_samples(100, 1)
    config = dict(epochs=4, lr=3e-3, progress=False, batch_size=32, patience=0, lr_step=2)

    straight = Trainer(small_model(), TrainConfig(**config), checkpoint_dir=tmp_path / "a")
    straight.fit(train, valid)

    first = Trainer(small_model(), TrainConfig(**{**config, "epochs": 2}),
                    checkpoint_dir=tmp_path / "b")
    first.fit(train, valid)
    torch.manual_seed(12345)  # whatever happens between the runs must not matter
    resumed = Trainer(small_model(seed=7), TrainConfig(**config), checkpoint_dir=tmp_path / "b")
    resumed.resume(tmp_path / "b" / "last.pt")
    resumed.fit(train, valid)

    assert resumed.state.epoch == straight.state.epoch == 4
    for (name, a), (_, b) in zip(straight.model.state_dict().items(),
                                 resumed.model.state_dict().items()):
        assert torch.equal(a, b), name
    assert [h["train_loss"] for h in resumed.state.history] == [
        h["train_loss"] for h in straight.state.history
    ]


def test_early_stopping(tmp_path):
    train, valid = successor_samples(200, 0), successor_samples(50, 1)
    trainer = Trainer(small_model(), TrainConfig(epochs=30, lr=1e-9, patience=2, progress=False))
    trainer.fit(train, valid)
    assert trainer.state.epoch < 30
    assert trainer.state.bad_epochs == 2


def test_checkpoint_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    path = save_checkpoint(tmp_path / "ok.pt", {"hparams": small_model().hparams,
                                                "model": small_model().state_dict()})
    data = path.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated.pt cannot be read"):
        load_checkpoint(truncated)
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, other)
    with pytest.raises(ValueError, match="is not a gcsan_pyg checkpoint"):
        load_checkpoint(other)
    wrong = save_checkpoint(tmp_path / "wrong.pt", {"hparams": {"num_items": 5},
                                                    "model": small_model().state_dict()})
    with pytest.raises(ValueError, match="does not hold a GCSAN model"):
        load_model(wrong)


def test_resume_rejects_another_model(tmp_path):
    train = successor_samples(50, 0)
    Trainer(small_model(), TrainConfig(epochs=1, progress=False), tmp_path).fit(train)
    other = GCSAN(NUM_ITEMS, hidden_channels=8)
    with pytest.raises(ValueError, match="--hidden-channels 16 in the checkpoint, 8 now"):
        Trainer(other, TrainConfig(progress=False)).resume(tmp_path / "last.pt")


def test_failed_save_keeps_the_previous_checkpoint(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", {"hparams": {}, "model": {"w": torch.ones(2)}})

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        save_checkpoint(path, {"hparams": {}, "model": {}, "bad": Unpicklable()})
    assert torch.equal(load_checkpoint(path)["model"]["w"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_a_kill_between_the_two_checkpoint_writes_leaves_them_paired(tmp_path, monkeypatch):
    # Issue 19.11: last.pt used to be written before best.pt, so a kill between
    # the two left a last.pt naming a best epoch that best.pt does not hold.
    import gcsan_pyg.training.resume as resume_module

    train, valid = successor_samples(600, 0), successor_samples(100, 1)
    config = dict(lr=5e-3, progress=False, batch_size=50, patience=0)
    Trainer(small_model(), TrainConfig(epochs=1, **config), tmp_path).fit(train, valid)
    writes = []
    real_save = resume_module.save_checkpoint

    def killed_at_the_second_write(path, payload):
        writes.append(path.name)
        if len(writes) == 2:
            raise OSError("killed")
        return real_save(path, payload)

    monkeypatch.setattr(resume_module, "save_checkpoint", killed_at_the_second_write)
    second = Trainer(small_model(), TrainConfig(epochs=2, **config), tmp_path)
    second.resume(tmp_path / "last.pt")
    with pytest.raises(OSError, match="killed"):
        second.fit(train, valid)
    assert second.state.best_epoch == 2  # epoch 2 improved, so both files were due
    last, best = (load_checkpoint(tmp_path / name)["state"] for name in ("last.pt", "best.pt"))
    assert last["best_epoch"] <= best["best_epoch"]

    monkeypatch.setattr(resume_module, "save_checkpoint", real_save)
    resumed = Trainer(small_model(), TrainConfig(epochs=2, **config), tmp_path)
    resumed.resume(tmp_path / "last.pt")
    resumed.fit(train, valid)
    best = load_checkpoint(tmp_path / "best.pt")
    assert best["state"]["best_epoch"] == resumed.state.best_epoch == 2
    for name, value in resumed.model.state_dict().items():
        assert torch.equal(best["model"][name], value), name


def test_sampled_softmax_state_lives_in_the_trainer_checkpoint(tmp_path):
    # Issue 19.7: the loss's state is the trainer's, in last.pt; best.pt holds weights only.
    train = successor_samples(200, 0)
    model = GCSAN(NUM_ITEMS, hidden_channels=16, inner_channels=32, loss_type="sampled",
                  num_negatives=8)
    trainer = Trainer(model, TrainConfig(epochs=1, progress=False, batch_size=50), tmp_path)
    trainer.fit(train)
    last, best = (load_checkpoint(tmp_path / name) for name in ("last.pt", "best.pt"))
    counts = torch.bincount(train.target, minlength=NUM_ITEMS).double()
    assert torch.equal(last["loss"]["sampler.counts"], counts)
    assert "loss" not in best and not any("sampled" in key for key in best["model"])
    ce_model = GCSAN(NUM_ITEMS, hidden_channels=16, inner_channels=32)
    ce_model.load_state_dict(best["model"])
    resumed = Trainer(GCSAN(**model.hparams), TrainConfig(epochs=2, progress=False,
                                                          batch_size=50), tmp_path)
    resumed.resume(tmp_path / "last.pt")
    with pytest.raises(ValueError, match="not those of the resumed run"):
        resumed.fit(successor_samples(200, 5))
