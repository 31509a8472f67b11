"""A worker that dies or hangs is replaced; its guest sees a reset and starts over; others don't notice."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from guest import DeviceGoneError, GuestClient
from mediator._control_client import request
from mediator._launcher import MediatorProcess, running_mediator
from protocol import DeviceState

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
                   and gpu.region.device_state == DeviceState.READY)
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
        assert gpu.region.device_state == DeviceState.BROKEN
    assert "restart limit reached" in mediator.log
