"""Guest nodes on the ``cuda`` backend: where they sit in a captured driver graph, and its phases.

Theory of operation
-------------------
A guest node (``executor/_sim_graph.py``'s theory of operation: a host function or a copy of the
guest's host memory, which only the guest can perform) is marked in the driver's capture by an empty
node: ``stream_add_guest_node`` adds one after the capturing stream's dependencies and makes it the
stream's only dependency, so later work of the stream depends on it. :class:`GuestMarks` remembers
the marks of each capture (by capture id) and then of each graph (by the VM's graph handle).

Instantiating a graph with marks splits it (:func:`split_phases`): a topological order of its nodes,
cut at the marks, gives ``n + 1`` phases; each phase is instantiated as a driver graph of its own (a
clone of the graph with every other node removed: removing a node removes its edges, so the phase
keeps its own edges) and the guest launches them one by one, performing mark ``i`` between phases
``i`` and ``i + 1``. The order serializes what the marks separate; within a phase the driver keeps
every concurrency the graph had.

Written from the driver's documentation; no GPU was lent while it was written, so it has run only
against the stand-in bindings of the tests.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

__all__ = ["MAX_PHASE_NODES", "GuestMarks", "PhasedExec", "split_phases"]

#: phases times nodes a graph with guest nodes may have: each phase is a clone of the whole graph
#: with every other node removed, a driver call per node, so the guest's marks multiply the work
MAX_PHASE_NODES = 1 << 20

N = TypeVar("N", bound=Hashable)


@dataclass(slots=True)
class PhasedExec:
    """The driver execs of an exec's phases after phase 0 (a handle each in the VM's exec table, so
    closing the VM destroys them with the rest) and the guest node tags."""

    rest: list[int]
    tags: list[int]


@dataclass(slots=True)
class GuestMarks:
    """The empty nodes that mark guest nodes (node address -> tag), per capture and per graph."""

    captures: dict[int, dict[int, int]] = field(default_factory=dict)
    graphs: dict[int, dict[int, int]] = field(default_factory=dict)
    execs: dict[int, PhasedExec] = field(default_factory=dict)


def split_phases(nodes: Sequence[N], deps: Mapping[N, Sequence[N]], marks: Mapping[N, int]) -> tuple[
        list[list[N]], list[int]]:
    """The phases of a graph (its nodes without the marks, ``len(tags) + 1`` lists) and the marks' tags
    in launch order. ``deps`` names each node's dependencies; the order is Kahn's, taking ready nodes in
    the order ``nodes`` lists them, so it is the same for the same graph. ValueError for a cycle or a
    dependency outside ``nodes``."""
    position = {node: i for i, node in enumerate(nodes)}
    waiting = {node: len(deps.get(node, ())) for node in nodes}
    users: dict[N, list[N]] = {node: [] for node in nodes}
    for node in nodes:
        for dep in deps.get(node, ()):
            if dep not in users:
                raise ValueError(f"a node depends on a node outside the graph ({dep!r})")
            users[dep].append(node)
    # the ready nodes by their place in ``nodes`` (a heap: a wide graph costs n log n, not n**2)
    ready = [(position[node], node) for node in nodes if not waiting[node]]
    phases: list[list[N]] = [[]]
    tags: list[int] = []
    done = 0
    while ready:
        _, node = heapq.heappop(ready)
        done += 1
        if node in marks:
            tags.append(marks[node])
            phases.append([])
        else:
            phases[-1].append(node)
        for user in users[node]:
            if _release(waiting, user):
                heapq.heappush(ready, (position[user], user))
    if done != len(nodes):
        raise ValueError("the graph has a cycle")
    return phases, tags


def _release(waiting: dict[N, int], node: N) -> bool:
    waiting[node] -= 1
    return waiting[node] == 0
