"""Robustness: random inputs to the graph builders, the sample container and
the file readers give either a correct result or a ValueError that says what
is wrong, never another exception."""
from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch_geometric.data import Batch

from gcsan_pyg.data.readers import (
    DataFormatError,
    RawSession,
    read_clicks,
    read_inter,
    read_samples,
    read_sessions,
)
from gcsan_pyg.data.samples import SessionSamples
from gcsan_pyg.data.session_batch import batch_from_clicks, build_session_batch
from gcsan_pyg.data.session_graph import session_to_graph

INT64_MAX = 2**63 - 1
FUZZ = settings(max_examples=250, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])
# Fewer examples where one costs several vectorised calls (ms each on busy CPUs).
FUZZ_SAMPLES = settings(FUZZ, max_examples=80)


pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Item ids around every edge: negative, zero, small, near 2**62, int64's end and beyond.
ids = st.one_of(
    st.integers(1, 40),
    st.integers(-3, 0),
    st.integers(2**62 - 3, 2**62 + 3),
    st.integers(INT64_MAX - 2, INT64_MAX),
    st.integers(INT64_MAX + 1, 2**64 + 2),
    st.integers(-(2**64), -(2**62)),
)
int64_ids = ids.filter(lambda i: -(2**63) <= i <= INT64_MAX)


def _check_graph(graph, items: list[int], target: int | None) -> None:
    """``graph`` is the session graph of ``items``, checked from its definition."""
    x = graph.x.tolist()
    assert x == sorted(set(items))
    assert graph.x[graph.alias].tolist() == items
    node = {item: n for n, item in enumerate(x)}
    pairs = sorted({(node[a], node[b]) for a, b in zip(items, items[1:])})
    assert [tuple(e) for e in graph.edge_index.t().tolist()] == pairs
    if target is not None:
        assert graph.y.tolist() == [target]


# Graph builders -------------------------------------------------------------------------


@FUZZ
@given(st.lists(ids, max_size=12), st.one_of(st.none(), ids),
       st.one_of(st.none(), st.integers(-3, 50), st.integers(2**62, 2**64)))
def test_session_to_graph_is_correct_or_a_value_error(items, target, num_items):
    upper = min(num_items, INT64_MAX + 1) if num_items is not None else INT64_MAX + 1
    valid = (
        bool(items)
        and (num_items is None or 1 <= num_items <= INT64_MAX)
        and all(1 <= i < upper for i in items)
        and (target is None or 1 <= target < upper)
    )
    if not valid:
        with pytest.raises(ValueError) as info:
            session_to_graph(items, target, num_items)
        # With a usable table size and 64-bit ids, the first bad click is named.
        bad = [(k, i) for k, i in enumerate(items) if not 1 <= i < upper]
        if (bad and (num_items is None or 1 <= num_items <= INT64_MAX)
                and all(-(2**63) <= i <= INT64_MAX for i in items)):
            entry, value = bad[0]
            assert f"session's item id {value} (entry {entry}) is outside [1, " \
                in str(info.value)
            assert "0 is the padding id" in str(info.value)
        return
    _check_graph(session_to_graph(items, target, num_items), items, target)


def _padded(sessions: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in sessions)
    return (torch.tensor([s + [0] * (width - len(s)) for s in sessions]),
            torch.tensor([len(s) for s in sessions]))


@FUZZ
@given(st.lists(st.lists(int64_ids, min_size=1, max_size=8), min_size=1, max_size=6),
       st.one_of(st.none(), st.integers(1, 60), st.integers(2**62, INT64_MAX)))
def test_build_session_batch_is_correct_or_a_value_error(sessions, num_items):
    item_seq, lengths = _padded(sessions)
    target = torch.arange(1, len(sessions) + 1)
    upper = num_items if num_items is not None else INT64_MAX + 1
    if not all(1 <= i < upper for s in sessions for i in s):
        with pytest.raises(ValueError):
            build_session_batch(item_seq, lengths, target, num_items=num_items)
        return
    batch = build_session_batch(item_seq, lengths, target, num_items=num_items)
    expected = Batch.from_data_list([session_to_graph(s, int(t)) for s, t in zip(sessions, target)])
    for key in ("x", "edge_index", "alias", "batch", "ptr", "y"):
        assert torch.equal(batch[key], expected[key]), key
    # The loader's path: ids known to be valid, the table size given, no checks.
    fast = build_session_batch(item_seq, lengths, target, num_items=num_items, validate=False)
    for key in ("x", "edge_index", "alias", "batch", "ptr"):
        assert torch.equal(fast[key], expected[key]), key


