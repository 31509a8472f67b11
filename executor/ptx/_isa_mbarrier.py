"""``mbarrier`` (split arrive/wait barriers in shared memory), ``cp.async.bulk`` and
``cp.async.mbarrier.arrive``: what nvcc 13 emits for ``cuda::barrier``, ``cuda::memcpy_async`` and
``cuda::pipeline`` on compute_80 and compute_90.

*The barrier word.* An mbarrier is an 8-byte object in shared memory whose layout the ISA leaves
opaque; the engine's own: bits 0-19 the arrivals still pending in the current phase, 20-39 the
arrivals each phase expects, 40-61 the transaction count (signed), bit 62 the current phase's parity,
bit 63 set once ``mbarrier.init`` has run. The *state* ``mbarrier.arrive`` returns is the word as it
was before the arrival, so ``test_wait``/``try_wait`` with it answer whether that phase has completed
(the parity moved on) and ``pending_count`` the arrivals it was still waiting for.

*Semantics* (PTX ISA, "Parallel Synchronization and Communication Instructions: mbarrier"): a phase
completes when its pending arrivals and its transaction count are both zero; then the parity flips,
pending is reset to the expected count and the transaction count to zero. ``arrive`` (by ``count``,
1 by default; ``.expect_tx`` raising the transaction count first), ``arrive_drop`` (also lowering the
expected count of later phases), ``expect_tx`` and ``complete_tx`` change it; ``.noComplete`` arrives
that would complete a phase are undefined. Threads arrive one after another in thread order (one
legal order of concurrent arrivals), each on the phase current at its turn. ``try_wait`` does not
suspend: the engine answers at once (a GPU may return false after its time limit too), so a
program waits in its own loop — on the engine every thread that reaches the same instruction has
arrived before any tests.

*Bulk copies* run at the instruction, like ``cp.async``: ``cp.async.bulk`` global to shared memory
signals its barrier's ``complete_tx`` with its byte count at once (a transaction count may go below
zero until the matching ``expect_tx``, as the ISA allows); shared to global (``.bulk_group``) is
complete at once, so ``cp.async.bulk.commit_group``/``wait_group`` wait for nothing.
``cp.async.mbarrier.arrive`` arrives at once (its prior ``cp.async`` copies are done): with
``.noinc`` it is an arrive, without it the ISA's increment before the arrive cancels it.

Undefined uses — a barrier used before ``init`` (or after ``inval``), more arrivals than pending, a
word outside shared memory, counts out of the ISA's range — end the launch with
``CUDA_ERROR_LAUNCH_FAILED``, sticky as a GPU's fault. A ``.shared::cluster`` address (or a generic one
``mapa`` made) may name a barrier or a copy's destination in another block of the cluster: each word
is that block's (``_cluster``), and threads of different blocks on one barrier arrive on the same
word; ``.multicast::cluster`` copies are not implemented. A bulk copy larger than the block's shared memory
is a fault too, and so (refused, not undefined) are one instruction's copies moving more bytes in all
than every block of the batch holds: the engine's temporaries are as large as the copy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from protocol import CUresult

from ._cluster import resolve_shared
from ._compiler import (
    Compiler,
    Getter,
    InstructionCompiler,
    Mask,
    Runner,
    Setter,
    UnsupportedError,
    access,
    active_rows,
    select_rows,
)
from ._memory import SHARED_WINDOW, WINDOW_BITS, check_aligned, gather_device, scatter_device
from ._numeric import DTYPES
from ._parse import Instruction, Sym
from ._state import Frame, KernelFaultError

__all__ = ["MBARRIER", "compile_async", "compile_cp"]

_PENDING_BITS = 20
_MAX_COUNT = (1 << _PENDING_BITS) - 1
_TX_SHIFT, _TX_BITS = 40, 22
_TX_LIMIT = (1 << 20) - 1  # the ISA's range of a transaction count: [-(2^20 - 1), 2^20 - 1]
_PHASE = 1 << 62
_VALID = 1 << 63
_SPACE_MODS = {"shared", "shared::cta"}
_HINTS = {"release", "acquire", "relaxed", "cta", "cluster", "b64"}


def _fault(message: str) -> KernelFaultError:
    return KernelFaultError(CUresult.CUDA_ERROR_LAUNCH_FAILED, message)


class _Word:
    """One barrier's word, unpacked; ``pack`` writes it back."""

    __slots__ = ("expected", "pending", "phase", "tx")

    def __init__(self, word: int, what: str) -> None:
        if not word & _VALID:
            raise _fault(f"{what} on an mbarrier that was never initialized (or was invalidated)")
        self.pending = word & _MAX_COUNT
        self.expected = (word >> _PENDING_BITS) & _MAX_COUNT
        tx = (word >> _TX_SHIFT) & ((1 << _TX_BITS) - 1)
        self.tx = tx - (1 << _TX_BITS) if tx >> (_TX_BITS - 1) else tx
        self.phase = bool(word & _PHASE)

    def pack(self) -> int:
        tx = self.tx & ((1 << _TX_BITS) - 1)
        return (
            _VALID
            | (_PHASE if self.phase else 0)
            | (tx << _TX_SHIFT)
            | (self.expected << _PENDING_BITS)
            | self.pending
        )

    def transact(self, delta: int, what: str) -> None:
        self.tx += delta
        if abs(self.tx) > _TX_LIMIT:
            raise _fault(f"{what}: the mbarrier's transaction count {self.tx} leaves the ISA's range")

    def arrive(self, count: int, what: str, *, complete: bool = True, drop: bool = False) -> None:
        if count > self.pending:
            raise _fault(f"{what}: {count} arrivals on an mbarrier phase with {self.pending} pending")
        self.pending -= count
        if drop:
            self.expected -= count
        if not complete and self.pending == 0 and self.tx == 0:
            raise _fault(f"{what}: a .noComplete arrival completed the phase")
        self.settle()

    def settle(self) -> None:
        if self.pending == 0 and self.tx == 0:
            self.phase = not self.phase
            self.pending = self.expected


