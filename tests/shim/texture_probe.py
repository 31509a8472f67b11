"""CUDA arrays, texture and surface objects through the shim's libcuda.so.1, with ctypes (run by
test_textures.py in its own process): array copies of every kind of side, boxes larger than a payload
chunk, kernels of the texture corpus (tests/kernels/ptx_texture.cu) sampling what was copied, every
refusal a guest can provoke, and, last, a kernel sampling an array destroyed under its texture (a
sticky CUDA_ERROR_ILLEGAL_ADDRESS). Prints the selftest's RESULT lines and verdict.

Arguments: the shim's libcuda and the repository."""

from __future__ import annotations

import ctypes as ct
import math
import struct
import sys
from pathlib import Path

cuda = ct.CDLL(sys.argv[1])
repo = Path(sys.argv[2])
failures = 0
u64, size_t = ct.c_uint64, ct.c_size_t
HOST, DEVICE, ARRAY = 1, 2, 3
FLOAT, U8 = 0x20, 0x01


def report(name: str, ok: bool, value: str) -> None:
    global failures
    print(f"RESULT name={name} ok={int(ok)} value={value}", flush=True)
    failures += not ok


class Array3DDesc(ct.Structure):
    _fields_ = [("Width", size_t), ("Height", size_t), ("Depth", size_t), ("Format", ct.c_int),
                ("NumChannels", ct.c_uint), ("Flags", ct.c_uint)]


class Memcpy3D(ct.Structure):
    _fields_ = [(f"{side}{name}", kind) for side in ("src", "dst") for name, kind in (
        ("XInBytes", size_t), ("Y", size_t), ("Z", size_t), ("LOD", size_t), ("MemoryType", ct.c_int),
        ("Host", ct.c_void_p), ("Device", u64), ("Array", ct.c_void_p), ("reserved", ct.c_void_p),
        ("Pitch", size_t), ("Height", size_t))] + [("WidthInBytes", size_t), ("Height", size_t), ("Depth", size_t)]


class ResourceDesc(ct.Structure):
    _fields_ = [("resType", ct.c_int), ("pad", ct.c_int), ("res", ct.c_ubyte * 128), ("flags", ct.c_uint),
                ("pad2", ct.c_uint)]


class TextureDesc(ct.Structure):
    _fields_ = [("addressMode", ct.c_int * 3), ("filterMode", ct.c_int), ("flags", ct.c_uint),
                ("maxAnisotropy", ct.c_uint), ("mipmapFilterMode", ct.c_int), ("lod", ct.c_float * 3),
                ("borderColor", ct.c_float * 4), ("reserved", ct.c_int * 12)]


assert ct.sizeof(Memcpy3D) == 200 and ct.sizeof(ResourceDesc) == 144 and ct.sizeof(TextureDesc) == 104


def array(width: int, height: int = 0, depth: int = 0, fmt: int = FLOAT, channels: int = 1, flags: int = 0,
          ) -> tuple[int, ct.c_void_p]:
    handle = ct.c_void_p()
    desc = Array3DDesc(width, height, depth, fmt, channels, flags)
    return cuda.cuArray3DCreate_v2(ct.byref(handle), ct.byref(desc)), handle


def copy(**fields: object) -> int:
    return int(cuda.cuMemcpy3D_v2(ct.byref(Memcpy3D(**fields))))


def host_side(prefix: str, buf: ct.Array[ct.c_char], pitch: int, height: int = 0, x: int = 0, y: int = 0,
              z: int = 0) -> dict[str, object]:
    return {f"{prefix}MemoryType": HOST, f"{prefix}Host": ct.cast(buf, ct.c_void_p), f"{prefix}Pitch": pitch,
            f"{prefix}Height": height, f"{prefix}XInBytes": x, f"{prefix}Y": y, f"{prefix}Z": z}


def array_side(prefix: str, handle: ct.c_void_p, x: int = 0, y: int = 0, z: int = 0) -> dict[str, object]:
    return {f"{prefix}MemoryType": ARRAY, f"{prefix}Array": handle, f"{prefix}XInBytes": x, f"{prefix}Y": y,
            f"{prefix}Z": z}


def pattern(n: int, seed: int) -> bytes:
    return bytes((i * 131 + seed * 7 + (i >> 8) * 13) & 0xFF for i in range(n))


def rows(buf: bytes, pitch: int, x: int, width: int, count: int, first: int = 0) -> list[bytes]:
    return [buf[(first + r) * pitch + x:(first + r) * pitch + x + width] for r in range(count)]


def texture(resource: ResourceDesc, **desc: object) -> tuple[int, int]:
    handle = u64()
    rc = cuda.cuTexObjectCreate(ct.byref(handle), ct.byref(resource), ct.byref(TextureDesc(**desc)), None)
    return rc, handle.value


