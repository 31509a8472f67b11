"""``mma.sync.aligned.m8n8k4`` with f16 inputs (sm_70's quad-pair shape), as nvcc 13 emits it from
inline PTX (``tests/kernels/ptx_sync.cu``): every layout of A and B and every accumulator pairing,
against products computed here from the PTX ISA's fragment tables, exactly (f16 products are exact,
the sums are rounded once)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from .conftest import KERNELS, Device, ptx_device

SYNC = {arch: KERNELS / f"ptx_sync.compute_{arch}.ptx" for arch in (80, 90)}


@pytest.fixture(params=sorted(SYNC), ids=lambda arch: f"compute_{arch}")
def dev(request: pytest.FixtureRequest) -> Device:
    return ptx_device(SYNC[request.param].read_text())


def _place(operand: str, layout: str, lane: int, i: int) -> tuple[int, int, int]:
    """The ISA's table: (quad-pair, row, column) of element ``i`` of ``lane``'s fragment."""
    qp, q, high = (lane // 4) % 4, lane % 4, 4 * (lane >= 16)
    if operand == "a":
        return (qp, q + high, i) if layout == "row" else (qp, i + high, q)
    if operand == "b":
        return (qp, q, i + high) if layout == "row" else (qp, i, q + high)
    if layout == "f16":  # an accumulator: its type is its layout
        return qp, q + high, i
    return qp, (lane & 1) + (i & 2) + high, (i & 4) + (lane & 2) + (i & 1)


def _fragments(mats: npt.NDArray[Any], operand: str, layout: str, count: int) -> npt.NDArray[Any]:
    return np.array([[mats[_place(operand, layout, lane, i)] for i in range(count)] for lane in range(32)])


def _words(halves: npt.NDArray[np.float16]) -> npt.NDArray[np.uint32]:
    """Per lane, f16 pairs packed low half first."""
    bits = halves.astype(np.float16).view(np.uint16).astype(np.uint32)
    return (bits[:, 0::2] | (bits[:, 1::2] << np.uint32(16))).reshape(-1)


CASES = [  # kernel, A layout, B layout, D type, C type
    ("mma884_row_col_f32_f32", "row", "col", "f32", "f32"),
    ("mma884_row_row_f32_f32", "row", "row", "f32", "f32"),
    ("mma884_col_col_f32_f32", "col", "col", "f32", "f32"),
    ("mma884_col_row_f32_f32", "col", "row", "f32", "f32"),
    ("mma884_row_col_f32_f16", "row", "col", "f32", "f16"),
    ("mma884_row_col_f16_f16", "row", "col", "f16", "f16"),
    ("mma884_col_row_f16_f16", "col", "row", "f16", "f16"),
]


@pytest.mark.parametrize(("kernel", "al", "bl", "dt", "ct"), CASES, ids=[c[0] for c in CASES])
def test_four_independent_products_per_warp(dev: Device, kernel: str, al: str, bl: str, dt: str, ct: str) -> None:
    rng = np.random.default_rng(len(kernel) * 7 + ord(al[0]) + ord(bl[0]))
    a = rng.integers(-64, 64, (4, 8, 4)).astype(np.float16) / np.float16(8)  # four quad-pairs' matrices
    b = rng.standard_normal((4, 4, 8)).astype(np.float16)
    c = rng.standard_normal((4, 8, 8)).astype(np.float16 if ct == "f16" else np.float32)
    pa = dev.put(_words(_fragments(a, "a", al, 4)))
    pb = dev.put(_words(_fragments(b, "b", bl, 4)))
    c_frag = _fragments(c, "c", ct, 8)
    pc = dev.put(_words(c_frag) if ct == "f16" else c_frag.astype(np.float32).reshape(-1))
    pd = dev.zeros(32 * 8, np.uint32)
    dev.run(kernel, 1, 32, pa, pb, pc, pd)
    exact = np.matmul(a.astype(np.float64), b.astype(np.float64)) + c.astype(np.float64)
    if dt == "f16":
        got = dev.get(pd, 32 * 4, np.uint32).reshape(32, 4)
        halves = np.stack([got & 0xFFFF, got >> 16], axis=-1).reshape(32, 8).astype(np.uint16).view(np.float16)
        want = _fragments(exact, "c", "f16", 8).astype(np.float16)
    else:
        halves = dev.get(pd, 32 * 8, np.float32).reshape(32, 8)
        want = _fragments(exact, "c", "f32", 8).astype(np.float32)
    np.testing.assert_array_equal(halves, want)


def test_an_f16_result_from_an_f32_accumulator_is_not_a_form_ptxas_takes() -> None:
    text = SYNC[80].read_text().replace(".f16.f16.f16.f16 ", ".f16.f16.f16.f32 ", 1)
    dev = ptx_device(text)
    err = dev.fails("mma884_row_col_f16_f16", 1, 32, *(dev.zeros(256, np.uint32) for _ in range(4)))
    assert "m8n8k4" in err.message and "f16.f16.f16.f32" in err.message
