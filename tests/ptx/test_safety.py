"""What a guest's kernel cannot do: touch memory outside the VM's allocations, run unbounded, or
get a wrong result from an instruction the engine does not implement."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from executor.ptx import Limits
from protocol import CUresult

from .conftest import KERNELS, Device, ptx_device

HEADER = ".version 8.0\n.target sm_80\n.address_size 64\n"


def test_an_unimplemented_instruction_is_not_supported_before_anything_runs() -> None:
    sync = ptx_device((KERNELS / "ptx_sync.compute_90.ptx").read_text())  # nvcc 13's mma.sp (sparse)
    d = np.zeros(32, dtype=np.uint32)
    pa, pd = sync.put(np.arange(8, dtype=np.uint32)), sync.put(d)
    err = sync.fails("uses_mma_sp", 1, 32, pa, pd)
    assert err.status == CUresult.CUDA_ERROR_NOT_SUPPORTED and not err.sticky
    assert "mma.sp.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32" in err.message
    np.testing.assert_array_equal(sync.get(pd, 32, np.uint32), d)  # not even the store before it ran
    sync.run("coop_ring", 1, 32, sync.zeros(32, np.uint32), sync.zeros(32, np.uint32), 0)  # the others run


def test_stores_before_an_unimplemented_instruction_do_not_happen() -> None:
    dev = ptx_device(
        HEADER
        + """
.visible .entry k(.param .u64 p) {
    .reg .b64 %rd<2>; .reg .b32 %r<2>;
    ld.param.u64 %rd1, [p];
    mov.u32 %r1, 7;
    st.global.u32 [%rd1], %r1;
    wgmma.fence.sync.aligned;
    ret;
}"""
    )
    out = dev.zeros(1, np.int32)
    err = dev.fails("k", 1, 1, out)
    assert err.status == CUresult.CUDA_ERROR_NOT_SUPPORTED and "wgmma.fence.sync.aligned" in err.message
    assert dev.get(out, 1, np.int32)[0] == 0


def test_a_store_outside_the_allocations_is_a_sticky_illegal_address(corpus90: Device) -> None:
    base = corpus90.zeros(64, np.int32)
    corpus90.run("store_at", 1, 64, base, 0)
    err = corpus90.fails("store_at", 1, 64, base, 1)  # the last thread writes one element past the end
    assert err.status == CUresult.CUDA_ERROR_ILLEGAL_ADDRESS and err.sticky
    assert "store_at" in err.message and f"{base + 256:#x}" in err.message
    err = corpus90.fails("store_at", 1, 1, 0, 0)  # a null pointer
    assert err.status == CUresult.CUDA_ERROR_ILLEGAL_ADDRESS and err.sticky


def test_threads_inside_the_allocation_are_served_when_others_stray() -> None:
    dev = ptx_device(
        HEADER
        + """
.visible .entry k(.param .u64 p, .param .u64 q) {
    .reg .b64 %rd<4>; .reg .b32 %r<2>;
    ld.param.u64 %rd1, [p];
    ld.param.u64 %rd2, [q];
    mov.u32 %r1, %tid.x;
    mul.wide.u32 %rd3, %r1, 4;
    add.s64 %rd3, %rd3, %rd1;
    ld.global.u32 %r1, [%rd3];
    add.s64 %rd2, %rd2, %rd3;
    st.global.u32 [%rd2], %r1;
    ret;
}"""
    )
    # two allocations with unallocated memory between them: every thread's own address is valid
    src = dev.put(np.arange(4, dtype=np.int32))
    dst = dev.zeros(4, np.int32)
    dev.run("k", 1, 4, src, dst - src)
    np.testing.assert_array_equal(dev.get(dst, 4, np.int32), np.arange(4))


def test_a_misaligned_access_is_a_sticky_misaligned_address(corpus90: Device) -> None:
    base = corpus90.zeros(64, np.int32)
    err = corpus90.fails("store_at", 1, 1, base + 2, 0)
    assert err.status == CUresult.CUDA_ERROR_MISALIGNED_ADDRESS and err.sticky and "misaligned" in err.message
    np.testing.assert_array_equal(corpus90.get(base, 64, np.int32), 0)  # nothing was stored
    corpus90.run("store_at", 1, 1, base + 4, 0)  # the same kernel, aligned: it stores
    assert corpus90.get(base, 2, np.int32).tolist() == [0, 7]


MISALIGNED = (
    HEADER
    + """
