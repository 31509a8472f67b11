"""``mov`` between a 64-bit (32-bit) register and its 32-bit (16-bit) halves, both ways, per thread
(the engine packs them as each thread's bytes side by side): halves swapped and joined again."""

from __future__ import annotations

import numpy as np

from .conftest import ptx_device

PACK = """
.version 8.0
.target sm_80
.address_size 64
.visible .entry swap_halves(.param .u64 in_ptr, .param .u64 out_ptr)
{
    .reg .b16 %h<3>;
    .reg .b32 %r<8>;
    .reg .b64 %rd<10>;
    ld.param.u64 %rd1, [in_ptr];
    ld.param.u64 %rd2, [out_ptr];
    mov.u32 %r1, %tid.x;
    mul.wide.u32 %rd3, %r1, 8;
    add.s64 %rd4, %rd1, %rd3;
    ld.global.u64 %rd5, [%rd4];
    mov.b64 {%r2, %r3}, %rd5;
    mov.b64 %rd6, {%r3, %r2};
    mov.b32 {%h1, %h2}, %r2;
    mov.b32 %r4, {%h2, %h1};
    cvt.u64.u32 %rd7, %r4;
    add.s64 %rd8, %rd2, %rd3;
    st.global.u64 [%rd8], %rd6;
    add.s64 %rd9, %rd8, 512;
    st.global.u64 [%rd9], %rd7;
    ret;
}
"""


def test_halves_swapped_and_joined() -> None:
    device = ptx_device(PACK)
    v = np.random.default_rng(9).integers(0, 2**64, 64, dtype=np.uint64)
    pv, out = device.put(v), device.zeros(128, np.uint64)
    device.run("swap_halves", 1, 64, pv, out)
    got = device.get(out, 128, np.uint64)
    lo, hi = v & np.uint64(0xFFFFFFFF), v >> np.uint64(32)
    assert (got[:64] == (lo << np.uint64(32)) | hi).all()
    lo16, hi16 = lo & np.uint64(0xFFFF), (lo >> np.uint64(16)) & np.uint64(0xFFFF)
    assert (got[64:] == (lo16 << np.uint64(16)) | hi16).all()
