"""The sim backend's stream capture and graphs: recording, replay, fork/join, and what capture forbids."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from executor import CallIO, CudaError
from executor._sim import GRAPH_NODE_BYTES, PHASE_NODE_BYTES, SimExecutor
from executor._sim_graph import MAX_EXPANDED_NODES
from protocol import CALLS_BY_NAME, CUresult

GLOBAL, THREAD_LOCAL, RELAXED = 0, 1, 2
NONE, ACTIVE, INVALIDATED = 0, 1, 2
NON_BLOCKING = 1


class Gpu:
    def __init__(self) -> None:
        self.ex = SimExecutor()
        self.out = b""

    def __call__(self, name: str, *, inp: bytes = b"", out_cap: int = 0, blocking: bool = False,
                 **args: Any) -> Any:
        spec = CALLS_BY_NAME[name]
        io = CallIO(memoryview(inp), memoryview(bytearray(out_cap)), blocking)
        result = self.ex.execute(spec, spec.args(**args), io)
        self.out = bytes(io.out[:io.out_len])
        return result

    def fails(self, status: CUresult, name: str, **kwargs: Any) -> CudaError:
        with pytest.raises(CudaError) as caught:
            self(name, **kwargs)
        assert caught.value.status == status, caught.value
        return caught.value

    def stream(self, flags: int = 0) -> int:
        return int(self("stream_create", flags=flags).stream)

    def event(self) -> int:
        return int(self("event_create", flags=0).event)

    def alloc(self, size: int) -> int:
        return int(self("mem_alloc", bytesize=size).dptr)

    def get(self, src: int, count: int) -> bytes:
        self("memcpy_dtoh", src=src, count=count, stream=0, out_cap=count, blocking=True)
        return self.out

    def put(self, dst: int, data: bytes) -> None:
        self("memcpy_htod", inp=data, dst=dst, stream=0, blocking=True)

    def info(self, stream: int) -> tuple[int, int]:
        result = self("stream_get_capture_info", stream=stream)
        return int(result.status), int(result.capture_id)

    def begin(self, stream: int, mode: int = GLOBAL) -> None:
        self("stream_begin_capture", stream=stream, mode=mode)

    def end(self, stream: int) -> int:
        return int(self("stream_end_capture", stream=stream).graph)

    def instantiate(self, graph: int) -> int:
        return int(self("graph_instantiate", graph=graph, flags=0).graph_exec)


@pytest.fixture
def gpu() -> Gpu:
    return Gpu()


def test_captured_work_is_recorded_not_run_and_replays_on_every_launch(gpu: Gpu) -> None:
    stream = gpu.stream()
    src, dst = gpu.alloc(8), gpu.alloc(8)
    gpu.put(src, b"ABCDEFGH")
    assert gpu.info(stream) == (NONE, 0)
    gpu.begin(stream)
    status, capture_id = gpu.info(stream)
    assert status == ACTIVE and capture_id != 0
    gpu("memset_d8", dst=dst, count=8, value=ord("z"), stream=stream)
    gpu("memcpy_dtod", dst=dst + 2, src=src, count=4, stream=stream)
    assert gpu.ex.device_read(dst, 8).tobytes() == bytes(8)  # nothing ran
    graph = gpu.end(stream)
    assert gpu.info(stream) == (NONE, 0)
    graph_exec = gpu.instantiate(graph)
    gpu("graph_launch", graph_exec=graph_exec, stream=stream)
    assert gpu.get(dst, 8) == b"zzABCDzz"
    gpu.put(src, b"12345678")
    gpu("graph_launch", graph_exec=graph_exec, stream=0)
    assert gpu.get(dst, 8) == b"zz1234zz"  # the replay reads memory as it is at launch


def test_a_captured_gemm_replays(gpu: Gpu) -> None:
    blas = int(gpu("cublas_create").handle)
    stream = gpu.stream()
    gpu("cublas_set_stream", handle=blas, stream=stream)
    a, c = gpu.alloc(16), gpu.alloc(16)
    gpu.put(a, np.array([1, 2, 3, 4], dtype="<f4").tobytes())
    gpu.begin(stream, RELAXED)
    gpu("cublas_sgemm", handle=blas, transa=0, transb=0, m=2, n=2, k=2, alpha=1.0, a=a, lda=2, b=a, ldb=2,
        beta=0.0, c=c, ldc=2)
    assert gpu.ex.device_read(c, 16).tobytes() == bytes(16)
    graph_exec = gpu.instantiate(gpu.end(stream))
    gpu("graph_launch", graph_exec=graph_exec, stream=stream)
    mat = np.array([[1, 3], [2, 4]], dtype=np.float32)  # column-major [1, 2, 3, 4]
    assert gpu.get(c, 16) == (mat @ mat).T.astype("<f4").tobytes()


def test_enqueue_records_into_a_capture(gpu: Gpu) -> None:
    ran: list[int] = []
    stream = gpu.stream()
    gpu.begin(stream)
    gpu.ex.enqueue(stream, lambda: ran.append(1), "reference kernel")
    assert ran == []
    graph_exec = gpu.instantiate(gpu.end(stream))
    for _ in range(2):
        gpu("graph_launch", graph_exec=graph_exec, stream=stream)
    assert ran == [1, 1]


def test_the_legacy_stream_cannot_capture_and_capture_state_is_checked(gpu: Gpu) -> None:
    gpu.fails(CUresult.CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED, "stream_begin_capture", stream=0, mode=GLOBAL)
    stream = gpu.stream()
    gpu.fails(CUresult.CUDA_ERROR_ILLEGAL_STATE, "stream_end_capture", stream=stream)
    gpu.begin(stream)
    gpu.fails(CUresult.CUDA_ERROR_ILLEGAL_STATE, "stream_begin_capture", stream=stream, mode=GLOBAL)
    other = gpu.stream()
    gpu.begin(other)
    assert gpu.info(other)[1] != gpu.info(stream)[1]  # each capture has its own id
    gpu.end(other)
    gpu.end(stream)


@pytest.mark.parametrize("sync", ["stream_synchronize", "stream_query", "ctx_synchronize",
                                  "blocking_memset"])
def test_waiting_for_a_capturing_stream_invalidates_the_capture(gpu: Gpu, sync: str) -> None:
    stream = gpu.stream()
    ptr = gpu.alloc(4)
    gpu.begin(stream, RELAXED)
    gpu("memset_d8", dst=ptr, count=4, value=1, stream=stream)
    if sync == "blocking_memset":
        gpu.fails(CUresult.CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED, "memset_d8", dst=ptr, count=4, value=2,
                  stream=stream, blocking=True)
    elif sync == "ctx_synchronize":
        gpu.fails(CUresult.CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED, "ctx_synchronize")
    else:
        gpu.fails(CUresult.CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED, sync, stream=stream)
    assert gpu.info(stream)[0] == INVALIDATED
    gpu.fails(CUresult.CUDA_ERROR_STREAM_CAPTURE_INVALIDATED, "memset_d8", dst=ptr, count=4, value=3,
              stream=stream)
    gpu.fails(CUresult.CUDA_ERROR_STREAM_CAPTURE_INVALIDATED, "stream_end_capture", stream=stream)
    assert gpu.info(stream) == (NONE, 0)  # the failed end still ended the capture
    gpu("memset_d8", dst=ptr, count=4, value=4, stream=stream)
    assert gpu.get(ptr, 4) == b"\x04" * 4


def test_the_legacy_stream_conflicts_with_a_blocking_capturing_stream_only(gpu: Gpu) -> None:
    ptr = gpu.alloc(4)
    quiet = gpu.stream(NON_BLOCKING)
    gpu.begin(quiet)
    gpu("memset_d8", dst=ptr, count=4, value=1, stream=0)  # no implicit dependency on `quiet`
    assert gpu.get(ptr, 4) == b"\x01" * 4
    gpu.end(quiet)
    loud = gpu.stream()
    gpu.begin(loud, RELAXED)
    gpu.fails(CUresult.CUDA_ERROR_STREAM_CAPTURE_IMPLICIT, "memset_d8", dst=ptr, count=4, value=2, stream=0)
    gpu.fails(CUresult.CUDA_ERROR_STREAM_CAPTURE_IMPLICIT, "stream_get_capture_info", stream=0)
    assert gpu.info(loud)[0] == INVALIDATED
    gpu.fails(CUresult.CUDA_ERROR_STREAM_CAPTURE_INVALIDATED, "stream_end_capture", stream=loud)
    assert gpu.get(ptr, 4) == b"\x01" * 4


@pytest.mark.parametrize("mode", [GLOBAL, THREAD_LOCAL])
def test_allocation_is_unsafe_during_a_strict_capture(gpu: Gpu, mode: int) -> None:
    stream = gpu.stream()
    ptr = gpu.alloc(4)
    gpu.begin(stream, mode)
    gpu.fails(CUresult.CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED, "mem_alloc", bytesize=4)
    assert gpu.info(stream)[0] == INVALIDATED
    gpu.fails(CUresult.CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED, "mem_free", dptr=ptr)
    gpu.fails(CUresult.CUDA_ERROR_STREAM_CAPTURE_INVALIDATED, "stream_end_capture", stream=stream)
    gpu("mem_free", dptr=ptr)


def test_relaxed_capture_allows_allocation(gpu: Gpu) -> None:
    stream = gpu.stream()
    gpu.begin(stream, RELAXED)
    ptr = gpu.alloc(4)
    gpu("mem_free", dptr=ptr)
    assert gpu.info(stream)[0] == ACTIVE
    gpu.end(stream)


@pytest.mark.parametrize("copy", ["memcpy_htod", "memcpy_dtoh"])
def test_host_copies_cannot_be_captured(gpu: Gpu, copy: str) -> None:
    stream = gpu.stream()
    ptr = gpu.alloc(4)
    gpu.begin(stream, RELAXED)
    if copy == "memcpy_htod":
        error = gpu.fails(CUresult.CUDA_ERROR_NOT_SUPPORTED, copy, dst=ptr, stream=stream, inp=b"abcd")
    else:
        error = gpu.fails(CUresult.CUDA_ERROR_NOT_SUPPORTED, copy, src=ptr, count=4, stream=stream,
                          out_cap=4)
    assert "host memory" in error.message
    assert gpu.info(stream)[0] == INVALIDATED


def test_forked_and_joined_streams_are_captured_into_one_graph(gpu: Gpu) -> None:
    origin, side = gpu.stream(), gpu.stream()
    fork, join = gpu.event(), gpu.event()
    buf = gpu.alloc(8)
    gpu.begin(origin)
    gpu("memset_d8", dst=buf, count=8, value=ord("a"), stream=origin)
    gpu("event_record", event=fork, stream=origin)
    gpu("stream_wait_event", stream=side, event=fork, flags=0)
    assert gpu.info(side) == gpu.info(origin)  # the side stream joined the capture
    gpu("memset_d8", dst=buf + 4, count=4, value=ord("b"), stream=side)
    gpu("event_record", event=join, stream=side)
    gpu("memset_d8", dst=buf, count=2, value=ord("c"), stream=origin)
    gpu("stream_wait_event", stream=origin, event=join, flags=0)
    gpu.fails(CUresult.CUDA_ERROR_STREAM_CAPTURE_UNMATCHED, "stream_end_capture", stream=side)
    gpu.fails(CUresult.CUDA_ERROR_CAPTURED_EVENT, "event_query", event=fork)
    gpu.fails(CUresult.CUDA_ERROR_CAPTURED_EVENT, "event_synchronize", event=join)
    graph = gpu.end(origin)
    assert gpu.info(side) == (NONE, 0)
    assert gpu.get(buf, 8) == bytes(8)
    gpu("graph_launch", graph_exec=gpu.instantiate(graph), stream=origin)
    assert gpu.get(buf, 8) == b"ccaabbbb"


@pytest.mark.parametrize("destroyed", [False, True])
def test_a_fork_that_is_not_joined_back_fails_the_capture(gpu: Gpu, destroyed: bool) -> None:
    """Also when the forked stream was destroyed before the end (it left the capture, its work stays)."""
    origin, side = gpu.stream(), gpu.stream()
    fork = gpu.event()
    buf = gpu.alloc(4)
    gpu.begin(origin)
    gpu("event_record", event=fork, stream=origin)
    gpu("stream_wait_event", stream=side, event=fork, flags=0)
    gpu("memset_d8", dst=buf, count=4, value=1, stream=side)
    if destroyed:
        gpu("stream_destroy", stream=side)
    error = gpu.fails(CUresult.CUDA_ERROR_STREAM_CAPTURE_UNJOINED, "stream_end_capture", stream=origin)
    assert "cuMemsetD8" in error.message
    assert destroyed or gpu.info(side) == (NONE, 0)
    assert gpu.get(buf, 4) == bytes(4)


def test_waiting_across_two_captures_is_an_isolation_error(gpu: Gpu) -> None:
    first, second = gpu.stream(), gpu.stream()
    event = gpu.event()
    gpu.begin(first)
    gpu.begin(second)
    gpu("event_record", event=event, stream=first)
    gpu.fails(CUresult.CUDA_ERROR_STREAM_CAPTURE_ISOLATION, "stream_wait_event", stream=second, event=event,
              flags=0)
    gpu.end(first)
    gpu.fails(CUresult.CUDA_ERROR_STREAM_CAPTURE_INVALIDATED, "stream_end_capture", stream=second)
    gpu.fails(CUresult.CUDA_ERROR_CAPTURED_EVENT, "stream_wait_event", stream=second, event=event, flags=0)
    gpu("event_record", event=event, stream=first)  # recorded outside capture again: usable
    gpu("event_synchronize", event=event)


def test_a_graph_launched_during_capture_becomes_part_of_the_new_graph(gpu: Gpu) -> None:
    stream = gpu.stream()
    buf = gpu.alloc(4)
    gpu.begin(stream)
    gpu("memset_d8", dst=buf, count=4, value=5, stream=stream)
    inner = gpu.instantiate(gpu.end(stream))
    gpu.begin(stream)
    gpu("graph_launch", graph_exec=inner, stream=stream)
    gpu("memset_d8", dst=buf, count=1, value=6, stream=stream)
    outer = gpu.instantiate(gpu.end(stream))
    assert gpu.get(buf, 4) == bytes(4)
    gpu("graph_launch", graph_exec=outer, stream=stream)
    assert gpu.get(buf, 4) == b"\x06\x05\x05\x05"


def test_graph_handles_and_instantiation_flags(gpu: Gpu) -> None:
    stream = gpu.stream()
    buf = gpu.alloc(4)
    gpu.begin(stream)
    gpu("memset_d8", dst=buf, count=4, value=7, stream=stream)
    graph = gpu.end(stream)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "graph_instantiate", graph=graph, flags=4)
    graph_exec = gpu.instantiate(graph)
    gpu("graph_destroy", graph=graph)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_HANDLE, "graph_destroy", graph=graph)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_HANDLE, "graph_instantiate", graph=graph, flags=0)
    gpu("graph_launch", graph_exec=graph_exec, stream=0)  # an instantiated graph outlives its graph
    assert gpu.get(buf, 4) == b"\x07" * 4
    gpu("graph_exec_destroy", graph_exec=graph_exec)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_HANDLE, "graph_launch", graph_exec=graph_exec, stream=0)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_HANDLE, "graph_exec_destroy", graph_exec=graph_exec)


def test_a_replay_that_touches_freed_memory_fails_naming_the_node(gpu: Gpu) -> None:
    stream = gpu.stream()
    buf = gpu.alloc(4)
    gpu.begin(stream, RELAXED)
    gpu("memset_d8", dst=buf, count=4, value=7, stream=stream)
    graph_exec = gpu.instantiate(gpu.end(stream))
    gpu("mem_free", dptr=buf)
    error = gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "graph_launch", graph_exec=graph_exec, stream=0)
    assert "graph node 0 (cuMemsetD8)" in error.message


def test_destroying_the_origin_of_a_capture_ends_it(gpu: Gpu) -> None:
    origin, side = gpu.stream(), gpu.stream()
    fork = gpu.event()
    gpu.begin(origin)
    gpu("event_record", event=fork, stream=origin)
    gpu("stream_wait_event", stream=side, event=fork, flags=0)
    gpu("stream_destroy", stream=origin)
    assert gpu.info(side)[0] == NONE  # the side stream left the capture with it
    gpu("stream_destroy", stream=side)
    gpu("ctx_synchronize")  # no capture is left


def test_a_joined_stream_destroyed_mid_capture_leaves_it_and_its_joined_work_stays(gpu: Gpu) -> None:
    """NVIDIA's graphMemoryNodes destroys its second stream before the capture ends (as CUDA allows)."""
    origin, side = gpu.stream(), gpu.stream()
    fork, join = gpu.event(), gpu.event()
    dst = gpu.alloc(4)
    gpu.begin(origin)
    gpu("event_record", event=fork, stream=origin)
    gpu("stream_wait_event", stream=side, event=fork, flags=0)
    gpu("memset_d8", dst=dst, count=4, value=9, stream=side)
    gpu("event_record", event=join, stream=side)
    gpu("stream_wait_event", stream=origin, event=join, flags=0)
    gpu("stream_destroy", stream=side)
    assert gpu.info(origin)[0] == ACTIVE
    gpu("graph_launch", graph_exec=gpu.instantiate(gpu.end(origin)), stream=0)
    assert gpu.get(dst, 4) == b"\x09" * 4


