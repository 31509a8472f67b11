"""``bmsk.{clamp,wrap}.b32 d, a, b``: a mask of ``b`` ones starting at bit ``a`` (compute_70 and later;
CUB's radix sort digit extraction compiles to it).

PTX ISA: with ``.wrap`` the position and the width are taken modulo 32, with ``.clamp`` they saturate at
32; the ones run from bit ``a`` up to bit ``min(a + b, 32) - 1`` (none when ``a`` is 32).
"""

from __future__ import annotations

import numpy as np

from ._compiler import Compiler, InstructionCompiler, Mask, Runner, UnsupportedError
from ._numeric import DTYPES
from ._parse import Instruction
from ._state import Frame

__all__ = ["BITS"]


def _c_bmsk(c: Compiler, ins: Instruction) -> Runner:
    if ins.mods not in (("clamp", "b32"), ("wrap", "b32")) or len(ins.operands) != 3:
        raise UnsupportedError("bmsk.{clamp,wrap}.b32 d, a, b")
    wrap = "wrap" in ins.mods
    u32 = DTYPES["u32"]
    ga, gb, put = c.read(ins.operands[1], u32), c.read(ins.operands[2], u32), c.write(ins.operands[0], u32)

    def bmsk(f: Frame, m: Mask | None) -> None:
        a = np.asarray(ga(f), dtype=np.uint64)
        b = np.asarray(gb(f), dtype=np.uint64)
        if wrap:
            a, b = a & np.uint64(31), b & np.uint64(31)
        else:
            a, b = np.minimum(a, np.uint64(32)), np.minimum(b, np.uint64(32))
        end = np.minimum(a + b, np.uint64(32))
        one = np.uint64(1)
        mask = ((one << end) - one) ^ ((one << a) - one)  # 64-bit: shifts of 32 are defined
        put(f, mask.astype(np.uint32), m)

    return bmsk


BITS: dict[str, InstructionCompiler] = {"bmsk": _c_bmsk}
