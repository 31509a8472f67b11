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

*Guest nodes.* Host functions and copies of the guest's host memory captured into a graph are marked
by empty nodes and the graph is launched in phases (:mod:`executor._cuda_guest_nodes`).

*Streams and cuBLAS.* Destroying a stream that a cuBLAS handle launches into moves that handle to the
NULL stream first, so a later GEMM never names a dead stream.
"""

from __future__ import annotations

from protocol import CUresult, StreamCaptureStatus
from protocol.models import (
    BeginCaptureArgs,
    CapturedResult,
    CaptureInfoResult,
    CountResult,
    EventArgs,
    EventCreateResult,
    EventElapsedArgs,
    EventElapsedResult,
    EventRecordArgs,
    EventRecordFlagsArgs,
    FlagsArgs,
    GraphArgs,
    GraphExecArgs,
    GraphExecNodeArgs,
    GraphExecResult,
    GraphExecUpdateArgs,
    GraphExecUpdateResult,
    GraphInstantiateArgs,
    GraphLaunchArgs,
    GraphLaunchPhaseArgs,
    GraphResult,
    GuestNodeArgs,
    GuestNodeResult,
    NoResult,
    StreamArgs,
    StreamCreateResult,
    StreamWaitEventArgs,
)

from ._base import CallIO
from ._cuda_base import CudaBase
from ._cuda_driver import Graph, GraphExec
from ._cuda_guest_nodes import MAX_PHASE_NODES, GuestMarks, PhasedExec, split_phases
from ._errors import CudaError

__all__ = ["StreamCalls"]


class StreamCalls(CudaBase):
    """The stream, event, capture and graph calls (see the module's theory of operation)."""

    _guest: GuestMarks

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
        marks = self._guest.captures.pop(capture_id, None) if status else None
        graph = self._drv.stream_end_capture(stream)
        reason = self._invalidated.pop(capture_id, None)
        if reason is not None:
            self._drv.graph_destroy(graph)
            raise CudaError(CUresult.CUDA_ERROR_STREAM_CAPTURE_INVALIDATED,
                            f"capture {capture_id} was invalidated ({reason})")
        handle = self._graphs.add(graph)
        if marks:
            self._guest.graphs[handle] = marks
        return GraphResult(graph=handle)

    def stream_get_capture_info(self, args: StreamArgs, io: CallIO) -> CaptureInfoResult:
        code, capture_id = self._drv.stream_get_capture_info(self._stream(args.stream))
        status = StreamCaptureStatus(code)
        if status == StreamCaptureStatus.CU_STREAM_CAPTURE_STATUS_ACTIVE and capture_id in self._invalidated:
            status = StreamCaptureStatus.CU_STREAM_CAPTURE_STATUS_INVALIDATED
        return CaptureInfoResult(status=status, capture_id=capture_id)

    def graph_instantiate(self, args: GraphInstantiateArgs, io: CallIO) -> GraphExecResult:
        graph = self._graphs.get(args.graph)
        marks = self._guest.graphs.get(args.graph)
        if marks:
            return self._instantiate_phases(graph, marks, args.flags)
        graph_exec = self._drv.graph_instantiate(graph, args.flags)
        return GraphExecResult(graph_exec=self._graph_execs.add(graph_exec))

    def _instantiate_phases(self, graph: Graph, marks: dict[int, int], flags: int) -> GraphExecResult:
        """One driver exec per phase, each a clone of the graph with every other node removed."""
        nodes = {int(node): node for node in self._drv.graph_nodes(graph)}
        if (len(marks) + 1) * len(nodes) > MAX_PHASE_NODES:
            raise CudaError(CUresult.CUDA_ERROR_NOT_SUPPORTED,
                            f"cuGraphInstantiate: a graph of {len(nodes)} nodes with {len(marks)} guest "
                            f"nodes (host functions, host memory copies) runs in {len(marks) + 1} phases, "
                            f"each instantiated from the whole graph: at most {MAX_PHASE_NODES} in all")
        deps = {address: [int(dep) for dep in self._drv.graph_node_dependencies(node)]
                for address, node in nodes.items()}
        try:
            phases, tags = split_phases(list(nodes), deps, marks)
        except ValueError as exc:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE, f"cuGraphInstantiate: {exc}") from exc
        execs: list[GraphExec] = []
        try:
            for phase in phases:
                clone = self._drv.graph_clone(graph)
                try:
                    keep = set(phase)
                    for address, node in nodes.items():
                        if address not in keep:
                            self._drv.graph_destroy_node(self._drv.graph_node_find_in_clone(node, clone))
                    execs.append(self._drv.graph_instantiate(clone, flags))
                finally:
                    self._drv.graph_destroy(clone)
        except CudaError:
            for made in execs:
                self._drv.graph_exec_destroy(made)
            raise
        handles = [self._graph_execs.add(made) for made in execs]
        self._guest.execs[handles[0]] = PhasedExec(list(handles[1:]), tags)
        return GraphExecResult(graph_exec=handles[0])

    def graph_launch_phase(self, args: GraphLaunchPhaseArgs, io: CallIO) -> NoResult:
        phased = self._guest.execs.get(args.graph_exec)
        count = len(phased.tags) if phased is not None else 0
        if args.phase > count:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"graph exec {args.graph_exec} runs in {count + 1} phase(s); there is no phase "
                            f"{args.phase}")
        handle = args.graph_exec if phased is None or not args.phase else phased.rest[args.phase - 1]
        graph_exec, stream = self._graph_execs.get(handle), self._stream(args.stream)
        self._drv.graph_launch(graph_exec, stream)
        if io.blocking:
            self._sync(stream, "cuGraphLaunch")
        return NoResult()

    def stream_add_guest_node(self, args: GuestNodeArgs, io: CallIO) -> CapturedResult:
        """An empty node marks the guest node; the stream's later work depends on it alone."""
        stream = self._stream(args.stream)
        status, capture_id = self._drv.stream_get_capture_info(stream)
        if status == StreamCaptureStatus.CU_STREAM_CAPTURE_STATUS_NONE:
            return CapturedResult(captured=0)
        reason = self._invalidated.get(capture_id)
        if status != StreamCaptureStatus.CU_STREAM_CAPTURE_STATUS_ACTIVE or reason is not None:
            raise CudaError(CUresult.CUDA_ERROR_STREAM_CAPTURE_INVALIDATED,
                            f"guest node: capture {capture_id} was invalidated ({reason or 'by the driver'})")
        graph, deps = self._drv.stream_capture_frontier(stream)
        mark = self._drv.graph_add_empty_node(graph, deps)
        self._drv.stream_set_capture_dependencies(stream, [mark])
        self._guest.captures.setdefault(capture_id, {})[int(mark)] = args.tag
        return CapturedResult(captured=1)

    def graph_exec_guest_node(self, args: GraphExecNodeArgs, io: CallIO) -> GuestNodeResult:
        self._graph_execs.get(args.graph_exec)
        phased = self._guest.execs.get(args.graph_exec)
        tags = phased.tags if phased is not None else []
        return GuestNodeResult(count=len(tags), tag=tags[args.index] if args.index < len(tags) else 0)

    def graph_node_count(self, args: GraphArgs, io: CallIO) -> CountResult:
        return CountResult(count=len(self._drv.graph_nodes(self._graphs.get(args.graph))))

    def graph_exec_update(self, args: GraphExecUpdateArgs, io: CallIO) -> GraphExecUpdateResult:
        """The driver's update; an exec run in phases (guest nodes) is not updated (NOT_SUPPORTED, 6)."""
        graph_exec, graph = self._graph_execs.get(args.graph_exec), self._graphs.get(args.graph)
        if args.graph_exec in self._guest.execs or args.graph in self._guest.graphs:
            return GraphExecUpdateResult(result=6)
        return GraphExecUpdateResult(result=self._drv.graph_exec_update(graph_exec, graph))

    def graph_clone(self, args: GraphArgs, io: CallIO) -> GraphResult:
        """The driver's clone, with the marks of guest nodes found in it."""
        graph = self._graphs.get(args.graph)
        clone = self._drv.graph_clone(graph)
        try:
            marks = self._guest.graphs.get(args.graph, {})
            cloned = {int(self._drv.graph_node_find_in_clone(node, clone)): marks[int(node)]
                      for node in (self._drv.graph_nodes(graph) if marks else []) if int(node) in marks}
        except CudaError:
            self._drv.graph_destroy(clone)
            raise
        handle = self._graphs.add(clone)
        if cloned:
            self._guest.graphs[handle] = cloned
        return GraphResult(graph=handle)

    def graph_launch(self, args: GraphLaunchArgs, io: CallIO) -> NoResult:
        if args.graph_exec in self._guest.execs:
            raise CudaError(CUresult.CUDA_ERROR_NOT_SUPPORTED,
                            f"cuGraphLaunch: graph exec {args.graph_exec} holds guest nodes (host functions, "
                            "host memory copies): it is launched phase by phase (graph_launch_phase)")
        graph_exec, stream = self._graph_execs.get(args.graph_exec), self._stream(args.stream)
        self._drv.graph_launch(graph_exec, stream)
        if io.blocking:
            self._sync(stream, "cuGraphLaunch")
        return NoResult()

    def graph_exec_destroy(self, args: GraphExecArgs, io: CallIO) -> NoResult:
        self._drv.graph_exec_destroy(self._graph_execs.get(args.graph_exec))
        self._graph_execs.pop(args.graph_exec)
        phased = self._guest.execs.pop(args.graph_exec, None)
        for handle in phased.rest if phased is not None else []:
            if handle in self._graph_execs:
                self._drv.graph_exec_destroy(self._graph_execs.pop(handle))
        return NoResult()

    def graph_destroy(self, args: GraphArgs, io: CallIO) -> NoResult:
        self._drv.graph_destroy(self._graphs.get(args.graph))
        self._graphs.pop(args.graph)
        self._guest.graphs.pop(args.graph, None)
        return NoResult()
