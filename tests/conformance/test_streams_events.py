"""Streams and events: ordering across streams, queries, elapsed time, and handle errors."""

from __future__ import annotations

import time

from guest import GuestClient
from protocol import CUresult

from ._util import status_of

CU_EVENT_DISABLE_TIMING = 0x2


def test_work_on_two_streams_joined_by_an_event_is_ordered(gpu: GuestClient) -> None:
    first, second = gpu.stream_create(), gpu.stream_create(flags=1)
    event = gpu.event_create()
    ptr = gpu.mem_alloc(1 << 20)
    gpu.memset_d8(ptr, 0x11, 1 << 20, stream=first, asynchronous=True)
    gpu.event_record(event, first)
    gpu.stream_wait_event(second, event)
    gpu.memset_d8(ptr, 0x22, 1 << 19, stream=second, asynchronous=True)
    gpu.stream_synchronize(second)
    data = gpu.memcpy_dtoh(ptr, 1 << 20)
    assert data[: 1 << 19] == b"\x22" * (1 << 19) and data[1 << 19:] == b"\x11" * (1 << 19)
    assert status_of(gpu, "stream_query", gpu.args("stream_query", stream=first)) == 0
    assert status_of(gpu, "event_query", gpu.args("event_query", event=event)) == 0
    for stream in (first, second):
        gpu.stream_destroy(stream)
    gpu.event_destroy(event)


def test_elapsed_time_between_events_is_real_and_ordered(gpu: GuestClient) -> None:
    start, end = gpu.event_create(), gpu.event_create()
    gpu.event_record(start)
    time.sleep(0.02)
    gpu.event_record(end)
    gpu.event_synchronize(end)
    elapsed = gpu.event_elapsed_ms(start, end)
    assert 0.0 <= elapsed < 10_000  # sim times the host clock; a GPU its own: both non-negative
    backwards = gpu.call("event_elapsed_time", gpu.args("event_elapsed_time", start=end, end=start))
    assert backwards.status == 0 and backwards.result.milliseconds <= 0  # type: ignore[union-attr]


def test_events_without_timing_or_never_recorded(gpu: GuestClient) -> None:
    untimed, timed, never = gpu.event_create(CU_EVENT_DISABLE_TIMING), gpu.event_create(), gpu.event_create()
    gpu.event_record(untimed)
    gpu.event_record(timed)
    gpu.event_synchronize(timed)
    assert status_of(gpu, "event_elapsed_time", gpu.args("event_elapsed_time", start=untimed, end=timed)) == \
        CUresult.CUDA_ERROR_INVALID_HANDLE
    assert status_of(gpu, "event_elapsed_time", gpu.args("event_elapsed_time", start=never, end=timed)) == \
        CUresult.CUDA_ERROR_INVALID_HANDLE
    assert status_of(gpu, "event_query", gpu.args("event_query", event=never)) == 0  # as CUDA: never recorded


def test_handles_that_were_never_issued_or_are_gone(gpu: GuestClient) -> None:
    stream = gpu.stream_create()
    gpu.stream_destroy(stream)
    for call, args in (("stream_synchronize", {"stream": stream}), ("stream_query", {"stream": 4242}),
                       ("event_synchronize", {"event": 4242}), ("event_destroy", {"event": 4242}),
                       ("stream_destroy", {"stream": stream})):
        assert status_of(gpu, call, gpu.args(call, **args)) == CUresult.CUDA_ERROR_INVALID_HANDLE, call
    event = gpu.event_create()
    assert status_of(gpu, "event_record", gpu.args("event_record", event=event, stream=4242)) == \
        CUresult.CUDA_ERROR_INVALID_HANDLE
