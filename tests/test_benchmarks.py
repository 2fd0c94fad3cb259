"""Smoke test of the benchmark scripts: ``run_all.py --quick`` into a temp dir."""
from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
EXPECTED = ["graph_construction", "train_step", "inference", "memory", "profile", "epoch",
            "item_table", "data_cache"]


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and value > 0


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory, shared_data) -> Path:
    out = tmp_path_factory.mktemp("bench")
    cmd = [sys.executable, str(REPO / "benchmarks" / "run_all.py"), "--quick", "--threads", "1",
           "--out", str(out), "--data-dir", str(shared_data)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def _load(out: Path, name: str) -> dict:
    path = out / f"{name}.json"
    assert path.is_file(), f"{name}.json was not written"
    payload = json.loads(path.read_text())
    assert payload["benchmark"] == name
    env = payload["environment"]
    for key in ("command", "torch", "torch_geometric", "torch_num_threads", "cpu_model", "date"):
        assert env.get(key), f"{name}: environment lacks {key}"
    assert env["torch_num_threads"] == 1
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                          text=True).stdout.strip()
    if head:  # the code that ran, as git knows it
        assert env["git_commit"] == head and isinstance(env["git_dirty"], bool)
    return payload


@pytest.mark.parametrize("name", ["graph_construction", "train_step", "inference"])
def test_timed_benchmarks(quick_results, name):
    payload = _load(quick_results, name)
    assert payload["results"]
    for case in payload["results"]:
        med = case["median_s"]
        assert {"ours", "dense"} <= set(med)
        for version, times in case["times_s"].items():
            assert len(times) == case["repeats"] >= 1
            assert all(_positive(t) for t in times), version
            assert _positive(med[version])
        assert all(_positive(v) for v in case["speedup_vs_dense"].values())
    sources = {case["source"] for case in payload["results"]}
    assert sources == {"diginetica", "synthetic"}


def test_graph_construction_bytes(quick_results):
    payload = _load(quick_results, "graph_construction")
    for case in payload["results"]:
        b = case["bytes"]
        assert _positive(b["dense"]) and _positive(b["ours"])
        assert b["ours"] == sum(b["ours_parts"].values())
        batch_size, max_len = case["batch_size"], case["max_len"]
        assert b["dense"] == batch_size * max_len * 16 + batch_size * max_len * 2 * max_len * 4
        assert _positive(case["bytes_ratio_dense_over_ours"])
    assert {t["name"] for t in payload["targets"]}


def test_train_step_compares_like_with_like(quick_results):
    """The dense version's own cross-entropy and plain Adam run on our graph
    formulation too ('ours_plain'), beside ours as the trainer runs it."""
    payload = _load(quick_results, "train_step")
    for case in payload["results"]:
        assert {"ours", "ours_plain", "dense"} <= set(case["median_s"])
    assert "plain torch.optim.Adam" in payload["config"]["versions"]["ours_plain"]


def test_train_step_parity_and_lower_bound(quick_results):
    payload = _load(quick_results, "train_step")
    parity = payload["parity_check_eval_mode"]
    assert parity["abs_diff"] < 1e-4, parity
    for case in payload["results"]:
        assert _positive(case["step_over_output_layer"]["ours"])
        assert _positive(case["samples_per_s"]["ours"])


def test_inference_agrees(quick_results):
    payload = _load(quick_results, "inference")
    for case in payload["results"]:
        assert case["agreement"]["top20_overlap"] > 0.95
        assert case["agreement"]["max_abs_score_diff"] < 1e-4


def test_memory(quick_results):
    payload = _load(quick_results, "memory")
    assert payload["results"]
    for case in payload["results"]:
        for key in ("graph_bytes", "saved_for_backward_bytes_encoder",
                    "saved_for_backward_bytes_loss", "peak_step_bytes"):
            assert _positive(case[key]["ours"]) and _positive(case[key]["dense"]), key
        assert all(_positive(r) for r in case["ratio_dense_over_ours"].values())


def test_profile(quick_results):
    payload = _load(quick_results, "profile")
    for key in ("train_step", "inference"):
        section = payload[key]
        assert section["top_ops_by_self_cpu"]
        assert {p["phase"] for p in section["phases"]} >= {"build_session_batch"}


