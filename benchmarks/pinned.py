"""Pinned copies (#19): ``cudaMemcpy`` from and to ``cudaMallocHost`` memory, which lives in the region's
pinned area, so the host copies straight between it and device memory — one copy — beside the same
run's in-process memcpy floor.

``python -m benchmarks.pinned [--quick] [--json PATH]`` starts a mediator (sim) and a Python guest and
prints, per size (4 KiB–256 MiB), host-to-device and device-to-host bandwidth two ways: one synchronous
copy (a call that waits), and bandwidthTest-style (``--batch`` asynchronous copies on a stream, then one
synchronize, as NVIDIA's bandwidthTest times its pinned mode). ``vgpu-bench --only pinned`` runs the same.

``--host`` measures the host's side alone, in one process with no guest and no worker loop: a ring server
over a real region drains ``HOST_BATCH`` queued asynchronous pinned copies, and the time per copy is set
beside the memcpy floor, with the C copy path (``mediator._pinned_fast``) and with it off (the Python
path, as where the extension is not built). That is the per-call cost #19 asks to bring under ~0.3 µs.
The same for staged (pageable) copies' host side, up to ``STAGED_MAX``: a payload in the arena copied
to device memory, or device memory into an output area.

The floor is as many back-to-back copies of the size as the batch being compared, timed in C
(``benchmarks._floors.memcpy_each_ns``): one ``numpy.copyto`` timed alone carries a microsecond of Python,
which made batched copies served in C look faster than memcpy below 1 MiB.
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from executor import CallIO, PinnedArea, SimExecutor
from guest import GuestClient, host_alloc, host_free, memcpy_dtoh_pinned, memcpy_htod_pinned
from mediator._launcher import running_mediator
from mediator._pinned_fast import ACCELERATED
from mediator._server import RingServer
from mediator._stats import WorkerCounters
from protocol import CALLS_BY_NAME, SubmissionProducer, SubmitFlags, encode_args, lay_out_channel
from protocol import Region as ChannelRegion

from ._floors import memcpy_each_ns, page_aligned

KIB, MIB = 1 << 10, 1 << 20
SIZES = [4 * KIB << (2 * i) for i in range(9)]  # 4 KiB .. 256 MiB
QUICK_SIZES = [4 * KIB, 64 * KIB, MIB, 16 * MIB]
#: bytes each bandwidthTest-style measurement moves at least (NVIDIA's sample copies its buffer
#: many times and divides); never fewer than 4 copies
BATCH_BYTES = 64 * MIB


def pinned_bandwidth(gpu: GuestClient, sizes: list[int], repeats: int = 5) -> list[dict[str, Any]]:
    """Per size: bytes per second of synchronous pinned copies each way, and of batches of
    asynchronous ones with one synchronize, beside the memcpy floor (an in-process copy between two
    page-aligned buffers); each the best of ``repeats`` rounds, every round measuring the floor and
    every copy in turn (the floor warm: the best of three back to back), so that a loaded machine
    weighs on the floor and the copies alike."""
    largest = max(sizes)
    buf = host_alloc(gpu, largest)
    try:
        data = np.frombuffer(buf.view, dtype=np.uint8)
        for start in range(0, largest, 8 * MIB):  # filled as an application fills it; in steps, so that
            data[start:start + 8 * MIB] = 0x5A    # our heartbeat thread gets the GIL between them
        del data
        dev = gpu.mem_alloc(largest)
    except BaseException:
        host_free(gpu, buf)
        raise
    stream = gpu.stream_create(1)
    floor_src, floor_dst = page_aligned(largest, 1), page_aligned(largest)  # once: no allocation between
    rows = []
    try:
        for size in sizes:
            batch = max(4, BATCH_BYTES // size)
            best: dict[str, float] = {}
            for _ in range(repeats):
                for _ in range(3):  # warm, as the copies' buffers are: the best of three back to back
                    each = memcpy_each_ns(floor_dst, floor_src, size, batch) / 1e9
                    best["memcpy"] = min(best.get("memcpy", float("inf")), each)
                for way, copy in (("htod", memcpy_htod_pinned), ("dtoh", memcpy_dtoh_pinned)):
                    started = time.perf_counter()
                    copy(gpu, dev, buf, size)
                    best[way] = min(best.get(way, float("inf")), time.perf_counter() - started)
                    started = time.perf_counter()
                    for _ in range(batch):
                        copy(gpu, dev, buf, size, stream=stream, asynchronous=True)
                    gpu.stream_synchronize(stream)
                    key = way + "_batch"
                    best[key] = min(best.get(key, float("inf")), (time.perf_counter() - started) / batch)
            rows.append({"bytes": size, "batch": batch,
                         **{f"{key}_Bps": size / seconds for key, seconds in best.items()}})
    finally:
        gpu.stream_destroy(stream)
        gpu.mem_free(dev)
        host_free(gpu, buf)
    return rows


#: copies queued per drain in ``--host`` (the worker drains at most ``DRAIN_BUDGET`` = 32 per pass)
HOST_BATCH = 32
#: the largest staged copy ``--host`` measures (a guest's chunks are no larger)
STAGED_MAX = 1 << 20
_ASYNC = int(SubmitFlags.ASYNC)
_REGION = 4 << 20  # --host's channel: its arena holds the largest staged copy


def host_per_call(sizes: list[int], repeats: int = 50) -> list[dict[str, Any]]:
    """Per size: the best time per copy of a drain of ``HOST_BATCH`` queued asynchronous pinned copies
    each way (and staged ones, up to ``STAGED_MAX``), with the C copy path and without, beside the
    memcpy floor (ns)."""
    largest = max(sizes)
    fd = os.memfd_create("vgpu-bench-region", os.MFD_CLOEXEC)
    os.ftruncate(fd, _REGION)
    region_map = mmap.mmap(fd, _REGION, flags=mmap.MAP_SHARED)
    lay_out_channel(memoryview(region_map), vm_id=1, sq_entries=64, cq_entries=64)
    region = ChannelRegion(memoryview(region_map))
    pinned = page_aligned(largest, 0x5A)  # the region's pinned area stands in: page-aligned, as it is
    executor = SimExecutor()
    executor.pinned = PinnedArea(memoryview(pinned.data)).client()
    server = RingServer(region, executor, WorkerCounters(), vm="bench")
    fast = server.pinned_fast
    sq = SubmissionProducer(region)
    offset = executor.pinned.alloc(largest, "bench")
    dev = executor.memory.alloc(largest)
    create = CALLS_BY_NAME["stream_create"]
    made = executor.execute(create, create.args.model_validate({"flags": 1}),
                            CallIO(memoryview(b""), memoryview(b"")))
    stream: int = made.stream  # type: ignore[attr-defined]
    floor_src, floor_dst = page_aligned(largest, 1), page_aligned(largest)
    rows = []
    try:
        for size in sizes:
            best: dict[str, float] = {}
            ways: dict[str, tuple[str, dict[str, Any], dict[str, int]]] = {  # call, arguments, payload
                "htod": ("memcpy_htod_pinned", {"dst": dev, "offset": offset, "count": size}, {}),
                "dtoh": ("memcpy_dtoh_pinned", {"src": dev, "offset": offset, "count": size}, {})}
            if size <= STAGED_MAX:  # both payloads at the arena's start: a copy at a time reads or writes it
                ways["staged_htod"] = ("memcpy_htod", {"dst": dev}, {"in_len": size})
                ways["staged_dtoh"] = ("memcpy_dtoh", {"src": dev, "count": size}, {"out_cap": size})
            for way, (name, fields, payload) in ways.items():
                spec = CALLS_BY_NAME[name]
                raw = encode_args(spec.args.model_validate({**fields, "stream": stream}))
                for path in ("c", "python"):
                    server.pinned_fast = fast if path == "c" else None
                    for rep in range(repeats + 1):
                        for _ in range(HOST_BATCH):
                            assert sq.push(seq=rep, call_id=spec.call_id, args=raw, flags=_ASYNC, **payload)
                        started = time.perf_counter_ns()
                        served = last = server.drain(HOST_BATCH)
                        while last and served < HOST_BATCH:  # a drain returns after BATCH_NS of calls
                            served += (last := server.drain(HOST_BATCH - served))
                        took = (time.perf_counter_ns() - started) / HOST_BATCH
                        if served != HOST_BATCH or server.latched:
                            raise RuntimeError(f"{name} failed: {served} served, status {server.latched}")
                        if rep:  # the first teaches the C path the block and range (in Python)
                            key = f"{way}_{path}_ns"
                            best[key] = min(best.get(key, float("inf")), took)
            for _ in range(repeats):
                each = memcpy_each_ns(floor_dst, floor_src, size, HOST_BATCH)
                best["memcpy_ns"] = min(best.get("memcpy_ns", float("inf")), each)
            rows.append({"bytes": size, **best})
    finally:
        server.pinned_fast = fast
        executor.close()
        region.release()
        region_map.close()
        os.close(fd)
    return rows


def host_table(rows: list[dict[str, Any]], accelerated: bool) -> str:
    lines = []
    for kind, prefix in (("pinned", ""), ("staged", "staged_")):
        lines.append(f"{kind:>9} {'floor ns':>9} " + " ".join(
            f"{label:>15}" for label in ("htod C", "dtoh C", "htod Python", "dtoh Python")))
        for row in rows:
            keys = [f"{prefix}{way}_{path}_ns" for path in ("c", "python") for way in ("htod", "dtoh")]
            if keys[0] not in row:
                continue
            size = row["bytes"]
            label = f"{size // MIB} MiB" if size >= MIB else f"{size // KIB} KiB"
            cells = [f"{row[k]:9,.0f} {row['memcpy_ns'] / row[k]:5.0%}" for k in keys]
            lines.append(f"{label:>9} {row['memcpy_ns']:9,.0f} " + " ".join(f"{c:>15}" for c in cells))
    if not accelerated:
        lines.append("(mediator._copyfast is not built: both columns are the Python path)")
    return "\n".join(lines)


def table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'size':>9} {'floor MiB/s':>12} " + " ".join(
        f"{label:>16}" for label in ("htod sync", "dtoh sync", "htod batch", "dtoh batch"))]
    for row in rows:
        size = row["bytes"]
        label = f"{size // MIB} MiB" if size >= MIB else f"{size // KIB} KiB"
        cells = [f"{row[k] / MIB:9,.0f} {row[k] / row['memcpy_Bps']:5.0%}"
                 for k in ("htod_Bps", "dtoh_Bps", "htod_batch_Bps", "dtoh_batch_Bps")]
        lines.append(f"{label:>9} {row['memcpy_Bps'] / MIB:12,.0f} " + " ".join(f"{c:>16}" for c in cells))
    return "\n".join(lines)


def run(sizes: list[int], workdir: Path, backend: str = "sim") -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    pinned = 1 << (max(sizes) - 1).bit_length()
    extra = f'poll_us = 1000000\npinned_size = "{max(pinned, MIB) // MIB}MiB"'
    with running_mediator(workdir, backend=backend, vms=1, extra=extra) as mediator, \
            GuestClient.connect(mediator.vm_socket(1)) as gpu:
        gpu.init()
        rows = pinned_bandwidth(gpu, sizes)
    return {"backend": backend, "loadavg": os.getloadavg(), "cpus": os.cpu_count(), "pinned": rows}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pinned", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=f"sizes {QUICK_SIZES} only")
    parser.add_argument("--json", type=Path, help="write the figures as JSON here")
    parser.add_argument("--host", action="store_true",
                        help="the host's per-copy cost alone, in-process, C copy path against Python")
    args = parser.parse_args(argv)
    if args.host:
        rows = host_per_call(QUICK_SIZES if args.quick else SIZES[:7])
        print(host_table(rows, ACCELERATED))
        print(f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; sim; per copy: ns, and the "
              f"floor's share of it; {HOST_BATCH} queued asynchronous copies per drain)")
        if args.json:
            args.json.write_text(json.dumps({"loadavg": os.getloadavg(), "host": rows}, indent=1) + "\n")
        return 0
    with tempfile.TemporaryDirectory(prefix="vgpu-pinned-") as tmp:
        result = run(QUICK_SIZES if args.quick else SIZES, Path(tmp))
    print(table(result["pinned"]))
    print(f"(load average {result['loadavg'][0]:.1f} on {result['cpus']} CPUs; sim; "
          "each cell: MiB/s and its share of the memcpy floor)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
