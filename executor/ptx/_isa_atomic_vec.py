"""Vector and packed-half atomics: the ``atom``/``red`` forms ``_isa_atomic`` does not take.

* ``atom.add.noftz.{f16,bf16,f16x2,bf16x2}`` (atomicAdd on ``__half``, ``__half2``,
  ``__nv_bfloat16``, ``__nv_bfloat162``): global, shared or generic addresses;
* ``atom.cas.b16`` (NVIDIA's atomicAdd on ``__nv_bfloat16`` before sm_90 is a loop of them);
* sm_90's vector forms, global (or generic) only: ``.add.v2/.v4.f32`` (atomicAdd on ``float2`` and
  ``float4``), ``.{add,min,max}.noftz.v2/.v4/.v8.{f16,bf16}`` and ``.v2/.v4.{f16x2,bf16x2}``.

The ISA makes each element of a vector (each half of a packed pair) its own atomic: nothing holds the
elements of one thread's vector together. So an instruction is served element lane by element lane,
each lane a scalar atomic on 2- or 4-byte locations in the order ``_isa_atomic`` realises (the batch's
threads one after another in row order): threads are grouped by location (``_Groups``), each
location read once, its threads' operations replayed round by round on the values, written once.
Half adds are computed exactly and rounded once to nearest even, as ``add.f16``/``add.bf16`` are
(``.noftz``: subnormals kept); min and max are IEEE minNum/maxNum, as ``min.f16``. The f32 add
rounds as the scalar ``atom.add.f32`` does here (nearest even, subnormals kept).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from ._compiler import (
    Compiler,
    InstructionCompiler,
    Mask,
    Runner,
    Setter,
    UnsupportedError,
    access,
    active_rows,
    is_hint,
    select_rows,
)
from ._isa_arith import _bf16_value, _round_to_bf16, _round_to_f16
from ._isa_atomic import _check_time, _Groups
from ._memory import check_aligned
from ._numeric import DTYPES, two_sum
from ._parse import Instruction, Operand, Vec
from ._state import Frame

__all__ = ["compile_vector_atomic", "is_vector_atomic", "with_vector_atomics"]

Array = npt.NDArray[Any]
#: (old element values, operand b, operand c of cas) -> new element values, on the elements' bits
#: (f32: values)
Combine = Callable[[Array, Array, Array | None], Array]

_HALF_TYPES = {"f16", "bf16", "f16x2", "bf16x2"}
_VECTORS = {"v2": 2, "v4": 4, "v8": 8}
_OPS = {"add", "min", "max", "cas"}


def is_vector_atomic(ins: Instruction) -> bool:
    """Whether ``ins`` is one of this module's forms (a vector, a half type, ``cas.b16``)."""
    return any(m in _VECTORS or m in _HALF_TYPES for m in ins.mods) or {"cas", "b16"} <= set(ins.mods)


def _f16_value(bits: Array) -> Array:
    return np.asarray(bits, dtype=np.uint16).view(np.float16).astype(np.float64)


def _half_combine(op: str, brain: bool) -> Combine:
    """One half-width element's new bits: the add exact then rounded once; min/max minNum/maxNum."""
    value_of = _bf16_value if brain else _f16_value
    round_to = _round_to_bf16 if brain else _round_to_f16

    def combine(old: Array, b: Array, c: Array | None) -> Array:
        x, y = value_of(old), value_of(b)
        if op == "add":
            s, e = two_sum(x, y)
        else:
            s = (np.fmin if op == "min" else np.fmax)(x, y)  # one of the operands: exact in the type
            e = np.zeros_like(s)
        return np.asarray(round_to(s, e), dtype=np.uint16)

    return combine


def _f32_add(old: Array, b: Array, c: Array | None) -> Array:
    return np.asarray(old + b, dtype=np.float32)


def _cas(old: Array, b: Array, c: Array | None) -> Array:
    assert c is not None  # cas reads its third operand (compile_vector_atomic)
    return np.where(old == b, c, old)


class _Form:
    """The decoded modifiers: space, operation, the element dtype and combine, the lanes per
    register (2 for a packed pair) and the registers in the vector."""

    def __init__(self, ins: Instruction) -> None:
        self.space = "generic"
        self.op = ""
        self.t = ""
        self.vec = 1
        self.noftz = False
        self.hinted = False
        for m in ins.mods:
            if m in ("global", "shared", "shared::cta", "shared::cluster"):
                self.space = "shared" if m.startswith("shared") else m
            elif m in _OPS:
                self.op = m
            elif m in _VECTORS:
                self.vec = _VECTORS[m]
            elif m in ("f32", "b16", *_HALF_TYPES):
                self.t = m
            elif m == "noftz":
                self.noftz = True
            elif m == "L2::cache_hint":
                self.hinted = True  # a cache-policy operand follows; a hint, ignored
            elif not is_hint(m):
                raise UnsupportedError(f"modifier .{m}")
        if not self.op or not self.t:
            raise UnsupportedError("atom needs an operation and a type")
        self._check(ins.opcode)
        self.pairs = 2 if self.t.endswith("x2") else 1
        self.reg = DTYPES["f32" if self.t == "f32" else ("u32" if self.pairs == 2 else "u16")]
        self.element = np.dtype(np.float32) if self.t == "f32" else np.dtype(np.uint16)
        self.combine: Combine
        if self.t == "f32":
            self.combine = _f32_add
        elif self.t == "b16":
            self.combine = _cas
        else:
            self.combine = _half_combine(self.op, self.t.startswith("bf16"))

    def _check(self, opcode: str) -> None:
        """The combinations the ISA has (anything else is refused, naming it)."""
        name = f"{opcode}.{self.op}.v{self.vec}.{self.t}" if self.vec > 1 else f"{opcode}.{self.op}.{self.t}"
        if (self.t == "b16") != (self.op == "cas"):
            ok = False
        elif self.t == "b16":
            ok = self.vec == 1 and not self.noftz
        elif self.t == "f32":
            ok = self.vec in (2, 4) and self.op == "add" and not self.noftz
        elif self.vec == 1:
            ok = self.op == "add" and self.noftz
        else:  # 16-bit vectors up to .v8, packed pairs up to .v4
            ok = self.noftz and (self.vec <= 4 or self.t in ("f16", "bf16"))
        if not ok:
            raise UnsupportedError(name)
        if self.vec > 1 and self.space not in ("global", "generic"):
            raise UnsupportedError(f"{name} outside global memory")


