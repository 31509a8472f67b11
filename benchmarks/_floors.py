"""Floors: what the same pattern costs with no mediator in the way (measured in the same run).

A floor is the best this machine does for the pattern, with the same ring code the guest and the
worker use (the C rings where they are built) and nothing else: no decode, no dispatch, no executor,
and each side waiting the cheapest way it can (a spin in C; a blocking eventfd read). On the ``cuda``
backend copies also get the GPU's own floor: a native copy between pinned host memory and the device
(:func:`native_copy_bandwidth`), what an application on the host gets from ``cudaMemcpy``.
"""

from __future__ import annotations

import json
import mmap
import os
import subprocess
import sys
import textwrap
import time

import numpy as np

from protocol import (
    CompletionConsumer,
    Region,
    SubmissionConsumer,
    SubmissionProducer,
    lay_out_channel,
)

__all__ = ["eventfd_pingpong", "memcpy_bandwidth", "native_copy_bandwidth", "ring_pingpong",
           "ring_throughput"]

_SPIN_NS = 1_000_000_000  # a floor's spin never gives up: the other side answers within microseconds

_RING_HOST = textwrap.dedent(f"""
    import mmap, sys
    from protocol import CompletionProducer, Region, SubmissionConsumer
    region = Region(memoryview(mmap.mmap(int(sys.argv[1]), 0)))
    sq, cq = SubmissionConsumer(region), CompletionProducer(region)
    for _ in range(int(sys.argv[2])):
        while not sq.spin({_SPIN_NS}):
            pass
        sub = sq.read()
        sq.advance()
        cq.push(seq=sub.seq, call_id=sub.call_id, status=0)
""")

_EVENTFD_HOST = textwrap.dedent("""
    import os, sys
    ping, pong, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    for _ in range(n):
        os.eventfd_read(ping)
        os.eventfd_write(pong, 1)
""")

# cuMemcpyHtoD/DtoH from cuMemHostAlloc memory: the driver path of a pinned cudaMemcpy. In a process of
# its own, so the benchmark's process never holds a CUDA context (and its mediators' workers are spawned
# from a process without one).
_NATIVE_COPY = textwrap.dedent("""
    import json, sys, time
    from cuda.bindings import driver as d
    def ok(result, what):
        if int(result[0]):
            sys.exit(f"{what} failed: {result[0]!r}")
        return result[1] if len(result) > 1 else None
    sizes, repeats = [int(s) for s in sys.argv[1].split(",")], int(sys.argv[2])
    ok(d.cuInit(0), "cuInit")
    dev = ok(d.cuDeviceGet(0), "cuDeviceGet")
    ctx = ok(d.cuDevicePrimaryCtxRetain(dev), "cuDevicePrimaryCtxRetain")
    ok(d.cuCtxSetCurrent(ctx), "cuCtxSetCurrent")
    host = ok(d.cuMemHostAlloc(max(sizes), 0), "cuMemHostAlloc")
    dptr = ok(d.cuMemAlloc(max(sizes)), "cuMemAlloc")
    rates = {}
    for size in sizes:
        best = [float("inf"), float("inf")]
        for attempt in range(repeats + 1):  # the first is a warm-up, not counted
            for way, copy in enumerate((lambda: d.cuMemcpyHtoD(dptr, host, size),
                                        lambda: d.cuMemcpyDtoH(host, dptr, size))):
                started = time.perf_counter()
                ok(copy(), "copy")
                elapsed = time.perf_counter() - started
                if attempt:
                    best[way] = min(best[way], elapsed)
        rates[size] = [size / best[0], size / best[1]]
    ok(d.cuMemFree(dptr), "cuMemFree")
    ok(d.cuMemFreeHost(host), "cuMemFreeHost")
    ok(d.cuDevicePrimaryCtxRelease(dev), "cuDevicePrimaryCtxRelease")
    print(json.dumps(rates))
""")

WARMUP = 200  # round trips discarded while the other process starts and caches warm


