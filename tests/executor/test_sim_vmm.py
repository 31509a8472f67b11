"""The sim backend's virtual memory API: GGML's growing pool, aliasing, access, wrong-order frees."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from executor import CallIO, CudaError, DeviceConfig
from executor._sim import SimExecutor
from protocol import CALLS_BY_NAME, CUresult

MiB = 1 << 20
G = 2 * MiB  # the granularity
RW = 3
READ = 1


class Gpu:
    def __init__(self, **kwargs: Any) -> None:
        self.ex = SimExecutor(**kwargs)
        self.out = b""

    def __call__(self, name: str, *, inp: bytes = b"", out_cap: int = 0, **args: Any) -> Any:
        spec = CALLS_BY_NAME[name]
        io = CallIO(memoryview(inp), memoryview(bytearray(out_cap)))
        result = self.ex.execute(spec, spec.args(**args), io)
        self.out = bytes(io.out[:io.out_len])
        return result

    def fails(self, status: CUresult, name: str, **kwargs: Any) -> CudaError:
        with pytest.raises(CudaError) as caught:
            self(name, **kwargs)
        assert caught.value.status == status, caught.value
        return caught.value

    def create(self, size: int) -> int:
        return int(self("mem_create", size=size, device=0, flags=0).handle)

    def reserve(self, size: int, addr: int = 0, alignment: int = 0) -> int:
        return int(self("mem_address_reserve", size=size, alignment=alignment, addr=addr, flags=0).dptr)

    def map(self, ptr: int, size: int, handle: int, offset: int = 0) -> None:
        self("mem_map", ptr=ptr, size=size, offset=offset, handle=handle, flags=0)

    def access(self, ptr: int, size: int, flags: int = RW) -> None:
        self("mem_set_access", ptr=ptr, size=size, device=0, flags=flags)

    def put(self, dst: int, data: bytes) -> None:
        self("memcpy_htod", inp=data, dst=dst, stream=0)

    def get(self, src: int, count: int) -> bytes:
        self("memcpy_dtoh", out_cap=count, src=src, count=count, stream=0)
        return self.out


@pytest.fixture
def gpu() -> Gpu:
    return Gpu(config=DeviceConfig(total_memory=256 * MiB))


def test_granularity_is_2_mib_for_both_options(gpu: Gpu) -> None:
    for option in (0, 1):
        assert gpu("mem_get_allocation_granularity", device=0, option=option).granularity == G
    gpu.fails(CUresult.CUDA_ERROR_INVALID_DEVICE, "mem_get_allocation_granularity", device=1, option=0)


def test_a_pool_grown_chunk_by_chunk_is_one_contiguous_range(gpu: Gpu) -> None:
    """GGML's pool: reserve a large range, then map chunks back to back as it grows."""
    base = gpu.reserve(32 * MiB)
    assert base % G == 0
    chunks = [gpu.create(2 * G), gpu.create(G)]
    gpu.map(base, 2 * G, chunks[0])
    gpu.access(base, 2 * G)
    gpu.map(base + 2 * G, G, chunks[1])
    gpu.access(base + 2 * G, G)
    assert gpu.ex.memory_used() == 3 * G

    data = np.random.default_rng(0).integers(0, 256, 2 * MiB, dtype=np.uint8).tobytes()
    straddling = base + 2 * G - MiB  # half in the first chunk, half in the second
    gpu.put(straddling, data)
    assert gpu.get(straddling, len(data)) == data
    gpu("memset_d32", dst=straddling + 4, count=MiB // 4, value=0x01020304, stream=0)
    assert gpu.get(straddling + 4, 8) == b"\x04\x03\x02\x01" * 2
    gpu("memcpy_dtod", dst=base, src=straddling, count=len(data), stream=0)
    assert gpu.get(base + 4, 4) == b"\x04\x03\x02\x01"
    assert gpu.ex.device_read(base + 2 * G - 4, 8).tobytes() == b"\x04\x03\x02\x01" * 2
    with pytest.raises(CudaError) as caught:
        gpu.ex.device_view(base + 2 * G - 8, 16)
    assert caught.value.status == CUresult.CUDA_ERROR_NOT_SUPPORTED
    assert gpu.ex.device_view(base, 16).size == 16
    gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "memcpy_dtoh", src=base + 3 * G - 4, count=8, stream=0,
              out_cap=8)  # the mapped range ends there


