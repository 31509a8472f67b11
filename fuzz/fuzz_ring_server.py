"""Coverage-guided fuzz target (atheris): the worker's ring server over a real shared mapping.

A memfd region is mapped as the worker maps it, laid out fresh for each input, and served by a
:class:`mediator._server.RingServer` over a ``sim`` executor with a small quota. The input is a
program for a hostile guest: write submissions (catalog calls with arguments drawn from values the
host handed out, or raw entries), move the submission tail anywhere, move the completion head
anywhere, write arena and header bytes, inject CUDA faults, let the host drain, read completions.

The only exception allowed to escape is the protocol's :class:`protocol.RemoteProtocolError`, which
is how the server says the region can no longer be served (the worker then marks it BROKEN), and
only for an impossible ring index: a malformed entry is answered like any failed call; a
handler crash that the server would answer with ``CUDA_ERROR_UNKNOWN`` is re-raised as a crash. After
every drain the host's writes are checked against what it may write: its own header words, fresh
completion slots, and the output areas of the calls it served; never the submission ring, the guest's
words or anything else in the arena. Every executed submission without ``ASYNC`` has its completion,
in order (malformed ones too); a drain that stops short says why (the completion ring is full before
an entry that needs room); memory held never exceeds the quota; closing the executor releases everything.
The executor has a small pinned area (protocol 2.1) beside the region: the guest never writes it, so
every byte of it outside the ranges the host has handed out must read zero after every drain (the host
writes only into live ranges, and zeroes a range it takes back), and closing gives every range back.

Run (see docs/reliability.md)::

    .venv/bin/python fuzz/fuzz_ring_server.py -atheris_runs=20000
    .venv/bin/python fuzz/fuzz_ring_server.py -max_total_time=600 -print_final_stats=1 build/fuzz/ring
"""

from __future__ import annotations

import mmap
import os
import struct
import sys
from pathlib import Path
from typing import Any

import atheris
import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

with atheris.instrument_imports(include=["protocol", "executor", "mediator", "fuzz"]):
    from executor import PinnedArea, SimExecutor
    from executor._sim_memory import VA_BASE
    from fuzz._harness import allowed, quiet_logs, raise_swallowed
    from mediator._server import BATCH_NS, RingServer
    from mediator._stats import WorkerCounters
    from protocol import (
        CALLS,
        CALLS_BY_NAME,
        CQE_SIZE,
        SQE_SIZE,
        ChannelField,
        CublasStatus,
        CUresult,
        MalformedSubmissionError,
        Region,
        SubmitFlags,
        decode_completion,
        decode_result,
        decode_submission,
        lay_out_channel,
        layout_of,
    )
    from protocol._layout import MIN_REGION

REGION_SIZE = MIN_REGION * 2  # 256 KiB: a ~200 KiB arena, room for a module image and its copies
QUOTA = 8 << 20  # four VMM granules; small enough that no GEMM it can hold takes long
PINNED_SIZE = 64 << 10  # the pinned area: sixteen pages, so that it fills up too
SPECS = sorted(CALLS.values(), key=lambda spec: spec.call_id)
STATUSES = {int(s) for s in CUresult} | {int(s) for s in CublasStatus}
#: header words the host may write while it serves (the rest is the guest's, or written at layout)
HOST_WORDS = {ChannelField.SQ_HEAD, ChannelField.CQ_TAIL, ChannelField.LATCHED_ERROR}
_KERNELS = Path(__file__).resolve().parent.parent / "tests" / "kernels"
IMAGES = [p.read_bytes() for p in sorted(_KERNELS.glob("test_kernels.*")) if p.suffix != ".txt"
          and p.stat().st_size <= 96 * 1024]
_MASKS = {"B": 0xFF, "H": 0xFFFF, "I": 0xFFFF_FFFF, "Q": 0xFFFF_FFFF_FFFF_FFFF,
          "i": 0xFFFF_FFFF, "q": 0xFFFF_FFFF_FFFF_FFFF}
_INTERESTING = [0, 1, 2, 3, 4, 8, 16, 64, 255, 256, 4096, 65536, 2 << 20, 4 << 20, 0x7FFF_FFFF,
                0xFFFF_FFFF, 0x7F00_0000_0000, 2**63, 2**64 - 1]

_fd = os.memfd_create("vgpu-fuzz-region", os.MFD_CLOEXEC)
os.ftruncate(_fd, REGION_SIZE)
_map = mmap.mmap(_fd, REGION_SIZE, flags=mmap.MAP_SHARED)
_buf = memoryview(_map)
_words = np.frombuffer(_map, dtype="<u4", count=1024)
_pinned = bytearray(PINNED_SIZE)
quiet_logs()


