"""Fused runs: each straight line of plain instructions compiled into one generated Python function.

The SIMT loop (``_machine``) pays for every instruction it issues: the stack, the guard, the op's
closure, each operand's getter and the destination's setter, whose type conversions cost a NumPy call
each — more than the arithmetic on a narrow batch, and far more on the NumPy scalars that hold uniform
values (a NumPy scalar's ``view`` or ufunc call costs 20-40 times its operator). So each maximal run
of plain instructions (no branch, call, barrier, return or trap) inside one basic block becomes one
function, generated as Python source when the kernel is prepared; the loop issues the run as one step
and counts its instructions.

Inside a run each instruction is one of:

* **inline**: the common instructions whose semantics are an operator over registers (integer
  ``add``/``sub``/``mul.lo``/``mad.lo``/``mul.wide``, logic, shifts by an immediate, ``mov``,
  ``cvta``, ``ld.param`` of a kernel parameter, integer widening ``cvt``, ``setp``, ``selp``, and
  ``add``/``sub``/``mul`` of f32/f64 with round-to-nearest, ``.ftz`` included) read the register
  dictionary and write it directly. Integer instructions whose result bits do not depend on
  signedness (add, sub, the low half of a product, logic, left shifts, moves) are computed on the
  registers' own unsigned storage, so no conversion is made; signed comparisons compare with the sign
  bit flipped; the result is the bits the instruction's compiled closure produces;
* **called**: every other instruction runs its compiled closure (``Op.run``), unchanged — so an
  instruction added to the table is fused too, as a call.

Masks keep the loop's semantics: a run is generated twice, for a full batch (``m`` is ``None``) and
for an active mask; a guarded instruction runs for ``mask & guard`` and is skipped when no thread
has it; a write under a mask keeps the other threads' values (``put_masked``, the setter's rule).
Inside a masked run, a line of unguarded inline instructions that compute registers from registers
(no loads) is computed for every thread of the batch and merged under the mask once at its end
(``merge_masked``: what the masked writes leave, by bit selection): a divergent loop body such as
binomialOptions' pays one merge per register instead of one per instruction, and its f32 lines run
as native segments as in a full batch wherever the frame's SIMT stack lets the registers dying there
go (a thread waiting on another path may still read one). A fault raised inside a run names its
instruction: the generated source has its own lines per
instruction, and :meth:`Run.op_index` maps a traceback's line back to it.

The generated source contains only names the engine chose (register names are passed as string
literals through ``repr`` after the parser's validation, constants through the namespace), never
text of the guest's module, so nothing a guest writes is executed as Python.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from dataclasses import dataclass
from types import CodeType, TracebackType
from typing import Any

import numpy as np

from protocol import CUresult

from .._errors import CudaError
from ._compiler import (
    BIT_TYPES,
    PLAIN,
    Compiler,
    Mask,
    Op,
    UnsupportedError,
    constant,
)
from ._fma import fma_rn, native
from ._isa_memory import window_operand
from ._memory import _span as device_span
from ._memory import window_index, window_load
from ._native_run import SELP, Form, Segment, native_form, run_segment, segment
from ._numeric import DTYPES, ftz32, round_pair, two_sum, uint_of
from ._parse import Addr, Imm, Instruction, Operand, Pair, PtxSyntaxError, Reg, Sym, Vec
from ._state import Frame, KernelFaultError, Value, count_set

__all__ = [
    "MAX_RUN",
    "After",
    "Drop",
    "MergedSegment",
    "Run",
    "fuse",
    "merge_masked",
    "merged_segment",
    "put_masked",
    "run_merged",
    "same_uniform",
]

#: a fused run: ``(frame, active mask or None, the stack entry's mask)``
RunFn = Callable[[Frame, Mask | None, Mask], None]

_count = count_set
_U64 = np.dtype(np.uint64)
_ZERO64 = np.uint64(0)
_SIGN32 = np.uint32(1 << 31)
_SIGN64_OF_32 = np.uint64(1 << 31)
_INTEGERS = frozenset(f"{k}{n}" for k in "bus" for n in (8, 16, 32, 64))
_NAME = re.compile(r"^%?[A-Za-z_$][A-Za-z0-9_$]*$")


def same_uniform(a: Value, b: Value) -> bool:
    """Whether two uniform values are the same bits (``==`` but for the sign of a zero: a masked write
    of -0.0 over +0.0 leaves the other threads' +0.0)."""
    return bool(a == b and (a != 0 or np.signbit(a) == np.signbit(b)))


def put_masked(regs: dict[str, Value], name: str, value: Value, mask: Mask) -> None:
    """A register write for the threads in ``mask`` only (the compiler's setter's rule: a register
    no thread wrote, or one holding this same uniform value, takes the value as it is)."""
    old = regs.get(name)
    if old is None or (np.ndim(value) == 0 and np.ndim(old) == 0 and same_uniform(old, value)):
        regs[name] = value
    else:
        regs[name] = np.where(mask, value, old)


_UNSIGNED: dict[int, np.dtype[Any]] = {
    1: np.dtype(np.uint8),
    2: np.dtype(np.uint16),
    4: np.dtype(np.uint32),
    8: np.dtype(np.uint64),
}


#: the fewest threads for which selecting by bits beats ``np.where`` (its fixed cost, three NumPy calls a
#: register and the mask's words, loses below; at 16,384 it is 1.3x faster on a regular mask, 5x on an
#: irregular one: 4 registers, 63 against 83 and 37 against 203 us at load 3)
_BITS_FROM = 8192


class _Lanes:
    """An active mask as all-ones/all-zeros words of each width, made once per merge (with a scratch
    word array): selecting by bits costs the same whatever the mask's pattern, where ``np.where``'s
    per-lane branch costs up to seven times more on a mask that alternates irregularly."""

    __slots__ = ("mask", "words")

    def __init__(self, mask: Mask) -> None:
        self.mask = mask
        self.words: dict[int, tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]] = {}

    def of(self, size: int) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        got = self.words.get(size)
        if got is None:
            ones = np.subtract(0, self.mask.view(np.uint8), dtype=_UNSIGNED[size])
            got = self.words[size] = (ones, ~ones, np.empty_like(ones))
        return got


