"""The cuda backend's arrays, texture and surface objects and array copies without a GPU: the driver calls
they make against a stand-in for cuda.bindings.driver, the VM's quota and memory checked before the
driver sees a pointer, and the handles the guest gets."""

from __future__ import annotations

import itertools
from enum import IntEnum
from types import SimpleNamespace
from typing import Any

import pytest

from executor import CudaError, Executor
from executor._base import Allocation, AllocationMap, HandleTable
from executor._cuda import CudaExecutor
from executor._cuda_driver import Driver
from executor._cuda_textures import CudaTextures
from protocol import CUresult

from .test_handlers import Handle
from .test_handlers import call_handler as _call


class AddressMode(IntEnum):
    WRAP = 0
    CLAMP = 1
    MIRROR = 2
    BORDER = 3


class FilterMode(IntEnum):
    POINT = 0
    LINEAR = 1


class FakeDriver:
    """The structs, enums and calls the texture handlers use, recording every call."""

    CUaddress_mode = AddressMode
    CUfilter_mode = FilterMode

    def __init__(self, object_values: list[int] | None = None) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.object_values = object_values or [7, 8, 9]
        self.arrays: list[Handle] = []  # every array made, in order

    @staticmethod
    def CUarray_format(value: int) -> int:  # noqa: N802 (the bindings' names)
        return value

    CUresourcetype = CUmemorytype = CUarray_format

    @staticmethod
    def CUDA_ARRAY3D_DESCRIPTOR() -> SimpleNamespace:  # noqa: N802
        return SimpleNamespace()

    CUDA_TEXTURE_DESC = CUDA_MEMCPY3D = CUDA_ARRAY3D_DESCRIPTOR

    @staticmethod
    def CUDA_RESOURCE_DESC() -> SimpleNamespace:  # noqa: N802
        return SimpleNamespace(res=SimpleNamespace(array=SimpleNamespace(), linear=SimpleNamespace(),
                                                   pitch2D=SimpleNamespace()))

    def __getattr__(self, name: str) -> Any:
        def call(*args: Any) -> tuple[Any, ...]:
            self.calls.append((name, args))
            if name in ("cuTexObjectCreate", "cuSurfObjectCreate"):
                return (0, self.object_values.pop(0))
            if name == "cuStreamIsCapturing":
                return (0, 0)  # CU_STREAM_CAPTURE_STATUS_NONE
            if name == "cuArray3DCreate":
                self.arrays.append(Handle())
                return (0, self.arrays[-1])
            return (0,)
        return call

    def called(self, name: str) -> list[Any]:
        return [args for called, args in self.calls if called == name]


def _executor(driver: FakeDriver, quota: int | None = None) -> CudaExecutor:
    ex = object.__new__(CudaExecutor)
    Executor.__init__(ex)
    ex._drv = Driver(driver)
    ids = itertools.count(1)
    ex._streams = HandleTable("stream", ids=ids)
    ex._textures = CudaTextures(ids)
    ex._physicals = HandleTable("VMM allocation", ids=ids)
    ex.allocations = AllocationMap()
    ex._alloc_bytes = ex._physical_bytes = 0
    ex.memory_quota = quota
    ex.memory_others = lambda: 0
    ex._null = Handle()
    ex._invalidated = {}
    return ex


def _fails(status: CUresult, ex: CudaExecutor, name: str, **args: Any) -> None:
    with pytest.raises(CudaError) as caught:
        _call(ex, name, **args)
    assert caught.value.status == status, caught.value


TEXTURE: dict[str, Any] = dict(resource=0, array=0, device=0, size_bytes=0, width=0, height=0, pitch=0, format=0x20, channels=1,
               address_x=1, address_y=3, address_z=0, filter=1, flags=2, border_r=0.0, border_g=0.0, border_b=0.0,
               border_a=1.0)


def test_an_array_is_the_drivers_charged_to_the_quota() -> None:
    driver = FakeDriver()
    ex = _executor(driver, quota=1 << 20)
    array = int(_call(ex, "array_create", width=256, height=256, depth=0, format=0x20, channels=2, flags=2).array)
    (desc,), = driver.called("cuArray3DCreate")
    assert (desc.Width, desc.Height, desc.Depth, desc.Format, desc.NumChannels, desc.Flags) == (256, 256, 0, 0x20,
                                                                                                2, 2)
    assert ex.memory_used() == 512 * 1024
    _fails(CUresult.CUDA_ERROR_OUT_OF_MEMORY, ex, "array_create", width=256, height=256, depth=0, format=0x20,
           channels=4, flags=0)
    _fails(CUresult.CUDA_ERROR_INVALID_VALUE, ex, "array_create", width=4, height=0, depth=0, format=0x20,
           channels=3, flags=0)
    assert len(driver.called("cuArray3DCreate")) == 1  # refused before the driver
    _call(ex, "array_destroy", array=array)
    assert driver.called("cuArrayDestroy") == [(driver.arrays[0],)] and ex.memory_used() == 0
    _fails(CUresult.CUDA_ERROR_INVALID_HANDLE, ex, "array_destroy", array=array)


