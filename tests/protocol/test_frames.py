"""Submission and completion entries, payload spans and the chunking rule."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import (
    CQE_SIZE,
    MAX_INLINE_ARGS,
    MAX_INLINE_RESULTS,
    SQE_SIZE,
    CompleteFlags,
    CUresult,
    LocalProtocolError,
    MalformedSubmissionError,
    RemoteProtocolError,
    Submission,
    SubmitFlags,
    check_payloads,
    decode_completion,
    decode_submission,
    encode_completion,
    encode_submission,
    plan_chunks,
)
from protocol._cheader import CQE_FIELDS, SQE_FIELDS, FrameField
from protocol._frames import CQE_HEADER, SQE_HEADER


def _format(fields: tuple[FrameField, ...]) -> str:
    codes = {"uint16_t": "H", "uint32_t": "I"}
    return "<" + "".join(codes[f.ctype] for f in fields if f.count == 1)


def test_frame_field_tables_agree_with_the_codec_structs() -> None:
    assert _format(SQE_FIELDS) == SQE_HEADER.format
    assert _format(CQE_FIELDS) == CQE_HEADER.format
    for fields, size in ((SQE_FIELDS, SQE_SIZE), (CQE_FIELDS, CQE_SIZE)):
        offset = 0
        for f in fields:
            assert f.offset == offset, f.name
            offset += f.size
        assert offset == size
    assert SQE_FIELDS[-1].count == MAX_INLINE_ARGS
    assert CQE_FIELDS[-1].count == MAX_INLINE_RESULTS


def test_submission_round_trip_at_an_offset() -> None:
    buf = bytearray(3 * SQE_SIZE)
    encode_submission(buf, SQE_SIZE, seq=0xFFFF_FFFF, call_id=0x35, args=b"\x01" * 16,
                      flags=SubmitFlags.ASYNC | SubmitFlags.CHUNK_MORE, in_off=64, in_len=4096,
                      out_off=8192, out_cap=128)
    assert buf[:SQE_SIZE] == bytes(SQE_SIZE) and buf[2 * SQE_SIZE:] == bytes(SQE_SIZE)
    sub = decode_submission(buf, SQE_SIZE)
    assert sub == Submission(0xFFFF_FFFF, 0x35, SubmitFlags.ASYNC | SubmitFlags.CHUNK_MORE,
                             64, 4096, 8192, 128, b"\x01" * 16)


def test_completion_round_trip_zero_fills_the_results() -> None:
    buf = bytearray(b"\xff" * CQE_SIZE)
    encode_completion(buf, 0, seq=3, call_id=0x30, status=2, results=b"\x08" * 8, out_len=5,
                      flags=CompleteFlags.LATCHED)
    completion = decode_completion(buf)
    assert (completion.seq, completion.call_id, completion.status, completion.out_len) == (3, 0x30, 2, 5)
    assert completion.flags == CompleteFlags.LATCHED
    assert completion.results == b"\x08" * 8 + bytes(MAX_INLINE_RESULTS - 8)


def test_a_guest_ignores_completion_flag_bits_it_does_not_know() -> None:
    buf = bytearray(CQE_SIZE)
    encode_completion(buf, 0, seq=1, call_id=1, status=0, flags=0xFFFF)
    assert decode_completion(buf).flags == CompleteFlags.ASYNC_ERROR | CompleteFlags.LATCHED


def _sqe(**fields: int) -> bytearray:
    buf = bytearray(SQE_SIZE)
    values = {"seq": 9, "call_id": 1, "flags": 0, "in_off": 0, "in_len": 0, "out_off": 0, "out_cap": 0,
              "args_len": 0, "reserved": 0} | fields
    SQE_HEADER.pack_into(buf, 0, *values.values())
    return buf


@pytest.mark.parametrize(
    ("raw", "complaint"),
    [
        (_sqe(reserved=1), "submission 9: reserved word is 0x1, must be 0"),
        (_sqe(flags=0x8004), "submission 9: unknown flag bits 0x8004"),
        (_sqe(flags=0x8005, reserved=2), "submission 9: reserved word is 0x2, must be 0"),
        (_sqe(args_len=161), "submission 9: args_len 161 > 160"),
        (_sqe(args_len=0xFFFF_FFFF), "args_len 4294967295 > 160"),
    ],
)
def test_a_malformed_header_fails_that_entry_and_keeps_what_answers_it(raw: bytes, complaint: str) -> None:
    with pytest.raises(MalformedSubmissionError) as info:
        decode_submission(raw)
    assert complaint in info.value.message
    assert info.value.status == CUresult.CUDA_ERROR_INVALID_VALUE
    seq, call_id, flags, in_off, in_len, out_off, out_cap, _, _ = SQE_HEADER.unpack_from(raw)
    assert info.value.entry == Submission(seq, call_id, flags, in_off, in_len, out_off, out_cap, b""), \
        "echoed as written, without arguments"


@pytest.mark.parametrize(
    ("raw", "complaint"),
    [
        (_sqe(args_len=16)[:40], "submission 9: entry truncated inside its arguments"),
        (bytes(20), "truncated submission entry"),
    ],
)
def test_a_buffer_too_short_for_an_entry_has_nothing_to_answer(raw: bytes, complaint: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        decode_submission(raw)
    assert not isinstance(info.value, MalformedSubmissionError)
    assert complaint in info.value.message


def test_decode_completion_refuses_truncated_entries() -> None:
    with pytest.raises(RemoteProtocolError, match="truncated completion entry"):
        decode_completion(bytes(10))
    with pytest.raises(RemoteProtocolError, match="truncated inside its results"):
        decode_completion(bytes(CQE_SIZE - 1))


def test_encoding_what_does_not_fit_is_our_bug() -> None:
    with pytest.raises(LocalProtocolError, match="161 bytes of arguments exceed 160"):
        encode_submission(bytearray(SQE_SIZE), 0, seq=1, call_id=1, args=bytes(161))
    with pytest.raises(LocalProtocolError, match="49 bytes of results exceed 48"):
        encode_completion(bytearray(CQE_SIZE), 0, seq=1, call_id=1, status=0, results=bytes(49))
    with pytest.raises(LocalProtocolError, match="cannot encode submission -1"):
        encode_submission(bytearray(SQE_SIZE), 0, seq=-1, call_id=1)
    with pytest.raises(LocalProtocolError, match="cannot encode submission 1"):
        encode_submission(bytearray(SQE_SIZE), 0, seq=1, call_id=0x1_0000)
    with pytest.raises(LocalProtocolError, match="cannot encode completion 1"):
        encode_completion(bytearray(CQE_SIZE), 0, seq=1, call_id=1, status=-1)
    with pytest.raises(LocalProtocolError):
        encode_submission(bytearray(8), 0, seq=1, call_id=1)


ARENA = 1 << 20


def _sub(in_off: int = 0, in_len: int = 0, out_off: int = 0, out_cap: int = 0) -> Submission:
    return Submission(5, 0x35, SubmitFlags(0), in_off, in_len, out_off, out_cap, b"")


@pytest.mark.parametrize(
    "sub",
    [
        _sub(),
        _sub(in_off=0, in_len=ARENA),
        _sub(in_off=ARENA - 1, in_len=1),
        _sub(in_off=0, in_len=64, out_off=64, out_cap=64),  # adjacent is not overlapping
        _sub(in_off=ARENA * 4, in_len=0, out_off=0xFFFF_FFFF, out_cap=0),  # empty spans are not looked at
    ],
)
def test_payload_spans_inside_the_arena_pass(sub: Submission) -> None:
    check_payloads(sub, ARENA)


@pytest.mark.parametrize(
    ("sub", "complaint"),
    [
        (_sub(in_off=ARENA, in_len=1), "input payload [1048576, +1) leaves the 1048576-byte arena"),
        (_sub(in_off=ARENA - 8, in_len=9), "input payload [1048568, +9) leaves"),
        (_sub(out_off=0xFFFF_FFF0, out_cap=0x20), "output payload [4294967280, +32) leaves"),
        (_sub(out_off=1, out_cap=ARENA), "output payload [1, +1048576) leaves"),
        (_sub(in_off=0, in_len=65, out_off=64, out_cap=64), "input (0, 65) and output (64, 128) payloads overlap"),
        (_sub(in_off=100, in_len=10, out_off=0, out_cap=1000), "payloads overlap"),
    ],
)
def test_payload_spans_that_leave_the_arena_or_overlap_are_refused(sub: Submission, complaint: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        check_payloads(sub, ARENA)
    assert complaint in info.value.message
    assert info.value.status == CUresult.CUDA_ERROR_INVALID_VALUE


@pytest.mark.parametrize(
    ("total", "chunk", "expected"),
    [
        (0, 10, [(0, 0)]),
        (5, 10, [(0, 5)]),
        (10, 10, [(0, 10)]),
        (25, 10, [(0, 10), (10, 10), (20, 5)]),
        (30, 10, [(0, 10), (10, 10), (20, 10)]),
    ],
)
def test_plan_chunks_table(total: int, chunk: int, expected: list[tuple[int, int]]) -> None:
    assert plan_chunks(total, chunk) == expected


def test_plan_chunks_refuses_nonsense() -> None:
    with pytest.raises(LocalProtocolError, match="chunk size 0 must be positive"):
        plan_chunks(10, 0)
    with pytest.raises(LocalProtocolError, match="copy size -1 must not be negative"):
        plan_chunks(-1, 10)


@given(total=st.integers(0, 1 << 40), chunk=st.integers(1, 1 << 32))
def test_chunks_tile_the_copy_in_order(total: int, chunk: int) -> None:
    chunks = plan_chunks(total, chunk) if total // chunk < 10_000 else plan_chunks(total, total)
    size = chunks[0][1] if len(chunks) > 1 else max(chunk, total)
    position = 0
    for i, (off, length) in enumerate(chunks):
        assert off == position
        assert length <= size
        if i < len(chunks) - 1:
            assert length == size, "every chunk but the last is full"
        position += length
    assert position == total
