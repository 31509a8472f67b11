"""What the engine keeps on a VM's behalf is charged to the VM's host budget before it is spent:
the parsed module, each prepared kernel, and a captured launch's parameter block."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from executor import CallIO, CudaError
from executor._base import HostBudget
from executor._sim import SimExecutor
from executor.ptx import _machine
from executor.ptx._machine import PARSED_BYTES_PER_TEXT_BYTE, load_module
from protocol import CALLS_BY_NAME, CUresult, StreamCaptureMode

from .conftest import CORPUS, KERNELS


@pytest.fixture(autouse=True)
def empty_cache() -> Iterator[None]:
    """Each test starts and ends with no parsed module cached (and so no charge held)."""
    _machine._cache.clear()
    yield
    _machine._cache.clear()


def unique(text: str, tag: str) -> str:
    """The same module as a text of its own (the cache is keyed by the text)."""
    return f"// {tag}\n{text}"


def test_a_parse_past_the_budget_is_out_of_memory_and_nothing_is_kept() -> None:
    text = unique(CORPUS[90].read_text(), "too big")
    budget = HostBudget(len(text) * PARSED_BYTES_PER_TEXT_BYTE - 1)
    with pytest.raises(CudaError) as err:
        load_module(text, budget)
    assert err.value.status == CUresult.CUDA_ERROR_OUT_OF_MEMORY and "PTX engine" in err.value.message
    assert budget.used == 0 and text not in _machine._cache


def test_the_parse_is_charged_once_per_vm_and_released_when_the_cache_lets_it_go() -> None:
    text = unique(CORPUS[80].read_text(), "shared")
    cost = len(text) * PARSED_BYTES_PER_TEXT_BYTE
    one, two = HostBudget(None), HostBudget(None)
    module = load_module(text, one)
    assert one.used == cost
    assert load_module(text, one) is module and one.used == cost  # cached: not charged again
    assert load_module(text, two) is module and two.used == cost  # another VM holds it too
    for k in range(_machine.CACHED_MODULES):  # push it out of the cache
        load_module(unique(".version 8.0\n.target sm_80\n.address_size 64\n", str(k)))
    assert text not in _machine._cache and one.used == 0 and two.used == 0


def test_preparing_a_kernel_is_charged_by_its_instructions_before_it_is_built() -> None:
    text = unique(CORPUS[90].read_text(), "prepare")
    budget = HostBudget(None)
    module = load_module(text, budget)
    parsed = budget.used
    module.kernel("geometry", budget)
    prepared = budget.used - parsed
    assert prepared > 0 and prepared % _machine.PREPARED_BYTES_PER_INSTRUCTION == 0
    module.kernel("geometry", budget)  # prepared once
    assert budget.used == parsed + prepared
    tight = HostBudget(parsed + _machine.PREPARED_BYTES_PER_INSTRUCTION)  # room for one instruction
    assert load_module(text, tight) is module
    with pytest.raises(CudaError) as err:
        module.kernel("f32_ops", tight)
    assert err.value.status == CUresult.CUDA_ERROR_OUT_OF_MEMORY and "f32_ops" in err.value.message
    assert tight.used == parsed
    module.kernel("f32_ops", budget)  # nothing was prepared or remembered: with room it prepares


def test_a_vm_at_its_budget_lets_its_own_older_modules_go_to_parse_a_new_one() -> None:
    first, second = unique(CORPUS[75].read_text(), "a"), unique(CORPUS[75].read_text(), "b")
    budget = HostBudget(len(first) * PARSED_BYTES_PER_TEXT_BYTE + 16)  # room for one module
    load_module(first, budget)
    load_module(second, budget)
    assert first not in _machine._cache and second in _machine._cache
    assert budget.used == len(second) * PARSED_BYTES_PER_TEXT_BYTE


class Gpu:
    """One VM's ``sim`` executor, called as the worker calls it."""

    def __init__(self, host_budget: int | None) -> None:
        self.ex = SimExecutor(host_budget=host_budget)

    def __call__(self, name: str, *, inp: bytes = b"", blocking: bool = True, **args: Any) -> Any:
        spec = CALLS_BY_NAME[name]
        io = CallIO(memoryview(inp), memoryview(bytearray(64)), blocking)
        return self.ex.execute(spec, spec.args(**args), io)

    def launch(self, function: int, params: bytes, stream: int = 0) -> None:
        self("launch_kernel", function=function, grid_x=1, grid_y=1, grid_z=1, block_x=32, block_y=1,
             block_z=1, shared_mem_bytes=0, stream=stream, inp=params, blocking=False)


VECTOR_ADD = "_Z10vector_addPKfS0_Pfi"


def test_a_launch_whose_module_does_not_fit_the_vms_budget_is_out_of_memory_and_runs_nothing() -> None:
    image = (KERNELS / "test_kernels.ptx").read_bytes()
    gpu = Gpu(host_budget=None)
    module = gpu("module_load_data", inp=image).module
    function = int(gpu("module_get_function", module=module, inp=VECTOR_ADD.encode()).function)
    gpu.ex.host.limit = gpu.ex.host.used + len(image)  # the module is loaded; its parse cannot fit
    out = gpu.ex.memory.alloc(128)
    gpu.ex.memory.write(out, np.full(128, 0xAB, dtype=np.uint8))
    params = np.array([out, out, out, 32], dtype=np.uint64).tobytes()[:28] + bytes(4)
    with pytest.raises(CudaError) as err:
        gpu.launch(function, params)
    assert err.value.status == CUresult.CUDA_ERROR_OUT_OF_MEMORY and not err.value.sticky
    assert (gpu.ex.memory.read(out, 128) == 0xAB).all()
    gpu.ex.host.limit = None
    gpu.launch(function, params)  # with room it runs: out = out + out
    before = np.full(32, 0xABABABAB, np.uint32).view(np.float32)
    np.testing.assert_array_equal(gpu.ex.memory.read(out, 128).view(np.float32), before + before)


def test_a_captured_launch_holds_its_parameter_block_on_the_budget_until_the_graph_goes() -> None:
    gpu = Gpu(host_budget=None)
    module = gpu("module_load_data", inp=(KERNELS / "test_kernels.ptx").read_bytes()).module
    function = int(gpu("module_get_function", module=module, inp=VECTOR_ADD.encode()).function)
    stream = int(gpu("stream_create", flags=0).stream)
    out = gpu.ex.memory.alloc(128)
    params = np.array([out, out, out], dtype=np.uint64).tobytes() + np.array([32, 0], np.int32).tobytes()
    gpu.launch(function, params, stream)  # parses and prepares outside the capture
    before = gpu.ex.host.used
    gpu("stream_begin_capture", stream=stream, mode=StreamCaptureMode.CU_STREAM_CAPTURE_MODE_RELAXED)
    gpu.launch(function, params, stream)
    held = gpu.ex.host.used - before
    graph = int(gpu("stream_end_capture", stream=stream).graph)
    assert held >= len(params) and gpu.ex.host.used == before + held
    gpu("graph_destroy", graph=graph)
    assert gpu.ex.host.used == before
