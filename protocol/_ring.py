"""Ring bookkeeping over a mapped region: who may write which index, and what is pending.

Indices are free-running u32 counters; an entry lives at ``index & (entries - 1)``. A producer writes
the entry (and its payload) first and then stores the new tail; a consumer reads the tail, reads
the entries up to it, and then stores the new head. Each side keeps its own index privately and
only ever *writes* it to the region, so a guest that scribbles on the host's index hurts only
itself. The index written by the other side is untrusted: a count of pending entries larger than
the ring means it jumped or went backwards, and :class:`RemoteProtocolError` says so.

Two implementations share these semantics: the pure-Python classes here (``Py…``), the reference,
and ``protocol._cring`` (native/cring.c), built by the package where a compiler is present, which
does the same in one C call per operation and adds ``spin()``, a bounded wait for the other side
without the GIL. The exported names are the C ones when the extension loaded and the environment
does not say ``VGPU_PURE_PYTHON=1``; the tests run both and compare them.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any, Final

from ._errors import RemoteProtocolError
from ._frames import (
    Completion,
    Submission,
    decode_completion,
    decode_submission,
    encode_completion,
    encode_submission,
)
from ._layout import (
    CQE_SIZE,
    SQE_SIZE,
    ChannelField,
    ChannelLayout,
    ChannelState,
    DeviceState,
    RegionField,
    RegionLayout,
    validate_channel,
    validate_region,
)
from ._status import CUresult

__all__ = [
    "ACCELERATED",
    "CompletionConsumer",
    "CompletionProducer",
    "PyCompletionConsumer",
    "PyCompletionProducer",
    "PySubmissionConsumer",
    "PySubmissionProducer",
    "Region",
    "RegionHeader",
    "SubmissionConsumer",
    "SubmissionProducer",
]

_MASK32: Final = 0xFFFF_FFFF


class RegionHeader:
    """A validated region header (page 0): the geometry plus the host's live words, and a view of
    each channel block."""

    def __init__(self, buf: memoryview, layout: RegionLayout | None = None) -> None:
        self.buf = buf if buf.format == "B" else buf.cast("B")
        self.layout = layout if layout is not None else validate_region(self.buf)
        self._u32 = self.buf[:4096].cast("I")

    def u32(self, field: RegionField) -> int:
        return int(self._u32[field >> 2])

    def set_u32(self, field: RegionField, value: int) -> None:
        self._u32[field >> 2] = value & _MASK32

    @property
    def device_state(self) -> int:
        return self.u32(RegionField.DEVICE_STATE)

    def set_device_state(self, state: DeviceState) -> None:
        self.set_u32(RegionField.DEVICE_STATE, state)

    @property
    def epoch(self) -> int:
        return self.u32(RegionField.EPOCH)

    def channel_block(self, index: int) -> memoryview:
        """Channel ``index``'s block (a slice of the region; its header is not validated here)."""
        start = self.layout.channel_offset(index)
        return self.buf[start:start + self.layout.channel_size]

    def release(self) -> None:
        for view in (self._u32, self.buf):
            view.release()


class Region:
    """A validated channel block — the region of one ring pair: the layout plus typed access to its
    header's live words. (In protocol 1 the whole shared region was one such block.)"""

    def __init__(self, buf: memoryview, layout: ChannelLayout | None = None) -> None:
        self.buf = buf if buf.format == "B" else buf.cast("B")
        self.layout = layout if layout is not None else validate_channel(self.buf)
        self._u32 = self.buf[:4096].cast("I")
        self._u64 = self.buf[:4096].cast("Q")
        #: the header as u32 and u64 words, for hot paths that index them by ``ChannelField >> 2``
        #: (or ``>> 3``) precomputed, rather than through :meth:`u32` and an enum per access
        self.u32_view = self._u32
        self.u64_view = self._u64
        start = self.layout.arena_offset
        self.arena = self.buf[start:start + self.layout.arena_size]
        self._sides: list[Any] = []  # C ring sides holding an export of ``buf``, released with it

    def u32(self, field: ChannelField) -> int:
        return int(self._u32[field >> 2])

    def set_u32(self, field: ChannelField, value: int) -> None:
        self._u32[field >> 2] = value & _MASK32

    def u64(self, field: ChannelField) -> int:
        return int(self._u64[field >> 3])

    def set_u64(self, field: ChannelField, value: int) -> None:
        self._u64[field >> 3] = value & 0xFFFF_FFFF_FFFF_FFFF

    @property
    def channel_state(self) -> int:
        return self.u32(ChannelField.CHANNEL_STATE)

    def set_channel_state(self, state: ChannelState) -> None:
        self.set_u32(ChannelField.CHANNEL_STATE, state)

    @property
    def generation(self) -> int:
        return self.u32(ChannelField.GENERATION)

    def release(self) -> None:
        """Drop the exported views so the underlying mapping can be closed."""
        for side in self._sides:
            side.release()
        self._sides.clear()
        for view in (self._u32, self._u64, self.arena, self.buf):
            view.release()