#: per thread: (word, thread's argument) -> the thread's result (or None); edits the word in place
Step = Callable[[_Word, int], int | None]


def _barrier_address(c: Compiler, ins: Instruction, operand: Any) -> Getter:
    """The barrier's shared-memory offset: a ``.shared``/``.shared::cta`` address, or a generic one that
    must lie in the shared window."""
    # a .shared::cluster address is a shared one whose rank bits may name another block (_cluster)
    space = "shared" if any(m.startswith("shared") for m in ins.mods) else "generic"
    get, _ = c.address(operand, space)
    if space == "shared":
        return get

    def shared_offset(f: Frame) -> Any:
        addrs = np.asarray(get(f), dtype=np.uint64)
        if np.any((addrs >> np.uint64(WINDOW_BITS)) != 1):
            raise _fault("an mbarrier operation on an address outside shared memory")
        return addrs - np.uint64(SHARED_WINDOW)

    return shared_offset


def _on_barriers(
    f: Frame, m: Mask | None, addr: Getter, arg: Getter | None, step: Step, what: str
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.uint64]] | None:
    """Run ``step`` for each active thread in thread order on its block's barrier word; returns the
    rows and the results (None when no thread is active)."""
    n = f.batch.n
    rows = active_rows(m, n)
    if not rows.size:
        return None
    offsets = select_rows(addr(f), rows, n).astype(np.uint64)
    check_aligned(offsets, 8, "shared")
    args = select_rows(arg(f), rows, n).astype(np.int64) if arg is not None else np.zeros(rows.size, np.int64)
    if f.batch.cluster is None:
        keys = f.batch.block_index[rows].astype(np.uint64) << np.uint64(32) | offsets
    else:  # the block each address names (mapa: maybe another one of the cluster) and its offset there
        owners, plain = resolve_shared(f.batch, rows, offsets)  # a rank outside the cluster faults
        keys = owners.astype(np.uint64) << np.uint64(32) | plain
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    words = access(f, "shared", rows[first], offsets[first], 8, None).view(np.uint64).reshape(-1)
    unpacked: dict[int, _Word] = {}
    out = np.zeros(rows.size, dtype=np.uint64)
    for j, (g, a) in enumerate(zip(inverse.tolist(), args.tolist(), strict=True)):
        word = unpacked.get(g)
        if word is None:
            raw = int(words[g])
            if step is _init:  # init reads nothing: the word may be anything before it
                raw = _VALID
            word = unpacked[g] = _Word(raw, what)
        result = step(word, a)
        if result is not None:
            out[j] = result
    packed = np.array([unpacked[g].pack() for g in range(len(first))], dtype=np.uint64)
    access(f, "shared", rows[first], offsets[first], 8, packed.view(np.uint8).reshape(-1, 8))
    return rows, out