def test_texture_objects_are_the_drivers_handles_over_checked_memory() -> None:
    driver = FakeDriver(object_values=[5, 1 << 40, 6])
    ex = _executor(driver)
    ex.allocations.add(Allocation(0x10000, 4096, "alloc"))
    array = int(_call(ex, "array_create", width=8, height=8, depth=0, format=0x01, channels=4, flags=0).array)
    tex = int(_call(ex, "tex_object_create", **TEXTURE | dict(array=array)).texture)
    assert tex == 5
    (resource, desc, view), = driver.called("cuTexObjectCreate")
    assert resource.resType == 0 and view is None
    assert desc.addressMode == [AddressMode.CLAMP, AddressMode.BORDER, AddressMode.WRAP]
    assert (desc.filterMode, desc.flags, desc.borderColor) == (FilterMode.LINEAR, 2, [0.0, 0.0, 0.0, 1.0])
    # a pointer outside the VM's memory never reaches the driver
    bad: dict[str, Any]
    for bad in (dict(resource=2, device=0x10000, size_bytes=8192), dict(resource=3, device=0x10000, width=16,
                                                                          height=64, pitch=128)):
        _fails(CUresult.CUDA_ERROR_INVALID_VALUE, ex, "tex_object_create", **TEXTURE | bad)
    _fails(CUresult.CUDA_ERROR_NOT_SUPPORTED, ex, "tex_object_create", **TEXTURE | dict(resource=1))
    _fails(CUresult.CUDA_ERROR_INVALID_VALUE, ex, "tex_object_create", **TEXTURE | dict(array=array, address_x=7))
    assert len(driver.called("cuTexObjectCreate")) == 1
    # a handle past 32 bits is destroyed and refused, never truncated
    _fails(CUresult.CUDA_ERROR_NOT_SUPPORTED, ex, "tex_object_create",
           **TEXTURE | dict(resource=2, device=0x10000, size_bytes=4096))
    assert driver.called("cuTexObjectDestroy") == [(1 << 40,)]
    surface = int(_call(ex, "surf_object_create", array=array).surface)
    assert surface == 6
    _call(ex, "tex_object_destroy", texture=tex)
    _fails(CUresult.CUDA_ERROR_INVALID_HANDLE, ex, "tex_object_destroy", texture=tex)
    _fails(CUresult.CUDA_ERROR_INVALID_HANDLE, ex, "surf_object_destroy", surface=tex)
    _call(ex, "surf_object_destroy", surface=surface)
    assert len(ex._textures) == 1  # the array


def test_array_copies_pass_packed_host_payloads_and_checked_device_ranges() -> None:
    driver = FakeDriver()
    ex = _executor(driver)
    ex.allocations.add(Allocation(0x10000, 4096, "alloc"))
    array = int(_call(ex, "array_create", width=16, height=4, depth=0, format=0x20, channels=1, flags=0).array)
    payload = bytes(range(64)) * 2
    _call(ex, "memcpy_3d_htod", inp=payload, array=array, stream=0, x=0, y=1, z=0, device=0, pitch=0,
          layout_height=0, width_bytes=64, height=2, depth=1)
    (params, stream), = driver.called("cuMemcpy3DAsync")
    assert (params.dstMemoryType, params.dstXInBytes, params.dstY, params.srcMemoryType) == (3, 0, 1, 1)
    assert (params.srcPitch, params.srcHeight, params.WidthInBytes, params.Height, params.Depth) == (64, 2, 64, 2, 1)
    assert params.dstArray is driver.arrays[0] and stream is ex._null
    assert driver.called("cuStreamSynchronize")  # the payload is the guest's again on return
    _fails(CUresult.CUDA_ERROR_INVALID_VALUE, ex, "memcpy_3d_htod", inp=payload[:10], array=array, stream=0, x=0,
           y=0, z=0, device=0, pitch=0, layout_height=0, width_bytes=64, height=2, depth=1)
    side: dict[str, Any] = dict(src_array=array, src_x=0, src_y=0, src_z=0, src_device=0, src_pitch=0, src_layout_height=0)
    _call(ex, "memcpy_3d", **side, dst_array=0, stream=0, dst_x=0, dst_y=0, dst_z=0, dst_device=0x10000,
          dst_pitch=256, dst_layout_height=4, width_bytes=64, height=4, depth=1)
    bad: dict[str, Any]
    for bad in (dict(dst_pitch=256, dst_layout_height=4, depth=5),  # past the allocation
                dict(dst_pitch=32, dst_layout_height=4, depth=1)):  # rows wider than their pitch
        _fails(CUresult.CUDA_ERROR_INVALID_VALUE, ex, "memcpy_3d", **side, dst_array=0, stream=0, dst_x=0,
               dst_y=0, dst_z=0, dst_device=0x10000, width_bytes=64, height=4, **bad)
    assert len(driver.called("cuMemcpy3DAsync")) == 2
