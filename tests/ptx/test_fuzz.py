"""Mutated PTX from the guest: whatever the text, a module loads or is refused and a launch answers
a CUDA error or runs — the engine raises nothing else (what a worker crash would be). Seeded random
mutants here; the coverage-guided target (``fuzz/fuzz_ptx.py``) for a bounded smoke run."""

from __future__ import annotations

import random
import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from executor._errors import CudaError
from executor._kernels import LaunchDims
from executor._sim_memory import DeviceMemory
from executor.ptx import Limits, LoadedModule, launch

from .conftest import ATTR_KERNELS, TEST_KERNELS

MUTANTS = 60
LIMITS = Limits(seconds=0.5, instructions=100_000, batch_threads=512)


def _mutate(lines: list[str], rng: random.Random) -> str:
    out = list(lines)
    for _ in range(rng.randint(1, 4)):
        k = rng.randrange(len(out))
        action = rng.randrange(6)
        if action == 0:
            del out[k]
        elif action == 1:
            out.insert(rng.randrange(len(out)), out[k])
        elif action == 2:  # a number changed
            out[k] = "".join(
                str(rng.randint(-3, 70000)) if ch.isdigit() and rng.random() < 0.3 else ch for ch in out[k]
            )
        elif action == 3:  # a token dropped
            words = out[k].split()
            if words:
                del words[rng.randrange(len(words))]
            out[k] = " ".join(words)
        elif action == 4:  # two lines swapped
            j = rng.randrange(len(out))
            out[k], out[j] = out[j], out[k]
        else:  # a modifier changed
            out[k] = out[k].replace(".s32", rng.choice([".u32", ".f32", ".b64", ".s16", ".pred", ".v4"]))
    return "\n".join(out)


def _params(module: LoadedModule, kernel: str, buffer: int, rng: random.Random) -> bytes:
    """Pointers into ``buffer`` for 64-bit integer parameters, small numbers for the rest."""
    assert module.program is not None
    out = b""
    for var in module.program.module.functions[kernel].params:
        out += bytes(-len(out) % var.align)
        if var.size == 8 and var.type in ("u64", "b64", "s64"):
            out += struct.pack("<Q", buffer + 4 * rng.randrange(64))
        else:
            out += (
                rng.randrange(-4, 600).to_bytes(8, "little", signed=True)[: var.size].ljust(var.size, b"\0")
            )
    return out


@pytest.mark.parametrize("source", [TEST_KERNELS, ATTR_KERNELS], ids=lambda p: p.name)
def test_mutated_modules_answer_only_cuda_errors(source: Path) -> None:
    lines = source.read_text().splitlines()
    rng = random.Random(13)
    outcomes = {"ran": 0, "refused": 0, "faulted": 0}
    for _ in range(MUTANTS):
        module = LoadedModule(_mutate(lines, rng))
        if module.program is None:
            outcomes["refused"] += 1
            continue
        memory = DeviceMemory(1 << 24)
        buffer = memory.alloc(1 << 16)
        memory.write(
            buffer, np.random.default_rng(rng.randrange(1 << 30)).integers(0, 256, 1 << 16, dtype=np.uint8)
        )
        for name in _entries(module):
            dims = LaunchDims(
                (rng.randint(1, 3), 1, 1), (rng.choice([1, 32, 64, 100]), 1, 1), rng.choice([0, 64])
            )
            try:
                launch(
                    module,
                    name,
                    memory,
                    dims,
                    _params(module, name, buffer, rng),
                    {"g_scale": buffer, "g_lut": buffer + 64, "g_counters": buffer + 128},
                    LIMITS,
                )
                outcomes["ran"] += 1
            except CudaError:
                outcomes["faulted"] += 1
    assert outcomes["ran"] > 0 and outcomes["faulted"] > 0, outcomes


def _entries(module: LoadedModule) -> list[str]:
    assert module.program is not None
    return [name for name, fn in module.program.module.functions.items() if fn.kind == "entry"]


def test_the_coverage_guided_target_runs_clean(tmp_path: Path) -> None:
    """``fuzz/fuzz_ptx.py`` (atheris: libFuzzer's coverage feedback over the engine's code) for a few
    hundred inputs: it ends by itself, finds nothing, and keeps inputs that reached new code."""
    pytest.importorskip("atheris", reason="atheris (the fuzz extra) is not installed")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    target = Path(__file__).resolve().parents[2] / "fuzz" / "fuzz_ptx.py"
    done = subprocess.run(
        [sys.executable, str(target), "-atheris_runs=300", "-seed=1", "-len_control=0", "-max_len=4096",
         f"-artifact_prefix={tmp_path}/", str(corpus)],
        check=False, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert re.search(r"Done 300 (runs|in)", output), output[-2000:]
    assert not list(tmp_path.glob("crash-*")), output[-4000:]
    assert len(list(corpus.iterdir())) > 1, "the fuzzer kept no input: its coverage feedback is not working"
