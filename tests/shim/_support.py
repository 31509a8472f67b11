"""Helpers for the guest shim's tests: its build, its export table, the test programs and their output.

The programs in ``programs/bin`` are checked in, built by ``programs/build.sh`` with ``nvcc -cudart
shared`` (CUDA 13): the tests run those binaries, with the shim's libraries found first, and never
need nvcc. Each program prints ``RESULT name=… ok=… value=…`` lines and a ``SELFTEST PASS|FAIL``
verdict, the format of the C selftest (``tests/qemu/_support.SelftestReport`` parses both).
"""

from __future__ import annotations

import os
import re
import selectors
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mediator._control_client import request
from mediator._launcher import MediatorProcess, running_mediator
from tests.qemu._support import REPO, SelftestReport, is_static_elf, shared_library_closure

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
              "gemm_f16_compute", "gemm_complex_f32", "dgemm_zgemm", "getrf_batched",
              "gemm_type_not_offered", "destroy"),
    "graph_nodes": ("mem_alloc_node", "add_nodes", "nodes_and_types", "launch", "exec_set_params", "exec_update",
                    "external_event_record", "not_supported", "cleanup"),
    "graph_memory": ("capture_alloc_free", "upload", "exec_update_refused", "graph_memory_released", "unfreed_relaunch", "free_node_of_another_graph",
                     "outstanding_is_the_programs", "launch_into_capture_refused", "auto_free_on_launch",
                     "foreign_free_refused", "attributes", "one_exec_per_graph", "instantiate_with_params",
                     "conditional_refused"),
    "host_funcs": ("launch_host_func_order", "stream_callback", "after_an_error", "capture", "graph_launches",
                   "nested_capture", "built_graph", "host_node_params", "failing_phase", "exec_update",
                   "cleanup"),
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


