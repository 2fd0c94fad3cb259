"""Robustness: random inputs to the graph builders and the file readers give
either a correct result or a ValueError that says what is wrong, never
another exception."""
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
    read_clicks,
    read_inter,
    read_samples,
    read_sessions,
)
from gcsan_pyg.data.session_batch import build_session_batch
from gcsan_pyg.data.session_graph import session_to_graph

INT64_MAX = 2**63 - 1
FUZZ = settings(max_examples=250, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])

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
        with pytest.raises(ValueError):
            session_to_graph(items, target, num_items)
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
                assert isinstance(result, list), name


@pytest.mark.parametrize("name", list(READERS))
def test_readers_on_an_empty_file(tmp_path, name):
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    try:
        assert READERS[name](path) == []
    except DataFormatError as error:
        assert str(error) == f"{path}: empty file"


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
