"""Warp-level instructions: shfl.sync, vote.sync, activemask."""

from __future__ import annotations

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
from ._numeric import DTYPES
from ._parse import Instruction, Pair, Reg
from ._state import Frame, Value

# -- warp-level -------------------------------------------------------------------------------


def _warp_source(f: Frame, lane_src: npt.NDArray[np.int64]) -> npt.NDArray[np.intp]:
    """The batch index of lane ``lane_src`` of each thread's warp (itself when that lane is absent)."""
    b = f.batch
    tid = b.linear_tid.astype(np.int64)
    block_start = np.arange(b.n, dtype=np.int64) - tid
    src_tid = (tid & ~np.int64(31)) + lane_src
    exists = src_tid < b.block_threads
    return np.where(exists, block_start + src_tid, np.arange(b.n)).astype(np.intp)


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
        n = f.batch.n
        lane = (f.batch.linear_tid & np.uint32(31)).astype(np.int64)
        bval = (np.asarray(gb(f)).astype(np.int64) & 31) + np.zeros(n, dtype=np.int64)
        cval = np.asarray(gc(f)).astype(np.int64) + np.zeros(n, dtype=np.int64)
        clamp, segmask = cval & 31, (cval >> 8) & 31
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
        j = np.where(ok, j, lane)
        src = _warp_source(f, j)
        value = broadcast_full(ga(f), n)[src]
        put(f, value, m)
        if put_p is not None:
            put_p(f, ok, m)

    return shfl


def _ballot(f: Frame, pred: Value, m: Mask | None) -> npt.NDArray[np.uint32]:
    """Per thread: the bits of its warp's lanes whose ``pred`` holds among the active threads."""
    b = f.batch
    n = b.n
    votes = broadcast_full(np.asarray(pred, dtype=np.bool_), n) & (
        np.ones(n, dtype=np.bool_) if m is None else m
    )
    lane = (b.linear_tid & np.uint32(31)).astype(np.uint64)
    bits = np.where(votes, np.left_shift(np.uint64(1), lane), np.uint64(0))
    warp_key = (np.arange(n, dtype=np.int64) - b.linear_tid.astype(np.int64)) * 64 + (
        b.linear_tid >> np.uint32(5)
    ).astype(np.int64)
    _, inverse = np.unique(warp_key, return_inverse=True)
    sums = np.zeros(int(inverse.max()) + 1, dtype=np.uint64)
    np.add.at(sums, inverse, bits)
    out: npt.NDArray[np.uint32] = sums[inverse].astype(np.uint32)
    return out


def _c_vote(c: Compiler, ins: Instruction) -> Runner:
    mods = [m for m in ins.mods if m != "sync"]
    if "sync" not in ins.mods or not mods or mods[0] not in ("all", "any", "uni", "ballot"):
        raise UnsupportedError("vote.sync.{all,any,uni,ballot}")
    mode = mods[0]
    if len(ins.operands) != 3:
        raise UnsupportedError("operands")
    d, p, _member = ins.operands
    if not isinstance(p, Reg):
        raise UnsupportedError("a predicate operand")
    gp = c.pred(p)
    if mode == "ballot":
        if mods[1:] != ["b32"]:
            raise UnsupportedError("vote.sync.ballot.b32")
        put = c.write(d, DTYPES["u32"])
        return lambda f, m: put(f, _ballot(f, gp(f), m), m)
    if mods[1:] != ["pred"]:
        raise UnsupportedError(f"vote.sync.{mode}.pred")
    putp = c.write(d, DTYPES["pred"])

    def vote(f: Frame, m: Mask | None) -> None:
        p_ = gp(f)
        yes = _ballot(f, p_, m)
        active = _ballot(f, np.True_, m)
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
}
