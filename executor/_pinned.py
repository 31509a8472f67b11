"""A VM's pinned area: the end of its region, where the guest's pinned host memory lives (#19).

Theory of operation
-------------------
The region (protocol 2.1) ends with a pinned area of ``pinned_size`` bytes. A guest process's
``cuMemHostAlloc``/``cudaMallocHost`` asks the host (``mem_host_alloc``) for a range of it; the range
is the process's (its channel's context's) until ``mem_free_host`` or until the channel closes, which
frees all of them — a dead process's pinned memory comes back with its context. Copies that name a
range by its *pinned offset* (relative to the area's start) move bytes straight between the region
mapping and device memory: one copy on ``sim``, DMA from the registered mapping on ``cuda``.

* :class:`PinnedAllocator` is the bookkeeping alone (sans-I/O): first-fit over a sorted free list,
  ranges of whole pages, each with its owner. Everything it is asked about (offsets, lengths, owners)
  comes from the guest and is checked here; a question it cannot answer yes to answers None/False.
* :class:`PinnedArea` is one VM's area: the allocator plus the mapping's view. A freed range's pages
  are discarded (``discard``, the worker's ``madvise(MADV_REMOVE)``): the memory goes back to the host
  and the next owner reads zeros, never another process's bytes.
* :class:`PinnedClient` is one context's handle on the area (its owner id): what executors use.

The area is part of the VM's region, so its size is bounded where the region is (docs/operations.md:
an eighth of the host's memory per VM, half for all VMs); pages cost nothing until a guest touches
them, and a freed range's pages are returned at once.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import structlog

from protocol import CUresult

from ._errors import CudaError

__all__ = ["PAGE", "PinnedAllocator", "PinnedArea", "PinnedClient"]

#: ranges are whole pages: a freed range can be discarded, and DMA never shares a page between owners
PAGE: Final = 4096
log = structlog.get_logger("executor")


@dataclass(frozen=True, slots=True)
class _Range:
    start: int
    size: int
    owner: int


class PinnedAllocator:
    """Ranges of an area of ``size`` bytes, each owned by one context (see the module's docstring)."""

    def __init__(self, size: int, *, align: int = PAGE) -> None:
        if size < 0 or size % align:
            raise ValueError(f"pinned area of {size} bytes is not a multiple of {align}")
        self.size = size
        self.align = align
        self.used = 0
        #: bumped whenever a range goes: what was learned about live ranges (the C copy path's cache,
        #: ``mediator._pinned_fast``) holds only while it is unchanged
        self.version = 0
        self._free: list[tuple[int, int]] = [(0, size)] if size else []  # (start, size), sorted, coalesced
        self._starts: list[int] = []  # live ranges, sorted by start
        self._ranges: dict[int, _Range] = {}

    def alloc(self, owner: int, nbytes: int) -> int | None:
        """The start of a fresh range of at least ``nbytes`` (rounded up to whole pages) owned by
        ``owner``, or None when no free run is that long (or ``nbytes`` is not positive)."""
        if nbytes <= 0 or nbytes > self.size:
            return None
        size = -(-nbytes // self.align) * self.align
        for i, (start, length) in enumerate(self._free):
            if length >= size:
                if length == size:
                    del self._free[i]
                else:
                    self._free[i] = (start + size, length - size)
                bisect.insort(self._starts, start)
                self._ranges[start] = _Range(start, size, owner)
                self.used += size
                return start
        return None

    def free(self, owner: int, start: int) -> int | None:
        """Give back the range that starts at ``start`` if ``owner`` holds it: its size, else None."""
        found = self._ranges.get(start)
        if found is None or found.owner != owner:
            return None
        self._release(found)
        return found.size

    def free_owner(self, owner: int) -> list[tuple[int, int]]:
        """Give back every range ``owner`` holds (its context closed): their (start, size)."""
        mine = [r for r in self._ranges.values() if r.owner == owner]
        for found in mine:
            self._release(found)
        return [(r.start, r.size) for r in mine]

    def find(self, owner: int, offset: int, length: int) -> tuple[int, int] | None:
        """The (start, size) of ``owner``'s range holding all of ``[offset, offset + length)``, or
        None (another owner's, free, outside the area, negative). ``length`` 0: ``offset`` itself."""
        if offset < 0 or length < 0 or offset >= self.size:
            return None
        i = bisect.bisect_right(self._starts, offset) - 1
        if i < 0:
            return None
        found = self._ranges[self._starts[i]]
        end = found.start + found.size
        if found.owner != owner or offset >= end or offset + length > end:
            return None
        return found.start, found.size

    def owned(self, owner: int) -> int:
        """Bytes ``owner`` holds."""
        return sum(r.size for r in self._ranges.values() if r.owner == owner)

    def __len__(self) -> int:
        return len(self._ranges)

    def _release(self, found: _Range) -> None:
        self.version += 1
        del self._ranges[found.start]
        del self._starts[bisect.bisect_left(self._starts, found.start)]
        self.used -= found.size
        start, size = found.start, found.size
        i = bisect.bisect_left(self._free, (start, 0))
        if i < len(self._free) and self._free[i][0] == start + size:  # merge with the next free run
            size += self._free.pop(i)[1]
        if i > 0 and self._free[i - 1][0] + self._free[i - 1][1] == start:  # and with the previous
            start, prev = self._free[i - 1]
            size += prev
            del self._free[i - 1]
            i -= 1
        self._free.insert(i, (start, size))


@dataclass(eq=False)
class PinnedArea:
    """One VM's pinned area: ``view`` is the area's bytes in the worker's mapping of the region,
    ``discard(start, size)`` gives a freed range's pages back (their contents become zeros), and
    ``populate(start, size)`` makes a fresh range's pages present in the worker's mapping (pinned
    memory is resident, as CUDA's is; a first copy would otherwise fault on every page)."""

    view: memoryview
    discard: Callable[[int, int], None] | None = None
    populate: Callable[[int, int], None] | None = None
    allocator: PinnedAllocator = field(init=False)
    #: what the backend set up for the area once per VM (cuda: the registration), closed with it
    closers: list[Callable[[], None]] = field(default_factory=list)
    backend_state: dict[str, object] = field(default_factory=dict)
    _exhausted_logged: bool = False
    _next_owner: int = 0

    def __post_init__(self) -> None:
        self.allocator = PinnedAllocator(len(self.view))

    @property
    def size(self) -> int:
        return len(self.view)

    def client(self) -> PinnedClient:
        """A handle for a new context (a channel being opened), with an owner id of its own."""
        self._next_owner += 1
        return PinnedClient(self, self._next_owner)

    def _discard(self, start: int, size: int) -> None:
        """Give ``[start, start + size)``'s pages back; they read as zeros afterwards."""
        if self.discard is not None:
            try:
                self.discard(start, size)
                return
            except OSError as exc:  # the pages stay, but the next owner must not read these bytes
                log.warning("pinned range not discarded; zeroing it", start=start, size=size, reason=str(exc))
        self.view[start:start + size] = bytes(size)

    def close(self) -> None:
        """Undo what backends set up for the area (idempotent); the view stays the worker's."""
        closers, self.closers = self.closers, []
        for close in reversed(closers):
            try:
                close()
            except Exception as exc:  # a broken driver: the worker is going away regardless
                log.warning("pinned area cleanup failed", reason=repr(exc))


class PinnedClient:
    """One context's (one channel's) handle on its VM's pinned area."""

    __slots__ = ("_last", "area", "owner")

    def __init__(self, area: PinnedArea, owner: int) -> None:
        self.area = area
        self.owner = owner
        #: the (start, end) of the range the last check found, forgotten whenever a range of ours goes:
        #: a program copies through the same buffer over and over, and this skips the search
        self._last = (0, 0)

    def alloc(self, nbytes: int, what: str) -> int:
        """A fresh range's pinned offset, or CUDA_ERROR_OUT_OF_MEMORY when the area has no run that
        long (the guest falls back to pageable memory; logged once per VM)."""
        if nbytes <= 0:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE, f"{what} of {nbytes} bytes")
        area = self.area
        start = area.allocator.alloc(self.owner, nbytes)
        if start is None:
            if not area._exhausted_logged:
                area._exhausted_logged = True
                log.warning("pinned area exhausted: the guest falls back to pageable (staged) memory",
                            asked=nbytes, area_bytes=area.size, used=area.allocator.used)
            raise CudaError(CUresult.CUDA_ERROR_OUT_OF_MEMORY,
                            f"{what} of {nbytes} bytes: the VM's pinned area ({area.size} bytes, "
                            f"{area.allocator.used} in use) has no free run that long")
        if area.populate is not None:
            try:
                area.populate(start, -(-nbytes // PAGE) * PAGE)
            except OSError as exc:  # only slower: its first copies fault its pages in
                log.info("pinned range not populated", start=start, size=nbytes, reason=str(exc))
        return start

    def free(self, offset: int, what: str) -> None:
        self._last = (0, 0)
        size = self.area.allocator.free(self.owner, offset)
        if size is None:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"{what}: pinned offset {offset:#x} is not the start of a live pinned "
                            "allocation of this process")
        self.area._discard(offset, size)

    def view(self, offset: int, length: int, what: str) -> memoryview:
        """The checked view of ``[offset, offset + length)`` (see :meth:`Executor.pinned_view`)."""
        start, end = self._last
        if not (start <= offset < end and 0 <= length <= end - offset):
            found = self.area.allocator.find(self.owner, offset, length)
            if found is None:
                raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                                f"{what}: pinned range [{offset:#x}, +{length}) is not inside one live "
                                "pinned allocation of this process")
            self._last = (found[0], found[0] + found[1])
        return self.area.view[offset:offset + length]

    def used(self) -> int:
        return self.area.allocator.owned(self.owner)

    def close(self) -> None:
        """The context is going: every range it held comes back (discarded)."""
        self._last = (0, 0)
        for start, size in self.area.allocator.free_owner(self.owner):
            self.area._discard(start, size)
