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
