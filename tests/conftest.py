"""Shared fixtures: the real datasets of ``../shared``."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
# The dense reference model (the parity tests' oracle) lives with the benchmarks.
sys.path.insert(0, str(REPO / "benchmarks"))


def _shared_dir(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        reason = f"real data not found at {path} (clone the project beside ../shared to run this)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {reason}")
        pytest.skip(reason)
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``; skips where absent, fails when ``CI=true``."""
    return _shared_dir("data")


@pytest.fixture(scope="session")
def shared_fixtures() -> Path:
    """``../shared/fixtures``; skips where absent, fails when ``CI=true``."""
    return _shared_dir("fixtures")


@pytest.fixture(scope="module")
def one_torch_thread():
    """Many tiny vectorised calls: on a busy machine every parallel torch op waits
    for a free core (milliseconds each), so modules of such tests run
    single-threaded (``pytestmark = pytest.mark.usefixtures("one_torch_thread")``).
    The results of these integer ops do not depend on the thread count."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
