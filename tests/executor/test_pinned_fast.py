"""Copies served in C (#19, ``mediator._pinned_fast``, native/copyfast.c): pinned copies, and the host
side of staged ones (between the arena and device memory). The bytes are bitwise right, the C path
really serves them, and everything it must not serve falls back to the Python path and is answered
exactly as before. Each case runs twice over real rings, once with the C path and
once without it, and everything the guest and the operator can see must agree: completions, what the
drains served, the counters, the log, device memory and the pinned area."""

from __future__ import annotations

import contextlib
import importlib
import os
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.pinned import host_per_call
from executor import PinnedArea, PinnedClient
from mediator import _pinned_fast, _server
from mediator._limits import TokenBucket
from mediator._server import RingServer
from protocol import CALLS_BY_NAME, CUresult, Submission, SubmitFlags, encode_args
from tests.reliability._ring_pair import RingPair

pytestmark = pytest.mark.skipif(not _pinned_fast.ACCELERATED, reason="mediator._copyfast is not built")

PAGE = 4096
AREA = 64 * PAGE
BLOCK = 16 * PAGE
ASYNC = int(SubmitFlags.ASYNC)
HTOD = CALLS_BY_NAME["memcpy_htod_pinned"].call_id
DTOH = CALLS_BY_NAME["memcpy_dtoh_pinned"].call_id
STAGED_HTOD = CALLS_BY_NAME["memcpy_htod"].call_id
STAGED_DTOH = CALLS_BY_NAME["memcpy_dtoh"].call_id
COPY_ARGS = struct.Struct("<QQQI4x")
OUT = 1 << 18  # where staged DtoH copies' output areas start in the arena (their inputs start at 0)
#: counters that must agree between the two paths (latency differs by nature: only its total count)
COUNTED = ("calls", "errors", "protocol_errors", "async_calls", "bytes_htod", "bytes_dtoh", "latched_errors",
           "throttles")

Entry = dict[str, Any]


