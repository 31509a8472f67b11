"""Golden byte vectors: the exact bytes of a laid-out header and of a few frames.

Each vector is written out field by field, independently of the code under test; a change to any
layout breaks these tests before it breaks a guest.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from protocol import (
    CALLS_BY_NAME,
    HEADER_SIZE,
    MAX_INLINE_RESULTS,
    SQE_SIZE,
    CompleteFlags,
    CublasOperation,
    CublasStatus,
    CUresult,
    Features,
    SubmitFlags,
    decode_args,
    decode_call,
    decode_completion,
    decode_result,
    decode_submission,
    encode_args,
    encode_completion,
    encode_result,
    encode_submission,
    lay_out_channel,
    lay_out_region,
    validate_channel,
    validate_region,
)
from protocol.models import DevPtrResult, MemAllocArgs, SgemmArgs

DOCS = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def h(*fields: str) -> bytes:
    return bytes.fromhex("".join(fields))


# A 4 MiB region for VM 3 split into 3 channels, 2 doorbell vectors, a 500 ms lease, in epoch 2.
REGION_GOLDEN = h(
    "564750554d454400",  # 0   magic "VGPUMED\0"
    "0200", "0200",  # 8   version 2.2
    "00100000",  # 12  header_size 4096
    "0000400000000000",  # 16  region_size 4 MiB
    "1f00000000000000",  # 24  features: NEED_WAKEUP | ASYNC_CALLS | CHUNKED_COPY | GUEST_IRQ | CHANNELS
    "03000000",  # 32  vm_id 3
    "03000000",  # 36  channel_count 3
    "0050150000000000",  # 40  channel_size 1396736 ((4 MiB − 4096) / 3, rounded down to 4096)
    "0010000000000000",  # 48  channels_offset 4096
    "f4010000",  # 56  lease_ms 500
    "02000000",  # 60  vectors 2
    "0000000000000000",  # 64  pinned_offset 0: no pinned area
    "0000000000000000",  # 72  pinned_size 0
    "00" * 48,  # 80  reserved up to the host state line
    "01000000",  # 128 device_state READY
    "02000000",  # 132 epoch 2
    "00000000",  # 136 reserved
    "00000000",  # 140 host_peer_id 0
)

# Channel 2 of a 1 MiB block for VM 3 with 64-entry rings, opened once (generation 1).
HEADER_GOLDEN = h(
    "5647505543484e00",  # 0   magic "VGPUCHN\0"
    "0200", "0200",  # 8   version 2.2
    "00100000",  # 12  header_size 4096
    "0000100000000000",  # 16  region_size: the block, 1 MiB
    "1f00000000000000",  # 24  features
    "03000000",  # 32  vm_id 3
    "40000000", "40000000",  # 36  sq_entries 64, cq_entries 64
    "c0000000", "40000000",  # 44  sqe_size 192, cqe_size 64
    "a0000000",  # 52  max_inline_args 160
    "0010000000000000",  # 56  sq_offset 4096
    "0040000000000000",  # 64  cq_offset 16384 (4096 + 64 × 192, rounded up to 4096)
    "0050000000000000",  # 72  arena_offset 20480 (16384 + 64 × 64, rounded up to 4096)
    "00b00f0000000000",  # 80  arena_size 1028096 (the rest of the block)
    "02000000",  # 88  channel_index 2
    "00" * 36,  # 92  reserved up to the host state line
    "01000000",  # 128 channel_state OPEN
    "01000000",  # 132 generation 1
)

MEM_ALLOC_SQE = h(
    "07000000",  # seq 7
    "3000",  # call_id 0x0030 mem_alloc
    "0000",  # flags: none (synchronous)
    "00000000", "00000000",  # no input payload
    "00000000", "00000000",  # no output area
    "08000000",  # args_len 8
    "00000000",  # reserved
    "0000100000000000",  # args: bytesize = 1 MiB
) + bytes(SQE_SIZE - 40)

SGEMM_ARGS = h(
    "01000000",  # 0  handle 1
    "00000000",  # 4  transa CUBLAS_OP_N
    "01000000",  # 8  transb CUBLAS_OP_T
    "02000000", "03000000", "04000000",  # 12 m 2, n 3, k 4
    "0000803f",  # 24 alpha 1.0f
    "00000000",  # 28 padding
    "00000000007f0000",  # 32 a 0x7f0000000000
    "02000000", "00000000",  # 40 lda 2, padding
    "00100000007f0000",  # 48 b 0x7f0000001000
    "03000000",  # 56 ldb 3
    "0000003f",  # 60 beta 0.5f
    "00200000007f0000",  # 64 c 0x7f0000002000
    "02000000", "00000000",  # 72 ldc 2, padding
)

SGEMM_SQE = h(
    "2a000000",  # seq 42
    "8400",  # call_id 0x0084 cublas_sgemm
    "0100",  # flags ASYNC
    "00000000" * 4,  # no payloads
    "50000000",  # args_len 80
    "00000000",  # reserved
) + SGEMM_ARGS + bytes(SQE_SIZE - 32 - 80)

MEM_ALLOC_CQE = h(
    "07000000",  # seq 7
    "3000",  # call_id mem_alloc
    "0000",  # flags none
    "00000000",  # status CUDA_SUCCESS
    "00000000",  # out_len 0
    "00002000007f0000",  # results: dptr 0x7f0000200000
) + bytes(MAX_INLINE_RESULTS - 8)

SGEMM_ASYNC_ERROR_CQE = h(
    "2a000000", "8400",  # seq 42, cublas_sgemm
    "0100",  # flags ASYNC_ERROR
    "07000000",  # status CUBLAS_STATUS_INVALID_VALUE
    "00000000",  # out_len 0
) + bytes(MAX_INLINE_RESULTS)

LATCHED_SYNC_CQE = h(
    "2b000000", "5200",  # seq 43, stream_synchronize
    "0200",  # flags LATCHED
    "bc020000",  # status 700 CUDA_ERROR_ILLEGAL_ADDRESS (an earlier launch's)
    "00000000",
) + bytes(MAX_INLINE_RESULTS)

SGEMM_MODEL = SgemmArgs(
    handle=1, transa=CublasOperation.CUBLAS_OP_N, transb=CublasOperation.CUBLAS_OP_T, m=2, n=3, k=4,
    alpha=1.0, a=0x7F00_0000_0000, lda=2, b=0x7F00_0000_1000, ldb=3, beta=0.5, c=0x7F00_0000_2000, ldc=2,
)


def test_laid_out_region_header_matches_golden_bytes() -> None:
    region = bytearray(4 << 20)
    lay_out_region(region, vm_id=3, channels=3, vectors=2, lease_ms=500, epoch=2)
    assert bytes(region[:len(REGION_GOLDEN)]) == REGION_GOLDEN
    assert bytes(region[len(REGION_GOLDEN):HEADER_SIZE]) == bytes(HEADER_SIZE - len(REGION_GOLDEN))
    layout = validate_region(region)
    assert (layout.channel_count, layout.channel_size, layout.vectors, layout.lease_ms) == (3, 1396736, 2, 500)


def test_laid_out_region_with_a_pinned_area_matches_golden_bytes() -> None:
    """The pinned area is the region's last pinned_size bytes; the channels share what lies before it."""
    region = bytearray(4 << 20)
    lay_out_region(region, vm_id=3, channels=3, vectors=2, lease_ms=500, epoch=2, pinned_size=1 << 20)
    assert bytes(region[40:48]) == h("00f00f0000000000")  # channel_size 1044480 ((3 MiB − 4096) / 3, by 4096)
    assert bytes(region[64:80]) == h(
        "0000300000000000",  # 64  pinned_offset 3 MiB
        "0000100000000000",  # 72  pinned_size 1 MiB
    )
    layout = validate_region(region)
    assert (layout.pinned_offset, layout.pinned_size, layout.channel_size) == (3 << 20, 1 << 20, 1044480)


