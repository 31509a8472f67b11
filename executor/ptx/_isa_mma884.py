"""``mma.sync.aligned.m8n8k4`` with f16 inputs: sm_70's tensor-core shape, four products per warp.

Unlike every later shape, a warp executing it computes four independent 8x8x4 products, one per
*quad-pair*: lanes 0-3 (the low group) with 16-19 (the high group) compute the first, 4-7 with 20-23
the second, 8-11 with 24-27 the third, 12-15 with 28-31 the fourth. The fragment layouts are the PTX
ISA's ("Matrix Fragments for mma.m8n8k4 with .f16 floating point type"), with ``q = lane % 4`` and
``h = 4`` for the high group (0 for the low one):

* A (two f16x2 registers, a0..a3): row-major at row ``q + h``, column ``i``; column-major at row
  ``i + h``, column ``q``;
* B (two f16x2 registers, b0..b3): row-major at row ``q``, column ``i + h``; column-major at row
  ``i``, column ``q + h``;
* C and D as f16 (four f16x2 registers, c0..c7): row ``q + h``, column ``i``; as f32 (eight
  registers): row ``(lane & 1) + (i & 2) + h``, column ``(i & 4) + (lane & 2) + (i & 1)``.

The accumulator types pair as ptxas accepts them: ``.f16.f16.f16.f16``, ``.f32.f16.f16.f32`` and
``.f32.f16.f16.f16`` (an f16 D with an f32 C is refused). Numerics as the other shapes
(``_isa_tensor``): the f16 products are exact in float64, summed with C in float64 and rounded once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from ._compiler import Compiler, Mask, Runner, UnsupportedError, broadcast_full
from ._isa_tensor import whole_warps
from ._numeric import DTYPES
from ._parse import Instruction, Vec
from ._state import Frame

__all__ = ["compile_mma884", "is_mma884"]

#: (lane, element index) -> (quad-pair, row, column)
Place = Callable[[int, int], tuple[int, int, int]]


def _qp(lane: int) -> int:
    return (lane >> 2) & 3


def _high(lane: int) -> int:
    return 4 if lane >= 16 else 0


_A: dict[str, Place] = {
    "row": lambda lane, i: (_qp(lane), lane % 4 + _high(lane), i),
    "col": lambda lane, i: (_qp(lane), i + _high(lane), lane % 4),
}
_B: dict[str, Place] = {
    "row": lambda lane, i: (_qp(lane), lane % 4, i + _high(lane)),
    "col": lambda lane, i: (_qp(lane), i, lane % 4 + _high(lane)),
}
_ACC: dict[str, Place] = {
    "f16": lambda lane, i: (_qp(lane), lane % 4 + _high(lane), i),
    "f32": lambda lane, i: (_qp(lane), (lane & 1) + (i & 2) + _high(lane), (i & 4) + (lane & 2) + (i & 1)),
}
_TYPES = {("f16", "f16"), ("f32", "f32"), ("f32", "f16")}  # (D, C)


def _table(place: Place, count: int) -> tuple[npt.NDArray[np.intp], ...]:
    """(32, count) arrays of quad-pair, row and column, lane by element."""
    out = np.empty((3, 32, count), dtype=np.intp)
    for lane in range(32):
        for i in range(count):
            out[:, lane, i] = place(lane, i)
    return out[0], out[1], out[2]


def is_mma884(ins: Instruction) -> bool:
    return "m8n8k4" in ins.mods and "f16" in ins.mods


def _halves(words: list[npt.NDArray[Any]]) -> npt.NDArray[np.float64]:
    """f16x2 registers ``(warps, 32)`` each as their f16 elements ``(warps, 32, 2 * len)``, low half first."""
    parts = []
    for word in words:
        w = word.astype(np.uint32)
        parts += [w & np.uint32(0xFFFF), w >> np.uint32(16)]
    return np.stack(parts, axis=-1).astype(np.uint16).view(np.float16).astype(np.float64)


def compile_mma884(c: Compiler, ins: Instruction) -> Runner:
    mods = [m for m in ins.mods if m not in ("sync", "aligned")]
    if "sync" not in ins.mods or "aligned" not in ins.mods or len(mods) != 7 or mods[0] != "m8n8k4":
        raise UnsupportedError("mma.sync.aligned.m8n8k4.<alayout>.<blayout>.<d>.f16.f16.<c>")
    _, al, bl, dt, at, bt, ct = mods
    if al not in _A or bl not in _B or (at, bt) != ("f16", "f16") or (dt, ct) not in _TYPES:
        raise UnsupportedError(f"mma.m8n8k4 .{al}.{bl}.{dt}.{at}.{bt}.{ct}")
    if len(ins.operands) != 4 or not all(isinstance(o, Vec) for o in ins.operands):
        raise UnsupportedError("mma operands: four vectors {d}, {a}, {b}, {c}")
    d_op, a_op, b_op, c_op = ins.operands
    assert isinstance(d_op, Vec) and isinstance(a_op, Vec) and isinstance(b_op, Vec) and isinstance(c_op, Vec)
    words = {"f16": 4, "f32": 8}
    sizes = (len(a_op.items), len(b_op.items), len(c_op.items), len(d_op.items))
    if sizes != (2, 2, words[ct], words[dt]):
        raise UnsupportedError("mma.m8n8k4 with these fragment sizes")
    reg_dt = {"f16": DTYPES["u32"], "f32": DTYPES["f32"]}
    ga = [c.read(o, DTYPES["u32"]) for o in a_op.items]
    gb = [c.read(o, DTYPES["u32"]) for o in b_op.items]
    gc = [c.read(o, reg_dt[ct]) for o in c_op.items]
    puts = [c.write(o, reg_dt[dt]) for o in d_op.items]
    aq, ar, ac = _table(_A[al], 4)
    bq, br, bc = _table(_B[bl], 4)
    cq, cr, cc = _table(_ACC[ct], 8)
    dq, dr, dc = _table(_ACC[dt], 8)

    def mma(f: Frame, m: Mask | None) -> None:
        whole_warps(f, m, "mma.sync")
        n = f.batch.n
        warps = n // 32

        def regs(getters: list[Any]) -> list[npt.NDArray[Any]]:
            return [broadcast_full(g(f), n).reshape(warps, 32) for g in getters]

        c_words = regs(gc)
        c_el = _halves(c_words) if ct == "f16" else np.stack([w.astype(np.float64) for w in c_words], axis=-1)
        a_mat = np.zeros((warps, 4, 8, 4))
        b_mat = np.zeros((warps, 4, 4, 8))
        c_mat = np.zeros((warps, 4, 8, 8))
        a_mat[:, aq, ar, ac] = _halves(regs(ga))
        b_mat[:, bq, br, bc] = _halves(regs(gb))
        c_mat[:, cq, cr, cc] = c_el
        d_el = (np.matmul(a_mat, b_mat) + c_mat)[:, dq, dr, dc]  # (warps, 32, 8)
        if dt == "f16":
            h = d_el.astype(np.float16).view(np.uint16).astype(np.uint32)
            out = [h[..., 2 * j] | (h[..., 2 * j + 1] << np.uint32(16)) for j in range(4)]
        else:
            out = [d_el[..., i].astype(np.float32) for i in range(8)]
        for put, word in zip(puts, out, strict=True):
            put(f, word.reshape(n), m)

    return mma
