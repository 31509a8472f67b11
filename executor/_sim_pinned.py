"""``sim``'s copies from and to pinned memory: one copy, straight between the region's pinned area
and device memory, run when the stream runs them — at once on ``sim``, with no closure, NumPy wrapper
or second check in the way (a plain buffer copy: this is the path copies take at memory speed). On a
capturing stream the copy is recorded as a node, which checks the range again when the graph runs:
the guest may have freed it since."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from protocol.models import MemcpyDtoHPinnedArgs, MemcpyHtoDPinnedArgs, NoResult

from ._base import CallIO
from ._sim_graph import StreamState
from ._sim_memory import DeviceMemory

__all__ = ["SimPinnedCalls"]

_NO_RESULT: Final = NoResult()


class SimPinnedCalls:
    """Mixed into :class:`SimExecutor`."""

    memory: DeviceMemory
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
