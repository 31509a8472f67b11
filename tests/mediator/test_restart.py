"""The supervisor is replaced under a running guest and the guest notices nothing but latency.

A real ``vgpu-mediator run`` under :class:`FakeSystemd` (systemd's notify socket, fd store and
``LISTEN_FDS`` hand-over, played by the test: PID 1 here is not systemd). A guest thread loops over
copies and SGEMMs and checks every byte and every product while the supervisor is restarted as
``systemctl restart`` does (SIGTERM, the stored fds given to the next start), re-executed by hand
(SIGUSR2), restarted again, and SIGKILLed (``Restart=on-failure`` starts it with the stored fds).
The worker — the VM's GPU context — is the same process throughout, and the region never leaves READY.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from guest import DeviceGoneError, GuestClient
from mediator._control_client import request
from mediator._launcher import write_config
from protocol import DeviceState

from ..reliability._support import wait_for
from ._fake_systemd import FakeSystemd

pytestmark = pytest.mark.timeout(600)


class GuestLoop(threading.Thread):
    """Copies of fresh random bytes and 24x24 SGEMMs, each checked; any exception is a failed call."""

    def __init__(self, gpu: GuestClient) -> None:
        super().__init__(name="guest-loop", daemon=True)
        self.gpu = gpu
        self.rounds = 0
        self.wrong = 0
        self.failures: list[str] = []
        self.halt = threading.Event()

    def run(self) -> None:
        gpu, rng, n = self.gpu, np.random.default_rng(17), 24
        try:
            blas = int(gpu.value("cublas_create", "handle"))
            buf = gpu.mem_alloc(256 << 10)
            pa, pb, pc = (gpu.mem_alloc(4 * n * n) for _ in range(3))
            while not self.halt.is_set():
                data = rng.bytes(int(rng.integers(1, 256 << 10)))
                gpu.memcpy_htod(buf, data)
                self.wrong += gpu.memcpy_dtoh(buf, len(data)) != data
                a = rng.standard_normal((n, n), dtype=np.float32)
                b = rng.standard_normal((n, n), dtype=np.float32)
                gpu.memcpy_htod(pa, a.tobytes(order="F"))
                gpu.memcpy_htod(pb, b.tobytes(order="F"))
                gpu.checked("cublas_sgemm", gpu.args(
                    "cublas_sgemm", handle=blas, transa=0, transb=0, m=n, n=n, k=n, alpha=1.0, a=pa, lda=n,
                    b=pb, ldb=n, beta=0.0, c=pc, ldc=n))
                c = np.frombuffer(gpu.memcpy_dtoh(pc, 4 * n * n), dtype=np.float32).reshape((n, n), order="F")
                self.wrong += not np.allclose(c, a @ b, rtol=1e-4, atol=1e-4)
                self.rounds += 1
        except Exception as exc:  # every call must succeed: the first failure ends the loop, recorded
            self.failures.append(repr(exc))


def _vm(control: Path) -> dict[str, object]:
    vms = request(control, {"cmd": "status"})["vms"]
    assert isinstance(vms, list)
    row = vms[0]
    assert isinstance(row, dict)
    return row


def _progress(loop: GuestLoop, rounds: int) -> None:
    start = loop.rounds
    wait_for(f"{rounds} more guest rounds", lambda: loop.rounds >= start + rounds or bool(loop.failures),
             timeout=120)
    assert not loop.failures, loop.failures


def test_a_guest_notices_nothing_across_three_restarts_and_a_crash_of_the_supervisor(tmp_path: Path) -> None:
    sockets, config = tmp_path / "sockets", tmp_path / "config.toml"
    write_config(config, sockets, backend="sim", vm_ids=[1])
    control = sockets / "control.sock"
    systemd = FakeSystemd(tmp_path, [sys.executable, "-m", "mediator.cli", "run", "-c", str(config)])
    try:
        systemd.start()
        gpu = GuestClient.connect(sockets / "vm1.sock")
        gpu.init()
        loop = GuestLoop(gpu)
        loop.start()
        _progress(loop, 3)
        first = _vm(control)
        worker = first["worker_pid"]
        assert isinstance(worker, int)
        assert {f"vm1.{kind}" for kind in ("listen", f"peer.{gpu.peer_id}", "region", "doorbell.0", "irq.0",
                                            "stats", "trace", "control", "state")} <= set(systemd.stored_names())
        supervisors = {systemd.main_pid}

        def reexec() -> None:
            systemd.signal_main(signal.SIGUSR2)
            systemd.wait_ready()

        for replace in (systemd.restart, reexec, systemd.restart, systemd.crash):
            replace()
            wait_for("the VM adopted", lambda: _vm(control)["state"] == "serving", timeout=30)
            row = _vm(control)
            assert row["connected"] is True, row
            assert row["worker_pid"] == worker and row["epoch"] == first["epoch"] and row["restarts"] == 0
            _progress(loop, 3)
            supervisors.add(systemd.main_pid)
        assert len(supervisors) == 4  # three new processes (the re-exec keeps its pid), same worker
        assert systemd.log.count('"vm adopted"') == 4

        # a restart into a configuration mistake fails (exit 2) and leaves the VM to the store; the
        # start after the fix adopts it
        good = config.read_text()
        config.write_text(good + '\n[[vm]]\nid = 9\nname = "vm9"\nowner = "no-such-user-here"\n')
        with pytest.raises(RuntimeError, match="exited with 2"):
            systemd.restart()
        _progress(loop, 3)  # served all the while
        config.write_text(good)
        systemd.start()
        row = _vm(control)
        assert row["state"] == "serving" and row["worker_pid"] == worker and row["epoch"] == first["epoch"]
        _progress(loop, 3)

        loop.halt.set()
        loop.join(60)
        assert not loop.failures and loop.wrong == 0, (loop.failures, loop.wrong)
        assert gpu.header.device_state == DeviceState.READY
        # every call counted once, across the supervisors: init, cublas_create, 4 allocations, 6 a round
        wait_for("the worker's counters published", lambda: _vm(control)["calls"] == 6 + 6 * loop.rounds)

        # the adopted worker (no longer the supervisor's child after the crash) still resets its VM alone
        epoch = _vm(control)["epoch"]
        assert isinstance(epoch, int)
        os.kill(worker, signal.SIGKILL)
        wait_for("the VM reset with a new worker", lambda: _vm(control)["epoch"] == epoch + 1
                 and _vm(control)["state"] == "serving")
        gpu.recover(30)
        gpu.init()
        ptr = gpu.mem_alloc(4096)
        gpu.memcpy_htod(ptr, b"after the reset")
        assert gpu.memcpy_dtoh(ptr, 15) == b"after the reset"

        # systemctl stop: the store is released, the worker drains and exits, the guest sees STOPPED
        new_worker = _vm(control)["worker_pid"]
        assert isinstance(new_worker, int) and new_worker != worker
        assert systemd.stop() == 0
        wait_for("the region stopped", lambda: gpu.header.device_state == DeviceState.STOPPED)
        wait_for("the worker exited", lambda: not _alive(new_worker))
        with pytest.raises(DeviceGoneError):
            gpu.nop()
        gpu.close()
    finally:
        systemd.close()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_a_vm_the_new_configuration_drops_is_not_adopted_and_ends_cleanly(tmp_path: Path) -> None:
    sockets, config = tmp_path / "sockets", tmp_path / "config.toml"
    write_config(config, sockets, backend="sim", vm_ids=[1, 2])
    systemd = FakeSystemd(tmp_path, [sys.executable, "-m", "mediator.cli", "run", "-c", str(config)])
    try:
        systemd.start()
        gpu = GuestClient.connect(sockets / "vm2.sock")
        gpu.init()
        ptr = gpu.mem_alloc(4096)
        status = request(sockets / "control.sock", {"cmd": "status"})["vms"]
        worker = next(v["worker_pid"] for v in status if v["name"] == "vm2")
        write_config(config, sockets, backend="sim", vm_ids=[1])
        systemd.restart()
        assert [v["name"] for v in request(sockets / "control.sock", {"cmd": "status"})["vms"]] == ["vm1"]
        wait_for("vm2's worker drained and exited", lambda: not _alive(worker))
        assert gpu.header.device_state == DeviceState.STOPPED
        with pytest.raises(DeviceGoneError):
            gpu.memcpy_dtoh(ptr, 16)
        assert not [name for name in systemd.stored_names() if name.startswith("vm2.")]
        assert "handed-over fds for no configured VM closed" in systemd.log
        gpu.close()
    finally:
        systemd.stop()
        systemd.close()