def test_laid_out_header_matches_golden_bytes() -> None:
    region = bytearray(1 << 20)
    lay_out_channel(region, vm_id=3, index=2, sq_entries=64, cq_entries=64, generation=1)
    assert bytes(region[:len(HEADER_GOLDEN)]) == HEADER_GOLDEN
    assert bytes(region[len(HEADER_GOLDEN):HEADER_SIZE]) == bytes(HEADER_SIZE - len(HEADER_GOLDEN)), (
        "need-wakeup flags, counters and every ring index start at zero")


def test_golden_header_validates_to_its_layout() -> None:
    region = bytearray(1 << 20)
    region[:len(HEADER_GOLDEN)] = HEADER_GOLDEN
    layout = validate_channel(region, index=2)
    assert (layout.vm_id, layout.sq_entries, layout.cq_entries, layout.channel_index) == (3, 64, 64, 2)
    assert (layout.sq_offset, layout.cq_offset, layout.arena_offset, layout.arena_size) == (
        4096, 16384, 20480, 1028096)
    assert layout.features == Features.NEED_WAKEUP | Features.ASYNC_CALLS | Features.CHUNKED_COPY | (
        Features.GUEST_IRQ | Features.CHANNELS)


def test_mem_alloc_submission_golden_both_ways() -> None:
    buf = bytearray(SQE_SIZE)
    encode_submission(buf, 0, seq=7, call_id=0x0030, args=encode_args(MemAllocArgs(bytesize=1 << 20)))
    assert bytes(buf) == MEM_ALLOC_SQE
    spec, args = decode_call(decode_submission(MEM_ALLOC_SQE))
    assert spec.name == "mem_alloc"
    assert args == MemAllocArgs(bytesize=1 << 20)


