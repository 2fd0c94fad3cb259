"""SessionSamples, the one sample container: augmentation, truncation, views,
the id check, and rebuilding the sessions an augmented sample list was cut from."""
from __future__ import annotations

import re

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gcsan_pyg.data import read_samples, read_sessions
from gcsan_pyg.data.samples import (
    SessionSamples,
    session_groups,
    session_statistics,
    sessions_of,
)

PROPERTY = settings(max_examples=50, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
SESSIONS = [[5, 3, 5, 7], [2, 2, 2], [9, 1], [8], [4, 6, 4, 6, 4, 8, 1], [3, 3]]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# Written-out references -----------------------------------------------------------------


def augment(sessions, min_prefix_length=1):
    """SR-GNN's sequence splitting as the README words it: for each session s, in
    order, and i = 1 .. len(s) - 1, in order, the sample (s[:-i], s[-i])."""
    return [(s[:-i], s[-i]) for s in sessions for i in range(1, len(s))
            if len(s) - i >= min_prefix_length]


def regroup(samples):
    """The grouping rule, written out: a new session starts at a sample that is
    not (prev_prefix[:-1], prev_prefix[-1]); a session is its first prefix + label."""
    sessions, group = [], []
    for k, (prefix, label) in enumerate(samples):
        prev = samples[k - 1][0] if k else None
        if prev is None or (prefix, label) != (prev[:-1], prev[-1]):
            sessions.append(prefix + [label])
        group.append(len(sessions) - 1)
    return sessions, group


def flat(sessions):
    """Sessions as (items, session_ptr)."""
    ptr = [0]
    for s in sessions:
        ptr.append(ptr[-1] + len(s))
    return (torch.tensor([i for s in sessions for i in s], dtype=torch.long),
            torch.tensor(ptr, dtype=torch.long))


def as_lists(samples: SessionSamples):
    """(prefix, target) pairs read straight from the storage."""
    items = samples.items.tolist()
    return [(items[a:a + n], t) for a, n, t in
            zip(samples.start.tolist(), samples.length.tolist(), samples.target.tolist())]


def unflat(items, ptr):
    items, ptr = items.tolist(), ptr.tolist()
    return [items[a:b] for a, b in zip(ptr[:-1], ptr[1:])]


def from_pairs(pairs):
    return SessionSamples.from_lists([p for p, _ in pairs], [t for _, t in pairs])


sessions_st = st.lists(st.lists(st.integers(1, 5), max_size=8), max_size=8)


# Augmentation ---------------------------------------------------------------------------


def test_augmentation_order_longest_prefix_first():
    samples = SessionSamples.from_sessions(*flat([[1, 2, 3, 4], [7, 8]]))
    assert as_lists(samples) == [([1, 2, 3], 4), ([1, 2], 3), ([1], 2), ([7], 8)]


@pytest.mark.parametrize("min_prefix_length", [1, 2, 3, 10])
def test_from_sessions_matches_the_written_rule(min_prefix_length):
    items, ptr = flat(SESSIONS)
    samples = SessionSamples.from_sessions(items, ptr, min_prefix_length)
    assert as_lists(samples) == augment(SESSIONS, min_prefix_length)
    assert len(samples) == sum(max(len(s) - min_prefix_length, 0) for s in SESSIONS)
    # Windows over the sessions' one copy of the clicks; the label is the next click.
    assert samples.items is items
    assert torch.equal(samples.target, items[samples.start + samples.length])


def test_from_sessions_edge_cases():
    # Empty sessions (equal offsets) and length-1 sessions give no sample.
    samples = SessionSamples.from_sessions(torch.tensor([4, 6, 5]), torch.tensor([0, 0, 1, 3]))
    assert as_lists(samples) == [([6], 5)]
    none = SessionSamples.from_sessions(torch.zeros(0, dtype=torch.long), torch.tensor([0]))
    assert len(none) == 0
    with pytest.raises(ValueError, match="'min_prefix_length' must be >= 1, got 0"):
        SessionSamples.from_sessions(*flat(SESSIONS), min_prefix_length=0)


@PROPERTY
@given(sessions_st, st.integers(1, 4))
def test_from_sessions_property(sessions, min_prefix_length):
    samples = SessionSamples.from_sessions(*flat(sessions), min_prefix_length)
    assert as_lists(samples) == augment(sessions, min_prefix_length)


def test_retailrocket_min_prefix_length(shared_data):
    """The README's two training counts: 559,816 samples with every prefix,
    433,648 with prefixes of length >= 2."""
    sessions = read_sessions(shared_data / "retailrocket" / "train_sessions.txt")
    items, ptr = flat(sessions)
    assert len(sessions) == 126168
    full = SessionSamples.from_sessions(items, ptr)
    two = SessionSamples.from_sessions(items, ptr, min_prefix_length=2)
    assert (len(full), len(two)) == (559816, 433648)
    kept = full.select(full.length >= 2)
    for name in ("start", "length", "target"):
        assert torch.equal(getattr(two, name), getattr(kept, name)), name


# Views: windows, clicks, padded, select, prefix -----------------------------------------

PREFIXES, TARGETS = [[1, 2, 3, 4, 5], [6], [7, 8]], [9, 10, 11]


def test_windows_keep_the_most_recent_clicks():
    samples = SessionSamples.from_lists(PREFIXES, TARGETS)
    start, length = samples.windows()
    assert (start.tolist(), length.tolist()) == ([0, 5, 6], [5, 1, 2])
    start, length = samples.windows(max_length=2)
    assert (start.tolist(), length.tolist()) == ([3, 5, 6], [2, 1, 2])
    start, length = samples.windows(torch.tensor([2, 0]), max_length=3)
    assert (start.tolist(), length.tolist()) == ([6, 2], [2, 3])
    clicks, length = samples.clicks(max_length=2)
    assert (clicks.tolist(), length.tolist()) == ([4, 5, 6, 7, 8], [2, 1, 2])
    clicks, length = samples.clicks(torch.tensor([1]))
    assert (clicks.tolist(), length.tolist()) == ([6], [1])
    # The windows narrow; the samples themselves are untouched.
    assert samples.length.tolist() == [5, 1, 2] and samples.start.tolist() == [0, 5, 6]


def test_padded():
    samples = SessionSamples.from_lists(PREFIXES, TARGETS)
    seq, length = samples.padded()
    assert seq.tolist() == [[1, 2, 3, 4, 5], [6, 0, 0, 0, 0], [7, 8, 0, 0, 0]]
    assert length.tolist() == [5, 1, 2]
    seq, length = samples.padded(torch.tensor([2, 1]), max_length=4)
    assert seq.tolist() == [[7, 8], [6, 0]] and length.tolist() == [2, 1]
    seq, length = samples.padded(max_length=2)
    assert seq.tolist() == [[4, 5], [6, 0], [7, 8]]
    seq, length = samples.padded(torch.tensor([], dtype=torch.long))
    assert seq.shape == (0, 0) and length.numel() == 0


@PROPERTY
@given(sessions_st, st.integers(1, 3), st.one_of(st.none(), st.integers(1, 6)), st.data())
def test_views_property(sessions, min_prefix_length, max_length, data):
    samples = SessionSamples.from_sessions(*flat(sessions), min_prefix_length)
    reference = augment(sessions, min_prefix_length)
    index = data.draw(st.lists(st.integers(0, max(len(reference) - 1, 0)),
                               max_size=6 if reference else 0))
    chosen = [reference[i] for i in index]
    cut = [p if max_length is None else p[-max_length:] for p, _ in chosen]
    idx = torch.tensor(index, dtype=torch.long)
    clicks, length = samples.clicks(idx, max_length)
    assert clicks.tolist() == [i for p in cut for i in p]
    assert length.tolist() == [len(p) for p in cut]
    seq, length = samples.padded(idx, max_length)
    width = max((len(p) for p in cut), default=0)
    assert seq.tolist() == [p + [0] * (width - len(p)) for p in cut]
    picked = samples.select(idx)
    assert as_lists(picked) == chosen
    assert [(picked.prefix(i), int(picked.target[i])) for i in range(len(picked))] == chosen


def test_select_shares_the_clicks():
    samples = SessionSamples.from_sessions(*flat(SESSIONS))
    picked = samples.select(torch.tensor([4, 0, 4]))
    assert picked.items is samples.items  # no copy of the clicks
    assert as_lists(picked) == [as_lists(samples)[i] for i in (4, 0, 4)]
    masked = samples.select(samples.length >= 3)
    assert masked.items is samples.items
    assert as_lists(masked) == [s for s in as_lists(samples) if len(s[0]) >= 3]
    assert samples.prefix(0) == [5, 3, 5] and samples.prefix(5) == [9]


# The one id check and the container's own checks ----------------------------------------


@pytest.mark.parametrize("prefixes, targets, num_items, message", [
    ([[3, 1], [2, 0, 4]], [5, 6], None,
     "clicked item id 0 (sample 1, position 1 of its prefix) is outside [1, ...); "
     "0 is the padding id"),
    ([[3, 1], [2, -4]], [5, 6], None,
     "clicked item id -4 (sample 1, position 1 of its prefix) is outside [1, ...)"),
    ([[1], [2], [3]], [3, 1, 0], None, "target item id 0 (sample 2) is outside [1, ...)"),
    ([[1, 12, 3]], [2], 10,
     "clicked item id 12 (sample 0, position 1 of its prefix) is outside "
     "[1, num_items - 1] = [1, 9]; 0 is the padding id"),
    ([[1, 2]], [9], 9, "target item id 9 (sample 0) is outside [1, num_items - 1] = [1, 8]"),
])
def test_check_names_the_entry(prefixes, targets, num_items, message):
    samples = SessionSamples.from_lists(prefixes, targets)
    with pytest.raises(ValueError, match=re.escape(message)):
        samples.check(num_items)


def test_check_accepts_valid_ids():
    samples = SessionSamples.from_lists([[1, 9], [9]], [9, 1])
    samples.check()
    samples.check(num_items=10)
    SessionSamples.from_lists([], []).check(num_items=1)


def test_check_reads_the_clicks_of_the_windows():
    # A click in two windows (shared storage) is named in its first window.
    items = torch.tensor([4, 5, 0, 6])
    samples = SessionSamples(items, torch.tensor([0, 1]), torch.tensor([2, 2]),
                             torch.tensor([0, 6]))
    with pytest.raises(ValueError, match=re.escape("clicked item id 0 (sample 1, position 1 of")):
        samples.check()


@pytest.mark.parametrize("args, message", [
    (([1, 2], [0], [1, 1], [3]), "1 starts and 2 lengths for 1 targets"),
    (([1, 2], [0, 1], [1, 0], [3, 3]), "sample 1 has an empty prefix (length 0)"),
    (([1, 2, 3], [1], [3], [4]), "a sample's prefix lies outside the 3 clicks"),
    (([1, 2, 3], [-1], [1], [4]), "a sample's prefix lies outside the 3 clicks"),
    (([[1, 2]], [0], [1], [3]), "must be 1-D"),
])
def test_constructor_rejects_inconsistent_storage(args, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        SessionSamples(*args)


def test_from_lists():
    samples = SessionSamples.from_lists(PREFIXES, TARGETS)
    assert as_lists(samples) == list(zip(PREFIXES, TARGETS))
    assert samples.items.dtype == torch.long and len(samples) == 3
    with pytest.raises(ValueError, match="2 prefixes but 1 targets"):
        SessionSamples.from_lists([[1], [2]], [3])


# Rebuilding the sessions of an augmented sample list ------------------------------------

EDGE_CASES = {
    "no sample": ([], [], []),
    "one sample": ([([1, 2], 3)], [[1, 2, 3]], [0]),
    "two identical samples": ([([1, 2], 3), ([1, 2], 3)], [[1, 2, 3], [1, 2, 3]], [0, 1]),
    "prefix matches, label does not": (
        [([1, 2, 3], 4), ([1, 2], 5)], [[1, 2, 3, 4], [1, 2, 5]], [0, 1]),
    "label matches, prefix does not": (
        [([1, 2, 3], 4), ([1, 9], 3)], [[1, 2, 3, 4], [1, 9, 3]], [0, 1]),
    "a step skipped": ([([1, 2, 3], 4), ([1], 2)], [[1, 2, 3, 4], [1, 2]], [0, 1]),
    "a whole session, then a one-click prefix": (
        [([1, 2, 3], 4), ([1, 2], 3), ([1], 2), ([1], 2)], [[1, 2, 3, 4], [1, 2]],
        [0, 0, 0, 1]),
    "repeated items": ([([2, 2, 2], 2), ([2, 2], 2), ([2], 2)], [[2, 2, 2, 2]], [0, 0, 0]),
    "a session cut at prefix length 2": (
        [([5, 6, 7], 8), ([5, 6], 7), ([9, 8], 7)], [[5, 6, 7, 8], [9, 8, 7]], [0, 0, 1]),
}


@pytest.mark.parametrize("case", list(EDGE_CASES))
def test_sessions_of_edge_cases(case):
    pairs, sessions, group = EDGE_CASES[case]
    assert regroup(pairs) == (sessions, group)  # the reference agrees with the hand answer
    items, ptr, found = sessions_of(from_pairs(pairs))
    assert unflat(items, ptr) == sessions
    assert found.tolist() == group
    assert session_groups(from_pairs(pairs)).tolist() == group


@st.composite
def chains(draw):
    """Sample lists where a sample often continues the previous one, or nearly does."""
    pairs = []
    for _ in range(draw(st.integers(0, 12))):
        prev = pairs[-1][0] if pairs else []
        how = draw(st.sampled_from(["new", "next", "next", "copy", "label", "click"]))
        if how == "new" or len(prev) < 2:
            pairs.append((draw(st.lists(st.integers(1, 3), min_size=1, max_size=5)),
                          draw(st.integers(1, 3))))
        elif how == "copy":
            pairs.append(pairs[-1])
        else:
            prefix, label = prev[:-1], prev[-1]
            if how == "label":
                label = draw(st.integers(1, 3))
            elif how == "click":
                prefix = list(prefix)
                prefix[draw(st.integers(0, len(prefix) - 1))] = draw(st.integers(1, 3))
            pairs.append((prefix, label))
    return pairs


@PROPERTY
@given(chains())
def test_sessions_of_matches_the_rule(pairs):
    sessions, group = regroup(pairs)
    samples = from_pairs(pairs)
    items, ptr, found = sessions_of(samples)
    assert unflat(items, ptr) == sessions
    assert found.tolist() == group


@settings(PROPERTY, max_examples=25)
@given(st.lists(st.lists(st.integers(1, 4), min_size=4, max_size=8), max_size=6),
       st.integers(1, 3))
def test_sessions_of_undoes_the_augmentation(sessions, min_prefix_length):
    samples = SessionSamples.from_sessions(*flat(sessions), min_prefix_length)
    items, ptr, group = sessions_of(samples)
    assert unflat(items, ptr) == sessions
    again = SessionSamples.from_sessions(items, ptr, min_prefix_length)
    assert as_lists(again) == as_lists(samples)


@pytest.mark.parametrize("name, count, min_prefix_length", [
    ("diginetica", 15963, 1),
    ("retailrocket", 4735, 2),  # its test keeps prefixes of length >= 2 only
])
def test_sessions_of_real_test_files(shared_data, name, count, min_prefix_length):
    samples = read_samples(shared_data / name / "test.tsv")
    items, ptr, group = sessions_of(samples)
    assert ptr.numel() - 1 == count
    pairs = as_lists(samples)
    sessions, reference_group = regroup(pairs)
    assert unflat(items, ptr) == sessions and group.tolist() == reference_group
    # The file is the augmentation of the rebuilt sessions, line for line.
    assert as_lists(SessionSamples.from_sessions(items, ptr, min_prefix_length)) == pairs


def test_sessions_of_sample_diginetica(shared_data):
    folder = shared_data / "sample_diginetica" / "srgnn_processed"
    test = read_samples(folder / "test.tsv")
    items, ptr, _ = sessions_of(test)
    assert (len(test), ptr.numel() - 1) == (99, 39)
    assert as_lists(SessionSamples.from_sessions(items, ptr)) == as_lists(test)


# Statistics -----------------------------------------------------------------------------


def test_session_statistics():
    items, ptr = flat([[1, 2, 3], [2, 2]])
    samples = SessionSamples.from_sessions(items, ptr)
    assert session_statistics(items, ptr, samples) == {
        "sessions": 2, "clicks": 5, "items": 3, "avg_length": 2.5, "min_length": 2,
        "max_length": 3, "samples": 3, "avg_prefix_length": 1.3333, "max_prefix_length": 2,
    }
    # Only the clicks the offsets cover count.
    assert session_statistics(torch.tensor([7, 1, 2, 9]), torch.tensor([1, 3]))["items"] == 2
    empty = session_statistics(torch.zeros(0, dtype=torch.long), torch.tensor([0]),
                               SessionSamples.from_lists([], []))
    assert empty == {"sessions": 0, "clicks": 0, "items": 0, "avg_length": 0.0,
                     "min_length": 0, "max_length": 0, "samples": 0,
                     "avg_prefix_length": 0.0, "max_prefix_length": 0}
