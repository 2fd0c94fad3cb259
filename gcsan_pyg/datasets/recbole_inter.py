"""A RecBole atomic ``.inter`` file, as RecBole's sequential datasets build it."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gcsan_pyg.data.dataset import ProcessedSessions, SessionDataset, SessionSplit
from gcsan_pyg.data.item_ids import PAD_TOKEN
from gcsan_pyg.data.readers import read_inter_file
from gcsan_pyg.data.samples import SessionSamples, offsets, window_positions


class RecBoleInterDataset(SessionDataset):
    r"""A RecBole atomic ``.inter`` file as RecBole 1.2.1's sequential
    datasets build it (no filtering; ``eval_args``: ``split: {LS:
    valid_and_test}``, ``order: TO``), so that a model gives the metrics
    RecBole reports for it on the same file:

    * item ids :obj:`1, 2, ...` in order of first appearance in the file's
      rows, as RecBole numbers tokens (:func:`~gcsan_pyg.data.readers
      .read_inter_file`); :obj:`item_ids` maps them back;
    * per-user sequences sorted by float32 time, ties in row order;
    * leave-one-out (:func:`leave_one_out`): a user's last target is test,
      the second to last valid, the earlier ones train. The valid split is
      fixed by the data, so there is no :obj:`valid_fraction`.

    RecBole's ``MAX_ITEM_LIST_LENGTH`` is the trainer's :obj:`max_length`
    (or this dataset's, for :obj:`dataset[i]`).

    Args:
        root (str or PathLike): the cache folder.
        path (str or PathLike): the ``.inter`` file.
        split (str, optional): the split. (default: :obj:`"train"`)
        user_field, item_field, time_field (str, optional): the header field
            names (RecBole's ``USER_ID_FIELD``, ``ITEM_ID_FIELD``,
            ``TIME_FIELD``). (default: :obj:`"user_id"`, :obj:`"item_id"`,
            :obj:`"timestamp"`)
        **kwargs: :obj:`min_prefix_length`, :obj:`max_length`,
            :obj:`transform`, :obj:`force_reload`, :obj:`log` of
            :class:`~gcsan_pyg.data.SessionDataset`.
    """

    kind = "recbole_inter"
    # Names the numbering and ordering rules in the cache fingerprint, so a
    # cache built under other rules rebuilds.
    rules = "recbole-1.2.1"

    def __init__(
        self,
        root: str | os.PathLike,
        path: str | os.PathLike,
        split: str = "train",
        user_field: str = "user_id",
        item_field: str = "item_id",
        time_field: str | None = "timestamp",
        **kwargs: Any,
    ) -> None:
        if kwargs.get("valid_fraction") is not None:
            raise ValueError("RecBoleInterDataset takes no 'valid_fraction': leave-one-out "
                             "fixes its valid split (each user's second to last target)")
        kwargs["valid_fraction"] = None
        self.path = Path(path)
        self.fields = (user_field, item_field, time_field)
        super().__init__(root, split, **kwargs)

    def source_files(self) -> list[Path]:
        return [self.path]

    def options(self) -> dict[str, Any]:
        return {"fields": list(self.fields), "rules": self.rules}

    def build(self) -> ProcessedSessions:
        inter = read_inter_file(self.path, *self.fields)
        item_ids = [PAD_TOKEN, *inter.item_tokens]
        index = {token: i for i, token in enumerate(item_ids) if i > 0}
        items = torch.tensor([index[item] for user in inter.users for item in user.items],
                             dtype=torch.long)
        user_ptr = offsets(torch.tensor([len(user.items) for user in inter.users],
                                        dtype=torch.long))
        return ProcessedSessions(leave_one_out(items, user_ptr), len(item_ids), item_ids)


def leave_one_out(items: Tensor, user_ptr: Tensor) -> dict[str, SessionSplit]:
    r"""RecBole's leave-one-out split of sequential data (``'LS':
    'valid_and_test'``), vectorised. User :math:`u`'s sequence :math:`s =`
    :obj:`items[user_ptr[u]:user_ptr[u + 1]]` gives the samples
    :math:`(s_{:i}, s_i)` for :math:`i = 1, \ldots, |s| - 1`; the last goes
    to test, the second to last to valid, the earlier ones to train (at
    most :math:`|s| - 2` are held out, RecBole's
    ``min(leave_one_num, count - 1)``: with one sample it stays in train,
    with two the first is train and the second test).

    Returns:
        The :obj:`"train"`, :obj:`"valid"` and :obj:`"test"` splits. Each
        split's sessions are the users' sequences as far as its samples read
        them (train: up to the last training target); train samples come
        user by user, shortest prefix first.
    """
    length = user_ptr[1:] - user_ptr[:-1]
    held = (length - 2).clamp(min=0, max=2)  # the valid + test targets of each user
    splits = {}
    for name, count, last_target in (
        ("train", (length - 1 - held).clamp(min=0), length - 1 - held),
        ("valid", (held == 2).long(), length - 2),
        ("test", (held >= 1).long(), length - 1),
    ):
        users = count > 0
        session_len = last_target[users] + 1  # a user's clicks up to the split's last target
        session_ptr = offsets(session_len)
        split_items = items[window_positions(user_ptr[:-1][users], session_len)]
        # Each user's samples: prefixes of lengths last_target - count + 1 .. last_target.
        per_user = count[users]
        owner = torch.repeat_interleave(per_user, output_size=int(per_user.sum()))
        rank = torch.arange(owner.numel()) - offsets(per_user)[:-1][owner]
        prefix = (session_len - per_user)[owner] + rank
        start = session_ptr[:-1][owner]
        samples = SessionSamples(split_items, start, prefix, split_items[start + prefix])
        splits[name] = SessionSplit(split_items, session_ptr, samples)
    return splits
