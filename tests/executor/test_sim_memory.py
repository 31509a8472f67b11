"""The sim backend's device queries, contexts, allocations, memsets and copies, called directly."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from executor import CallIO, CudaError, DeviceConfig
from executor._sim import SimExecutor
from protocol import CALLS_BY_NAME, CUresult

MiB = 1 << 20


class Gpu:
    """Calls the executor as the worker does: catalog args model in, result model out."""

    def __init__(self, **kwargs: Any) -> None:
        self.ex = SimExecutor(**kwargs)
        self.out = b""

    def __call__(self, name: str, *, inp: bytes = b"", out_cap: int = 0, blocking: bool = True,
                 **args: Any) -> Any:
        spec = CALLS_BY_NAME[name]
        io = CallIO(memoryview(inp), memoryview(bytearray(out_cap)), blocking)
        result = self.ex.execute(spec, spec.args(**args), io)
        self.out = bytes(io.out[:io.out_len])
        return result

    def fails(self, status: CUresult, name: str, **kwargs: Any) -> CudaError:
        with pytest.raises(CudaError) as caught:
            self(name, **kwargs)
        assert caught.value.status == status, caught.value
        return caught.value

    def alloc(self, size: int) -> int:
        return int(self("mem_alloc", bytesize=size).dptr)

    def put(self, dst: int, data: bytes, stream: int = 0) -> None:
        self("memcpy_htod", inp=data, dst=dst, stream=stream)

    def get(self, src: int, count: int, stream: int = 0) -> bytes:
        self("memcpy_dtoh", out_cap=count, src=src, count=count, stream=stream)
        return self.out


@pytest.fixture
def gpu() -> Gpu:
    return Gpu()


# -- driver and device -----------------------------------------------------------------------------


def test_device_queries_describe_the_configured_device() -> None:
    config = DeviceConfig(name="Test GPU", total_memory=8 << 30, compute_capability=(8, 6),
                          uuid=bytes(range(16)), pci_bus_id="0002:41:07.0", multiprocessor_count=40,
                          driver_version=12040)
    gpu = Gpu(config=config)
    gpu("init", flags=0)
    assert gpu("driver_get_version").value == 12040
    assert gpu("device_get_count").value == 1
    assert gpu("device_get", ordinal=0).device == 0
    gpu("device_get_name", device=0, out_cap=64)
    assert gpu.out == b"Test GPU\0"
    attr = {a: gpu("device_get_attribute", attrib=a, device=0).value for a in (75, 76, 16, 1, 10, 102)}
    assert attr == {75: 8, 76: 6, 16: 40, 1: 1024, 10: 32, 102: 1}
    assert gpu("device_get_attribute", attrib=50, device=0).value == 2  # PCI domain
    assert gpu("device_get_attribute", attrib=33, device=0).value == 0x41  # PCI bus
    assert gpu("device_get_attribute", attrib=34, device=0).value == 7  # PCI device
    assert gpu("device_total_mem", device=0).bytes == 8 << 30
    assert gpu("device_get_uuid", device=0).uuid == bytes(range(16))
    gpu("device_get_pci_bus_id", device=0, out_cap=32)
    assert gpu.out == b"0002:41:07.0\0"


def test_device_strings_are_truncated_to_the_output_area_and_stay_nul_terminated(gpu: Gpu) -> None:
    gpu("device_get_name", device=0, out_cap=5)
    assert gpu.out == b"vGPU\0"
    gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "device_get_name", device=0, out_cap=0)


@pytest.mark.parametrize("name", ["device_get_name", "device_total_mem", "device_get_uuid",
                                  "device_get_pci_bus_id", "primary_ctx_retain"])
def test_only_device_zero_exists(gpu: Gpu, name: str) -> None:
    gpu.fails(CUresult.CUDA_ERROR_INVALID_DEVICE, name, device=1, out_cap=16)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_DEVICE, name, device=-1, out_cap=16)


def test_bad_init_flags_ordinals_and_attributes_are_refused(gpu: Gpu) -> None:
    gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "init", flags=1)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_DEVICE, "device_get", ordinal=1)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "device_get_attribute", attrib=9999, device=0)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "device_get_attribute", attrib=0, device=0)


# -- contexts --------------------------------------------------------------------------------------


def test_primary_context_is_reference_counted(gpu: Gpu) -> None:
    first = gpu("primary_ctx_retain", device=0).ctx
    assert first != 0
    assert gpu("primary_ctx_retain", device=0).ctx == first
    gpu("primary_ctx_release", device=0)
    gpu("primary_ctx_release", device=0)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_CONTEXT, "primary_ctx_release", device=0)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_CONTEXT, "ctx_destroy", ctx=first)


def test_context_create_set_get_destroy(gpu: Gpu) -> None:
    assert gpu("ctx_get_current").ctx == 0
    primary = gpu("primary_ctx_retain", device=0).ctx
    gpu("ctx_set_current", ctx=primary)
    assert gpu("ctx_get_current").ctx == primary
    mine = gpu("ctx_create", flags=0, device=0).ctx
    assert mine not in (0, primary)
    assert gpu("ctx_get_current").ctx == mine  # cuCtxCreate pushes the new context
    gpu("ctx_destroy", ctx=mine)
    assert gpu("ctx_get_current").ctx == primary
    gpu.fails(CUresult.CUDA_ERROR_INVALID_CONTEXT, "ctx_destroy", ctx=mine)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_CONTEXT, "ctx_set_current", ctx=mine)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "ctx_create", flags=0x3, device=0)
    gpu("ctx_set_current", ctx=0)
    assert gpu("ctx_get_current").ctx == 0
    gpu("ctx_synchronize")


# -- allocation ------------------------------------------------------------------------------------


def test_allocations_are_aligned_distinct_and_never_reused(gpu: Gpu) -> None:
    ptrs = [gpu.alloc(size) for size in (1, 255, 257, 4096, 3)]
    assert all(p % 256 == 0 for p in ptrs)
    assert len(set(ptrs)) == len(ptrs)
    assert all(p >= 0x7F00_0000_0000 for p in ptrs)
    gpu("mem_free", dptr=ptrs[0])
    assert gpu.alloc(1) not in ptrs


def test_memory_info_and_memory_used_follow_allocations() -> None:
    gpu = Gpu(config=DeviceConfig(total_memory=64 * MiB))
    assert gpu("mem_get_info").free == 64 * MiB
    a = gpu.alloc(10 * MiB)
    b = gpu.alloc(1000)
    assert gpu.ex.memory_used() == 10 * MiB + 1000
    info = gpu("mem_get_info")
    assert (info.free, info.total) == (64 * MiB - 10 * MiB - 1000, 64 * MiB)
    gpu("mem_free", dptr=a)
    gpu("mem_free", dptr=b)
    assert gpu.ex.memory_used() == 0
    assert gpu("mem_get_info").free == 64 * MiB


def test_quota_and_device_size_bound_allocation() -> None:
    gpu = Gpu(config=DeviceConfig(total_memory=64 * MiB), memory_quota=16 * MiB)
    assert gpu("mem_get_info").free == 16 * MiB
    gpu.alloc(12 * MiB)
    gpu.fails(CUresult.CUDA_ERROR_OUT_OF_MEMORY, "mem_alloc", bytesize=5 * MiB)
    gpu.ex.set_memory_quota(None)
    gpu.alloc(5 * MiB)
    gpu.fails(CUresult.CUDA_ERROR_OUT_OF_MEMORY, "mem_alloc", bytesize=48 * MiB)
    assert gpu.ex.memory_used() == 17 * MiB


def test_bad_frees_and_zero_sized_allocations_are_refused(gpu: Gpu) -> None:
    gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "mem_alloc", bytesize=0)
    ptr = gpu.alloc(4096)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "mem_free", dptr=ptr + 256)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "mem_free", dptr=0x1234)
    gpu("mem_free", dptr=ptr)
    error = gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "mem_free", dptr=ptr)
    assert "already freed" in error.message
    gpu("mem_free", dptr=0)  # cudaFree(NULL) is a no-op


# -- memsets ---------------------------------------------------------------------------------------


def test_memsets_write_elements_little_endian(gpu: Gpu) -> None:
    ptr = gpu.alloc(64)
    gpu("memset_d8", dst=ptr, count=64, value=0xAB, stream=0)
    assert gpu.get(ptr, 64) == b"\xab" * 64
    gpu("memset_d16", dst=ptr + 2, count=3, value=0x1234, stream=0)
    assert gpu.get(ptr, 10) == b"\xab\xab" + b"\x34\x12" * 3 + b"\xab\xab"
    gpu("memset_d32", dst=ptr + 16, count=2, value=0xDEADBEEF, stream=0, blocking=False)
    assert gpu.get(ptr + 12, 16) == b"\xab" * 4 + b"\xef\xbe\xad\xde" * 2 + b"\xab" * 4
    gpu("memset_d8", dst=ptr, count=0, value=1, stream=0)
    assert gpu.get(ptr, 1) == b"\xab"


def test_memsets_check_alignment_and_bounds(gpu: Gpu) -> None:
    ptr = gpu.alloc(64)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "memset_d16", dst=ptr + 1, count=1, value=0, stream=0)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "memset_d32", dst=ptr + 2, count=1, value=0, stream=0)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "memset_d32", dst=ptr, count=17, value=0, stream=0)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "memset_d8", dst=ptr + 64, count=1, value=0, stream=0)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_HANDLE, "memset_d8", dst=ptr, count=1, value=0, stream=7)
    assert gpu.get(ptr, 64) == bytes(64)  # nothing was written by the failed calls


# -- copies ----------------------------------------------------------------------------------------


def test_host_copies_round_trip(gpu: Gpu) -> None:
    data = np.random.default_rng(3).integers(0, 256, 100_000, dtype=np.uint8).tobytes()
    ptr = gpu.alloc(len(data))
    assert gpu.get(ptr, 16) == bytes(16)  # fresh memory reads as zeros
    gpu.put(ptr, data)
    assert gpu.get(ptr, len(data)) == data
    gpu.put(ptr + 10, b"xyz")
    assert gpu.get(ptr + 8, 7) == data[8:10] + b"xyz" + data[13:15]


def test_dtoh_must_fit_the_output_area_and_the_allocation(gpu: Gpu) -> None:
    ptr = gpu.alloc(100)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "memcpy_dtoh", src=ptr, count=50, stream=0, out_cap=49)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "memcpy_dtoh", src=ptr + 60, count=50, stream=0, out_cap=50)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "memcpy_htod", dst=ptr + 99, stream=0, inp=b"ab")


def test_dtod_behaves_as_memmove_for_overlapping_ranges(gpu: Gpu) -> None:
    ptr = gpu.alloc(16)
    gpu.put(ptr, bytes(range(16)))
    gpu("memcpy_dtod", dst=ptr + 4, src=ptr, count=8, stream=0)
    assert gpu.get(ptr, 16) == bytes([0, 1, 2, 3, 0, 1, 2, 3, 4, 5, 6, 7, 12, 13, 14, 15])
    gpu("memcpy_dtod", dst=ptr, src=ptr + 4, count=8, stream=0)
    assert gpu.get(ptr, 8) == bytes([0, 1, 2, 3, 4, 5, 6, 7])


def test_a_copy_may_not_run_from_one_allocation_into_the_next(gpu: Gpu) -> None:
    a = gpu.alloc(256)
    b = gpu.alloc(256)
    assert b == a + 256  # adjacent addresses, still two allocations
    gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "memcpy_dtod", dst=b, src=a + 128, count=256, stream=0)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "memcpy_dtoh", src=a, count=300, stream=0, out_cap=300)


def test_freed_memory_cannot_be_touched(gpu: Gpu) -> None:
    ptr = gpu.alloc(64)
    gpu("mem_free", dptr=ptr)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "memcpy_dtoh", src=ptr, count=1, stream=0, out_cap=1)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "memset_d8", dst=ptr, count=1, value=0, stream=0)


def test_device_view_is_the_allocation_itself(gpu: Gpu) -> None:
    ptr = gpu.alloc(32)
    view = gpu.ex.device_view(ptr + 8, 8)
    view[:] = np.arange(8, dtype=np.uint8)
    assert gpu.get(ptr + 8, 8) == bytes(range(8))
    assert not gpu.ex.device_view(ptr, 8, readonly=True).flags.writeable
    with pytest.raises(CudaError) as caught:
        gpu.ex.device_view(ptr + 30, 8)
    assert caught.value.status == CUresult.CUDA_ERROR_INVALID_VALUE


def test_close_releases_everything_and_is_idempotent(gpu: Gpu) -> None:
    gpu.alloc(MiB)
    gpu("stream_create", flags=0)
    assert gpu.ex.memory_used() == MiB
    gpu.ex.close()
    gpu.ex.close()
    assert gpu.ex.memory_used() == 0
    assert len(gpu.ex.allocations) == 0
