"""guest/shim/nvml_api.h against NVIDIA's nvml.h: the same struct layouts, statuses and constants.

libnvidia-ml.so.1 and nvidia-smi are built from the shim's own declarations of NVML's binary
interface. Where nvml.h is at hand (the nvidia-nvml-dev wheel's, cached by
``guest/shim/extract_exports.py --fetch``), a C++ file including both (ours in a namespace) must
compile: it static-asserts each struct's size and field offsets and each value.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from ._support import SHIM

HEADER_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vgpu-nvidia-headers" / "include"
STRUCTS = {"nvmlPciInfo_t": ("busIdLegacy", "domain", "bus", "device", "pciDeviceId", "pciSubSystemId", "busId"),
           "nvmlMemory_t": ("total", "free", "used"),
           "nvmlMemory_v2_t": ("version", "total", "reserved", "free", "used")}


@pytest.mark.skipif(not (HEADER_CACHE / "nvml.h").exists(), reason="nvml.h is not cached (extract_exports.py --fetch)")
def test_nvml_api_h_matches_nvml_h(tmp_path: Path) -> None:
    ours = (SHIM / "nvml_api.h").read_text()
    values = re.findall(r"\b(NVML_(?:ERROR|SUCCESS|CLOCK|COMPUTEMODE|DEVICE_ARCH)\w*) = ", ours)
    assert len(values) > 20
    macros = re.findall(r"^#define (\w+) ", ours, re.M)
    # ours are read, and our macros undefined, before nvml.h is included (some of NVIDIA's values are
    # macros, which would rewrite our names)
    lines = ["#include <cstddef>", "namespace shim {", '#include "nvml_api.h"']
    lines += [f"constexpr long ours_{m} = (long)({m});" for m in macros]
    lines.append("}")
    lines += [f"constexpr long ours_{v} = (long)shim::{v};" for v in values]
    lines += [f"#undef {m}" for m in macros]
    lines.append("#include <nvml.h>")
    for struct, fields in STRUCTS.items():
        lines.append(f"static_assert(sizeof(shim::{struct}) == sizeof(::{struct}), \"{struct}\");")
        lines += [f"static_assert(offsetof(shim::{struct}, {f}) == offsetof(::{struct}, {f}), \"{struct}.{f}\");"
                  for f in fields]
    lines += [f"static_assert(ours_{v} == (long)({v}), \"{v}\");" for v in values]
    lines += [f"static_assert(shim::ours_{m} == (long)({m}), \"{m}\");" for m in macros]
    source = tmp_path / "nvml_abi.cc"
    source.write_text("\n".join(lines) + "\n")
    proc = subprocess.run(["c++", "-std=c++17", "-fsyntax-only", "-Werror", f"-I{SHIM}", f"-I{HEADER_CACHE}",
                           str(source)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
