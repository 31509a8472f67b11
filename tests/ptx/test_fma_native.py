"""``fma.rn`` in C (``native/ptxfma.c`` through ``executor/ptx/_fma.py``) against the engine's Python
form (f32, bit for bit; NaN payloads, which a GPU makes canonical and neither form does, where every
operand is an array: NumPy may take a uniform operand's NaN first) and against the exact result rounded once (f64, which
the Python form gets within an ulp), on random operands and the hard cases: products and sums at
float32 midpoints, subnormals, cancellation, overflow, infinities, NaNs, signed zeros, uniform
operands."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from executor.ptx import _fma, _fuse
from executor.ptx._numeric import fma64

from .conftest import round_exact

pytestmark = pytest.mark.skipif(_fma._native is None, reason="native/ptxfma.c is not built")

F32, F64 = np.dtype(np.float32), np.dtype(np.float64)
#: the least magnitude that rounds to infinity: the largest double plus half its ulp
OVERFLOW64 = Fraction(2) ** 1024 - Fraction(2) ** 970
MAX64 = Fraction(float(np.finfo(np.float64).max))


@pytest.fixture(autouse=True)
def quiet() -> Iterator[None]:
    with np.errstate(all="ignore"):  # as the engine runs every launch
        yield


def operands(dt: np.dtype[Any], n: int, seed: int) -> list[npt.NDArray[Any]]:
    rng = np.random.default_rng(seed)
    bits = 8 * dt.itemsize
    raw = [rng.integers(0, 1 << bits, n, dtype=np.uint64).astype(f"u{dt.itemsize}").view(dt) for _ in range(3)]
    scale = [rng.standard_normal(n).astype(dt) * dt.type(2.0) ** rng.integers(-40, 40, n) for _ in range(3)]
    x, y, z = (np.where(rng.random(n) < 0.5, r, s).astype(dt) for r, s in zip(raw, scale, strict=True))
    specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, np.finfo(dt).tiny,
                         np.finfo(dt).smallest_subnormal, np.finfo(dt).max], dtype=dt)
    k = specials.size
    x[: k * k] = np.repeat(specials, k)
    y[: k * k] = np.tile(specials, k)
    z[: k * k] = specials[(np.arange(k * k) * 7) % k]
    z[k * k: 2 * k * k] = -(x[k * k: 2 * k * k] * y[k * k: 2 * k * k])  # cancellation
    return [x, y, z]


def test_f32_is_the_python_form_bit_for_bit(monkeypatch: pytest.MonkeyPatch) -> None:
    x, y, z = operands(F32, 200_000, 1)
    # exact midpoints: products of 12-bit significands summed at a 25th bit
    x[-1000:] = np.float32(1 + 2.0**-12)
    y[-1000:] = np.float32(1 + 2.0**-12)
    z[-1000:] = np.float32(2.0**-24) * (np.arange(1000) % 3 - 1).astype(np.float32)
    cases = [(x, y, z), (x, np.float32(3.0), z), (np.float32(-0.0), y, z), (x, y, np.float32(np.nan))]
    got = [_fuse._fma32(*case) for case in cases]
    monkeypatch.setattr(_fma, "_native", None)
    want = [_fuse._fma32(*case) for case in cases]
    for g, python in zip(got, want, strict=True):
        w = np.asarray(python)
        nan = np.isnan(w)
        assert g.dtype == F32 and (np.isnan(g) == nan).all()
        assert (g.view(np.uint32) == w.view(np.uint32))[~nan].all()
    assert (got[0].view(np.uint32) == want[0].view(np.uint32)).all()  # NaN payloads too, all operands arrays


def ieee_special(a: float, b: float, c: float) -> float:
    """IEEE 754's fma of operands not all finite (a finite product is never infinite here)."""
    if np.isnan([a, b, c]).any():
        return np.nan
    if np.isinf(a) or np.isinf(b):
        if a == 0 or b == 0:
            return np.nan
        product = np.inf * np.sign(a) * np.sign(b)
        return np.nan if np.isinf(c) and c != product else product
    return c


def test_f64_is_the_python_form_where_that_is_exact() -> None:
    """The Python form (``_numeric.fma64``, the fallback) is exact while the product's error is a
    double; there the two agree bit for bit (NaN payloads aside), and an infinite or NaN operand too."""
    x, y, z = operands(F64, 200_000, 5)
    got = _fma.fma_rn(x, y, z, F64)
    assert got is not None
    python = fma64(x, y, z)
    product = np.abs(x * y)
    finite = np.isfinite(x) & np.isfinite(y) & np.isfinite(z)
    exact = (product >= 2.0**-969) & (product < 2.0**1023) & (np.abs(x) < 2.0**996) & (np.abs(y) < 2.0**996)
    domain = (finite & exact) | ~finite
    assert domain.sum() > 150_000
    same = (got.view(np.uint64) == python.view(np.uint64)) | (np.isnan(got) & np.isnan(python))
    assert same[domain].all()


@pytest.mark.parametrize("form", ["C", "Python"])
def test_f64_is_the_exact_result_rounded_once(form: str) -> None:
    x, y, z = operands(F64, 3000, 2)
    if form == "C":
        got = _fma.fma_rn(x, y, z, F64)
        assert got is not None
    else:
        product = np.abs(x * y)
        keep = ~np.isfinite(x * y + z) | ((product >= 2.0**-969) & (product < 2.0**1023) & (np.abs(x) < 2.0**996)
                                          & (np.abs(y) < 2.0**996))
        x, y, z = x[keep], y[keep], z[keep]
        got = fma64(x, y, z)
    for a, b, c, r in zip(x, y, z, got, strict=True):
        if not np.isfinite([a, b, c]).all():
            assert np.array_equal(r, ieee_special(a, b, c), equal_nan=True), (a, b, c)
            continue
        exact = Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c))
        if abs(exact) > MAX64:  # past the largest double: it, or infinity from half an ulp beyond
            top = np.inf if abs(exact) >= OVERFLOW64 else float(MAX64)
            assert r == (top if exact > 0 else -top), (a, b, c)
            continue
        want = round_exact(exact, "rn", np.float64)
        if want == 0.0:  # an exact zero sum: IEEE's sign, as float64's addition gives it
            want = float(np.float64(a) * np.float64(b) + np.float64(c)) if a * b == -c else want
        assert np.float64(r).tobytes() == np.float64(want).tobytes(), (a, b, c)


def test_what_the_c_form_does_not_take_falls_back() -> None:
    assert _fma.fma_rn(np.float32(1), np.float32(2), np.float32(3), F32) is None  # all uniform
    assert _fma.fma_rn(np.ones((2, 2), F32), np.float32(2), np.float32(3), F32) is None
    assert _fma.fma_rn(np.ones(4, F32), np.ones(3, F32), np.float32(3), F32) is None
    native = _fma._native
    assert native is not None
    with pytest.raises(ValueError):  # a wrong element size or count, before anything is written
        native.fma32(np.empty(4, F32), np.ones(4, F64), np.ones(4, F32), np.ones(4, F32))
    with pytest.raises(ValueError):
        native.fma32(np.empty(4, F32), np.ones(3, F32), np.ones(4, F32), np.ones(4, F32))
    with pytest.raises(TypeError):
        native.fma64(np.empty(4, F64), np.ones(4, F64))
    with pytest.raises((BufferError, ValueError)):  # out not contiguous
        native.fma64(np.empty(8, F64)[::2], np.ones(4, F64), np.ones(4, F64), np.ones(4, F64))