def test_two_mappings_of_one_handle_alias(gpu: Gpu) -> None:
    handle = gpu.create(2 * G)
    first, second = gpu.reserve(2 * G), gpu.reserve(G)
    gpu.map(first, 2 * G, handle)
    gpu.map(second, G, handle, offset=G)  # the handle's second granule, again
    gpu.access(first, 2 * G)
    gpu.access(second, G)
    gpu.put(first + G + 100, b"shared")
    assert gpu.get(second + 100, 6) == b"shared"
    gpu("memset_d8", dst=second, count=3, value=0x55, stream=0)
    assert gpu.get(first + G, 4) == b"\x55\x55\x55\x00"
    assert gpu.ex.memory_used() == 2 * G  # one physical allocation


def test_mapped_memory_needs_access_before_copies(gpu: Gpu) -> None:
    base = gpu.reserve(2 * G)
    gpu.map(base, 2 * G, gpu.create(2 * G))
    gpu.fails(CUresult.CUDA_ERROR_ILLEGAL_ADDRESS, "memcpy_htod", dst=base, stream=0, inp=b"x")
    gpu.access(base, G, READ)
    assert gpu.get(base, 4) == bytes(4)  # read access is enough to read
    gpu.fails(CUresult.CUDA_ERROR_ILLEGAL_ADDRESS, "memset_d8", dst=base, count=1, value=1, stream=0)
    gpu.fails(CUresult.CUDA_ERROR_ILLEGAL_ADDRESS, "memcpy_dtoh", src=base + G - 2, count=4, stream=0,
              out_cap=4)  # the second granule has no access yet
    gpu.access(base, 2 * G, RW)
    gpu.put(base + G - 2, b"okay")
    assert gpu.get(base + G - 2, 4) == b"okay"


def test_a_remapped_range_starts_without_access(gpu: Gpu) -> None:
    base = gpu.reserve(G)
    handle = gpu.create(G)
    gpu.map(base, G, handle)
    gpu.access(base, G)
    gpu.put(base, b"kept")
    gpu("mem_unmap", ptr=base, size=G)
    gpu.map(base, G, handle)
    gpu.fails(CUresult.CUDA_ERROR_ILLEGAL_ADDRESS, "memcpy_dtoh", src=base, count=4, stream=0, out_cap=4)
    gpu.access(base, G)
    assert gpu.get(base, 4) == b"kept"  # the physical memory kept its contents


def test_released_memory_lives_until_its_last_mapping_goes(gpu: Gpu) -> None:
    base = gpu.reserve(2 * G)
    handle = gpu.create(G)
    gpu.map(base, G, handle)
    gpu.map(base + G, G, handle)
    gpu.access(base, 2 * G)
    gpu("mem_release", handle=handle)
    gpu.put(base + 8, b"alive")
    assert gpu.get(base + G + 8, 5) == b"alive"
    assert gpu.ex.memory_used() == G
    gpu.fails(CUresult.CUDA_ERROR_INVALID_HANDLE, "mem_map", ptr=base, size=G, offset=0, handle=handle,
              flags=0)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_HANDLE, "mem_release", handle=handle)
    gpu("mem_unmap", ptr=base, size=G)
    assert gpu.ex.memory_used() == G
    gpu("mem_unmap", ptr=base + G, size=G)
    assert gpu.ex.memory_used() == 0
    gpu("mem_address_free", ptr=base, size=2 * G)


def test_unmap_covers_whole_mappings_and_may_cover_several(gpu: Gpu) -> None:
    base = gpu.reserve(4 * G)
    gpu.map(base, 2 * G, gpu.create(2 * G))
    gpu.map(base + 2 * G, G, gpu.create(G))
    gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "mem_unmap", ptr=base, size=G)  # half a mapping
    gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "mem_unmap", ptr=base, size=4 * G)  # a hole at the end
    gpu("mem_unmap", ptr=base, size=3 * G)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "mem_unmap", ptr=base, size=G)  # nothing mapped


