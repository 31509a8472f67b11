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


def _bf16_reference(x: npt.NDArray[np.float32]) -> npt.NDArray[np.uint16]:
    """f32 to bf16 by exact fractions: the nearer of the two bf16 neighbours (truncation, and one step
    away from zero — infinity counting as 2^128 there), ties to the even code; NaN canonical."""

    def value(code: int) -> Fraction:
        if code & 0x7FFF == 0x7F80:
            return Fraction(2) ** 128 * (-1 if code & 0x8000 else 1)
        return Fraction(float(np.uint32(code << 16).view(np.float32)))

    out = np.zeros(x.size, dtype=np.uint16)
    for k, v in enumerate(x.tolist()):
        bits = int(np.float32(v).view(np.uint32))
        lo = bits >> 16
        if np.isnan(v):
            out[k] = 0x7FFF
        elif np.isinf(v) or bits & 0xFFFF == 0:
            out[k] = lo
        else:
            below, above = abs(Fraction(v) - value(lo)), abs(value(lo + 1) - Fraction(v))
            out[k] = lo if below < above or (below == above and lo % 2 == 0) else lo + 1
    return out


@pytest.mark.parametrize("arch", sorted(FP8), ids=lambda a: f"compute_{a}")
def test_float_pairs_to_half2_and_bfloat162(arch: int) -> None:
    device = _corpus(arch)
    x = _inputs()
    bits = x.view(np.uint32)
    ties = (bits & np.uint32(0xFFFF0000)) | np.uint32(0x8000)  # exactly between two bf16 values
    x = np.concatenate([x, ties.view(np.float32), (ties + np.uint32(0x10000)).view(np.float32)])
    x = x[: x.size // 2 * 2]
    n = x.size // 2
    pin, ph, pb = device.put(x), device.zeros(n, np.uint32), device.zeros(n, np.uint32)
    device.run("half_pairs", (n + 127) // 128, 128, pin, ph, pb, n)
    with np.errstate(over="ignore"):
        want_h = x.astype(np.float16).view(np.uint16)  # NumPy rounds f32 to f16 to nearest even
    want_h = np.where(np.isnan(x), np.uint16(0x7FFF), want_h)
    got_h = device.get(ph, n, np.uint32)
    got_h = np.stack([got_h & 0xFFFF, got_h >> 16], axis=1).reshape(-1)
    assert np.array_equal(got_h, want_h)
    got_b = device.get(pb, n, np.uint32)
    got_b = np.stack([got_b & 0xFFFF, got_b >> 16], axis=1).reshape(-1)
    assert np.array_equal(got_b, _bf16_reference(x))


_PACK_MODES = """
.version 8.0
.target sm_90
.address_size 64
.visible .entry modes(.param .u64 io)
{
    .reg .f32 %f<3>;
    .reg .b32 %r<5>;
    .reg .b64 %rd<2>;
    ld.param.u64 %rd1, [io];
    ld.global.f32 %f1, [%rd1];
    ld.global.f32 %f2, [%rd1+4];
    cvt.rz.f16x2.f32 %r1, %f1, %f2;
    cvt.rn.satfinite.f16x2.f32 %r2, %f1, %f2;
    cvt.rn.relu.bf16x2.f32 %r3, %f1, %f2;
    cvt.rz.satfinite.relu.bf16x2.f32 %r4, %f1, %f2;
    st.global.v4.u32 [%rd1+16], {%r1, %r2, %r3, %r4};
    ret;
}
"""


@pytest.mark.parametrize(
    ("a", "b", "want"),
    [
        # a (upper half), b (lower): rz f16x2, rn.satfinite f16x2, rn.relu bf16x2, rz.satfinite.relu bf16x2
        (1e6, -1e6, (0x7BFF, 0xFBFF, 0x7BFF, 0xFBFF, 0x4974, 0x0000, 0x4974, 0x0000)),
        (65520.0, -float("inf"), (0x7BFF, 0xFC00, 0x7BFF, 0xFBFF, 0x4780, 0x0000, 0x477F, 0x0000)),
        (float("nan"), -2.0, (0x7FFF, 0xC000, 0x7FFF, 0xC000, 0x7FFF, 0x0000, 0x7FFF, 0x0000)),
        (1.0 + 2.0**-11, 3e38, (0x3C00, 0x7BFF, 0x3C00, 0x7BFF, 0x3F80, 0x7F62, 0x3F80, 0x7F61)),
    ],
)
def test_packed_halves_round_toward_zero_saturate_and_relu(a: float, b: float, want: tuple[int, ...]) -> None:
    device = ptx_device(_PACK_MODES)
    io = device.put(np.array([a, b, 0, 0, 0, 0, 0, 0], dtype=np.float32))
    device.run("modes", 1, 1, io)
    words = device.get(io, 8, np.uint32)[4:]
    got = tuple(int(h) for w in words for h in (w >> 16, w & 0xFFFF))
    assert got == want, [hex(v) for v in got]


@pytest.mark.parametrize("arch", sorted(FP8), ids=lambda a: f"compute_{a}")
def test_half2_functions_of_cuda_fp16(arch: int) -> None:
    """h2exp, h2exp2, h2log, h2sin, h2cos, h2sqrt (their inline assembly: `.reg.b16` declarations and
    `set.eq.f16x2` special cases) within 2 f16 ulps of the true value, or 2^-10 absolutely near zero."""
    device = _corpus(arch)
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.uniform(-8, 8, 1000), [0.0, -0.0, 1.0, -1.0, 0.5, 7.9921875]]).astype(np.float16)
    x = x[: x.size // 2 * 2]
    n = x.size // 2
    pin, pout = device.put(x), device.zeros(12 * n, np.float16)
    device.run("half2_functions", (n + 127) // 128, 128, pin, pout, n)
    got = device.get(pout, 12 * n, np.float16).reshape(n, 6, 2).astype(np.float64)
    v = x.reshape(n, 2).astype(np.float64)
    with np.errstate(divide="ignore"):
        wants = [np.exp(v), np.exp2(v), np.log(np.abs(v)), np.sin(v), np.cos(v), np.sqrt(np.abs(v))]
    for k, (name, want) in enumerate(zip(("exp", "exp2", "log", "sin", "cos", "sqrt"), wants, strict=True)):
        have = got[:, k]
        with np.errstate(over="ignore", invalid="ignore"):  # log(0) is -inf on both sides
            ulp = np.spacing(np.abs(want).astype(np.float16)).astype(np.float64)
            close = (np.abs(have - want) <= 2 * ulp) | (np.abs(have - want) <= 2.0**-10) | (have == want)
        assert close.all(), f"{name}: {v[~close][:4]} -> {have[~close][:4]}, want {want[~close][:4]}"


_SET = """
.version 8.0
.target sm_80
.address_size 64
.visible .entry sets(.param .u64 io)
{
    .reg .pred %p<2>;
    .reg .f32 %f<3>;
    .reg .b32 %r<12>;
    .reg .b64 %rd<2>;
    ld.param.u64 %rd1, [io];
    ld.global.f32 %f1, [%rd1];
    ld.global.f32 %f2, [%rd1+4];
    ld.global.u32 %r1, [%rd1+8];
    ld.global.u32 %r2, [%rd1+12];
    setp.ne.u32 %p1, %r1, 0;
    set.lt.u32.f32 %r3, %f1, %f2;
    set.ltu.f32.f32 %r4, %f1, %f2;
    set.ne.and.s32.f32 %r5, %f1, %f2, %p1;
    set.hi.u32.s32 %r6, %r1, %r2;
    set.eq.f16x2.f16x2 %r7, %r1, %r2;
    set.neu.u32.f16x2 %r8, %r1, %r2;
    set.ge.bf16x2.bf16x2 %r9, %r1, %r2;
    set.num.or.u32.f32 %r10, %f1, %f2, !%p1;
    st.global.v4.u32 [%rd1+16], {%r3, %r4, %r5, %r6};
    st.global.v4.u32 [%rd1+32], {%r7, %r8, %r9, %r10};
    ret;
}
"""


@pytest.mark.parametrize(
    ("f1", "f2", "r1", "r2", "want"),
    [
        # halves as f16: 0x3C00 1.0, 0x4000 2.0, 0x7E00 NaN; as bf16: 0x3C00 ~0.0078, 0x4000 2.0
        (
            1.0,
            2.0,
            0x3C00_4000,
            0x3C00_3C00,
            (
                0xFFFFFFFF,
                0x3F800000,
                0xFFFFFFFF,
                0xFFFFFFFF,
                0x3C00_0000,
                0x0000_FFFF,
                0x3F80_3F80,
                0xFFFFFFFF,
            ),
        ),
        (
            float("nan"),
            2.0,
            0x7E00_3C00,
            0x7E00_3C00,
            (0x0, 0x3F800000, 0x0, 0x0, 0x0000_3C00, 0xFFFF_0000, 0x3F80_3F80, 0x0),
        ),
        (3.0, 3.0, 0, 0xFFFFFFFF, (0x0, 0x0, 0x0, 0x0, 0x0, 0xFFFF_FFFF, 0x0000_0000, 0xFFFFFFFF)),
    ],
)
def test_set_writes_comparisons_as_numbers(
    f1: float, f2: float, r1: int, r2: int, want: tuple[int, ...]
) -> None:
    device = ptx_device(_SET)
    words = np.zeros(12, dtype=np.uint32)
    words[:2] = np.array([f1, f2], dtype=np.float32).view(np.uint32)
    words[2:4] = [r1, r2]
    io = device.put(words)
    device.run("sets", 1, 1, io)
    got = tuple(int(w) for w in device.get(io, 12, np.uint32)[4:])
    assert got == want, [hex(w) for w in got]
