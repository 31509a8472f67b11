"""What a guest could once take from the host through the sim backend, and takes no more: memory in
module globals past its quota, host memory in a batch of billions of GEMMs or in graphs without end,
host memory for modules and graph nodes past the VM's host budget, work without end in graphs nested
in graphs, a handle of one kind taken for another because the numbers coincide, and an address of an
earlier worker of the VM handed out again."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest

from executor import CallIO, CudaError
from executor._sim import GRAPH_NODE_BYTES, MAX_GRAPH_NODES, MAX_SIM_GEMM_BATCH, SimExecutor
from executor._sim_graph import MAX_EXPANDED_NODES, MAX_GRAPH_DEPTH
from executor._sim_memory import VA_BASE, VA_LEASE
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


def eight_64mib_arrays() -> bytes:
    """Issue 16's attack: a module of 252 bytes or so that declares 512 MiB of zero-filled globals."""
    arrays = "".join(f".global .align 4 .b8 a{i}[67108864];\n" for i in range(8))
    return f".version 8.0\n.target sm_90\n.address_size 64\n{arrays}".encode()


def test_a_tiny_module_declaring_huge_globals_costs_the_host_nothing_before_it_is_refused() -> None:
    ex = SimExecutor(memory_quota=64 << 20)
    tracemalloc.start()
    try:
        assert status_of(ex, "module_load_data", inp=eight_64mib_arrays()) == CUresult.CUDA_ERROR_OUT_OF_MEMORY
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, f"the refusal cost {peak} bytes of host memory"
    assert ex.memory_used() == 0 and ex.host.used == 0
    # within the quota, a zero-filled global is backed by untouched zero pages, its bytes zero
    one = b".version 8.0\n.target sm_90\n.address_size 64\n.global .align 4 .b8 big[67108864];\n"
    module = call(ex, "module_load_data", inp=one).module
    assert ex.memory_used() == 64 << 20
    ptr = call(ex, "module_get_global", module=module, inp=b"big").dptr
    assert not ex.device_read(ptr + (64 << 20) - 4096, 4096).any()
    ex.close()


def test_parsed_modules_are_charged_to_the_host_budget_and_released_on_unload() -> None:
    ex = SimExecutor(host_budget=256 * KIB)
    module = call(ex, "module_load_data", inp=GLOBALS_PTX).module
    charged = ex.host.used
    assert 0 < charged < 16 * KIB
    big = GLOBALS_PTX + b"// " + b"x" * (300 * KIB) + b"\n"  # the copy and the text it keeps
    assert status_of(ex, "module_load_data", inp=big) == CUresult.CUDA_ERROR_OUT_OF_MEMORY
    assert ex.host.used == charged, "a refused load keeps nothing charged"
    call(ex, "module_unload", module=module)
    assert ex.host.used == 0


def test_graph_nodes_are_charged_to_the_host_budget() -> None:
    ex = SimExecutor(host_budget=10 * GRAPH_NODE_BYTES)
    ptr = call(ex, "mem_alloc", bytesize=64).dptr
    stream = call(ex, "stream_create", flags=0).stream
    call(ex, "stream_begin_capture", stream=stream, mode=StreamCaptureMode.CU_STREAM_CAPTURE_MODE_RELAXED)
    for _ in range(10):
        call(ex, "memset_d8", dst=ptr, count=64, value=1, stream=stream, blocking=False)
    assert status_of(ex, "memset_d8", dst=ptr, count=64, value=1, stream=stream, blocking=False) == \
        CUresult.CUDA_ERROR_OUT_OF_MEMORY
    assert status_of(ex, "stream_end_capture", stream=stream) == CUresult.CUDA_ERROR_STREAM_CAPTURE_INVALIDATED
    assert ex.host.used == 0, "an invalidated capture gives its nodes' bytes back"


def _capture_launches(ex: SimExecutor, stream: int, execs: list[int]) -> int:
    """A graph whose nodes launch ``execs`` (each becomes a child graph node), instantiated."""
    call(ex, "stream_begin_capture", stream=stream, mode=StreamCaptureMode.CU_STREAM_CAPTURE_MODE_RELAXED)
    for graph_exec in execs:
        call(ex, "graph_launch", graph_exec=graph_exec, stream=stream, blocking=False)
    graph = call(ex, "stream_end_capture", stream=stream).graph
    return int(call(ex, "graph_instantiate", graph=graph, flags=0).graph_exec)


