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


def _git(*args: str) -> str | None:
    """The output of a read-only git command in the package's folder, or
    :obj:`None` (no git, or the package is not in a git work tree)."""
    try:
        result = subprocess.run(
            # --no-optional-locks: `git status` must not rewrite the index of a
            # tree that someone else may be using.
            ["git", "--no-optional-locks", *args], cwd=Path(gcsan_pyg.__file__).parent,
            capture_output=True, text=True, timeout=30, check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout


def git_state() -> dict[str, Any]:
    r"""The commit the package's source tree is at and whether tracked files
    differ from it: :obj:`{"commit": sha, "dirty": bool}`, both :obj:`None`
    outside a git work tree (an installed wheel)."""
    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    status = _git("status", "--porcelain", "--untracked-files=no")
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
