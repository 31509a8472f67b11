"""cuTensorMapEncodeIm2col through the shim's libcuda.so.1, with ctypes (run by test_im2col.py in its
own process): an NHWC tensor's im2col map made by the host (directly and through cuGetProcAddress), the
corpus's im2col load (tests/kernels/ptx_tma_im2col.cu) launched on it, its pixels checked against the
windows a 3x3 convolution with padding 1 reads; and the refusals (a misaligned map never leaves the
guest, a rank below 3, corners past the rank's range). Prints the selftest's RESULT lines and verdict.

Arguments: the shim's libcuda and the kernels directory."""

from __future__ import annotations

import ctypes as ct
import struct
import sys
from pathlib import Path
from typing import Any

cuda = ct.CDLL(sys.argv[1])
kernels = Path(sys.argv[2])
failures = 0
INVALID_VALUE = 1
u64 = ct.c_uint64
N, H, W, C = 2, 5, 6, 16  # u16 channels: a pixel is 32 bytes
PIXELS = 40


def report(name: str, ok: bool, value: str) -> None:
    global failures
    print(f"RESULT name={name} ok={int(ok)} value={value}", flush=True)
    failures += not ok


def value(n: int, h: int, w: int, c: int) -> int:
    return (n * 1000 + h * 100 + w * 10 + c) & 0xFFFF


ctx, dev = ct.c_void_p(), ct.c_int()
rcs = [
    cuda.cuInit(0),
    cuda.cuDeviceGet(ct.byref(dev), 0),
    cuda.cuDevicePrimaryCtxRetain(ct.byref(ctx), dev),
    cuda.cuCtxSetCurrent(ctx),
]
tensor, out = u64(), u64()
host = [value(n, h, w, c) for n in range(N) for h in range(H) for w in range(W) for c in range(C)]
rcs += [
    cuda.cuMemAlloc_v2(ct.byref(tensor), ct.c_size_t(2 * len(host))),
    cuda.cuMemAlloc_v2(ct.byref(out), ct.c_size_t(2 * PIXELS * C)),
    cuda.cuMemcpyHtoD_v2(tensor, struct.pack(f"<{len(host)}H", *host), ct.c_size_t(2 * len(host))),
]
room = ct.create_string_buffer(128 + 64)
aligned = ct.addressof(room) + (-ct.addressof(room) % 64)
dims = (u64 * 4)(C, W, H, N)
strides = (u64 * 3)(2 * C, 2 * C * W, 2 * C * W * H)
steps = (ct.c_uint32 * 4)(1, 1, 1, 1)
UINT16 = 1


def encode(fn: Any, where: int, rank: int = 4, lower: tuple[int, int] = (-1, -1)) -> int:
    low, up = (ct.c_int * 2)(*lower), (ct.c_int * 2)(-1, -1)
    return int(
        fn(
            ct.c_void_p(where),
            UINT16,
            rank,
            ct.c_void_p(tensor.value),
            dims,
            strides,
            low,
            up,
            C,
            PIXELS,
            steps,
            0,
            0,
            0,
            0,
        )
    )


rcs.append(encode(cuda.cuTensorMapEncodeIm2col, aligned))
direct = ct.string_at(aligned, 128)
entry, status = ct.c_void_p(), ct.c_int()
rcs.append(
    cuda.cuGetProcAddress_v2(b"cuTensorMapEncodeIm2col", ct.byref(entry), 12000, u64(0), ct.byref(status))
)
looked_up = ct.CFUNCTYPE(
    ct.c_int,
    ct.c_void_p,
    ct.c_int,
    ct.c_uint32,
    ct.c_void_p,
    ct.c_void_p,
    ct.c_void_p,
    ct.c_void_p,
    ct.c_void_p,
    ct.c_uint32,
    ct.c_uint32,
    ct.c_void_p,
    ct.c_int,
    ct.c_int,
    ct.c_int,
    ct.c_int,
)(entry.value or 0)
rcs.append(encode(looked_up, aligned))
same = ct.string_at(aligned, 128) == direct
report("setup", rcs == [0] * len(rcs) and same, f"status={rcs} same={same}")

# the (0, 1) tap of a 3x3 filter over the padded images: pixels from (h, w) = (-1, -1), image 0
module, fn = ct.c_void_p(), ct.c_void_p()
ptx = kernels.joinpath("ptx_tma_im2col.compute_90.ptx").read_bytes() + b"\0"
rcs = [
    cuda.cuModuleLoadData(ct.byref(module), ptx),
    cuda.cuModuleGetFunction(ct.byref(fn), module, b"im2col_load_4d"),
]
args = [ct.c_int(x) for x in (2 * PIXELS * C, 0, -1, -1, 0, 1, 0)]  # bytes, c, w, h, n, offset w, offset h
params = (ct.c_void_p * 9)(aligned, ct.addressof(out), *(ct.addressof(a) for a in args))
rcs += [cuda.cuLaunchKernel(fn, 1, 1, 1, 64, 1, 1, 0, None, params, None), cuda.cuCtxSynchronize()]
got = ct.create_string_buffer(2 * PIXELS * C)
rcs.append(cuda.cuMemcpyDtoH_v2(got, out, ct.c_size_t(2 * PIXELS * C)))
pixels = struct.unpack(f"<{PIXELS * C}H", got.raw)
want: list[int] = []
n, h, w = 0, -1, -1
for _ in range(PIXELS):  # the box: h in [-1, H - 2], w in [-1, W - 2]; read at w + 1
    x = w + 1
    want += [value(n, h, x, c) if 0 <= h < H and 0 <= x < W and n < N else 0 for c in range(C)]
    w += 1
    if w > W - 2:
        w, h = -1, h + 1
        if h > H - 2:
            h, n = -1, n + 1
report("im2col_tma", rcs == [0] * len(rcs) and list(pixels) == want, f"status={rcs} first={pixels[:2]}")

refused = [
    encode(cuda.cuTensorMapEncodeIm2col, aligned + 32),
    encode(cuda.cuTensorMapEncodeIm2col, aligned, rank=2),
    encode(cuda.cuTensorMapEncodeIm2col, aligned, lower=(-129, 0)),
]
report("im2col_refused", refused == [INVALID_VALUE] * 3, f"refused={refused}")
print("SELFTEST PASS" if not failures else "SELFTEST FAIL", flush=True)
sys.exit(1 if failures else 0)