#: NVIDIA's CUDA samples checked in by ``samples/build.sh`` (``scripts/cuda-samples --install``): those
#: that need no kernel, and quick kernel samples the PTX engine runs in seconds
SAMPLES_BIN = Path(__file__).resolve().parent / "samples" / "bin"
SAMPLES = {
    "1_Utilities/deviceQuery": "deviceQuery", "1_Utilities/deviceQueryDrv": "deviceQueryDrv",
    "1_Utilities/topologyQuery": "topologyQuery",
    "4_CUDA_Libraries/simpleCUBLAS": "simpleCUBLAS", "4_CUDA_Libraries/matrixMulCUBLAS": "matrixMulCUBLAS",
    "4_CUDA_Libraries/batchCUBLAS": "batchCUBLAS", "4_CUDA_Libraries/simpleCUBLAS_LU": "simpleCUBLAS_LU",
    "4_CUDA_Libraries/simpleCUBLASXT": "simpleCUBLASXT",
    "2_Concepts_and_Techniques/streamOrderedAllocation": "streamOrderedAllocation",
    "0_Introduction/vectorAdd": "vectorAdd", "0_Introduction/simpleVoteIntrinsics": "simpleVoteIntrinsics",
    "0_Introduction/simplePrintf": "simplePrintf", "2_Concepts_and_Techniques/shfl_scan": "shfl_scan",
    "0_Introduction/simpleAssert": "simpleAssert",
    "0_Introduction/simpleCallback": "simpleCallback", "3_CUDA_Features/simpleCudaGraphs": "simpleCudaGraphs",
    "0_Introduction/asyncAPI": "asyncAPI", "1_Utilities/bandwidthTest": "bandwidthTest",
    "0_Introduction/simpleHyperQ": "simpleHyperQ", "0_Introduction/simpleAWBarrier": "simpleAWBarrier",
    "6_Performance/transpose": "transpose", "0_Introduction/matrixMul": "matrixMul",
    "0_Introduction/simpleTemplates": "simpleTemplates", "0_Introduction/clock": "clock",
    "0_Introduction/fp16ScalarProduct": "fp16ScalarProduct",
    "0_Introduction/simpleCooperativeGroups": "simpleCooperativeGroups",
    "0_Introduction/simpleMultiCopy": "simpleMultiCopy", "2_Concepts_and_Techniques/reduction": "reduction",
    "2_Concepts_and_Techniques/scalarProd": "scalarProd",
    "2_Concepts_and_Techniques/threadFenceReduction": "threadFenceReduction",
    "2_Concepts_and_Techniques/inlinePTX": "inlinePTX",
    "0_Introduction/template": "template", "0_Introduction/simpleOccupancy": "simpleOccupancy",
    "0_Introduction/simpleMultiGPU": "simpleMultiGPU", "5_Domain_Specific/SobolQRNG": "SobolQRNG",
    "3_CUDA_Features/StreamPriorities": "StreamPriorities",
    "5_Domain_Specific/fastWalshTransform": "fastWalshTransform",
    "5_Domain_Specific/quasirandomGenerator": "quasirandomGenerator",
    "0_Introduction/simpleAtomicIntrinsics": "simpleAtomicIntrinsics",
    "3_CUDA_Features/binaryPartitionCG": "binaryPartitionCG",
    "2_Concepts_and_Techniques/convolutionSeparable": "convolutionSeparable", "0_Introduction/mergeSort": "mergeSort",
    "2_Concepts_and_Techniques/sortingNetworks": "sortingNetworks",
    "0_Introduction/simpleLayeredTexture": "simpleLayeredTexture",
    "0_Introduction/simpleCubemapTexture": "simpleCubemapTexture",
    "0_Introduction/simpleTexture": "simpleTexture", "0_Introduction/simpleSurfaceWrite": "simpleSurfaceWrite",
    "0_Introduction/simpleTextureDrv": "simpleTextureDrv", "2_Concepts_and_Techniques/dct8x8": "dct8x8",
    "0_Introduction/vectorAddDrv": "vectorAddDrv", "0_Introduction/simpleDrvRuntime": "simpleDrvRuntime",
    "0_Introduction/matrixMulDrv": "matrixMulDrv",
    "0_Introduction/simpleZeroCopy": "simpleZeroCopy", "0_Introduction/UnifiedMemoryStreams": "UnifiedMemoryStreams",
    "3_CUDA_Features/warpAggregatedAtomicsCG": "warpAggregatedAtomicsCG", "5_Domain_Specific/FDTD3d": "FDTD3d",
    "3_CUDA_Features/graphMemoryNodes": "graphMemoryNodes", "3_CUDA_Features/graphMemoryFootprint": "graphMemoryFootprint",
    "6_Performance/cudaGraphsPerfScaling": "cudaGraphsPerfScaling",
    # shared-memory atomics (histogram), CUB's onesweep radix sort (radixSortThrust)
    "2_Concepts_and_Techniques/histogram": "histogram",
    "2_Concepts_and_Techniques/radixSortThrust": "radixSortThrust",
    # texture fetches in C (native/ptxtex.c): 1-2 min each on a loaded machine
    "0_Introduction/simplePitchLinearTexture": "simplePitchLinearTexture",
    "2_Concepts_and_Techniques/convolutionTexture": "convolutionTexture",
    "5_Domain_Specific/stereoDisparity": "stereoDisparity",
    # 2,000 one-thread launches reading a 32,000-byte by-value parameter through its address: ~2 min loaded
    "6_Performance/LargeKernelParameter": "LargeKernelParameter",
    # cp.async through cuda::pipeline, 101 launches of a 64-square product (SAMPLE_ARGS): ~20 s loaded
    "3_CUDA_Features/globalToShmemAsyncCopy": "globalToShmemAsyncCopy",
    "3_CUDA_Features/cudaTensorCoreGemm": "cudaTensorCoreGemm",
    # 512 launches over 4 M options (no option shrinks it): ~100 ms of the engine's CPU each (LONG_SAMPLES)
    "5_Domain_Specific/BlackScholes": "BlackScholes",
    # 3,300 launches over 6.8 M uints (17 array lengths, 100 each; no option shrinks it), most of 1.7 M
    # threads: minutes of the engine's CPU (LONG_SAMPLES)
    "2_Concepts_and_Techniques/scan": "scan",
    # 7,500 Jacobi launches over a 5-level pyramid of a 640 x 480 frame pair (LONG_SAMPLES)
    "5_Domain_Specific/HSOpticalFlow": "HSOpticalFlow",
    # cudaHostRegister'd memory, 101 init_array launches over 16 Mi ints and 400 over 4 Mi (LONG_SAMPLES)
    "0_Introduction/simpleStreams": "simpleStreams",
    # one launch: 1,024 options x 2,048 divergent time steps (no option shrinks it; LONG_SAMPLES)
    "5_Domain_Specific/binomialOptions": "binomialOptions",
}
#: those of them that launch kernels of their own (the PTX engine runs them on ``sim``)
KERNEL_SAMPLES = frozenset({"streamOrderedAllocation", "vectorAdd", "vectorAddDrv", "simpleDrvRuntime", "matrixMulDrv",
                            "simpleVoteIntrinsics", "simplePrintf",
                            "shfl_scan", "simpleAssert", "simpleCallback", "simpleCudaGraphs", "asyncAPI",
                            "simpleHyperQ", "simpleAWBarrier", "transpose", "matrixMul", "simpleTemplates",
                            "clock", "fp16ScalarProduct", "simpleCooperativeGroups", "simpleMultiCopy",
                            "reduction", "scalarProd", "threadFenceReduction", "inlinePTX", "template",
                            "simpleOccupancy", "simpleMultiGPU", "SobolQRNG", "StreamPriorities",
                            "fastWalshTransform", "quasirandomGenerator", "simpleAtomicIntrinsics",
                            "binaryPartitionCG", "convolutionSeparable", "mergeSort", "sortingNetworks",
                            "simpleLayeredTexture", "simpleCubemapTexture", "simpleTexture", "simpleTextureDrv",
                            "dct8x8",
                            "simpleSurfaceWrite",
                            "simpleZeroCopy", "warpAggregatedAtomicsCG", "FDTD3d", "graphMemoryNodes",
                            "graphMemoryFootprint", "cudaGraphsPerfScaling", "histogram", "radixSortThrust",
                            "simplePitchLinearTexture", "convolutionTexture", "stereoDisparity",
                            "LargeKernelParameter", "globalToShmemAsyncCopy",
                            "cudaTensorCoreGemm", "BlackScholes", "HSOpticalFlow",
                            "simpleStreams", "binomialOptions", "scan"})
