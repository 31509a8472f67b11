"""Cluster launches through the shim's libcuda.so.1 against a mediator on ``sim``
(``cluster_probe.py``, in its own process): cuLaunchKernelEx's cluster-dimension attribute reaches the
engine as ``launch_cluster_kernel``, a ``__cluster_dims__`` kernel runs in its clusters from an ordinary
launch, the device says cluster launches are served, and the shapes a GPU refuses answer 912 (a
cooperative launch in clusters: 801, not served)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mediator._control_client import request
from mediator._launcher import running_mediator
from tests.qemu._support import REPO, SelftestReport

from ._support import ShimBuild

PROBE = Path(__file__).resolve().parent / "cluster_probe.py"
CHECKS = (
    "init",
    "cluster_launch_attribute",
    "module",
    "launch_attribute_cluster",
    "cluster_dims_compiled_in",
    "cluster_too_large",
    "cluster_not_the_kernels",
    "cooperative_cluster_not_served",
)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_cluster_launches_through_the_shim(shim: ShimBuild, tmp_path: Path) -> None:
    with running_mediator(tmp_path, backend="sim", vms=1) as mediator:
        request(mediator.control, {"cmd": "trace", "vm": "vm1", "enable": True})
        conf = tmp_path / "guest.conf"
        conf.write_text(f"socket = {mediator.vm_socket(1)}\n")
        proc = subprocess.run(
            [sys.executable, str(PROBE), str(shim.library("cuda")), str(REPO)],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
            env={"VGPU_GUEST_CONF": str(conf), "PATH": "/usr/bin:/bin"},
        )
        records = request(mediator.control, {"cmd": "trace", "vm": "vm1", "limit": 100000})["records"]
    report = SelftestReport.parse(proc.stdout)
    failed = [f"{r.name}: {r.value}" for r in report.results.values() if not r.ok]
    assert [name for name in CHECKS if name not in report.results] == [], proc.stdout + proc.stderr
    assert not failed, "\n".join(failed) + proc.stderr
    assert proc.returncode == 0 and report.verdict == "SELFTEST PASS"
    calls = [r["call"] for r in records]
    # the attribute's three launches; the cooperative one in clusters never leaves the guest
    assert calls.count("launch_cluster_kernel") == 3
