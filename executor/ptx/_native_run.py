"""Native straight lines: f32 arithmetic of a fused run computed by one C call over the batch.

A fused run (``_fuse``) still makes one NumPy call, and one array, per instruction: a kernel such as
NVIDIA's BlackScholes spends ~100 f32 instructions per thread between its loads and stores, each a pass
over the batch's memory, and the special functions (``ex2``, ``lg2``, ``rsqrt``) three (to float64,
the function, back). Here a line of consecutive unguarded f32 instructions in a full batch's run
becomes a *segment*: int32 records ``(op, d, a, b, c)`` over numbered slots that ``run_f32`` in
``native/ptxfma.c`` (``executor.ptx._fmafast``) executes lane chunk by lane chunk, every instruction
over one chunk of 512 lanes before the next chunk, so operands stay in cache. Registers that die
inside the segment (``_liveness``) never become arrays: they live in the chunk's scratch.

The results are the Python forms' bit for bit: ``add``/``sub``/``mul``/``div`` (``.rn``, ``.approx``,
``.full``) are IEEE single operations, as NumPy's float32 operators; ``fma.rn`` is C's ``fmaf`` with
the Python form's NaN (``_fma``); ``rsqrt``/``rcp``/``sqrt`` are double's correctly rounded operations
rounded once to float, as ``_isa_arith._approx`` computes them; ``ex2``/``lg2``/``tanh``/``sin``/``cos``
the correctly rounded floats of the true values (a vectorized double approximation, long double where
a result lies near a rounding boundary or, for ``sin``/``cos``, past 2^20), which is what NumPy's double
rounded to float gives too but for about one lane in 2^29 (where its double is an ulp across a float
midpoint); comparisons are the ordered ones;
``selp`` picks; ``.ftz`` flushes subnormal operands and results to zeros of their sign, as the Python
forms do. One thing is not promised, as it is not between NumPy's own loops: which payload an
operation of two NaNs passes on (the compiler's operand order; a GPU's NaN is canonical). Nothing here
touches memory but the registers' arrays, whose sizes the C side checks before it computes. Without the
extension (or with ``VGPU_PURE_PYTHON=1``) no segment is made.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._compiler import constant
from ._fma import native
from ._numeric import DTYPES
from ._parse import Imm, Instruction, Operand, Reg

__all__ = ["Segment", "native_form", "run_segment", "segment"]

_F32 = np.dtype(np.float32)
_PRED = DTYPES["pred"]

# the op numbers of native/ptxfma.c's run_f32
(MOV, ADD, SUB, MUL, DIV, FMA, NEG, ABS, EX2, LG2, RSQRT, RCP, SQRT) = range(13)
(EQ, LT, LE, GT, GE, SELP, TANH, SIN, COS) = range(13, 22)
#: or'd into a form's op: ``.ftz``. In a record it is run_f32's bit to flush the float result's subnormals
#: to zeros of their sign after the op; ``FTZ_IN[k]`` flushes source ``k``'s before it, as
#: ``_compiler.float_pre``/``float_post`` do (left out for a value an earlier record already flushed)
FTZ = 64
FTZ_IN = (128, 256, 512)
_BINARY = {"add": ADD, "sub": SUB, "mul": MUL}
_UNARY = {"neg": NEG, "abs": ABS}
#: special functions and the modifier tuples served (``.ftz`` aside: where the Python form takes it)
_SPECIAL = {
    "ex2": (EX2, {("approx", "f32")}),
    "lg2": (LG2, {("approx", "f32")}),
    "tanh": (TANH, {("approx", "f32")}),
    "sin": (SIN, {("approx", "f32")}),
    "cos": (COS, {("approx", "f32")}),
    "rsqrt": (RSQRT, {("approx", "f32")}),
    "rcp": (RCP, {("approx", "f32"), ("rn", "f32")}),
    "sqrt": (SQRT, {("approx", "f32"), ("rn", "f32")}),
}
_COMPARE = {"eq": EQ, "lt": LT, "le": LE, "gt": GT, "ge": GE}

#: (op, destination register, source operands)
Form = tuple[int, Reg, tuple[Operand, ...]]
#: a register operand's storage dtype (``None``: not a plain declared register)
Storage = Callable[[Operand], np.dtype[Any] | None]


def native_form(ins: Instruction, storage: Storage) -> Form | None:
    """The instruction as a native record, or ``None`` when it is not one of the served forms (f32,
    with or without ``.ftz``, no ``.sat``, round-to-nearest; register and immediate operands of the
    right type)."""
    if native is None or ins.guard is not None:
        return None
    mods = tuple(ins.mods)
    ops = ins.operands
    op = ins.opcode
    ftz = op not in ("mov", "selp", "tanh") and mods.count("ftz") == 1
    if ftz:
        mods = tuple(m for m in mods if m != "ftz")
    form: tuple[int, tuple[str, ...]] | None = None  # op, the operands' types (d first)
    if op in _BINARY and mods in (("f32",), ("rn", "f32")) and len(ops) == 3:
        form = (_BINARY[op], ("f32",) * 3)
    elif op == "div" and mods in (("rn", "f32"), ("approx", "f32"), ("full", "f32")) and len(ops) == 3:
        form = (DIV, ("f32",) * 3)
    elif op in ("fma", "mad") and mods == ("rn", "f32") and len(ops) == 4:
        form = (FMA, ("f32",) * 4)
    elif op in _UNARY and mods == ("f32",) and len(ops) == 2:
        form = (_UNARY[op], ("f32",) * 2)
    elif op == "mov" and mods in (("f32",), ("b32",)) and len(ops) == 2:
        form = (MOV, ("f32",) * 2)
    elif op in _SPECIAL and mods in _SPECIAL[op][1] and len(ops) == 2:
        form = (_SPECIAL[op][0], ("f32",) * 2)
    elif op == "setp" and len(mods) == 2 and mods[0] in _COMPARE and mods[1] == "f32" and len(ops) == 3:
        form = (_COMPARE[mods[0]], ("pred", "f32", "f32"))
    elif op == "selp" and mods == ("f32",) and len(ops) == 4:
        form = (SELP, ("f32", "f32", "f32", "pred"))
    if form is None:
        return None
    code, types = form
    dest = ops[0]
    if not isinstance(dest, Reg) or dest.negated or storage(dest) != DTYPES[types[0]]:
        return None
    for operand, t in zip(ops[1:], types[1:], strict=True):
        if isinstance(operand, Reg):
            if operand.negated or storage(operand) != DTYPES[t]:
                return None
        elif not (isinstance(operand, Imm) and t == "f32"):
            return None
    return code | (FTZ if ftz else 0), dest, tuple(ops[1:])


@dataclass(frozen=True, slots=True)
class Segment:
    """A compiled segment: its records, the registers it reads (with the value of one no thread wrote),
    its constants, the registers it leaves in the frame and those it drops."""

    code: bytes
    inputs: tuple[tuple[str, Any], ...]
    consts: tuple[np.ndarray[Any, Any], ...]
    outputs: tuple[tuple[str, np.dtype[Any]], ...]
    scratch: int
    pops: tuple[str, ...]


def segment(forms: Sequence[Form], drops: Sequence[tuple[str, ...]]) -> Segment:
    """The segment of ``forms`` (in order); ``drops[k]``: the registers that die after form ``k``
    (dropped at the segment's end, as the fused run would after each instruction)."""
    inputs: list[tuple[str, Any]] = []
    consts: list[np.ndarray[Any, Any]] = []
    const_slots: dict[int, int] = {}  # a constant's bits -> its number
    current: dict[str, tuple[str, int]] = {}  # register -> its slot now: ("in"|"c"|"w", number)
    dtypes: dict[int, np.dtype[Any]] = {}  # write number -> dtype
    records: list[list[tuple[str, int]]] = []
    dead: set[str] = set()
    flushed: set[tuple[str, int]] = set()  # slots whose values have no subnormals (.ftz results, constants)
    for write, ((code, dest, sources), dying) in enumerate(zip(forms, drops, strict=True)):
        slots: list[tuple[str, int]] = []
        for operand in sources:
            if isinstance(operand, Reg):
                slot = current.get(operand.name)
                if slot is None:
                    zero = np.bool_(False) if _is_pred(code, len(slots)) else np.float32(0)
                    slot = current[operand.name] = ("in", len(inputs))
                    inputs.append((operand.name, zero))
            else:
                assert isinstance(operand, Imm)
                value = np.array([constant(_F32, operand.value)], dtype=_F32)
                key = value.view(np.uint32)[0].item()  # one slot per value (a broadcast chunk each)
                if key not in const_slots:
                    const_slots[key] = len(consts)
                    consts.append(value)
                slot = ("c", const_slots[key])
                if key & 0x7F800000 or not key & 0x7FFFFFFF:  # normal, infinite, NaN or zero
                    flushed.add(slot)
            slots.append(slot)
        base, flags = code & ~FTZ, 0
        if code & FTZ:  # flush the sources not known flushed; the result is flushed
            for k, slot in enumerate(slots):
                if slot not in flushed and not _is_pred(base, k):
                    flags |= FTZ_IN[k]
            flushed.add(("w", write))
        elif base in (MOV, NEG, ABS) and slots[0] in flushed:
            flushed.add(("w", write))
        current[dest.name] = ("w", write)
        dtypes[write] = _PRED if base in (EQ, LT, LE, GT, GE) else _F32
        dead.discard(dest.name)
        records.append([("op", code | flags), ("w", write), *slots])
        for name in dying:
            dead.add(name)
    live = {slot[1]: name for name, slot in current.items() if slot[0] == "w" and name not in dead}
    outputs = [(live[w], dtypes[w]) for w in sorted(live)]
    number: dict[tuple[str, int], int] = {("in", k): k for k in range(len(inputs))}
    number.update({("c", k): len(inputs) + k for k in range(len(consts))})
    given = len(inputs) + len(consts) + len(outputs)
    for k, w in enumerate(sorted(live)):
        number["w", w] = len(inputs) + len(consts) + k
    scratch = _scratch_slots(records, live, dtypes, given, number)
    flat: list[int] = []
    for record in records:
        row = [record[0][1]] + [number[slot] for slot in record[1:]]
        flat += row + [0] * (5 - len(row))
    return Segment(
        np.array(flat, dtype=np.int32).tobytes(),
        tuple(inputs),
        tuple(consts),
        tuple(outputs),
        scratch,
        tuple(sorted(dead)),
    )


def _scratch_slots(
    records: list[list[tuple[str, int]]],
    live: dict[int, str],
    dtypes: dict[int, np.dtype[Any]],
    given: int,
    number: dict[tuple[str, int], int],
) -> int:
    """Number the writes that die inside the segment (into ``number``, from ``given`` on) and return how
    many scratch slots they take: a slot is taken again once its value's last reader has run, so a long
    line's chunk buffers stay few and in the cache (BlackScholes' 100 temporaries fit in 13). A record's
    destination is never one of its own sources' slots (the C loops re-read sources after writing)."""
    last: dict[int, int] = {}
    for j, record in enumerate(records):
        for kind, w in record[2:]:
            if kind == "w":
                last[w] = j
    free: dict[bool, list[int]] = {True: [], False: []}  # by whether the slot holds predicates
    count = 0
    for j, record in enumerate(records):
        w = record[1][1]
        if w not in live:
            pool = free[dtypes[w] == _PRED]
            if pool:
                number["w", w] = pool.pop()
            else:
                number["w", w] = given + count
                count += 1
        ended = {v for kind, v in record[2:] if kind == "w" and v not in live and last[v] == j}
        if w not in live and w not in last:  # written and never read
            ended.add(w)
        for v in sorted(ended):
            free[dtypes[v] == _PRED].append(number["w", v])
    return count


def _is_pred(code: int, position: int) -> bool:
    """Whether source ``position`` of op ``code`` is a predicate (``selp``'s third)."""
    return code == SELP and position == 2


def run_segment(regs: dict[str, Any], seg: Segment) -> None:
    """Execute ``seg`` on the frame's registers: every thread's, or the uniform values once (the
    results stay uniform scalars then, as the Python forms leave them)."""
    assert native is not None
    values = [regs.get(name, zero) for name, zero in seg.inputs]
    n = 0
    for v in values:
        if type(v) is np.ndarray and v.ndim:
            n = v.size
            break
    outs = [np.empty(n or 1, dtype=dt) for _, dt in seg.outputs]
    try:
        native.run_f32(seg.code, (*values, *seg.consts, *outs), n or 1, seg.scratch)
    except ValueError:  # a register not laid out as one contiguous column: made one, as the setter would
        values = [
            np.ascontiguousarray(v, dtype=np.bool_ if type(zero) is np.bool_ else _F32)
            for v, (_, zero) in zip(values, seg.inputs, strict=True)
        ]
        native.run_f32(seg.code, (*values, *seg.consts, *outs), n or 1, seg.scratch)
    if n:
        for (name, _), out in zip(seg.outputs, outs, strict=True):
            regs[name] = out
    else:
        for (name, _), out in zip(seg.outputs, outs, strict=True):
            regs[name] = out[0]
    for name in seg.pops:
        regs.pop(name, None)
