"""Arithmetic, comparison, bit manipulation and conversion instructions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from ._compiler import (
    BIT_TYPES,
    FLOAT_TYPES,
    INT_ROUND_MODES,
    INT_TYPES,
    ROUND_MODES,
    Compiler,
    InstructionCompiler,
    Mask,
    Runner,
    UnsupportedError,
    binary,
    constant,
    float_post,
    float_pre,
    instr_type,
    operands_of,
    round_mode,
    unary,
)
from ._fma import fma_rn
from ._numeric import DTYPES, fit, fma64, ftz32, round_pair, step_rounding, two_prod, two_sum, uint_of
from ._parse import Imm, Instruction, Pair, Reg
from ._state import Frame, Value


def _exact_pair(op: str, a: Value, b: Value) -> tuple[Any, Any]:
    a64 = np.asarray(a, dtype=np.float64)
    b64 = np.asarray(b, dtype=np.float64)
    if op == "add":
        return two_sum(a64, b64)
    if op == "sub":
        return two_sum(a64, -b64)
    return two_prod(a64, b64)


def _c_addsubmul(op: str) -> Callable[[Compiler, Instruction], Runner]:
    def compile_(c: Compiler, ins: Instruction) -> Runner:
        t, rest = instr_type(
            ins, INT_TYPES | FLOAT_TYPES, extra=ROUND_MODES | {"ftz", "sat", "lo", "hi", "wide", "cc"}
        )
        if "cc" in rest:
            raise UnsupportedError(".cc (carry)")
        if t in FLOAT_TYPES:
            if rest & {"lo", "hi", "wide"}:
                raise UnsupportedError("lo/hi/wide on floats")
            mode = round_mode(rest)
            pre, post = float_pre(t, rest), float_post(t, rest)
            dt = DTYPES[t]
            if mode == "rn":
                fn: Callable[[Value, Value], Value] = {"add": np.add, "sub": np.subtract, "mul": np.multiply}[
                    op
                ]
                return binary(c, ins, lambda a, b: post(fn(pre(a), pre(b))), t)
            return binary(
                c, ins, lambda a, b: post(round_pair(*_exact_pair(op, pre(a), pre(b)), mode, dt)), t
            )
        if rest & (ROUND_MODES | {"ftz"}):
            raise UnsupportedError("rounding on integers")
        if op == "mul":
            return _int_mul(c, ins, t, rest)
        if "sat" in rest:
            if t != "s32":
                raise UnsupportedError(".sat needs s32")
            sign = 1 if op == "add" else -1
            return binary(
                c,
                ins,
                lambda a, b: np.clip(
                    a.astype(np.int64) + sign * b.astype(np.int64), -(1 << 31), (1 << 31) - 1
                ).astype(np.int32),
                t,
            )
        fn2: Callable[[Value, Value], Value] = np.add if op == "add" else np.subtract
        return binary(c, ins, fn2, t)

    return compile_


def _mulhi(a: Value, b: Value, t: str) -> Value:
    dt = DTYPES[t]
    bits = 8 * dt.itemsize
    if bits < 64:
        wide = np.int64 if dt.kind == "i" else np.uint64
        return ((a.astype(wide) * b.astype(wide)) >> bits).astype(dt)
    ua, ub = (
        a.view(np.uint64) if isinstance(a, np.ndarray) else np.uint64(a.view(np.uint64)),
        b.view(np.uint64) if isinstance(b, np.ndarray) else np.uint64(b.view(np.uint64)),
    )
    m32 = np.uint64(0xFFFFFFFF)
    s32 = np.uint64(32)
    alo, ahi = ua & m32, ua >> s32
    blo, bhi = ub & m32, ub >> s32
    ll = alo * blo
    lh = alo * bhi
    hl = ahi * blo
    hh = ahi * bhi
    mid = (ll >> s32) + (lh & m32) + (hl & m32)
    hi = hh + (lh >> s32) + (hl >> s32) + (mid >> s32)
    if dt.kind == "i":
        hi = hi - np.where(a < 0, ub, np.uint64(0)) - np.where(b < 0, ua, np.uint64(0))
    return hi.view(dt) if isinstance(hi, np.ndarray) else np.uint64(hi).view(dt)


_WIDE = {"u16": "u32", "s16": "s32", "u32": "u64", "s32": "s64"}


def _int_mul(c: Compiler, ins: Instruction, t: str, rest: set[str]) -> Runner:
    if "sat" in rest:
        raise UnsupportedError(".sat on mul")
    if "wide" in rest:
        if t not in _WIDE:
            raise UnsupportedError(f"mul.wide.{t}")
        wt = DTYPES[_WIDE[t]]
        return binary(c, ins, lambda a, b: a.astype(wt) * b.astype(wt), t, out=_WIDE[t])
    if "hi" in rest:
        return binary(c, ins, lambda a, b: _mulhi(a, b, t), t)
    return binary(c, ins, np.multiply, t)


def _c_mad(c: Compiler, ins: Instruction) -> Runner:
    t, rest = instr_type(
        ins, INT_TYPES | FLOAT_TYPES, extra=ROUND_MODES | {"ftz", "sat", "lo", "hi", "wide", "cc"}
    )
    if t in FLOAT_TYPES:
        return _c_fma(c, ins)
    if rest - {"lo", "hi", "wide"}:
        raise UnsupportedError("modifiers")
    d, a, b, cc = operands_of(ins, 4)
    dt = DTYPES[t]
    ga, gb = c.read(a, dt), c.read(b, dt)
    if "wide" in rest:
        if t not in _WIDE:
            raise UnsupportedError(f"mad.wide.{t}")
        wt = DTYPES[_WIDE[t]]
        gc, put = c.read(cc, wt), c.write(d, wt)
        return lambda f, m: put(f, ga(f).astype(wt) * gb(f).astype(wt) + gc(f), m)
    gc, put = c.read(cc, dt), c.write(d, dt)
    if "hi" in rest:
        return lambda f, m: put(f, _mulhi(ga(f), gb(f), t) + gc(f), m)
    return lambda f, m: put(f, ga(f) * gb(f) + gc(f), m)


def _c_fma(c: Compiler, ins: Instruction) -> Runner:
    t, rest = instr_type(ins, FLOAT_TYPES, extra=ROUND_MODES | {"ftz", "sat"})
    mode = round_mode(rest)
    if t == "f64" and mode != "rn":
        raise UnsupportedError("directed rounding of f64 fma")
    d, a, b, cc = operands_of(ins, 4)
    dt = DTYPES[t]
    ga, gb, gc, put = c.read(a, dt), c.read(b, dt), c.read(cc, dt), c.write(d, dt)
    pre, post = float_pre(t, rest), float_post(t, rest)

    def fma(f: Frame, m: Mask | None) -> None:
        x, y, z = pre(ga(f)), pre(gb(f)), pre(gc(f))
        fused = fma_rn(x, y, z, dt) if mode == "rn" else None  # in C (_fma), when it is built
        if fused is not None:
            put(f, post(fused), m)
            return
        x64, y64, z64 = (np.asarray(v, dtype=np.float64) for v in (x, y, z))
        if t == "f32":
            s, e = two_sum(x64 * y64, z64)  # the f32 product is exact in f64
            put(f, post(round_pair(s, e, mode, dt)), m)
            return
        put(f, post(fma64(x64, y64, z64)), m)

    return fma


def _c_div(c: Compiler, ins: Instruction) -> Runner:
    t, rest = instr_type(ins, INT_TYPES | FLOAT_TYPES, extra=ROUND_MODES | {"ftz", "approx", "full"})
    dt = DTYPES[t]
    if t in FLOAT_TYPES:
        mode = round_mode(rest)
        pre, post = float_pre(t, rest), float_post(t, rest)
        if t == "f64" and (mode != "rn" or rest & {"approx", "full"}):
            raise UnsupportedError("f64 division other than .rn")
        if mode == "rn" or rest & {"approx", "full"}:
            return binary(c, ins, lambda a, b: post(np.divide(pre(a), pre(b))), t)
        if t != "f32":
            raise UnsupportedError("directed division of f64")

        def directed(a: Value, b: Value) -> Value:
            a64, b64 = np.asarray(pre(a), dtype=np.float64), np.asarray(pre(b), dtype=np.float64)
            q = a64 / b64
            p, ep = two_prod(q, b64)
            residual = np.where(np.isfinite(q) & (b64 != 0), ((a64 - p) - ep) / b64, 0.0)
            return post(round_pair(q, residual, mode, dt))

        return binary(c, ins, directed, t)
    if rest:
        raise UnsupportedError("modifiers on integer division")
    bits = 8 * dt.itemsize
    allones = constant(dt, -1 if dt.kind == "i" else (1 << bits) - 1)

    def idiv(a: Value, b: Value) -> Value:
        safe = np.where(b == 0, dt.type(1), b).astype(dt)
        q = (a - np.fmod(a, safe)) // safe if dt.kind == "i" else a // safe
        return np.where(b == 0, allones, q).astype(dt)

    return binary(c, ins, idiv, t)


def _c_rem(c: Compiler, ins: Instruction) -> Runner:
    t, _ = instr_type(ins, INT_TYPES)
    dt = DTYPES[t]

    def irem(a: Value, b: Value) -> Value:
        safe = np.where(b == 0, dt.type(1), b).astype(dt)
        r = np.fmod(a, safe) if dt.kind == "i" else a % safe
        return np.where(b == 0, a, r).astype(dt)

    return binary(c, ins, irem, t)


def _c_minmax(op: str) -> Callable[[Compiler, Instruction], Runner]:
    def compile_(c: Compiler, ins: Instruction) -> Runner:
        t, rest = instr_type(ins, INT_TYPES | FLOAT_TYPES, extra={"ftz", "NaN", "relu"})
        if t in FLOAT_TYPES:
            if "relu" in rest:
                raise UnsupportedError(".relu")
            pre, post = float_pre(t, rest), float_post(t, rest)
            fn: Callable[[Value, Value], Value]
            if "NaN" in rest:
                fn = np.minimum if op == "min" else np.maximum
            else:
                fn = np.fmin if op == "min" else np.fmax
            return binary(c, ins, lambda a, b: post(fn(pre(a), pre(b))), t)
        if rest:
            raise UnsupportedError("modifiers on integer min/max")
        return binary(c, ins, np.minimum if op == "min" else np.maximum, t)

    return compile_


def _c_neg(c: Compiler, ins: Instruction) -> Runner:
    t, rest = instr_type(ins, {"s16", "s32", "s64", "f32", "f64"}, extra={"ftz"})
    pre = float_pre(t, rest)
    return unary(c, ins, lambda a: pre(np.negative(a)), t)


def _c_abs(c: Compiler, ins: Instruction) -> Runner:
    t, rest = instr_type(ins, {"s16", "s32", "s64", "f32", "f64"}, extra={"ftz"})
    pre = float_pre(t, rest)
    return unary(c, ins, lambda a: pre(np.abs(a)), t)


def _c_copysign(c: Compiler, ins: Instruction) -> Runner:
    t, _ = instr_type(ins, FLOAT_TYPES)
    return binary(c, ins, lambda a, b: np.copysign(b, a), t)  # copysign d, a, b: a's sign on b


def _approx(
    fn: Callable[[Any], Any], forms: set[tuple[str, ...]]
) -> Callable[[Compiler, Instruction], Runner]:
    """A special function computed in float64 and rounded once to the result type."""

    def compile_(c: Compiler, ins: Instruction) -> Runner:
        if tuple(ins.mods) not in forms:
            raise UnsupportedError("this form")
        t = ins.mods[-1]
        rest = set(ins.mods[:-1])
        dt = DTYPES[t]
        pre, post = float_pre(t, rest), float_post(t, rest)
        return unary(
            c, ins, lambda a: post(np.asarray(fn(np.asarray(pre(a), dtype=np.float64))).astype(dt)), t
        )

    return compile_


def _rsqrt(x: Any) -> Any:
    return 1.0 / np.sqrt(x)


def _rcp(x: Any) -> Any:
    return 1.0 / x


def _c_sqrt_rcp(fn: Callable[[Any], Any]) -> Callable[[Compiler, Instruction], Runner]:
    """rcp/sqrt: ``.rn`` rounded correctly (via float64 for f32: a single rounding of an exact
    quotient/root is what float64 then float32 gives for these), ``.approx`` likewise."""
    approx = _approx(
        fn,
        {
            ("approx", "f32"),
            ("approx", "ftz", "f32"),
            ("rn", "f32"),
            ("rn", "ftz", "f32"),
            ("approx", "ftz", "f64"),
        },
    )

    def compile_(c: Compiler, ins: Instruction) -> Runner:
        if tuple(ins.mods) == ("rn", "f64"):
            return unary(c, ins, lambda a: np.asarray(fn(a)).astype(np.float64), "f64")
        return approx(c, ins)

    return compile_


#: PTX's comparison operators (``setp``'s and ``set``'s): the ordered ones, false when either
#: float is NaN; the unsigned names of integer ones; and those only floats have (true on a NaN, ``num``,
#: ``nan``)
ORDERED: dict[str, Callable[[Value, Value], Value]] = {
    "eq": np.equal,
    "ne": np.not_equal,
    "lt": np.less,
    "le": np.less_equal,
    "gt": np.greater,
    "ge": np.greater_equal,
}
UNSIGNED = {"lo": "lt", "ls": "le", "hi": "gt", "hs": "ge"}
FLOAT_ONLY = {"equ", "neu", "ltu", "leu", "gtu", "geu", "num", "nan"}


def comparison(op: str, floats: bool) -> Callable[[Value, Value], Value]:
    """Comparison ``op`` of two values (of an unsigned type for ``lo ls hi hs``)."""
    if op in UNSIGNED:
        return ORDERED[UNSIGNED[op]]
    if op == "num":
        return lambda a, b: ~(np.isnan(a) | np.isnan(b))
    if op == "nan":
        return lambda a, b: np.isnan(a) | np.isnan(b)
    if op.endswith("u"):
        unordered = ORDERED[op[:-1]]
        return lambda a, b: unordered(a, b) | np.isnan(a) | np.isnan(b)
    base = ORDERED[op]
    if floats and op == "ne":  # ordered: false when either is NaN (NumPy's != is true)
        return lambda a, b: base(a, b) & ~(np.isnan(a) | np.isnan(b))
    return base


def _c_setp(c: Compiler, ins: Instruction) -> Runner:
    cmp_ops = ORDERED.keys() | UNSIGNED.keys() | FLOAT_ONLY
    bool_ops = {"and", "or", "xor"}
    t, rest = instr_type(ins, INT_TYPES | FLOAT_TYPES | _HALVES, extra=cmp_ops | bool_ops | {"ftz"})
    cmp = [m for m in ins.mods if m in cmp_ops]
    combine = [m for m in ins.mods if m in bool_ops]
    if len(cmp) != 1 or len(combine) > 1:
        raise UnsupportedError("comparison")
    op = cmp[0]
    half = t in _HALVES  # compared as the float32 values they are exactly
    dt = np.dtype(np.float32) if half else DTYPES[t]
    if op in UNSIGNED and dt.kind == "f":
        raise UnsupportedError(f"{op} on floats")
    if op in FLOAT_ONLY and dt.kind != "f":
        raise UnsupportedError(f"{op} on integers")
    pre = _half_ftz(t, rest) if half else float_pre(t, rest)
    ops = ins.operands
    if len(ops) != (4 if combine else 3):
        raise UnsupportedError("operands")
    dest = ops[0]
    ga, gb = c.read(ops[1], DTYPES[t]), c.read(ops[2], DTYPES[t])
    if half:
        widen = _from_half(t)
        ga0, gb0 = ga, gb
        ga, gb = (lambda f: widen(ga0(f))), (lambda f: widen(gb0(f)))
    gc = c.pred(ops[3]) if combine and isinstance(ops[3], Reg) else None
    if combine and gc is None:
        raise UnsupportedError("a combining operand that is not a predicate")
    compare = comparison(op, dt.kind == "f")
    unsigned = uint_of(dt.itemsize) if op in UNSIGNED else None  # lo ls hi hs: the bits as unsigned

    def evaluate(f: Frame) -> Value:
        a, b = ga(f), gb(f)
        if dt.kind == "f":
            a, b = pre(a), pre(b)
        elif unsigned is not None:
            a, b = fit(a, unsigned), fit(b, unsigned)
        return compare(a, b)

    join: Callable[[Value, Value], Value] = {
        "and": np.logical_and,
        "or": np.logical_or,
        "xor": np.logical_xor,
    }.get(combine[0] if combine else "", np.logical_and)
    if isinstance(dest, Pair):
        put_p, put_q = c.write(dest.first, DTYPES["pred"]), c.write(dest.second, DTYPES["pred"])
    else:
        put_p, put_q = c.write(dest, DTYPES["pred"]), None

    def setp(f: Frame, m: Mask | None) -> None:
        r = evaluate(f)
        if gc is None:
            p, q = r, ~r
        else:
            cv = gc(f)
            p, q = join(r, cv), join(~r, cv)
        put_p(f, p, m)
        if put_q is not None:
            put_q(f, q, m)

    return setp


def _c_selp(c: Compiler, ins: Instruction) -> Runner:
    t, _ = instr_type(ins, INT_TYPES | FLOAT_TYPES)
    d, a, b, p = operands_of(ins, 4)
    dt = DTYPES[t]
    ga, gb, put = c.read(a, dt), c.read(b, dt), c.write(d, dt)
    if not isinstance(p, Reg):
        raise UnsupportedError("selp needs a predicate")
    gp = c.pred(p)

    def selp(f: Frame, m: Mask | None) -> None:
        chosen: Value = np.where(gp(f), ga(f), gb(f))
        put(f, chosen.astype(dt), m)

    return selp


def _c_logic(op: str) -> Callable[[Compiler, Instruction], Runner]:
    fns: dict[str, Callable[[Value, Value], Value]] = {
        "and": np.bitwise_and,
        "or": np.bitwise_or,
        "xor": np.bitwise_xor,
    }

    def compile_(c: Compiler, ins: Instruction) -> Runner:
        t, _ = instr_type(ins, BIT_TYPES | {"pred"})
        if op == "not":
            return unary(c, ins, np.invert, t)
        if op == "cnot":
            dt = DTYPES[t]
            return unary(c, ins, lambda a: (a == 0).astype(dt), t)
        return binary(c, ins, fns[op], t)

    return compile_


def _c_shift(op: str) -> Callable[[Compiler, Instruction], Runner]:
    def compile_(c: Compiler, ins: Instruction) -> Runner:
        allowed = BIT_TYPES if op == "shl" else BIT_TYPES | {"u16", "u32", "u64", "s16", "s32", "s64"}
        t, _ = instr_type(ins, allowed)
        dt = DTYPES[t]
        bits = 8 * dt.itemsize
        top = np.uint32(bits - 1)

        def shift(a: Value, b: Value) -> Value:
            amount = np.minimum(b, top).astype(dt)
            if op == "shl":
                return np.where(b >= bits, dt.type(0), np.left_shift(a, amount)).astype(dt)
            if dt.kind == "i":
                return np.right_shift(a, amount).astype(dt)  # arithmetic; >= width saturates to the sign
            return np.where(b >= bits, dt.type(0), np.right_shift(a, amount)).astype(dt)

        amount_op = operands_of(ins, 3)[2]
        if isinstance(amount_op, Imm) and isinstance(amount_op.value, int) and 0 <= amount_op.value < bits:
            # an immediate amount inside the width (nvcc's usual form): one NumPy shift, nothing to clamp
            d, a, _ = operands_of(ins, 3)
            get, put = c.read(a, dt), c.write(d, dt)
            k = dt.type(amount_op.value)
            fn = np.left_shift if op == "shl" else np.right_shift
            return lambda f, m: put(f, fn(get(f), k), m)
        return binary(c, ins, shift, t, b_type="u32")

    return compile_


def _c_popc(c: Compiler, ins: Instruction) -> Runner:
    t, _ = instr_type(ins, {"b32", "b64"})
    d, a = operands_of(ins, 2)
    get, put = c.read(a, DTYPES[t]), c.write(d, DTYPES["u32"])
    return lambda f, m: put(f, np.bitwise_count(get(f)).astype(np.uint32), m)


def highest_bit(u: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
    """The index of each unsigned element's highest set bit, -1 for 0: the binary exponent of the value
    as a double (exact below 2^53), a 64-bit word by its halves. One pass, where testing each bit took
    three NumPy operations a bit (``bfind`` and ``clz``: cooperative groups' thread ranks)."""
    if u.dtype.itemsize == 8:
        hi = (u >> np.uint64(32)).astype(np.uint32)
        return np.where(hi != 0, _exponent(hi) + 32, _exponent(u.astype(np.uint32)))
    return _exponent(u)


def _exponent(u: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
    return np.frexp(u.astype(np.float64))[1].astype(np.int64) - 1


def _c_clz(c: Compiler, ins: Instruction) -> Runner:
    t, _ = instr_type(ins, {"b32", "b64"})
    d, a = operands_of(ins, 2)
    dt = DTYPES[t]
    bits = 8 * dt.itemsize
    get, put = c.read(a, dt), c.write(d, DTYPES["u32"])

    def clz(v: Value) -> Value:
        return (bits - 1 - highest_bit(np.asarray(v, dtype=dt))).astype(np.uint32)

    return lambda f, m: put(f, clz(get(f)), m)


_REVERSED = np.array([int(f"{i:08b}"[::-1], 2) for i in range(256)], dtype=np.uint8)


def _c_brev(c: Compiler, ins: Instruction) -> Runner:
    t, _ = instr_type(ins, {"b32", "b64"})
    dt = DTYPES[t]

    def brev(v: Value) -> Value:
        x = np.atleast_1d(np.asarray(v, dtype=dt))
        raw = _REVERSED[x.view(np.uint8).reshape(-1, dt.itemsize)[:, ::-1]]
        out = np.ascontiguousarray(raw).view(dt).reshape(x.shape)
        return out if np.ndim(v) else out[0]

    return unary(c, ins, brev, t)


def _c_bfe(c: Compiler, ins: Instruction) -> Runner:
    t, _ = instr_type(ins, {"u32", "s32", "u64", "s64"})
    d, a, b, cc = operands_of(ins, 4)
    dt = DTYPES[t]
    ut = uint_of(dt.itemsize)
    bits = 8 * dt.itemsize
    ga, gb, gc, put = c.read(a, dt), c.read(b, DTYPES["u32"]), c.read(cc, DTYPES["u32"]), c.write(d, dt)

    def bfe(f: Frame, m: Mask | None) -> None:
        x = fit(ga(f), ut)
        pos = (gb(f) & np.uint32(0xFF)).astype(np.int64)
        length = (gc(f) & np.uint32(0xFF)).astype(np.int64)
        count = np.clip(np.minimum(length, bits - pos), 0, bits)
        field_ = np.where(pos < bits, x >> np.minimum(pos, bits - 1).astype(ut), ut.type(0)).astype(ut)
        keep = np.where(
            count >= bits, ~ut.type(0), (ut.type(1) << np.minimum(count, bits - 1).astype(ut)) - ut.type(1)
        )
        keep = keep.astype(ut)
        value = field_ & keep
        if dt.kind == "i":
            msb = np.minimum(pos + length - 1, bits - 1)
            sign = np.where(length == 0, False, ((x >> np.maximum(msb, 0).astype(ut)) & ut.type(1)) == 1)
            value = np.where(sign, value | ~keep, value).astype(ut)
        put(f, fit(value, dt), m)

    return bfe


def _c_bfind(c: Compiler, ins: Instruction) -> Runner:
    t, rest = instr_type(ins, {"u32", "s32", "u64", "s64"}, extra={"shiftamt"})
    dt = DTYPES[t]
    ut = uint_of(dt.itemsize)
    bits = 8 * dt.itemsize
    shiftamt = "shiftamt" in rest
    d, a = operands_of(ins, 2)
    get, put = c.read(a, dt), c.write(d, DTYPES["u32"])

    def bfind(f: Frame, m: Mask | None) -> None:
        v = get(f)
        x = np.where(v < 0, ~v, v) if dt.kind == "i" else v  # signed: the highest bit unlike the sign
        pos = highest_bit(np.asarray(fit(np.asarray(x).astype(dt), ut)))
        found = pos >= 0
        value = (bits - 1 - pos) if shiftamt else pos
        out = np.where(found, value, 0xFFFFFFFF).astype(np.uint32)
        put(f, out if out.ndim else out[()], m)

    return bfind


def _c_sad(c: Compiler, ins: Instruction) -> Runner:
    t, _ = instr_type(ins, {"u16", "s16", "u32", "s32", "u64", "s64"})
    d, a, b, cc = operands_of(ins, 4)
    dt = DTYPES[t]
    ut = uint_of(dt.itemsize)
    ga, gb, gc, put = c.read(a, dt), c.read(b, dt), c.read(cc, ut), c.write(d, ut)

    def sad(f: Frame, m: Mask | None) -> None:
        x, y = ga(f), gb(f)
        diff = np.where(x >= y, fit(x, ut) - fit(y, ut), fit(y, ut) - fit(x, ut)).astype(ut)
        put(f, (gc(f) + diff).astype(ut), m)

    return sad


def _c_bfi(c: Compiler, ins: Instruction) -> Runner:
    t, _ = instr_type(ins, {"b32", "b64"})
    d, a, b, pc, lc = operands_of(ins, 5)
    dt = DTYPES[t]
    bits = 8 * dt.itemsize
    ga, gb = c.read(a, dt), c.read(b, dt)
    gp, gl = c.read(pc, DTYPES["u32"]), c.read(lc, DTYPES["u32"])
    put = c.write(d, dt)

    def bfi(f: Frame, m: Mask | None) -> None:
        pos = (gp(f) & np.uint32(0xFF)).astype(np.int64)
        length = (gl(f) & np.uint32(0xFF)).astype(np.int64)
        count = np.where(pos < bits, np.clip(np.minimum(length, bits - pos), 0, bits), 0)
        ones = np.where(
            count >= bits, ~dt.type(0), (dt.type(1) << np.minimum(count, bits - 1).astype(dt)) - dt.type(1)
        ).astype(dt)
        shift = np.minimum(pos, bits - 1).astype(dt)
        keep = (ones << shift).astype(dt)
        put(f, ((gb(f) & ~keep) | ((ga(f) << shift) & keep)).astype(dt), m)

    return bfi


_HALF_TINY = 2.0**-14  # the smallest normal f16


def _half_ftz(t: str, rest: set[str]) -> Callable[[Value], Value]:
    """``.ftz`` on f16 values (as floats): subnormals become zeros of their sign."""
    if "ftz" not in rest or t != "f16":
        return lambda v: v
    return lambda v: np.where(np.abs(v) < _HALF_TINY, np.copysign(0.0, v), v)


def _round_to_f16(s: Value, e: Value) -> Value:
    """The exact value ``s + e`` (float64 pair) rounded to f16 (nearest even), as bits; NaN canonical."""
    s = np.asarray(s, dtype=np.float64)
    inexact = (np.asarray(e) != 0) & ((s.view(np.uint64) & np.uint64(1)) == 0)
    odd = np.where(inexact, np.nextafter(s, np.where(np.asarray(e) > 0, np.inf, -np.inf)), s)
    bits = odd.astype(np.float16).view(np.uint16)  # round-to-odd then once to f16: correctly rounded
    return np.where(np.isnan(s), HALF_NAN, bits)


def _round_to_bf16(s: Value, e: Value) -> Value:
    """The exact value ``s + e`` (float64 pair) rounded to bf16 (nearest even), as bits; NaN canonical.
    Rounded to odd twice (float64, then float32: each keeps at least two bits more than bf16), then
    once to nearest even, which is correct rounding."""
    s = np.asarray(s, dtype=np.float64)
    inexact = (np.asarray(e) != 0) & ((s.view(np.uint64) & np.uint64(1)) == 0)
    odd = np.where(inexact, np.nextafter(s, np.where(np.asarray(e) > 0, np.inf, -np.inf)), s)
    near = odd.astype(np.float32)
    rest = odd - near.astype(np.float64)  # exact
    bump = (rest != 0) & ((near.view(np.uint32) & np.uint32(1)) == 0) & np.isfinite(near)
    toward = np.where(rest > 0, np.float32(np.inf), np.float32(-np.inf))
    f32 = np.where(bump, np.nextafter(near, toward), near)
    bits = np.asarray(f32, dtype=np.float32).view(np.uint32)
    top = (bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)
    return np.where(np.isnan(s), HALF_NAN, top.astype(np.uint16))


def _bf16_value(bits: Value) -> Value:
    return (np.asarray(bits, dtype=np.uint32) << np.uint32(16)).view(np.float32).astype(np.float64)


def _c_half_arith(op: str, base: InstructionCompiler) -> InstructionCompiler:
    """``add sub mul fma neg abs min max`` on ``.f16``/``.f16x2`` and ``.bf16``/``.bf16x2`` (lane by
    lane): computed exactly in float64 and rounded once to the type (``.rn``, the only rounding PTX
    has for them; bf16 takes no ``.ftz``/``.sat``); other types go to ``base``."""
    arity = {"add": 2, "sub": 2, "mul": 2, "fma": 3, "neg": 1, "abs": 1, "min": 2, "max": 2}[op]

    def compile_(c: Compiler, ins: Instruction) -> Runner:
        types = [m for m in ins.mods if m in DTYPES]
        if not types or types[-1] not in ("f16", "f16x2", "bf16", "bf16x2"):
            return base(c, ins)
        t = types[-1]
        brain = t.startswith("bf16")
        rest = {m for m in ins.mods if m not in DTYPES}
        allowed = {"rn", "NaN"} if brain else {"rn", "ftz", "sat", "NaN"}
        if rest - allowed or ("NaN" in rest and op not in ("min", "max")):
            raise UnsupportedError("modifier " + " ".join(sorted(rest)))
        operands = operands_of(ins, arity + 1)
        reg = DTYPES["u32" if t.endswith("x2") else "u16"]
        gets = [c.read(x, reg) for x in operands[1:]]
        put = c.write(operands[0], reg)
        lanes = 2 if t.endswith("x2") else 1
        value_of = (
            _bf16_value
            if brain
            else (lambda b: np.asarray(b, dtype=np.uint16).view(np.float16).astype(np.float64))
        )
        round_to = _round_to_bf16 if brain else _round_to_f16
        ftz = _half_ftz("f16", rest)
        sat = "sat" in rest
        propagate = "NaN" in rest

        def one_lane(bits: list[Value]) -> Value:
            if op == "neg":
                return bits[0] ^ np.uint16(0x8000)
            if op == "abs":
                return bits[0] & np.uint16(0x7FFF)
            x = [ftz(value_of(b)) for b in bits]
            if op in ("min", "max"):
                pick = (
                    (np.minimum if propagate else np.fmin)
                    if op == "min"
                    else (np.maximum if propagate else np.fmax)
                )
                value = pick(x[0], x[1])  # one of the operands: exact in the type
                return round_to(value, np.zeros_like(value))
            if op == "mul":
                s, e = x[0] * x[1], np.zeros_like(x[0])  # an f16 or bf16 product is exact in float64
            elif op == "fma":
                s, e = two_sum(x[0] * x[1], x[2])
            else:
                s, e = two_sum(x[0], x[1] if op == "add" else -x[1])
            out = round_to(s, e)
            if "ftz" in rest or sat:
                value = out.view(np.float16).astype(np.float64)
                value = ftz(value)
                if sat:
                    value = np.where(np.isnan(value), 0.0, np.clip(value, 0.0, 1.0))
                out = value.astype(np.float16).view(np.uint16)
            return out

        def run(f: Frame, m: Mask | None) -> None:
            values = [np.asarray(g(f)) for g in gets]
            if lanes == 1:
                result = one_lane([v.astype(np.uint16) for v in values])
                put(f, result if result.ndim else result[()], m)
                return
            low = one_lane([(v & np.uint32(0xFFFF)).astype(np.uint16) for v in values])
            high = one_lane([(v >> np.uint32(16)).astype(np.uint16) for v in values])
            packed = low.astype(np.uint32) | (high.astype(np.uint32) << np.uint32(16))
            put(f, packed if packed.ndim else packed[()], m)

        return run

    return compile_


def _c_shf(c: Compiler, ins: Instruction) -> Runner:
    mods = tuple(ins.mods)
    if len(mods) != 3 or mods[0] not in ("l", "r") or mods[1] not in ("wrap", "clamp") or mods[2] != "b32":
        raise UnsupportedError("shf.{l,r}.{wrap,clamp}.b32")
    left, wrap = mods[0] == "l", mods[1] == "wrap"
    d, a, b, cc = operands_of(ins, 4)
    u32 = DTYPES["u32"]
    ga, gb, gc, put = c.read(a, u32), c.read(b, u32), c.read(cc, u32), c.write(d, u32)

    def shf(f: Frame, m: Mask | None) -> None:
        pair = (np.asarray(gb(f), dtype=np.uint64) << np.uint64(32)) | np.asarray(ga(f), dtype=np.uint64)
        amount = np.asarray(gc(f), dtype=np.uint64)
        n = amount & np.uint64(31) if wrap else np.minimum(amount, np.uint64(32))
        if left:
            out = ((pair << n) >> np.uint64(32)) & np.uint64(0xFFFFFFFF)
        else:
            out = (pair >> n) & np.uint64(0xFFFFFFFF)
        result = out.astype(np.uint32)
        put(f, result if result.ndim else result[()], m)

    return shf


def _lanes(v: Value, width: int, signed: bool) -> list[Value]:
    """The ``width``-byte lanes of 32-bit values, sign- or zero-extended to int64."""
    u = np.asarray(v, dtype=np.uint32).astype(np.int64)
    bits = 8 * width
    out = []
    for k in range(4 // width):
        lane = (u >> (bits * k)) & ((1 << bits) - 1)
        out.append(np.where(lane >= 1 << (bits - 1), lane - (1 << bits), lane) if signed else lane)
    return out


def _c_dot(c: Compiler, ins: Instruction) -> Runner:
    """``dp4a``: c + the dot product of a's and b's bytes; ``dp2a.lo/hi``: c + a's 16-bit halves dotted
    with b's low or high two bytes. Each operand's lanes are signed or not by its type; the sum wraps."""
    mods = list(ins.mods)
    half = ""
    if ins.opcode == "dp2a":
        if not mods or mods[0] not in ("lo", "hi"):
            raise UnsupportedError("dp2a.{lo,hi}")
        half = mods.pop(0)
    if len(mods) != 2 or any(t not in ("u32", "s32") for t in mods):
        raise UnsupportedError("operand types")
    a_signed, b_signed = mods[0] == "s32", mods[1] == "s32"
    d, a, b, cc = operands_of(ins, 4)
    u32 = DTYPES["u32"]
    ga, gb, gc, put = c.read(a, u32), c.read(b, u32), c.read(cc, u32), c.write(d, u32)

    a_bytes, b_bytes = np.int8 if a_signed else np.uint8, np.int8 if b_signed else np.uint8

    def dot(f: Frame, m: Mask | None) -> None:
        x, y, z = ga(f), gb(f), gc(f)
        if not half and np.ndim(x) == 1 and np.ndim(y) == 1:
            # dp4a over arrays: each 32-bit value's four bytes (lane k is byte k, little-endian) as a
            # row; the products of bytes fit in int32, and so do four of them plus c modulo 2**32
            xb = np.ascontiguousarray(x, dtype=np.uint32).view(a_bytes).reshape(-1, 4).astype(np.int32)
            yb = np.ascontiguousarray(y, dtype=np.uint32).view(b_bytes).reshape(-1, 4).astype(np.int32)
            p = xb * yb  # int32 sums wrap as the hardware's do (modulo 2**32, read back as u32)
            acc = p[:, 0] + p[:, 1] + p[:, 2] + p[:, 3] + np.asarray(z, dtype=np.uint32).view(np.int32)
            put(f, acc.view(np.uint32), m)
            return
        bs = _lanes(gb(f), 1, b_signed)
        if half:
            xs = _lanes(ga(f), 2, a_signed)
            ys = bs[:2] if half == "lo" else bs[2:]
        else:
            xs, ys = _lanes(ga(f), 1, a_signed), bs
        total = np.asarray(gc(f), dtype=np.uint32).astype(np.int64)
        for x, y in zip(xs, ys, strict=True):
            total = total + x * y
        result = (total & 0xFFFFFFFF).astype(np.uint32)
        put(f, result if result.ndim else result[()], m)

    return dot


def _c_lop3(c: Compiler, ins: Instruction) -> Runner:
    if tuple(ins.mods) != ("b32",) or len(ins.operands) != 5 or not isinstance(ins.operands[4], Imm):
        raise UnsupportedError("lop3.b32 d, a, b, c, immLut")
    d, a, b, cc, lut_op = ins.operands
    lut = int(lut_op.value) & 0xFF  # type: ignore[union-attr]
    u32 = DTYPES["u32"]
    ga, gb, gc, put = c.read(a, u32), c.read(b, u32), c.read(cc, u32), c.write(d, u32)

    def lop3(f: Frame, m: Mask | None) -> None:
        x, y, z = ga(f), gb(f), gc(f)
        out = np.zeros(np.broadcast(x, y, z).shape, dtype=np.uint32)
        for index in range(8):  # the LUT's bit (a << 2 | b << 1 | c): one minterm each
            if lut >> index & 1:
                out = out | ((x if index & 4 else ~x) & (y if index & 2 else ~y) & (z if index & 1 else ~z))
        put(f, out if out.ndim else out[()], m)

    return lop3


def _c_prmt(c: Compiler, ins: Instruction) -> Runner:
    if tuple(ins.mods) != ("b32",):
        raise UnsupportedError("prmt modes other than the default")
    d, a, b, sel = operands_of(ins, 4)
    u32 = DTYPES["u32"]
    ga, gb, gs, put = c.read(a, u32), c.read(b, u32), c.read(sel, u32), c.write(d, u32)

    def prmt(f: Frame, m: Mask | None) -> None:
        pair = (np.asarray(gb(f), dtype=np.uint64) << np.uint64(32)) | np.asarray(ga(f), dtype=np.uint64)
        s = np.asarray(gs(f), dtype=np.uint32)
        out = np.zeros(np.broadcast(pair, s).shape, dtype=np.uint32)
        for i in range(4):
            nib = (s >> np.uint32(4 * i)) & np.uint32(0xF)
            byte = (
                (pair >> ((nib & np.uint32(7)).astype(np.uint64) * np.uint64(8))) & np.uint64(0xFF)
            ).astype(np.uint32)
            sign = np.where((byte & np.uint32(0x80)) != 0, np.uint32(0xFF), np.uint32(0))
            byte = np.where((nib & np.uint32(8)) != 0, sign, byte)
            out = out | (byte << np.uint32(8 * i))
        put(f, out if out.ndim else out[()], m)

    return prmt


def _c_cvt(c: Compiler, ins: Instruction) -> Runner:
    types = [m for m in ins.mods if m in DTYPES]
    rest = {m for m in ins.mods if m not in DTYPES}
    if len(types) != 2:
        raise UnsupportedError("cvt needs two types")
    dname, sname = types
    if {dname, sname} & {"f16x2", "bf16x2", "tf32", "pred", "b8", "b16", "b32", "b64"} or (
        dname in _HALVES and sname in _HALVES
    ):
        raise UnsupportedError(f"cvt between .{dname} and .{sname}")
    unknown = rest - (ROUND_MODES | INT_ROUND_MODES | {"ftz", "sat"})
    if unknown:
        raise UnsupportedError("modifier " + " ".join(sorted(unknown)))
    d, a = operands_of(ins, 2)
    get, put = c.read(a, DTYPES[sname]), c.write(d, DTYPES[dname])
    # a half source is widened to float32 first (exactly); a half result is rounded from the exact value
    sdt = np.dtype(np.float32) if sname in _HALVES else DTYPES[sname]
    widen: Callable[[Value], Value] = _from_half(sname) if sname in _HALVES else (lambda v: v)
    if dname in _HALVES:
        if sdt.kind in "ui" and sdt.itemsize == 8:
            raise UnsupportedError("a 64-bit integer to a half")
        if rest & INT_ROUND_MODES or "sat" in rest:
            raise UnsupportedError(f"this rounding to .{dname}")
        if dname == "bf16" and sdt != np.float32:
            raise UnsupportedError(f"a .{sname} to .bf16 conversion (only from .f32)")
        narrow = _to_half(dname, round_mode(rest), float_pre("f32" if sdt == np.float32 else "", rest))
        return lambda f, m: put(f, narrow(widen(get(f))), m)
    fn = _converter(DTYPES[dname], sdt, rest)
    return lambda f, m: put(f, fn(widen(get(f))), m)


_HALVES = {"f16", "bf16"}
#: the NaN a conversion to a half produces (the canonical NaN of f16 and bf16 alike)
HALF_NAN = np.uint16(0x7FFF)


def _from_half(name: str) -> Callable[[Value], Value]:
    """The float32 value of f16 or bf16 bits (exact: both are subsets of float32)."""
    if name == "f16":
        return lambda bits: np.asarray(bits, dtype=np.uint16).view(np.float16).astype(np.float32)
    return lambda bits: (np.asarray(bits, dtype=np.uint32) << np.uint32(16)).view(np.float32)


def _to_half(name: str, mode: str, pre: Callable[[Value], Value]) -> Callable[[Value], Value]:
    """A value rounded to f16 or bf16 by ``mode``, as bits."""

    def to_f16(v: Value) -> Value:
        exact = np.asarray(pre(v), dtype=np.float64)  # every source the engine accepts is exact here
        near = exact.astype(np.float16)
        if mode != "rn":
            near = np.asarray(step_rounding(near, exact - near.astype(np.float64), mode), dtype=np.float16)
        return np.where(np.isnan(exact), HALF_NAN, near.view(np.uint16))

    def to_bf16(v: Value) -> Value:
        value = np.asarray(pre(v), dtype=np.float32)  # only float32 sources reach here
        bits = value.view(np.uint32)
        low = bits & np.uint32(0xFFFF)
        top = bits >> np.uint32(16)
        negative = (bits >> np.uint32(31)) == 1
        if mode == "rn":
            top = (bits + np.uint32(0x7FFF) + (top & np.uint32(1))) >> np.uint32(16)
        elif mode in ("rm", "rp"):
            away = negative if mode == "rm" else ~negative
            top = top + ((low != 0) & away).astype(np.uint32)
        return np.where(np.isnan(value), HALF_NAN, top.astype(np.uint16))

    return to_f16 if name == "f16" else to_bf16


def _converter(ddt: np.dtype[Any], sdt: np.dtype[Any], rest: set[str]) -> Callable[[Value], Value]:
    sat = "sat" in rest
    ftz = "ftz" in rest
    iround = (rest & INT_ROUND_MODES).pop() if rest & INT_ROUND_MODES else None
    fround = (rest & ROUND_MODES).pop() if rest & ROUND_MODES else None
    pre: Callable[[Value], Value] = ftz32 if ftz and sdt == np.float32 else (lambda v: v)
    post: Callable[[Value], Value] = ftz32 if ftz and ddt == np.float32 else (lambda v: v)
    if ddt.kind in "ui" and sdt.kind in "ui":
        if fround or iround:
            raise UnsupportedError("rounding on an integer conversion")
        if not sat:
            return lambda v: fit(fit(v, sdt), ddt) if ddt.itemsize <= sdt.itemsize else fit(v, ddt)
        if sdt.itemsize == 8:
            raise UnsupportedError("a saturating conversion from a 64-bit integer")
        lo, hi = np.iinfo(ddt).min, np.iinfo(ddt).max
        return lambda v: np.clip(v.astype(np.int64), lo, hi).astype(ddt)
    if ddt.kind == "f" and sdt.kind == "f":
        if iround:
            rounder = {"rni": np.rint, "rzi": np.trunc, "rmi": np.floor, "rpi": np.ceil}[iround]
            if ddt != sdt:
                raise UnsupportedError("integral rounding between float widths")
            return lambda v: _satf(post(rounder(pre(v)).astype(ddt)), sat)
        mode = fround or "rn"
        if ddt.itemsize >= sdt.itemsize:
            if fround and ddt.itemsize > sdt.itemsize:
                raise UnsupportedError("rounding on a widening conversion")
            return lambda v: _satf(post(pre(v).astype(ddt)), sat)
        return lambda v: _satf(
            post(round_pair(np.asarray(pre(v), dtype=np.float64), np.zeros(np.shape(v)), mode, ddt)), sat
        )
    if ddt.kind == "f":  # integer to float
        if iround:
            raise UnsupportedError("integral rounding to a float")
        mode = fround or "rn"
        if sdt.itemsize == 8 and mode != "rn":
            raise UnsupportedError("directed rounding of a 64-bit integer")
        if sdt.itemsize == 8 or mode == "rn":
            return lambda v: _satf(post(np.asarray(v).astype(ddt)), sat)
        return lambda v: _satf(
            post(round_pair(np.asarray(v, dtype=np.float64), np.zeros(np.shape(v)), mode, ddt)), sat
        )
    # float to integer: rounds as asked, saturates to the destination's range, NaN becomes 0
    if not iround:
        raise UnsupportedError("a float to integer conversion needs .rni/.rzi/.rmi/.rpi")
    rounder = {"rni": np.rint, "rzi": np.trunc, "rmi": np.floor, "rpi": np.ceil}[iround]
    info = np.iinfo(ddt)

    def to_int(v: Value) -> Value:
        x = rounder(np.asarray(pre(v), dtype=np.float64))
        x = np.where(np.isnan(x), 0.0, x)
        if ddt.itemsize < 8:
            return np.clip(x, info.min, info.max).astype(ddt)
        over = x >= float(info.max) + 1.0
        under = x < float(info.min)
        out = np.where(over | under, 0.0, x).astype(ddt)
        out = np.where(over, ddt.type(info.max), out)
        return np.where(under, ddt.type(info.min), out).astype(ddt)

    return to_int


def _satf(v: Value, sat: bool) -> Value:
    if not sat:
        return v
    return np.where(np.isnan(v), 0, np.clip(v, 0, 1)).astype(v.dtype)


ARITHMETIC: dict[str, InstructionCompiler] = {
    "add": _c_half_arith("add", _c_addsubmul("add")),
    "sub": _c_half_arith("sub", _c_addsubmul("sub")),
    "mul": _c_half_arith("mul", _c_addsubmul("mul")),
    "mad": _c_mad,
    "fma": _c_half_arith("fma", _c_fma),
    "div": _c_div,
    "rem": _c_rem,
    "min": _c_half_arith("min", _c_minmax("min")),
    "max": _c_half_arith("max", _c_minmax("max")),
    "neg": _c_half_arith("neg", _c_neg),
    "abs": _c_half_arith("abs", _c_abs),
    "copysign": _c_copysign,
    "ex2": _approx(np.exp2, {("approx", "f32"), ("approx", "ftz", "f32")}),
    "lg2": _approx(np.log2, {("approx", "f32"), ("approx", "ftz", "f32")}),
    "sin": _approx(np.sin, {("approx", "f32"), ("approx", "ftz", "f32")}),
    "cos": _approx(np.cos, {("approx", "f32"), ("approx", "ftz", "f32")}),
    "tanh": _approx(np.tanh, {("approx", "f32")}),
    "rsqrt": _approx(
        _rsqrt, {("approx", "f32"), ("approx", "ftz", "f32"), ("approx", "f64"), ("approx", "ftz", "f64")}
    ),
    "rcp": _c_sqrt_rcp(_rcp),
    "sqrt": _c_sqrt_rcp(np.sqrt),
    "setp": _c_setp,
    "selp": _c_selp,
    "and": _c_logic("and"),
    "or": _c_logic("or"),
    "xor": _c_logic("xor"),
    "not": _c_logic("not"),
    "cnot": _c_logic("cnot"),
    "shl": _c_shift("shl"),
    "shr": _c_shift("shr"),
    "popc": _c_popc,
    "clz": _c_clz,
    "bfind": _c_bfind,
    "sad": _c_sad,
    "brev": _c_brev,
    "bfe": _c_bfe,
    "bfi": _c_bfi,
    "prmt": _c_prmt,
    "shf": _c_shf,
    "dp4a": _c_dot,
    "dp2a": _c_dot,
    "lop3": _c_lop3,
    "cvt": _c_cvt,
}