#: the files of ``samples/data`` each sample reads from ``./data/`` (its input and reference images), by path
#: under it: a fatbin a sample's CMake file builds is in the sample's own directory (two samples build the
#: same name from different sources; scripts/cuda-samples --install puts it there)
SAMPLES_DATA = Path(__file__).resolve().parent / "samples" / "data"
SAMPLE_DATA: dict[str, tuple[str, ...]] = {
    "simpleTexture": ("teapot512.pgm", "ref_rotated.pgm"), "simpleSurfaceWrite": ("teapot512.pgm", "ref_rotated.pgm"),
    "simpleTextureDrv": ("teapot512.pgm", "ref_rotated.pgm", "simpleTextureDrv/simpleTexture_kernel64.fatbin"),
    "dct8x8": ("teapot512.bmp",),
    "stereoDisparity": ("stereo.im0.640x533.ppm", "stereo.im1.640x533.ppm"),
    "vectorAddDrv": ("vectorAddDrv/vectorAdd_kernel64.fatbin",),
    "simpleDrvRuntime": ("simpleDrvRuntime/vectorAdd_kernel64.fatbin",),  # the same name, from its own source
    "matrixMulDrv": ("matrixMulDrv/matrixMul_kernel64.fatbin",),
    "HSOpticalFlow": ("frame10.ppm", "frame11.ppm"),
}


def sample_data(name: str) -> dict[str, Path]:
    """What the sample ``name`` finds in ``./data/`` (SAMPLE_DATA): each file's name there -> the file here."""
    return {Path(file).name: SAMPLES_DATA / file for file in SAMPLE_DATA.get(name, ())}
