"""A guest and a ring server in one process over one real region: the CPU cost of a call, both sides.

Nothing crosses a core and nobody sleeps: the guest's wait runs the server's drain first, so a loop of
calls measures exactly the instructions of the guest's submit and wait plus the worker's drain and
serve (the same classes the daemon runs), with none of the scheduling noise of two processes.
``python -m benchmarks.profile`` drives it; under ``valgrind --tool=callgrind`` it gives instruction
counts, which are steady on a busy machine where wall time is not.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import threading
from collections.abc import Iterator
from types import TracebackType
from typing import Self

import structlog

from executor import DeviceConfig, VmShare
from guest import GuestClient
from mediator._channels import ChannelTable
from mediator._server import RingServer
from mediator._stats import WorkerCounters
from protocol import Completion, RegionHeader, lay_out_region

__all__ = ["Loopback", "LoopbackGuest"]


class LoopbackGuest(GuestClient):
    """A guest whose waits first let the in-process server serve what is pending."""

    server: RingServer

    def wait(self, seq: int) -> Completion:
        self.server.drain()
        return super().wait(seq)


class Loopback:
    """``guest`` and ``server`` (over a ``sim`` executor) sharing one memfd region of one channel: the
    host's channel table opens it for the guest (and frees it when the guest closes)."""

    def __init__(self, region_size: int = 64 << 20) -> None:
        fd = os.memfd_create("vgpu-loopback", os.MFD_CLOEXEC)
        os.ftruncate(fd, region_size)
        self._map = mmap.mmap(fd, region_size, flags=mmap.MAP_SHARED | mmap.MAP_POPULATE)
        lay_out_region(memoryview(self._map), vm_id=1, channels=1)
        self.header = RegionHeader(memoryview(self._map))
        self.counters = WorkerCounters(pid=os.getpid())
        self.table = ChannelTable(self.header, VmShare("sim", device=DeviceConfig()), self.counters,
                                  vm="loopback", log=structlog.wrap_logger(structlog.ReturnLogger()))
        with self._serving_requests():
            self.guest = LoopbackGuest.from_fds(fd, os.eventfd(0, os.EFD_CLOEXEC),
                                                os.eventfd(0, os.EFD_CLOEXEC))
        ctx = self.table.channels[0].ctx
        assert ctx is not None
        self.region, self.executor, self.server = ctx.region, ctx.executor, ctx.server
        self.guest.server = self.server

    @contextlib.contextmanager
    def _serving_requests(self) -> Iterator[None]:
        """Answer the guest's open or close from a thread while it waits for the answer."""
        done = threading.Event()

        def scan() -> None:
            while not done.wait(0.001):
                self.table.scan()

        thread = threading.Thread(target=scan, name="loopback-host")
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

    def close(self) -> None:
        with self._serving_requests():
            self.guest.close()
        self.table.release()
        self.header.release()
        self._map.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
