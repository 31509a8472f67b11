"""Guest nodes on the cuda backend without a GPU: the phase split of a graph, and the handlers' driver
calls against a stand-in for cuda.bindings.driver (the calls and their order are what a GPU would see)."""

from __future__ import annotations

import itertools
import time
from functools import partial

import pytest

from executor import CudaError, Executor
from executor._base import HandleTable
from executor._cuda import CudaExecutor
from executor._cuda_driver import Driver
from executor._cuda_guest_nodes import MAX_PHASE_NODES, GuestMarks, split_phases
from protocol import CUresult

from .test_handlers import Bindings, Handle, call_handler

ACTIVE = 1


def test_phases_cut_a_topological_order_at_the_marks() -> None:
    # a -> mark1 -> b -> mark2 -> c, and d independent of all (listed last)
    deps = {"mark1": ["a"], "b": ["mark1"], "mark2": ["b"], "c": ["mark2"]}
    phases, tags = split_phases(["a", "mark1", "b", "mark2", "c", "d"], deps, {"mark1": 10, "mark2": 20})
    assert tags == [10, 20]
    assert phases == [["a"], ["b"], ["c", "d"]]


def test_without_marks_there_is_one_phase_and_a_node_waits_for_all_its_dependencies() -> None:
    deps = {"join": ["x", "y"], "y": ["x"]}
    phases, tags = split_phases(["join", "y", "x"], deps, {})
    assert tags == [] and phases == [["x", "y", "join"]]


def test_a_mark_first_or_last_leaves_an_empty_phase() -> None:
    phases, tags = split_phases(["m", "a", "n"], {"a": ["m"], "n": ["a"]}, {"m": 1, "n": 2})
    assert tags == [1, 2] and phases == [[], ["a"], []]


def test_a_wide_graph_is_split_in_n_log_n() -> None:
    """The guest sizes the graph: 20,000 branches of two nodes took 15 s with a sorted ready list."""
    n = 20_000
    firsts, seconds = [f"a{i}" for i in range(n)], [f"b{i}" for i in range(n)]
    deps = {a: ["root"] for a in firsts} | {b: [a] for a, b in zip(firsts, seconds, strict=True)}
    started = time.monotonic()
    phases, _ = split_phases(["root", *firsts, *seconds], deps, {})
    assert time.monotonic() - started < 2
    assert phases == [["root", *firsts, *seconds]]  # ready nodes still taken in the order listed


@pytest.mark.parametrize(("nodes", "deps"), [(["a", "b"], {"a": ["b"], "b": ["a"]}), (["a"], {"a": ["ghost"]})])
def test_a_cycle_or_a_foreign_dependency_is_refused(nodes: list[str], deps: dict[str, list[str]]) -> None:
    with pytest.raises(ValueError, match=r"cycle|outside"):
        split_phases(nodes, deps, {})


def _executor(bindings: Bindings) -> CudaExecutor:
    ex = object.__new__(CudaExecutor)
    Executor.__init__(ex)
    ex._drv = Driver(bindings)
    ids = itertools.count(1)
    ex._streams = HandleTable("stream", ids=ids)
    ex._graphs = HandleTable("graph", ids=ids)
    ex._graph_execs = HandleTable("graph exec", ids=ids)
    ex._invalidated = {}
    ex._guest = GuestMarks()
    ex._null = Handle()
    return ex


_call = partial(call_handler, blocking=False)