.visible .entry shared_at(.param .u32 at) {
    .reg .b32 %r<3>;
    .shared .align 8 .b8 tile[64];
    ld.param.u32 %r1, [at];
    mov.u32 %r2, tile;
    add.s32 %r2, %r2, %r1;
    st.shared.u32 [%r2], %r1;
    ret;
}
.visible .entry local_at(.param .u32 at) {
    .local .align 8 .b8 depot[16];
    .reg .b64 %rd<3>; .reg .b32 %r<2>;
    ld.param.u32 %r1, [at];
    mov.u64 %rd1, depot;
    cvt.u64.u32 %rd2, %r1;
    add.s64 %rd1, %rd1, %rd2;
    ld.local.u64 %rd2, [%rd1];
    ret;
}
.visible .entry atom_at(.param .u64 p) {
    .reg .b64 %rd<2>; .reg .b32 %r<2>;
    ld.param.u64 %rd1, [p];
    atom.global.add.u32 %r1, [%rd1], 1;
    ret;
}
.visible .entry generic_v2_at(.param .u64 p) {
    .reg .b64 %rd<2>; .reg .b32 %r<3>;
    ld.param.u64 %rd1, [p];
    ld.v2.u32 {%r1, %r2}, [%rd1];
    ret;
}
"""
)


@pytest.mark.parametrize(
    ("kernel", "good", "bad"),
    [("shared_at", 4, 2), ("local_at", 8, 4), ("atom_at", 0, 2), ("generic_v2_at", 8, 4)],
)
def test_misaligned_accesses_in_every_space_are_sticky_misaligned_addresses(kernel: str, good: int, bad: int) -> None:
    dev = ptx_device(MISALIGNED)
    base = dev.zeros(16, np.uint32)
    offset = 0 if kernel in ("shared_at", "local_at") else base  # an offset, or a device address
    dev.run(kernel, 1, 32, offset + good)
    err = dev.fails(kernel, 1, 32, offset + bad)
    assert err.status == CUresult.CUDA_ERROR_MISALIGNED_ADDRESS and err.sticky
    assert "misaligned" in err.message and f"{offset + bad:#x}" in err.message


def test_shared_and_local_accesses_outside_their_windows_fault() -> None:
    dev = ptx_device(
        HEADER
        + """
.visible .entry shared_oob(.param .u32 at) {
    .reg .b32 %r<3>;
    .shared .align 4 .b8 tile[64];
    ld.param.u32 %r1, [at];
    mov.u32 %r2, tile;
    add.s32 %r2, %r2, %r1;
    st.shared.u32 [%r2], %r1;
    ret;
}
.visible .entry local_oob(.param .u32 at) {
    .local .align 4 .b8 depot[16];
    .reg .b64 %rd<3>; .reg .b32 %r<2>;
    ld.param.u32 %r1, [at];
    mov.u64 %rd1, depot;
    cvt.u64.u32 %rd2, %r1;
    add.s64 %rd1, %rd1, %rd2;
    st.local.u32 [%rd1], %r1;
    ret;
}"""
    )
    dev.run("shared_oob", 1, 32, 60)
    dev.run("local_oob", 1, 32, 12)
    for kernel, at in (("shared_oob", 64), ("local_oob", 1 << 20)):
        err = dev.fails(kernel, 1, 32, at)
        assert err.status == CUresult.CUDA_ERROR_ILLEGAL_ADDRESS and err.sticky, kernel


def test_generic_addresses_reach_shared_local_and_global_memory() -> None:
    dev = ptx_device(
        HEADER
        + """
