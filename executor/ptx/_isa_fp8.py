"""FP8 conversions (compute_89 and later; what ``cuda_fp8.h``'s ``__nv_fp8x2_e4m3``/``__nv_fp8x2_e5m2``
compile to for compute_90): ``cvt.rn.satfinite{.relu}.{e4m3x2,e5m2x2}.f32 d, a, b``, the same from
``.f16x2``, and ``cvt.rn{.relu}.f16x2.{e4m3x2,e5m2x2} d, a``.

*Formats* (the OCP FP8 formats the ISA names): e4m3 — 4 exponent bits (bias 7), 3 fraction bits,
subnormals, no infinities, NaN ``S.1111.111``, largest finite 448; e5m2 — 5 exponent bits (bias 15),
2 fraction bits, subnormals, infinities and NaNs as IEEE formats have them, largest finite 57344.

*Rounding.* To FP8 the value is rounded to the nearest representable one, ties to the even code (the
candidates' magnitudes are exact in float64, as is their distance to an f32 or f16 input); past the
largest finite value — infinities included — ``.satfinite`` (which the ISA requires here) gives the
largest finite value of the sign; a NaN gives the canonical NaN ``0x7F``; ``.relu`` makes negative
results +0. Of a pair, ``a`` goes to the upper byte, ``b`` to the lower (f16x2 sources: the upper
half to the upper byte). From FP8 every value is exact in f16 (NaN: the canonical ``0x7FFF``).
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt

from ._compiler import Compiler, Mask, Runner, UnsupportedError
from ._numeric import DTYPES
from ._parse import Instruction
from ._state import Frame

__all__ = ["FP8_PAIRS", "cvt_fp8"]

FP8_PAIRS = ("e4m3x2", "e5m2x2")
_NAN8 = 0x7F
_NAN16 = 0x7FFF
_FORMS = "cvt.rn.satfinite{.relu}.{e4m3x2,e5m2x2}.{f32,f16x2} / cvt.rn{.relu}.f16x2.{e4m3x2,e5m2x2}"
F64 = npt.NDArray[np.float64]


@functools.cache
def _magnitudes(fmt: str) -> tuple[F64, int]:
    """The magnitude of each 7-bit code (NaN and infinity codes included) and the largest finite code."""
    exp_bits, frac_bits = (4, 3) if fmt == "e4m3x2" else (5, 2)
    bias = (1 << (exp_bits - 1)) - 1
    codes = np.arange(128)
    e, m = codes >> frac_bits, (codes & ((1 << frac_bits) - 1)).astype(np.float64)
    scale = float(1 << frac_bits)
    value = np.where(e == 0, m / scale * 2.0 ** (1 - bias), (1 + m / scale) * 2.0 ** (e - bias))
    if fmt == "e4m3x2":
        value[0x7F] = np.nan
        largest = 0x7E
    else:
        top = e == (1 << exp_bits) - 1
        value[top] = np.where(m[top] == 0, np.inf, np.nan)
        largest = 0x7B
    value.flags.writeable = False
    return value, largest


def _encode(x: F64, fmt: str, relu: bool) -> npt.NDArray[np.uint16]:
    """Each value's FP8 code (round to nearest even, saturating to the largest finite value)."""
    table, largest = _magnitudes(fmt)
    finite = table[: largest + 1]
    mag = np.abs(x)
    hi = np.minimum(np.searchsorted(finite, mag, side="left"), largest)
    lo = np.maximum(hi - 1, 0)
    below, above = mag - finite[lo], finite[hi] - mag
    pick_lo = (below < above) | ((below == above) & (lo % 2 == 0))
    code = np.where(finite[hi] == mag, hi, np.where(pick_lo, lo, hi))
    code = np.where(mag > finite[largest], largest, code)  # .satfinite, infinities too
    negative = np.signbit(x)
    out = code | np.where(negative, 0x80, 0)
    if relu:
        out = np.where(negative, 0, out)
    return np.where(np.isnan(x), _NAN8, out).astype(np.uint16)


