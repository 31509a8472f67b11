"""Cooperation between warps and blocks as nvcc 13 compiles it (tests/kernels/ptx_cluster.cu): multi-warp
cooperative_groups tiles (the block's reserved shared memory), invoke_one (elect.sync), an mbarrier
consumer spinning while its producer warp is on the other path of a branch, and thread-block clusters —
their special registers, barrier.cluster, distributed shared memory and the launch's checks — against
exact references."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from executor.ptx import LoadedModule
from executor.ptx._isa_cluster import RESERVED_SMEM, RESERVED_SMEM_BYTES
from protocol import CUresult

from .conftest import KERNELS, Device, ptx_device

CLUSTER_CORPUS = {arch: KERNELS / f"ptx_cluster.compute_{arch}.ptx" for arch in (75, 80, 90)}
Dim3 = tuple[int, int, int]


def _device(path: Path) -> Device:
    return Device(LoadedModule(path.read_text()))


@pytest.fixture(params=sorted(CLUSTER_CORPUS), ids=lambda arch: f"compute_{arch}")
def corpus(request: pytest.FixtureRequest) -> Device:
    return _device(CLUSTER_CORPUS[request.param])


@pytest.fixture
def corpus90() -> Device:
    return _device(CLUSTER_CORPUS[90])


def _ints(count: int, seed: int, low: int = -(10**6), high: int = 10**6) -> npt.NDArray[np.int32]:
    return np.random.default_rng(seed).integers(low, high, count).astype(np.int32)


# -- multi-warp tiles, invoke_one, the mbarrier hand-off (every architecture) ---------------------


def test_multi_warp_tiles(corpus: Device) -> None:
    blocks, bt = 2, 256
    n = blocks * bt
    x = _ints(n, 1)
    pin, pout = corpus.put(x), corpus.zeros(6 * n, np.int32)
    corpus.run("multi_warp_tiles", blocks, bt, pin, pout)
    got = corpus.get(pout, 6 * n, np.int32).reshape(n, 6)
    i = np.arange(n)
    t64, t128 = x.reshape(-1, 64), x.reshape(-1, 128)
    assert (got[:, 0] == np.repeat(t64.sum(axis=1, dtype=np.int32), 64)).all()
    assert (got[:, 1] == np.repeat(t128.max(axis=1), 128)).all()
    assert (got[:, 2] == np.repeat(t64[:, 40], 64)).all()
    assert (got[:, 3] == np.repeat(t128[:, 100] * np.int32(3), 128)).all()
    assert (got[:, 4] == (i % bt // 64) | (i % 64) << 8 | 4 << 16).all()
    assert (got[:, 5] == (i % bt // 128) | (i % 128) << 8 | 128 << 16).all()


def test_multi_warp_tiles_reserve_shared_memory_beside_the_kernels_own() -> None:
    """From compute_80 the tiles' scratch is the block's reserved shared memory, laid out by the
    engine; the kernel's own static shared memory (its attribute) does not count it."""
    for arch in (75, 80, 90):
        module = LoadedModule(CLUSTER_CORPUS[arch].read_text())
        static = module.resources("multi_warp_tiles", 1024).static_shared
        layout = module.kernel("multi_warp_tiles").layout
        begin = layout.shared.get(RESERVED_SMEM)
        if arch == 75:  # block_tile_memory holds the scratch: nothing reserved
            assert begin is None
            continue
        assert begin is not None and static <= begin and begin + RESERVED_SMEM_BYTES <= layout.dynamic_base


