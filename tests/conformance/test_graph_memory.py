"""Graph memory nodes' blocks (graph_mem_alloc, graph_mem_free): allocated and given back while a
stream captures in global mode, where cuMemAlloc is refused, and used by the captured graph's nodes.
On cuda (``--backend cuda``) the worker relaxes its thread's capture mode around the driver's calls."""

from __future__ import annotations

from guest import GuestClient
from protocol import CUresult, StreamCaptureMode, StreamCaptureStatus

from ._util import status_of

GLOBAL = StreamCaptureMode.CU_STREAM_CAPTURE_MODE_GLOBAL
ACTIVE = StreamCaptureStatus.CU_STREAM_CAPTURE_STATUS_ACTIVE
SIZE = 1 << 16


def test_a_graph_block_is_made_and_used_during_a_global_capture_and_given_back_after(gpu: GuestClient) -> None:
    stream = gpu.stream_create()
    out = gpu.mem_alloc(SIZE)
    gpu.checked("stream_begin_capture", gpu.args("stream_begin_capture", stream=stream, mode=GLOBAL))
    block = int(gpu.value("graph_mem_alloc", "dptr", gpu.args("graph_mem_alloc", bytesize=SIZE)))
    gpu.memset_d8(block, 0x5A, SIZE, stream=stream, asynchronous=True)
    gpu.memcpy_dtod(out, block, SIZE, stream=stream, asynchronous=True)
    status = gpu.value("stream_get_capture_info", "status", gpu.args("stream_get_capture_info", stream=stream))
    assert status == ACTIVE  # unlike a cuMemAlloc, which would have invalidated the capture
    graph = gpu.value("stream_end_capture", "graph", gpu.args("stream_end_capture", stream=stream))
    exec_ = gpu.value("graph_instantiate", "graph_exec", gpu.args("graph_instantiate", graph=graph, flags=0))
    for _ in range(2):  # the same block on every launch
        gpu.memset_d8(out, 0, SIZE)
        gpu.checked("graph_launch", gpu.args("graph_launch", graph_exec=exec_, stream=stream))
        gpu.checked("stream_synchronize", gpu.args("stream_synchronize", stream=stream))
        assert gpu.memcpy_dtoh(out, SIZE) == b"\x5a" * SIZE
    gpu.checked("graph_exec_destroy", gpu.args("graph_exec_destroy", graph_exec=exec_))
    gpu.checked("graph_destroy", gpu.args("graph_destroy", graph=graph))
    gpu.checked("graph_mem_free", gpu.args("graph_mem_free", dptr=block))
    assert status_of(gpu, "graph_mem_free", gpu.args("graph_mem_free", dptr=block)) == \
        CUresult.CUDA_ERROR_INVALID_VALUE  # given back once
    gpu.mem_free(out)


def test_a_guests_bad_graph_block_is_refused(gpu: GuestClient) -> None:
    assert status_of(gpu, "graph_mem_alloc", gpu.args("graph_mem_alloc", bytesize=0)) == \
        CUresult.CUDA_ERROR_INVALID_VALUE
    assert status_of(gpu, "graph_mem_alloc", gpu.args("graph_mem_alloc", bytesize=1 << 62)) == \
        CUresult.CUDA_ERROR_OUT_OF_MEMORY
    assert status_of(gpu, "graph_mem_free", gpu.args("graph_mem_free", dptr=0x10)) == \
        CUresult.CUDA_ERROR_INVALID_VALUE
