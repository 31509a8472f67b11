"""Coverage-guided fuzz target (atheris): the PTX engine, from the module text a guest loads to the
launches it makes.

Each input picks a seed kernel — one ``.entry`` of the checked-in corpus (nvcc 13's PTX of
``tests/kernels``: arithmetic, memory, warp, tensor-core, printf, cluster, CUB, FP8, synchronisation and
texture kernels), with the module's header
and every ``.func`` — and mutates its text (lines dropped, duplicated, swapped, numbers, types and
modifiers changed, a line of fuzzed text inserted), or uses the fuzzed bytes as the whole module.
The module is loaded and, when the engine reads it, its kernel launched with a fuzzed geometry
(sometimes in clusters of a fuzzed shape), dynamic shared memory and parameters (pointers in and
around a small allocation, other values fuzzed) and a fuzzed table of texture and surface objects
under tight bounds. The engine may answer only with
a :class:`executor.CudaError` (or refuse the module); anything else it raises is a crash — what
would end a worker.

Run (see docs/reliability.md)::

    .venv/bin/python fuzz/fuzz_ptx.py -atheris_runs=20000
    .venv/bin/python fuzz/fuzz_ptx.py -max_total_time=600 -print_final_stats=1 build/fuzz/ptx
"""

from __future__ import annotations

import contextlib
import re
import struct
import sys
from pathlib import Path

import atheris
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):
    sys.path.insert(0, str(ROOT))

with atheris.instrument_imports(include=["executor.ptx", "fuzz"]):
    from executor import CudaError
    from executor._kernels import LaunchDims
    from executor._sim_memory import DeviceMemory
    from executor.ptx import Limits, LoadedModule, launch
    from executor.ptx._texture_objects import (
        AddressMode,
        Sampler,
        SurfaceObject,
        TexelLayout,
        TextureObject,
    )
    from fuzz._harness import quiet_logs

KERNELS = ROOT / "tests" / "kernels"
SOURCES = (
    KERNELS / "ptx_corpus.compute_75.ptx",
    KERNELS / "ptx_corpus.compute_90.ptx",
    KERNELS / "ptx_cluster.compute_90.ptx",  # clusters, distributed shared memory, mbarriers, st.async
    KERNELS / "ptx_libs.compute_90.ptx",  # CUB's sorts and scans, atomics, SIMD, set, carries
    KERNELS / "ptx_fp8.compute_90.ptx",
    KERNELS / "ptx_sync.compute_90.ptx",
    KERNELS / "ptx_texture.compute_90.ptx",  # texture and surface objects (a fuzzed table answers)
    KERNELS / "ptx_tma.compute_90.ptx",  # TMA: tensor maps in fuzzed parameter bytes, decoded and checked
    KERNELS / "ptx_atomic_vec.compute_90.ptx",  # packed-half and vector atomics
    KERNELS / "test_kernels.ptx",
    ROOT / "tests" / "executor" / "attr_kernels" / "attr_kernels.ptx",
)
LIMITS = Limits(seconds=0.25, instructions=20_000, batch_threads=256, local_bytes_total=1 << 20,
                shared_bytes_total=1 << 20, printf_bytes=4096, printf_lines=16)
BUFFER = 1 << 14
_FUNCTION = re.compile(r"^(?:\.visible |\.weak |\.extern )*\.(entry|func)\b")
_TYPES = [".u32", ".s32", ".f32", ".b64", ".u64", ".s16", ".f16", ".f16x2", ".bf16", ".pred", ".v4", ".f64",
          ".b8", ".tf32", ".s8"]
_MODIFIERS = [".global", ".shared", ".local", ".const", ".param", ".rn", ".rz", ".ftz", ".sat",
              ".approx", ".sync", ".aligned", ".uni", ".wide", ".hi", ".lo", ".x4", ".trans", ".row", ".col",
              ".satfinite", ".shared::cluster", ".shared::cta", ".cc", ".relu"]


def _seeds() -> list[tuple[str, list[str]]]:
    """(kernel name, its module's lines: the header, every .func and that one .entry), per entry."""
    out = []
    for source in SOURCES:
        chunks: list[list[str]] = [[]]
        for line in source.read_text().splitlines():
            if _FUNCTION.match(line) and not line.rstrip().endswith(";"):  # a definition, not a declaration
                chunks.append([])
            chunks[-1].append(line)
        header, bodies = chunks[0], chunks[1:]
        funcs = [line for body in bodies if ".func" in body[0] for line in body]
        for body in bodies:
            found = re.search(r"\.entry\s+(\S+?)\s*\(", body[0])
            if found:
                out.append((found.group(1), header + funcs + body))
    return out


SEEDS = _seeds()


def _mutate(lines: list[str], fdp: atheris.FuzzedDataProvider) -> str:
    out = list(lines)
    for _ in range(fdp.ConsumeIntInRange(0, 4)):
        if not out:
            break
        k = fdp.ConsumeIntInRange(0, len(out) - 1)
        action = fdp.ConsumeIntInRange(0, 6)
        if action == 0:
            del out[k]
        elif action == 1:
            out.insert(fdp.ConsumeIntInRange(0, len(out)), out[k])
        elif action == 2:
            j = fdp.ConsumeIntInRange(0, len(out) - 1)
            out[k], out[j] = out[j], out[k]
        elif action == 3:  # a number changed
            value = str(fdp.ConsumeIntInRange(-(2**33), 2**33))
            out[k] = re.sub(r"\b\d+\b", value, out[k], count=1)
        elif action == 4:  # a type changed
            out[k] = out[k].replace(fdp.PickValueInList(_TYPES), fdp.PickValueInList(_TYPES), 1)
        elif action == 5:  # a modifier changed, added or removed
            old, new = fdp.PickValueInList(_MODIFIERS), fdp.PickValueInList([*_MODIFIERS, ""])
            out[k] = out[k].replace(old, new, 1) if old in out[k] else out[k].replace(" ", new + " ", 1)
        else:  # a line of fuzzed text
            out.insert(k, fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 120)))
    return "\n".join(out)


