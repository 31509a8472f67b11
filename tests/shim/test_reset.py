"""A reset of the VM's worker (new epoch, zeroed ring indices) reaches a program on the shim as the
device being unavailable for the call that notices it, never as a ring error; then it starts over on
the fresh rings (protocol.md 1.3). A mediator (sim) serves the socket; the program is
``reset_probe.py`` in its own process (the shim connects once per process)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from mediator._control_client import request
from mediator._launcher import running_mediator

from ._support import ShimBuild

PROBE = Path(__file__).resolve().parent / "reset_probe.py"
DEVICE_UNAVAILABLE = 46


@pytest.mark.timeout(120)
def test_a_program_sees_a_reset_as_an_unavailable_device_then_starts_over(shim: ShimBuild, tmp_path: Path) -> None:
    with running_mediator(tmp_path, backend="sim", vms=1) as mediator:
        conf = tmp_path / "guest.conf"
        conf.write_text(f"socket = {mediator.vm_socket(1)}\n")
        proc = subprocess.Popen([sys.executable, str(PROBE), str(shim.library("cuda"))], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={"VGPU_GUEST_CONF": str(conf), "PATH": "/usr/bin:/bin"})
        assert proc.stdin is not None and proc.stdout is not None
        try:
            assert proc.stdout.readline().split() == ["ready", "0", "0", "0", "0", "0"]
            request(mediator.control, {"cmd": "reset", "vm": 1})
            deadline = time.monotonic() + 60
            while not any(vm["restarts"] == 1 and vm["state"] == "serving"
                          for vm in request(mediator.control, {"cmd": "status"})["vms"]):
                assert time.monotonic() < deadline, "the worker was not reset"
                time.sleep(0.05)
            proc.stdin.write("go\n")
            proc.stdin.flush()
            after = proc.stdout.readline().split()
        finally:
            _, stderr = proc.communicate(timeout=60)
    assert after == ["after", str(DEVICE_UNAVAILABLE), "0"], stderr
    assert "reset the device (epoch 0 -> 1)" in stderr
    assert "jumped past" not in stderr
