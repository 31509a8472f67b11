"""Register liveness: what a kernel's register file really holds, and letting dead registers go.

nvcc writes PTX in near-SSA form: a register per value, so a kernel *declares* registers by the
thousand (NVIDIA's cudaTensorCoreGemm sample: 34,902) while only some dozens hold a value anyone
will read at any one point. The engine keeps a register as a NumPy array per batch, so what bounds a
batch's memory is the *live* registers. This module computes, per function, the classic backward
dataflow over the control-flow graph (``_program``'s basic blocks) and from it:

* for each instruction, the registers that die there (read or written there, read by no path after
  it before being written again); :func:`freeing_ops` wraps each plain instruction so that it drops
  them from the frame once it has run, and :func:`frees` has a fused run (``_fuse``) do the same after
  each of its instructions — unless threads of the same frame that wait elsewhere on the SIMT stack
  (a divergent path, a reconvergence point) may still read them;
* :func:`register_count`: a bound on the registers a frame holds at once, from where the frees
  happen (see its docstring). It is never more than the registers declared.

A register is *used* by every operand that names it except the destination(s); an instruction's
destinations (its first operand, for every opcode but those that have none) *kill* only when the
instruction is unguarded: a guarded write leaves the register as it was for threads whose guard is
false, so its old value stays live across it. Misreading a write as a read only keeps a register
longer; reads are never missed, since every register an operand names is a read unless it is the
destination of an opcode known to write there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, replace
from typing import Any

from ._compiler import PLAIN, Op
from ._fuse import Drop
from ._parse import Addr, Args, Instruction, Operand, Pair, Reg, TexAddr, Vec
from ._program import EXIT, FunctionCode
from ._state import Frame

__all__ = [
    "MAX_TRACKED",
    "Frees",
    "Liveness",
    "freeing_ops",
    "frees",
    "liveness",
    "register_count",
    "tracked",
]

#: opcodes whose first operand, when it is a register, is one they read (stores and reductions take an
#: address first; control flow, synchronization and hints write no register)
_NO_DESTINATION = frozenset(
    {
        "st",
        "red",
        "bar",
        "barrier",
        "bra",
        "brx",
        "call",
        "ret",
        "exit",
        "trap",
        "brkpt",
        "membar",
        "fence",
        "prefetch",
        "prefetchu",
        "cp",
        "stmatrix",
        "nanosleep",
        "griddepcontrol",
        "pmevent",
    }
)


def _registers(operand: Operand, declared: frozenset[str]) -> list[str]:
    if isinstance(operand, Reg):
        return [operand.name] if operand.name in declared else []
    if isinstance(operand, Addr):
        return _registers(operand.base, declared) if isinstance(operand.base, Reg) else []
    if isinstance(operand, Vec | Args):
        return [r for item in operand.items for r in _registers(item, declared)]
    if isinstance(operand, TexAddr):
        return _registers(operand.handle, declared) + _registers(operand.coords, declared)
    if isinstance(operand, Pair):
        return [r for item in (operand.first, operand.second) for r in _registers(item, declared)]
    return []


def _writes(ins: Instruction) -> bool:
    """Whether the first operand is a destination (an address first is memory, as for mbarrier.init
    and sust)."""
    return (
        ins.opcode not in _NO_DESTINATION
        and bool(ins.operands)
        and not isinstance(ins.operands[0], Addr | TexAddr)
    )


def uses_and_kills(ins: Instruction, declared: frozenset[str]) -> tuple[frozenset[str], frozenset[str]]:
    """The registers ``ins`` reads, and those it certainly overwrites for every thread that runs it."""
    uses: list[str] = []
    kills: list[str] = []
    operands: Sequence[Operand] = ins.operands
    if _writes(ins):
        written = _registers(operands[0], declared)
        operands = operands[1:]
        if ins.guard is None:
            kills = written
        else:
            uses += written  # threads whose guard is false keep the old value: it stays live
    for operand in operands:
        uses += _registers(operand, declared)
    if ins.guard is not None and ins.guard.name in declared:
        uses.append(ins.guard.name)
    return frozenset(uses), frozenset(kills) - frozenset(uses)


@dataclass(frozen=True, slots=True)
class Liveness:
    """One function's liveness: registers live on entry to each basic block, the registers dying at
    each instruction, and the most that are live at once."""

    block_live_in: tuple[frozenset[str], ...]
    block_live_out: tuple[frozenset[str], ...]
    block_start: tuple[int, ...]
    facts: tuple[tuple[frozenset[str], frozenset[str]], ...]  # pc -> (uses, kills)
    dying: tuple[tuple[str, ...], ...]  # pc -> registers that die there
    peak: int  # most registers live at once (an instruction's own operands included)
    declared: int


#: what a waiting entry at the middle of a block keeps: everything (never the case for the SIMT
#: stack's waiting entries, which resume at branch targets and reconvergence points)
_ALL: frozenset[str] = frozenset({"\0all"})


def liveness(code: FunctionCode) -> Liveness:
    """The backward dataflow over ``code``'s blocks, iterated to its fixed point."""
    declared = frozenset(code.function.registers)
    n = len(code.code)
    facts = [uses_and_kills(ins, declared) for ins in code.code]
    starts = code.block_start
    nb = len(starts)
    ends = [starts[b + 1] if b + 1 < nb else n for b in range(nb)]
    # per block: upward-exposed uses and kills
    gen: list[frozenset[str]] = []
    kill: list[frozenset[str]] = []
    for b in range(nb):
        live: set[str] = set()
        killed: set[str] = set()
        for pc in range(ends[b] - 1, starts[b] - 1, -1):
            uses, kills = facts[pc]
            live -= kills
            live |= uses
            killed |= kills
        gen.append(frozenset(live))
        kill.append(frozenset(killed))
    preds: list[list[int]] = [[] for _ in range(nb)]
    for b, outs in enumerate(code.successors):
        for s in outs:
            if s != EXIT:
                preds[s].append(b)
    live_in = [gen[b] for b in range(nb)]
    live_out: list[frozenset[str]] = [frozenset() for _ in range(nb)]
    work = list(range(nb - 1, -1, -1))
    queued = [True] * nb
    while work:
        b = work.pop()
        queued[b] = False
        out = frozenset().union(*(live_in[s] for s in code.successors[b] if s != EXIT))
        live_out[b] = out
        new = gen[b] | (out - kill[b])
        if new != live_in[b]:
            live_in[b] = new
            for p in preds[b]:
                if not queued[p]:
                    queued[p] = True
                    work.append(p)
    dying: list[tuple[str, ...]] = [()] * n
    peak = 0
    for b in range(nb):
        live = set(live_out[b])
        for pc in range(ends[b] - 1, starts[b] - 1, -1):
            uses, kills = facts[pc]
            touched = uses | kills
            dying[pc] = tuple(sorted(touched - live))
            peak = max(peak, len(live | touched))
            live -= kills
            live |= uses
    return Liveness(
        tuple(live_in), tuple(live_out), tuple(starts), tuple(facts), tuple(dying), peak, len(declared)
    )


