"""sim's CUDA arrays, texture and surface objects and the copies with an array as a side (0x00Bx): what
they hold, the layouts the engine gets, and every hostile value refused with CUDA's status and a reason."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from executor import CallIO, CudaError
from executor._sim import SimExecutor
from executor.ptx._texture_objects import AddressMode
from protocol import CALLS_BY_NAME, CUresult

FLOAT, U8, HALF, S16 = 0x20, 0x01, 0x10, 0x09
LAYERED, SURFACE, CUBEMAP = 0x1, 0x2, 0x4
INVALID, HANDLE = CUresult.CUDA_ERROR_INVALID_VALUE, CUresult.CUDA_ERROR_INVALID_HANDLE
NOT_SUPPORTED = CUresult.CUDA_ERROR_NOT_SUPPORTED
KERNELS = Path(__file__).resolve().parents[1] / "kernels"


class Gpu:
    def __init__(self, quota: int | None = None, host_budget: int | None = None) -> None:
        self.ex = SimExecutor(memory_quota=quota, host_budget=host_budget)
        self.out = b""

    def __call__(self, name: str, *, inp: bytes = b"", out_cap: int = 0, blocking: bool = True, **args: Any) -> Any:
        spec = CALLS_BY_NAME[name]
        out = bytearray(out_cap)
        io = CallIO(memoryview(inp), memoryview(out), blocking)
        result = self.ex.execute(spec, spec.args(**args), io)
        self.out = bytes(out[:io.out_len])
        return result

    def fails(self, status: CUresult, name: str, **args: Any) -> str:
        with pytest.raises(CudaError) as caught:
            self(name, **args)
        assert caught.value.status == status, caught.value
        return caught.value.message

    def array(self, width: int, height: int = 0, depth: int = 0, fmt: int = FLOAT, channels: int = 1,
              flags: int = 0) -> int:
        return int(self("array_create", width=width, height=height, depth=depth, format=fmt, channels=channels,
                        flags=flags).array)

    def put(self, data: np.ndarray, *, array: int = 0, device: int = 0, pitch: int = 0, layout_height: int = 0,
            x: int = 0, y: int = 0, z: int = 0) -> None:
        """``data`` (depth x height x row bytes) into a box."""
        d, h, w = data.shape
        self("memcpy_3d_htod", inp=data.tobytes(), array=array, stream=0, x=x, y=y, z=z, device=device,
             pitch=pitch, layout_height=layout_height, width_bytes=w, height=h, depth=d)

    def get(self, shape: tuple[int, int, int], *, array: int = 0, device: int = 0, pitch: int = 0,
            layout_height: int = 0, x: int = 0, y: int = 0, z: int = 0) -> np.ndarray:
        d, h, w = shape
        self("memcpy_3d_dtoh", out_cap=w * h * d, array=array, stream=0, x=x, y=y, z=z, device=device,
             pitch=pitch, layout_height=layout_height, width_bytes=w, height=h, depth=d)
        return np.frombuffer(self.out, dtype=np.uint8).reshape(shape)

    def texture(self, **args: Any) -> int:
        return int(self("tex_object_create", **(_desc() | args)).texture)


def box(d: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (d, h, w), dtype=np.uint8)


def test_a_2d_array_takes_boxes_and_gives_them_back() -> None:
    gpu = Gpu()
    arr = gpu.array(16, 8, fmt=FLOAT, channels=2)  # rows of 128 bytes
    whole = box(1, 8, 128)
    gpu.put(whole, array=arr)
    assert np.array_equal(gpu.get((1, 8, 128), array=arr), whole)
    part = box(1, 3, 24, seed=1)
    gpu.put(part, array=arr, x=40, y=2)
    expect = whole.copy()
    expect[0, 2:5, 40:64] = part[0]
    assert np.array_equal(gpu.get((1, 8, 128), array=arr), expect)
    assert np.array_equal(gpu.get((1, 3, 24), array=arr, x=40, y=2), part)


def test_copies_between_arrays_and_pitched_device_memory() -> None:
    gpu = Gpu()
    src = gpu.array(8, 4, 3, fmt=U8, channels=4)  # a 3D array: 32-byte rows, 4 rows, 3 slices
    data = box(3, 4, 32)
    gpu.put(data, array=src)
    pitch, rows = 64, 5
    dev = int(gpu("mem_alloc", bytesize=pitch * rows * 3).dptr)
    gpu("memcpy_3d", src_array=src, dst_array=0, stream=0, src_x=0, src_y=0, src_z=0, src_device=0, src_pitch=0,
        src_layout_height=0, dst_x=8, dst_y=1, dst_z=0, dst_device=dev, dst_pitch=pitch, dst_layout_height=rows,
        width_bytes=32, height=4, depth=3)
    linear = np.frombuffer(gpu.ex.device_read(dev, pitch * rows * 3).tobytes(), dtype=np.uint8).reshape(3, rows,
                                                                                                         pitch)
    assert np.array_equal(linear[:, 1:5, 8:40], data)
    assert not linear[:, 0].any() and not linear[:, :, :8].any()
    dst = gpu.array(8, 4, 3, fmt=U8, channels=4)
    gpu("memcpy_3d", src_array=src, dst_array=dst, stream=0, src_x=4, src_y=1, src_z=1, src_device=0,
        src_pitch=0, src_layout_height=0, dst_x=0, dst_y=0, dst_z=0, dst_device=0, dst_pitch=0,
        dst_layout_height=0, width_bytes=28, height=3, depth=2)
    got = gpu.get((3, 4, 32), array=dst)
    assert np.array_equal(got[:2, :3, :28], data[1:, 1:, 4:])
    assert not got[2].any()
    # and pitched host to device memory, one call for the whole box
    gpu.put(box(2, 2, 16, seed=3), device=dev, pitch=pitch, layout_height=rows, x=48, y=3, z=1)
    assert np.array_equal(gpu.get((2, 2, 16), device=dev, pitch=pitch, layout_height=rows, x=48, y=3, z=1),
                          box(2, 2, 16, seed=3))


def test_arrays_are_charged_to_the_quota_and_never_freed_as_memory() -> None:
    gpu = Gpu(quota=1 << 20)
    arr = gpu.array(256, 256, fmt=FLOAT, channels=2)  # 512 KiB
    assert gpu.ex.memory_used() == 512 * 1024
    assert gpu.ex.live_handles() == 1
    gpu.fails(CUresult.CUDA_ERROR_OUT_OF_MEMORY, "array_create", width=256, height=256, depth=0, format=FLOAT,
              channels=4, flags=0)
    layout = gpu.ex.textures.arrays.get(arr).layout()
    assert "cuMemFree" in gpu.fails(INVALID, "mem_free", dptr=layout.base)  # not an allocation of cuMemAlloc
    gpu("array_destroy", array=arr)
    assert gpu.ex.memory_used() == 0
    assert gpu.fails(HANDLE, "array_destroy", array=arr)  # twice
    gpu.array(256, 256, fmt=FLOAT, channels=4)  # the memory is the VM's again


@pytest.mark.parametrize(("args", "status"), [
    (dict(width=4, format=0x04), INVALID),  # not a CUarray_format
    (dict(width=4, format=0xB0), NOT_SUPPORTED),  # NV12
    (dict(width=4, format=0xC0), NOT_SUPPORTED),  # unorm int8x1
    (dict(width=4, channels=3), INVALID),
    (dict(width=4, channels=0), INVALID),
    (dict(width=0), INVALID),
    (dict(width=4, flags=0x200), INVALID),  # no such flag
    (dict(width=4, height=4, flags=0x40), NOT_SUPPORTED),  # sparse
    (dict(width=4, height=0, depth=4), INVALID),  # depth without height
    (dict(width=131073), INVALID),  # past maxTexture1D
    (dict(width=32769, flags=SURFACE), INVALID),  # past maxSurface1D
    (dict(width=16, height=65537), INVALID),
    (dict(width=16, height=32769, flags=0x8), INVALID),  # past maxTexture2DGather
    (dict(width=16385, height=1, depth=1), INVALID),
    (dict(width=16, height=16, depth=16385, flags=SURFACE), INVALID),  # no alternate limits for surfaces
    (dict(width=8193, height=16, depth=16385), INVALID),  # within neither the 3D limits nor the alternate
    (dict(width=16, height=16, depth=32769), INVALID),
    (dict(width=16, height=16, depth=2049, flags=LAYERED), INVALID),  # past maxTexture2DLayered layers
    (dict(width=16, height=8, depth=6, flags=CUBEMAP), INVALID),  # not square
    (dict(width=16, height=16, depth=5, flags=CUBEMAP), INVALID),
    (dict(width=16, height=16, depth=12, flags=CUBEMAP), INVALID),  # 12 faces need LAYERED
    (dict(width=16, height=16, depth=0, flags=LAYERED), INVALID),
    (dict(width=2**40, height=2**40, depth=2**40), INVALID),
    (dict(width=2**64 - 1, height=2**64 - 1, depth=2**64 - 1, channels=4), INVALID),
])
def test_hostile_arrays_are_refused(args: dict[str, int], status: CUresult) -> None:
    gpu = Gpu()
    full = dict(height=0, depth=0, format=FLOAT, channels=1, flags=0) | args
    assert gpu.fails(status, "array_create", **full)
    assert gpu.ex.memory_used() == 0 and gpu.ex.live_handles() == 0


def test_a_thin_deep_3d_array_is_within_the_alternate_limits() -> None:
    gpu = Gpu()
    layout = gpu.ex.textures.arrays.get(gpu.array(4, 4, 16385, fmt=U8)).layout()
    assert (layout.geometry, layout.depth) == ("3d", 16385)


def test_array_kinds_have_the_layouts_the_engine_reads() -> None:
    gpu = Gpu()
    expect = {  # geometry, width, height, depth, layers, row, slice, layer pitch
        (64, 0, 0, 0): ("1d", 64, 1, 1, 1, 256, 256, 256),
        (64, 4, 0, 0): ("2d", 64, 4, 1, 1, 256, 1024, 1024),
        (64, 4, 3, 0): ("3d", 64, 4, 3, 1, 256, 1024, 3072),
        (64, 0, 5, LAYERED): ("1d_layered", 64, 1, 1, 5, 256, 256, 256),
        (64, 4, 5, LAYERED): ("2d_layered", 64, 4, 1, 5, 256, 1024, 1024),
        (8, 8, 6, CUBEMAP): ("cube", 8, 8, 1, 6, 32, 256, 256),
        (8, 8, 12, CUBEMAP | LAYERED): ("cube_layered", 8, 8, 1, 12, 32, 256, 256),
    }
    for (w, h, d, flags), want in expect.items():
        handle = gpu.array(w, h, d, flags=flags)
        layout = gpu.ex.textures.arrays.get(handle).layout()
        got = (layout.geometry, layout.width, layout.height, layout.depth, layout.layers, layout.row_pitch,
               layout.slice_pitch, layout.layer_pitch)
        assert got == want
        assert (layout.channels, layout.channel_bits, layout.kind, layout.texel_bytes) == (1, 32, "float", 4)


def test_boxes_outside_their_sides_are_refused_without_touching_memory() -> None:
    gpu = Gpu()
    arr = gpu.array(16, 8, fmt=HALF, channels=2)  # 4-byte texels, 64-byte rows
    dev = int(gpu("mem_alloc", bytesize=4096).dptr)
    huge = 2**63
    for where in (dict(x=2), dict(x=64), dict(y=8), dict(z=1)):  # a partial texel, past a row, a row, a slice
        gpu.fails(INVALID, "memcpy_3d_htod", inp=bytes(4), array=arr, stream=0, device=0, pitch=0,
                  layout_height=0, width_bytes=4, height=1, depth=1, **(dict(x=0, y=0, z=0) | where))
    gpu.fails(INVALID, "memcpy_3d_htod", inp=bytes(6), array=arr, stream=0, x=0, y=0, z=0, device=0, pitch=0,
              layout_height=0, width_bytes=6, height=1, depth=1)  # 1.5 texels
    gpu.fails(INVALID, "memcpy_3d_htod", inp=bytes(8), array=arr, stream=0, x=0, y=0, z=0, device=0, pitch=0,
              layout_height=0, width_bytes=4, height=1, depth=1)  # payload and box disagree
    gpu.fails(INVALID, "memcpy_3d_dtoh", out_cap=16, array=arr, stream=0, x=0, y=0, z=0, device=0, pitch=0,
              layout_height=0, width_bytes=64, height=8, depth=1)  # more than the output area
    side = dict(src_x=0, src_y=0, src_z=0, src_device=0, src_pitch=0, src_layout_height=0)
    for bad in (dict(dst_pitch=8, dst_layout_height=huge),  # rows wider than their pitch
                dict(dst_pitch=huge, dst_layout_height=huge),  # a pitch that runs past every allocation
                dict(dst_pitch=64, dst_layout_height=2)):  # slices shorter than the box
        gpu.fails(INVALID, "memcpy_3d", src_array=arr, dst_array=0, stream=0, **side, dst_x=0, dst_y=0,
                  dst_z=0, dst_device=dev, width_bytes=64, height=4, depth=2, **bad)
    gpu.fails(INVALID, "memcpy_3d", src_array=arr, dst_array=arr, stream=0, **side, dst_x=0, dst_y=0, dst_z=0,
              dst_device=0, dst_pitch=0, dst_layout_height=0, width_bytes=64, height=huge, depth=huge)
    gone = gpu.array(4)
    gpu("array_destroy", array=gone)
    gpu.fails(HANDLE, "memcpy_3d", src_array=gone, dst_array=arr, stream=0, **side, dst_x=0, dst_y=0, dst_z=0,
              dst_device=0, dst_pitch=0, dst_layout_height=0, width_bytes=4, height=1, depth=1)
    assert not gpu.get((1, 8, 64), array=arr).any()
    assert not gpu.ex.device_read(dev, 4096).any()


def test_texture_objects_over_arrays_linear_and_pitched_memory() -> None:
    gpu = Gpu()
    arr = gpu.array(32, 16, fmt=U8, channels=4)
    tex = gpu.texture(array=arr, address_x=1, address_y=3, filter=1, flags=0x2, border_a=1.0)
    obj = gpu.ex.textures.texture(tex)
    assert obj is not None
    assert obj.layout == gpu.ex.textures.arrays.get(arr).layout()
    sampler = obj.sampler
    assert sampler.address_modes == (AddressMode.CLAMP, AddressMode.BORDER, AddressMode.WRAP)
    assert sampler.linear_filter and sampler.normalized_coords and sampler.normalized_float_read
    assert not sampler.srgb and sampler.border_color == (0.0, 0.0, 0.0, 1.0)
    as_int = gpu.ex.textures.texture(gpu.texture(array=arr, flags=0x1))
    assert as_int is not None and not as_int.sampler.normalized_float_read
    dev = int(gpu("mem_alloc", bytesize=1 << 16).dptr)
    linear = gpu.ex.textures.texture(gpu.texture(resource=2, device=dev, size_bytes=1000, format=S16, channels=2))
    assert linear is not None
    assert (linear.layout.base, linear.layout.geometry, linear.layout.width) == (dev, "1d", 250)
    pitched = gpu.ex.textures.texture(gpu.texture(resource=3, device=dev, width=30, height=20, pitch=128))
    assert pitched is not None
    assert (pitched.layout.base, pitched.layout.row_pitch, pitched.layout.height) == (dev, 128, 20)
    surf = gpu.array(8, 8, flags=SURFACE)
    surface = gpu.ex.textures.surface(int(gpu("surf_object_create", array=surf).surface))
    assert surface is not None and surface.layout == gpu.ex.textures.arrays.get(surf).layout()
    assert gpu.ex.textures.texture(0) is None and gpu.ex.textures.surface(tex) is None  # kinds apart


@pytest.mark.parametrize(("args", "status"), [
    (dict(resource=1), NOT_SUPPORTED),  # mipmapped
    (dict(resource=4), INVALID),
    (dict(address_x=4), INVALID),
    (dict(filter=2), INVALID),
    (dict(flags=0x4), INVALID),
    (dict(resource=2, size_bytes=1024, format=0x05), INVALID),
    (dict(resource=2, size_bytes=1024, channels=3), INVALID),
    (dict(resource=2, size_bytes=2), INVALID),  # less than one texel
    (dict(resource=2, size_bytes=(2**28 + 1) * 4), INVALID),  # past maxTexture1DLinear
    (dict(resource=2, size_bytes=1024, offset=4), INVALID),  # misaligned pointer
    (dict(resource=3, width=16, height=16, pitch=48), INVALID),  # pitch not a multiple of 32
    (dict(resource=3, width=16, height=16, pitch=32), INVALID),  # pitch < row
    (dict(resource=3, width=16, height=65001, pitch=64), INVALID),
    (dict(resource=3, width=0, height=1, pitch=64), INVALID),
    (dict(resource=3, width=2**60, height=2**60, pitch=2**64 - 32), INVALID),
])
def test_hostile_texture_descriptions_are_refused(args: dict[str, int], status: CUresult) -> None:
    gpu = Gpu()
    dev = int(gpu("mem_alloc", bytesize=1 << 16).dptr)
    offset = args.pop("offset", 0)
    resource = args.get("resource", 0)
    target = dict(array=gpu.array(4, 4)) if resource in (0, 1) else dict(device=dev + offset)
    before = gpu.ex.live_handles()
    assert gpu.fails(status, "tex_object_create", **_desc() | target | args)
    assert gpu.ex.live_handles() == before


def _desc() -> dict[str, Any]:
    return dict(resource=0, array=0, device=0, size_bytes=0, width=0, height=0, pitch=0, format=FLOAT, channels=1,
                address_x=0, address_y=0, address_z=0, filter=0, flags=0, border_r=0.0, border_g=0.0,
                border_b=0.0, border_a=0.0)


def test_object_handles_are_checked_and_destroyed_once() -> None:
    gpu = Gpu()
    arr = gpu.array(4, 4)
    assert "SURFACE_LDST" in gpu.fails(INVALID, "surf_object_create", array=arr)
    tex = gpu.texture(array=arr)
    stream = int(gpu("stream_create", flags=0).stream)
    gpu.fails(HANDLE, "tex_object_create", **_desc() | dict(array=stream))  # a handle of another kind
    gpu.fails(HANDLE, "surf_object_destroy", surface=tex)
    gpu.fails(HANDLE, "array_destroy", array=tex)
    gpu("tex_object_destroy", texture=tex)
    gpu.fails(HANDLE, "tex_object_destroy", texture=tex)
    assert gpu.ex.textures.texture(tex) is None
    gpu.ex.close()
    assert gpu.ex.live_handles() == 0 and gpu.ex.memory_used() == 0


def test_a_texture_outliving_its_array_faults_at_use_not_before() -> None:
    """Destroying an array under a live texture is the guest's mistake: the object stays, the memory
    goes, and the engine's checked read of the layout fails as a kernel's would (ILLEGAL_ADDRESS in a
    launch); the address is never handed out again."""
    gpu = Gpu()
    arr = gpu.array(16, 16)
    tex = gpu.texture(array=arr)
    layout = gpu.ex.textures.arrays.get(arr).layout()
    gpu.ex.memory.check(layout.base, 16 * 16 * 4, write=False)
    gpu("array_destroy", array=arr)
    obj = gpu.ex.textures.texture(tex)
    assert obj is not None and obj.layout.base == layout.base
    with pytest.raises(CudaError):
        gpu.ex.memory.check(layout.base, 4, write=False)
    fresh = gpu.ex.textures.arrays.get(gpu.array(16, 16)).layout()
    assert fresh.base != layout.base


def test_copies_captured_in_a_graph_resolve_the_array_when_replayed() -> None:
    gpu = Gpu()
    arr = gpu.array(4, 1)
    dev = int(gpu("mem_alloc", bytesize=256).dptr)
    gpu.ex.device_write(dev, np.arange(16, dtype=np.uint8))
    stream = int(gpu("stream_create", flags=0).stream)
    gpu("stream_begin_capture", stream=stream, mode=2)
    gpu("memcpy_3d", blocking=False, src_array=0, dst_array=arr, stream=stream, src_x=0, src_y=0, src_z=0, src_device=dev,
        src_pitch=16, src_layout_height=1, dst_x=0, dst_y=0, dst_z=0, dst_device=0, dst_pitch=0,
        dst_layout_height=0, width_bytes=16, height=1, depth=1)
    graph = int(gpu("stream_end_capture", stream=stream).graph)
    exe = int(gpu("graph_instantiate", graph=graph, flags=0).graph_exec)
    assert not gpu.get((1, 1, 16), array=arr).any()  # recorded, not run
    gpu("graph_launch", graph_exec=exe, stream=stream)
    assert np.array_equal(gpu.get((1, 1, 16), array=arr)[0, 0], np.arange(16))
    gpu("array_destroy", array=arr)
    gpu.fails(HANDLE, "graph_launch", graph_exec=exe, stream=stream)


def test_objects_are_charged_to_the_host_budget() -> None:
    """Each array, texture and surface object is records in the worker that no device quota sees: a guest
    making them by the million meets the VM's host budget, and destroying them gives it back."""
    gpu = Gpu(host_budget=8 * 1024)
    arr = gpu.array(4, 4, flags=SURFACE)
    made = [gpu.texture(array=arr) for _ in range(6)]
    surface = int(gpu("surf_object_create", array=arr).surface)
    assert gpu.ex.host.used == 8 * 1024
    assert "host budget" in gpu.fails(CUresult.CUDA_ERROR_OUT_OF_MEMORY, "tex_object_create", **_desc() | dict(
        array=arr))
    gpu.fails(CUresult.CUDA_ERROR_OUT_OF_MEMORY, "array_create", width=4, height=0, depth=0, format=FLOAT,
              channels=1, flags=0)
    assert gpu.ex.memory_used() == 64  # the refused array took no device memory either
    gpu("tex_object_destroy", texture=made[0])
    gpu("surf_object_destroy", surface=surface)
    assert gpu.ex.host.used == 6 * 1024
    gpu.texture(array=arr)