@dataclass
class Side:
    """One ring pair with a pinned area, a pinned range, a device block and a stream, and what its
    guest has seen so far."""

    fast: bool
    pair: RingPair = field(init=False)
    area: PinnedArea = field(init=False)
    client: PinnedClient = field(init=False)
    host: int = 0  # pinned offset of the guest's range (8 pages)
    dev: int = 0  # device block (BLOCK bytes)
    stream: int = 0
    seen: list[tuple[Any, ...]] = field(default_factory=list)
    errors: list[tuple[Any, ...]] = field(default_factory=list)  # every call failure the server logs
    python_copies: int = 0  # copies the Python handlers ran
    orig: bytes = b""  # what the guest's range held at first

    def __post_init__(self) -> None:
        self.pair = RingPair()
        self.area = PinnedArea(memoryview(bytearray(AREA)))
        self.client = self.pair.executor.pinned = self.area.client()
        server = self.pair.server
        if not self.fast:
            server.pinned_fast = None
        server._log_error = self._record_error  # type: ignore[method-assign]
        for call_id in (HTOD, DTOH, STAGED_HTOD, STAGED_DTOH):
            self._count_python(server, call_id)
        self.host = self.value("mem_host_alloc", "offset", bytesize=8 * PAGE, flags=0)
        self.dev = self.value("mem_alloc", "dptr", bytesize=BLOCK)
        self.stream = self.value("stream_create", "stream", flags=1)
        self.orig = np.random.default_rng(19).integers(0, 256, 8 * PAGE, dtype=np.uint8).tobytes()
        self.area.view[self.host:self.host + 8 * PAGE] = self.orig
        self.seen.clear()
        self.errors.clear()

    def _record_error(self, sub: Submission, name: str, status: int, message: str) -> None:
        """The server's error log, every failure rather than the first of each second: the two sides
        run at different speeds, and a rate limit on the clock would log different ones."""
        self.errors.append((sub.seq, name, status, message))

    def _count_python(self, server: RingServer, call_id: int) -> None:
        call = server._calls[call_id]
        handler = call.handler
        assert handler is not None

        def counted(args: Any, io: Any) -> Any:
            self.python_copies += 1
            return handler(args, io)

        call.handler = counted

    def value(self, name: str, field_name: str, **args: Any) -> int:
        answer = self.pair.call(name, **args)
        assert answer.status == 0, (name, answer)
        return int(getattr(answer.result, field_name))

    def submit(self, entries: list[Entry], budget: int = 256, *, pop: bool = True) -> None:
        """Push ``entries`` (a call name and its arguments; ``flags``, ``raw`` arguments, ``in_len``
        optional), drain once, and record the drain and (``pop``) every completion."""
        pair = self.pair
        for entry in entries:
            spec = CALLS_BY_NAME[entry["name"]]
            raw = entry.get("raw")
            if raw is None:
                raw = encode_args(spec.args(**entry["args"]))
            pair.seq += 1
            data = entry.get("data")
            if data is not None:  # a staged HtoD's payload, written as the guest writes it
                room = pair.region.arena[entry["in_off"]:entry["in_off"] + len(data)]  # what fits of it
                room[:] = data[:len(room)]
            assert pair.sq.push(seq=pair.seq, call_id=spec.call_id, args=raw, flags=entry.get("flags", 0),
                                in_off=entry.get("in_off", 0), in_len=entry.get("in_len", 0),
                                out_off=entry.get("out_off", 0), out_cap=entry.get("out_cap", 0))
        server = pair.server
        self.seen.append(("drain", server.drain(budget), server.cq_blocked))
        while pop and pair.cq.pending():
            c = pair.cq.pop()
            self.seen.append((c.seq, c.call_id, c.status, c.flags, c.out_len))

    def copy(self, way: int, *, count: int = 8 * PAGE, offset: int = 0, dev_offset: int = 0,
             stream: int | None = None, flags: int = 0) -> Entry:
        name = "memcpy_htod_pinned" if way == HTOD else "memcpy_dtoh_pinned"
        device = "dst" if way == HTOD else "src"
        return {"name": name, "flags": flags,
                "args": {device: self.dev + dev_offset, "offset": self.host + offset, "count": count,
                         "stream": self.stream if stream is None else stream}}

    def staged(self, way: int, *, count: int = 8 * PAGE, at: int = 0, dev_offset: int = 0,
               stream: int | None = None, flags: int = 0, out_cap: int | None = None) -> Entry:
        """A staged copy: HtoD with ``count`` bytes of payload at arena offset ``at`` (bytes that
        differ for every ``at`` and ``count``), DtoH into an output area at ``OUT + at``."""
        stream = self.stream if stream is None else stream
        if way == STAGED_HTOD:
            data = bytes((at + count + i) & 0xFF for i in range(count))
            return {"name": "memcpy_htod", "flags": flags, "args": {"dst": self.dev + dev_offset, "stream": stream},
                    "in_off": at, "in_len": count, "data": data}
        return {"name": "memcpy_dtoh", "flags": flags,
                "args": {"src": self.dev + dev_offset, "count": count, "stream": stream},
                "out_off": OUT + at, "out_cap": count if out_cap is None else out_cap}

    def state(self) -> dict[str, Any]:
        counters = self.pair.counters
        return {"seen": self.seen, "errors": self.errors, **{name: getattr(counters, name) for name in COUNTED},
                "latency_count": sum(counters.latency), "latched": self.pair.server.latched,
                "device": bytes(self.pair.executor.memory.read(self.dev, BLOCK)) if self._dev_live() else None,
                "area": bytes(self.area.view), "arena": bytes(self.pair.region.arena)}

    def _dev_live(self) -> bool:
        return self.pair.executor.memory.allocations.find(self.dev) is not None

    def close(self) -> None:
        self.pair.close()


@contextlib.contextmanager
def fresh_sides() -> Iterator[tuple[Side, Side]]:
    """A side with the C path and one without, closed afterwards."""
    fast, slow = Side(fast=True), Side(fast=False)
    try:
        yield fast, slow
    finally:
        fast.close()
        slow.close()


