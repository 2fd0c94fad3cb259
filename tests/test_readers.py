"""Readers, SR-GNN preprocessing and the synthetic generator."""
from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from itertools import islice
from pathlib import Path

import numpy as np
import pytest
import torch

from gcsan_pyg.data import SessionSamples, SessionSplit, sessions_of
from gcsan_pyg.data.item_ids import PAD_TOKEN
from gcsan_pyg.data.preprocess import (
    preprocess_diginetica,
    preprocess_yoochoose,
    read_diginetica_raw,
    read_yoochoose_raw,
    srgnn_pipeline,
)
from gcsan_pyg.data.readers import (
    DataFormatError,
    read_clicks,
    read_inter,
    read_inter_file,
    read_samples,
    read_sessions,
)
from gcsan_pyg.data.synthetic import generate_synthetic_sessions, zipf_ranks
from gcsan_pyg.datasets import DigineticaRawDataset, resolve_dataset_class

SAMPLE = "sample_diginetica"
BIG = ["diginetica", "yoochoose1_64", "tmall", "nowplaying", "retailrocket"]


def _head(src: Path, dst: Path, lines: int = 2000) -> Path:
    with open(src, encoding="utf-8") as f:
        dst.write_text("".join(islice(f, lines)), encoding="utf-8")
    return dst


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _canon(session):
    """A session's shape up to a renaming of its items."""
    names: dict[int, int] = {}
    return tuple(names.setdefault(i, len(names)) for i in session)


def _augment(sessions):
    """SR-GNN's sequence splitting, written out: per session s and i = 1 .. len(s) - 1,
    in order, the sample (s[:-i], s[-i])."""
    return [(s[:-i], s[-i]) for s in sessions for i in range(1, len(s))]


def _pairs(samples: SessionSamples):
    """(prefix, label) pairs, read straight from the storage."""
    items = samples.items.tolist()
    return [(items[a:a + n], t) for a, n, t in
            zip(samples.start.tolist(), samples.length.tolist(), samples.target.tolist())]


def _num_samples(sessions) -> int:
    """How many samples the library's augmentation makes of the sessions."""
    return len(SessionSplit.from_lists(sessions).samples)


# ---------------------------------------------------------------------------
# SR-GNN text on the real files
# ---------------------------------------------------------------------------


def test_sample_text_files_and_augmentation(shared_data):
    folder = shared_data / SAMPLE / "srgnn_processed"
    sessions = read_sessions(folder / "train_sessions.txt")
    train = read_samples(folder / "train.tsv")
    test = read_samples(folder / "test.tsv")
    assert isinstance(test, SessionSamples)
    assert (len(sessions), len(train), len(test)) == (469, 1205, 99)
    # The README's derivation of SR-GNN's train.txt, exactly (order included),
    # both written out and as the library does it.
    assert _augment(sessions) == _pairs(train)
    assert _pairs(SessionSplit.from_lists(sessions).samples) == _pairs(train)
    items = {i for s in sessions for i in s}
    assert items == set(range(1, 310))
    assert set(test.items.tolist()) | set(test.target.tolist()) <= items
    assert (min(map(len, sessions)), max(map(len, sessions))) == (2, 17)
    # Test sessions rebuilt from the samples: 39, whose augmentation is the file.
    test_items, test_ptr, _ = sessions_of(test)
    assert test_ptr.numel() - 1 == 39
    assert _pairs(SessionSamples.from_sessions(test_items, test_ptr)) == _pairs(test)


