"""2D memsets and pinned pitched copies through the shim's libcuda.so.1 and libcudart.so.13, with ctypes
(run by test_pitched.py in its own process): cudaMemset2D/cudaMemset2DAsync, cuMemsetD2D8/16/32 and a
built graph's 2D memset node, with the bytes between rows checked untouched; cudaMemcpy2D/Async between
pinned memory and pitched device memory both ways, and cuMemcpy3D from pinned memory into a 3D array and
back; the refusals (a row wider than its pitch, rows past the allocation). Prints the selftest's RESULT
lines and verdict.

Arguments: the shim's libcuda and (unused) the repository."""

from __future__ import annotations

import ctypes as ct
import os
import sys

cuda = ct.CDLL(sys.argv[1], mode=ct.RTLD_GLOBAL)
rt = ct.CDLL(os.path.join(os.path.dirname(sys.argv[1]), "libcudart.so.13"))
failures = 0
H2D, D2H = 1, 2
vp, size_t, u64 = ct.c_void_p, ct.c_size_t, ct.c_uint64
rt.cudaMemset2D.argtypes = [vp, size_t, ct.c_int, size_t, size_t]
rt.cudaMemset2DAsync.argtypes = [vp, size_t, ct.c_int, size_t, size_t, vp]
rt.cudaMemcpy2D.argtypes = [vp, size_t, vp, size_t, size_t, size_t, ct.c_int]
rt.cudaMemcpy2DAsync.argtypes = [vp, size_t, vp, size_t, size_t, size_t, ct.c_int, vp]
rt.cudaMallocPitch.argtypes = [ct.POINTER(vp), ct.POINTER(size_t), size_t, size_t]
rt.cudaMemcpy.argtypes = [vp, vp, size_t, ct.c_int]
rt.cudaMemset.argtypes = [vp, ct.c_int, size_t]
rt.cudaMallocHost.argtypes = [ct.POINTER(vp), size_t]
rt.cudaMalloc.argtypes = [ct.POINTER(vp), size_t]
rt.cudaStreamCreate.argtypes = [ct.POINTER(vp)]
for name in ("cudaStreamSynchronize", "cudaStreamDestroy", "cudaFree", "cudaFreeHost"):
    getattr(rt, name).argtypes = [vp]
cuda.cuMemsetD2D16_v2.argtypes = [u64, size_t, ct.c_ushort, size_t, size_t]
cuda.cuMemsetD2D32Async.argtypes = [u64, size_t, ct.c_uint, size_t, size_t, vp]


class ArrayDesc(ct.Structure):  # CUDA_ARRAY3D_DESCRIPTOR
    _fields_ = [
        ("Width", size_t),
        ("Height", size_t),
        ("Depth", size_t),
        ("Format", ct.c_int),
        ("NumChannels", ct.c_uint),
        ("Flags", ct.c_uint),
    ]


class Memcpy3D(ct.Structure):  # CUDA_MEMCPY3D
    _fields_ = [
        ("srcXInBytes", size_t),
        ("srcY", size_t),
        ("srcZ", size_t),
        ("srcLOD", size_t),
        ("srcMemoryType", ct.c_int),
        ("srcHost", vp),
        ("srcDevice", u64),
        ("srcArray", vp),
        ("reserved0", vp),
        ("srcPitch", size_t),
        ("srcHeight", size_t),
        ("dstXInBytes", size_t),
        ("dstY", size_t),
        ("dstZ", size_t),
        ("dstLOD", size_t),
        ("dstMemoryType", ct.c_int),
        ("dstHost", vp),
        ("dstDevice", u64),
        ("dstArray", vp),
        ("reserved1", vp),
        ("dstPitch", size_t),
        ("dstHeight", size_t),
        ("WidthInBytes", size_t),
        ("Height", size_t),
        ("Depth", size_t),
    ]


cuda.cuArray3DCreate_v2.argtypes = [ct.POINTER(vp), ct.POINTER(ArrayDesc)]
cuda.cuMemcpy3D_v2.argtypes = [ct.POINTER(Memcpy3D)]
cuda.cuArrayDestroy.argtypes = [vp]
cuda.cuGraphCreate.argtypes = [ct.POINTER(vp), ct.c_uint]
cuda.cuGraphAddMemsetNode.argtypes = [ct.POINTER(vp), vp, vp, size_t, vp, vp]
cuda.cuGraphInstantiateWithFlags.argtypes = [ct.POINTER(vp), vp, ct.c_ulonglong]
cuda.cuGraphLaunch.argtypes = [vp, vp]
cuda.cuGraphExecDestroy.argtypes = [vp]
cuda.cuGraphDestroy.argtypes = [vp]


