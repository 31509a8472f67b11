"""Ring bookkeeping over a mapped region: who may write which index, and what is pending.

Indices are free-running u32 counters; an entry lives at ``index & (entries - 1)``. A producer writes
the entry (and its payload) first and then stores the new tail; a consumer reads the tail, reads
the entries up to it, and then stores the new head. Each side keeps its own index privately and
only ever *writes* it to the region, so a guest that scribbles on the host's index hurts only
itself. The index written by the other side is untrusted: a count of pending entries larger than
the ring means it jumped or went backwards, and :class:`RemoteProtocolError` says so.
"""

from __future__ import annotations

from typing import Final

from ._errors import RemoteProtocolError
from ._frames import (
    Completion,
    Submission,
    decode_completion,
    decode_submission,
    encode_completion,
    encode_submission,
)
from ._layout import CQE_SIZE, SQE_SIZE, DeviceState, HeaderField, RegionLayout, validate_region
from ._status import CUresult

__all__ = [
    "CompletionConsumer",
    "CompletionProducer",
    "Region",
    "SubmissionConsumer",
    "SubmissionProducer",
]

_MASK32: Final = 0xFFFF_FFFF


class Region:
    """A validated region: the layout plus typed access to the header's live words."""

    def __init__(self, buf: memoryview, layout: RegionLayout | None = None) -> None:
        self.buf = buf if buf.format == "B" else buf.cast("B")
        self.layout = layout if layout is not None else validate_region(self.buf)
        self._u32 = self.buf[:4096].cast("I")
        self._u64 = self.buf[:4096].cast("Q")
        start = self.layout.arena_offset
        self.arena = self.buf[start:start + self.layout.arena_size]

    def u32(self, field: HeaderField) -> int:
        return int(self._u32[field >> 2])

    def set_u32(self, field: HeaderField, value: int) -> None:
        self._u32[field >> 2] = value & _MASK32

    def u64(self, field: HeaderField) -> int:
        return int(self._u64[field >> 3])

    def set_u64(self, field: HeaderField, value: int) -> None:
        self._u64[field >> 3] = value & 0xFFFF_FFFF_FFFF_FFFF

    @property
    def device_state(self) -> int:
        return self.u32(HeaderField.DEVICE_STATE)

    def set_device_state(self, state: DeviceState) -> None:
        self.set_u32(HeaderField.DEVICE_STATE, state)

    @property
    def epoch(self) -> int:
        return self.u32(HeaderField.EPOCH)

    def release(self) -> None:
        """Drop the exported views so the underlying mapping can be closed."""
        for view in (self._u32, self._u64, self.arena, self.buf):
            view.release()


class _RingSide:
    def __init__(self, region: Region, *, ring_offset: int, entries: int, entry_size: int,
                 mine: HeaderField, theirs: HeaderField) -> None:
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


class SubmissionProducer(_RingSide):
    """The guest's end of the submission ring."""

    def __init__(self, region: Region) -> None:
        lay = region.layout
        super().__init__(region, ring_offset=lay.sq_offset, entries=lay.sq_entries,
                         entry_size=SQE_SIZE, mine=HeaderField.SQ_TAIL, theirs=HeaderField.SQ_HEAD)

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


class SubmissionConsumer(_RingSide):
    """The host's end of the submission ring."""

    def __init__(self, region: Region) -> None:
        lay = region.layout
        super().__init__(region, ring_offset=lay.sq_offset, entries=lay.sq_entries,
                         entry_size=SQE_SIZE, mine=HeaderField.SQ_HEAD, theirs=HeaderField.SQ_TAIL)

    def pending(self) -> int:
        """Entries published and not yet consumed; raises if the guest's tail is impossible."""
        tail = int(self._u32[self._theirs])
        count = (tail - self.index) & _MASK32
        if count > self.entries:
            raise RemoteProtocolError(
                f"submission tail {tail} is {count} entries past head {self.index} "
                f"in a ring of {self.entries}: it jumped or went backwards",
                CUresult.CUDA_ERROR_ILLEGAL_STATE)
        return count

    def read(self, ahead: int = 0) -> Submission:
        """Decode the entry ``ahead`` places past the head (it must be pending)."""
        return decode_submission(self._buf, self.slot_offset(self.index + ahead))

    def advance(self, count: int = 1) -> None:
        """Consume ``count`` entries: their input payloads may now be reused by the guest."""
        self._publish(self.index + count)


class CompletionProducer(_RingSide):
    """The host's end of the completion ring."""

    def __init__(self, region: Region) -> None:
        lay = region.layout
        super().__init__(region, ring_offset=lay.cq_offset, entries=lay.cq_entries,
                         entry_size=CQE_SIZE, mine=HeaderField.CQ_TAIL, theirs=HeaderField.CQ_HEAD)

    def space(self) -> int:
        head = int(self._u32[self._theirs])
        used = (self.index - head) & _MASK32
        if used > self.entries:
            raise RemoteProtocolError(
                f"completion head {head} is {used} entries behind tail {self.index} "
                f"in a ring of {self.entries}: it jumped or went backwards",
                CUresult.CUDA_ERROR_ILLEGAL_STATE)
        return self.entries - used

    def push(self, *, seq: int, call_id: int, status: int, results: bytes = b"",
             out_len: int = 0, flags: int = 0) -> bool:
        if self.space() <= 0:
            return False
        encode_completion(self._buf, self.slot_offset(self.index), seq=seq, call_id=call_id,
                          status=status, results=results, out_len=out_len, flags=flags)
        self._publish(self.index + 1)
        return True


class CompletionConsumer(_RingSide):
    """The guest's end of the completion ring."""

    def __init__(self, region: Region) -> None:
        lay = region.layout
        super().__init__(region, ring_offset=lay.cq_offset, entries=lay.cq_entries,
                         entry_size=CQE_SIZE, mine=HeaderField.CQ_HEAD, theirs=HeaderField.CQ_TAIL)

    def pending(self) -> int:
        tail = int(self._u32[self._theirs])
        count = (tail - self.index) & _MASK32
        if count > self.entries:
            raise RemoteProtocolError(f"completion tail {tail} jumped past head {self.index}",
                                      CUresult.CUDA_ERROR_ILLEGAL_STATE)
        return count

    def pop(self) -> Completion:
        """Decode the entry at the head and consume it (it must be pending)."""
        completion = decode_completion(self._buf, self.slot_offset(self.index))
        self._publish(self.index + 1)
        return completion
