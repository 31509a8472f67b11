"""The C heap kept warm for the engine's batch-wide arrays.

A register of a batch is an array of up to 16,384 elements — 64 KiB of f32 or u32, 128 KiB of a 64-bit
type — and every instruction on it makes a new one (registers never change in place): a fused run
or a native segment allocates and frees dozens of them a step. glibc gives the free memory at the
top of its heap back to the kernel once more than ``M_TRIM_THRESHOLD`` is free there (128 KiB at
start, later twice its dynamic mmap threshold) and maps a block past ``M_MMAP_THRESHOLD`` on its
own, so the next array of a step faults its pages in again, zeroed: 16 page faults for a 64 KiB
array, more than the arithmetic on it costs. A native segment that leaves 16 registers (binomialOptions'
divergent loop body) spent seven times its arithmetic there.

:func:`keep_heap` fixes both thresholds where glibc's own dynamic rule ends up in a long-running
process once it has freed a 32 MiB block: blocks under 32 MiB come from the heap, and up to 64 MiB
of free memory stays at its top. Nothing is allocated: a worker's peak is what it was, it keeps that
much of it (``RLIMIT_DATA`` counts the heap, mediator/_worker_memory.py; the batch bound,
``_machine.REGISTER_BYTES``, is 64 MiB). Other C libraries have no ``mallopt``: nothing is done there.
"""

from __future__ import annotations

import ctypes
import threading

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "keep_heap"]

#: blocks at least this large are mapped on their own (glibc's dynamic maximum on 64-bit machines)
MMAP_THRESHOLD = 32 << 20
#: free memory at the heap's top kept rather than given back (twice the mmap threshold, glibc's rule)
TRIM_THRESHOLD = 64 << 20

# mallopt's parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

_lock = threading.Lock()
_done: list[bool] = []


def keep_heap() -> bool:
    """Set glibc's thresholds once per process; whether they are set (``False`` without glibc)."""
    with _lock:
        if not _done:
            _done.append(_set())
        return _done[0]


def _set() -> bool:
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 -- glibc's alone: another libc's mallopt means otherwise
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    mapped = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    return bool(mapped) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
