"""Reading real RecBole GCSAN checkpoints safely, and writing them back."""
from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from gcsan_pyg.data import build_session_batch
from gcsan_pyg.interop import (
    ALLOWED_GLOBALS,
    CheckpointError,
    CheckpointNotFoundError,
    RecBoleCheckpoint,
    UnsafeCheckpointError,
    export_recbole_checkpoint,
    gcsan_from_recbole_checkpoint,
    gcsan_from_recbole_state_dict,
    load_recbole_checkpoint,
    load_recbole_state_dict,
    options_to_recbole,
    recbole_data_differences,
    recbole_hyperparameters,
    recbole_key_table,
    recbole_to_options,
    to_recbole_state_dict,
)
from gcsan_pyg.nn import GCSAN

CHECKPOINT = "GCSAN-ml100k-1layer.pth"
EXPECTED = "GCSAN-ml100k-1layer.expected.json"
# What README states: RecBole's recorded scores to 2e-6 (measured: 9.5e-7, 1-2 float32
# ulps of scores up to 3.8)
ATOL = 2e-6


# Helpers ------------------------------------------------------------------------


class _ImportRecorder:
    """A ``sys.meta_path`` finder that only records the modules asked for."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        self.names.append(fullname)
        return None


@pytest.fixture
def import_recorder() -> Iterator[_ImportRecorder]:
    recorder = _ImportRecorder()
    sys.meta_path.insert(0, recorder)
    try:
        yield recorder
    finally:
        sys.meta_path.remove(recorder)


class _Payload:
    """Pickles as ``func(*args)``: what a malicious checkpoint would run."""

    def __init__(self, func: Any, *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> Any:
        return self.func, self.args


def _zip_with_pickle(path: Path, data_pkl: bytes) -> Path:
    """A torch zip checkpoint whose ``data.pkl`` is :obj:`data_pkl` (the
    other records copied from a genuine ``torch.save``)."""
    buffer = io.BytesIO()
    torch.save({}, buffer)
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as src, zipfile.ZipFile(path, "w") as dst:
        for info in src.infolist():
            data = data_pkl if info.filename.endswith("/data.pkl") else src.read(info)
            dst.writestr(info, data)
    return path


def _small_model(**kwargs: Any) -> GCSAN:
    torch.manual_seed(0)
    defaults: dict[str, Any] = dict(
        num_items=30,
        hidden_channels=8,
        num_layers=2,
        num_heads=2,
        inner_channels=12,
        num_steps=2,
        attention_weight=0.4,
        hidden_dropout=0.1,
        attn_dropout=0.3,
        activation="relu",
        layer_norm_eps=1e-6,
        initializer_range=0.05,
        loss_type="BPR",
        reg_weight=1e-3,
    )
    defaults.update(kwargs)
    return GCSAN(**defaults).eval()


def _padded(sessions: list[list[int]], max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded :obj:`[B, max_len]` sessions, each cut to its most recent
    :obj:`max_len` clicks (as RecBole does)."""
    cut = [s[-max_len:] for s in sessions]
    item_seq = torch.zeros(len(cut), max_len, dtype=torch.long)
    for row, session in enumerate(cut):
        item_seq[row, : len(session)] = torch.tensor(session)
    return item_seq, torch.tensor([len(s) for s in cut])


def _scores(model: GCSAN, sessions: list[list[int]], max_len: int) -> torch.Tensor:
    item_seq, item_seq_len = _padded(sessions, max_len)
    batch = build_session_batch(item_seq, item_seq_len, num_items=model.num_items)
    model.eval()
    with torch.no_grad():
        return model.full_sort_scores(batch)


def _assert_plain(value: Any, where: str = "config") -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            assert isinstance(key, str), f"{where}: key {key!r}"
            _assert_plain(item, f"{where}[{key!r}]")
    elif isinstance(value, list):
        for n, item in enumerate(value):
            _assert_plain(item, f"{where}[{n}]")
    else:
        assert value is None or type(value) in (str, int, float, bool), f"{where}: {value!r}"


# The real RecBole checkpoint ------------------------------------------------------


@pytest.fixture(scope="module")
def recbole_dir(shared_fixtures: Path) -> Path:
    return shared_fixtures / "recbole"


