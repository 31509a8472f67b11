"""Random sequences of valid and invalid calls over the real rings, checked against a model.

A hypothesis state machine plays a guest that allocates, frees, frees twice, copies in and out of
bounds and after free, creates and destroys streams and events and uses them stale or as the wrong
kind, and drives the VMM API (create, reserve, map, set access, unmap, release, free) in right and
wrong orders, with some work posted asynchronously. The model says what must exist (allocations and
their bytes, handles, memory used, the latched asynchronous error) and what each call must answer;
after every step it is compared with what the executor holds and what the counters say.

CI runs a few dozen sequences; ``VGPU_STATEFUL_PROFILE=long`` runs thousands (docs/reliability.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, precondition, rule

from executor._sim_memory import GRANULARITY
from protocol import CALLS_BY_NAME, CUresult, MemAccessFlags

from ._ring_pair import RingPair

QUOTA = 24 << 20
OK = CUresult.CUDA_SUCCESS
INVALID_VALUE = CUresult.CUDA_ERROR_INVALID_VALUE
INVALID_HANDLE = CUresult.CUDA_ERROR_INVALID_HANDLE
OOM = CUresult.CUDA_ERROR_OUT_OF_MEMORY
RW = MemAccessFlags.CU_MEM_ACCESS_FLAGS_PROT_READWRITE

settings.register_profile("ci", max_examples=60, stateful_step_count=50, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
settings.register_profile("long", max_examples=2000, stateful_step_count=100, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
PROFILE = settings.get_profile(os.environ.get("VGPU_STATEFUL_PROFILE", "ci"))

sizes = st.sampled_from([1, 8, 255, 256, 4096, 65536, 1 << 20, 6 << 20])
payloads = st.binary(min_size=1, max_size=512)


@dataclass(eq=False)
class Physical:
    size: int
    data: bytearray
    released: bool = False
    mappings: int = 0


@dataclass(eq=False)
class Mapping:
    ptr: int
    size: int
    physical: Physical
    readable: bool = False


@dataclass
class Model:
    blocks: dict[int, bytearray] = field(default_factory=dict)
    freed: list[int] = field(default_factory=list)
    streams: set[int] = field(default_factory=set)
    events: set[int] = field(default_factory=set)
    handles: dict[int, Physical] = field(default_factory=dict)  # live cuMemCreate handles
    physicals: list[Physical] = field(default_factory=list)  # every physical allocation still charged
    reservations: dict[int, int] = field(default_factory=dict)
    mappings: dict[int, Mapping] = field(default_factory=dict)
    dead: set[int] = field(default_factory=set)  # handles destroyed or released
    latched: int = 0
    errors: int = 0

    def _find(self, addr: int) -> tuple[bytearray, int, int, Mapping | None] | None:
        """(bytes, offset of ``addr`` in them, bytes left in the range, its mapping) or None."""
        for start, block in self.blocks.items():
            if start <= addr < start + len(block):
                return block, addr - start, start + len(block) - addr, None
        for start, mapping in self.mappings.items():
            if start <= addr < start + mapping.size:
                return mapping.physical.data, addr - start, start + mapping.size - addr, mapping
        return None

    def resolve(self, addr: int, count: int) -> tuple[int, list[tuple[bytearray, int, int]]]:
        """What a copy of ``[addr, addr + count)`` must answer, and the bytes it touches.

        CUDA's rule as the sim applies it: the range lies in one block, or in VMM mappings laid end to
        end, all with access granted (else ILLEGAL_ADDRESS, the copy engine's fault); anything else,
        a pointer past one block that lands in the next one included, is INVALID_VALUE.
        """
        spans: list[tuple[bytearray, int, int]] = []
        cur, left = addr, count
        while True:
            found = self._find(cur)
            if found is None:
                return INVALID_VALUE, []
            data, offset, room, mapping = found
            if mapping is not None and not mapping.readable:
                return CUresult.CUDA_ERROR_ILLEGAL_ADDRESS, []
            take = min(left, room)
            spans.append((data, offset, take))
            cur, left = cur + take, left - take
            if not left:
                return OK, spans
            after = self._find(cur)
            if mapping is None or after is None or after[3] is None:
                return INVALID_VALUE, []

    def store(self, spans: list[tuple[bytearray, int, int]], payload: bytes) -> None:
        pos = 0
        for data, offset, take in spans:
            data[offset:offset + take] = payload[pos:pos + take]
            pos += take

    @staticmethod
    def load(spans: list[tuple[bytearray, int, int]]) -> bytes:
        return b"".join(bytes(data[offset:offset + take]) for data, offset, take in spans)

    @property
    def used(self) -> int:
        return sum(len(b) for b in self.blocks.values()) + sum(p.size for p in self.physicals)


class GuestAgainstModel(RuleBasedStateMachine):
    blocks = Bundle("blocks")
    streams = Bundle("streams")
    events = Bundle("events")
    handles = Bundle("handles")
    reservations = Bundle("reservations")

    def __init__(self) -> None:
        super().__init__()
        self.gpu = RingPair(quota=QUOTA)
        self.model = Model()

    def teardown(self) -> None:
        self.gpu.close()
        assert self.gpu.executor.memory_used() == 0 and self.gpu.executor.live_handles() == 0

    # -- the guest's calls and what each must answer ---------------------------------------------------

    def expect(self, expected: int, name: str, *, asynchronous: bool = False, data: bytes = b"",
               out_cap: int = 0, **args: int) -> bytes | None:
        """Make the call; its status must be ``expected``, or the latched error a waiting call reports.
        Returns the output payload of a call that succeeded, None for one that failed."""
        spec = CALLS_BY_NAME[name]
        answer = self.gpu.call(name, data=data, out_cap=out_cap, asynchronous=asynchronous, **args)
        if asynchronous:
            if expected and not self.model.latched:
                self.model.latched = expected
        elif expected == OK and self.model.latched and (spec.synchronizing or spec.is_async):
            expected, self.model.latched = self.model.latched, 0
        assert answer.status == expected, (name, args, CUresult(answer.status).name, CUresult(expected).name)
        self.model.errors += answer.status != 0
        return answer.out if answer.status == 0 else None

    def created(self, name: str, field_name: str, **args: Any) -> int:
        answer = self.gpu.call(name, **args)
        assert answer.status == OK, (name, CUresult(answer.status).name)
        value = int(getattr(answer.result, field_name))
        assert value not in self.model.dead, f"{name} issued {value} again"
        return value

    # -- cuMemAlloc blocks ----------------------------------------------------------------------

    @rule(target=blocks, size=sizes)
    def alloc(self, size: int) -> int:
        if self.model.used + size > QUOTA:
            self.expect(OOM, "mem_alloc", bytesize=size)
            return 0
        ptr = self.created("mem_alloc", "dptr", bytesize=size)
        assert all(not (p <= ptr < p + len(b)) for p, b in self.model.blocks.items())
        self.model.blocks[ptr] = bytearray(size)
        return ptr

    @rule(ptr=consumes(blocks))
    def free(self, ptr: int) -> None:
        if ptr in self.model.blocks:
            self.expect(OK, "mem_free", dptr=ptr)
            del self.model.blocks[ptr]
            self.model.freed.append(ptr)
        else:  # the OOM placeholder 0: cuMemFree(NULL) is a no-op
            self.expect(OK, "mem_free", dptr=ptr)

    @precondition(lambda self: self.model.freed)
    @rule(data=st.data())
    def free_twice_or_use_after_free(self, data: st.DataObject) -> None:
        ptr = data.draw(st.sampled_from(self.model.freed))
        self.expect(INVALID_VALUE, "mem_free", dptr=ptr)
        self.expect(INVALID_VALUE, "memcpy_dtoh", src=ptr, count=8, stream=0, out_cap=8)
        self.expect(INVALID_VALUE, "memset_d8", dst=ptr, count=1, value=0, stream=0)

    @rule(ptr=blocks, offset=st.integers(1, 300))
    def free_inside(self, ptr: int, offset: int) -> None:
        if ptr in self.model.blocks and ptr + offset not in self.model.blocks:  # not the next one's start
            self.expect(INVALID_VALUE, "mem_free", dptr=ptr + offset)

    @rule(ptr=blocks, data=st.data(), payload=payloads, asynchronous=st.booleans())
    def copy_in(self, ptr: int, data: st.DataObject, payload: bytes, asynchronous: bool) -> None:
        block = self.model.blocks.get(ptr)
        if block is None:
            return
        offset = data.draw(st.sampled_from([0, max(0, len(block) - len(payload)), len(block) - 1,
                                            len(block), len(block) + 4096]))
        status, spans = self.model.resolve(ptr + offset, len(payload))
        self.expect(status, "memcpy_htod", data=payload, dst=ptr + offset, stream=0, asynchronous=asynchronous)
        self.model.store(spans, payload)

    @rule(ptr=blocks, data=st.data())
    def copy_out(self, ptr: int, data: st.DataObject) -> None:
        block = self.model.blocks.get(ptr)
        if block is None:
            return
        count = data.draw(st.integers(1, min(len(block) + 64, 4096)))
        offset = data.draw(st.sampled_from([0, max(0, len(block) - count), len(block) - 1]))
        status, spans = self.model.resolve(ptr + offset, count)
        out = self.expect(status, "memcpy_dtoh", src=ptr + offset, count=count, stream=0, out_cap=count)
        if out is not None:
            assert out == self.model.load(spans), "bytes read back differ from bytes written"

    @rule(dst=blocks, src=blocks, count=st.integers(1, 8192))
    def copy_between(self, dst: int, src: int, count: int) -> None:
        if dst not in self.model.blocks or src not in self.model.blocks:
            return
        (came, source), (to, target) = self.model.resolve(src, count), self.model.resolve(dst, count)
        self.expect(came or to, "memcpy_dtod", dst=dst, src=src, count=count, stream=0)
        if not came and not to:
            self.model.store(target, self.model.load(source))

    @rule(ptr=blocks, value=st.integers(0, 255), count=st.integers(1, 5000), asynchronous=st.booleans())
    def memset(self, ptr: int, value: int, count: int, asynchronous: bool) -> None:
        if ptr not in self.model.blocks:
            return
        status, spans = self.model.resolve(ptr, count)
        self.expect(status, "memset_d8", dst=ptr, count=count, value=value, stream=0, asynchronous=asynchronous)
        self.model.store(spans, bytes([value]) * count)

    @rule()
    def synchronize(self) -> None:
        self.expect(OK, "ctx_synchronize")
        assert self.model.latched == 0

    @rule()
    def mem_get_info(self) -> None:
        answer = self.gpu.call("mem_get_info")
        assert answer.status == OK and answer.result is not None
        assert answer.result.free == QUOTA - self.model.used  # type: ignore[attr-defined]

    # -- streams and events ----------------------------------------------------------------------

    @rule(target=streams, flags=st.sampled_from([0, 1]))
    def stream_create(self, flags: int) -> int:
        stream = self.created("stream_create", "stream", flags=flags)
        self.model.streams.add(stream)
        return stream

    @rule(stream=consumes(streams))
    def stream_destroy(self, stream: int) -> None:
        self.expect(OK, "stream_destroy", stream=stream)
        self.model.streams.discard(stream)
        self.model.dead.add(stream)

    @rule(stream=streams)
    def stream_synchronize(self, stream: int) -> None:
        self.expect(OK, "stream_synchronize", stream=stream)

    @rule(target=events, flags=st.sampled_from([0, 2]))
    def event_create(self, flags: int) -> int:
        event = self.created("event_create", "event", flags=flags)
        self.model.events.add(event)
        return event

    @rule(event=consumes(events))
    def event_destroy(self, event: int) -> None:
        self.expect(OK, "event_destroy", event=event)
        self.model.events.discard(event)
        self.model.dead.add(event)

    @rule(event=events, stream=streams)
    def event_record_and_wait(self, event: int, stream: int) -> None:
        self.expect(OK, "event_record", event=event, stream=stream)
        self.expect(OK, "stream_wait_event", stream=stream, event=event, flags=0, asynchronous=True)
        self.expect(OK, "event_synchronize", event=event)

    @precondition(lambda self: self.model.dead)
    @rule(data=st.data())
    def stale_handles_are_refused(self, data: st.DataObject) -> None:
        handle = data.draw(st.sampled_from(sorted(self.model.dead)))
        self.expect(INVALID_HANDLE, "stream_synchronize", stream=handle)
        self.expect(INVALID_HANDLE, "event_query", event=handle)
        self.expect(INVALID_HANDLE, "mem_release", handle=handle)

    @rule(stream=streams, event=events)
    def wrong_kind_handles_are_refused(self, stream: int, event: int) -> None:
        self.expect(INVALID_HANDLE, "stream_synchronize", stream=event)
        self.expect(INVALID_HANDLE, "event_query", event=stream)
        self.expect(INVALID_HANDLE, "event_record", event=stream, stream=event)
        self.expect(INVALID_HANDLE, "mem_release", handle=stream)

    @rule(handle=st.integers(10_000, 2**32 - 1))
    def never_issued_handles_are_refused(self, handle: int) -> None:
        self.expect(INVALID_HANDLE, "stream_destroy", stream=handle)
        self.expect(INVALID_HANDLE, "event_destroy", event=handle)

    # -- the virtual memory API ---------------------------------------------------------------------

    @rule(target=handles, granules=st.integers(1, 4))
    def mem_create(self, granules: int) -> int:
        size = granules * GRANULARITY
        if self.model.used + size > QUOTA:
            self.expect(OOM, "mem_create", size=size, device=0, flags=0)
            return 0
        handle = self.created("mem_create", "handle", size=size, device=0, flags=0)
        physical = Physical(size, bytearray(size))
        self.model.handles[handle] = physical
        self.model.physicals.append(physical)
        return handle

    @rule(handle=consumes(handles))
    def mem_release(self, handle: int) -> None:
        physical = self.model.handles.pop(handle, None)
        if physical is None:
            self.expect(INVALID_HANDLE, "mem_release", handle=handle)
            return
        self.expect(OK, "mem_release", handle=handle)
        self.model.dead.add(handle)
        physical.released = True
        if not physical.mappings:  # memory lives on until its last mapping goes
            self.model.physicals.remove(physical)

    @rule(target=reservations, granules=st.integers(1, 6))
    def reserve(self, granules: int) -> int:
        size = granules * GRANULARITY
        ptr = self.created("mem_address_reserve", "dptr", size=size, alignment=0, addr=0, flags=0)
        self.model.reservations[ptr] = size
        return ptr

    @precondition(lambda self: self.model.reservations)
    @rule(data=st.data())
    def address_free(self, data: st.DataObject) -> None:
        ptr = data.draw(st.sampled_from(sorted(self.model.reservations)))
        size = self.model.reservations[ptr]
        mapped = any(ptr <= m < ptr + size for m in self.model.mappings)
        self.expect(INVALID_VALUE if mapped else OK, "mem_address_free", ptr=ptr, size=size)
        if not mapped:  # a range with mappings in it stays reserved
            del self.model.reservations[ptr]

    @rule(ptr=reservations, handle=handles, at=st.integers(0, 5), granules=st.integers(1, 4))
    def map(self, ptr: int, handle: int, at: int, granules: int) -> None:
        size, where = granules * GRANULARITY, ptr + at * GRANULARITY
        physical = self.model.handles.get(handle)
        inside = any(r <= where and where + size <= r + n for r, n in self.model.reservations.items())
        if physical is None:
            expected = INVALID_HANDLE
        elif size > physical.size or not inside:
            expected = INVALID_VALUE
        elif any(m < where + size and where < m + mp.size for m, mp in self.model.mappings.items()):
            expected = CUresult.CUDA_ERROR_ALREADY_MAPPED
        else:
            expected = OK
        self.expect(expected, "mem_map", ptr=where, size=size, offset=0, handle=handle, flags=0)
        if expected == OK:
            assert physical is not None
            self.model.mappings[where] = Mapping(where, size, physical)
            physical.mappings += 1

    @rule(data=st.data())
    def map_into_what_is_not_reserved(self, data: st.DataObject) -> None:
        if not self.model.handles:
            return
        handle = data.draw(st.sampled_from(sorted(self.model.handles)))
        where = data.draw(st.sampled_from([*self.model.blocks, *self.model.freed, 0x10_0000_0000]))
        where -= where % GRANULARITY
        if any(r <= where < r + s for r, s in self.model.reservations.items()):
            return
        self.expect(INVALID_VALUE, "mem_map", ptr=where, size=GRANULARITY, offset=0, handle=handle, flags=0)

    @precondition(lambda self: self.model.mappings)
    @rule(data=st.data())
    def set_access_and_copy(self, data: st.DataObject) -> None:
        mapping = self.model.mappings[data.draw(st.sampled_from(sorted(self.model.mappings)))]
        payload = data.draw(payloads)
        if not mapping.readable and data.draw(st.booleans()):  # no access yet: the copy engine faults
            self.expect(CUresult.CUDA_ERROR_ILLEGAL_ADDRESS, "memcpy_htod", data=payload, dst=mapping.ptr, stream=0)
            return
        self.expect(OK, "mem_set_access", ptr=mapping.ptr, size=mapping.size, device=0, flags=RW)
        mapping.readable = True
        dst = mapping.ptr + data.draw(st.sampled_from([0, mapping.size - len(payload), mapping.size - 1]))
        status, spans = self.model.resolve(dst, len(payload))  # the end may run into the next mapping
        self.expect(status, "memcpy_htod", data=payload, dst=dst, stream=0)
        self.model.store(spans, payload)
        status, spans = self.model.resolve(mapping.ptr, 4096)
        out = self.expect(status, "memcpy_dtoh", src=mapping.ptr, count=4096, stream=0, out_cap=4096)
        if out is not None:  # (a latched asynchronous error reported here is no read)
            assert out == self.model.load(spans)

    @precondition(lambda self: self.model.mappings)
    @rule(data=st.data())
    def unmap(self, data: st.DataObject) -> None:
        ptr = data.draw(st.sampled_from(sorted(self.model.mappings)))
        mapping = self.model.mappings.pop(ptr)
        self.expect(OK, "mem_unmap", ptr=ptr, size=mapping.size)
        self.expect(INVALID_VALUE, "mem_unmap", ptr=ptr, size=mapping.size)  # not mapped any more
        physical = mapping.physical
        physical.mappings -= 1
        if physical.released and not physical.mappings:
            self.model.physicals.remove(physical)

    # -- what must hold after every step ----------------------------------------------------------------

    @invariant()
    def the_executor_holds_what_the_model_says(self) -> None:
        ex = self.gpu.executor
        assert ex.memory_used() == self.model.used
        live = len(self.model.streams) + len(self.model.events) + len(self.model.handles)
        assert ex.live_handles() == live
        assert len(ex.allocations) == len(self.model.blocks) + len(self.model.mappings)
        assert self.gpu.counters.errors == self.model.errors
        assert self.gpu.server.latched == self.model.latched


TestGuestAgainstModel = GuestAgainstModel.TestCase
TestGuestAgainstModel.settings = PROFILE