@pytest.mark.parametrize("name", BIG)
def test_big_text_files_head(shared_data, tmp_path, name):
    stats = json.loads((shared_data / "stats.json").read_text())[name]
    sessions = read_sessions(_head(shared_data / name / "train_sessions.txt", tmp_path / "s.txt"))
    test = read_samples(_head(shared_data / name / "test.tsv", tmp_path / "t.tsv"))
    assert len(sessions) == 2000 and len(test) == 2000
    lengths = [len(s) for s in sessions]
    assert stats["train_session_len_min"] <= min(lengths)
    assert max(lengths) <= stats["train_session_len_max"]
    top = stats["item_id_max"]
    assert all(1 <= i <= top for s in sessions for i in s)
    test.check(num_items=top + 1)
    assert int(test.start[0]) == 0 and int(test.start[-1] + test.length[-1]) == len(test.items)
    prefix = test.length
    assert stats["test_prefix_len_min"] <= int(prefix.min())
    assert int(prefix.max()) <= stats["test_prefix_len_max"]
    assert _num_samples(sessions) == len(_augment(sessions)) == sum(n - 1 for n in lengths)


# ---------------------------------------------------------------------------
# Click logs and .inter files
# ---------------------------------------------------------------------------


def _check_sorted(sessions):
    for s in sessions:
        assert s.timestamps == sorted(s.timestamps)
        assert len(s.items) == len(s.timestamps)
    ends = [s.end_time for s in sessions]
    assert ends == sorted(ends)


def test_read_clicks_rsc15(shared_data, tmp_path):
    folder = shared_data / "yoochoose_rsc15_100k"
    test = read_clicks(folder / "yoochoose-clicks-100k_test.txt")  # tab, SessionId/ItemId/Time
    assert len(test) == 3416
    assert sum(len(s.items) for s in test) == 13568
    assert len({i for s in test for i in s.items}) == 1771
    assert min(len(s.items) for s in test) == 2 and max(len(s.items) for s in test) == 78
    _check_sorted(test)
    head = _head(folder / "yoochoose-clicks-100k_train_full.txt", tmp_path / "train.tsv")
    train = read_clicks(head, "SessionId", "ItemId", "Time", delimiter="\t")
    assert sum(len(s.items) for s in train) == 1999
    _check_sorted(train)
    # Same file without its header, columns by index.
    body = tmp_path / "body.tsv"
    body.write_text("".join(head.read_text().splitlines(True)[1:]))
    again = read_clicks(body, 0, 1, 2, header=False)
    assert [(s.session_id, s.items) for s in again] == [(s.session_id, s.items) for s in train]


def test_read_clicks_sorts_and_iso_times(tmp_path):
    path = _write(
        tmp_path,
        "c.csv",
        "session_id,item_id,timestamp\n"
        "a,x,2014-04-01T10:00:05Z\n"
        "b,y,2014-04-01T09:00:00Z\n"
        "a,z,2014-04-01T10:00:01Z\n"
        "b,x,2014-04-01T09:30:00\n",
    )
    sessions = read_clicks(path)
    assert [s.session_id for s in sessions] == ["b", "a"]  # by last click
    assert sessions[1].items == ["z", "x"]  # clicks by time
    assert sessions[0].timestamps[1] - sessions[0].timestamps[0] == 1800


def test_read_inter_matches_clicks(shared_data, tmp_path):
    head = _head(
        shared_data / "yoochoose_rsc15_100k" / "yoochoose-clicks-100k_test.txt", tmp_path / "h.tsv"
    )
    rows = head.read_text().splitlines()[1:]
    lines = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    for row in reversed(rows):  # reversed: the reader must sort by time
        sid, item, t = row.split("\t")
        lines.append(f"{sid}\t{item}\t1.0\t{t}")
    inter = _write(tmp_path, "rsc.inter", "\n".join(lines) + "\n")
    users = read_inter(inter)
    clicks = read_clicks(head)
    assert {u.session_id: sorted(u.items) for u in users} == {
        s.session_id: sorted(s.items) for s in clicks
    }
    # In time order as RecBole sees it: float32 (spacing 128 s at 1.4e9), so
    # many clicks tie and keep the order of the (reversed) file.
    held = {}
    for line in lines[1:]:
        sid, item, _, t = line.split("\t")
        held.setdefault(sid, []).append((float(np.float32(t)), item))
    assert {u.session_id: u.items for u in users} == {
        sid: [item for _, item in sorted(pairs, key=lambda pair: pair[0])]
        for sid, pairs in held.items()
    }
    assert {u.session_id: u.items for u in users} != {s.session_id: s.items for s in clicks}
    for u in users:
        assert u.timestamps == sorted(u.timestamps)


