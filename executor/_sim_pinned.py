"""``sim``'s copies from and to pinned memory: one copy, straight between the region's pinned area
and device memory, run when the stream runs them (at once on ``sim``; a capturing stream records a
node, which checks the range again when the graph runs: the guest may have freed it since)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import numpy as np

from protocol.models import MemcpyDtoHPinnedArgs, MemcpyHtoDPinnedArgs, NoResult

from ._base import CallIO
from ._sim_memory import DeviceMemory

__all__ = ["SimPinnedCalls"]

_NO_RESULT: Final = NoResult()


class SimPinnedCalls:
    """Mixed into :class:`SimExecutor`."""

    memory: DeviceMemory
    pinned_view: Callable[..., memoryview]
    enqueue: Callable[..., None]
    _stream_work: Callable[..., Any]

    def memcpy_htod_pinned(self, args: MemcpyHtoDPinnedArgs, io: CallIO) -> NoResult:
        what = "cuMemcpyHtoD"
        self._stream_work(args.stream, io, what)
        memory, dst, offset, count = self.memory, args.dst, args.offset, args.count
        self.pinned_view(offset, count, f"{what} source")  # refused now, not only when it runs
        if count == 0:
            return _NO_RESULT
        memory.check(dst, count, write=True, what="destination")
        view = self.pinned_view

        def copy() -> None:
            memory.write(dst, np.frombuffer(view(offset, count, f"{what} source"), dtype=np.uint8),
                         "destination")

        self.enqueue(args.stream, copy, what)
        return _NO_RESULT

    def memcpy_dtoh_pinned(self, args: MemcpyDtoHPinnedArgs, io: CallIO) -> NoResult:
        what = "cuMemcpyDtoH"
        self._stream_work(args.stream, io, what)
        memory, src, offset, count = self.memory, args.src, args.offset, args.count
        self.pinned_view(offset, count, f"{what} destination")
        if count == 0:
            return _NO_RESULT
        memory.check(src, count, write=False, what="source")
        view = self.pinned_view

        def copy() -> None:
            memory.read_into(src, np.frombuffer(view(offset, count, f"{what} destination"), dtype=np.uint8),
                             "source")

        self.enqueue(args.stream, copy, what)
        return _NO_RESULT
