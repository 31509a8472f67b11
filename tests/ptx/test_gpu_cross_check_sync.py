"""On a lent GPU: the synchronization corpus (``tests/kernels/ptx_sync.cu``) gives the same bits on the
GPU as on the engine — sm_70's quad-pair ``mma.m8n8k4`` in every layout and accumulator pairing (the
engine and ``test_mma884.py`` read the ISA's fragment tables by the same hands), and the kernels that
synchronize through mbarriers, ``cuda::memcpy_async`` and ``cuda::pipeline``. Skips where no GPU is
usable (the fixtures are ``test_gpu_cross_check``'s)."""

from __future__ import annotations

import numpy as np
import pytest

from .conftest import KERNELS
from .test_gpu_cross_check import Device, Param, _in, _out, _values, devices

pytestmark = pytest.mark.gpu

SYNC = {arch: KERNELS / f"ptx_sync.compute_{arch}.ptx" for arch in (80, 90)}
_F32_ACC = [_in("h2", 2, 32), _in("h2", 2, 32), _in("f32", 8, 32), _out(np.uint32, 8, 32)]
_F16_C_F32_D = [_in("h2", 2, 32), _in("h2", 2, 32), _in("h2", 4, 32), _out(np.uint32, 8, 32)]
_F16_ACC = [_in("h2", 2, 32), _in("h2", 2, 32), _in("h2", 4, 32), _out(np.uint32, 4, 32)]
# kernel -> (grid, block, parameters)
CASES: dict[str, tuple[int, int, list[Param]]] = {
    "mma884_row_col_f32_f32": (1, 32, _F32_ACC),
    "mma884_row_row_f32_f32": (1, 32, _F32_ACC),
    "mma884_col_col_f32_f32": (1, 32, _F32_ACC),
    "mma884_col_row_f32_f32": (1, 32, _F32_ACC),
    "mma884_row_col_f32_f16": (1, 32, _F16_C_F32_D),
    "mma884_row_col_f16_f16": (1, 32, _F16_ACC),
    "mma884_col_row_f16_f16": (1, 32, _F16_ACC),
    "mb_tile_sum": (3, 128, [_in("bits", 256, 3), _out(np.int32, 1, 3)]),
}
_ = devices  # the fixture, used by name


@pytest.mark.parametrize("arch", sorted(SYNC))
@pytest.mark.parametrize("kernel", sorted(CASES))
def test_the_gpu_and_the_engine_agree_bit_for_bit(devices: tuple[Device, Device], kernel: str, arch: int) -> None:
    grid, block, params = CASES[kernel]
    inputs = [_values(kind, count) if direction == "in" else None for direction, kind, count in params]
    gpu, sim = devices
    on_gpu = gpu.run(arch, kernel, grid, block, inputs, params, SYNC)
    on_sim = sim.run(arch, kernel, grid, block, inputs, params, SYNC)
    for k, (a, b) in enumerate(zip(on_gpu, on_sim, strict=True)):
        np.testing.assert_array_equal(a, b, err_msg=f"{kernel} output {k} for compute_{arch}")