@pytest.fixture(scope="module")
def real_checkpoint(recbole_dir: Path) -> RecBoleCheckpoint:
    return load_recbole_checkpoint(recbole_dir / CHECKPOINT)


def test_real_checkpoint_contents(real_checkpoint: RecBoleCheckpoint) -> None:
    ckpt = real_checkpoint
    config = ckpt.config
    assert ckpt.model_name == "GCSAN"
    assert config["dataset"] == "ml100k"
    assert config["MAX_ITEM_LIST_LENGTH"] == 50
    assert config["hidden_size"] == 64 and config["inner_size"] == 256
    assert config["hidden_act"] == "gelu" and config["loss_type"] == "CE"
    # Enums become member names, devices strings, numpy scalars Python floats.
    assert config["MODEL_TYPE"] == "SEQUENTIAL"
    assert config["MODEL_INPUT_TYPE"] == "POINTWISE"
    assert config["eval_type"] == "RANKING"
    assert config["device"] == "cpu"
    _assert_plain(config)
    assert type(ckpt.best_valid_score) is float
    assert ckpt.best_valid_score == pytest.approx(0.0338)
    assert ckpt.epoch == 0 and ckpt.cur_step == 0
    assert ckpt.raw_config["model_class"] == "recbole.model.sequential_recommender.gcsan.GCSAN"
    assert ckpt.raw_config["yaml_loader"] == "yaml.loader.FullLoader"
    assert len(ckpt.state_dict) == 25
    assert ckpt.state_dict["item_embedding.weight"].shape == (1683, 64)
    assert all(t.dtype == torch.float32 for t in ckpt.state_dict.values())
    assert set(ckpt.optimizer or {}) == {"state", "param_groups"}


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_real_checkpoint_is_refused_by_weights_only(recbole_dir: Path) -> None:
    # Why the restricted unpickler exists at all.
    with pytest.raises(pickle.UnpicklingError):
        torch.load(recbole_dir / CHECKPOINT, weights_only=True)


def test_loading_imports_nothing_named_in_the_pickle(
    recbole_dir: Path, import_recorder: _ImportRecorder
) -> None:
    load_recbole_checkpoint(recbole_dir / CHECKPOINT)
    asked = [n for n in import_recorder.names if n.split(".")[0] in ("recbole", "yaml")]
    asked += [n for n in import_recorder.names if n.startswith(("numpy.core", "numpy._core."))]
    assert asked == []
    assert "recbole" not in sys.modules


def test_scores_match_recbole(recbole_dir: Path) -> None:
    expected = json.loads((recbole_dir / EXPECTED).read_text())
    model, info = gcsan_from_recbole_checkpoint(recbole_dir / CHECKPOINT)
    assert not model.training
    assert info["MAX_ITEM_LIST_LENGTH"] == expected["max_item_list_length"] == 50
    assert model.num_items == expected["num_items_including_padding"]
    assert info["hyperparameters"]["hidden_dropout"] == 0.5
    assert info["hyperparameters"]["reg_weight"] == pytest.approx(5e-5)
    sessions = expected["sessions"]
    assert max(map(len, sessions)) > 50  # the truncation path is exercised

    scores = _scores(model, sessions, info["MAX_ITEM_LIST_LENGTH"])
    top_scores, top_items = scores.topk(20, dim=-1)
    assert top_items.tolist() == expected["top20_items"]
    torch.testing.assert_close(
        top_scores, torch.tensor(expected["top20_scores"]), atol=ATOL, rtol=0
    )
    torch.testing.assert_close(
        scores[:, 1:11], torch.tensor(expected["scores_items_1_to_10"]), atol=ATOL, rtol=0
    )


def test_real_checkpoint_export_round_trip(recbole_dir: Path, tmp_path: Path) -> None:
    model, info = gcsan_from_recbole_checkpoint(recbole_dir / CHECKPOINT)
    out = export_recbole_checkpoint(model, tmp_path / "again.pth", max_seq_length=50)
    again, again_info = gcsan_from_recbole_checkpoint(out)
    assert again.hparams == model.hparams
    assert again_info["MAX_ITEM_LIST_LENGTH"] == 50
    sessions = [[1, 2, 3], [7, 7, 9, 1]]
    assert torch.equal(_scores(again, sessions, 50), _scores(model, sessions, 50))


