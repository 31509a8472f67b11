"""Atomics: ``atom`` and ``red`` on global, shared and generic addresses.

Theory of operation. The engine realises one legal order of a batch's atomics: its threads one
after another, in row order. Threads on different locations are independent, so the order matters
only among the threads of one location, and there are two ways to compute the same results bit for
bit:

* **Rounds** (:func:`_rounds`, the reference, used when :data:`SCANS` is off): each round serves
  the next thread of every location — read, combine, write — so a location with k threads takes k
  rounds of NumPy calls and memory accesses.
* **Scans** (:func:`_scan`, the default): the threads are grouped by location with one sort (a group
  keeps the row order), each location is read once and written once, and every thread's old value
  and the location's final value come from the group's values. Locations with few threads each are
  replayed round by round on those values (:func:`_replay`); busier ones take a closed form:
  ``add`` ``min`` ``max`` ``and`` ``or`` ``xor`` a ``ufunc.accumulate`` seeded with the memory's value
  (sequential by definition, so a float sum rounds exactly as the serial order does, and integer sums
  wrap as they do); ``exch`` hands each thread its predecessor's value; ``inc``/``dec`` with one bound
  per location count modulo bound + 1; ``cas`` and ``inc``/``dec`` with differing bounds are stepped
  thread by thread on Python integers (a batch holds at most ``Limits.batch_threads`` threads).

Where nobody reads the old values (``red``, or ``atom`` into a register no other instruction of
the function reads: a histogram's ``atomicAdd``) and the operation has a ufunc, shared memory is
updated by one ``ufunc.at`` (:func:`_accumulate_at`), which applies the threads in row order: the
serial order's memory, floats included.

A location is an address and, for shared memory, the thread's block (for a generic address into the
local window, the thread itself). Every address is checked for alignment, and each location's bounds
once, before anything is written, as the first round does. Both ways count one batch-instruction
per round the serial order has, so ``%clock`` and the instruction bound see the same work; the time
bound is checked after each round and after a scan.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import numpy.typing as npt

from protocol import CUresult

from ._cluster import shared_owners
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
from ._liveness import uses_and_kills
from ._memory import SHARED_WINDOW, WINDOW_BITS, check_aligned, check_window
from ._numeric import DTYPES
from ._parse import Instruction, Reg
from ._state import Frame, KernelFaultError, Value

__all__ = ["ATOMIC"]

Array = npt.NDArray[Any]
Index = npt.NDArray[np.intp]
#: (old memory value, b, c) -> the new value, on Python integers: the serial step of cas, inc, dec
Step = Callable[[int, int, int], int]

_ATOM_OPS = {"add", "min", "max", "and", "or", "xor", "exch", "cas", "inc", "dec"}
_ALLOWED = {
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
}
_UFUNCS: dict[str, np.ufunc] = {
    "add": np.add,
    "min": np.minimum,
    "max": np.maximum,
    "and": np.bitwise_and,
    "or": np.bitwise_or,
    "xor": np.bitwise_xor,
}
_STEPS: dict[str, Step] = {
    "cas": lambda old, b, c: c if old == b else old,
    "inc": lambda old, b, c: 0 if old >= b else old + 1,
    "dec": lambda old, b, c: b if old == 0 or old > b else old - 1,
}
#: the scans are used unless this is false (the tests turn it off to run the reference rounds)
SCANS = True
#: rounds served in place in shared memory before the scans take the rest (:func:`_in_place`)
_IN_PLACE_ROUNDS = 4
#: ... while the batch's shared memory has at most this many elements (one index each, transient)
_IN_PLACE_SLOTS = 1 << 20
#: locations with at most this many threads each are replayed round by round (a few NumPy calls a
#: round) rather than scanned (a dozen calls per power of two of the busiest location's threads)
_REPLAY_MOST = 8
#: a thread stepped on Python integers costs about this fraction of a replayed round: cas and
#: inc/dec with differing bounds are replayed while their busiest location holds at most this
#: fraction of the threads, and stepped beyond
_STEP_PER_ROUND = 1 / 80


def _combine(op: str, dt: np.dtype[Any], old: Value, b: Value, cv: Value | None) -> Value:
    """One round's new values (the reference semantics of every operation)."""
    if op in _UFUNCS:
        return _UFUNCS[op](old, b)
    if op == "exch":
        return b
    if op == "cas":
        return np.where(old == b, cv, old)
    if op == "inc":
        return np.where(old >= b, dt.type(0), old + dt.type(1))
    return np.where((old == 0) | (old > b), b, old - dt.type(1))  # dec


