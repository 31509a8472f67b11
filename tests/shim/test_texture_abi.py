"""guest/shim/cu_array.h's declarations of CUDA's array, copy and texture structs against NVIDIA's headers
(as test_abi.py does for shim_abi.h): where a toolkit is installed, a C++ file that includes both — ours
inside a namespace — must compile, static-asserting each struct's size and the offset of every field the
shim reads or writes."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ._support import SHIM

CUDA_INCLUDE = Path("/usr/local/cuda/include")
#: shim_abi.h's macros that cuda.h defines too
MACROS = ("CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM", "CU_LAUNCH_PARAM_END", "CU_LAUNCH_PARAM_BUFFER_POINTER",
          "CU_LAUNCH_PARAM_BUFFER_SIZE", "CU_STREAM_LEGACY", "CU_STREAM_PER_THREAD")
MEMCPY_SIDE = ("XInBytes", "Y", "MemoryType", "Host", "Device", "Array", "Pitch")
#: ours -> (NVIDIA's, the fields both name alike)
STRUCTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "vgpu_array3d_desc": ("CUDA_ARRAY3D_DESCRIPTOR", ("Width", "Height", "Depth", "Format", "NumChannels",
                                                      "Flags")),
    "vgpu_array_desc": ("CUDA_ARRAY_DESCRIPTOR", ("Width", "Height", "Format", "NumChannels")),
    "vgpu_memcpy2d": ("CUDA_MEMCPY2D", (*(f"{side}{f}" for side in ("src", "dst") for f in MEMCPY_SIDE),
                                        "WidthInBytes", "Height")),
    "vgpu_memcpy3d": ("CUDA_MEMCPY3D", (*(f"{side}{f}" for side in ("src", "dst")
                                          for f in (*MEMCPY_SIDE, "Z", "LOD", "Height")),
                                        "WidthInBytes", "Height", "Depth")),
    "vgpu_resource_desc": ("CUDA_RESOURCE_DESC", (
        "resType", "res.array.hArray", "res.mipmap.hMipmappedArray", "res.linear.devPtr", "res.linear.format",
        "res.linear.numChannels", "res.linear.sizeInBytes", "res.pitch2D.devPtr", "res.pitch2D.format",
        "res.pitch2D.numChannels", "res.pitch2D.width", "res.pitch2D.height", "res.pitch2D.pitchInBytes",
        "flags")),
    "vgpu_texture_desc": ("CUDA_TEXTURE_DESC", (
        "addressMode", "filterMode", "flags", "maxAnisotropy", "mipmapFilterMode", "mipmapLevelBias",
        "minMipmapLevelClamp", "maxMipmapLevelClamp", "borderColor")),
}


@pytest.mark.skipif(not (CUDA_INCLUDE / "cuda.h").is_file(), reason="no CUDA toolkit headers here")
def test_our_array_and_texture_structs_match_nvidias(tmp_path: Path) -> None:
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler")
    asserts = []
    for ours, (theirs, fields) in STRUCTS.items():
        asserts.append(f'static_assert(sizeof(shim::{ours}) == sizeof(::{theirs}), "size of {theirs}");')
        asserts += [f'static_assert(offsetof(shim::{ours}, {f}) == offsetof(::{theirs}, {f}), "{theirs}.{f}");'
                    for f in fields]
    source = tmp_path / "texture_abi.cpp"
    source.write_text("#include <cstddef>\n#include <cstdint>\n#define _Static_assert static_assert\n"
                      'namespace shim {\n#include "cu_array.h"\n}\n' + "".join(f"#undef {m}\n" for m in MACROS)
                      + "#include <cuda.h>\n" + "\n".join(asserts)
                      + "\nint main() { return 0; }\n")
    result = subprocess.run([cxx, "-std=c++17", "-fsyntax-only", "-Wno-invalid-offsetof", "-I", str(SHIM), "-I",
                             str(CUDA_INCLUDE), str(source)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-6000:]
