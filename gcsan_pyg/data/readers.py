"""Readers of session data files into plain Python lists.

Every reader raises :class:`DataFormatError` (a :class:`ValueError`) naming
the file, the 1-based line number and the reason when a line is malformed.

Formats:

* SR-GNN preprocessed text: ``train_sessions.txt`` (one session per line,
  comma-separated item ids) and ``test.tsv`` (``prefix<TAB>label``), see
  :func:`read_sessions` and :func:`read_samples`.
* Click logs as CSV/TSV (session id, item id, timestamp), see
  :func:`read_clicks`.
* RecBole atomic ``.inter`` files, see :func:`read_inter_file`,
  :func:`read_inter` and :func:`leave_one_out`.
"""
from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

PathLike = str | os.PathLike
#: One training/test sample: the input prefix and the next item (label).
Sample = tuple[list[int], int]

_INT_TOKEN = re.compile(r"[+-]?\d+")
_MAX_ID = 2**63 - 2  # item tables hold ids 0 .. max id in int64, so max id + 1 must fit


class DataFormatError(ValueError):
    r"""A malformed line (or file) of a session data file.

    Args:
        path (str or PathLike): the file.
        line (int, optional): the 1-based line number, :obj:`None` when the
            problem concerns the whole file.
        reason (str): what is wrong.

    The message reads ``"<path>, line <line>: <reason>"``.
    """

    def __init__(self, path: PathLike, line: int | None, reason: str) -> None:
        self.path = os.fspath(path)
        self.line = line
        self.reason = reason
        where = self.path if line is None else f"{self.path}, line {line}"
        super().__init__(f"{where}: {reason}")

    def __reduce__(self):  # keep the error picklable (multiprocessing, pytest-xdist)
        return (type(self), (self.path, self.line, self.reason))


def _iter_lines(path: PathLike) -> Iterator[tuple[int, str]]:
    r"""Yields :obj:`(line_number, line)` without the line break. Blank lines
    at the very end of the file are dropped; other blank lines are kept (the
    callers reject them)."""
    blank: list[tuple[int, str]] = []  # held back until a non-blank line follows
    try:
        with open(path, encoding="utf-8", newline=None) as f:
            for number, line in enumerate(f, start=1):
                line = line.rstrip("\r\n")
                if not line.strip():
                    blank.append((number, line))
                    continue
                if blank:
                    yield from blank
                    blank.clear()
                yield number, line
    except UnicodeDecodeError as error:  # text decoding reads ahead: find the line
        line, reason = _undecodable_line(path)
        raise DataFormatError(path, line, reason or f"not UTF-8 text: {error.reason}") from None


_LINE_BREAK = re.compile(rb"\r\n|\r|\n")  # as universal newlines count lines


def _undecodable_line(path: PathLike) -> tuple[int | None, str | None]:
    """The 1-based line of the first byte that is not UTF-8, and why."""
    breaks = 0
    with open(path, "rb") as f:
        for raw in f:  # pieces end with b"\n", never inside a UTF-8 sequence
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as error:
                line = breaks + len(_LINE_BREAK.findall(raw, 0, error.start)) + 1
                return line, (f"not UTF-8 text: byte 0x{raw[error.start]:02x} "
                              f"({error.reason})")
            breaks += len(_LINE_BREAK.findall(raw))
    return None, None


