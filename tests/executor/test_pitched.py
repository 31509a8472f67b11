"""The pitched calls of 0x00C8-0x00CF on the host: ``memset_2d`` (``cuMemsetD2D8/16/32``) and the box
copies between the caller's pinned memory and device memory or an array (``memcpy_3d_*_pinned``), on
``sim`` and on ``cuda`` against a stand-in for the driver. Every field is the guest's: a row wider than
its pitch, a span past 2^64 or outside the VM's memory, an element size CUDA has none for is
CUDA_ERROR_INVALID_VALUE, counted and logged, and nothing is written."""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import structlog

from executor import CallIO, CudaError, PinnedArea, SimExecutor, VmShare
from protocol import CALLS_BY_NAME, CUresult
from protocol.models import Memcpy3DPinnedArgs, Memset2DArgs
from tests.executor.test_pinned import FakeDriver, cuda_executor
from tests.reliability._ring_pair import RingPair

INVALID = CUresult.CUDA_ERROR_INVALID_VALUE
PAGE = 4096
MIB = 1 << 20


def call(ex: Any, name: str, *, blocking: bool = True, out_cap: int = 0, **args: Any) -> Any:
    spec = CALLS_BY_NAME[name]
    return ex.execute(
        spec, spec.args(**args), CallIO(memoryview(b""), memoryview(bytearray(out_cap)), blocking)
    )


def refused(ex: Any, name: str, **args: Any) -> str:
    with pytest.raises(CudaError) as caught:
        call(ex, name, **args)
    assert caught.value.status == INVALID, caught.value
    return caught.value.message


def device_bytes(ex: SimExecutor, ptr: int, size: int) -> np.ndarray:
    out = np.empty(size, dtype=np.uint8)
    ex.memory.read_into(ptr, out)
    return out


def memset_2d(
    ex: Any, dst: int, pitch: int, value: int, width: int, height: int, size: int = 1, **kw: Any
) -> Any:
    return call(
        ex,
        "memset_2d",
        dst=dst,
        pitch=pitch,
        value=value,
        width=width,
        height=height,
        element_bytes=size,
        stream=kw.pop("stream", 0),
        **kw,
    )


# -- memset_2d on sim --------------------------------------------------------------------------------


