"""Warp-level instructions: shfl.sync, vote.sync, activemask."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from ._compiler import (
    Compiler,
    InstructionCompiler,
    Mask,
    Runner,
    UnsupportedError,
    broadcast_full,
    operands_of,
)
from ._held import held
from ._numeric import DTYPES
from ._parse import Instruction, Pair, Reg
from ._state import Frame, Value

# -- warp-level -------------------------------------------------------------------------------


class _Lanes(NamedTuple):
    """A batch's lane geometry for shuffles, per thread: its batch index, its lane, the batch index of
    lane 0 of its warp, and that thread's index within its block (all int64)."""

    thread: npt.NDArray[np.int64]
    lane: npt.NDArray[np.int64]
    first: npt.NDArray[np.int64]
    warp_tid: npt.NDArray[np.int64]


def _lanes(linear_tid: npt.NDArray[Any]) -> _Lanes:
    tid = linear_tid.astype(np.int64)
    lane = tid & 31
    index = np.arange(tid.size, dtype=np.int64)
    return _Lanes(index, lane, index - lane, tid - lane)


def _sources(
    mode: str, lanes: _Lanes, bt: int, b: Value, c: Value
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.bool_]]:
    """Each thread's source thread in the batch for ``shfl.sync.mode`` with lane operand ``b`` and
    clamp/segment operand ``c``, and whether the source lane is in range (a source lane past the end
    of a partial warp is the thread itself)."""
    lane = lanes.lane
    bval = np.asarray(b).astype(np.int64) & 31
    cval = np.asarray(c).astype(np.int64)
    clamp, segmask = cval & 31, (cval >> 8) & 31
    if cval.ndim == 0 and not segmask:  # the usual whole-warp form: lanes 0..clamp
        max_lane: Value = clamp
        min_lane: Value = 0
    else:
        max_lane = (lane & segmask) | (clamp & ~segmask)
        min_lane = lane & segmask
    if mode == "up":
        j = lane - bval
        ok = j >= max_lane
    elif mode == "down":
        j = lane + bval
        ok = j <= max_lane
    elif mode == "bfly":
        j = lane ^ bval
        ok = j <= max_lane
    else:
        j = min_lane | (bval & ~segmask)
        ok = j <= max_lane
    ok = np.broadcast_to(ok, lane.shape)
    j = np.where(ok, j, lane)
    src = lanes.first + j
    if bt % 32:  # the last warp of each block is partial
        src = np.where(lanes.warp_tid + j < bt, src, lanes.thread)
    return src.astype(np.intp, copy=False), np.ascontiguousarray(ok)


#: each lane's number, to test a lane's bit in 32 membermasks at once
_LANE_NUMBERS = np.arange(32, dtype=np.uint32)
#: the batch's ``derived`` entry that holds its :class:`_Lanes`
_LANES = "shuffle lanes"


def _uniform_sources(
    mode: str, b: int, c: int, n: int, bt: int
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.bool_]]:
    """:func:`_sources` for uniform lane operands: a function of the batch's shape only, so computed
    once for every batch and launch of that shape (read-only, as they are shared; ``_held``)."""
    return held(
        ("shfl", mode, b, c, n, bt),
        lambda: _sources(mode, _lanes(np.arange(n, dtype=np.int64) % bt), bt, np.int64(b), np.int64(c)),
    )


def _c_shfl(c: Compiler, ins: Instruction) -> Runner:
    mods = [m for m in ins.mods if m != "sync"]
    if (
        "sync" not in ins.mods
        or len(mods) != 2
        or mods[0] not in ("up", "down", "bfly", "idx")
        or mods[1] != "b32"
    ):
        raise UnsupportedError("shfl.sync.{up,down,bfly,idx}.b32 only")
    mode = mods[0]
    ops = ins.operands
    if len(ops) != 5:
        raise UnsupportedError("operands")
    dest = ops[0]
    u32 = DTYPES["u32"]
    ga, gb, gc = c.read(ops[1], u32), c.read(ops[2], u32), c.read(ops[3], u32)
    if isinstance(dest, Pair):
        put, put_p = c.write(dest.first, u32), c.write(dest.second, DTYPES["pred"])
    else:
        put, put_p = c.write(dest, u32), None

    def shfl(f: Frame, m: Mask | None) -> None:
        b, c = gb(f), gc(f)
        batch = f.batch
        if np.ndim(b) == 0 and np.ndim(c) == 0:  # uniform lane operands (the usual immediates)
            src, ok = _uniform_sources(mode, int(b), int(c), batch.n, batch.block_threads)
        else:
            lanes = batch.derived.get(_LANES)
            if lanes is None:
                lanes = batch.derived[_LANES] = _lanes(batch.linear_tid)
            src, ok = _sources(mode, lanes, batch.block_threads, b, c)
        value = broadcast_full(ga(f), f.batch.n)[src]
        put(f, value, m)
        if put_p is not None:
            put_p(f, ok, m)

    return shfl


