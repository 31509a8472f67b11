"""A driver-API program on the shim's libcuda.so.1, through ctypes (run by test_driver_api.py in its own
process: the shim connects once per process). Prints the selftest's RESULT lines and verdict.

Arguments: the shim's libcuda, the kernels directory, and the mediator's backend (``sim`` by default):
a cubin holds SASS, which only a GPU runs, so on ``sim`` its launches are refused at the next
synchronize (``CUDA_ERROR_NOT_SUPPORTED``) while the load and the lookups succeed."""

from __future__ import annotations

import ctypes as ct
import struct
import sys
from pathlib import Path

cuda = ct.CDLL(sys.argv[1])
kernels = Path(sys.argv[2])
backend = sys.argv[3] if len(sys.argv) > 3 else "sim"
failures = 0
NOT_SUPPORTED = 801


def report(name: str, ok: bool, value: str) -> None:
    global failures
    print(f"RESULT name={name} ok={int(ok)} value={value}", flush=True)
    failures += not ok


class Location(ct.Structure):
    _fields_ = [("type", ct.c_int), ("id", ct.c_int)]


class AllocationProp(ct.Structure):
    _fields_ = [("type", ct.c_int), ("requestedHandleTypes", ct.c_int), ("location", Location),
                ("win32HandleMetaData", ct.c_void_p), ("allocFlags", ct.c_ubyte * 8)]


class AccessDesc(ct.Structure):
    _fields_ = [("location", Location), ("flags", ct.c_int)]


u64 = ct.c_uint64
rc = cuda.cuInit(0)
report("init", rc == 0, f"status={rc}")

# -- the virtual memory management API: reserve, create, map, grant access, copy through the mapping
prop = AllocationProp(type=1, requestedHandleTypes=0, location=Location(1, 0))
gran = ct.c_size_t()
rc = cuda.cuMemGetAllocationGranularity(ct.byref(gran), ct.byref(prop), 0)
size = gran.value * 2
va, handle = u64(), u64()
rcs = [rc,
       cuda.cuMemAddressReserve(ct.byref(va), ct.c_size_t(size), ct.c_size_t(0), u64(0), u64(0)),
       cuda.cuMemCreate(ct.byref(handle), ct.c_size_t(size), ct.byref(prop), u64(0))]