def _check_time(f: Frame) -> None:
    if time.monotonic() > f.batch.deadline:  # thousands of threads on one address take long
        raise KernelFaultError(
            CUresult.CUDA_ERROR_LAUNCH_TIMEOUT,
            f"the launch ran past its bound of {f.batch.limits.seconds} s",
        )


def _rounds(
    f: Frame, space: str, op: str, rows: Index, addrs: Array, b: Array, cv: Array | None, dt: np.dtype[Any]
) -> Array:
    """The reference: each round serves the next thread of every location, in row order."""
    size = dt.itemsize
    old_all = np.zeros(rows.size, dtype=dt)
    owner, names = _owners(f, space, rows, addrs)
    location = names if owner is None else np.unique(np.stack([owner, names]), axis=1, return_inverse=True)[1]
    pending = np.arange(rows.size)
    while pending.size:
        _, first = np.unique(location[pending], return_index=True)
        now = pending[np.sort(first)]
        at = addrs[now]
        old = np.ascontiguousarray(access(f, space, rows[now], at, size, None)).view(dt).reshape(-1)
        new = np.asarray(_combine(op, dt, old, b[now], None if cv is None else cv[now])).astype(dt)
        access(f, space, rows[now], at, size, np.ascontiguousarray(new).view(np.uint8).reshape(-1, size))
        old_all[now] = old
        pending = np.setdiff1d(pending, now, assume_unique=True)
        f.batch.steps += 1
        _check_time(f)
    return old_all


class _Groups:
    """The active threads grouped by location: ``order`` sorts them (stably) so that each location's
    threads are consecutive, in row order; the rest describes the sorted sequence."""

    def __init__(self, f: Frame, space: str, rows: Index, addrs: Array) -> None:
        n = rows.size
        owner, addrs = _owners(f, space, rows, addrs)  # the addresses as names of locations
        index_bits = max(n - 1, 1).bit_length()
        addr_bits = int(addrs.max()).bit_length()
        owner_bits = 0 if owner is None else int(owner.max()).bit_length()
        new = np.empty(n, dtype=np.bool_)
        new[0] = True
        if owner_bits + addr_bits + index_bits <= 64:
            # one key (owner, address, row) per thread: a plain sort of distinct keys is stable
            key = (addrs << np.uint64(index_bits)) | np.arange(n, dtype=np.uint64)
            if owner is not None:
                key |= owner << np.uint64(addr_bits + index_bits)
            key.sort()
            self.order: Index = (key & np.uint64((1 << index_bits) - 1)).astype(np.intp)
            location = key >> np.uint64(index_bits)
            np.not_equal(location[1:], location[:-1], out=new[1:])
        else:  # addresses too wide to pack (generic ones into shared or local memory)
            keys = (addrs,) if owner is None else (addrs, owner)
            self.order = np.lexsort(keys)  # stable: row order within a location
            new[1:] = False
            for k in keys:
                sk = k[self.order]
                new[1:] |= sk[1:] != sk[:-1]
        if new.all():  # a location per thread (common: no sequences to describe)
            self.starts: Index = np.arange(rows.size)
            self.lengths: Index = np.ones(rows.size, dtype=np.intp)
            self.group: Index = self.starts
            self.pos: Index = np.zeros(rows.size, dtype=np.intp)
        else:
            self.starts = np.flatnonzero(new)
            self.lengths = np.diff(np.append(self.starts, rows.size))
            self.group = np.cumsum(new) - 1  # sorted thread -> its location
            self.pos = np.arange(rows.size) - self.starts[self.group]  # its place in the location's order
        self.firsts: Index = self.order[self.starts]  # one thread per location
        self.most = int(self.lengths.max())  # the rounds the serial order has


def _owners(f: Frame, space: str, rows: Index, addrs: Array) -> tuple[Array | None, Array]:
    """What else than the address tells locations apart (as a number >= 0): the block for shared
    memory, the thread for local memory; ``None`` for global memory (the address alone). And each
    thread's address as the location's name: in a cluster launch without the rank ``mapa`` puts in it
    (a block's own location named with and without its rank is one location)."""
    blocks = f.batch.block_index[rows].astype(np.uint64) + np.uint64(1)
    if f.batch.cluster is not None and space in ("shared", "generic"):  # mapa: another block's (_cluster)
        named, addrs = shared_owners(f.batch, rows, addrs, SHARED_WINDOW if space == "generic" else 0)
        blocks = named.astype(np.uint64) + np.uint64(1)
    if space == "shared":
        return blocks, addrs
    if space != "generic":
        return None, addrs
    window = addrs >> np.uint64(WINDOW_BITS)
    # the windows' codes as access() reads them: 1 shared, 2 local, the rest device memory (0)
    local = rows.astype(np.uint64) + np.uint64(f.batch.n + 1)  # above every block's number
    return np.where(window == 1, blocks, np.where(window == 2, local, np.uint64(0))), addrs


