"""SR-GNN's preprocessing of the raw Diginetica and Yoochoose click logs.

The steps follow SR-GNN's ``preprocess.py`` (Wu et al., AAAI 2019), which
GC-SAN and most later session-based recommenders reuse:

1. read the clicks per session; Diginetica clicks are sorted by
   ``timeframe`` (stable), Yoochoose clicks keep the file order;
2. a session is dated by its last row in the file (Diginetica: its
   ``eventdate`` at midnight UTC; Yoochoose: its timestamp truncated to the
   second);
3. drop sessions of length 1; drop items seen fewer than 5 times (counted
   over the remaining sessions); drop sessions now shorter than 2;
4. time split: with ``max_date`` the latest session date and
   ``split = max_date - days * 86400`` (7 days for Diginetica, 1 for
   Yoochoose), sessions dated strictly before ``split`` are training and
   strictly after are test (sessions dated exactly ``split`` are dropped, as
   in SR-GNN); both are sorted by date (stable);
5. item ids are remapped to ``1, 2, ...`` in order of first appearance in the
   (date-sorted) training sessions; test clicks on items unseen in training
   are dropped, then test sessions shorter than 2;
6. (Yoochoose) the 1/64 and 1/4 training sets are the most recent fractions:
   SR-GNN keeps the last ``int(N / d)`` of the ``N`` augmented samples and the
   sessions from the one holding the first of them; here the whole sessions
   from that one are kept. The id mapping (and the test filter) stays the one
   of the whole training period, as in SR-GNN.

The samples are then SR-GNN's prefix augmentation of the sessions
(:meth:`~gcsan_pyg.data.SessionSamples.from_sessions`).
"""
from __future__ import annotations

import calendar
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from gcsan_pyg.data.item_ids import PAD_TOKEN
from gcsan_pyg.data.readers import DataFormatError, iter_lines, normalize_name
from gcsan_pyg.data.readers.lines import PathLike


@dataclass
class SRGNNSplit:
    r"""The output of an SR-GNN-style preprocessing.

    Attributes:
        train_sessions (list of list of int): training sessions, date order.
        test_sessions (list of list of int): test sessions, date order.
        item_ids (list of str): the raw id of every internal id; index 0 is
            the padding placeholder :obj:`"[PAD]"`.
        train_dates (list of float): the date (unix seconds) of every
            training session.
        test_dates (list of float): the date of every test session.
        dropped (dict, optional): how many sessions each step dropped (see
            :meth:`summary`).
    """

    train_sessions: list[list[int]]
    test_sessions: list[list[int]]
    item_ids: list[str]
    train_dates: list[float]
    test_dates: list[float]
    dropped: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        """What the preprocessing kept and dropped, in words (the reason
        given when a split comes out empty)."""
        d = self.dropped
        steps = [
            (d.get("one_click", 0), "had one click"),
            (d.get("rare_items", 0), f"kept fewer than 2 clicks of items seen >= "
                                     f"{d.get('min_item_support', 1)} times"),
            (d.get("test_unseen", 0), "were test sessions with fewer than 2 clicks of items "
                                      "seen in training"),
            (d.get("fraction", 0), "were older training sessions beyond the kept fraction"),
        ]
        reasons = "; ".join(f"{count} {why}" for count, why in steps if count)
        return (f"of {d.get('sessions', 0)} sessions read, {reasons or 'none was dropped'}; "
                f"{len(self.train_sessions)} training and {len(self.test_sessions)} test "
                f"sessions remain")

    @property
    def num_items(self) -> int:
        """The size of the item table, padding id 0 included."""
        return len(self.item_ids)


