"""A guest and a ring server in one process over one real region: the CPU cost of a call, both sides.

Nothing crosses a core and nobody sleeps: the guest's wait runs the server's drain first, so a loop of
calls measures exactly the instructions of the guest's submit and wait plus the worker's drain and
serve (the same classes the daemon runs), with none of the scheduling noise of two processes.
``python -m benchmarks.profile`` drives it; under ``valgrind --tool=callgrind`` it gives instruction
counts, which are steady on a busy machine where wall time is not.
"""

from __future__ import annotations

import mmap
import os
from types import TracebackType
from typing import Self

from executor import DeviceConfig, create_executor
from guest import GuestClient
from mediator._server import RingServer
from mediator._stats import WorkerCounters
from protocol import Completion, Region, lay_out_region

__all__ = ["Loopback", "LoopbackGuest"]


class LoopbackGuest(GuestClient):
    """A guest whose waits first let the in-process server serve what is pending."""

    server: RingServer

    def wait(self, seq: int) -> Completion:
        self.server.drain()
        return super().wait(seq)


class Loopback:
    """``guest`` and ``server`` (over a ``sim`` executor) sharing one memfd region."""

    def __init__(self, region_size: int = 64 << 20) -> None:
        fd = os.memfd_create("vgpu-loopback", os.MFD_CLOEXEC)
        os.ftruncate(fd, region_size)
        self._map = mmap.mmap(fd, region_size, flags=mmap.MAP_SHARED | mmap.MAP_POPULATE)
        lay_out_region(memoryview(self._map), vm_id=1)
        self.region = Region(memoryview(self._map))
        self.executor = create_executor("sim", device=DeviceConfig(), memory_quota=None)
        self.counters = WorkerCounters(pid=os.getpid())
        self.server = RingServer(self.region, self.executor, self.counters, vm="loopback")
        self.guest = LoopbackGuest.from_fds(fd, os.eventfd(0, os.EFD_CLOEXEC), os.eventfd(0, os.EFD_CLOEXEC))
        self.guest.server = self.server

    def close(self) -> None:
        self.guest.close()
        self.executor.close()
        self.region.release()
        self._map.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