#: A RecBole .inter file whose row order is not time order, with ties: u1's A
#: and B share time 3; u2's B and D differ (1000000010 vs 1000000000) but are
#: equal once RecBole stores them as float32 (spacing 64 at 1e9).
RECBOLE_INTER = (
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
)


def test_read_inter_orders_like_recbole(tmp_path):
    users = read_inter(_write(tmp_path, "toy.inter", RECBOLE_INTER))
    # Users in order of first appearance (RecBole's ids); clicks by float32
    # time, ties in file order: u1's A (row 3) before B (row 5); u2's B (row 1)
    # before D (row 4), although D is 10 s earlier in float64.
    assert [(u.session_id, u.items) for u in users] == [
        ("u2", ["F", "B", "D", "A"]),
        ("u1", ["D", "A", "B", "C", "F"]),
        ("u3", ["E"]),
    ]
    # The times are what RecBole sorts: float32.
    assert users[0].timestamps == [999998976.0, 1e9, 1e9, 1000000064.0]
    assert users[1].timestamps == [1.0, 3.0, 3.0, 5.0, 9.0]
    # RecBole's item ids 1, 2, ...: by first appearance in the rows.
    inter = read_inter_file(tmp_path / "toy.inter")
    assert inter.item_tokens == ["B", "C", "A", "D", "E", "F"]
    assert inter.users == users


# ---------------------------------------------------------------------------
# Bad inputs: the error names the file, the line and the reason
# ---------------------------------------------------------------------------

BAD_SESSIONS = [
    ("1,2\n1,x,3\n", 2, "non-integer token 'x'"),
    ("1,2\n\n3,4\n", 2, "empty session"),
    ("1,0\n", 1, "invalid item id 0"),
    ("3,4\n1,-3\n", 2, "invalid item id -3"),
    ("1,,2\n", 1, "non-integer token ''"),
    ("1_0,2\n", 1, "non-integer token '1_0'"),
    ("1\t2\n", 1, "non-integer token"),
]
BAD_SAMPLES = [
    ("1,2\t3\n1,2\n", 2, "missing label"),
    ("1,2\t\n", 1, "missing label"),
    ("\t3\n", 1, "empty prefix"),
    ("1\t2\t3\n", 1, "expected 2 tab-separated columns"),
    ("1\tx\n", 1, "non-integer token 'x'"),
    ("1\t0\n", 1, "invalid item id 0"),
    ("0,1\t2\n", 1, "invalid item id 0"),
    ("1\t2,3\n", 1, "one item id"),
    ("1\t2\n\n1\t2\n", 2, "empty line"),
]
BAD_CLICKS = [
    ("session_id,item_id,timestamp\n1,5,10\n1,6\n", 3, "missing column"),
    ("session_id,item_id,timestamp\n1,5,yesterday\n", 2, "invalid timestamp"),
    ("session_id,item_id,timestamp\n1,,10\n", 2, "empty item id"),
    ("session_id,item_id\n1,5\n", 1, "missing time column"),
    # Issue 19.2: NaN and inf used to be accepted, making the time order undefined.
    ("session_id,item_id,timestamp\n1,5,10\n1,6,nan\n", 3, "invalid timestamp 'nan' (not "
     "finite)"),
    ("session_id\titem_id\ttimestamp\n1\t5\t-inf\n", 2, "invalid timestamp '-inf' (not "
     "finite)"),
    ("session_id,item_id,timestamp\n1,5,Infinity\n", 2, "(not finite)"),
]
BAD_INTER = [
    ("user_id:token\titem_id:token\n1\t2\n", 1, "missing field 'timestamp'"),
    ("user_id:token\titem_id:token\ttimestamp:float\n1\t2\t3\n1\t2\n", 3, "missing column"),
    ("user_id:token\titem_id:token\ttimestamp:float\n1\t2\tnoon\n", 2, "invalid timestamp"),
    ("user_id:token\titem_id:token\ttimestamp:float\n1\t2\t1\n1\t3\tnan\n", 3, "(NaN)"),
]
BAD_DIGINETICA = [
    ("sessionId;userId;itemId;timeframe;eventdate\n1;NA;5;10;2016-01-01\n1;NA;6\n", 3,
     "missing column"),
    ("sessionId;userId;itemId;timeframe;eventdate\n1;NA;5;soon;2016-01-01\n", 2,
     "non-integer timeframe"),
    ("sessionId;userId;itemId;eventdate\n1;NA;5;2016-01-01\n", 1, "missing column 'timeframe'"),
]
BAD_YOOCHOOSE = [
    ("1,2014-04-07T10:00:00.000Z,5,0\n2,2014-04-07T10:00:00.000Z\n", 2, "missing column"),
    ("1,2014-04-07T10:00:00.000Z,5,0\n1,noon,6,0\n", 2, "invalid timestamp"),
]