rcs.append(cuda.cuMemMap(va, ct.c_size_t(size), ct.c_size_t(0), handle, u64(0)))
access = AccessDesc(Location(1, 0), 3)
rcs.append(cuda.cuMemSetAccess(va, ct.c_size_t(size), ct.byref(access), ct.c_size_t(1)))
data = bytes(range(256)) * (size // 256)
rcs.append(cuda.cuMemcpyHtoD_v2(va, data, ct.c_size_t(size)))
back = ct.create_string_buffer(size)
rcs.append(cuda.cuMemcpyDtoH_v2(back, va, ct.c_size_t(size)))
rcs += [cuda.cuMemUnmap(va, ct.c_size_t(size)), cuda.cuMemRelease(handle),
        cuda.cuMemAddressFree(va, ct.c_size_t(size))]
report("vmm", rcs == [0] * len(rcs) and back.raw == data, f"granularity={gran.value} status={rcs}")

# -- modules in each image format, whose size the shim reads from the image itself
n = 1000
x = struct.pack(f"<{n}f", *[float(i) for i in range(n)])
dx = u64()
cuda.cuMemAlloc_v2(ct.byref(dx), ct.c_size_t(4 * n))
for image in ("test_kernels.fatbin", "test_kernels.cubin", "test_kernels.ptx"):
    raw = kernels.joinpath(image).read_bytes() + (b"\0" if image.endswith(".ptx") else b"")
    module, fn = ct.c_void_p(), ct.c_void_p()
    rcs = [cuda.cuModuleLoadData(ct.byref(module), raw),
           cuda.cuModuleGetFunction(ct.byref(fn), module, b"_Z9scale_f32Pffi"),
           cuda.cuMemcpyHtoD_v2(dx, x, ct.c_size_t(4 * n))]
    ptr, factor, count = u64(dx.value), ct.c_float(3.0), ct.c_int(n)
    params = (ct.c_void_p * 3)(ct.addressof(ptr), ct.addressof(factor), ct.addressof(count))
    rcs.append(cuda.cuLaunchKernel(fn, 4, 1, 1, 256, 1, 1, 0, None, params, None))
    # the same kernel with the caller's own packed block (CU_LAUNCH_PARAM_BUFFER_POINTER/SIZE)
    block = struct.pack("<Qfi", dx.value, 0.5, n)
    buf, buf_size = ct.create_string_buffer(block, len(block)), ct.c_size_t(len(block))
    extra = (ct.c_void_p * 5)(1, ct.addressof(buf), 2, ct.addressof(buf_size), 0)
    rcs.append(cuda.cuLaunchKernel(fn, 4, 1, 1, 256, 1, 1, 0, None, None, extra))
    out = ct.create_string_buffer(4 * n)
    rcs += [cuda.cuCtxSynchronize(), cuda.cuMemcpyDtoH_v2(out, dx, ct.c_size_t(4 * n)),
            cuda.cuModuleUnload(module)]
    got = struct.unpack(f"<{n}f", out.raw)
    name = f"module_{image.split('.', 1)[1].replace('.', '_')}"
    if image.endswith(".cubin") and backend == "sim":
        # load, lookup, copy and both posted launches succeed; the synchronize reports the refusal
        report(name, rcs == [0, 0, 0, 0, 0, NOT_SUPPORTED, 0, 0], f"status={rcs}")
    else:
        report(name, rcs == [0] * len(rcs) and all(g == i * 1.5 for i, g in enumerate(got)), f"status={rcs}")

# -- function attributes: the host's answers for the fatbin's sm_90 softmax_rows, a limit raised and
# read back, what the shim refuses itself, a launch past the limit refused by the host (reported by
# the next synchronize, as posted launches are), and a function whose module is gone
MAX_THREADS, SHARED, NUM_REGS, MAX_DYNAMIC = 0, 1, 4, 8
module, fn = ct.c_void_p(), ct.c_void_p()
rcs = [cuda.cuModuleLoadData(ct.byref(module), kernels.joinpath("test_kernels.fatbin").read_bytes()),
       cuda.cuModuleGetFunction(ct.byref(fn), module, b"_Z12softmax_rowsPKfPfii")]
values = []
for attrib in (MAX_THREADS, SHARED, NUM_REGS, MAX_DYNAMIC):
    value = ct.c_int(-7)
    rcs.append(cuda.cuFuncGetAttribute(ct.byref(value), attrib, fn))
    values.append(value.value)
raised = ct.c_int()
rcs += [cuda.cuFuncSetAttribute(fn, MAX_DYNAMIC, 96 * 1024), cuda.cuFuncGetAttribute(ct.byref(raised), MAX_DYNAMIC, fn)]
refused = [cuda.cuFuncGetAttribute(ct.byref(raised), 99, fn), cuda.cuFuncGetAttribute(None, NUM_REGS, fn),
           cuda.cuFuncSetAttribute(fn, NUM_REGS, 1), cuda.cuFuncSetAttribute(fn, MAX_DYNAMIC, 1 << 30),
           cuda.cuFuncSetAttribute(None, MAX_DYNAMIC, 0)]
rows, cols = ct.c_int(1), ct.c_int(32)
params = (ct.c_void_p * 4)(ct.addressof(dx), ct.addressof(dx), ct.addressof(rows), ct.addressof(cols))
posted = [cuda.cuLaunchKernel(fn, 1, 1, 1, 32, 1, 1, 96 * 1024, None, params, None),
          cuda.cuLaunchKernel(fn, 1, 1, 1, 32, 1, 1, 96 * 1024 + 1, None, params, None)]
latched = cuda.cuCtxSynchronize()
rcs.append(cuda.cuModuleUnload(module))
stale = cuda.cuFuncGetAttribute(ct.byref(raised), NUM_REGS, fn)
report("func_attributes", rcs == [0] * len(rcs) and values == [1024, 8192, 20, 40 * 1024] and
       raised.value == 96 * 1024 and refused == [1, 1, 1, 1, 400] and posted == [0, 0] and latched == 1 and
       stale == 400,
       f"values={values} raised={raised.value} refused={refused} posted={posted} latched={latched} "
       f"stale={stale} status={rcs}")

# -- a function resolved through cuGetProcAddress is the library's own
fn_ptr, status = ct.c_void_p(), ct.c_int()
rc = cuda.cuGetProcAddress_v2(b"cuMemFree", ct.byref(fn_ptr), 13000, u64(0), ct.byref(status))
mem_free = ct.CFUNCTYPE(ct.c_int, u64)(fn_ptr.value or 0)
report("proc_address_call", rc == 0 and mem_free(dx) == 0, f"status={rc}")

print("SELFTEST PASS" if not failures else f"SELFTEST FAIL {failures}", flush=True)
sys.exit(1 if failures else 0)
