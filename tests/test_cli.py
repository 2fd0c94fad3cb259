"""The command line, end to end, on real data."""
import json
import math
import subprocess
import sys

import pytest
import torch

from gcsan_pyg.cli import main


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def trained(tmp_path_factory, shared_data):
    """One short training run on the processed Diginetica sample."""
    out = tmp_path_factory.mktemp("run")
    data = shared_data / "sample_diginetica" / "srgnn_processed"
    code = main([
        "train", str(data), "--out", str(out), "--root", str(out / "cache"), "--epochs", "2",
        "--hidden-channels", "32", "--quiet", "--seed", "3",
    ])
    assert code == 0
    return out, data


def test_train_writes_checkpoints_and_results(trained):
    out, _ = trained
    assert (out / "best.pt").is_file() and (out / "last.pt").is_file()
    results = json.loads((out / "results.json").read_text())
    assert len(results["history"]) == 2
    assert results["hparams"]["hidden_channels"] == 32
    assert results["test"]["Hit@20"] > results["popularity_test"]["Hit@20"]


def test_evaluate_reproduces_the_training_test_metrics(trained, capsys):
    out, data = trained
    code, stdout, _ = run(capsys, "evaluate", out / "best.pt", data, "--root", out / "cache",
                          "--quiet")
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    hit20 = float(stdout.splitlines()[1].split()[5])
    assert hit20 == pytest.approx(results["test"]["Hit@20"], abs=0.01)


def test_recommend_top_k(trained, capsys):
    out, _ = trained
    code, stdout, _ = run(capsys, "recommend", out / "best.pt", "--session", "12,7,7,31",
                          "-k", "5", "--json")
    assert code == 0
    rows = json.loads(stdout)
    assert [r["rank"] for r in rows] == [1, 2, 3, 4, 5]
    scores = [r["score"] for r in rows]
    assert scores == sorted(scores, reverse=True)
    assert all(1 <= r["item"] <= 309 for r in rows)
    code, stdout, _ = run(capsys, "recommend", out / "best.pt", "--session", "12,7",
                          "-k", "307", "--exclude-seen", "--json")
    items = [r["item"] for r in json.loads(stdout)]
    assert sorted(items) == [i for i in range(1, 310) if i not in (7, 12)]


@pytest.mark.parametrize(
    "session,message",
    [("12,x", "integer item ids"), ("5,100000", r"outside \[1, 309\]"), (",", "is empty")],
)
def test_recommend_rejects_bad_sessions(trained, capsys, session, message):
    out, _ = trained
    with pytest.raises(SystemExit, match=message):
        main(["recommend", str(out / "best.pt"), "--session", session])


def test_config_file_and_command_line_precedence(tmp_path, shared_data, capsys):
    data = shared_data / "sample_diginetica" / "srgnn_processed"
    config = tmp_path / "run.toml"
    config.write_text('epochs = 1\nhidden_channels = 16\nnum_heads = 2\nlr = 0.002\n')
    code, _, _ = run(capsys, "train", data, "--config", config, "--hidden-channels", "8",
                     "--out", tmp_path / "out", "--root", tmp_path / "cache", "--quiet")
    assert code == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["hparams"]["hidden_channels"] == 8  # the command line wins
    assert results["hparams"]["num_heads"] == 2
    assert results["train_config"]["lr"] == 0.002
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: 1\nhiden_channels: 3\n")
    with pytest.raises(SystemExit, match=r"unknown options \['hiden_channels'\]"):
        main(["train", str(data), "--config", str(bad)])


def test_info(shared_data, tmp_path, capsys):
    data = shared_data / "sample_diginetica" / "srgnn_processed"
    code, stdout, _ = run(capsys, "info", data, "--root", tmp_path)
    assert code == 0
    stats = json.loads(stdout)
    assert stats["num_items"] == 310
    assert stats["train"]["samples"] + stats["valid"]["samples"] == 1205