def _params(module: LoadedModule, kernel: str, buffer: int, fdp: atheris.FuzzedDataProvider) -> bytes:
    """Pointers in and around ``buffer`` for 64-bit parameters (most of the time), fuzzed bytes else."""
    assert module.program is not None
    out = b""
    for var in module.program.module.functions[kernel].params:
        out += bytes(-len(out) % max(var.align, 1))
        if var.size == 8 and fdp.ConsumeProbability() < 0.8:
            out += struct.pack("<Q", (buffer + fdp.ConsumeIntInRange(-64, BUFFER + 64)) % (1 << 64))
        else:
            out += fdp.ConsumeBytes(var.size).ljust(var.size, b"\0")
    if fdp.ConsumeProbability() < 0.05:  # a short or long parameter block
        out = out[: fdp.ConsumeIntInRange(0, len(out))] + fdp.ConsumeBytes(8)
    return out


_GEOMETRIES = ["1d", "2d", "3d", "1d_layered", "2d_layered", "cube", "cube_layered"]


class _Objects:
    """A fuzzed table of texture and surface objects: a handle's low bits pick one (or none), each a
    layout of fuzzed shape and pitches at a fuzzed place in and around the buffer."""

    def __init__(self, buffer: int, fdp: atheris.FuzzedDataProvider) -> None:
        self.objects: list[TextureObject | None] = []
        for _ in range(3):
            channels, bits = fdp.PickValueInList([1, 2, 4]), fdp.PickValueInList([8, 16, 32])
            kind = fdp.PickValueInList(["signed", "unsigned", "float"])
            if kind == "float" and bits == 8:
                bits = 32
            width, height, depth, layers = (fdp.ConsumeIntInRange(1, 9) for _ in range(4))
            row = fdp.ConsumeIntInRange(0, 256)
            base = buffer + fdp.ConsumeIntInRange(-256, BUFFER)
            layout = TexelLayout(base, fdp.PickValueInList(_GEOMETRIES), width, height, depth, layers, row,
                                 row * fdp.ConsumeIntInRange(0, 9), row * fdp.ConsumeIntInRange(0, 80),
                                 channels, bits, kind)
            modes = tuple(AddressMode(fdp.ConsumeIntInRange(0, 3)) for _ in range(3))
            sampler = Sampler(modes, fdp.ConsumeBool(), fdp.ConsumeBool(), fdp.ConsumeBool(),  # type: ignore[arg-type]
                              fdp.ConsumeBool(), (fdp.ConsumeFloat(), 0.0, 1.0, 0.5))
            self.objects.append(TextureObject(layout, sampler) if fdp.ConsumeBool() else None)

    def texture(self, handle: int) -> TextureObject | None:
        return self.objects[handle % 4] if handle % 4 < 3 else None

    def surface(self, handle: int) -> SurfaceObject | None:
        found = self.texture(handle >> 2)
        return None if found is None else SurfaceObject(found.layout)


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    if fdp.ConsumeProbability() < 0.1:  # the fuzzed bytes as the whole module
        text = fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 4096))
        names = None
    else:
        name, lines = SEEDS[fdp.ConsumeIntInRange(0, len(SEEDS) - 1)]
        text, names = _mutate(lines, fdp), [name]
    module = LoadedModule(text)
    if module.program is None:
        return
    entries = [n for n, fn in module.program.module.functions.items() if fn.kind == "entry"]
    memory = DeviceMemory(1 << 22)
    buffer = memory.alloc(BUFFER)
    memory.write(buffer, np.frombuffer(fdp.ConsumeBytes(BUFFER).ljust(BUFFER, b"\1"), dtype=np.uint8))
    symbols = {var.name: buffer + 256 * i for i, var in enumerate(module.program.module.variables)}
    for kernel in (names or entries)[:2]:
        if kernel not in entries:
            continue
        block = (fdp.PickValueInList([1, 31, 32, 33, 64, 96, 128]), fdp.PickValueInList([1, 1, 2]), 1)
        dims = LaunchDims((fdp.ConsumeIntInRange(1, 3), 1, 1), block, fdp.PickValueInList([0, 16, 1024]))
        # a cluster launch now and then (cuLaunchKernelEx's attribute): any shape, the engine judges it
        cluster = None
        if fdp.ConsumeProbability() < 0.2:
            cluster = (fdp.PickValueInList([0, 1, 2, 3, 4, 8]), fdp.PickValueInList([1, 1, 2]), 1)
        with contextlib.suppress(CudaError):  # the only answer allowed
            launch(module, kernel, memory, dims, _params(module, kernel, buffer, fdp), symbols, LIMITS,
                   cluster=cluster, textures=_Objects(buffer, fdp))


def main() -> None:
    quiet_logs()
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