@pytest.fixture
def sides() -> Iterator[tuple[Side, Side]]:
    with fresh_sides() as pair:
        yield pair


def both(sides: tuple[Side, Side], script: Callable[[Side], None]) -> tuple[Side, Side]:
    """Run ``script`` on both sides, logs captured, and require that everything seen agrees."""
    fast, slow = sides
    logged = []
    for side in sides:
        with structlog.testing.capture_logs() as logs:
            script(side)
        logged.append([(e["event"], e.get("call"), e.get("status")) for e in logs])
    assert fast.state() == slow.state()
    assert logged[0] == logged[1]
    return fast, slow


# -- served in C, bitwise right ---------------------------------------------------------------------

def test_copies_are_served_in_c_after_the_first_and_move_exactly_the_bytes(
        sides: tuple[Side, Side]) -> None:
    def script(side: Side) -> None:
        side.submit([side.copy(HTOD)])  # served in Python: it teaches the C path block and range
        side.submit([side.copy(HTOD, count=3 * PAGE + 5, offset=PAGE + 3, dev_offset=7 * PAGE + 1,
                               flags=ASYNC)] * 4
                    + [side.copy(DTOH, count=PAGE - 1, offset=5 * PAGE, dev_offset=11, flags=ASYNC),
                       side.copy(DTOH, count=2 * PAGE, offset=6 * PAGE, dev_offset=8 * PAGE, stream=0)])

    fast, slow = both(sides, script)
    assert fast.python_copies == 1 and slow.python_copies == 7
    assert fast.pair.server.pinned_fast is not None and fast.pair.server.pinned_fast.c.cached == (1, 1)
    orig, host = fast.orig, bytes(fast.area.view[fast.host:fast.host + 8 * PAGE])
    device = bytes(fast.pair.executor.memory.read(fast.dev, BLOCK))
    assert device[:7 * PAGE] == orig[:7 * PAGE]  # the first copy, where the later ones did not land
    assert device[7 * PAGE + 1:10 * PAGE + 6] == orig[PAGE + 3:4 * PAGE + 8]
    assert host[5 * PAGE:6 * PAGE - 1] == orig[11:PAGE + 10]
    assert host[6 * PAGE:8 * PAGE] == orig[2 * PAGE + 2:4 * PAGE + 2]
    assert fast.pair.counters.bytes_htod == 8 * PAGE + 4 * (3 * PAGE + 5)


def test_copies_at_every_relative_alignment_move_exactly_the_bytes(sides: tuple[Side, Side]) -> None:
    """Where ``MOVSB`` is set, copies from 4 KiB whose two ends share their offset in a cache line take
    rep movsb, the others memcpy: each of the 64 relative alignments, sizes either side of 4 KiB."""
    def script(side: Side) -> None:
        _warm(side)
        for shift in range(64):
            side.submit([side.copy(HTOD, count=count, offset=shift, dev_offset=64 * k,
                                   flags=ASYNC) for k, count in enumerate((PAGE - 1, PAGE, 5 * PAGE + 3))]
                        + [side.copy(DTOH, count=count, offset=PAGE + shift, dev_offset=8 * PAGE + k,
                                     flags=ASYNC) for k, count in enumerate((PAGE, 2 * PAGE + 1, 6 * PAGE))])

    fast, slow = both(sides, script)
    assert fast.python_copies == 1 and slow.python_copies == 1 + 64 * 6
    assert importlib.import_module("mediator._copyfast").MOVSB in (0, 1)


