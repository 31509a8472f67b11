"""Streams, events, stream capture and graphs of the ``cuda`` backend.

Theory of operation
-------------------
Streams, events, graphs and graph execs are the driver's own objects behind per-VM ids; stream 0 is the
context's legacy NULL stream, which cannot be destroyed or captured.

*Blocking.* ``CallIO.blocking`` True (an async-capable call submitted without ``ASYNC``) makes the
handler synchronize the call's stream before it returns; False only enqueues the work.

*Capture.* Capture rules are the driver's own (unsafe calls in ``GLOBAL`` mode, waits on a capturing
stream, the legacy stream's implicit synchronization). One rule is ours, as in ``sim``: a host copy
cannot be captured across the remoting boundary (the guest's payload is not ours to read when the
graph is launched later), so it fails with ``CUDA_ERROR_NOT_SUPPORTED`` and the capture is marked
invalidated (:meth:`CudaBase._host_copy_allowed`): ``cuStreamGetCaptureInfo`` reports it, and
``cuStreamEndCapture`` ends it and fails with ``CUDA_ERROR_STREAM_CAPTURE_INVALIDATED``.

*Streams and cuBLAS.* Destroying a stream that a cuBLAS handle launches into moves that handle to the
NULL stream first, so a later GEMM never names a dead stream.
"""

from __future__ import annotations

from protocol import CUresult, StreamCaptureStatus
from protocol.models import (
    BeginCaptureArgs,
    CaptureInfoResult,
    EventArgs,
    EventCreateResult,
    EventElapsedArgs,
    EventElapsedResult,
    EventRecordArgs,
    EventRecordFlagsArgs,
    FlagsArgs,
    GraphArgs,
    GraphExecArgs,
    GraphExecResult,
    GraphInstantiateArgs,
    GraphLaunchArgs,
    GraphResult,
    NoResult,
    StreamArgs,
    StreamCreateResult,
    StreamWaitEventArgs,
)

from ._base import CallIO
from ._cuda_base import CudaBase
from ._errors import CudaError

__all__ = ["StreamCalls"]


