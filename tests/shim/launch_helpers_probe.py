"""Driver-API launch helpers on the shim's libcuda.so.1, through ctypes (run by test_launch_helpers.py
in its own process: the shim connects once per process): cuOccupancyMaxPotentialBlockSize{,WithFlags}
against CUDA's search written here over the host's per-size answers, with a dynamic shared memory
callback (a guest function: the sizes it is called with are recorded) and a block size limit; and
cuTensorMapEncodeTiled (directly and through cuGetProcAddress, as cudaGetDriverEntryPoint finds it)
with a TMA load of the corpus (tests/kernels/ptx_tma.cu) launched on its map, against the tensor's
slice; and advice on managed memory (cuMemAdvise{,_v2}, and libcudart's cudaMemAdvise over it).
Prints the selftest's RESULT lines and verdict.

Arguments: the shim's libcuda and the kernels directory."""

from __future__ import annotations

import ctypes as ct
import struct
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

cuda = ct.CDLL(sys.argv[1])
kernels = Path(sys.argv[2])
failures = 0
INVALID_VALUE, INVALID_HANDLE, NOT_SUPPORTED = 1, 400, 801


def report(name: str, ok: bool, value: str) -> None:
    global failures
    print(f"RESULT name={name} ok={int(ok)} value={value}", flush=True)
    failures += not ok


ctx, dev = ct.c_void_p(), ct.c_int()
rcs = [cuda.cuInit(0), cuda.cuDeviceGet(ct.byref(dev), 0), cuda.cuDevicePrimaryCtxRetain(ct.byref(ctx), dev),
       cuda.cuCtxSetCurrent(ctx)]
module, fn = ct.c_void_p(), ct.c_void_p()
rcs += [cuda.cuModuleLoadData(ct.byref(module), kernels.joinpath("test_kernels.fatbin").read_bytes()),
        cuda.cuModuleGetFunction(ct.byref(fn), module, b"_Z12softmax_rowsPKfPfii")]
report("setup", rcs == [0] * len(rcs), f"status={rcs}")


def attribute(attrib: int) -> int:
    value = ct.c_int()
    assert cuda.cuDeviceGetAttribute(ct.byref(value), attrib, dev) == 0
    return value.value


SM_THREADS, WARP, SMS, DEV_BLOCK = attribute(39), attribute(10), attribute(16), attribute(1)
func_block = ct.c_int()
cuda.cuFuncGetAttribute(ct.byref(func_block), 0, fn)


def resident(size: int, smem: int) -> int:
    blocks = ct.c_int(-1)
    rc = cuda.cuOccupancyMaxActiveBlocksPerMultiprocessor(ct.byref(blocks), fn, size, ct.c_size_t(smem))
    assert rc == 0, rc
    return blocks.value


