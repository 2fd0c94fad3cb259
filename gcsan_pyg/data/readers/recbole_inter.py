"""RecBole's atomic ``.inter`` files, read as RecBole's sequential datasets read them."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gcsan_pyg.data.readers.click_log import RawSession, parse_timestamp
from gcsan_pyg.data.readers.lines import DataFormatError, PathLike, iter_lines


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
    lines = iter_lines(path)
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
    if not items:
        raise DataFormatError(path, None, "no interaction after the header line")
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