def _accumulate(ufunc: np.ufunc, base: Array, vals: Array, g: _Groups) -> tuple[Array, Array]:
    """Each thread's old value and each location's final value for an operation with a ufunc: per
    location the sequence [memory value, b of its threads in order] accumulated. Locations are
    bucketed by their thread count rounded up to a power of two, one matrix each (a column per
    location: at most twice the threads plus one row), so a batch costs a few calls per bucket."""
    olds = np.empty(vals.size, dtype=base.dtype)
    finals = np.empty(base.size, dtype=base.dtype)
    bucket = np.frexp((g.lengths - 1).astype(np.float64))[1]  # ceil(log2(length)) for length >= 1
    thread_bucket = bucket[g.group]
    column = np.empty(base.size, dtype=np.intp)
    for k in np.flatnonzero(np.bincount(bucket)).tolist():
        locs = np.flatnonzero(bucket == k)
        threads = np.flatnonzero(thread_bucket == k)
        if k == 0:  # one thread on each: no sequence
            olds[threads] = base[locs]
            finals[locs] = ufunc(base[locs], vals[threads])
            continue
        column[locs] = np.arange(locs.size)
        cols, pos = column[g.group[threads]], g.pos[threads]
        matrix = np.zeros(((1 << int(k)) + 1, locs.size), dtype=base.dtype)
        matrix[0] = base[locs]
        matrix[pos + 1, cols] = vals[threads]
        acc = ufunc.accumulate(matrix, axis=0)  # row after row: each column in the serial order
        olds[threads] = acc[pos, cols]
        finals[locs] = acc[g.lengths[locs], np.arange(locs.size)]
    return olds, finals


def _exchange(base: Array, vals: Array, g: _Groups) -> tuple[Array, Array]:
    """``exch``: a thread gets its predecessor's value (the first, memory's); memory keeps the last."""
    olds = np.empty_like(vals)
    olds[1:] = vals[:-1]
    olds[g.starts] = base
    return olds, vals[g.starts + g.lengths - 1]


def _wrapping(op: str, base: Array, bound: Array, k: Array) -> Array:
    """The value ``inc``/``dec`` leave after ``k`` threads with one bound: it counts modulo
    bound + 1 from the memory's value, or, from a value above the bound, from 0 (inc) or the bound
    (dec) after the first thread."""
    period = bound + 1
    within = base <= bound
    if op == "inc":
        seq = np.where(within, (base + k) % period, (k - 1) % period)
    else:
        seq = np.where(within, (base - k) % period, (bound - (k - 1)) % period)
    return np.where(k == 0, base, seq)


def _step(step: Step, base: Array, vals: Array, cvs: Array | None, g: _Groups) -> tuple[Array, Array]:
    """The operations without a closed form, one thread after another on Python integers."""
    olds: list[int] = []
    finals: list[int] = []
    bl, vl = base.tolist(), vals.tolist()
    cl = vl if cvs is None else cvs.tolist()
    ends = (g.starts + g.lengths).tolist()
    i = 0
    for loc, end in enumerate(ends):
        value = bl[loc]
        while i < end:
            olds.append(value)
            value = step(value, vl[i], cl[i])
            i += 1
        finals.append(value)
    return np.array(olds, dtype=base.dtype), np.array(finals, dtype=base.dtype)


def _replay(
    op: str, dt: np.dtype[Any], base: Array, vals: Array, cvs: Array | None, g: _Groups
) -> tuple[Array, Array]:
    """The rounds on the grouped values, without memory: round r serves each location's r-th thread
    (cheapest when locations have few threads each). Round 0 is every location's first thread."""

    def serve(threads: Index, locs: Index | slice) -> None:
        old = current[locs]
        olds[threads] = old
        current[locs] = _combine(op, dt, old, vals[threads], None if cvs is None else cvs[threads])

    olds = np.empty_like(vals)
    current = base.copy()
    serve(g.starts, slice(None))
    later = np.flatnonzero(g.pos)  # the threads of rounds 1, 2, ...: few where replay is chosen
    place = g.pos[later]
    for r in range(1, g.most):
        threads = later[place == r]
        serve(threads, g.group[threads])
    return olds, current


