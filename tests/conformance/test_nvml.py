"""The NVML calls: the VM's memory as its guest's nvidia-smi shows it, and the host driver's version."""

from __future__ import annotations

import os
import struct

from guest import GuestClient
from protocol import CUresult
from protocol.models import DeviceArgs

from ._util import status_of

MiB = 1 << 20


def test_memory_is_the_vms_quota_and_its_own_allocations(gpu: GuestClient) -> None:
    before = gpu.checked("nvml_memory_info", DeviceArgs(device=0)).result
    total_mem = gpu.device_total_mem(0)
    assert 0 < before.total <= total_mem  # type: ignore[union-attr]
    dptr = gpu.mem_alloc(8 * MiB)
    during = gpu.checked("nvml_memory_info", DeviceArgs(device=0)).result
    gpu.mem_free(dptr)
    after = gpu.checked("nvml_memory_info", DeviceArgs(device=0)).result
    assert during.used == before.used + 8 * MiB  # type: ignore[union-attr]
    assert after.used == before.used and after.total == before.total  # type: ignore[union-attr]
    assert status_of(gpu, "nvml_memory_info", DeviceArgs(device=1)) == CUresult.CUDA_ERROR_INVALID_DEVICE


def test_driver_version_is_a_string(gpu: GuestClient) -> None:
    out = gpu.checked("nvml_driver_version", out_cap=80).out
    text = out.split(b"\0")[0].decode()
    assert text and text.isprintable() and out.endswith(b"\0")
    assert gpu.checked("nvml_driver_version", out_cap=3).out == out[:2] + b"\0"  # truncated, still terminated


def test_compute_processes_are_the_vms_own_with_a_context(gpu: GuestClient) -> None:
    """This guest's channel (owner pid: this process) once it holds a context, with its memory."""
    gpu.checked("primary_ctx_retain", DeviceArgs(device=0))
    dptr = gpu.mem_alloc(4 * MiB)
    call = gpu.checked("nvml_compute_processes", DeviceArgs(device=0), out_cap=256)
    gpu.mem_free(dptr)
    entries = [struct.unpack_from("<IIQ", call.out, i) for i in range(0, len(call.out), 16)]
    assert call.result.count == len(entries) >= 1  # type: ignore[union-attr]
    mine = [e for e in entries if e[0] == os.getpid()]
    assert len(mine) == 1 and mine[0][2] >= 4 * MiB
    assert status_of(gpu, "nvml_compute_processes", DeviceArgs(device=1)) == CUresult.CUDA_ERROR_INVALID_DEVICE