def srgnn_pipeline(
    sess_clicks: dict[str, list[str]],
    sess_date: dict[str, float],
    test_days: float | None = None,
    min_item_support: int = 5,
    fraction: int = 1,
    test_fraction: float | None = None,
) -> SRGNNSplit:
    r"""Runs steps 3 to 6 of SR-GNN's preprocessing (see the module doc) on
    sessions of raw item ids.

    Args:
        sess_clicks (dict): raw session id -> raw item ids in click order; the
            dict order is the order of first appearance.
        sess_date (dict): raw session id -> session date (unix seconds).
        test_days (float, optional): the length of the test period, in days.
        min_item_support (int, optional): items seen fewer times are dropped.
            (default: :obj:`5`)
        fraction (int, optional): keep the most recent :obj:`1/fraction` of
            the training data (SR-GNN's ``yoochoose1_64``: 64).
            (default: :obj:`1`)
        test_fraction (float, optional): instead of :obj:`test_days`, the
            most recent :obj:`test_fraction` of the (filtered, date-sorted)
            sessions are test (rounded down).

    Returns:
        An :class:`SRGNNSplit`.
    """
    if (test_days is None) == (test_fraction is None):
        raise ValueError("give exactly one of 'test_days' and 'test_fraction'")
    if test_fraction is not None and not 0 <= test_fraction < 1:
        raise ValueError(f"'test_fraction' must be in [0, 1), got {test_fraction}")
    if fraction < 1:
        raise ValueError(f"'fraction' must be >= 1, got {fraction}")
    clicks = {s: c for s, c in sess_clicks.items() if len(c) > 1}
    dropped = {"sessions": len(sess_clicks), "one_click": len(sess_clicks) - len(clicks),
               "min_item_support": min_item_support}
    counts: dict[str, int] = {}
    for seq in clicks.values():
        for item in seq:
            counts[item] = counts.get(item, 0) + 1
    kept: dict[str, list[str]] = {}
    for s, seq in clicks.items():
        filtered = [i for i in seq if counts[i] >= min_item_support]
        if len(filtered) >= 2:
            kept[s] = filtered
    dropped["rare_items"] = len(clicks) - len(kept)
    if not kept:
        return SRGNNSplit([], [], [PAD_TOKEN], [], [], dropped)

    dates = [(s, sess_date[s]) for s in kept]
    if test_days is not None:
        max_date = max(d for _, d in dates)
        split_date = max_date - 86400 * test_days
        train = sorted((x for x in dates if x[1] < split_date), key=lambda x: x[1])
        test = sorted((x for x in dates if x[1] > split_date), key=lambda x: x[1])
    else:
        dates.sort(key=lambda x: x[1])
        num_test = int(len(dates) * test_fraction)
        train, test = dates[: len(dates) - num_test], dates[len(dates) - num_test:]

    item_dict: dict[str, int] = {}
    item_ids = [PAD_TOKEN]
    train_sessions, train_dates = [], []
    for s, date in train:
        out = []
        for item in kept[s]:
            iid = item_dict.get(item)
            if iid is None:
                iid = item_dict[item] = len(item_ids)
                item_ids.append(item)
            out.append(iid)
        train_sessions.append(out)
        train_dates.append(date)
    test_sessions, test_dates = [], []
    for s, date in test:
        out = [item_dict[i] for i in kept[s] if i in item_dict]
        if len(out) >= 2:
            test_sessions.append(out)
            test_dates.append(date)
    dropped["test_unseen"] = len(test) - len(test_sessions)

    if fraction > 1 and train_sessions:
        num_samples = sum(len(s) - 1 for s in train_sessions)
        keep = num_samples // fraction
        if keep == 0:
            train_sessions, train_dates = [], []
        else:
            # The session that holds the first of the last `keep` samples.
            remaining, first = keep, len(train_sessions)
            while remaining > 0:
                first -= 1
                remaining -= len(train_sessions[first]) - 1
            train_sessions, train_dates = train_sessions[first:], train_dates[first:]
        dropped["fraction"] = len(train) - len(train_sessions)
    return SRGNNSplit(train_sessions, test_sessions, item_ids, train_dates, test_dates, dropped)


def _day_to_seconds(text: str) -> float:
    return float(calendar.timegm(time.strptime(text.strip(), "%Y-%m-%d")))


def _iso_to_seconds(text: str) -> float:
    return float(calendar.timegm(time.strptime(text.strip()[:19], "%Y-%m-%dT%H:%M:%S")))


def read_diginetica_raw(path: PathLike) -> tuple[dict[str, list[str]], dict[str, float]]:
    r"""Reads the raw Diginetica ``train-item-views.csv``
    (``sessionId;userId;itemId;timeframe;eventdate``, with a header; the
    names may also be written ``session_id``, ...).

    Args:
        path (str or PathLike): the CSV file.

    Returns:
        :obj:`(sess_clicks, sess_date)`: raw item ids per session sorted by
        ``timeframe`` (stable), and the date of the session's last row.

    Raises:
        DataFormatError: on a missing column, an empty id, a non-integer
            ``timeframe`` or a bad ``eventdate``.
    """
    lines = iter_lines(path)
    first = next(lines, None)
    if first is None:
        raise DataFormatError(path, None, "empty file")
    header = [normalize_name(h) for h in first[1].split(";")]
    cols = []
    for name in ("sessionid", "itemid", "timeframe", "eventdate"):
        if name not in header:
            raise DataFormatError(
                path, 1, f"missing column {name!r} in the header {first[1]!r} "
                "(expected sessionId;userId;itemId;timeframe;eventdate)"
            )
        cols.append(header.index(name))
    cs, ci, ct, cd = cols
    need = max(cols) + 1
    clicks: dict[str, list[tuple[str, int]]] = {}
    last_day: dict[str, str] = {}
    for number, line in lines:
        parts = line.split(";")
        if len(parts) < need:
            if not line.strip():
                raise DataFormatError(path, number, "empty line")
            raise DataFormatError(
                path, number, f"missing column: expected {len(header)} ';'-separated fields, "
                f"got {len(parts)}"
            )
        sid, item = parts[cs].strip(), parts[ci].strip()
        if not sid or not item:
            raise DataFormatError(path, number, "empty session id" if not sid else "empty item id")
        try:
            frame = int(parts[ct])
        except ValueError:
            raise DataFormatError(
                path, number, f"non-integer timeframe {parts[ct].strip()!r}"
            ) from None
        day = parts[cd].strip()
        seq = clicks.get(sid)
        if seq is None:
            seq = clicks[sid] = []
        seq.append((item, frame))
        last_day[sid] = day
    if not clicks:
        raise DataFormatError(path, None, "no click after the header line")
    sess_date: dict[str, float] = {}
    parsed: dict[str, float] = {}
    for sid, day in last_day.items():
        if day not in parsed:
            try:
                parsed[day] = _day_to_seconds(day)
            except ValueError:
                raise DataFormatError(
                    path, None, f"invalid eventdate {day!r} (session {sid}); expected YYYY-MM-DD"
                ) from None
        sess_date[sid] = parsed[day]
    sess_clicks = {
        sid: [item for item, _ in sorted(seq, key=lambda c: c[1])] for sid, seq in clicks.items()
    }
    return sess_clicks, sess_date