def test_a_captured_guest_node_is_an_empty_node_and_its_graph_is_instantiated_per_phase() -> None:
    stream, graph, first, mark, last = Handle(), Handle(), Handle(), Handle(), Handle()
    clones, execs = [Handle(), Handle()], [Handle(), Handle()]
    found = [Handle() for _ in range(4)]
    bindings = Bindings(
        cuStreamGetCaptureInfo=[(0, ACTIVE, 42, graph, [first], None, 1)] * 3,
        cuGraphAddEmptyNode=[(0, mark)],
        cuStreamUpdateCaptureDependencies=[(0,)],
        cuStreamEndCapture=[(0, graph)],
        cuGraphGetNodes=[(0, [], 3), (0, [first, mark, last], 3)],
        cuGraphNodeGetDependencies=[(0, [], [], 0), (0, [], [], 1), (0, [first], [], 1), (0, [], [], 1),
                                    (0, [mark], [], 1)],
        cuGraphClone=[(0, clones[0]), (0, clones[1])],
        cuGraphNodeFindInClone=[(0, f) for f in found],
        cuGraphDestroyNode=[(0,)] * 4,
        cuGraphInstantiate=[(0, execs[0]), (0, execs[1])],
        cuGraphDestroy=[(0,), (0,)],
        cuGraphLaunch=[(0,)],
        cuGraphExecDestroy=[(0,), (0,)],
    )
    ex = _executor(bindings)
    sid = ex._streams.add(stream)
    assert _call(ex, "stream_add_guest_node", stream=sid, tag=7).captured == 1
    # the mark follows the stream's frontier, and the stream's next node follows the mark alone
    assert ("cuGraphAddEmptyNode", (graph, [first], 1)) in bindings.calls
    assert ("cuStreamUpdateCaptureDependencies", (stream, [mark], None, 1, 1)) in bindings.calls
    gid = _call(ex, "stream_end_capture", stream=sid).graph
    exec_id = _call(ex, "graph_instantiate", graph=gid, flags=0).graph_exec
    # phase 0 keeps `first` (the mark and `last` removed from its clone), phase 1 keeps `last`
    find = [args for name, args in bindings.calls if name == "cuGraphNodeFindInClone"]
    assert find == [(mark, clones[0]), (last, clones[0]), (first, clones[1]), (mark, clones[1])]
    assert [args for name, args in bindings.calls if name == "cuGraphDestroyNode"] == [(f,) for f in found]
    result = _call(ex, "graph_exec_guest_node", graph_exec=exec_id, index=0)
    assert (result.count, result.tag) == (1, 7)
    with pytest.raises(CudaError) as refused:
        _call(ex, "graph_launch", graph_exec=exec_id, stream=sid)
    assert refused.value.status == CUresult.CUDA_ERROR_NOT_SUPPORTED
    _call(ex, "graph_launch_phase", graph_exec=exec_id, stream=sid, phase=1)
    assert bindings.calls[-1] == ("cuGraphLaunch", (execs[1], stream))
    _call(ex, "graph_exec_destroy", graph_exec=exec_id)
    assert [args for name, args in bindings.calls if name == "cuGraphExecDestroy"] == [(execs[0],), (execs[1],)]
    assert len(ex._graph_execs) == 0 and not ex._guest.execs


def test_a_graph_whose_phases_times_nodes_pass_the_bound_is_refused_before_any_clone() -> None:
    """Every phase is cloned from the whole graph and pruned node by node: 1,100 marks in 1,100 nodes
    would be 1.2 million driver calls in one instantiate."""
    nodes = [Handle() for _ in range(1100)]
    bindings = Bindings(cuGraphGetNodes=[(0, [], len(nodes)), (0, nodes, len(nodes))])
    ex = _executor(bindings)
    gid = ex._graphs.add(Handle())
    ex._guest.graphs[gid] = {int(node): tag for tag, node in enumerate(nodes)}
    assert (len(nodes) + 1) * len(nodes) > MAX_PHASE_NODES
    with pytest.raises(CudaError) as refused:
        _call(ex, "graph_instantiate", graph=gid, flags=0)
    assert refused.value.status == CUresult.CUDA_ERROR_NOT_SUPPORTED
    assert [name for name, _ in bindings.calls] == ["cuGraphGetNodes", "cuGraphGetNodes"]


def test_on_a_stream_that_does_not_capture_nothing_is_recorded() -> None:
    stream = Handle()
    bindings = Bindings(cuStreamGetCaptureInfo=[(0, 0, 0, None, None, None, 0)])
    ex = _executor(bindings)
    assert _call(ex, "stream_add_guest_node", stream=ex._streams.add(stream), tag=1).captured == 0
    assert [name for name, _ in bindings.calls] == ["cuStreamGetCaptureInfo"]


class _UpdateInfo:
    def __init__(self, result: int) -> None:
        self.result = result


def test_a_refused_driver_update_is_its_reason_and_a_phased_exec_is_not_updated() -> None:
    exec_, graph = Handle(), Handle()
    bindings = Bindings(cuGraphExecUpdate=[(910, _UpdateInfo(2)), (0, _UpdateInfo(0)), (910, None)])
    ex = _executor(bindings)
    eid, gid = ex._graph_execs.add(exec_), ex._graphs.add(graph)
    assert _call(ex, "graph_exec_update", graph_exec=eid, graph=gid).result == 2  # topology changed
    assert _call(ex, "graph_exec_update", graph_exec=eid, graph=gid).result == 0
    assert _call(ex, "graph_exec_update", graph_exec=eid, graph=gid).result == 1  # failed, no reason given
    assert bindings.calls == [("cuGraphExecUpdate", (exec_, graph))] * 3
    ex._guest.graphs[gid] = {1: 5}  # the graph holds a guest node: its exec would run in phases
    assert _call(ex, "graph_exec_update", graph_exec=eid, graph=gid).result == 6
    assert len(bindings.calls) == 3
