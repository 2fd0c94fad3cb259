"""Whether an item table fits in memory, checked before it is allocated."""
from __future__ import annotations

import os

import torch

GIB = 2**30


def available_memory(device: torch.device | str = "cpu") -> int | None:
    """Bytes free for new tensors on :obj:`device`: the kernel's
    ``MemAvailable`` (else the physical memory) for the CPU, the driver's
    free memory for a CUDA device; :obj:`None` where it cannot be told."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def item_table_bytes(num_items: int, hidden_channels: int, training: bool = False,
                     loss_type: str = "CE") -> int:
    r"""Bytes of the float32 item table :obj:`[num_items, hidden_channels]`;
    with :obj:`training`, also of what training adds at its size: Adam's two
    moments and, for :obj:`"CE"` and :obj:`"BPR"`, the dense gradient (the
    sampled softmax's gradient is sparse)."""
    copies = 1
    if training:
        copies += 2 + (loss_type != "sampled")
    return num_items * hidden_channels * 4 * copies


def check_item_table_fits(num_items: int, hidden_channels: int, training: bool = False,
                          loss_type: str = "CE", device: torch.device | str = "cpu",
                          source: str | None = None) -> None:
    r"""Raises :class:`ValueError` before allocating an item table (see
    :func:`item_table_bytes`) that cannot fit in :obj:`device`'s free
    memory, with its size in GiB and the way out: an allocator error (or a
    machine swapping for an hour) would come instead.

    Args:
        source (str, optional): where :obj:`num_items` comes from, for the
            message (e.g. the data's path).
    """
    needed = item_table_bytes(num_items, hidden_channels, training, loss_type)
    free = available_memory(device)
    if free is None or needed <= free:
        return
    what = "the item table" + (" with its gradient and Adam state" if training else "")
    origin = f" of {source}" if source else ""
    raise ValueError(
        f"{what}{origin} needs {needed / GIB:.1f} GiB ({num_items} rows x {hidden_channels} "
        f"channels), more than the {free / GIB:.1f} GiB free on {torch.device(device)}: number "
        f"the items densely from 1 (item ids size the table: the largest id + 1 rows; click "
        f"logs with raw ids are renumbered so), or lower --hidden-channels"
    )