def _decode(codes: npt.NDArray[np.uint32], fmt: str, relu: bool) -> npt.NDArray[np.uint32]:
    """Each 8-bit code as f16 bits (exact; NaN canonical)."""
    table, _ = _magnitudes(fmt)
    mag = table[codes & 0x7F]
    value = np.where(codes & 0x80, -mag, mag)
    if relu:
        value = np.where(value < 0, 0.0, value)
    bits = value.astype(np.float16).view(np.uint16).astype(np.uint32)
    return np.where(np.isnan(value), _NAN16, bits).astype(np.uint32)


def cvt_fp8(c: Compiler, ins: Instruction) -> Runner:
    """``cvt`` to or from a pair of FP8 values (see the module docstring)."""
    mods = [m for m in ins.mods if m not in ("rn", "satfinite", "relu")]
    relu = "relu" in ins.mods
    if "rn" not in ins.mods or len(mods) != 2:
        raise UnsupportedError(
            "cvt.rn.satfinite{.relu}.{e4m3x2,e5m2x2}.{f32,f16x2} / cvt.rn{.relu}.f16x2.{e4m3x2,e5m2x2}"
        )
    dst, src = mods
    if dst in FP8_PAIRS and src in ("f32", "f16x2") and "satfinite" in ins.mods:
        return _to_fp8(c, ins, dst, src, relu)
    if dst == "f16x2" and src in FP8_PAIRS and "satfinite" not in ins.mods:
        return _from_fp8(c, ins, src, relu)
    raise UnsupportedError(
        "cvt.rn.satfinite{.relu}.{e4m3x2,e5m2x2}.{f32,f16x2} / cvt.rn{.relu}.f16x2.{e4m3x2,e5m2x2}"
    )


def _to_fp8(c: Compiler, ins: Instruction, fmt: str, src: str, relu: bool) -> Runner:
    put = c.write(ins.operands[0], DTYPES["u16"])
    if src == "f32":
        if len(ins.operands) != 3:
            raise UnsupportedError(f"cvt.{fmt}.f32 d, a, b")
        ga, gb = c.read(ins.operands[1], DTYPES["f32"]), c.read(ins.operands[2], DTYPES["f32"])

        def pair(f: Frame) -> tuple[F64, F64]:
            return np.asarray(ga(f), np.float32).astype(np.float64), np.asarray(gb(f), np.float32).astype(
                np.float64
            )
    else:
        if len(ins.operands) != 2:
            raise UnsupportedError(f"cvt.{fmt}.f16x2 d, a")
        g = c.read(ins.operands[1], DTYPES["u32"])

        def pair(f: Frame) -> tuple[F64, F64]:
            bits = np.asarray(g(f), np.uint32)
            upper = (bits >> np.uint32(16)).astype(np.uint16).view(np.float16)
            lower = (bits & np.uint32(0xFFFF)).astype(np.uint16).view(np.float16)
            return upper.astype(np.float64), lower.astype(np.float64)

    def run(f: Frame, m: Mask | None) -> None:
        upper, lower = pair(f)
        out = (_encode(upper, fmt, relu) << np.uint16(8)) | _encode(lower, fmt, relu)
        put(f, out.astype(np.uint16), m)

    return run


def _from_fp8(c: Compiler, ins: Instruction, fmt: str, relu: bool) -> Runner:
    if len(ins.operands) != 2:
        raise UnsupportedError(f"cvt.f16x2.{fmt} d, a")
    get, put = c.read(ins.operands[1], DTYPES["u16"]), c.write(ins.operands[0], DTYPES["u32"])

    def run(f: Frame, m: Mask | None) -> None:
        codes = np.asarray(get(f), np.uint16).astype(np.uint32)
        upper = _decode(codes >> np.uint32(8), fmt, relu)
        lower = _decode(codes & np.uint32(0xFF), fmt, relu)
        put(f, ((upper << np.uint32(16)) | lower).astype(np.uint32), m)

    return run
