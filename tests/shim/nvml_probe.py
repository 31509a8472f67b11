"""NVML on the shim's libnvidia-ml.so.1 through ctypes, as monitoring code calls it (run by test_nvml.py
in its own process: the shim connects once per process). Allocates through the runtime in the same
process, so the VM's memory NVML reports must follow. Prints RESULT lines and the verdict.
Usage: nvml_probe.py SHIM_DIRECTORY"""

from __future__ import annotations

import ctypes as ct
import os
import sys
from pathlib import Path

shim = Path(sys.argv[1])
ct.CDLL(str(shim / "libcuda.so.1"))  # what libnvidia-ml.so.1 needs, by its soname
nvml = ct.CDLL(str(shim / "libnvidia-ml.so.1"))
cudart = ct.CDLL(str(shim / "libcudart.so.13"))
nvml.nvmlErrorString.restype = ct.c_char_p
failures = 0
NOT_SUPPORTED, UNINITIALIZED, INVALID_ARGUMENT, NOT_FOUND, INSUFFICIENT_SIZE = 3, 1, 2, 6, 7


def report(name: str, ok: bool, value: str) -> None:
    global failures
    print(f"RESULT name={name} ok={int(ok)} value={value}", flush=True)
    failures += not ok


class PciInfo(ct.Structure):
    _fields_ = [("busIdLegacy", ct.c_char * 16), ("domain", ct.c_uint), ("bus", ct.c_uint), ("device", ct.c_uint),
                ("pciDeviceId", ct.c_uint), ("pciSubSystemId", ct.c_uint), ("busId", ct.c_char * 32)]


class Memory(ct.Structure):
    _fields_ = [("total", ct.c_ulonglong), ("free", ct.c_ulonglong), ("used", ct.c_ulonglong)]


class MemoryV2(ct.Structure):
    _fields_ = [("version", ct.c_uint), ("total", ct.c_ulonglong), ("reserved", ct.c_ulonglong),
                ("free", ct.c_ulonglong), ("used", ct.c_ulonglong)]


count = ct.c_uint(99)
before = nvml.nvmlDeviceGetCount_v2(ct.byref(count))
rcs = [nvml.nvmlInit_v2(), nvml.nvmlInit(), nvml.nvmlShutdown(), nvml.nvmlDeviceGetCount_v2(ct.byref(count))]
report("init", before == UNINITIALIZED and rcs == [0, 0, 0, 0] and count.value == 1,
       f"before={before} status={rcs} count={count.value}")
report("error_string", nvml.nvmlErrorString(NOT_SUPPORTED) == b"Not Supported", repr(nvml.nvmlErrorString(3)))

driver, cuda_version = ct.create_string_buffer(80), ct.c_int()
rcs = [nvml.nvmlSystemGetDriverVersion(driver, 80), nvml.nvmlSystemGetCudaDriverVersion_v2(ct.byref(cuda_version)),
       nvml.nvmlSystemGetDriverVersion(driver, 2)]
report("versions", rcs == [0, 0, INSUFFICIENT_SIZE] and cuda_version.value >= 13000 and bool(driver.value),
       f"status={rcs} driver={driver.value!r} cuda={cuda_version.value}")

dev = ct.c_void_p()
name, uuid = ct.create_string_buffer(96), ct.create_string_buffer(96)
rcs = [nvml.nvmlDeviceGetHandleByIndex_v2(0, ct.byref(dev)), nvml.nvmlDeviceGetName(dev, name, 96),
       nvml.nvmlDeviceGetUUID(dev, uuid, 96), nvml.nvmlDeviceGetHandleByIndex_v2(1, ct.byref(ct.c_void_p()))]
report("identity", rcs == [0, 0, 0, INVALID_ARGUMENT] and bool(name.value) and uuid.value.startswith(b"GPU-")
       and len(uuid.value) == 40, f"status={rcs} name={name.value!r} uuid={uuid.value!r}")

pci = PciInfo()
by_uuid, by_bus, by_legacy = ct.c_void_p(), ct.c_void_p(), ct.c_void_p()
rcs = [nvml.nvmlDeviceGetPciInfo_v3(dev, ct.byref(pci)), nvml.nvmlDeviceGetHandleByUUID(uuid, ct.byref(by_uuid)),
       nvml.nvmlDeviceGetHandleByPciBusId_v2(pci.busId, ct.byref(by_bus)),
       nvml.nvmlDeviceGetHandleByPciBusId_v2(pci.busIdLegacy, ct.byref(by_legacy)),
       nvml.nvmlDeviceGetHandleByUUID(b"GPU-00000000-0000-0000-0000-000000000000", ct.byref(ct.c_void_p()))]
