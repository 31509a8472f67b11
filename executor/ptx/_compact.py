"""Sparse paths: a fused run whose few active threads run as a batch of their own.

A wide kernel's divergent paths are often a sliver of its threads — a stencil's halo loads (one row
of a block, or a few threads of another), a boundary case — yet a masked run pays for the whole
batch at every instruction: each operand and result spans every thread, and each write merges under
the mask. Where the active threads are at most a quarter of a batch and every instruction of the run
is one thread's business (arithmetic, moves, conversions, and loads and stores of global, constant
and shared memory or of the kernel's parameters: nothing that reads another thread's registers, its
local memory or the warp), the run instead executes its full-batch variant on a *compacted* batch:
the active threads' rows of the batch's shape arrays and of the registers the run names, the same
shared memory, device memory and parameters. Afterwards every register the run wrote goes back to
the active threads' rows (a new array: registers never change in place), and a register the run
let go (``_liveness``) goes from the frame too.

Per active thread this computes exactly what the masked run computes, in the same thread order
(stores and their faults alike); the inactive threads keep their values. A register no thread had
written holds zeros for the inactive threads where the masked run left what it computed for them:
PTX leaves both undefined.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from ._parse import Addr, Imm, Instruction, Pair, Reg, Sym, Vec
from ._state import Batch, Frame, Mask, Value

if TYPE_CHECKING:
    from ._fuse import Run

__all__ = ["COMPACT_MIN_THREADS", "compactable", "run_compact", "sparse"]

#: the smallest batch worth compacting (below it the masked run's passes are already short)
COMPACT_MIN_THREADS = 2048
#: compact when at most one in this many of the batch's threads is active
COMPACT_RATIO = 4

#: instructions whose result for a thread depends only on that thread's operands
_THREAD_LOCAL = frozenset(
    {
        *("add", "sub", "mul", "mad", "mul24", "mad24", "sad", "div", "rem", "abs", "neg", "min", "max"),
        *("fma", "rcp", "sqrt", "rsqrt", "sin", "cos", "lg2", "ex2", "tanh", "and", "or", "xor", "not"),
        *("cnot", "lop3", "shl", "shr", "shf", "bfe", "bfi", "brev", "clz", "popc", "bfind", "prmt"),
        *("cvt", "cvta", "mov", "setp", "selp", "set", "slct", "copysign", "testp", "isspacep"),
    }
)
#: the state spaces a compacted load or store may reach (not local memory: a thread's own stack,
#: held per thread of the whole batch; not a generic address, which may be local)
_SPACES = frozenset({"global", "const", "shared", "shared::cta"})


def compactable(
    code: list[Instruction], registers: dict[str, str], params: set[str]
) -> tuple[str, ...] | None:
    """The registers the straight line ``code`` names, when every instruction of it may run on a
    compacted batch (see the module docstring); else ``None``. ``registers`` are the function's
    declared registers, ``params`` the kernel's parameter names (a load of one is uniform)."""
    names: dict[str, None] = {}

    def note(reg: Reg) -> None:
        if reg.name in registers:
            names[reg.name] = None

    for ins in code:
        if ins.opcode in ("ld", "st"):
            space = next((m for m in ins.mods if m in _SPACES or m == "param"), None)
            if space is None or any(m.startswith("shared::cluster") for m in ins.mods):
                return None
            if space == "param":  # the kernel's own parameters only, read (a call's are per thread)
                addr = next((o for o in ins.operands if isinstance(o, Addr)), None)
                if (
                    ins.opcode != "ld"
                    or addr is None
                    or not isinstance(addr.base, Sym)
                    or addr.base.name not in params
                ):
                    return None
        elif ins.opcode not in _THREAD_LOCAL:
            return None
        if ins.guard is not None:
            note(ins.guard)
        for op in ins.operands:
            if isinstance(op, Reg):
                note(op)
            elif isinstance(op, Addr) and isinstance(op.base, Reg):
                note(op.base)
            elif isinstance(op, Vec):
                for item in op.items:
                    if isinstance(item, Reg):
                        note(item)
            elif isinstance(op, Pair):
                note(op.first)
                note(op.second)
            elif not isinstance(op, (Sym, Imm)):
                return None  # a texture address or an argument list: not one thread's registers
    return tuple(names)