def test_graph_memory_is_allocated_and_freed_during_a_global_capture(gpu: Gpu) -> None:
    """graph_mem_alloc/free serve memory nodes: CUDA permits them where cuMemAlloc is refused."""
    stream = gpu.stream()
    gpu.begin(stream)
    used = gpu.ex.memory.used
    dptr = int(gpu("graph_mem_alloc", bytesize=4096).dptr)
    assert gpu.ex.memory.used >= used + 4096  # charged as any allocation
    gpu("memset_d8", dst=dptr, count=4096, value=5, stream=stream)
    gpu("graph_mem_free", dptr=dptr)
    assert gpu.info(stream)[0] == ACTIVE
    gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "graph_mem_free", dptr=dptr)  # twice
    gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "graph_mem_free", dptr=0)
    gpu.fails(CUresult.CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED, "mem_alloc", bytesize=4096)


@pytest.mark.parametrize("size", [0, 1 << 62])
def test_a_graph_block_of_no_bytes_or_past_the_quota_is_refused(gpu: Gpu, size: int) -> None:
    used = gpu.ex.memory.used
    status = CUresult.CUDA_ERROR_INVALID_VALUE if size == 0 else CUresult.CUDA_ERROR_OUT_OF_MEMORY
    gpu.fails(status, "graph_mem_alloc", bytesize=size)
    assert gpu.ex.memory.used == used