def test_sgemm_submission_golden_both_ways() -> None:
    assert encode_args(SGEMM_MODEL) == SGEMM_ARGS
    buf = bytearray(SQE_SIZE)
    encode_submission(buf, 0, seq=42, call_id=0x0084, flags=SubmitFlags.ASYNC, args=SGEMM_ARGS)
    assert bytes(buf) == SGEMM_SQE
    sub = decode_submission(SGEMM_SQE)
    assert sub.flags == SubmitFlags.ASYNC
    assert decode_call(sub) == (CALLS_BY_NAME["cublas_sgemm"], SGEMM_MODEL)


def test_completion_goldens_both_ways() -> None:
    mem_alloc = CALLS_BY_NAME["mem_alloc"]
    cases: list[tuple[bytes, dict[str, Any]]] = [
        (MEM_ALLOC_CQE, dict(seq=7, call_id=0x30, status=0,
                             results=encode_result(DevPtrResult(dptr=0x7F00_0020_0000)))),
        (SGEMM_ASYNC_ERROR_CQE, dict(seq=42, call_id=0x84, status=CublasStatus.CUBLAS_STATUS_INVALID_VALUE,
                                     flags=CompleteFlags.ASYNC_ERROR)),
        (LATCHED_SYNC_CQE, dict(seq=43, call_id=0x52, status=CUresult.CUDA_ERROR_ILLEGAL_ADDRESS,
                                flags=CompleteFlags.LATCHED)),
    ]
    for golden, fields in cases:
        buf = bytearray(64)
        encode_completion(buf, 0, **fields)
        assert bytes(buf) == golden
        completion = decode_completion(golden)
        assert (completion.seq, completion.call_id, completion.status) == (
            fields["seq"], fields["call_id"], fields["status"])
        assert completion.flags == fields.get("flags", 0)
    assert decode_result(mem_alloc, decode_completion(MEM_ALLOC_CQE).results) == DevPtrResult(
        dptr=0x7F00_0020_0000)


def test_decoded_golden_args_are_what_the_codec_reads_back() -> None:
    assert decode_args(CALLS_BY_NAME["cublas_sgemm"], SGEMM_ARGS) == SGEMM_MODEL


def test_the_documented_worked_example_is_the_golden_submission() -> None:
    text = DOCS.read_text(encoding="utf-8")
    match = re.search(r"Bytes: `([0-9a-f ]+)`", text)
    assert match is not None, "docs/protocol.md lost its worked example"
    documented = bytes.fromhex(match.group(1).replace(" ", ""))
    assert documented == MEM_ALLOC_SQE[:len(documented)]
    assert len(documented) == 40  # the header and the 8 bytes of arguments
