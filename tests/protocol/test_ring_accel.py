"""The C rings (protocol._cring) and the pure-Python rings behave identically, byte for byte.

Both implementations run the same random sequence of operations — pushes with in-range and
out-of-range fields, reads, advances, pops, and a guest scribbling on index words and slots — over
two copies of one region; every result, every exception (type and message, and the entry a malformed
one carries) and every byte of the region must agree after every step.
"""

from __future__ import annotations

import mmap
import os
import struct
import subprocess
import sys
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import (
    CQE_SIZE,
    SQE_SIZE,
    ChannelField,
    LocalProtocolError,
    MalformedSubmissionError,
    Region,
    RemoteProtocolError,
    _ring,
    lay_out_channel,
)

pytestmark = pytest.mark.skipif(not _ring.ACCELERATED, reason="protocol._cring is not built here")

ENTRIES = 8
SIZE = 1 << 18

C_SIDES = (_ring.SubmissionProducer, _ring.SubmissionConsumer, _ring.CompletionProducer,
           _ring.CompletionConsumer)
PY_SIDES = (_ring.PySubmissionProducer, _ring.PySubmissionConsumer, _ring.PyCompletionProducer,
            _ring.PyCompletionConsumer)


class Pair:
    """One region and its four ring sides, in one implementation."""

    def __init__(self, sides: tuple[type[Any], ...]) -> None:
        self.buf = bytearray(SIZE)
        lay_out_channel(self.buf, vm_id=1, sq_entries=ENTRIES, cq_entries=ENTRIES)
        self.region = Region(memoryview(self.buf))
        self.sqp, self.sqc, self.cqp, self.cqc = (side(self.region) for side in sides)

    def apply(self, op: tuple[Any, ...]) -> Any:
        name, *args = op
        try:
            if name == "sq_push":
                return self.sqp.push(**args[0])
            if name == "cq_push":
                return self.cqp.push(**args[0])
            if name == "read":
                return tuple(self.sqc.read(args[0]))
            if name == "advance":
                return self.sqc.advance(args[0])
            if name == "pop":
                return tuple(self.cqc.pop())
            if name == "pending":
                return self.sqc.pending(), self.cqc.pending()
            if name == "space":
                return self.sqp.space(), self.cqp.space(), self.sqp.consumed
            if name == "spin":
                return self.sqc.spin(args[0]), self.cqc.spin(args[0])
            if name == "scribble":
                offset, data = args
                self.buf[offset:offset + len(data)] = data
                return None
        except MalformedSubmissionError as exc:  # and what it carries to answer that entry by
            return type(exc).__name__, exc.message, int(exc.status), tuple(exc.entry)
        except (LocalProtocolError, RemoteProtocolError) as exc:
            return type(exc).__name__, exc.message, int(exc.status)
        raise AssertionError(name)


u32 = st.integers(0, 0xFFFF_FFFF)
field = st.one_of(u32, st.integers(-3, 3), st.just(1 << 40))  # mostly valid, sometimes not
sq_fields = st.fixed_dictionaries(
    {"seq": field, "call_id": st.one_of(st.integers(0, 0xFFFF), st.just(0x1_0000))},
    optional={"args": st.binary(max_size=170), "flags": st.integers(0, 4), "in_off": field, "in_len": u32,
              "out_off": u32, "out_cap": field})
cq_fields = st.fixed_dictionaries(
    {"seq": field, "call_id": st.integers(0, 0xFFFF), "status": field},
    optional={"results": st.binary(max_size=50), "out_len": u32, "flags": st.integers(0, 0xFFFF)})
index_words = st.sampled_from([ChannelField.SQ_TAIL, ChannelField.SQ_HEAD, ChannelField.CQ_TAIL,
                               ChannelField.CQ_HEAD])
scribble_index = st.tuples(st.just("scribble"), index_words, u32.map(lambda v: struct.pack("<I", v)))
scribble_slot = st.tuples(st.just("scribble"), st.integers(4096, 8192 + ENTRIES * CQE_SIZE - 8),  # both rings
                          st.binary(min_size=1, max_size=8))
ops = st.lists(st.one_of(
    st.tuples(st.just("sq_push"), sq_fields), st.tuples(st.just("cq_push"), cq_fields),
    st.tuples(st.just("read"), st.integers(0, ENTRIES)), st.tuples(st.just("advance"), st.integers(0, 3)),
    st.tuples(st.just("pop")), st.tuples(st.just("pending")), st.tuples(st.just("space")),
    st.tuples(st.just("spin"), st.integers(-1, 2000)), scribble_index, scribble_slot,
), max_size=60)