def test_a_run_in_c_goes_past_the_budget_for_its_time_slice_and_no_further() -> None:
    """A drain's budget counts calls; copies served in C go on past it, up to what is queued, while the
    run has taken less than ``FAST_SLICE_NS`` — never past the token bucket's allowance."""
    side = Side(fast=True)
    try:
        _warm(side)
        server = side.pair.server
        side.submit([side.copy(HTOD, flags=ASYNC)] * 6, budget=4)
        assert side.seen[-1] == ("drain", 6, False), "past the budget within the slice"
        side.submit([side.copy(HTOD, flags=ASYNC)] * 4 + [{"name": "nop", "args": {}}]
                    + [side.copy(HTOD, flags=ASYNC)] * 2, budget=2)
        assert side.seen[-1] == ("drain", 4, False), "a run stops at the first entry it cannot serve"
        side.submit([], budget=2)  # the nop in Python, then the two copies in C
        assert side.seen[-2] == ("drain", 3, False) and side.seen[-1][1:3] == (CALLS_BY_NAME["nop"].call_id, 0)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(_server, "FAST_SLICE_NS", 0)
            side.submit([side.copy(HTOD, flags=ASYNC)] * 6, budget=4)
            assert side.seen[-1] == ("drain", 4, False), "the slice spent: the budget holds"
            side.submit([], budget=4)
        server.limiter = TokenBucket(1.0, burst=3.0)
        side.submit([side.copy(HTOD, flags=ASYNC)] * 5, budget=4)
        assert side.seen[-1] == ("drain", 3, False) and server.rate_limited, "the bucket's allowance holds"
        assert side.python_copies == 1 and side.errors == []
    finally:
        side.close()


def test_staged_copies_host_side_is_served_in_c_and_moves_exactly_the_bytes(sides: tuple[Side, Side]) -> None:
    more = int(SubmitFlags.CHUNK_MORE)

    def script(side: Side) -> None:
        side.submit([side.staged(STAGED_HTOD)])  # served in Python: it teaches the C path the block
        side.submit([side.staged(STAGED_HTOD, count=PAGE, at=i * PAGE, dev_offset=i * PAGE, flags=ASYNC | more)
                     for i in range(3)]
                    + [side.staged(STAGED_HTOD, count=5, at=3 * PAGE, dev_offset=3 * PAGE),
                       side.staged(STAGED_DTOH, count=3 * PAGE + 5, dev_offset=0),
                       side.staged(STAGED_DTOH, count=7, at=4 * PAGE, dev_offset=PAGE + 1, out_cap=PAGE)])

    fast, slow = both(sides, script)
    assert fast.python_copies == 1 and slow.python_copies == 7
    arena = bytes(fast.pair.region.arena)
    device = bytes(fast.pair.executor.memory.read(fast.dev, BLOCK))
    assert device[:3 * PAGE + 5] == arena[:3 * PAGE + 5]  # the chunks, then the tail of 5 bytes
    assert arena[OUT:OUT + 3 * PAGE + 5] == device[:3 * PAGE + 5]
    assert arena[OUT + 4 * PAGE:OUT + 4 * PAGE + 7] == device[PAGE + 1:PAGE + 8]
    assert [c[4] for c in fast.seen if c[0] != "drain"][-2:] == [3 * PAGE + 5, 7]  # out_len of each DtoH


# -- everything else falls back and is answered as before ------------------------------------------

def _warm(side: Side) -> None:
    side.submit([side.copy(HTOD)])


def _other_process_range(side: Side) -> None:
    other = side.area.client().alloc(PAGE, "test")
    side.submit([side.copy(HTOD, offset=other - side.host, count=PAGE)])


def _freed_range(side: Side) -> None:
    side.pair.call("mem_free_host", offset=side.host)
    side.submit([side.copy(HTOD), side.copy(DTOH, flags=ASYNC)])


def _past_the_range(side: Side) -> None:
    side.submit([side.copy(HTOD, offset=PAGE, count=8 * PAGE), side.copy(DTOH, offset=8 * PAGE, count=1)])


def _freed_block(side: Side) -> None:
    side.pair.call("mem_free", dptr=side.dev)
    side.submit([side.copy(DTOH), side.copy(HTOD, flags=ASYNC)])


