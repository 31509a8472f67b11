"""CUDA arrays, texture and surface objects through the shim's libcuda.so.1 against a mediator on ``sim``
(``texture_probe.py``, in its own process): copies with host, device and array sides, boxes past a
payload chunk, kernels sampling what was copied, every refusal a guest can provoke, and a kernel
sampling an array destroyed under its texture faulting as on a GPU."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.qemu._support import REPO

from ._support import ShimBuild, probe_trace

PROBE = Path(__file__).resolve().parent / "texture_probe.py"
CHECKS = ("init", "array_2d_roundtrip", "array_3d_via_device", "boxes_past_a_chunk", "destroy", "descriptors",
          "texture_sampling", "refused", "destroyed_array_faults")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_arrays_and_textures_through_the_shim(shim: ShimBuild, tmp_path: Path) -> None:
    calls = [r["call"] for r in probe_trace(shim, tmp_path, PROBE, REPO, CHECKS)]
    # device-side pairs are one call; host sides are packed, the 8 MiB box in more than one payload
    assert calls.count("memcpy_3d") == 1
    assert calls.count("memcpy_3d_htod") > 4 and calls.count("memcpy_3d_dtoh") > 4
    # what the guest can tell is wrong never leaves it; what only the host knows is refused there
    assert calls.count("tex_object_create") == 3 and calls.count("surf_object_create") == 1