def test_epoch(quick_results):
    payload = _load(quick_results, "epoch")
    assert _positive(payload["speedup_ours_vs_dense"])
    for version in ("ours", "dense"):
        assert payload["summary"][version]["batches"] >= 1
        assert all(_positive(t) for t in payload["times_s"][version])


def test_item_table(quick_results):
    payload = _load(quick_results, "item_table")
    kinds = {case["kind"] for case in payload["results"]}
    assert kinds == {"fused exact CE", "chunked exact CE", "sampled CE, S=1k",
                     "sampled CE, S=8k", "ranking", "fused and chunked exact CE in turns"}
    (pair,) = [c for c in payload["results"] if c["kind"].endswith("in turns")]
    assert len(pair["times_fused_s"]) == len(pair["times_chunked_s"]) == 4
    assert _positive(pair["median_fused_s"]) and _positive(pair["median_chunked_s"])
    for case in payload["results"]:
        if case is pair:
            continue
        assert _positive(case["median_s"]) and _positive(case["peak_rss_bytes"])
        assert case["rss_between_calls_bytes"] <= case["peak_rss_bytes"]
    assert {t["name"].split(",")[0] for t in payload["targets"]} >= {
        "chunked / fused exact CE step time", "top-20 ranking: memory beyond the table (MiB)"}


def test_data_cache(quick_results):
    payload = _load(quick_results, "data_cache")
    (row,) = payload["results"]
    # Two validation fractions, three splits: one cached file.
    assert row["dataset"] == "diginetica" and len(row["ours"]["files"]) == 1
    assert row["ours"]["bytes"] == sum(row["ours"]["files"].values()) > 0


def test_accuracy_protocol_on_the_sample_data(shared_data, tmp_path):
    """accuracy.py --quick: validation on the most recent 10 % of training
    sessions without reading test, then one final run on all of them for
    the best validation epoch, evaluated once on test; then the sampled
    softmax comparison against it."""
    out = tmp_path / "results"
    common = ["--threads", "1", "--data-dir", str(shared_data), "--out", str(out),
              "--root", str(tmp_path / "cache")]
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "accuracy.py"), "--dataset",
                    "diginetica", "--quick", "--runs", str(tmp_path / "runs"), *common],
                   cwd=REPO, check=True, capture_output=True, text=True, timeout=300)
    payload = json.loads((out / "accuracy_diginetica.json").read_text())
    validation, final = payload["validation"], payload["final"]
    assert validation["valid_fraction"] == 0.1 and "--skip-test" in validation["command"]
    assert all("valid" in epoch for epoch in validation["history"])
    assert final["epochs"] == validation["best_epoch"]
    assert "--valid-fraction 0 " in final["command"]
    assert f"--epochs {final['epochs']} " in final["command"]
    assert set(final["test"]) >= {"Hit@10", "MRR@10", "NDCG@10", "Hit@20", "MRR@20", "NDCG@20"}
    assert payload["environment"]["git_commit"] and payload["config"]["hidden_channels"] == 100
    # The validation run never read test: its results hold no test metrics.
    valid_run = json.loads((tmp_path / "runs" / "diginetica" / "valid" / "results.json")
                           .read_text())
    assert valid_run["test"] is None and valid_run["samples"]["valid"] > 0
    assert not validation["reused"] and not final["reused"]

    # A rerun keeps both finished runs; a changed config value trains again.
    accuracy = [sys.executable, str(REPO / "benchmarks" / "accuracy.py"), "--dataset",
                "diginetica", "--quick", "--runs", str(tmp_path / "runs"), *common]
    subprocess.run(accuracy, cwd=REPO, check=True, capture_output=True, text=True, timeout=300)
    rerun = json.loads((out / "accuracy_diginetica.json").read_text())
    assert rerun["validation"]["reused"] and rerun["final"]["reused"]
    assert rerun["final"]["test"] == final["test"]
    module = _script("_runs")
    final_run = json.loads((tmp_path / "runs" / "diginetica" / "final" / "results.json")
                           .read_text())
    argv = final_run["command"].split()[2:]
    assert module.same_run(final_run, argv, payload["config"])
    assert not module.same_run(final_run, argv, {**payload["config"], "lr": 0.5})
    epochs = argv.index("--epochs") + 1
    longer = [*argv[:epochs], str(int(argv[epochs]) + 1), *argv[epochs + 1:]]
    assert not module.same_run(final_run, longer, payload["config"])

    # A second seed of the final run only: seed 2019's validation is reused.
    subprocess.run([*accuracy, "--seed", "7", "--validation-seed", "2019"],
                   cwd=REPO, check=True, capture_output=True, text=True, timeout=300)
    second = json.loads((out / "accuracy_diginetica_seed7.json").read_text())
    assert second["seed"] == 7 and second["validation"]["seed"] == 2019
    assert second["validation"]["reused"] and not second["final"]["reused"]
    assert second["final"]["epochs"] == validation["best_epoch"]
    assert "--seed 7 " in second["final"]["command"]
    assert "--seed 2019 " in second["validation"]["command"]
    assert (tmp_path / "runs" / "diginetica_seed7" / "final" / "results.json").is_file()

    subprocess.run([sys.executable, str(REPO / "benchmarks" / "sampled_accuracy.py"),
                    "--exact", str(out / "accuracy_diginetica.json"), "--variants",
                    "64:uniform", "--runs", str(tmp_path / "sampled"), *common],
                   cwd=REPO, check=True, capture_output=True, text=True, timeout=300)
    sampled = json.loads((out / "sampled_accuracy.json").read_text())
    (row,) = sampled["results"]
    assert "--loss-type sampled --num-negatives 64" in row["command"]
    assert f"--epochs {final['epochs']} " in row["command"] + " "
    expected = row["test"]["Hit@20"] - final["test"]["Hit@20"]
    assert row["hit20_minus_exact"] == pytest.approx(expected)


