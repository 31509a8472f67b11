"""Atomics: ``atom`` and ``red`` on global, shared and generic addresses."""

from __future__ import annotations

import time

import numpy as np

from protocol import CUresult

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
from ._memory import check_aligned
from ._numeric import DTYPES
from ._parse import Instruction
from ._state import Frame, KernelFaultError, Value

_ATOM_OPS = {"add", "min", "max", "and", "or", "xor", "exch", "cas", "inc", "dec"}


def _c_atom(c: Compiler, ins: Instruction) -> Runner:
    red = ins.opcode == "red"
    space = "generic"
    op = ""
    t = ""
    for m in ins.mods:
        if m in ("global", "shared", "shared::cta"):
            space = "shared" if m.startswith("shared") else m
        elif m in _ATOM_OPS:
            op = m
        elif m in DTYPES:
            t = m
        elif not is_hint(m):
            raise UnsupportedError(f"modifier .{m}")
    if not op or not t:
        raise UnsupportedError("atom needs an operation and a type")
    allowed = {
        "add": {"u32", "s32", "u64", "f32", "f64"},
        "min": {"u32", "s32", "u64", "s64"},
        "max": {"u32", "s32", "u64", "s64"},
        "inc": {"u32"},
        "dec": {"u32"},
        "and": {"b32", "b64"},
        "or": {"b32", "b64"},
        "xor": {"b32", "b64"},
        "exch": {"b32", "b64"},
        "cas": {"b32", "b64"},
    }[op]
    if t not in allowed:
        raise UnsupportedError(f"atom.{op}.{t}")
    dt = DTYPES[t]
    ops = list(ins.operands)
    put: Setter | None = None
    if not red:
        put = c.write(ops.pop(0), dt)
    if len(ops) != (3 if op == "cas" else 2):
        raise UnsupportedError("operands")
    addr, _ = c.address(ops[0], space)
    gb = c.read(ops[1], dt)
    gc = c.read(ops[2], dt) if op == "cas" else None
    size = dt.itemsize

    def combine(old: Value, b: Value, cv: Value | None) -> Value:
        if op == "add":
            return old + b
        if op == "min":
            return np.minimum(old, b)
        if op == "max":
            return np.maximum(old, b)
        if op == "and":
            return old & b
        if op == "or":
            return old | b
        if op == "xor":
            return old ^ b
        if op == "exch":
            return b
        if op == "cas":
            return np.where(old == b, cv, old)
        if op == "inc":
            return np.where(old >= b, dt.type(0), old + dt.type(1))
        return np.where((old == 0) | (old > b), b, old - dt.type(1))  # dec

    def atom(f: Frame, m: Mask | None) -> None:
        n = f.batch.n
        rows = active_rows(m, n)
        addrs = select_rows(addr(f), rows, n).astype(np.uint64)
        b = select_rows(gb(f), rows, n).astype(dt, copy=False)
        cv = select_rows(gc(f), rows, n).astype(dt, copy=False) if gc is not None else None
        check_aligned(addrs, size, space)
        old_all = np.zeros(rows.size, dtype=dt)
        # one legal order: the threads of the batch one after another; threads on distinct
        # addresses are independent, so each round serves every address's next thread at once
        keys = addrs.copy()
        pending = np.arange(rows.size)
        while pending.size:
            _, first = np.unique(keys[pending], return_index=True)
            now = pending[np.sort(first)]
            at = addrs[now]
            old = np.ascontiguousarray(access(f, space, rows[now], at, size, None)).view(dt).reshape(-1)
            new = np.asarray(combine(old, b[now], None if cv is None else cv[now])).astype(dt)
            access(f, space, rows[now], at, size, np.ascontiguousarray(new).view(np.uint8).reshape(-1, size))
            old_all[now] = old
            pending = np.setdiff1d(pending, now, assume_unique=True)
            f.batch.steps += 1
            if time.monotonic() > f.batch.deadline:  # thousands of threads on one address take long
                raise KernelFaultError(
                    CUresult.CUDA_ERROR_LAUNCH_TIMEOUT,
                    f"the launch ran past its bound of {f.batch.limits.seconds} s",
                )
        if put is not None:
            full = np.zeros(n, dtype=dt)
            full[rows] = old_all
            put(f, full, m)

    return atom


ATOMIC: dict[str, InstructionCompiler] = {
    "atom": _c_atom,
    "red": _c_atom,
}
