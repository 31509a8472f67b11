"""Driver-API launch helpers on the shim's libcuda.so.1, through ctypes (run by test_launch_helpers.py
in its own process: the shim connects once per process): cuOccupancyMaxPotentialBlockSize{,WithFlags}
against CUDA's search written here over the host's per-size answers, with a dynamic shared memory
callback (a guest function: the sizes it is called with are recorded) and a block size limit.
Prints the selftest's RESULT lines and verdict.

Arguments: the shim's libcuda and the kernels directory."""

from __future__ import annotations

import ctypes as ct
import sys
from collections.abc import Callable
from pathlib import Path

cuda = ct.CDLL(sys.argv[1])
kernels = Path(sys.argv[2])
failures = 0
INVALID_VALUE, INVALID_HANDLE = 1, 400


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


# -- a fixed dynamic shared memory size, as matrixMulDrv asks (2 tiles of floats), and none
for name, smem in (("potential_fixed", 2 * 32 * 32 * 4), ("potential_none", 0)):
    rc, grid, block = potential(smem, 0)
    want = search(lambda size, smem=smem: smem, 0)
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
grid, block = ct.c_int(), ct.c_int()
refused = [potential(0, 0, None, flags=2)[0],
           cuda.cuOccupancyMaxPotentialBlockSize(None, ct.byref(block), fn, None, ct.c_size_t(0), 0),
           cuda.cuOccupancyMaxPotentialBlockSize(ct.byref(grid), ct.byref(block), None, None, ct.c_size_t(0), 0),
           potential(0, -1)[0]]
report("potential_refused", refused == [INVALID_VALUE, INVALID_VALUE, INVALID_HANDLE, INVALID_VALUE],
       f"refused={refused}")

print("SELFTEST PASS" if not failures else f"SELFTEST FAIL {failures}", flush=True)
sys.exit(1 if failures else 0)
