"""Extended-precision integer arithmetic: ``add.cc``, ``addc{.cc}``, ``sub.cc``, ``subc{.cc}``,
``mad{.lo,.hi}.cc`` and ``madc{.lo,.hi}{.cc}`` on ``.u32 .s32 .u64 .s64`` — how CUDA's libdevice builds
wide products (``sin``/``cos`` of a double reduce large arguments with them) and how PTX chains carries.

The condition code's carry flag ``CC.CF`` is one bit per thread, held in the frame as a register of its
own (``%%cc``, a name no PTX register can have; 0 until set). ``.cc`` writes the carry out of the
unsigned addition (``add``, ``mad``) or the borrow of the subtraction (``sub``); ``addc``/``madc`` add
the flag in, ``subc`` subtracts it (PTX ISA: ``d = a - (b + CC.CF)``). ``mad.lo``/``mad.hi`` take the
low or high half of the full product (signed for ``.s32``/``.s64``) and add ``c``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from ._compiler import Compiler, InstructionCompiler, Mask, Runner, UnsupportedError
from ._numeric import DTYPES
from ._parse import Instruction
from ._state import Frame

__all__ = ["CARRY", "CC", "compile_with_carry"]

#: the frame's register holding each thread's carry flag
CC = "%%cc"
_TYPES = ("u32", "s32", "u64", "s64")
U64 = npt.NDArray[np.uint64]


def _carry_in(f: Frame, n: int) -> U64:
    flag = f.regs.get(CC)
    if flag is None:
        return np.zeros(n, dtype=np.uint64)
    return np.asarray(flag, dtype=np.uint64)


def _set_carry(f: Frame, carry: Any, m: Mask | None) -> None:
    carry = np.broadcast_to(np.asarray(carry, dtype=np.uint64), (f.batch.n,))
    old = f.regs.get(CC)
    f.regs[CC] = carry.copy() if m is None or old is None else np.where(m, carry, old)


def _mul_parts(a: U64, b: U64, t: str) -> tuple[U64, U64]:
    """The low and high halves of the full product of ``a`` and ``b`` (as ``t``'s width, unsigned
    bits in uint64)."""
    if t in ("u32", "s32"):
        if t == "s32":
            sa, sb = a.astype(np.uint32).view(np.int32), b.astype(np.uint32).view(np.int32)
            wide = sa.astype(np.int64) * sb.astype(np.int64)
            bits = wide.view(np.uint64)
        else:
            bits = a * b  # 32 x 32 bits fit in 64
        return bits & np.uint64(0xFFFFFFFF), bits >> np.uint64(32)
    # 64 x 64: 32-bit limbs, then the signed correction of the high half
    mask = np.uint64(0xFFFFFFFF)
    a_lo, a_hi, b_lo, b_hi = a & mask, a >> np.uint64(32), b & mask, b >> np.uint64(32)
    ll, lh, hl, hh = a_lo * b_lo, a_lo * b_hi, a_hi * b_lo, a_hi * b_hi
    mid = (ll >> np.uint64(32)) + (lh & mask) + (hl & mask)
    low = (ll & mask) | (mid << np.uint64(32))
    high = hh + (lh >> np.uint64(32)) + (hl >> np.uint64(32)) + (mid >> np.uint64(32))
    if t == "s64":  # two's complement: subtract the other operand from the high half for each negative one
        high = (
            high
            - np.where(a >> np.uint64(63), b, np.uint64(0))
            - np.where(b >> np.uint64(63), a, np.uint64(0))
        )
    return low, high


def compile_with_carry(c: Compiler, ins: Instruction, plain: InstructionCompiler | None) -> Runner:
    """``add sub mad`` with ``.cc`` here (the rest ``plain``), and ``addc subc madc``."""
    op = ins.opcode
    writes = "cc" in ins.mods
    if op in ("add", "sub", "mad") and not writes:
        assert plain is not None
        return plain(c, ins)
    mods = [m for m in ins.mods if m != "cc"]
    half = next((m for m in mods if m in ("lo", "hi")), "")
    types = [m for m in mods if m in _TYPES]
    if len(types) != 1 or len(mods) != 1 + bool(half) or (op in ("mad", "madc")) != bool(half):
        raise UnsupportedError(f"{op}{{.lo,.hi}}{{.cc}}.{{u32,s32,u64,s64}}")
    t = types[0]
    wide = t in ("u64", "s64")
    dt = DTYPES[t]
    arity = 3 if op in ("mad", "madc") else 2
    if len(ins.operands) != arity + 1:
        raise UnsupportedError(f"{op} with {arity} sources")
    gets = [c.read(o, DTYPES["u64" if wide else "u32"]) for o in ins.operands[1:]]
    put = c.write(ins.operands[0], dt)
    carry_in = op in ("addc", "subc", "madc")
    sub = op in ("sub", "subc")

    def run(f: Frame, m: Mask | None) -> None:
        n = f.batch.n
        vals: list[Any] = [np.broadcast_to(np.asarray(g(f)).astype(np.uint64), (n,)) for g in gets]
        cf = _carry_in(f, n) if carry_in else np.zeros(n, dtype=np.uint64)
        if op in ("mad", "madc"):
            low, high = _mul_parts(vals[0], vals[1], t)
            x, y = (high if half == "hi" else low), vals[2]
        else:
            x, y = vals
        if sub:
            result, out = _subtract(x, y, cf, wide)
        else:
            result, out = _add(x, y, cf, wide)
        if not wide:
            result = result & np.uint64(0xFFFFFFFF)
        put(f, result.astype(np.uint64 if wide else np.uint32).view(dt), m)
        if writes:
            _set_carry(f, out, m)

    return run


def _add(x: U64, y: U64, cf: U64, wide: bool) -> tuple[U64, U64]:
    """``x + y + cf`` and its carry out, at 32 or 64 bits."""
    if not wide:
        total = x + y + cf  # at most 2^33: exact in 64 bits
        return total, total >> np.uint64(32)
    s = x + y
    carry = (s < x).astype(np.uint64)
    t = s + cf
    carry |= (t < s).astype(np.uint64)
    return t, carry


def _subtract(x: U64, y: U64, cf: U64, wide: bool) -> tuple[U64, U64]:
    """``x - (y + cf)`` and its borrow out, at 32 or 64 bits."""
    if not wide:
        signed = x.astype(np.int64) - y.astype(np.int64) - cf.astype(np.int64)
        return signed.view(np.uint64), (signed < 0).astype(np.uint64)
    d = x - y
    borrow = (x < y).astype(np.uint64)
    e = d - cf
    borrow |= (d < cf).astype(np.uint64)
    return e, borrow


def _only_carry(opcode: str) -> InstructionCompiler:
    def compile_(c: Compiler, ins: Instruction) -> Runner:
        return compile_with_carry(c, ins, None)

    return compile_


CARRY: dict[str, InstructionCompiler] = {name: _only_carry(name) for name in ("addc", "subc", "madc")}
