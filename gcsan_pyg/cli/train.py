"""``gcsan-pyg train``: options from defaults, a config file and the command
line; data; training, in one process or under ``torchrun``; ``results.json``."""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import torch

from gcsan_pyg.cli.data import (
    check_splits,
    dataset_options,
    load_splits_rank0_first,
    warn_sparse_ids,
)
from gcsan_pyg.cli.evaluate import print_metrics
from gcsan_pyg.cli.options import (
    DATA_OPTIONS,
    DEFAULT_ROOT,
    MODEL_OPTIONS,
    RUN_OPTIONS,
    SYNTHETIC_DEFAULTS,
    SYNTHETIC_OPTIONS,
    TRAIN_OPTIONS,
    UsageError,
    add_options,
    add_progress_flags,
    add_threads,
    read_config,
    show_progress,
)
from gcsan_pyg.cli.provenance import git_state, versions
from gcsan_pyg.data.dataset import SPLITS
from gcsan_pyg.io import atomic_write_text
from gcsan_pyg.nn import GCSAN
from gcsan_pyg.nn.memory import check_item_table_fits
from gcsan_pyg.training import (
    TrainConfig,
    Trainer,
    TrainingInterrupted,
    distributed,
    popularity_baseline,
)

log = logging.getLogger("gcsan_pyg")

# Every option a run takes, by name: the tables, and the run's own.
ALL_OPTIONS = {**MODEL_OPTIONS, **TRAIN_OPTIONS, **DATA_OPTIONS, **SYNTHETIC_OPTIONS,
               **RUN_OPTIONS}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``gcsan-pyg train``."""
    parser.description = (
        "Trains GC-SAN and reports its test metrics next to the popularity baseline; writes "
        "<out>/best.pt, <out>/last.pt (resumable) and <out>/results.json. Every option can "
        "also come from --config; the command line wins.")
    parser.add_argument("data", nargs="?", default=None,
                        help="'synthetic', a folder of train_sessions.txt + test.tsv (SR-GNN), "
                             "a raw Diginetica .csv, a yoochoose .dat, a click .csv/.tsv or a "
                             "RecBole .inter file (default: synthetic)")
    parser.add_argument("--config", metavar="FILE",
                        help="YAML or TOML file of options, under these names (hidden_channels "
                             "or hidden-channels) or RecBole's (hidden_size, n_heads, step, "
                             "weight, learning_rate, train_batch_size, stopping_step, "
                             "MAX_ITEM_LIST_LENGTH, ...) (default: no file)")
    parser.add_argument("--root", default=None,
                        help=f"processed-data cache (default: {DEFAULT_ROOT})")
    parser.add_argument("--out", default=None,
                        help="checkpoint folder (default: runs/<name of the data>)")
    parser.add_argument("--resume", action="store_true", default=None,
                        help="continue from <out>/last.pt (default: off)")
    parser.add_argument("--skip-test", action="store_true", default=None,
                        help=RUN_OPTIONS["skip_test"].help_text())
    add_threads(parser)
    add_progress_flags(parser)
    add_options(parser, MODEL_OPTIONS, "model")
    add_options(parser, TRAIN_OPTIONS, "training")
    add_options(parser, DATA_OPTIONS, "data")
    add_options(parser, SYNTHETIC_OPTIONS, "synthetic data")


def merged_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options given: the config file's, then the command line's over
    them; on synthetic data, its schedule beneath both."""
    values: dict[str, Any] = read_config(args.config) if args.config else {}
    given = vars(args)
    values.update({k: given[k] for k in [*ALL_OPTIONS, "resume"] if given.get(k) is not None})
    values["data"] = str(values.get("data", "synthetic"))
    if values["data"] == "synthetic":
        values = {**SYNTHETIC_DEFAULTS, **values}
    if values.get("threads", 1) < 1:
        raise UsageError(f"threads must be positive, got {values['threads']}")
    return values


