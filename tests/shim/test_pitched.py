"""2D memsets and pinned pitched copies through the shim against a mediator on ``sim``
(``pitched_probe.py``, in its own process): each is one call, not one per row, and is checked byte for
byte with the bytes between rows untouched."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.qemu._support import REPO

from ._support import ShimBuild, probe_trace

PROBE = Path(__file__).resolve().parent / "pitched_probe.py"
CHECKS = (
    "memset2d",
    "memset2d_async",
    "memset_d2d16_d2d32",
    "memset2d_refused",
    "memset_node_2d",
    "pinned_box",
    "pinned_box_async",
    "pinned_array_3d",
)


@pytest.mark.timeout(300)
def test_2d_memsets_and_pinned_boxes_are_one_call_each(shim: ShimBuild, tmp_path: Path) -> None:
    calls = Counter(r["call"] for r in probe_trace(shim, tmp_path, PROBE, REPO, CHECKS))
    # 2 runtime memsets, 2 driver ones, the one past the allocation and the graph's 40-row node (replayed
    # into the host's graph): one call each (the per-row form made 90 + 30 + ...); the row wider
    # than its pitch is refused in the guest
    assert calls["memset_2d"] == 6, calls
    assert calls["memset_d8"] <= 4, calls  # cudaMemset's own, of whole allocations
    # pinned to device and back, twice, and into an array and back: one call per box, no per-row copies
    assert calls["memcpy_3d_htod_pinned"] == 3 and calls["memcpy_3d_dtoh_pinned"] == 3, calls
    assert calls["memcpy_htod_pinned"] == 0 and calls["memcpy_dtoh_pinned"] == 0, calls