def test_a_captured_batched_gemm_reads_its_pointer_arrays_at_replay(gpu: Gpu) -> None:
    """GGML fills the pointer arrays with a kernel just before the GEMM: their contents at capture
    time do not matter, their contents at launch do."""
    blas = int(gpu("cublas_create").handle)
    stream = gpu.stream()
    gpu("cublas_set_stream", handle=blas, stream=stream)
    one, two, out = gpu.alloc(4), gpu.alloc(4), gpu.alloc(4)
    gpu.put(one, np.array([3.0], dtype="<f4").tobytes())
    gpu.put(two, np.array([5.0], dtype="<f4").tobytes())
    arrays = [gpu.alloc(8) for _ in range(3)]  # still zero (null pointers) while capturing
    gpu.begin(stream, RELAXED)
    gpu("cublas_gemm_batched_ex", handle=blas, transa=0, transb=0, m=1, n=1, k=1, alpha=1.0, a=arrays[0],
        a_type=0, lda=1, b=arrays[1], b_type=0, ldb=1, beta=0.0, c=arrays[2], c_type=0, ldc=1,
        batch_count=1, compute_type=68, algo=-1)
    graph_exec = gpu.instantiate(gpu.end(stream))
    for array, ptr in zip(arrays, (one, two, out), strict=True):
        gpu.put(array, np.array([ptr], dtype="<u8").tobytes())
    gpu("graph_launch", graph_exec=graph_exec, stream=stream)
    assert np.frombuffer(gpu.get(out, 4), dtype="<f4")[0] == 15.0