def test_kernels_sample_the_objects_through_sim() -> None:
    """A launch through sim hands the VM's objects to the PTX engine (tex2D of the texture corpus): a
    bilinear fetch between four texels, and a handle that is no object faults, sticky."""
    gpu = Gpu()
    width, height = 8, 4
    texels = np.arange(width * height, dtype=np.float32).reshape(1, height, width)
    arr = gpu.array(width, height, fmt=FLOAT)
    gpu.put(texels.view(np.uint8).reshape(1, height, width * 4), array=arr)
    tex = gpu.texture(array=arr, filter=1)  # linear, clamp, unnormalized coordinates
    text = (KERNELS / "ptx_texture.compute_90.ptx").read_bytes() + b"\0"
    module = gpu("module_load_data", inp=text).module
    fn = int(gpu("module_get_function", module=module, inp=b"tex2d_f").function)
    coords = np.array([[0.5, 0.5], [7.5, 3.5], [2.0, 1.5], [3.25, 2.75], [-9.0, 99.0]], dtype=np.float32)
    c, out = (int(gpu("mem_alloc", bytesize=nbytes).dptr) for nbytes in (coords.nbytes, 16 * len(coords)))
    gpu.ex.device_write(c, coords.view(np.uint8).reshape(-1))

    def launch(handle: int) -> None:
        gpu("launch_kernel", function=fn, grid_x=1, grid_y=1, grid_z=1, block_x=32, block_y=1, block_z=1,
            shared_mem_bytes=0, stream=0, inp=struct.pack("<QQQi4x", handle, c, out, len(coords)))
        gpu("ctx_synchronize")

    launch(tex)
    got = np.asarray(gpu.ex.device_read(out, 16 * len(coords))).view(np.float32).reshape(-1, 4)
    # texel (x, y) holds 8y + x; x + 0.5 and y + 0.5 are texel centres; alpha reads 1 (one channel)
    want = [0.0, 31.0, 8 * 1 + 1.5, 8 * 2.25 + 2.75, 8 * 3 + 0.0]
    assert np.array_equal(got[:, 0], np.array(want, dtype=np.float32)) and (got[:, 3] == 1).all()
    with pytest.raises(CudaError) as caught:
        launch(tex + 12345)
        gpu("ctx_synchronize")
    assert caught.value.status == CUresult.CUDA_ERROR_ILLEGAL_ADDRESS and caught.value.sticky
