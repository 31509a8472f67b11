"""Through the shim's libcuda.so.1 (``module_upload_probe.py``, in its own process): a module image
larger than the channel's arena loads in chunks and its kernel runs, launched cooperatively (with
cuLaunchCooperativeKernel and with cuLaunchKernelEx's cooperative attribute); a grid larger than the
device holds at once is refused with 720; an image past ``device.module_bytes`` is refused before it
is sent."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.qemu._support import REPO

from ._support import ShimBuild, probe_trace

PROBE = Path(__file__).resolve().parent / "module_upload_probe.py"
CHECKS = ("init", "module_upload", "cooperative_launch", "launch_kernel_ex_cooperative", "cooperative_too_large",
          "module_too_large")


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_an_image_past_the_arena_loads_in_chunks_and_runs_cooperatively(shim: ShimBuild, tmp_path: Path) -> None:
    records = probe_trace(shim, tmp_path, PROBE, REPO / "tests" / "kernels", CHECKS)
    calls = [r["call"] for r in records]
    begins = [r["status"] for r in records if r["call"] == "module_upload_begin"]
    assert begins == [0, 1]  # the image in chunks; the one past module_bytes refused at once
    assert calls.count("module_upload_chunk") >= 2 and calls.count("module_load_upload") == 1
    assert calls.count("launch_cooperative_kernel") == 3  # cuLaunchCooperativeKernel, cuLaunchKernelEx, too large