@FUZZ
@given(st.data())
def test_build_session_batch_rejects_malformed_input(data):
    sessions = data.draw(st.lists(st.lists(st.integers(1, 30), min_size=1, max_size=5),
                                  min_size=1, max_size=4))
    item_seq, lengths = _padded(sessions)
    breakage = data.draw(st.sampled_from(
        ["length", "padding", "dtype", "shape", "lengths_shape", "empty"]))
    if breakage == "length":
        row = data.draw(st.integers(0, len(sessions) - 1))
        lengths[row] = data.draw(st.sampled_from([0, -1, item_seq.size(1) + 1, 2**62]))
    elif breakage == "padding":
        item_seq = torch.cat([item_seq, torch.full((len(sessions), 1), 7)], dim=1)
    elif breakage == "dtype":
        item_seq = item_seq.to(data.draw(st.sampled_from([torch.float32, torch.bool])))
    elif breakage == "shape":
        item_seq = item_seq.view(-1)
    elif breakage == "lengths_shape":
        lengths = torch.cat([lengths, lengths])
    else:
        item_seq, lengths = item_seq[:0], lengths[:0]
    with pytest.raises(ValueError):
        build_session_batch(item_seq, lengths)


# Samples to graphs: the loader's path ----------------------------------------------------

# Valid ids only: small, near 2**62 and at int64's end (keys of (session, item) overflow).
valid_ids = st.one_of(st.integers(1, 6), st.integers(2**62 - 2, 2**62 + 2),
                      st.integers(INT64_MAX - 3, INT64_MAX - 1))


@FUZZ_SAMPLES
@given(st.lists(st.lists(valid_ids, min_size=2, max_size=7), min_size=1, max_size=5),
       st.integers(1, 3), st.one_of(st.none(), st.integers(1, 5)), st.data())
def test_samples_to_batches_equal_session_graphs(sessions, min_prefix_length, max_length, data):
    ptr = [0]
    for s in sessions:
        ptr.append(ptr[-1] + len(s))
    items = torch.tensor([i for s in sessions for i in s], dtype=torch.long)
    samples = SessionSamples.from_sessions(items, torch.tensor(ptr), min_prefix_length)
    reference = [(s[:-i], s[-i]) for s in sessions for i in range(1, len(s))
                 if len(s) - i >= min_prefix_length]
    if not reference:
        assert len(samples) == 0
        return
    samples.check()
    index = data.draw(st.lists(st.integers(0, len(reference) - 1), min_size=1, max_size=6))
    idx = torch.tensor(index)
    chosen = [(reference[k][0] if max_length is None else reference[k][0][-max_length:],
               reference[k][1]) for k in index]
    expected = Batch.from_data_list([session_to_graph(p, t) for p, t in chosen])
    target = samples.target[idx]
    clicks, lengths = samples.clicks(idx, max_length)
    built = {"clicks": batch_from_clicks(clicks, lengths, target)}
    seq, lengths = samples.padded(idx, max_length)
    built["padded"] = build_session_batch(seq, lengths, target)
    for how, batch in built.items():
        for key in ("x", "edge_index", "alias", "batch", "ptr", "y"):
            assert torch.equal(batch[key], expected[key]), (how, key)


@FUZZ_SAMPLES
@given(st.lists(st.lists(int64_ids, min_size=1, max_size=4), max_size=4), st.data(),
       st.one_of(st.none(), st.integers(1, 50), st.integers(2**62, INT64_MAX)))
