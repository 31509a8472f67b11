"""Driver, device and context calls answer as the CUDA driver API documents."""

from __future__ import annotations

import re

from guest import GuestClient
from protocol import CUresult
from protocol.models import (
    CtxArgs,
    CtxCreateArgs,
    DeviceArgs,
    DeviceGetArgs,
    DeviceGetAttributeArgs,
    FlagsArgs,
)

from ._util import status_of

ATTR_MAX_THREADS_PER_BLOCK = 1
ATTR_WARP_SIZE = 10
ATTR_MULTIPROCESSOR_COUNT = 16
ATTR_CC_MAJOR = 75
ATTR_CC_MINOR = 76


def test_init_accepts_only_zero_flags(gpu: GuestClient) -> None:
    assert status_of(gpu, "init", FlagsArgs(flags=0)) == CUresult.CUDA_SUCCESS
    assert status_of(gpu, "init", FlagsArgs(flags=1)) == CUresult.CUDA_ERROR_INVALID_VALUE


def test_driver_version_and_device_enumeration(gpu: GuestClient) -> None:
    version = gpu.checked("driver_get_version").result.value  # type: ignore[union-attr]
    assert version >= 12000
    count = gpu.device_count()
    assert count >= 1
    assert gpu.checked("device_get", DeviceGetArgs(ordinal=0)).result.device == 0  # type: ignore[union-attr]
    assert status_of(gpu, "device_get", DeviceGetArgs(ordinal=count)) == CUresult.CUDA_ERROR_INVALID_DEVICE
    assert status_of(gpu, "device_get", DeviceGetArgs(ordinal=-1)) == CUresult.CUDA_ERROR_INVALID_DEVICE


def test_device_identity(gpu: GuestClient) -> None:
    name = gpu.device_name(0)
    assert name and name.isprintable()
    truncated = gpu.checked("device_get_name", DeviceArgs(device=0), out_cap=4).out
    assert len(truncated) <= 4
    assert gpu.device_total_mem(0) >= 1 << 30
    uuid = gpu.checked("device_get_uuid", DeviceArgs(device=0)).result.uuid  # type: ignore[union-attr]
    assert len(uuid) == 16 and uuid != bytes(16)
    bus = gpu.checked("device_get_pci_bus_id", DeviceArgs(device=0), out_cap=64).out.split(b"\0")[0]
    assert re.fullmatch(rb"[0-9a-fA-F]{4,8}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]", bus)
    assert status_of(gpu, "device_total_mem", DeviceArgs(device=99)) == CUresult.CUDA_ERROR_INVALID_DEVICE


def test_device_attributes(gpu: GuestClient) -> None:
    assert gpu.device_attribute(ATTR_WARP_SIZE) == 32
    assert gpu.device_attribute(ATTR_MAX_THREADS_PER_BLOCK) == 1024
    assert gpu.device_attribute(ATTR_MULTIPROCESSOR_COUNT) >= 1
    assert gpu.device_attribute(ATTR_CC_MAJOR) >= 7
    assert 0 <= gpu.device_attribute(ATTR_CC_MINOR) <= 9
    bad = DeviceGetAttributeArgs(attrib=100000, device=0)
    assert status_of(gpu, "device_get_attribute", bad) == CUresult.CUDA_ERROR_INVALID_VALUE


def test_primary_context_retain_set_get_release(gpu: GuestClient) -> None:
    ctx = gpu.checked("primary_ctx_retain", DeviceArgs(device=0)).result.ctx  # type: ignore[union-attr]
    assert ctx != 0
    again = gpu.checked("primary_ctx_retain", DeviceArgs(device=0)).result.ctx  # type: ignore[union-attr]
    assert again == ctx  # one primary context per device
    gpu.checked("ctx_set_current", CtxArgs(ctx=ctx))
    assert gpu.checked("ctx_get_current").result.ctx == ctx  # type: ignore[union-attr]
    gpu.ctx_synchronize()
    gpu.checked("primary_ctx_release", DeviceArgs(device=0))
    gpu.checked("primary_ctx_release", DeviceArgs(device=0))


def test_created_contexts_and_bad_context_handles(gpu: GuestClient) -> None:
    ctx = gpu.checked("ctx_create", CtxCreateArgs(flags=0, device=0)).result.ctx  # type: ignore[union-attr]
    assert ctx != 0
    assert gpu.checked("ctx_get_current").result.ctx == ctx  # type: ignore[union-attr]
    gpu.checked("ctx_destroy", CtxArgs(ctx=ctx))
    assert status_of(gpu, "ctx_set_current", CtxArgs(ctx=ctx)) in (
        CUresult.CUDA_ERROR_INVALID_CONTEXT, CUresult.CUDA_ERROR_INVALID_HANDLE)
    assert status_of(gpu, "ctx_destroy", CtxArgs(ctx=12345)) in (
        CUresult.CUDA_ERROR_INVALID_CONTEXT, CUresult.CUDA_ERROR_INVALID_HANDLE)
