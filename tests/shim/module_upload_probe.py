"""A module image larger than the channel's arena, loaded through the shim's libcuda.so.1 (ctypes, in
its own process: the shim connects once per process), then a cooperative launch of one of its
kernels; and an image past the device's module_bytes, refused. Prints RESULT lines and a verdict.

Arguments: the shim's libcuda and the kernels directory."""

from __future__ import annotations

import ctypes as ct
import struct
import sys
from pathlib import Path

cuda = ct.CDLL(sys.argv[1])
kernels = Path(sys.argv[2])
failures = 0
PAD = 20 << 20  # past a 16 MiB channel's arena


def report(name: str, ok: bool, value: str) -> None:
    global failures
    print(f"RESULT name={name} ok={int(ok)} value={value}", flush=True)
    failures += not ok


u64 = ct.c_uint64
rc = cuda.cuInit(0)
dev, ctx = ct.c_int(), ct.c_void_p()
rcs = [rc, cuda.cuDeviceGet(ct.byref(dev), 0), cuda.cuDevicePrimaryCtxRetain(ct.byref(ctx), dev),
       cuda.cuCtxSetCurrent(ctx)]
report("init", rcs == [0, 0, 0, 0], f"statuses={rcs}")

# the synchronization corpus's PTX, padded with a comment to more than the arena holds
text = (kernels / "ptx_sync.compute_80.ptx").read_bytes() + b"// " + b"x" * PAD + b"\n\0"
module, function = ct.c_void_p(), ct.c_void_p()
rc = cuda.cuModuleLoadData(ct.byref(module), text)
rc2 = cuda.cuModuleGetFunction(ct.byref(function), module, b"coop_ring") if rc == 0 else -1
report("module_upload", rc == 0 and rc2 == 0, f"bytes={len(text)} load={rc} get_function={rc2}")

# coop_ring(a, b, rounds) over 4 blocks of 64 threads, cooperatively (it uses grid.sync())
grid, block, rounds = 4, 64, 3
n = grid * block
a, b = u64(), u64()
values = list(range(n))
rcs = [cuda.cuMemAlloc_v2(ct.byref(a), ct.c_size_t(4 * n)), cuda.cuMemAlloc_v2(ct.byref(b), ct.c_size_t(4 * n))]
rcs.append(cuda.cuMemcpyHtoD_v2(a, struct.pack(f"<{n}I", *values), ct.c_size_t(4 * n)))
count = ct.c_int(rounds)
params = (ct.c_void_p * 3)(ct.addressof(a), ct.addressof(b), ct.addressof(count))
rcs.append(cuda.cuLaunchCooperativeKernel(function, grid, 1, 1, block, 1, 1, 0, None, params))
rcs.append(cuda.cuCtxSynchronize())
out = ct.create_string_buffer(4 * n)
rcs.append(cuda.cuMemcpyDtoH_v2(out, b if rounds % 2 else a, ct.c_size_t(4 * n)))
want = values
for _ in range(rounds):
    want = [(want[i] * 3 + want[(i + 1) % n]) & 0xFFFFFFFF for i in range(n)]
got = list(struct.unpack(f"<{n}I", out.raw))
report("cooperative_launch", rcs == [0] * 6 and got == want, f"statuses={rcs} first={got[:4]} want={want[:4]}")

# the same through cuLaunchKernelEx with the cooperative launch attribute (CUlaunchConfig, CUDA 13)
class LaunchAttribute(ct.Structure):
    _fields_ = [("id", ct.c_int), ("pad", ct.c_char * 4), ("value", ct.c_int), ("rest", ct.c_char * 60)]


class LaunchConfig(ct.Structure):
    _fields_ = [("dims", ct.c_uint * 7), ("stream", ct.c_void_p), ("attrs", ct.POINTER(LaunchAttribute)),
                ("count", ct.c_uint)]


cooperative = LaunchAttribute(id=2, value=1)
config = LaunchConfig((ct.c_uint * 7)(grid, 1, 1, block, 1, 1, 0), None, ct.pointer(cooperative), 1)
rcs = [cuda.cuMemcpyHtoD_v2(a, struct.pack(f"<{n}I", *values), ct.c_size_t(4 * n)),
       cuda.cuLaunchKernelEx(ct.byref(config), function, params, None), cuda.cuCtxSynchronize(),
       cuda.cuMemcpyDtoH_v2(out, b if rounds % 2 else a, ct.c_size_t(4 * n))]
got = list(struct.unpack(f"<{n}I", out.raw))
report("launch_kernel_ex_cooperative", rcs == [0] * 4 and got == want, f"statuses={rcs} first={got[:4]}")

# too large a grid: more blocks than are resident at once (two 1,024-thread blocks per SM)
sms = ct.c_int()
cuda.cuDeviceGetAttribute(ct.byref(sms), 16, dev)
rc = cuda.cuLaunchCooperativeKernel(function, 2 * sms.value + 1, 1, 1, 1024, 1, 1, 0, None, params)
rc2 = cuda.cuCtxSynchronize()
report("cooperative_too_large", rc == 720 or rc2 == 720, f"launch={rc} sync={rc2} sms={sms.value}")

# an image past device.module_bytes (64 MiB by default) is refused before any of it is sent
huge = ct.create_string_buffer(b"// ", (65 << 20))
ct.memset(ct.addressof(huge) + 3, ord("y"), (65 << 20) - 4)
other = ct.c_void_p()
rc = cuda.cuModuleLoadData(ct.byref(other), huge)
report("module_too_large", rc == 1, f"status={rc}")

print("SELFTEST PASS" if failures == 0 else f"SELFTEST FAIL ({failures} failed)", flush=True)
sys.exit(1 if failures else 0)