def test_an_external_event_record_is_a_node_that_records_when_the_graph_runs(gpu: Gpu) -> None:
    stream, event = gpu.stream(), gpu.event()
    gpu.begin(stream)
    gpu("event_record_with_flags", event=event, stream=stream, flags=1)  # CU_EVENT_RECORD_EXTERNAL
    graph = gpu.end(stream)  # not a fork marker: the capture ends without a join
    gpu.fails(CUresult.CUDA_ERROR_INVALID_HANDLE, "event_elapsed_time", start=event, end=event)  # never recorded
    graph_exec = gpu.instantiate(graph)
    gpu("graph_launch", graph_exec=graph_exec, stream=stream)
    assert gpu("event_elapsed_time", start=event, end=event).milliseconds == 0.0  # recorded by the launch
    gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "event_record_with_flags", event=event, stream=stream, flags=2)
    gpu("event_record_with_flags", event=event, stream=stream, flags=0)  # outside a capture: cuEventRecord


def test_a_phase_launched_into_a_capture_is_charged_for_the_leaves_it_holds(gpu: Gpu) -> None:
    """A phase captured is a body of its own, a reference per leaf: an exec whose few nodes expand to
    many leaves (child graphs) must not make a one-node capture hold them for one node's charge."""
    stream, ptr = gpu.stream(), gpu.alloc(4)
    gpu.begin(stream)
    for value in range(256):
        gpu("memset_d8", dst=ptr, count=4, value=value, stream=stream)
    wide = gpu.instantiate(gpu.end(stream))
    gpu.begin(stream)
    for _ in range(64):
        gpu("graph_launch", graph_exec=wide, stream=stream)  # 64 nodes, 16,384 leaves
    gpu("stream_add_guest_node", stream=stream, tag=1)
    phased = gpu.instantiate(gpu.end(stream))
    leaves = 64 * 256
    before = gpu.ex.host.used
    gpu.begin(stream)
    gpu("graph_launch_phase", graph_exec=phased, stream=stream, phase=0)
    assert gpu.ex.host.used - before >= GRAPH_NODE_BYTES + leaves * PHASE_NODE_BYTES
    gpu.end(stream)


def test_child_graphs_of_empty_graphs_count_towards_the_nodes_a_launch_walks(gpu: Gpu) -> None:
    """A child node runs no leaf but is walked on every launch: 600 launches of a graph of 600 empty
    children would walk 360,000 nodes (and nesting such graphs multiplies it), past the bound."""
    stream = gpu.stream()
    gpu.begin(stream)
    empty = gpu.instantiate(gpu.end(stream))
    gpu.begin(stream)
    for _ in range(600):
        gpu("graph_launch", graph_exec=empty, stream=stream)
    wide = gpu.instantiate(gpu.end(stream))
    gpu.begin(stream)
    allowed = MAX_EXPANDED_NODES // 601  # each launch walks its child node and the 600 in it
    for _ in range(allowed):
        gpu("graph_launch", graph_exec=wide, stream=stream)
    gpu.fails(CUresult.CUDA_ERROR_OUT_OF_MEMORY, "graph_launch", graph_exec=wide, stream=stream)
    assert gpu.info(stream)[0] == INVALIDATED
