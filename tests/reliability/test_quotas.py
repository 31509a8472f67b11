"""Quotas and fairness: memory quota across allocation kinds, run-time changes, a calls-per-second
limit, and a cap on unsynchronized asynchronous work."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from guest import GuestClient
from mediator._control_client import ControlError, request
from mediator._launcher import MediatorProcess, running_mediator
from protocol import CUresult

from ._support import applied, vm_status, wait_for

MIB = 1 << 20


def test_the_quota_counts_allocations_and_vmm_memory_and_changes_at_run_time(mediator: MediatorProcess) -> None:
    assert request(mediator.control, {"cmd": "set_quota", "vm": "vm1", "bytes": 8 * MIB})["ok"]
    with GuestClient.connect(mediator.vm_socket(1)) as gpu:
        gpu.init()
        ptr = gpu.mem_alloc(4 * MIB)
        gran = gpu.value("mem_get_allocation_granularity", "granularity",
                         gpu.args("mem_get_allocation_granularity", device=0, option=0))
        handle = gpu.value("mem_create", "handle", gpu.args("mem_create", size=2 * gran, device=0, flags=0))
        assert gpu.mem_get_info()[0] == 8 * MIB - 4 * MIB - 2 * gran
        over = gpu.call("mem_alloc", gpu.args("mem_alloc", bytesize=4 * MIB))
        assert over.status == CUresult.CUDA_ERROR_OUT_OF_MEMORY
        over = gpu.call("mem_create", gpu.args("mem_create", size=2 * gran, device=0, flags=0))
        assert over.status == CUresult.CUDA_ERROR_OUT_OF_MEMORY
        applied(mediator, {"cmd": "set_quota", "vm": "vm1", "bytes": 64 * MIB},
                event="worker event", worker_event="quota_set", vm="vm1", bytes=64 * MIB)
        more = gpu.mem_alloc(16 * MIB)  # the new quota holds at once
        # lowering it below what is held keeps what is held and refuses more
        applied(mediator, {"cmd": "set_quota", "vm": "vm1", "bytes": MIB},
                event="worker event", worker_event="quota_set", vm="vm1", bytes=MIB)
        assert gpu.call("mem_alloc", gpu.args("mem_alloc", bytesize=256)).status == \
            CUresult.CUDA_ERROR_OUT_OF_MEMORY
        gpu.memset_d8(more, 1, 16 * MIB)
        gpu.mem_free(more)
        gpu.mem_free(ptr)
        gpu.checked("mem_release", gpu.args("mem_release", handle=handle))
        wait_for("vm1's memory released", lambda: vm_status(mediator, 1)["memory_used"] == 0)
    with pytest.raises(ControlError, match="non-negative"):
        request(mediator.control, {"cmd": "set_quota", "vm": "vm1", "bytes": -1})


def test_a_calls_per_second_limit_slows_that_vm_only(tmp_path: Path) -> None:
    config = tmp_path / "limit"
    config.mkdir()
    with running_mediator(config, vms=2) as mediator:
        text = mediator.config.read_text().replace('name = "vm1"\n', 'name = "vm1"\ncalls_per_s = 200\n')
        mediator.config.write_text(text)
        os.kill(mediator.proc.pid, signal.SIGHUP)
        wait_for("the reload took", lambda: vm_status(mediator, 1)["calls_per_s_limit"] == 200, timeout=20)
        with GuestClient.connect(mediator.vm_socket(1)) as slow, GuestClient.connect(mediator.vm_socket(2)) as fast:
            slow.init()
            fast.init()
            started = time.perf_counter()
            for _ in range(100):
                slow.nop()
            slow_rate = 100 / (time.perf_counter() - started)
            started = time.perf_counter()
            for _ in range(300):
                fast.nop()
            fast_rate = 300 / (time.perf_counter() - started)
        # the bucket banks a tenth of a second (20 calls); 100 calls take at least 0.4 s
        assert slow_rate < 260, slow_rate
        assert fast_rate > 2 * slow_rate, (fast_rate, slow_rate)


def test_unsynchronized_async_work_is_capped(tmp_path: Path) -> None:
    with running_mediator(tmp_path, vms=1, extra="max_async_inflight = 64") as mediator, \
            GuestClient.connect(mediator.vm_socket(1)) as gpu:
        gpu.init()
        ptr = gpu.mem_alloc(4096)
        for _ in range(640):
            gpu.memset_d8(ptr, 3, 4096, asynchronous=True)
        gpu.ctx_synchronize()
        assert gpu.memcpy_dtoh(ptr, 4) == b"\x03" * 4
        wait_for("ten throttles published", lambda: vm_status(mediator, 1)["throttles"] == 10)
        assert vm_status(mediator, 1)["errors"] == 0


GLOBALS_PTX = b""".version 8.0
.target sm_90
.address_size 64
.visible .global .align 4 .b8 weights[1048576];
.visible .entry noop() { ret; }
"""


def test_memory_allocated_while_capturing_and_module_globals_count_against_the_quota(
        mediator: MediatorProcess) -> None:
    quota = 3 * MIB + MIB // 2
    assert request(mediator.control, {"cmd": "set_quota", "vm": "vm1", "bytes": quota})["ok"]
    with GuestClient.connect(mediator.vm_socket(1)) as gpu:
        gpu.init()
        stream = gpu.stream_create()
        # RELAXED capture (GGML's mode) lets cuMemAlloc run during capture: what it takes is charged now
        gpu.checked("stream_begin_capture", gpu.args("stream_begin_capture", stream=stream, mode=2))
        during = gpu.mem_alloc(2 * MIB)
        gpu.memset_d8(during, 7, 2 * MIB, stream=stream, asynchronous=True)
        graph = gpu.value("stream_end_capture", "graph", gpu.args("stream_end_capture", stream=stream))
        assert gpu.mem_get_info()[0] == quota - 2 * MIB
        # a module's globals are device memory too
        module = gpu.value("module_load_data", "module", data=GLOBALS_PTX)
        assert gpu.mem_get_info()[0] == quota - 3 * MIB
        assert gpu.call("module_load_data", data=GLOBALS_PTX).status == CUresult.CUDA_ERROR_OUT_OF_MEMORY
        assert gpu.call("mem_alloc", gpu.args("mem_alloc", bytesize=MIB // 2 + 1)).status == \
            CUresult.CUDA_ERROR_OUT_OF_MEMORY
        exec_ = gpu.value("graph_instantiate", "graph_exec", gpu.args("graph_instantiate", graph=graph, flags=0))
        gpu.checked("graph_launch", gpu.args("graph_launch", graph_exec=exec_, stream=stream))
        gpu.stream_synchronize(stream)
        assert gpu.memcpy_dtoh(during, 4) == b"\x07" * 4
        gpu.checked("module_unload", gpu.args("module_unload", module=module))
        gpu.mem_free(during)
        wait_for("vm1's memory released", lambda: vm_status(mediator, 1)["memory_used"] == 0)
