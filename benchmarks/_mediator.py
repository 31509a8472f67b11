"""What a guest sees through a real mediator: round trips, asynchronous streams, copies, many VMs."""

from __future__ import annotations

import multiprocessing
import os
import time
from typing import Any

from guest import GuestClient
from mediator._control_client import request
from mediator._launcher import MediatorProcess
from protocol import CALLS_BY_NAME, ChannelField, SubmitFlags

__all__ = ["async_throughput", "bandwidth", "multi_vm", "sleeping_round_trips", "sync_round_trips", "written"]

_ASYNC = int(SubmitFlags.ASYNC)


def sync_round_trips(gpu: GuestClient, n: int) -> list[int]:
    """Round trips (ns) of ``nop`` (call 0x0001): submit, wait for the completion."""
    for _ in range(min(n, 200)):  # warm up: worker spinning, caches warm
        gpu.nop()
    samples = []
    for _ in range(n):
        started = time.perf_counter_ns()
        gpu.nop()
        samples.append(time.perf_counter_ns() - started)
    return samples


def sleeping_round_trips(gpu: GuestClient, n: int) -> list[int]:
    """Round trips (ns) of ``nop`` each made once the worker has announced a sleep (its need-wakeup flag):
    back to back, the next nop reaches a worker that has not yet looked for more, and it never sleeps."""
    words = gpu.region.u32_view
    asleep = ChannelField.HOST_NEED_WAKEUP >> 2
    gpu.nop()
    samples = []
    for _ in range(n):
        while not words[asleep]:
            time.sleep(0)
        started = time.perf_counter_ns()
        gpu.nop()
        samples.append(time.perf_counter_ns() - started)
    return samples


def async_throughput(gpu: GuestClient, n: int) -> float:
    """Calls per second of a stream of asynchronous 256-byte memsets, ended by a synchronize."""
    ptr = gpu.mem_alloc(256)
    spec = CALLS_BY_NAME["memset_d8"]
    args = gpu.args("memset_d8", dst=ptr, value=7, count=256, stream=0)
    started = time.perf_counter()
    for _ in range(n):
        gpu.submit(spec, args, flags=_ASYNC)
    gpu.ctx_synchronize()
    elapsed = time.perf_counter() - started
    assert gpu.memcpy_dtoh(ptr, 4) == b"\x07" * 4
    assert not gpu.async_errors, gpu.async_errors
    gpu.mem_free(ptr)
    return n / elapsed


def written(size: int, value: int) -> memoryview:
    """``size`` bytes of ``value`` that this process has written, as an application's buffer is:
    ``bytes(n)`` is calloc'ed, and until written every page of it is the kernel's one zero page, which
    a copy then reads from the L1 (a 64 MiB "copy" at cache speed). Grown 4 MiB at a time, the GIL
    let go in between: first-touch faults make this slow (0.7 s for 256 MiB here; ``bytearray(n)``
    does it in one call), and the channel's heartbeat thread must beat within its lease meanwhile."""
    buffer = bytearray()
    piece = memoryview(bytes([value]) * min(size, 4 << 20))
    while len(buffer) < size:
        buffer += piece[:size - len(buffer)]
        time.sleep(0)
    return memoryview(buffer)


def bandwidth(gpu: GuestClient, sizes: list[int], repeats: int = 3,
              seconds: float = 0.2) -> dict[int, tuple[float, float]]:
    """Bytes per second host-to-device and device-to-host through the region, per size (best of
    ``repeats``, or of as many as fit in about ``seconds`` each way when that is more: a best of
    three is a lottery on a loaded machine); copies over 256 KiB travel in pipelined chunks
    (``GuestClient._copy_chunk``)."""
    results = {}
    ptr = gpu.mem_alloc(max(sizes))
    back = written(max(sizes), 0)  # the application's buffer, as cudaMemcpy's destination
    for size in sizes:
        data = written(size, 1)
        up = down = float("inf")
        for _ in range(max(repeats, min(2000, int(seconds * 4e9 / size)))):
            started = time.perf_counter()
            gpu.memcpy_htod(ptr, data)
            up = min(up, time.perf_counter() - started)
            started = time.perf_counter()
            gpu.memcpy_dtoh_into(ptr, back[:size])
            down = min(down, time.perf_counter() - started)
        results[size] = (size / up, size / down)
    gpu.mem_free(ptr)
    return results