def _past_the_block(side: Side) -> None:
    side.submit([side.copy(HTOD, dev_offset=BLOCK - PAGE, count=2 * PAGE),
                 side.copy(DTOH, dev_offset=BLOCK, count=1), side.copy(HTOD, dev_offset=-1, count=1)])


def _vmm_memory(side: Side) -> None:
    granule = 2 << 20
    handle = side.value("mem_create", "handle", size=granule, device=0, flags=0)
    ptr = side.value("mem_address_reserve", "dptr", size=granule, alignment=0, addr=0, flags=0)
    assert side.pair.call("mem_map", ptr=ptr, size=granule, offset=0, handle=handle, flags=0).status == 0
    assert side.pair.call("mem_set_access", ptr=ptr, size=granule, device=0, flags=3).status == 0
    side.submit([side.copy(HTOD, dev_offset=ptr - side.dev)] * 2 + [side.copy(DTOH, dev_offset=ptr - side.dev)])


def _vmm_access_changes(side: Side) -> None:
    granule = 2 << 20
    handle = side.value("mem_create", "handle", size=2 * granule, device=0, flags=0)
    ptr = side.value("mem_address_reserve", "dptr", size=2 * granule, alignment=0, addr=0, flags=0)
    for at in (0, granule):  # two mappings back to back, as GGML's pool grows
        assert side.pair.call("mem_map", ptr=ptr + at, size=granule, offset=at, handle=handle, flags=0).status == 0
    assert side.pair.call("mem_set_access", ptr=ptr, size=2 * granule, device=0, flags=3).status == 0
    to = ptr - side.dev  # device offsets from here on are relative to the mappings
    side.submit([side.copy(HTOD, dev_offset=to), side.copy(HTOD, dev_offset=to + PAGE, flags=ASYNC),
                 side.staged(STAGED_DTOH, dev_offset=to + 3),
                 side.copy(HTOD, dev_offset=to + granule - PAGE, count=2 * PAGE)])  # spans the two
    assert side.pair.call("mem_set_access", ptr=ptr, size=granule, device=0, flags=1).status == 0  # read
    side.submit([side.copy(HTOD, dev_offset=to), side.copy(DTOH, dev_offset=to + 5),
                 side.staged(STAGED_HTOD, dev_offset=to)])
    assert side.pair.call("mem_unmap", ptr=ptr + granule, size=granule).status == 0
    side.submit([side.copy(DTOH, dev_offset=to + granule), side.copy(DTOH, dev_offset=to)])


def test_a_vmm_mapping_is_served_in_c_only_while_all_of_it_grants_read_write(sides: tuple[Side, Side]) -> None:
    fast, slow = both(sides, _vmm_access_changes)
    # in C: the second and third copies, into the first mapping once the first copy taught it
    assert (fast.python_copies, slow.python_copies) == (7, 9)


def _destroyed_stream(side: Side) -> None:
    side.pair.call("stream_destroy", stream=side.stream)
    side.submit([side.copy(HTOD), side.copy(HTOD, stream=0), side.copy(DTOH, stream=side.stream + 99)])


def _capture(side: Side) -> None:
    assert side.pair.call("stream_begin_capture", stream=side.stream, mode=2).status == 0
    side.submit([side.copy(HTOD, flags=ASYNC), side.copy(DTOH, stream=0), side.copy(HTOD)])
    side.submit([{"name": "stream_end_capture", "args": {"stream": side.stream}}])


def _injected_fault(side: Side) -> None:
    side.pair.executor.inject_fault(CUresult.CUDA_ERROR_LAUNCH_FAILED, sticky=False)
    side.submit([side.copy(HTOD, flags=ASYNC), side.copy(HTOD), side.copy(DTOH)])


def _sticky(side: Side) -> None:
    side.pair.executor.inject_fault(CUresult.CUDA_ERROR_ILLEGAL_ADDRESS, sticky=True)
    side.submit([side.copy(HTOD)] * 3)


def _latched(side: Side) -> None:
    side.submit([side.copy(HTOD, flags=ASYNC, count=BLOCK + PAGE), side.copy(HTOD, flags=ASYNC),
                 side.copy(DTOH)])
    side.submit([side.copy(DTOH)])


