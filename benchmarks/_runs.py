"""``gcsan-pyg train`` runs of the accuracy scripts, kept once finished: a
rerun reuses a run folder whose ``results.json`` is the same command with the
config's current values, so a long search that stopped resumes where it was."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from gcsan_pyg.cli import main as cli_main


def same_run(results: dict[str, Any], argv: list[str], config: dict[str, Any]) -> bool:
    """Whether a finished run's ``results.json`` is the run ``argv`` asks for:
    the same command up to where its folders lie (a path compares by its last
    component), trained with the config's current values."""
    def tokens(args: list[str]) -> list[str]:
        return [Path(arg).name if os.path.isabs(arg) else arg for arg in args]

    if tokens(results["command"].split()[2:]) != tokens(argv):
        return False
    given = {arg[2:].replace("-", "_") for arg in argv if arg.startswith("--")}
    settings = {**results["train_config"], **results["hparams"]}
    return all(settings[key] == value for key, value in config.items()
               if key in settings and key not in given)


def train_or_reuse(argv: list[str], config: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """One ``gcsan-pyg train`` run (its ``--out`` folder's ``results.json``)
    and whether a finished run of the same command was reused instead."""
    path = Path(argv[argv.index("--out") + 1]) / "results.json"
    if path.is_file():
        results = json.loads(path.read_text(encoding="utf-8"))
        if same_run(results, argv, config):
            return results, True
    code = cli_main(["train", *argv])
    if code:
        raise SystemExit(f"gcsan-pyg train {' '.join(argv)} failed with status {code}")
    return json.loads(path.read_text(encoding="utf-8")), False
