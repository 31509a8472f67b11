"""Floors: what the same pattern costs with no mediator in the way (measured in the same run).

A floor is the best this machine does for the pattern, with the same ring code the guest and the
worker use (the C rings where they are built) and nothing else: no decode, no dispatch, no executor,
and each side waiting the cheapest way it can (a spin in C; a blocking eventfd read). On the ``cuda``
backend copies also get the GPU's own floor: a native copy between pinned host memory and the device
(:func:`native_copy_bandwidth`), what an application on the host gets from ``cudaMemcpy``.
"""

from __future__ import annotations

import contextlib
import json
import mmap
import os
import select
import struct
import subprocess
import sys
import textwrap
import time
from typing import Any

import numpy as np

from protocol import (
    ChannelField,
    CompletionConsumer,
    Region,
    SubmissionConsumer,
    SubmissionProducer,
    fence,
    lay_out_channel,
)

from . import _two_copy

__all__ = ["eventfd_pingpong", "fairness_floor", "memcpy_bandwidth", "native_copy_bandwidth", "page_aligned",
           "ring_pingpong", "ring_throughput", "staged_copy_bandwidth", "staged_copy_python"]

_SPIN_NS = 1_000_000_000  # a floor's spin never gives up: the other side answers within microseconds
_POLL_NS = 1_000_000  # the staged floor spins this long (the worker's default idle slice), then sleeps

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

# The other side of a staged copy with nothing of ours in it: wait for each chunk's entry on the real
# submission ring as the worker waits (the C spin, then asleep on an eventfd behind the need-wakeup
# flag), copy the chunk out of the arena into a buffer of its own, consume the entry and answer on the
# completion ring (waking the producer if it sleeps). argv: memfd, bytes per copy, chunks, doorbell
# eventfd, the producer's eventfd.
_STAGED_HOST = textwrap.dedent(f"""
    import mmap, os, sys
    import numpy as np
    from benchmarks._floors import page_aligned
    from protocol import ChannelField, CompletionProducer, Region, SubmissionConsumer, fence
    fd, size, chunks, doorbell, irq = map(int, sys.argv[1:6])
    # populated, as the worker populates a channel when it opens: no page faults in a timed copy
    region = Region(memoryview(mmap.mmap(fd, 0, flags=mmap.MAP_SHARED | mmap.MAP_POPULATE)))
    sq, cq = SubmissionConsumer(region), CompletionProducer(region)
    arena = np.frombuffer(region.arena, dtype=np.uint8)
    dst = page_aligned(size)
    words = region.u32_view
    asleep, wake = ChannelField.HOST_NEED_WAKEUP >> 2, ChannelField.GUEST_NEED_IRQ >> 2
    for _ in range(chunks):
        while not (sq.pending() or sq.spin({_POLL_NS}, 10_000)):
            words[asleep] = 1
            fence()
            if not sq.pending():
                os.eventfd_read(doorbell)
            words[asleep] = 0
        sub = sq.read()
        off = int.from_bytes(sub.args[:8], "little")
        dst[off:off + sub.in_len] = arena[sub.in_off:sub.in_off + sub.in_len]
        sq.advance()
        while not cq.push(seq=sub.seq, call_id=sub.call_id, status=0):
            pass
        fence()
        if words[wake]:
            os.eventfd_write(irq, 1)
""")