CASES = (
    [(read_sessions, "s.txt", *c) for c in BAD_SESSIONS]
    + [(read_samples, "t.tsv", *c) for c in BAD_SAMPLES]
    + [(read_clicks, "c.csv", *c) for c in BAD_CLICKS]
    + [(read_inter, "x.inter", *c) for c in BAD_INTER]
    + [(read_diginetica_raw, "d.csv", *c) for c in BAD_DIGINETICA]
    + [(read_yoochoose_raw, "y.dat", *c) for c in BAD_YOOCHOOSE]
)


@pytest.mark.parametrize("reader, name, text, line, reason", CASES)
def test_bad_input(tmp_path, reader, name, text, line, reason):
    path = _write(tmp_path, name, text)
    with pytest.raises(DataFormatError) as info:
        reader(path)
    err = info.value
    assert isinstance(err, ValueError)
    assert err.line == line and err.path == str(path)
    message = str(err)
    assert str(path) in message and f"line {line}" in message and reason in message


def test_bad_diginetica_date_names_the_file(tmp_path):
    path = _write(tmp_path, "d.csv", "sessionId;userId;itemId;timeframe;eventdate\n"
                  "1;NA;5;1;2016-13-45\n")
    with pytest.raises(DataFormatError, match="invalid eventdate '2016-13-45'") as info:
        read_diginetica_raw(path)
    assert str(path) in str(info.value)


HEADER_ONLY = [
    (read_clicks, "c.csv", "session_id,item_id,timestamp\n", "no click after the header line"),
    (read_inter, "x.inter", "user_id:token\titem_id:token\ttimestamp:float\n",
     "no interaction after the header line"),
    (read_diginetica_raw, "d.csv", "sessionId;userId;itemId;timeframe;eventdate\n",
     "no click after the header line"),
    (read_yoochoose_raw, "y.dat", "session_id,timestamp,item_id,category\n",
     "no click in the file"),
]


@pytest.mark.parametrize("reader, name, text, reason", HEADER_ONLY)
def test_a_header_only_file_says_so(tmp_path, reader, name, text, reason):
    # Issue 19.8: these used to end in "'num_items' must be >= 2".
    path = _write(tmp_path, name, text)
    with pytest.raises(DataFormatError, match=reason) as info:
        reader(path)
    assert info.value.path == str(path) and str(info.value).startswith(str(path))