def run(args: argparse.Namespace) -> int:
    values = merged_options(args)
    # Every check that needs no data, before any is read.
    data_options = dataset_options(values["data"], values)
    config = TrainConfig(**{
        name: values[name] for name in TRAIN_OPTIONS if values.get(name) is not None
    }, progress=show_progress(values.get("quiet"), args.progress))
    model_args = {k: values[k] for k in MODEL_OPTIONS if values.get(k) is not None}
    GCSAN(2, **model_args)  # the model's own argument checks, on a two-row table
    if values.get("threads"):
        torch.set_num_threads(values["threads"])
    # Under torchrun: join the process group (one GPU per process on CUDA).
    info, device = distributed.setup(config.device)
    try:
        return train(values, data_options, dataclasses.replace(config, device=str(device)),
                     model_args, info, shlex.join(["gcsan-pyg", *args.argv]))
    finally:
        distributed.cleanup()


def train(values: dict[str, Any], data_options: dict[str, Any], config: TrainConfig,
          model_args: dict[str, Any], info: distributed.DistInfo, command: str) -> int:
    """Loads the data, trains, tests, and writes ``results.json`` (rank 0)."""
    if not info.is_main:  # one process logs and prints
        log.setLevel(logging.WARNING)
    start = time.perf_counter()
    code_state = git_state()  # the code this run starts with, whatever is checked out later
    data = values["data"]
    splits = load_splits_rank0_first(data, values.get("root", DEFAULT_ROOT), data_options)
    # An empty split or an impossible cut-off fails now, not after an epoch.
    needed = ("train", *(() if values.get("valid_fraction") == 0 else ("valid",)),
              *(() if values.get("skip_test") else ("test",)))
    check_splits(splits, needed, config.ks)
    warn_sparse_ids(splits["train"])
    num_items, item_ids = splits["train"].num_items, splits["train"].item_ids
    train_samples, valid, test = (splits[split].samples for split in SPLITS)
    log.info("data %s: %d train / %d valid / %d test samples, %d items",
             data, len(train_samples), len(valid), len(test), num_items - 1)
    if info.enabled:
        log.info("data-parallel over %d processes (%s), batch size %d per process",
                 info.world_size, config.device, config.batch_size)

    shape = GCSAN(2, **model_args)  # the model's defaults, on a two-row table
    check_item_table_fits(num_items, shape.hidden_channels, training=True,
                          loss_type=shape.loss_type, device=config.device,
                          source=splits["train"].split_source("train"))
    torch.manual_seed(config.seed)
    model = GCSAN(num_items, **model_args)
    out = Path(values.get("out") or Path("runs") / Path(data).stem)
    extra = {
        "item_ids": item_ids,
        # What evaluate and recommend need to see the data as training did.
        "data": {"source": data, **data_options, "max_length": config.max_length},
    }
    trainer = Trainer(model, config, checkpoint_dir=out, extra=extra)
    if values.get("resume"):
        trainer.resume(out / "last.pt")
    try:
        trainer.fit(train_samples, valid if len(valid) else None)
    except TrainingInterrupted as stop:
        if info.is_main:
            print(f"interrupted: {stop}", file=sys.stderr)
        return 128 + stop.signum

    skip_test = bool(values.get("skip_test"))
    test_metrics = None if skip_test else trainer.evaluate(test)
    if not info.is_main:
        return 0
    baseline = None if skip_test else popularity_baseline(train_samples, test, num_items,
                                                          config.ks)
    seconds = time.perf_counter() - start
    if not skip_test:
        print_metrics({"GC-SAN (test)": test_metrics, "popularity (test)": baseline})
    print(f"best epoch {trainer.state.best_epoch}, {seconds:.0f} s; checkpoint: {out / 'best.pt'}")
    summary = {
        "command": command,
        "git": code_state,
        "versions": versions(),
        "data": data,
        "data_options": data_options,
        "samples": {split: len(splits[split].samples) for split in SPLITS},
        "hparams": model.hparams,
        "train_config": dataclasses.asdict(config),
        "world_size": info.world_size,
        "compiled": trainer.compiled,
        "history": trainer.state.history,
        "best_epoch": trainer.state.best_epoch,
        "test": test_metrics,
        "popularity_test": baseline,
        "wall_seconds": round(seconds, 1),
    }
    atomic_write_text(json.dumps(summary, indent=2) + "\n", out / "results.json")
    return 0