def test_invoke_one_elects_the_lowest_odd_lane(corpus: Device) -> None:
    blocks, bt = 3, 96
    n = blocks * bt
    x = _ints(n, 2)
    x[:32] |= 1  # a warp all odd, one with none, the rest at random
    x[32:64] &= ~1
    pin, plead, pcount = corpus.put(x), corpus.zeros(n, np.int32), corpus.zeros(n // 32, np.uint32)
    corpus.run("elect_leader", blocks, bt, pin, plead, pcount)
    odd = (x & 1).astype(bool).reshape(-1, 32)
    first = np.where(odd.any(axis=1), odd.argmax(axis=1), -1)
    lead = np.arange(n).reshape(-1, 32)[np.arange(n // 32), np.maximum(first, 0)] % bt
    want = np.where(odd, lead[:, None], -1).reshape(-1)
    assert (corpus.get(plead, n, np.int32) == want).all()
    assert (corpus.get(pcount, n // 32, np.uint32) == odd.sum(axis=1)).all()


@pytest.mark.parametrize("producer", [0, 1])
def test_mbarrier_consumer_spins_while_its_producer_is_on_the_other_path(
    corpus: Device, producer: int
) -> None:
    """The waiting warp's try_wait/test_wait loop lets the producer's path of the branch run (a loop's
    back edge yields to the sibling path): either order of the two paths ends, with the data."""
    blocks = 3
    x = _ints(32 * blocks, 3)
    pin, pout = corpus.put(x), corpus.zeros(32 * blocks, np.int32)
    corpus.run("mbarrier_handoff", blocks, 64, pin, pout, producer)
    assert (corpus.get(pout, 32 * blocks, np.int32) == 2 * x + 1).all()


@pytest.mark.parametrize("rounds", [1, 4])
def test_named_barriers_hand_tiles_from_a_producer_warp_to_consumer_warps(
    corpus: Device, rounds: int
) -> None:
    blocks = 3
    x = _ints(blocks * rounds * 32, 6)
    pin, pout = corpus.put(x), corpus.zeros(blocks * rounds * 64, np.int32)
    corpus.run("named_barriers", blocks, 96, pin, pout, rounds)
    tiles = x.reshape(blocks, rounds, 1, 32)
    want = np.concatenate([tiles * 1, tiles * 2], axis=2)  # [block][round][consumer][lane]
    assert (corpus.get(pout, blocks * rounds * 64, np.int32) == want.reshape(-1)).all()


_NAMED = """
.version 8.0
.target sm_80
.address_size 64
.visible .entry never(.param .u32 count)
{
    .reg .b32 %r<2>;
    ld.param.u32 %r1, [count];
    bar.sync 1, %r1;
    ret;
}
.visible .entry mixed()
{
    .reg .pred %p<2>;
    .reg .b32 %r<2>;
    mov.u32 %r1, %tid.x;
    setp.lt.u32 %p1, %r1, 32;
    @%p1 bra FIRST;
    bar.arrive 3, 96;
    bra.uni END;
FIRST:
    bar.arrive 3, 64;
END:
    ret;
}
"""


def test_named_barriers_that_cannot_complete_or_disagree_end_the_launch() -> None:
    device = ptx_device(_NAMED)
    device.run("never", 2, 64, 64)  # every thread of the block: completes
    err = device.fails("never", 2, 64, 96)  # waits for a warp that does not exist: forever on a GPU
    assert err.status == CUresult.CUDA_ERROR_LAUNCH_FAILED and "bar.sync" in str(err)
    for count in (0, 48):  # not a positive multiple of the warp size
        assert device.fails("never", 1, 64, count).status == CUresult.CUDA_ERROR_LAUNCH_FAILED
    err = device.fails("mixed", 1, 96)
    assert err.status == CUresult.CUDA_ERROR_LAUNCH_FAILED and "thread counts" in str(err)


# -- clusters (compute_90) -----------------------------------------------------------------------


def _cluster_reference(grid: Dim3, cdim: Dim3, bt: int) -> npt.NDArray[np.uint32]:
    """What cluster_report writes: per thread of each block (the grid's linear order), 12 words."""
    gx, gy, gz = grid
    dx, dy, dz = cdim
    size = dx * dy * dz
    ncx, ncy, ncz = gx // dx, gy // dy, gz // dz
    out = np.zeros((gx * gy * gz, bt, 12), dtype=np.int64)
    t = np.arange(bt)
    for bz in range(gz):
        for by in range(gy):
            for bx in range(gx):
                b = bx + gx * (by + gy * bz)
                c = (bx % dx, by % dy, bz % dz)
                k = (bx // dx, by // dy, bz // dz)
                rank = c[0] + dx * (c[1] + dy * c[2])
                peer = (rank + 1) % size
                px = k[0] * dx + peer % dx
                py = k[1] * dy + (peer // dx) % dy
                pz = k[2] * dz + peer // (dx * dy)
                pb = px + gx * (py + gy * pz)
                row = out[b]
                row[:, 0] = rank
                row[:, 1] = size
                row[:, 2] = c[0] | c[1] << 8 | c[2] << 16
                row[:, 3] = dx | dy << 8 | dz << 16
                row[:, 4] = pb * 1000 + (t + 1) % bt
                row[:, 5] = rank * bt + t
                row[:, 6] = size * bt
                row[:, 7] = peer
                row[:, 8] = k[0] | k[1] << 8 | k[2] << 16
                row[:, 9] = ncx | ncy << 8 | ncz << 16
                row[:, 10] = k[0] + ncx * (k[1] + ncy * k[2])
                row[:, 11] = ncx * ncy * ncz
    return out.reshape(-1).astype(np.uint32)


def _report(device: Device, kernel: str, grid: Dim3, bt: int, cluster: Dim3 | None = None) -> Any:
    n = grid[0] * grid[1] * grid[2] * bt
    out = device.zeros(12 * n, np.uint32)
    device.run(kernel, grid, bt, out, cluster=cluster)
    return device.get(out, 12 * n, np.uint32)


def test_cluster_dims_compiled_in(corpus90: Device) -> None:
    got = _report(corpus90, "cluster_fixed", (6, 2, 1), 96)
    assert (got == _cluster_reference((6, 2, 1), (2, 1, 1), 96)).all()


@pytest.mark.parametrize(
    ("grid", "cdim"),
    [
        ((4, 2, 1), (2, 2, 1)),
        ((2, 4, 2), (1, 2, 2)),
        ((8, 1, 1), (8, 1, 1)),
        ((4, 2, 2), (2, 2, 2)),
        ((3, 1, 1), (1, 1, 1)),
    ],
)
def test_cluster_dims_from_the_launch(corpus90: Device, grid: Dim3, cdim: Dim3) -> None:
    got = _report(corpus90, "cluster_launched", grid, 64, cluster=cdim)
    assert (got == _cluster_reference(grid, cdim, 64)).all()


def test_an_ordinary_launch_is_a_cluster_of_one_block(corpus90: Device) -> None:
    got = _report(corpus90, "cluster_launched", (3, 2, 1), 32)
    assert (got == _cluster_reference((3, 2, 1), (1, 1, 1), 32)).all()


def test_clusters_across_batches(corpus90: Device) -> None:
    """Many clusters: the engine's batches hold whole clusters (8,192 threads at most)."""
    got = _report(corpus90, "cluster_launched", (64, 4, 1), 128, cluster=(4, 2, 1))
    assert (got == _cluster_reference((64, 4, 1), (4, 2, 1), 128)).all()


def test_atomics_on_another_blocks_shared_memory(corpus90: Device) -> None:
    blocks, bt = 8, 64
    x = _ints(blocks * bt, 4, -1000, 1000)
    pin, pout = corpus90.put(x), corpus90.zeros(blocks // 4, np.int32)
    corpus90.run("cluster_atomic", blocks, bt, pin, pout)
    assert (corpus90.get(pout, blocks // 4, np.int32) == x.reshape(2, -1).sum(axis=1)).all()


def test_split_arrive_and_wait(corpus90: Device) -> None:
    grid, bt = (4, 2, 1), 64
    pout = corpus90.zeros(8 * bt, np.int32)
    corpus90.run("cluster_split", grid, bt, pout)
    got = corpus90.get(pout, 8 * bt, np.int32).reshape(2, 4, bt)  # [by][bx][t]
    for by in range(2):
        for bx in range(4):
            rank = bx % 2 + 2 * (by % 2)
            assert (got[by, bx] == ((rank - 1) % 4) * 100 + np.arange(bt)).all()


def test_distributed_shared_memory_is_checked_against_the_target_blocks_window(corpus90: Device) -> None:
    bt = 64
    at = np.tile(np.arange(bt, dtype=np.uint32)[::-1], 2)
    pat, pout = corpus90.put(at), corpus90.zeros(2 * bt, np.uint32)
    corpus90.run("cluster_reach", 2, bt, pat, pout)
    assert (corpus90.get(pout, 2 * bt, np.uint32) == (1 - np.arange(2 * bt) // bt) * 64 + at).all()
    at[70] = 64  # one word past the neighbour's array, the end of its shared memory
    err = corpus90.fails("cluster_reach", 2, bt, corpus90.put(at), pout)
    assert err.status == CUresult.CUDA_ERROR_ILLEGAL_ADDRESS and err.sticky


def test_mbarrier_and_loads_through_shared_cluster_addresses(corpus90: Device) -> None:
    """Rank 1 stores into rank 0's shared memory and arrives on rank 0's mbarrier; rank 0 waits for
    the phase both blocks complete and reads rank 1's own word with ld.shared::cluster."""
    blocks, bt = 6, 64
    x = _ints(blocks * bt, 5, -1000, 1000)
    pin, pout = corpus90.put(x), corpus90.zeros(blocks // 2 * bt, np.int32)
    corpus90.run("cluster_mbarrier", blocks, bt, pin, pout)
    pairs = x.reshape(blocks // 2, 2, bt)
    want = 5 * pairs[:, 0] + 5 * pairs[:, 1] + 2000
    assert (corpus90.get(pout, blocks // 2 * bt, np.int32) == want.reshape(-1)).all()


def test_st_async_and_red_async_complete_on_the_other_blocks_mbarrier(corpus90: Device) -> None:
    blocks, bt = 4, 64
    x = _ints(blocks * bt, 7, -1000, 1000)
    pin, pout = corpus90.put(x), corpus90.zeros(blocks * 128, np.int32)
    corpus90.run("cluster_async_stores", blocks, bt, pin, pout)
    got = corpus90.get(pout, blocks * 128, np.int32).reshape(blocks, 2, bt)
    partner = x.reshape(blocks, bt)[np.arange(blocks) ^ 1]
    assert (got[:, 0] == 3 * partner).all()
    assert (got[:, 1] == 100 + (np.arange(bt) ^ 1)).all()


def test_bulk_copies_into_the_other_blocks_shared_memory(corpus90: Device) -> None:
    blocks, bt = 6, 64
    x = _ints(blocks * bt, 8, -1000, 1000)
    pin, pout = corpus90.put(x), corpus90.zeros(blocks * bt, np.int32)
    corpus90.run("cluster_bulk_copy", blocks, bt, pin, pout)
    partner = x.reshape(blocks, bt)[np.arange(blocks) ^ 1]
    assert (corpus90.get(pout, blocks * bt, np.int32).reshape(blocks, bt) == partner + 7).all()


@pytest.mark.parametrize(
    ("kernel", "grid", "cluster"),
    [
        ("cluster_launched", (16, 1, 1), (16, 1, 1)),  # past the portable 8 blocks
        ("cluster_launched", (6, 1, 1), (4, 1, 1)),  # not dividing the grid
        ("cluster_launched", (4, 3, 1), (1, 2, 1)),
        ("cluster_fixed", (3, 1, 1), None),
        ("cluster_fixed", (4, 1, 1), (4, 1, 1)),  # not the kernel's compiled-in shape
    ],
)
def test_cluster_shapes_a_gpu_refuses(
    corpus90: Device, kernel: str, grid: Dim3, cluster: Dim3 | None
) -> None:
    n = grid[0] * grid[1] * grid[2] * 32
    err = corpus90.fails(kernel, grid, 32, corpus90.zeros(12 * n, np.uint32), cluster=cluster)
    assert err.status == CUresult.CUDA_ERROR_INVALID_CLUSTER_SIZE and not err.sticky


_BARRIER = """
.version 8.0
.target sm_90
.address_size 64
.visible .entry k(.param .u64 out, .param .u32 split)
.explicitcluster
.reqnctapercluster 2, 1, 1
{
    .reg .pred %p<3>;
    .reg .b32 %r<6>;
    .reg .b64 %rd<4>;
    ld.param.u64 %rd1, [out];
    ld.param.u32 %r1, [split];
    mov.u32 %r2, %tid.x;
    setp.ge.u32 %p1, %r2, %r1;
    @%p1 bra GONE;
    mov.pred %p2, %is_explicit_cluster;
    selp.u32 %r3, 1, 0, %p2;
    mov.u32 %r4, %ctaid.x;
    mad.lo.u32 %r5, %r4, 64, %r2;
    mul.wide.u32 %rd2, %r5, 4;
    add.s64 %rd3, %rd1, %rd2;
    st.global.u32 [%rd3], %r3;
    setp.lt.u32 %p1, %r2, 16;
    @%p1 bra OTHER;
    barrier.cluster.arrive;
    barrier.cluster.wait;
    bra.uni GONE;
OTHER:
    barrier.cluster.arrive.release.aligned;
    barrier.cluster.wait.acquire.aligned;
GONE:
    ret;
}
.visible .entry nested(.param .u64 out)
.reqnctapercluster 2, 1, 1
{
    .reg .pred %p<3>;
    .reg .b32 %r<3>;
    mov.u32 %r1, %tid.x;
    setp.lt.u32 %p1, %r1, 32;
    @%p1 bra A;
    barrier.cluster.arrive;
    barrier.cluster.wait;
    bra.uni END;
A:
    setp.lt.u32 %p2, %r1, 16;
    @%p2 bra A2;
    barrier.cluster.arrive;
    barrier.cluster.wait;
    bra.uni END;
A2:
    barrier.cluster.arrive;
    barrier.cluster.wait;
END:
    ret;
}
.visible .entry twice()
{
    barrier.cluster.arrive;
    barrier.cluster.arrive;
    ret;
}
.visible .entry unarrived()
{
    barrier.cluster.wait;
    ret;
}
"""


def test_cluster_barrier_counts_exited_threads_and_waits_across_paths() -> None:
    device = ptx_device(_BARRIER)
    out = device.zeros(128, np.uint32)
    device.run("k", 2, 64, out, 16)  # threads 16-63 return before it: not waited for
    assert (device.get(out, 128, np.uint32) == np.tile(np.arange(64) < 16, 2)).all()
    device.run("k", 2, 64, out, 64)  # two paths at two barrier.cluster.wait: the first lets the other run
    assert (device.get(out, 128, np.uint32) == 1).all()
    # paths nested two deep wait for the outer path, which the engine cannot run before them
    err = device.fails("nested", 2, 64, out)
    assert err.status == CUresult.CUDA_ERROR_LAUNCH_FAILED and "cluster barrier" in str(err)
    for kernel, what in (("twice", "twice"), ("unarrived", "without having arrived")):
        err = device.fails(kernel, 1, 32)
        assert err.status == CUresult.CUDA_ERROR_LAUNCH_FAILED and what in str(err)
