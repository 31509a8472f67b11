"""Driver-API launch helpers of libcuda.so.1 (``launch_helpers_probe.py`` in its own process, against a
mediator on sim): cuOccupancyMaxPotentialBlockSize{,WithFlags} as CUDA computes it, its dynamic
shared memory callback called in the guest; cuTensorMapEncodeTiled (also through cuGetProcAddress) and a
TMA load of the corpus on the map it made; cuMemAdvise{,_v2} and cudaMemAdvise on managed memory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mediator._launcher import running_mediator
from tests.qemu._support import REPO, SelftestReport

from ._support import ShimBuild

PROBE = Path(__file__).resolve().parent / "launch_helpers_probe.py"
CHECKS = ("setup", "potential_fixed", "potential_none", "potential_callback", "potential_limit", "potential_refused",
          "tensor_map_tma", "tensor_map_refused", "mem_advise")


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_launch_helpers(shim: ShimBuild, tmp_path: Path) -> None:
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