# Hyperparameters ------------------------------------------------------------------


def test_recbole_hyperparameters_mapping() -> None:
    config = {
        "hidden_size": 32,
        "inner_size": 48,
        "n_layers": 3,
        "n_heads": 4,
        "step": 2,
        "weight": 0.5,
        "hidden_dropout_prob": 0.1,
        "attn_dropout_prob": 0.2,
        "hidden_act": "relu",
        "layer_norm_eps": 1e-5,
        "initializer_range": 0.01,
        "loss_type": "BPR",
        "reg_weight": [1e-4],
        "learning_rate": 0.1,  # not a model argument: ignored
    }
    table = {"item_embedding.weight": torch.zeros(11, 32)}
    assert recbole_hyperparameters(config, table) == {
        "hidden_channels": 32,
        "inner_channels": 48,
        "num_layers": 3,
        "num_heads": 4,
        "num_steps": 2,
        "attention_weight": 0.5,
        "hidden_dropout": 0.1,
        "attn_dropout": 0.2,
        "activation": "relu",
        "layer_norm_eps": 1e-5,
        "initializer_range": 0.01,
        "loss_type": "BPR",
        "reg_weight": 1e-4,
        "num_items": 11,
    }
    assert recbole_hyperparameters({}) == {}
    with pytest.raises(ValueError, match="hidden_size"):
        recbole_hyperparameters({"hidden_size": "64"})
    with pytest.raises(ValueError, match="n_layers"):
        recbole_hyperparameters({"n_layers": 1.5})


# Export round trip ----------------------------------------------------------------


def test_export_load_round_trip(tmp_path: Path) -> None:
    model = _small_model()
    path = export_recbole_checkpoint(
        model, tmp_path / "small.pth", max_seq_length=7, epoch=3, best_valid_score=0.25,
        dataset="toy",
    )
    ckpt = load_recbole_checkpoint(path)
    assert ckpt.epoch == 3 and ckpt.best_valid_score == 0.25
    assert ckpt.config["model"] == "GCSAN" and ckpt.config["dataset"] == "toy"
    assert ckpt.config["MAX_ITEM_LIST_LENGTH"] == 7
    assert ckpt.config["n_layers"] == 2 and ckpt.config["hidden_act"] == "relu"
    _assert_plain(ckpt.config)
    reference = to_recbole_state_dict(model)
    assert ckpt.state_dict.keys() == reference.keys()
    for key, value in reference.items():
        assert torch.equal(ckpt.state_dict[key], value), key
    # Only dicts, numbers and tensors: torch's own safe loader reads it too.
    assert set(torch.load(path, weights_only=True)) >= {"config", "state_dict", "epoch"}

    again, info = gcsan_from_recbole_checkpoint(path)
    assert again.hparams == model.hparams
    assert info["MAX_ITEM_LIST_LENGTH"] == 7 and info["epoch"] == 3
    sessions = [[1, 2, 3, 2], [5], list(range(1, 12))]
    assert torch.equal(_scores(again, sessions, 7), _scores(model, sessions, 7))


# Refusing malicious checkpoints -----------------------------------------------------


def _marker_payloads(marker: Path) -> list[tuple[str, Any]]:
    import builtins

    code = f"open({str(marker)!r}, 'w').close()"
    return [
        (f"{os.name}.system", _Payload(os.system, f"touch {marker}")),
        ("builtins.eval", _Payload(builtins.eval, code)),
        ("builtins.exec", _Payload(builtins.exec, code)),
        ("subprocess.check_call", _Payload(subprocess.check_call, ["touch", str(marker)])),
    ]


@pytest.mark.parametrize("protocol", [0, 2, 4])
@pytest.mark.parametrize("which", range(4))
def test_malicious_checkpoint_is_refused(tmp_path: Path, protocol: int, which: int) -> None:
    marker = tmp_path / "pwned"
    name, payload = _marker_payloads(marker)[which]
    path = tmp_path / "evil.pth"
    torch.save(
        {"config": {"model": "GCSAN"}, "state_dict": {}, "epoch": payload},
        path,
        pickle_protocol=protocol,
    )
    with pytest.raises(UnsafeCheckpointError) as info:
        load_recbole_checkpoint(path)
    assert isinstance(info.value, ValueError)
    assert name in str(info.value) and str(path) in str(info.value)
    with pytest.raises(UnsafeCheckpointError):
        gcsan_from_recbole_checkpoint(path)
    assert not marker.exists()


