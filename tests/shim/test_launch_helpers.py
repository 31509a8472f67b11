"""Driver-API launch helpers of libcuda.so.1 (``launch_helpers_probe.py`` in its own process, against a
mediator on sim): cuOccupancyMaxPotentialBlockSize{,WithFlags} as CUDA computes it, its dynamic
shared memory callback called in the guest; cuTensorMapEncodeTiled (also through cuGetProcAddress) and a
TMA load of the corpus on the map it made; cuMemAdvise{,_v2} and cudaMemAdvise on managed memory."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.qemu._support import REPO

from ._support import ShimBuild, probe_trace

PROBE = Path(__file__).resolve().parent / "launch_helpers_probe.py"
CHECKS = ("setup", "potential_fixed", "potential_none", "potential_callback", "potential_limit", "potential_refused",
          "tensor_map_tma", "tensor_map_refused", "mem_advise")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_launch_helpers(shim: ShimBuild, tmp_path: Path) -> None:
    calls = [r["call"] for r in probe_trace(shim, tmp_path, PROBE, REPO / "tests" / "kernels", CHECKS)]
    # two maps made, two refused by the host; the misaligned map pointer never left the guest
    assert calls.count("tensor_map_encode_tiled") == 4
    # the searches asked the host one block size at a time (29 sizes for the callback's search alone)
    assert calls.count("func_occupancy") > 29
    # advice is answered in the guest
    assert not [c for c in calls if "advise" in c]
