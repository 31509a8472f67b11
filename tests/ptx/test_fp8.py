"""FP8 pairs (tests/kernels/ptx_fp8.cu): compute_90's cvt to and from e4m3x2/e5m2x2 and compute_75/80's
emulation by cuda_fp8.h against one exact reference — every code's value as a fraction, the nearest to
each input by brute force, ties to the even code, saturating to the largest finite value — over every
code, the midpoints between neighbours (ties) and one f32 ulp either side, subnormals, overflow,
infinities, NaN and random values; and .relu in hand-written PTX."""

from __future__ import annotations

import functools
import itertools
from fractions import Fraction

import numpy as np
import numpy.typing as npt
import pytest

from executor.ptx import LoadedModule

from .conftest import KERNELS, Device, ptx_device

FP8 = {arch: KERNELS / f"ptx_fp8.compute_{arch}.ptx" for arch in (75, 80, 90)}
FORMATS = {"e4m3": (4, 3), "e5m2": (5, 2)}


@functools.cache
def _values(fmt: str) -> dict[int, Fraction | None]:
    """Each finite positive code's exact value (None: infinity or NaN)."""
    exp_bits, frac_bits = FORMATS[fmt]
    bias = (1 << (exp_bits - 1)) - 1
    out: dict[int, Fraction | None] = {}
    for code in range(128):
        e, m = code >> frac_bits, code & ((1 << frac_bits) - 1)
        if (fmt == "e4m3" and code == 0x7F) or (fmt == "e5m2" and e == 31):
            out[code] = None
        elif e == 0:
            out[code] = Fraction(m, 1 << frac_bits) * Fraction(2) ** (1 - bias)
        else:
            out[code] = (1 + Fraction(m, 1 << frac_bits)) * Fraction(2) ** (e - bias)
    return out


def _encode(x: float, fmt: str) -> int:
    if np.isnan(x):
        return 0x7F
    values = {c: v for c, v in _values(fmt).items() if v is not None}
    sign = 0x80 if np.signbit(x) else 0
    if np.isinf(x):
        return sign | max(values)
    mag = abs(Fraction(x))
    best = min(values, key=lambda c: (abs(values[c] - mag), c % 2))  # nearest, ties to the even code
    return sign | best


def _decode(code: int, fmt: str) -> float:
    value = _values(fmt)[code & 0x7F]
    if value is None:
        return (
            float("nan")
            if (code & 0x7F) != 0x7C or fmt != "e5m2"
            else (-1.0 if code & 0x80 else 1.0) * np.inf
        )
    return float(-value if code & 0x80 else value)


def _inputs() -> npt.NDArray[np.float32]:
    """Every representable value of both formats, midpoints and their f32 neighbours, edge cases."""
    points: list[float] = []
    for fmt in FORMATS:
        finite = sorted(v for v in _values(fmt).values() if v is not None)
        points += [float(v) for v in finite]
        for lo, hi in itertools.pairwise(finite):
            mid = np.float32((lo + hi) / 2)
            points += [
                float(mid),
                float(np.nextafter(mid, np.float32(0))),
                float(np.nextafter(mid, np.float32(1e9))),
            ]
        top = finite[-1]
        points += [float(top) * 1.03, float(top) * 1.2, float(top) * 4]
    points += [0.0, 1e-30, 2.0**-20, 3.0e38, float("inf"), float("nan")]
    rng = np.random.default_rng(11)
    points += list(rng.standard_normal(300) * 10.0 ** rng.integers(-6, 5, 300))
    values = np.array(points, dtype=np.float32)
    values = np.concatenate([values, -values])
    return values if values.size % 2 == 0 else np.append(values, np.float32(1))


@functools.cache
def _expected(fmt: str, half: bool) -> npt.NDArray[np.uint16]:
    """The reference codes of :func:`_inputs` (rounded to f16 first when ``half``), computed once."""
    x = _halves() if half else _inputs()
    return np.array([_encode(float(v), fmt) for v in x], dtype=np.uint16)


def _halves() -> npt.NDArray[np.float16]:
    with np.errstate(over="ignore"):
        return _inputs().astype(np.float16)  # rounded to f16 first (large ones to infinity)