def test_payload_inside_recbole_config_is_refused(tmp_path: Path) -> None:
    # A RecBole-looking Config whose state hides a call to posix.system.
    marker = tmp_path / "pwned"
    data = (
        b"\x80\x02}(Vconfig\n"
        b"crecbole.config.configurator\nConfig\n)\x81"
        b"}Vfinal_config_dict\n"
        b"cposix\nsystem\n(V" + f"touch {marker}".encode() + b"\ntRsb"
        b"Vstate_dict\n}u."
    )
    path = _zip_with_pickle(tmp_path / "evil.pth", data)
    with pytest.raises(UnsafeCheckpointError, match="posix.system"):
        load_recbole_checkpoint(path)
    assert not marker.exists()


def test_refused_module_is_never_imported(tmp_path: Path, import_recorder: _ImportRecorder) -> None:
    module = "gcsan_canary_never_imported"
    data = b"\x80\x02c" + module.encode() + b"\nboom\n)R."
    path = _zip_with_pickle(tmp_path / "canary.pth", data)
    with pytest.raises(UnsafeCheckpointError, match=f"{module}.boom"):
        load_recbole_checkpoint(path)
    assert module not in import_recorder.names and module not in sys.modules


def test_model_class_reference_is_only_a_name(
    tmp_path: Path, import_recorder: _ImportRecorder
) -> None:
    # recbole.model.* classes are kept as names: referencing one is fine,
    # calling it fails (a string is not callable), importing never happens.
    data = b"\x80\x02crecbole.model.general_recommender.evil\nEvil\n)R."
    path = _zip_with_pickle(tmp_path / "call.pth", data)
    with pytest.raises(CheckpointError, match="call.pth"):
        load_recbole_checkpoint(path)
    assert not [n for n in import_recorder.names if n.startswith("recbole")]


