"""cudaMemcpy2D and cudaMemcpy2DAsync through the shim's libcudart.so.13, with ctypes (run by
test_memcpy2d.py in its own process): pitched copies between the process's memory and pitched device
memory both ways, device to device, with cudaMemcpyDefault, a box past a payload chunk, from pinned
memory, into a capturing stream, and the refusals. Every copy is checked byte for byte, the bytes
between a destination's rows too (a copy never writes them). Prints the selftest's RESULT lines and
verdict.

Arguments: the shim's libcuda and (unused) the repository."""

from __future__ import annotations

import ctypes as ct
import os
import sys

cuda = ct.CDLL(sys.argv[1], mode=ct.RTLD_GLOBAL)
rt = ct.CDLL(os.path.join(os.path.dirname(sys.argv[1]), "libcudart.so.13"))
failures = 0
H2H, H2D, D2H, D2D, DEFAULT = 0, 1, 2, 3, 4
vp, size_t = ct.c_void_p, ct.c_size_t
rt.cudaMemcpy2D.argtypes = [vp, size_t, vp, size_t, size_t, size_t, ct.c_int]
rt.cudaMemcpy2DAsync.argtypes = [vp, size_t, vp, size_t, size_t, size_t, ct.c_int, vp]
rt.cudaMallocPitch.argtypes = [ct.POINTER(vp), ct.POINTER(size_t), size_t, size_t]
rt.cudaMemcpy.argtypes = [vp, vp, size_t, ct.c_int]
rt.cudaMemset.argtypes = [vp, ct.c_int, size_t]
rt.cudaMallocHost.argtypes = [ct.POINTER(vp), size_t]
rt.cudaMalloc.argtypes = [ct.POINTER(vp), size_t]
rt.cudaStreamCreate.argtypes = [ct.POINTER(vp)]
for name in ("cudaStreamSynchronize", "cudaStreamDestroy", "cudaFree", "cudaFreeHost", "cudaGraphDestroy",
             "cudaGraphExecDestroy"):
    getattr(rt, name).argtypes = [vp]
rt.cudaStreamBeginCapture.argtypes = [vp, ct.c_int]
rt.cudaStreamEndCapture.argtypes = [vp, ct.POINTER(vp)]
rt.cudaGraphInstantiate.argtypes = [ct.POINTER(vp), vp, ct.c_ulonglong]
rt.cudaGraphLaunch.argtypes = [vp, vp]


def report(name: str, ok: bool, value: str) -> None:
    global failures
    print(f"RESULT name={name} ok={int(ok)} value={value}", flush=True)
    failures += not ok


def pattern(n: int, seed: int) -> bytes:
    return bytes((i * 131 + seed * 7 + (i >> 8) * 13) & 0xFF for i in range(n))


def pitched(width: int, height: int) -> tuple[int, int]:
    ptr, pitch = vp(), size_t()
    rc = rt.cudaMallocPitch(ct.byref(ptr), ct.byref(pitch), width, height)
    assert rc == 0 and ptr.value and pitch.value >= width, rc
    return ptr.value, pitch.value


def host(size: int, fill: int) -> ct.Array[ct.c_char]:
    return ct.create_string_buffer(bytes([fill]) * size, size)


def rows(buf: ct.Array[ct.c_char] | bytes, pitch: int, width: int, height: int) -> list[bytes]:
    raw = bytes(buf)
    return [raw[y * pitch:y * pitch + width] for y in range(height)]


def gaps_kept(buf: ct.Array[ct.c_char], pitch: int, width: int, height: int, fill: int) -> bool:
    raw = bytes(buf)
    return all(raw[y * pitch + width:(y + 1) * pitch] == bytes([fill]) * (pitch - width) for y in range(height))


def roundtrip(name: str, width: int, height: int, spitch: int, dpitch: int, kind_in: int, kind_out: int,
              stream: int | None = None) -> None:
    """Host rows (pitch ``spitch``) into pitched device memory and back into host rows of pitch ``dpitch``."""
    src = ct.create_string_buffer(pattern(spitch * height, len(name)), spitch * height)
    out = host(dpitch * height, 0xA5)
    dev, pitch = pitched(width, height)
    if stream is None:
        rc = rt.cudaMemcpy2D(dev, pitch, src, spitch, width, height, kind_in)
        rc = rc or rt.cudaMemcpy2D(out, dpitch, dev, pitch, width, height, kind_out)
    else:
        rc = rt.cudaMemcpy2DAsync(dev, pitch, src, spitch, width, height, kind_in, stream)
        rc = rc or rt.cudaMemcpy2DAsync(out, dpitch, dev, pitch, width, height, kind_out, stream)
        rc = rc or rt.cudaStreamSynchronize(stream)
    ok = rc == 0 and rows(out, dpitch, width, height) == rows(src, spitch, width, height)
    report(name, ok and gaps_kept(out, dpitch, width, height, 0xA5), f"rc={rc},{width}x{height},pitch={pitch}")
    rt.cudaFree(dev)