@dataclass(frozen=True, slots=True)
class _Keeps:
    """Registers live where a waiting stack entry resumes (a block's first instruction); a pc that
    starts no block inside the function (the exit, -1) needs nothing, one inside a block everything."""

    block_live_in: tuple[frozenset[str], ...]
    block_start: tuple[int, ...]
    block_of: Sequence[int]

    def at(self, pc: int) -> frozenset[str]:
        if not 0 <= pc < len(self.block_of):
            return frozenset()
        block = self.block_of[pc]
        return self.block_live_in[block] if self.block_start[block] == pc else _ALL


#: the most (basic block x declared register) pairs a function's analysis may track: past it the
#: function keeps every declared register (its live sets, one per block, could hold that many names)
MAX_TRACKED = 1 << 20


def tracked(code: FunctionCode, above: int) -> bool:
    """Whether ``code`` lets its dead registers go: it declares more than ``above`` (fewer cost
    nothing worth the analysis) and its analysis stays within :data:`MAX_TRACKED`."""
    declared = len(code.function.registers)
    return declared > above and len(code.block_start) * declared <= MAX_TRACKED


#: opcodes the SIMT loop runs itself (``_compiler``'s kinds other than PLAIN): they free nothing
_CONTROL = frozenset({"bra", "brx", "call", "ret", "exit", "trap", "bar", "barrier"})


