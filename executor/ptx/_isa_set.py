"""``set``: a comparison written as a number — ``set.CmpOp{.BoolOp}{.ftz}.dtype.stype d, a, b{, {!}c}``
(cuda_fp16.hpp's half2 functions, ``h2exp`` and its kin, test special cases with ``set.eq.f16x2.f16x2``).

The comparison is ``setp``'s (ordered float comparisons are false on NaN, the ``u`` ones true; ``num``,
``nan``; ``lo ls hi hs`` unsigned), combined with the predicate ``c`` by ``.and``/``.or``/``.xor``.
True is all ones for an integer destination (``.u32``, ``.s32``), 1.0 for ``.f32``. For ``.f16x2`` and
``.bf16x2`` sources each half is compared on its own and the result goes to the same half: ``0xFFFF``
for a ``.u32`` destination, 1.0 of the half type for an ``.f16x2``/``.bf16x2`` one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ._compiler import Compiler, Getter, Mask, Runner, UnsupportedError
from ._isa_arith import FLOAT_ONLY, ORDERED, UNSIGNED, comparison
from ._numeric import DTYPES, ftz32
from ._parse import Instruction, Reg
from ._state import Frame, Value

__all__ = ["SET"]

_INTEGERS = {"u16", "u32", "u64", "s16", "s32", "s64", "b16", "b32", "b64"}
_ONE = {"f16x2": 0x3C00, "bf16x2": 0x3F80, "u32": 0xFFFF}


def _halves(t: str) -> Callable[[Value], tuple[Any, Any]]:
    """The two halves of an f16x2/bf16x2 word as float32 values (exact), lower first."""

    def split(v: Value) -> tuple[Any, Any]:
        bits = np.asarray(v, dtype=np.uint32)
        lo, hi = bits & np.uint32(0xFFFF), bits >> np.uint32(16)
        if t == "f16x2":
            return (
                lo.astype(np.uint16).view(np.float16).astype(np.float32),
                hi.astype(np.uint16).view(np.float16).astype(np.float32),
            )
        return (lo << np.uint32(16)).view(np.float32), (hi << np.uint32(16)).view(np.float32)

    return split


def _c_set(c: Compiler, ins: Instruction) -> Runner:
    mods = list(ins.mods)
    ftz = "ftz" in mods
    mods = [m for m in mods if m != "ftz"]
    combine = next((m for m in mods if m in ("and", "or", "xor")), "")
    mods = [m for m in mods if m != combine]
    if len(mods) != 3:
        raise UnsupportedError("set.CmpOp{.BoolOp}{.ftz}.dtype.stype")
    op, dtype, stype = mods
    if op not in ORDERED and op not in UNSIGNED and op not in FLOAT_ONLY:
        raise UnsupportedError(f"comparison .{op}")
    pair = stype in ("f16x2", "bf16x2")
    floats = pair or stype in ("f32", "f64", "f16", "bf16")
    if (op in FLOAT_ONLY and not floats) or (op in UNSIGNED and floats):
        raise UnsupportedError(f".{op} on .{stype}")
    if pair and dtype not in ("u32", "f16x2", "bf16x2"):
        raise UnsupportedError(f"set.{dtype}.{stype}")
    if not pair and (dtype not in ("u32", "s32", "f32") or stype not in _INTEGERS | {"f32", "f64"}):
        raise UnsupportedError(f"set.{dtype}.{stype}")
    ops = ins.operands
    if len(ops) != (4 if combine else 3):
        raise UnsupportedError("set d, a, b{, c}")
    source = DTYPES["u32"] if pair else DTYPES[stype]
    ga, gb = c.read(ops[1], source), c.read(ops[2], source)
    gc: Getter | None = None
    if combine:
        if not isinstance(ops[3], Reg):
            raise UnsupportedError("a combining operand that is not a predicate")
        gc = c.pred(ops[3])
    if op in UNSIGNED and stype[0] == "s":  # lo/ls/hi/hs compare the bits as unsigned
        unsigned = DTYPES["u" + stype[1:]]
        ga0, gb0 = ga, gb
        ga, gb = (lambda f: np.asarray(ga0(f)).view(unsigned)), (lambda f: np.asarray(gb0(f)).view(unsigned))
    compare = comparison(op, floats)
    put = c.write(ops[0], DTYPES["u32"])
    split = _halves(stype) if pair else None
    flush: Callable[[Value], Value] | None = None
    if ftz and stype == "f32":
        flush = ftz32
    elif ftz and stype == "f16x2":  # f16 subnormals (normal numbers once widened to f32)
        flush = lambda v: np.where(np.abs(v) < np.float32(2.0**-14), np.copysign(np.float32(0), v), v)  # noqa: E731

    def truth(a: Value, b: Value, f: Frame) -> Value:
        if flush is not None:
            a, b = flush(np.asarray(a, np.float32)), flush(np.asarray(b, np.float32))
        result = compare(a, b)
        if gc is not None:
            p = gc(f)
            result = result & p if combine == "and" else result | p if combine == "or" else result ^ p
        return np.asarray(result, dtype=np.bool_)

    def run(f: Frame, m: Mask | None) -> None:
        if split is not None:
            (alo, ahi), (blo, bhi) = split(ga(f)), split(gb(f))
            one = np.uint32(_ONE[dtype])
            lo = np.where(truth(alo, blo, f), one, np.uint32(0))
            hi = np.where(truth(ahi, bhi, f), one, np.uint32(0))
            put(f, (np.asarray(hi, np.uint32) << np.uint32(16)) | np.asarray(lo, np.uint32), m)
            return
        yes = truth(ga(f), gb(f), f)
        true = np.float32(1.0).view(np.uint32) if dtype == "f32" else np.uint32(0xFFFFFFFF)
        put(f, np.where(yes, true, np.uint32(0)).astype(np.uint32), m)

    return run


SET = {"set": _c_set}
