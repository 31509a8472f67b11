"""cuTensorMapEncodeIm2col of libcuda.so.1 (``im2col_probe.py`` in its own process, against a mediator on
sim): the host's im2col map (also through cuGetProcAddress), a TMA im2col load of the corpus launched on
it and checked against a padded convolution's windows, and the refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.qemu._support import REPO

from ._support import ShimBuild, probe_trace

PROBE = Path(__file__).resolve().parent / "im2col_probe.py"
CHECKS = ("setup", "im2col_tma", "im2col_refused")


@pytest.mark.timeout(300)
def test_im2col_maps_through_the_driver_api(shim: ShimBuild, tmp_path: Path) -> None:
    calls = [r["call"] for r in probe_trace(shim, tmp_path, PROBE, REPO / "tests" / "kernels", CHECKS)]
    # two maps made and the corners past the range refused by the host; the misaligned map pointer and
    # the rank of 2 never left the guest
    assert calls.count("tensor_map_encode_im2col") == 3, calls