def _parse_ids(path: PathLike, number: int, text: str, what: str) -> list[int]:
    r"""Parses comma-separated item ids (each :math:`\geq 1`)."""
    text = text.strip()
    if not text:
        raise DataFormatError(path, number, f"empty {what}: a session needs at least one item")
    tokens = text.split(",")
    try:
        if "_" in text:  # int() would accept '1_000'
            raise ValueError
        ids = [int(t) for t in tokens]
    except ValueError:
        for pos, token in enumerate(tokens, start=1):
            if not _INT_TOKEN.fullmatch(token.strip()):
                raise DataFormatError(
                    path, number, f"non-integer token {token!r} (item {pos} of the {what})"
                ) from None
        # Digits only, but more than int() converts (sys.get_int_max_str_digits()).
        raise DataFormatError(
            path, number, f"an item id of the {what} has too many digits"
        ) from None
    if max(ids) > _MAX_ID:
        pos = next(i for i, v in enumerate(ids) if v > _MAX_ID)
        raise DataFormatError(
            path, number, f"item id {ids[pos]} (item {pos + 1} of the {what}) is too large: "
            f"ids must be <= {_MAX_ID} (64-bit integers)",
        )
    if min(ids) < 1:
        pos = next(i for i, v in enumerate(ids) if v < 1)
        raise DataFormatError(
            path,
            number,
            f"invalid item id {ids[pos]} (item {pos + 1} of the {what}): ids must be >= 1, "
            "0 is the padding id",
        )
    return ids


def read_sessions(path: PathLike) -> list[list[int]]:
    r"""Reads an SR-GNN ``train_sessions.txt``: one session per line, its item
    ids (:math:`\geq 1`) in click order separated by commas.

    Args:
        path (str or PathLike): the file.

    Returns:
        The sessions, in file order, as lists of ints.

    Raises:
        DataFormatError: on an empty line, a non-integer token or an id
            :math:`\leq 0`.
    """
    return [_parse_ids(path, number, line, "session") for number, line in _iter_lines(path)]


def read_samples(path: PathLike) -> list[Sample]:
    r"""Reads an SR-GNN ``test.tsv`` / ``train.tsv``: one sample per line,
    ``<prefix><TAB><label>``, the prefix being comma-separated item ids.

    Args:
        path (str or PathLike): the file.

    Returns:
        The :obj:`(prefix, label)` samples in file order.

    Raises:
        DataFormatError: on an empty line or prefix, a missing label or column,
            extra columns, a non-integer token or an id :math:`\leq 0`.
    """
    samples: list[Sample] = []
    for number, line in _iter_lines(path):
        if not line.strip():
            raise DataFormatError(path, number, "empty line: expected '<prefix>\\t<label>'")
        parts = line.split("\t")
        if len(parts) < 2:
            raise DataFormatError(
                path, number, "missing label: expected 2 tab-separated columns '<prefix>\\t<label>'"
            )
        if len(parts) > 2:
            raise DataFormatError(
                path, number, f"expected 2 tab-separated columns, got {len(parts)}"
            )
        prefix = _parse_ids(path, number, parts[0], "prefix")
        if not parts[1].strip():
            raise DataFormatError(path, number, "missing label after the tab")
        label = _parse_ids(path, number, parts[1], "label")
        if len(label) != 1:
            raise DataFormatError(path, number, f"the label must be one item id, got {parts[1]!r}")
        samples.append((prefix, label[0]))
    return samples


def augment_prefixes(sessions: Sequence[Sequence[int]]) -> list[Sample]:
    r"""SR-GNN's sequence splitting: for each session :obj:`s` in order and
    :obj:`i = 1 .. len(s) - 1` in order, emits :obj:`(s[:-i], s[-i])`.

    The first sample of a session has the longest prefix; a session of
    length :math:`n` gives :math:`n - 1` samples (none for length 1).

    Args:
        sessions (sequence of sequences of int): the sessions.

    Returns:
        The list of :obj:`(prefix, label)` samples.
    """
    out: list[Sample] = []
    for s in sessions:
        s = list(s)
        for i in range(1, len(s)):
            out.append((s[:-i], s[-i]))
    return out


def sessions_from_samples(samples: Sequence[Sample]) -> list[list[int]]:
    r"""Rebuilds the sessions of an augmented sample list (the inverse of
    :func:`augment_prefixes`): a new session starts at a sample that is not
    :obj:`(previous_prefix[:-1], previous_prefix[-1])`.

    Each session is the longest prefix of its group plus its label. Works for
    non-augmented lists too (then every sample is its own session).

    Args:
        samples (sequence of (prefix, label)): the samples in file order.

    Returns:
        The sessions, one list of item ids each.
    """
    sessions: list[list[int]] = []
    prev: list[int] | None = None
    for prefix, label in samples:
        prefix = list(prefix)
        if prev is None or len(prev) < 2 or prefix != prev[:-1] or label != prev[-1]:
            sessions.append(prefix + [int(label)])
        prev = prefix
    return sessions