def _scan(
    f: Frame, space: str, op: str, rows: Index, addrs: Array, b: Array, cv: Array | None, dt: np.dtype[Any]
) -> Array:
    """Every thread's old value by the scans (module docstring), memory written."""
    g = _Groups(f, space, rows, addrs)
    vals = b[g.order]
    cvs = None if cv is None else cv[g.order]
    bounded = op in ("inc", "dec") and np.array_equal(vals, np.repeat(vals[g.starts], g.lengths))
    closed = op in _UFUNCS or op == "exch" or bounded
    size = dt.itemsize
    at, owners = addrs[g.firsts], rows[g.firsts]
    base = np.ascontiguousarray(access(f, space, owners, at, size, None)).view(dt).reshape(-1)
    if g.most == 1:  # a thread on each location: one round
        olds, finals = base, np.asarray(_combine(op, dt, base, vals, cvs)).astype(dt)
    elif g.most <= (_REPLAY_MOST if closed else rows.size * _STEP_PER_ROUND):
        olds, finals = _replay(op, dt, base, vals, cvs, g)
    elif op in _UFUNCS:
        olds, finals = _accumulate(_UFUNCS[op], base, vals, g)
    elif op == "exch":
        olds, finals = _exchange(base, vals, g)
    elif bounded:
        wide_base, bound = base.astype(np.int64), vals[g.starts].astype(np.int64)
        olds = _wrapping(op, wide_base[g.group], bound[g.group], g.pos.astype(np.int64)).astype(dt)
        finals = _wrapping(op, wide_base, bound, g.lengths.astype(np.int64)).astype(dt)
    else:  # cas, inc/dec with differing bounds
        olds, finals = _step(_STEPS[op], base, vals, cvs, g)
    access(f, space, owners, at, size, np.ascontiguousarray(finals).view(np.uint8).reshape(-1, size))
    f.batch.steps += g.most
    _check_time(f)
    out = np.empty(rows.size, dtype=dt)
    out[g.order] = olds
    return out