def merge_masked(
    regs: dict[str, Value],
    names: tuple[str, ...],
    olds: list[Value],
    mask: Mask,
    fresh: frozenset[str],
) -> None:
    """Registers ``names`` were computed for every thread of a divergent run (``olds``: their values
    before it): the threads outside ``mask`` get their old values back — what writing each under the
    mask (:func:`put_masked`) leaves, for every thread the mask holds and every register anyone may
    still read. A register the run let go stays gone; one no thread wrote before keeps what was
    computed (PTX leaves it undefined for the others). ``fresh``: registers whose arrays the run made
    and nothing else holds, merged in place."""
    lanes: _Lanes | None = None
    for name, old in zip(names, olds, strict=True):
        if old is None:
            continue
        new = regs.get(name)
        if new is None:
            continue
        if (
            type(new) is not np.ndarray
            or type(old) is not np.ndarray
            or mask.size < _BITS_FROM
            or new.shape != mask.shape
            or old.shape != mask.shape
            or new.dtype != old.dtype
            or new.dtype.itemsize not in _UNSIGNED
        ):
            if not (np.ndim(new) == 0 and np.ndim(old) == 0 and same_uniform(old, new)):
                regs[name] = np.where(mask, new, old)
            continue
        if lanes is None:
            lanes = _Lanes(mask)
        u = _UNSIGNED[new.dtype.itemsize]
        ones, zeros, kept = lanes.of(new.dtype.itemsize)
        np.bitwise_and(old.view(u), zeros, out=kept)
        if name in fresh:
            _FLUSHED.pop(id(new), None)  # changed in place: no longer known to be flushed
            bits = new.view(u)
            bits &= ones
        else:
            bits = new.view(u) & ones
            regs[name] = bits.view(new.dtype)
        bits |= kept


#: the active mask's name among a merged segment's inputs (no register's: :func:`run_merged` supplies it)
_ACTIVE = "\0active"
#: what a merged segment calls a register's new value before merging it (no register's name either)
_NEW = "\0new"


@dataclass(frozen=True, slots=True)
class MergedSegment:
    """A divergent line's native segment that merges the f32 registers it leaves itself: its records
    compute each into a new name, then ``selp`` it with the register's value before the line under the
    active mask — one C pass over lanes in cache, where a merge after it reads and writes each array
    three more times. ``plain``: the same line unmerged, for when a register it merges holds no
    per-thread value yet (or every input is uniform: the results then stay uniform scalars)."""

    merged: Segment
    plain: Segment
    names: tuple[str, ...]


def merged_segment(forms: list[Form], drops: list[tuple[str, ...]], names: tuple[str, ...]) -> MergedSegment:
    """The :class:`MergedSegment` of ``forms`` merging ``names`` (f32 registers it writes, none read
    after the line by a write before it: each register's first read in the line is its old value)."""
    renamed: dict[str, str] = {}
    out: list[Form] = []
    for op, dest, sources in forms:
        reads = tuple(Reg(renamed.get(s.name, s.name)) if isinstance(s, Reg) else s for s in sources)
        if dest.name in names:
            out.append((op, Reg(renamed.setdefault(dest.name, dest.name + _NEW)), reads))
        else:
            out.append((op, dest, reads))
    out += [(SELP, Reg(name), (Reg(name + _NEW), Reg(name), Reg(_ACTIVE))) for name in names]
    merged = segment(out, [*drops, *((name + _NEW,) for name in names)])
    return MergedSegment(merged, segment(forms, drops), names)


def run_merged(regs: dict[str, Value], seg: MergedSegment, mask: Mask) -> None:
    """Run ``seg`` for every thread, its registers merged under ``mask`` (:class:`MergedSegment`)."""
    plain = seg.plain
    if not all(type(regs.get(name)) is np.ndarray for name in seg.names) or not any(
        type(regs.get(name)) is np.ndarray for name, _ in plain.inputs
    ):
        olds = [regs.get(name) for name in seg.names]
        run_segment(regs, plain)
        merge_masked(regs, seg.names, olds, mask, frozenset(seg.names))
        return
    assert native is not None  # a segment exists only with the extension
    merged = seg.merged
    values = [mask if name == _ACTIVE else regs.get(name, zero) for name, zero in merged.inputs]
    n = mask.size
    outs = [np.empty(n, dtype=dt) for _, dt in merged.outputs]
    try:
        native.run_f32(merged.code, (*values, *merged.consts, *outs), n, merged.scratch)
    except ValueError:  # a register not laid out as one contiguous column: made one, as the setter would
        values = [
            np.ascontiguousarray(v, dtype=np.bool_ if type(zero) is np.bool_ else _F32)
            for v, (_, zero) in zip(values, merged.inputs, strict=True)
        ]
        native.run_f32(merged.code, (*values, *merged.consts, *outs), n, merged.scratch)
    for (name, _), out in zip(merged.outputs, outs, strict=True):
        regs[name] = out
    for name in merged.pops:
        regs.pop(name, None)


def _sign_extend_32(v: Value) -> Value:
    """32-bit unsigned storage sign-extended to 64-bit unsigned storage (``cvt.s64.s32``)."""
    if type(v) is np.ndarray:
        return v.view(np.int32).astype(np.uint64)
    return ((v ^ _SIGN32) + _ZERO64) - _SIGN64_OF_32  # operators only: a NumPy scalar's view is slow


def _truncate_32(v: Value) -> Value:
    if type(v) is np.ndarray:
        return v.astype(np.uint32)
    return np.uint32(int(v) & 0xFFFFFFFF)


#: float64 bits: the low 29 of a float32 midpoint's significand, and where float32's normal range starts
#: (0-d arrays: an array's operator with a NumPy scalar converts the scalar at every call)
_LOW29, _MIDPOINT = np.array((1 << 29) - 1, dtype=np.uint64), np.array(1 << 28, dtype=np.uint64)
_MAGNITUDE64 = np.array((1 << 63) - 1, dtype=np.uint64)
_NORMAL32 = np.array((1023 - 126) << 52, dtype=np.uint64)


_F32 = np.dtype(np.float32)


def _fma32(x: Value, y: Value, z: Value) -> Value:
    """``fma.rn.f32``: ``x * y + z`` rounded once. The product is exact in float64, and so is the
    float32 rounding of the float64 sum unless that sum lies exactly on a float32 midpoint (where the
    sum's own rounding error decides) or below float32's normal range but not zero: only then (rarely)
    is the exact error-free sum rounded to odd first, as the compiled instruction always does. (A zero
    sum is exact — the operands are multiples of 2^-298, which float64 never rounds to zero — and its
    sign is IEEE's, as float64's addition gives it.) With ``native/ptxfma.c`` built: C's ``fmaf``."""
    fused = fma_rn(x, y, z, _F32)
    if fused is not None:
        return fused
    p = np.multiply(x, y, dtype=np.float64)
    s = np.add(p, z, dtype=np.float64)
    bits = np.asarray(s).view(np.uint64)
    flagged = _count(((bits & _LOW29) == _MIDPOINT) | ((bits & _MAGNITUDE64) < _NORMAL32))
    if not flagged or flagged == s.size - _count(s):  # none, or only zeros (each is flagged)
        return s.astype(np.float32)
    return round_pair(*two_sum(p, np.asarray(z, dtype=np.float64)), "rn", np.dtype(np.float32))


def _select(p: Value, a: Value, b: Value) -> Value:
    if type(p) is np.bool_:
        return a if p else b
    return np.where(p, a, b)