# ---------------------------------------------------------------------------
# Click logs (CSV / TSV) and RecBole atomic files
# ---------------------------------------------------------------------------


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


def _norm(name: str) -> str:
    return name.strip().lower().replace("_", "").replace("-", "").replace(" ", "")


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
        normed = [_norm(n) for n in names]
        if _norm(spec) in normed:
            return normed.index(_norm(spec))
        raise DataFormatError(path, 1, f"missing column {spec!r} ({role}); header is {names}")
    normed = [_norm(n) for n in names]
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
    lines = _iter_lines(path)
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
        sess = sessions.get(sid)
        if sess is None:
            sess = sessions[sid] = RawSession(sid)
        sess.items.append(item)
        sess.timestamps.append(t)

    if not header:
        add(*first)
    for number, line in lines:
        add(number, line)
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


@dataclass
class InterFile:
    r"""A RecBole atomic ``.inter`` file as RecBole's sequential datasets read
    it (see :func:`read_inter_file`).

    Attributes:
        users (list of RawSession): one per user, in RecBole's order.
        item_tokens (list of str): the raw item ids in order of first
            appearance in the file's rows: RecBole's item id :obj:`i`
            (:math:`\geq 1`, 0 being the padding) is :obj:`item_tokens[i - 1]`.
    """

    users: list[RawSession]
    item_tokens: list[str]


def read_inter_file(
    path: PathLike,
    user_field: str = "user_id",
    item_field: str = "item_id",
    time_field: str | None = "timestamp",
) -> InterFile:
    r"""Reads a RecBole atomic ``.inter`` file (tab-separated, header fields
    ``name:type`` such as ``user_id:token``) as RecBole 1.2.1 reads it for
    sequential models, without filtering:

    * tokens are numbered by :func:`pandas.factorize` over the file's rows
      (``Dataset._remap``): users and items get ids :obj:`1, 2, ...` in order
      of first appearance in the file, not in time order;
    * each user's interactions are sorted by time with a stable sort
      (``SequentialDataset.data_augmentation``) on the times as RecBole holds
      them, float32 (a ``float`` field becomes a ``torch.FloatTensor``):
      times closer than the float32 spacing tie (64 s around 2001, 128 s
      after 2004), and ties keep the file's row order.

    Args:
        path (str or PathLike): the ``.inter`` file.
        user_field (str, optional): the user (sequence) field name.
            (default: :obj:`"user_id"`)
        item_field (str, optional): the item field name.
            (default: :obj:`"item_id"`)
        time_field (str, optional): the time field (unix seconds, or an ISO
            8601 date/time, which RecBole itself would not read); :obj:`None`
            keeps the file order. (default: :obj:`"timestamp"`)

    Returns:
        An :class:`InterFile`: the users in order of first appearance (their
        RecBole ids), each a :class:`RawSession` whose :obj:`session_id` is
        the user id and whose :obj:`timestamps` are the float32 times (file
        line numbers without :obj:`time_field`), and the item tokens in
        RecBole's id order.

    Raises:
        DataFormatError: on a missing field or column, an empty id or a bad
            time (not a number or a date, or NaN).
    """
    lines = _iter_lines(path)
    first = next(lines, None)
    if first is None:
        raise DataFormatError(path, None, "empty file")
    names = [h.split(":", 1)[0].strip() for h in first[1].split("\t")]

    def find(name: str) -> int:
        if name not in names:
            raise DataFormatError(path, 1, f"missing field {name!r} in header {names}")
        return names.index(name)

    cu, ci = find(user_field), find(item_field)
    ct = find(time_field) if time_field is not None else None
    need = max(c for c in (cu, ci, ct) if c is not None) + 1
    rows: dict[str, list[int]] = {}  # user -> its rows, in file order
    items: list[str] = []
    times: list[float] = []
    for number, line in lines:
        if not line.strip():
            raise DataFormatError(path, number, "empty line")
        parts = line.split("\t")
        if len(parts) < need:
            raise DataFormatError(
                path, number, f"missing column: expected at least {need} fields, got {len(parts)}"
            )
        uid, item = parts[cu].strip(), parts[ci].strip()
        if not uid:
            raise DataFormatError(path, number, f"empty {user_field}")
        if not item:
            raise DataFormatError(path, number, f"empty {item_field}")
        times.append(float(number) if ct is None else _inter_time(path, number, parts[ct],
                                                                   time_field))
        rows.setdefault(uid, []).append(len(items))
        items.append(item)
    with np.errstate(over="ignore"):  # beyond float32's range: inf, as in RecBole
        held = np.asarray(times, dtype=np.float64).astype(np.float32).tolist()
    users = []
    for uid, own in rows.items():
        own = sorted(own, key=held.__getitem__)  # stable: ties keep the row order
        users.append(RawSession(uid, [items[r] for r in own], [held[r] for r in own]))
    return InterFile(users, list(dict.fromkeys(items)))


