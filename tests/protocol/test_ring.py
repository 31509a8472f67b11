"""Ring bookkeeping in one process: order, full and empty rings, u32 wraparound, impossible indices."""

from __future__ import annotations

import struct

import pytest

from protocol import (
    ChannelField,
    CompletionConsumer,
    CompletionProducer,
    CUresult,
    Region,
    RemoteProtocolError,
    SubmissionConsumer,
    SubmissionProducer,
    lay_out_channel,
)

ENTRIES = 16


def region(**indices: int) -> Region:
    """A fresh region with 16-entry rings; ``indices`` (e.g. SQ_TAIL=…) preset in the header."""
    buf = bytearray(1 << 20)
    lay_out_channel(buf, vm_id=1, sq_entries=ENTRIES, cq_entries=ENTRIES)
    for name, value in indices.items():
        struct.pack_into("<I", buf, ChannelField[name], value)
    return Region(memoryview(buf))


def test_submissions_come_out_in_order_and_the_head_frees_space() -> None:
    reg = region()
    guest, host = SubmissionProducer(reg), SubmissionConsumer(reg)
    assert host.pending() == 0
    for seq in range(ENTRIES):
        assert guest.push(seq=seq, call_id=1, args=seq.to_bytes(8, "little"))
    assert guest.space() == 0
    assert not guest.push(seq=99, call_id=1), "a full ring refuses the entry"
    assert host.pending() == ENTRIES
    assert [host.read(i).seq for i in range(ENTRIES)] == list(range(ENTRIES))
    host.advance(3)
    assert guest.consumed == 3
    assert guest.space() == 3
    assert guest.push(seq=16, call_id=1)
    assert host.pending() == ENTRIES - 3 + 1
    assert host.read(ENTRIES - 3).seq == 16, "the 17th entry reuses slot 0"
    assert guest.slot_offset(16) == guest.slot_offset(0)


def test_indices_are_published_to_their_header_words() -> None:
    reg = region()
    guest, host = SubmissionProducer(reg), SubmissionConsumer(reg)
    cq_host, cq_guest = CompletionProducer(reg), CompletionConsumer(reg)
    guest.push(seq=1, call_id=1)
    guest.push(seq=2, call_id=1)
    host.advance()
    cq_host.push(seq=1, call_id=1, status=0)
    assert reg.u32(ChannelField.SQ_TAIL) == 2
    assert reg.u32(ChannelField.SQ_HEAD) == 1
    assert reg.u32(ChannelField.CQ_TAIL) == 1
    cq_guest.pop()
    assert reg.u32(ChannelField.CQ_HEAD) == 1


def test_completions_round_trip_and_a_full_completion_ring_refuses_more() -> None:
    reg = region()
    host, guest = CompletionProducer(reg), CompletionConsumer(reg)
    for seq in range(ENTRIES):
        assert host.push(seq=seq, call_id=0x30, status=seq, results=seq.to_bytes(8, "little"), out_len=seq)
    assert host.space() == 0
    assert not host.push(seq=99, call_id=1, status=0)
    popped = [guest.pop() for _ in range(guest.pending())]
    assert [c.seq for c in popped] == list(range(ENTRIES))
    assert [c.status for c in popped] == list(range(ENTRIES))
    assert popped[5].results[:8] == (5).to_bytes(8, "little")
    assert host.space() == ENTRIES


@pytest.mark.parametrize("start", [0xFFFF_FFF0, 0xFFFF_FFFF, 0x7FFF_FFF8])
def test_free_running_indices_wrap_through_two_to_the_32(start: int) -> None:
    reg = region(SQ_TAIL=start, SQ_HEAD=start, CQ_TAIL=start, CQ_HEAD=start)
    guest, host = SubmissionProducer(reg), SubmissionConsumer(reg)
    cq_host, cq_guest = CompletionProducer(reg), CompletionConsumer(reg)
    seen = []
    for seq in range(5 * ENTRIES):
        assert guest.push(seq=seq, call_id=1)
        if seq % 3 == 2:  # let a few pile up so pending counts straddle the wrap
            while host.pending():
                sub = host.read()
                host.advance()
                assert cq_host.push(seq=sub.seq, call_id=1, status=0)
            while cq_guest.pending():
                seen.append(cq_guest.pop().seq)
    while host.pending():
        sub = host.read()
        host.advance()
        cq_host.push(seq=sub.seq, call_id=1, status=0)
    seen += [cq_guest.pop().seq for _ in range(cq_guest.pending())]
    assert seen == list(range(5 * ENTRIES))
    assert reg.u32(ChannelField.SQ_TAIL) == (start + 5 * ENTRIES) & 0xFFFF_FFFF
    assert reg.u32(ChannelField.CQ_HEAD) == (start + 5 * ENTRIES) & 0xFFFF_FFFF


