"""Cooperative launches on ``sim``: cooperative_groups' ``grid.sync()`` (nvcc 13's barrier word in the
workspace that ``%envreg1``/``%envreg2`` name) completes because the engine runs the whole grid as one
lockstep batch; a grid larger than the device holds at once is refused as CUDA refuses it."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import pytest

from executor import CallIO, CudaError
from executor._sim import SimExecutor
from protocol import CALLS_BY_NAME, CUresult

from .conftest import KERNELS

SYNC = {arch: KERNELS / f"ptx_sync.compute_{arch}.ptx" for arch in (80, 90)}


class Gpu:
    """One VM's ``sim`` executor with the synchronization corpus loaded."""

    def __init__(self, arch: int) -> None:
        self.ex = SimExecutor()
        self.module = self("module_load_data", inp=SYNC[arch].read_bytes()).module

    def __call__(self, name: str, *, inp: bytes = b"", **args: Any) -> Any:
        spec = CALLS_BY_NAME[name]
        io = CallIO(memoryview(inp), memoryview(bytearray(64)), True)
        return self.ex.execute(spec, spec.args(**args), io)

    def put(self, values: np.ndarray[Any, Any]) -> int:
        ptr = self.ex.memory.alloc(values.nbytes)
        self.ex.memory.write(ptr, values.view(np.uint8).reshape(-1))
        return ptr

    def get(self, ptr: int, like: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        out: np.ndarray[Any, Any] = self.ex.memory.read(ptr, like.nbytes).view(like.dtype).copy()
        return out

    def launch(self, kernel: str, grid: int, block: int, params: bytes, *, cooperative: bool = True) -> None:
        function = int(self("module_get_function", module=self.module, inp=kernel.encode()).function)
        self("launch_cooperative_kernel" if cooperative else "launch_kernel", function=function, grid_x=grid,
             grid_y=1, grid_z=1, block_x=block, block_y=1, block_z=1, shared_mem_bytes=0, stream=0, inp=params)


@pytest.fixture(params=sorted(SYNC), ids=lambda arch: f"compute_{arch}")
def gpu(request: pytest.FixtureRequest) -> Gpu:
    return Gpu(request.param)


def test_grid_sync_orders_every_blocks_writes_before_the_reads_after_it(gpu: Gpu) -> None:
    values = np.random.default_rng(7).integers(-1000, 1000, 20_000, dtype=np.int32)
    data, partial, out = gpu.put(values), gpu.put(np.zeros(16, np.int32)), gpu.put(np.zeros(1, np.int32))
    used = gpu.ex.memory.used
    gpu.launch("coop_grid_sum", 16, 128, struct.pack("<QQQi", data, partial, out, values.size))
    assert gpu.get(out, np.zeros(1, np.int32))[0] == values.sum()
    assert gpu.ex.memory.used == used  # the launch's grid-sync workspace was given back


def test_a_barrier_word_reused_round_after_round_flips_its_phase_each_time(gpu: Gpu) -> None:
    grid, block, rounds = 6, 64, 9
    a = np.random.default_rng(3).integers(0, 2**32, grid * block, dtype=np.uint32)
    pa, pb = gpu.put(a), gpu.put(np.zeros_like(a))
    gpu.launch("coop_ring", grid, block, struct.pack("<QQi", pa, pb, rounds))
    want = a.copy()
    for _ in range(rounds):
        want = want * np.uint32(3) + np.roll(want, -1)
    got = gpu.get(pb if rounds % 2 else pa, a)
    assert np.array_equal(got, want)


def test_grid_sync_in_an_ordinary_launch_traps_as_on_a_gpu(gpu: Gpu) -> None:
    values = np.arange(100, dtype=np.int32)
    data, partial, out = gpu.put(values), gpu.put(np.zeros(2, np.int32)), gpu.put(np.zeros(1, np.int32))
    with pytest.raises(CudaError) as err:
        gpu.launch("coop_grid_sum", 2, 32, struct.pack("<QQQi", data, partial, out, 100), cooperative=False)
    assert err.value.status == CUresult.CUDA_ERROR_LAUNCH_FAILED and "trap" in err.value.message


def test_a_grid_larger_than_the_device_holds_at_once_is_too_large() -> None:
    gpu = Gpu(80)
    sms = gpu.ex._attributes[16]
    data, partial, out = gpu.put(np.zeros(4, np.int32)), gpu.put(np.zeros(4, np.int32)), gpu.put(np.zeros(1, np.int32))
    params = struct.pack("<QQQi", data, partial, out, 4)
    # 1024-thread blocks: two per multiprocessor (2048 threads each), as the occupancy calculator says
    with pytest.raises(CudaError) as err:
        gpu.launch("coop_grid_sum", 2 * sms + 1, 1024, params)
    assert err.value.status == CUresult.CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE
    assert f"at most {2 * sms}" in err.value.message and not err.value.sticky
    assert gpu.get(out, np.zeros(1, np.int32))[0] == 0  # nothing ran


def test_the_device_reports_cooperative_launch() -> None:
    gpu = Gpu(80)
    assert gpu("device_get_attribute", attrib=95, device=0).value == 1
    assert gpu("device_get_attribute", attrib=96, device=0).value == 0


HEAVY = """.version 8.0
.target sm_80
.address_size 64
.visible .entry heavy(.param .u64 out) {
    .reg .b32 %r<55>; .reg .b64 %rd<4>;
    ld.param.u64 %rd1, [out];
    mov.u32 %r1, %tid.x;
    mul.wide.u32 %rd2, %r1, 4;
    add.s64 %rd3, %rd1, %rd2;
    st.global.u32 [%rd3], %r1;
    ret;
}
"""


def test_the_occupancy_counts_registers_and_bounds_cooperative_grids() -> None:
    gpu = Gpu(80)
    sms = gpu.ex._attributes[16]
    light = int(gpu("module_get_function", module=gpu.module, inp=b"coop_ring").function)
    module = gpu("module_load_data", inp=HEAVY.encode()).module
    heavy = int(gpu("module_get_function", module=module, inp=b"heavy").function)
    per_sm = {f: gpu("func_occupancy", function=f, block_size=1024, dynamic_smem=0, flags=0).value
              for f in (light, heavy)}
    # 59 registers (few enough to be held as declared), 64 a thread as a warp allocates them, x 1,024
    # threads are 65,536: one block per SM; a light kernel has two
    assert per_sm == {light: 2, heavy: 1}
    assert gpu("func_occupancy", function=heavy, block_size=1024, dynamic_smem=200 << 10, flags=0).value == 1
    assert gpu("func_occupancy", function=light, block_size=64, dynamic_smem=120 << 10, flags=0).value == 1
    out = gpu.put(np.zeros(1024 * (sms + 1), np.uint32))
    args: dict[str, Any] = {"function": heavy, "grid_y": 1, "grid_z": 1, "block_x": 1024, "block_y": 1,
                            "block_z": 1, "shared_mem_bytes": 0, "stream": 0}
    params = struct.pack("<Q", out)
    gpu("launch_cooperative_kernel", grid_x=sms, inp=params, **args)
    with pytest.raises(CudaError) as err:
        gpu("launch_cooperative_kernel", grid_x=sms + 1, inp=params, **args)
    assert err.value.status == CUresult.CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE
    assert f"at most {sms} are resident at once (1 per multiprocessor" in err.value.message
