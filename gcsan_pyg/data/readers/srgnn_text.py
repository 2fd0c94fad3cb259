"""SR-GNN's preprocessed text files: ``train_sessions.txt`` (one session per
line, comma-separated item ids) and ``test.tsv`` (``prefix<TAB>label``)."""
from __future__ import annotations

import re

import torch

from gcsan_pyg.data.item_ids import INT64_MAX
from gcsan_pyg.data.readers.lines import DataFormatError, PathLike, iter_lines
from gcsan_pyg.data.samples import SessionSamples, offsets

_INT_TOKEN = re.compile(r"[+-]?\d+")
_MAX_ID = INT64_MAX - 1  # item tables hold ids 0 .. max id in int64, so max id + 1 must fit


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
    return [_parse_ids(path, number, line, "session") for number, line in iter_lines(path)]


def read_samples(path: PathLike) -> SessionSamples:
    r"""Reads an SR-GNN ``test.tsv`` / ``train.tsv``: one sample per line,
    ``<prefix><TAB><label>``, the prefix being comma-separated item ids.

    Args:
        path (str or PathLike): the file.

    Returns:
        The samples in file order, each prefix stored apart.

    Raises:
        DataFormatError: on an empty line or prefix, a missing label or column,
            extra columns, a non-integer token or an id :math:`\leq 0`.
    """
    clicks: list[int] = []
    lengths: list[int] = []
    targets: list[int] = []
    for number, line in iter_lines(path):
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
        clicks.extend(prefix)
        lengths.append(len(prefix))
        targets.append(label[0])
    length = torch.tensor(lengths, dtype=torch.long)
    return SessionSamples(torch.tensor(clicks, dtype=torch.long), offsets(length)[:-1], length,
                          torch.tensor(targets, dtype=torch.long))