def report(name: str, ok: bool, value: str) -> None:
    global failures
    print(f"RESULT name={name} ok={int(ok)} value={value}", flush=True)
    failures += not ok


def pattern(n: int, seed: int) -> bytes:
    return bytes((i * 131 + seed * 7 + (i >> 8) * 13) & 0xFF for i in range(n))


def device_bytes(ptr: int | None, size: int) -> bytes:
    out = ct.create_string_buffer(size)
    assert rt.cudaMemcpy(out, ptr, size, D2H) == 0
    return out.raw


def expected_memset(size: int, pitch: int, element: bytes, width: int, height: int, fill: int) -> bytes:
    rows = bytearray([fill]) * size
    for y in range(height):
        rows[y * pitch : y * pitch + width * len(element)] = element * width
    return bytes(rows)


def memsets(stream: int | None) -> None:
    dev, pitch = vp(), size_t()
    assert rt.cudaMallocPitch(ct.byref(dev), ct.byref(pitch), 700, 90) == 0
    size = pitch.value * 90
    assert rt.cudaMemset(dev, 0x11, size) == 0
    rc = rt.cudaMemset2D(dev, pitch.value, 0x5A, 700, 90)
    ok = rc == 0 and device_bytes(dev.value, size) == expected_memset(
        size, pitch.value, b"\x5a", 700, 90, 0x11
    )
    report("memset2d", ok, f"rc={rc},pitch={pitch.value}")

    rc = rt.cudaMemset2DAsync(dev, pitch.value, 0x3C, 100, 30, stream) or rt.cudaStreamSynchronize(stream)
    want = bytearray(expected_memset(size, pitch.value, b"\x5a", 700, 90, 0x11))
    for y in range(30):
        want[y * pitch.value : y * pitch.value + 100] = b"\x3c" * 100
    report("memset2d_async", rc == 0 and device_bytes(dev.value, size) == bytes(want), f"rc={rc}")

    assert rt.cudaMemset(dev, 0, size) == 0
    rc = cuda.cuMemsetD2D16_v2(dev.value, pitch.value, 0xBEEF, 300, 90)
    ok = rc == 0 and device_bytes(dev.value, size) == expected_memset(
        size, pitch.value, b"\xef\xbe", 300, 90, 0
    )
    rc2 = cuda.cuMemsetD2D32Async(
        dev.value, pitch.value, 0xDEADBEEF, 100, 90, stream
    ) or rt.cudaStreamSynchronize(stream)
    want = bytearray(expected_memset(size, pitch.value, b"\xef\xbe", 300, 90, 0))  # the D2D16 rows stay past
    for y in range(90):  # the D2D32 rows' 400 bytes
        want[y * pitch.value : y * pitch.value + 400] = b"\xef\xbe\xad\xde" * 100
    ok2 = rc2 == 0 and device_bytes(dev.value, size) == bytes(want)
    report("memset_d2d16_d2d32", ok and ok2, f"rc={rc},{rc2}")

    small = vp()
    assert rt.cudaMalloc(ct.byref(small), 4096) == 0
    assert rt.cudaMemset(small, 0x77, 4096) == 0
    wide = rt.cudaMemset2D(small, 64, 0, 65, 4)  # a row wider than the pitch
    wide_async = rt.cudaMemset2DAsync(small, 64, 0, 65, 4, stream)  # refused at once, not at the next sync
    past = rt.cudaMemset2D(small, 1024, 0, 512, 5)  # row 4 lies past the 4096 bytes
    untouched = device_bytes(small.value, 4096) == b"\x77" * 4096
    report(
        "memset2d_refused",
        (wide, wide_async, past) == (1, 1, 1) and untouched,
        f"wide={wide},{wide_async},past={past}",
    )
    rt.cudaFree(small)
    rt.cudaFree(dev)


class MemsetNodeParams(ct.Structure):  # CUDA_MEMSET_NODE_PARAMS
    _fields_ = [
        ("dst", ct.c_uint64),
        ("pitch", ct.c_size_t),
        ("value", ct.c_uint),
        ("elementSize", ct.c_uint),
        ("width", ct.c_size_t),
        ("height", ct.c_size_t),
    ]