def _kernel_param(f: Frame, key: str, at: int, dt: np.dtype[Any]) -> Value:
    """A kernel parameter's value, read once per batch (every thread's is the same)."""
    derived = f.batch.derived
    value = derived.get(key)
    if value is None:
        params = f.batch.params
        if len(params) < at + dt.itemsize:
            raise KernelFaultError(
                CUresult.CUDA_ERROR_INVALID_VALUE, "the parameter block is too short", sticky=False
            )
        value = derived[key] = np.frombuffer(params, dtype=dt, count=1, offset=at)[0]
    return value


def _window_load(f: Frame, base: Value, space: str, size: int, offset: int) -> Value:
    """A full batch's shared or local load through the address register's window index
    (``_memory.window_index``), or ``None`` where the checked path must decide."""
    if base is None:
        return None
    win = window_index(f.batch, space, base, size)
    return None if win is None else window_load(win, offset, size, None)


def _param_at(f: Frame, base: Value, offset: int, dt: np.dtype[Any]) -> Value:
    """The kernel parameter bytes at uniform param-space address ``base + offset`` as ``dt``, read once
    per batch; ``None`` where ``base`` differs by thread or the address is misaligned or past the
    parameter block (the closure then faults, naming it)."""
    if base is None or type(base) is np.ndarray:
        return None
    at = int(base) + offset
    size = dt.itemsize
    params = f.batch.params
    if at < 0 or at % size or at + size > len(params):
        return None
    key = ("param at", at, dt.str)
    derived = f.batch.derived
    value = derived.get(key)
    if value is None:
        value = derived[key] = np.frombuffer(params, dtype=dt, count=1, offset=at)[0]
    return value


_ADDRESS = (1 << 64) - 1


def _device_at(f: Frame, base: Value, offset: int, dt: np.dtype[Any]) -> Value:
    """The element of device memory at uniform address ``base + offset`` as ``dt`` (checked as every
    load is: ``_memory.device_elements``); ``None`` where ``base`` differs by thread or the fast check
    refuses (the closure then decides)."""
    if base is None or type(base) is np.ndarray:
        return None
    at = (int(base) + offset) & _ADDRESS
    size = dt.itemsize
    if at % size:
        return None
    try:
        got = device_span(f.batch.memory, at, size, False)  # the simulator's checked view, in place
    except CudaError:
        return None
    return None if got is None or got.size != size else got.view(dt)[0]


#: small arrays known to hold no f32 subnormal (``.ftz`` results), by identity: a register's array is
#: never changed in place, so one flushed stays flushed while it lives, and each ``.ftz`` instruction
#: that reads it skips the test; an entry holds its array, so its ``id`` is not reused meanwhile
_FLUSHED: dict[int, Any] = {}
_FLUSHED_ENTRIES = 64
_FLUSHED_BYTES = 1 << 16


#: the least normal float32 as a 0-d array: an array compares with it several times faster than with
#: a NumPy scalar (which NumPy converts at every call)
_TINY32 = np.array(np.finfo(np.float32).tiny, dtype=np.float32)


def _ftz(x: Value) -> Value:
    """``ftz32``, answered at once for an array it flushed before (see :data:`_FLUSHED`), and for an
    array without subnormals with one comparison and one count."""
    if type(x) is not np.ndarray or x.dtype != np.float32 or not x.ndim:
        return ftz32(x)
    if _FLUSHED.get(id(x)) is x:
        return x
    small = _count(abs(x) < _TINY32)  # zeros and subnormals
    y = ftz32(x) if small and small != x.size - _count(x) else x
    if type(y) is np.ndarray and y.nbytes <= _FLUSHED_BYTES:
        if len(_FLUSHED) >= _FLUSHED_ENTRIES:
            _FLUSHED.clear()
        _FLUSHED[id(y)] = y
    return y


_HELPERS: dict[str, Any] = {
    "np": np,
    "_count": _count,
    "_put": put_masked,
    "_mrg": merge_masked,
    "_ftz": _ftz,
    "_sx32": _sign_extend_32,
    "_tr32": _truncate_32,
    "_sel": _select,
    "_fma32": _fma32,
    "_S32": np.uint64(32),
    "_param": _kernel_param,
    "_Z64": _ZERO64,
    "_wld": _window_load,
    "_nseg": run_segment,
    "_nsegm": run_merged,
    "_pat": _param_at,
    "_uld": _device_at,
}


@dataclass(slots=True)
class Run:
    """A fused run of ``length`` plain instructions starting at ``start``."""

    start: int
    length: int
    full: RunFn
    masked: RunFn
    codes: tuple[CodeType, CodeType]
    first_lines: tuple[list[int], list[int]]  # per variant: the first source line of each instruction
    inline: tuple[bool, ...]  # per instruction: inline (True) or a call of its closure

    def op_index(self, tb: TracebackType | None) -> int:
        """The instruction (its index in the run) a fault raised in this run came from."""
        line = -1
        variant = 0
        while tb is not None:
            code = tb.tb_frame.f_code
            if code is self.codes[0] or code is self.codes[1]:
                variant = 0 if code is self.codes[0] else 1
                line = tb.tb_lineno
            tb = tb.tb_next
        if line < 0:
            return 0
        return max(0, bisect.bisect_right(self.first_lines[variant], line) - 1)


