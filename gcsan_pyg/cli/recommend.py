"""``gcsan-pyg recommend``: the top-k next items of a new session, in the
item ids of the data the checkpoint was trained on."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from gcsan_pyg.cli.options import UsageError, add_threads, positive_int
from gcsan_pyg.training import load_model

SCORE_NOTE = ("score: the dot product of the session and item vectors, a raw score for "
              "ranking, not a probability")
# How many unknown ids an error message lists (a candidates file may have millions).
SHOWN_UNKNOWN = 10


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``gcsan-pyg recommend``."""
    parser.description = (
        "The top-k next items of a session, best first: a header row (rank, item, score), then "
        f"one row per item. The {SCORE_NOTE}.")
    parser.add_argument("checkpoint", help="a checkpoint of gcsan-pyg train or import-recbole")
    parser.add_argument("--session", required=True,
                        help="the clicks so far, oldest first, in your own item ids: 12,7,7,31")
    parser.add_argument("-k", type=positive_int, default=20,
                        help="how many items (default: 20)")
    parser.add_argument("--exclude-seen", action="store_true",
                        help="never recommend an item of the session (default: off)")
    parser.add_argument("--candidates", metavar="FILE", default=None,
                        help="rank only these items: a file of item ids, in your own ids, one "
                             "per line or comma-separated (default: all items)")
    add_threads(parser)
    parser.add_argument("--json", action="store_true",
                        help="print a JSON list of {rank, item, score} (default: off, a table)")


def run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    model, payload = load_model(args.checkpoint)
    item_ids: list[str] | None = payload.get("item_ids")
    session = model_ids(parse_ids(args.session, "--session"), item_ids, model.num_items,
                        "--session")
    max_length = (payload.get("data") or {}).get("max_length")
    if max_length:  # as in training: only the most recent clicks count
        session = session[-max_length:]
    candidates = None
    if args.candidates is not None:
        candidates = model_ids(read_candidates(args.candidates), item_ids, model.num_items,
                               f"--candidates {args.candidates}")

    # The model refuses a k beyond the items it may return; here, fewer do.
    pool = set(candidates) if candidates is not None else None
    seen = set(session) if args.exclude_seen else set()
    left = len(pool - seen) if pool is not None else model.num_items - 1 - len(seen)
    if left < 1:
        raise UsageError("no item is left to recommend: the session holds every "
                         f"{'candidate' if pool is not None else 'item'}")
    k = min(args.k, left)
    if k < args.k:
        which = "candidate items" if pool is not None else "items"
        unseen = " not in the session" if args.exclude_seen else ""
        print(f"note: only {left} {which}{unseen} can be recommended; giving {k}, not {args.k}",
              file=sys.stderr)

    batch = model.build_batch(torch.tensor([session]), torch.tensor([len(session)]))
    with torch.no_grad():
        top = model.recommend(batch, k=k, exclude_seen=args.exclude_seen,
                              candidates=None if candidates is None else torch.tensor(candidates))
        # The k scores alone: no [num_items] row of scores for a million-item table.
        scores = model.item_embedding.weight[top[0]] @ model.encode(batch)[0]
    rows = [
        {"rank": r + 1, "item": item_ids[i] if item_ids else i, "score": float(score)}
        for r, (i, score) in enumerate(zip(top[0].tolist(), scores.tolist()))
    ]
    if args.json:
        print(json.dumps(rows))
    else:
        print_rows(rows)
    return 0


def print_rows(rows: list[dict]) -> None:
    """The recommendations as a table with a header row."""
    width = max([len("item"), *(len(str(row["item"])) for row in rows)])
    print(f"{'rank':>4}  {'item':<{width}}  score (dot product, not a probability)")
    for row in rows:
        print(f"{row['rank']:>4}  {row['item']!s:<{width}}  {row['score']:.4f}")


def parse_ids(text: str, where: str) -> list[str]:
    """The item ids of a comma-, space- or newline-separated list."""
    tokens = text.replace(",", " ").split()
    if not tokens:
        raise UsageError(f"{where} is empty; give item ids like 12,7,7,31")
    return tokens


def read_candidates(path: str) -> list[str]:
    """The item ids of a ``--candidates`` file."""
    file = Path(path)
    if not file.is_file():
        raise UsageError(f"--candidates file {file} does not exist")
    return parse_ids(file.read_text(), f"--candidates file {file}")


def model_ids(tokens: list[str], item_ids: list[str] | None, num_items: int,
              where: str) -> list[int]:
    """The model's item ids of the user's :obj:`tokens`: through the
    checkpoint's map of raw ids where it has one, else ids in
    :obj:`[1, num_items - 1]`.

    Raises:
        UsageError: naming the ids that are no item of the model.
    """
    if item_ids is not None:  # the user's own ids -> the model's
        index = {raw: i for i, raw in enumerate(item_ids) if i > 0}
        unknown = [t for t in tokens if t not in index]
        if unknown:
            raise UsageError(f"{where}: items {_listed(unknown)} are not in the model's "
                             "catalogue")
        return [index[t] for t in tokens]
    try:
        ids = [int(t) for t in tokens]
    except ValueError as error:
        raise UsageError(f"{where} must list integer item ids: {error}") from None
    bad = [i for i in ids if not 1 <= i < num_items]
    if bad:
        raise UsageError(f"{where}: item ids {_listed(bad)} are outside [1, {num_items - 1}]")
    return ids


def _listed(values: list) -> str:
    shown = repr(values[:SHOWN_UNKNOWN])
    more = len(values) - SHOWN_UNKNOWN
    return f"{shown} (and {more} more)" if more > 0 else shown