def test_a_utf8_byte_order_mark_is_dropped(tmp_path):
    # Issue 19.8: spreadsheet programs write one; it made an SR-GNN file fail
    # on '\ufeff1' and a Diginetica CSV look like a generic click log.
    bom = "\ufeff"
    assert read_sessions(_write(tmp_path, "s.txt", bom + "1,2\n3\n")) == [[1, 2], [3]]
    assert read_samples(_write(tmp_path, "t.tsv", bom + "1,2\t3\n")).target.tolist() == [3]
    clicks = read_clicks(_write(tmp_path, "c.csv", bom + "session_id,item_id,timestamp\n"
                                                        "1,5,10\n1,6,11\n"))
    assert [s.items for s in clicks] == [["5", "6"]]
    inter = read_inter(_write(tmp_path, "x.inter", bom + "user_id:token\titem_id:token\t"
                                                        "timestamp:float\n1\t2\t3\n"))
    assert [u.items for u in inter] == [["2"]]
    digi = bom + "sessionId;userId;itemId;timeframe;eventdate\n1;NA;5;1;2016-01-01\n"
    path = _write(tmp_path, "d.csv", digi)
    assert read_diginetica_raw(path)[0] == {"1": ["5"]}
    assert resolve_dataset_class(path)[0] is DigineticaRawDataset


def test_trailing_blank_lines_and_crlf_are_accepted(tmp_path):
    path = _write(tmp_path, "s.txt", "1,2\r\n3,4\r\n\r\n\n")
    assert read_sessions(path) == [[1, 2], [3, 4]]


# ---------------------------------------------------------------------------
# SR-GNN preprocessing of the raw logs
# ---------------------------------------------------------------------------


def test_diginetica_sample_matches_srgnn_counts(shared_data):
    folder = shared_data / SAMPLE
    result = preprocess_diginetica(folder / "sample_train-item-views.csv")
    assert len(result.train_sessions) == 469
    assert _num_samples(result.train_sessions) == 1205
    assert _num_samples(result.test_sessions) == 99
    assert len(result.test_sessions) == 39
    assert result.num_items - 1 == 309
    # Same sessions as SR-GNN's output up to the id renaming (which depends
    # on Python 2 dict order): the multisets of session shapes agree, and so
    # do the prefix lengths of the test samples.
    reference = read_sessions(folder / "srgnn_processed" / "train_sessions.txt")
    assert Counter(map(_canon, result.train_sessions)) == Counter(map(_canon, reference))
    ref_test = read_samples(folder / "srgnn_processed" / "test.tsv")
    assert sorted(len(p) for p, _ in _augment(result.test_sessions)) == sorted(
        ref_test.length.tolist())
    # Ids 1..309 in order of first appearance in training; raw ids kept.
    first_seen = list(dict.fromkeys(i for s in result.train_sessions for i in s))
    assert first_seen == list(range(1, 310))
    assert result.item_ids[0] == PAD_TOKEN and len(set(result.item_ids)) == 310
    train_items = {i for s in result.train_sessions for i in s}
    assert {i for s in result.test_sessions for i in s} <= train_items
    assert max(result.train_dates) < min(result.test_dates)


def test_srgnn_steps_on_a_tiny_log(tmp_path):
    # Items a..e are seen 5+ times, 'r' is rare; session 9 is dated exactly
    # at the split date (7 days before the last date) and is dropped.
    rows = ["sessionId;userId;itemId;timeframe;eventdate"]
    day = {1: "2016-01-01", 2: "2016-01-02", 3: "2016-01-03", 4: "2016-01-04",
           5: "2016-01-05", 6: "2016-01-12", 7: "2016-01-12", 8: "2016-01-15",
           9: "2016-01-08", 10: "2016-01-02"}
    clicks = {1: ["b:20", "a:10", "c:30"], 2: ["a:1", "b:2"], 3: ["c:5", "r:1", "d:9"],
              4: ["a:1", "e:2", "b:3"], 5: ["e:1"], 6: ["d:3", "c:1", "e:2", "z:4"],
              7: ["a:1", "r:2"], 8: ["b:1", "c:2", "d:3", "e:4", "a:5"], 9: ["a:1", "d:2", "e:3"],
              10: ["b:1", "c:2", "d:3", "e:4"]}
    for sid, cl in clicks.items():
        for c in cl:
            item, frame = c.split(":")
            rows.append(f"{sid};NA;{item};{frame};{day[sid]}")
    path = _write(tmp_path, "views.csv", "\n".join(rows))
    result = preprocess_diginetica(path)
    # Train: sessions 1, 2, 10, 3, 4 (date order, ties by first appearance),
    # clicks sorted by timeframe, the rare 'r' gone.
    assert [[result.item_ids[i] for i in s] for s in result.train_sessions] == [
        ["a", "b", "c"], ["a", "b"], ["b", "c", "d", "e"], ["c", "d"], ["a", "e", "b"]]
    # Test: 6 loses 'z' (rare), 7 loses 'r' and is then too short, 8 stays.
    assert [[result.item_ids[i] for i in s] for s in result.test_sessions] == [
        ["c", "e", "d"], ["b", "c", "d", "e", "a"]]
    assert result.item_ids == [PAD_TOKEN, "a", "b", "c", "d", "e"]


