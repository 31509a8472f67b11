"""A guest and a ring server in one process, over a real shared mapping (a memfd, as the daemon's).

The server is the worker's :class:`mediator._server.RingServer` over a ``sim`` executor; the guest
writes submissions and payloads exactly as :class:`guest.GuestClient` does, then lets the server drain
and reads the completion. No processes, no sleeping: fast enough for a stateful test's thousands of
calls, and every call still crosses the real rings.
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass
from typing import Any

from executor import SimExecutor
from mediator._server import RingServer
from mediator._stats import WorkerCounters
from protocol import (
    CALLS_BY_NAME,
    CompletionConsumer,
    Region,
    SubmissionProducer,
    SubmitFlags,
    WireModel,
    decode_result,
    encode_args,
    lay_out_channel,
)

__all__ = ["Answer", "RingPair"]


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    result: WireModel | None
    out: bytes


class RingPair:
    def __init__(self, *, quota: int | None = None, region_size: int = 1 << 20) -> None:
        self._fd = os.memfd_create("vgpu-test-region", os.MFD_CLOEXEC)
        os.ftruncate(self._fd, region_size)
        self._map = mmap.mmap(self._fd, region_size, flags=mmap.MAP_SHARED)
        lay_out_channel(memoryview(self._map), vm_id=1, sq_entries=16, cq_entries=16)
        self.region = Region(memoryview(self._map))
        self.executor = SimExecutor(memory_quota=quota)
        self.counters = WorkerCounters()
        self.server = RingServer(self.region, self.executor, self.counters, vm="test")
        self.sq = SubmissionProducer(self.region)
        self.cq = CompletionConsumer(self.region)
        self.seq = 0
        self.async_errors: list[int] = []  # statuses of ASYNC submissions that failed

    def close(self) -> None:
        self.executor.close()
        self.region.release()
        self._map.close()
        os.close(self._fd)

    def call(self, name: str, *, data: bytes = b"", out_cap: int = 0, asynchronous: bool = False,
             **args: Any) -> Answer:
        """Submit one call (input payload at the arena's start, output area in its second half)."""
        spec = CALLS_BY_NAME[name]
        half = self.region.layout.arena_size // 2
        assert len(data) <= half and out_cap <= half
        self.region.arena[:len(data)] = data
        self.seq += 1
        flags = int(SubmitFlags.ASYNC) if asynchronous else 0
        assert self.sq.push(seq=self.seq, call_id=spec.call_id, args=encode_args(spec.args(**args)),
                            flags=flags, in_off=0, in_len=len(data), out_off=half, out_cap=out_cap)
        assert self.server.drain() == 1
        answer = Answer(0, None, b"")
        while self.cq.pending():
            completion = self.cq.pop()
            if completion.seq != self.seq:
                continue
            if asynchronous:  # an ASYNC call is answered only when it fails
                self.async_errors.append(completion.status)
                answer = Answer(completion.status, None, b"")
                continue
            result = decode_result(spec, completion.results) if completion.status == 0 else None
            out = bytes(self.region.arena[half:half + completion.out_len])
            answer = Answer(completion.status, result, out)
        return answer