def read_yoochoose_raw(path: PathLike) -> tuple[dict[str, list[str]], dict[str, float]]:
    r"""Reads the raw Yoochoose ``yoochoose-clicks.dat``
    (``session_id,ISO timestamp,item_id,category``; an optional header line
    is skipped).

    Args:
        path (str or PathLike): the ``.dat`` file.

    Returns:
        :obj:`(sess_clicks, sess_date)`: raw item ids per session in file
        order, and the timestamp (seconds) of the session's last row.

    Raises:
        DataFormatError: on a missing column, an empty id or a bad timestamp.
    """
    clicks: dict[str, list[str]] = {}
    last_stamp: dict[str, tuple[int, str]] = {}
    for number, line in iter_lines(path):
        parts = line.split(",")
        if number == 1 and parts and not parts[0].strip().isdigit() and len(parts) >= 3:
            if normalize_name(parts[0]) in ("sessionid", "session"):
                continue  # header
        if len(parts) < 3:
            if not line.strip():
                raise DataFormatError(path, number, "empty line")
            raise DataFormatError(
                path, number, "missing column: expected 'session_id,timestamp,item_id[,category]'"
                f", got {len(parts)} field(s)"
            )
        sid, stamp, item = parts[0].strip(), parts[1].strip(), parts[2].strip()
        if not sid or not item:
            raise DataFormatError(path, number, "empty session id" if not sid else "empty item id")
        seq = clicks.get(sid)
        if seq is None:
            seq = clicks[sid] = []
        seq.append(item)
        last_stamp[sid] = (number, stamp)
    if not clicks:
        raise DataFormatError(path, None, "no click in the file")
    sess_date: dict[str, float] = {}
    for sid, (number, stamp) in last_stamp.items():
        try:
            sess_date[sid] = _iso_to_seconds(stamp)
        except ValueError:
            raise DataFormatError(
                path, number, f"invalid timestamp {stamp!r}; expected YYYY-MM-DDTHH:MM:SS..."
            ) from None
    return clicks, sess_date


def preprocess_diginetica(
    path: PathLike, test_days: float = 7, min_item_support: int = 5
) -> SRGNNSplit:
    r"""SR-GNN's preprocessing of the raw Diginetica ``train-item-views.csv``
    (see the module doc).

    Args:
        path (str or PathLike): the CSV file.
        test_days (float, optional): the test period. (default: :obj:`7`)
        min_item_support (int, optional): the minimum item count.
            (default: :obj:`5`)

    Returns:
        An :class:`SRGNNSplit`.
    """
    clicks, dates = read_diginetica_raw(path)
    return srgnn_pipeline(clicks, dates, test_days, min_item_support)


def preprocess_yoochoose(
    path: PathLike, fraction: int = 64, test_days: float = 1, min_item_support: int = 5
) -> SRGNNSplit:
    r"""SR-GNN's preprocessing of the raw ``yoochoose-clicks.dat`` (see the
    module doc).

    Args:
        path (str or PathLike): the ``.dat`` file.
        fraction (int, optional): keep the most recent :obj:`1/fraction` of
            training (64 for ``yoochoose1_64``, 4 for ``yoochoose1_4``, 1 for
            all). (default: :obj:`64`)
        test_days (float, optional): the test period. (default: :obj:`1`)
        min_item_support (int, optional): the minimum item count.
            (default: :obj:`5`)

    Returns:
        An :class:`SRGNNSplit`.
    """
    clicks, dates = read_yoochoose_raw(path)
    return srgnn_pipeline(clicks, dates, test_days, min_item_support, fraction)


def sessions_to_dicts(
    sessions: Iterable,
) -> tuple[dict[str, list[str]], dict[str, float]]:
    r"""Turns :class:`~gcsan_pyg.data.readers.RawSession` objects into the
    :obj:`(sess_clicks, sess_date)` input of :func:`srgnn_pipeline`, dating
    each session by its last click."""
    clicks, dates = {}, {}
    for s in sessions:
        clicks[s.session_id] = list(s.items)
        dates[s.session_id] = s.end_time
    return clicks, dates


__all__ = [
    "SRGNNSplit",
    "srgnn_pipeline",
    "read_diginetica_raw",
    "read_yoochoose_raw",
    "preprocess_diginetica",
    "preprocess_yoochoose",
    "sessions_to_dicts",
]