def warp_groups(f: Frame) -> tuple[npt.NDArray[np.intp], int]:
    """Each thread's warp as a dense index over the batch (warps never straddle blocks), and how many."""
    b = f.batch
    per_block = -(-b.block_threads // 32)
    group = b.block_index * per_block + (b.linear_tid >> np.uint32(5)).astype(np.intp)
    return group, per_block * (b.n // b.block_threads)


def _warp_slots(f: Frame) -> tuple[npt.NDArray[np.intp] | None, int]:
    """Each thread's place in a table of the batch's warps, 32 lanes a row (``None``: the batch's own
    order, when its blocks are whole warps), and how many warps. Warp-wide instructions work on that
    table a row at a time: NumPy's ``ufunc.at`` and ``unique`` over thread groups cost hundreds of
    times more."""
    b = f.batch
    per_block = -(-b.block_threads // 32)
    count = per_block * (b.n // b.block_threads)
    if b.block_threads % 32 == 0:
        return None, count
    slot: npt.NDArray[np.intp] | None = b.derived.get(_SLOTS)
    if slot is None:
        group, _ = warp_groups(f)
        slot = b.derived[_SLOTS] = group * 32 + (b.linear_tid & np.uint32(31)).astype(np.intp)
    return slot, count


_SLOTS = "warp slots"


def _table(
    values: npt.NDArray[Any], slot: npt.NDArray[np.intp] | None, count: int, fill: Any
) -> npt.NDArray[Any]:
    """``values`` (one a thread) as the (warps, 32) table, absent lanes ``fill``."""
    if slot is None:
        return values.reshape(count, 32)
    table = np.full(count * 32, fill, dtype=values.dtype)
    table[slot] = values
    return table.reshape(count, 32)


def _each_thread(per_warp: npt.NDArray[Any], slot: npt.NDArray[np.intp] | None) -> npt.NDArray[Any]:
    """A value per warp, given to each of its threads."""
    return np.repeat(per_warp, 32) if slot is None else per_warp[slot >> 5]


def _lane_bits(table: npt.NDArray[np.bool_]) -> npt.NDArray[np.uint32]:
    """The last axis (32 lanes) of a boolean table as one word, lane i in bit i."""
    packed = np.packbits(table, axis=-1, bitorder="little")
    return packed.view("<u4").reshape(table.shape[:-1]).astype(np.uint32, copy=False)


def _ballot(f: Frame, pred: Value, m: Mask | None) -> npt.NDArray[np.uint32]:
    """Per thread: the bits of its warp's lanes whose ``pred`` holds among the active threads."""
    n = f.batch.n
    votes = broadcast_full(np.asarray(pred, dtype=np.bool_), n)
    if m is not None:
        votes = votes & m
    slot, count = _warp_slots(f)
    return _each_thread(_lane_bits(_table(votes, slot, count, False)), slot)


def _c_match(c: Compiler, ins: Instruction) -> Runner:
    """``match.any.sync``: the lanes of the warp (active ones) holding the same value; ``match.all.sync``:
    the active lanes when all hold the same value, else 0 (and the predicate says which)."""
    mods = [m for m in ins.mods if m != "sync"]
    if (
        "sync" not in ins.mods
        or len(mods) != 2
        or mods[0] not in ("any", "all")
        or mods[1] not in ("b32", "b64")
    ):
        raise UnsupportedError("match.{any,all}.sync.{b32,b64}")
    mode, t = mods
    if len(ins.operands) != 3:
        raise UnsupportedError("operands")
    dest, a, member = ins.operands
    if mode == "any" and isinstance(dest, Pair):
        raise UnsupportedError("match.any has no predicate destination")
    get, get_member = c.read(a, DTYPES[t]), c.read(member, DTYPES["u32"])
    if isinstance(dest, Pair):
        put, put_p = c.write(dest.first, DTYPES["u32"]), c.write(dest.second, DTYPES["pred"])
    else:
        put, put_p = c.write(dest, DTYPES["u32"]), None

    def match(f: Frame, m: Mask | None) -> None:
        n = f.batch.n
        active = np.ones(n, dtype=np.bool_) if m is None else m
        slot, count = _warp_slots(f)
        values = _table(broadcast_full(np.asarray(get(f)), n), slot, count, 0)
        # per lane, the active lanes of its warp holding its value: a 32 x 32 comparison a warp
        same = (values[:, :, None] == values[:, None, :]) & _table(active, slot, count, False)[:, None, :]
        per_lane = _lane_bits(same).reshape(-1)
        members = get_member(f)  # only the lanes of the thread's own membermask take part
        equal = (per_lane if slot is None else per_lane[slot]) & members
        if mode == "any":
            put(f, equal, m)
            return
        everyone = _ballot(f, np.True_, m) & members
        all_same = equal == everyone
        put(f, np.where(all_same, everyone, np.uint32(0)), m)
        if put_p is not None:
            put_p(f, all_same, m)

    return match


def _c_redux(c: Compiler, ins: Instruction) -> Runner:
    """``redux.sync.op.type d, a, membermask``: the values of the warp's active lanes that the thread's
    membermask names, reduced."""
    mods = [m for m in ins.mods if m != "sync"]
    forms = {
        ("add", "s32"),
        ("add", "u32"),
        ("min", "s32"),
        ("min", "u32"),
        ("max", "s32"),
        ("max", "u32"),
        ("and", "b32"),
        ("or", "b32"),
        ("xor", "b32"),
    }
    if "sync" not in ins.mods or tuple(mods) not in forms or len(ins.operands) != 3:
        raise UnsupportedError("redux.sync.{add,min,max}.{s32,u32} / .{and,or,xor}.b32")
    op, t = mods
    dt = DTYPES[t]
    d, a, member = ins.operands
    get, put, get_member = c.read(a, dt), c.write(d, dt), c.read(member, DTYPES["u32"])
    ufunc, identity = {
        "add": (np.add, 0),
        "min": (np.minimum, np.iinfo(dt).max),
        "max": (np.maximum, np.iinfo(dt).min),
        "and": (np.bitwise_and, np.iinfo(dt).max),
        "or": (np.bitwise_or, 0),
        "xor": (np.bitwise_xor, 0),
    }[op]

    def redux(f: Frame, m: Mask | None) -> None:
        n = f.batch.n
        slot, count = _warp_slots(f)
        values = broadcast_full(np.asarray(get(f), dtype=dt), n)
        members = np.asarray(get_member(f), dtype=np.uint32)
        taking = m
        if members.ndim == 0 and members != 0xFFFFFFFF:  # one membermask: the lanes it names
            named = ((members >> (f.batch.linear_tid & np.uint32(31))) & np.uint32(1)).astype(np.bool_)
            taking = named if m is None else m & named
        if taking is not None:
            values = np.where(taking, values, dt.type(identity))
        table = _table(values, slot, count, identity)
        # integer add wraps at the type's width, as the hardware's
        if members.ndim == 0:
            put(f, _each_thread(ufunc.reduce(table, axis=1, dtype=dt), slot), m)
            return
        # a membermask of each thread's own (cooperative groups' labeled partitions): lane i reduces
        # the lanes its mask names, a 32 x 32 selection a warp
        masks = _table(broadcast_full(members, n), slot, count, 0)
        named_by = ((masks[:, :, None] >> _LANE_NUMBERS) & np.uint32(1)).astype(np.bool_)
        acc = ufunc.reduce(np.where(named_by, table[:, None, :], dt.type(identity)), axis=2, dtype=dt)
        per_lane = acc.reshape(-1)
        put(f, per_lane if slot is None else per_lane[slot], m)

    return redux


def _c_vote(c: Compiler, ins: Instruction) -> Runner:
    mods = [m for m in ins.mods if m != "sync"]
    if "sync" not in ins.mods or not mods or mods[0] not in ("all", "any", "uni", "ballot"):
        raise UnsupportedError("vote.sync.{all,any,uni,ballot}")
    mode = mods[0]
    if len(ins.operands) != 3:
        raise UnsupportedError("operands")
    d, p, member = ins.operands
    if not isinstance(p, Reg):
        raise UnsupportedError("a predicate operand")
    gp, get_member = c.pred(p), c.read(member, DTYPES["u32"])
    if mode == "ballot":
        if mods[1:] != ["b32"]:
            raise UnsupportedError("vote.sync.ballot.b32")
        put = c.write(d, DTYPES["u32"])
        return lambda f, m: put(f, _ballot(f, gp(f), m) & get_member(f), m)
    if mods[1:] != ["pred"]:
        raise UnsupportedError(f"vote.sync.{mode}.pred")
    putp = c.write(d, DTYPES["pred"])

    def vote(f: Frame, m: Mask | None) -> None:
        members = get_member(f)  # only the lanes of the thread's own membermask take part
        yes = _ballot(f, gp(f), m) & members
        active = _ballot(f, np.True_, m) & members
        if mode == "all":
            r = yes == active
        elif mode == "any":
            r = yes != 0
        else:
            r = (yes == active) | (yes == 0)
        putp(f, r, m)

    return vote


def _c_activemask(c: Compiler, ins: Instruction) -> Runner:
    if tuple(ins.mods) != ("b32",):
        raise UnsupportedError("activemask.b32")
    (d,) = operands_of(ins, 1)
    put = c.write(d, DTYPES["u32"])
    return lambda f, m: put(f, _ballot(f, np.True_, m), m)


WARP: dict[str, InstructionCompiler] = {
    "shfl": _c_shfl,
    "vote": _c_vote,
    "activemask": _c_activemask,
    "match": _c_match,
    "redux": _c_redux,
}
