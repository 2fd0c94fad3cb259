"""``gcsan-pyg import-recbole`` and ``export-recbole``: RecBole GCSAN
checkpoints to ours and back, keeping RecBole's item numbering."""
from __future__ import annotations

import argparse
import sys
from typing import Any

from gcsan_pyg.cli.options import UsageError, positive_int
from gcsan_pyg.data import read_inter_file
from gcsan_pyg.data.item_ids import PAD_TOKEN
from gcsan_pyg.datasets import RecBoleInterDataset, resolve_dataset_class
from gcsan_pyg.interop.recbole import export_recbole_checkpoint, gcsan_from_recbole_checkpoint
from gcsan_pyg.training import load_model, save_checkpoint


def add_import_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``gcsan-pyg import-recbole``."""
    parser.description = ("Converts a RecBole GCSAN checkpoint (.pth) into a gcsan_pyg "
                          "checkpoint for evaluate and recommend; the file is read without "
                          "running any of its pickled code.")
    parser.add_argument("checkpoint", help="the RecBole checkpoint (.pth)")
    parser.add_argument("out", help="the gcsan_pyg checkpoint to write")
    parser.add_argument("--inter", default=None, metavar="FILE",
                        help="the .inter file it was trained on: record its raw item ids, so "
                             "that recommend speaks them and evaluate checks them (default: "
                             "none; items are then RecBole's internal ids)")


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``gcsan-pyg export-recbole``."""
    parser.description = ("Writes a gcsan_pyg checkpoint as a RecBole GCSAN checkpoint "
                          "(state_dict and config).")
    parser.add_argument("checkpoint", help="a checkpoint of gcsan-pyg train or import-recbole")
    parser.add_argument("out", help="the RecBole-style file to write")
    parser.add_argument("--max-length", type=positive_int, default=50,
                        help="MAX_ITEM_LIST_LENGTH to record when the checkpoint has none "
                             "(default: 50)")


def run_import(args: argparse.Namespace) -> int:
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
        "item_ids": None if args.inter is None else recbole_item_ids(
            args.inter, fields, model.num_items),
        "data": {"source": args.inter or f"recbole:{info.get('dataset')}",
                 "max_length": info.get("MAX_ITEM_LIST_LENGTH")},
        "recbole": {"epoch": info["epoch"], "best_valid_score": info["best_valid_score"],
                    "dataset": info["dataset"], "inter_fields": fields},
    }
    save_checkpoint(args.out, payload)
    print(f"wrote {args.out}: {model}")
    return 0


def recbole_item_ids(path: str, fields: dict[str, str], num_items: int) -> list[str]:
    """The raw item id of each RecBole item id (index 0: the padding), from
    the .inter file a RecBole checkpoint was trained on.

    Raises:
        UsageError: the file has another number of items than the checkpoint.
    """
    item_ids = [PAD_TOKEN, *read_inter_file(path, **fields).item_tokens]
    if len(item_ids) != num_items:
        raise UsageError(f"{path} has {len(item_ids) - 1} items, the RecBole checkpoint "
                         f"{num_items - 1}: not the file it was trained on")
    return item_ids


def inter_fields(data: str, payload: dict[str, Any]) -> dict[str, str]:
    """The .inter field names an imported RecBole checkpoint was trained on,
    where :obj:`data` is a .inter file (other formats take no such options)."""
    fields = (payload.get("recbole") or {}).get("inter_fields")
    if not fields or not issubclass(resolve_dataset_class(data)[0], RecBoleInterDataset):
        return {}
    return fields


def run_export(args: argparse.Namespace) -> int:
    model, payload = load_model(args.checkpoint)
    max_length = (payload.get("data") or {}).get("max_length") or args.max_length
    export_recbole_checkpoint(model, args.out, max_seq_length=max_length)
    print(f"wrote {args.out} (RecBole GCSAN state_dict and config)")
    return 0
