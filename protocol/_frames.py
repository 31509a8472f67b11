"""Submission and completion entries, and where their payloads may lie.

Submission entry (SQE, 192 bytes)::

    0   u32 seq        guest's sequence number, echoed in the completion
    4   u16 call_id    catalog number of the call
    6   u16 flags      SubmitFlags
    8   u32 in_off     input payload: arena-relative offset …
    12  u32 in_len     … and length (0: none)
    16  u32 out_off    output payload area: arena-relative offset …
    20  u32 out_cap    … and capacity (0: none)
    24  u32 args_len   bytes of ``args`` the call's argument struct uses
    28  u32 reserved   must be 0
    32  u8  args[160]  the call's packed argument struct (protocol/_wire.py layout)

A malformed header (unknown flag bits, a non-zero ``reserved``, ``args_len`` past 160) spoils that
entry only: :class:`MalformedSubmissionError` carries the fields the host still echoes (``seq``,
``call_id``, ``flags``), and the entry is answered ``CUDA_ERROR_INVALID_VALUE`` like any other bad
call. Only a buffer too short to hold an entry (never a ring slot) has nothing to answer.

Completion entry (CQE, 64 bytes)::

    0   u32 seq        the submission's seq
    4   u16 call_id    the submission's call id
    6   u16 flags      CompleteFlags
    8   u32 status     CUresult (cublasStatus_t for cuBLAS calls)
    12  u32 out_len    bytes written to the output payload area
    16  u8  results[48] the call's packed result struct
"""

from __future__ import annotations

import struct
from enum import IntFlag
from typing import Final, NamedTuple

from ._errors import LocalProtocolError, RemoteProtocolError
from ._status import CUresult

__all__ = [
    "CQE_HEADER",
    "MAX_INLINE_ARGS",
    "MAX_INLINE_RESULTS",
    "SQE_HEADER",
    "CompleteFlags",
    "Completion",
    "MalformedSubmissionError",
    "SubmitFlags",
    "Submission",
    "check_payloads",
    "decode_completion",
    "decode_submission",
    "encode_completion",
    "encode_submission",
    "plan_chunks",
]

SQE_HEADER: Final = struct.Struct("<IHHIIIIII")
CQE_HEADER: Final = struct.Struct("<IHHII")
MAX_INLINE_ARGS: Final = 160
MAX_INLINE_RESULTS: Final = 48
assert SQE_HEADER.size + MAX_INLINE_ARGS == 192
assert CQE_HEADER.size + MAX_INLINE_RESULTS == 64


class SubmitFlags(IntFlag):
    ASYNC = 1 << 0  # post without waiting: no completion unless it fails
    CHUNK_MORE = 1 << 1  # one chunk of a larger copy; more chunks of the same copy follow


class CompleteFlags(IntFlag):
    ASYNC_ERROR = 1 << 0  # reports the failure of an ASYNC submission (its seq), nothing waits on it
    LATCHED = 1 << 1  # status is an earlier asynchronous error, reported at this synchronizing call


_SUBMIT_FLAGS: Final = int(SubmitFlags.ASYNC | SubmitFlags.CHUNK_MORE)
_COMPLETE_FLAGS: Final = int(CompleteFlags.ASYNC_ERROR | CompleteFlags.LATCHED)


class Submission(NamedTuple):
    """One decoded SQE. A named tuple: built once per frame, and a frozen dataclass's
    ``object.__setattr__`` per field cost 1.5 µs of the host's per-call budget."""

    seq: int
    call_id: int
    flags: int  # SubmitFlags bits (a plain int: building an IntFlag per frame costs a microsecond)
    in_off: int
    in_len: int
    out_off: int
    out_cap: int
    args: bytes


class MalformedSubmissionError(RemoteProtocolError):
    """An entry whose header is malformed: it fails alone (``CUDA_ERROR_INVALID_VALUE``), the ring goes on.

    ``entry`` holds what the host can still answer it by: ``seq`` and ``call_id`` to echo, ``flags``
    as written (its ``ASYNC`` bit says how the failure is reported), the payload fields, no arguments.
    """

    def __init__(self, message: str, entry: Submission) -> None:
        super().__init__(message, CUresult.CUDA_ERROR_INVALID_VALUE)
        self.entry = entry


class Completion(NamedTuple):
    seq: int
    call_id: int
    flags: int  # CompleteFlags bits
    status: int
    out_len: int
    results: bytes


def encode_submission(
    buf: memoryview | bytearray, offset: int, *, seq: int, call_id: int, args: bytes = b"",
    flags: int = 0, in_off: int = 0, in_len: int = 0, out_off: int = 0, out_cap: int = 0,
) -> None:
    """Write one SQE at ``offset`` of ``buf``."""
    if len(args) > MAX_INLINE_ARGS:
        raise LocalProtocolError(f"{len(args)} bytes of arguments exceed {MAX_INLINE_ARGS}")
    try:
        SQE_HEADER.pack_into(buf, offset, seq, call_id, flags, in_off, in_len, out_off, out_cap,
                             len(args), 0)
    except struct.error as exc:
        raise LocalProtocolError(f"cannot encode submission {seq}: {exc}") from exc
    start = offset + SQE_HEADER.size
    buf[start:start + len(args)] = args