@pytest.mark.parametrize(("size", "value"), [(1, 0xA5), (2, 0xBEEF), (4, 0xDEADBEEF)])
def test_a_2d_memset_sets_each_row_and_leaves_the_gaps(size: int, value: int) -> None:
    ex = SimExecutor()
    dev = int(call(ex, "mem_alloc", bytesize=4096).dptr)
    ex.memory.write(dev, np.full(4096, 0x11, dtype=np.uint8))
    memset_2d(ex, dev + 64, 96, value, 40 // size, 7, size)
    expect = np.full(4096, 0x11, dtype=np.uint8)
    element = np.frombuffer(value.to_bytes(size, "little"), dtype=np.uint8)
    for row in range(7):
        expect[64 + row * 96 : 64 + row * 96 + 40] = np.tile(element, 40 // size)
    assert np.array_equal(device_bytes(ex, dev, 4096), expect)


def test_a_2d_memset_of_one_row_ignores_the_pitch_and_an_empty_one_touches_nothing() -> None:
    ex = SimExecutor()
    dev = int(call(ex, "mem_alloc", bytesize=256).dptr)
    memset_2d(ex, dev, 0, 7, 256, 1)
    assert (device_bytes(ex, dev, 256) == 7).all()
    memset_2d(ex, dev, 0, 9, 0, 5)  # no width: nothing, whatever the pitch says
    memset_2d(ex, 0, 1 << 60, 9, 300, 0)  # no rows: nothing, not even the pointer is looked at
    assert (device_bytes(ex, dev, 256) == 7).all()


def test_a_captured_2d_memset_runs_when_the_graph_does() -> None:
    ex = SimExecutor()
    dev = int(call(ex, "mem_alloc", bytesize=1024).dptr)
    stream = int(call(ex, "stream_create", flags=1).stream)
    call(ex, "stream_begin_capture", stream=stream, mode=0)
    memset_2d(ex, dev, 128, 0x3C, 16, 8, stream=stream, blocking=False)
    assert not device_bytes(ex, dev, 1024).any()  # recorded, not run
    graph = int(call(ex, "stream_end_capture", stream=stream).graph)
    exe = int(call(ex, "graph_instantiate", graph=graph, flags=0).graph_exec)
    call(ex, "graph_launch", graph_exec=exe, stream=stream)
    call(ex, "stream_synchronize", stream=stream)
    got = device_bytes(ex, dev, 1024).reshape(8, 128)
    assert (got[:, :16] == 0x3C).all() and not got[:, 16:].any()


def test_hostile_2d_memsets_are_refused_before_anything_is_written() -> None:
    ex = SimExecutor()
    dev = int(call(ex, "mem_alloc", bytesize=4096).dptr)
    assert "element size 3" in refused(
        ex, "memset_2d", dst=dev, pitch=64, value=1, width=4, height=2, element_bytes=3, stream=0
    )
    assert "wider than the pitch" in refused(
        ex, "memset_2d", dst=dev, pitch=16, value=1, width=17, height=2, element_bytes=1, stream=0
    )
    assert "wider than the pitch" in refused(
        ex, "memset_2d", dst=dev, pitch=64, value=1, width=17, height=2, element_bytes=4, stream=0
    )
    assert "aligned" in refused(
        ex, "memset_2d", dst=dev + 2, pitch=64, value=1, width=4, height=2, element_bytes=4, stream=0
    )
    assert "aligned" in refused(
        ex, "memset_2d", dst=dev, pitch=66, value=1, width=4, height=2, element_bytes=4, stream=0
    )
    # a height whose span wraps past 2^64, and rows that run past the allocation's end
    assert "address space" in refused(
        ex, "memset_2d", dst=dev, pitch=1 << 32, value=1, width=4, height=1 << 40, element_bytes=1, stream=0
    )
    refused(ex, "memset_2d", dst=dev, pitch=1024, value=1, width=64, height=5, element_bytes=1, stream=0)
    refused(ex, "memset_2d", dst=dev + 4096, pitch=64, value=1, width=64, height=1, element_bytes=1, stream=0)
    assert not device_bytes(ex, dev, 4096).any()


@pytest.fixture
def ring_pair() -> Iterator[RingPair]:
    pair = RingPair()
    try:
        pair.executor.pinned = PinnedArea(memoryview(bytearray(MIB))).client()
        yield pair
    finally:
        pair.close()


def refused_counted(pair: RingPair, name: str, **args: Any) -> None:
    """``name`` through the rings: CUDA_ERROR_INVALID_VALUE and one more error counted."""
    errors = pair.counters.errors
    assert pair.call(name, **args).status == INVALID
    assert pair.counters.errors == errors + 1


def test_hostile_pitched_calls_through_the_rings_are_error_statuses_counted_and_logged(
    ring_pair: RingPair,
) -> None:
    pair = ring_pair
    dev = pair.call("mem_alloc", bytesize=PAGE).result.dptr  # type: ignore[union-attr]
    offset = pair.call("mem_host_alloc", bytesize=PAGE, flags=0).result.offset  # type: ignore[union-attr]
    box = {
        "array": 0,
        "stream": 0,
        "x": 0,
        "y": 0,
        "z": 0,
        "device": dev,
        "pitch": 64,
        "layout_height": 0,
        "width_bytes": 64,
        "height": 4,
        "depth": 1,
        "host_x": 0,
        "host_y": 0,
        "host_z": 0,
        "host_pitch": 64,
        "host_layout_height": 0,
    }
    with (
        structlog.testing.capture_logs() as logs
    ):  # the server logs a burst's first error (then one a second)
        refused_counted(
            pair, "memset_2d", dst=dev, pitch=8, value=0, width=9, height=2, element_bytes=1, stream=0
        )
        refused_counted(
            pair, "memset_2d", dst=dev, pitch=PAGE, value=0, width=1, height=2, element_bytes=1, stream=0
        )
        refused_counted(pair, "memcpy_3d_htod_pinned", **box, offset=offset + PAGE)  # past the pinned range
        refused_counted(pair, "memcpy_3d_dtoh_pinned", **box | {"host_pitch": 32}, offset=offset)
    assert (logs[0]["event"], logs[0]["call"]) == ("call failed", "memset_2d")
    assert "wider than the pitch" in logs[0]["reason"]
    assert pair.call("memcpy_3d_dtoh_pinned", **box, offset=offset).status == 0


# -- pinned box copies on sim ------------------------------------------------------------------------


@pytest.fixture
def pinned_vm() -> tuple[SimExecutor, bytearray]:
    buf = bytearray(4 * MIB)
    share = VmShare("sim")
    share.pinned = PinnedArea(memoryview(buf))
    ex = share.create_context()
    assert isinstance(ex, SimExecutor)
    return ex, buf


def pinned_box(offset: int, device: int, w: int, h: int, d: int = 1, **kw: Any) -> dict[str, Any]:
    return {
        "array": 0,
        "stream": 0,
        "x": 0,
        "y": 0,
        "z": 0,
        "device": device,
        "pitch": w,
        "layout_height": h,
        "width_bytes": w,
        "height": h,
        "depth": d,
        "offset": offset,
        "host_x": 0,
        "host_y": 0,
        "host_z": 0,
        "host_pitch": w,
        "host_layout_height": h,
    } | kw


def test_pinned_rows_go_to_pitched_device_memory_and_back_as_one_box(
    pinned_vm: tuple[SimExecutor, bytearray],
) -> None:
    ex, buf = pinned_vm
    rng = np.random.default_rng(6)
    src = int(call(ex, "mem_host_alloc", bytesize=64 * 1024, flags=0).offset)
    dst = int(call(ex, "mem_host_alloc", bytesize=64 * 1024, flags=0).offset)
    dev = int(call(ex, "mem_alloc", bytesize=64 * 512).dptr)
    host = rng.integers(0, 256, (60, 300), dtype=np.uint8)  # rows of 300 bytes, 200 of them copied
    buf[src : src + host.size] = host.tobytes()
    call(
        ex,
        "memcpy_3d_htod_pinned",
        **pinned_box(src, dev, 200, 50, host_pitch=300, host_x=30, host_y=4, pitch=512, x=8),
    )
    on_device = device_bytes(ex, dev, 50 * 512).reshape(50, 512)
    assert np.array_equal(on_device[:, 8:208], host[4:54, 30:230])
    assert not on_device[:, :8].any() and not on_device[:, 208:].any()
    before = np.frombuffer(bytes(buf[dst : dst + 50 * 256]), dtype=np.uint8).reshape(50, 256)
    call(
        ex,
        "memcpy_3d_dtoh_pinned",
        **pinned_box(dst, dev, 200, 50, host_pitch=256, pitch=512, x=8),
        blocking=False,
    )
    call(ex, "stream_synchronize", stream=0)
    back = np.frombuffer(bytes(buf[dst : dst + 50 * 256]), dtype=np.uint8).reshape(50, 256)
    assert np.array_equal(back[:, :200], host[4:54, 30:230])
    assert np.array_equal(back[:, 200:], before[:, 200:])


def test_a_pinned_3d_box_fills_an_array_slice_by_slice(pinned_vm: tuple[SimExecutor, bytearray]) -> None:
    ex, buf = pinned_vm
    src = int(call(ex, "mem_host_alloc", bytesize=PAGE * 4, flags=0).offset)
    data = np.random.default_rng(7).integers(0, 256, (3, 5, 64), dtype=np.uint8)
    buf[src : src + data.size] = data.tobytes()
    arr = int(
        call(
            ex,
            "array_create",
            width=16,
            height=5,
            depth=3,
            format=0x20,
            channels=1,  # f32
            flags=0,
        ).array
    )
    call(ex, "memcpy_3d_htod_pinned", **pinned_box(src, 0, 64, 5, 3, array=arr))
    out = int(call(ex, "mem_host_alloc", bytesize=PAGE * 4, flags=0).offset)
    call(ex, "memcpy_3d_dtoh_pinned", **pinned_box(out, 0, 64, 5, 3, array=arr))
    assert bytes(buf[out : out + data.size]) == data.tobytes()


def test_a_pinned_box_outside_its_range_or_pitch_is_refused(pinned_vm: tuple[SimExecutor, bytearray]) -> None:
    ex, buf = pinned_vm
    src = int(call(ex, "mem_host_alloc", bytesize=PAGE, flags=0).offset)
    dev = int(call(ex, "mem_alloc", bytesize=PAGE).dptr)
    buf[src : src + PAGE] = b"\x5a" * PAGE
    refused(ex, "memcpy_3d_htod_pinned", **pinned_box(src, dev, 64, 65))  # 65 rows of 64: past the page
    assert "host pitch" in refused(ex, "memcpy_3d_htod_pinned", **pinned_box(src, dev, 64, 4, host_pitch=63))
    assert "layout's height" in refused(
        ex, "memcpy_3d_htod_pinned", **pinned_box(src, dev, 8, 4, 2, host_layout_height=3)
    )
    refused(
        ex, "memcpy_3d_htod_pinned", **pinned_box(src, dev, 64, 4, pitch=2048)
    )  # device side past its end
    assert "address space" in refused(
        ex, "memcpy_3d_htod_pinned", **pinned_box(src, dev, 64, 4, host_pitch=1 << 62, host_y=8)
    )
    assert not device_bytes(ex, dev, PAGE).any()


# -- cuda, against a stand-in for the driver ---------------------------------------------------------


class PitchedDriver(FakeDriver):
    """The stand-in with the driver's 2D memsets and cuMemcpy3DAsync, moving bytes at the addresses given."""

    CUDA_MEMCPY3D = SimpleNamespace

    @staticmethod
    def CUmemorytype(value: int) -> int:  # noqa: N802
        return value

    def _memset(self, size: int, dst: int, pitch: int, value: int, width: int, height: int) -> tuple[int]:
        self.calls.append(("memset_2d", size, dst, pitch, value, width, height))
        row = value.to_bytes(size, "little") * width
        for y in range(height):
            ctypes.memmove(dst + y * pitch, row, len(row))
        return (0,)

    def cuMemsetD2D8Async(self, *a: Any) -> tuple[int]:  # noqa: N802
        return self._memset(1, *a[:5])

    def cuMemsetD2D16Async(self, *a: Any) -> tuple[int]:  # noqa: N802
        return self._memset(2, *a[:5])

    def cuMemsetD2D32Async(self, *a: Any) -> tuple[int]:  # noqa: N802
        return self._memset(4, *a[:5])

    def cuMemcpy3DAsync(self, p: Any, stream: object) -> tuple[int]:  # noqa: N802
        self.calls.append(("memcpy_3d", p.srcMemoryType, p.dstMemoryType))

        def at(side: str, y: int, z: int) -> int:
            base = (
                getattr(p, f"{side}Host")
                if getattr(p, f"{side}MemoryType") == 1
                else getattr(p, f"{side}Device")
            )
            pitch, height = getattr(p, f"{side}Pitch"), getattr(p, f"{side}Height")
            x0, y0, z0 = (getattr(p, f"{side}{k}", 0) for k in ("XInBytes", "Y", "Z"))
            return int(base + (z0 + z) * pitch * height + (y0 + y) * pitch + x0)

        for z in range(p.Depth):
            for y in range(p.Height):
                ctypes.memmove(at("dst", y, z), at("src", y, z), p.WidthInBytes)
        return (0,)


def test_cuda_serves_a_2d_memset_as_one_driver_call_on_a_checked_span() -> None:
    driver = PitchedDriver()
    ex, device = cuda_executor(driver, PinnedArea(memoryview(bytearray(4 * PAGE))))
    dev = ctypes.addressof(device)
    ex.memset_2d(
        Memset2DArgs(dst=dev, pitch=256, width=16, height=8, value=0x12345678, element_bytes=2, stream=0),
        CallIO(memoryview(b""), memoryview(bytearray(0)), True),
    )
    assert driver.calls == [("memset_2d", 2, dev, 256, 0x5678, 16, 8), ("stream_synchronize",)]
    rows = np.frombuffer(device.raw, dtype=np.uint8)[: 8 * 256].reshape(8, 256)
    assert (rows[:, :32].view("<u2") == 0x5678).all() and not rows[:, 32:].any()
    with pytest.raises(CudaError) as caught:  # row 8 runs past the 2-page allocation
        ex.memset_2d(
            Memset2DArgs(dst=dev, pitch=1024, width=1, height=9, value=0, element_bytes=1, stream=0),
            CallIO(memoryview(b""), memoryview(bytearray(0)), True),
        )
    assert caught.value.status == INVALID and len(driver.calls) == 2


def test_cuda_copies_a_pinned_box_with_the_ranges_own_address() -> None:
    driver = PitchedDriver()
    buf = bytearray(8 * PAGE)
    ex, device = cuda_executor(driver, PinnedArea(memoryview(buf)))
    ex._textures = SimpleNamespace(arrays=None)
    from protocol.models import MemHostAllocArgs

    offset = ex.mem_host_alloc(
        MemHostAllocArgs(bytesize=2 * PAGE, flags=0), CallIO(memoryview(b""), memoryview(bytearray(0)), True)
    ).offset
    data = np.random.default_rng(8).integers(0, 256, (10, 100), dtype=np.uint8)
    buf[offset : offset + data.size] = data.tobytes()
    dev = ctypes.addressof(device)
    args = Memcpy3DPinnedArgs(
        array=0,
        stream=0,
        x=4,
        y=0,
        z=0,
        device=dev,
        pitch=128,
        layout_height=10,
        width_bytes=60,
        height=9,
        depth=1,
        offset=offset,
        host_x=20,
        host_y=1,
        host_z=0,
        host_pitch=100,
        host_layout_height=10,
    )
    ex.memcpy_3d_htod_pinned(args, CallIO(memoryview(b""), memoryview(bytearray(0)), True))
    rows = np.frombuffer(device.raw, dtype=np.uint8)[: 9 * 128].reshape(9, 128)
    assert np.array_equal(rows[:, 4:64], data[1:10, 20:80]) and not rows[:, 64:].any()
    assert ("memcpy_3d", 1, 2) in driver.calls
    with pytest.raises(CudaError):
        ex.memcpy_3d_htod_pinned(
            args.model_copy(update={"offset": offset + 2 * PAGE - 100}),
            CallIO(memoryview(b""), memoryview(bytearray(0)), True),
        )