def _vm_load(socket: str, mode: str, seconds: float, ready: Any, go: Any, out: Any,
             spin_us: int = 50) -> None:
    """One guest process: ``sync`` nops, or a ``flood`` of asynchronous memsets; counts calls. Says
    ``ready`` once its worker serves it, and starts when ``go`` is set."""
    with GuestClient.connect(socket, spin_us=spin_us) as gpu:
        gpu.init()
        ptr = gpu.mem_alloc(256)
        spec = CALLS_BY_NAME["memset_d8"]
        args = gpu.args("memset_d8", dst=ptr, value=1, count=256, stream=0)
        ready.put(socket)
        go.wait()
        calls = 0
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            if mode == "flood":
                for _ in range(256):
                    gpu.submit(spec, args, flags=_ASYNC)
                calls += 256
            else:
                gpu.nop()
                calls += 1
        gpu.ctx_synchronize()
    out.put((socket, calls))


def jain(values: list[float]) -> float:
    """Jain's fairness index: 1 when all equal, 1/n when one takes everything."""
    total, squares = sum(values), sum(v * v for v in values)
    return total * total / (len(values) * squares) if squares else 1.0


def _cpu_now(daemon_pid: int) -> tuple[float, float, int]:
    """(CPU seconds the machine has been busy, CPU seconds of the daemon's workers, their voluntary
    context switches), from /proc: differences over a window say where the CPU went in it."""
    with open("/proc/stat") as f:
        ticks = [int(v) for v in f.readline().split()[1:]]
    busy = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait
    workers = switches = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            with open(f"/proc/{entry}/status") as f:
                status = f.read()
        except OSError:  # gone meanwhile
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if int(fields[1]) != daemon_pid:
            continue
        workers += int(fields[11]) + int(fields[12])
        switches += int(status.split("\nvoluntary_ctxt_switches:")[1].split()[0])
    return busy, workers / os.sysconf("SC_CLK_TCK"), switches


def multi_vm(mediator: MediatorProcess, vms: int, seconds: float, *, flood: bool,
             spin_us: int = 50) -> dict[str, Any]:
    """``vms`` guests at once for ``seconds``: calls per second each, aggregate, Jain's index (over the
    well-behaved VMs when VM 1 floods), and where the CPU went meanwhile: the machine's busy CPUs, the
    workers' share of them and their voluntary context switches per second (a worker that sleeps
    often makes many)."""
    ctx = multiprocessing.get_context("spawn")
    out, ready, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=_vm_load, args=(str(mediator.vm_socket(i)),
                                                "flood" if flood and i == 1 else "sync", seconds,
                                                ready, go, out, spin_us))
             for i in range(1, vms + 1)]
    for proc in procs:
        proc.start()
    try:
        # all at once, and only once every worker serves: on a loaded host eight workers take seconds to
        # start, and a fixed delay let the first guests run beside workers still importing
        for _ in procs:
            ready.get(timeout=120)
    finally:
        go.set()
    # the CPU over the middle of the guests' window
    margin = min(0.2, seconds / 4)
    time.sleep(margin)
    before, window = _cpu_now(mediator.proc.pid), time.perf_counter()
    time.sleep(seconds - 2 * margin)
    after, window = _cpu_now(mediator.proc.pid), time.perf_counter() - window
    counts = dict(out.get(timeout=seconds + 120) for _ in procs)
    for proc in procs:
        proc.join(30)
    rates = [counts[str(mediator.vm_socket(i))] / seconds for i in range(1, vms + 1)]
    fair = rates[1:] if flood else rates
    # every guest's session must end before the next run reuses the VM sockets
    deadline = time.monotonic() + 30
    while any(vm["connected"] for vm in request(mediator.control, {"cmd": "status"})["vms"]):
        if time.monotonic() > deadline:
            raise TimeoutError("guest sessions did not end")
        time.sleep(0.05)
    busy, workers, switches = ((b - a) / window for a, b in zip(before, after, strict=True))
    return {"vms": vms, "flood": flood, "per_vm_calls_per_s": rates, "aggregate_calls_per_s": sum(rates),
            "jain": jain(fair) if fair else 1.0, "busy_cpus": busy, "worker_cpus": workers,
            "worker_voluntary_switches_per_s": switches}