def test_yoochoose_sample(shared_data):
    path = shared_data / "yoochoose_raw_sample" / "sample_yoochoose.dat"
    clicks, dates = read_yoochoose_raw(path)
    assert len(clicks) == 461 and sum(map(len, clicks.values())) == 1913
    full = preprocess_yoochoose(path, fraction=1)
    assert len(full.train_sessions) == 158 and _num_samples(full.train_sessions) == 357
    assert len(full.test_sessions) == 25 and _num_samples(full.test_sessions) == 51
    assert full.num_items == 91
    train_items = {i for s in full.train_sessions for i in s}
    assert train_items == set(range(1, 91))
    assert {i for s in full.test_sessions for i in s} <= train_items
    assert min(map(len, full.train_sessions + full.test_sessions)) >= 2
    assert full.train_dates == sorted(full.train_dates)
    assert max(full.train_dates) < min(full.test_dates)
    assert max(full.test_dates) - min(full.test_dates) < 86400 <= max(full.test_dates) - min(
        full.train_dates
    )
    assert max(full.test_dates) <= max(dates.values())
    total = _num_samples(full.train_sessions)
    for fraction in (4, 64):
        part = preprocess_yoochoose(path, fraction=fraction)
        keep = total // fraction
        # The most recent sessions, from the one holding the first of the
        # last `keep` samples; ids and test stay those of the whole period.
        n = len(part.train_sessions)
        assert part.train_sessions == full.train_sessions[len(full.train_sessions) - n:]
        assert _num_samples(part.train_sessions) >= keep > _num_samples(part.train_sessions[1:])
        assert part.test_sessions == full.test_sessions and part.item_ids == full.item_ids


def test_pipeline_by_test_fraction():
    clicks = {str(k): ["a", "b", "a"] for k in range(10)}
    dates = {str(k): float(k) for k in range(10)}
    result = srgnn_pipeline(clicks, dates, test_fraction=0.3, min_item_support=1)
    assert len(result.train_sessions) == 7 and len(result.test_sessions) == 3
    with pytest.raises(ValueError, match="exactly one"):
        srgnn_pipeline(clicks, dates, test_days=1, test_fraction=0.3)


# ---------------------------------------------------------------------------
# Synthetic data
# ---------------------------------------------------------------------------


def _sessions(items, ptr) -> list[list[int]]:
    items, ptr = items.tolist(), ptr.tolist()
    return [items[a:b] for a, b in zip(ptr[:-1], ptr[1:])]


