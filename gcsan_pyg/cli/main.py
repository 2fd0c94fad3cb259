"""The ``gcsan-pyg`` command line: train, evaluate, recommend, info, RecBole import/export."""
from __future__ import annotations

import argparse
import inspect
import json
import logging
import sys
import time
import tomllib
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch
import yaml

from gcsan_pyg.nn.gcsan import GCSAN
from gcsan_pyg.training import distributed
from gcsan_pyg.training.checkpoint import load_model, save_checkpoint
from gcsan_pyg.training.evaluate import popularity_baseline
from gcsan_pyg.training.loader import SessionSamples
from gcsan_pyg.training.trainer import TrainConfig, Trainer, TrainingInterrupted

log = logging.getLogger("gcsan_pyg")

# Option name -> (type, help). Their defaults live in GCSAN / TrainConfig / the dataset.
MODEL_OPTIONS: dict[str, tuple[type, str]] = {
    "hidden_channels": (int, "embedding and state size"),
    "num_layers": (int, "self-attention layers"),
    "num_heads": (int, "attention heads"),
    "inner_channels": (int, "feed-forward width"),
    "step": (int, "gated graph cell steps"),
    "weight": (float, "share of the self-attention output in the session vector"),
    "hidden_dropout": (float, "dropout inside the encoder layers"),
    "attn_dropout": (float, "dropout on attention probabilities"),
    "activation": (str, "feed-forward activation: gelu, relu, swish, tanh, sigmoid"),
    "layer_norm_eps": (float, "layer-norm epsilon"),
    "initializer_range": (float, "std of the normal initialisation"),
    "loss_type": (str, "CE (softmax over all items) or BPR (one uniform negative)"),
    "reg_weight": (float, "weight of the embedding regulariser"),
}
TRAIN_OPTIONS: dict[str, tuple[type, str]] = {
    "epochs": (int, "most epochs"),
    "batch_size": (int, "training sessions per step"),
    "eval_batch_size": (int, "sessions per evaluation batch"),
    "lr": (float, "initial learning rate"),
    "lr_step": (int, "epochs between learning-rate decays (0: never)"),
    "lr_gamma": (float, "learning-rate decay factor"),
    "weight_decay": (float, "Adam L2 penalty"),
    "patience": (int, "early stopping: epochs without improvement (0: off)"),
    "metric": (str, "validation metric for model selection, e.g. MRR@20"),
    "seed": (int, "random seed (shuffling, initialisation, dropout)"),
    "max_length": (int, "keep only the most recent clicks of longer sessions"),
    "device": (str, "cpu (default), cuda, cuda:1, ... or auto (cuda where available); "
                    "under torchrun, cuda is each process's GPU LOCAL_RANK"),
}
# On/off training switches (--bf16; `bf16: true` in a config file).
TRAIN_FLAGS: dict[str, str] = {
    "bf16": "bfloat16 autocast of the training forward pass (CPU and CUDA); the softmax "
            "over all items, the optimizer and evaluation stay float32",
    "compile": "torch.compile the graph cell and the self-attention stack (falls back to "
               "eager, with a warning, where compilation is unavailable)",
}
DATA_OPTIONS: dict[str, tuple[type, str]] = {
    "valid_fraction": (float, "share of training sessions held out for validation"),
}
# `gcsan-pyg train` with no data trains on the built-in synthetic set, with a
# schedule that converges on it in well under a minute.
SYNTHETIC_DEFAULTS: dict[str, Any] = {
    "hidden_channels": 64,
    "epochs": 12,
    "lr_step": 4,
}


def _dest(name: str) -> str:
    return "--" + name.replace("_", "-")


def _add_options(parser: argparse.ArgumentParser, options: dict[str, tuple[type, str]],
                 title: str) -> argparse._ArgumentGroup:
    group = parser.add_argument_group(title)
    for name, (kind, text) in options.items():
        group.add_argument(_dest(name), dest=name, type=kind, default=None, help=text)
    return group