def _traced(side: Side) -> None:
    traced: list[tuple[int, str, int]] = []
    side.pair.server.trace = lambda sub, name, status, _ns: traced.append((sub.seq, name, status))
    side.submit([side.copy(HTOD, flags=ASYNC), side.copy(DTOH)])
    side.pair.server.trace = None
    side.seen.append(tuple(traced))


def _malformed(side: Side) -> None:
    good = side.copy(HTOD)
    side.submit([{**good, "flags": int(SubmitFlags.CHUNK_MORE)},
                 {**good, "raw": encode_args(CALLS_BY_NAME["memcpy_htod_pinned"].args(**good["args"]))[:24]},
                 {**good, "in_len": 16}, {**good, "in_off": side.pair.region.layout.arena_size, "in_len": 1},
                 side.copy(HTOD, count=0), side.copy(DTOH, count=0, offset=AREA),
                 {**good, "raw": COPY_ARGS.pack(side.dev, side.host, 1 << 63, 0)}])


def _staged_refusals(side: Side) -> None:
    arena = side.pair.region.layout.arena_size
    side.submit([side.staged(STAGED_HTOD)])  # the C path knows the block for staged copies too
    good = side.staged(STAGED_HTOD, count=PAGE)
    side.submit([{**good, "in_off": arena - 8},  # the payload leaves the arena
                 {**good, "in_off": arena + 8, "data": None},  # starts past it
                 {**good, "in_off": 0xFFFF_F000, "data": None},
                 {**good, "in_len": 0, "data": None},  # nothing to copy
                 {**good, "out_off": OUT, "out_cap": 16},  # an output area too
                 {**good, "out_off": arena - 8, "out_cap": 16},  # one that leaves the arena
                 {**good, "raw": COPY_ARGS.pack(side.dev, 0, 0, 0)},  # another call's arguments
                 side.staged(STAGED_HTOD, count=2 * PAGE, dev_offset=BLOCK - PAGE),  # past the block
                 side.staged(STAGED_DTOH, count=PAGE, out_cap=PAGE - 1),  # more than the output area
                 side.staged(STAGED_DTOH, count=0),
                 {**side.staged(STAGED_DTOH, count=PAGE), "in_off": OUT, "in_len": 8},  # an input too
                 {**side.staged(STAGED_DTOH, count=PAGE), "out_off": arena - PAGE + 1},  # leaves the arena
                 side.staged(STAGED_DTOH, count=PAGE, stream=side.stream + 7),
                 side.staged(STAGED_HTOD, count=PAGE, flags=int(SubmitFlags.CHUNK_MORE) | ASYNC),
                 side.staged(STAGED_DTOH, count=PAGE, at=PAGE)])


def _staged_after_free(side: Side) -> None:
    side.submit([side.staged(STAGED_DTOH)])
    side.pair.call("mem_free", dptr=side.dev)
    side.submit([side.staged(STAGED_DTOH, at=PAGE), side.staged(STAGED_HTOD, flags=ASYNC)])


def _completion_ring_full(side: Side) -> None:
    entries = side.pair.region.layout.cq_entries
    side.submit([side.copy(HTOD)] * (entries - 1), pop=False)  # one completion's room left
    side.submit([side.copy(DTOH, flags=ASYNC)] * 2 + [side.copy(DTOH)] * 3, pop=False)
    side.submit([])  # still full: nothing served, then every completion popped
    side.submit([side.copy(HTOD)])


def _async_cap(side: Side) -> None:
    side.pair.server.max_async_inflight = 3
    side.submit([side.copy(HTOD, flags=ASYNC)] * 7 + [side.copy(DTOH)] + [side.copy(HTOD, flags=ASYNC)] * 4)


def _budget(side: Side) -> None:
    with pytest.MonkeyPatch.context() as patch:  # no time past the budget: the budget holds in C too
        patch.setattr(_server, "FAST_SLICE_NS", 0)
        side.submit([side.copy(HTOD, flags=ASYNC)] * 6, budget=4)
        side.submit([], budget=4)


