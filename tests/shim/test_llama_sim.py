"""A real llama.cpp CUDA build (npm's node-llama-cpp prebuilt: libggml-cuda.so with ZSTD fatbins of
PTX for compute_75/80/90) through the shim on ``sim``: the same greedy tokens as its CPU backend for
F32, F16, Q4_0 and Q8_0 weights (``scripts/llama-sim``; the quantized types run ggml's dp4a and mma
kernels). Needs node and npm's registry (skipped, saying so, without them)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ._support import ShimBuild

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "llama-sim"
#: scripts/llama-sim's exit status when npm or pip could not fetch what it runs
SETUP_FAILED = 3


def test_llama_cpp_cuda_build_gives_its_cpu_backends_tokens_on_sim(shim: ShimBuild, tmp_path: Path) -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are not installed")
    results = tmp_path / "results.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--shim", str(shim.directory), "--tokens", "8",
                           "--json", str(results)], capture_output=True, text=True, timeout=3600, check=False)
    if proc.returncode == SETUP_FAILED:
        pytest.skip(f"the package registries are not reachable: {proc.stderr.strip()[-300:]}")
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]  # the table, then the logs' tails
    runs = json.loads(results.read_text())
    assert [run["type"] for run in runs] == ["f32", "f16", "q4_0", "q8_0"]
    for run in runs:
        cpu, cuda = run["cpu"], run["cuda"]
        assert cuda["gpu"] == "cuda" and cpu["gpu"] is False, run
        assert len(cuda["tokens"]) == 8 and cuda["tokens"] == cpu["tokens"], run
