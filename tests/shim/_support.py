"""Helpers for the guest shim's tests: its build, its export table, the test programs and their output.

The programs in ``programs/bin`` are checked in, built by ``programs/build.sh`` with ``nvcc -cudart
shared`` (CUDA 13): the tests run those binaries, with the shim's libraries found first, and never
need nvcc. Each program prints ``RESULT name=… ok=… value=…`` lines and a ``SELFTEST PASS|FAIL``
verdict, the format of the C selftest (``tests/qemu/_support.SelftestReport`` parses both).
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from mediator._control_client import request
from mediator._launcher import MediatorProcess
from tests.qemu._support import REPO, SelftestReport

SHIM = REPO / "guest" / "shim"
PROGRAMS = Path(__file__).resolve().parent / "programs" / "bin"
LIBRARIES = {"cuda": "libcuda.so.1", "cudart": "libcudart.so.13", "cublas": "libcublas.so.13",
             "cublasLt": "libcublasLt.so.13", "nvml": "libnvidia-ml.so.1"}
#: the version node each library's symbols carry (NVIDIA versions cudart's, cuBLAS's and cuBLASLt's
#: by soname, as `readelf -V` shows on the wheels' libraries; libcuda's and NVML's are unversioned)
VERSION_NODES = {"cuda": None, "cudart": "libcudart.so.13", "cublas": "libcublas.so.13",
                 "cublasLt": "libcublasLt.so.13", "nvml": None}

#: every check each program makes, in order; a missing one fails as surely as a failed one
PROGRAM_CHECKS: dict[str, tuple[str, ...]] = {
    "vector_add": ("device_count", "device_properties", "versions", "malloc", "copy_in", "vector_add",
                   "scale_f32", "device_variable", "pointer_attributes", "invalid_configuration",
                   "func_attributes", "func_set_attribute", "unreferenced_kernel", "timings", "free"),
    "gemm": ("handle", "sgemm", "gemm_ex", "gemm_strided_batched_ex", "gemm_batched_ex", "invalid_lda",
             "latched_gemm_error", "destroy"),
    "streams_events": ("pinned_alloc", "streams", "events", "two_streams", "event_timing",
                       "event_without_timing", "memset_async", "async_error_latched", "cleanup"),
    "graph": ("capture", "capture_deferred", "instantiate_launch", "graph_result", "graph_destroy"),
    "blas3": ("handle", "strsm_left_lower", "strsm_left_upper_trans", "strsm_right_upper",
              "strsm_right_lower_unit_trans", "strsm_batched", "gemm_strided_batched_f64", "gemm_int8_int32",
              "gemm_f16_compute", "gemm_complex_f32", "gemm_type_not_offered", "destroy"),
}


@dataclass(frozen=True)
class ShimBuild:
    directory: Path

    def library(self, name: str) -> Path:
        return self.directory / LIBRARIES[name]


@dataclass(frozen=True)
class Export:
    library: str
    symbol: str
    status: str
    note: str


def _rows(name: str) -> list[list[str]]:
    return [line.split("\t") for line in (SHIM / name).read_text().splitlines() if line and not line.startswith("#")]


def read_exports() -> list[Export]:
    """exports.tsv as written: the functions the shim serves, and those it names as not served."""
    return [Export(f[0], f[1], f[2], f[3] if len(f) > 3 else "") for f in _rows("exports.tsv")]


def read_public() -> dict[tuple[str, str], str]:
    """public.tsv: (library, symbol) -> what the function returns, for every public function of
    NVIDIA's libraries (generated from their headers by guest/shim/extract_exports.py)."""
    return {(f[0], f[1]): f[2] for f in _rows("public.tsv")}


def all_exports() -> list[Export]:
    """Every function the libraries export: exports.tsv's rows, then each public function it does
    not list, not supported (what the Makefile generates the stubs and version scripts from)."""
    rows = read_exports()
    listed = {(row.library, row.symbol) for row in rows}
    return rows + [Export(lib, symbol, "unsupported", "") for (lib, symbol) in sorted(read_public())
                   if (lib, symbol) not in listed]


def check_program(name: str, report: SelftestReport) -> None:
    """Every check of the program reported, and passed."""
    missing = [check for check in PROGRAM_CHECKS[name] if check not in report.results]
    failed = [f"{r.name}: {r.value}" for r in report.results.values() if not r.ok]
    assert not missing, f"{name}: checks never reported: {missing}"
    assert not failed, f"{name}: checks failed:\n" + "\n".join(failed)
    assert report.verdict == "SELFTEST PASS", report.verdict


def run_program(name: str, shim: ShimBuild, conf: Path | None, timeout: float = 120) -> tuple[int, str]:
    """Run a checked-in program with the shim's libraries first on the loader's path."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("VGPU_")}
    env["LD_LIBRARY_PATH"] = str(shim.directory)
    if conf is not None:
        env["VGPU_GUEST_CONF"] = str(conf)
    proc = subprocess.run([str(PROGRAMS / name)], capture_output=True, text=True, timeout=timeout, env=env,
                          check=False)
    return proc.returncode, proc.stdout + proc.stderr


def wait_until_listening(mediator: MediatorProcess, vm: int = 1, timeout: float = 60) -> None:
    """Until the VM's previous guest session is torn down (one guest process at a time per VM)."""
    deadline = time.monotonic() + timeout
    while request(mediator.control, {"cmd": "status"})["vms"][vm - 1]["state"] != "listening":
        if time.monotonic() > deadline:
            raise TimeoutError(f"VM {vm}'s previous guest session did not end")
        time.sleep(0.01)
