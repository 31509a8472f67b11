"""A driver-API program on the shim's libcuda.so.1 that lives through a reset of its VM's worker (run by
test_reset.py in its own process). Prints ``ready`` once it has calls behind it (its completion index
is past 0), waits for a line on stdin (the test resets the worker meanwhile), then prints the status
of a posted call (the first to see the reset), and of an allocation made after it."""

from __future__ import annotations

import ctypes as ct
import sys

cuda = ct.CDLL(sys.argv[1])
ptr = ct.c_uint64()
event = ct.c_void_p()
before = [cuda.cuInit(0), cuda.cuMemAlloc_v2(ct.byref(ptr), 4096), cuda.cuEventCreate(ct.byref(event), 0),
          cuda.cuEventRecord(event, None), cuda.cuMemAlloc_v2(ct.byref(ptr), 4096)]
print("ready", *before, flush=True)
sys.stdin.readline()
posted = cuda.cuEventRecord(event, None)
again = cuda.cuMemAlloc_v2(ct.byref(ptr), 4096)
print("after", posted, again, flush=True)
