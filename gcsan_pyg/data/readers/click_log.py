"""Click logs as CSV/TSV: one click per line (session id, item id, time)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime

from gcsan_pyg.data.readers.lines import DataFormatError, PathLike, iter_lines, normalize_name


@dataclass
class RawSession:
    r"""A session (or a user's sequence) with raw, unmapped ids.

    Attributes:
        session_id (str): the raw session (or user) id.
        items (list of str): the raw item ids, in time order.
        timestamps (list of float): the time of each click (unix seconds),
            aligned with :obj:`items`.
    """

    session_id: str
    items: list[str] = field(default_factory=list)
    timestamps: list[float] = field(default_factory=list)

    @property
    def end_time(self) -> float:
        """The time of the last click."""
        return max(self.timestamps)


def parse_timestamp(text: str) -> float:
    r"""Parses a timestamp: a number (unix seconds) or an ISO 8601 date/time
    (naive values are taken as UTC; a trailing ``Z`` is accepted).

    Returns:
        The time in seconds since the epoch.

    Raises:
        ValueError: when :obj:`text` is neither.
    """
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    iso = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
    stamp = datetime.fromisoformat(iso)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.timestamp()


_COLUMN_ALIASES = {
    "session": ("sessionid", "session", "sid"),
    "item": ("itemid", "item", "iid"),
    "time": ("timestamp", "time", "ts", "datetime", "eventtime", "eventdate", "date"),
}


def _resolve_column(
    path: PathLike, header: list[str] | None, spec: str | int | None, role: str
) -> int:
    if isinstance(spec, int):
        if spec < 0:
            raise ValueError(f"column index for the {role} must be >= 0, got {spec}")
        return spec
    if header is None:
        raise ValueError(
            f"without a header, the {role} column must be given as an int index, got {spec!r}"
        )
    names = [h.strip() for h in header]
    if spec is not None:
        if spec in names:
            return names.index(spec)
        normed = [normalize_name(n) for n in names]
        if normalize_name(spec) in normed:
            return normed.index(normalize_name(spec))
        raise DataFormatError(path, 1, f"missing column {spec!r} ({role}); header is {names}")
    normed = [normalize_name(n) for n in names]
    for alias in _COLUMN_ALIASES[role]:
        if alias in normed:
            return normed.index(alias)
    raise DataFormatError(
        path, 1, f"missing {role} column: none of {list(_COLUMN_ALIASES[role])} in header {names}"
    )


def _sniff_delimiter(first_line: str) -> str:
    for delim in ("\t", ";", ","):
        if delim in first_line:
            return delim
    return ","


def read_clicks(
    path: PathLike,
    session_col: str | int | None = None,
    item_col: str | int | None = None,
    time_col: str | int | None = None,
    delimiter: str | None = None,
    header: bool = True,
) -> list[RawSession]:
    r"""Reads a click log (one click per line: session id, item id, time)
    into sessions of raw ids.

    Args:
        path (str or PathLike): the CSV/TSV file.
        session_col, item_col, time_col (str or int, optional): the columns,
            by header name (exact, else case/underscore-insensitive) or
            0-based index. :obj:`None` picks a usual name from the header
            (e.g. ``session_id``/``SessionId``, ``item_id``/``ItemId``,
            ``timestamp``/``Time``), or columns 0, 1, 2 without a header.
        delimiter (str, optional): the field separator; :obj:`None` sniffs
            the first line (tab, then ``;``, then ``,``).
        header (bool, optional): whether the first line is a header.
            (default: :obj:`True`)

    Returns:
        The sessions, clicks sorted by time (stable), sessions sorted by the
        time of their last click (ties: order of first appearance). Times are
        numbers (unix seconds) or ISO 8601 date/times.

    Raises:
        DataFormatError: on a missing column, an empty id or a bad time.
    """
    lines = iter_lines(path)
    first = next(lines, None)
    if first is None:
        raise DataFormatError(path, None, "empty file")
    delim = delimiter if delimiter is not None else _sniff_delimiter(first[1])
    head = first[1].split(delim) if header else None
    if not header:
        session_col = 0 if session_col is None else session_col
        item_col = 1 if item_col is None else item_col
        time_col = 2 if time_col is None else time_col
    cols = (
        _resolve_column(path, head, session_col, "session"),
        _resolve_column(path, head, item_col, "item"),
        _resolve_column(path, head, time_col, "time"),
    )
    need = max(cols) + 1
    sessions: dict[str, RawSession] = {}

    def add(number: int, line: str) -> None:
        if not line.strip():
            raise DataFormatError(path, number, "empty line")
        parts = line.split(delim)
        if len(parts) < need:
            raise DataFormatError(
                path, number, f"missing column: expected at least {need} fields, got {len(parts)}"
            )
        sid, item, stamp = (parts[c].strip() for c in cols)
        if not sid:
            raise DataFormatError(path, number, "empty session id")
        if not item:
            raise DataFormatError(path, number, "empty item id")
        try:
            t = parse_timestamp(stamp)
        except ValueError:
            raise DataFormatError(path, number, f"invalid timestamp {stamp!r}") from None
        if not math.isfinite(t):  # NaN and inf would make the time order undefined
            raise DataFormatError(path, number, f"invalid timestamp {stamp!r} (not finite)")
        sess = sessions.get(sid)
        if sess is None:
            sess = sessions[sid] = RawSession(sid)
        sess.items.append(item)
        sess.timestamps.append(t)

    if not header:
        add(*first)
    for number, line in lines:
        add(number, line)
    if not sessions:
        raise DataFormatError(path, None, "no click after the header line")
    return _sorted_sessions(sessions.values())


def _sorted_sessions(sessions) -> list[RawSession]:
    out = []
    for s in sessions:
        order = sorted(range(len(s.items)), key=s.timestamps.__getitem__)
        out.append(
            RawSession(s.session_id, [s.items[i] for i in order], [s.timestamps[i] for i in order])
        )
    out.sort(key=lambda s: s.end_time)  # stable: ties keep first appearance order
    return out