def _registers(operand: Operand, count: int) -> tuple[Operand, ...]:
    items = operand.items if isinstance(operand, Vec) else (operand,)
    if len(items) != count or (count > 1) != isinstance(operand, Vec):
        raise UnsupportedError("vector width and operand differ")
    return items


def _serve_lane(
    f: Frame,
    space: str,
    rows: npt.NDArray[np.intp],
    addrs: Array,
    b: Array,
    cv: Array | None,
    dt: np.dtype[Any],
    combine: Combine,
) -> Array:
    """One element lane as a scalar atomic: every thread's old value in the serial (row) order,
    memory read and written once per location; the rounds replayed on the values."""
    g = _Groups(f, space, rows, addrs)
    vals = b[g.order]
    cvs = None if cv is None else cv[g.order]
    size = dt.itemsize
    at, owners = addrs[g.firsts], rows[g.firsts]
    current = np.ascontiguousarray(access(f, space, owners, at, size, None)).view(dt).reshape(-1).copy()
    olds = np.empty_like(vals)
    olds[g.starts] = current
    current = combine(current, vals[g.starts], None if cvs is None else cvs[g.starts])
    later = np.flatnonzero(g.pos)  # the threads after each location's first
    place = g.pos[later]
    for r in range(1, g.most):
        threads = later[place == r]
        locs = g.group[threads]
        olds[threads] = current[locs]
        current[locs] = combine(current[locs], vals[threads], None if cvs is None else cvs[threads])
    access(f, space, owners, at, size, np.ascontiguousarray(current).view(np.uint8).reshape(-1, size))
    f.batch.steps += g.most
    _check_time(f)
    out = np.empty(rows.size, dtype=dt)
    out[g.order] = olds
    return out


def compile_vector_atomic(c: Compiler, ins: Instruction) -> Runner:
    form = _Form(ins)
    ops = list(ins.operands)
    if form.hinted:
        if len(ops) < 2:
            raise UnsupportedError("operands")
        c.read(ops.pop(), DTYPES["b64"])  # the cache policy: a hint
    puts: list[Setter] = []
    if ins.opcode == "atom":
        if not ops:
            raise UnsupportedError("operands")
        puts = [c.write(x, form.reg) for x in _registers(ops.pop(0), form.vec)]
    if len(ops) != (3 if form.op == "cas" else 2):
        raise UnsupportedError("operands")
    addr, _ = c.address(ops[0], form.space)
    gets = [c.read(x, form.reg) for x in _registers(ops[1], form.vec)]
    get_c = c.read(ops[2], form.reg) if form.op == "cas" else None
    width = form.element.itemsize
    lanes = form.vec * form.pairs

    def atom(f: Frame, m: Mask | None) -> None:
        n = f.batch.n
        rows = active_rows(m, n)
        addrs = select_rows(addr(f), rows, n).astype(np.uint64)
        check_aligned(addrs, width * lanes, form.space)  # the whole vector (pair), as a GPU requires
        if not rows.size:
            return
        regs = [np.ascontiguousarray(select_rows(g(f), rows, n), dtype=form.reg) for g in gets]
        # (rows, lanes) of element values: a pair's low half first (little-endian memory order)
        b = np.stack(regs, axis=1).view(form.element).reshape(rows.size, lanes)
        cv = None if get_c is None else select_rows(get_c(f), rows, n).astype(form.element)
        olds = np.empty_like(b)
        for k in range(lanes):
            at = addrs + np.uint64(k * width)
            olds[:, k] = _serve_lane(f, form.space, rows, at, b[:, k].copy(), cv, form.element, form.combine)
        if puts:
            old_regs = np.ascontiguousarray(olds).view(form.reg).reshape(rows.size, form.vec)
            for k, put in enumerate(puts):
                full = np.zeros(n, dtype=form.reg)
                full[rows] = old_regs[:, k]
                put(f, full, m)

    return atom


def _dispatch(opcode: str, base: InstructionCompiler) -> InstructionCompiler:
    def compile_(c: Compiler, ins: Instruction) -> Runner:
        return compile_vector_atomic(c, ins) if is_vector_atomic(ins) else base(c, ins)

    compile_.__name__ = f"_{opcode}"
    return compile_


def with_vector_atomics(atomic: dict[str, InstructionCompiler]) -> dict[str, InstructionCompiler]:
    """``atom`` and ``red`` that serve this module's forms and hand the rest to ``atomic``."""
    return {opcode: _dispatch(opcode, compiler) for opcode, compiler in atomic.items()}