def test_bad_checkpoint_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    code, _, err = run(capsys, "recommend", bad, "--session", "1")
    assert code == 2
    assert "bad.pt cannot be read" in err


def test_recbole_import_then_recommend_gives_recboles_scores(shared_fixtures, tmp_path, capsys):
    folder = shared_fixtures / "recbole"
    expected = json.loads((folder / "GCSAN-ml100k-1layer.expected.json").read_text())
    out = tmp_path / "imported.pt"
    code, _, _ = run(capsys, "import-recbole", folder / "GCSAN-ml100k-1layer.pth", out)
    assert code == 0
    for session, items, scores in zip(
        expected["sessions"], expected["top20_items"], expected["top20_scores"]
    ):
        code, stdout, _ = run(capsys, "recommend", out, "--session",
                              ",".join(map(str, session)), "-k", "20", "--json")
        assert code == 0
        rows = json.loads(stdout)
        assert [r["item"] for r in rows] == items
        assert [r["score"] for r in rows] == pytest.approx(scores, abs=1e-4)


def test_module_entry_point():
    result = subprocess.run([sys.executable, "-m", "gcsan_pyg", "--help"],
                            capture_output=True, text=True, check=True)
    for command in ("train", "evaluate", "recommend", "info", "import-recbole"):
        assert command in result.stdout


def test_train_with_no_data_uses_the_synthetic_set_and_beats_popularity(tmp_path, capsys):
    code, stdout, _ = run(capsys, "train", "--out", tmp_path / "out", "--root", tmp_path / "c",
                          "--quiet")
    assert code == 0
    assert "popularity (test)" in stdout and "GC-SAN (test)" in stdout
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["data"] == "synthetic"
    assert results["train_config"]["epochs"] == 12
    assert results["test"]["Hit@20"] > 2 * results["popularity_test"]["Hit@20"]
    assert results["test"]["MRR@20"] > 3 * results["popularity_test"]["MRR@20"]


# RecBole round trips: RecBole's ids, RecBole's samples, RecBole's metrics --------------

# A .inter file out of time order, with ties (see test_datasets.py for the
# numbering this gives, by RecBole's rules): item ids B=1 C=2 A=3 D=4 E=5 F=6,
# then G01..G20 = 7..26; u2 clicks F B D A, u1 D A B C F, u9 G01 .. G20.
TOY_INTER = (
    "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    "u2\tB\t1\t1000000010\n"
    "u1\tC\t1\t5\n"
    "u1\tA\t1\t3\n"
    "u2\tD\t1\t1000000000\n"
    "u1\tB\t1\t3\n"
    "u3\tE\t1\t7\n"
    "u1\tD\t1\t1\n"
    "u2\tA\t1\t1000000064\n"
    "u1\tF\t1\t9\n"
    "u2\tF\t1\t999999000\n"
) + "".join(f"u9\tG{j:02d}\t1\t{100 + j}\n" for j in range(1, 21))
# The test samples with MAX_ITEM_LIST_LENGTH = 2, derived by hand: (prefix, target).
TOY_TEST = [([1, 4], 3), ([1, 2], 6), ([24, 25], 26)]
TOY_TEST_FULL = [([6, 1, 4], 3), ([4, 3, 1, 2], 6), (list(range(7, 26)), 26)]


def _toy_model():
    from gcsan_pyg.nn import GCSAN

    torch.manual_seed(5)
    # A wide initialisation: scores far apart, so no near-ties decide a rank.
    return GCSAN(27, hidden_channels=8, num_heads=2, inner_channels=16, step=2, weight=0.7,
                 initializer_range=0.5).eval()