class Guest:
    """The hostile guest: its view of the region and the values the host has handed it."""

    def __init__(self, fdp: atheris.FuzzedDataProvider) -> None:
        self.fdp = fdp
        _buf[:] = bytes(REGION_SIZE)
        self.layout = lay_out_channel(_buf, vm_id=1, sq_entries=1 << fdp.ConsumeIntInRange(0, 4),
                                     cq_entries=1 << fdp.ConsumeIntInRange(0, 4))
        self.region = Region(memoryview(_map), self.layout)
        self.executor = SimExecutor(memory_quota=QUOTA)
        _pinned[:] = bytes(PINNED_SIZE)
        self.pinned = PinnedArea(memoryview(_pinned))  # no discard: a freed range is zeroed
        self.client = self.executor.pinned = self.pinned.client()
        self.counters = WorkerCounters()
        self.server = RingServer(self.region, self.executor, self.counters, vm="fuzz")
        self.server.max_async_inflight = fdp.PickValueInList([0, 1, 3, 64])
        self.tail = 0  # the guest's submission tail
        self.values: list[int] = []  # pointers and handles the host returned
        self.seq = 0
        self.arena = self.layout.arena_size

    def close(self) -> None:
        self.executor.close()
        assert self.executor.memory_used() == 0, "closing the executor left memory charged"
        self.client.close()
        assert self.pinned.allocator.used == 0 and not any(_pinned), "a closed context left pinned memory"
        self.region.release()

    # -- what the guest writes ----------------------------------------------------------------------

    def _slot(self, index: int) -> int:
        return self.layout.sq_offset + (index & (self.layout.sq_entries - 1)) * SQE_SIZE

    def _value(self, fmt: str, kind: str) -> Any:
        fdp = self.fdp
        if fmt in "fd":  # any bit pattern a guest can write, NaNs and infinities included
            choice = fdp.ConsumeIntInRange(0, 3)
            raw = fdp.ConsumeBytes(struct.calcsize(fmt)).ljust(struct.calcsize(fmt), b"\0")
            return (0.0, 1.0, -0.5, struct.unpack("<" + fmt, raw)[0])[choice]
        if fmt == "16s":
            return fdp.ConsumeBytes(16).ljust(16, b"\0")
        how = fdp.ConsumeIntInRange(0, 4)
        if how == 0 and self.values:
            value = self.values[fdp.ConsumeIntInRange(0, len(self.values) - 1)]
        elif how == 1 and self.values:
            near = self.values[fdp.ConsumeIntInRange(0, len(self.values) - 1)]
            value = near + fdp.ConsumeIntInRange(-64, 4096)
        elif how == 2:
            value = fdp.ConsumeIntInRange(0, 16) if kind != "devptr" else VA_BASE
        elif how == 3:
            value = fdp.PickValueInList(_INTERESTING)
        else:
            value = fdp.ConsumeInt(8)
        value &= _MASKS[fmt]
        if fmt in "iq" and value >= (_MASKS[fmt] + 1) // 2:
            value -= _MASKS[fmt] + 1
        return value

    def _span(self, want: int) -> tuple[int, int]:
        """An (offset, length) payload span: mostly sane, sometimes anything."""
        fdp = self.fdp
        if fdp.ConsumeIntInRange(0, 7) == 0:
            return fdp.ConsumeIntInRange(0, 0xFFFF_FFFF), fdp.ConsumeIntInRange(0, 0xFFFF_FFFF)
        length = max(0, min(want, self.arena))
        offset = fdp.ConsumeIntInRange(0, max(0, self.arena - length))
        return offset, length

    def submit(self) -> None:
        fdp = self.fdp
        spec = SPECS[fdp.ConsumeIntInRange(0, len(SPECS) - 1)]
        layout = layout_of(spec.args)
        values = [self._value(f.wire.fmt, f.wire.kind) for f in layout.fields]
        args = layout.packer.pack(*values) if layout.fields else b""
        if fdp.ConsumeIntInRange(0, 15) == 0:
            args = args[:fdp.ConsumeIntInRange(0, len(args))]
        flags = int(SubmitFlags.ASYNC) if spec.is_async and fdp.ConsumeBool() else 0
        if fdp.ConsumeIntInRange(0, 15) == 0:
            flags = fdp.ConsumeIntInRange(0, 3)
        in_off = in_len = out_off = out_cap = 0
        if fdp.ConsumeBool():
            in_off, in_len = self._span(fdp.ConsumeIntInRange(0, 4096))
        if fdp.ConsumeBool():
            out_off, out_cap = self._span(fdp.ConsumeIntInRange(0, 4096))
        self.seq += 1
        struct.pack_into("<IHHIIIIII", _buf, self._slot(self.tail), self.seq, spec.call_id, flags,
                         in_off, in_len, out_off, out_cap, len(args), 0)
        start = self._slot(self.tail) + 32
        _buf[start:start + len(args)] = args
        self.publish(self.tail + 1)

    def raw_entry(self) -> None:
        entry = self.fdp.ConsumeBytes(SQE_SIZE)
        start = self._slot(self.tail)
        _buf[start:start + len(entry)] = entry
        self.publish(self.tail + 1)

    def publish(self, tail: int) -> None:
        self.tail = tail & 0xFFFF_FFFF
        self.region.set_u32(ChannelField.SQ_TAIL, self.tail)

    def scribble_arena(self) -> None:
        fdp = self.fdp
        data = fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 512))
        offset = fdp.ConsumeIntInRange(0, self.arena - 1)
        self.region.arena[offset:offset + len(data)] = data[:self.arena - offset]

    def place_image(self) -> None:
        """A real module image (PTX, cubin, fatbin) in the arena, perhaps damaged, and a call loading it."""
        fdp = self.fdp
        if not IMAGES:
            return
        image = bytearray(IMAGES[fdp.ConsumeIntInRange(0, len(IMAGES) - 1)])
        for _ in range(fdp.ConsumeIntInRange(0, 4)):
            image[fdp.ConsumeIntInRange(0, len(image) - 1)] = fdp.ConsumeIntInRange(0, 255)
        if fdp.ConsumeBool():
            del image[fdp.ConsumeIntInRange(0, len(image)):]
        self.region.arena[:len(image)] = image
        self.seq += 1
        struct.pack_into("<IHHIIIIII", _buf, self._slot(self.tail), self.seq,
                         CALLS_BY_NAME["module_load_data"].call_id, 0, 0, len(image), 0, 0, 0, 0)
        self.publish(self.tail + 1)

    def scribble_header(self) -> None:
        fdp = self.fdp
        _words[fdp.ConsumeIntInRange(0, 1023)] = fdp.ConsumeInt(4) & 0xFFFF_FFFF

    def consume_completions(self) -> None:
        """Read what the host answered (harvesting pointers and handles), then move the head."""
        region, lay = self.region, self.layout
        head = region.u32(ChannelField.CQ_HEAD)
        tail = region.u32(ChannelField.CQ_TAIL)
        for index in range(head, head + min((tail - head) & 0xFFFF_FFFF, lay.cq_entries)):
            completion = decode_completion(_buf, lay.cq_offset + (index & (lay.cq_entries - 1)) * CQE_SIZE)
            spec = CALLS.get(completion.call_id)
            if completion.status == 0 and spec is not None:
                result = decode_result(spec, completion.results)
                self.values.extend(v for v in result.model_dump().values() if isinstance(v, int) and v)
        if self.fdp.ConsumeIntInRange(0, 7) == 0:
            tail = self.fdp.ConsumeInt(4) & 0xFFFF_FFFF
        region.set_u32(ChannelField.CQ_HEAD, tail)
        del self.values[:-64]

    def inject(self) -> None:
        status = self.fdp.PickValueInList([CUresult.CUDA_ERROR_ILLEGAL_ADDRESS,
                                           CUresult.CUDA_ERROR_OUT_OF_MEMORY,
                                           CublasStatus.CUBLAS_STATUS_EXECUTION_FAILED])
        self.executor.inject_fault(status, sticky=self.fdp.ConsumeBool())

    # -- the host's turn, and what it may have done ---------------------------------------------------

    def drain(self) -> bool:
        """Let the host serve; False once it says the region cannot be served."""
        before = bytes(_buf)
        server, lay = self.server, self.layout
        head = server.sq.index
        cq_tail = server.cq.index
        pending = min((self.region.u32(ChannelField.SQ_TAIL) - head) & 0xFFFF_FFFF, lay.sq_entries)
        expected: list[tuple[int, int, bool]] = []  # (seq, call id, answered) of each entry served
        spans: list[tuple[int, int] | None] = []  # each entry's output area, where it has one
        for ahead in range(pending):
            try:
                sub = decode_submission(before, self._slot(head + ahead))
            except MalformedSubmissionError as exc:  # answered by what it echoes, writes nothing else
                expected.append((exc.entry.seq, exc.entry.call_id, not exc.entry.flags & SubmitFlags.ASYNC))
                spans.append(None)
                continue
            expected.append((sub.seq, sub.call_id, not sub.flags & SubmitFlags.ASYNC))
            inside = sub.out_off < lay.arena_size and sub.out_cap <= lay.arena_size - sub.out_off
            spans.append((sub.out_off, sub.out_off + sub.out_cap) if sub.out_cap and inside else None)
        calls, latched, spent = self.counters.calls, server.latched, self.counters.latency_sum_ns
        budget = self.fdp.PickValueInList([1, 4, 256])
        try:
            served = server.drain(budget)
        except Exception as exc:
            raise_swallowed()
            if allowed(exc):
                return False
            raise
        raise_swallowed()
        assert served == (server.sq.index - head) & 0xFFFF_FFFF == self.counters.calls - calls
        if served:  # published as it advances (a guest that scribbled on the word sees that until then)
            assert self.region.u32(ChannelField.SQ_HEAD) == server.sq.index
        if server.cq_blocked:  # stopped at an entry that needs a completion, for want of room
            assert served < len(expected) and expected[served][2] and server.cq.space() == 0
        elif served < min(pending, budget):
            assert self.counters.latency_sum_ns - spent >= BATCH_NS, "a drain stopped short for no reason"
        self._check_writes(before, [s for s in spans[:served] if s is not None], cq_tail)
        self._check_pinned()
        self._check_completions(expected[:served], cq_tail)
        assert self.executor.memory_used() <= QUOTA, self.executor.memory_used()
        if server.latched != latched:  # published where the guest reads it (which it may scribble on)
            assert self.region.u32(ChannelField.LATCHED_ERROR) == server.latched
        return True

    def _check_writes(self, before: bytes, spans: list[tuple[int, int]], cq_tail: int) -> None:
        lay = self.layout
        old = np.frombuffer(before, dtype=np.uint8)
        new = np.frombuffer(_map, dtype=np.uint8)
        changed = np.flatnonzero(old != new)
        if not changed.size:
            return
        written = (self.server.cq.index - cq_tail) & 0xFFFF_FFFF
        fresh = {(cq_tail + i) & (lay.cq_entries - 1) for i in range(min(written, lay.cq_entries))}
        host_words = {int(f) // 4 for f in HOST_WORDS}
        for pos in changed.tolist():
            if pos < 4096:
                assert pos // 4 in host_words, f"the host wrote header byte {pos}"
            elif lay.cq_offset <= pos < lay.cq_offset + lay.cq_entries * CQE_SIZE:
                assert (pos - lay.cq_offset) // CQE_SIZE in fresh, f"the host rewrote completion byte {pos}"
            elif pos >= lay.arena_offset:
                rel = pos - lay.arena_offset
                assert any(a <= rel < b for a, b in spans), f"the host wrote arena byte {rel} outside {spans}"
            else:
                raise AssertionError(f"the host wrote byte {pos} of the submission ring")

    def _check_pinned(self) -> None:
        """Outside the ranges handed out, the pinned area is as it started: zeros."""
        live = np.zeros(PINNED_SIZE, dtype=bool)
        allocator = self.pinned.allocator
        for start in range(0, PINNED_SIZE, 4096):
            found = allocator.find(self.client.owner, start, 0)
            if found is not None:
                live[found[0]:found[0] + found[1]] = True
        touched = np.frombuffer(_pinned, dtype=np.uint8) != 0
        assert not (touched & ~live).any(), "the host wrote the pinned area outside a live range"

    def _check_completions(self, served: list[tuple[int, int, bool]], cq_tail: int) -> None:
        lay = self.layout
        written = (self.server.cq.index - cq_tail) & 0xFFFF_FFFF
        slots = [lay.cq_offset + ((cq_tail + i) & (lay.cq_entries - 1)) * CQE_SIZE for i in range(written)]
        completions = [decode_completion(_buf, slot) for slot in slots]
        assert all(c.status in STATUSES for c in completions), completions
        answered = [(c.seq, c.call_id) for c in completions if not c.flags & 1]
        assert answered == [(seq, call) for seq, call, waits in served if waits], (answered, served)


OPS = ("submit", "submit", "submit", "raw_entry", "scribble_arena", "place_image", "scribble_header",
       "consume_completions", "consume_completions", "inject", "drain", "drain", "drain")


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    guest = Guest(fdp)
    try:
        for _ in range(48):
            if not fdp.remaining_bytes():
                break
            op = OPS[fdp.ConsumeIntInRange(0, len(OPS) - 1)]
            if op == "drain":
                if not guest.drain():
                    return
            else:
                getattr(guest, op)()
        guest.drain()
    finally:
        guest.close()


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