def _corpus(arch: int) -> Device:
    return Device(LoadedModule(FP8[arch].read_text()))


@pytest.mark.parametrize("arch", sorted(FP8), ids=lambda a: f"compute_{a}")
def test_float_pairs_to_fp8_and_back(arch: int) -> None:
    device = _corpus(arch)
    x = _inputs()
    n = x.size // 2
    pin = device.put(x)
    p4, p5 = device.zeros(n, np.uint16), device.zeros(n, np.uint16)
    b4, b5 = device.zeros(2 * n, np.float32), device.zeros(2 * n, np.float32)
    device.run("fp8_pairs", (n + 127) // 128, 128, pin, p4, p5, b4, b5, n)
    for fmt, codes_at, back_at in (("e4m3", p4, b4), ("e5m2", p5, b5)):
        want = _expected(fmt, False)
        codes = device.get(codes_at, n, np.uint16)
        got = np.stack([codes & 0xFF, codes >> 8], axis=1).reshape(-1)  # x in the low byte, y in the high
        bad = np.flatnonzero(got != want)
        assert bad.size == 0, f"{fmt}: {x[bad[:5]]} -> {got[bad[:5]]}, want {want[bad[:5]]}"
        back = device.get(back_at, 2 * n, np.float32)
        expect = np.array([_decode(int(c), fmt) for c in want], dtype=np.float32)
        assert np.array_equal(back, expect, equal_nan=True)


@pytest.mark.parametrize("arch", sorted(FP8), ids=lambda a: f"compute_{a}")
def test_half_pairs_to_fp8(arch: int) -> None:
    device = _corpus(arch)
    x = _halves()
    n = x.size // 2
    pin = device.put(x)
    p4, p5 = device.zeros(n, np.uint16), device.zeros(n, np.uint16)
    device.run("fp8_from_halves", (n + 127) // 128, 128, pin, p4, p5, n)
    for fmt, at in (("e4m3", p4), ("e5m2", p5)):
        want = _expected(fmt, True)
        codes = device.get(at, n, np.uint16)
        assert np.array_equal(np.stack([codes & 0xFF, codes >> 8], axis=1).reshape(-1), want)


_RELU = """
.version 8.0
.target sm_90
.address_size 64
.visible .entry relu(.param .u64 io)
{
    .reg .f32 %f<3>;
    .reg .b16 %rs<3>;
    .reg .b32 %r<3>;
    .reg .b64 %rd<2>;
    ld.param.u64 %rd1, [io];
    ld.global.f32 %f1, [%rd1];
    ld.global.f32 %f2, [%rd1+4];
    cvt.rn.satfinite.relu.e4m3x2.f32 %rs1, %f1, %f2;
    st.global.u16 [%rd1+8], %rs1;
    cvt.rn.relu.f16x2.e5m2x2 %r1, %rs1;
    st.global.u32 [%rd1+12], %r1;
    ld.global.u16 %rs2, [%rd1+16];
    cvt.rn.relu.f16x2.e5m2x2 %r2, %rs2;
    st.global.u32 [%rd1+20], %r2;
    ret;
}
"""


def test_relu_makes_negative_results_zero_and_keeps_nan() -> None:
    device = ptx_device(_RELU)
    for a, b in ((-3.0, 2.5), (float("nan"), -0.0), (500.0, -1e-9)):
        raw = np.zeros(6, dtype=np.uint32)
        raw[:2] = np.array([a, b], dtype=np.float32).view(np.uint32)
        raw[4] = 0x8C7E  # e5m2: a negative upper byte, a NaN lower byte
        io = device.put(raw)
        device.run("relu", 1, 1, io)
        got = device.get(io, 6, np.uint32)
        want8 = [0 if np.signbit(v) and not np.isnan(v) else _encode(v, "e4m3") for v in (a, b)]
        assert int(got[2]) & 0xFFFF == want8[0] << 8 | want8[1]
        assert int(got[5]) == 0x7FFF  # upper: negative to +0; lower: NaN, canonical
