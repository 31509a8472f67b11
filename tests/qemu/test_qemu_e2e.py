"""A real VM end to end: QEMU boots a Debian kernel whose /init runs the C selftest on ivshmem-doorbell.

The mediator (sim backend) serves the VM's socket; QEMU's ``ivshmem-doorbell`` connects to it as an
ivshmem-server client; inside the guest ``vgpu_selftest`` finds the PCI device 1af4:1110, maps its
BARs through sysfs and runs the workload. The test reads the serial console line by line, and while
the guest waits for the go-ahead it checks the mediator's status and trace for the same calls.
The console log and the timings are saved under ``artifacts/qemu/``.

TCG by default (KVM is nested on the development machines and hangs this kernel);
``VGPU_QEMU_ACCEL=kvm`` asks for KVM.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mediator._control_client import request
from mediator._launcher import running_mediator

from ._support import QemuKit, SelftestReport

pytestmark = [pytest.mark.qemu, pytest.mark.slow, pytest.mark.timeout(420)]

BOOT_DEADLINE_S = float(os.environ.get("VGPU_QEMU_DEADLINE_S", "300"))


def qemu_command(kit: QemuKit, initrd: Path, vm_socket: Path) -> list[str]:
    """The command line docs/qemu.md documents (plus -no-reboot so a panic ends the test)."""
    accel = os.environ.get("VGPU_QEMU_ACCEL", "tcg")
    return [
        kit.qemu, "-machine", f"q35,accel={accel}", "-m", "256", "-nographic", "-no-reboot", "-nic", "none",
        "-kernel", str(kit.kernel), "-initrd", str(initrd),
        "-append", "console=ttyS0 panic=-1 edd=off",
        "-chardev", f"socket,path={vm_socket},id=ivsh",
        "-device", "ivshmem-doorbell,chardev=ivsh,vectors=1",
    ]


@dataclass
class ConsoleRun:
    lines: list[tuple[float, str]] = field(default_factory=list)  # (seconds since start, line)
    exit_code: int | None = None

    def first(self, prefix: str) -> tuple[float, str]:
        for stamp, line in self.lines:
            if line.startswith(prefix):
                return stamp, line
        raise AssertionError(f"the console never printed {prefix!r}:\n{self.text[-6000:]}")

    @property
    def text(self) -> str:
        return "\n".join(line for _, line in self.lines)


def run_vm(command: list[str], on_waiting: object, deadline_s: float) -> ConsoleRun:
    """Boot, stream the console, call ``on_waiting()`` once the guest waits, then let it power off."""
    run = ConsoleRun()
    started = time.monotonic()
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    assert proc.stdout is not None and proc.stdin is not None
    os.set_blocking(proc.stdout.fileno(), False)
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    pending = b""
    released = False
    try:
        while True:
            remaining = started + deadline_s - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"the VM did not finish within {deadline_s} s:\n{run.text[-6000:]}")
            if not selector.select(min(remaining, 1.0)):
                continue
            chunk = proc.stdout.read()
            if not chunk:
                break  # QEMU exited (poweroff)
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for raw in complete:
                line = raw.decode(errors="replace").rstrip("\r")
                line = line[line.find("VGPU-"):] if "VGPU-" in line else line  # after escape codes
                run.lines.append((time.monotonic() - started, line))
                if line.startswith("VGPU-SELFTEST-EXIT") and not released:
                    released = True
                    try:
                        on_waiting()  # type: ignore[operator]
                    finally:
                        proc.stdin.write(b"go\n")
                        proc.stdin.flush()
        if pending:
            run.lines.append((time.monotonic() - started, pending.decode(errors="replace")))
        run.exit_code = proc.wait(30)
        return run
    finally:
        selector.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdin.close()
        proc.stdout.close()


def test_a_real_vm_runs_the_c_selftest_through_ivshmem_doorbell(
    qemu_kit: QemuKit, initramfs: Path, tmp_path: Path, artifacts: Path,
) -> None:
    # A long idle sleep: a worker that was not woken by the guest's doorbell write would stall
    # every call by up to 10 s, and the deadline below would catch it.
    with running_mediator(tmp_path, backend="sim", vms=1, extra="max_sleep_ms = 10000") as mediator:
        request(mediator.control, {"cmd": "trace", "vm": "vm1", "enable": True})
        seen: dict[str, object] = {}

        def while_guest_waits() -> None:
            seen["status"] = next(v for v in request(mediator.control, {"cmd": "status"})["vms"]
                                  if v["name"] == "vm1")
            seen["trace"] = request(mediator.control, {"cmd": "trace", "vm": "vm1", "limit": 10000})

        command = qemu_command(qemu_kit, initramfs, mediator.vm_socket(1))
        run = run_vm(command, while_guest_waits, BOOT_DEADLINE_S)
        log_path = artifacts / "console-vm1.log"
        log_path.write_text(run.text + "\n")

        booted_at, booted = run.first("VGPU-BOOTED")
        done_at, exited = run.first("VGPU-SELFTEST-EXIT")
        report = SelftestReport.parse(run.text)
        timings = {
            "accel": os.environ.get("VGPU_QEMU_ACCEL", "tcg"),
            "host_s_to_init": round(booted_at, 2),
            "guest_uptime_at_init_s": float(booted.split("uptime=")[1]),
            "host_s_to_selftest_done": round(done_at, 2),
            "selftest_workload_ms": float(report["workload_ms"].value) if "workload_ms" in report.results
            else None,
            "copy_16mib": report["copy_16mib"].value if "copy_16mib" in report.results else None,
            "qemu_exit_code": run.exit_code,
            "command": command,
        }
        (artifacts / "timings-vm1.json").write_text(json.dumps(timings, indent=2) + "\n")

        assert exited.startswith("VGPU-SELFTEST-EXIT 0"), f"selftest failed, console in {log_path}"
        report.check_all_passed()
        assert run.exit_code == 0
        assert any(line.startswith("VGPU-PCI ") and line.endswith("0x1af4:0x1110") for _, line in run.lines)
        init = report["transport_init"].fields()
        assert init["backend"] == "pci" and init["vm_id"] == "1" and init["region"] == str(64 << 20)
        assert int(init["peer_id"]) >= 1  # IVPosition: the id the mediator gave QEMU, not its own 0
        assert int(report["copy_16mib"].fields()["chunks"]) >= 2
        assert report.stat("kicks") >= 1  # the host slept and the doorbell woke it

        status = seen["status"]
        assert isinstance(status, dict)
        assert status["connected"] is True and status["state"] == "serving"
        assert status["calls"] == report.stat("submitted")
        assert status["errors"] == 2  # the deliberate failed post, and the sync that reported it
        assert status["bytes_htod"] == report.stat("bytes_htod")
        assert status["bytes_dtoh"] == report.stat("bytes_dtoh")
        assert status["memory_used"] == 0
        trace = seen["trace"]
        assert isinstance(trace, dict)
        calls = [record["call"] for record in trace["records"]]
        assert len(calls) == report.stat("submitted")
        assert calls[:4] == ["init", "device_get_count", "device_get_name", "device_total_mem"]
        assert {"cublas_sgemm", "event_record", "event_elapsed_time", "memset_d32"} <= set(calls)

    assert "VGPU-POWEROFF" in run.text
