"""A batch holds the live registers, not the declared ones: nvcc's near-SSA PTX declares registers by
the thousand, and the per-block register bound counts those held at once (``_liveness``) — dead ones
are let go as the kernel runs, never one a thread waiting on another path still needs."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from executor.ptx import LoadedModule, _liveness
from executor.ptx._liveness import liveness, register_count
from executor.ptx._machine import REGISTER_BYTES

from .conftest import ptx_device

HEADER = ".version 8.0\n.target sm_80\n.address_size 64\n"


def _chain(count: int) -> str:
    """A kernel whose value passes through ``count`` registers, each written once (as nvcc writes)."""
    body = "\n".join(f"    add.u32 %r{i + 1}, %r{i}, {i % 7};" for i in range(1, count))
    return HEADER + f""".visible .entry chain(.param .u64 out) {{
    .reg .b32 %r<{count + 1}>; .reg .b64 %rd<4>;
    ld.param.u64 %rd1, [out];
    mov.u32 %r1, %tid.x;
{body}
    mul.wide.u32 %rd2, %r1, 4;
    add.s64 %rd3, %rd1, %rd2;
    st.global.u32 [%rd3], %r{count};
    ret;
}}
"""


def test_a_kernel_declaring_more_registers_than_a_block_may_hold_runs_on_the_live_ones() -> None:
    count = 8250  # 1,024 threads x 8,250 declared x 8 bytes is past the engine's per-block bound
    assert 1024 * count * 8 > REGISTER_BYTES
    dev = ptx_device(_chain(count))
    assert dev.module.program is not None
    code = dev.module.program.functions["chain"]
    assert register_count(code) <= 8 < liveness(code).declared
    out = dev.zeros(1024, np.uint32)
    dev.run("chain", 1, 1024, out)
    want = np.arange(1024, dtype=np.uint32) + sum(i % 7 for i in range(1, count))
    np.testing.assert_array_equal(dev.get(out, 1024, np.uint32), want)


def test_dead_registers_are_let_go_as_the_kernel_runs() -> None:
    count = 1500  # held all at once: 1,024 threads x 1,500 x 4 bytes = 6 MB
    dev = ptx_device(_chain(count))
    out = dev.zeros(1024, np.uint32)
    dev.module.kernel("chain")  # prepared first: the peak below is the launch's own
    tracemalloc.start()
    try:
        dev.run("chain", 1, 1024, out)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, f"{peak} bytes at the peak: dead registers were held"
    want = np.arange(1024, dtype=np.uint32) + sum(i % 7 for i in range(1, count))
    np.testing.assert_array_equal(dev.get(out, 1024, np.uint32), want)


def test_a_register_a_waiting_path_still_reads_is_kept() -> None:
    # the taken path runs first; the last read of %r2 on it must not drop the value the threads
    # waiting at the other path read next
    text = HEADER + """.visible .entry split(.param .u64 out) {
    .reg .pred %p<2>; .reg .b32 %r<80>; .reg .b64 %rd<4>;
    ld.param.u64 %rd1, [out];
    mov.u32 %r1, %tid.x;
    mul.lo.u32 %r2, %r1, 3;
    setp.lt.u32 %p1, %r1, 16;
    @%p1 bra THEN;
    add.u32 %r3, %r2, 1000;
    bra.uni END;
THEN:
    add.u32 %r3, %r2, 1;
END:
    mul.wide.u32 %rd2, %r1, 4;
    add.s64 %rd3, %rd1, %rd2;
    st.global.u32 [%rd3], %r3;
    ret;
}
"""
    dev = ptx_device(text)
    out = dev.zeros(64, np.uint32)
    dev.run("split", 1, 64, out)
    tid = np.arange(64, dtype=np.uint32)
    np.testing.assert_array_equal(dev.get(out, 64, np.uint32), np.where(tid < 16, tid * 3 + 1, tid * 3 + 1000))


def test_the_function_attribute_and_the_launch_bound_count_the_same_registers() -> None:
    module = LoadedModule(_chain(300))
    held = module.resources("chain", 1024).registers
    assert held == module.kernel("chain").registers < 300


def test_a_function_whose_analysis_would_be_too_large_keeps_every_declared_register(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_liveness, "MAX_TRACKED", 100)  # one block x 305 declared registers is past it
    module = LoadedModule(_chain(300))
    assert module.kernel("chain").registers == 305