def test_a_full_ring_across_the_wrap_is_full_not_empty() -> None:
    reg = region(SQ_TAIL=0xFFFF_FFF8, SQ_HEAD=0xFFFF_FFF8)
    guest, host = SubmissionProducer(reg), SubmissionConsumer(reg)
    for seq in range(ENTRIES):
        assert guest.push(seq=seq, call_id=1)
    assert reg.u32(ChannelField.SQ_TAIL) == 8
    assert host.pending() == ENTRIES
    assert guest.space() == 0


@pytest.mark.parametrize(
    ("tail", "why"),
    [
        (ENTRIES + 1, "jumped past the ring"),
        (1000, "jumped far ahead"),
        (0xFFFF_FFFF, "went backwards by one"),
        (0x8000_0000, "half the index space away"),
    ],
)
def test_an_impossible_submission_tail_is_a_protocol_error(tail: int, why: str) -> None:
    reg = region()
    host = SubmissionConsumer(reg)
    reg.set_u32(ChannelField.SQ_TAIL, tail)
    with pytest.raises(RemoteProtocolError) as info:
        host.pending()
    assert f"submission tail {tail}" in info.value.message, why
    assert "jumped or went backwards" in info.value.message
    assert info.value.status == CUresult.CUDA_ERROR_ILLEGAL_STATE


def test_a_submission_tail_going_backwards_after_progress_is_a_protocol_error() -> None:
    reg = region()
    guest, host = SubmissionProducer(reg), SubmissionConsumer(reg)
    for seq in range(4):
        guest.push(seq=seq, call_id=1)
    host.advance(4)
    reg.set_u32(ChannelField.SQ_TAIL, 2)  # a guest rewinding its tail below the host's head
    with pytest.raises(RemoteProtocolError, match="submission tail 2 is 4294967294 entries past head 4"):
        host.pending()


def test_an_impossible_completion_head_is_a_protocol_error_for_the_host() -> None:
    reg = region()
    host = CompletionProducer(reg)
    host.push(seq=1, call_id=1, status=0)
    reg.set_u32(ChannelField.CQ_HEAD, 5)  # the guest claims to have consumed entries never posted
    with pytest.raises(RemoteProtocolError, match="completion head 5 is 4294967292 entries behind tail 1"):
        host.space()


def test_an_impossible_completion_tail_is_a_protocol_error_for_the_guest() -> None:
    reg = region()
    guest = CompletionConsumer(reg)
    reg.set_u32(ChannelField.CQ_TAIL, ENTRIES + 1)
    with pytest.raises(RemoteProtocolError, match="completion tail 17 jumped past head 0"):
        guest.pending()


def test_the_host_never_trusts_the_guest_copy_of_its_own_head() -> None:
    """A guest scribbling on sq_head hurts only itself: the host keeps its index privately."""
    reg = region()
    guest, host = SubmissionProducer(reg), SubmissionConsumer(reg)
    guest.push(seq=1, call_id=1)
    guest.push(seq=2, call_id=1)
    reg.set_u32(ChannelField.SQ_HEAD, 2)  # the guest pretends the host consumed both
    assert host.pending() == 2
    assert host.read().seq == 1
    host.advance()
    assert reg.u32(ChannelField.SQ_HEAD) == 1, "the host rewrites its real head"


def test_sides_resume_from_the_indices_in_the_header() -> None:
    reg = region(SQ_TAIL=7, SQ_HEAD=5, CQ_TAIL=3, CQ_HEAD=3)
    assert SubmissionProducer(reg).index == 7
    assert SubmissionConsumer(reg).pending() == 2
    assert CompletionProducer(reg).space() == ENTRIES
    assert CompletionConsumer(reg).pending() == 0
