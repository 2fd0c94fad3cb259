"""PyG session datasets: collated layout, cache, splits, formats."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch_geometric.data import InMemoryDataset

from gcsan_pyg.data import session_to_graph
from gcsan_pyg.data.datasets import (
    ClickCSVDataset,
    DigineticaRawDataset,
    RecBoleInterDataset,
    SessionDataset,
    SRGNNTextDataset,
    SyntheticDataset,
    YoochooseRawDataset,
    augment_to_arrays,
    collate_samples,
    dataset_statistics,
    load_dataset,
    resolve_dataset_class,
    samples_to_arrays,
)
from gcsan_pyg.data.readers import (
    DataFormatError,
    augment_prefixes,
    read_sessions,
)

SESSIONS = [[5, 3, 5, 7], [2, 2, 2], [9, 1], [4, 6, 4, 6, 4, 8, 1], [3, 3]]


def _sequences(dataset: InMemoryDataset) -> list[tuple[list[int], int]]:
    """Rebuilds every sample from the collated storage, vectorised, the way
    the training loader does: x[alias + node offset]."""
    data, slices = dataset._data, dataset.slices
    click_ptr, node_ptr = slices["alias"], slices["x"]
    lengths = click_ptr[1:] - click_ptr[:-1]
    owner = torch.repeat_interleave(torch.arange(lengths.numel()), lengths)
    items = data.x[data.alias + node_ptr[:-1][owner]].tolist()
    ptr = click_ptr.tolist()
    labels = data.y.tolist()
    return [(items[ptr[i]:ptr[i + 1]], labels[i]) for i in range(len(labels))]


def _assert_same_storage(a, b):
    (da, sa), (db, sb) = a, b
    assert list(da.to_dict()) == list(db.to_dict())
    for key in db.keys():
        assert da[key].dtype == db[key].dtype and torch.equal(da[key], db[key]), key
    assert sa.keys() == sb.keys()
    for key in sb:
        assert torch.equal(sa[key], sb[key]), key


def _pt_files(root: Path) -> list[str]:
    folder = root / "processed"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# ---------------------------------------------------------------------------
# Vectorised construction
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("max_length", [None, 2])
def test_collate_samples_equals_pyg_collate(max_length):
    samples = augment_prefixes(SESSIONS)
    if max_length is not None:
        samples = [(p[-max_length:], lab) for p, lab in samples]
    arrays = augment_to_arrays(SESSIONS, max_length)
    assert arrays.to_samples() == samples
    assert samples_to_arrays(augment_prefixes(SESSIONS), max_length).to_samples() == samples
    expected = InMemoryDataset.collate([session_to_graph(p, lab) for p, lab in samples])
    _assert_same_storage(collate_samples(arrays), expected)


def test_collate_samples_edge_cases():
    one = samples_to_arrays([([4, 4, 2], 1)])
    data, slices = collate_samples(one)
    graph = session_to_graph([4, 4, 2], 1)
    for key in graph.keys():
        assert torch.equal(data[key], graph[key]), key
    assert slices["y"].tolist() == [0, 1]
    empty_data, empty_slices = collate_samples(samples_to_arrays([]))
    assert empty_data.x.numel() == 0 and empty_slices["alias"].tolist() == [0]
    with pytest.raises(ValueError):
        collate_samples(samples_to_arrays([([0, 2], 1)]))


# ---------------------------------------------------------------------------
# SR-GNN text on the real sample
# ---------------------------------------------------------------------------


def test_srgnn_text_sample(shared_data, tmp_path):
    folder = shared_data / "sample_diginetica" / "srgnn_processed"
    train = SRGNNTextDataset(tmp_path, folder, "train", valid_fraction=0.0)
    expected = [tuple(s) for s in augment_prefixes(read_sessions(folder / "train_sessions.txt"))]
    assert len(train) == 1205 and train.num_items == 310 and train.item_ids is None
    assert [tuple(s) for s in _sequences(train)] == expected
    sample = train[7]
    graph = session_to_graph(*expected[7])
    for key in graph.keys():
        assert torch.equal(sample[key], graph[key]), key
    assert sample.y.shape == (1,)
    test = SRGNNTextDataset(tmp_path, folder, "test", valid_fraction=0.0)
    assert len(test) == 99
    assert len(SRGNNTextDataset(tmp_path, folder, "valid", valid_fraction=0.0)) == 0

    # Default: the last 10% of the training sessions (46 of 469) are valid.
    sessions = read_sessions(folder / "train_sessions.txt")
    tr = SRGNNTextDataset(tmp_path, folder, "train")
    va = SRGNNTextDataset(tmp_path, folder, "valid")
    assert _sequences(tr) == augment_prefixes(sessions[:423])
    assert _sequences(va) == augment_prefixes(sessions[423:])
    stats = dataset_statistics(va)
    assert stats["num_items"] == 310 and stats["split"] == "valid"
    assert stats["train"]["sessions"] == 423 and stats["valid"]["sessions"] == 46
    assert stats["test"]["sessions"] == 39 and stats["test"]["samples"] == 99
    assert stats["train"]["samples"] + stats["valid"]["samples"] == 1205
    assert stats["train"]["min_length"] == 2 and stats["train"]["max_length"] <= 17
    assert set(stats["test"]) >= {"clicks", "items", "avg_length", "max_length"}


def test_max_length_keeps_most_recent_clicks(shared_data, tmp_path):
    folder = shared_data / "sample_diginetica" / "srgnn_processed"
    full = _sequences(SRGNNTextDataset(tmp_path, folder, "train"))
    cut = _sequences(SRGNNTextDataset(tmp_path, folder, "train", max_length=3))
    assert cut == [(p[-3:], lab) for p, lab in full]
    assert max(len(p) for p, _ in cut) == 3


# ---------------------------------------------------------------------------
# Cache: reuse, rebuild, atomicity
# ---------------------------------------------------------------------------


def _text_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "train_sessions.txt").write_text("1,2,3\n2,3\n3,4,1\n4,2\n")
    (folder / "test.tsv").write_text("1,2\t3\n1\t2\n4\t1\n")
    return folder


def test_cache_is_reused(tmp_path, monkeypatch):
    folder, root = _text_folder(tmp_path), tmp_path / "cache"
    first = SRGNNTextDataset(root, folder, "train", valid_fraction=0.25)
    files = {p: os.stat(p).st_mtime_ns for p in first.processed_paths}

    def fail(self):
        raise AssertionError("reprocessed although cached")

    monkeypatch.setattr(SRGNNTextDataset, "build", fail)
    for split in ("train", "valid", "test"):
        again = SRGNNTextDataset(root, folder, split, valid_fraction=0.25)
    assert {p: os.stat(p).st_mtime_ns for p in first.processed_paths} == files
    assert len(again) == 3 and again.num_items == 5


def test_cache_rebuilds_on_option_or_raw_change(tmp_path):
    folder, root = _text_folder(tmp_path), tmp_path / "cache"
    base = SRGNNTextDataset(root, folder, valid_fraction=0.25)
    assert len(base) == 5  # 2 + 1 + 2 samples; the last session (1 sample) is valid
    other = SRGNNTextDataset(root, folder, valid_fraction=0.0)
    assert other.fingerprint != base.fingerprint and len(other) == 6
    cut = SRGNNTextDataset(root, folder, valid_fraction=0.0, max_length=1)
    assert cut.fingerprint not in (base.fingerprint, other.fingerprint)
    # Raw change: new content (size) and mtime.
    with open(folder / "train_sessions.txt", "a") as f:
        f.write("1,4,2\n")
    grown = SRGNNTextDataset(root, folder, valid_fraction=0.0)
    assert grown.fingerprint != other.fingerprint and len(grown) == 8
    # Same size, new mtime only.
    os.utime(folder / "test.tsv", ns=(1, 1))
    touched = SRGNNTextDataset(root, folder, valid_fraction=0.0)
    assert touched.fingerprint != grown.fingerprint
    forced = SRGNNTextDataset(root, folder, valid_fraction=0.0, force_reload=True)
    assert len(forced) == 8


def test_bad_file_leaves_no_cache(tmp_path):
    folder, root = _text_folder(tmp_path), tmp_path / "cache"
    (folder / "test.tsv").write_text("1,2\t3\n1,2\n")
    with pytest.raises(DataFormatError, match=r"test\.tsv, line 2: missing label"):
        SRGNNTextDataset(root, folder)
    assert [n for n in _pt_files(root) if n.endswith(".pt") or ".tmp" in n] == []


def test_failure_while_writing_leaves_nothing(tmp_path, monkeypatch):
    folder, root = _text_folder(tmp_path), tmp_path / "cache"
    real_save, calls = torch.save, []

    def flaky_save(obj, f, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            f.write(b"half")
            raise OSError("disk full")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", flaky_save)
    with pytest.raises(OSError, match="disk full"):
        SRGNNTextDataset(root, folder)
    assert _pt_files(root) == []
    monkeypatch.setattr(torch, "save", real_save)
    assert len(SRGNNTextDataset(root, folder, "test")) == 3


def test_missing_input_and_bad_options(tmp_path):
    with pytest.raises(FileNotFoundError, match="train_sessions.txt"):
        SRGNNTextDataset(tmp_path / "cache", tmp_path / "nowhere")
    assert not (tmp_path / "nowhere").exists()
    folder = _text_folder(tmp_path)
    with pytest.raises(ValueError, match="split"):
        SRGNNTextDataset(tmp_path / "cache", folder, "dev")
    with pytest.raises(ValueError, match="valid_fraction"):
        SRGNNTextDataset(tmp_path / "cache", folder, valid_fraction=1.0)
    with pytest.raises(ValueError, match="max_length"):
        SRGNNTextDataset(tmp_path / "cache", folder, max_length=0)


# ---------------------------------------------------------------------------
# Raw formats with an id mapping
# ---------------------------------------------------------------------------


def test_diginetica_raw_dataset(shared_data, tmp_path):
    csv = shared_data / "sample_diginetica" / "sample_train-item-views.csv"
    train = DigineticaRawDataset(tmp_path, csv, "train", valid_fraction=0.0)
    test = DigineticaRawDataset(tmp_path, csv, "test", valid_fraction=0.0)
    assert (len(train), len(test), train.num_items) == (1205, 99, 310)
    assert len(train.item_ids) == 310 and train.item_ids[0] == "[PAD]"
    raw_items = {line.split(";")[2] for line in csv.read_text().splitlines()[1:]}
    assert set(train.item_ids[1:]) <= raw_items
    mapping = train.item_id_map()
    assert all(train.item_ids[mapping[raw]] == raw for raw in mapping) and len(mapping) == 309
    stats = dataset_statistics(train)
    assert stats["train"]["sessions"] == 469 and stats["test"]["sessions"] == 39
    valid = DigineticaRawDataset(tmp_path, csv, "valid")
    assert len(valid) + len(DigineticaRawDataset(tmp_path, csv, "train")) == 1205


def test_yoochoose_raw_dataset(shared_data, tmp_path):
    dat = shared_data / "yoochoose_raw_sample" / "sample_yoochoose.dat"
    train = YoochooseRawDataset(tmp_path, dat, "train", fraction=1, valid_fraction=0.0)
    test = YoochooseRawDataset(tmp_path, dat, "test", fraction=1, valid_fraction=0.0)
    assert (len(train), len(test), train.num_items) == (357, 51, 91)
    seen = {i for p, lab in _sequences(train) for i in p + [lab]}
    assert {i for p, lab in _sequences(test) for i in p + [lab]} <= seen
    assert all(item.isdigit() for item in train.item_ids[1:])
    small = YoochooseRawDataset(tmp_path, dat, "train", fraction=4, valid_fraction=0.0)
    assert 357 // 4 <= len(small) < 357 and small.num_items == 91


def test_click_csv_dataset(shared_data, tmp_path):
    src = shared_data / "yoochoose_rsc15_100k" / "yoochoose-clicks-100k_test.txt"
    with open(src) as f:
        head = "".join(next(f) for _ in range(2001))
    path = tmp_path / "clicks.tsv"
    path.write_text(head)
    root = tmp_path / "cache"
    splits = {
        s: ClickCSVDataset(root, path, s, test_fraction=0.2) for s in ("train", "valid", "test")
    }
    train = splits["train"]
    stats = dataset_statistics(train)
    assert stats["train"]["min_length"] >= 2 and stats["test"]["min_length"] >= 2
    n_sessions = sum(stats[s]["sessions"] for s in ("train", "valid"))
    assert stats["valid"]["sessions"] == int(n_sessions * 0.1)
    # Ids map back to the raw item ids of the file.
    raw = {}
    for line in head.splitlines()[1:]:
        sid, item, _ = line.split("\t")
        raw.setdefault(sid, []).append(item)
    raw_sessions = {tuple(v) for v in raw.values()}
    ids = train.item_ids
    rebuilt = {tuple(ids[i] for i in p + [lab]) for p, lab in _sequences(train)}
    longest = [s for s in rebuilt if not any(len(t) > len(s) and t[: len(s)] == s for t in rebuilt)]
    assert set(longest) <= raw_sessions
    train_items = {i for p, lab in _sequences(train) for i in p + [lab]}
    valid_items = {i for p, lab in _sequences(splits["valid"]) for i in p + [lab]}
    test_items = {i for p, lab in _sequences(splits["test"]) for i in p + [lab]}
    assert test_items <= train_items | valid_items
    by_days = ClickCSVDataset(root, path, "test", test_days=0.25)
    assert by_days.fingerprint != splits["test"].fingerprint


def test_recbole_inter_dataset(tmp_path):
    path = tmp_path / "toy.inter"
    path.write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        "u1\tA\t1\t3\nu1\tB\t1\t1\nu1\tC\t1\t2\nu1\tD\t1\t4\nu1\tE\t1\t5\n"
        "u2\tB\t1\t1\nu2\tA\t1\t2\nu2\tF\t1\t3\n"
        "u3\tC\t1\t9\n"
    )
    root = tmp_path / "cache"
    train, valid, test = (RecBoleInterDataset(root, path, s) for s in ("train", "valid", "test"))
    ids = train.item_ids
    names = [[([ids[i] for i in p], ids[lab]) for p, lab in _sequences(d)]
             for d in (train, valid, test)]
    # u1 sorted: B C A D E; u2: B A F; u3 has no sample.
    assert names[0] == [(["B"], "C"), (["B", "C"], "A"), (["B"], "A")]
    assert names[1] == [(["B", "C", "A"], "D")]
    assert names[2] == [(["B", "C", "A", "D"], "E"), (["B", "A"], "F")]
    assert train.num_items == 7 and ids[0] == "[PAD]"


def test_recbole_inter_dataset_numbers_and_samples_like_recbole(tmp_path):
    # Rows out of time order, with ties (see RecBole 1.2.1's Dataset._remap and
    # SequentialDataset.data_augmentation): item ids by first appearance in
    # the file rows; a user's clicks sorted by float32 time, ties in row order.
    path = tmp_path / "toy.inter"
    path.write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        "u2\tB\t1\t1000000010\n"  # ties D below once float32 (spacing 64)
        "u1\tC\t1\t5\n"
        "u1\tA\t1\t3\n"
        "u2\tD\t1\t1000000000\n"
        "u1\tB\t1\t3\n"  # ties A above
        "u3\tE\t1\t7\n"
        "u1\tD\t1\t1\n"
        "u2\tA\t1\t1000000064\n"
        "u1\tF\t1\t9\n"
        "u2\tF\t1\t999999000\n"
    )
    root = tmp_path / "cache"
    splits = [RecBoleInterDataset(root, path, s) for s in ("train", "valid", "test")]
    assert splits[0].item_ids == ["[PAD]", "B", "C", "A", "D", "E", "F"]
    B, C, A, D, F = 1, 2, 3, 4, 6  # E = 5: u3's only item, in no sample
    # u2: F B D A; u1: D A B C F; u3: E (no sample). Users in file order.
    assert [_sequences(d) for d in splits] == [
        [([F], B), ([D], A), ([D, A], B)],
        [([F, B], D), ([D, A, B], C)],
        [([F, B, D], A), ([D, A, B, C], F)],
    ]
    # MAX_ITEM_LIST_LENGTH: only the most recent clicks of a prefix.
    short = [RecBoleInterDataset(root, path, s, max_length=2) for s in ("valid", "test")]
    assert [_sequences(d) for d in short] == [
        [([F, B], D), ([A, B], C)],
        [([B, D], A), ([B, C], F)],
    ]
    assert splits[2].num_items == 7


# ---------------------------------------------------------------------------
# Synthetic data and resolution
# ---------------------------------------------------------------------------


def test_synthetic_dataset_is_deterministic(tmp_path):
    a = SyntheticDataset(tmp_path / "a", "train", seed=1)
    b = SyntheticDataset(tmp_path / "b", "train", seed=1)
    c = SyntheticDataset(tmp_path / "c", "train", seed=2)
    assert a.num_items == 1001 and len(a) > 5000
    assert torch.equal(a._data.x, b._data.x) and torch.equal(a._data.y, b._data.y)
    assert not torch.equal(a._data.y[:100], c._data.y[:100])
    small = SyntheticDataset(
        tmp_path / "a", "test", generator_options={"num_items": 50, "num_test_sessions": 10}
    )
    assert small.num_items == 51 and small.fingerprint != a.fingerprint
    assert dataset_statistics(small)["test"]["sessions"] == 10


def test_load_dataset_resolution(shared_data, tmp_path):
    root = tmp_path / "cache"
    assert isinstance(load_dataset("synthetic", root, "valid"), SyntheticDataset)
    folder = _text_folder(tmp_path)
    assert isinstance(load_dataset(folder, root), SRGNNTextDataset)
    assert resolve_dataset_class(folder / "test.tsv") == (SRGNNTextDataset, folder)
    digi = shared_data / "sample_diginetica" / "sample_train-item-views.csv"
    assert isinstance(load_dataset(digi, root, "test"), DigineticaRawDataset)
    dat = shared_data / "yoochoose_raw_sample" / "sample_yoochoose.dat"
    assert isinstance(load_dataset(dat, root, "test", fraction=1), YoochooseRawDataset)
    csv = tmp_path / "c.csv"
    csv.write_text("session_id,item_id,timestamp\n1,a,1\n1,b,2\n2,a,3\n2,b,4\n3,a,5\n3,b,6\n")
    clicks = load_dataset(csv, root, "train", test_fraction=0.4, valid_fraction=0.0)
    assert isinstance(clicks, ClickCSVDataset) and len(clicks) == 2
    inter = tmp_path / "x.inter"
    inter.write_text("user_id:token\titem_id:token\ttimestamp:float\n1\t5\t1\n1\t6\t2\n")
    assert isinstance(load_dataset(inter, root), RecBoleInterDataset)
    assert issubclass(resolve_dataset_class("synthetic")[0], SessionDataset)
    with pytest.raises(FileNotFoundError):
        load_dataset(tmp_path / "missing.csv", root)
    (tmp_path / "x.parquet").write_text("")
    with pytest.raises(ValueError, match="unrecognised"):
        load_dataset(tmp_path / "x.parquet", root)


@pytest.mark.slow
def test_full_diginetica_counts(shared_data, tmp_path):
    """The whole published Diginetica split, processed once (a few seconds)."""
    train = SRGNNTextDataset(tmp_path, shared_data / "diginetica", "train")
    stats = dataset_statistics(train)
    assert train.num_items == 43098
    assert stats["train"]["samples"] + stats["valid"]["samples"] == 719470
    assert stats["train"]["sessions"] + stats["valid"]["sessions"] == 186670
    assert stats["valid"]["sessions"] == 18667
    assert stats["test"]["samples"] == 60858 and stats["test"]["sessions"] == 15963
    assert stats["test"]["items"] == 21131
    clicks = stats["train"]["clicks"] + stats["valid"]["clicks"] + stats["test"]["clicks"]
    assert clicks == 982961
    assert len(train) == stats["train"]["samples"]
    test = SRGNNTextDataset(tmp_path, shared_data / "diginetica", "test")
    assert len(test) == 60858 and int(test.slices["alias"][-1]) == test._data.alias.numel()
