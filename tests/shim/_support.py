"""Helpers for the guest shim's tests: its build, its export table, the test programs and their output.

The programs in ``programs/bin`` are checked in, built by ``programs/build.sh`` with ``nvcc -cudart
shared`` (CUDA 13): the tests run those binaries, with the shim's libraries found first, and never
need nvcc. Each program prints ``RESULT name=… ok=… value=…`` lines and a ``SELFTEST PASS|FAIL``
verdict, the format of the C selftest (``tests/qemu/_support.SelftestReport`` parses both).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.qemu._support import REPO, SelftestReport

SHIM = REPO / "guest" / "shim"
PROGRAMS = Path(__file__).resolve().parent / "programs" / "bin"
LIBRARIES = {"cuda": "libcuda.so.1", "cudart": "libcudart.so.13", "cublas": "libcublas.so.13"}
#: the version node each library's symbols carry (NVIDIA versions cudart's and cuBLAS's by soname)
VERSION_NODES = {"cuda": None, "cudart": "libcudart.so.13", "cublas": "libcublas.so.13"}

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


def read_exports() -> list[Export]:
    rows = []
    for line in (SHIM / "exports.tsv").read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        fields = line.split("\t")
        rows.append(Export(fields[0], fields[1], fields[2], fields[3] if len(fields) > 3 else ""))
    return rows


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