def _read_config(path: str) -> dict[str, Any]:
    file = Path(path)
    if not file.is_file():
        raise SystemExit(f"error: config file {file} does not exist")
    try:
        if file.suffix == ".toml":
            config = tomllib.loads(file.read_text())
        else:
            config = yaml.safe_load(file.read_text()) or {}
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as error:
        raise SystemExit(f"error: config file {file} is not valid: {error}") from error
    if not isinstance(config, dict):
        raise SystemExit(f"error: config file {file} must hold a mapping of option: value")
    known = set(MODEL_OPTIONS) | set(TRAIN_OPTIONS) | set(TRAIN_FLAGS) | set(DATA_OPTIONS)
    known |= {"data", "root", "out", "ks", "threads", "quiet"}
    config = {key.replace("-", "_"): value for key, value in config.items()}
    unknown = sorted(set(config) - known)
    if unknown:
        raise SystemExit(f"error: config file {file} has unknown options {unknown}")
    return config


def _merged(args: argparse.Namespace) -> dict[str, Any]:
    """Defaults, then the config file, then explicit command-line options."""
    values: dict[str, Any] = {}
    if args.config:
        values.update(_read_config(args.config))
    values.update({k: v for k, v in vars(args).items() if v is not None})
    values.setdefault("data", "synthetic")
    if values["data"] == "synthetic":
        values = {**SYNTHETIC_DEFAULTS, **values}
    return values


def _load_splits(data: str, root: str, **options: Any) -> dict[str, Any]:
    from gcsan_pyg.data.datasets import load_dataset, resolve_dataset_class

    cls, _ = resolve_dataset_class(data)
    accepted = inspect.signature(cls.__init__).parameters
    unsupported = sorted(set(options) - set(accepted))
    if unsupported:
        raise ValueError(f"options {unsupported} do not apply to {data} ({cls.__name__})")
    return {
        split: load_dataset(data, root=root, split=split, **options)
        for split in ("train", "valid", "test")
    }


def _data_options(values: dict[str, Any]) -> dict[str, Any]:
    options = {k: values[k] for k in DATA_OPTIONS if values.get(k) is not None}
    if values.get("max_length") is not None:
        options["max_length"] = values["max_length"]
    return options


def cmd_train(args: argparse.Namespace) -> int:
    values = _merged(args)
    if values.get("threads"):
        torch.set_num_threads(values["threads"])
    # Under torchrun: join the process group (one GPU per process on CUDA).
    info, device = distributed.setup(values.get("device") or "cpu")
    try:
        return _train(values, info, device)
    finally:
        distributed.cleanup()


def _train(values: dict[str, Any], info: distributed.DistInfo, device: torch.device) -> int:
    if not info.is_main:  # one process logs and prints
        log.setLevel(logging.WARNING)
    start = time.perf_counter()
    root = values.get("root", "data_cache")
    splits = _load_splits_rank0_first(values["data"], root, _data_options(values))
    train_set = splits["train"]
    train, valid, test = (SessionSamples.from_dataset(splits[s]) for s in splits)
    log.info("data %s: %d train / %d valid / %d test samples, %d items",
             values["data"], len(train), len(valid), len(test), train_set.num_items - 1)

    skip = {"progress", "device"}
    config = TrainConfig(**{
        f.name: values[f.name] for f in fields(TrainConfig)
        if values.get(f.name) is not None and f.name not in skip
    }, device=str(device), progress=not values.get("quiet", False))
    if info.enabled:
        log.info("data-parallel over %d processes (%s), batch size %d per process",
                 info.world_size, device.type, config.batch_size)
    model_args = {k: values[k] for k in MODEL_OPTIONS if values.get(k) is not None}
    torch.manual_seed(config.seed)
    model = GCSAN(train_set.num_items, **model_args)
    out = Path(values.get("out") or Path("runs") / Path(str(values["data"])).stem)
    extra = {
        "item_ids": train_set.item_ids,
        "data": {"source": str(values["data"]), **_data_options(values)},
    }
    trainer = Trainer(model, config, checkpoint_dir=out, extra=extra)
    if values.get("resume"):
        trainer.resume(out / "last.pt")
    try:
        trainer.fit(train, valid if len(valid) else None)
    except TrainingInterrupted as stop:
        if info.is_main:
            print(f"interrupted: {stop}", file=sys.stderr)
        return 128 + stop.signum

    test_metrics = trainer.evaluate(test)
    if not info.is_main:
        return 0
    baseline = popularity_baseline(train, test, train_set.num_items, config.ks)
    seconds = time.perf_counter() - start
    _print_metrics({"GC-SAN (test)": test_metrics, "popularity (test)": baseline})
    print(f"best epoch {trainer.state.best_epoch}, {seconds:.0f} s; checkpoint: {out / 'best.pt'}")
    summary = {
        "command": " ".join(sys.argv),
        "data": str(values["data"]),
        "hparams": model.hparams,
        "train_config": {f.name: getattr(config, f.name) for f in fields(TrainConfig)},
        "world_size": info.world_size,
        "compiled": trainer.compiled,
        "history": trainer.state.history,
        "best_epoch": trainer.state.best_epoch,
        "test": test_metrics,
        "popularity_test": baseline,
        "wall_seconds": round(seconds, 1),
    }
    (out / "results.json").write_text(json.dumps(summary, indent=2))
    return 0


