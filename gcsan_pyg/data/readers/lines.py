"""Reading data files line by line, with errors that name the file and the line."""
from __future__ import annotations

import os
import re
from collections.abc import Iterator

PathLike = str | os.PathLike


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


def iter_lines(path: PathLike) -> Iterator[tuple[int, str]]:
    r"""Yields :obj:`(line_number, line)` without the line break. Blank lines
    at the very end of the file are dropped; other blank lines are kept (the
    callers reject them). A UTF-8 byte order mark (as spreadsheet programs
    write) is dropped."""
    blank: list[tuple[int, str]] = []  # held back until a non-blank line follows
    try:
        with open(path, encoding="utf-8-sig", newline=None) as f:
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


def normalize_name(name: str) -> str:
    """A column name compared loosely: lower case, without ``_``, ``-`` and spaces."""
    return name.strip().lower().replace("_", "").replace("-", "").replace(" ", "")
