"""A worker that dies or hangs is replaced; its guest sees a reset and starts over; others don't notice."""

from __future__ import annotations

import os
import signal
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from guest import DeviceGoneError, GuestClient
from mediator._control_client import request
from mediator._launcher import MediatorProcess, running_mediator
from protocol import CALLS_BY_NAME, ChannelField, DeviceState, StreamCaptureMode

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def impatient_mediator(tmp_path: Path) -> Iterator[MediatorProcess]:
    """Two sim VMs whose workers are declared hung after one silent second."""
    extra = "worker_timeout_s = 1.0\nrestart_limit = 3\nmax_sleep_ms = 50"
    with running_mediator(tmp_path, backend="sim", vms=2, extra=extra) as running:
        yield running


def vm_status(mediator: MediatorProcess, name: str) -> dict[str, object]:
    reply = request(mediator.control, {"cmd": "status"})
    return next(vm for vm in reply["vms"] if vm["name"] == name)


def wait_until(predicate: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def test_a_killed_worker_is_restarted_and_the_guest_starts_over(impatient_mediator: MediatorProcess) -> None:
    mediator = impatient_mediator
    with GuestClient.connect(mediator.vm_socket(1)) as gpu, \
            GuestClient.connect(mediator.vm_socket(2)) as neighbour:
        gpu.mem_alloc(1 << 20)
        kept = neighbour.mem_alloc(4096)
        neighbour.memcpy_htod(kept, b"n" * 4096)
        old_pid = int(vm_status(mediator, "vm1")["worker_pid"])  # type: ignore[call-overload]
        os.kill(old_pid, signal.SIGKILL)

        wait_until(lambda: vm_status(mediator, "vm1")["restarts"] == 1
                   and gpu.header.device_state == DeviceState.READY)
        with pytest.raises(DeviceGoneError):
            gpu.nop()
        gpu.recover()
        assert gpu.epoch == 1
        assert vm_status(mediator, "vm1")["memory_used"] == 0  # the old allocation went with the worker
        assert gpu.mem_get_info()[0] == 2 * 2**30  # the whole 2 GiB quota is free again
        ptr = gpu.mem_alloc(4096)
        gpu.memcpy_htod(ptr, b"again" * 800)
        assert gpu.memcpy_dtoh(ptr, 4000) == b"again" * 800
        status = vm_status(mediator, "vm1")
        assert status["worker_pid"] != old_pid and status["state"] == "serving"

        assert neighbour.memcpy_dtoh(kept, 4096) == b"n" * 4096
        assert vm_status(mediator, "vm2")["restarts"] == 0


def test_a_worker_that_stops_answering_is_killed_by_the_watchdog(impatient_mediator: MediatorProcess) -> None:
    mediator = impatient_mediator
    with GuestClient.connect(mediator.vm_socket(1)) as gpu:
        gpu.nop()
        pid = int(vm_status(mediator, "vm1")["worker_pid"])  # type: ignore[call-overload]
        os.kill(pid, signal.SIGSTOP)  # alive, holding everything, answering nothing
        wait_until(lambda: vm_status(mediator, "vm1")["restarts"] == 1)
        gpu.recover()
        gpu.nop()
    assert "worker stopped answering; killing it" in mediator.log


def test_repeated_crashes_end_in_a_broken_session_not_a_loop(impatient_mediator: MediatorProcess) -> None:
    mediator = impatient_mediator
    with GuestClient.connect(mediator.vm_socket(1)) as gpu:
        for expected in range(1, 5):
            wait_until(lambda: vm_status(mediator, "vm1")["worker_pid"] is not None
                       and vm_status(mediator, "vm1")["state"] == "serving")
            os.kill(int(vm_status(mediator, "vm1")["worker_pid"]), signal.SIGKILL)  # type: ignore[call-overload]
            if expected <= 3:
                wait_until(lambda n=expected: vm_status(mediator, "vm1")["restarts"] == n)
        wait_until(lambda: vm_status(mediator, "vm1")["state"] == "listening")
        assert gpu.header.device_state == DeviceState.BROKEN
    assert "restart limit reached" in mediator.log


#: one thread that spins on the wall clock (``%globaltimer``) for its parameter's nanoseconds
SPIN_PTX = b""".version 8.0
.target sm_90
.address_size 64
.visible .entry spin(.param .u64 ns)
{
    .reg .u64 %rd<4>;
    .reg .pred %p;
    ld.param.u64 %rd1, [ns];
    mov.u64 %rd2, %globaltimer;
    add.u64 %rd1, %rd1, %rd2;
LOOP:
    mov.u64 %rd3, %globaltimer;
    setp.lt.u64 %p, %rd3, %rd1;
    @%p bra LOOP;
    ret;
}
"""
#: each launch outlasts half the worker timeout and stays well inside the engine's 5 s budget
WORKER_TIMEOUT_S = 2.0
SPIN_NS = 1_200_000_000
LAUNCHES = 4


def _call(gpu: GuestClient, name: str, **kwargs: Any) -> Any:
    data = kwargs.pop("data", None)
    asynchronous = kwargs.pop("asynchronous", False)
    spec = CALLS_BY_NAME[name]
    return gpu.checked(name, spec.args(**kwargs), data=data, asynchronous=asynchronous).result


def _launch_spin(gpu: GuestClient, function: int, stream: int) -> None:
    """Posted, as a launch is: a captured one is recorded, not waited for."""
    _call(gpu, "launch_kernel", function=function, grid_x=1, grid_y=1, grid_z=1, block_x=1, block_y=1, block_z=1,
          shared_mem_bytes=0, stream=stream, data=struct.pack("<Q", SPIN_NS), asynchronous=True)


def test_a_long_queue_of_legitimate_work_keeps_the_heartbeat(tmp_path: Path) -> None:
    """Posted launches, then a graph replaying the same launches in one call: each launch takes more
    than half the worker timeout and all of them several timeouts, yet the worker beats between them
    and nobody kills it."""
    extra = f"worker_timeout_s = {WORKER_TIMEOUT_S}\nmax_sleep_ms = 50"
    with running_mediator(tmp_path, backend="sim", vms=1, extra=extra) as mediator, \
            GuestClient.connect(mediator.vm_socket(1)) as gpu:
        module = _call(gpu, "module_load_data", data=SPIN_PTX).module
        function = _call(gpu, "module_get_function", module=module, data=b"spin").function
        stream = _call(gpu, "stream_create", flags=0).stream
        for _ in range(LAUNCHES):
            _launch_spin(gpu, function, stream)
        _call(gpu, "stream_synchronize", stream=stream)

        _call(gpu, "stream_begin_capture", stream=stream, mode=StreamCaptureMode.CU_STREAM_CAPTURE_MODE_RELAXED)
        for _ in range(LAUNCHES):
            _launch_spin(gpu, function, stream)
        graph = _call(gpu, "stream_end_capture", stream=stream).graph
        graph_exec = _call(gpu, "graph_instantiate", graph=graph, flags=0).graph_exec
        started = time.monotonic()
        _call(gpu, "graph_launch", graph_exec=graph_exec, stream=stream)
        assert time.monotonic() - started > LAUNCHES * SPIN_NS / 1e9  # one call ran them all
        gpu.nop()
        assert vm_status(mediator, "vm1")["restarts"] == 0
    assert "worker stopped answering" not in mediator.log


def test_one_call_longer_than_the_guests_timeout_completes(tmp_path: Path) -> None:
    """A launch of 2.4 s behind a guest whose transport gives up after 1 s without progress: the
    host's ``host_busy`` word moves while it serves the launch (mediator._busy), so the guest's
    synchronize waits it out, as a GPU's would."""
    with running_mediator(tmp_path, backend="sim", vms=1) as mediator, \
            GuestClient.connect(mediator.vm_socket(1)) as gpu:
        busy_word = ChannelField.HOST_BUSY >> 2
        module = _call(gpu, "module_load_data", data=SPIN_PTX).module
        function = _call(gpu, "module_get_function", module=module, data=b"spin").function
        stream = _call(gpu, "stream_create", flags=0).stream
        # the short timeout only from here: a loaded host may take seconds to spawn the worker and open the channel
        gpu.timeout = 1.0
        before = gpu.region.u32_view[busy_word]
        started = time.monotonic()
        _call(gpu, "launch_kernel", function=function, grid_x=1, grid_y=1, grid_z=1, block_x=1, block_y=1,
              block_z=1, shared_mem_bytes=0, stream=stream, data=struct.pack("<Q", 2 * SPIN_NS),
              asynchronous=True)
        _call(gpu, "stream_synchronize", stream=stream)
        assert time.monotonic() - started > 2 * SPIN_NS / 1e9
        assert (gpu.region.u32_view[busy_word] - before) & 0xFFFF_FFFF >= 2  # bumped every 0.5 s of it
        gpu.nop()
