"""``sim``'s copies from and to pinned memory: one copy, straight between the region's pinned area
and device memory, run when the stream runs them — at once on ``sim``, with no closure, NumPy wrapper
or second check in the way (a plain buffer copy: this is the path copies take at memory speed). On a
capturing stream the copy is recorded as a node, which checks the range again when the graph runs:
the guest may have freed it since.

``mem_host_alias`` maps a pinned range into the device's address space (mapped pinned and managed
memory): the range's bytes in the region become a ``"host"`` allocation of :class:`DeviceMemory`
(``alias_host``), reached by kernels and copies through the same checked access as every block, at
the guest's own pointer when it asks (host pointer == device pointer). Freeing the range drops the
alias first: a kernel that touches it afterwards faults (ILLEGAL_ADDRESS), never the next owner's bytes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from protocol import CublasStatus, CUresult, MemAccessFlags
from protocol.models import (
    DevPtrResult,
    MemcpyDtoHPinnedArgs,
    MemcpyHtoDPinnedArgs,
    MemFreeHostArgs,
    MemHostAliasArgs,
    NoResult,
)

from ._base import CallIO, HandleTable
from ._errors import CudaError
from ._pinned import PinnedAllocator, PinnedClient
from ._pinned_calls import PinnedHostCalls
from ._sim_graph import Capture, StreamState
from ._sim_memory import DeviceMemory, Mapping

__all__ = ["FastCopyTables", "SimPinnedCalls"]

_NO_RESULT: Final = NoResult()
_READWRITE: Final = int(MemAccessFlags.CU_MEM_ACCESS_FLAGS_PROT_READWRITE)


@dataclass(frozen=True, slots=True)
class FastCopyTables:
    """What a copy served in C (``mediator._pinned_fast``: pinned copies, and staged ones' host side)
    is checked against, all of them this context's live objects, never copies: ``streams`` maps live
    stream handles (0 is not in it), ``captures`` and ``faults`` must be empty for the copy to run at
    once, and the versions of ``memory`` and ``allocator`` say whether a block or range learned
    earlier can still be live. ``client``, ``view`` and ``allocator`` are None without a pinned area."""

    client: PinnedClient | None
    view: memoryview | None
    memory: DeviceMemory
    allocator: PinnedAllocator | None
    streams: dict[int, StreamState]
    captures: dict[int, Capture]
    faults: list[tuple[CUresult | CublasStatus, bool]]


class SimPinnedCalls(PinnedHostCalls):
    """Mixed into :class:`SimExecutor`."""

    memory: DeviceMemory
    pinned: PinnedClient | None
    pending_faults: list[tuple[CUresult | CublasStatus, bool]]
    _streams: HandleTable[StreamState]
    _captures: dict[int, Capture]
    _legacy: StreamState
    pinned_view: Callable[..., memoryview]
    enqueue: Callable[..., None]
    _stream_work: Callable[..., StreamState]
    _touch_legacy: Callable[[str], None]

    def _copy_now(self, state: StreamState, what: str) -> bool:
        """Whether the copy runs now (the stream does not capture), as ``enqueue`` would run it."""
        if state.capture is not None:
            return False
        if state is self._legacy:
            self._touch_legacy(what)
        return True

    def memcpy_htod_pinned(self, args: MemcpyHtoDPinnedArgs, io: CallIO) -> NoResult:
        what = "cuMemcpyHtoD"
        state = self._stream_work(args.stream, io, what)
        memory, dst, offset, count = self.memory, args.dst, args.offset, args.count
        source = self.pinned_view(offset, count, f"{what} source")  # refused now, not only when it runs
        if count == 0:
            return _NO_RESULT
        if self._copy_now(state, what):
            _scatter(source, memory.segments(dst, count, write=True, what="destination"))
            return _NO_RESULT
        memory.check(dst, count, write=True, what="destination")
        view = self.pinned_view

        def copy() -> None:
            _scatter(view(offset, count, f"{what} source"),
                     memory.segments(dst, count, write=True, what="destination"))

        self.enqueue(args.stream, copy, what)
        return _NO_RESULT

    def memcpy_dtoh_pinned(self, args: MemcpyDtoHPinnedArgs, io: CallIO) -> NoResult:
        what = "cuMemcpyDtoH"
        state = self._stream_work(args.stream, io, what)
        memory, src, offset, count = self.memory, args.src, args.offset, args.count
        target = self.pinned_view(offset, count, f"{what} destination")
        if count == 0:
            return _NO_RESULT
        if self._copy_now(state, what):
            _gather(memory.segments(src, count, write=False, what="source"), target)
            return _NO_RESULT
        memory.check(src, count, write=False, what="source")
        view = self.pinned_view

        def copy() -> None:
            _gather(memory.segments(src, count, write=False, what="source"),
                    view(offset, count, f"{what} destination"))

        self.enqueue(args.stream, copy, what)
        return _NO_RESULT

    def mem_host_alias(self, args: MemHostAliasArgs, io: CallIO) -> DevPtrResult:
        what = "cuMemHostGetDevicePointer"
        client, start, size = self._pinned_range(args.offset, what)
        within = args.offset - start
        alias = self.memory.host_aliases.get(start)
        if alias is None:
            if args.address and args.address < within:
                raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                                f"{what}: address {args.address:#x} cannot name offset {within:#x} of a "
                                "range")
            data = np.frombuffer(client.area.view[start:start + size], dtype=np.uint8)
            alias = self.memory.alias_host(start, data, args.address - within if args.address else 0)
        return DevPtrResult(dptr=alias + within)

    def mem_free_host(self, args: MemFreeHostArgs, io: CallIO) -> NoResult:
        client = self._pinned_client("cuMemFreeHost")
        if client.area.allocator.find(client.owner, args.offset, 0) is not None:
            self.memory.unalias_host(args.offset)  # ours: no kernel reaches the range from now on
        return PinnedHostCalls.mem_free_host(self, args, io)

    # -- the C fast path's tables (mediator._pinned_fast) --------------------------------------------

    def fast_copy_tables(self) -> FastCopyTables:
        """This context's tables for copies served in C."""
        client = self.pinned
        area = client.area if client is not None else None
        # the handle table's own dict: a stream destroyed is gone from it at once (one lookup per copy)
        return FastCopyTables(client, area.view if area else None, self.memory,
                              area.allocator if area else None, self._streams._objects, self._captures,
                              self.pending_faults)

    def fast_copy_block(self, device: int) -> tuple[int, int, Any | None] | None:
        """For a copy that just succeeded: the allocation holding ``device`` as ``(start, end,
        buffer)``. A VMM mapping's buffer is its part of the physical allocation when every granule
        of it grants read-write access (a copy within it needs no other check), else None (never
        served in C); a copy that runs into the next mapping is not within one block either way."""
        alloc = self.memory.allocations.find(device)
        if alloc is None:
            return None
        if alloc.kind != "vmm":
            return alloc.start, alloc.end, alloc.obj
        mapping: Mapping = alloc.obj
        granted = bool(np.all(mapping.access == _READWRITE))
        return alloc.start, alloc.end, mapping.bytes() if granted else None

    def fast_copy_range(self, offset: int, count: int) -> tuple[int, int] | None:
        """For a pinned copy that just succeeded: this context's range holding ``[offset, +count)``
        as ``(start, end)``."""
        client = self.pinned
        held = client.area.allocator.find(client.owner, offset, count) if client is not None else None
        return (held[0], held[0] + held[1]) if held is not None else None


def _scatter(source: memoryview, targets: list[Any]) -> None:
    pos = 0
    for segment in targets:
        size = segment.size
        memoryview(segment)[:] = source[pos:pos + size]
        pos += size


def _gather(sources: list[Any], target: memoryview) -> None:
    pos = 0
    for segment in sources:
        size = segment.size
        target[pos:pos + size] = memoryview(segment)
        pos += size
