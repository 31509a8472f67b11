"""A worker's counters, in a small shared mapping the supervisor reads without asking.

The guest can write anything in its region, so operator-facing numbers live here, in memory the
guest never sees. The worker owns every field; the supervisor only reads.
"""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass
from typing import Final

__all__ = ["STATS_SIZE", "StatsBlock", "WorkerCounters"]

_FIELDS: Final = (
    "calls", "errors", "protocol_errors", "async_calls", "bytes_htod", "bytes_dtoh",
    "memory_used", "heartbeat_ns", "sleeps", "wakeups", "pid", "latched_errors",
)
_STRUCT: Final = struct.Struct("<" + "Q" * len(_FIELDS))
STATS_SIZE: Final = 4096


@dataclass(slots=True)
class WorkerCounters:
    calls: int = 0
    errors: int = 0
    protocol_errors: int = 0
    async_calls: int = 0
    bytes_htod: int = 0
    bytes_dtoh: int = 0
    memory_used: int = 0
    heartbeat_ns: int = 0
    sleeps: int = 0
    wakeups: int = 0
    pid: int = 0
    latched_errors: int = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in _FIELDS}


class StatsBlock:
    """The mapping itself: created by the supervisor (memfd), written by the worker."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._map = mmap.mmap(fd, STATS_SIZE)

    @classmethod
    def create(cls, name: str) -> StatsBlock:
        fd = os.memfd_create(f"vgpu-stats-{name}", os.MFD_CLOEXEC)
        os.ftruncate(fd, STATS_SIZE)
        return cls(fd)

    def write(self, counters: WorkerCounters) -> None:
        _STRUCT.pack_into(self._map, 0, *(getattr(counters, n) for n in _FIELDS))

    def read(self) -> WorkerCounters:
        return WorkerCounters(*_STRUCT.unpack_from(self._map, 0))

    def close(self) -> None:
        self._map.close()
        os.close(self.fd)
