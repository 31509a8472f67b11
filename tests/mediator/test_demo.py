"""The README's first command: ``vgpu-mediator demo`` runs a GGML-shaped workload and checks it."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.slow
def test_the_demo_passes_with_gemm_kernel_and_graph_checked() -> None:
    run = subprocess.run([sys.executable, "-m", "mediator.cli", "demo"], check=False, capture_output=True,
                         text=True, timeout=180)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "identical: True" in run.stdout
    assert "GemmEx 256×32×256 f32" in run.stdout and "matches NumPy: True" in run.stdout
    assert "graph (GemmEx + silu kernel" in run.stdout
    assert "the VM holds 0 bytes" in run.stdout
    assert "demo passed" in run.stdout
