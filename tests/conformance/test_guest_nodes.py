"""Guest nodes: a host function or host memory copy captured into a graph is work the guest performs
between the phases of the graph's launch; the host keeps its place and runs the phases around it."""

from __future__ import annotations

import numpy as np

from guest import GuestClient
from protocol import CUresult, StreamCaptureMode

from ._util import download, status_of, upload

RELAXED = StreamCaptureMode.CU_STREAM_CAPTURE_MODE_RELAXED


def begin(gpu: GuestClient, stream: int) -> None:
    gpu.checked("stream_begin_capture", gpu.args("stream_begin_capture", stream=stream, mode=RELAXED))


def end(gpu: GuestClient, stream: int) -> int:
    return int(gpu.value("stream_end_capture", "graph", gpu.args("stream_end_capture", stream=stream)))


def guest_node(gpu: GuestClient, stream: int, tag: int) -> int:
    return int(gpu.value("stream_add_guest_node", "captured", gpu.args("stream_add_guest_node", stream=stream,
                                                                       tag=tag)))


def instantiate(gpu: GuestClient, graph: int) -> int:
    return int(gpu.value("graph_instantiate", "graph_exec", gpu.args("graph_instantiate", graph=graph, flags=0)))


def guest_tags(gpu: GuestClient, exec_: int) -> list[int]:
    count = int(gpu.value("graph_exec_guest_node", "count", gpu.args("graph_exec_guest_node", graph_exec=exec_,
                                                                      index=0)))
    return [int(gpu.value("graph_exec_guest_node", "tag", gpu.args("graph_exec_guest_node", graph_exec=exec_,
                                                                    index=i))) for i in range(count)]


def launch_phase(gpu: GuestClient, exec_: int, stream: int, phase: int, *, captured: bool = False) -> int:
    """Posted, as the shim posts it (a synchronous launch would wait for a capturing stream); its
    status is the next synchronization's (none for a launch into a capture: the capture records it)."""
    args = gpu.args("graph_launch_phase", graph_exec=exec_, stream=stream, phase=phase)
    gpu.call("graph_launch_phase", args, asynchronous=True)
    return 0 if captured else status_of(gpu, "ctx_synchronize")


def node_count(gpu: GuestClient, graph: int) -> int:
    return int(gpu.value("graph_node_count", "count", gpu.args("graph_node_count", graph=graph)))


def test_a_guest_node_is_recorded_only_on_a_capturing_stream(gpu: GuestClient) -> None:
    stream = gpu.stream_create()
    assert guest_node(gpu, stream, 5) == 0  # not capturing: the guest performs it now
    assert guest_node(gpu, 0, 5) == 0  # the legacy stream never captures
    begin(gpu, stream)
    assert guest_node(gpu, stream, 5) == 1
    graph = end(gpu, stream)
    assert node_count(gpu, graph) == 1


def test_an_exec_with_guest_nodes_runs_phase_by_phase_around_them(gpu: GuestClient) -> None:
    stream = gpu.stream_create()
    zeros = np.zeros(64, np.uint32)
    a, b, c = upload(gpu, zeros), upload(gpu, zeros), upload(gpu, zeros)
    begin(gpu, stream)
    gpu.memset_d32(a, 1, 64, stream=stream, asynchronous=True)
    assert guest_node(gpu, stream, 7) == 1
    gpu.memset_d32(b, 2, 64, stream=stream, asynchronous=True)
    assert guest_node(gpu, stream, 9) == 1
    gpu.memset_d32(c, 3, 64, stream=stream, asynchronous=True)
    graph = end(gpu, stream)
    assert node_count(gpu, graph) == 5
    exec_ = instantiate(gpu, graph)
    assert guest_tags(gpu, exec_) == [7, 9]
    # launched whole it would skip the guest's work: refused
    assert status_of(gpu, "graph_launch", gpu.args("graph_launch", graph_exec=exec_, stream=stream)) == \
        CUresult.CUDA_ERROR_NOT_SUPPORTED
    assert launch_phase(gpu, exec_, stream, 0) == 0
    gpu.stream_synchronize(stream)
    assert [int(download(gpu, p, zeros)[0]) for p in (a, b, c)] == [1, 0, 0]
    assert launch_phase(gpu, exec_, stream, 1) == 0
    gpu.stream_synchronize(stream)
    assert [int(download(gpu, p, zeros)[0]) for p in (a, b, c)] == [1, 2, 0]
    assert launch_phase(gpu, exec_, stream, 2) == 0
    gpu.stream_synchronize(stream)
    assert [int(download(gpu, p, zeros)[0]) for p in (a, b, c)] == [1, 2, 3]
    assert launch_phase(gpu, exec_, stream, 3) == CUresult.CUDA_ERROR_INVALID_VALUE


def test_a_clone_keeps_the_guest_nodes_and_an_exec_without_them_has_none(gpu: GuestClient) -> None:
    stream = gpu.stream_create()
    ptr = upload(gpu, np.zeros(16, np.uint32))
    begin(gpu, stream)
    assert guest_node(gpu, stream, 3) == 1
    gpu.memset_d32(ptr, 4, 16, stream=stream, asynchronous=True)
    graph = end(gpu, stream)
    clone = int(gpu.value("graph_clone", "graph", gpu.args("graph_clone", graph=graph)))
    gpu.checked("graph_destroy", gpu.args("graph_destroy", graph=graph))
    assert node_count(gpu, clone) == 2
    assert guest_tags(gpu, instantiate(gpu, clone)) == [3]
    begin(gpu, stream)
    gpu.memset_d32(ptr, 5, 16, stream=stream, asynchronous=True)
    plain = instantiate(gpu, end(gpu, stream))
    assert guest_tags(gpu, plain) == []
    assert launch_phase(gpu, plain, stream, 0) == 0  # phase 0 of a plain exec is all of it
    gpu.stream_synchronize(stream)
    assert int(download(gpu, ptr, np.zeros(16, np.uint32))[0]) == 5


def test_phases_launched_into_a_capture_keep_their_guest_nodes_in_order(gpu: GuestClient) -> None:
    stream, outer_stream = gpu.stream_create(), gpu.stream_create()
    ptr = upload(gpu, np.zeros(16, np.uint32))
    begin(gpu, stream)
    gpu.memset_d32(ptr, 1, 16, stream=stream, asynchronous=True)
    assert guest_node(gpu, stream, 11) == 1
    gpu.memset_d32(ptr, 2, 16, stream=stream, asynchronous=True)
    inner = instantiate(gpu, end(gpu, stream))
    begin(gpu, outer_stream)  # what the shim does when the exec is launched into a capture
    launch_phase(gpu, inner, outer_stream, 0, captured=True)
    assert guest_node(gpu, outer_stream, 11) == 1
    launch_phase(gpu, inner, outer_stream, 1, captured=True)
    assert guest_node(gpu, outer_stream, 12) == 1
    outer = instantiate(gpu, end(gpu, outer_stream))
    assert guest_tags(gpu, outer) == [11, 12]
    for phase, value in ((0, 1), (1, 2), (2, 2)):
        assert launch_phase(gpu, outer, outer_stream, phase) == 0
        gpu.stream_synchronize(outer_stream)
        assert int(download(gpu, ptr, np.zeros(16, np.uint32))[0]) == value