def test_allow_list_is_exact() -> None:
    assert set(ALLOWED_GLOBALS) == {
        ("collections", "OrderedDict"),
        ("torch", "device"),
        ("torch._utils", "_rebuild_tensor_v2"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("recbole.config.configurator", "Config"),
        ("recbole.utils.enum_type", "ModelType"),
        ("recbole.utils.enum_type", "InputType"),
        ("recbole.utils.enum_type", "EvaluatorType"),
        ("yaml.loader", "FullLoader"),
    }


def test_numpy_object_dtype_is_refused(tmp_path: Path) -> None:
    # numpy's own scalar() would unpickle an arbitrary object for an object
    # dtype; the stand-ins only decode raw bytes of plain numeric dtypes.
    marker = tmp_path / "pwned"
    data = (
        b"\x80\x02cnumpy.core.multiarray\nscalar\n"
        b"cnumpy\ndtype\nVO8\n\x89\x88\x87R"
        b"cposix\nsystem\nV" + f"touch {marker}".encode() + b"\n\x85R\x86R."
    )
    path = _zip_with_pickle(tmp_path / "npobj.pth", data)
    with pytest.raises(UnsafeCheckpointError, match="refused numpy dtype 'O8'"):
        load_recbole_checkpoint(path)
    assert not marker.exists()


def test_numpy_scalar_is_rebuilt_from_bytes(tmp_path: Path) -> None:
    data = (
        b"\x80\x02}Vx\ncnumpy._core.multiarray\nscalar\n"
        b"cnumpy\ndtype\nVi4\n\x89\x88\x87R(K\x03V>\nNNNJ\xff\xff\xff\xffK\x00K\x00tb"
        b"C\x04\x00\x00\x01\x02\x86Rs."
    )
    # A plain (non-zip) check of the stand-ins through the restricted pickle:
    path = _zip_with_pickle(tmp_path / "npint.pth", data)
    with pytest.raises(CheckpointError, match="lacks the top-level key"):
        load_recbole_checkpoint(path)  # decoded fine, then refused as no checkpoint
    from gcsan_pyg.interop.recbole.unpickler import RESTRICTED_PICKLE

    assert RESTRICTED_PICKLE.loads(data) == {"x": 258}  # big-endian int32


@pytest.mark.parametrize(
    "target",
    [
        b"crecbole.utils.enum_type\nModelType\n",
        b"crecbole.config.configurator\nConfig\n",
        b"cnumpy\ndtype\n",
        b"ctorch._utils\n_rebuild_tensor_v2\n",
        b"ccollections\nOrderedDict\n",
    ],
)
def test_stand_ins_cannot_be_modified(tmp_path: Path, target: bytes) -> None:
    # BUILD on a shared stand-in would change it for every later load.
    data = b"\x80\x02" + target + b"}V__call__\nVx\ns}V__setstate__\nVx\ns\x86b."
    with pytest.raises(CheckpointError, match="poison.pth") as info:
        load_recbole_checkpoint(_zip_with_pickle(tmp_path / "poison.pth", data))
    assert "refused to modify" in str(info.value) or "TypeError" in str(info.value)
    data = (
        b"\x80\x02}(Vconfig\n}Vt\ncrecbole.utils.enum_type\nModelType\nK\x02\x85Rs"
        b"Vstate_dict\n}u."
    )
    ckpt = load_recbole_checkpoint(_zip_with_pickle(tmp_path / "after.pth", data))
    assert ckpt.config == {"t": "SEQUENTIAL"}


def test_torchscript_archive_is_refused(tmp_path: Path) -> None:
    path = _zip_with_pickle(tmp_path / "script.pth", pickle.dumps({}, protocol=2))
    with zipfile.ZipFile(path, "a") as archive:
        prefix = archive.namelist()[0].split("/")[0]
        archive.writestr(f"{prefix}/constants.pkl", pickle.dumps((), protocol=2))
    with pytest.raises(CheckpointError, match="TorchScript"):
        load_recbole_checkpoint(path)


# Bad files --------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.pth"
    with pytest.raises(CheckpointNotFoundError, match="nope.pth") as info:
        load_recbole_checkpoint(path)
    assert isinstance(info.value, ValueError) and isinstance(info.value, FileNotFoundError)
    with pytest.raises(ValueError, match="does not exist"):
        gcsan_from_recbole_checkpoint(path)


@pytest.fixture(scope="module")
def exported_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("export") / "small.pth"
    return export_recbole_checkpoint(_small_model(), path).read_bytes()


@pytest.mark.parametrize("keep", [0.0, 0.1, 0.5, 0.99])
def test_truncated_file(tmp_path: Path, exported_bytes: bytes, keep: float) -> None:
    path = tmp_path / "cut.pth"
    path.write_bytes(exported_bytes[: int(len(exported_bytes) * keep)])
    with pytest.raises(CheckpointError, match="cut.pth"):
        load_recbole_checkpoint(path)


def test_truncated_real_checkpoint(tmp_path: Path, recbole_dir: Path) -> None:
    data = (recbole_dir / CHECKPOINT).read_bytes()
    path = tmp_path / "half.pth"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="half.pth.*not a torch zip archive"):
        load_recbole_checkpoint(path)


def test_corrupt_bytes_are_detected(tmp_path: Path, exported_bytes: bytes) -> None:
    data = bytearray(exported_bytes)
    start = data.index(b"item_embedding.weight")  # inside data.pkl
    data[start : start + 8] = b"\xff" * 8
    path = tmp_path / "flip.pth"
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="flip.pth.*CRC"):
        load_recbole_checkpoint(path)


def test_legacy_and_foreign_files(tmp_path: Path) -> None:
    legacy = tmp_path / "legacy.pth"
    torch.save({"state_dict": {}}, legacy, _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError, match="legacy.pth.*not a torch zip"):
        load_recbole_checkpoint(legacy)
    plain_zip = tmp_path / "plain.zip"
    with zipfile.ZipFile(plain_zip, "w") as archive:
        archive.writestr("hello.txt", "hi")
    with pytest.raises(CheckpointError, match="data.pkl"):
        load_recbole_checkpoint(plain_zip)
    not_a_dict = tmp_path / "list.pth"
    torch.save([1, 2], not_a_dict)
    with pytest.raises(CheckpointError, match="list.pth.*not a dict"):
        load_recbole_checkpoint(not_a_dict)
    no_state = tmp_path / "nostate.pth"
    torch.save({"config": {}}, no_state)
    with pytest.raises(CheckpointError, match="state_dict"):
        load_recbole_checkpoint(no_state)


