"""Pinned memory across a reset of the VM's worker (run by test_pinned.py in its own process, on the
shim's libcuda.so.1): allocates pinned memory and copies through it, prints ``ready``, waits for a line
on stdin (the test resets the worker meanwhile), then prints ``after`` and, in order: the status of the
first call (it notices the reset), whether the buffer of before now reads zeros (the new worker punched
the area out), the status of an allocation and of a copy from that buffer (now ordinary memory: staged), whether the bytes came back right, of freeing it (only forgotten: the host has it back), and
of a fresh pinned allocation with a copy through it; then of freeing managed memory of before (only
forgotten, as pinned memory is) and of a fresh managed allocation and its free."""

from __future__ import annotations

import ctypes as ct
import sys

cuda = ct.CDLL(sys.argv[1])
N = 1 << 20
host, fresh, dev, managed, fresh_managed = ct.c_void_p(), ct.c_void_p(), ct.c_uint64(), ct.c_uint64(), ct.c_uint64()
before = [cuda.cuInit(0), cuda.cuMemAllocHost_v2(ct.byref(host), N), cuda.cuMemAlloc_v2(ct.byref(dev), N),
          cuda.cuMemAllocManaged(ct.byref(managed), ct.c_size_t(N), 1)]
ct.memset(host, 0x5A, N)
before.append(cuda.cuMemcpyHtoD_v2(dev, host, N))
print("ready", *before, flush=True)
sys.stdin.readline()
noticed = cuda.cuMemAlloc_v2(ct.byref(dev), N)  # the first call after the reset fails: device unavailable
wiped = int(ct.string_at(host, N) == bytes(N))  # the new worker punched the area out: zeros, not our bytes
ct.memset(host, 0x5A, N)
status = [noticed, wiped, cuda.cuMemAlloc_v2(ct.byref(dev), N), cuda.cuMemcpyHtoD_v2(dev, host, N)]
ct.memset(host, 0, N)
status.append(cuda.cuMemcpyDtoH_v2(host, dev, N))
status.append(int(ct.string_at(host, N) == b"\x5a" * N))
status += [cuda.cuMemFreeHost(host), cuda.cuMemAllocHost_v2(ct.byref(fresh), N)]
ct.memset(fresh, 0x33, N)
status.append(cuda.cuMemcpyHtoD_v2(dev, fresh, N))
status += [cuda.cuMemFree_v2(managed), cuda.cuMemAllocManaged(ct.byref(fresh_managed), ct.c_size_t(N), 1),
           cuda.cuMemFree_v2(fresh_managed)]
print("after", *status, flush=True)
