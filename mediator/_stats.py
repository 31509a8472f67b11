"""A worker's counters, in a small shared mapping the supervisor reads without asking.

The guest can write anything in its region, so operator-facing numbers live here, in memory the
guest never sees. The worker owns every field; the supervisor only reads.
"""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass, field
from typing import Final

__all__ = ["LATENCY_BUCKETS", "STATS_SIZE", "ChannelStats", "StatsBlock", "WorkerCounters", "latency_bucket",
           "latency_bounds_s"]

_FIELDS: Final = (
    "calls", "errors", "protocol_errors", "async_calls", "bytes_htod", "bytes_dtoh",
    "memory_used", "heartbeat_ns", "sleeps", "wakeups", "pid", "latched_errors", "throttles",
    "live_handles",
)
#: counters added later go after the histogram, so a worker started by an older supervisor (and
#: adopted across its restart) still reads right: what it never wrote is 0
_LATER_FIELDS: Final = ("cq_full_waits", "channels_open", "channels_opened", "channels_closed",
                        "channels_expired", "channels_broken", "pinned_used", "poll_window_ns")
#: call latency histogram: bucket i counts calls served in [2**(i-1), 2**i) × 1.024 µs (bucket 0: less
#: than 1.024 µs), the last one everything slower; one shift and bit_length per call on the hot path
LATENCY_BUCKETS: Final = 24
_STRUCT: Final = struct.Struct("<" + "Q" * (len(_FIELDS) + 1 + LATENCY_BUCKETS + len(_LATER_FIELDS)))
#: the channel table (protocol 2.0): one record per channel from CHANNELS_AT, CHANNEL_RECORD bytes each
CHANNELS_AT: Final = 1024
_CHANNEL: Final = struct.Struct("<IIIIQQQQQ")  # state, generation, owner_pid, owner_peer, calls, errors,
#                                                memory_used, live_handles, opened_at_ns
CHANNEL_RECORD: Final = 64
MAX_CHANNEL_RECORDS: Final = 256
STATS_SIZE: Final = CHANNELS_AT + CHANNEL_RECORD * MAX_CHANNEL_RECORDS


def latency_bucket(duration_ns: int) -> int:
    """The histogram bucket of one call's service time."""
    return min(max((duration_ns >> 10).bit_length(), 0), LATENCY_BUCKETS - 1)


def latency_bounds_s() -> list[float]:
    """Each bucket's upper bound in seconds (the last is +Inf)."""
    return [(1 << (10 + i)) / 1e9 for i in range(LATENCY_BUCKETS - 1)] + [float("inf")]


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
    throttles: int = 0  # times the async cap made the server synchronize
    live_handles: int = 0  # handles of every kind the VM holds (streams, events, memory handles, …)
    cq_full_waits: int = 0  # times the guest's full completion ring held the worker back (back-pressure)
    channels_open: int = 0  # channels with a live context now
    channels_opened: int = 0  # opens served by this worker
    channels_closed: int = 0  # closes, whatever their reason
    channels_expired: int = 0  # closes because the owner's heartbeat stood still (it died)
    channels_broken: int = 0  # closes because the channel's ring indices were impossible
    pinned_used: int = 0  # bytes of the region's pinned area the VM's processes hold (cudaMallocHost)
    poll_window_ns: int = 0  # how long the worker polls after its last call before it sleeps, now
    latency_sum_ns: int = 0
    latency: list[int] = field(default_factory=lambda: [0] * LATENCY_BUCKETS)

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in _FIELDS + _LATER_FIELDS}


@dataclass(slots=True)
class ChannelStats:
    """One channel as the worker last published it (status, metrics, MQTT)."""

    index: int
    state: int  # protocol.ChannelState
    generation: int
    owner_pid: int
    owner_peer: int
    calls: int
    errors: int
    memory_used: int
    live_handles: int
    opened_at_ns: int  # wall clock, 0 while never opened


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
        _STRUCT.pack_into(self._map, 0, *(getattr(counters, n) for n in _FIELDS), counters.latency_sum_ns,
                          *counters.latency, *(getattr(counters, n) for n in _LATER_FIELDS))

    def read(self) -> WorkerCounters:
        values = _STRUCT.unpack_from(self._map, 0)
        fixed = len(_FIELDS)
        counters = WorkerCounters(*values[:fixed])
        counters.latency_sum_ns = values[fixed]
        counters.latency = list(values[fixed + 1:fixed + 1 + LATENCY_BUCKETS])
        for name, value in zip(_LATER_FIELDS, values[fixed + 1 + LATENCY_BUCKETS:], strict=True):
            setattr(counters, name, value)
        return counters

    def write_channels(self, channels: list[ChannelStats]) -> None:
        for stat in channels[:MAX_CHANNEL_RECORDS]:
            _CHANNEL.pack_into(self._map, CHANNELS_AT + stat.index * CHANNEL_RECORD, stat.state,
                               stat.generation, stat.owner_pid, stat.owner_peer, stat.calls, stat.errors,
                               stat.memory_used, stat.live_handles, stat.opened_at_ns)

    def read_channels(self, count: int) -> list[ChannelStats]:
        return [ChannelStats(i, *_CHANNEL.unpack_from(self._map, CHANNELS_AT + i * CHANNEL_RECORD))
                for i in range(min(count, MAX_CHANNEL_RECORDS))]

    def close(self) -> None:
        self._map.close()
        os.close(self.fd)
