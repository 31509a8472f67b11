"""Stream capture and graphs: captured work is recorded, not run; a graph replays it on every launch."""

from __future__ import annotations

import struct

import numpy as np

from guest import GuestClient
from protocol import CUresult, StreamCaptureMode, StreamCaptureStatus

from ._util import download, get_function, launch, load_module, status_of, upload
from .conftest import KERNELS

RELAXED, GLOBAL = StreamCaptureMode.CU_STREAM_CAPTURE_MODE_RELAXED, StreamCaptureMode.CU_STREAM_CAPTURE_MODE_GLOBAL


def begin(gpu: GuestClient, stream: int, mode: int = RELAXED) -> None:
    gpu.checked("stream_begin_capture", gpu.args("stream_begin_capture", stream=stream, mode=mode))


def capture_status(gpu: GuestClient, stream: int) -> int:
    return int(gpu.value("stream_get_capture_info", "status", gpu.args("stream_get_capture_info", stream=stream)))


def test_captured_work_runs_only_when_the_graph_is_launched(gpu: GuestClient) -> None:
    stream = gpu.stream_create()
    module = load_module(gpu, (KERNELS / "test_kernels.fatbin").read_bytes())
    scale = get_function(gpu, module, "_Z9scale_f32Pffi")
    x = np.arange(256, dtype=np.float32)
    px = upload(gpu, x)
    assert capture_status(gpu, stream) == StreamCaptureStatus.CU_STREAM_CAPTURE_STATUS_NONE
    begin(gpu, stream)
    assert capture_status(gpu, stream) == StreamCaptureStatus.CU_STREAM_CAPTURE_STATUS_ACTIVE
    gpu.memset_d32(px, 0x3F800000, 128, stream=stream, asynchronous=True)  # first half := 1.0
    launch(gpu, scale, 1, 256, struct.pack("<Qfi", px, 3.0, 256), stream=stream)
    graph = gpu.value("stream_end_capture", "graph", gpu.args("stream_end_capture", stream=stream))
    np.testing.assert_array_equal(download(gpu, px, x), x)  # nothing ran yet
    exec_ = gpu.value("graph_instantiate", "graph_exec", gpu.args("graph_instantiate", graph=graph, flags=0))
    for launches in (1, 2):  # every replay sets the first half again, then scales everything
        gpu.checked("graph_launch", gpu.args("graph_launch", graph_exec=exec_, stream=stream))
        gpu.stream_synchronize(stream)
        expected = np.concatenate([np.full(128, 3, np.float32), x[128:] * 3**launches])
        np.testing.assert_array_equal(download(gpu, px, x), expected)
    gpu.checked("graph_exec_destroy", gpu.args("graph_exec_destroy", graph_exec=exec_))
    gpu.checked("graph_destroy", gpu.args("graph_destroy", graph=graph))
    assert status_of(gpu, "graph_launch", gpu.args("graph_launch", graph_exec=exec_, stream=stream)) == \
        CUresult.CUDA_ERROR_INVALID_HANDLE


def test_synchronizing_a_capturing_stream_fails_and_invalidates_the_capture(gpu: GuestClient) -> None:
    stream = gpu.stream_create()
    ptr = gpu.mem_alloc(1024)
    begin(gpu, stream, GLOBAL)
    gpu.memset_d8(ptr, 1, 1024, stream=stream, asynchronous=True)
    assert status_of(gpu, "stream_synchronize", gpu.args("stream_synchronize", stream=stream)) == \
        CUresult.CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED
    assert capture_status(gpu, stream) == StreamCaptureStatus.CU_STREAM_CAPTURE_STATUS_INVALIDATED
    assert status_of(gpu, "stream_end_capture", gpu.args("stream_end_capture", stream=stream)) == \
        CUresult.CUDA_ERROR_STREAM_CAPTURE_INVALIDATED
    assert capture_status(gpu, stream) == StreamCaptureStatus.CU_STREAM_CAPTURE_STATUS_NONE
    gpu.memset_d8(ptr, 2, 1024, stream=stream)
    assert gpu.memcpy_dtoh(ptr, 4) == b"\x02" * 4


def test_capture_rules_for_the_legacy_stream_and_allocation(gpu: GuestClient) -> None:
    assert status_of(gpu, "stream_begin_capture", gpu.args("stream_begin_capture", stream=0, mode=RELAXED)) == \
        CUresult.CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED
    stream = gpu.stream_create()
    begin(gpu, stream, GLOBAL)
    assert status_of(gpu, "mem_alloc", gpu.args("mem_alloc", bytesize=256)) == \
        CUresult.CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED
    assert status_of(gpu, "stream_end_capture", gpu.args("stream_end_capture", stream=stream)) == \
        CUresult.CUDA_ERROR_STREAM_CAPTURE_INVALIDATED
    begin(gpu, stream, RELAXED)
    ptr = gpu.mem_alloc(256)  # GGML's mode allows it
    graph = gpu.value("stream_end_capture", "graph", gpu.args("stream_end_capture", stream=stream))
    gpu.checked("graph_destroy", gpu.args("graph_destroy", graph=graph))
    gpu.mem_free(ptr)


def test_an_exec_takes_a_captured_graph_of_the_same_topology_and_refuses_another(gpu: GuestClient) -> None:
    """cuGraphExecUpdate: the call succeeds either way; ``result`` is CUgraphExecUpdateResult."""
    stream = gpu.stream_create()
    x = np.zeros(64, np.uint32)
    ptr = upload(gpu, x)

    def capture(*values: int) -> int:
        begin(gpu, stream)
        for i, value in enumerate(values):
            if i % 2:
                gpu.memset_d8(ptr, value, 64, stream=stream, asynchronous=True)
            else:
                gpu.memset_d32(ptr, value, 64, stream=stream, asynchronous=True)
        return int(gpu.value("stream_end_capture", "graph", gpu.args("stream_end_capture", stream=stream)))

    def update(exec_: int, graph: int) -> int:
        return int(gpu.value("graph_exec_update", "result", gpu.args("graph_exec_update", graph_exec=exec_,
                                                                      graph=graph)))

    def run(exec_: int) -> int:
        gpu.checked("graph_launch", gpu.args("graph_launch", graph_exec=exec_, stream=stream))
        gpu.stream_synchronize(stream)
        return int(download(gpu, ptr, x)[0])

    exec_ = int(gpu.value("graph_instantiate", "graph_exec",
                          gpu.args("graph_instantiate", graph=capture(7), flags=0)))
    assert run(exec_) == 7
    assert update(exec_, capture(9)) == 0  # same topology: the exec now sets 9
    assert run(exec_) == 9
    assert update(exec_, capture(1, 2)) == 2  # CU_GRAPH_EXEC_UPDATE_ERROR_TOPOLOGY_CHANGED
    assert update(exec_, capture(3)) == 0
    assert run(exec_) == 3
    begin(gpu, stream)
    gpu.memset_d8(ptr, 4, 64, stream=stream, asynchronous=True)  # another element size
    other_size = int(gpu.value("stream_end_capture", "graph", gpu.args("stream_end_capture", stream=stream)))
    assert update(exec_, other_size) == 5  # CU_GRAPH_EXEC_UPDATE_ERROR_PARAMETERS_CHANGED
    assert run(exec_) == 3  # a refused update leaves the exec as it was