def _init(word: _Word, count: int) -> None:
    if not 1 <= count <= _MAX_COUNT:
        raise _fault(f"mbarrier.init with a count of {count} (the ISA allows 1 to {_MAX_COUNT})")
    word.pending = word.expected = count
    word.tx, word.phase = 0, False


def _parts(ins: Instruction) -> tuple[str, set[str]]:
    mods = [m for m in ins.mods if m not in _HINTS and m not in _SPACE_MODS and not m.startswith("shared::")]
    if "b64" not in ins.mods:
        raise UnsupportedError("mbarrier operations on .b64 barriers")
    if not mods:
        raise UnsupportedError("mbarrier without an operation")
    return mods[0], set(mods[1:])


def _c_mbarrier(c: Compiler, ins: Instruction) -> Runner:
    op, rest = _parts(ins)
    what = ins.text
    ops = list(ins.operands)
    u32, u64 = DTYPES["u32"], DTYPES["u64"]
    if op == "pending_count":
        if rest or len(ops) != 2:
            raise UnsupportedError("mbarrier.pending_count.b64 count, state")
        put32, state = c.write(ops[0], u32), c.read(ops[1], u64)
        return lambda f, m: put32(
            f, (np.asarray(state(f), dtype=np.uint64) & np.uint64(_MAX_COUNT)).astype(np.uint32), m
        )
    if op == "inval":
        if rest or len(ops) != 1:
            raise UnsupportedError("mbarrier.inval [addr]")
        return _invalidate(_barrier_address(c, ins, ops[0]))
    if op in ("init", "expect_tx", "complete_tx"):
        if rest or len(ops) != 2:
            raise UnsupportedError(f"mbarrier.{op} [addr], value")
        addr = _barrier_address(c, ins, ops[0])
        arg = c.read(ops[1], u32)
        step: Step
        if op == "init":
            step = _init
        else:
            sign = 1 if op == "expect_tx" else -1

            def step(word: _Word, tx: int) -> None:
                word.transact(sign * tx, what)
                word.settle()

        return _each(addr, arg, step, what)
    if op in ("arrive", "arrive_drop"):
        return _arrive(c, ins, op, rest, ops, what)
    if op in ("test_wait", "try_wait"):
        parity = "parity" in rest
        if rest - {"parity"} or len(ops) not in (3, 4):
            raise UnsupportedError(f"mbarrier.{op}{{.parity}} waitComplete, [addr], state{{, timeHint}}")
        put_p = c.write(ops[0], DTYPES["pred"])
        addr = _barrier_address(c, ins, ops[1])
        token = c.read(ops[2], u32 if parity else u64)
        if len(ops) == 4:
            c.read(ops[3], u32)  # a time hint: the engine never suspends

        def wait(f: Frame, m: Mask | None) -> None:
            def step(word: _Word, _: int) -> int:
                return int(word.phase)

            done = _on_barriers(f, m, addr, None, step, what)
            if done is None:
                return
            rows, phase = done
            n = f.batch.n
            asked = select_rows(token(f), rows, n).astype(np.uint64)
            asked_phase = asked & np.uint64(1) if parity else (asked >> np.uint64(62)) & np.uint64(1)
            full = np.zeros(n, dtype=np.bool_)
            full[rows] = phase != asked_phase  # the asked phase completed: the parity moved past it
            put_p(f, full, m)

        return wait
    raise UnsupportedError(f"mbarrier.{op}")


