"""The driver API of libcuda.so.1 without the runtime: the VMM calls GGML's pool uses, modules loaded from
each image format (a fatbin, a cubin, PTX) whose sizes the shim reads from the images, launches with
argument pointers and with a caller-packed block, function attributes (read, raised, refused, and the
launch limit they set), and a function reached through cuGetProcAddress.
A mediator (sim) serves the socket; the program is ``driver_api_probe.py`` in its own process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mediator._launcher import running_mediator
from tests.qemu._support import REPO, SelftestReport

from ._support import ShimBuild

PROBE = Path(__file__).resolve().parent / "driver_api_probe.py"
CHECKS = ("init", "vmm", "module_fatbin", "module_cubin", "module_ptx", "func_attributes", "proc_address_call")


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_the_driver_api_serves_vmm_modules_of_every_format_and_launches(shim: ShimBuild, tmp_path: Path) -> None:
    with running_mediator(tmp_path, backend="sim", vms=1) as mediator:
        conf = tmp_path / "guest.conf"
        conf.write_text(f"socket = {mediator.vm_socket(1)}\n")
        proc = subprocess.run([sys.executable, str(PROBE), str(shim.library("cuda")), str(REPO / "tests" / "kernels")],
                              capture_output=True, text=True, timeout=120, check=False,
                              env={"VGPU_GUEST_CONF": str(conf), "PATH": "/usr/bin:/bin"})
    report = SelftestReport.parse(proc.stdout)
    failed = [f"{r.name}: {r.value}" for r in report.results.values() if not r.ok]
    assert [name for name in CHECKS if name not in report.results] == [], proc.stdout + proc.stderr
    assert not failed, "\n".join(failed) + proc.stderr
    assert proc.returncode == 0 and report.verdict == "SELFTEST PASS"