def search(smem_of: Callable[[int], int], limit: int) -> tuple[int, int]:
    """CUDA's search (cuda_runtime.h's cudaOccupancyMaxPotentialBlockSizeVariableSMemWithFlags)."""
    limit = min(limit or DEV_BLOCK, DEV_BLOCK, func_block.value)
    best = (0, 0, 0)  # threads, size, blocks
    for aligned in range((limit + WARP - 1) // WARP * WARP, 0, -WARP):
        size = min(limit, aligned)
        blocks = resident(size, smem_of(size))
        if blocks * size > best[0]:
            best = (blocks * size, size, blocks)
        if best[0] == SM_THREADS:
            break
    return best[2] * SMS, best[1]


def potential(smem: int, limit: int, callback: object = None, flags: int | None = None) -> tuple[int, int, int]:
    grid, block = ct.c_int(-1), ct.c_int(-1)
    if flags is None:
        rc = cuda.cuOccupancyMaxPotentialBlockSize(ct.byref(grid), ct.byref(block), fn, callback,
                                                   ct.c_size_t(smem), limit)
    else:
        rc = cuda.cuOccupancyMaxPotentialBlockSizeWithFlags(ct.byref(grid), ct.byref(block), fn, callback,
                                                            ct.c_size_t(smem), limit, flags)
    return rc, grid.value, block.value


def constant(smem: int) -> Callable[[int], int]:
    """A dynamic shared memory size the same for every block size."""
    return lambda size: smem


# -- a fixed dynamic shared memory size, as matrixMulDrv asks (2 tiles of floats), and none
for name, smem in (("potential_fixed", 2 * 32 * 32 * 4), ("potential_none", 0)):
    rc, grid, block = potential(smem, 0)
    want = search(constant(smem), 0)
    report(name, rc == 0 and (grid, block) == want and block > 0, f"status={rc} got={(grid, block)} want={want}")

# -- the callback, a guest function: above 128 threads a block needs 150 KiB of dynamic shared memory (one block
# resident: half the threads at most), so the search goes down to 128, where the threads fill the SM
calls: list[int] = []


def smem_of(size: int) -> int:
    calls.append(size)
    return 150 * 1024 if size > 128 else 0


B2D = ct.CFUNCTYPE(ct.c_size_t, ct.c_int)
callback = B2D(smem_of)
rc, grid, block = potential(0, 0, callback, flags=0)
seen = list(calls)
calls.clear()
want = search(smem_of, 0)
report("potential_callback", rc == 0 and (grid, block) == want and seen == calls and seen[0] == min(DEV_BLOCK, 1024) and block == 128,
       f"status={rc} got={(grid, block)} want={want} calls={seen[:4]}..{len(seen)}")

# -- a block size limit that is not a multiple of the warp size is tried first, as CUDA does
calls.clear()
rc, grid, block = potential(0, 100, callback)
seen = list(calls)
calls.clear()
want = search(smem_of, 100)
report("potential_limit", rc == 0 and (grid, block) == want and seen[:2] == [100, 96],
       f"status={rc} got={(grid, block)} want={want} calls={seen[:4]}")

# -- what CUDA refuses: unknown flags, no outputs, no function
grid_out, block_out = ct.c_int(), ct.c_int()
refused = [potential(0, 0, None, flags=2)[0],
           cuda.cuOccupancyMaxPotentialBlockSize(None, ct.byref(block_out), fn, None, ct.c_size_t(0), 0),
           cuda.cuOccupancyMaxPotentialBlockSize(ct.byref(grid_out), ct.byref(block_out), None, None,
                                                 ct.c_size_t(0), 0),
           potential(0, -1)[0]]
report("potential_refused", refused == [INVALID_VALUE, INVALID_VALUE, INVALID_HANDLE, INVALID_VALUE],
       f"refused={refused}")

# -- TMA: a 40 x 100 float tensor (rows 512 bytes apart), its map, a 16 x 32 box at (x, y) = (80, 30)
ROWS, COLS, PITCH, BOX_ROWS, BOX_COLS = 40, 100, 128, 16, 32
u64 = ct.c_uint64
tensor, out = u64(), u64()
host = [float(r * 1000 + c) for r in range(ROWS) for c in range(PITCH)]
rcs = [cuda.cuMemAlloc_v2(ct.byref(tensor), ct.c_size_t(4 * ROWS * PITCH)),
       cuda.cuMemAlloc_v2(ct.byref(out), ct.c_size_t(4 * BOX_ROWS * BOX_COLS)),
       cuda.cuMemcpyHtoD_v2(tensor, struct.pack(f"<{len(host)}f", *host), ct.c_size_t(4 * len(host)))]
room = ct.create_string_buffer(128 + 64)
aligned = ct.addressof(room) + (-ct.addressof(room) % 64)
dims, strides = (u64 * 2)(COLS, ROWS), (u64 * 1)(4 * PITCH)
box, steps = (ct.c_uint32 * 2)(BOX_COLS, BOX_ROWS), (ct.c_uint32 * 2)(1, 1)
FLOAT32 = 7


def encode(fn: Any, where: int, **changes: int) -> int:
    args = dict(data_type=FLOAT32, interleave=0, swizzle=0, l2=0, oob=0) | changes
    return int(fn(ct.c_void_p(where), args["data_type"], 2, ct.c_void_p(tensor.value), dims, strides, box, steps,
                  args["interleave"], args["swizzle"], args["l2"], args["oob"]))


rcs.append(encode(cuda.cuTensorMapEncodeTiled, aligned))
direct = ct.string_at(aligned, 128)
entry, status = ct.c_void_p(), ct.c_int()
rcs.append(cuda.cuGetProcAddress_v2(b"cuTensorMapEncodeTiled", ct.byref(entry), 12000, u64(0), ct.byref(status)))
looked_up = ct.CFUNCTYPE(ct.c_int, ct.c_void_p, ct.c_int, ct.c_uint32, ct.c_void_p, ct.c_void_p, ct.c_void_p,
                         ct.c_void_p, ct.c_void_p, ct.c_int, ct.c_int, ct.c_int, ct.c_int)(entry.value or 0)
rcs.append(encode(looked_up, aligned))
same = ct.string_at(aligned, 128) == direct
module, tma = ct.c_void_p(), ct.c_void_p()
ptx = kernels.joinpath("ptx_tma.compute_90.ptx").read_bytes() + b"\0"
rcs += [cuda.cuModuleLoadData(ct.byref(module), ptx), cuda.cuModuleGetFunction(ct.byref(tma), module, b"tma_load_2d")]
nbytes, x, y = ct.c_int(4 * BOX_ROWS * BOX_COLS), ct.c_int(80), ct.c_int(30)
params = (ct.c_void_p * 5)(aligned, ct.addressof(out), ct.addressof(nbytes), ct.addressof(x), ct.addressof(y))
rcs += [cuda.cuLaunchKernel(tma, 1, 1, 1, 128, 1, 1, 0, None, params, None), cuda.cuCtxSynchronize()]
got = ct.create_string_buffer(nbytes.value)
rcs.append(cuda.cuMemcpyDtoH_v2(got, out, ct.c_size_t(nbytes.value)))
values = struct.unpack(f"<{BOX_ROWS * BOX_COLS}f", got.raw)
slice_ = [float((30 + r) * 1000 + 80 + c) if 30 + r < ROWS and 80 + c < COLS else 0.0
          for r in range(BOX_ROWS) for c in range(BOX_COLS)]
report("tensor_map_tma", rcs == [0] * len(rcs) and same and list(values) == slice_,
       f"status={rcs} same={same} first={values[:2]} last={values[-2:]}")
refused = [encode(cuda.cuTensorMapEncodeTiled, aligned + 32), encode(cuda.cuTensorMapEncodeTiled, aligned, oob=1,
                                                                      data_type=2),
           encode(cuda.cuTensorMapEncodeTiled, aligned, data_type=10)]
report("tensor_map_refused", refused == [INVALID_VALUE, INVALID_VALUE, NOT_SUPPORTED], f"refused={refused}")

# -- advice on managed memory: checked, then a hint
class Location(ct.Structure):
    _fields_ = [("type", ct.c_int), ("id", ct.c_int)]


DEVICE, HOST, READ_MOSTLY, PREFERRED, ACCESSED_BY, INVALID_DEVICE = 1, 2, 1, 3, 5, 101
managed, plain, size = u64(), u64(), 1 << 16
rcs = [cuda.cuMemAllocManaged(ct.byref(managed), ct.c_size_t(size), 1), cuda.cuMemAlloc_v2(ct.byref(plain),
                                                                                           ct.c_size_t(size))]
cudart = ct.CDLL(str(Path(sys.argv[1]).with_name("libcudart.so.13")))


def advise(ptr: int, count: int, advice: int, kind: int, ordinal: int, fn: Any = cuda.cuMemAdvise_v2) -> int:
    return int(fn(u64(ptr), ct.c_size_t(count), advice, Location(kind, ordinal)))


served = [advise(managed.value, size, READ_MOSTLY, 0, 0), advise(managed.value + 4096, 4096, PREFERRED, DEVICE, 0),
          advise(managed.value, size, PREFERRED, HOST, 0), advise(managed.value, size, ACCESSED_BY, DEVICE, 0),
          int(cuda.cuMemAdvise(u64(managed.value), ct.c_size_t(size), ACCESSED_BY, -1)),
          advise(managed.value, size, 4, DEVICE, 0, cudart.cudaMemAdvise)]
refused = [advise(managed.value, size, ACCESSED_BY, DEVICE, 1), advise(managed.value, size, 7, DEVICE, 0),
           advise(managed.value, 0, READ_MOSTLY, DEVICE, 0), advise(managed.value, size + 1, READ_MOSTLY, DEVICE, 0),
           advise(plain.value, size, READ_MOSTLY, DEVICE, 0), advise(managed.value, size, PREFERRED, 9, 0),
           int(cuda.cuMemAdvise(u64(managed.value), ct.c_size_t(size), PREFERRED, 3)),
           advise(plain.value, size, READ_MOSTLY, DEVICE, 0, cudart.cudaMemAdvise)]
report("mem_advise", rcs == [0, 0] and served == [0] * 6 and refused == [INVALID_DEVICE, INVALID_VALUE, INVALID_VALUE,
                                                                           INVALID_VALUE, INVALID_VALUE,
                                                                           INVALID_VALUE, INVALID_DEVICE,
                                                                           INVALID_VALUE],
       f"status={rcs} served={served} refused={refused}")

print("SELFTEST PASS" if not failures else f"SELFTEST FAIL {failures}", flush=True)
sys.exit(1 if failures else 0)
