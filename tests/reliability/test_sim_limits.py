"""What a guest could once take from the host through the sim backend, and takes no more: memory in
module globals past its quota, host memory in a batch of billions of GEMMs or in graphs without end,
and a handle of one kind taken for another because the numbers coincide."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from executor import CallIO, CudaError
from executor._sim import MAX_GRAPH_NODES, MAX_SIM_GEMM_BATCH, SimExecutor
from protocol import CALLS_BY_NAME, CublasStatus, CudaDataType, CUresult, StreamCaptureMode

KIB = 1 << 10
GLOBALS_PTX = b""".version 8.0
.target sm_90
.address_size 64
.visible .global .align 4 .b8 first[65536];
.visible .global .align 4 .b8 second[65536];
.visible .entry noop() { ret; }
"""


def call(ex: SimExecutor, name: str, *, inp: bytes = b"", blocking: bool = True, **args: Any) -> Any:
    spec = CALLS_BY_NAME[name]
    return ex.execute(spec, spec.args(**args), CallIO(memoryview(inp), memoryview(bytearray()), blocking))


def status_of(ex: SimExecutor, name: str, **kwargs: Any) -> int:
    try:
        call(ex, name, **kwargs)
    except CudaError as exc:
        return int(exc.status)
    return 0


def test_module_globals_are_charged_to_the_quota_and_released_with_the_module() -> None:
    ex = SimExecutor(memory_quota=192 * KIB)
    module = call(ex, "module_load_data", inp=GLOBALS_PTX).module
    assert ex.memory_used() == 128 * KIB
    assert call(ex, "mem_get_info").free == 64 * KIB
    # a second copy of the module does not fit: its globals are device memory like any other
    assert status_of(ex, "module_load_data", inp=GLOBALS_PTX) == CUresult.CUDA_ERROR_OUT_OF_MEMORY
    assert ex.memory_used() == 128 * KIB, "a load that failed half way keeps nothing charged"
    call(ex, "module_unload", module=module)
    assert ex.memory_used() == 0
    ex.close()


def _strided(ex: SimExecutor, count: int) -> int:
    ptr = call(ex, "mem_alloc", bytesize=4096).dptr
    handle = call(ex, "cublas_create").handle
    f32 = CudaDataType.CUDA_R_32F
    return status_of(ex, "cublas_gemm_strided_batched_ex", handle=handle, transa=0, transb=0, m=1, n=1, k=1,
                     alpha=1.0, a=ptr, a_type=f32, lda=1, stride_a=0, b=ptr, b_type=f32, ldb=1, stride_b=0,
                     beta=0.0, c=ptr, c_type=f32, ldc=1, stride_c=0, batch_count=count, compute_type=68,
                     algo=-1)


def test_a_batch_too_large_to_simulate_is_refused_not_built() -> None:
    ex = SimExecutor()
    assert _strided(ex, 2**31 - 1) == CublasStatus.CUBLAS_STATUS_NOT_SUPPORTED
    assert _strided(ex, MAX_SIM_GEMM_BATCH + 1) == CublasStatus.CUBLAS_STATUS_NOT_SUPPORTED
    assert _strided(ex, 16) == CublasStatus.CUBLAS_STATUS_SUCCESS


def test_graph_nodes_a_vm_holds_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("executor._sim.MAX_GRAPH_NODES", 8)
    ex = SimExecutor()
    ptr = call(ex, "mem_alloc", bytesize=64).dptr
    stream = call(ex, "stream_create", flags=0).stream
    relaxed = StreamCaptureMode.CU_STREAM_CAPTURE_MODE_RELAXED

    def capture(nodes: int) -> int:
        call(ex, "stream_begin_capture", stream=stream, mode=relaxed)
        for _ in range(nodes):
            call(ex, "memset_d8", dst=ptr, count=64, value=1, stream=stream, blocking=False)
        return int(call(ex, "stream_end_capture", stream=stream).graph)

    graph = capture(5)
    assert status_of(ex, "graph_instantiate", graph=graph, flags=0) == CUresult.CUDA_ERROR_OUT_OF_MEMORY
    call(ex, "stream_begin_capture", stream=stream, mode=relaxed)
    for _ in range(3):
        call(ex, "memset_d8", dst=ptr, count=64, value=1, stream=stream, blocking=False)
    # the ninth node does not fit: refused, and the capture that wanted it is invalidated
    assert status_of(ex, "memset_d8", dst=ptr, count=64, value=1, stream=stream, blocking=False) == \
        CUresult.CUDA_ERROR_OUT_OF_MEMORY
    assert status_of(ex, "stream_end_capture", stream=stream) == CUresult.CUDA_ERROR_STREAM_CAPTURE_INVALIDATED
    call(ex, "graph_destroy", graph=graph)  # nodes are given back with their graph
    exec_ = call(ex, "graph_instantiate", graph=capture(4), flags=0).graph_exec
    call(ex, "graph_launch", graph_exec=exec_, stream=stream)
    assert MAX_GRAPH_NODES >= 1 << 16, "room for GGML's largest graphs"


def test_a_handle_of_another_kind_is_never_taken_for_one_of_this_kind() -> None:
    ex = SimExecutor()
    ids = {
        "stream": call(ex, "stream_create", flags=0).stream,
        "event": call(ex, "event_create", flags=0).event,
        "memhandle": call(ex, "mem_create", size=2 << 20, device=0, flags=0).handle,
        "cublas": call(ex, "cublas_create").handle,
        "context": call(ex, "ctx_create", flags=0, device=0).ctx,
        "module": call(ex, "module_load_data", inp=GLOBALS_PTX).module,
    }
    assert len(set(ids.values())) == len(ids), "one id space: no number names two objects"
    users: dict[str, Callable[[int], int]] = {
        "stream": lambda h: status_of(ex, "stream_synchronize", stream=h),
        "event": lambda h: status_of(ex, "event_query", event=h),
        "memhandle": lambda h: status_of(ex, "mem_release", handle=h),
        "cublas": lambda h: status_of(ex, "cublas_set_math_mode", handle=h, mode=0),
        "context": lambda h: status_of(ex, "ctx_set_current", ctx=h),
        "module": lambda h: status_of(ex, "module_unload", module=h),
    }
    refusals = {"cublas": CublasStatus.CUBLAS_STATUS_NOT_INITIALIZED, "context": CUresult.CUDA_ERROR_INVALID_CONTEXT}
    for kind, use in users.items():
        for other, handle in ids.items():
            if other != kind:
                assert use(handle) == refusals.get(kind, CUresult.CUDA_ERROR_INVALID_HANDLE), (kind, other)
    assert ex.live_handles() == len(ids)
    ex.close()
    assert ex.live_handles() == 0 and ex.memory_used() == 0