def _expected_metrics(model, samples):
    from gcsan_pyg.data import build_session_batch

    longest = max(len(p) for p, _ in samples)
    item_seq = torch.zeros(len(samples), longest, dtype=torch.long)
    for row, (prefix, _) in enumerate(samples):
        item_seq[row, : len(prefix)] = torch.tensor(prefix)
    lengths = torch.tensor([len(p) for p, _ in samples])
    with torch.no_grad():
        scores = model.full_sort_scores(build_session_batch(item_seq, lengths))
    out = {}
    for k in (10, 20):
        hit = mrr = ndcg = 0.0
        for row, (_, target) in enumerate(samples):
            rank = 1 + int((scores[row, 1:] > scores[row, target]).sum())
            if rank <= k:
                hit, mrr, ndcg = hit + 1, mrr + 1 / rank, ndcg + 1 / math.log2(rank + 1)
        for name, value in (("Hit", hit), ("MRR", mrr), ("NDCG", ndcg)):
            out[f"{name}@{k}"] = 100 * value / len(samples)
    return out


def _printed_metrics(stdout):
    lines = stdout.strip().splitlines()
    names, values = lines[-2].split(), lines[-1].split()[2:]
    return dict(zip(names, map(float, values)))


@pytest.fixture
def toy_recbole(tmp_path):
    from gcsan_pyg.interop import export_recbole_checkpoint

    inter = tmp_path / "toy.inter"
    inter.write_text(TOY_INTER)
    pth = export_recbole_checkpoint(_toy_model(), tmp_path / "toy.pth", max_seq_length=2,
                                    dataset="toy")
    return inter, pth


def test_recbole_import_then_evaluate_gives_recboles_metrics(toy_recbole, tmp_path, capsys):
    inter, pth = toy_recbole
    model = _toy_model()
    expected = _expected_metrics(model, TOY_TEST)
    # The file exercises the truncation: whole histories would rank otherwise.
    assert expected != _expected_metrics(model, TOY_TEST_FULL)
    out = tmp_path / "m.pt"
    assert run(capsys, "import-recbole", pth, out)[0] == 0
    code, stdout, _ = run(capsys, "evaluate", out, inter, "--root", tmp_path / "cache", "--quiet")
    assert code == 0
    printed = _printed_metrics(stdout)
    assert printed.keys() == expected.keys()
    for name, value in expected.items():
        assert printed[name] == pytest.approx(value, abs=0.006), name


# A checkpoint remembers its item ids -------------------------------------------------


def _click_csv(path, raw_items):
    """40 sessions of 4 clicks over :obj:`raw_items`, every item in training."""
    rows, t = ["session_id,item_id,timestamp"], 0
    for session in range(40):
        for click in range(4):
            t += 1
            rows.append(f"s{session},{raw_items[(3 * session + 5 * click) % len(raw_items)]},{t}")
    path.write_text("\n".join(rows) + "\n")
    return path


RAW_ITEMS = [str(1000 + 37 * j) for j in range(25)]  # non-consecutive raw ids


@pytest.fixture(scope="module")
def trained_on_raw_ids(tmp_path_factory):
    folder = tmp_path_factory.mktemp("raw")
    csv = _click_csv(folder / "clicks.csv", RAW_ITEMS)
    code = main(["train", str(csv), "--epochs", "1", "--hidden-channels", "8", "--num-layers",
                 "1", "--quiet", "--root", str(folder / "cache"), "--out", str(folder / "run")])
    assert code == 0
    return folder / "run" / "best.pt", csv


def test_recommend_speaks_the_raw_ids(trained_on_raw_ids, capsys):
    checkpoint, _ = trained_on_raw_ids
    code, stdout, _ = run(capsys, "recommend", checkpoint, "--session", "1037,1074,1000",
                          "-k", "5", "--json")
    assert code == 0
    items = [r["item"] for r in json.loads(stdout)]
    assert len(items) == 5 and set(items) <= set(RAW_ITEMS)
    with pytest.raises(SystemExit, match=r"\['1001'\] are not in the model's catalogue"):
        main(["recommend", str(checkpoint), "--session", "1037,1001"])