.visible .entry k(.param .u64 out) {
    .shared .align 4 .b8 tile[128];
    .local .align 4 .b8 depot[8];
    .reg .b64 %rd<8>; .reg .b32 %r<4>;
    ld.param.u64 %rd1, [out];
    mov.u32 %r1, %tid.x;
    mov.u64 %rd2, tile;
    cvta.shared.u64 %rd2, %rd2;
    mul.wide.u32 %rd3, %r1, 4;
    add.s64 %rd4, %rd2, %rd3;
    st.u32 [%rd4], %r1;
    bar.sync 0;
    xor.b32 %r2, %r1, 1;
    mul.wide.u32 %rd3, %r2, 4;
    add.s64 %rd4, %rd2, %rd3;
    ld.u32 %r3, [%rd4];
    mov.u64 %rd5, depot;
    cvta.local.u64 %rd5, %rd5;
    st.u32 [%rd5+4], %r3;
    ld.u32 %r3, [%rd5+4];
    cvta.to.global.u64 %rd6, %rd1;
    mul.wide.u32 %rd3, %r1, 4;
    add.s64 %rd6, %rd6, %rd3;
    st.u32 [%rd6], %r3;
    ret;
}"""
    )
    out = dev.zeros(32, np.int32)
    dev.run("k", 1, 32, out)
    np.testing.assert_array_equal(dev.get(out, 32, np.int32), np.arange(32) ^ 1)


def test_a_trap_is_a_sticky_launch_failure(corpus90: Device) -> None:
    out = corpus90.zeros(32, np.int32)
    err = corpus90.fails("trapper", 1, 32, out, 5)
    assert err.status == CUresult.CUDA_ERROR_LAUNCH_FAILED and err.sticky and "trap" in err.message
    corpus90.run("trapper", 1, 32, out, 99)
    np.testing.assert_array_equal(corpus90.get(out, 32, np.int32), 1)


def test_a_kernel_that_never_ends_times_out(corpus90: Device) -> None:
    flag = corpus90.zeros(1, np.int32)
    err = corpus90.fails("spin", 1, 32, flag, limits=Limits(seconds=0.2))
    assert err.status == CUresult.CUDA_ERROR_LAUNCH_TIMEOUT and err.sticky
    err = corpus90.fails("spin", 1, 32, flag, limits=Limits(instructions=10_000))
    assert err.status == CUresult.CUDA_ERROR_LAUNCH_TIMEOUT
    corpus90.memory.write(flag, np.ones(4, dtype=np.uint8))
    corpus90.run("spin", 1, 32, flag, limits=Limits(seconds=0.2))


def test_recursion_deeper_than_the_bound_fails(corpus90: Device) -> None:
    a, out = corpus90.put(np.array([10, 100], dtype=np.int32)), corpus90.zeros(2, np.int32)
    table = corpus90.zeros(8, np.int32)
    corpus90.run("recursion", 1, 1, a, table, out, 1)
    err = corpus90.fails("recursion", 1, 2, a, table, out, 2, limits=Limits(call_depth=64))
    assert err.status == CUresult.CUDA_ERROR_LAUNCH_FAILED and "recursion" in err.message


def test_a_barrier_in_divergent_code_fails_the_launch() -> None:
    dev = ptx_device(
        HEADER
        + """
.visible .entry k(.param .u64 out) {
    .reg .pred %p<2>; .reg .b32 %r<2>; .reg .b64 %rd<2>;
    mov.u32 %r1, %tid.x;
    setp.lt.u32 %p1, %r1, 16;
    @%p1 bra $L_done;
    bar.sync 0;
$L_done:
    ld.param.u64 %rd1, [out];
    st.global.u32 [%rd1], %r1;
    ret;
}"""
    )
    err = dev.fails("k", 1, 32, dev.zeros(1, np.int32))
    assert err.status == CUresult.CUDA_ERROR_LAUNCH_FAILED and "divergent" in err.message


def test_a_short_parameter_block_is_invalid_value(corpus90: Device) -> None:
    from executor._errors import CudaError
    from executor._kernels import LaunchDims
    from executor.ptx import launch

    with pytest.raises(CudaError) as err:
        launch(corpus90.module, "store_at", corpus90.memory, LaunchDims((1, 1, 1), (1, 1, 1)), b"\0" * 12, {})
    assert err.value.status == CUresult.CUDA_ERROR_INVALID_VALUE and not err.value.sticky


def test_engine_memory_does_not_grow_with_the_grid(corpus90: Device) -> None:
    out = corpus90.zeros(8 * 32 * 256, np.int32)

    def peak(blocks: int) -> int:
        tracemalloc.start()
        try:
            corpus90.run("store_at", blocks, 32, out, 0, limits=Limits(batch_threads=1024))
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small, large = peak(32), peak(256)
    assert large < 2 * small + (1 << 20), (small, large)


def test_unreadable_ptx_loads_and_its_launches_are_not_supported() -> None:
    dev = ptx_device(HEADER + ".visible .entry k( { ret; }")
    from executor._errors import CudaError

    with pytest.raises(CudaError) as err:
        dev.module.kernel("k")
    assert err.value.status == CUresult.CUDA_ERROR_NOT_SUPPORTED and "PTX" in err.value.message
