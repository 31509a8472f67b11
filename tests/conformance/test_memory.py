"""Allocation, memsets and copies, with CUDA's errors for pointers the VM does not own."""

from __future__ import annotations

import numpy as np
import pytest

from guest import CudaCallError, GuestClient
from protocol import CUresult
from protocol.models import MemAllocArgs, MemcpyDtoHArgs, MemFreeArgs, MemsetD16Args, MemsetD32Args

from ._util import status_of


def test_allocations_are_256_byte_aligned_and_counted_in_mem_info(gpu: GuestClient) -> None:
    free_before, total = gpu.mem_get_info()
    ptrs = [gpu.mem_alloc(size) for size in (1, 255, 4096, 3 << 20)]
    assert all(p % 256 == 0 for p in ptrs)
    assert len(set(ptrs)) == 4
    free_after, total_after = gpu.mem_get_info()
    assert total_after == total
    assert free_before - free_after >= (3 << 20)
    for ptr in ptrs:
        gpu.mem_free(ptr)


def test_allocation_errors(gpu: GuestClient) -> None:
    assert status_of(gpu, "mem_alloc", MemAllocArgs(bytesize=0)) == CUresult.CUDA_ERROR_INVALID_VALUE
    assert status_of(gpu, "mem_alloc", MemAllocArgs(bytesize=1 << 50)) == CUresult.CUDA_ERROR_OUT_OF_MEMORY
    ptr = gpu.mem_alloc(1024)
    assert status_of(gpu, "mem_free", MemFreeArgs(dptr=ptr + 256)) == CUresult.CUDA_ERROR_INVALID_VALUE
    gpu.mem_free(ptr)
    assert status_of(gpu, "mem_free", MemFreeArgs(dptr=ptr)) == CUresult.CUDA_ERROR_INVALID_VALUE


def test_copies_round_trip_and_device_to_device(gpu: GuestClient) -> None:
    data = np.random.default_rng(3).integers(0, 256, 5 << 20, dtype=np.uint8).tobytes()
    a, b = gpu.mem_alloc(len(data)), gpu.mem_alloc(len(data))
    gpu.memcpy_htod(a, data)
    gpu.memcpy_dtod(b, a, len(data))
    assert gpu.memcpy_dtoh(b, len(data)) == data
    gpu.memcpy_htod(a + 100, b"hello")  # interior pointers are fine
    assert gpu.memcpy_dtoh(a + 98, 9) == data[98:100] + b"hello" + data[105:107]


def test_asynchronous_copies_on_a_stream_are_ordered(gpu: GuestClient) -> None:
    stream = gpu.stream_create()
    ptr = gpu.mem_alloc(1 << 16)
    for value in range(1, 6):
        gpu.memcpy_htod(ptr, bytes([value]) * (1 << 16), stream=stream, asynchronous=True)
    gpu.stream_synchronize(stream)
    assert gpu.memcpy_dtoh(ptr, 1 << 16) == b"\5" * (1 << 16)


def test_memsets_of_each_width(gpu: GuestClient) -> None:
    ptr = gpu.mem_alloc(64)
    gpu.memset_d8(ptr, 0xAB, 64)
    assert gpu.memcpy_dtoh(ptr, 64) == b"\xab" * 64
    gpu.checked("memset_d16", MemsetD16Args(dst=ptr + 2, count=3, value=0x1234, stream=0))
    assert gpu.memcpy_dtoh(ptr, 10) == b"\xab\xab" + b"\x34\x12" * 3 + b"\xab\xab"
    gpu.memset_d32(ptr + 16, 0xDEADBEEF, 2, asynchronous=True)
    gpu.ctx_synchronize()
    assert gpu.memcpy_dtoh(ptr + 16, 8) == bytes.fromhex("efbeaddeefbeadde")


def test_misaligned_memsets_are_refused(gpu: GuestClient) -> None:
    ptr = gpu.mem_alloc(64)
    assert status_of(gpu, "memset_d16", MemsetD16Args(dst=ptr + 1, count=2, value=1, stream=0)) == \
        CUresult.CUDA_ERROR_INVALID_VALUE
    assert status_of(gpu, "memset_d32", MemsetD32Args(dst=ptr + 2, count=2, value=1, stream=0)) == \
        CUresult.CUDA_ERROR_INVALID_VALUE


@pytest.mark.parametrize("where", ["before", "past_end", "straddling", "freed"])
def test_copies_outside_the_vms_allocations_are_refused(gpu: GuestClient, where: str) -> None:
    ptr = gpu.mem_alloc(4096)
    target = {"before": ptr - 4096, "past_end": ptr + 4096, "straddling": ptr + 4000, "freed": ptr}[where]
    if where == "freed":
        gpu.mem_free(ptr)
    with pytest.raises(CudaCallError) as htod:
        gpu.memcpy_htod(target, b"x" * 200)
    assert htod.value.status == CUresult.CUDA_ERROR_INVALID_VALUE
    args = MemcpyDtoHArgs(src=target, count=200, stream=0)
    assert status_of(gpu, "memcpy_dtoh", args, out_cap=200) == CUresult.CUDA_ERROR_INVALID_VALUE
    with pytest.raises(CudaCallError):
        gpu.memset_d8(target, 0, 200)


def test_dtoh_larger_than_its_output_area_is_refused(gpu: GuestClient) -> None:
    ptr = gpu.mem_alloc(4096)
    args = MemcpyDtoHArgs(src=ptr, count=4096, stream=0)
    assert status_of(gpu, "memcpy_dtoh", args, out_cap=100) == CUresult.CUDA_ERROR_INVALID_VALUE
