"""Cluster launches through the shim's libcuda.so.1 against a mediator on ``sim``
(``cluster_probe.py``, in its own process): cuLaunchKernelEx's cluster-dimension attribute reaches the
engine as ``launch_cluster_kernel``, a ``__cluster_dims__`` kernel runs in its clusters from an ordinary
launch, the device says cluster launches are served, and the shapes a GPU refuses answer 912 (a
cooperative launch in clusters: 801, not served)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.qemu._support import REPO

from ._support import ShimBuild, probe_trace

PROBE = Path(__file__).resolve().parent / "cluster_probe.py"
CHECKS = (
    "init",
    "cluster_launch_attribute",
    "module",
    "launch_attribute_cluster",
    "cluster_dims_compiled_in",
    "cluster_too_large",
    "cluster_not_the_kernels",
    "cooperative_cluster_not_served",
)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_cluster_launches_through_the_shim(shim: ShimBuild, tmp_path: Path) -> None:
    calls = [r["call"] for r in probe_trace(shim, tmp_path, PROBE, REPO, CHECKS)]
    # the attribute's three launches; the cooperative one in clusters never leaves the guest
    assert calls.count("launch_cluster_kernel") == 3
