"""What NVIDIA's CUDA samples and llama.cpp showed the engine lacked (docs/ptx-engine.md): PTX's
predefined ``WARP_SZ`` (the cooperative-groups and wmma samples read it), qualifiers with ``::``,
and the hints ``nanosleep`` and ``prefetch`` (atomics on one address: ``test_atomics.py``)."""

from __future__ import annotations

import numpy as np

from .conftest import ptx_device

HEADER = """
.version 8.0
.target sm_90
.address_size 64
"""

WARP_SIZE = HEADER + """
.visible .entry warp_size(.param .u64 out)
{
    .reg .b32 %r<3>;
    .reg .b64 %rd<2>;
    ld.param.u64 %rd1, [out];
    mov.u32 %r1, WARP_SZ;
    add.s32 %r2, %r1, WARP_SZ;
    st.global.v2.u32 [%rd1], {%r1, %r2};
    ret;
}
"""


def test_warp_sz_is_32() -> None:
    dev = ptx_device(WARP_SIZE)
    out = dev.zeros(2, np.uint32)
    dev.run("warp_size", 1, 1, out)
    assert dev.get(out, 2, np.uint32).tolist() == [32, 64]


QUALIFIED = HEADER + """
.visible .entry qualified(.param .u64 in, .param .u64 out)
{
    .reg .b32 %r<4>;
    .reg .b64 %rd<3>;
    .shared .align 16 .b8 tile[16];
    ld.param.u64 %rd1, [in];
    ld.param.u64 %rd2, [out];
    mov.u32 %r1, tile;
    cp.async.cg.shared.global.L2::128B [%r1], [%rd1], 16;
    cp.async.wait_all;
    ld.shared::cta.u32 %r2, [%r1+4];
    ld.global.L1::no_allocate.u32 %r3, [%rd1+8];
    st.global.v2.u32 [%rd2], {%r2, %r3};
    ret;
}
"""


def test_qualifiers_with_a_double_colon_are_read() -> None:
    """``.L2::128B``, ``.shared::cta``, ``.L1::no_allocate`` (llama.cpp's flash attention copies with
    the first; the parser read ``::`` as two colons before)."""
    dev = ptx_device(QUALIFIED)
    out = dev.zeros(2, np.uint32)
    dev.run("qualified", 1, 32, dev.put(np.arange(4, dtype=np.uint32) + 7), out)
    assert dev.get(out, 2, np.uint32).tolist() == [8, 9]

HINTS = HEADER + """
.visible .entry hints(.param .u64 out, .param .u32 t)
{
    .reg .b32 %r<2>;
    .reg .b64 %rd<3>;
    ld.param.u64 %rd1, [out];
    ld.param.u32 %r1, [t];
    nanosleep.u32 %r1;
    nanosleep.u32 1000;
    prefetch.global.L2 [%rd1];
    prefetch.L1 [%rd1+64];
    mov.u64 %rd2, 0xdead0000;
    prefetch.global.L2 [%rd2];
    prefetchu.L1 [%rd2];
    st.global.u32 [%rd1], %r1;
    ret;
}
"""


def test_nanosleep_and_prefetch_are_hints_that_never_fault() -> None:
    dev = ptx_device(HINTS)
    out = dev.zeros(1, np.uint32)
    dev.run("hints", 1, 32, out, 500)  # a prefetch of an address the VM does not own is no fault
    assert dev.get(out, 1, np.uint32).tolist() == [500]
