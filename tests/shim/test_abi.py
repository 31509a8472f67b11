"""guest/shim/shim_abi.h against NVIDIA's headers: the same sizes, offsets and values.

The shim is built without the CUDA toolkit, from its own declarations of CUDA's binary interface.
Where a toolkit is installed (and, for cuBLAS, the headers ``tests/shim/programs/build.sh`` unpacks),
a C++ file that includes both — ours inside a namespace — must compile: it static-asserts the size
and every field offset of each struct the shim reads or writes, and the value of every status and
constant it declares.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.qemu._support import REPO

from ._support import SHIM

CUDA_INCLUDE = Path("/usr/local/cuda/include")
CUBLAS_INCLUDE = REPO / "build" / "shim-rebuild" / "wheel" / "nvidia" / "cu13" / "include"
STRUCTS = {  # ours -> NVIDIA's
    "struct cudaDeviceProp": "cudaDeviceProp", "struct cudaPointerAttributes": "cudaPointerAttributes",
    "struct cudaFuncAttributes": "cudaFuncAttributes",
    "CUmemAllocationProp": "CUmemAllocationProp", "CUmemAccessDesc": "CUmemAccessDesc",
    "CUmemLocation": "CUmemLocation", "CUuuid": "CUuuid", "dim3": "dim3",
}


def struct_fields(header: str, tag: str) -> list[str]:
    """Field names of `struct <tag> { ... }` or `typedef struct <tag>_st { ... }` in our header."""
    match = re.search(r"struct " + re.escape(tag) + r"(?:_st)? \{\n(.*?)\n\}", header, re.S)
    assert match, tag
    body = re.sub(r"struct \{.*?\} (\w+);", r"int \1;", match[1], flags=re.S)  # nested anonymous structs
    names = []
    for raw in body.split(";"):
        decl = re.sub(r"/\*.*?\*/", "", raw, flags=re.S).strip()
        if decl:
            names.extend(re.findall(r"(\w+)\s*(?:\[[^\]]*\])?\s*(?:,|$)", decl.split(None, 1)[1]))
    return names


def checks(header: str, with_cublas: bool) -> str:
    lines = []
    for ours, theirs in STRUCTS.items():
        tag = ours.split()[-1]
        lines.append(f"static_assert(sizeof(shim::{tag}) == sizeof(::{theirs}), \"size of {theirs}\");")
        for field in struct_fields(header, tag):
            lines.append(f"static_assert(offsetof(shim::{tag}, {field}) == offsetof(::{theirs}, {field}), "
                         f"\"{theirs}.{field}\");")
    for name, _ in re.findall(r"^\s+((?:CUDA_|cuda|CUBLAS_STATUS_)\w+) = (\d+),", header, re.M):
        if name.startswith("CUBLAS") and not with_cublas:
            continue
        lines.append(f"static_assert((long)shim::{name} == (long)::{name}, \"{name}\");")
    lines.append("static_assert(VGPU_FATBINC_MAGIC == FATBINC_MAGIC, \"fatbin wrapper magic\");")
    lines.append("static_assert(ours_per_thread == CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM, \"flag\");")
    lines.append("static_assert(sizeof(shim::vgpu_fatbin_wrapper) == sizeof(__fatBinC_Wrapper_t), \"wrapper\");")
    return "\n".join(lines)


@pytest.mark.skipif(not (CUDA_INCLUDE / "cuda.h").is_file(), reason="no CUDA toolkit headers here")
def test_our_declarations_match_nvidias_headers(tmp_path: Path) -> None:
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler")
    header = (SHIM / "shim_abi.h").read_text()
    with_cublas = (CUBLAS_INCLUDE / "cublas_api.h").is_file()
    pointers = ("CU_LAUNCH_PARAM_END", "CU_LAUNCH_PARAM_BUFFER_POINTER", "CU_LAUNCH_PARAM_BUFFER_SIZE",
                "CU_STREAM_LEGACY", "CU_STREAM_PER_THREAD")
    ours = "\n".join(f"static const void *const ours_{m} = (const void *){m};" for m in pointers)
    compare = " ||\n".join(f"ours_{m} != (const void *){m}" for m in pointers)
    source = tmp_path / "abi.cpp"
    source.write_text(f"""
#include <cstddef>
#include <cstdint>
namespace shim {{
#include "shim_abi.h"
}}
#define CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM_OURS CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM
static const unsigned long long ours_per_thread = CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM;
#undef CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM
namespace shim {{
struct CUstream_st;
typedef CUstream_st *CUstream;
{ours}
}}
using shim::ours_CU_LAUNCH_PARAM_END;
using shim::ours_CU_LAUNCH_PARAM_BUFFER_POINTER;
using shim::ours_CU_LAUNCH_PARAM_BUFFER_SIZE;
using shim::ours_CU_STREAM_LEGACY;
using shim::ours_CU_STREAM_PER_THREAD;
#undef CU_LAUNCH_PARAM_END
#undef CU_LAUNCH_PARAM_BUFFER_POINTER
#undef CU_LAUNCH_PARAM_BUFFER_SIZE
#undef CU_STREAM_LEGACY
#undef CU_STREAM_PER_THREAD
#include <cuda.h>
#include <cuda_runtime_api.h>
#include <fatbinary_section.h>
{"#include <cublas_api.h>" if with_cublas else ""}
{checks(header, with_cublas)}
int main() {{ return {compare}; }}
""")
    includes = ["-I", str(SHIM), "-I", str(CUDA_INCLUDE)] + (["-I", str(CUBLAS_INCLUDE)] if with_cublas else [])
    binary = tmp_path / "abi"
    result = subprocess.run([cxx, "-std=c++17", *includes, str(source), "-o", str(binary)], capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stderr[-6000:]
    assert subprocess.run([str(binary)], check=False).returncode == 0, "a handle or launch constant differs"