def test_tables_and_plots(quick_results):
    text = (quick_results / "README_tables.md").read_text()
    assert "### Summary" in text and "### Graph construction" in text
    if importlib.util.find_spec("matplotlib") is not None:
        for png in ("graph_construction_time.png", "graph_construction_memory.png",
                    "train_step_vs_L.png", "inference_vs_L.png", "memory_vs_L.png"):
            assert (quick_results / png).stat().st_size > 1000, png


def _script(name: str):
    """``benchmarks/<name>.py`` as a module; the scripts import their
    siblings, so the folder is on the path while it loads."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        spec = importlib.util.spec_from_file_location(f"bench_{name}",
                                                      REPO / "benchmarks" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    return module


def test_time_alternating_samples_consecutive_calls():
    common = _script("_common")
    calls = {"fast": 0, "slow": 0}
    order = []

    def fast():
        calls["fast"] += 1
        order.append("fast")

    def slow():
        calls["slow"] += 1
        order.append("slow")
        start = common.time.perf_counter()
        while common.time.perf_counter() - start < 0.004:
            pass

    timings = common.time_alternating({"fast": fast, "slow": slow}, repeats=3,
                                      min_sample_s=0.003)
    # The slow version's one call already fills a sample; the fast one needs many.
    assert timings.calls_per_sample["slow"] == 1
    assert timings.calls_per_sample["fast"] > 10
    assert calls == {"fast": 1 + 3 * timings.calls_per_sample["fast"], "slow": 1 + 3}
    # Warm-up (fast, slow), then samples in the order fast slow | slow fast | fast
    # slow, each a run of consecutive calls.
    runs = [order[0]]
    for name in order[1:]:
        if name != runs[-1]:
            runs.append(name)
    assert runs == ["fast", "slow", "fast", "slow", "fast", "slow"]
    assert order[2:2 + timings.calls_per_sample["fast"]] == ["fast"] * timings.calls_per_sample[
        "fast"]
    assert all(len(v) == 3 for v in (*timings.per_call.values(), *timings.first_call.values()))
    assert min(timings.per_call["slow"]) >= 0.004
    summary = common.summarize(timings)
    assert summary["calls_per_sample"] == timings.calls_per_sample
    assert set(summary["first_call_median_s"]) == {"fast", "slow"}
    assert "consecutive calls" in common.timing_method(0.003)


def test_accuracy_targets_compare_each_figure_with_its_goal():
    """The README's accuracy targets: test figures against every published
    figure of the split and the stretch goal; the final run's minutes."""
    accuracy = _script("accuracy")
    payload = {"dataset": "diginetica", "published": accuracy.PUBLISHED["diginetica"],
               "environment": {"torch_num_threads": 2},
               "final": {"test": {"Hit@20": 51.0, "MRR@20": 18.6}, "wall_seconds": 46 * 60}}
    met = {t["name"]: (t["value"], t["met"]) for t in accuracy.targets(payload)}
    assert met == {
        "test Hit@20 >= SR-GNN's published": (51.0, True),
        "test MRR@20 >= SR-GNN's published": (18.6, True),
        "test Hit@20 >= the stretch goal": (51.0, False),
        "test MRR@20 >= the stretch goal": (18.6, True),
        "final run minutes at 2 threads": (46, False),
    }