class _RingSide:
    def __init__(self, region: Region, *, ring_offset: int, entries: int, entry_size: int,
                 mine: ChannelField, theirs: ChannelField) -> None:
        self._u32 = region._u32
        self._buf = region.buf
        self._ring_offset = ring_offset
        self.entries = entries
        self._mask = entries - 1
        self._entry_size = entry_size
        self._mine = mine >> 2
        self._theirs = theirs >> 2
        self.index = int(self._u32[self._mine])  # resume where the region says (fresh: 0)

    def slot_offset(self, index: int) -> int:
        return self._ring_offset + (index & self._mask) * self._entry_size

    def _publish(self, index: int) -> None:
        self.index = index & _MASK32
        self._u32[self._mine] = self.index


class PySubmissionProducer(_RingSide):
    """The guest's end of the submission ring."""

    def __init__(self, region: Region) -> None:
        lay = region.layout
        super().__init__(region, ring_offset=lay.sq_offset, entries=lay.sq_entries,
                         entry_size=SQE_SIZE, mine=ChannelField.SQ_TAIL, theirs=ChannelField.SQ_HEAD)

    @property
    def consumed(self) -> int:
        """The host's head: entries before it (and their input payloads) are done with."""
        return int(self._u32[self._theirs])

    def space(self) -> int:
        return self.entries - ((self.index - self.consumed) & _MASK32)

    def push(self, *, seq: int, call_id: int, args: bytes = b"", flags: int = 0, in_off: int = 0,
             in_len: int = 0, out_off: int = 0, out_cap: int = 0) -> bool:
        """Write one entry and publish it; False when the ring is full."""
        if self.space() <= 0:
            return False
        encode_submission(self._buf, self.slot_offset(self.index), seq=seq, call_id=call_id,
                          args=args, flags=flags, in_off=in_off, in_len=in_len, out_off=out_off,
                          out_cap=out_cap)
        self._publish(self.index + 1)
        return True


class PySubmissionConsumer(_RingSide):
    """The host's end of the submission ring."""

    def __init__(self, region: Region) -> None:
        lay = region.layout
        super().__init__(region, ring_offset=lay.sq_offset, entries=lay.sq_entries,
                         entry_size=SQE_SIZE, mine=ChannelField.SQ_HEAD, theirs=ChannelField.SQ_TAIL)

    def pending(self) -> int:
        """Entries published and not yet consumed; raises if the guest's tail is impossible."""
        tail = int(self._u32[self._theirs])
        count = (tail - self.index) & _MASK32
        if count > self.entries:
            _ring_error("submission", tail, self.index, self.entries)
        return count

    def spin(self, timeout_ns: int, yield_after_ns: int = -1) -> int:
        """Wait up to ``timeout_ns`` for an entry; returns :meth:`pending`. With ``yield_after_ns``
        (-1: never) the wait yields the CPU between looks after that long, and returns early, with
        nothing pending, once it sees the CPU contended (a yield or a preemption longer than
        ``CONTENDED_NS``): the caller should sleep until kicked instead."""
        return _spin(self, timeout_ns, yield_after_ns)

    def read(self, ahead: int = 0) -> Submission:
        """Decode the entry ``ahead`` places past the head (it must be pending)."""
        return decode_submission(self._buf, self.slot_offset(self.index + ahead))

    def advance(self, count: int = 1) -> None:
        """Consume ``count`` entries: their input payloads may now be reused by the guest."""
        self._publish(self.index + count)


class PyCompletionProducer(_RingSide):
    """The host's end of the completion ring."""

    def __init__(self, region: Region) -> None:
        lay = region.layout
        super().__init__(region, ring_offset=lay.cq_offset, entries=lay.cq_entries,
                         entry_size=CQE_SIZE, mine=ChannelField.CQ_TAIL, theirs=ChannelField.CQ_HEAD)

    def space(self) -> int:
        head = int(self._u32[self._theirs])
        used = (self.index - head) & _MASK32
        if used > self.entries:
            _ring_error("completion head", head, self.index, self.entries)
        return self.entries - used

    def push(self, *, seq: int, call_id: int, status: int, results: bytes = b"",
             out_len: int = 0, flags: int = 0) -> bool:
        if self.space() <= 0:
            return False
        encode_completion(self._buf, self.slot_offset(self.index), seq=seq, call_id=call_id,
                          status=status, results=results, out_len=out_len, flags=flags)
        self._publish(self.index + 1)
        return True


