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

*Child graphs.* A graph launched on a capturing stream becomes one node that holds the launched
graph's body (:class:`GraphBody`, shared, not copied), as CUDA makes it a child graph node. Each body
knows its nesting ``depth`` and how many nodes a launch of it walks once every child is expanded
(``expanded``: the leaves and the child nodes, so that children of empty graphs count too), so a
guest cannot build work that grows with each level — a chain of graphs each launching the one
before, or one that doubles at every level — past :data:`MAX_GRAPH_DEPTH` levels or
:data:`MAX_EXPANDED_NODES` nodes: the capture refuses the launch that would (and is
invalidated, since the graph would miss it). Replay walks the bodies with an explicit stack, never
recursion, so depth costs no Python frames.

*Guest nodes.* A host function (``cuLaunchHostFunc``) or a copy of the guest's host memory captured
into a graph is work only the guest can do: the host cannot call into the guest, nor read its memory
in the middle of a launch. Such a node (:attr:`Node.guest`, a tag the guest gives meaning to) splits
the graph's leaf order into phases: an exec with ``n`` guest nodes runs in ``n + 1`` phases that the
guest launches one by one (:meth:`GraphExec.replay` with ``phase``), performing guest node ``i`` itself
between phases ``i`` and ``i + 1``. The leaf order is a topological order, so running the phases one
after another keeps every dependency (concurrent branches are serialized, as replay always does).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from protocol import CUresult, StreamCaptureMode

from ._errors import CudaError

__all__ = ["MAX_EXPANDED_NODES", "MAX_GRAPH_DEPTH", "Capture", "EventState", "Graph", "GraphBody",
           "GraphExec", "Node", "StreamState", "update_mismatch"]

Op = Callable[[], None]

#: how deeply graphs may nest (a graph launched while capturing becomes a child graph node); CUDA's
#: own nesting limit for device-side launches is 24, and no real program captured here nests past 2
MAX_GRAPH_DEPTH = 24
#: the leaf nodes one launch of a graph may run once its child graphs are expanded: the same bound
#: as the graph nodes a VM may hold (``_sim.MAX_GRAPH_NODES``), so that one call's work is bounded
MAX_EXPANDED_NODES = 1 << 18


@dataclass(frozen=True, slots=True)
class Node:
    """One piece of captured work: ``op`` runs it; a child graph node has ``child`` instead, a guest
    node (see the module's theory of operation) ``guest``, its tag."""

    op: Op | None
    what: str
    deps: frozenset[int]
    child: GraphBody | None = None
    guest: int | None = None


@dataclass(frozen=True, slots=True)
class GraphBody:
    """A graph's nodes in capture order, its nesting depth (1: no child graphs), the nodes a launch
    walks with every child expanded (leaves and child nodes), and the guest nodes among them."""

    nodes: tuple[Node, ...]
    depth: int = 1
    expanded: int = 0
    host_bytes: int = 0  # charged to the VM's host budget for these nodes
    guest_nodes: int = 0


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
    depth: int = 1  # the graph's nesting depth so far
    expanded: int = 0  # leaf nodes so far, child graphs expanded
    host_bytes: int = 0  # charged to the VM's host budget for the nodes so far
    guest_nodes: int = 0  # guest nodes so far, child graphs expanded

    def record(self, stream: StreamState, op: Op | None, what: str, child: GraphBody | None = None,
               guest: int | None = None) -> None:
        if self.invalid_reason is not None:
            raise CudaError(CUresult.CUDA_ERROR_STREAM_CAPTURE_INVALIDATED,
                            f"{what}: capture {self.capture_id} was invalidated ({self.invalid_reason})")
        index = len(self.nodes)
        self.nodes.append(Node(op, what, stream.frontier, child, guest))
        stream.frontier = frozenset((index,))
        if child is None:
            self.expanded += 1
            self.guest_nodes += guest is not None
        else:
            self.expanded += child.expanded + 1  # the child node itself is walked too
            self.guest_nodes += child.guest_nodes
            self.depth = max(self.depth, child.depth + 1)

    def check_child(self, child: GraphBody, what: str) -> None:
        """Refuse a child graph that would nest too deeply or expand past the bound (the caller
        invalidates the capture: the graph would miss the launch)."""
        if child.depth + 1 > MAX_GRAPH_DEPTH:
            raise CudaError(CUresult.CUDA_ERROR_NOT_SUPPORTED,
                            f"{what}: the launched graph nests {child.depth} levels deep; as a child of "
                            f"capture {self.capture_id} it would nest {child.depth + 1}, past the limit "
                            f"of {MAX_GRAPH_DEPTH}")
        if self.expanded + child.expanded + 1 > MAX_EXPANDED_NODES:
            raise CudaError(CUresult.CUDA_ERROR_OUT_OF_MEMORY,
                            f"{what}: the launched graph runs {child.expanded} nodes with its child "
                            f"graphs expanded; capture {self.capture_id} would run "
                            f"{self.expanded + child.expanded + 1}, past the limit of {MAX_EXPANDED_NODES} "
                            "per launch")

    def body(self) -> GraphBody:
        return GraphBody(tuple(self.nodes), self.depth, self.expanded, self.host_bytes, self.guest_nodes)

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
    body: GraphBody

    @property
    def nodes(self) -> tuple[Node, ...]:
        return self.body.nodes


