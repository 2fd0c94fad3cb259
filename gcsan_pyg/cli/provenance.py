"""What a run's ``results.json`` records of the code that made it: the git
commit of the package's source tree and the package versions."""
from __future__ import annotations

import platform
import subprocess
from pathlib import Path
from typing import Any

import numpy
import torch
import torch_geometric

import gcsan_pyg


def _git(folder: Path, *args: str) -> str | None:
    """The output of a read-only git command in :obj:`folder`, or
    :obj:`None` (no git, or the folder is not in a git work tree)."""
    try:
        result = subprocess.run(
            # --no-optional-locks: `git status` must not rewrite the index of a
            # tree that someone else may be using.
            ["git", "--no-optional-locks", *args], cwd=folder,
            capture_output=True, text=True, timeout=30, check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout


#: Result files a benchmark writes into the work tree: they describe runs,
#: they are not the code that ran, so a changed one does not make it dirty.
RESULTS_PATHSPEC = ":(top,exclude)benchmarks/results"


def git_state(folder: str | Path | None = None) -> dict[str, Any]:
    r"""The commit the source tree is at and whether tracked files other
    than the benchmark results differ from it: :obj:`{"commit": sha,
    "dirty": bool}`, both :obj:`None` outside a git work tree (an installed
    wheel).

    Args:
        folder (str or Path, optional): a folder of the work tree.
            (default: the package's own)
    """
    folder = Path(gcsan_pyg.__file__).parent if folder is None else Path(folder)
    commit = _git(folder, "rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    status = _git(folder, "status", "--porcelain", "--untracked-files=no", "--", ":(top)",
                  RESULTS_PATHSPEC)
    return {"commit": commit.strip(), "dirty": None if status is None else bool(status.strip())}


def versions() -> dict[str, str]:
    """The versions of Python and of the packages a run depends on."""
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_geometric": torch_geometric.__version__,
        "numpy": numpy.__version__,
        "gcsan_pyg": gcsan_pyg.__version__,
    }