def _load_splits_rank0_first(data: str, root: str, options: dict[str, Any]) -> dict[str, Any]:
    """Rank 0 builds the processed-data cache, then the others read it. A
    data error of rank 0 is sent to every rank, so that all stop with it
    at once instead of waiting for rank 0 in a collective."""
    error: Exception | None = None
    splits = None
    if distributed.current().is_main:
        try:
            splits = _load_splits(data, root, **options)
        except (ValueError, FileNotFoundError) as caught:
            error = caught
    error = distributed.broadcast_object(error)
    if error is not None:
        raise error
    return splits if splits is not None else _load_splits(data, root, **options)


def _print_metrics(rows: dict[str, dict[str, float]]) -> None:
    names = list(next(iter(rows.values())))
    width = max(len(r) for r in rows)
    print(" " * width + "  " + "  ".join(f"{n:>8}" for n in names))
    for label, metrics in rows.items():
        print(f"{label:<{width}}  " + "  ".join(f"{metrics[n]:8.2f}" for n in names))


def cmd_evaluate(args: argparse.Namespace) -> int:
    device = distributed.resolve_device(args.device)
    model, payload = load_model(args.checkpoint, map_location=device)
    options = dict(payload.get("data", {}))
    options.pop("source", None)
    options.update(_inter_fields(args.data, payload))
    dataset = _load_splits(args.data, args.root, **options)[args.split]
    _check_same_items(args.data, dataset, payload.get("item_ids"), model.num_items)
    config = TrainConfig(eval_batch_size=args.batch_size, device=str(device),
                         progress=not args.quiet, max_length=options.get("max_length"))
    metrics = Trainer(model, config).evaluate(SessionSamples.from_dataset(dataset))
    _print_metrics({f"GC-SAN ({args.split})": metrics})
    return 0


def _inter_fields(data: str, payload: dict[str, Any]) -> dict[str, str]:
    """The .inter field names an imported RecBole checkpoint was trained on,
    where :obj:`data` is a .inter file (other formats take no such options)."""
    from gcsan_pyg.data.datasets import RecBoleInterDataset, resolve_dataset_class

    fields = payload.get("recbole", {}).get("inter_fields")
    if not fields or resolve_dataset_class(data)[0] is not RecBoleInterDataset:
        return {}
    return fields


def _check_same_items(data: str, dataset: Any, trained: list[str] | None, num_items: int) -> None:
    """Refuses data whose item ids are not the checkpoint's: the id maps must
    be equal where the checkpoint has one, else the item counts."""
    ids = dataset.item_ids
    if trained is None:  # already-numbered ids, or a RecBole import without --inter
        if dataset.num_items != num_items:
            raise SystemExit(
                f"error: {data} has {dataset.num_items - 1} items, the model "
                f"{num_items - 1}: not the data it was trained on"
            )
        return
    if ids is None:
        raise SystemExit(
            f"error: the checkpoint maps raw item ids, {data} holds already-numbered ones: "
            "not the data it was trained on"
        )
    if ids != trained:
        first = next((i for i, pair in enumerate(zip(trained, ids)) if pair[0] != pair[1]),
                     min(len(ids), len(trained)))
        ours, theirs = (repr(m[first]) if first < len(m) else "nothing" for m in (trained, ids))
        raise SystemExit(
            f"error: the item ids of {data} differ from the checkpoint's ({len(ids) - 1} items, "
            f"the checkpoint {len(trained) - 1}); first at id {first}: {ours} in the "
            f"checkpoint, {theirs} in {data}: not the data it was trained on"
        )


