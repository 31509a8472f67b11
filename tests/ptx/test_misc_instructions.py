"""Instructions and forms nvcc emits that the corpus does not happen to reach, in hand-written PTX,
against exact references: mad.wide/mad.hi, 16-bit arithmetic, red, ldu, cnot, fences and warp syncs,
predicated stores, vector parameter loads, mov with vector pack/unpack, griddepcontrol; and the
resources the engine lays out for a kernel (what sim answers for its attributes)."""

from __future__ import annotations

import struct

import numpy as np

from executor.ptx import LoadedModule
from protocol import CUresult

from .conftest import ptx_device

HEADER = ".version 8.0\n.target sm_80\n.address_size 64\n"

KERNEL = (
    HEADER
    + """
.visible .entry k(.param .u64 a_ptr, .param .align 8 .b8 pair[8], .param .u64 out_ptr, .param .u64 sum_ptr) {
    .reg .pred %p<3>; .reg .b16 %rs<6>; .reg .b32 %r<20>; .reg .b64 %rd<20>;
    ld.param.u64 %rd1, [a_ptr];
    ld.param.v2.u32 {%r1, %r2}, [pair];
    ld.param.u64 %rd2, [out_ptr];
    ld.param.u64 %rd3, [sum_ptr];
    mov.u32 %r3, %tid.x;
    mul.wide.u32 %rd4, %r3, 4;
    add.s64 %rd5, %rd1, %rd4;
    ldu.global.u32 %r4, [%rd5];
    ld.volatile.global.u32 %r5, [%rd5];
    mad.wide.s32 %rd6, %r4, %r1, %rd4;
    mad.hi.s32 %r6, %r4, %r2, %r1;
    mad.hi.u32 %r7, %r4, %r2, %r1;
    cvt.u16.u32 %rs1, %r4;
    cvt.u16.u32 %rs2, %r1;
    mul.lo.u16 %rs3, %rs1, %rs2;
    min.s16 %rs4, %rs1, %rs2;
    add.u16 %rs5, %rs3, %rs4;
    cvt.u32.u16 %r8, %rs5;
    cnot.b32 %r9, %r5;
    mov.b64 %rd7, {%r4, %r1};
    mov.b64 {%r10, %r11}, %rd6;
    membar.gl;
    fence.acq_rel.gpu;
    bar.warp.sync -1;
    red.global.add.u32 [%rd3], %r4;
    red.global.max.s32 [%rd3+4], %r4;
    mul.wide.u32 %rd8, %r3, 48;
    add.s64 %rd9, %rd2, %rd8;
    st.global.u64 [%rd9], %rd6;
    st.global.v2.u32 [%rd9+8], {%r6, %r7};
    st.global.v2.u32 [%rd9+16], {%r8, %r9};
    st.global.u64 [%rd9+24], %rd7;
    st.global.v2.u32 [%rd9+32], {%r10, %r11};
    and.b32 %r12, %r3, 1;
    setp.eq.u32 %p1, %r12, 1;
    @%p1 st.global.u32 [%rd9+40], %r3;
    ret;
}
"""
)


def test_misc_instructions_against_exact_references() -> None:
    dev = ptx_device(KERNEL)
    n = 64
    a = np.random.default_rng(30).integers(-(1 << 31), 1 << 31, n, dtype=np.int64).astype(np.int32)
    a[:4] = [0, 1, -1, 70000]
    x, y = -123456, 987654321
    pa, out = dev.put(a), dev.zeros(12 * n, np.uint32)
    total = dev.put(np.array([5, -(1 << 31)], dtype=np.int32))
    dev.run("k", 1, n, pa, struct.pack("<ii", x, y), out, total)
    got = dev.get(out, 12 * n, np.uint32).reshape(n, 12)

    def s16(v: int) -> int:
        return ((v + (1 << 15)) % (1 << 16)) - (1 << 15)

    for t in range(n):
        v = int(a[t])
        wide = (v * x + 4 * t) % (1 << 64)
        u16 = ((v & 0xFFFF) * (x & 0xFFFF) + (min(s16(v), s16(x)) & 0xFFFF)) & 0xFFFF
        want = [
            wide & 0xFFFFFFFF,
            wide >> 32,
            ((v * y) >> 32) + x,
            (((v % (1 << 32)) * y) >> 32) + x,
            u16,
            int(v == 0),
            v % (1 << 32),
            x % (1 << 32),
            wide & 0xFFFFFFFF,
            wide >> 32,
            t if t & 1 else 0,
            0,
        ]
        np.testing.assert_array_equal(
            got[t], np.array([w % (1 << 32) for w in want], dtype=np.uint32), err_msg=f"thread {t}: a={v}"
        )
    sums = dev.get(total, 2, np.int32)
    assert sums[0] == ((5 + int(a.astype(np.int64).sum()) + (1 << 31)) % (1 << 32)) - (1 << 31)
    assert sums[1] == int(a.max())


DEPENDENT = (
    HEADER.replace("sm_80", "sm_90")
    + """
.visible .entry dependent(.param .u64 out_ptr) {
    .reg .b32 %r<3>; .reg .b64 %rd<4>;
    .shared .align 4 .b8 tile[64];
    griddepcontrol.wait;
    ld.param.u64 %rd1, [out_ptr];
    mov.u32 %r1, %tid.x;
    mul.wide.u32 %rd2, %r1, 4;
    add.s64 %rd3, %rd1, %rd2;
    st.global.u32 [%rd3], %r1;
    griddepcontrol.launch_dependents;
    ret;
}
"""
)


def test_programmatic_dependent_launch_controls_run_in_stream_order() -> None:
    """griddepcontrol: launches run one after another, each to completion, so there is nothing to
    wait for or signal; the kernel around them runs."""
    dev = ptx_device(DEPENDENT)
    out = dev.zeros(32, np.uint32)
    dev.run("dependent", 1, 32, out)
    np.testing.assert_array_equal(dev.get(out, 32, np.uint32), np.arange(32, dtype=np.uint32))


def test_an_unknown_griddepcontrol_form_is_refused_before_anything_runs() -> None:
    dev = ptx_device(DEPENDENT.replace("griddepcontrol.wait;", "griddepcontrol.signal;"))
    out = dev.zeros(32, np.uint32)
    err = dev.fails("dependent", 1, 32, out)
    assert err.status == CUresult.CUDA_ERROR_NOT_SUPPORTED and "griddepcontrol.signal" in str(err)
    assert not dev.get(out, 32, np.uint32).any()


def test_resources_are_the_engines_layout() -> None:
    """What sim answers for a PTX kernel's attributes: static shared bytes, registers, the block bound."""
    res = LoadedModule(DEPENDENT).resources("dependent", 1024)
    assert (res.static_shared, res.const_bytes, res.local_bytes, res.registers, res.max_threads) == (
        64, 0, 0, 7, 1024)
