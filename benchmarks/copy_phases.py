"""Where a pageable copy's time goes, per phase, through a real mediator (issue 19, item 2).

    python -m benchmarks.copy_phases                       # 64 KiB .. 64 MiB, both ways
    python -m benchmarks.copy_phases --size 1048576 --way htod --repeats 400

The guest is this process (a :class:`GuestClient` whose submit, wait and copy-out are timed); the
host's share comes from the worker's own counters (``latency_sum_ns``: decode, copy and completion of
every call it served). For each size and direction it prints, per copy in microseconds:

* ``wall``: the whole copy, as the application sees it (median over the repeats; ``mean``, ``best``);
  the guest's phases are those of that median copy:
* ``guest in``: the guest's submits (htod: its copy into the arena; both: the entry), ``reserve``:
  waiting in them for arena room, ``wait``: waiting for completions, ``guest out``: dtoh's copies out
  of the arena into the application's buffer;
* ``host``: the worker's serve time, a mean over the repeats (htod: its copy out of the arena into
  device memory; dtoh: into the arena);
* ``guest cpu``, ``host cpu``: the CPU time each process had per copy, a mean (``/proc/<pid>/schedstat``;
  the guest's includes its spinning waits, the worker's its polling): unlike wall times these do not
  grow when other work on the machine takes the cores;
* ``floor``: the same-run in-process memcpy of the whole size (one copy, one core);
* ``staged``: the best staged copy of the size on this machine: two processes on two cores copying
  through shared memory chunk by chunk in C, spinning on each other's counter, at the best chunk size
  (``_floors.staged_copy_bandwidth``, ``benchmarks/staged_floor.c``): ``staged`` over ``floor`` is what
  the second copy costs here, ``wall`` over ``staged`` is ours;
* ``2 copies``: two processes each doing one memcpy of the size at the same time (in C): what the
  memory system gives two copies at once, the bound of any overlap of the two halves.

Phases are measured where they run, so they survive a loaded machine better than ratios do. The
guest is pinned to one CPU and the mediator to the others, as ``vgpu-bench --pin`` does.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import functools
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from guest import GuestClient
from guest._client import copy_chunk
from mediator._control_client import request
from mediator._launcher import MediatorProcess, running_mediator
from protocol import Completion

from . import _two_copy
from ._c_transport import Transport, build
from ._floors import memcpy_bandwidth, staged_copy_bandwidth
from ._mediator import written

__all__ = ["TimedGuest", "floors", "measure"]

KIB, MIB = 1 << 10, 1 << 20
SIZES = [64 * KIB, 256 * KIB, MIB, 4 * MIB, 16 * MIB, 64 * MIB]
#: the guest's heartbeat is a Python thread on the guest's one CPU: at load 8-9 it missed the default
#: 800 ms lease in some runs, and the channel closed under the benchmark
LEASE = "channel_lease_ms = 5000\n"


class TimedGuest(GuestClient):
    """A guest that adds the nanoseconds of its submits, reserves, waits and copies-out to ``spent``."""

    spent: dict[str, int]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.clear()
        super().__init__(*args, **kwargs)

    def clear(self) -> None:
        self.spent = {"submit": 0, "reserve": 0, "wait": 0, "finish": 0}

    # (*args: these run against older clients too, for before/after comparisons)
    def _reserve(self, *args: Any) -> int:
        started = time.perf_counter_ns()
        try:
            return super()._reserve(*args)
        finally:
            self.spent["reserve"] += time.perf_counter_ns() - started

    def _submit(self, *args: Any) -> tuple[int, int]:
        started = time.perf_counter_ns()
        try:
            return super()._submit(*args)
        finally:
            self.spent["submit"] += time.perf_counter_ns() - started

    def wait(self, seq: int) -> Completion:
        started = time.perf_counter_ns()
        try:
            return super().wait(seq)
        finally:
            self.spent["wait"] += time.perf_counter_ns() - started

    def _finish_dtoh(self, *args: Any) -> None:
        started = time.perf_counter_ns()
        try:
            super()._finish_dtoh(*args)
        finally:
            self.spent["finish"] += time.perf_counter_ns() - started


def _host_serve_ns(mediator: MediatorProcess) -> tuple[int, int]:
    """The worker's total serve time so far (published at least every 50 ms while it serves), and the
    CPU time it has had (``/proc/<pid>/schedstat``: on a loaded machine, wall times count the time a
    process waited for a core; CPU times do not)."""
    vm = request(mediator.control, {"cmd": "status"})["vms"][0]
    return int(vm["latency_sum_ns"]), _cpu_ns(int(vm["worker_pid"]))


def _cpu_ns(pid: int) -> int:
    """Nanoseconds process ``pid`` has run on a CPU (its threads' too)."""
    tasks = Path(f"/proc/{pid}/task").iterdir()
    return sum(int(Path(task, "schedstat").read_text().split()[0]) for task in tasks)


def _settle(gpu: GuestClient) -> None:
    """Make the worker publish its counters: one call more than 50 ms after the last publish."""
    time.sleep(0.06)
    gpu.nop()


def measure(gpu: TimedGuest, mediator: MediatorProcess, size: int, way: str, repeats: int
            ) -> dict[str, float]:
    """Per-copy phases (µs) of ``repeats`` copies of ``size`` bytes in direction ``way``."""
    ptr = gpu.mem_alloc(size)
    data, back = written(size, 1), written(size, 0)  # not calloc's zero pages (see written)

    def once() -> None:
        if way == "htod":
            gpu.memcpy_htod(ptr, data)
        else:
            gpu.memcpy_dtoh_into(ptr, back)

    for _ in range(3):
        once()
    _settle(gpu)
    host_before, host_cpu_before = _host_serve_ns(mediator)
    guest_cpu_before = _cpu_ns(os.getpid())
    rows: list[dict[str, int]] = []
    for _ in range(repeats):
        gpu.clear()
        started = time.perf_counter_ns()
        once()
        rows.append({"wall": time.perf_counter_ns() - started, **gpu.spent})
    guest_cpu = _cpu_ns(os.getpid()) - guest_cpu_before
    _settle(gpu)
    host_after, host_cpu_after = _host_serve_ns(mediator)
    host = host_after - host_before
    host_cpu = host_cpu_after - host_cpu_before  # includes the settling nop: a few microseconds
    gpu.mem_free(ptr)
    # the copy of median wall time, phase by phase (means would be the outliers': a preempted side)
    row = sorted(rows, key=lambda r: r["wall"])[len(rows) // 2]
    finish = row["finish"] - (row["wait"] if way == "dtoh" else 0)  # dtoh waits inside _finish_dtoh
    return {"wall": row["wall"] / 1000, "best": min(r["wall"] for r in rows) / 1000,
            "mean": statistics.fmean(r["wall"] for r in rows) / 1000,
            "guest_in": (row["submit"] - row["reserve"]) / 1000, "reserve": row["reserve"] / 1000,
            "wait": row["wait"] / 1000, "guest_out": max(finish, 0) / 1000, "host": host / repeats / 1000,
            "guest_cpu": guest_cpu / repeats / 1000, "host_cpu": host_cpu / repeats / 1000}


def measure_c(transport: Transport, mediator: MediatorProcess, size: int, way: str, repeats: int
              ) -> dict[str, float]:
    """``measure`` through the C transport (``--c-transport``): wall times, the host's serve time and
    both sides' CPU; the guest's phases are inside the library (nan here)."""
    status, result = transport.call("mem_alloc", bytesize=size)
    if status:
        raise RuntimeError(f"mem_alloc of {size} bytes failed: {status}")
    ptr = int(result.dptr)  # type: ignore[attr-defined]
    buffer = ctypes.create_string_buffer(bytes(written(size, 1)), size)  # page-aligned: malloc's mmap

    def once() -> None:
        rc = transport.htod(ptr, buffer, 0, size) if way == "htod" else transport.dtoh(buffer, 0, ptr, size)
        if rc:
            raise RuntimeError(f"{way} of {size} bytes failed: {rc}")

    for _ in range(3):
        once()
    time.sleep(0.06)
    transport.call("nop")
    host_before, host_cpu_before = _host_serve_ns(mediator)
    guest_cpu_before = _cpu_ns(os.getpid())
    walls = []
    for _ in range(repeats):
        started = time.perf_counter_ns()
        once()
        walls.append(time.perf_counter_ns() - started)
    guest_cpu = _cpu_ns(os.getpid()) - guest_cpu_before
    time.sleep(0.06)
    transport.call("nop")
    host_after, host_cpu_after = _host_serve_ns(mediator)
    transport.call("mem_free", dptr=ptr)
    nan = float("nan")
    return {"wall": statistics.median(walls) / 1000, "best": min(walls) / 1000,
            "mean": statistics.fmean(walls) / 1000, "guest_in": nan, "reserve": nan, "wait": nan,
            "guest_out": nan,
            "host": (host_after - host_before) / repeats / 1000, "guest_cpu": guest_cpu / repeats / 1000,
            "host_cpu": (host_cpu_after - host_cpu_before) / repeats / 1000}


def floors(size: int, way: str, host_cpus: set[int] | None) -> dict[str, float]:
    """The same-run floors (µs) of a copy of ``size`` bytes: ``floor``, ``staged`` and ``two`` (see the
    module's doc). Measured with no guest connected: the C floors spin on both CPUs for a while, which
    on a loaded machine can starve a connected guest's heartbeat past its channel's lease."""
    return {"floor": size / memcpy_bandwidth(size, repeats=20) * 1e6,
            "staged": size / staged_copy_bandwidth(size, copy_chunk(size, size), host_cpus, way=way) * 1e6,
            "two": _two_copy.concurrent_ns(size, host_cpus) / 1000 if _two_copy.available() else float("nan")}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.copy_phases", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, action="append", help="bytes (repeatable); default 64 KiB-64 MiB")
    parser.add_argument("--way", choices=["htod", "dtoh"], action="append")
    parser.add_argument("--repeats", type=int, default=0, help="copies per size (default: about 0.3 s)")
    parser.add_argument("--no-pin", action="store_true", help="let the scheduler place both sides")
    parser.add_argument("--c-transport", action="store_true",
                        help="copy through the C transport (guest/c, as the shim does) instead of the Python "
                             "guest: wall times and the host's share only")
    opts = parser.parse_args(argv)
    cpus = sorted(os.sched_getaffinity(0))
    pin = not opts.no_pin and len(cpus) >= 2
    print(f"load average {os.getloadavg()[0]:.2f}; {len(cpus)} CPUs; {'pinned' if pin else 'not pinned'}")
    columns = ("wall", "mean", "best", "guest_in", "reserve", "wait", "guest_out", "host", "guest_cpu",
               "host_cpu", "floor", "staged", "two")
    names = {"two": "2 copies"}
    print(f"{'copy':>12} " + " ".join(f"{names.get(c, c.replace('_', ' ')):>9}" for c in columns)
          + "  MiB/s (best; vs floor, vs staged)")
    copies = [(size, way) for size in opts.size or SIZES for way in opts.way or ["htod", "dtoh"]]
    host_cpus = set(cpus[1:]) if pin else None
    if pin:
        os.sched_setaffinity(0, {cpus[0]})
    floor = {copy: floors(*copy, host_cpus) for copy in copies}
    with tempfile.TemporaryDirectory(prefix="vgpu-phases-") as tmp, \
            running_mediator(Path(tmp), vms=1, extra="poll_us = 1000000", vm_extra=LEASE) as mediator:
        if host_cpus:
            os.sched_setaffinity(mediator.proc.pid, host_cpus)
        with contextlib.ExitStack() as stack:
            copy: Callable[[int, str, int], dict[str, float]]
            if opts.c_transport:
                transport = Transport(build(Path(tmp) / "guest-c"), mediator.vm_socket(1))
                stack.callback(transport.close)
                if transport.call("init", flags=0)[0]:
                    raise RuntimeError("init through the C transport failed")
                copy = functools.partial(measure_c, transport, mediator)
            else:
                gpu = stack.enter_context(TimedGuest.connect(mediator.vm_socket(1)))
                gpu.init()
                copy = functools.partial(measure, gpu, mediator)
            for size, way in copies:
                repeats = opts.repeats or max(5, min(2000, int(0.3 / max(size / 4e9, 20e-6))))
                p = copy(size, way, repeats) | floor[size, way]
                label = f"{way} {size // MIB} MiB" if size >= MIB else f"{way} {size // KIB} KiB"
                rate = size / p["best"] * 1e6 / MIB
                print(f"{label:>12} " + " ".join(f"{p[c]:9.1f}" for c in columns)
                      + f"  {rate:,.0f}; {p['floor'] / p['best']:.0%}, {p['staged'] / p['best']:.0%}",
                      flush=True)
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
