"""NVIDIA's bandwidthTest (``samples/bin``) inside a real VM, pinned and pageable: the issue-19 figures
from inside the guest. QEMU (TCG) boots as in ``test_vm_samples.py``, with 512 MiB: in pageable mode the
sample evicts the caches between copies by writing a 256 MB buffer it allocates at start. /init runs it
with ``--memory=pinned`` (cudaHostAlloc: the region's pinned area) and ``--memory=pageable`` (malloc:
the staged path), each judged as ``scripts/cuda-samples`` judges; the figures it prints (GB/s, 32 MB
copies, 100 each) go to ``artifacts/qemu/bandwidth-vm.json`` with the console in
``console-bandwidth.log``. Under TCG the guest's own copies are emulated: pageable figures say more about
the emulator than the mediator, pinned ones (no guest copy) about the mediator.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from mediator._launcher import running_mediator
from tests.qemu._support import (
    INIT_POWEROFF,
    INIT_PREAMBLE,
    QemuKit,
    build_initramfs_tree,
    qemu_command,
    run_vm,
)

from ._support import SAMPLES_BIN, ShimBuild, guest_tree, sample_verdict, sections

pytestmark = [pytest.mark.qemu, pytest.mark.slow, pytest.mark.timeout(1200)]

DEADLINE_S = float(os.environ.get("VGPU_QEMU_DEADLINE_S", "900"))
MODES = ("pinned", "pageable")

INIT_SCRIPT = INIT_PREAMBLE + """cd /tmp
for mode in %(modes)s; do
    echo "VGPU-PROGRAM $mode"
    LD_BIND_NOW=1 /samples/bandwidthTest --memory=$mode </dev/null
    echo "VGPU-PROGRAM-EXIT $mode $? uptime=$(cut -d' ' -f1 /proc/uptime)"
done
echo "VGPU-SELFTEST-EXIT 0 uptime=$(cut -d' ' -f1 /proc/uptime)"
""" + INIT_POWEROFF

#: "Host to Device Bandwidth" … "<bytes> <GB/s>": one figure per direction
FIGURE = re.compile(r"^ (Host to Device|Device to Host|Device to Device) Bandwidth.*?^\s+(\d+)\s+([\d.]+)\s*$",
                    re.M | re.S)


def with_memory(command: list[str], mib: int) -> list[str]:
    """``command`` with the VM's memory (``-m``) set to ``mib``."""
    at = command.index("-m")
    return [*command[:at + 1], str(mib), *command[at + 2:]]


def test_bandwidth_test_passes_in_a_vm_pinned_and_pageable(
    qemu_kit: QemuKit, shim: ShimBuild, tmp_path: Path, artifacts: Path,
) -> None:
    files, texts = guest_tree(shim, {"/samples/bandwidthTest": SAMPLES_BIN / "bandwidthTest"})
    texts["/tmp/.keep"] = ""
    initrd = build_initramfs_tree(tmp_path / "initramfs", files, INIT_SCRIPT % {"modes": " ".join(MODES)}, texts)
    with running_mediator(tmp_path, backend="sim", vms=1) as mediator:
        command = with_memory(qemu_command(qemu_kit, initrd, mediator.vm_socket(1)), 512)
        run = run_vm(command, lambda: None, DEADLINE_S)
    (artifacts / "console-bandwidth.log").write_text(run.text + "\n")

    found = sections(run.text)
    verdicts = {mode: sample_verdict(code, output) if code is not None else "never finished"
                for mode, (output, code) in found.items()}
    assert verdicts == dict.fromkeys(MODES, "PASS"), f"console in {artifacts / 'console-bandwidth.log'}"
    figures = {mode: {way: {"bytes": int(size), "GBps": float(rate)}
                      for way, size, rate in FIGURE.findall(found[mode][0])} for mode in MODES}
    (artifacts / "bandwidth-vm.json").write_text(json.dumps(figures, indent=2) + "\n")
    for mode in MODES:
        assert set(figures[mode]) == {"Host to Device", "Device to Host", "Device to Device"}, found[mode][0]
        assert all(f["bytes"] == 32_000_000 and f["GBps"] > 0 for f in figures[mode].values()), figures
    assert run.exit_code == 0 and "VGPU-POWEROFF" in run.text