def array_resource(handle: ct.c_void_p) -> ResourceDesc:
    r = ResourceDesc(resType=0)
    struct.pack_into("<Q", r.res, 0, handle.value or 0)
    return r


rc = cuda.cuInit(0)
ctx = ct.c_void_p()
rc = rc or cuda.cuDevicePrimaryCtxRetain(ct.byref(ctx), 0) or cuda.cuCtxSetCurrent(ctx)
report("init", rc == 0, f"status={rc}")

# -- a 2D array: host rows with a pitch in, out again into rows of another pitch
rc, arr2d = array(100, 37)
src = ct.create_string_buffer(pattern(512 * 37, 1), 512 * 37)
dst = ct.create_string_buffer(640 * 37)
rcs = [rc, copy(**host_side("src", src, 512, x=8), **array_side("dst", arr2d), WidthInBytes=400, Height=37, Depth=1),
       copy(**array_side("src", arr2d), **host_side("dst", dst, 640, x=16), WidthInBytes=400, Height=37, Depth=1)]
same = rows(dst.raw, 640, 16, 400, 37) == rows(src.raw, 512, 8, 400, 37)
report("array_2d_roundtrip", rcs == [0, 0, 0] and same, f"status={rcs} same={same}")

# -- a 3D array of uchar4: host -> array -> pitched device memory -> host
rc, arr3d = array(16, 8, 4, fmt=U8, channels=4)
box = pattern(64 * 8 * 4, 2)
src3 = ct.create_string_buffer(box, len(box))
dptr = u64()
rcs = [rc, cuda.cuMemAlloc_v2(ct.byref(dptr), size_t(128 * 10 * 4))]
rcs.append(copy(**host_side("src", src3, 64, 8), **array_side("dst", arr3d), WidthInBytes=64, Height=8, Depth=4))
rcs.append(copy(**array_side("src", arr3d), dstMemoryType=DEVICE, dstDevice=dptr.value, dstPitch=128,
                dstHeight=10, dstY=1, WidthInBytes=64, Height=8, Depth=4))
out3 = ct.create_string_buffer(64 * 8 * 4)
rcs.append(copy(srcMemoryType=DEVICE, srcDevice=dptr.value, srcPitch=128, srcHeight=10, srcY=1,
                **host_side("dst", out3, 64, 8), WidthInBytes=64, Height=8, Depth=4))
report("array_3d_via_device", rcs == [0] * 5 and out3.raw == box, f"status={rcs} same={out3.raw == box}")

# -- boxes larger than a payload chunk: 8 MiB of 128 KiB rows, and 2 MiB rows of a 1D array
rc, big = array(8192, 64, fmt=FLOAT, channels=4)
data = pattern(8192 * 16 * 64, 3)
bsrc, bdst = ct.create_string_buffer(data, len(data)), ct.create_string_buffer(len(data))
rcs = [rc, copy(**host_side("src", bsrc, 8192 * 16), **array_side("dst", big), WidthInBytes=8192 * 16, Height=64,
                Depth=1),
       copy(**array_side("src", big), **host_side("dst", bdst, 8192 * 16), WidthInBytes=8192 * 16, Height=64,
            Depth=1)]
rc, wide = array(131072, fmt=FLOAT, channels=4)
row = pattern(131072 * 16, 4)
wsrc, wdst = ct.create_string_buffer(row, len(row)), ct.create_string_buffer(len(row))
rcs += [rc, copy(**host_side("src", wsrc, len(row)), **array_side("dst", wide), WidthInBytes=len(row), Height=1,
                 Depth=1),
        copy(**array_side("src", wide), **host_side("dst", wdst, len(row)), WidthInBytes=len(row), Height=1,
             Depth=1)]
ok = rcs == [0] * 6 and bdst.raw == data and wdst.raw == row
report("boxes_past_a_chunk", ok, f"status={rcs}")
rcs = [cuda.cuArrayDestroy(big), cuda.cuArrayDestroy(wide)]
report("destroy", rcs == [0, 0], f"status={rcs}")

# -- descriptors answered in the guest
got = Array3DDesc()
rc = cuda.cuArray3DGetDescriptor_v2(ct.byref(got), arr3d)
flat = ct.create_string_buffer(24)
rc2 = cuda.cuArrayGetDescriptor_v2(flat, arr3d)  # a 3D array has no 2D descriptor
ok = rc == 0 and (got.Width, got.Height, got.Depth, got.Format, got.NumChannels) == (16, 8, 4, U8, 4) and rc2 == 1
report("descriptors", ok, f"status={rc},{rc2}")

# -- kernels of the texture corpus sample what was copied
module, kernel = ct.c_void_p(), ct.c_void_p()
ptx = (repo / "tests" / "kernels" / "ptx_texture.compute_90.ptx").read_bytes() + b"\0"
rcs = [cuda.cuModuleLoadData(ct.byref(module), ptx), cuda.cuModuleGetFunction(ct.byref(kernel), module,
                                                                               b"tex2d_scalar")]