def _each(addr: Getter, arg: Getter | None, step: Step, what: str) -> Runner:
    def run(f: Frame, m: Mask | None) -> None:
        _on_barriers(f, m, addr, arg, step, what)

    return run


def _invalidate(addr: Getter) -> Runner:
    def inval(f: Frame, m: Mask | None) -> None:
        n = f.batch.n
        rows = active_rows(m, n)
        if rows.size:
            offsets = select_rows(addr(f), rows, n).astype(np.uint64)
            access(f, "shared", rows, offsets, 8, np.zeros((rows.size, 8), dtype=np.uint8))

    return inval


def _arrive(c: Compiler, ins: Instruction, op: str, rest: set[str], ops: list[Any], what: str) -> Runner:
    expect = "expect_tx" in rest
    no_complete = "noComplete" in rest
    if rest - {"expect_tx", "noComplete"} or len(ops) not in (2, 3) or (expect and len(ops) != 3):
        raise UnsupportedError(f"mbarrier.{op}{{.expect_tx,.noComplete}} state, [addr]{{, count}}")
    sink = isinstance(ops[0], Sym) and ops[0].name == "_"
    put: Setter | None = None if sink else c.write(ops[0], DTYPES["u64"])
    addr = _barrier_address(c, ins, ops[1])
    arg = c.read(ops[2], DTYPES["u32"]) if len(ops) == 3 else None
    drop = op == "arrive_drop"

    def step(word: _Word, value: int) -> int:
        before = word.pack()
        if expect:
            word.transact(value, what)
            count = 1
        else:
            count = value if arg is not None else 1
        if not 1 <= count <= _MAX_COUNT:
            raise _fault(f"{what}: an arrival count of {count}")
        word.arrive(count, what, complete=not no_complete, drop=drop)
        return before

    def arrive(f: Frame, m: Mask | None) -> None:
        done = _on_barriers(f, m, addr, arg, step, what)
        if done is None or put is None:
            return
        rows, states = done
        full = np.zeros(f.batch.n, dtype=np.uint64)
        full[rows] = states
        put(f, full, m)

    return arrive


# -- cp.async.bulk and cp.async.mbarrier.arrive ---------------------------------------------------


def _c_mbarrier_arrive_after_cp(c: Compiler, ins: Instruction) -> Runner:
    """``cp.async.mbarrier.arrive{.noinc}{.shared{::cta}}.b64 [addr]``: the thread's earlier cp.async
    copies are done (they ran at their instructions): ``.noinc`` arrives now; without it the ISA's
    increment of the pending count before the arrival cancels it — nothing changes."""
    mods = [m for m in ins.mods if m not in ("async", "mbarrier", "arrive", "b64") and m not in _SPACE_MODS]
    if mods not in ([], ["noinc"]) or len(ins.operands) != 1:
        raise UnsupportedError("cp.async.mbarrier.arrive{.noinc}.shared.b64 [addr]")
    addr = _barrier_address(c, ins, ins.operands[0])
    what = ins.text
    if not mods:

        def check(word: _Word, _: int) -> None:
            return None  # reads the word: a barrier never initialized still faults

        return _each(addr, None, check, what)

    def step(word: _Word, _: int) -> None:
        word.arrive(1, what)

    return _each(addr, None, step, what)


