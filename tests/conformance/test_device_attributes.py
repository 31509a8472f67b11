"""Every device attribute of CUDA 13 has an answer, and the reported driver can run a CUDA 13 runtime.

``cuDeviceGetAttribute`` answers each ``CUdevice_attribute`` of CUDA 13.0's ``cuda.h`` (1 to 147) on
every backend: the ``cuda`` backend what the driver says, ``sim`` its H100-like table
(``executor/_sim_device.py``), whose capabilities claim only what the mediator serves.
"""

from __future__ import annotations

import pytest

from guest import GuestClient
from protocol import CUresult
from protocol.models import DeviceGetAttributeArgs

from ._util import status_of

#: CU_DEVICE_ATTRIBUTE_MAX in CUDA 13.0's cuda.h
ATTRIBUTE_COUNT = 148
CUDA_13_RUNTIME = 13000


def test_every_cuda_13_attribute_has_an_answer(gpu: GuestClient) -> None:
    unanswered = [attrib for attrib in range(1, ATTRIBUTE_COUNT)
                  if status_of(gpu, "device_get_attribute", DeviceGetAttributeArgs(attrib=attrib, device=0))
                  != CUresult.CUDA_SUCCESS]
    assert unanswered == []
    assert status_of(gpu, "device_get_attribute", DeviceGetAttributeArgs(attrib=ATTRIBUTE_COUNT, device=0)) \
        == CUresult.CUDA_ERROR_INVALID_VALUE
    assert status_of(gpu, "device_get_attribute", DeviceGetAttributeArgs(attrib=1, device=7)) \
        == CUresult.CUDA_ERROR_INVALID_DEVICE


def test_the_driver_is_at_least_the_runtime_the_guest_ships(gpu: GuestClient) -> None:
    version = gpu.checked("driver_get_version").result.value  # type: ignore[union-attr]
    assert version >= CUDA_13_RUNTIME


def test_sim_claims_only_what_is_served(gpu: GuestClient, backend: str) -> None:
    if backend != "sim":
        pytest.skip("the cuda backend reports the driver's own answers (the shim masks what it does not serve)")
    assert gpu.device_attribute(95) == 1  # cooperative launches are served (grid.sync() on the PTX engine)
    assert gpu.device_attribute(120) == 1  # so are cluster launches (a cluster's blocks in one batch)
    assert gpu.device_attribute(19) == 1  # mapped pinned memory (mem_host_alias: the region's pinned ranges)
    assert gpu.device_attribute(83) == 1  # managed memory (pinned ranges at the guest's own pointers)
    unserved = {96: "cooperative multi-device launch", 89: "concurrent managed access",
                88: "pageable memory access", 115: "memory pools", 78: "stream priorities",
                92: "stream memory operations", 125: "IPC events"}
    claimed = {name for attrib, name in unserved.items() if gpu.device_attribute(attrib) != 0}
    assert claimed == set()
    assert gpu.device_attribute(102) == 1  # virtual memory management is served
    assert gpu.device_attribute(21) == 131072  # a texture limit, which deviceQueryDrv prints
