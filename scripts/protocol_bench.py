#!/usr/bin/env python3
"""The protocol's per-frame costs beside their floor, measured in the same run.

    .venv/bin/python scripts/protocol_bench.py [--frames N]

For each representative call: ``decode_submission`` + ``check_payloads`` + ``decode_call`` (the
host's whole decode and validation of one frame) against ``struct.unpack_from`` of the same 192 bytes
with the same header format (the floor: reading the bytes at all). For the ring: one
``SubmissionProducer.push`` + ``SubmissionConsumer.read``/``advance`` in one process, against a
``struct.pack_into`` + ``unpack_from`` of the same frame.
"""

from __future__ import annotations

import argparse
import mmap
import struct
import time
from collections.abc import Callable

from protocol import (
    CALLS_BY_NAME,
    SQE_SIZE,
    Region,
    SubmissionConsumer,
    SubmissionProducer,
    check_payloads,
    decode_call,
    decode_submission,
    encode_args,
    encode_submission,
    lay_out_channel,
)

ARENA = 1 << 20
EXAMPLES = {
    "nop": {},
    "mem_alloc": {"bytesize": 1 << 20},
    "memcpy_htod": {"dst": 0x7F00_0000_0000, "stream": 3},
    "launch_kernel": {"function": 2, "grid_x": 64, "grid_y": 1, "grid_z": 1, "block_x": 256, "block_y": 1,
                      "block_z": 1, "shared_mem_bytes": 0, "stream": 1},
    "cublas_gemm_ex": {"handle": 1, "transa": 0, "transb": 0, "m": 4096, "n": 32, "k": 4096, "alpha": 1.0,
                       "a": 0x7F00_0000_0000, "a_type": 2, "lda": 4096, "b": 0x7F00_1000_0000, "b_type": 2,
                       "ldb": 4096, "beta": 0.0, "c": 0x7F00_2000_0000, "c_type": 0, "ldc": 4096,
                       "compute_type": 68, "algo": -1},
}
HEADER = struct.Struct("<IHHIIIIII")  # the fixed fields of an SQE, as decode_submission reads them


def per_call(fn: Callable[[], object], n: int) -> float:
    """Best of three runs of ``n`` calls, in nanoseconds per call."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter_ns()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter_ns() - started) / n)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=100_000, help="frames per measurement")
    n = parser.parse_args().frames

    print(f"{'frame':<16} {'decode+validate':>16} {'floor unpack':>14} {'ratio':>7}")
    for name, values in EXAMPLES.items():
        spec = CALLS_BY_NAME[name]
        raw = bytearray(SQE_SIZE)
        in_len = 4096 if name in ("memcpy_htod", "launch_kernel") else 0
        encode_submission(raw, 0, seq=1, call_id=spec.call_id, args=encode_args(spec.args(**values)),
                          in_off=0, in_len=in_len)
        frame = bytes(raw)

        def decode(frame: bytes = frame) -> None:
            sub = decode_submission(frame)
            check_payloads(sub, ARENA)
            decode_call(sub)

        def floor(frame: bytes = frame) -> None:
            HEADER.unpack_from(frame, 0)

        cost, base = per_call(decode, n), per_call(floor, n)
        print(f"{name:<16} {cost:>13.0f} ns {base:>11.0f} ns {cost / base:>6.1f}×")

    buf = mmap.mmap(-1, 1 << 20)
    lay_out_channel(memoryview(buf), vm_id=1)
    region = Region(memoryview(buf))
    producer, consumer = SubmissionProducer(region), SubmissionConsumer(region)
    args = encode_args(CALLS_BY_NAME["mem_alloc"].args(bytesize=1 << 20))

    def ring() -> None:
        producer.push(seq=1, call_id=0x30, args=args)
        consumer.read()
        consumer.advance()

    scratch = bytearray(SQE_SIZE)

    def ring_floor() -> None:
        HEADER.pack_into(scratch, 0, 1, 0x30, 0, 0, 0, 0, 0, len(args), 0)
        scratch[32:32 + len(args)] = args
        HEADER.unpack_from(scratch, 0)

    cost, base = per_call(ring, n), per_call(ring_floor, n)
    print(f"{'ring push+pop':<16} {cost:>13.0f} ns {base:>11.0f} ns {cost / base:>6.1f}×")


if __name__ == "__main__":
    main()