def test_evaluate_refuses_data_whose_ids_differ(trained_on_raw_ids, tmp_path, capsys):
    checkpoint, csv = trained_on_raw_ids
    code, _, _ = run(capsys, "evaluate", checkpoint, csv, "--root", tmp_path, "--quiet")
    assert code == 0
    # As many items, other raw ids: the counts agree, the maps do not.
    other = _click_csv(tmp_path / "other.csv", [str(5000 + 37 * j) for j in range(25)])
    with pytest.raises(SystemExit, match=r"item ids.*differ.*id 1: '1000' in the checkpoint, "
                                         r"'5000' in"):
        main(["evaluate", str(checkpoint), str(other), "--root", str(tmp_path), "--quiet"])
    # The same raw ids, numbered in another order.
    shuffled = _click_csv(tmp_path / "shuffled.csv", RAW_ITEMS[1:] + RAW_ITEMS[:1])
    with pytest.raises(SystemExit, match=r"item ids.*differ"):
        main(["evaluate", str(checkpoint), str(shuffled), "--root", str(tmp_path), "--quiet"])


def test_recommend_exclude_seen_never_returns_seen_items(trained_on_raw_ids, capsys):
    checkpoint, _ = trained_on_raw_ids
    seen = ["1037", "1074", "1000"]
    for k in (24, 30):  # the catalogue has 25 items, 22 of them unseen
        code, stdout, err = run(capsys, "recommend", checkpoint, "--session", ",".join(seen),
                                "-k", k, "--exclude-seen", "--json")
        assert code == 0
        items = [r["item"] for r in json.loads(stdout)]
        assert sorted(items) == sorted(set(RAW_ITEMS) - set(seen))
        assert "only 22 items" in err


TOY_TOKENS = ["[PAD]", "B", "C", "A", "D", "E", "F"] + [f"G{j:02d}" for j in range(1, 21)]


def test_recbole_import_with_its_inter_file_speaks_raw_ids(toy_recbole, tmp_path, capsys):
    inter, pth = toy_recbole
    out = tmp_path / "m.pt"
    assert run(capsys, "import-recbole", pth, out, "--inter", inter)[0] == 0
    code, stdout, _ = run(capsys, "recommend", out, "--session", "B,D", "-k", "3", "--json")
    assert code == 0
    model = _toy_model()
    top = model.recommend(model.build_batch(torch.tensor([[1, 4]]), torch.tensor([2])), k=3)
    assert [r["item"] for r in json.loads(stdout)] == [TOY_TOKENS[i] for i in top[0].tolist()]
    code, stdout, _ = run(capsys, "evaluate", out, inter, "--root", tmp_path / "c", "--quiet")
    assert code == 0
    assert _printed_metrics(stdout)["MRR@20"] == pytest.approx(
        _expected_metrics(model, TOY_TEST)["MRR@20"], abs=0.006)
    # Rows in another order number the items otherwise: refused.
    header, *rows = TOY_INTER.splitlines(keepends=True)
    swapped = tmp_path / "swapped.inter"
    swapped.write_text(header + rows[1] + rows[0] + "".join(rows[2:]))
    with pytest.raises(SystemExit, match=r"item ids.*differ.*id 1: 'B' in the checkpoint, 'C'"):
        main(["evaluate", str(out), str(swapped), "--root", str(tmp_path / "c"), "--quiet"])
    short = tmp_path / "short.inter"
    short.write_text("".join([header, *rows[:10]]))
    with pytest.raises(SystemExit, match="short.inter has 6 items, the RecBole checkpoint 26"):
        main(["import-recbole", str(pth), str(tmp_path / "x.pt"), "--inter", str(short)])


def test_recbole_import_warns_of_settings_it_does_not_reproduce(tmp_path, capsys):
    from gcsan_pyg.interop import export_recbole_checkpoint

    pth = export_recbole_checkpoint(
        _toy_model(), tmp_path / "rs.pth",
        extra_config={"eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "order": "TO"}})
    code, _, err = run(capsys, "import-recbole", pth, tmp_path / "m.pt")
    assert code == 0
    assert "warning:" in err and "eval_args split = {'RS': [0.8, 0.1, 0.1]}" in err