def memset_node(stream: int | None) -> None:
    """A built graph's 2D memset node (cuGraphAddMemsetNode, 4-byte elements): its rows set, the gaps
    kept, when the graph is launched."""
    dev, pitch = vp(), size_t()
    assert rt.cudaMallocPitch(ct.byref(dev), ct.byref(pitch), 600, 40) == 0
    size = pitch.value * 40
    assert rt.cudaMemset(dev, 0x11, size) == 0
    graph, node, exe = vp(), vp(), vp()
    params = MemsetNodeParams(dev.value or 0, pitch.value, 0xCAFEF00D, 4, 150, 40)
    rc = cuda.cuGraphCreate(ct.byref(graph), 0)
    rc = rc or cuda.cuGraphAddMemsetNode(ct.byref(node), graph, None, size_t(0), ct.byref(params), None)
    rc = rc or cuda.cuGraphInstantiateWithFlags(ct.byref(exe), graph, ct.c_ulonglong(0))
    untouched = device_bytes(dev.value, size) == b"\x11" * size
    rc = rc or cuda.cuGraphLaunch(exe, vp(stream)) or rt.cudaStreamSynchronize(stream)
    want = expected_memset(size, pitch.value, b"\x0d\xf0\xfe\xca", 150, 40, 0x11)
    report("memset_node_2d", rc == 0 and untouched and device_bytes(dev.value, size) == want, f"rc={rc}")
    cuda.cuGraphExecDestroy(exe)
    cuda.cuGraphDestroy(graph)
    rt.cudaFree(dev)


def pinned_copies(stream: int | None) -> None:
    dev, pitch = vp(), size_t()
    assert rt.cudaMallocPitch(ct.byref(dev), ct.byref(pitch), 1000, 200) == 0
    pinned, back = vp(), vp()
    assert (
        rt.cudaMallocHost(ct.byref(pinned), 1200 * 200) == 0
        and rt.cudaMallocHost(ct.byref(back), 1100 * 200) == 0
    )
    src = pattern(1200 * 200, 4)
    ct.memmove(pinned, src, len(src))
    ct.memset(back, 0xA5, 1100 * 200)
    rc = rt.cudaMemcpy2D(dev, pitch.value, pinned, 1200, 1000, 200, H2D)
    rc = rc or rt.cudaMemcpy2D(back, 1100, dev, pitch.value, 1000, 200, D2H)
    got = ct.string_at(back, 1100 * 200)
    ok = all(
        got[y * 1100 : y * 1100 + 1000] == src[y * 1200 : y * 1200 + 1000]
        and got[y * 1100 + 1000 : (y + 1) * 1100] == b"\xa5" * 100
        for y in range(200)
    )
    report("pinned_box", rc == 0 and ok, f"rc={rc},pitch={pitch.value}")

    ct.memset(back, 0, 1100 * 200)
    rc = rt.cudaMemcpy2DAsync(dev, pitch.value, pinned, 1200, 500, 100, H2D, stream)
    rc = rc or rt.cudaMemcpy2DAsync(back, 600, dev, pitch.value, 500, 100, D2H, stream)
    rc = rc or rt.cudaStreamSynchronize(stream)
    got = ct.string_at(back, 600 * 100)
    ok = all(
        got[y * 600 : y * 600 + 500] == src[y * 1200 : y * 1200 + 500]
        and got[y * 600 + 500 : (y + 1) * 600] == bytes(100)
        for y in range(100)
    )
    report("pinned_box_async", rc == 0 and ok, f"rc={rc}")

    # cuMemcpy3D from pinned memory into a 3D array (16 x 4 x 3 floats) and back into pinned rows
    array = vp()
    desc = ArrayDesc(16, 4, 3, 0x20, 1, 0)
    rc = cuda.cuArray3DCreate_v2(ct.byref(array), ct.byref(desc))
    ct.memset(back, 0, 64 * 12)
    to_array = Memcpy3D(
        srcMemoryType=1,
        srcHost=pinned,
        srcPitch=64,
        srcHeight=4,
        dstMemoryType=3,
        dstArray=array,
        WidthInBytes=64,
        Height=4,
        Depth=3,
    )
    from_array = Memcpy3D(
        srcMemoryType=3,
        srcArray=array,
        dstMemoryType=1,
        dstHost=back,
        dstPitch=64,
        dstHeight=4,
        WidthInBytes=64,
        Height=4,
        Depth=3,
    )
    rc = rc or cuda.cuMemcpy3D_v2(ct.byref(to_array)) or cuda.cuMemcpy3D_v2(ct.byref(from_array))
    report("pinned_array_3d", rc == 0 and ct.string_at(back, 64 * 12) == src[: 64 * 12], f"rc={rc}")
    cuda.cuArrayDestroy(array)
    rt.cudaFreeHost(pinned)
    rt.cudaFreeHost(back)
    rt.cudaFree(dev)


def main() -> int:
    stream = vp()
    assert rt.cudaStreamCreate(ct.byref(stream)) == 0
    memsets(stream.value)
    memset_node(stream.value)
    pinned_copies(stream.value)
    rt.cudaStreamDestroy(stream)
    print("SELFTEST PASS" if not failures else "SELFTEST FAIL", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