class PyCompletionConsumer(_RingSide):
    """The guest's end of the completion ring."""

    def __init__(self, region: Region) -> None:
        lay = region.layout
        super().__init__(region, ring_offset=lay.cq_offset, entries=lay.cq_entries,
                         entry_size=CQE_SIZE, mine=ChannelField.CQ_HEAD, theirs=ChannelField.CQ_TAIL)

    def pending(self) -> int:
        tail = int(self._u32[self._theirs])
        count = (tail - self.index) & _MASK32
        if count > self.entries:
            _ring_error("completion", tail, self.index, self.entries)
        return count

    def spin(self, timeout_ns: int, yield_after_ns: int = -1) -> int:
        """Wait up to ``timeout_ns`` for a completion (see :meth:`PySubmissionConsumer.spin`)."""
        return _spin(self, timeout_ns, yield_after_ns)

    def pop(self) -> Completion:
        """Decode the entry at the head and consume it (it must be pending)."""
        completion = decode_completion(self._buf, self.slot_offset(self.index))
        self._publish(self.index + 1)
        return completion


def _ring_error(kind: str, theirs: int, mine: int, entries: int) -> None:
    """Raise for an impossible index written by the other side (both implementations call this)."""
    if kind == "submission":
        raise RemoteProtocolError(
            f"submission tail {theirs} is {(theirs - mine) & _MASK32} entries past head {mine} "
            f"in a ring of {entries}: it jumped or went backwards", CUresult.CUDA_ERROR_ILLEGAL_STATE)
    if kind == "completion head":
        raise RemoteProtocolError(
            f"completion head {theirs} is {(mine - theirs) & _MASK32} entries behind tail {mine} "
            f"in a ring of {entries}: it jumped or went backwards", CUresult.CUDA_ERROR_ILLEGAL_STATE)
    raise RemoteProtocolError(f"completion tail {theirs} jumped past head {mine}",
                              CUresult.CUDA_ERROR_ILLEGAL_STATE)


#: a yield or a gap between looks longer than this means another task wanted the CPU (native/cring.c)
CONTENDED_NS: Final = 20_000


def _spin(side: PySubmissionConsumer | PyCompletionConsumer, timeout_ns: int, yield_after_ns: int) -> int:
    """The pure-Python spin: the same loop as the C one (see ``spin`` there), a look per iteration."""
    if timeout_ns > 0 and not side.pending():
        clock = time.perf_counter_ns
        started = prev = clock()
        deadline = started + timeout_ns
        polite = yield_after_ns >= 0
        yield_at = started + yield_after_ns if polite else deadline
        while int(side._u32[side._theirs]) == side.index:
            now = clock()
            if now >= deadline or (polite and now - prev > CONTENDED_NS):
                break
            if now >= yield_at:
                os.sched_yield()
                after = clock()
                if after - now > CONTENDED_NS:
                    break
                now = after
            prev = now
    return side.pending()


try:
    if os.environ.get("VGPU_PURE_PYTHON") == "1":
        raise ImportError("VGPU_PURE_PYTHON=1")
    from . import _cring
except ImportError:
    _cring = None  # type: ignore[assignment]

ACCELERATED: Final = _cring is not None

if TYPE_CHECKING or _cring is None:
    SubmissionProducer = PySubmissionProducer
    SubmissionConsumer = PySubmissionConsumer
    CompletionProducer = PyCompletionProducer
    CompletionConsumer = PyCompletionConsumer
else:
    _cring.configure(Submission, Completion, encode_submission, decode_submission, encode_completion,
                     _ring_error)

    class SubmissionProducer(_cring.SubmissionProducer):
        """The guest's end of the submission ring (C)."""

        __slots__ = ()

        def __init__(self, region: Region) -> None:
            lay = region.layout
            super().__init__(region.buf, lay.sq_offset, lay.sq_entries, SQE_SIZE, ChannelField.SQ_TAIL,
                             ChannelField.SQ_HEAD)
            region._sides.append(self)

    class SubmissionConsumer(_cring.SubmissionConsumer):
        """The host's end of the submission ring (C)."""

        __slots__ = ()

        def __init__(self, region: Region) -> None:
            lay = region.layout
            super().__init__(region.buf, lay.sq_offset, lay.sq_entries, SQE_SIZE, ChannelField.SQ_HEAD,
                             ChannelField.SQ_TAIL)
            region._sides.append(self)

    class CompletionProducer(_cring.CompletionProducer):
        """The host's end of the completion ring (C)."""

        __slots__ = ()

        def __init__(self, region: Region) -> None:
            lay = region.layout
            super().__init__(region.buf, lay.cq_offset, lay.cq_entries, CQE_SIZE, ChannelField.CQ_TAIL,
                             ChannelField.CQ_HEAD)
            region._sides.append(self)

    class CompletionConsumer(_cring.CompletionConsumer):
        """The guest's end of the completion ring (C)."""

        __slots__ = ()

        def __init__(self, region: Region) -> None:
            lay = region.layout
            super().__init__(region.buf, lay.cq_offset, lay.cq_entries, CQE_SIZE, ChannelField.CQ_HEAD,
                             ChannelField.CQ_TAIL)
            region._sides.append(self)
