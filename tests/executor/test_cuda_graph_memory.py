"""Graph memory nodes' blocks on the cuda backend without a GPU: graph_mem_alloc and graph_mem_free
against the stand-in for cuda.bindings.driver (test_handlers.Bindings), so the driver calls and their
order are what a GPU would see: the thread's capture mode relaxed around cuMemAlloc/cuMemFree (where a
global capture refuses them) and put back, even when the call fails; the quota and the VM's blocks
kept as cuMemAlloc's."""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest

from executor import CudaError, Executor
from executor._base import AllocationMap
from executor._cuda import CudaExecutor
from executor._cuda_driver import Driver
from protocol import CUresult

from .test_handlers import Bindings, call_handler

RELAXED, GLOBAL = 2, 0
OK = 0


def _executor(bindings: Bindings, quota: int = 1 << 20) -> CudaExecutor:
    ex = object.__new__(CudaExecutor)
    Executor.__init__(ex)
    ex._drv = Driver(bindings)
    ex.allocations = AllocationMap()
    ex.memory_quota = quota
    ex._alloc_bytes = ex._physical_bytes = 0
    ex.memory_others = lambda: 0
    return ex


_call = partial(call_handler, blocking=False)


def _modes(n: int) -> dict[str, list[tuple[Any, ...]]]:
    """n exchanges: relaxed in (the previous mode, global, comes back), then global put back."""
    return {"CUstreamCaptureMode": [(RELAXED,)] * n,
            "cuThreadExchangeStreamCaptureMode": [(OK, GLOBAL), (OK, RELAXED)] * n}


def test_a_graph_block_is_allocated_and_freed_with_the_capture_mode_relaxed_around_the_call() -> None:
    bindings = Bindings(cuMemAlloc=[(OK, 0x7000)], cuMemFree=[(OK,)], **_modes(2))
    ex = _executor(bindings)
    assert _call(ex, "graph_mem_alloc", bytesize=4096).dptr == 0x7000
    assert ex.memory_used() == 4096  # charged to the VM as a cuMemAlloc block
    _call(ex, "graph_mem_free", dptr=0x7000)
    assert ex.memory_used() == 0
    names = [name for name, _ in bindings.calls if name != "CUstreamCaptureMode"]
    assert names == ["cuThreadExchangeStreamCaptureMode", "cuMemAlloc", "cuThreadExchangeStreamCaptureMode",
                     "cuThreadExchangeStreamCaptureMode", "cuMemFree", "cuThreadExchangeStreamCaptureMode"]
    exchanged = [args[0] for name, args in bindings.calls if name == "cuThreadExchangeStreamCaptureMode"]
    assert exchanged[1] == GLOBAL and exchanged[3] == GLOBAL  # the mode the thread had, put back


def test_a_failing_allocation_still_puts_the_capture_mode_back() -> None:
    bindings = Bindings(cuMemAlloc=[(int(CUresult.CUDA_ERROR_OUT_OF_MEMORY), 0)], **_modes(1))
    ex = _executor(bindings)
    with pytest.raises(CudaError) as caught:
        _call(ex, "graph_mem_alloc", bytesize=4096)
    assert caught.value.status == CUresult.CUDA_ERROR_OUT_OF_MEMORY
    assert bindings.calls[-1][0] == "cuThreadExchangeStreamCaptureMode" and ex.memory_used() == 0


@pytest.mark.parametrize(("name", "args", "status"), [
    ("graph_mem_alloc", {"bytesize": 0}, CUresult.CUDA_ERROR_INVALID_VALUE),
    ("graph_mem_alloc", {"bytesize": 2 << 20}, CUresult.CUDA_ERROR_OUT_OF_MEMORY),  # past the quota
    ("graph_mem_free", {"dptr": 0x1234}, CUresult.CUDA_ERROR_INVALID_VALUE),  # not this VM's block
    ("graph_mem_free", {"dptr": 0}, CUresult.CUDA_ERROR_INVALID_VALUE),
])
def test_a_guests_bad_size_or_pointer_is_refused_before_the_driver_allocates_or_frees(
        name: str, args: dict[str, Any], status: CUresult) -> None:
    bindings = Bindings(**_modes(1))
    with pytest.raises(CudaError) as caught:
        _call(_executor(bindings), name, **args)
    assert caught.value.status == status
    assert not any(call in ("cuMemAlloc", "cuMemFree") for call, _ in bindings.calls)