#: the mediator's configuration for the samples: a launch bound of 60 s instead of 5, since the samples judge
#: results, not speed, and on a loaded machine (a QEMU guest beside it) launches of SobolQRNG and
#: fastWalshTransform that take 2-3 s at load 4 ran past 5 s, and mergeSort's past 20 s at load ~9
#: (the heartbeat bound above it: a launch runs on the worker's thread; the line lands in [mediator])
SAMPLES_CONFIG = "worker_timeout_s = 90.0\n[device]\nlaunch_timeout_s = 60.0\n"
#: samples that outlast SAMPLES_CONFIG's launch bound or the others' 300 s, each against a mediator of its own
#: with the launch bound and the sample's own time limit (s) given here: cudaTensorCoreGemm's 4096-square
#: compute_gemm (no option shrinks it) is one launch of ~86 s of the worker's CPU (323 s wall at load 7-11,
#: 650 s at load 12-13); BlackScholes' 512 launches over 4 M options (nor does any shrink it), ~0.1 s of the
#: worker's CPU each, took 144 s wall at load 5: past 300 s on a loaded machine; HSOpticalFlow's 7,500
#: JacobiIteration launches (5 pyramid levels x 3 warps x 500, no option shrinks them), ~40 ms of the
#: worker's CPU each at 640 x 480, took 170 s wall at load 3-5 (scripts/cuda-samples), 429 s under pytest at
#: load 13-17; simpleStreams' 101 init_array launches over 16 Mi ints and 400 over 4 Mi (its default 100
#: repetitions; no option shrinks them), ~0.3 s of the worker's CPU a 16 Mi launch, took 124 s wall at load 7-11;
#: binomialOptions' one launch (1,024 blocks x 2,048 time steps, a divergent branch and two barriers each) is
#: ~7 s of the worker's CPU, 117 s wall for the sample at load 14 with the launch just inside 60 s: three times that;
#: scan's 3,300 launches over 6.8 M uints (100 per array length, no option shrinks them), 40-130 ms of the
#: worker's CPU each, took 253 s under pytest at load 2-4 and 830 s at load 8-17
LONG_SAMPLES: dict[str, tuple[float, float]] = {
    "cudaTensorCoreGemm": (1200.0, 1500.0),
    "BlackScholes": (120.0, 900.0),
    "HSOpticalFlow": (120.0, 900.0),
    "simpleStreams": (120.0, 900.0),
    "binomialOptions": (180.0, 600.0),
    "scan": (120.0, 1200.0),
}
#: the sample's own documented options it runs with, where its defaults are minutes of the engine's work
SAMPLE_ARGS: dict[str, tuple[str, ...]] = {
    # 301 launches of (96 x 128) x (128 x 160) instead of (320 x 320) x (320 x 640): 7 s, not 6 min
    "matrixMul": ("-wA=128", "-hA=96", "-wB=160", "-hB=128"),
    # the least volume it takes (96^3 instead of up to 376^3, from the device's memory), 5 time steps as
    # by default: 4 s, and host buffers of 3.5 MB instead of 212 MB each
    "FDTD3d": ("--dimx=96", "--dimy=96", "--dimz=96"),
    # 101 launches of 64 x 64 x 64 instead of 1280 x 1280 x 1280 (2 x 10^11 multiply-adds): ~20 s, not hours
    "globalToShmemAsyncCopy": ("-wA=64", "-hA=64", "-wB=64", "-hB=64"),
    # 100 sorts of 32,768 keys (its -n) instead of 1,048,576: 1-1.5 min at load 9-14, not 30; still CUB's
    # onesweep passes over many tiles
    "radixSortThrust": ("-n=32768",),
}


def sample_verdict(code: int, output: str) -> str:
    """How ``scripts/cuda-samples`` judges a sample: PASS is exit status 0 and no failure printed;
    "waived" (the samples' exit status 2) says why; otherwise the exit status and last line."""
    failed = any(word in output for word in ("Result = FAIL", "FAILED", "Test failed"))
    last = next((line.strip() for line in reversed(output.splitlines()) if line.strip()), "")
    if code == 0 and not failed:
        return "PASS"
    if code == 2:
        return f"waived: {last[:100]}"
    return f"exit {code}: {last[:100]}"


def check_program(name: str, report: SelftestReport) -> None:
    """Every check of the program reported, and passed."""
    missing = [check for check in PROGRAM_CHECKS[name] if check not in report.results]
    failed = [f"{r.name}: {r.value}" for r in report.results.values() if not r.ok]
    assert not missing, f"{name}: checks never reported: {missing}"
    assert not failed, f"{name}: checks failed:\n" + "\n".join(failed)
    assert report.verdict == "SELFTEST PASS", report.verdict