def _batch_time(side: Side) -> None:
    with pytest.MonkeyPatch.context() as patch:  # every call takes longer than a drain may
        patch.setattr(_server, "BATCH_NS", 0)
        side.submit([side.copy(HTOD, flags=ASYNC)] * 3 + [side.copy(DTOH)])
        side.submit([])


@pytest.mark.parametrize("case", [
    _other_process_range, _freed_range, _past_the_range, _freed_block, _past_the_block, _vmm_memory,
    _vmm_access_changes,
    _destroyed_stream, _capture, _injected_fault, _sticky, _latched, _traced, _malformed,
    _completion_ring_full, _async_cap, _budget, _batch_time, _staged_refusals, _staged_after_free,
], ids=lambda case: case.__name__.strip("_"))
def test_what_c_must_not_serve_is_answered_as_the_python_path_answers_it(
        sides: tuple[Side, Side], case: Callable[[Side], None]) -> None:
    def script(side: Side) -> None:
        _warm(side)  # the C path knows the block, the range and the stream before the case starts
        case(side)
        side.submit([side.copy(HTOD), side.copy(DTOH, flags=ASYNC)])  # and serves again afterwards

    both(sides, script)


# -- random programs: the two paths agree on everything ----------------------------------------------

#: mostly copies that can succeed, some that cannot (a repeated value is drawn more often)
_COPY = st.tuples(st.sampled_from([HTOD, DTOH, STAGED_HTOD, STAGED_DTOH]), st.booleans(),  # way, async
                  st.sampled_from([0, 0, PAGE + 3, PAGE + 3, 8 * PAGE - 1, 8 * PAGE, 60 * PAGE]),  # pinned offset
                  st.sampled_from([1, PAGE, PAGE, 2 * PAGE + 7, 8 * PAGE, 8 * PAGE + 1, 0]),  # count
                  st.sampled_from([0, 5, 5, BLOCK - 4 * PAGE, BLOCK - PAGE, BLOCK]),  # device offset
                  st.sampled_from(["mine", "mine", "legacy", "other"]))  # stream
_EVENTS = ["free_block", "new_block", "free_range", "new_range", "destroy_stream", "new_stream",
           "begin_capture", "end_capture", "fault", "cap", "trace", "untrace"]
#: an event (or none), then a batch of copies
_STEP = st.tuples(st.none() | st.sampled_from(_EVENTS), st.lists(_COPY, min_size=1, max_size=12))


def _run(side: Side, program: list[Any]) -> None:
    for i, (step, copies) in enumerate(program):
        _event(side, step)
        if side.client.area.allocator.find(side.client.owner, side.host, PAGE) is not None:
            side.area.view[side.host:side.host + PAGE] = bytes([i + 1]) * PAGE  # the application's new data
        entries = []
        for way, asynchronous, offset, count, dev_offset, stream in copies:
            chosen = {"mine": side.stream, "legacy": 0, "other": side.stream + 1000}[stream]
            flags = ASYNC if asynchronous else 0
            if way in (HTOD, DTOH):
                entries.append(side.copy(way, count=count, offset=offset, dev_offset=dev_offset, stream=chosen,
                                         flags=flags))
            else:  # the pinned offset stands for an arena offset (60 pages: past the arena's end)
                entries.append(side.staged(way, count=count, at=offset, dev_offset=dev_offset, stream=chosen,
                                           flags=flags))
        side.submit(entries)