def _resave(path: Path, source: Path, **changes: Any) -> Path:
    payload = torch.load(source, weights_only=True)
    for key, change in changes.items():
        change(payload[key])
    torch.save(payload, path)
    return path


def test_wrong_model_state_dict(tmp_path: Path, exported_bytes: bytes) -> None:
    source = tmp_path / "ok.pth"
    source.write_bytes(exported_bytes)

    def rename(state: dict[str, torch.Tensor]) -> None:
        state["gnn.linear_edge_in.kernel"] = state.pop("gnn.linear_edge_in.weight")

    path = _resave(tmp_path / "renamed.pth", source, state_dict=rename)
    load_recbole_checkpoint(path)  # still a readable RecBole checkpoint ...
    with pytest.raises(CheckpointError, match=r"renamed\.pth.*not a GCSAN.*linear_edge_in"):
        gcsan_from_recbole_checkpoint(path)  # ... but not one of GCSAN

    def sasrec(config: dict[str, Any]) -> None:
        config["model"] = "SASRec"

    path = _resave(tmp_path / "sasrec.pth", source, config=sasrec)
    with pytest.raises(CheckpointError, match=r"sasrec\.pth.*'SASRec'.*not GCSAN"):
        gcsan_from_recbole_checkpoint(path)

    def wrong_size(config: dict[str, Any]) -> None:
        config["inner_size"] = 99

    path = _resave(tmp_path / "size.pth", source, config=wrong_size)
    with pytest.raises(CheckpointError, match=r"size\.pth.*does not fit GCSAN"):
        gcsan_from_recbole_checkpoint(path)


# What a state_dict cannot tell -----------------------------------------------------

#: The GCSAN arguments the weights do not reveal but that change the scores.
OUTPUT_ARGUMENTS = {"num_heads": 2, "num_steps": 2, "attention_weight": 0.4, "activation": "relu",
                    "layer_norm_eps": 1e-6}


def test_state_dict_alone_does_not_fix_what_changes_the_output() -> None:
    model = _small_model()  # 2 heads, step 2, weight 0.4, relu, eps 1e-6
    state = to_recbole_state_dict(model)
    with pytest.raises(ValueError, match="recbole_hyperparameters") as info:
        gcsan_from_recbole_state_dict(state)
    for name in OUTPUT_ARGUMENTS:
        assert f"'{name}'" in str(info.value)
    some = {k: v for k, v in OUTPUT_ARGUMENTS.items() if k != "num_heads"}
    with pytest.raises(ValueError, match=r"\['num_heads'\].*\['n_heads'\]"):
        gcsan_from_recbole_state_dict(state, **some)
    again = gcsan_from_recbole_state_dict(state, **OUTPUT_ARGUMENTS)
    # The sizes come off the tensors.
    assert (again.num_items, again.hidden_channels, again.inner_channels, again.num_layers) == (
        30, 8, 12, 2)
    sessions = [[1, 2, 3, 2], [5], list(range(1, 12))]
    assert torch.equal(_scores(again.eval(), sessions, 50), _scores(model, sessions, 50))


@pytest.mark.parametrize("key", ["n_heads", "step", "weight", "hidden_act", "layer_norm_eps"])
def test_checkpoint_config_must_give_what_the_weights_cannot(
    tmp_path: Path, exported_bytes: bytes, key: str
) -> None:
    source = tmp_path / "ok.pth"
    source.write_bytes(exported_bytes)
    path = _resave(tmp_path / "lacks.pth", source, config=lambda config: config.pop(key))
    with pytest.raises(CheckpointError, match=rf"lacks\.pth.*config lacks \['{key}'\]"):
        gcsan_from_recbole_checkpoint(path)
    path = _resave(tmp_path / "none.pth", source, config=lambda config: config.update({key: None}))
    with pytest.raises(CheckpointError, match=rf"none\.pth.*config lacks \['{key}'\]"):
        gcsan_from_recbole_checkpoint(path)