def probe_trace(
    shim: ShimBuild, tmp_path: Path, probe: Path, arg: Path, checks: Sequence[str]
) -> list[dict[str, Any]]:
    """Run ``probe`` (a Python program that reports its checks as a selftest report, given the shim's
    libcuda.so.1 and ``arg``) through the shim against a one-VM mediator on ``sim``, traced: every one
    of ``checks`` is reported and none failed. Returns the mediator's trace records, in order."""
    with running_mediator(tmp_path, backend="sim", vms=1) as mediator:
        request(mediator.control, {"cmd": "trace", "vm": "vm1", "enable": True})
        conf = tmp_path / "guest.conf"
        conf.write_text(f"socket = {mediator.vm_socket(1)}\n")
        proc = subprocess.run(
            [sys.executable, str(probe), str(shim.library("cuda")), str(arg)],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
            env={"VGPU_GUEST_CONF": str(conf), "PATH": "/usr/bin:/bin"},
        )
        records = request(mediator.control, {"cmd": "trace", "vm": "vm1", "limit": 100000})["records"]
    report = SelftestReport.parse(proc.stdout)
    failed = [f"{r.name}: {r.value}" for r in report.results.values() if not r.ok]
    assert [name for name in checks if name not in report.results] == [], proc.stdout + proc.stderr
    assert not failed, "\n".join(failed) + proc.stderr
    assert proc.returncode == 0 and report.verdict == "SELFTEST PASS"
    traced: list[dict[str, Any]] = records
    return traced


