"""The ring server's own limits, over a real mapping in one process (sans I/O): a full completion ring
stops a drain before the entry that needs room (back-pressure, nothing dropped), slow calls end a
drain early so the worker can beat, and a malformed entry is answered by its own seq."""

from __future__ import annotations

from collections.abc import Iterator
from time import perf_counter_ns

import pytest

from executor import CallIO
from mediator._server import BATCH_NS
from protocol import CALLS_BY_NAME, CompleteFlags, CUresult, SubmitFlags, WireModel, encode_args

from ._ring_pair import RingPair

NOP = CALLS_BY_NAME["nop"].call_id
MEMSET = CALLS_BY_NAME["memset_d8"]


@pytest.fixture
def pair() -> Iterator[RingPair]:
    ring = RingPair()
    yield ring
    ring.close()


def post(pair: RingPair, call_id: int = NOP, args: bytes = b"", flags: int = 0) -> int:
    pair.seq += 1
    assert pair.sq.push(seq=pair.seq, call_id=call_id, args=args, flags=flags)
    return pair.seq


def test_a_full_completion_ring_holds_back_only_the_entries_that_need_room(pair: RingPair) -> None:
    entries = pair.region.layout.cq_entries
    allocated = pair.call("mem_alloc", bytesize=64).result
    assert allocated is not None
    memset = encode_args(MEMSET.args.model_validate(
        {"dst": allocated.model_dump()["dptr"], "count": 64, "value": 1, "stream": 0}))
    answered = [post(pair) for _ in range(entries)]
    assert pair.server.drain() == entries and not pair.server.cq_blocked  # the ring is full now
    posted = post(pair, MEMSET.call_id, memset, int(SubmitFlags.ASYNC))  # needs no completion: served
    waiting = post(pair)
    assert pair.server.drain() == 1 and pair.server.cq_blocked
    assert pair.sq.space() == pair.region.layout.sq_entries - 1, "the held entry stays in the ring"
    assert pair.server.drain() == 0 and pair.server.cq_blocked, "nothing overwritten, however often asked"
    assert [pair.cq.pop().seq for _ in range(entries)] == answered
    assert pair.server.drain() == 1 and not pair.server.cq_blocked
    assert pair.cq.pop().seq == waiting and posted == waiting - 1
    assert pair.counters.calls == entries + 3 and pair.counters.errors == 0


def test_slow_calls_end_a_drain_early_whatever_its_budget(pair: RingPair) -> None:
    def slow(_args: WireModel, _io: CallIO) -> WireModel:  # a call that keeps the CPU 0.6 BATCH_NS
        until = perf_counter_ns() + BATCH_NS * 6 // 10
        while perf_counter_ns() < until:
            pass
        return CALLS_BY_NAME["nop"].result()

    pair.server._calls[NOP].handler = slow
    seqs = [post(pair) for _ in range(5)]
    assert pair.server.drain(256) == 2, "a drain returns once its calls took BATCH_NS"
    assert pair.server.drain(256) == 2
    assert pair.server.drain(256) == 1
    assert [pair.cq.pop().seq for _ in seqs] == seqs


@pytest.mark.parametrize(("flags", "why"), [(0x4, "an unknown flag bit"), (0xFFFE, "every flag bit but ASYNC"),
                                            (int(SubmitFlags.CHUNK_MORE), "CHUNK_MORE on a nop")])
def test_a_malformed_entry_is_answered_by_its_seq_and_the_ring_goes_on(pair: RingPair, flags: int, why: str) -> None:
    bad = post(pair, flags=flags)
    good = post(pair)
    assert pair.server.drain() == 2
    first, second = pair.cq.pop(), pair.cq.pop()
    assert (first.seq, first.call_id, first.status) == (bad, NOP, CUresult.CUDA_ERROR_INVALID_VALUE), why
    assert (second.seq, second.status) == (good, 0)
    assert (pair.counters.protocol_errors, pair.counters.errors) == (1, 1)


def test_a_malformed_async_entry_is_reported_and_latched(pair: RingPair) -> None:
    bad = post(pair, flags=int(SubmitFlags.ASYNC) | 0x8)
    assert pair.server.drain() == 1
    report = pair.cq.pop()
    assert (report.seq, report.status, report.flags) == (bad, CUresult.CUDA_ERROR_INVALID_VALUE,
                                                         CompleteFlags.ASYNC_ERROR)
    sync = pair.call("ctx_synchronize")
    assert sync.status == CUresult.CUDA_ERROR_INVALID_VALUE and pair.server.latched == 0
