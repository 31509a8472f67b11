"""Named barriers with a thread count: ``bar.sync a, b`` / ``barrier.sync a, b`` and ``bar.arrive a, b``
/ ``barrier.arrive a, b`` — how warp-specialized code (CUTLASS's ``NamedBarrier``) hands a tile from
producer warps to consumer warps.

*Semantics* (PTX ISA, ``bar``): barrier ``a`` (0-15) of the block completes when ``b`` threads have
arrived — each warp that executes the instruction counts its warp size — and then starts over;
``bar.arrive`` arrives without waiting, ``bar.sync`` waits for the completion. ``b`` must be a
positive multiple of the warp size and the same for every arrival of one phase (else undefined:
``CUDA_ERROR_LAUNCH_FAILED`` here).

*On the engine* each block's barrier keeps the threads counted in its phase and its generation, and
each thread the generation it waits in. A ``bar.sync`` whose barrier has not completed for every
block of its threads raises :class:`MustWaitError`: the machine lets the sibling path of the SIMT
stack (the producers, usually) run first and retries the instruction; its threads do not arrive
twice. With no such path to run the threads would wait forever, and the launch ends with
``CUDA_ERROR_LAUNCH_FAILED``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from protocol import CUresult

from ._compiler import PLAIN, WAIT, Compiler, Getter, Mask, Op, Runner, UnsupportedError, active_rows
from ._isa_warp import warp_groups
from ._numeric import DTYPES
from ._parse import Imm, Instruction, Reg
from ._state import Batch, Frame, KernelFaultError, MustWaitError

__all__ = ["BARRIERS", "named_barrier"]

#: the block's named barriers (``a`` in 0..15)
BARRIERS = 16
_WARP = 32
_STATE = ("bar", "named")


class _Barriers:
    """One batch's named barriers: per block and barrier the threads counted and expected in the
    current phase and the phases completed; per thread the phase it waits in (-1: none)."""

    def __init__(self, batch: Batch) -> None:
        blocks = batch.n // batch.block_threads
        self.counted = np.zeros((blocks, BARRIERS), np.int64)
        self.expected = np.zeros((blocks, BARRIERS), np.int64)
        self.generation = np.zeros((blocks, BARRIERS), np.int64)
        self.waiting = np.full((batch.n, BARRIERS), -1, np.int64)


def _state(batch: Batch) -> _Barriers:
    state = batch.derived.get(_STATE)
    if state is None:
        state = batch.derived[_STATE] = _Barriers(batch)
    assert isinstance(state, _Barriers)
    return state


def _fault(message: str) -> KernelFaultError:
    return KernelFaultError(CUresult.CUDA_ERROR_LAUNCH_FAILED, message)


def named_barrier(c: Compiler, ins: Instruction, guard: Getter | None) -> Op:
    """``bar{.sync,.arrive} a, b`` and ``barrier{.sync,.arrive}{.aligned} a, b``."""
    mods = [m for m in ins.mods if m != "aligned"]
    if mods not in ([], ["sync"], ["arrive"]) or len(ins.operands) != 2:
        raise UnsupportedError("bar{.sync,.arrive} a, b with a barrier id and a thread count")
    ident, count = ins.operands
    if not isinstance(ident, Imm | Reg) or not isinstance(count, Imm | Reg):
        raise UnsupportedError("a barrier id and a thread count: registers or immediates")
    get_id, get_count = c.read(ident, DTYPES["u32"]), c.read(count, DTYPES["u32"])
    if mods == ["arrive"]:
        return Op(PLAIN, _arrive(ins.text, get_id, get_count), guard, ins.line, ins.text)
    return Op(WAIT, _sync(ins.text, get_id, get_count), guard, ins.line, ins.text)


def _operands(
    f: Frame, rows: npt.NDArray[np.intp], get_id: Getter, get_count: Getter, text: str
) -> tuple[int, int]:
    """The barrier id and thread count, uniform over the arriving threads as the ISA requires."""
    n = f.batch.n
    ids = np.broadcast_to(np.asarray(get_id(f), dtype=np.int64), (n,))[rows]
    counts = np.broadcast_to(np.asarray(get_count(f), dtype=np.int64), (n,))[rows]
    ident, count = int(ids[0]), int(counts[0])
    if (ids != ident).any() or (counts != count).any():
        raise _fault(f"{text}: threads arrive with different barrier ids or thread counts")
    if not 0 <= ident < BARRIERS:
        raise _fault(f"{text}: barrier {ident} (the ISA has {BARRIERS})")
    if count <= 0 or count % _WARP or count > f.batch.block_threads + _WARP - 1:
        raise _fault(
            f"{text}: a thread count of {count} (a positive multiple of the warp size, at most the block's)"
        )
    return ident, count


def _arrive_rows(
    f: Frame, state: _Barriers, rows: npt.NDArray[np.intp], ident: int, count: int, text: str
) -> None:
    """The warps of ``rows`` arrive on barrier ``ident`` of their blocks; completed phases start over."""
    group, _ = warp_groups(f)
    one_per_warp = rows[np.unique(group[rows], return_index=True)[1]]  # each warp counts its warp size
    per_block = np.bincount(f.batch.block_index[one_per_warp], minlength=state.counted.shape[0])
    touched = per_block > 0
    expected = state.expected[:, ident]
    clash = touched & (state.counted[:, ident] > 0) & (expected != count)
    if clash.any():
        raise _fault(
            f"{text}: arrivals with thread counts {int(expected[clash][0])} and {count} in one phase"
        )
    expected[touched] = count
    state.counted[:, ident] += per_block * _WARP
    done = touched & (state.counted[:, ident] >= count)
    state.generation[done, ident] += 1
    state.counted[done, ident] = 0


def _arrive(text: str, get_id: Getter, get_count: Getter) -> Runner:
    def arrive(f: Frame, m: Mask | None) -> None:
        rows = active_rows(m, f.batch.n)
        if not rows.size:
            return
        ident, count = _operands(f, rows, get_id, get_count, text)
        _arrive_rows(f, _state(f.batch), rows, ident, count, text)

    return arrive


def _sync(text: str, get_id: Getter, get_count: Getter) -> Runner:
    def sync(f: Frame, m: Mask | None) -> None:
        batch = f.batch
        rows = active_rows(m, batch.n)
        if not rows.size:
            return
        ident, count = _operands(f, rows, get_id, get_count, text)
        state = _state(batch)
        waiting: Any = state.waiting[:, ident]
        new = rows[waiting[rows] < 0]  # the threads not yet counted (a retry does not count them again)
        if new.size:
            waiting[new] = state.generation[batch.block_index[new], ident]
            _arrive_rows(f, state, new, ident, count, text)
        if (state.generation[batch.block_index[rows], ident] <= waiting[rows]).any():
            raise MustWaitError(
                f"{text}: barrier {ident} waits for {count} threads of a block, and the others it needs are "
                "on a path of the SIMT stack that the engine cannot run first (or never arrive)"
            )
        waiting[rows] = -1

    return sync
