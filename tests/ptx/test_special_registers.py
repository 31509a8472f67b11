"""Special registers the corpus does not reach through CUDA C++: lane masks, the dynamic shared memory
size, warp counts, clocks; and vote.sync.uni, activemask under divergence."""

from __future__ import annotations

import numpy as np

from .conftest import ptx_device

HEADER = ".version 8.0\n.target sm_80\n.address_size 64\n"

KERNEL = (
    HEADER
    + """
.visible .entry k(.param .u64 out) {
    .reg .pred %p<4>; .reg .b32 %r<16>; .reg .b64 %rd<8>;
    ld.param.u64 %rd1, [out];
    mov.u32 %r1, %tid.x;
    mul.wide.u32 %rd2, %r1, 32;
    add.s64 %rd3, %rd1, %rd2;
    mov.u32 %r2, %lanemask_lt;
    mov.u32 %r3, %lanemask_ge;
    mov.u32 %r4, %dynamic_smem_size;
    mov.u32 %r5, %nwarpid;
    and.b32 %r6, %r1, 3;
    setp.eq.u32 %p1, %r6, 0;
    vote.sync.uni.pred %p2, %p1, -1;
    selp.u32 %r7, 1, 0, %p2;
    setp.lt.u32 %p3, %r1, 40;
    vote.sync.uni.pred %p2, %p3, -1;
    selp.u32 %r8, 1, 0, %p2;
    mov.u32 %r9, 0;
    @!%p1 bra $L_skip;
    activemask.b32 %r9;
$L_skip:
    mov.u64 %rd4, %clock64;
    mov.u64 %rd5, %clock64;
    setp.ge.u64 %p2, %rd5, %rd4;
    selp.u32 %r10, 1, 0, %p2;
    st.global.v4.u32 [%rd3], {%r2, %r3, %r4, %r5};
    st.global.v4.u32 [%rd3+16], {%r7, %r8, %r9, %r10};
    ret;
}
"""
)


def test_lane_masks_warp_counts_votes_and_clocks() -> None:
    dev = ptx_device(KERNEL)
    out = dev.zeros(8 * 80, np.uint32)
    dev.run("k", 1, 80, out, shared=96)
    got = dev.get(out, 8 * 80, np.uint32).reshape(80, 8)
    lane = np.arange(80) % 32
    lt = (1 << lane) - 1
    np.testing.assert_array_equal(got[:, 0], lt)
    np.testing.assert_array_equal(got[:, 1], (~lt) & 0xFFFFFFFF)
    np.testing.assert_array_equal(got[:, 2], 96)
    np.testing.assert_array_equal(got[:, 3], 3)  # 80 threads: three warps, the last partial
    np.testing.assert_array_equal(got[:, 4], 0)  # tid % 4 == 0 differs within every warp
    np.testing.assert_array_equal(got[:, 5], [1] * 32 + [0] * 32 + [1] * 16)  # tid < 40: only warp 1 splits
    every_fourth = sum(1 << k for k in range(0, 32, 4))
    warp_lanes = [every_fourth] * 64 + [sum(1 << k for k in range(0, 16, 4))] * 16
    np.testing.assert_array_equal(got[:, 6], np.where(np.arange(80) % 4 == 0, warp_lanes, 0))
    np.testing.assert_array_equal(got[:, 7], 1)  # %clock64 never goes back