def test_samples_check_names_the_first_bad_id(prefixes, data, num_items):
    targets = data.draw(st.lists(int64_ids, min_size=len(prefixes), max_size=len(prefixes)))
    samples = SessionSamples.from_lists(prefixes, targets)
    upper = num_items if num_items is not None else INT64_MAX + 1
    clicks = [(f"sample {n}, position {k} of its prefix", i)
              for n, p in enumerate(prefixes) for k, i in enumerate(p)]
    bad_click = next(((where, i) for where, i in clicks if not 1 <= i < upper), None)
    bad_target = next(((f"sample {k}", i) for k, i in enumerate(targets)
                       if not 1 <= i < upper), None)
    if bad_click is None and bad_target is None:
        samples.check(num_items)
        return
    with pytest.raises(ValueError) as info:
        samples.check(num_items)
    what, (entry, value) = (("clicked", bad_click) if bad_click is not None
                            else ("target", bad_target))
    assert str(info.value).startswith(f"{what} item id {value} ({entry}) is outside [1, ")


@FUZZ_SAMPLES
@given(st.integers(0, 6), st.data())
def test_samples_storage_is_consistent_or_a_value_error(num_items, data):
    size = data.draw(st.integers(0, 4))
    small = st.integers(-3, 8)
    start = data.draw(st.lists(small, min_size=size, max_size=size + data.draw(st.integers(0, 1))))
    length = data.draw(st.lists(small, min_size=size, max_size=size))
    target = data.draw(st.lists(st.integers(1, 5), min_size=size, max_size=size))
    items = list(range(1, num_items + 1))
    valid = (len(start) == size
             and all(n >= 1 and a >= 0 and a + n <= num_items for a, n in zip(start, length)))
    if not valid:
        with pytest.raises(ValueError):
            SessionSamples(items, start, length, target)
        return
    samples = SessionSamples(items, start, length, target)
    expected = [(items[a:a + n], t) for a, n, t in zip(start, length, target)]
    assert [(samples.prefix(k), int(samples.target[k])) for k in range(size)] == expected
    clicks, lengths = samples.clicks()
    assert clicks.tolist() == [i for p, _ in expected for i in p]
    assert lengths.tolist() == length


def test_very_long_sessions_with_huge_ids():
    generator = torch.Generator().manual_seed(0)
    long = torch.randint(2**62, 2**62 + 500, (10_000,), generator=generator).tolist()
    graph = session_to_graph(long, target=2**62)
    _check_graph(graph, long, 2**62)  # ~500 nodes, ~10k transitions
    sessions = [long, [INT64_MAX, 1, INT64_MAX], [5]]
    item_seq, lengths = _padded(sessions)
    batch = build_session_batch(item_seq, lengths)  # keys would overflow int64 unranked
    expected = Batch.from_data_list([session_to_graph(s) for s in sessions])
    for key in ("x", "edge_index", "alias", "batch", "ptr"):
        assert torch.equal(batch[key], expected[key]), key


# Readers ------------------------------------------------------------------------------------

READERS = {"sessions": read_sessions, "samples": read_samples, "clicks": read_clicks,
           "inter": read_inter}
_LINE_BREAK = re.compile(rb"\r\n|\r|\n")

# Text made of what these files hold, plus what they should not.
tokens = st.one_of(
    st.sampled_from([",", "\t", ";", " ", "\n", "\r\n", "\r", "-", "+", "_", ":", ".", "e",
                     "T", "Z", "session_id", "item_id", "timestamp", "user_id:token",
                     "item_id:token", "timestamp:float", "2024-02-30T25:00:00",
                     "2020-01-01T00:00:00+01:00", "nan", "inf", "\ufeff", "\x00", "\u0663",
                     "\uff11", "é", "🙂", "\u2028", "\x85", "\x0c"]),
    st.integers(-(2**70), 2**70).map(str),
    st.integers(0, 10**6).map(str),
    st.just("9" * 5000),  # more digits than int() converts by default
)
texts = st.lists(tokens, max_size=40).map("".join)
contents = st.one_of(
    st.binary(max_size=300),
    texts.map(lambda t: t.encode("utf-8")),
    st.tuples(texts, st.binary(min_size=1, max_size=4), texts).map(
        lambda p: p[0].encode() + p[1] + p[2].encode()),  # bad bytes in the middle
)