def test_synthetic_is_deterministic_fast_and_learnable():
    start = time.perf_counter()
    data = generate_synthetic_sessions(seed=3)
    assert time.perf_counter() - start < 1.0
    again = generate_synthetic_sessions(seed=3)
    other = generate_synthetic_sessions(seed=4)
    for name in ("train_items", "train_ptr", "test_items", "test_ptr"):
        assert torch.equal(getattr(data, name), getattr(again, name)), name
        assert getattr(data, name).dtype == torch.long, name
    assert not torch.equal(data.train_items[:100], other.train_items[:100])
    train = _sessions(data.train_items, data.train_ptr)
    test = _sessions(data.test_items, data.test_ptr)
    assert data.num_items == 1000
    assert int(data.train_ptr[0]) == int(data.test_ptr[0]) == 0
    assert int(data.train_ptr[-1]) == data.train_items.numel()
    assert int(data.test_ptr[-1]) == data.test_items.numel()
    assert len(train) == 3000 and len(test) == 750
    assert all(2 <= len(s) <= 20 for s in train + test)
    assert all(1 <= i <= 1000 for s in train + test for i in s)
    # Learnable: last-item transition counts beat popularity by far (Hit@20).
    follow: dict[int, Counter] = defaultdict(Counter)
    popular: Counter = Counter()
    for s in train:
        for a, b in zip(s, s[1:]):
            follow[a][b] += 1
            popular[b] += 1
    top = {i for i, _ in popular.most_common(20)}
    samples = _augment(test)
    markov = sum(lab in {i for i, _ in follow[p[-1]].most_common(20)} for p, lab in samples)
    pop = sum(lab in top for _, lab in samples)
    assert markov / len(samples) > 0.7 and pop / len(samples) < 0.4


def test_synthetic_with_ten_million_items_is_fast_and_in_range():
    """Popularity is drawn in closed form: no O(num_items) work per draw."""
    start = time.perf_counter()
    data = generate_synthetic_sessions(num_items=10**7, num_train_sessions=2000,
                                       num_test_sessions=500, seed=1)
    elapsed = time.perf_counter() - start
    assert elapsed < 20.0, f"{elapsed:.1f} s for 10**7 items"
    assert data.num_items == 10**7
    for items in (data.train_items, data.test_items):
        assert 1 <= int(items.min()) and int(items.max()) <= 10**7
    assert data.train_ptr.numel() == 2001 and data.test_ptr.numel() == 501
    lengths = torch.cat([data.train_ptr.diff(), data.test_ptr.diff()])
    assert 2 <= int(lengths.min()) and int(lengths.max()) <= 20
    # Spread over the catalogue, not piled on a few ids.
    assert torch.unique(data.train_items).numel() > 1000


class _FixedDraws:
    """A random generator whose uniforms are given, to reach the ends of [0, 1)."""

    def __init__(self, values):
        self.values = np.asarray(values, dtype=np.float64)

    def random(self, size):
        return np.resize(self.values, size)


@pytest.mark.parametrize("exponent", [0.55, 1.0, 1.1, 2.0])
@pytest.mark.parametrize("num", [2, 1000, 10**7])
def test_zipf_ranks_stay_in_range(exponent, num):
    u = [0.0, 1e-12, 0.5, 1.0 - 2.0**-53]
    ranks = zipf_ranks(_FixedDraws(u), exponent, num, (len(u),))
    assert ranks.dtype == np.int64
    assert ranks.min() >= 0 and ranks.max() <= num - 1
    assert ranks[0] == 0 and np.all(np.diff(ranks) >= 0)  # rank grows with u
    # The continuous law r^-a on [1, num + 1), floored: P(rank < k) = F(k + 1), with
    # F(x) = (x^(1-a) - 1) / ((num + 1)^(1-a) - 1) (log x / log(num + 1) for a = 1).
    many = zipf_ranks(np.random.default_rng(0), exponent, num, 20000)
    assert many.min() >= 0 and many.max() <= num - 1
    for k in {1, max(num // 100, 1), max(num // 10, 1)}:
        if exponent == 1.0:
            expected = np.log(k + 1) / np.log(num + 1)
        else:
            power = 1.0 - exponent
            expected = ((k + 1) ** power - 1) / ((num + 1) ** power - 1)
        assert abs((many < k).mean() - expected) < 0.02, k
