"""NVML and nvidia-smi in the guest, against a mediator on sim: what Ollama, llama.cpp, PyTorch and
monitoring tools read (``nvml_probe.py``, through ctypes), and nvidia-smi's table, ``-L`` and
``--query-gpu`` CSV, each process on a channel of its own, one right after the other."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mediator._launcher import MediatorProcess, running_mediator
from tests.qemu._support import SelftestReport

from ._support import ShimBuild

PROBE = Path(__file__).resolve().parent / "nvml_probe.py"
CHECKS = ("init", "error_string", "versions", "identity", "handles", "memory", "memory_version", "capabilities",
          "processes", "not_supported", "shutdown")


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MediatorProcess, Path]]:
    workdir = tmp_path_factory.mktemp("nvml")
    with running_mediator(workdir, backend="sim", vms=1) as mediator:
        conf = workdir / "guest.conf"
        conf.write_text(f"socket = {mediator.vm_socket(1)}\nlog = {workdir / 'shim.log'}\n")
        yield mediator, conf


def run(sim: tuple[MediatorProcess, Path], *argv: str) -> subprocess.CompletedProcess[str]:
    _, conf = sim  # back to back, as a monitoring tool runs: each is served on a channel of its own
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=60, check=False,
                          env={"VGPU_GUEST_CONF": str(conf), "PATH": "/usr/bin:/bin"})


@pytest.mark.timeout(180)
def test_nvml_serves_what_monitoring_code_reads(shim: ShimBuild, sim: tuple[MediatorProcess, Path]) -> None:
    proc = run(sim, sys.executable, str(PROBE), str(shim.directory))
    report = SelftestReport.parse(proc.stdout)
    failed = [f"{r.name}: {r.value}" for r in report.results.values() if not r.ok]
    assert [name for name in CHECKS if name not in report.results] == [], proc.stdout + proc.stderr
    assert not failed, "\n".join(failed) + proc.stderr
    assert proc.returncode == 0 and report.verdict == "SELFTEST PASS"


@pytest.mark.timeout(180)
def test_nvidia_smi_table_list_and_csv_queries(shim: ShimBuild, sim: tuple[MediatorProcess, Path]) -> None:
    smi = str(shim.directory / "nvidia-smi")
    table = run(sim, smi)
    assert table.returncode == 0, table.stdout + table.stderr
    assert "vGPU Simulated H100" in table.stdout and "00000000:00:05.0" in table.stdout
    assert "0MiB / 2048MiB" in table.stdout  # the VM's quota, nothing allocated
    assert "CUDA Version: 13.0" in table.stdout
    assert "No running processes found" in table.stdout  # nvidia-smi holds no context: no channel of its own

    listed = run(sim, smi, "-L")
    assert listed.returncode == 0
    assert listed.stdout.startswith("GPU 0: vGPU Simulated H100 (UUID: GPU-56475055-5349-4d00-0000-000000000001)")

    csv = run(sim, smi, "--query-gpu=index,name,memory.total,memory.used,compute_cap,clocks.max.sm,utilization.gpu",
              "--format=csv")
    assert csv.returncode == 0, csv.stdout + csv.stderr
    assert csv.stdout.splitlines() == [
        "index, name, memory.total [MiB], memory.used [MiB], compute_cap, clocks.max.sm [MHz], utilization.gpu [%]",
        "0, vGPU Simulated H100, 2048 MiB, 0 MiB, 9.0, 1980 MHz, [N/A]"]

    bare = run(sim, smi, "--query-gpu=memory.total,pci.bus_id,driver_version", "--format=csv,noheader,nounits")
    assert bare.stdout.splitlines() == ["2048, 00000000:00:05.0, 13.0 (vgpu-mediator simulator)"]

    bad = run(sim, smi, "--query-gpu=name,bogus", "--format=csv")
    assert bad.returncode == 2 and 'Field "bogus" is not a valid field to query.' in bad.stdout


HOLDER = """
import ctypes as ct, sys
ct.CDLL(sys.argv[1] + "/libcuda.so.1")  # what libcudart.so.13 needs, by its soname
cudart = ct.CDLL(sys.argv[1] + "/libcudart.so.13")
dptr = ct.c_void_p()
assert cudart.cudaMalloc(ct.byref(dptr), ct.c_size_t(16 << 20)) == 0
print("ready", flush=True)
sys.stdin.read()
"""


@pytest.mark.timeout(180)
def test_nvidia_smi_lists_the_vms_cuda_processes(shim: ShimBuild, sim: tuple[MediatorProcess, Path]) -> None:
    """A process holding a context and 16 MiB, seen by nvidia-smi from another process of the guest."""
    _, conf = sim
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(shim.directory)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True,
                              env={"VGPU_GUEST_CONF": str(conf), "PATH": "/usr/bin:/bin"})
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        smi = str(shim.directory / "nvidia-smi")
        apps = run(sim, smi, "--query-compute-apps=pid,used_memory", "--format=csv")
        assert apps.returncode == 0, apps.stdout + apps.stderr
        assert apps.stdout.splitlines() == ["pid, used_gpu_memory [MiB]", f"{holder.pid}, 16 MiB"]
        bare = run(sim, smi, "--query-compute-apps=pid,process_name", "--format=csv,noheader,nounits")
        assert len(bare.stdout.splitlines()) == 1 and bare.stdout.startswith(f"{holder.pid}, python")
        table = run(sim, smi)
        assert f"{holder.pid}" in table.stdout and "16MiB" in table.stdout
    finally:
        holder.communicate(timeout=60)