def _line_count(data: bytes) -> int:
    return len(_LINE_BREAK.findall(data)) + 1


def _check_parsed(name: str, result) -> None:
    """What a reader returns holds only what its format allows."""
    if name == "samples":
        assert isinstance(result, SessionSamples)
        lengths = result.length.tolist()
        assert all(n >= 1 for n in lengths)
        assert result.start.tolist() == [sum(lengths[:k]) for k in range(len(lengths))]
        assert result.items.numel() == sum(lengths)  # each prefix stored apart, in order
        result.check(num_items=INT64_MAX)  # ids in [1, 2**63 - 2]
    elif name == "sessions":
        assert isinstance(result, list)
        assert all(s and all(1 <= i < INT64_MAX for i in s) for s in result)
    else:
        assert isinstance(result, list)
        for session in result:
            assert isinstance(session, RawSession) and session.session_id.strip()
            assert session.items and all(item.strip() for item in session.items)
            assert len(session.timestamps) == len(session.items)
            assert session.timestamps == sorted(session.timestamps)


@FUZZ
@given(contents)
def test_readers_parse_or_raise_a_data_format_error(data):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "input.txt"
        path.write_bytes(data)
        for name, read in READERS.items():
            try:
                result = read(path)
            except DataFormatError as error:
                assert str(error).startswith(str(path)), name
                assert error.line is None or 1 <= error.line <= _line_count(data), name
                if error.line is not None:
                    assert f", line {error.line}: " in str(error)
            else:
                _check_parsed(name, result)


reader_ids = st.one_of(st.integers(1, 50), st.integers(INT64_MAX - 3, INT64_MAX - 1))


@FUZZ_SAMPLES
@given(st.lists(st.tuples(st.lists(reader_ids, min_size=1, max_size=5), reader_ids),
                max_size=6),
       st.sampled_from(["\n", "\r\n"]), st.sampled_from(["", "\n", "\n\n"]))
def test_written_samples_and_sessions_read_back(pairs, newline, tail):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "test.tsv"
        lines = [",".join(map(str, p)) + "\t" + str(t) for p, t in pairs]
        path.write_bytes((newline.join(lines) + tail).encode())
        samples = read_samples(path)
        items = samples.items.tolist()
        assert [(items[a:a + n], t) for a, n, t in zip(samples.start.tolist(),
                                                        samples.length.tolist(),
                                                        samples.target.tolist())] == pairs
        _check_parsed("samples", samples)
        path.write_bytes((newline.join(",".join(map(str, p)) for p, _ in pairs) + tail).encode())
        assert read_sessions(path) == [p for p, _ in pairs]


@pytest.mark.parametrize("name", list(READERS))
def test_readers_on_an_empty_file(tmp_path, name):
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    try:
        result = READERS[name](path)
    except DataFormatError as error:
        assert str(error) == f"{path}: empty file"
    else:
        assert len(result) == 0


def test_not_utf8_names_the_line(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"1,2,3\r\n4,5\r6\n7,\xe9,8\n9\n")
    with pytest.raises(DataFormatError, match=r"latin1.txt, line 4: not UTF-8 text: byte 0xe9"):
        read_sessions(path)


@pytest.mark.parametrize("text,message", [
    ("1,9223372036854775806\n", None),  # 2**63 - 2: the largest id whose table size fits
    ("1,9223372036854775807\n", "is too large"),
    ("1,4611686018427387904\n", None),  # 2**62
    ("1," + "9" * 5000 + "\n", "has too many digits"),
    ("1,-" + "9" * 30 + "\n", "ids must be >= 1"),
])
def test_huge_ids(tmp_path, text, message):
    path = tmp_path / "sessions.txt"
    path.write_text(text)
    if message is None:
        assert read_sessions(path) == [[int(t) for t in text.strip().split(",")]]
    else:
        with pytest.raises(DataFormatError, match=rf"sessions.txt, line 1: .*{message}"):
            read_sessions(path)