rc, tex = texture(array_resource(arr2d), addressMode=(ct.c_int * 3)(1, 1, 1))  # clamp, point, element coords
rcs.append(rc)
points = [(0, 0), (99, 36), (5, 17), (150, 3), (-4, 40)]  # the last two clamp to the edge
coords = struct.pack(f"<{2 * len(points)}f", *[v + 0.5 for p in points for v in p])
dcoords, dout = u64(), u64()
rcs += [cuda.cuMemAlloc_v2(ct.byref(dcoords), size_t(len(coords))), cuda.cuMemAlloc_v2(ct.byref(dout), size_t(64))]
rcs.append(cuda.cuMemcpyHtoD_v2(dcoords, coords, size_t(len(coords))))


def launch(handle: int, n: int) -> int:
    args = (u64(handle), u64(dcoords.value), u64(dout.value), ct.c_int(n))
    params = (ct.c_void_p * 4)(*[ct.cast(ct.pointer(a), ct.c_void_p) for a in args])
    return int(cuda.cuLaunchKernel(kernel, 1, 1, 1, 32, 1, 1, 0, None, params, None))


rcs.append(launch(tex, len(points)))
result = ct.create_string_buffer(4 * len(points))
rcs.append(cuda.cuMemcpyDtoH_v2(result, dout, size_t(4 * len(points))))
texels = struct.unpack(f"<{len(points)}f", result.raw)


def texel(x: int, y: int) -> float:
    x, y = min(max(x, 0), 99), min(max(y, 0), 36)
    offset = y * 512 + 8 + 4 * x
    return float(struct.unpack_from("<f", src.raw, offset)[0])


want = [texel(x, y) for x, y in points]
same = all(a == b or (math.isnan(a) and math.isnan(b)) for a, b in zip(texels, want, strict=True))
report("texture_sampling", rcs == [0] * len(rcs) and same, f"status={rcs} got={texels[:3]} want={want[:3]}")

# -- every refusal a guest can provoke, with CUDA's status
linear = ResourceDesc(resType=2)
struct.pack_into("<QiIQ", linear.res, 0, dptr.value + 4, FLOAT, 1, 256)  # not texture-aligned
mipmapped = ResourceDesc(resType=1)
_, plain = array(4, 4)
refusals = {
    "format_not_an_array_format": array(4, fmt=0x04)[0] == 1,
    "nv12_not_supported": array(4, 4, fmt=0xB0)[0] == 801,
    "three_channels": array(4, channels=3)[0] == 1,
    "cubemap_not_square": array(8, 4, 6, flags=4)[0] == 1,
    "huge_array": array(1 << 40, 1 << 40, 1 << 40)[0] == 1,
    "box_outside_the_array": copy(**host_side("src", src, 512), **array_side("dst", arr2d, y=1), WidthInBytes=400,
                                  Height=37, Depth=1) == 1,
    "partial_texel": copy(**host_side("src", src, 512), **array_side("dst", arr2d, x=2), WidthInBytes=4, Height=1,
                          Depth=1) == 1,
    "mipmap_level": copy(**host_side("src", src, 512), **array_side("dst", arr2d), dstLOD=1, WidthInBytes=4,
                         Height=1, Depth=1) == 801,
    "mipmapped_texture": texture(mipmapped)[0] == 801,
    "misaligned_linear": texture(linear)[0] == 1,
    "resource_view": cuda.cuTexObjectCreate(ct.byref(u64()), ct.byref(array_resource(arr2d)),
                                            ct.byref(TextureDesc()), ct.byref(ct.create_string_buffer(112))) == 801,
    "surface_without_ldst": cuda.cuSurfObjectCreate(ct.byref(u64()), ct.byref(array_resource(plain))) == 1,
    "destroyed_texture": cuda.cuTexObjectDestroy(u64(tex)) == 0 and cuda.cuTexObjectDestroy(u64(tex)) == 400,
}
bad = [name for name, ok in refusals.items() if not ok]
report("refused", not bad, f"wrong={bad}")

# -- last: a texture whose array was destroyed faults in the kernel that samples it (sticky)
rc, doomed_tex = texture(array_resource(arr2d))
rcs = [rc, cuda.cuArrayDestroy(arr2d), launch(doomed_tex, 1)]
rcs.append(cuda.cuCtxSynchronize())
report("destroyed_array_faults", rcs[:3] == [0, 0, 0] and rcs[3] == 700, f"status={rcs}")

print("SELFTEST PASS" if failures == 0 else f"SELFTEST FAIL ({failures})", flush=True)
sys.exit(1 if failures else 0)
