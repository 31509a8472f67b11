"""Cluster launches through the shim's libcuda.so.1 (ctypes, in its own process): cuLaunchKernelEx with
the cluster-dimension attribute, an ordinary launch of a ``__cluster_dims__`` kernel, the device's
cluster-launch attribute, and the shapes a GPU refuses. Prints RESULT lines and a verdict.

Arguments: the shim's libcuda and the repository (for the corpus and its reference)."""

from __future__ import annotations

import ctypes as ct
import sys
from pathlib import Path

import numpy as np

cuda = ct.CDLL(sys.argv[1])
repo = Path(sys.argv[2])
sys.path.insert(0, str(repo))
from tests.ptx.test_clusters import _cluster_reference  # noqa: E402

failures = 0


def report(name: str, ok: bool, value: str) -> None:
    global failures
    print(f"RESULT name={name} ok={int(ok)} value={value}", flush=True)
    failures += not ok


class LaunchAttribute(ct.Structure):  # CUlaunchAttribute: the value's first 12 bytes are clusterDim
    _fields_ = [("id", ct.c_int), ("pad", ct.c_char * 4), ("value", ct.c_uint * 3), ("rest", ct.c_char * 52)]


class LaunchConfig(ct.Structure):
    _fields_ = [
        ("dims", ct.c_uint * 7),
        ("stream", ct.c_void_p),
        ("attrs", ct.POINTER(LaunchAttribute)),
        ("count", ct.c_uint),
    ]


rc = cuda.cuInit(0)
dev, ctx = ct.c_int(), ct.c_void_p()
rcs = [
    rc,
    cuda.cuDeviceGet(ct.byref(dev), 0),
    cuda.cuDevicePrimaryCtxRetain(ct.byref(ctx), dev),
    cuda.cuCtxSetCurrent(ctx),
]
report("init", rcs == [0, 0, 0, 0], f"statuses={rcs}")
served = ct.c_int(-1)
rc = cuda.cuDeviceGetAttribute(ct.byref(served), 120, dev)  # CU_DEVICE_ATTRIBUTE_CLUSTER_LAUNCH
report("cluster_launch_attribute", rc == 0 and served.value == 1, f"status={rc} value={served.value}")

module = ct.c_void_p()
text = (repo / "tests" / "kernels" / "ptx_cluster.compute_90.ptx").read_bytes() + b"\0"
rc = cuda.cuModuleLoadData(ct.byref(module), text)
launched, fixed = ct.c_void_p(), ct.c_void_p()
rcs = [
    rc,
    cuda.cuModuleGetFunction(ct.byref(launched), module, b"cluster_launched"),
    cuda.cuModuleGetFunction(ct.byref(fixed), module, b"cluster_fixed"),
]
report("module", rcs == [0, 0, 0], f"statuses={rcs}")


def run(
    function: ct.c_void_p,
    grid: tuple[int, int, int],
    block: int,
    cluster: tuple[int, int, int] | None,
    cooperative: bool = False,
) -> tuple[list[int], np.ndarray]:
    n = grid[0] * grid[1] * grid[2] * block * 12
    out = ct.c_uint64()
    statuses = [
        cuda.cuMemAlloc_v2(ct.byref(out), ct.c_size_t(4 * n)),
        cuda.cuMemsetD8_v2(out, 0, ct.c_size_t(4 * n)),
    ]
    params = (ct.c_void_p * 1)(ct.addressof(out))
    attrs = (LaunchAttribute * 2)()
    count = 0
    if cluster is not None:
        attrs[count] = LaunchAttribute(id=4, value=(ct.c_uint * 3)(*cluster))
        count += 1
    if cooperative:
        attrs[count] = LaunchAttribute(id=2, value=(ct.c_uint * 3)(1, 0, 0))
        count += 1
    config = LaunchConfig((ct.c_uint * 7)(*grid, block, 1, 1, 0), None, attrs, count)
    statuses += [cuda.cuLaunchKernelEx(ct.byref(config), function, params, None), cuda.cuCtxSynchronize()]
    host = np.zeros(n, dtype=np.uint32)
    statuses.append(cuda.cuMemcpyDtoH_v2(host.ctypes.data_as(ct.c_void_p), out, ct.c_size_t(4 * n)))
    cuda.cuMemFree_v2(out)
    return statuses, host


statuses, got = run(launched, (4, 2, 1), 32, (2, 2, 1))
ok = statuses == [0] * 5 and bool((got == _cluster_reference((4, 2, 1), (2, 2, 1), 32)).all())
report("launch_attribute_cluster", ok, f"statuses={statuses} first={got[:12].tolist()}")
statuses, got = run(fixed, (6, 1, 1), 64, None)
ok = statuses == [0] * 5 and bool((got == _cluster_reference((6, 1, 1), (2, 1, 1), 64)).all())
report("cluster_dims_compiled_in", ok, f"statuses={statuses}")
statuses, _ = run(launched, (16, 1, 1), 32, (16, 1, 1))
report("cluster_too_large", 912 in statuses[2:4], f"statuses={statuses}")
statuses, _ = run(fixed, (4, 1, 1), 32, (4, 1, 1))
report("cluster_not_the_kernels", 912 in statuses[2:4], f"statuses={statuses}")
statuses, _ = run(launched, (4, 1, 1), 32, (2, 1, 1), cooperative=True)
report("cooperative_cluster_not_served", statuses[2] == 801, f"statuses={statuses}")

print("SELFTEST PASS" if failures == 0 else f"SELFTEST FAIL ({failures} failed)", flush=True)
sys.exit(1 if failures else 0)
