"""NVML's running compute processes on the executor: the worker's list of the VM's processes, packed
as many as fit, the total always counted; no list outside a worker."""

from __future__ import annotations

import pytest

from executor import CallIO, CudaError
from executor._nvml_processes import ENTRY
from executor._sim import SimExecutor
from protocol import CALLS_BY_NAME, CUresult
from protocol.models import DeviceArgs, NvmlProcessesResult

SPEC = CALLS_BY_NAME["nvml_compute_processes"]


def ask(ex: SimExecutor, out_cap: int, device: int = 0) -> tuple[int, list[tuple[int, int, int]]]:
    io = CallIO(memoryview(b""), memoryview(bytearray(out_cap)), False)
    result = ex.execute(SPEC, DeviceArgs(device=device), io)
    assert isinstance(result, NvmlProcessesResult)
    return int(result.count), [ENTRY.unpack_from(io.out, i) for i in range(0, io.out_len, ENTRY.size)]


def test_the_workers_processes_are_listed_as_many_as_fit() -> None:
    ex = SimExecutor()
    ex.vm_processes = lambda: [(4242, 64 << 20), (77, 0)]
    assert ask(ex, 64) == (2, [(4242, 0, 64 << 20), (77, 0, 0)])
    assert ask(ex, ENTRY.size + 3) == (2, [(4242, 0, 64 << 20)])  # the total is counted, one fits
    assert ask(ex, 0) == (2, [])


def test_outside_a_worker_and_for_another_device_it_is_refused() -> None:
    ex = SimExecutor()
    with pytest.raises(CudaError) as caught:
        ask(ex, 64)
    assert caught.value.status == CUresult.CUDA_ERROR_NOT_SUPPORTED
    ex.vm_processes = list
    with pytest.raises(CudaError) as caught:
        ask(ex, 64, device=1)
    assert caught.value.status == CUresult.CUDA_ERROR_INVALID_DEVICE
    assert ask(ex, 64) == (0, [])


def test_a_context_is_what_makes_a_process_count() -> None:
    ex = SimExecutor()
    assert not ex.holds_context()
    ex.execute(CALLS_BY_NAME["primary_ctx_retain"], DeviceArgs(device=0),
               CallIO(memoryview(b""), memoryview(bytearray()), False))
    assert ex.holds_context()
