"""A reset of the VM's worker (new epoch, zeroed ring indices) reaches a program on the shim as the
device being unavailable for the call that notices it, never as a ring error; then it starts over on
the fresh rings (protocol.md 1.3). A mediator (sim) serves the socket; the program is
``reset_probe.py`` in its own process (the shim connects once per process)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mediator._launcher import running_mediator

from ._support import ShimBuild, across_reset

PROBE = Path(__file__).resolve().parent / "reset_probe.py"
DEVICE_UNAVAILABLE = 46


@pytest.mark.timeout(120)
def test_a_program_sees_a_reset_as_an_unavailable_device_then_starts_over(shim: ShimBuild, tmp_path: Path) -> None:
    with running_mediator(tmp_path, backend="sim", vms=1) as mediator:
        conf = tmp_path / "guest.conf"
        conf.write_text(f"socket = {mediator.vm_socket(1)}\n")
        after, stderr = across_reset(mediator, PROBE, shim, conf,
                                    ["ready", "0", "0", "0", "0", "0"])
    assert after == ["after", str(DEVICE_UNAVAILABLE), "0"], stderr
    assert "reset the device (epoch 0 -> 1)" in stderr
    assert "jumped past" not in stderr
