"""Warp-wide instructions (``match``, ``redux``, ``vote.ballot``) over the engine's warp tables
(``_isa_warp._warp_slots``) in the shapes the corpus does not launch: blocks that end in a partial
warp, and only some lanes active (divergent code), each against a per-warp reference."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from .conftest import SM80, indexed_entry, ptx_device

WARP_OPS = SM80 + indexed_entry(
    "warp_ops",
    ".reg .pred %p<6>; .reg .b32 %r<16>; .reg .b64 %rd<8>;",
    """
    mul.wide.u32 %rd3, %r4, 4;
    add.s64 %rd4, %rd1, %rd3;
    ld.global.u32 %r5, [%rd4];
    rem.u32 %r6, %r1, 3;
    setp.eq.u32 %p1, %r6, 0;
    @%p1 bra DONE;
    match.any.sync.b32 %r7, %r5, -1;
    redux.sync.add.u32 %r8, %r5, -1;
    setp.gt.u32 %p2, %r5, 3;
    vote.sync.ballot.b32 %r9, %p2, -1;
    match.all.sync.b32 %r10|%p3, %r5, -1;
    selp.u32 %r11, 1, 0, %p3;
    shfl.sync.idx.b32 %r12|%p4, %r4, %r5, 31, -1;
    selp.u32 %r13, 1, 0, %p4;
    shfl.sync.up.b32 %r14|%p5, %r4, %r5, 0, -1;
    selp.u32 %r15, 1, 0, %p5;
    mul.wide.u32 %rd5, %r4, 36;
    add.s64 %rd6, %rd2, %rd5;
    st.global.u32 [%rd6], %r7;
    st.global.u32 [%rd6+4], %r8;
    st.global.u32 [%rd6+8], %r9;
    st.global.u32 [%rd6+12], %r10;
    st.global.u32 [%rd6+16], %r11;
    st.global.u32 [%rd6+20], %r12;
    st.global.u32 [%rd6+24], %r13;
    st.global.u32 [%rd6+28], %r14;
    st.global.u32 [%rd6+32], %r15;
DONE:
    ret;
""",
) + indexed_entry(
    "partitions",
    ".reg .pred %p<4>; .reg .b32 %r<16>; .reg .b64 %rd<8>;",
    """
    mul.wide.u32 %rd3, %r4, 4;
    add.s64 %rd4, %rd1, %rd3;
    ld.global.u32 %r5, [%rd4];
    rem.u32 %r6, %r1, 3;
    setp.eq.u32 %p1, %r6, 0;
    @%p1 bra END;
    match.any.sync.b32 %r7, %r5, -1;
    redux.sync.max.u32 %r8, %r4, %r7;
    and.b32 %r9, %r1, 1;
    setp.eq.u32 %p2, %r9, 1;
    vote.sync.ballot.b32 %r10, %p2, %r7;
    vote.sync.all.pred %p3, %p2, %r7;
    selp.u32 %r11, 1, 0, %p3;
    redux.sync.add.u32 %r12, %r5, 65535;
    mul.wide.u32 %rd5, %r4, 20;
    add.s64 %rd6, %rd2, %rd5;
    st.global.u32 [%rd6], %r7;
    st.global.u32 [%rd6+4], %r8;
    st.global.u32 [%rd6+8], %r10;
    st.global.u32 [%rd6+12], %r11;
    st.global.u32 [%rd6+16], %r12;
END:
    ret;
""",
)


@pytest.mark.parametrize("block", [48, 64, 100])
def test_partial_warps_and_inactive_lanes(block: int) -> None:
    device = ptx_device(WARP_OPS)
    grid = 3
    n = grid * block
    v = np.random.default_rng(block).integers(0, 6, n).astype(np.uint32)
    v[:block] = 2  # the first block: every warp uniform, so match.all holds there
    pv, out = device.put(v), device.zeros(9 * n, np.uint32)
    device.run("warp_ops", grid, block, pv, out)
    got = device.get(out, 9 * n, np.uint32).reshape(n, 9)
    tid = np.arange(n) % block
    warp = (np.arange(n) // block) * 64 + tid // 32  # warps never straddle blocks
    lane = tid % 32
    active = tid % 3 != 0

    def bits(sel: npt.NDArray[np.bool_]) -> int:
        return sum(1 << int(k) for k in lane[sel])

    for i in np.flatnonzero(active):
        mine = (warp == warp[i]) & active
        everyone = bits(mine)
        uniform = bool((v[mine] == v[i]).all())
        # shuffles with a lane operand of each thread's own (its value): idx reads lane v, up lane - v;
        # a lane past a partial warp's end, or below 0, is the thread itself
        start = i - lane[i]
        size = min(32, block - (tid[i] - lane[i]))
        idx = start + v[i] if v[i] < size else i
        up = i - v[i]
        want = [bits(mine & (v == v[i])), int(v[mine].astype(np.uint64).sum()) & 0xFFFFFFFF,
                bits(mine & (v > 3)), everyone if uniform else 0, int(uniform),
                idx, 1, up if lane[i] >= v[i] else i, int(lane[i] >= v[i])]
        assert got[i].tolist() == want, (block, i)
    assert (got[~active] == 0).all()


@pytest.mark.parametrize("block", [48, 64])
def test_each_thread_takes_part_with_the_lanes_its_membermask_names(block: int) -> None:
    """Cooperative groups' labeled partitions: every lane passes the mask of its own group (from
    match.any), and redux, vote.ballot and vote.all see only those lanes; a uniform membermask names
    the same lanes for everyone."""
    device = ptx_device(WARP_OPS)
    grid = 2
    n = grid * block
    v = np.random.default_rng(block + 1).integers(0, 4, n).astype(np.uint32)
    pv, out = device.put(v), device.zeros(5 * n, np.uint32)
    device.run("partitions", grid, block, pv, out)
    got = device.get(out, 5 * n, np.uint32).reshape(n, 5)
    index = np.arange(n)
    tid = index % block
    warp = (index // block) * 64 + tid // 32
    lane = tid % 32
    active = tid % 3 != 0
    for i in np.flatnonzero(active):
        group = (warp == warp[i]) & active & (v == v[i])
        odd = group & (tid % 2 == 1)
        low = (warp == warp[i]) & active & (lane < 16)
        want = [sum(1 << int(k) for k in lane[group]), int(index[group].max()), sum(1 << int(k) for k in lane[odd]),
                int((odd == group).all()), int(v[low].sum())]
        assert got[i].tolist() == want, (block, i)
