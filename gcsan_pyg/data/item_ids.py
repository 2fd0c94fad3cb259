"""Item ids: the one check of their range."""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

#: The largest int64; item tables hold ids 0 .. num_items - 1 in int64.
INT64_MAX = 2**63 - 1
#: The raw id recorded for the padding id 0 in a map of raw item ids.
PAD_TOKEN = "[PAD]"


def check_num_items(num_items: int | None) -> None:
    """Raises :class:`ValueError` unless :obj:`num_items` is :obj:`None` or
    a table size that int64 item ids can index."""
    if num_items is not None and not 1 <= num_items <= INT64_MAX:
        raise ValueError(f"'num_items' must lie in [1, 2**63 - 1], got {num_items}")


def check_item_ids(ids: Tensor, num_items: int | None = None, what: str = "item",
                   where: Callable[[int], str] | None = None) -> None:
    r"""Raises :class:`ValueError` naming the first entry of :obj:`ids` that
    is not a real item id: ids are :math:`\geq 1` (0 is the padding id) and,
    with :obj:`num_items`, :math:`<` :obj:`num_items`. One reduction is read
    back; only a failing check searches for the culprit.

    Args:
        ids (Tensor): integer ids of any shape.
        num_items (int, optional): the item table size, padding id included.
        what (str, optional): what the ids are, for the message, e.g.
            :obj:`"target"`. (default: :obj:`"item"`)
        where (callable, optional): says where the offending entry (its
            index in :obj:`ids` flattened) lies, for the message.
            (default: its index)
    """
    if ids.dtype.is_floating_point or ids.dtype.is_complex or ids.dtype == torch.bool:
        raise ValueError(f"{what} ids must be integers, got dtype {ids.dtype}")
    if ids.numel() == 0:
        return
    smallest, largest = (int(v) for v in torch.stack(ids.aminmax()).tolist())
    if smallest >= 1 and (num_items is None or largest < num_items):
        return
    flat = ids.reshape(-1)
    bad = flat < 1 if num_items is None else (flat < 1) | (flat >= num_items)
    entry = int(bad.nonzero()[0])
    if where is not None:
        place = where(entry)
    elif ids.dim() > 1:
        index = torch.unravel_index(torch.tensor(entry), ids.shape)
        place = f"entry {tuple(int(i) for i in index)}"
    else:
        place = f"entry {entry}"
    bound = "[1, ...)" if num_items is None else f"[1, num_items - 1] = [1, {num_items - 1}]"
    raise ValueError(f"{what} id {int(flat[entry])} ({place}) is outside {bound}; "
                     "0 is the padding id")
