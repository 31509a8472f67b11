"""The sim backend's streams and events: ordering, flags, timing with an injected clock."""

from __future__ import annotations

from typing import Any

import pytest

from executor import CallIO, CudaError
from executor._sim import SimExecutor
from protocol import CALLS_BY_NAME, CUresult

DISABLE_TIMING = 2


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000_000

    def __call__(self) -> int:
        return self.now


class Gpu:
    def __init__(self, **kwargs: Any) -> None:
        self.ex = SimExecutor(**kwargs)
        self.out = b""

    def __call__(self, name: str, *, inp: bytes = b"", out_cap: int = 0, blocking: bool = True,
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

    def event(self, flags: int = 0) -> int:
        return int(self("event_create", flags=flags).event)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def gpu(clock: FakeClock) -> Gpu:
    return Gpu(clock=clock)


def test_streams_are_created_used_and_destroyed(gpu: Gpu) -> None:
    s1, s2 = gpu.stream(), gpu.stream(1)
    assert 0 not in (s1, s2) and s1 != s2
    ptr = int(gpu("mem_alloc", bytesize=16).dptr)
    gpu("memset_d8", dst=ptr, count=16, value=7, stream=s1, blocking=False)
    gpu("memcpy_dtoh", src=ptr, count=4, stream=s2, out_cap=4, blocking=False)
    assert gpu.out == b"\x07" * 4  # work runs in submission order, across streams too
    for stream in (s1, s2, 0):
        gpu("stream_query", stream=stream)
        gpu("stream_synchronize", stream=stream)
    gpu("stream_destroy", stream=s1)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_HANDLE, "stream_destroy", stream=s1)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_HANDLE, "stream_synchronize", stream=s1)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_HANDLE, "memset_d8", dst=ptr, count=1, value=0, stream=s1)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_HANDLE, "stream_destroy", stream=0)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "stream_create", flags=2)


def test_elapsed_time_is_the_clock_difference_in_milliseconds(gpu: Gpu, clock: FakeClock) -> None:
    stream = gpu.stream()
    start, end = gpu.event(), gpu.event()
    gpu("event_record", event=start, stream=stream)
    clock.now += 2_500_000
    gpu("event_record", event=end, stream=0)
    assert gpu("event_elapsed_time", start=start, end=end).milliseconds == pytest.approx(2.5)
    assert gpu("event_elapsed_time", start=end, end=start).milliseconds == pytest.approx(-2.5)
    clock.now += 1_000_000
    gpu("event_record", event=start, stream=stream)  # re-recording moves the timestamp
    assert gpu("event_elapsed_time", start=end, end=start).milliseconds == pytest.approx(1.0)
    gpu("event_synchronize", event=end)
    gpu("event_query", event=end)


def test_real_clock_gives_positive_elapsed_time() -> None:
    gpu = Gpu()
    start, end = gpu.event(), gpu.event()
    gpu("event_record", event=start, stream=0)
    ptr = int(gpu("mem_alloc", bytesize=1 << 20).dptr)
    gpu("memset_d8", dst=ptr, count=1 << 20, value=1, stream=0)
    gpu("event_record", event=end, stream=0)
    assert gpu("event_elapsed_time", start=start, end=end).milliseconds > 0.0


def test_unrecorded_events_are_complete_but_cannot_be_timed(gpu: Gpu) -> None:
    start, end = gpu.event(), gpu.event()
    gpu("event_query", event=start)
    gpu("event_synchronize", event=start)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_HANDLE, "event_elapsed_time", start=start, end=end)
    gpu("event_record", event=start, stream=0)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_HANDLE, "event_elapsed_time", start=start, end=end)


def test_events_without_timing_cannot_be_timed(gpu: Gpu) -> None:
    timed, untimed = gpu.event(), gpu.event(DISABLE_TIMING)
    gpu("event_record", event=timed, stream=0)
    gpu("event_record", event=untimed, stream=0)
    gpu("event_synchronize", event=untimed)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_HANDLE, "event_elapsed_time", start=timed, end=untimed)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_HANDLE, "event_elapsed_time", start=untimed, end=timed)


def test_event_flags_are_checked(gpu: Gpu) -> None:
    gpu.event(1)
    gpu.event(2 | 4)  # interprocess needs timing disabled
    gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "event_create", flags=4)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "event_create", flags=8)


def test_stream_wait_event_orders_work_and_checks_its_arguments(gpu: Gpu) -> None:
    s1, s2 = gpu.stream(), gpu.stream()
    done = gpu.event()
    ptr = int(gpu("mem_alloc", bytesize=8).dptr)
    gpu("memset_d8", dst=ptr, count=8, value=9, stream=s1, blocking=False)
    gpu("event_record", event=done, stream=s1)
    gpu("stream_wait_event", stream=s2, event=done, flags=0)
    gpu("memcpy_dtoh", src=ptr, count=8, stream=s2, out_cap=8, blocking=False)
    assert gpu.out == b"\x09" * 8
    gpu("stream_wait_event", stream=0, event=gpu.event(), flags=0)  # never recorded: nothing to wait for
    gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "stream_wait_event", stream=s2, event=done, flags=2)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_HANDLE, "stream_wait_event", stream=s2, event=99, flags=0)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_HANDLE, "stream_wait_event", stream=99, event=done, flags=0)


def test_destroyed_events_are_gone(gpu: Gpu) -> None:
    event = gpu.event()
    gpu("event_destroy", event=event)
    for name, args in [("event_record", {"event": event, "stream": 0}),
                       ("event_query", {"event": event}),
                       ("event_synchronize", {"event": event}),
                       ("event_destroy", {"event": event}),
                       ("event_elapsed_time", {"start": event, "end": event})]:
        gpu.fails(CUresult.CUDA_ERROR_INVALID_HANDLE, name, **args)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_HANDLE, "event_record", event=gpu.event(), stream=12345)


def test_enqueue_runs_work_now_on_an_idle_stream(gpu: Gpu) -> None:
    ran: list[str] = []
    stream = gpu.stream()
    gpu.ex.enqueue(stream, lambda: ran.append("a"), "test op")
    gpu.ex.enqueue(0, lambda: ran.append("b"), "test op")
    assert ran == ["a", "b"]
    with pytest.raises(CudaError) as caught:
        gpu.ex.enqueue(stream + 1, lambda: ran.append("c"), "test op")
    assert caught.value.status == CUresult.CUDA_ERROR_INVALID_HANDLE
    assert ran == ["a", "b"]
