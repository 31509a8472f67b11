"""The worker's side of the region's pinned area: a view of it in the worker's mapping, and giving a
freed range's pages back to the host (``executor._pinned`` keeps the ranges; this is its I/O)."""

from __future__ import annotations

import mmap
from typing import Final

from executor import PinnedArea
from protocol import RegionLayout

from ._channels import populate

__all__ = ["MADV_REMOVE", "pinned_area"]

#: madvise(MADV_REMOVE): free a shared mapping's pages in its file (a memfd: a hole that reads zeros)
MADV_REMOVE: Final = getattr(mmap, "MADV_REMOVE", 9)


def pinned_area(mapping: mmap.mmap, view: memoryview, layout: RegionLayout) -> PinnedArea | None:
    """The VM's pinned area (None when its region has none): ``view`` is the whole region as the
    worker maps it (``mapping``). A fresh range's pages are made present (pinned memory is resident);
    a freed range is punched out of the memfd, so its memory returns to the host at once and the next
    owner reads zeros, never the last owner's bytes — and so is the whole area when a worker starts."""
    if not layout.pinned_size:
        return None
    base = layout.pinned_offset

    def discard(start: int, size: int) -> None:
        mapping.madvise(MADV_REMOVE, base + start, size)

    def fault_in(start: int, size: int) -> None:
        populate(mapping, base + start, size)

    area = PinnedArea(view[base:base + layout.pinned_size], discard, fault_in)
    # a new worker starts with no range handed out: whatever an earlier worker's processes left there
    # (a reset or a crash frees their ranges with their contexts) is punched out before anyone is served
    area._discard(0, area.size)
    return area