def test_same_training_compares_revisions_bit_for_bit(shared_data, tmp_path):
    """same_training.py --quick trains HEAD from a git worktree beside this
    code and finds the parameters equal; one parameter one ulp off is found."""
    if subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True).returncode:
        pytest.skip("not a git checkout: there is no earlier revision to compare with")
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "same_training.py"), "--quick",
                    "--data-dir", str(shared_data), "--out", str(tmp_path)],
                   cwd=REPO, check=True, capture_output=True, text=True, timeout=300)
    payload = json.loads((tmp_path / "same_training.json").read_text())
    (row,) = payload["results"]
    assert row["parameters_equal"] and row["max_abs_diff"] == 0 and row["test_equal"]
    assert payload["targets"][0]["met"] and "--seed 2019" in payload["config"]["command"]

    same_training = _script("same_training")
    weights = {"a": torch.randn(3, 4), "b": torch.randn(5), "c._extra_state": {"kind": "x"}}
    nudged = {**weights, "b": weights["b"].clone()}
    nudged["b"][2] = torch.nextafter(nudged["b"][2], torch.tensor(math.inf))
    result = same_training.compare(weights, nudged)
    assert not result["parameters_equal"] and result["differing"] == ["b"]
    assert 0 < result["max_abs_diff"] < 1e-6
    assert same_training.compare(weights, dict(weights))["parameters_equal"]
    other_state = same_training.compare(weights, {**weights, "c._extra_state": {"kind": "y"}})
    assert other_state["differing"] == ["c._extra_state"] and other_state["max_abs_diff"] == 0
    # Code from before the loss left the model holds its sampler in the state dict.
    legacy = {**weights, "sampled_loss.sampler.counts": torch.ones(4)}
    assert same_training.compare(weights, legacy)["parameters_equal"]


def test_gpu_check_logic_on_the_cpu(tmp_path, monkeypatch):
    """benchmarks/gpu_check.py at tiny sizes on the CPU (issue 19.14): every
    check runs and passes; a bf16 that does not take effect fails it."""
    gpu_check = _script("gpu_check")
    payload = gpu_check.main(["--device", "cpu", "--quick", "--skip", "compile", "--threads",
                              "1", "--out", str(tmp_path)])
    written = json.loads((tmp_path / "gpu_check_cpu_quick.json").read_text())
    assert written["passed"] is payload["passed"] is True
    assert set(written["checks"]) == set(gpu_check.CHECKS) - {"compile"}
    group = written["checks"]["torchrun"]["group"]
    assert group["backend"] == "gloo" and group["world_size"] == 1
    assert written["checks"]["chunked_ce"]["loss_rel_error"] <= 1e-5
    assert written["checks"]["latency"]["p50_ms"] > 0
    # The bf16 check can fail: without autocast nothing runs in bfloat16.
    monkeypatch.setattr(torch, "autocast", lambda *args, **kwargs: contextlib.nullcontext())
    broken = gpu_check.check_bf16(torch.device("cpu"), gpu_check._sizes(True))
    assert broken["took_effect"] is False and broken["passed"] is False
    with pytest.raises(SystemExit, match="--skip nope: no such check"):
        gpu_check.main(["--device", "cpu", "--skip", "nope"])
