"""The virtual memory API as GGML's pool uses it, and CUDA's errors for using it out of order."""

from __future__ import annotations

import numpy as np

from guest import GuestClient
from protocol import CUresult

from ._util import RW, status_of, vmm_pool


def test_granularity_is_a_power_of_two_and_recommended_is_a_multiple(gpu: GuestClient) -> None:
    minimum, recommended = (gpu.value("mem_get_allocation_granularity", "granularity",
                                      gpu.args("mem_get_allocation_granularity", device=0, option=option))
                            for option in (0, 1))
    assert minimum > 0 and minimum & (minimum - 1) == 0
    assert recommended % minimum == 0


def test_a_pool_grown_by_mapping_chunks_is_one_range_copies_straddle_chunks(gpu: GuestClient) -> None:
    base, gran, handles = vmm_pool(gpu, 3)
    free_before, _ = gpu.mem_get_info()
    data = np.random.default_rng(7).integers(0, 256, gran, dtype=np.uint8).tobytes()
    straddling = base + gran - gran // 2  # half in chunk 0, half in chunk 1
    gpu.memcpy_htod(straddling, data)
    assert gpu.memcpy_dtoh(straddling, len(data)) == data
    gpu.memset_d32(base + 2 * gran - 8, 0xA1B2C3D4, 4)
    assert gpu.memcpy_dtoh(base + 2 * gran - 8, 16) == bytes.fromhex("d4c3b2a1") * 4
    gpu.memcpy_dtod(base, straddling, 1024)
    assert gpu.memcpy_dtoh(base, 1024) == data[:1024]
    # the pool ends where the last chunk ends
    assert status_of(gpu, "memcpy_dtoh", gpu.args("memcpy_dtoh", src=base + 3 * gran - 4, count=8, stream=0),
                     out_cap=8) == CUresult.CUDA_ERROR_INVALID_VALUE
    for i, handle in enumerate(handles):
        gpu.checked("mem_unmap", gpu.args("mem_unmap", ptr=base + i * gran, size=gran))
        gpu.checked("mem_release", gpu.args("mem_release", handle=handle))
    gpu.checked("mem_address_free", gpu.args("mem_address_free", ptr=base, size=8 * gran))
    free_after, _ = gpu.mem_get_info()
    assert free_after >= free_before + 3 * gran - gran // 2  # physical memory came back


def test_mapped_memory_needs_access_before_use(gpu: GuestClient) -> None:
    gran = gpu.value("mem_get_allocation_granularity", "granularity",
                     gpu.args("mem_get_allocation_granularity", device=0, option=0))
    base = gpu.value("mem_address_reserve", "dptr",
                     gpu.args("mem_address_reserve", size=gran, alignment=0, addr=0, flags=0))
    handle = gpu.value("mem_create", "handle", gpu.args("mem_create", size=gran, device=0, flags=0))
    gpu.checked("mem_map", gpu.args("mem_map", ptr=base, size=gran, offset=0, handle=handle, flags=0))
    assert status_of(gpu, "memcpy_htod", gpu.args("memcpy_htod", dst=base, stream=0), data=b"x") != 0
    gpu.checked("mem_set_access", gpu.args("mem_set_access", ptr=base, size=gran, device=0, flags=RW))
    gpu.memcpy_htod(base, b"now it works")
    assert gpu.memcpy_dtoh(base, 12) == b"now it works"


def test_freeing_in_the_wrong_order_gives_cudas_errors(gpu: GuestClient) -> None:
    base, gran, (handle,) = vmm_pool(gpu, 1, reserve_chunks=2)
    assert status_of(gpu, "mem_address_free", gpu.args("mem_address_free", ptr=base, size=2 * gran)) != 0
    assert status_of(gpu, "mem_free", gpu.args("mem_free", dptr=base)) == CUresult.CUDA_ERROR_INVALID_VALUE
    assert status_of(gpu, "mem_unmap", gpu.args("mem_unmap", ptr=base, size=gran // 2)) != 0
    assert status_of(gpu, "mem_map", gpu.args("mem_map", ptr=base, size=gran, offset=0, handle=handle,
                                              flags=0)) != 0  # already mapped
    # releasing a mapped handle is allowed: the memory lives until it is unmapped
    gpu.checked("mem_release", gpu.args("mem_release", handle=handle))
    gpu.memcpy_htod(base, b"still mapped")
    assert gpu.memcpy_dtoh(base, 12) == b"still mapped"
    assert status_of(gpu, "mem_release", gpu.args("mem_release", handle=handle)) == \
        CUresult.CUDA_ERROR_INVALID_HANDLE
    gpu.checked("mem_unmap", gpu.args("mem_unmap", ptr=base, size=gran))
    assert status_of(gpu, "memcpy_dtoh", gpu.args("memcpy_dtoh", src=base, count=4, stream=0),
                     out_cap=4) == CUresult.CUDA_ERROR_INVALID_VALUE
    gpu.checked("mem_address_free", gpu.args("mem_address_free", ptr=base, size=2 * gran))
    assert status_of(gpu, "mem_address_free", gpu.args("mem_address_free", ptr=base, size=2 * gran)) != 0