def register_count(code: FunctionCode, facts: Liveness | None = None) -> int:
    """How many registers a frame of ``code`` holds at most when its plain instructions free the
    registers dying at them (:func:`freeing_ops`, and :func:`frees` inside fused runs): never more
    than declared; from the parse alone, so the attributes ``sim`` reports and the bound its launches
    apply agree. At most what is live at an instruction with its own operands, plus the registers
    whose last reads are at instructions that free nothing — control flow, or a guarded instruction
    on its own (not fused with its neighbours) that none of its threads ran — which may stay until
    written again."""
    facts = facts or liveness(code)
    leaders = set(code.block_start)
    lingering: set[str] = set()
    n = len(code.code)
    for pc, ins in enumerate(code.code):
        alone = (pc in leaders or code.code[pc - 1].opcode in _CONTROL) and (
            pc + 1 >= n or pc + 1 in leaders or code.code[pc + 1].opcode in _CONTROL
        )
        if ins.opcode in _CONTROL or (ins.guard is not None and alone):
            lingering.update(facts.dying[pc])
    return min(facts.declared, facts.peak + len(lingering))


def freeing_ops(ops: list[Op], code: FunctionCode, facts: Liveness) -> list[Op]:
    """``ops`` with every plain op dropping the registers that die at it once it has run (a register a
    thread waiting elsewhere on the frame's SIMT stack may still read stays)."""
    out: list[Op] = []
    for pc, op in enumerate(ops):
        dead = facts.dying[pc]
        if op.kind != PLAIN or op.run is None or not dead:
            out.append(op)
            continue
        run = op.run
        free = _dropper(dead, facts, code.block_of)

        def freeing_run(f: Frame, m: Any, run: Any = run, free: Callable[[Frame], None] = free) -> None:
            run(f, m)
            free(f)

        out.append(replace(op, run=freeing_run))
    return out


@dataclass(frozen=True, slots=True)
class Frees:
    """For ``_fuse``: what a fused run does after instruction ``pc`` (calling it) — dropping the
    registers dying there, inline while nothing waits on the frame's stack, else through the dropper
    — and :meth:`survey`, which of any registers may go from a frame now."""

    droppers: dict[int, Drop]
    waiting_keeps: _Keeps

    def __call__(self, pc: int) -> Drop | None:
        return self.droppers.get(pc)

    def survey(self, names: tuple[str, ...]) -> Callable[[Frame], AbstractSet[str]]:
        """Which of ``names`` no thread waiting on the frame's SIMT stack reads where it resumes."""
        return _survey(names, self.waiting_keeps)


def frees(code: FunctionCode, facts: Liveness) -> Frees:
    """For ``_fuse``: the :class:`Frees` of ``code``."""
    droppers = {
        pc: Drop(dead, _dropper(dead, facts, code.block_of)) for pc, dead in enumerate(facts.dying) if dead
    }
    return Frees(droppers, _Keeps(facts.block_live_in, facts.block_start, code.block_of))


#: stack shapes a dropper remembers its answer for
_DECIDED = 64


def _dropper(dead: tuple[str, ...], facts: Liveness, block_of: Sequence[int]) -> Callable[[Frame], None]:
    # what a prepared kernel keeps: the blocks' live-in sets (not the per-instruction facts)
    going = _survey(dead, _Keeps(facts.block_live_in, facts.block_start, block_of))

    def drop(f: Frame) -> None:
        regs = f.regs
        for name in going(f):
            regs.pop(name, None)

    return drop


def _survey(names: tuple[str, ...], waiting_keeps: _Keeps) -> Callable[[Frame], AbstractSet[str]]:
    """Which of ``names`` may go from a frame now: all of them while nothing waits on its SIMT stack,
    else those no waiting entry reads where it resumes — decided once per shape of the stack (the pcs
    its waiting entries hold: a loop meets few)."""
    everything = frozenset(names)
    decided: dict[tuple[int, ...], frozenset[str]] = {}

    def going(f: Frame) -> AbstractSet[str]:
        waiting = f.stack
        if waiting is None or len(waiting) <= 1:
            return everything
        pcs = tuple([entry[0] for entry in waiting[:-1]])
        got = decided.get(pcs)
        if got is None:
            keep = [waiting_keeps.at(pc) for pc in pcs]
            got = frozenset(name for name in names if not any(name in k or _ALL is k for k in keep))
            if len(decided) >= _DECIDED:
                decided.clear()
            decided[pcs] = got
        return got

    return going