def main() -> int:
    stream = vp()
    assert rt.cudaStreamCreate(ct.byref(stream)) == 0
    roundtrip("pitched_sync", 1000, 300, 1100, 1200, H2D, D2H)
    roundtrip("pitched_async", 1000, 300, 1024, 1000 + 7, H2D, D2H, stream.value)
    roundtrip("pitched_default", 700, 64, 800, 900, DEFAULT, DEFAULT)
    # 3000 x 2000 rows: 6 MB, more than a payload chunk holds (runs of rows per call)
    roundtrip("past_a_chunk", 3000, 2000, 3001, 3072, H2D, D2H, stream.value)

    # device to device between two pitches, and back out densely
    width, height = 512, 100
    src = pattern(width * height, 9)
    a, pa = pitched(width, height)
    b, pb = pitched(width + 600, height)
    out = host(width * height, 0)
    rc = rt.cudaMemcpy2D(a, pa, src, width, width, height, H2D)
    rc = rc or rt.cudaMemcpy2D(b, pb, a, pa, width, height, D2D)
    rc = rc or rt.cudaMemcpy2D(out, width, b, pb, width, height, D2H)
    report("device_to_device", rc == 0 and bytes(out) == src, f"rc={rc},pitches={pa},{pb}")

    # from pinned memory: one box that names its range (the host moves the rows itself)
    pinned = vp()
    assert rt.cudaMallocHost(ct.byref(pinned), 4096 * 64) == 0
    ct.memmove(pinned, pattern(4096 * 64, 3), 4096 * 64)
    out = host(1000 * 64, 0)
    rc = rt.cudaMemcpy2DAsync(a, pa, pinned, 4096, 500, 64, H2D, stream)
    rc = rc or rt.cudaMemcpy2DAsync(out, 1000, a, pa, 500, 64, D2H, stream)
    rc = rc or rt.cudaStreamSynchronize(stream)
    report("pinned_rows", rc == 0 and rows(out, 1000, 500, 64) == rows(pattern(4096 * 64, 3), 4096, 500, 64),
           f"rc={rc}")
    rt.cudaFreeHost(pinned)

    # on a capturing stream a host-side copy becomes the graph's guest nodes, run when it is launched
    src = pattern(300 * 8, 5)
    out = host(256 * 8, 0)
    graph, exe = vp(), vp()
    rc = rt.cudaMemset(b, 0, pb * 8)
    rc = rc or rt.cudaStreamBeginCapture(stream, 0)
    rc = rc or rt.cudaMemcpy2DAsync(b, pb, src, 300, 256, 8, H2D, stream)
    rc = rc or rt.cudaStreamEndCapture(stream, ct.byref(graph))
    rc = rc or rt.cudaMemcpy2D(out, 256, b, pb, 256, 8, D2H)
    before = bytes(out)
    rc = rc or rt.cudaGraphInstantiate(ct.byref(exe), graph, 0)
    rc = rc or rt.cudaGraphLaunch(exe, stream)
    rc = rc or rt.cudaStreamSynchronize(stream)
    rc = rc or rt.cudaMemcpy2D(out, 256, b, pb, 256, 8, D2H)
    report("captured", rc == 0 and before == bytes(256 * 8) and rows(out, 256, 256, 8) == rows(src, 300, 256, 8),
           f"rc={rc}")
    rt.cudaGraphExecDestroy(exe)
    rt.cudaGraphDestroy(graph)

    # refusals: a width past a pitch, and a box that runs past the device allocation
    small = vp()
    assert rt.cudaMalloc(ct.byref(small), 4096) == 0
    buf = host(1 << 16, 1)
    wide = rt.cudaMemcpy2D(small, 64, buf, 128, 100, 4, H2D)
    past = rt.cudaMemcpy2D(small, 1024, buf, 1024, 512, 8, H2D)  # rows 4-7 lie past the 4096 bytes
    past_out = rt.cudaMemcpy2D(buf, 1024, small, 1024, 512, 8, D2H)
    report("refused", wide == 12 and past != 0 and past_out != 0, f"wide={wide},past={past},{past_out}")
    for ptr in (a, b, small.value):
        rt.cudaFree(ptr)
    rt.cudaStreamDestroy(stream)
    print("SELFTEST PASS" if not failures else "SELFTEST FAIL", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
