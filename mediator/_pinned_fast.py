"""Copies served in C (#19): the Python side of ``mediator._copyfast`` (native/copyfast.c).

A pinned copy's work is one ``memcpy``, and so is the host's side of a staged (pageable) copy, between
the channel's arena and device memory; in Python the call costs more than the copy itself below a few
hundred KiB. So :class:`~mediator._server.RingServer` hands every run of such copies at its submission
head to :meth:`FastCopy.serve`, which serves in C the ones it can check against what it knows and
returns at the first it cannot; the server serves that one in Python as always, and then
:meth:`PinnedFastPath.learn` tells the C side the device block (and pinned range) that copy used, so
the next copies through the same buffers stay in C. Nothing is learned that Python has not just
checked, and everything learned is forgotten as soon as anything is freed (the versions of
``DeviceMemory`` and ``PinnedAllocator``); a device free also drops the blocks the C side holds
exported right then (``DeviceMemory.on_move``), so that their memory goes with the free.

Only ``sim`` serves copies here (a context whose executor offers ``fast_copy_tables``); where the
extension is not built, with ``VGPU_PURE_PYTHON=1`` (as for the rings), or with ``VGPU_COPYFAST=0`` (this
path alone off: a benchmark's before and after on one tree), every copy takes the Python path, which
gives the same answers.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Final

from executor import Executor
from executor._sim_pinned import SimPinnedCalls
from protocol import CALLS_BY_NAME, CompletionProducer, Region

from ._stats import WorkerCounters

if TYPE_CHECKING:
    from ._copyfast import FastCopy

__all__ = ["ACCELERATED", "FAST_COPIES", "PinnedFastPath", "pinned_fast_path"]

_HTOD: Final = CALLS_BY_NAME["memcpy_htod_pinned"].call_id
_DTOH: Final = CALLS_BY_NAME["memcpy_dtoh_pinned"].call_id
_STAGED_HTOD: Final = CALLS_BY_NAME["memcpy_htod"].call_id
_STAGED_DTOH: Final = CALLS_BY_NAME["memcpy_dtoh"].call_id
#: the calls served in C when they can be
FAST_COPIES: Final = frozenset({_HTOD, _DTOH, _STAGED_HTOD, _STAGED_DTOH})

try:
    if os.environ.get("VGPU_PURE_PYTHON") == "1" or os.environ.get("VGPU_COPYFAST") == "0":
        raise ImportError("VGPU_PURE_PYTHON=1 or VGPU_COPYFAST=0")
    from . import _copyfast
except ImportError:
    _copyfast = None  # type: ignore[assignment]

ACCELERATED: Final = _copyfast is not None


class PinnedFastPath:
    """One channel's C copy path: ``c`` serves, :meth:`learn` feeds it."""

    __slots__ = ("_bound", "_client", "_device", "_range", "c", "executor")

    def __init__(self, c: FastCopy, executor: SimPinnedCalls) -> None:
        self.c = c
        self.executor = executor
        self._bound = False
        self._client: object = None  # the pinned client ``c`` is bound to
        # (start, end, version) of the device range and the pinned range told last (a VMM mapping's
        # too, which is never served in C): a copy inside them again has nothing new to teach
        self._device = self._range = (0, 0, -1)

    def _forget(self) -> None:
        """Something was freed: the C side lets every block go now, and learns afresh from the next copy
        (the pinned range too: it forgets both)."""
        self.c.forget()
        self._device = self._range = (0, 0, -1)

    def learn(self, device: int, count: int, offset: int | None = None) -> None:
        """A copy of ``count`` bytes from or to device ``device`` (and pinned ``offset``, for a pinned
        copy) has just succeeded in Python: remember the block (and range) it used (see the module's
        docstring)."""
        executor = self.executor
        if not self._bound or executor.pinned is not self._client:  # first, or a fresh pinned client
            tables = executor.fast_copy_tables()
            self._bound, self._client = True, tables.client
            self._device = self._range = (0, 0, -1)
            try:
                self.c.bind(executor, tables.client, tables.view, tables.memory, tables.allocator,
                            tables.streams, tables.captures, tables.faults)
            except BufferError:  # an area we may not write (never a worker's): Python serves them all
                return
            tables.memory.on_move = self._forget  # a free drops the exported blocks at once
        version = executor.memory.version
        start, end, seen = self._device
        if not (seen == version and start <= device and device + count <= end):
            block = executor.fast_copy_block(device)
            if block is not None:
                self._device = (block[0], block[1], version)
                if block[2] is not None:
                    self.c.learn_block(block[0], block[1] - block[0], block[2], version)
        pinned = executor.pinned
        if offset is None or pinned is None:
            return
        version = pinned.area.allocator.version
        start, end, seen = self._range
        if not (seen == version and start <= offset and offset + count <= end):
            found = executor.fast_copy_range(offset, count)
            if found is not None:
                self._range = (found[0], found[1], version)
                self.c.learn_range(found[0], found[1], version)


def pinned_fast_path(region: Region, executor: Executor, counters: WorkerCounters,
                     cq: CompletionProducer) -> PinnedFastPath | None:
    """The C copy path for one channel's server, or None (no extension, not ``sim``). Its buffers are
    released with the region's (``Region.release``)."""
    if _copyfast is None or not isinstance(executor, SimPinnedCalls):
        return None
    layout = region.layout
    c = _copyfast.FastCopy(region.buf, layout.sq_offset, layout.sq_entries, layout.arena_offset,
                           layout.arena_size, (_HTOD, _DTOH, _STAGED_HTOD, _STAGED_DTOH), counters, cq)
    region._sides.append(c)
    return PinnedFastPath(c, executor)