def _event(side: Side, step: str | None) -> None:
    pair = side.pair
    if step is None:
        return
    if step == "free_block":
        side.seen.append((step, pair.call("mem_free", dptr=side.dev).status))
    elif step == "new_block":
        answer = pair.call("mem_alloc", bytesize=BLOCK)
        side.dev = answer.result.dptr if answer.status == 0 else side.dev  # type: ignore[union-attr]
    elif step == "free_range":
        side.seen.append((step, pair.call("mem_free_host", offset=side.host).status))
    elif step == "new_range":
        answer = pair.call("mem_host_alloc", bytesize=8 * PAGE, flags=0)
        side.host = answer.result.offset if answer.status == 0 else side.host  # type: ignore[union-attr]
    elif step == "destroy_stream":
        side.seen.append((step, pair.call("stream_destroy", stream=side.stream).status))
    elif step == "new_stream":
        side.stream = side.value("stream_create", "stream", flags=1)
    elif step == "begin_capture":
        side.seen.append((step, pair.call("stream_begin_capture", stream=side.stream, mode=2).status))
    elif step == "end_capture":
        side.seen.append((step, pair.call("stream_end_capture", stream=side.stream).status))
    elif step == "fault":
        pair.executor.inject_fault(CUresult.CUDA_ERROR_LAUNCH_FAILED, sticky=False)
    elif step == "cap":
        pair.server.max_async_inflight = 3
    elif step == "trace":
        pair.server.trace = lambda sub, name, status, _ns: side.seen.append(("traced", sub.seq, status))
    else:
        pair.server.trace = None


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_STEP, min_size=4, max_size=16))
def test_random_programs_see_the_same_answers_with_and_without_the_c_path(program: list[Any]) -> None:
    def script(side: Side) -> None:
        _warm(side)
        _run(side, program)

    # a drain's time bound (BATCH_NS) is tested alone (_batch_time): here a test process descheduled
    # for its 50 ms on a loaded host would end one side's drain early, and the two would differ
    with fresh_sides() as pair, pytest.MonkeyPatch.context() as patch:
        patch.setattr(_server, "BATCH_NS", 1 << 40)
        both(pair, script)


def test_a_fresh_pinned_client_is_learned_afresh_and_the_old_ones_ranges_are_not_trusted(
        sides: tuple[Side, Side]) -> None:
    def script(side: Side) -> None:
        _warm(side)
        old = side.host
        side.client = side.pair.executor.pinned = side.area.client()  # a new context's handle
        side.submit([side.copy(HTOD)])  # the old client's range: refused
        side.host = side.client.alloc(8 * PAGE, "test")
        side.submit([side.copy(HTOD), side.copy(HTOD, flags=ASYNC)])
        side.seen.append((old, side.host))

    fast, _ = both(sides, script)
    assert fast.python_copies == 3  # the warm-up, the refusal, the new client's first copy


def test_without_the_extension_the_python_path_serves(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_pinned_fast, "_copyfast", None)
    side = Side(fast=True)
    try:
        assert side.pair.server.pinned_fast is None
        side.submit([side.copy(HTOD), side.copy(DTOH, flags=ASYNC)])
        assert side.python_copies == 2 and side.seen[-1][2] == 0
    finally:
        side.close()


@pytest.mark.parametrize("env", ["VGPU_COPYFAST=0", "VGPU_PURE_PYTHON=1"])
def test_the_environment_can_turn_the_c_path_off(env: str) -> None:
    name, value = env.split("=")
    probe = "import mediator._pinned_fast as p; print(p.ACCELERATED)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         env={**os.environ, name: value}).stdout
    assert out.strip() == "False"


def test_released_with_its_region() -> None:
    side = Side(fast=True)
    _warm(side)
    fast = side.pair.server.pinned_fast
    assert fast is not None and fast.c.cached == (1, 1)
    side.close()  # releases the region, then closes the mapping: no buffer may still be exported
    assert fast.c.cached == (0, 0)
    assert fast.c.serve(0, 1, 0, 0, 1 << 40) == 0


def test_the_host_benchmark_measures_both_paths_for_both_kinds_of_copy() -> None:
    (row,) = host_per_call([PAGE], repeats=1)
    assert set(row) == {"bytes", "memcpy_ns"} | {f"{kind}{way}_{path}_ns" for kind in ("", "staged_")
                                                 for way in ("htod", "dtoh") for path in ("c", "python")}
