"""Cooperative launches through a guest, per backend: cooperative_groups' grid.sync() orders every
block's writes before the reads after it; a grid larger than the device holds at once is refused with
CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE, not run; an ordinary launch of such a kernel traps, as CUDA's
grid.sync() does without the cooperative launch's workspace."""

from __future__ import annotations

import struct

import numpy as np

from guest import GuestClient
from protocol import CUresult

from ._util import download, get_function, launch, load_module, upload
from .conftest import KERNELS


def _kernel(gpu: GuestClient, name: str) -> int:
    return get_function(gpu, load_module(gpu, (KERNELS / "ptx_sync.compute_80.ptx").read_bytes()), name)


def test_grid_sync_sees_every_blocks_sum(gpu: GuestClient) -> None:
    grid_sum = _kernel(gpu, "coop_grid_sum")
    values = np.random.default_rng(11).integers(-500, 500, 50_000, dtype=np.int32)
    data, partial = upload(gpu, values), upload(gpu, np.zeros(8, np.int32))
    out = upload(gpu, np.zeros(1, np.int32))
    params = struct.pack("<QQQi", data, partial, out, values.size)
    assert launch(gpu, grid_sum, 8, 256, params, cooperative=True, asynchronous=False) == 0
    assert download(gpu, out, np.zeros(1, np.int32))[0] == values.sum()


def test_a_grid_past_what_is_resident_at_once_is_too_large(gpu: GuestClient) -> None:
    ring = _kernel(gpu, "coop_ring")
    sms = gpu.device_attribute(16)
    a, b = upload(gpu, np.zeros(1024, np.uint32)), upload(gpu, np.zeros(1024, np.uint32))
    # at most two blocks of 1,024 threads per multiprocessor (2,048 threads each)
    status = launch(gpu, ring, 2 * sms + 1, 1024, struct.pack("<QQi", a, b, 1), cooperative=True,
                    asynchronous=False)
    assert status == CUresult.CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE
    gpu.ctx_synchronize()  # not sticky: the context carries on


def test_grid_sync_in_an_ordinary_launch_traps(gpu: GuestClient) -> None:
    grid_sum = _kernel(gpu, "coop_grid_sum")
    data, partial = upload(gpu, np.ones(64, np.int32)), upload(gpu, np.zeros(2, np.int32))
    out = upload(gpu, np.zeros(1, np.int32))
    status = launch(gpu, grid_sum, 2, 32, struct.pack("<QQQi", data, partial, out, 64), asynchronous=False)
    assert status == CUresult.CUDA_ERROR_LAUNCH_FAILED
