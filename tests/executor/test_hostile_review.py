"""Hostile values against this session's guest-reachable calls (security review): every field a guest
writes at its edges (0, 1, page and int64/uint64 boundaries), each call answering a CUDA error or
touching only the bytes it names — never another exception, never bytes beside them."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from executor import CudaError
from tests.executor.test_sim_textures import Gpu

#: values where arithmetic on u64 fields goes wrong: 0, 1, small, page, int64 and uint64 edges
_EDGES = [0, 1, 2, 3, 4, 15, 16, 64, 4095, 4096, 2**31, 2**32 - 1, 2**32, 2**62, 2**63 - 1, 2**63,
          2**64 - 4096, 2**64 - 1]
_U64 = st.one_of(st.sampled_from(_EDGES), st.integers(0, 2**64 - 1), st.integers(0, 64))


def _fields(draw: Any, names: tuple[str, ...]) -> dict[str, int]:
    return {name: draw(_U64) for name in names}


@st.composite
def _host_box(draw: Any) -> dict[str, int]:
    small = st.one_of(st.integers(0, 8), _U64)  # coordinates mostly inside, so the strides matter
    box = {name: draw(small) for name in ("x", "y", "z")} | _fields(draw, ("pitch", "layout_height"))
    box |= {"width_bytes": draw(st.integers(1, 64)), "height": draw(st.integers(1, 4)),
            "depth": draw(st.integers(1, 3))}
    return box


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(box=_host_box(), to_device=st.booleans())
@example(box={"x": 0, "y": 0, "z": 0, "pitch": 2**63, "layout_height": 1, "width_bytes": 16, "height": 1,
              "depth": 1}, to_device=True)
def test_host_box_copies_fail_as_cuda_errors_and_stay_in_their_block(box: dict[str, Any], to_device: bool) -> None:
    """A pitched device side with any x/y/z/pitch/layout height (``as_strided`` took a pitch past
    int64 for a one-row box: OverflowError, the worker's 'call crashed', CUDA_ERROR_UNKNOWN)."""
    gpu = Gpu()
    guard = [int(gpu("mem_alloc", bytesize=4096).dptr) for _ in range(3)]
    block = guard[1]
    for ptr in guard:
        gpu("memcpy_htod", inp=b"\xa5" * 4096, dst=ptr, stream=0)
    w, h, d = box["width_bytes"], box["height"], box["depth"]
    try:
        if to_device:
            gpu("memcpy_3d_htod", inp=b"\x5a" * (w * h * d), array=0, stream=0, device=block, **box)
        else:
            gpu("memcpy_3d_dtoh", out_cap=w * h * d, array=0, stream=0, device=block, **box)
    except CudaError:
        pass
    for ptr in (guard[0], guard[2]):  # the neighbours are never touched
        gpu("memcpy_dtoh", out_cap=4096, src=ptr, count=4096, stream=0)
        assert gpu.out == b"\xa5" * 4096