class _Source:
    """The generated module: its lines and the namespace its names refer to."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.names: dict[str, Any] = dict(_HELPERS)

    def const(self, value: Any) -> str:
        name = f"k{len(self.names)}"
        self.names[name] = value
        return name


class _Emitter:
    """Inline source for one instruction, or ``None`` when it is left to its closure."""

    def __init__(self, c: Compiler, src: _Source) -> None:
        self.c = c
        self.src = src

    # -- operands -----------------------------------------------------------------------------

    def storage(self, operand: Operand) -> np.dtype[Any] | None:
        """The storage dtype of a declared register operand, else ``None``."""
        if isinstance(operand, Reg) and operand.name in self.c.fn.registers and _NAME.match(operand.name):
            return self.c.reg_type(operand.name)
        return None

    def read(self, operand: Operand, dt: np.dtype[Any]) -> str:
        """An expression of the operand's value as ``dt`` (the compiler's getter when not plain)."""
        rdt = self.storage(operand)
        if rdt is not None and rdt == dt and isinstance(operand, Reg):
            zero = self.src.const(np.bool_(False) if dt.kind == "b" else dt.type(0))
            got = f"R.get({operand.name!r}, {zero})"
            if operand.negated:
                if dt.kind != "b":
                    raise UnsupportedError("a negated operand that is not a predicate")
                return f"(~{got})"
            return got
        if isinstance(operand, Imm):
            value = np.bool_(bool(operand.value)) if dt.kind == "b" else constant(dt, operand.value)
            return self.src.const(value)
        return f"{self.src.const(self.c.read(operand, dt))}(f)"

    def write(self, dest: Operand, dt: np.dtype[Any], expr: str, mask: str) -> str:
        """A statement storing ``expr`` (of dtype ``dt``) in ``dest`` for the threads of ``mask``."""
        if isinstance(dest, Sym) and dest.name == "_":
            return f"_ = {expr}"
        rdt = self.storage(dest)
        if rdt is not None and rdt == dt and isinstance(dest, Reg) and not dest.negated:
            if mask == "None":
                return f"R[{dest.name!r}] = {expr}"
            return f"_put(R, {dest.name!r}, {expr}, {mask})"
        setter = self.src.const(self.c.write(dest, dt))
        return f"{setter}(f, {expr}, {mask})"

    def canonical(self, t: str, operands: tuple[Operand, ...]) -> np.dtype[Any] | None:
        """The unsigned storage dtype to compute a sign-agnostic integer instruction of type ``t``
        in: when every register operand is stored at that width (else ``None``: the closure runs)."""
        if t not in _INTEGERS:
            return None  # f16, bf16 and their pairs are stored as unsigned bits but are not integers
        dt = DTYPES[t]
        canon = uint_of(dt.itemsize)
        for operand in operands:
            rdt = self.storage(operand)
            if rdt is not None and rdt.itemsize != dt.itemsize:
                return None
            if isinstance(operand, Reg) and rdt is None and operand.name in self.c.fn.registers:
                return None
        return canon

    # -- instructions -------------------------------------------------------------------------

    def emit(self, ins: Instruction, mask: str) -> list[str] | None:
        handler = _TEMPLATES.get(ins.opcode)
        if handler is None or any(isinstance(o, Vec | Pair) for o in ins.operands[1:]):
            return None
        return handler(self, ins, mask)


def _types(ins: Instruction) -> tuple[list[str], set[str]]:
    return [m for m in ins.mods if m in DTYPES], {m for m in ins.mods if m not in DTYPES}


def _t_mov(e: _Emitter, ins: Instruction, mask: str) -> list[str] | None:
    types, rest = _types(ins)
    if len(types) != 1 or rest or len(ins.operands) != 2 or isinstance(ins.operands[0], Vec):
        return None
    t = types[0]
    d, a = ins.operands
    dt = DTYPES[t]
    if dt.kind in "ui":
        canon = e.canonical(t, (d, a))
        if canon is None:
            return None
        dt = canon
    return [e.write(d, dt, e.read(a, dt), mask)]


_INT_OPERATORS = {"add": "+", "sub": "-", "and": "&", "or": "|", "xor": "^"}


def _t_arith(e: _Emitter, ins: Instruction, mask: str) -> list[str] | None:
    """``add``/``sub`` (integers, f32/f64 round-to-nearest with ``.ftz``), ``and``/``or``/``xor``
    (bits and predicates), ``mul.lo`` and ``mul.wide.{u32,s32}``, and the f32/f64 ``mul``."""
    types, rest = _types(ins)
    if len(types) != 1 or len(ins.operands) != 3:
        return None
    t = types[0]
    d, a, b = ins.operands
    op = ins.opcode
    dt = DTYPES[t]
    if dt.kind == "f" and t in ("f32", "f64") and op in ("add", "sub", "mul"):
        if rest - {"rn", "ftz"} or ("ftz" in rest and t != "f32"):
            return None
        symbol = {"add": "+", "sub": "-", "mul": "*"}[op]
        x, y = e.read(a, dt), e.read(b, dt)
        if "ftz" in rest:
            return [e.write(d, dt, f"_ftz(_ftz({x}) {symbol} _ftz({y}))", mask)]
        return [e.write(d, dt, f"{x} {symbol} {y}", mask)]
    if t == "pred" and op in ("and", "or", "xor") and not rest:
        return [e.write(d, dt, f"{e.read(a, dt)} {_INT_OPERATORS[op]} {e.read(b, dt)}", mask)]
    if dt.kind not in "ui":
        return None
    if op == "mul":
        if rest == {"lo"}:
            canon = e.canonical(t, (d, a, b))
            if canon is None:
                return None
            return [e.write(d, canon, f"{e.read(a, canon)} * {e.read(b, canon)}", mask)]
        if rest == {"wide"} and t in ("u32", "s32") and e.canonical(t, (a, b)) is not None:
            x, y = e.read(a, np.dtype(np.uint32)), e.read(b, np.dtype(np.uint32))
            if t == "u32":
                return [e.write(d, _U64, f"({x} + _Z64) * ({y} + _Z64)", mask)]
            return [e.write(d, _U64, f"_sx32({x}) * _sx32({y})", mask)]
        return None
    if rest or (op in ("and", "or", "xor") and t not in BIT_TYPES):
        return None
    canon = e.canonical(t, (d, a, b))
    if canon is None:
        return None
    return [e.write(d, canon, f"{e.read(a, canon)} {_INT_OPERATORS[op]} {e.read(b, canon)}", mask)]


def _t_not(e: _Emitter, ins: Instruction, mask: str) -> list[str] | None:
    types, rest = _types(ins)
    if len(types) != 1 or rest or len(ins.operands) != 2 or types[0] not in BIT_TYPES | {"pred"}:
        return None
    d, a = ins.operands
    dt = DTYPES[types[0]] if types[0] == "pred" else e.canonical(types[0], (d, a))
    if dt is None:
        return None
    return [e.write(d, dt, f"~{e.read(a, dt)}", mask)]


def _t_mad(e: _Emitter, ins: Instruction, mask: str) -> list[str] | None:
    types, rest = _types(ins)
    if len(types) != 1 or len(ins.operands) != 4 or DTYPES[types[0]].kind not in "ui":
        return None
    t = types[0]
    d, a, b, c = ins.operands
    if rest == {"lo"}:
        canon = e.canonical(t, (d, a, b, c))
        if canon is None:
            return None
        return [e.write(d, canon, f"{e.read(a, canon)} * {e.read(b, canon)} + {e.read(c, canon)}", mask)]
    if rest == {"wide"} and t in ("u32", "s32") and e.canonical(t, (a, b)) is not None:
        if e.canonical("u64", (d, c)) is None:
            return None
        x, y, z = e.read(a, np.dtype(np.uint32)), e.read(b, np.dtype(np.uint32)), e.read(c, _U64)
        if t == "u32":
            return [e.write(d, _U64, f"({x} + _Z64) * ({y} + _Z64) + {z}", mask)]
        return [e.write(d, _U64, f"_sx32({x}) * _sx32({y}) + {z}", mask)]
    return None


def _t_shift(e: _Emitter, ins: Instruction, mask: str) -> list[str] | None:
    """``shl.bN`` and ``shr.{bN,uN}`` by an immediate inside the width (nvcc's usual form)."""
    types, rest = _types(ins)
    if len(types) != 1 or rest or len(ins.operands) != 3:
        return None
    t = types[0]
    d, a, k = ins.operands
    dt = DTYPES[t]
    if dt.kind != "u" or (ins.opcode == "shl" and t not in BIT_TYPES):
        return None
    if not isinstance(k, Imm) or not isinstance(k.value, int) or not 0 <= k.value < 8 * dt.itemsize:
        return None
    canon = e.canonical(t, (d, a))
    if canon is None:
        return None
    amount = e.src.const(constant(canon, k.value))
    symbol = "<<" if ins.opcode == "shl" else ">>"
    return [e.write(d, canon, f"{e.read(a, canon)} {symbol} {amount}", mask)]


def _t_cvta(e: _Emitter, ins: Instruction, mask: str) -> list[str] | None:
    mods = list(ins.mods)
    to = mods[:1] == ["to"]
    mods = mods[1:] if to else mods
    if mods not in (["global", "u64"], ["const", "u64"], ["param", "u64"]) or len(ins.operands) != 2:
        return None  # shared and local move by a window: the closure's
    d, a = ins.operands
    if e.canonical("u64", (d, a)) is None:
        return None
    return [e.write(d, _U64, e.read(a, _U64), mask)]


def _t_ld(e: _Emitter, ins: Instruction, mask: str) -> list[str] | None:
    """``ld.param`` of the kernel's own parameters: the same value for every thread; a full batch's
    ``ld.shared``/``ld.local`` of one register through its window index, the instruction's own
    (checked) closure deciding where that does not serve."""
    try:
        space, vec, t = e.c.space_and_type(ins)
    except UnsupportedError:
        return None
    d, a = ins.operands
    items = d.items if isinstance(d, Vec) else (d,)
    dt = DTYPES[t]
    window = window_operand(e.c, space, a, dt.itemsize) if vec == 1 and ins.opcode == "ld" else None
    if window is not None and mask == "None" and e.storage(d) == dt and isinstance(d, Reg) and not d.negated:
        name, offset = window
        checked = e.src.const(e.c.table["ld"](e.c, ins))  # its own closure: the op's may drop registers
        return [
            f"v = _wld(f, R.get({name!r}), {space!r}, {dt.itemsize}, {offset})",
            "if v is None:",
            f"    {checked}(f, None)",
            "else:",
            f"    R[{d.name!r}] = v.view({e.src.const(dt)})",
        ]
    uniform = _uniform_load(e, ins, space, vec, mask)
    if uniform is not None:
        return uniform
    at = e.c.kernel_param_offset(space, a, dt.itemsize * vec) if space == "param" else None
    if at is None or len(items) != vec:
        return None
    key = f"param {at} {dt.str} "
    if dt.kind in "ui":
        canon = e.canonical(t, tuple(items))
        if canon is None:
            return None
        dt = canon
    return [
        e.write(item, dt, f"_param(f, {key + str(k)!r}, {at + k * dt.itemsize}, {e.src.const(dt)})", mask)
        for k, item in enumerate(items)
    ]


def _uniform_load(e: _Emitter, ins: Instruction, space: str, vec: int, mask: str) -> list[str] | None:
    """A full batch's load of one element through a 64-bit address register that may be uniform (a
    scalar): ``ld.param [%rd+k]`` in a kernel (``mov %rd, param``: a by-value struct whose address is
    taken, LargeKernelParameter's 32,000-byte one), ``ld.const``/``ld.global [%rd+k]`` (a module
    global's address): read once, checked as the closure checks it; an address that differs by thread,
    or one the fast check refuses, goes to the instruction's own closure, which decides and names any
    fault."""
    d, a = ins.operands
    if (
        mask != "None"
        or vec != 1
        or ins.opcode not in ("ld", "ldu")
        or space not in ("param", "const", "global")
        or (space == "param" and e.c.fn.kind != "entry")
        or not isinstance(a, Addr)
        or not isinstance(a.base, Reg)
        or e.storage(a.base) != _U64
        or not isinstance(d, Reg)
        or d.negated
    ):
        return None
    t = [m for m in ins.mods if m in DTYPES][-1]
    dt = DTYPES[t]
    if dt.kind in "ui":
        canon = e.canonical(t, (d,))
        if canon is None:
            return None
        dt = canon
    checked = e.src.const(e.c.table["ld"](e.c, ins))  # its own closure: the op's may drop registers
    loader = "_pat" if space == "param" else "_uld"
    return [
        f"v = {loader}(f, R.get({a.base.name!r}), {a.offset}, {e.src.const(dt)})",
        "if v is None:",
        f"    {checked}(f, None)",
        "else:",
        "    " + e.write(d, dt, "v", "None"),
    ]


def _t_cvt(e: _Emitter, ins: Instruction, mask: str) -> list[str] | None:
    """Integer to integer between 32 and 64 bits, without ``.sat``."""
    types, rest = _types(ins)
    if len(types) != 2 or rest or len(ins.operands) != 2:
        return None
    dname, sname = types
    if dname not in ("u32", "s32", "u64", "s64") or sname not in ("u32", "s32", "u64", "s64"):
        return None
    d, a = ins.operands
    if e.canonical(dname, (d,)) is None or e.canonical(sname, (a,)) is None:
        return None
    wide_d, wide_s = dname.endswith("64"), sname.endswith("64")
    if wide_d == wide_s:
        canon = uint_of(8 if wide_d else 4)
        return [e.write(d, canon, e.read(a, canon), mask)]
    if wide_d:
        x = e.read(a, np.dtype(np.uint32))
        value = f"_sx32({x})" if sname == "s32" else f"({x} + _Z64)"
        return [e.write(d, _U64, value, mask)]
    return [e.write(d, np.dtype(np.uint32), f"_tr32({e.read(a, _U64)})", mask)]


_COMPARE = {
    "eq": "==",
    "ne": "!=",
    "lt": "<",
    "le": "<=",
    "gt": ">",
    "ge": ">=",
    "lo": "<",
    "ls": "<=",
    "hi": ">",
    "hs": ">=",
}
_JOIN = {"and": "&", "or": "|", "xor": "^"}


def _t_setp(e: _Emitter, ins: Instruction, mask: str) -> list[str] | None:
    """Integer comparisons (signed ones with the sign bit flipped), ordered f32/f64 comparisons
    other than ``ne`` (false for a NaN, as IEEE's are); ``.and``/``.or``/``.xor`` with a predicate."""
    types, rest = _types(ins)
    if len(types) != 1:
        return None
    t = types[0]
    cmp = [m for m in rest if m in _COMPARE]
    join = [m for m in rest if m in _JOIN]
    if len(cmp) != 1 or len(join) > 1 or rest - set(cmp) - set(join) - {"ftz"}:
        return None
    op = cmp[0]
    operands = ins.operands
    if len(operands) != (4 if join else 3):
        return None
    dest, a, b = operands[:3]
    dt = DTYPES[t]
    if dt.kind == "f":
        if t not in ("f32", "f64") or op in ("ne", "lo", "ls", "hi", "hs") or ("ftz" in rest and t != "f32"):
            return None
        x, y = e.read(a, dt), e.read(b, dt)
        if "ftz" in rest:
            x, y = f"_ftz({x})", f"_ftz({y})"
    elif dt.kind in "ui" and "ftz" not in rest:
        canon = e.canonical(t, (a, b))
        if canon is None:
            return None
        x, y = e.read(a, canon), e.read(b, canon)
        if dt.kind == "i" and op in ("lt", "le", "gt", "ge"):
            sign = e.src.const(canon.type(1 << (8 * canon.itemsize - 1)))
            x, y = f"({x} ^ {sign})", f"({y} ^ {sign})"
    else:
        return None
    pred = DTYPES["pred"]
    lines = [f"r = {x} {_COMPARE[op]} {y}"]
    p, q = "r", "~r"
    if join:
        c = operands[3]
        if not isinstance(c, Reg):
            return None
        lines.append(f"c = {e.read(c, pred)}")
        p, q = f"r {_JOIN[join[0]]} c", f"~r {_JOIN[join[0]]} c"
    if isinstance(dest, Pair):
        lines += [e.write(dest.first, pred, p, mask), e.write(dest.second, pred, q, mask)]
    else:
        lines.append(e.write(dest, pred, p, mask))
    return lines


def _t_selp(e: _Emitter, ins: Instruction, mask: str) -> list[str] | None:
    types, rest = _types(ins)
    if len(types) != 1 or rest or len(ins.operands) != 4 or not isinstance(ins.operands[3], Reg):
        return None
    t = types[0]
    d, a, b, p = ins.operands
    dt = DTYPES[t]
    if dt.kind in "ui":
        canon = e.canonical(t, (d, a, b))
        if canon is None:
            return None
        dt = canon
    elif t not in ("f32", "f64"):
        return None
    return [e.write(d, dt, f"_sel({e.read(p, DTYPES['pred'])}, {e.read(a, dt)}, {e.read(b, dt)})", mask)]


def _t_fma(e: _Emitter, ins: Instruction, mask: str) -> list[str] | None:
    """``fma.rn.f32`` and ``mad.rn.f32`` (``.ftz``, no ``.sat``): :func:`_fma32`."""
    types, rest = _types(ins)
    if types != ["f32"] or len(ins.operands) != 4 or rest - {"rn", "ftz"} or "rn" not in rest:
        return None
    d, a, b, c = ins.operands
    dt = DTYPES["f32"]
    x, y, z = e.read(a, dt), e.read(b, dt), e.read(c, dt)
    if "ftz" in rest:
        return [e.write(d, dt, f"_ftz(_fma32(_ftz({x}), _ftz({y}), _ftz({z})))", mask)]
    return [e.write(d, dt, f"_fma32({x}, {y}, {z})", mask)]


def _t_minmax(e: _Emitter, ins: Instruction, mask: str) -> list[str] | None:
    """``min``/``max`` of f32/f64 (``.ftz``; without ``.NaN`` a NaN operand gives the other, as
    ``np.fmin``/``np.fmax``), and of unsigned integers."""
    types, rest = _types(ins)
    if len(types) != 1 or len(ins.operands) != 3:
        return None
    t = types[0]
    d, a, b = ins.operands
    fn = {"min": "np.fmin", "max": "np.fmax"}[ins.opcode]
    if t in ("f32", "f64") and not rest - {"ftz"} and ("ftz" not in rest or t == "f32"):
        dt = DTYPES[t]
        x, y = e.read(a, dt), e.read(b, dt)
        if "ftz" in rest:
            return [e.write(d, dt, f"_ftz({fn}(_ftz({x}), _ftz({y})))", mask)]
        return [e.write(d, dt, f"{fn}({x}, {y})", mask)]
    if t in ("u16", "u32", "u64") and not rest:
        canon = e.canonical(t, (d, a, b))
        if canon is None:
            return None
        fn = {"min": "np.minimum", "max": "np.maximum"}[ins.opcode]
        return [e.write(d, canon, f"{fn}({e.read(a, canon)}, {e.read(b, canon)})", mask)]
    return None


def _t_mul(e: _Emitter, ins: Instruction, mask: str) -> list[str] | None:
    """``mul.hi.u32`` (the product in 64 bits, its high word), else as :func:`_t_arith`."""
    types, rest = _types(ins)
    if types == ["u32"] and rest == {"hi"} and len(ins.operands) == 3:
        d, a, b = ins.operands
        canon = e.canonical("u32", (d, a, b))
        if canon is None:
            return None
        x, y = e.read(a, canon), e.read(b, canon)
        return [e.write(d, canon, f"_tr32((({x} + _Z64) * ({y} + _Z64)) >> _S32)", mask)]
    return _t_arith(e, ins, mask)


_TEMPLATES: dict[str, Callable[[_Emitter, Instruction, str], list[str] | None]] = {
    "fma": _t_fma,
    "min": _t_minmax,
    "max": _t_minmax,
    "mov": _t_mov,
    "add": _t_arith,
    "sub": _t_arith,
    "mul": _t_mul,
    "and": _t_arith,
    "or": _t_arith,
    "xor": _t_arith,
    "not": _t_not,
    "mad": lambda e, ins, mask: _t_mad(e, ins, mask) or _t_fma(e, ins, mask),
    "shl": _t_shift,
    "shr": _t_shift,
    "cvta": _t_cvta,
    "ld": _t_ld,
    "cvt": _t_cvt,
    "setp": _t_setp,
    "selp": _t_selp,
}


#: the most instructions one generated function holds: compiling Python source peaks at about 15 KB
#: per instruction, so a straight line of thousands is cut into runs of this many
MAX_RUN = 256


def _runs(ops: list[Op], leaders: set[int]) -> list[tuple[int, int]]:
    """Maximal runs of plain instructions that never cross a basic block's start (nor hold more than
    :data:`MAX_RUN`)."""
    out: list[tuple[int, int]] = []
    pc = 0
    while pc < len(ops):
        if ops[pc].kind != PLAIN:
            pc += 1
            continue
        end = pc + 1
        while end < len(ops) and ops[end].kind == PLAIN and end not in leaders and end - pc < MAX_RUN:
            end += 1
        out.append((pc, end))
        pc = end
    return out


def _variant(
    c: Compiler,
    src: _Source,
    ops: list[Op],
    code: list[Instruction],
    start: int,
    end: int,
    masked: bool,
    after: After | None = None,
) -> tuple[list[str], list[int], list[bool]]:
    """One variant's function body, the index in it of each instruction's first line, and which of
    its instructions are inline."""
    body = ["    R = f.regs"]
    firsts: list[int] = []
    inline: list[bool] = []
    emitter = _Emitter(c, src)
    active = "m" if masked else "None"
    quiet = False  # whether the run has read its frame's stack (for the registers it drops)

    def statements(pc: int, mask: str) -> tuple[list[str], bool]:
        try:
            lines = emitter.emit(code[pc], mask)
        except (UnsupportedError, PtxSyntaxError, KeyError, ValueError, TypeError):
            lines = None
        if lines is None:
            return [f"{src.const(ops[pc].run)}(f, {mask})"], False
        return lines, True

    groups = {} if masked else _native_groups(emitter, code, ops, start, end, after)
    survey = getattr(after, "survey", None)  # _liveness.Frees
    spans = _spans(emitter, code, ops, start, end, after) if masked and (after is None or survey) else {}
    going = False  # whether G holds which registers dying in the run may go from the frame now
    if masked and survey is not None:
        # read once per run (a run has no control flow); each inline instruction then drops those of its
        # own dying registers that may go
        droppers = [d for d in map(after or _nothing, range(start, end)) if isinstance(d, Drop)]
        dying = sorted({name for d in droppers for name in d.names if _NAME.match(name)})
        if dying:
            body.append(f"    G = {src.const(survey(tuple(dying)))}(f)")
            going = True
    pc = start
    while pc < end:
        stop = spans.get(pc)
        if stop is not None:  # a divergent line computed for every thread, merged under the mask once
            lines, span_firsts = _span(emitter, src, code, ops, pc, stop, after)
            firsts += [len(body) + k for k in span_firsts]
            body += lines
            inline += [True] * (stop - pc)
            pc = stop
            continue
        group = groups.get(pc)
        if group is not None:  # a native segment (_native_run), the lines below where a thread waits
            forms, stop = group
            drops = [_dropped(after, k) for k in range(pc, stop)]
            if any(drops) and not quiet:
                body.insert(1, "    S = f.stack")
                body.insert(2, "    quiet = S is None or len(S) <= 1")
                firsts = [k + 2 for k in firsts]
                quiet = True
            plain = segment(forms, drops)
            seg = src.const(plain)
            if not plain.pops:  # nothing dies that is not written again in the segment: nothing to keep
                firsts += [len(body)] * (stop - pc)
                body.append(f"    _nseg(R, {seg})")
            else:
                # while threads wait elsewhere on the frame's stack (a compacted batch's run, _compact),
                # still the segment when none of them reads what it lets go
                going_now = ""
                if survey is not None:
                    going_now = (
                        f" or {src.const(frozenset(plain.pops))} <= {src.const(survey(plain.pops))}(f)"
                    )
                body.append(f"    if quiet{going_now}:")
                firsts.append(len(body) - 1)
                body.append(f"        _nseg(R, {seg})")
                body.append("    else:")
                for k in range(pc, stop):
                    if k > pc:
                        firsts.append(len(body))
                    lines, fast = statements(k, active)
                    body += ["        " + ln for ln in lines]
                    then = after(k) if after is not None and fast else None
                    if isinstance(then, Drop):  # a called op drops its own
                        body.append(f"        {src.const(then.slow)}(f)")
            inline += [True] * (stop - pc)
            pc = stop
            continue
        op = ops[pc]
        firsts.append(len(body))
        if op.guard is None:
            lines, fast = statements(pc, active)
            body += ["    " + ln for ln in lines]
        else:
            # a uniform guard: every active thread runs the instruction (or none does), under the run's
            # own mask; a per-thread one: the active threads that have it, when there are any
            body.append(f"    g = {src.const(op.guard)}(f)")
            body.append("    if type(g) is np.bool_:")
            body.append("        if g:")
            lines, fast = statements(pc, active)
            body += ["            " + ln for ln in lines]
            body.append("    else:")
            body.append("        e = sm & g")
            body.append("        if _count(e):")
            lines, _ = statements(pc, "e")
            body += ["            " + ln for ln in lines]
        # only for inline instructions: a called op does what it must after itself (its run), as
        # _liveness.freeing_ops has every plain op's run drop what dies there
        then = after(pc) if after is not None and fast else None
        if isinstance(then, Drop) and all(_NAME.match(name) for name in then.names):
            if going:
                body += _drop_lines(then.names, "G", "    ")
            else:
                # registers dying here (_liveness): popped inline while nothing waits on the frame's
                # stack (read once per run: a run has no control flow), else the slow path decides
                if not quiet:
                    body.insert(1, "    S = f.stack")
                    body.insert(2, "    quiet = S is None or len(S) <= 1")
                    firsts = [k + 2 for k in firsts]
                    quiet = True
                body.append("    if quiet:")
                body.append("        " + "; ".join(f"R.pop({name!r}, None)" for name in then.names))
                body.append("    else:")
                body.append(f"        {src.const(then.slow)}(f)")
        elif isinstance(then, Drop):
            body.append(f"    {src.const(then.slow)}(f)")
        elif then is not None:  # anything else to do after the instruction
            body.append(f"    {src.const(then)}(f)")
        inline.append(fast)
        pc += 1
    return body, firsts, inline


def _nothing(pc: int) -> None:
    return None


def _drop_lines(names: tuple[str, ...], going: str | None, indent: str) -> list[str]:
    """Statements popping ``names`` (those in the set named ``going``, when given)."""
    if going is None:
        return [indent + "; ".join(f"R.pop({name!r}, None)" for name in names)] if names else []
    return [f"{indent}if {name!r} in {going}: R.pop({name!r}, None)" for name in names]


#: the fewest instructions worth computing for every thread and merging once (one instruction merged
#: once costs what its masked write does)
MIN_SPAN = 2


def _writes(ins: Instruction) -> tuple[str, ...] | None:
    """The registers an instruction writes through its first operand, when they are plain names
    (``None`` otherwise)."""
    if not ins.operands:
        return None
    dest = ins.operands[0]
    names: list[str] = []
    for item in (dest.first, dest.second) if isinstance(dest, Pair) else (dest,):
        if isinstance(item, Sym) and item.name == "_":
            continue
        if not isinstance(item, Reg) or item.negated or not _NAME.match(item.name):
            return None
        names.append(item.name)
    return tuple(names)


def _spans(
    e: _Emitter, code: list[Instruction], ops: list[Op], start: int, end: int, after: After | None
) -> dict[int, int]:
    """The lines of a masked run that may be computed for every thread of the batch and merged under
    the mask once at their end: unguarded inline instructions that only compute registers from
    registers (no loads: an inactive thread's address is not the program's to read), after which
    nothing is to be done but dropping registers by name."""

    def computes(pc: int) -> bool:
        ins = code[pc]
        if ops[pc].guard is not None or ins.opcode in ("ld", "ldu") or _writes(ins) is None:
            return False
        then = after(pc) if after is not None else None
        if then is not None and not (isinstance(then, Drop) and all(_NAME.match(x) for x in then.names)):
            return False
        try:
            return e.emit(ins, "None") is not None
        except (UnsupportedError, PtxSyntaxError, KeyError, ValueError, TypeError):
            return False

    spans: dict[int, int] = {}
    pc = start
    while pc < end:
        first = pc
        while pc < end and computes(pc):
            pc += 1
        if pc - first >= MIN_SPAN:
            spans[first] = pc
        pc = max(pc, first + 1)
    return spans


def _span(
    e: _Emitter,
    src: _Source,
    code: list[Instruction],
    ops: list[Op],
    start: int,
    stop: int,
    after: After | None,
) -> tuple[list[str], list[int]]:
    """A masked run's line ``start:stop`` (:func:`_spans`) computed for every thread, then merged under
    the mask ``m`` once: its lines, and the index in them of each instruction's first. Registers dying
    in the line go as they die when the frame's stack lets them (``G``: ``_liveness.Frees.survey``);
    where it lets all go that must, its native segments (``_native_run``) serve as in a full batch,
    each merging the f32 registers it leaves itself (:class:`MergedSegment`); the others merge at the
    line's end (:func:`merge_masked`)."""
    written: dict[str, int] = {}  # register -> the last instruction writing it
    first_write: dict[str, int] = {}
    for pc in range(start, stop):
        for name in _writes(code[pc]) or ():
            written.pop(name, None)
            written[name] = pc
            first_write.setdefault(name, pc)
    groups = _native_groups(e, code, ops, start, stop, after)

    def body(indent: str, native: bool) -> tuple[list[str], list[int]]:
        out: list[str] = []
        firsts: list[int] = []
        served: set[int] = set()
        merged: set[str] = set()  # registers a native segment merges itself
        pc = start
        while pc < stop:
            group = groups.get(pc) if native else None
            if group is not None:
                forms, end = group
                drops = [_dropped(after, k) for k in range(pc, end)]
                plain = segment(forms, drops)
                mine = tuple(
                    name
                    for name, dt in plain.outputs
                    if dt == _F32 and pc <= written[name] < end and first_write[name] >= pc
                )
                firsts += [len(out)] * (end - pc)
                if mine:
                    seg = src.const(merged_segment(forms, drops, mine))
                    out.append(f"{indent}_nsegm(R, {seg}, m)")
                    merged.update(mine)
                else:
                    out.append(f"{indent}_nseg(R, {src.const(plain)})")
                served.update(range(pc, end))
                pc = end
                continue
            firsts.append(len(out))
            out += [indent + ln for ln in e.emit(code[pc], "None") or ()]
            out += _drop_lines(_dropped(after, pc), None if native else "G", indent)
            pc += 1
        rest = tuple(name for name in written if name not in merged)
        fresh = frozenset(name for name in rest if written[name] in served)
        names = src.const(rest)
        # the values before the line of the registers merged at its end (none is written before this)
        return [
            f"{indent}O = [*map(R.get, {names})]",
            *out,
            f"{indent}_mrg(R, {names}, O, m, {src.const(fresh)})",
        ], [k + 1 for k in firsts]

    # what must have gone by the line's end (a register dying and written again later in the line is
    # merged as any other): the native segments drop it unasked, so only where the stack lets it go
    dying = frozenset(
        name for pc in range(start, stop) for name in _dropped(after, pc) if written.get(name, -1) <= pc
    )
    if not groups or not dying:  # one version: plain, or native with nothing the stack may keep
        return body("    ", bool(groups))
    native, native_firsts = body("        ", True)
    plain, _ = body("        ", False)
    lines = [f"    if {src.const(dying)} <= G:"]
    lines += native
    lines.append("    else:")
    lines += plain
    return lines, [1 + k for k in native_firsts]


#: the fewest instructions worth a native segment (its call costs about what two NumPy calls do)
MIN_SEGMENT = 3


def _native_groups(
    e: _Emitter, code: list[Instruction], ops: list[Op], start: int, end: int, after: After | None
) -> dict[int, tuple[list[Form], int]]:
    """The native segments of a full batch's run: maximal lines of unguarded instructions
    :func:`native_form` serves after which nothing is to be done but dropping registers by name."""
    groups: dict[int, tuple[list[Form], int]] = {}
    pc = start
    while pc < end:
        first = pc
        forms: list[Form] = []
        while pc < end and ops[pc].guard is None:
            then = after(pc) if after is not None else None
            if then is not None and not (isinstance(then, Drop) and all(_NAME.match(x) for x in then.names)):
                break
            form = native_form(code[pc], e.storage)
            if form is None:
                break
            forms.append(form)
            pc += 1
        if len(forms) >= MIN_SEGMENT:
            groups[first] = (forms, pc)
        pc = max(pc, first + 1)
    return groups


def _dropped(after: After | None, pc: int) -> tuple[str, ...]:
    then = after(pc) if after is not None else None
    return then.names if isinstance(then, Drop) else ()


@dataclass(frozen=True, slots=True)
class Drop:
    """What dies after an instruction (``_liveness``): ``names`` may simply go when no thread of the
    frame waits elsewhere on its SIMT stack; otherwise ``slow(frame)`` decides which may."""

    names: tuple[str, ...]
    slow: Callable[[Frame], None]


#: what a run does after instruction ``pc``, if anything: ``after(pc)(frame)``, or a :class:`Drop`
After = Callable[[int], Callable[[Frame], None] | Drop | None]


def fuse(
    c: Compiler, ops: list[Op], code: list[Instruction], leaders: set[int], after: After | None = None
) -> dict[int, Run]:
    """The fused runs of one function's ops, by their first pc; each op stays runnable on its own.
    ``after``: what to do after an inline instruction of a run (a called op's run does it itself)."""
    out: dict[int, Run] = {}
    for start, end in _runs(ops, leaders):
        src = _Source()
        firsts: list[list[int]] = []
        inline: list[bool] = []
        for masked in (False, True):
            body, lines, inline = _variant(c, src, ops, code, start, end, masked, after)
            first = len(src.lines) + 2  # the 1-based line of the body's first line, after the def
            src.lines.append(f"def run_{'m' if masked else 'f'}(f, m, sm):")
            src.lines += body
            firsts.append([first + k for k in lines])
        if end - start == 1 and not inline[0]:
            continue  # one called instruction: the loop issues it as cheaply
        compiled = compile("\n".join(src.lines) + "\n", f"<fused {c.fn.name}:{start}>", "exec")
        namespace = dict(src.names)
        exec(compiled, namespace)  # engine-generated source only (see the module docstring)
        full, masked_fn = namespace["run_f"], namespace["run_m"]
        out[start] = Run(
            start,
            end - start,
            full,
            masked_fn,
            (full.__code__, masked_fn.__code__),
            (firsts[0], firsts[1]),
            tuple(inline),
        )
    return out