class StreamCalls(CudaBase):
    """The stream, event, capture and graph calls (see the module's theory of operation)."""

    # -- streams and events -----------------------------------------------------------------------

    def stream_create(self, args: FlagsArgs, io: CallIO) -> StreamCreateResult:
        if args.flags & ~0x1:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"cuStreamCreate flags {args.flags:#x}: only CU_STREAM_NON_BLOCKING (1) is "
                            "defined")
        stream = self._drv.stream_create(args.flags)
        return StreamCreateResult(stream=self._streams.add(stream))

    def stream_destroy(self, args: StreamArgs, io: CallIO) -> NoResult:
        if args.stream == 0:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_HANDLE, "the NULL stream cannot be destroyed")
        stream = self._streams.get(args.stream)
        for h, blas in self._blas.items():
            if blas.stream == args.stream:  # cuBLAS would otherwise launch into a dead stream
                self._cublas().set_stream(blas.handle, 0)
                blas.stream = 0
                self.log.info("cuBLAS handle moved to the NULL stream", cublas=h, stream=args.stream)
        self._drv.stream_destroy(stream)
        self._streams.pop(args.stream)
        return NoResult()

    def stream_synchronize(self, args: StreamArgs, io: CallIO) -> NoResult:
        self._drv.stream_synchronize(self._stream(args.stream))
        return NoResult()

    def stream_query(self, args: StreamArgs, io: CallIO) -> NoResult:
        self._drv.stream_query(self._stream(args.stream))
        return NoResult()

    def stream_wait_event(self, args: StreamWaitEventArgs, io: CallIO) -> NoResult:
        stream, event = self._stream(args.stream), self._events.get(args.event)
        self._drv.stream_wait_event(stream, event, args.flags)
        if io.blocking:
            self._sync(stream, "cuStreamWaitEvent")
        return NoResult()

    def event_create(self, args: FlagsArgs, io: CallIO) -> EventCreateResult:
        event = self._drv.event_create(args.flags)
        return EventCreateResult(event=self._events.add(event))

    def event_destroy(self, args: EventArgs, io: CallIO) -> NoResult:
        self._drv.event_destroy(self._events.get(args.event))
        self._events.pop(args.event)
        return NoResult()

    def event_record(self, args: EventRecordArgs, io: CallIO) -> NoResult:
        event, stream = self._events.get(args.event), self._stream(args.stream)
        self._drv.event_record(event, stream)
        if io.blocking:
            self._sync(stream, "cuEventRecord")
        return NoResult()

    def event_record_with_flags(self, args: EventRecordFlagsArgs, io: CallIO) -> NoResult:
        """CU_EVENT_RECORD_EXTERNAL (1) on a capturing stream: an event record node (the driver's)."""
        if args.flags & ~1:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"cuEventRecordWithFlags flags {args.flags:#x}")
        event, stream = self._events.get(args.event), self._stream(args.stream)
        self._drv.event_record_with_flags(event, stream, args.flags)
        if io.blocking:
            self._sync(stream, "cuEventRecordWithFlags")
        return NoResult()

    def event_synchronize(self, args: EventArgs, io: CallIO) -> NoResult:
        self._drv.event_synchronize(self._events.get(args.event))
        return NoResult()

    def event_query(self, args: EventArgs, io: CallIO) -> NoResult:
        self._drv.event_query(self._events.get(args.event))
        return NoResult()

    def event_elapsed_time(self, args: EventElapsedArgs, io: CallIO) -> EventElapsedResult:
        start, end = self._events.get(args.start), self._events.get(args.end)
        return EventElapsedResult(milliseconds=self._drv.event_elapsed_time(start, end))

    # -- stream capture and graphs ----------------------------------------------------------------

    def stream_begin_capture(self, args: BeginCaptureArgs, io: CallIO) -> NoResult:
        stream = self._stream(args.stream)
        if args.stream == 0:
            raise CudaError(CUresult.CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED,
                            "the legacy NULL stream cannot be captured")
        self._drv.stream_begin_capture(stream, int(args.mode))
        return NoResult()

    def stream_end_capture(self, args: StreamArgs, io: CallIO) -> GraphResult:
        stream = self._stream(args.stream)
        status, capture_id = self._drv.stream_get_capture_info(stream)
        if not status:
            capture_id = 0
        graph = self._drv.stream_end_capture(stream)
        reason = self._invalidated.pop(capture_id, None)
        if reason is not None:
            self._drv.graph_destroy(graph)
            raise CudaError(CUresult.CUDA_ERROR_STREAM_CAPTURE_INVALIDATED,
                            f"capture {capture_id} was invalidated ({reason})")
        return GraphResult(graph=self._graphs.add(graph))

    def stream_get_capture_info(self, args: StreamArgs, io: CallIO) -> CaptureInfoResult:
        code, capture_id = self._drv.stream_get_capture_info(self._stream(args.stream))
        status = StreamCaptureStatus(code)
        if status == StreamCaptureStatus.CU_STREAM_CAPTURE_STATUS_ACTIVE and capture_id in self._invalidated:
            status = StreamCaptureStatus.CU_STREAM_CAPTURE_STATUS_INVALIDATED
        return CaptureInfoResult(status=status, capture_id=capture_id)

    def graph_instantiate(self, args: GraphInstantiateArgs, io: CallIO) -> GraphExecResult:
        graph = self._graphs.get(args.graph)
        graph_exec = self._drv.graph_instantiate(graph, args.flags)
        return GraphExecResult(graph_exec=self._graph_execs.add(graph_exec))

    def graph_launch(self, args: GraphLaunchArgs, io: CallIO) -> NoResult:
        graph_exec, stream = self._graph_execs.get(args.graph_exec), self._stream(args.stream)
        self._drv.graph_launch(graph_exec, stream)
        if io.blocking:
            self._sync(stream, "cuGraphLaunch")
        return NoResult()

    def graph_exec_destroy(self, args: GraphExecArgs, io: CallIO) -> NoResult:
        self._drv.graph_exec_destroy(self._graph_execs.get(args.graph_exec))
        self._graph_execs.pop(args.graph_exec)
        return NoResult()

    def graph_destroy(self, args: GraphArgs, io: CallIO) -> NoResult:
        self._drv.graph_destroy(self._graphs.get(args.graph))
        self._graphs.pop(args.graph)
        return NoResult()
