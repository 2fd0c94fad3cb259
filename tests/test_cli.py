"""The command line, end to end, on real, raw-id and synthetic data."""
import json
import logging
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_readers import RECBOLE_INTER  # a .inter file out of time order, with ties

from gcsan_pyg import GCSAN
from gcsan_pyg.cli import main
from gcsan_pyg.cli.main import COMMANDS
from gcsan_pyg.training import load_checkpoint

REPO = Path(__file__).resolve().parents[1]
# One thread in subprocesses too: on shared cores, spinning torch threads slow
# a small run down many times over.
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_one_line_error(code, err, message=""):
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err


@pytest.fixture(scope="module")
def digi(shared_data):
    return shared_data / "sample_diginetica" / "srgnn_processed"


@pytest.fixture(scope="module")
def trained(tmp_path_factory, digi):
    """One short training run on the processed Diginetica sample."""
    out = tmp_path_factory.mktemp("run")
    code = main(["train", str(digi), "--out", str(out), "--root", str(out / "cache"),
                 "--epochs", "2", "--hidden-channels", "32", "--quiet", "--seed", "3"])
    assert code == 0
    return out, digi


def test_train_writes_checkpoints_and_results(trained):
    out, data = trained
    assert (out / "best.pt").is_file() and (out / "last.pt").is_file()
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == [
        "best.pt", "last.pt", "results.json"]  # no temporary file left
    results = json.loads((out / "results.json").read_text())
    assert len(results["history"]) == 2
    assert results["hparams"]["hidden_channels"] == 32
    assert results["test"]["Hit@20"] > results["popularity_test"]["Hit@20"]
    assert results["command"].startswith(f"gcsan-pyg train {data} --out")
    assert set(results["versions"]) == {"python", "torch", "torch_geometric", "numpy",
                                        "gcsan_pyg"}
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                          text=True)
    commit = head.stdout.strip() if head.returncode == 0 else None
    assert results["git"]["commit"] == commit
    assert isinstance(results["git"]["dirty"], bool) == (commit is not None)
    checkpoint = load_checkpoint(out / "best.pt")
    assert checkpoint["data"] == {"source": str(data), "max_length": None}
    assert checkpoint["item_ids"] is None  # SR-GNN files hold numbered ids


def test_evaluate_reproduces_the_training_test_metrics(trained, capsys):
    out, data = trained
    results = json.loads((out / "results.json").read_text())
    code, stdout, _ = run(capsys, "evaluate", out / "best.pt", data, "--root", out / "cache",
                          "--quiet", "--threads", "1")
    assert code == 0
    assert float(stdout.splitlines()[1].split()[5]) == pytest.approx(
        results["test"]["Hit@20"], abs=0.01)
    code, stdout, _ = run(capsys, "evaluate", out / "best.pt", data, "--root", out / "cache",
                          "--json")
    report = json.loads(stdout)
    assert report["split"] == "test" and report["samples"] == results["samples"]["test"]
    assert report["metrics"] == pytest.approx(results["test"], abs=1e-6)


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
    # The table: a header row, then the same ranking and scores.
    code, table, _ = run(capsys, "recommend", out / "best.pt", "--session", "12,7,7,31",
                         "-k", "5", "--threads", "1")
    header, *lines = table.splitlines()
    assert header.split()[:3] == ["rank", "item", "score"] and "not a probability" in header
    assert [int(line.split()[1]) for line in lines] == [r["item"] for r in rows]
    assert [float(line.split()[2]) for line in lines] == pytest.approx(scores, abs=1e-4)


@pytest.mark.parametrize("session,message", [
    ("12,x", "integer item ids"), ("5,100000", "outside [1, 309]"), (",", "is empty")])
def test_recommend_rejects_bad_sessions(trained, capsys, session, message):
    out, _ = trained
    code, _, err = run(capsys, "recommend", out / "best.pt", "--session", session)
    assert_one_line_error(code, err, message)