# One side of a fairness floor's pair: ``ping`` round trips through two eventfds until a deadline,
# counting them (``pong`` answers; both block in eventfd_read), or ``burn``: a busy loop, the flood.
# argv: role, fd in, fd out, start (time.time()), seconds.
_FAIR_SIDE = textwrap.dedent("""
    import os, sys, time
    role, fd_in, fd_out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    start, seconds = float(sys.argv[4]), float(sys.argv[5])
    while time.time() < start:
        time.sleep(0.001)
    deadline, count = time.perf_counter() + seconds, 0
    if role == "ping":
        while time.perf_counter() < deadline:
            os.eventfd_write(fd_out, 1)
            os.eventfd_read(fd_in)
            count += 1
        os.eventfd_write(fd_out, 1 << 40)  # tells the pong side to stop
        print(count)
    elif role == "pong":
        while os.eventfd_read(fd_in) < 1 << 40:
            os.eventfd_write(fd_out, 1)
    else:
        while time.perf_counter() < deadline:
            count += 1
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

_PAGE = 4096
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


def page_aligned(size: int, fill: int = 0) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """``size`` bytes starting on a page, touched (no first-use faults in a timed copy)."""
    raw = np.full(size + _PAGE, fill, dtype=np.uint8)
    start = -raw.ctypes.data % _PAGE
    return raw[start:start + size]


def memcpy_each_ns(dst: np.ndarray[Any, np.dtype[np.uint8]], src: np.ndarray[Any, np.dtype[np.uint8]],
                   size: int, count: int) -> float:
    """Nanoseconds per copy of ``count`` back-to-back copies of ``size`` bytes: the floor for copies
    the worker serves in C, so timed in C (``mediator._copyfast.memcpy_floor``) where it is built;
    around one ``numpy.copyto`` the Python call's microsecond would be half of a 64 KiB copy."""
    try:
        from mediator._copyfast import memcpy_floor
    except ImportError:  # not built: NumPy's copies, timed together
        started = time.perf_counter_ns()
        for _ in range(count):
            np.copyto(dst[:size], src[:size])
        return (time.perf_counter_ns() - started) / count
    return memcpy_floor(dst, src, size, count) / count


def memcpy_bandwidth(size: int, repeats: int = 5) -> float:
    """Bytes per second of one in-process copy of ``size`` bytes (best of ``repeats``), between two
    page-aligned buffers: the offset at which glibc's copy is fastest on every CPU we know (on AMD Zen 3
    its ``rep movsb`` is 10-15x slower when the destination is 1-31 bytes past the source modulo 4 KiB,
    which unaligned NumPy buffers hit at some sizes and not others)."""
    src = page_aligned(size, 1)
    dst = page_aligned(size)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - started)
    return size / best


def staged_copy_bandwidth(size: int, chunk: int, host_cpus: set[int] | None = None, repeats: int = 5,
                          region_bytes: int = 16 << 20, way: str = "htod") -> float:
    """Bytes per second of the best staged copy of ``size`` bytes on this machine, the floor of any
    staged (pageable) design beside ``memcpy_bandwidth``: two processes on two CPUs (this one's and
    ``host_cpus``) copying through shared memory chunk by chunk in C, spinning on each other's counter,
    at the best of ``_two_copy.CHUNKS`` and ``chunk`` (``_two_copy.pipeline_ns``). Where that cannot
    run (no C compiler, one CPU), the same in Python through a real channel's rings
    (:func:`staged_copy_python`, htod only)."""
    if _two_copy.available():
        best = _two_copy.pipeline_ns(size, way, host_cpus, (*_two_copy.CHUNKS, chunk)).best_ns
        return size / best * 1e9
    return staged_copy_python(size, chunk, host_cpus, repeats, region_bytes)


