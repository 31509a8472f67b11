"""mbarrier, cp.async.bulk and cp.async.mbarrier.arrive as nvcc 13 emits them for cuda::barrier,
cuda::memcpy_async and cuda::pipeline (compute_80 and compute_90, ``tests/kernels/ptx_sync.cu``), and
the raw operations, against exact references; undefined uses end the launch as a fault."""

from __future__ import annotations

import numpy as np
import pytest

from protocol import CUresult

from .conftest import KERNELS, Device, ptx_device

SYNC = {arch: KERNELS / f"ptx_sync.compute_{arch}.ptx" for arch in (80, 90)}


@pytest.fixture(params=sorted(SYNC), ids=lambda arch: f"compute_{arch}")
def dev(request: pytest.FixtureRequest) -> Device:
    return ptx_device(SYNC[request.param].read_text())


def test_memcpy_async_into_shared_memory_completes_on_the_block_barrier(dev: Device) -> None:
    values = np.random.default_rng(5).integers(-999, 999, 3 * 256, dtype=np.int32)
    data, out = dev.put(values), dev.zeros(3, np.int32)
    dev.run("mb_tile_sum", 3, 128, data, out)
    want = (values.reshape(3, 256).astype(np.int64) * np.arange(1, 257)).sum(axis=1).astype(np.int32)
    np.testing.assert_array_equal(dev.get(out, 3, np.int32), want)


def test_a_barrier_reused_round_after_round_flips_its_phase(dev: Device) -> None:
    blocks, threads, rounds = 2, 96, 5
    values = np.arange(blocks * threads, dtype=np.int32) * 3
    data = dev.put(values)
    dev.run("mb_rounds", blocks, threads, data, rounds)
    want = values.reshape(blocks, threads).copy()
    for r in range(rounds):
        want = np.roll(want + r, -1, axis=1)
    np.testing.assert_array_equal(dev.get(data, blocks * threads, np.int32), want.reshape(-1))


def test_a_two_stage_pipeline_of_async_copies(dev: Device) -> None:
    chunks, threads = 6, 64
    values = np.random.default_rng(9).standard_normal(chunks * threads).astype(np.float32)
    data, out = dev.put(values), dev.zeros(threads, np.float32)
    dev.run("mb_pipeline", 1, threads, data, out, chunks)
    want = np.zeros(threads, np.float32)
    for c in range(chunks):  # accumulated in float32 in the kernel's order
        want += values[c * threads:(c + 1) * threads]
    np.testing.assert_array_equal(dev.get(out, threads, np.float32), want)


@pytest.mark.parametrize("arch", sorted(SYNC), ids=lambda arch: f"compute_{arch}")
def test_arrivals_pending_counts_parities_drops_and_transactions(arch: int) -> None:
    dev = ptx_device(SYNC[arch].read_text())
    threads = 64
    out = dev.zeros(threads * 8, np.uint32)
    dev.run("mb_ops", 1, threads, out)
    got = dev.get(out, threads * 8, np.uint32).reshape(threads, 8)
    # each arrival saw what was pending before it: 64 down to 1, in whichever order they came
    assert sorted(got[:, 0].tolist()) == list(range(1, threads + 1))
    assert (got[:, 1] == 1).all() and (got[:, 2] == 0).all()  # phase 0 complete, phase 1 not yet
    assert (got[:, 3] == 1).all()  # phase 1 completed with every thread, half of them dropping out
    assert (got[:, 4] == 1).all() and (got[:, 5] == 0).all()  # phase 2 needed only the other half
    if arch >= 90:  # expect_tx and complete_tx are sm_90's
        assert (got[:, 6] == 0).all()  # arrivals in, 256 bytes of transactions outstanding
        assert (got[:, 7] == 1).all()  # complete_tx completed it


def test_a_bulk_copy_from_shared_to_global_memory() -> None:
    dev = ptx_device(SYNC[90].read_text())
    out = dev.zeros(3 * 128, np.int32)
    dev.run("mb_bulk_store", 3, 128, out)
    want = np.arange(128)[None, :] * np.arange(3)[:, None]
    np.testing.assert_array_equal(dev.get(out, 3 * 128, np.int32), want.reshape(-1))


HEADER = ".version 8.0\n.target sm_90\n.address_size 64\n"


def _faults(body: str) -> str:
    dev = ptx_device(HEADER + ".visible .entry k() {\n .reg .b64 %rd<4>; .reg .b32 %r<4>;\n"
                     " .shared .align 8 .b64 bar;\n mov.u32 %r1, bar;\n" + body + "\n ret;\n}\n")
    err = dev.fails("k", 1, 32)
    assert err.status == CUresult.CUDA_ERROR_LAUNCH_FAILED and err.sticky
    return err.message


def test_a_barrier_never_initialized_is_a_fault() -> None:
    assert "never initialized" in _faults("mbarrier.arrive.shared.b64 %rd1, [%r1];")


def test_more_arrivals_than_pending_is_a_fault() -> None:
    message = _faults("mov.u32 %r2, 40;\n mov.u32 %r3, 41;\n mbarrier.init.shared.b64 [%r1], %r2;\n"
                      " mbarrier.arrive.shared::cta.b64 %rd1, [%r1], %r3;")
    assert "41 arrivals on an mbarrier phase with 40 pending" in message


def test_an_mbarrier_outside_shared_memory_is_a_fault() -> None:
    assert "outside shared memory" in _faults("mov.u64 %rd2, 4096;\n mbarrier.arrive.b64 %rd1, [%rd2];")


def test_a_bulk_copy_past_the_blocks_shared_memory_is_a_fault_before_anything_is_moved() -> None:
    """Its size is the guest's (a u32): checked before the engine builds temporaries that large."""
    store = (" .shared .align 16 .b8 buf[256];\n mov.u32 %r2, buf;\n mov.u64 %rd2, 4096;\n mov.u32 %r3, {};\n"
             " cp.async.bulk.global.shared::cta.bulk_group [%rd2], [%r2], %r3;")
    assert "past the block's 272 bytes of shared memory" in _faults(store.format(0x100000))
    # each within the block, but 32 threads move 8 KiB out of 272 bytes
    assert "8192 bytes (256 at most per thread)" in _faults(store.format(256))