def ring_pingpong(n: int, host_cpus: set[int] | None = None) -> list[int]:
    """Round trips (ns) of an empty frame through the real rings between two processes that spin
    (in C, as the worker and the guest do) on each other's index: no decode, dispatch or executor.
    ``host_cpus``: where the other side runs (``vgpu-bench --pin``)."""
    fd = os.memfd_create("bench-ring")
    os.ftruncate(fd, 1 << 20)
    buf = mmap.mmap(fd, 1 << 20)
    lay_out_channel(memoryview(buf), vm_id=1)
    region = Region(memoryview(buf))
    sq, cq = SubmissionProducer(region), CompletionConsumer(region)
    host = subprocess.Popen([sys.executable, "-c", _RING_HOST, str(fd), str(n + WARMUP)], pass_fds=(fd,))
    if host_cpus:
        os.sched_setaffinity(host.pid, host_cpus)
    samples = []
    clock = time.perf_counter_ns
    try:
        for i in range(n + WARMUP):
            started = clock()
            sq.push(seq=i, call_id=1)
            while not cq.spin(_SPIN_NS):
                pass
            cq.pop()
            samples.append(clock() - started)
    finally:
        host.wait(30)
        region.release()
        buf.close()
        os.close(fd)
    return samples[WARMUP:]


def eventfd_pingpong(n: int, host_cpus: set[int] | None = None) -> list[int]:
    """Round trips (ns) of a wakeup each way through eventfds, both sides asleep in a blocking read:
    the floor of a sleeping worker."""
    ping, pong = os.eventfd(0), os.eventfd(0)
    host = subprocess.Popen([sys.executable, "-c", _EVENTFD_HOST, str(ping), str(pong), str(n + WARMUP)],
                            pass_fds=(ping, pong))
    if host_cpus:
        os.sched_setaffinity(host.pid, host_cpus)
    samples = []
    clock = time.perf_counter_ns
    try:
        for _ in range(n + WARMUP):
            started = clock()
            os.eventfd_write(ping, 1)
            os.eventfd_read(pong)
            samples.append(clock() - started)
    finally:
        host.wait(30)
        os.close(ping)
        os.close(pong)
    return samples[WARMUP:]


def ring_throughput(n: int) -> float:
    """Frames per second through one ring in one process (push, read, advance): no cross-core traffic
    and no decode, the floor of an asynchronous stream."""
    buf = mmap.mmap(-1, 1 << 20)
    lay_out_channel(memoryview(buf), vm_id=1)
    region = Region(memoryview(buf))
    sq, consumer = SubmissionProducer(region), SubmissionConsumer(region)
    args = bytes(24)
    started = time.perf_counter()
    for i in range(n):
        sq.push(seq=i, call_id=0x32, args=args, flags=1)
        consumer.read()
        consumer.advance()
    elapsed = time.perf_counter() - started
    region.release()
    return n / elapsed


def memcpy_bandwidth(size: int, repeats: int = 5) -> float:
    """Bytes per second of one in-process copy of ``size`` bytes (best of ``repeats``)."""
    src = np.ones(size, dtype=np.uint8)
    dst = np.empty_like(src)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - started)
    return size / best


def native_copy_bandwidth(sizes: list[int], repeats: int = 5) -> dict[int, tuple[float, float]]:
    """Bytes per second of a native pinned copy to and from the GPU for each size, (htod, dtoh), best of
    ``repeats``: the floor of the mediator's copies on the ``cuda`` backend (needs a GPU and
    cuda-bindings; raises RuntimeError, with the reason, when it cannot run)."""
    run = subprocess.run([sys.executable, "-c", _NATIVE_COPY, ",".join(map(str, sizes)), str(repeats)],
                         capture_output=True, text=True, timeout=300, check=False)
    if run.returncode:
        raise RuntimeError(f"the native copy floor failed: {(run.stderr or run.stdout).strip()[-500:]}")
    return {int(size): (up, down) for size, (up, down) in json.loads(run.stdout).items()}
