"""Issue 16's attacks on the host's memory and time, on the real daemon: a tiny module declaring
huge globals, a worker past its hard memory limit, graphs nested without end or doubling at every
level, and a device pointer that outlives a reset."""

from __future__ import annotations

import contextlib
import os
import resource
from pathlib import Path

import pytest

from guest import DeviceGoneError, GuestClient
from mediator._control_client import request
from mediator._launcher import MediatorProcess
from mediator._trace import MAX_RECORDS, TraceRing
from mediator._worker_memory import EXIT_OUT_OF_MEMORY, OOM_SCORE_ADJ, worker_memory
from protocol import CALLS_BY_NAME, CUresult, Submission
from protocol.models import GraphResult

from ._support import applied, logged, vm_status, wait_for

MIB = 1 << 20
RELAXED = 2
#: the attack of issue 16: 252 bytes of PTX that declare eight 64 MiB arrays
ATTACK_PTX = (".version 8.0\n.target sm_90\n.address_size 64\n"
              + "".join(f".visible .global .align 4 .b8 a{i}[67108864];\n" for i in range(8))).encode()


def proc_status(pid: int) -> dict[str, int]:
    """The kB figures of ``/proc/<pid>/status`` (VmHWM, VmRSS, VmData, …)."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if value.strip().endswith("kB"):
            fields[key] = int(value.split()[0])
    return fields


def worker_pid(mediator: MediatorProcess, vm: int) -> int:
    wait_for(f"vm{vm}'s worker publishes its pid", lambda: bool(vm_status(mediator, vm)["worker_pid"]))
    return int(vm_status(mediator, vm)["worker_pid"])


def test_a_tiny_module_declaring_huge_globals_is_refused_without_growing_the_worker(
        mediator: MediatorProcess) -> None:
    assert request(mediator.control, {"cmd": "set_quota", "vm": "vm1", "bytes": 64 * MIB})["ok"]
    with GuestClient.connect(mediator.vm_socket(1)) as gpu:
        gpu.init()
        pid = worker_pid(mediator, 1)
        before = proc_status(pid)
        assert len(ATTACK_PTX) < 400
        assert gpu.call("module_load_data", data=ATTACK_PTX).status == CUresult.CUDA_ERROR_OUT_OF_MEMORY
        gpu.nop()  # still served
        after = proc_status(pid)
        # before the fix: 72 -> 639 MiB; now the refusal comes before a byte is spent
        assert after["VmHWM"] - before["VmHWM"] < 16 * 1024, (before, after)
        # the worker holds itself to its VM's share, and is the OOM killer's first choice
        limits = worker_memory(64 * MIB, 16 << 30, 512 * MIB)
        assert resource.prlimit(pid, resource.RLIMIT_DATA) == (limits.data_limit, limits.data_limit_max)
        assert int(Path(f"/proc/{pid}/oom_score_adj").read_text()) == OOM_SCORE_ADJ
        assert int(Path(f"/proc/{mediator.proc.pid}/oom_score_adj").read_text()) < OOM_SCORE_ADJ
        # a raised quota raises the worker's soft limit with it
        applied(mediator, {"cmd": "set_quota", "vm": "vm1", "bytes": 128 * MIB},
                event="worker event", worker_event="quota_set", vm="vm1", bytes=128 * MIB)
        wait_for("the soft limit follows the quota", lambda: resource.prlimit(pid, resource.RLIMIT_DATA)[0]
                 == worker_memory(128 * MIB, 16 << 30, 512 * MIB).data_limit)


def test_a_worker_past_its_hard_limit_dies_alone_and_is_restarted(mediator: MediatorProcess) -> None:
    with GuestClient.connect(mediator.vm_socket(1)) as one, GuestClient.connect(mediator.vm_socket(2)) as two:
        one.init()
        two.init()
        runaway, other = worker_pid(mediator, 1), worker_pid(mediator, 2)
        kept = two.mem_alloc(4096)
        two.memset_d8(kept, 9, 4096)
        # A runaway worker, as a bug of ours would make one: its limit is brought down to what it
        # holds now (plus room for small objects), so the next large allocation fails in the kernel.
        hard = resource.prlimit(runaway, resource.RLIMIT_DATA)[1]
        resource.prlimit(runaway, resource.RLIMIT_DATA, (proc_status(runaway)["VmData"] * 1024 + 2 * MIB, hard))
        big_ptx = b".version 8.0\n.target sm_90\n.address_size 64\n// " + b"x" * (12 * MIB) + b"\n"
        with contextlib.suppress(DeviceGoneError):  # the device goes away under the call: the point
            one.call("module_load_data", data=big_ptx)
        wait_for("vm1's worker restarted", lambda: vm_status(mediator, 1)["restarts"] == 1)
        assert logged(mediator, event="worker out of host memory: an allocation failed past its hard limit; "
                                       "exiting", vm="vm1") == 1
        assert f"worker exited with {EXIT_OUT_OF_MEMORY} (out of host memory" in mediator.log
        one.recover(timeout=30)
        one.init()
        assert one.memcpy_dtoh(one.mem_alloc(16), 16) == bytes(16)  # vm1 is served again
        # nothing else was touched: the daemon, the other VM's worker and what it holds
        assert mediator.proc.poll() is None
        assert worker_pid(mediator, 2) == other and vm_status(mediator, 2)["restarts"] == 0
        assert two.memcpy_dtoh(kept, 4096) == b"\x09" * 4096


def _graph_of_launches(gpu: GuestClient, stream: int, execs: list[int]) -> tuple[int, int]:
    """(status, graph exec): capture launches of ``execs`` and instantiate what was captured."""
    gpu.checked("stream_begin_capture", gpu.args("stream_begin_capture", stream=stream, mode=RELAXED))
    for graph_exec in execs:  # asynchronous, as on a capturing stream it must be
        gpu.call("graph_launch", gpu.args("graph_launch", graph_exec=graph_exec, stream=stream), asynchronous=True)
    ended = gpu.call("stream_end_capture", gpu.args("stream_end_capture", stream=stream))
    if ended.status:
        assert ended.status == CUresult.CUDA_ERROR_STREAM_CAPTURE_INVALIDATED
        # the refused launch: an asynchronous error, reported again to the next synchronization
        refused = gpu.async_errors.pop().status
        assert gpu.call("stream_synchronize", gpu.args("stream_synchronize", stream=stream)).status == refused
        return refused, 0
    assert isinstance(ended.result, GraphResult)
    graph = ended.result.graph
    return 0, int(gpu.value("graph_instantiate", "graph_exec", gpu.args("graph_instantiate", graph=graph,
                                                                          flags=0)))


def _leaf(gpu: GuestClient, stream: int, ptr: int) -> int:
    gpu.checked("stream_begin_capture", gpu.args("stream_begin_capture", stream=stream, mode=RELAXED))
    gpu.memset_d8(ptr, 1, 1, stream=stream, asynchronous=True)
    graph = gpu.value("stream_end_capture", "graph", gpu.args("stream_end_capture", stream=stream))
    return int(gpu.value("graph_instantiate", "graph_exec", gpu.args("graph_instantiate", graph=graph, flags=0)))


def test_graphs_nested_without_end_or_doubling_get_cuda_errors_not_a_reset(mediator: MediatorProcess) -> None:
    with GuestClient.connect(mediator.vm_socket(1)) as gpu:
        gpu.init()
        pid = worker_pid(mediator, 1)
        ptr = gpu.mem_alloc(64)
        stream = gpu.stream_create()
        chain, statuses = [_leaf(gpu, stream, ptr)], []
        for _ in range(1200):  # each graph launches the one before
            status, graph_exec = _graph_of_launches(gpu, stream, [chain[-1]])
            if status:
                statuses.append(status)
            else:
                chain.append(graph_exec)
        assert len(chain) == 24 and set(statuses) == {CUresult.CUDA_ERROR_NOT_SUPPORTED}
        gpu.memset_d8(ptr, 0, 1)
        gpu.checked("graph_launch", gpu.args("graph_launch", graph_exec=chain[-1], stream=stream))
        assert gpu.memcpy_dtoh(ptr, 1) == b"\x01"
        levels = [_leaf(gpu, stream, ptr)]
        for _ in range(30):  # each graph launches the one before twice
            status, graph_exec = _graph_of_launches(gpu, stream, [levels[-1], levels[-1]])
            if status:
                assert status == CUresult.CUDA_ERROR_OUT_OF_MEMORY
                break
            levels.append(graph_exec)
        assert len(levels) == 17  # 2**16 leaves and 2**17 - 2 child nodes: the most one launch may walk
        gpu.checked("graph_launch", gpu.args("graph_launch", graph_exec=levels[12], stream=stream))
        gpu.stream_synchronize(stream)
        assert vm_status(mediator, 1)["restarts"] == 0 and worker_pid(mediator, 1) == pid
        assert "RecursionError" not in mediator.log and "call crashed" not in mediator.log


def test_a_device_pointer_from_before_a_reset_is_refused_and_never_reissued(mediator: MediatorProcess) -> None:
    with GuestClient.connect(mediator.vm_socket(1)) as gpu:
        gpu.init()
        old = [gpu.mem_alloc(size) for size in (4096, 64 * MIB, 256)]
        assert request(mediator.control, {"cmd": "reset", "vm": "vm1"})["ok"]
        wait_for("vm1 reset", lambda: vm_status(mediator, 1)["restarts"] == 1)
        gpu.recover(timeout=30)
        gpu.init()
        new = [gpu.mem_alloc(size) for size in (4096, 64 * MIB, 256)]
        assert min(new) > max(old), (old, new)
        for ptr in old:
            assert gpu.call("mem_free", gpu.args("mem_free", dptr=ptr)).status == CUresult.CUDA_ERROR_INVALID_VALUE
            copy = gpu.call("memcpy_dtod", gpu.args("memcpy_dtod", dst=new[0], src=ptr, count=16, stream=0))
            assert copy.status == CUresult.CUDA_ERROR_INVALID_VALUE
        # and again, across a second reset
        assert request(mediator.control, {"cmd": "reset", "vm": "vm1"})["ok"]
        wait_for("vm1 reset again", lambda: vm_status(mediator, 1)["restarts"] == 2)
        gpu.recover(timeout=30)
        gpu.init()
        assert gpu.mem_alloc(4096) > max(new)


def test_a_trace_ring_is_sized_once_and_bounded() -> None:
    with pytest.raises(ValueError, match="records"):
        TraceRing.create("too-big", MAX_RECORDS + 1)
    ring = TraceRing.create("small", 4)
    size = os.fstat(ring.fd).st_size
    nop = Submission(1, CALLS_BY_NAME["nop"].call_id, 0, 0, 0, 0, 0, b"")
    for i in range(1000):
        ring.append(i, 1, nop, 0, "x" * 4096)  # a summary far past the record's 128 bytes
    records, end = ring.read()
    assert end == 1000 and len(records) == 4 and all(len(r.args) == 128 for r in records)
    assert os.fstat(ring.fd).st_size == size
    ring.close()
