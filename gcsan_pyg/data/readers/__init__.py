"""Readers of session data files. Each raises
:class:`~gcsan_pyg.data.readers.DataFormatError` (a :class:`ValueError`)
naming the file, the 1-based line and the reason for a malformed line."""
from gcsan_pyg.data.readers.click_log import RawSession, parse_timestamp, read_clicks
from gcsan_pyg.data.readers.lines import DataFormatError, iter_lines, normalize_name
from gcsan_pyg.data.readers.recbole_inter import InterFile, read_inter, read_inter_file
from gcsan_pyg.data.readers.srgnn_text import read_samples, read_sessions

__all__ = [
    "DataFormatError",
    "iter_lines",
    "normalize_name",
    "read_sessions",
    "read_samples",
    "RawSession",
    "parse_timestamp",
    "read_clicks",
    "InterFile",
    "read_inter_file",
    "read_inter",
]
