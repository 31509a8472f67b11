"""A real VM keeps its GPU while the daemon is restarted three ways and SIGKILLed under it.

QEMU boots the Debian kernel; the guest's /init runs the C selftest (copies checked byte for byte, an
SGEMM checked against its reference, events, a latched async error) round after round on the same
ivshmem-doorbell device. The daemon runs under :class:`FakeSystemd` (PID 1 here is not systemd): as
each of the first rounds starts, it is restarted as ``systemctl restart`` does, re-executed by SIGUSR2,
restarted again, and SIGKILLed (and started again with the stored fds). Every round must pass, the VM
boots once, and the VM's worker, epoch and connection are the ones it started with.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from mediator._control_client import request
from mediator._launcher import write_config

from ..mediator._fake_systemd import FakeSystemd
from ._support import INIT_PREAMBLE, CBuild, QemuKit, build_initramfs_tree, qemu_command, run_vm

pytestmark = [pytest.mark.qemu, pytest.mark.slow, pytest.mark.timeout(600)]

ROUNDS = 6

LOOP_INIT = INIT_PREAMBLE + f"""i=1
while [ $i -le {ROUNDS} ]; do
    echo "VGPU-ROUND-START $i"
    /vgpu_selftest > /round.log 2>&1
    rc=$?
    grep -E '^(RESULT name=[a-z_0-9]+ ok=0|SELFTEST )' /round.log
    echo "VGPU-ROUND-END $i rc=$rc"
    i=$((i + 1))
done
echo "VGPU-SELFTEST-EXIT 0"
read -t 120 go
poweroff -f
"""


def test_a_vm_keeps_its_gpu_across_three_restarts_and_a_crash_of_the_daemon(
        qemu_kit: QemuKit, c_build: CBuild, tmp_path: Path, artifacts: Path) -> None:
    sockets, config = tmp_path / "sockets", tmp_path / "config.toml"
    write_config(config, sockets, backend="sim", vm_ids=[1])
    control = sockets / "control.sock"
    initrd = build_initramfs_tree(tmp_path / "initramfs", {"/vgpu_selftest": c_build.selftest}, LOOP_INIT)
    systemd = FakeSystemd(tmp_path, [sys.executable, "-m", "mediator.cli", "run", "-c", str(config)])

    def reexec() -> None:
        systemd.signal_main(signal.SIGUSR2)
        systemd.wait_ready()

    plan: dict[int, Callable[[], object]] = {2: systemd.restart, 3: reexec, 4: systemd.restart, 5: systemd.crash}
    seen: list[dict[str, object]] = []

    def vm() -> dict[str, object]:
        row = request(control, {"cmd": "status"})["vms"][0]
        assert isinstance(row, dict)
        return row

    def on_line(line: str) -> None:
        if line.startswith("VGPU-ROUND-START "):
            number = int(line.split()[1])
            if number == 2:
                seen.append(vm())
            if number in plan:  # while the round's calls run
                plan[number]()

    try:
        systemd.start()
        run = run_vm(qemu_command(qemu_kit, initrd, sockets / "vm1.sock"), lambda: seen.append(vm()),
                     float(os.environ.get("VGPU_QEMU_DEADLINE_S", "480")), on_line=on_line)
        (artifacts / "console-restarts.log").write_text(run.text + "\n")
        ends = [line for _, line in run.lines if line.startswith("VGPU-ROUND-END ")]
        assert ends == [f"VGPU-ROUND-END {i} rc=0" for i in range(1, ROUNDS + 1)], run.text[-6000:]
        assert run.text.count("SELFTEST PASS") == ROUNDS and " ok=0" not in run.text
        assert sum(line.startswith("VGPU-BOOTED") for _, line in run.lines) == 1  # never rebooted
        assert run.exit_code == 0
        before, after = seen
        assert after["worker_pid"] == before["worker_pid"] and after["epoch"] == before["epoch"] == 0
        assert after["restarts"] == 0 and after["state"] == "serving"
        assert systemd.log.count('"vm adopted"') == len(plan)  # READY=1 only once adopted
    finally:
        systemd.stop()
        systemd.close()