def test_checkpoint_sizes_come_off_the_weights(tmp_path: Path, exported_bytes: bytes) -> None:
    source = tmp_path / "ok.pth"
    source.write_bytes(exported_bytes)

    def drop_sizes(config: dict[str, Any]) -> None:
        for key in ("hidden_size", "inner_size", "n_layers"):
            del config[key]

    model, _ = gcsan_from_recbole_checkpoint(_resave(tmp_path / "s.pth", source,
                                                     config=drop_sizes))
    assert model.hparams == _small_model().hparams


# One place for RecBole -------------------------------------------------------------


def test_recbole_code_lives_in_its_subpackage() -> None:
    import gcsan_pyg.interop as interop
    from gcsan_pyg.interop import recbole

    for name in recbole.__all__:
        assert getattr(interop, name) is getattr(recbole, name), name
    for name in ("to_recbole_state_dict", "load_recbole_state_dict", "from_recbole"):
        assert not hasattr(GCSAN, name), name


def test_one_key_table_maps_both_layouts(real_checkpoint: RecBoleCheckpoint) -> None:
    table = recbole_key_table(num_layers=1)
    ours = GCSAN(1683, hidden_channels=64)
    assert {name for name, _ in table} == set(ours.state_dict())
    assert {key for _, keys in table for key in keys} == set(real_checkpoint.state_dict)
    load_recbole_state_dict(ours, real_checkpoint.state_dict)
    back = to_recbole_state_dict(ours)
    assert back.keys() == real_checkpoint.state_dict.keys()
    for key, value in real_checkpoint.state_dict.items():
        assert torch.equal(back[key], value), key


def test_recbole_config_names_to_options() -> None:
    recbole = {
        "hidden_size": 32, "inner_size": 48, "n_layers": 2, "n_heads": 4, "step": 2,
        "weight": 0.5, "hidden_dropout_prob": 0.1, "attn_dropout_prob": 0.2,
        "hidden_act": "relu", "layer_norm_eps": 1e-5, "initializer_range": 0.01,
        "reg_weight": [1e-4], "loss_type": "BPR", "learning_rate": 0.01,
        "train_batch_size": 128, "epochs": 7, "stopping_step": 3, "MAX_ITEM_LIST_LENGTH": 20,
    }
    options = recbole_to_options(recbole)
    assert options == {
        "hidden_channels": 32, "inner_channels": 48, "num_layers": 2, "num_heads": 4,
        "num_steps": 2, "attention_weight": 0.5, "hidden_dropout": 0.1, "attn_dropout": 0.2,
        "activation": "relu", "layer_norm_eps": 1e-5, "initializer_range": 0.01,
        "reg_weight": 1e-4, "loss_type": "BPR", "lr": 0.01, "batch_size": 128, "epochs": 7,
        "patience": 3, "max_length": 20,
    }
    assert options_to_recbole(options) == dict(recbole, reg_weight=1e-4)
    with pytest.raises(ValueError, match=r"\['neg_sampling', 'train_neg_sample_args'\].*no "
                                         "gcsan_pyg counterpart"):
        recbole_to_options({"neg_sampling": None, "train_neg_sample_args": {}, "epochs": 1})
    with pytest.raises(ValueError, match="'train_batch_size' = 1.5 is not a valid int"):
        recbole_to_options({"train_batch_size": 1.5})
    with pytest.raises(ValueError, match=r"\['threads'\].*no RecBole counterpart"):
        options_to_recbole({"lr": 0.1, "threads": 2})


def test_recbole_data_differences(real_checkpoint: RecBoleCheckpoint) -> None:
    # The fixture's protocol is the one RecBoleInterDataset reproduces.
    assert recbole_data_differences(real_checkpoint.config) == []
    config = dict(
        real_checkpoint.config,
        user_inter_num_interval="[5,inf)",
        eval_args={"split": {"RS": [0.8, 0.1, 0.1]}, "order": "RO", "mode": "uni100"},
    )
    assert recbole_data_differences(config) == [
        "user_inter_num_interval = '[5,inf)' (reproduced: None or '[0,inf)')",
        "eval_args split = {'RS': [0.8, 0.1, 0.1]} (reproduced: {'LS': 'valid_and_test'})",
        "eval_args order = 'RO' (reproduced: 'TO')",
        "eval_args mode (test) = 'uni100' (reproduced: 'full')",
    ]