def _c_bulk(c: Compiler, ins: Instruction) -> Runner:
    """``cp.async.bulk`` between global and shared memory, or from this block's shared memory to another
    block's of the cluster, at the instruction."""
    mods = [m for m in ins.mods if m not in ("async", "bulk") and not m.startswith("L2::")]
    hint = any(m.startswith("L2::cache_hint") for m in ins.mods)
    ops = list(ins.operands)
    if mods in (["commit_group"], ["wait_group"], ["wait_group", "read"]):
        return lambda f, m: None  # every bulk copy is complete at its instruction
    if mods[:1] == ["prefetch"]:
        if mods != ["prefetch", "global"] or len(ops) not in (2, 3):
            raise UnsupportedError("cp.async.bulk.prefetch.L2.global [src], size")
        return lambda f, m: None  # a hint: no effect, no fault
    to_shared = mods in (
        ["shared::cluster", "global", "mbarrier::complete_tx::bytes"],
        ["shared::cta", "global", "mbarrier::complete_tx::bytes"],
    )
    # shared memory of this block to another's of the cluster (distributed shared memory, _cluster)
    within = mods == ["shared::cluster", "shared::cta", "mbarrier::complete_tx::bytes"]
    to_shared = to_shared or within
    to_global = mods == ["global", "shared::cta", "bulk_group"]
    if not (to_shared or to_global) or len(ops) != (4 if to_shared else 3) + hint:
        raise UnsupportedError(
            "cp.async.bulk.shared::cta.global.mbarrier::complete_tx::bytes [dst], [src], size, [mbar]; "
            "cp.async.bulk.shared::cluster.shared::cta.mbarrier::complete_tx::bytes [dst], [src], size, "
            "[mbar]; cp.async.bulk.global.shared::cta.bulk_group [dst], [src], size"
        )
    src_space = "shared" if within or not to_shared else "global"
    dst, _ = c.address(ops[0], "shared" if to_shared else "global")
    src, _ = c.address(ops[1], src_space)
    size = c.read(ops[2], DTYPES["u32"])
    if hint:
        c.read(ops[-1], DTYPES["u64"])  # a cache policy: a hint
    mbar = _barrier_address(c, ins, ops[3]) if to_shared else None
    what = ins.text

    def bulk(f: Frame, m: Mask | None) -> None:
        n = f.batch.n
        rows = active_rows(m, n)
        if not rows.size:
            return
        sizes = select_rows(size(f), rows, n).astype(np.int64)
        if np.any(sizes % 16) or np.any(sizes <= 0):
            raise _fault(f"{what}: a bulk copy's size must be a positive multiple of 16")
        # a copy cannot fit a block's shared memory past its size, nor move more than the batch's in
        # all (threads would overlap); checked first: the byte columns are as large as the copy
        width, total = f.batch.shared.shape[1], int(sizes.sum())
        if int(sizes.max()) > width or total > f.batch.shared.size:
            raise _fault(
                f"{what}: bulk copies of {total} bytes ({int(sizes.max())} at most per thread) "
                f"past the block's {width} bytes of shared memory or the "
                f"{f.batch.shared.size} of every block of the batch"
            )
        dsts = select_rows(dst(f), rows, n).astype(np.uint64)
        srcs = select_rows(src(f), rows, n).astype(np.uint64)
        check_aligned(dsts, 16, "shared" if to_shared else "global")
        check_aligned(srcs, 16, src_space)
        for part in np.unique(sizes).tolist():
            pick = sizes == part
            if within:
                data = _shared_bytes(f, rows[pick], srcs[pick], part, None)
                _shared_bytes(f, rows[pick], dsts[pick], part, data)
            elif to_shared:
                data = gather_device(f.batch.memory, srcs[pick], part)
                _shared_bytes(f, rows[pick], dsts[pick], part, data)
            else:
                loaded = _shared_bytes(f, rows[pick], srcs[pick], part, None)
                scatter_device(f.batch.memory, dsts[pick], loaded)
        if mbar is not None:

            def step(word: _Word, tx: int) -> None:
                word.transact(-tx, what)
                word.settle()

            _on_barriers(f, m, mbar, size, step, what)

    return bulk


