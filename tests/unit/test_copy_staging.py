"""Staged (pageable) copies: the worker's memcpy setting, the staged floor and the phase profile."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks import _two_copy
from benchmarks._floors import page_aligned, staged_copy_bandwidth
from benchmarks._loopback import Loopback
from guest import GuestClient
from mediator._worker import MEMCPY_TUNABLE, worker_environment

LD_SO = Path("/lib64/ld-linux-x86-64.so.2")


def test_workers_get_the_memcpy_tunable_and_keep_the_operators_others() -> None:
    assert worker_environment({"PATH": "/bin"})["GLIBC_TUNABLES"] == MEMCPY_TUNABLE
    env = worker_environment({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"})
    assert env["GLIBC_TUNABLES"] == f"glibc.malloc.arena_max=2:{MEMCPY_TUNABLE}"
    own = "glibc.cpu.x86_rep_movsb_threshold=8192"
    assert worker_environment({"GLIBC_TUNABLES": own})["GLIBC_TUNABLES"] == own, "the operator's value stands"


@pytest.mark.skipif(not LD_SO.exists(), reason="no x86-64 glibc loader")
def test_this_glibc_takes_the_tunable() -> None:
    """A misspelt tunable is ignored silently: the loader must list ours with its new value."""
    listed = subprocess.run([str(LD_SO), "--list-tunables"], env=worker_environment({}), capture_output=True,
                            text=True, check=True).stdout
    assert "glibc.cpu.x86_rep_movsb_threshold: 0xffffffff" in listed


def test_page_aligned_buffers_start_on_a_page_and_hold_their_fill() -> None:
    buf = page_aligned(10_000, 7)
    assert buf.ctypes.data % 4096 == 0 and buf.nbytes == 10_000 and int(buf.min()) == int(buf.max()) == 7


def test_the_staged_floor_copies_through_a_second_process() -> None:
    cpus = sorted(os.sched_getaffinity(0))
    rate = staged_copy_bandwidth(1 << 20, 256 << 10, set(cpus[1:]) or None, repeats=2)
    assert rate > 0


@pytest.mark.skipif(not _two_copy.available(), reason="no C compiler or one CPU")
@pytest.mark.parametrize("way", ["htod", "dtoh"])
def test_the_c_staged_floor_moves_every_byte(way: str) -> None:
    """The C pipeline checks what came through (a pattern, so a chunk in the wrong place shows); a size
    that is no multiple of the chunk ends on a short one."""
    floor = _two_copy.pipeline_ns(3 * 65536 + 4097, way, chunks=(65536, 131072), repeats=2)
    assert floor.chunk in (65536, 131072) and 0 < floor.best_ns <= floor.median_ns
    assert _two_copy.concurrent_ns(65536, repeats=2) > 0 and _two_copy.one_copy_ns(65536, repeats=2) > 0


def test_copies_go_in_chunks_of_the_square_root_rule() -> None:
    """sqrt(size * 64 KiB) in 64 KiB steps, 256 KiB to 1 MiB, never above the channel's chunk."""
    gpu = GuestClient.__new__(GuestClient)
    gpu.chunk = 4 << 20
    sizes = [256 << 10, (256 << 10) + 1, 1 << 20, 4 << 20, 8 << 20, 16 << 20, 256 << 20]
    assert [gpu._copy_chunk(size) >> 10 for size in sizes] == [4096, 256, 256, 512, 768, 1024, 1024]
    gpu.chunk = 384 << 10
    assert gpu._copy_chunk(4 << 20) == 384 << 10


def test_a_chunked_htod_places_every_chunk_at_the_sources_offset_within_a_page() -> None:
    """The copy's offset within a page is worked out once and holds for each chunk (chunks are whole
    pages); the short last chunk too, and the bytes arrive."""
    raw = bytearray(os.urandom((1 << 20) + 5000 + 8192))
    start = -np.frombuffer(raw, dtype=np.uint8).ctypes.data % 4096 + 0x123
    source = memoryview(raw)[start:start + (1 << 20) + 5000]
    with Loopback(region_size=8 << 20) as loop:
        gpu = loop.guest
        gpu.init()
        placed: list[int] = []
        reserve = gpu._reserve

        def recording(length: int, phase: int | None = None) -> int:
            placed.append(reserve(length, phase))
            return placed[-1]

        gpu._reserve = recording  # type: ignore[method-assign]
        ptr = gpu.mem_alloc(len(source))
        gpu.memcpy_htod(ptr, source)
        assert len(placed) == 4 and all(off % 4096 == 0x123 for off in placed), [hex(off) for off in placed]
        assert gpu.memcpy_dtoh(ptr, len(source)) == bytes(source)


@pytest.mark.slow
def test_the_phase_profile_runs_against_a_real_mediator() -> None:
    run = subprocess.run([sys.executable, "-m", "benchmarks.copy_phases", "--size", "65536", "--size", "1048576",
                          "--repeats", "5"], capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr
    rows = [line.split() for line in run.stdout.splitlines() if line.strip().startswith(("htod", "dtoh"))]
    assert [(r[0], r[1], r[2]) for r in rows] == [("htod", "64", "KiB"), ("dtoh", "64", "KiB"),
                                                  ("htod", "1", "MiB"), ("dtoh", "1", "MiB")]
    assert all(float(r[3]) > 0 and float(r[-5]) > 0 for r in rows), run.stdout