@settings(max_examples=400, deadline=None)
@given(ops)
def test_c_and_python_rings_agree_on_every_result_error_and_byte(sequence: list[tuple[Any, ...]]) -> None:
    c, py = Pair(C_SIDES), Pair(PY_SIDES)
    for step, op in enumerate(sequence):
        assert c.apply(op) == py.apply(op), (step, op)
        assert c.buf == py.buf, (step, op)
        assert [s.index for s in (c.sqp, c.sqc, c.cqp, c.cqc)] == [
            s.index for s in (py.sqp, py.sqc, py.cqp, py.cqc)], (step, op)


def test_entries_decode_to_the_same_named_tuples() -> None:
    c, py = Pair(C_SIDES), Pair(PY_SIDES)
    for pair in (c, py):
        pair.sqp.push(seq=7, call_id=0x32, args=b"abc", flags=1, in_off=64, in_len=5, out_off=128, out_cap=9)
        pair.cqp.push(seq=7, call_id=0x32, status=3, results=b"xy", out_len=2, flags=2)
    assert c.sqc.read() == py.sqc.read()
    assert type(c.sqc.read()) is type(py.sqc.read())
    assert c.sqc.read().args == b"abc" and c.sqc.read().in_len == 5
    popped = c.cqc.pop()
    assert popped == py.cqc.pop() and type(popped) is _ring.PyCompletionConsumer(py.region).pop().__class__
    assert popped.results == b"xy" + bytes(46)


@pytest.mark.parametrize(("word", "value"), [(1, 0x0004_0032), (1, 0x8001_0032), (7, 1), (6, 161)])
def test_a_malformed_entry_is_refused_alike_with_the_fields_that_answer_it(word: int, value: int) -> None:
    c, py = Pair(C_SIDES), Pair(PY_SIDES)
    for pair in (c, py):
        pair.sqp.push(seq=7, call_id=0x32, args=b"abc", in_off=64, in_len=5)
        pair.buf[4096 + 4 * word:4096 + 4 * word + 4] = struct.pack("<I", value)  # the guest rewrites it
    refusals = []
    for pair in (c, py):
        with pytest.raises(MalformedSubmissionError) as info:
            pair.sqc.read()
        refusals.append((info.value.message, tuple(info.value.entry)))
        pair.sqc.advance()  # the ring goes on past it
        assert pair.sqc.pending() == 0
    assert refusals[0] == refusals[1]
    assert refusals[0][1][:2] == (7, value & 0xFFFF if word == 1 else 0x32)


def test_a_released_region_leaves_c_sides_unusable_not_dangling() -> None:
    fd = os.memfd_create("released")
    os.ftruncate(fd, SIZE)
    mapping = mmap.mmap(fd, SIZE)
    lay_out_channel(memoryview(mapping), vm_id=1)
    region = Region(memoryview(mapping))
    sq = _ring.SubmissionProducer(region)
    region.release()
    mapping.close()  # possible only because the C side gave its export back
    os.close(fd)
    with pytest.raises(ValueError, match="released"):
        sq.push(seq=1, call_id=1)


def test_a_geometry_that_leaves_the_buffer_is_refused() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        _ring.SubmissionConsumer.__bases__[0](bytearray(8192), 4096, 256, SQE_SIZE, 256, 320)
    with pytest.raises(ValueError, match="does not fit"):
        _ring.CompletionConsumer.__bases__[0](bytearray(8192), 4096, 3, CQE_SIZE, 384, 448)


def test_spin_returns_when_the_other_process_publishes() -> None:
    """spin() waits without the GIL and sees an index another process stores."""
    fd = os.memfd_create("spin")
    os.ftruncate(fd, SIZE)
    mapping = mmap.mmap(fd, SIZE)
    lay_out_channel(memoryview(mapping), vm_id=1)
    region = Region(memoryview(mapping))
    host = _ring.SubmissionConsumer(region)
    guest = subprocess.Popen([sys.executable, "-c", (
        "import mmap, sys\n"
        "from protocol import Region, SubmissionProducer\n"
        "region = Region(memoryview(mmap.mmap(int(sys.argv[1]), 0)))\n"
        "SubmissionProducer(region).push(seq=5, call_id=1)\n"), str(fd)], pass_fds=(fd,))
    try:
        # Each spin lasts at most 50 ms and returns at once when it sees the CPU contended, so bound
        # the wait by time: the child needs a moment (seconds on a loaded machine) to start.
        pending = 0
        deadline = time.monotonic() + 60
        while not pending and time.monotonic() < deadline:
            pending = host.spin(50_000_000, 1_000_000)
        assert pending == 1 and host.read().seq == 5
    finally:
        guest.wait(30)
        region.release()
        mapping.close()
        os.close(fd)
