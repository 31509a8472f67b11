"""The two-copy floors of a staged copy, in C (``benchmarks/staged_floor.c``, built here with ``cc``).

A staged (pageable) copy is two copies on two cores: the guest's into the arena, the host's out of it.
:func:`pipeline_ns` is the best any staged design does on this machine: two processes spinning on each
other's counter in shared memory, copying chunk by chunk with ``memcpy`` and nothing else, at the best
of several chunk sizes. :func:`concurrent_ns` is what the memory system gives two copies at once (each
process its own buffers), :func:`one_copy_ns` the one-copy floor timed the same way. ``ours`` over
``pipeline`` is our overhead; ``pipeline`` over ``one copy`` is the second copy's.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

__all__ = ["CHUNKS", "Pipeline", "available", "concurrent_ns", "one_copy_ns", "pipeline_ns"]

PROGRAM = Path(__file__).with_name("staged_floor.c")
KIB = 1 << 10
#: chunk sizes the pipeline floor tries (those above the copy's size are the same as the size)
CHUNKS = (64 * KIB, 128 * KIB, 256 * KIB, 512 * KIB, 1024 * KIB)


class Pipeline(NamedTuple):
    """The best staged copy: nanoseconds (best and median of the repeats) at the best chunk size."""

    best_ns: int
    median_ns: int
    chunk: int


@functools.cache
def _binary() -> Path | None:
    cc = shutil.which("cc")
    if cc is None:
        return None
    workdir = tempfile.mkdtemp(prefix="vgpu-staged-floor-")
    atexit.register(shutil.rmtree, workdir, True)
    out = Path(workdir) / "staged_floor"
    argv = [cc, "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(out), str(PROGRAM)]
    build = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    return out if build.returncode == 0 else None


def available() -> bool:
    """Whether the C floors can run here: a C compiler and two CPUs to pin the sides to."""
    return (os.cpu_count() or 1) >= 2 and _binary() is not None


def _cpus(host_cpus: set[int] | None) -> tuple[int, int]:
    """(guest CPU, host CPU): this process's first CPU, and the host side's first, or the next one."""
    mine = sorted(os.sched_getaffinity(0))
    host = sorted(host_cpus - {mine[0]}) if host_cpus else []
    if host:
        return mine[0], host[0]
    others = sorted(set(range(os.cpu_count() or 1)) - {mine[0]})
    return mine[0], others[0] if others else mine[0]


def _run(mode: str, size: int, chunk: int, repeats: int, cpus: tuple[int, int]) -> tuple[int, int]:
    """(best, median) nanoseconds of ``repeats`` copies; the program checks the bytes that came through."""
    binary = _binary()
    if binary is None:
        raise RuntimeError("benchmarks/staged_floor.c did not build (no cc?)")
    argv = [str(binary), mode, str(size), str(chunk), str(repeats), str(cpus[0]), str(cpus[1])]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=True).stdout.split()
    return int(out[0]), int(out[1])


def _repeats(size: int) -> int:
    """About 20 ms of copying per measurement, 5 to 200 copies."""
    return max(5, min(200, int(0.02 / max(size / 10e9, 1e-6))))


def pipeline_ns(size: int, way: str = "htod", host_cpus: set[int] | None = None,
                chunks: tuple[int, ...] = CHUNKS, repeats: int = 0) -> Pipeline:
    """The best staged copy of ``size`` bytes (``way``: htod or dtoh) over ``chunks``."""
    cpus, repeats = _cpus(host_cpus), repeats or _repeats(size)
    tried = {min(chunk, size + -size % 4096) for chunk in chunks}
    results = [Pipeline(*_run(way, size, chunk, repeats, cpus), chunk) for chunk in sorted(tried)]
    return min(results)


def concurrent_ns(size: int, host_cpus: set[int] | None = None, repeats: int = 0) -> int:
    """Nanoseconds (best) for two processes on two CPUs to each copy ``size`` bytes of their own at once."""
    return _run("two", size, 0, repeats or _repeats(size), _cpus(host_cpus))[0]


def one_copy_ns(size: int, repeats: int = 0) -> int:
    """Nanoseconds (best) of one ``memcpy`` of ``size`` bytes in one process, timed as the others are."""
    cpu = sorted(os.sched_getaffinity(0))[0]
    return _run("one", size, 0, repeats or _repeats(size), (cpu, cpu))[0]


def main() -> None:
    """``python -m benchmarks._two_copy [BYTES ...]``: the three floors per size (256 KiB-64 MiB by
    default), this process on its first CPU and the other side on the next."""
    sizes = [int(arg) for arg in sys.argv[1:]] or [KIB << (2 * i) for i in range(4, 9)]
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    print(f"load average {os.getloadavg()[0]:.2f}; µs, best copies; shares of one copy")
    for size in sizes:
        one, two = one_copy_ns(size), concurrent_ns(size)
        up, down = pipeline_ns(size, "htod"), pipeline_ns(size, "dtoh")
        staged = [f"{way} {p.best_ns / 1000:,.1f} ({p.chunk >> 10} KiB chunks, {one / p.best_ns:.0%})"
                  for way, p in (("htod", up), ("dtoh", down))]
        print(f"{size >> 10:>7} KiB: one {one / 1000:,.1f}, two at once {two / 1000:,.1f} ({one / two:.0%}), "
              f"pipeline {', '.join(staged)}", flush=True)
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