def sparse(batch: Batch, active: int) -> bool:
    """Whether ``active`` threads of ``batch`` are few enough to run compacted."""
    return batch.n >= COMPACT_MIN_THREADS and active * COMPACT_RATIO <= batch.n and batch.whole_blocks


#: the batch's ``derived`` entry holding the compacted batch of the last mask compacted
_LAST = "compact.last"


def _compacted(batch: Batch, mask: Mask) -> tuple[Batch, np.ndarray]:
    """The batch of ``mask``'s threads and their rows, kept for the mask (a path's several runs)."""
    last = batch.derived.get(_LAST)
    if last is not None and last[0] is mask:
        return last[1], last[2]
    rows = np.flatnonzero(mask)
    sub = replace(
        batch,
        n=int(rows.size),
        block_index=batch.block_index[rows],
        ctaid=(batch.ctaid[0][rows], batch.ctaid[1][rows], batch.ctaid[2][rows]),
        tid=(batch.tid[0][rows], batch.tid[1][rows], batch.tid[2][rows]),
        linear_tid=batch.linear_tid[rows],
        local=np.zeros((int(rows.size), 0), dtype=np.uint8),
        exited=np.zeros(int(rows.size), dtype=np.bool_),
        whole_blocks=False,
        derived={},
    )
    batch.derived[_LAST] = (mask, sub, rows)
    return sub, rows


def run_compact(frame: Frame, run: Run, mask: Mask, names: tuple[str, ...]) -> None:
    """Run ``run`` for the threads of ``mask`` as a compacted batch (see the module docstring)."""
    batch = frame.batch
    sub, rows = _compacted(batch, mask)
    regs = frame.regs
    given: dict[str, Value] = {}
    for name in names:
        v = regs.get(name)
        if v is not None:
            # a uniform may be a 0-d array (a uniform div's result): it stays whole, as a scalar does
            given[name] = v[rows] if type(v) is np.ndarray and v.ndim else v
    inner = dict(given)
    sub.steps = batch.steps
    compact = Frame(sub, inner, frame.params, frame.local_base, frame.entry, frame.function, frame.stack)
    run.full(compact, None, _all_of(sub))
    for name, before in given.items():
        after = inner.get(name)
        if after is None:
            regs.pop(name, None)  # let go inside the run: dead here and where threads wait
        elif after is not before:
            _put_rows(regs, name, after, rows, mask, batch.n)
    for name, after in inner.items():
        if name not in given:
            _put_rows(regs, name, after, rows, mask, batch.n)


def _all_of(sub: Batch) -> Mask:
    every: Mask | None = sub.derived.get(_ALL)
    if every is None:
        every = sub.derived[_ALL] = np.ones(sub.n, dtype=np.bool_)
    return every


_ALL = "compact.all"


def _put_rows(regs: dict[str, Value], name: str, value: Value, rows: np.ndarray, mask: Mask, n: int) -> None:
    """The write of ``value`` (one element per row, or uniform) to the threads of ``rows``; the others
    keep theirs (``_fuse.put_masked``'s rule: an unwritten register, or the same uniform value, takes
    the value as it is)."""
    old = regs.get(name)
    if np.ndim(value) == 0:
        if old is None or (np.ndim(old) == 0 and old == value):
            regs[name] = value
            return
        regs[name] = np.where(mask, value, old)
        return
    if old is None:
        full = np.zeros((n, *value.shape[1:]), dtype=value.dtype)
    elif (type(old) is np.ndarray and old.ndim and old.dtype == value.dtype
          and old.shape[1:] == value.shape[1:]):
        full = old.copy()
    else:
        spread = np.zeros((n, *value.shape[1:]), dtype=value.dtype)
        spread[rows] = value
        regs[name] = np.where(mask.reshape(-1, *([1] * (spread.ndim - 1))), spread, old)
        return
    full[rows] = value
    regs[name] = full
