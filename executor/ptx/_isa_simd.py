"""SIMD within a 32-bit register, as the ``__v*`` intrinsics compile: ``add``/``sub``/``min``/``max`` on
``.u16x2``/``.s16x2`` (compute_90; ``min``/``max`` with ``.relu`` on ``.s16x2``) and the video
instructions ``vabsdiff4``/``vabsdiff2`` (``__vabsdiffu4``, ``__vsadu4``, ``__vabsss4``, …).

Each 16-bit (or 8-bit) lane is computed on its own: ``add``/``sub`` wrap, ``min``/``max`` compare as
the type's signedness says, ``.relu`` makes negative results 0. ``vabsdiff4.dtype.atype.btype d, a, b,
c`` gives each byte's absolute difference (the bytes signed or unsigned as ``atype``/``btype`` say) in
that byte of ``d``; with ``.add`` the four differences are summed and added to ``c`` instead
(``vabsdiff2``: the same on 16-bit halves). Lane selectors, masks and ``.sat`` are not implemented.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from ._compiler import Compiler, InstructionCompiler, Mask, Runner, UnsupportedError
from ._numeric import DTYPES
from ._parse import Instruction
from ._state import Frame, Value

__all__ = ["PAIRS16", "VIDEO", "compile_pairs16"]

PAIRS16 = ("u16x2", "s16x2")
I64 = npt.NDArray[np.int64]


def _lanes(v: Value, width: int, signed: bool) -> list[I64]:
    """The lanes of a 32-bit value, lowest first, as int64."""
    bits = np.asarray(v, dtype=np.uint32).astype(np.int64)
    mask = (1 << width) - 1
    out = []
    for k in range(32 // width):
        lane = (bits >> (k * width)) & mask
        if signed:
            lane = np.where(lane >> (width - 1), lane - (1 << width), lane)
        out.append(lane)
    return out


def _join(lanes: list[I64], width: int) -> npt.NDArray[np.uint32]:
    mask = (1 << width) - 1
    out = np.zeros(np.shape(lanes[0]), dtype=np.int64)
    for k, lane in enumerate(lanes):
        out |= (lane & mask) << (k * width)
    return out.astype(np.uint32)


def compile_pairs16(c: Compiler, ins: Instruction, plain: InstructionCompiler) -> Runner:
    """``add sub min max`` on ``.u16x2``/``.s16x2`` here; every other type goes to ``plain``."""
    t = next((m for m in ins.mods if m in PAIRS16), None)
    if t is None:
        return plain(c, ins)
    rest = [m for m in ins.mods if m != t]
    relu = rest == ["relu"]
    if rest and not (relu and ins.opcode in ("min", "max") and t == "s16x2"):
        raise UnsupportedError(f"{ins.opcode}.{t} (min/max.relu.s16x2 only)")
    if len(ins.operands) != 3:
        raise UnsupportedError(f"{ins.opcode}.{t} d, a, b")
    op: Callable[[I64, I64], I64] = {
        "add": np.add,
        "sub": np.subtract,
        "min": np.minimum,
        "max": np.maximum,
    }[ins.opcode]
    u32 = DTYPES["u32"]
    ga, gb, put = c.read(ins.operands[1], u32), c.read(ins.operands[2], u32), c.write(ins.operands[0], u32)
    signed = t == "s16x2"

    def run(f: Frame, m: Mask | None) -> None:
        lanes = [op(x, y) for x, y in zip(_lanes(ga(f), 16, signed), _lanes(gb(f), 16, signed), strict=True)]
        if relu:
            lanes = [np.maximum(lane, 0) for lane in lanes]
        put(f, _join(lanes, 16), m)

    return run


def _c_vabsdiff(c: Compiler, ins: Instruction) -> Runner:
    width = 8 if ins.opcode == "vabsdiff4" else 16
    mods = list(ins.mods)
    add = mods[-1:] == ["add"]
    types = mods[:-1] if add else mods
    if len(types) != 3 or any(m not in ("u32", "s32") for m in types) or len(ins.operands) != 4:
        raise UnsupportedError(f"{ins.opcode}.{{u32,s32}}.{{u32,s32}}.{{u32,s32}}{{.add}} d, a, b, c")
    _, atype, btype = types
    u32 = DTYPES["u32"]
    ga, gb = c.read(ins.operands[1], u32), c.read(ins.operands[2], u32)
    gc, put = c.read(ins.operands[3], u32), c.write(ins.operands[0], u32)

    def run(f: Frame, m: Mask | None) -> None:
        a_lanes, b_lanes = _lanes(ga(f), width, atype == "s32"), _lanes(gb(f), width, btype == "s32")
        diffs = [np.abs(x - y) for x, y in zip(a_lanes, b_lanes, strict=True)]
        if add:
            total = sum(diffs[1:], diffs[0]) + np.asarray(gc(f), dtype=np.uint32).astype(np.int64)
            put(f, (total & 0xFFFFFFFF).astype(np.uint32), m)
        else:
            put(f, _join(diffs, width), m)

    return run


VIDEO: dict[str, InstructionCompiler] = {"vabsdiff4": _c_vabsdiff, "vabsdiff2": _c_vabsdiff}
