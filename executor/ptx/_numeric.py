"""Numeric helpers: PTX types as NumPy dtypes, bit-exact conversions, IEEE rounding modes.

Directed rounding (``.rz``/``.rm``/``.rp``) and single rounding of fused operations are done from an
exact *pair* ``(s, e)`` in float64 — the true result is ``s + e`` with ``e`` the error of ``s`` — that
TwoSum/TwoProduct give for float32 operands exactly. :func:`round_pair` turns the pair into the
target type with the requested mode (round-to-nearest via round-to-odd in float64, which is exact for
float32 targets because float64 has more than 24 + 2 bits).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from ._state import Value

__all__ = ["DTYPES", "fit", "fma64", "ftz32", "round_pair", "step_rounding", "two_prod", "two_sum", "uint_of"]

DTYPES: dict[str, np.dtype[Any]] = {
    "b8": np.dtype(np.uint8),
    "u8": np.dtype(np.uint8),
    "s8": np.dtype(np.int8),
    "b16": np.dtype(np.uint16),
    "u16": np.dtype(np.uint16),
    "s16": np.dtype(np.int16),
    "f16": np.dtype(np.uint16),
    "bf16": np.dtype(np.uint16),
    "b32": np.dtype(np.uint32),
    "u32": np.dtype(np.uint32),
    "s32": np.dtype(np.int32),
    "f32": np.dtype(np.float32),
    "f16x2": np.dtype(np.uint32),
    "bf16x2": np.dtype(np.uint32),
    "tf32": np.dtype(np.uint32),
    "b64": np.dtype(np.uint64),
    "u64": np.dtype(np.uint64),
    "s64": np.dtype(np.int64),
    "f64": np.dtype(np.float64),
    "pred": np.dtype(np.bool_),
}
_UINT: dict[int, np.dtype[Any]] = {
    1: np.dtype(np.uint8),
    2: np.dtype(np.uint16),
    4: np.dtype(np.uint32),
    8: np.dtype(np.uint64),
}
_SINT: dict[int, np.dtype[Any]] = {
    1: np.dtype(np.int8),
    2: np.dtype(np.int16),
    4: np.dtype(np.int32),
    8: np.dtype(np.int64),
}

F64 = npt.NDArray[np.float64]


def uint_of(size: int) -> np.dtype[Any]:
    return _UINT[size]


def sint_of(size: int) -> np.dtype[Any]:
    return _SINT[size]


def fit(v: Value, dt: np.dtype[Any]) -> Value:
    """``v`` as a register of dtype ``dt`` holds it: same width is the same bits; a narrower value
    is extended by its own signedness, a wider one truncated (PTX's rules for ld/st/cvt operands)."""
    vd = v.dtype
    if vd == dt:
        return v
    if dt.kind == "b":
        return v != 0
    if vd.kind == "b":
        return v.astype(dt)
    if vd.itemsize == dt.itemsize:
        return v.view(dt)
    if vd.itemsize > dt.itemsize:
        return v.view(_UINT[vd.itemsize]).astype(_UINT[dt.itemsize]).view(dt)
    if vd.kind == "i":
        return v.astype(_SINT[dt.itemsize]).view(dt)
    return v.view(_UINT[vd.itemsize]).astype(_UINT[dt.itemsize]).view(dt)


_EXPONENT, _SIGN = np.uint32(0x7F800000), np.uint32(0x80000000)
_TINY32 = np.float32(np.finfo(np.float32).tiny)  # the smallest normal float32
_ZERO32 = np.float32(0)


def ftz32(x: Value) -> Value:
    """Flush float32 subnormals to a zero of the same sign (``.ftz``).

    The common cases cost little: a float32 scalar is two comparisons; an array one magnitude test
    and a count of zeros when some element is below the smallest normal, nothing more when those are
    all zeros. Every ``.ftz`` operand and result goes through here."""
    if type(x) is np.float32:
        if -_TINY32 < x < _TINY32 and x != _ZERO32:
            return np.copysign(_ZERO32, x)
        return x
    if not isinstance(x, np.ndarray) or x.dtype != np.float32:
        x = np.asarray(x, dtype=np.float32)
    small = np.count_nonzero(np.abs(x) < _TINY32)
    if not small or small == x.size - np.count_nonzero(x):  # none, or only zeros: nothing to flush
        return x if x.ndim else x[()]
    bits = x.view(np.uint32)  # a zero exponent is a zero or a subnormal: keep only its sign
    flushed: Any = np.where((bits & _EXPONENT) == 0, bits & _SIGN, bits).view(np.float32)
    return flushed


def two_sum(a: F64, b: F64) -> tuple[F64, F64]:
    s = a + b
    bb = s - a
    e = (a - (s - bb)) + (b - bb)
    return s, np.where(np.isfinite(s), e, 0.0)


_SPLIT = 134217729.0  # 2**27 + 1


def two_prod(a: F64, b: F64) -> tuple[F64, F64]:
    p = a * b
    ca = _SPLIT * a
    ahi = ca - (ca - a)
    alo = a - ahi
    cb = _SPLIT * b
    bhi = cb - (cb - b)
    blo = b - bhi
    e = ((ahi * bhi - p) + ahi * blo + alo * bhi) + alo * blo
    return p, np.where(np.isfinite(p), e, 0.0)


def fma64(x: F64, y: F64, z: F64) -> F64:
    """``fma.rn.f64``: ``x * y + z`` rounded once (Boldo and Melquiond's emulation: the error-free
    product and sum, their low parts added rounded to odd, then the one rounding to nearest). Exact
    wherever the product's error is representable: operands below 2^996 and a product between
    2^-969 and 2^1023 (else two roundings); an infinite or NaN operand gives IEEE's answer. The C form
    (``_fma``) is exact everywhere; this is its fallback."""
    uh, ul = two_prod(x, y)
    th, tl = two_sum(z, uh)
    v, ev = two_sum(tl, ul)
    bits = v.view(np.int64)
    inexact = (ev != 0) & ((bits & 1) == 0)  # round to odd: step an even inexact sum towards its error
    away = (ev > 0) == (v > 0)
    odd = (bits + np.where(away, inexact, -inexact.astype(np.int64))).view(np.float64)
    r = th + odd
    # an infinite or NaN operand: IEEE's x * y + z (z itself past a finite product); a product too
    # large to split, or its sum past the range: the plain two roundings
    product_finite = np.isfinite(x) & np.isfinite(y)
    plain = np.where(product_finite & ~np.isfinite(z), z, x * y + z)
    result: F64 = np.where(product_finite & np.isfinite(z) & np.isfinite(r) & np.isfinite(odd), r, plain)
    return result


def round_pair(s: F64, e: F64, mode: str, dt: np.dtype[Any]) -> Value:
    """The value ``s + e`` (exact) rounded to ``dt`` (float32 or float64) by ``mode`` (rn/rz/rm/rp)."""
    s = np.asarray(s, dtype=np.float64)
    e = np.asarray(e, dtype=np.float64)
    if dt == np.float64:
        if mode == "rn":
            return s
        r = s
        res = e
    else:
        if mode == "rn":
            # round to odd in float64, then to nearest float32: one correct rounding. An inexact s with
            # an even significand steps one ulp towards e (its bits +1 away from zero, -1 towards it;
            # s is finite and non-zero wherever e is not 0), which makes it odd
            bits = s.view(np.int64)
            inexact = (e != 0) & ((bits & 1) == 0)
            if not inexact.any():
                return s.astype(np.float32)
            away = (e > 0) == (s > 0)
            odd = (bits + np.where(away, inexact, -inexact.astype(np.int64))).view(np.float64)
            return odd.astype(np.float32)
        r32 = s.astype(np.float32)
        r = r32.astype(np.float64)
        res = (s - r) + e
        return step_rounding(r32, res, mode)
    return step_rounding(r, res, mode)


def step_rounding(r: Value, res: F64, mode: str) -> Value:
    """Move a round-to-nearest result ``r`` one step when the residual says the mode wants it."""
    if mode == "rz":
        move = ((r > 0) & (res < 0)) | ((r < 0) & (res > 0))
        target = np.zeros_like(r)
    elif mode == "rm":
        move = res < 0
        target = np.full_like(r, -np.inf)
    elif mode == "rp":
        move = res > 0
        target = np.full_like(r, np.inf)
    else:
        raise ValueError(mode)
    return np.where(move, np.nextafter(r, target), r).astype(r.dtype)
