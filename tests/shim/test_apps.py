"""What real applications do before their first kernel, through the shim against a mediator on sim:
every CUDA 13 device attribute, device properties without a hole, a driver version a CUDA 13 runtime
accepts, device flags, profiler start/stop and the limits the shim honours succeed, and cuBLAS's
Set/Get Vector/Matrix move the elements they name and nothing else, and the typed GEMM family
(SgemmStridedBatched, SgemmBatched, Hgemm) computes on the protocol's GEMMs, and the stream-ordered
allocator's default pool allocates against the VM's quota and frees in the stream's order, and
cuBLASLt's matmul computes what GemmEx expresses (and refuses an epilogue it cannot), and a captured
graph updates its executable graph, which then runs, and a graph built node by
node (memset, kernel, child graph; cloned) runs. The program is
``apps_probe.py`` in its own process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mediator._launcher import running_mediator
from tests.qemu._support import SelftestReport

from ._support import ShimBuild

PROBE = Path(__file__).resolve().parent / "apps_probe.py"
CHECKS = ("versions", "every_attribute", "legacy_properties", "device_properties", "device_flags", "profiler", "limits",
          "set_get_matrix", "set_get_vector", "set_get_invalid", "sgemm_strided_batched", "sgemm_batched", "hgemm",
          "gemv",
          "stream_ordered_allocator", "cublaslt_matmul",
          "graph_exec_update", "peers", "graph_built",
          "graph_built_runtime", "cublasxt_sgemm")


@pytest.mark.timeout(180)
def test_what_applications_do_before_a_kernel(shim: ShimBuild, tmp_path: Path) -> None:
    log = tmp_path / "shim.log"
    with running_mediator(tmp_path, backend="sim", vms=1) as mediator:
        conf = tmp_path / "guest.conf"
        conf.write_text(f"socket = {mediator.vm_socket(1)}\nlog = {log}\n")
        proc = subprocess.run([sys.executable, str(PROBE), str(shim.directory)], capture_output=True, text=True,
                              timeout=120, check=False, env={"VGPU_GUEST_CONF": str(conf), "PATH": "/usr/bin:/bin"})
    report = SelftestReport.parse(proc.stdout)
    failed = [f"{r.name}: {r.value}" for r in report.results.values() if not r.ok]
    assert [name for name in CHECKS if name not in report.results] == [], proc.stdout + proc.stderr
    assert not failed, "\n".join(failed) + proc.stderr
    assert proc.returncode == 0 and report.verdict == "SELFTEST PASS"
    logged = log.read_text() if log.exists() else ""
    assert "attributes the host does not report" not in logged  # cudaGetDeviceProperties left no field 0
    assert "cuCtxSetLimit: limit 6 = 1048576 is not served" in logged  # a refusal says why
