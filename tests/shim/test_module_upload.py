"""Through the shim's libcuda.so.1 (``module_upload_probe.py``, in its own process): a module image
larger than the channel's arena loads in chunks and its kernel runs, launched cooperatively (with
cuLaunchCooperativeKernel and with cuLaunchKernelEx's cooperative attribute); a grid larger than the
device holds at once is refused with 720; an image past ``device.module_bytes`` is refused before it
is sent."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mediator._control_client import request
from mediator._launcher import running_mediator
from tests.qemu._support import REPO, SelftestReport

from ._support import ShimBuild

PROBE = Path(__file__).resolve().parent / "module_upload_probe.py"
CHECKS = ("init", "module_upload", "cooperative_launch", "launch_kernel_ex_cooperative", "cooperative_too_large",
          "module_too_large")


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_an_image_past_the_arena_loads_in_chunks_and_runs_cooperatively(shim: ShimBuild, tmp_path: Path) -> None:
    with running_mediator(tmp_path, backend="sim", vms=1) as mediator:
        request(mediator.control, {"cmd": "trace", "vm": "vm1", "enable": True})
        conf = tmp_path / "guest.conf"
        conf.write_text(f"socket = {mediator.vm_socket(1)}\n")
        proc = subprocess.run([sys.executable, str(PROBE), str(shim.library("cuda")), str(REPO / "tests" / "kernels")],
                              capture_output=True, text=True, timeout=180, check=False,
                              env={"VGPU_GUEST_CONF": str(conf), "PATH": "/usr/bin:/bin"})
        records = request(mediator.control, {"cmd": "trace", "vm": "vm1", "limit": 100000})["records"]
    report = SelftestReport.parse(proc.stdout)
    failed = [f"{r.name}: {r.value}" for r in report.results.values() if not r.ok]
    assert [name for name in CHECKS if name not in report.results] == [], proc.stdout + proc.stderr
    assert not failed, "\n".join(failed) + proc.stderr
    assert proc.returncode == 0 and report.verdict == "SELFTEST PASS"
    calls = [r["call"] for r in records]
    begins = [r["status"] for r in records if r["call"] == "module_upload_begin"]
    assert begins == [0, 1]  # the image in chunks; the one past module_bytes refused at once
    assert calls.count("module_upload_chunk") >= 2 and calls.count("module_load_upload") == 1
    assert calls.count("launch_cooperative_kernel") == 3  # cuLaunchCooperativeKernel, cuLaunchKernelEx, too large
