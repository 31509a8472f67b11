"""On a lent GPU: the cluster corpus (``tests/kernels/ptx_cluster.cu``) gives the same bits on the GPU as
on the engine — multi-warp tiles in the block's reserved shared memory, invoke_one's elected lane
(elect.sync on compute_90: the engine elects the lowest lane, as the hardware is taken to), and the
clusters' registers, barriers, distributed shared memory, remote mbarriers and st.async/red.async.
Skips where no GPU is usable (the fixtures are ``test_gpu_cross_check``'s). Not yet run: no GPU was
lent while it was written (``.venv/bin/python -m pytest tests/ptx/test_gpu_cross_check_cluster.py``)."""

from __future__ import annotations

import numpy as np
import pytest

from .test_clusters import CLUSTER_CORPUS
from .test_gpu_cross_check import Device, Param, _in, _out, _values, devices

pytestmark = pytest.mark.gpu

# kernel -> (lowest architecture, grid, block, parameters); pointer parameters only
CASES: dict[str, tuple[int, int, int, list[Param]]] = {
    "multi_warp_tiles": (75, 2, 256, [_in("bits", 1, 512), _out(np.int32, 6, 512)]),
    "elect_leader": (75, 3, 96, [_in("bits", 1, 288), _out(np.int32, 1, 288), _out(np.uint32, 1, 9)]),
    "cluster_fixed": (90, 6, 64, [_out(np.uint32, 12, 384)]),
    "cluster_atomic": (90, 8, 64, [_in("bits", 1, 512), _out(np.int32, 1, 2)]),
    "cluster_mbarrier": (90, 6, 64, [_in("bits", 1, 384), _out(np.int32, 1, 192)]),
    "cluster_async_stores": (90, 4, 64, [_in("bits", 1, 256), _out(np.int32, 2, 256)]),
    "cluster_bulk_copy": (90, 6, 64, [_in("bits", 1, 384), _out(np.int32, 1, 384)]),
}
_ = devices  # the fixture, used by name


@pytest.mark.parametrize("arch", sorted(CLUSTER_CORPUS))
@pytest.mark.parametrize("kernel", sorted(CASES))
def test_the_gpu_and_the_engine_agree_bit_for_bit(
    devices: tuple[Device, Device], kernel: str, arch: int
) -> None:
    lowest, grid, block, params = CASES[kernel]
    if arch < lowest:
        pytest.skip(f"{kernel} is compiled for compute_{lowest} and later")
    inputs = [_values(kind, count) if direction == "in" else None for direction, kind, count in params]
    gpu, sim = devices
    on_gpu = gpu.run(arch, kernel, grid, block, inputs, params, CLUSTER_CORPUS)
    on_sim = sim.run(arch, kernel, grid, block, inputs, params, CLUSTER_CORPUS)
    for k, (a, b) in enumerate(zip(on_gpu, on_sim, strict=True)):
        np.testing.assert_array_equal(a, b, err_msg=f"{kernel} output {k} for compute_{arch}")
