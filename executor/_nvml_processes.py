"""NVML's running compute processes (``nvml_compute_processes``), the same on both backends.

A virtual GPU's processes are the VM's own: every guest process that holds a context has a channel,
and the worker knows each channel's owner pid and the device memory its context holds
(:attr:`Executor.vm_processes`). Other VMs' processes and the host's are never shown. The output holds
as many ``(u32 pid, u32 0, u64 bytes)`` entries as fit; ``count`` is always the total, as NVML's
``infoCount`` is.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from protocol import CUresult
from protocol.models import DeviceArgs, NvmlProcessesResult

from ._base import CallIO
from ._errors import CudaError

__all__ = ["ENTRY", "compute_processes"]

#: one process as the output payload carries it
ENTRY = struct.Struct("<IIQ")


def compute_processes(args: DeviceArgs, io: CallIO,
                      processes: Callable[[], list[tuple[int, int]]] | None) -> NvmlProcessesResult:
    if args.device != 0:
        raise CudaError(CUresult.CUDA_ERROR_INVALID_DEVICE,
                        f"device {args.device} does not exist (the VM has one device, 0)")
    if processes is None:
        raise CudaError(CUresult.CUDA_ERROR_NOT_SUPPORTED,
                        "the VM's processes are known to its worker only (no worker serves this context)")
    found = processes()
    fit = min(len(found), len(io.out) // ENTRY.size)
    for i, (pid, used) in enumerate(found[:fit]):
        ENTRY.pack_into(io.out, i * ENTRY.size, pid, 0, used)
    io.out_len = fit * ENTRY.size
    return NvmlProcessesResult(count=len(found))