@dataclass(eq=False, slots=True)
class GraphExec:
    body: GraphBody  # replaced by a successful cuGraphExecUpdate (which sets _tags back to None)
    _tags: list[int] | None = None  # guest_tags(), walked once

    @property
    def nodes(self) -> tuple[Node, ...]:
        return self.body.nodes

    def take(self, body: GraphBody) -> None:
        """A successful cuGraphExecUpdate: the exec runs ``body`` from now on."""
        self.body, self._tags = body, None

    def guest_tags(self) -> list[int]:
        """The guest nodes' tags in launch order (child graphs expanded), found once per body."""
        if self._tags is None:
            self._tags = self._walk_tags()
        return self._tags

    def _walk_tags(self) -> list[int]:
        tags: list[int] = []
        stack: list[tuple[tuple[Node, ...], int]] = [(self.body.nodes, 0)]
        while stack and len(tags) < self.body.guest_nodes:
            nodes, index = stack.pop()
            if index == len(nodes):
                continue
            stack.append((nodes, index + 1))
            node = nodes[index]
            if node.child is not None and node.child.guest_nodes:
                stack.append((node.child.nodes, 0))
            elif node.guest is not None:
                tags.append(node.guest)
        return tags

    def leaves(self, phase: int = 0) -> Iterator[tuple[str, Node]]:
        """The leaf nodes of ``phase`` (those after guest node ``phase - 1`` and before guest node
        ``phase``; without guest nodes, all of them) in order, with their paths (``2.0``: node 0 of
        the child graph that is node 2): iteratively, an explicit stack of (nodes, next index, path)
        instead of recursion. Children wholly before the phase are skipped by their guest node count."""
        skip = phase  # guest nodes still to pass before the phase starts
        stack: list[tuple[tuple[Node, ...], int, str]] = [(self.body.nodes, 0, "")]
        while stack:
            nodes, index, path = stack.pop()
            if index == len(nodes):
                continue
            stack.append((nodes, index + 1, path))
            node = nodes[index]
            if node.child is not None:
                if node.child.guest_nodes < skip:
                    skip -= node.child.guest_nodes  # the whole child runs in earlier phases
                else:
                    stack.append((node.child.nodes, 0, f"{path}{index}."))
                continue
            if node.guest is not None:
                if not skip:
                    return  # the phase ends here: the guest performs this node
                skip -= 1
            elif not skip:
                yield f"{path}{index}", node

    def phase_body(self, phase: int) -> GraphBody:
        """``phase`` alone, as a body of its leaves (what a phase launched into a capture becomes)."""
        nodes = tuple(node for _, node in self.leaves(phase))
        return GraphBody(nodes, 1, len(nodes))

    def replay(self, phase: int = 0) -> None:
        """Run the leaf nodes of ``phase`` (:meth:`leaves`); a failing node is named by its path."""
        for path, node in self.leaves(phase):
            assert node.op is not None
            try:
                node.op()
            except CudaError as exc:
                status = exc.status if isinstance(exc.status, CUresult) else CUresult.CUDA_ERROR_LAUNCH_FAILED
                raise CudaError(status, f"graph node {path} ({node.what}) failed: {exc.status.name}: "
                                f"{exc.message}", sticky=exc.sticky) from exc


#: CUgraphExecUpdateResult values (cuda.h)
UPDATE_TOPOLOGY_CHANGED, UPDATE_NODE_TYPE_CHANGED, UPDATE_PARAMETERS_CHANGED = 2, 3, 5


def update_mismatch(old: GraphBody, new: GraphBody) -> int:
    """0 when an exec of ``old`` can take ``new``'s parameters (cuGraphExecUpdate), else the
    ``CUgraphExecUpdateResult`` saying why not: the same nodes in the same order with the same
    dependencies (child graphs alike), each of the same kind — a kernel for a kernel, a memset of the
    same element size, a copy in the same direction, a guest node for a guest node."""
    pairs = [(old, new)]
    while pairs:
        a, b = pairs.pop()
        if len(a.nodes) != len(b.nodes):
            return UPDATE_TOPOLOGY_CHANGED
        for x, y in zip(a.nodes, b.nodes, strict=True):
            if x.deps != y.deps:
                return UPDATE_TOPOLOGY_CHANGED
            if (x.child is None) != (y.child is None) or (x.guest is None) != (y.guest is None):
                return UPDATE_NODE_TYPE_CHANGED
            if x.child is not None and y.child is not None:
                pairs.append((x.child, y.child))
            elif x.what != y.what:
                same_family = x.what[:8] == y.what[:8]  # cuMemset…, cuMemcpy…: another size or direction
                return UPDATE_PARAMETERS_CHANGED if same_family else UPDATE_NODE_TYPE_CHANGED
    return 0