def _inter_time(path: PathLike, number: int, text: str, field: str | None) -> float:
    try:
        t = parse_timestamp(text)
    except ValueError:
        raise DataFormatError(path, number, f"invalid {field} {text.strip()!r}") from None
    if math.isnan(t):  # RecBole would fill in the mean; sorting NaN is undefined
        raise DataFormatError(path, number, f"invalid {field} {text.strip()!r} (NaN)")
    return t


def read_inter(
    path: PathLike,
    user_field: str = "user_id",
    item_field: str = "item_id",
    time_field: str | None = "timestamp",
) -> list[RawSession]:
    r"""The per-user sequences of a RecBole atomic ``.inter`` file, in
    RecBole's order: :obj:`read_inter_file(...).users` (see
    :func:`read_inter_file`, which also gives RecBole's item numbering).

    Args:
        path (str or PathLike): the ``.inter`` file.
        user_field, item_field, time_field (str, optional): the field names.
            (default: :obj:`"user_id"`, :obj:`"item_id"`, :obj:`"timestamp"`)

    Returns:
        One :class:`RawSession` per user, users in order of first
        appearance, interactions by float32 time, ties in file order.

    Raises:
        DataFormatError: on a missing field or column, an empty id or a bad
            time.
    """
    return read_inter_file(path, user_field, item_field, time_field).users


def leave_one_out(
    sequences: Sequence[Sequence[int]],
) -> dict[str, list[Sample]]:
    r"""RecBole's leave-one-out split of sequential data (``'LS':
    'valid_and_test'``): every sequence :obj:`s` gives the samples
    :obj:`(s[:i], s[i])` for :obj:`i = 1 .. len(s) - 1`; per sequence the
    last sample goes to test, the second to last to valid, the others to
    train. A sequence with one sample keeps it in train; with two samples,
    the first is train and the last test.

    Args:
        sequences (sequence of sequences of int): the per-user sequences,
            sorted by time.

    Returns:
        A dict with keys :obj:`"train"`, :obj:`"valid"`, :obj:`"test"`, each
        a list of :obj:`(prefix, label)` (train: per user, shortest prefix
        first).
    """
    out: dict[str, list[Sample]] = {"train": [], "valid": [], "test": []}
    for seq in sequences:
        seq = list(seq)
        samples = [(seq[:i], seq[i]) for i in range(1, len(seq))]
        held = min(2, len(samples) - 1)  # RecBole: min(leave_one_num, count - 1)
        if held <= 0:
            out["train"].extend(samples)
            continue
        cut = len(samples) - held
        out["train"].extend(samples[:cut])
        if held == 2:
            out["valid"].append(samples[cut])
        out["test"].append(samples[-1])
    return out
