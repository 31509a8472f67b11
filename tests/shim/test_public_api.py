"""Every public function of NVIDIA's CUDA 13 libraries is exported by the shim's counterpart.

``guest/shim/public.tsv`` is generated from NVIDIA's headers by ``guest/shim/extract_exports.py``:
it must be what the headers say (the driver's and runtime's always, from the toolkit; cuBLAS's,
cuBLASLt's and NVML's where the wheels' headers are in the script's cache, ``--fetch`` puts them
there), and each library, loaded with every reference bound at once (RTLD_NOW, as under
``LD_BIND_NOW=1``), must resolve every name of its rows.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ._support import LIBRARIES, SHIM, ShimBuild, read_public

EXTRACT = SHIM / "extract_exports.py"
CUDA_INCLUDE = Path("/usr/local/cuda-13.0/include")
HEADER_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vgpu-nvidia-headers" / "include"


@pytest.fixture(scope="module")
def bind_now(tmp_path_factory: pytest.TempPathFactory) -> Path:
    exe = tmp_path_factory.mktemp("bind-now") / "bind_now"
    subprocess.run(["cc", "-O1", "-o", str(exe), str(Path(__file__).with_name("bind_now.c")), "-ldl"], check=True)
    return exe


@pytest.mark.parametrize("lib", sorted(LIBRARIES))
def test_each_library_loads_bound_now_and_resolves_every_public_function(shim: ShimBuild, bind_now: Path,
                                                                         lib: str) -> None:
    names = sorted(symbol for (library, symbol) in read_public() if library == lib)
    assert len(names) > 50
    proc = subprocess.run([str(bind_now), str(shim.library(lib))], input="\n".join(names), capture_output=True,
                          text=True, timeout=60, env={"LD_BIND_NOW": "1", "LD_LIBRARY_PATH": str(shim.directory)},
                          check=False)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert f"found {len(names)}" in proc.stdout


def test_public_functions_include_the_names_programs_were_missing() -> None:
    """What issue 15 saw fail at load or first use, after NVIDIA's naming macros."""
    public = read_public()
    for lib, symbol in [("cublas", "cublasStrsmBatched"), ("cublas", "cublasXtCreate"),
                        ("cublas", "cublasDgetrfBatched"), ("cublas", "cublasDgemmBatched"),
                        ("cublas", "cublasDgemv_v2"), ("cudart", "cudaGraphAddKernelNode"),
                        ("cudart", "cudaGraphClone"), ("cudart", "cudaStreamAttachMemAsync"),
                        ("cuda", "cuCtxEnablePeerAccess"), ("cuda", "cuDeviceGetProperties"),
                        ("cuda", "cuMemAlloc"), ("cuda", "cuMemAlloc_v2"), ("cuda", "cuMemcpy_ptds"),
                        ("cudart", "cudaMemcpy_ptds"), ("cublasLt", "cublasLtMatmul"),
                        ("nvml", "nvmlInit"), ("nvml", "nvmlInit_v2"), ("nvml", "nvmlDeviceGetMemoryInfo")]:
        assert (lib, symbol) in public, symbol


@pytest.mark.skipif(not (CUDA_INCLUDE / "cuda.h").exists(), reason="no CUDA 13.0 toolkit headers")
def test_public_tsv_is_what_the_toolkits_headers_declare() -> None:
    proc = subprocess.run([sys.executable, str(EXTRACT), "--check", "--toolkit-only"], capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.skipif(not (HEADER_CACHE / "nvml.h").exists(),
                    reason="the nvidia-cublas/nvidia-nvml-dev headers are not cached (extract_exports.py --fetch)")
def test_public_tsv_is_what_all_the_headers_declare() -> None:
    proc = subprocess.run([sys.executable, str(EXTRACT), "--check"], capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stderr