def _flat_shared(
    f: Frame, space: str, rows: Index, addrs: Array, dt: np.dtype[Any]
) -> tuple[Array, Index] | None:
    """The batch's shared memory as one flat array of ``dt`` and each thread's element in it (its
    own block's window; every address checked against the window, as the first round's access
    does); ``None`` where the windows are not one flat typed array or hold more than
    :data:`_IN_PLACE_SLOTS` elements (the index arrays stay small), or in a cluster launch."""
    batch = f.batch
    size = dt.itemsize
    window = batch.shared
    if space != "shared" or batch.cluster is not None or not window.flags.c_contiguous:
        return None
    width = window.shape[1]
    if width % size or window.size // size > _IN_PLACE_SLOTS:
        return None
    check_window(addrs, size, width, "shared")
    shift = np.uint64(size.bit_length() - 1)
    slots: Index = batch.block_index[rows] * (width // size) + (addrs >> shift).view(np.int64)
    return window.reshape(-1).view(dt), slots


def _in_place(
    f: Frame, space: str, op: str, rows: Index, addrs: Array, b: Array, cv: Array | None, dt: np.dtype[Any]
) -> tuple[Array, Index] | None:
    """Shared memory (each thread's own block's, no cluster): the first :data:`_IN_PLACE_ROUNDS`
    rounds served on the window itself, each location's earliest remaining thread found with one
    ``minimum.at`` over the locations' element indexes (a histogram's locations see a few threads
    each); returns every served thread's old value and the rows still to serve. ``None`` where the
    windows are not one flat typed array or hold more than :data:`_IN_PLACE_SLOTS` elements."""
    batch = f.batch
    flat = _flat_shared(f, space, rows, addrs, dt)
    if flat is None:
        return None
    elements, slots = flat
    olds = np.empty(rows.size, dtype=dt)
    earliest = np.empty(elements.size, dtype=np.intp)
    remaining = np.arange(rows.size)
    for _ in range(_IN_PLACE_ROUNDS):
        earliest[slots] = rows.size
        np.minimum.at(earliest, slots, remaining)
        now = earliest[slots] == remaining
        served, at = remaining[now], slots[now]  # one thread per location
        old = elements[at]
        olds[served] = old
        elements[at] = _combine(op, dt, old, b[served], None if cv is None else cv[served])
        batch.steps += 1
        remaining, slots = remaining[~now], slots[~now]
        if not remaining.size:
            break
    _check_time(f)
    return olds, remaining


def _accumulate_at(
    f: Frame, space: str, op: str, rows: Index, addrs: Array, b: Array, dt: np.dtype[Any]
) -> bool:
    """An operation with a ufunc whose old values nobody reads (``red``, or ``atom`` into a register
    the function never reads: a histogram's ``atomicAdd``), on shared memory: one ``ufunc.at`` on the
    window applies the threads one after another in row order — the serial order's memory, bit for
    bit, floats too — with the same checks as the rounds. ``False`` where :func:`_in_place` could not
    serve the batch (then the scans do)."""
    flat = _flat_shared(f, space, rows, addrs, dt)
    if flat is None:
        return False
    elements, slots = flat
    _UFUNCS[op].at(elements, slots, np.ascontiguousarray(b))  # ufunc.at's fast loop needs it contiguous
    threads = np.zeros(elements.size, dtype=np.int32)
    np.add.at(threads, slots, _ONE)
    f.batch.steps += int(threads.max())  # the rounds the serial order has (the busiest location's threads)
    _check_time(f)
    return True


_ONE = np.int32(1)
#: per function compiled (its code, held so that the id stays its own): how many instructions read
#: each register
_READERS: dict[int, tuple[object, Counter[str]]] = {}


def _never_read(c: Compiler, ins: Instruction, reg: object) -> bool:
    """Whether no instruction of the function but ``ins`` itself reads register ``reg`` (so its old
    values need not be formed)."""
    if not isinstance(reg, Reg):
        return False
    declared = frozenset(c.fn.registers)
    held = _READERS.get(id(c.code))
    if held is None or held[0] is not c.code:
        readers: Counter[str] = Counter()
        for other in c.code.code:
            readers.update(uses_and_kills(other, declared)[0])
        if len(_READERS) >= 64:
            _READERS.clear()
        held = _READERS[id(c.code)] = (c.code, readers)
    # a guarded instruction counts as reading its destination (threads it skips keep the old
    # value); one that reads it as a source (in a loop, the next iteration's) does read it
    sources = uses_and_kills(replace(ins, guard=None), declared)[0]
    if reg.name in sources:
        return False
    return held[1][reg.name] == (1 if ins.guard is not None else 0)


def _c_atom(c: Compiler, ins: Instruction) -> Runner:
    red = ins.opcode == "red"
    space = "generic"
    op = ""
    t = ""
    for m in ins.mods:
        if m in ("global", "shared", "shared::cta", "shared::cluster"):  # ::cluster: mapa addresses too
            space = "shared" if m.startswith("shared") else m
        elif m in _ATOM_OPS:
            op = m
        elif m in DTYPES:
            t = m
        elif not is_hint(m):
            raise UnsupportedError(f"modifier .{m}")
    if not op or not t:
        raise UnsupportedError("atom needs an operation and a type")
    if t not in _ALLOWED[op]:
        raise UnsupportedError(f"atom.{op}.{t}")
    dt = DTYPES[t]
    ops = list(ins.operands)
    put: Setter | None = None
    if not red:
        dest = ops.pop(0)
        if not _never_read(c, ins, dest):  # a result nobody reads is not formed
            put = c.write(dest, dt)
    if len(ops) != (3 if op == "cas" else 2):
        raise UnsupportedError("operands")
    addr, _ = c.address(ops[0], space)
    gb = c.read(ops[1], dt)
    gc = c.read(ops[2], dt) if op == "cas" else None
    unread = put is None and op in _UFUNCS

    def atom(f: Frame, m: Mask | None) -> None:
        n = f.batch.n
        rows = active_rows(m, n)
        addrs = select_rows(addr(f), rows, n).astype(np.uint64)
        b = select_rows(gb(f), rows, n).astype(dt, copy=False)
        cv = select_rows(gc(f), rows, n).astype(dt, copy=False) if gc is not None else None
        check_aligned(addrs, dt.itemsize, space)
        if unread and SCANS and rows.size and _accumulate_at(f, space, op, rows, addrs, b, dt):
            return
        if SCANS and rows.size:
            served = _in_place(f, space, op, rows, addrs, b, cv, dt)
            if served is None:
                old = _scan(f, space, op, rows, addrs, b, cv, dt)
            else:
                old, rest = served
                if rest.size:  # busier locations: the scans continue from what the rounds left
                    cv_rest = None if cv is None else cv[rest]
                    old[rest] = _scan(f, space, op, rows[rest], addrs[rest], b[rest], cv_rest, dt)
        else:
            old = _rounds(f, space, op, rows, addrs, b, cv, dt)
        if put is not None:
            full = np.zeros(n, dtype=dt)
            full[rows] = old
            put(f, full, m)

    return atom


ATOMIC: dict[str, InstructionCompiler] = {
    "atom": _c_atom,
    "red": _c_atom,
}
