"""Two f32 values packed into a pair of halves: ``cvt.{rn,rz}{.relu}{.satfinite}.{f16x2,bf16x2}.f32 d, a, b``
(compute_80 and later: ``__floats2half2_rn``, ``__floats2bfloat162_rn``, ``__float22bfloat162_rn``).

``a`` goes to the upper half of ``d`` and ``b`` to the lower, each rounded as ``cvt`` rounds one value
to f16 or bf16 (``_isa_arith``: correctly rounded by the mode, NaN canonical ``0x7FFF``); ``.relu``
makes negative results +0, ``.satfinite`` turns an infinity or an overflow into the largest finite
value of its sign (NaN stays NaN).
"""

from __future__ import annotations

import numpy as np

from ._compiler import Compiler, Mask, Runner, UnsupportedError
from ._isa_arith import HALF_NAN, _to_half
from ._numeric import DTYPES
from ._parse import Instruction
from ._state import Frame, Value

__all__ = ["PACKED_HALVES", "cvt_pack"]

PACKED_HALVES = ("f16x2", "bf16x2")
_LARGEST = {"f16x2": np.uint16(0x7BFF), "bf16x2": np.uint16(0x7F7F)}
_INFINITY = {"f16x2": np.uint16(0x7C00), "bf16x2": np.uint16(0x7F80)}


def cvt_pack(c: Compiler, ins: Instruction) -> Runner:
    """``cvt.{rn,rz}{.relu}{.satfinite}.{f16x2,bf16x2}.f32 d, a, b``."""
    mods = [m for m in ins.mods if m not in ("relu", "satfinite")]
    if len(mods) != 3 or mods[0] not in ("rn", "rz") or mods[1] not in PACKED_HALVES or mods[2] != "f32":
        raise UnsupportedError("cvt.{rn,rz}{.relu}{.satfinite}.{f16x2,bf16x2}.f32 d, a, b")
    if len(ins.operands) != 3:
        raise UnsupportedError("cvt.{f16x2,bf16x2}.f32 d, a, b")
    mode, packed = mods[0], mods[1]
    relu, satfinite = "relu" in ins.mods, "satfinite" in ins.mods
    to_half = _to_half(packed[:-2], mode, lambda v: v)
    ga, gb = c.read(ins.operands[1], DTYPES["f32"]), c.read(ins.operands[2], DTYPES["f32"])
    put = c.write(ins.operands[0], DTYPES["u32"])
    largest, infinity = _LARGEST[packed], _INFINITY[packed]

    def half(v: Value) -> Value:
        bits = np.asarray(to_half(np.asarray(v, dtype=np.float32)), dtype=np.uint16)
        magnitude = bits & np.uint16(0x7FFF)
        nan = bits == HALF_NAN
        if satfinite:  # infinities (from overflow or given) to the largest finite value of the sign
            bits = np.where(~nan & (magnitude == infinity), (bits & np.uint16(0x8000)) | largest, bits)
        if relu:
            bits = np.where(~nan & (bits >> np.uint16(15) == 1), np.uint16(0), bits)
        return np.asarray(bits, dtype=np.uint16).astype(np.uint32)

    def run(f: Frame, m: Mask | None) -> None:
        put(f, ((half(ga(f)) << np.uint32(16)) | half(gb(f))).astype(np.uint32), m)

    return run
