"""The command line, end to end, on real data."""
import json
import subprocess
import sys

import pytest

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
