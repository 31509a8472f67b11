"""cudaMemcpy2D/cudaMemcpy2DAsync through the shim's libcudart.so.13 against a mediator on ``sim``
(``memcpy2d_probe.py``, in its own process): pitched copies both ways, device to device, past a
payload chunk, from pinned memory, into a capture, and the refusals, each checked byte for byte."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.qemu._support import REPO

from ._support import ShimBuild, probe_trace

PROBE = Path(__file__).resolve().parent / "memcpy2d_probe.py"
CHECKS = ("pitched_sync", "pitched_async", "pitched_default", "past_a_chunk", "device_to_device", "pinned_rows",
          "captured", "refused")


@pytest.mark.timeout(300)
def test_pitched_copies_through_the_runtime_api(shim: ShimBuild, tmp_path: Path) -> None:
    calls = Counter(r["call"] for r in probe_trace(shim, tmp_path, PROBE, REPO, CHECKS))
    # pitched rows of the process's memory go as boxes, a call per payload chunk (the 6 MB box in more
    # than one), not a call per row (over 2,500 rows here); the pinned copy's 64 rows are one call that
    # names their range, and the captured copy's 8 rows are the graph's guest nodes
    assert calls["memcpy_3d_htod"] >= 5 and calls["memcpy_3d_dtoh"] >= 5, calls
    assert calls["memcpy_htod"] + calls["memcpy_dtoh"] <= 16, calls
    assert calls["memcpy_3d_htod_pinned"] == 1 and calls["memcpy_htod_pinned"] == 0, calls
    assert calls["stream_add_guest_node"] == 8, calls
    assert calls["memcpy_3d"] == 1, calls  # device to device: one call