def test_config_file_and_command_line_precedence(tmp_path, digi, capsys):
    config = tmp_path / "run.toml"
    config.write_text('epochs = 1\nhidden_channels = 16\nnum_heads = 2\nlr = 0.002\n'
                      'ks = [5, 20]\n')
    code, _, _ = run(capsys, "train", digi, "--config", config, "--hidden-channels", "8",
                     "--out", tmp_path / "out", "--root", tmp_path / "cache", "--quiet")
    assert code == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["hparams"]["hidden_channels"] == 8  # the command line wins
    assert results["hparams"]["num_heads"] == 2
    assert results["train_config"]["lr"] == 0.002
    assert list(results["test"]) == ["Hit@5", "MRR@5", "NDCG@5", "Hit@20", "MRR@20", "NDCG@20"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: 1\nhiden_channels: 3\n")
    code, _, err = run(capsys, "train", digi, "--config", bad)
    assert_one_line_error(code, err, f"config file {bad} has unknown options ['hiden_channels']")


def test_config_file_takes_recbole_names(tmp_path, raw_csv, capsys):
    config = tmp_path / "GCSAN.yaml"  # as RecBole writes them: 1e-4 has no dot
    config.write_text(
        "hidden_size: 16\ninner_size: 32\nn_layers: 1\nn_heads: 2\nstep: 2\nweight: 0.7\n"
        "hidden_dropout_prob: 0.1\nattn_dropout_prob: 0.3\nhidden_act: relu\n"
        "layer_norm_eps: 1e-10\ninitializer_range: 0.05\nreg_weight: 1e-4\nloss_type: BPR\n"
        "learning_rate: 2e-3\ntrain_batch_size: 50\nepochs: 1\nstopping_step: 2\n"
        "MAX_ITEM_LIST_LENGTH: 3\n")
    out = tmp_path / "out"
    code, _, _ = run(capsys, "train", raw_csv, "--config", config, "--num-steps", "3",
                     "--out", out, "--root", tmp_path / "cache", "--quiet")
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    expected = {"hidden_channels": 16, "inner_channels": 32, "num_layers": 1, "num_heads": 2,
                "num_steps": 3, "attention_weight": 0.7, "hidden_dropout": 0.1,
                "attn_dropout": 0.3, "activation": "relu", "layer_norm_eps": 1e-10,
                "initializer_range": 0.05, "reg_weight": 1e-4, "loss_type": "BPR"}
    assert {k: results["hparams"][k] for k in expected} == expected
    assert {k: results["train_config"][k] for k in ("lr", "batch_size", "patience",
                                                    "max_length")} == {
        "lr": 2e-3, "batch_size": 50, "patience": 2, "max_length": 3}
    assert load_checkpoint(out / "best.pt")["data"]["max_length"] == 3
    for text, keys in (("hidden_size: 16\nhidden_channels: 8\n", "'hidden_size' and "
                        "'hidden_channels'"), ("step: 2\nnum-steps: 1\n", "'step' and "
                                               "'num-steps'")):
        config.write_text(text)
        code, _, err = run(capsys, "train", raw_csv, "--config", config)
        assert_one_line_error(code, err, f"config file {config} gives an option twice: ")
        assert keys in err


def test_info(digi, tmp_path, capsys):
    code, stdout, _ = run(capsys, "info", digi, "--root", tmp_path, "--json")
    assert code == 0
    stats = json.loads(stdout)
    assert "split" not in stats and stats["num_items"] == 310
    assert stats["train"]["samples"] + stats["valid"]["samples"] == 1205
    code, stdout, _ = run(capsys, "info", digi, "--root", tmp_path, "--json",
                          "--min-prefix-length", "3", "--valid-fraction", "0.5")
    longer = json.loads(stdout)
    assert longer["test"] == stats["test"]  # test samples stay as given
    assert longer["valid"]["sessions"] > stats["valid"]["sessions"]
    assert longer["train"]["samples"] + longer["valid"]["samples"] < 1205
    code, stdout, _ = run(capsys, "info", digi, "--root", tmp_path)
    assert "309 items" in stdout.splitlines()[0]
    assert [line.split()[0] for line in stdout.splitlines()[2:]] == ["train", "valid", "test"]


def test_info_into_a_closed_pipe_exits_quietly(raw_csv, tmp_path):
    """`gcsan-pyg info DATA | head`: the reader is gone before the output."""
    env = {k: v for k, v in ENV.items() if k != "PYTHONUNBUFFERED"}  # stdout as usual
    process = subprocess.Popen(
        [sys.executable, "-m", "gcsan_pyg", "info", str(raw_csv), "--root", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    process.stdout.close()
    err = process.stderr.read().decode()
    assert process.wait(timeout=120) == 141 and err == ""


def test_bad_checkpoint_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    code, _, err = run(capsys, "recommend", bad, "--session", "1")
    assert_one_line_error(code, err, "bad.pt cannot be read")


def test_module_entry_point():
    result = subprocess.run([sys.executable, "-m", "gcsan_pyg", "--help"],
                            capture_output=True, text=True, check=True, env=ENV)
    for command in COMMANDS:
        assert command in result.stdout


# Command-line conventions ------------------------------------------------------------


def _help_entries(text):
    """The entries of an argparse help text: the first line of an argument
    and its indented continuation, whitespace collapsed."""
    entries = []
    for line in text.splitlines():
        if line.startswith("  ") and not line.startswith("   "):
            entries.append(line)
        elif line.startswith("   ") and entries:
            entries[-1] += line
    return [" ".join(entry.split()) for entry in entries]


@pytest.mark.parametrize("command", list(COMMANDS))
def test_help_shows_every_default_and_explains_every_option(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    entries = _help_entries(text.split("options:")[1])
    assert len(entries) >= 2 and "None" not in text
    for entry in entries:
        if not entry.startswith(("-h,", "--session")):  # --session is required
            assert "(default: " in entry, entry
    for entry in _help_entries(text.split("options:")[0].split("positional arguments:")[1]):
        assert len(entry.split()) > 3, entry  # the name, then its help
    flags = {entry.split()[0] for entry in entries}
    assert ("--json" in flags) == (command in ("evaluate", "recommend", "info"))
    assert ("--threads" in flags) == (command in ("train", "evaluate", "recommend"))
    if command == "train":
        assert "(default: 0.6)" in text and "(default: 10; 12 on synthetic data)" in text
        assert "training samples (session prefixes) per step" in " ".join(text.split())
        assert "{CE,BPR,sampled}" in text and "{uniform,popularity}" in text
    if command == "recommend":
        assert "dot product" in text and "not a probability" in text


@pytest.mark.parametrize("option,message", [
    (["--loss-type", "XYZ"], "invalid choice: 'XYZ'"),
    (["--negative-sampler", "zipf"], "invalid choice: 'zipf'"),
    (["--activation", "elu"], "invalid choice: 'elu'"),
    (["--metric", "MRR@5"], "'metric' must look like 'MRR@20' with a cut-off among ks"),
    (["--attention-weight", "1.5"], "'attention_weight' must lie in [0, 1], got 1.5"),
    (["--config", "{config}"], "loss_type = 'XYZ' is not one of ['CE', 'BPR', 'sampled']")])
def test_a_bad_value_fails_before_any_data_loads(option, message, digi, tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text("loss_type: XYZ\n")
    argv = ["train", digi, "--root", tmp_path / "cache",
            *(o.format(config=config) for o in option)]
    code, _, err = run(capsys, *argv)
    assert_one_line_error(code, err, message)
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("argv,message", [
    ([], "the following arguments are required: command"),
    (["train", "--no-such-option"], "unrecognized arguments: --no-such-option"),
    (["train", "--quiet", "--progress"], "not allowed with argument"),
    (["recommend", "x.pt"], "the following arguments are required: --session"),
    (["recommend", "x.pt", "--session", "1", "-k", "0"], "expected a positive integer"),
    (["evaluate", "x.pt", "{digi}", "--split", "dev"], "invalid choice: 'dev'"),
    (["train", "{tmp}/missing"], "no such file or folder"),
    (["train", "{digi}/test.tsv"], "give the folder"),
    (["train", "{digi}", "--num-items", "50"], "only synthetic data takes --num-items, not"),
    (["train", "{tmp}/toy.inter", "--valid-fraction", "0.2"], "--valid-fraction does not "
                                                               "apply"),
])
def test_usage_and_input_errors_are_one_line_and_exit_2(argv, message, digi, tmp_path, capsys):
    (tmp_path / "toy.inter").write_text(TOY_INTER)
    argv = [a.format(digi=digi, tmp=tmp_path) for a in argv]
    if argv and argv[0] == "train":
        argv += ["--root", str(tmp_path / "cache")]
    code, _, err = run(capsys, *argv)
    assert_one_line_error(code, err, message)
    assert not (tmp_path / "cache").exists()


def test_progress_bars_stay_off_a_log(raw_csv, tmp_path, capsys, caplog):
    caplog.set_level(logging.INFO, logger="gcsan_pyg")
    code, _, err = run(capsys, "train", raw_csv, "--epochs", "2", "--hidden-channels", "8",
                       "--root", tmp_path / "cache", "--out", tmp_path / "out")
    assert code == 0
    assert "\r" not in err  # stderr is no terminal here: no bars
    epochs = [r.getMessage().split("|")[0].split() for r in caplog.records
              if r.getMessage().startswith("epoch")]
    assert epochs == [["epoch", "1"], ["epoch", "2"]]  # one line per epoch stays
    # Asked for (by a program that watches them), the bars are drawn anyway.
    code, _, err = run(capsys, "train", raw_csv, "--epochs", "1", "--hidden-channels", "8",
                       "--root", tmp_path / "cache", "--out", tmp_path / "out", "--progress")
    assert code == 0 and "\r" in err


# A checkpoint remembers its item ids -------------------------------------------------


def test_results_record_the_code_the_run_started_with(raw_csv, tmp_path, monkeypatch,
                                                     capsys):
    """A checkout during a long run must not relabel it: the git state is
    read before training, not when results.json is written."""
    import gcsan_pyg.cli.train as train_command

    state = {"commit": "before", "dirty": False}
    monkeypatch.setattr(train_command, "git_state", lambda: dict(state))
    fit = train_command.Trainer.fit

    def fit_then_check_out(self, *args, **kwargs):
        result = fit(self, *args, **kwargs)
        state["commit"] = "checked out during the run"
        return result

    monkeypatch.setattr(train_command.Trainer, "fit", fit_then_check_out)
    code, _, _ = run(capsys, "train", raw_csv, "--epochs", "1", "--hidden-channels", "8",
                     "--quiet", "--root", tmp_path / "cache", "--out", tmp_path / "run")
    assert code == 0 and state["commit"] == "checked out during the run"
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["git"] == {"commit": "before", "dirty": False}


def test_git_state_counts_code_not_benchmark_results(tmp_path):
    """A run is recorded as dirty when tracked code differs from the commit,
    not when only a benchmark result file does; outside git, both unknown."""
    from gcsan_pyg.cli.provenance import git_state

    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    (repo / "benchmarks" / "results").mkdir(parents=True)
    (repo / "pkg" / "code.py").write_text("x = 1\n")
    (repo / "benchmarks" / "results" / "run.json").write_text("{}\n")

    def git(*args):
        return subprocess.run(["git", "-c", "user.email=ci@example.org", "-c", "user.name=ci",
                               *args], cwd=repo, check=True, capture_output=True,
                              text=True).stdout.strip()

    try:
        git("init", "-q")
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("git is not usable here")
    git("add", ".")
    git("commit", "-qm", "start")
    assert git_state(repo / "pkg") == {"commit": git("rev-parse", "HEAD"), "dirty": False}
    (repo / "benchmarks" / "results" / "run.json").write_text('{"hit": 1}\n')
    assert git_state(repo / "pkg")["dirty"] is False
    (repo / "pkg" / "code.py").write_text("x = 2\n")
    assert git_state(repo / "pkg")["dirty"] is True
    (tmp_path / "plain").mkdir()
    assert git_state(tmp_path / "plain") == {"commit": None, "dirty": None}


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
def raw_csv(tmp_path_factory):
    return _click_csv(tmp_path_factory.mktemp("csv") / "clicks.csv", RAW_ITEMS)


@pytest.fixture(scope="module")
def trained_on_raw_ids(tmp_path_factory, raw_csv):
    folder = tmp_path_factory.mktemp("raw")
    code = main(["train", str(raw_csv), "--epochs", "1", "--hidden-channels", "8",
                 "--num-layers", "1", "--quiet", "--root", str(folder / "cache"), "--out",
                 str(folder / "run")])
    assert code == 0
    return folder / "run", raw_csv


def test_recommend_speaks_the_raw_ids(trained_on_raw_ids, capsys):
    run_dir, _ = trained_on_raw_ids
    code, stdout, _ = run(capsys, "recommend", run_dir / "best.pt", "--session",
                          "1037,1074,1000", "-k", "5", "--json")
    assert code == 0
    items = [r["item"] for r in json.loads(stdout)]
    assert len(items) == 5 and set(items) <= set(RAW_ITEMS)
    code, _, err = run(capsys, "recommend", run_dir / "best.pt", "--session", "1037,1001")
    assert_one_line_error(code, err, "['1001'] are not in the model's catalogue")


def test_recommend_ranks_only_the_candidates(trained_on_raw_ids, tmp_path, capsys):
    checkpoint = trained_on_raw_ids[0] / "best.pt"
    session = ["--session", "1037,1074,1000", "--json"]
    code, stdout, _ = run(capsys, "recommend", checkpoint, *session, "-k", "25")
    ranking = [r["item"] for r in json.loads(stdout)]
    chosen = RAW_ITEMS[::4]  # 7 items, 1000 among them
    lines = tmp_path / "lines.txt"
    lines.write_text("\n".join(chosen) + "\n")
    commas = tmp_path / "commas.txt"
    commas.write_text(",".join(chosen))
    for file in (lines, commas):
        code, stdout, _ = run(capsys, "recommend", checkpoint, *session, "-k", "3",
                              "--candidates", file)
        assert code == 0
        assert [r["item"] for r in json.loads(stdout)] == [i for i in ranking if i in chosen][:3]
    code, stdout, err = run(capsys, "recommend", checkpoint, *session, "-k", "10",
                            "--candidates", lines, "--exclude-seen")
    assert sorted(r["item"] for r in json.loads(stdout)) == sorted(set(chosen) - {"1000"})
    assert "only 6 candidate items not in the session" in err
    lines.write_text("1000\n77\n1001\n")
    code, _, err = run(capsys, "recommend", checkpoint, *session, "--candidates", lines)
    assert_one_line_error(code, err, "items ['77', '1001'] are not in the model's catalogue")
    assert str(lines) in err


def test_evaluate_refuses_data_whose_ids_differ(trained_on_raw_ids, tmp_path, capsys):
    run_dir, csv = trained_on_raw_ids
    code, _, _ = run(capsys, "evaluate", run_dir / "best.pt", csv, "--root", tmp_path, "--quiet")
    assert code == 0
    # As many items, other raw ids: the counts agree, the maps do not.
    other = _click_csv(tmp_path / "other.csv", [str(5000 + 37 * j) for j in range(25)])
    code, _, err = run(capsys, "evaluate", run_dir / "best.pt", other, "--root", tmp_path)
    assert_one_line_error(code, err, "id 1: '1000' in the checkpoint, '5000' in")
    # The same raw ids, numbered in another order.
    shuffled = _click_csv(tmp_path / "shuffled.csv", RAW_ITEMS[1:] + RAW_ITEMS[:1])
    code, _, err = run(capsys, "evaluate", run_dir / "best.pt", shuffled, "--root", tmp_path)
    assert_one_line_error(code, err, "differ from the checkpoint's")


def test_recommend_exclude_seen_never_returns_seen_items(trained_on_raw_ids, capsys):
    checkpoint = trained_on_raw_ids[0] / "best.pt"
    seen = ["1037", "1074", "1000"]
    for k in (24, 30):  # the catalogue has 25 items, 22 of them unseen
        code, stdout, err = run(capsys, "recommend", checkpoint, "--session", ",".join(seen),
                                "-k", k, "--exclude-seen", "--json")
        assert code == 0
        items = [r["item"] for r in json.loads(stdout)]
        assert sorted(items) == sorted(set(RAW_ITEMS) - set(seen))
        assert "only 22 items" in err


def test_model_and_data_options_reach_the_run_and_it_resumes(trained_on_raw_ids, tmp_path,
                                                              capsys, caplog):
    _, csv = trained_on_raw_ids
    plain = json.loads((trained_on_raw_ids[0] / "results.json").read_text())
    argv = ["train", csv, "--hidden-channels", "8", "--num-steps", "2", "--attention-weight",
            "0.3", "--loss-type", "sampled", "--num-negatives", "7", "--negative-sampler",
            "uniform", "--popularity-exponent", "0.5", "--in-batch-negatives",
            "--min-prefix-length", "2", "--max-length", "3", "--root", tmp_path / "cache",
            "--out", tmp_path / "out", "--quiet", "--lr-step", "1", "--patience", "0"]
    assert run(capsys, *argv, "--epochs", "1")[0] == 0
    first = json.loads((tmp_path / "out" / "results.json").read_text())
    assert {k: first["hparams"][k] for k in ("num_steps", "attention_weight", "loss_type",
                                              "num_negatives", "negative_sampler",
                                              "popularity_exponent", "in_batch_negatives")} == {
        "num_steps": 2, "attention_weight": 0.3, "loss_type": "sampled", "num_negatives": 7,
        "negative_sampler": "uniform", "popularity_exponent": 0.5, "in_batch_negatives": True}
    assert first["data_options"] == {"min_prefix_length": 2}
    assert first["samples"]["test"] == plain["samples"]["test"]
    assert first["samples"]["train"] < plain["samples"]["train"]
    checkpoint = load_checkpoint(tmp_path / "out" / "last.pt")
    assert checkpoint["data"] == {"source": str(csv), "min_prefix_length": 2, "max_length": 3}
    assert sorted(checkpoint["item_ids"][1:]) == sorted(RAW_ITEMS)
    # Issue 19.4: a change that alters the data, split, model, optimizer or
    # random streams is refused, naming each option with both values.
    for changed, message in [
        (["--lr", "0.01"], "--lr 0.001 in the checkpoint, 0.01 now"),
        (["--weight-decay", "0", "--seed", "7"], "--weight-decay 1e-05 in the checkpoint, 0.0 "
                                                 "now; --seed 2019 in the checkpoint, 7 now"),
        (["--valid-fraction", "0.3"], "--valid-fraction (default) in the checkpoint, 0.3 now"),
        (["--max-length", "4"], "--max-length 3 in the checkpoint, 4 now"),
        (["--num-negatives", "9"], "--num-negatives 7 in the checkpoint, 9 now"),
    ]:
        edited = [*argv, "--epochs", "2", "--resume"]
        for flag, value in zip(changed[::2], changed[1::2]):
            if flag in edited:
                edited[edited.index(flag) + 1] = value
            else:
                edited += [flag, value]
        code, _, err = run(capsys, *edited)
        assert_one_line_error(code, err, f"cannot resume with changed options: {message}")
    assert load_checkpoint(tmp_path / "out" / "last.pt")["state"]["epoch"] == 1
    caplog.set_level(logging.INFO, logger="gcsan_pyg")
    caplog.clear()
    # What only extends or observes the run may change.
    argv[argv.index("--patience") + 1] = "5"
    assert run(capsys, *argv, "--epochs", "2", "--resume", "--threads", "1", "--ks",
               "5,10,20")[0] == 0
    trained = [r.getMessage().split("|")[0] for r in caplog.records
               if r.getMessage().startswith("epoch")]
    assert trained == ["epoch   2 "]  # epoch 1 came from last.pt
    resumed = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [h["epoch"] for h in resumed["history"]] == [1, 2]
    assert resumed["history"][0]["train_loss"] == first["history"][0]["train_loss"]


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


def test_a_million_item_synthetic_run_end_to_end(tmp_path, digi, capsys):
    """Training (sampled softmax), evaluation and recommendation over 10^6
    items through the command line, in seconds."""
    out, root = tmp_path / "out", tmp_path / "cache"
    code, _, _ = run(capsys, "train", "synthetic", "--num-items", "1000000",
                     "--num-train-sessions", "2000", "--num-test-sessions", "20",
                     "--valid-fraction", "0.02", "--hidden-channels", "8", "--inner-channels",
                     "16", "--epochs", "1", "--loss-type", "sampled", "--num-negatives", "256",
                     "--quiet", "--root", root, "--out", out)
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["hparams"]["num_items"] == 1_000_001
    code, stdout, _ = run(capsys, "recommend", out / "best.pt", "--session", "5,17,999999",
                          "-k", "10")
    header, *rows = stdout.splitlines()
    assert code == 0 and header.split()[:3] == ["rank", "item", "score"] and len(rows) == 10
    assert all(1 <= int(row.split()[1]) <= 1_000_000 for row in rows)
    candidates = tmp_path / "candidates.txt"
    candidates.write_text("\n".join(str(i) for i in range(1, 1_000_001, 9973)))
    code, stdout, _ = run(capsys, "recommend", out / "best.pt", "--session", "5,17",
                          "--candidates", candidates, "-k", "5", "--json")
    assert code == 0 and all((r["item"] - 1) % 9973 == 0 for r in json.loads(stdout))
    # The generator's options travel in the checkpoint: the same test set.
    code, stdout, _ = run(capsys, "evaluate", out / "best.pt", "synthetic", "--root", root,
                          "--json")
    assert json.loads(stdout)["metrics"] == pytest.approx(results["test"], abs=1e-6)
    code, _, err = run(capsys, "evaluate", out / "best.pt", digi, "--root", root)
    assert_one_line_error(code, err, "has 309 items, the model 1000000")


# RecBole round trips: RecBole's ids, RecBole's samples, RecBole's metrics --------------


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


# A .inter file out of time order, with ties (see test_datasets.py for the
# numbering this gives, by RecBole's rules): item ids B=1 C=2 A=3 D=4 E=5 F=6,
# then G01..G20 = 7..26; u2 clicks F B D A, u1 D A B C F, u9 G01 .. G20.
TOY_INTER = RECBOLE_INTER + "".join(f"u9\tG{j:02d}\t1\t{100 + j}\n" for j in range(1, 21))
# The test samples with MAX_ITEM_LIST_LENGTH = 2, derived by hand: (prefix, target).
TOY_TEST = [([1, 4], 3), ([1, 2], 6), ([24, 25], 26)]
TOY_TEST_FULL = [([6, 1, 4], 3), ([4, 3, 1, 2], 6), (list(range(7, 26)), 26)]
TOY_TOKENS = ["[PAD]", "B", "C", "A", "D", "E", "F"] + [f"G{j:02d}" for j in range(1, 21)]


def _toy_model():
    from gcsan_pyg.nn import GCSAN

    torch.manual_seed(5)
    # A wide initialisation: scores far apart, so no near-ties decide a rank.
    return GCSAN(27, hidden_channels=8, num_heads=2, inner_channels=16, num_steps=2,
                 attention_weight=0.7, initializer_range=0.5).eval()


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
    # And back: the export keeps RecBole's truncation.
    back = tmp_path / "back.pth"
    assert run(capsys, "export-recbole", out, back)[0] == 0
    assert run(capsys, "import-recbole", back, tmp_path / "again.pt")[0] == 0
    assert load_checkpoint(tmp_path / "again.pt")["data"]["max_length"] == 2


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
    code, _, err = run(capsys, "evaluate", out, swapped, "--root", tmp_path / "c")
    assert_one_line_error(code, err, "id 1: 'B' in the checkpoint, 'C'")
    short = tmp_path / "short.inter"
    short.write_text("".join([header, *rows[:10]]))
    code, _, err = run(capsys, "import-recbole", pth, tmp_path / "x.pt", "--inter", short)
    last = err.splitlines()[-1] + "\n"  # after the import's warnings
    assert_one_line_error(code, last, "short.inter has 6 items, the RecBole checkpoint 26")


def test_recbole_import_warns_of_settings_it_does_not_reproduce(tmp_path, capsys):
    from gcsan_pyg.interop import export_recbole_checkpoint

    pth = export_recbole_checkpoint(
        _toy_model(), tmp_path / "rs.pth",
        extra_config={"eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "order": "TO"}})
    code, _, err = run(capsys, "import-recbole", pth, tmp_path / "m.pt")
    assert code == 0
    assert "warning:" in err and "eval_args split = {'RS': [0.8, 0.1, 0.1]}" in err


def _srgnn_folder(path, train_lines, test_lines):
    path.mkdir()
    (path / "train_sessions.txt").write_text("".join(f"{line}\n" for line in train_lines))
    (path / "test.tsv").write_text("".join(f"{line}\n" for line in test_lines))
    return path


TRAIN_LINES = [f"{i % 9 + 1},{(i + 1) % 9 + 1},{(i + 2) % 9 + 1}" for i in range(40)]


@pytest.mark.parametrize("case, extra, message", [
    ("empty_test", [], "test.tsv: the test split holds no sample: the file holds no data line"),
    ("one_click", [], "train_sessions.txt: the train split holds no sample: its 36 session(s) "
                      "all have one click"),
    ("few_sessions", ["--valid-fraction", "0.01"],
     "the valid split holds no sample: valid_fraction=0.01 of the 40 training sessions holds "
     "none out"),
    ("ks", ["--ks", "5,10", "--metric", "MRR@5"],
     "--ks 10: a cut-off cannot exceed the 9 items of"),
    ("filtered", [], "clicks.csv: the train split holds no sample: no train session is left after "
                     "preprocessing (of 3 sessions read, 3 had one click; 0 training and 0 "
                     "test sessions remain)"),
])
def test_empty_splits_and_impossible_cut_offs_fail_before_training(case, extra, message,
                                                                     tmp_path, capsys):
    # Issue 19.3 / 19.9: these used to train a whole epoch first, then fail
    # without naming the file (or naming 'k', not --ks).
    if case == "filtered":
        data = tmp_path / "clicks.csv"
        data.write_text("session_id,item_id,timestamp\n1,5,1\n2,6,2\n3,7,3\n")
    else:
        train = [line.split(",")[0] for line in TRAIN_LINES] if case == "one_click" \
            else TRAIN_LINES
        data = _srgnn_folder(tmp_path / "data", train, [] if case == "empty_test"
                             else ["1,2\t3", "4\t5"])
    out = tmp_path / "out"
    code, _, err = run(capsys, "train", data, "--epochs", "1", "--hidden-channels", "8",
                       "--root", tmp_path / "cache", "--out", out, "--quiet", *extra)
    assert_one_line_error(code, err, message)
    assert not out.exists()  # no epoch ran, no checkpoint was written


def test_evaluate_refuses_an_empty_split(trained, tmp_path, capsys):
    out, digi = trained
    data = _srgnn_folder(tmp_path / "data", (digi / "train_sessions.txt").read_text()
                         .splitlines(), [])
    code, _, err = run(capsys, "evaluate", out / "best.pt", data, "--root", tmp_path / "cache")
    assert_one_line_error(code, err, "test.tsv: the test split holds no sample")


@pytest.mark.parametrize("largest", [10**8, 2**31 - 1, 2**63 - 2])
def test_ids_that_need_an_impossible_table_are_refused(largest, tmp_path, capsys, monkeypatch,
                                                       caplog):
    # Issue 19.5: 10^8 silently built a 10^8-row table; 2^31 - 1 and 2^63 - 2
    # ended in an allocator traceback (exit 1).
    import gcsan_pyg.nn.memory as memory

    monkeypatch.setattr(memory, "available_memory", lambda device="cpu": 8 * memory.GIB)
    data = _srgnn_folder(tmp_path / "data", [*TRAIN_LINES, f"1,{largest}"], ["1,2\t3"])
    caplog.set_level(logging.WARNING, logger="gcsan_pyg")
    code, _, err = run(capsys, "train", data, "--epochs", "1", "--root", tmp_path / "cache",
                       "--out", tmp_path / "out", "--quiet", "--ks", "5", "--metric", "MRR@5")
    gib = (largest + 1) * 64 * 4 * 4 / 2**30
    assert_one_line_error(code, err, f"train_sessions.txt needs {gib:.1f} GiB ({largest + 1} "
                                     "rows x 64 channels), more than the 8.0 GiB free on cpu: "
                                     "number the items densely from 1")
    assert "the item ids of" in caplog.text and "are sparse: 10 distinct items" in caplog.text
    assert not (tmp_path / "out").exists()


def test_item_table_sizes():
    from gcsan_pyg.nn.memory import check_item_table_fits, item_table_bytes

    assert item_table_bytes(1000, 8) == 1000 * 8 * 4
    assert item_table_bytes(1000, 8, training=True) == 4 * 1000 * 8 * 4  # + grad, 2 moments
    assert item_table_bytes(1000, 8, training=True, loss_type="sampled") == 3 * 1000 * 8 * 4
    check_item_table_fits(1000, 8)
    with pytest.raises(ValueError, match=r"the item table needs 512.0 GiB"):
        GCSAN(2**31, 64)
