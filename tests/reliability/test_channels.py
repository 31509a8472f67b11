"""Channels (issue 14): several processes of one VM, each with its own context, cleaned up when it dies.

Each test runs a real daemon (sim backend) and real guest processes (``guest.GuestClient`` in a spawned
interpreter): a process killed mid-copy gives its memory back at once (its socket peer goes), a
stopped one loses its channel to the lease, and garbage in one channel closes only that channel.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

from guest import DeviceGoneError, GuestClient
from mediator._launcher import MediatorProcess
from protocol import ChannelField, ChannelState, CloseReason

from ._support import vm_status, wait_for

MIB = 1 << 20


def _spawn(mediator: MediatorProcess, body: str) -> subprocess.Popen[str]:
    """A guest process running ``body`` with ``gpu`` connected to VM 1; it prints 'ready' when set."""
    script = "import sys\nfrom guest import GuestClient, DeviceGoneError\n" + \
        f"gpu = GuestClient.connect({str(mediator.vm_socket(1))!r})\n" + textwrap.dedent(body)
    return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            cwd=os.getcwd())


def test_a_process_killed_mid_copy_gives_its_memory_back_within_a_second(mediator: MediatorProcess) -> None:
    with GuestClient.connect(mediator.vm_socket(1)) as other:
        mine = other.mem_alloc(8 * MIB)
        child = _spawn(mediator, """
            ptr = gpu.mem_alloc(64 << 20)
            data = bytes(range(256)) * (64 << 12)
            print("ready", flush=True)
            while True:
                gpu.memcpy_htod(ptr, data)
        """)
        try:
            assert child.stdout is not None and child.stdout.readline().strip() == "ready"
            wait_for("the child's memory shows", lambda: vm_status(mediator, 1)["memory_used"] >= 72 * MIB)
            payload = bytes([7]) * (8 * MIB)
            other.memcpy_htod(mine, payload)
            child.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            wait_for("the killed process's memory is back",
                     lambda: vm_status(mediator, 1)["memory_used"] == 8 * MIB, timeout=5.0)
            back_s = time.monotonic() - killed
        finally:
            child.kill()
            child.wait()
            assert child.stdout is not None
            child.stdout.close()
        print(f"memory back {back_s * 1000:.0f} ms after SIGKILL")
        assert back_s < 1.0
        assert other.memcpy_dtoh(mine, 8 * MIB) == payload  # the other process finished, undisturbed
        assert vm_status(mediator, 1)["channels_open"] == 1


def test_a_stopped_process_loses_its_channel_when_its_lease_runs_out(mediator: MediatorProcess) -> None:
    child = _spawn(mediator, """
        import time
        gpu.mem_alloc(4 << 20)
        print("ready", flush=True)
        time.sleep(3)  # stopped meanwhile: the sleep ends by the clock once it runs again
        try:
            gpu.mem_alloc(1 << 20)
            print("served", flush=True)
        except DeviceGoneError as exc:
            print("gone", exc, flush=True)
    """)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        child.send_signal(signal.SIGSTOP)
        stopped = time.monotonic()
        wait_for("the stopped process's lease expires",
                 lambda: vm_status(mediator, 1)["channels_expired"] == 1, timeout=10.0)
        expired_s = time.monotonic() - stopped
        assert vm_status(mediator, 1)["memory_used"] == 0
        child.send_signal(signal.SIGCONT)
        out = child.stdout.read()
        assert "gone" in out and "CLOSED_BY_HOST" in out, out
    finally:
        child.kill()
        child.wait()
        assert child.stdout is not None
        child.stdout.close()
    print(f"lease expired {expired_s * 1000:.0f} ms after SIGSTOP")
    assert expired_s < 0.8 + 0.5


def test_garbage_in_one_channel_closes_only_that_channel(mediator: MediatorProcess) -> None:
    with GuestClient.connect(mediator.vm_socket(1)) as bad, GuestClient.connect(mediator.vm_socket(1)) as good:
        kept = good.mem_alloc(MIB)
        good.memset_d8(kept, 0x5A, MIB)
        bad.mem_alloc(MIB)
        bad.region.set_u32(ChannelField.SQ_TAIL, bad.sq.index + 5000)  # an impossible tail
        os.eventfd_write(bad.doorbell_fd, 1)
        wait_for("the broken channel is closed",
                 lambda: bad.region.channel_state == ChannelState.CLOSED_BY_HOST, timeout=5.0)
        assert bad.region.u32(ChannelField.CLOSE_REASON) == CloseReason.PROTOCOL_VIOLATION
        try:
            bad.nop()
            raise AssertionError("a call on a closed channel was served")
        except DeviceGoneError:
            pass
        assert good.memcpy_dtoh(kept, MIB) == b"\x5a" * MIB
        row = vm_status(mediator, 1)
        assert row["channels_broken"] == 1 and row["state"] == "serving"
        wait_for("the broken channel's memory is freed", lambda: vm_status(mediator, 1)["memory_used"] == MIB)
