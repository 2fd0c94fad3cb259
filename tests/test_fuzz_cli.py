"""Robustness of the command line (issue 19.13): small click files in every
supported format, corrupted the ways real files are (a byte order mark, CRLF,
blank lines, NaN/inf times, missing columns, bytes that are not UTF-8, huge
and negative ids, empty and header-only files, one-click sessions), through
``gcsan-pyg info`` and ``gcsan-pyg train --epochs 1`` in-process. Every
outcome is a success or exit 2 with one line naming the file or the option:
never a traceback, never exit 1, never a half-written cache."""
from __future__ import annotations

import contextlib
import io
import math
import re
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gcsan_pyg.cli import main

FUZZ_CLI = settings(max_examples=200, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
FORMATS = ("srgnn", "clicks_csv", "clicks_tsv", "inter", "diginetica", "yoochoose")
CORRUPTIONS = ("bom", "crlf", "blank_line", "nan_time", "inf_time", "missing_column",
               "not_utf8", "empty_file", "header_only", "huge_id", "negative_id")
# The smallest run that still trains, validates, tests and writes everything.
TRAIN = ["--epochs", "1", "--hidden-channels", "4", "--inner-channels", "4", "--batch-size",
         "64", "--ks", "1", "--metric", "Hit@1", "--quiet", "--threads", "1"]

pytestmark = pytest.mark.usefixtures("one_torch_thread")

item_ids = st.one_of(
    st.integers(1, 12),
    st.sampled_from([0, -1, -7, 2**40, 2**63 - 2, 2**70]),
)
sessions = st.lists(
    st.lists(st.one_of(st.integers(1, 6), st.integers(1, 6), item_ids), min_size=1,
             max_size=6),
    min_size=6, max_size=24,
)


def _click_rows(sessions: list[list[int]]) -> list[tuple[str, str, float]]:
    """(session id, item id, time) of every click, times increasing."""
    rows, t = [], 1_500_000_000.0
    for number, session in enumerate(sessions):
        for item in session:
            t += 3600.0 * 9  # sessions spread over days: the time splits have data
            rows.append((str(number + 1), str(item), t))
    return rows


def _render(kind: str, sessions: list[list[int]]) -> dict[str, list[str]]:
    """The files of one data set in format :obj:`kind`: name -> lines."""
    rows = _click_rows(sessions)
    if kind == "srgnn":
        cut = max(1, len(sessions) * 3 // 4)
        test = [f"{','.join(map(str, s[:-1]))}\t{s[-1]}" for s in sessions[cut:] if len(s) > 1]
        return {"train_sessions.txt": [",".join(map(str, s)) for s in sessions[:cut]],
                "test.tsv": test}
    if kind in ("clicks_csv", "clicks_tsv"):
        sep = "," if kind == "clicks_csv" else "\t"
        lines = [sep.join(("session_id", "item_id", "timestamp"))]
        return {f"clicks.{kind[-3:]}": lines + [sep.join((s, i, f"{t:.0f}")) for s, i, t in rows]}
    if kind == "inter":
        lines = ["user_id:token\titem_id:token\ttimestamp:float"]
        return {"log.inter": lines + [f"{s}\t{i}\t{t:.0f}" for s, i, t in rows]}
    if kind == "diginetica":
        lines = ["sessionId;userId;itemId;timeframe;eventdate"]
        for frame, (s, i, t) in enumerate(rows):
            day = f"2016-05-{1 + int(t - 1_500_000_000) // 86400 % 28:02d}"
            lines.append(f"{s};NA;{i};{frame};{day}")
        return {"train-item-views.csv": lines}
    lines = []  # yoochoose-clicks.dat: session,ISO time,item,category
    for s, i, t in rows:
        stamp = f"2014-04-{1 + int(t - 1_500_000_000) // 86400 % 28:02d}T10:00:00.000Z"
        lines.append(f"{s},{stamp},{i},0")
    return {"yoochoose-clicks.dat": lines}


def _write(folder: Path, files: dict[str, list[str]], corruptions: list[str],
           where: int) -> None:
    """Writes :obj:`files` into :obj:`folder`, corrupted; :obj:`where` picks
    the line (or byte) each corruption hits."""
    for name, lines in files.items():
        lines, newline = list(lines), "\n"
        for corruption in corruptions:
            row = where % len(lines) if lines else 0
            if corruption == "crlf":
                newline = "\r\n"
            elif corruption == "blank_line" and lines:
                lines.insert(row, "")
            elif corruption in ("nan_time", "inf_time") and lines:
                value = "nan" if corruption == "nan_time" else "-inf"
                lines[row] = re.sub(r"[0-9]{6,}(?!.*[0-9]{6,})", value, lines[row])
            elif corruption == "missing_column" and lines:
                lines[row] = re.split(r"[,;\t]", lines[row])[0]
            elif corruption in ("huge_id", "negative_id") and lines:
                # The item id of a click row (the first id of an SR-GNN line).
                value = str(2**63 - 2 if corruption == "huge_id" else -5)
                fields = re.split(r"([,;\t])", lines[row])
                index = {"clicks.csv": 2, "clicks.tsv": 2, "log.inter": 2,
                         "train-item-views.csv": 4, "yoochoose-clicks.dat": 4}.get(name, 0)
                if index < len(fields):
                    fields[index] = value
                lines[row] = "".join(fields)
            elif corruption == "header_only":
                lines = lines[:1]
            elif corruption == "empty_file":
                lines = []
        data = (newline.join(lines) + (newline if lines else "")).encode("utf-8")
        if "not_utf8" in corruptions:
            cut = where % (len(data) + 1)
            data = data[:cut] + b"\xff\xfe" + data[cut:]
        if "bom" in corruptions:
            data = b"\xef\xbb\xbf" + data
        (folder / name).write_bytes(data)


def _assert_clean_outcome(code: int, err: str, names: list[str]) -> None:
    assert code in (0, 2), (code, err)
    if code == 2:
        assert err.startswith("error: ") and err.count("\n") == 1, err
        # The line names the file (or a file of the folder) or the option at fault.
        assert any(name in err for name in names) or re.search(r"--[a-z]", err), err


def _assert_cache_complete(root: Path) -> None:
    assert not list(root.rglob("*.tmp")), "a half-written file was left behind"
    for path in root.rglob("*.pt"):
        torch.load(path, weights_only=True)  # every cached file reads back whole


@FUZZ_CLI
@example("srgnn", [[1, 2, 3]] * 8, ["huge_id"], 0)  # a table of 2^63 - 1 rows: refused
@example("clicks_csv", [[1, 2]] * 8, ["bom", "nan_time"], 3)
@given(st.sampled_from(FORMATS), sessions,
       st.lists(st.sampled_from(CORRUPTIONS), max_size=2, unique=True),
       st.integers(0, 10**6))
def test_info_and_train_end_in_success_or_one_clear_line(kind, sessions, corruptions, where):
    files = _render(kind, sessions)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = tmp / "data"
        folder.mkdir()
        _write(folder, files, corruptions, where)
        data = folder if kind == "srgnn" else folder / next(iter(files))
        names = [str(data), *(name for name in files)]
        root = tmp / "cache"

        code, err = _run(["info", str(data), "--root", str(root)])
        _assert_clean_outcome(code, err, names)
        _assert_cache_complete(root)
        if code != 0:
            return
        out = tmp / "run"
        # A .inter file is split leave-one-out; the others hold out a share for validation.
        valid = [] if kind == "inter" else ["--valid-fraction", "0.3"]
        code, err = _run(["train", str(data), "--root", str(root), "--out", str(out), *TRAIN,
                          *valid])
        _assert_clean_outcome(code, err, names)
        _assert_cache_complete(root)
        _assert_cache_complete(out)
        if code == 0:
            assert (out / "results.json").is_file() and (out / "best.pt").is_file()
            results = (out / "results.json").read_text()
            assert not math.isnan(float(re.search(r'"train_loss": ([^,\n]+)', results)[1]))


def _run(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    return code, err.getvalue()