def staged_copy_python(size: int, chunk: int, host_cpus: set[int] | None = None, repeats: int = 5,
                       region_bytes: int = 16 << 20) -> float:
    """Bytes per second of a copy staged as ours are, in Python (best of ``repeats``): this process
    copies ``size`` bytes in chunks of ``chunk`` into the arena of a real channel of ``region_bytes``
    and pushes an entry for each; another process (on ``host_cpus``) waits for each with the same C
    spin the worker uses, then asleep, copies the chunk out and answers on the completion ring, which
    frees its arena span. Slower than the C floor by its Python calls per chunk."""
    chunk = max(_PAGE, min(chunk, size) + -min(chunk, size) % _PAGE)
    fd = os.memfd_create("bench-staged")
    os.ftruncate(fd, region_bytes)
    buf = mmap.mmap(fd, region_bytes)
    lay_out_channel(memoryview(buf), vm_id=1)
    region = Region(memoryview(buf))
    sq, cq = SubmissionProducer(region), CompletionConsumer(region)
    arena = np.frombuffer(region.arena, dtype=np.uint8)
    arena[:] = 0  # touched: no first-use faults in a timed copy
    slots = min(max(2, len(arena) // chunk), 128)
    src = page_aligned(size, 1)
    n = -(-size // chunk)
    doorbell, irq = os.eventfd(0), os.eventfd(0, os.EFD_NONBLOCK)  # the other side sleeps in a blocking read
    words, asleep = region.u32_view, ChannelField.HOST_NEED_WAKEUP >> 2
    host = subprocess.Popen([sys.executable, "-c", _STAGED_HOST, str(fd), str(size), str(n * (repeats + 1)),
                             str(doorbell), str(irq)], pass_fds=(fd, doorbell, irq))
    if host_cpus:
        os.sched_setaffinity(host.pid, host_cpus)
    best = float("inf")
    done = pushed = 0
    try:
        for copy in range(repeats + 1):  # the first warms both sides up, not counted
            started = time.perf_counter()
            for i in range(n):
                while pushed - done >= slots:  # every slot in flight: wait for the oldest's answer,
                    if cq.pending():  # yielding between looks, as the guest waits for arena room
                        cq.pop()
                        done += 1
                    else:
                        _pause(host)
                # each copy starts at the arena's first byte, as the guest's does (warm in the cache)
                off, at = i * chunk, i % slots * chunk
                length = min(chunk, size - off)
                arena[at:at + length] = src[off:off + length]
                sq.push(seq=pushed, call_id=1, args=struct.pack("<Q", off), in_off=at, in_len=length)
                pushed += 1
                fence()
                if words[asleep]:
                    os.eventfd_write(doorbell, 1)
            while done < pushed:
                done += _answered(cq, host, region, irq)
            if copy:
                best = min(best, time.perf_counter() - started)
    finally:
        host.wait(30)
        del arena
        words.release()
        region.release()
        buf.close()
        for each in (fd, doorbell, irq):
            os.close(each)
    return size / best


def _pause(other: subprocess.Popen[bytes]) -> None:
    """One look at the other side while waiting for it, the CPU yielded first (it may need it)."""
    os.sched_yield()
    if other.poll() is not None:
        raise RuntimeError(f"the staged floor's other side exited with {other.returncode}")


def _answered(cq: CompletionConsumer, other: subprocess.Popen[bytes], region: Region, irq: int) -> int:
    """Wait for one completion as the guest waits (the C spin, then asleep on ``irq`` behind the
    need-interrupt flag) and take it."""
    words, asleep = region.u32_view, ChannelField.GUEST_NEED_IRQ >> 2
    while not (cq.pending() or cq.spin(_POLL_NS, 10_000)):
        if other.poll() is not None:
            raise RuntimeError(f"the staged floor's other side exited with {other.returncode}")
        words[asleep] = 1
        fence()
        if not cq.pending():
            select.select([irq], [], [], 0.05)  # bounded: a look at the other side now and then
            with contextlib.suppress(BlockingIOError):
                os.eventfd_read(irq)
        words[asleep] = 0
    cq.pop()
    return 1


def fairness_floor(pairs: int, seconds: float, flood: bool = True) -> list[float]:
    """Round trips per second of each of ``pairs`` eventfd ping-pong pairs (two processes each, both
    asleep in a blocking read between turns) run at once for ``seconds``, beside ``flood``: two busy
    processes, as a flooding VM's guest and worker are. The scheduler's own fairness for the many-VM
    benchmark's shape with nothing of ours in it: Jain's index over these is the machine's part."""
    start = time.time() + 1.0
    procs: list[subprocess.Popen[bytes]] = []
    pings: list[subprocess.Popen[bytes]] = []
    fds: list[int] = []
    try:
        for _ in range(pairs):
            a, b = os.eventfd(0), os.eventfd(0)
            fds += [a, b]
            common = [str(start), str(seconds)]
            pong = subprocess.Popen([sys.executable, "-c", _FAIR_SIDE, "pong", str(a), str(b), *common],
                                    pass_fds=(a, b))
            ping = subprocess.Popen([sys.executable, "-c", _FAIR_SIDE, "ping", str(b), str(a), *common],
                                    pass_fds=(a, b), stdout=subprocess.PIPE)
            procs += [pong, ping]
            pings.append(ping)
        if flood:
            procs += [subprocess.Popen([sys.executable, "-c", _FAIR_SIDE, "burn", "0", "0", str(start),
                                        str(seconds)]) for _ in range(2)]
        rates = []
        for ping in pings:
            out, _ = ping.communicate(timeout=seconds + 60)
            rates.append(int(out) / seconds)
        return rates
    finally:
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for fd in fds:
            os.close(fd)


def native_copy_bandwidth(sizes: list[int], repeats: int = 5) -> dict[int, tuple[float, float]]:
    """Bytes per second of a native pinned copy to and from the GPU for each size, (htod, dtoh), best of
    ``repeats``: the floor of the mediator's copies on the ``cuda`` backend (needs a GPU and
    cuda-bindings; raises RuntimeError, with the reason, when it cannot run)."""
    run = subprocess.run([sys.executable, "-c", _NATIVE_COPY, ",".join(map(str, sizes)), str(repeats)],
                         capture_output=True, text=True, timeout=300, check=False)
    if run.returncode:
        raise RuntimeError(f"the native copy floor failed: {(run.stderr or run.stdout).strip()[-500:]}")
    return {int(size): (up, down) for size, (up, down) in json.loads(run.stdout).items()}