def _parse_session(text: str) -> list[str]:
    tokens = [t.strip() for t in text.replace(" ", ",").split(",") if t.strip()]
    if not tokens:
        raise SystemExit("error: --session is empty; give item ids like 12,7,7,31")
    return tokens


def cmd_recommend(args: argparse.Namespace) -> int:
    model, payload = load_model(args.checkpoint)
    item_ids: list[str] | None = payload.get("item_ids")
    tokens = _parse_session(args.session)
    if item_ids is not None:  # the user's own ids -> the model's
        index = {raw: i for i, raw in enumerate(item_ids) if i > 0}
        unknown = [t for t in tokens if t not in index]
        if unknown:
            raise SystemExit(f"error: items {unknown} are not in the model's catalogue")
        session = [index[t] for t in tokens]
    else:
        try:
            session = [int(t) for t in tokens]
        except ValueError as error:
            raise SystemExit(f"error: --session must list integer item ids: {error}") from error
        bad = [i for i in session if not 1 <= i < model.num_items]
        if bad:
            raise SystemExit(f"error: item ids {bad} are outside [1, {model.num_items - 1}]")
    max_length = payload.get("data", {}).get("max_length")
    if max_length:  # as in training: only the most recent clicks count
        session = session[-max_length:]
    # The model refuses a k beyond the items it may return; here, fewer do.
    left = model.num_items - 1 - (len(set(session)) if args.exclude_seen else 0)
    if left < 1:
        raise SystemExit("error: the session holds every item: none is left to recommend")
    k = min(args.k, left)
    if k < args.k:
        unseen = " not in the session" if args.exclude_seen else ""
        print(f"note: only {left} items{unseen} can be recommended; giving {k}, not {args.k}",
              file=sys.stderr)
    batch = model.build_batch(torch.tensor([session]), torch.tensor([len(session)]))
    with torch.no_grad():
        scores = model.full_sort_scores(batch)[0]
        top = model.recommend(batch, k=k, exclude_seen=args.exclude_seen)[0]
    results = [
        {"rank": r + 1, "item": item_ids[i] if item_ids else i, "score": float(scores[i])}
        for r, i in enumerate(top.tolist())
    ]
    if args.json:
        print(json.dumps(results))
    else:
        for row in results:
            print(f"{row['rank']:3d}  {row['item']}  {row['score']:.4f}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    dataset = _load_splits(args.data, args.root)["train"]
    stats = dataset.statistics()
    print(json.dumps(stats, indent=2, default=str))
    return 0


def cmd_import_recbole(args: argparse.Namespace) -> int:
    from gcsan_pyg.interop import gcsan_from_recbole_checkpoint

    model, info = gcsan_from_recbole_checkpoint(args.checkpoint)
    for line in info["data_differences"]:
        print(f"warning: {args.checkpoint}: {line}: `gcsan-pyg evaluate` on its .inter file "
              "will not give RecBole's metrics", file=sys.stderr)
    fields = info["inter_fields"]
    payload = {
        "hparams": model.hparams,
        "model": model.state_dict(),
        # RecBole numbers items by first appearance in the .inter file, as
        # RecBoleInterDataset does: the raw ids are known only from that file.
        "item_ids": None if args.inter is None else _recbole_item_ids(
            args.inter, fields, model.num_items),
        "data": {"source": args.inter or f"recbole:{info.get('dataset')}",
                 "max_length": info.get("MAX_ITEM_LIST_LENGTH")},
        "recbole": {"epoch": info["epoch"], "best_valid_score": info["best_valid_score"],
                    "dataset": info["dataset"], "inter_fields": fields},
    }
    save_checkpoint(args.out, payload)
    print(f"wrote {args.out}: {model}")
    return 0


def _recbole_item_ids(path: str, fields: dict[str, str], num_items: int) -> list[str]:
    """The raw item id of each RecBole item id (index 0: the padding), from
    the .inter file a RecBole checkpoint was trained on."""
    from gcsan_pyg.data.preprocess import PAD_TOKEN
    from gcsan_pyg.data.readers import read_inter_file

    item_ids = [PAD_TOKEN, *read_inter_file(path, **fields).item_tokens]
    if len(item_ids) != num_items:
        raise SystemExit(
            f"error: {path} has {len(item_ids) - 1} items, the RecBole checkpoint "
            f"{num_items - 1}: not the file it was trained on"
        )
    return item_ids


def cmd_export_recbole(args: argparse.Namespace) -> int:
    from gcsan_pyg.interop import export_recbole_checkpoint

    model, payload = load_model(args.checkpoint)
    max_length = payload.get("data", {}).get("max_length") or args.max_length
    export_recbole_checkpoint(model, args.out, max_seq_length=max_length)
    print(f"wrote {args.out} (RecBole GCSAN state_dict and config)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gcsan-pyg",
        description="GC-SAN session-based recommendation on PyTorch Geometric.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser(
        "train", help="train a model (default: the built-in synthetic data, under a minute)"
    )
    train.add_argument("data", nargs="?", default=None,
                       help="'synthetic' (default), a folder of train_sessions.txt + test.tsv, "
                            "a raw Diginetica .csv, a yoochoose .dat, a click .csv/.tsv or "
                            "a RecBole .inter file")
    train.add_argument("--config", help="YAML or TOML file of options (command line wins)")
    train.add_argument("--root", default=None, help="processed-data cache (default data_cache)")
    train.add_argument("--out", default=None, help="checkpoint folder (default runs/<data>)")
    train.add_argument("--resume", action="store_true", default=None,
                       help="continue from <out>/last.pt")
    train.add_argument("--ks", type=lambda s: tuple(int(k) for k in s.split(",")), default=None,
                       help="metric cut-offs, e.g. 10,20")
    train.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    train.add_argument("--quiet", action="store_true", default=None, help="no progress bars")
    _add_options(train, MODEL_OPTIONS, "model")
    training = _add_options(train, TRAIN_OPTIONS, "training")
    for name, text in TRAIN_FLAGS.items():
        training.add_argument(_dest(name), dest=name, action="store_true", default=None,
                              help=text)
    _add_options(train, DATA_OPTIONS, "data")
    train.set_defaults(func=cmd_train)

    evaluate = sub.add_parser("evaluate", help="metrics of a checkpoint on a dataset split")
    evaluate.add_argument("checkpoint")
    evaluate.add_argument("data")
    evaluate.add_argument("--split", default="test", choices=("train", "valid", "test"))
    evaluate.add_argument("--root", default="data_cache")
    evaluate.add_argument("--batch-size", type=int, default=500)
    evaluate.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... or auto")
    evaluate.add_argument("--quiet", action="store_true")
    evaluate.set_defaults(func=cmd_evaluate)

    recommend = sub.add_parser("recommend", help="top-k next items for a new session")
    recommend.add_argument("checkpoint")
    recommend.add_argument("--session", required=True,
                           help="the clicks so far, in your own item ids: 12,7,7,31")
    recommend.add_argument("-k", type=int, default=20, help="how many items (default 20)")
    recommend.add_argument("--exclude-seen", action="store_true",
                           help="never recommend an item of the session")
    recommend.add_argument("--json", action="store_true", help="print JSON")
    recommend.set_defaults(func=cmd_recommend)

    info = sub.add_parser("info", help="dataset statistics")
    info.add_argument("data")
    info.add_argument("--root", default="data_cache")
    info.set_defaults(func=cmd_info)

    imp = sub.add_parser("import-recbole", help="RecBole GCSAN checkpoint -> gcsan_pyg checkpoint")
    imp.add_argument("checkpoint")
    imp.add_argument("out")
    imp.add_argument("--inter", default=None,
                     help="the .inter file it was trained on: record its raw item ids, so "
                          "that recommend speaks them and evaluate checks them")
    imp.set_defaults(func=cmd_import_recbole)

    exp = sub.add_parser("export-recbole", help="gcsan_pyg checkpoint -> RecBole-style file")
    exp.add_argument("checkpoint")
    exp.add_argument("out")
    exp.add_argument("--max-length", type=int, default=50,
                     help="MAX_ITEM_LIST_LENGTH to record when the checkpoint has none")
    exp.set_defaults(func=cmd_export_recbole)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(message)s", datefmt="%H:%M:%S",
    )
    torch.set_flush_denormal(True)  # tiny Adam moments otherwise slow the CPU down
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
