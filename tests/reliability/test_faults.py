"""Faults: a poisoned context, a guest killed mid-work, a daemon restarted under a connected peer.
(A worker killed with SIGKILL, a hung worker and crash loops are in tests/mediator/test_worker_faults.py.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from guest import CudaCallError, DeviceGoneError, GuestClient
from mediator._launcher import MediatorProcess, running_mediator
from protocol import CUresult, DeviceState

from ._support import applied, vm_status, wait_for


@pytest.fixture
def mediator(tmp_path: Path) -> Iterator[MediatorProcess]:
    """Two VMs, with the fault injection these tests drive (refused unless the configuration allows it)."""
    with running_mediator(tmp_path, vms=2, extra="allow_fault_injection = true") as running:
        yield running


def test_a_sticky_fault_poisons_that_processs_context_only(mediator: MediatorProcess) -> None:
    with GuestClient.connect(mediator.vm_socket(1)) as one, GuestClient.connect(mediator.vm_socket(1)) as sibling, \
            GuestClient.connect(mediator.vm_socket(2)) as two:
        for client in (one, sibling, two):
            client.init()
        kept = two.mem_alloc(4096)
        two.memcpy_htod(kept, b"vm2 data")
        theirs = sibling.mem_alloc(4096)
        sibling.memcpy_htod(theirs, b"sibling")
        one.mem_alloc(1 << 20)
        applied(mediator, {"cmd": "inject_fault", "vm": "vm1", "status": 700, "sticky": True,
                           "channel": one.channel}, event="fault injected", vm="vm1", status=700)
        for _ in range(2):  # sticky: every later call of that context fails with it, as on a GPU
            with pytest.raises(CudaCallError) as fault:
                one.mem_alloc(256)
            assert fault.value.status == CUresult.CUDA_ERROR_ILLEGAL_ADDRESS
        # the VM's other process and the other VM never noticed: no reset, no new epoch
        assert sibling.memcpy_dtoh(theirs, 7) == b"sibling"
        assert two.memcpy_dtoh(kept, 8) == b"vm2 data"
        assert vm_status(mediator, 1)["restarts"] == 0 and vm_status(mediator, 2)["restarts"] == 0
        # the process's successor on that channel starts clean, with nothing held
        one.close()
        wait_for("the poisoned context freed", lambda: vm_status(mediator, 1)["memory_used"] == 4096)
        with GuestClient.connect(mediator.vm_socket(1)) as successor:
            successor.init()
            successor.nop()


def test_a_non_sticky_injected_error_is_just_an_error(mediator: MediatorProcess) -> None:
    with GuestClient.connect(mediator.vm_socket(1)) as gpu:
        gpu.init()
        applied(mediator, {"cmd": "inject_fault", "vm": 1, "status": 2, "sticky": False},
                event="fault injected", vm="vm1", status=2)
        assert gpu.call("mem_alloc", gpu.args("mem_alloc", bytesize=256)).status == CUresult.CUDA_ERROR_OUT_OF_MEMORY
        gpu.mem_free(gpu.mem_alloc(256))
        assert vm_status(mediator, 1)["restarts"] == 0


GUEST = textwrap.dedent("""
    import sys
    from guest import GuestClient
    from protocol import StreamCaptureMode
    gpu = GuestClient.connect(sys.argv[1])
    gpu.init()
    stream = gpu.stream_create()
    ptr = gpu.mem_alloc(32 << 20)
    if sys.argv[2] == "capture":
        gpu.checked("stream_begin_capture", gpu.args("stream_begin_capture", stream=stream,
                    mode=StreamCaptureMode.CU_STREAM_CAPTURE_MODE_RELAXED))
        for _ in range(100):
            gpu.memset_d8(ptr, 1, 1 << 20, stream=stream, asynchronous=True)
    print("ready", flush=True)
    while True:  # works until killed: copies, or memsets recorded into the capture
        if sys.argv[2] == "capture":
            gpu.memset_d8(ptr, 2, 1 << 20, stream=stream, asynchronous=True)
        else:
            gpu.memcpy_htod(ptr, bytes(32 << 20), stream=stream, asynchronous=True)
""")


@pytest.mark.parametrize("moment", ["copy", "capture"])
def test_a_guest_killed_mid_work_releases_everything_and_spares_the_other_vm(
        mediator: MediatorProcess, moment: str) -> None:
    with GuestClient.connect(mediator.vm_socket(2)) as other:
        other.init()
        ptr = other.mem_alloc(4096)
        victim = subprocess.Popen([sys.executable, "-c", GUEST, str(mediator.vm_socket(1)), moment],
                                  stdout=subprocess.PIPE, text=True)
        try:
            assert victim.stdout is not None and victim.stdout.readline().strip() == "ready"
            wait_for("vm1 holds memory", lambda: int(vm_status(mediator, 1)["memory_used"]) >= 32 << 20)
            time.sleep(0.2)
            assert victim.poll() is None, "the guest must die mid-work, not of an error of its own"
            victim.send_signal(signal.SIGKILL)
            victim.wait()
        finally:
            if victim.poll() is None:
                victim.kill()
            if victim.stdout is not None:
                victim.stdout.close()
        wait_for("vm1 session over", lambda: vm_status(mediator, 1)["state"] == "listening")
        assert vm_status(mediator, 1)["memory_used"] == 0
        # what the worker still held once it had released the VM's resources: nothing
        last = vm_status(mediator, 1)["last_session"]
        assert last["memory_used"] == 0 and last["live_handles"] == 0 and last["calls"] > 0
        other.memset_d32(ptr, 0xABCD, 1024)
        assert other.memcpy_dtoh(ptr, 4) == (0xABCD).to_bytes(4, "little")
    with GuestClient.connect(mediator.vm_socket(1)) as again:  # the VM can attach again at once
        again.init()
        assert again.mem_get_info()[0] == 2 << 30


def test_a_restarted_daemon_serves_a_peer_that_reconnects(tmp_path: Path) -> None:
    """QEMU's ``-chardev socket,…,reconnect=1``: the peer sees the device stop, then connects again to
    the new daemon and gets a fresh region."""
    with running_mediator(tmp_path, vms=1) as first:
        gpu = GuestClient.connect(first.vm_socket(1))
        gpu.init()
        gpu.mem_alloc(1 << 20)
        os.kill(first.proc.pid, signal.SIGTERM)
        assert first.proc.wait(20) == 0
        assert gpu.header.device_state == DeviceState.STOPPED
        with pytest.raises(DeviceGoneError):
            gpu.nop()
        gpu.close()
    with running_mediator(tmp_path, vms=1) as second, GuestClient.connect(second.vm_socket(1)) as again:
        again.init()
        assert again.mem_get_info()[0] == 2 << 30
        ptr = again.mem_alloc(4096)
        again.memcpy_htod(ptr, b"after the restart")
        assert again.memcpy_dtoh(ptr, 17) == b"after the restart"