report("handles", rcs == [0, 0, 0, 0, NOT_FOUND] and by_uuid.value == by_bus.value == by_legacy.value == dev.value
       and pci.busId.count(b":") == 2 and pci.pciDeviceId & 0xFFFF == 0x10DE,
       f"status={rcs} bus_id={pci.busId!r} device_id={pci.pciDeviceId:#x}")

mem, mem2 = Memory(), MemoryV2(version=ct.sizeof(MemoryV2) | 2 << 24)
rcs = [nvml.nvmlDeviceGetMemoryInfo(dev, ct.byref(mem))]
dptr = ct.c_void_p()
rcs.append(cudart.cudaMalloc(ct.byref(dptr), ct.c_size_t(64 << 20)))
rcs.append(nvml.nvmlDeviceGetMemoryInfo_v2(dev, ct.byref(mem2)))
rcs.append(cudart.cudaFree(dptr))
report("memory", rcs == [0] * 4 and mem.total == mem2.total and mem2.used == mem.used + (64 << 20)
       and mem.free == mem.total - mem.used and mem2.free == mem2.total - mem2.used,
       f"status={rcs} total={mem.total} used={mem.used}->{mem2.used}")
bad = MemoryV2(version=1)
report("memory_version", nvml.nvmlDeviceGetMemoryInfo_v2(dev, ct.byref(bad)) == 25, "")

major, minor, arch, sm, mem_clock, mode = (ct.c_int(), ct.c_int(), ct.c_uint(), ct.c_uint(), ct.c_uint(),
                                           ct.c_int(-1))
rcs = [nvml.nvmlDeviceGetCudaComputeCapability(dev, ct.byref(major), ct.byref(minor)),
       nvml.nvmlDeviceGetArchitecture(dev, ct.byref(arch)), nvml.nvmlDeviceGetMaxClockInfo(dev, 1, ct.byref(sm)),
       nvml.nvmlDeviceGetMaxClockInfo(dev, 2, ct.byref(mem_clock)), nvml.nvmlDeviceGetComputeMode(dev, ct.byref(mode))]
report("capabilities", rcs == [0] * 5 and major.value >= 7 and arch.value != 0xFFFFFFFF and sm.value > 0
       and mem_clock.value > 0 and mode.value == 0,
       f"status={rcs} cc={major.value}.{minor.value} arch={arch.value} sm={sm.value} mem={mem_clock.value}")



class ProcessInfo(ct.Structure):  # nvmlProcessInfo_t (_v2, _v3)
    _fields_ = [("pid", ct.c_uint), ("usedGpuMemory", ct.c_ulonglong), ("gpuInstanceId", ct.c_uint),
                ("computeInstanceId", ct.c_uint)]


# -- running compute processes: this one (it holds a context, so a channel of the VM) and its memory
procs, none, n_procs = (ProcessInfo * 4)(), ct.c_uint(0), ct.c_uint(4)
graphics = ct.c_uint(4)
rcs = [cudart.cudaMalloc(ct.byref(dptr), ct.c_size_t(32 << 20)),
       nvml.nvmlDeviceGetComputeRunningProcesses_v3(dev, ct.byref(none), None),
       nvml.nvmlDeviceGetComputeRunningProcesses_v3(dev, ct.byref(n_procs), procs),
       nvml.nvmlDeviceGetGraphicsRunningProcesses_v3(dev, ct.byref(graphics), (ProcessInfo * 4)()),
       cudart.cudaFree(dptr)]
report("processes", rcs == [0, INSUFFICIENT_SIZE, 0, 0, 0] and none.value == n_procs.value == 1
       and procs[0].pid == os.getpid() and procs[0].usedGpuMemory >= 32 << 20
       and procs[0].gpuInstanceId == 0xFFFFFFFF and graphics.value == 0,
       f"status={rcs} count={n_procs.value} pid={procs[0].pid} (self {os.getpid()}) "
       f"used={procs[0].usedGpuMemory} graphics={graphics.value}")

util = (ct.c_uint * 2)()
rcs = [nvml.nvmlDeviceGetUtilizationRates(dev, util), nvml.nvmlDeviceGetClockInfo(dev, 1, ct.byref(sm)),
       nvml.nvmlDeviceGetFanSpeed(dev, ct.byref(sm)),
       nvml.nvmlDeviceGetTemperature(dev, 0, ct.byref(sm))]
report("not_supported", rcs == [NOT_SUPPORTED] * 4, f"status={rcs}")

rcs = [nvml.nvmlShutdown(), nvml.nvmlDeviceGetName(dev, name, 96), nvml.nvmlShutdown()]
report("shutdown", rcs == [0, UNINITIALIZED, UNINITIALIZED], f"status={rcs}")

print("SELFTEST PASS" if failures == 0 else f"SELFTEST FAIL ({failures})", flush=True)
sys.exit(1 if failures else 0)
