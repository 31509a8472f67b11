"""Streams, events, stream capture and graphs of the ``sim`` backend.

Theory of operation
-------------------
The simulator runs every piece of stream-ordered work when it is submitted, so each stream is always
idle and every ordering CUDA promises (in-stream order, ``cuStreamWaitEvent``) holds trivially.

Capture changes that: work submitted to a capturing stream becomes a :class:`Node` of the
:class:`Capture` instead of running. Each node records the nodes it depends on (the capturing stream's
``frontier`` when it was added), which is enough to model CUDA's fork and join across streams:

* ``cuEventRecord`` on a capturing stream is not a node; it marks the event *captured* and remembers the
  stream's frontier;
* ``cuStreamWaitEvent(s, e)`` with a captured ``e`` makes ``s`` join that capture (its frontier becomes
  the event's) or, when ``s`` already captures into it, merges the event's frontier into ``s``'s;
* ``cuStreamEndCapture`` on the origin stream succeeds only when every node is an ancestor of the
  origin's frontier (every forked stream was joined back), else ``CUDA_ERROR_STREAM_CAPTURE_UNJOINED``.

A :class:`Graph` keeps the nodes in the order they were captured — a topological order, since a node's
dependencies were all captured before it — and a :class:`GraphExec` replays them in that order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from protocol import CUresult, StreamCaptureMode

from ._errors import CudaError

__all__ = ["Capture", "EventState", "Graph", "GraphExec", "Node", "StreamState"]

Op = Callable[[], None]


@dataclass(frozen=True, slots=True)
class Node:
    op: Op
    what: str
    deps: frozenset[int]


@dataclass(eq=False, slots=True)
class StreamState:
    handle: int  # 0: the legacy NULL stream
    flags: int
    capture: Capture | None = None
    frontier: frozenset[int] = frozenset()

    @property
    def blocking(self) -> bool:
        """Whether the stream synchronizes with the legacy NULL stream (not CU_STREAM_NON_BLOCKING)."""
        return not self.flags & 1


@dataclass(eq=False, slots=True)
class EventState:
    flags: int
    recorded: bool = False  # recorded outside capture (and so, here, complete)
    time_ns: int = 0
    capture: Capture | None = None  # last recorded into this capture
    frontier: frozenset[int] = frozenset()


@dataclass(eq=False, slots=True)
class Capture:
    capture_id: int
    mode: StreamCaptureMode
    origin: StreamState
    streams: list[StreamState] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)
    invalid_reason: str | None = None

    def record(self, stream: StreamState, op: Op, what: str) -> None:
        if self.invalid_reason is not None:
            raise CudaError(CUresult.CUDA_ERROR_STREAM_CAPTURE_INVALIDATED,
                            f"{what}: capture {self.capture_id} was invalidated ({self.invalid_reason})")
        index = len(self.nodes)
        self.nodes.append(Node(op, what, stream.frontier))
        stream.frontier = frozenset((index,))

    def join(self, stream: StreamState, frontier: frozenset[int]) -> None:
        if stream.capture is None:
            stream.capture = self
            stream.frontier = frontier
            self.streams.append(stream)
        else:
            stream.frontier = stream.frontier | frontier

    def invalidate(self, reason: str) -> None:
        if self.invalid_reason is None:
            self.invalid_reason = reason

    def unjoined(self) -> list[int]:
        """Nodes that the origin stream's frontier does not depend on (work of unjoined forks)."""
        reached: set[int] = set()
        todo = list(self.origin.frontier)
        while todo:
            index = todo.pop()
            if index not in reached:
                reached.add(index)
                todo.extend(self.nodes[index].deps)
        return [i for i in range(len(self.nodes)) if i not in reached]

    def finish(self) -> None:
        """End the capture: its streams capture no more."""
        for stream in self.streams:
            stream.capture = None
            stream.frontier = frozenset()


@dataclass(frozen=True, slots=True)
class Graph:
    nodes: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class GraphExec:
    nodes: tuple[Node, ...]

    def replay(self) -> None:
        for index, node in enumerate(self.nodes):
            try:
                node.op()
            except CudaError as exc:
                status = exc.status if isinstance(exc.status, CUresult) else CUresult.CUDA_ERROR_LAUNCH_FAILED
                raise CudaError(status, f"graph node {index} ({node.what}) failed: {exc.status.name}: "
                                f"{exc.message}", sticky=exc.sticky) from exc