def test_mapping_rules(gpu: Gpu) -> None:
    base = gpu.reserve(4 * G)
    handle = gpu.create(2 * G)
    bad: list[dict[str, int]] = [
        {"ptr": base + 4096, "size": G, "offset": 0},  # unaligned address
        {"ptr": base, "size": G + 4096, "offset": 0},  # unaligned size
        {"ptr": base, "size": G, "offset": 4096},  # unaligned offset
        {"ptr": base, "size": 2 * G, "offset": G},  # past the end of the allocation
        {"ptr": base + 3 * G, "size": 2 * G, "offset": 0},  # past the end of the reservation
        {"ptr": 0x1000_0000, "size": G, "offset": 0},  # no reservation there
    ]
    for args in bad:
        gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "mem_map", handle=handle, flags=0, **args)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "mem_map", ptr=base, size=G, offset=0, handle=handle,
              flags=1)
    gpu.map(base, 2 * G, handle)
    gpu.fails(CUresult.CUDA_ERROR_ALREADY_MAPPED, "mem_map", ptr=base + G, size=G, offset=0,
              handle=gpu.create(G), flags=0)


def test_creation_and_reservation_rules() -> None:
    gpu = Gpu(config=DeviceConfig(total_memory=256 * MiB), memory_quota=8 * MiB)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "mem_create", size=G + 1, device=0, flags=0)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "mem_create", size=G, device=0, flags=1)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_DEVICE, "mem_create", size=G, device=1, flags=0)
    gpu.create(3 * G)
    gpu.fails(CUresult.CUDA_ERROR_OUT_OF_MEMORY, "mem_create", size=2 * G, device=0, flags=0)
    gpu.fails(CUresult.CUDA_ERROR_OUT_OF_MEMORY, "mem_alloc", bytesize=3 * MiB)  # one quota for both
    gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "mem_address_reserve", size=G - 1, alignment=0, addr=0,
              flags=0)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "mem_address_reserve", size=G, alignment=0, addr=0,
              flags=1)
    big = gpu.reserve(G, alignment=64 * MiB)
    assert big % (64 * MiB) == 0
    assert gpu("mem_get_info").free == 2 * MiB  # reservations cost nothing


def test_an_address_hint_is_honoured_when_the_range_is_free(gpu: Gpu) -> None:
    hint = 0x7E00_0000_0000
    assert gpu.reserve(2 * G, addr=hint) == hint
    other = gpu.reserve(G, addr=hint + G)  # taken: the hint is only a hint
    assert other != hint + G and other % G == 0
    gpu("mem_address_free", ptr=hint, size=2 * G)
    assert gpu.reserve(G, addr=hint + G) == hint + G


def test_wrong_order_frees_give_cuda_errors(gpu: Gpu) -> None:
    base = gpu.reserve(2 * G)
    handle = gpu.create(G)
    gpu.map(base, G, handle)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "mem_address_free", ptr=base, size=2 * G)  # mapped
    gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "mem_address_free", ptr=base, size=G)  # wrong size
    gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "mem_free", dptr=base)  # not a cuMemAlloc pointer
    gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "mem_set_access", ptr=base + G, size=G, device=0, flags=RW)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_DEVICE, "mem_set_access", ptr=base, size=G, device=1, flags=RW)
    gpu("mem_release", handle=handle)
    gpu("mem_unmap", ptr=base, size=G)
    gpu("mem_address_free", ptr=base, size=2 * G)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "mem_address_free", ptr=base, size=2 * G)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "mem_map", ptr=base, size=G, offset=0,
              handle=gpu.create(G), flags=0)
    assert gpu.ex.memory_used() == G


def test_close_releases_mapped_and_released_memory(gpu: Gpu) -> None:
    base = gpu.reserve(G)
    handle = gpu.create(G)
    gpu.map(base, G, handle)
    gpu("mem_release", handle=handle)
    gpu.create(G)
    assert gpu.ex.memory_used() == 2 * G
    gpu.ex.close()
    assert gpu.ex.memory_used() == 0