def shim_env(shim: ShimBuild, conf: Path | None) -> dict[str, str]:
    """The environment of a program on the shim: its libraries first, ``conf`` as guest.conf."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("VGPU_")}
    env["LD_LIBRARY_PATH"] = str(shim.directory)
    if conf is not None:
        env["VGPU_GUEST_CONF"] = str(conf)
    return env


def run_program(name: str, shim: ShimBuild, conf: Path | None, timeout: float = 120) -> tuple[int, str]:
    """Run a checked-in program with the shim's libraries first on the loader's path."""
    proc = subprocess.run([str(PROGRAMS / name)], capture_output=True, text=True, timeout=timeout,
                          env=shim_env(shim, conf), check=False)
    return proc.returncode, proc.stdout + proc.stderr


def across_reset(mediator: MediatorProcess, probe: Path, shim: ShimBuild, conf: Path, ready: list[str]) -> tuple[
        list[str], str]:
    """Run ``probe`` (a Python script given the shim's libcuda) on VM 1; once its first line is
    ``ready`` (checked), reset the VM's worker and, when it serves again, tell the probe ``go``: the
    probe's next line (split) and its stderr."""
    proc = subprocess.Popen([sys.executable, str(probe), str(shim.library("cuda"))], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={"VGPU_GUEST_CONF": str(conf), "PATH": "/usr/bin:/bin"})
    assert proc.stdin is not None and proc.stdout is not None
    try:
        assert proc.stdout.readline().split() == ready
        request(mediator.control, {"cmd": "reset", "vm": 1})
        deadline = time.monotonic() + 60
        while not any(vm["restarts"] == 1 and vm["state"] == "serving"
                      for vm in request(mediator.control, {"cmd": "status"})["vms"]):
            assert time.monotonic() < deadline, "the worker was not reset"
            time.sleep(0.05)
        proc.stdin.write("go\n")
        proc.stdin.flush()
        after = proc.stdout.readline().split()
    finally:
        _, stderr = proc.communicate(timeout=60)
    return after, stderr


# -- several CUDA processes at once (mp_worker.c) ------------------------------------------------------

MP_WORKER = Path(__file__).resolve().parent / "mp_worker.c"


def build_mp_worker(shim: ShimBuild, dest: Path) -> Path:
    """``mp_worker`` built with cc against the shim's libraries (no CUDA toolkit needed)."""
    return build_program(shim, MP_WORKER, dest)


def build_program(shim: ShimBuild, source: Path, dest: Path) -> Path:
    """A C test program (``source``, beside this file) built with cc against the shim's libraries."""
    out = dest / source.stem
    result = subprocess.run(["cc", "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(out), str(source),
                             f"-L{shim.directory}", "-lcudart", "-lcublas", "-lcuda", "-lm"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{source.name} does not build:\n{result.stderr}"
    return out


class Worker:
    """One mp_worker process: orders go to its stdin, its stdout is read line by line with deadlines."""

    def __init__(self, binary: Path, env: dict[str, str], *args: str) -> None:
        self.proc = subprocess.Popen([str(binary), *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env)
        assert self.proc.stdout is not None
        os.set_blocking(self.proc.stdout.fileno(), False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.proc.stdout, selectors.EVENT_READ)
        self._pending = b""
        self.lines: list[str] = []
        self.stderr = ""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def expect(self, prefix: str, timeout: float = 60) -> str:
        """The next line (after those already read) that starts with ``prefix``."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        seen = len(self.lines)
        while True:
            for line in self.lines[seen:]:
                seen += 1
                if line.startswith(prefix):
                    return line
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"pid {self.pid} never printed {prefix!r}:\n{self.text}")
            if not self._selector.select(min(remaining, 1.0)):
                continue
            chunk = self.proc.stdout.read()
            if not chunk:
                raise AssertionError(f"pid {self.pid} exited ({self.proc.wait()}) before {prefix!r}:\n{self.text}"
                                     f"\n{self.proc.stderr.read().decode() if self.proc.stderr else ''}")
            self._pending += chunk
            *complete, self._pending = self._pending.split(b"\n")
            self.lines += [raw.decode(errors="replace") for raw in complete]

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def finish(self, timeout: float = 120) -> int:
        """Close stdin, wait for the exit; the rest of stdout joins ``lines``, stderr ``stderr``."""
        out, err = self.proc.communicate(timeout=timeout)
        self._selector.close()
        rest = (self._pending + (out or b"")).decode(errors="replace")
        self.lines += rest.splitlines()
        self.stderr = (err or b"").decode(errors="replace")
        return self.proc.returncode

    def kill(self) -> None:
        """Gone for sure, its pipes closed (a test that failed half-way leaves none running)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._selector.close()
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    @property
    def report(self) -> SelftestReport:
        return SelftestReport.parse(self.text)


# -- in a VM ----------------------------------------------------------------------------------------

#: where an install puts the shim in a guest (found through ld.so.cache, no environment needed)
SHIM_DIR = "/usr/local/lib/vgpu"


def guest_tree(shim: ShimBuild, binaries: dict[str, Path]) -> tuple[dict[str, Path], dict[str, str]]:
    """An initramfs's files for ``binaries`` (guest path -> host file): them, the shim where an install
    puts it with an ld.so.conf naming it, and everything else they load, at the paths it has here."""
    files = dict(binaries)
    dynamic = [path for path in binaries.values() if not is_static_elf(path)]
    for guest_path, host_path in shared_library_closure(dynamic, shim.directory).items():
        if host_path.parent == shim.directory:
            continue  # the shim goes to its install directory below, found through ld.so.cache
        files[guest_path] = host_path
    for soname in LIBRARIES.values():
        files[f"{SHIM_DIR}/{soname}"] = shim.directory / soname
    texts = {"/etc/ld.so.conf": "include /etc/ld.so.conf.d/*.conf\n",
             "/etc/ld.so.conf.d/000-vgpu.conf": f"{SHIM_DIR}\n"}
    return files, texts


def sections(text: str) -> dict[str, tuple[str, int | None]]:
    """Each ``VGPU-PROGRAM name`` … ``VGPU-PROGRAM-EXIT name code`` section of a console: its output and
    exit status (None if it never finished)."""
    out: dict[str, tuple[str, int | None]] = {}
    for match in re.finditer(r"^VGPU-PROGRAM (\w+)\n(.*?)(?:^VGPU-PROGRAM-EXIT \1 (\d+)|\Z)", text, re.M | re.S):
        out[match[1]] = (match[2], int(match[3]) if match[3] is not None else None)
    return out