def _shared_bytes(
    f: Frame,
    rows: npt.NDArray[np.intp],
    offsets: npt.NDArray[np.uint64],
    size: int,
    data: npt.NDArray[np.uint8] | None,
) -> npt.NDArray[np.uint8]:
    """Load or store ``size`` bytes per thread of its block's shared memory, in 8-byte words (checked)."""
    words = size // 8
    cols = (offsets[:, None] + np.arange(words, dtype=np.uint64) * np.uint64(8)).reshape(-1)
    owners = np.repeat(rows, words)
    if data is None:
        return access(f, "shared", owners, cols, 8, None).reshape(-1, size)
    access(f, "shared", owners, cols, 8, np.ascontiguousarray(data).reshape(-1, 8))
    return data


_ASYNC_MODS = {"async", "weak", "relaxed", "cluster", "shared::cluster", "mbarrier::complete_tx::bytes"}


def compile_async(c: Compiler, ins: Instruction, plain: InstructionCompiler) -> Runner:
    """``st.async`` / ``red.async`` (compute_90): a store or a reduction into shared memory of a block
    of the cluster that signals ``complete_tx`` with its bytes on an mbarrier of that block, both at
    the instruction. ``st.async{.weak}.shared::cluster.mbarrier::complete_tx::bytes{.v2,.v4}.type [a], b,
    [mbar]``; ``red.async.relaxed.cluster.shared::cluster.mbarrier::complete_tx::bytes.op.type [a], b,
    [mbar]``. The access itself is ``plain``'s ``st``/``red`` on ``.shared::cluster``; the threads'
    completions arrive in thread order, as the engine's other arrivals do."""
    required = {"async", "shared::cluster", "mbarrier::complete_tx::bytes"}
    if not required <= set(ins.mods) or len(ins.operands) != 3:
        raise UnsupportedError(
            f"{ins.opcode}.async.shared::cluster.mbarrier::complete_tx::bytes [a], b, [mbar]"
        )
    rest = tuple(m for m in ins.mods if m not in _ASYNC_MODS)
    if ins.opcode == "red" and "relaxed" not in ins.mods:
        raise UnsupportedError("red.async.relaxed.cluster")
    access_ins = Instruction(ins.opcode, ("shared::cluster", *rest), ins.operands[:2], None, ins.line)
    run_access = plain(c, access_ins)
    mbar = _barrier_address(c, ins, ins.operands[2])
    types = [m for m in rest if m in DTYPES]
    if len(types) != 1:
        raise UnsupportedError(f"{ins.opcode}.async with one type")
    vec = 4 if "v4" in rest else 2 if "v2" in rest else 1
    nbytes = np.uint32(DTYPES[types[0]].itemsize * vec)
    what = ins.text

    def step(word: _Word, tx: int) -> None:
        word.transact(-tx, what)
        word.settle()

    def run(f: Frame, m: Mask | None) -> None:
        run_access(f, m)
        _on_barriers(f, m, mbar, lambda f: nbytes, step, what)

    return run


def compile_cp(c: Compiler, ins: Instruction, plain: InstructionCompiler) -> Runner:
    """``cp``: the bulk forms and ``cp.async.mbarrier.arrive`` here, ``cp.async`` itself by ``plain``."""
    if ins.mods[:2] == ("async", "bulk"):
        return _c_bulk(c, ins)
    if ins.mods[:2] == ("async", "mbarrier"):
        return _c_mbarrier_arrive_after_cp(c, ins)
    return plain(c, ins)


MBARRIER: dict[str, InstructionCompiler] = {"mbarrier": _c_mbarrier}