def _leaf_graph(ex: SimExecutor, stream: int, ptr: int) -> int:
    call(ex, "stream_begin_capture", stream=stream, mode=StreamCaptureMode.CU_STREAM_CAPTURE_MODE_RELAXED)
    call(ex, "memset_d8", dst=ptr, count=1, value=1, stream=stream, blocking=False)
    graph = call(ex, "stream_end_capture", stream=stream).graph
    return int(call(ex, "graph_instantiate", graph=graph, flags=0).graph_exec)


def test_a_chain_of_graphs_each_launching_the_last_ends_at_the_nesting_limit() -> None:
    # issue 16: 1,200 levels once ended in RecursionError (status 999 and a traceback per call)
    ex = SimExecutor()
    ptr = call(ex, "mem_alloc", bytesize=64).dptr
    stream = call(ex, "stream_create", flags=0).stream
    chain = [_leaf_graph(ex, stream, ptr)]
    refused: list[int] = []
    for _ in range(1200):
        try:
            chain.append(_capture_launches(ex, stream, [chain[-1]]))
        except CudaError as exc:
            refused.append(int(exc.status))
            assert "past the limit of" in exc.message
            # the capture that wanted it is invalidated and ends so
            assert status_of(ex, "stream_end_capture", stream=stream) == \
                CUresult.CUDA_ERROR_STREAM_CAPTURE_INVALIDATED
    assert len(chain) == MAX_GRAPH_DEPTH
    assert set(refused) == {CUresult.CUDA_ERROR_NOT_SUPPORTED} and len(refused) == 1200 - MAX_GRAPH_DEPTH + 1
    call(ex, "memset_d8", dst=ptr, count=1, value=0, stream=0)
    call(ex, "graph_launch", graph_exec=chain[-1], stream=stream)  # the deepest graph allowed runs
    assert ex.device_read(ptr, 1)[0] == 1
    ex.close()


def test_a_graph_that_doubles_at_every_level_is_refused_at_the_expansion_bound() -> None:
    # issue 16: 30 doubling levels once kept the worker busy until the watchdog reset the VM
    ex = SimExecutor()
    ptr = call(ex, "mem_alloc", bytesize=64).dptr
    stream = call(ex, "stream_create", flags=0).stream
    level = [_leaf_graph(ex, stream, ptr)]
    started = time.monotonic()
    with pytest.raises(CudaError) as err:
        for _ in range(30):
            level.append(_capture_launches(ex, stream, [level[-1], level[-1]]))
    assert err.value.status == CUresult.CUDA_ERROR_OUT_OF_MEMORY
    assert f"past the limit of {MAX_EXPANDED_NODES} per launch" in err.value.message
    assert status_of(ex, "stream_end_capture", stream=stream) == CUresult.CUDA_ERROR_STREAM_CAPTURE_INVALIDATED
    # level n walks 2**n leaves and 2**(n+1) - 2 child nodes: the largest allowed is the last under the bound
    walked = 3 * (1 << (len(level) - 1)) - 2
    assert walked <= MAX_EXPANDED_NODES < 2 * walked + 2
    assert time.monotonic() - started < 5, "refused when captured, nothing was expanded"
    call(ex, "graph_launch", graph_exec=level[10], stream=stream)  # 1,024 leaves: replayed, no recursion
    ex.close()


def test_no_address_below_the_floor_is_handed_out_and_each_lease_is_reported_first() -> None:
    leases: list[int] = []
    first = SimExecutor(on_va_lease=leases.append)
    old = call(first, "mem_alloc", bytesize=4096).dptr
    assert old == VA_BASE and leases == [VA_BASE + VA_LEASE]
    call(first, "mem_alloc", bytesize=VA_LEASE)  # past the first lease: a second one, reported
    assert leases == [VA_BASE + VA_LEASE, VA_BASE + 2 * VA_LEASE]
    hint = 0x7E00_0000_0000
    assert call(first, "mem_address_reserve", size=2 << 20, alignment=0, addr=hint, flags=0).dptr == hint
    floor = max(leases)
    first.close()
    # the VM's next worker starts at the floor: the old pointer names nothing, and is never reissued
    second = SimExecutor(va_floor=floor, on_va_lease=leases.append)
    new = call(second, "mem_alloc", bytesize=4096).dptr
    assert new >= floor and leases[-1] == floor + VA_LEASE
    assert status_of(second, "memcpy_dtod", dst=new, src=old, count=16, stream=0) == \
        CUresult.CUDA_ERROR_INVALID_VALUE
    assert status_of(second, "mem_free", dptr=old) == CUresult.CUDA_ERROR_INVALID_VALUE
    # a hint below the floor is not honoured (a hint is only a hint)
    assert call(second, "mem_address_reserve", size=2 << 20, alignment=0, addr=hint, flags=0).dptr >= floor
    second.close()


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
