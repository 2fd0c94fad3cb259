"""The ``gcsan-pyg`` command line: its commands, and how a run ends.

Exit status:

* 0: done;
* 2: a usage or input error (a bad option, config file, data file,
  checkpoint or item id): one line on stderr, ``error: ...``, no traceback;
* 128 + N: training interrupted by signal N (130 for SIGINT, 143 for
  SIGTERM), resumable with ``--resume``;
* 141 (128 + SIGPIPE, what a shell reports for a program its pipe killed):
  stdout was closed early, as by ``gcsan-pyg info DATA | head``; the output
  stops there, quietly.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

import torch

from gcsan_pyg.cli import evaluate, info, recbole, recommend, train
from gcsan_pyg.cli.options import UsageError

EXIT_USAGE = 2
EXIT_BROKEN_PIPE = 141

# name -> (one-line help, adds the arguments, runs the command)
COMMANDS = {
    "train": ("train a model (default: on the built-in synthetic data, under a minute)",
              train.add_arguments, train.run),
    "evaluate": ("metrics of a checkpoint on a dataset split",
                 evaluate.add_arguments, evaluate.run),
    "recommend": ("top-k next items for a new session",
                  recommend.add_arguments, recommend.run),
    "info": ("dataset statistics", info.add_arguments, info.run),
    "import-recbole": ("RecBole GCSAN checkpoint -> gcsan_pyg checkpoint",
                       recbole.add_import_arguments, recbole.run_import),
    "export-recbole": ("gcsan_pyg checkpoint -> RecBole-style file",
                       recbole.add_export_arguments, recbole.run_export),
}


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, whose usage errors end as every input error does:
    one line, exit status 2 (see :func:`main`)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``gcsan-pyg`` and its commands."""
    parser = ArgumentParser(
        prog="gcsan-pyg",
        description="GC-SAN session-based recommendation on PyTorch Geometric.",
        epilog="exit status: 0 done; 2 usage or input error; 128+N interrupted by signal N "
               "(resume with --resume); 141 output pipe closed early (e.g. | head)",
    )
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="debug logging (default: off)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    for name, (text, add_arguments, run) in COMMANDS.items():
        command = sub.add_parser(name, help=text)
        add_arguments(command)
        command.set_defaults(func=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs ``gcsan-pyg`` with :obj:`argv` (default: :obj:`sys.argv[1:]`) and
    returns its exit status (see the module doc)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
        args.argv = argv  # results.json records the command
        logging.basicConfig(
            level=logging.DEBUG if args.verbose else logging.INFO,
            format="%(asctime)s %(message)s", datefmt="%H:%M:%S",
        )
        torch.set_flush_denormal(True)  # tiny Adam moments otherwise slow the CPU down
        code = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return code
    except BrokenPipeError:
        # The reader has gone: point stdout at /dev/null so that Python's own
        # flush at exit does not fail again and print a traceback.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except (UsageError, ValueError, OSError) as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        print(f"error: {'; '.join(lines) or type(error).__name__}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
