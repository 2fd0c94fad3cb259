"""Command line interface (``gcsan-pyg`` / ``python -m gcsan_pyg``)."""
from gcsan_pyg.cli.main import build_parser, main

__all__ = ["main", "build_parser"]