def decode_submission(buf: memoryview | bytes | bytearray, offset: int = 0) -> Submission:
    """Read one SQE; raises :class:`MalformedSubmissionError` for a malformed header (that entry
    fails alone) and :class:`RemoteProtocolError` for a buffer too short to hold an entry."""
    try:
        seq, call_id, flags, in_off, in_len, out_off, out_cap, args_len, reserved = (
            SQE_HEADER.unpack_from(buf, offset))
    except struct.error as exc:
        raise RemoteProtocolError(f"truncated submission entry: {exc}") from exc
    if reserved or flags & ~_SUBMIT_FLAGS or args_len > MAX_INLINE_ARGS:
        if reserved:
            why = f"reserved word is {reserved:#x}, must be 0"
        elif flags & ~_SUBMIT_FLAGS:
            why = f"unknown flag bits {flags & ~_SUBMIT_FLAGS:#x}"
        else:
            why = f"args_len {args_len} > {MAX_INLINE_ARGS}"
        raise MalformedSubmissionError(
            f"submission {seq}: {why}",
            Submission(seq, call_id, flags, in_off, in_len, out_off, out_cap, b""))
    start = offset + SQE_HEADER.size
    args = bytes(buf[start:start + args_len])
    if len(args) != args_len:
        raise RemoteProtocolError(f"submission {seq}: entry truncated inside its arguments")
    return Submission(seq, call_id, flags, in_off, in_len, out_off, out_cap, args)


def encode_completion(
    buf: memoryview | bytearray, offset: int, *, seq: int, call_id: int, status: int,
    results: bytes = b"", out_len: int = 0, flags: int = 0,
) -> None:
    if len(results) > MAX_INLINE_RESULTS:
        raise LocalProtocolError(f"{len(results)} bytes of results exceed {MAX_INLINE_RESULTS}")
    try:
        CQE_HEADER.pack_into(buf, offset, seq, call_id, flags, status, out_len)
    except struct.error as exc:
        raise LocalProtocolError(f"cannot encode completion {seq}: {exc}") from exc
    start = offset + CQE_HEADER.size
    buf[start:start + MAX_INLINE_RESULTS] = results.ljust(MAX_INLINE_RESULTS, b"\0")


def decode_completion(buf: memoryview | bytes | bytearray, offset: int = 0) -> Completion:
    """Read one CQE (the guest's side; the host is trusted, but the bytes are checked anyway)."""
    try:
        seq, call_id, flags, status, out_len = CQE_HEADER.unpack_from(buf, offset)
    except struct.error as exc:
        raise RemoteProtocolError(f"truncated completion entry: {exc}") from exc
    start = offset + CQE_HEADER.size
    results = bytes(buf[start:start + MAX_INLINE_RESULTS])
    if len(results) != MAX_INLINE_RESULTS:
        raise RemoteProtocolError("completion entry truncated inside its results")
    return Completion(seq, call_id, flags & _COMPLETE_FLAGS, status, out_len, results)


def check_payloads(sub: Submission, arena_size: int) -> None:
    """Refuse payload areas that leave the arena or overlap each other."""
    in_off, in_len, out_off, out_cap = sub[3], sub[4], sub[5], sub[6]
    inside_in = not in_len or (in_off < arena_size and in_len <= arena_size - in_off)
    inside_out = not out_cap or (out_off < arena_size and out_cap <= arena_size - out_off)
    if inside_in and inside_out and not (
            in_len and out_cap and in_off < out_off + out_cap and out_off < in_off + in_len):
        return  # every well-formed call: one pass of comparisons, nothing built
    for name, off, length, inside in (("input", in_off, in_len, inside_in),
                                      ("output", out_off, out_cap, inside_out)):
        if not inside:
            raise RemoteProtocolError(
                f"submission {sub.seq}: {name} payload [{off}, +{length}) leaves the "
                f"{arena_size}-byte arena", CUresult.CUDA_ERROR_INVALID_VALUE)
    raise RemoteProtocolError(
        f"submission {sub.seq}: input {(in_off, in_off + in_len)} and output {(out_off, out_off + out_cap)} "
        "payloads overlap", CUresult.CUDA_ERROR_INVALID_VALUE)


def plan_chunks(total: int, chunk: int) -> list[tuple[int, int]]:
    """Split a copy of ``total`` bytes into ``(offset, length)`` chunks of at most ``chunk`` bytes.

    Every chunk but the last is submitted with ``CHUNK_MORE``; see docs/protocol.md.
    """
    if chunk <= 0:
        raise LocalProtocolError(f"chunk size {chunk} must be positive")
    if total < 0:
        raise LocalProtocolError(f"copy size {total} must not be negative")
    return [(off, min(chunk, total - off)) for off in range(0, total, chunk)] or [(0, 0)]
