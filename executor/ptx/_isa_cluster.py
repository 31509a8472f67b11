"""Clusters and the block's reserved shared memory: the special registers, ``barrier.cluster``,
``mapa`` and ``getctarank`` (``_cluster`` holds the launch's shape and the address scheme).

*Special registers.* ``%cluster_ctaid``/``%cluster_nctaid`` (the block in its cluster and the cluster's
shape), ``%clusterid``/``%nclusterid`` (the cluster in the grid), ``%cluster_ctarank``/
``%cluster_nctarank`` (x fastest) and ``%is_explicit_cluster``; an ordinary launch answers a cluster of
one block. ``%reserved_smem_offset_{begin,end,cap,0,1}`` place :data:`RESERVED_SMEM_BYTES` of shared
memory that the block reserves for the system — cooperative_groups keeps the barriers and the
exchange slots of its multi-warp tiles there (at least 288 bytes at ``%reserved_smem_offset_1``) —
after the kernel's static shared variables, laid out only for kernels that read them.

``elect.sync`` (compute_90) is here too: cooperative_groups' ``invoke_one`` elects a warp's leader with it.

*barrier.cluster* (PTX ISA: "wait for all non-exited threads of the cluster to perform
``barrier.cluster.arrive``"). Each thread counts its arrivals and waits; a wait needs every thread of
its cluster that has not exited (or waits, in the kernel's own frame, at an unconditional ``exit``) to
have arrived for the same phase. The engine runs a batch's threads in lockstep on one SIMT stack and
cannot leave a waiting path for another: a wait that other threads of the cluster have not yet
arrived for — they are on another path — ends the launch with ``CUDA_ERROR_LAUNCH_FAILED``, as a
barrier in divergent code does; so do an arrival twice without a wait and a wait without an arrival
(undefined in the ISA).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from protocol import CUresult

from ._cluster import RANK_SHIFT, resolve_shared
from ._compiler import (
    PLAIN,
    WAIT,
    Compiler,
    Getter,
    InstructionCompiler,
    Mask,
    Op,
    Runner,
    UnsupportedError,
    active_rows,
)
from ._isa_warp import warp_groups
from ._memory import SHARED_WINDOW, WINDOW_BITS, illegal
from ._numeric import DTYPES
from ._parse import Instruction, Pair, Reg
from ._program import FunctionCode
from ._state import Batch, Frame, KernelFaultError, MustWaitError

__all__ = [
    "CLUSTER",
    "RESERVED_SMEM",
    "RESERVED_SMEM_BYTES",
    "cluster_barrier",
    "reads_reserved_smem",
    "special_register",
]

#: the layout's name for the reserved region (a predefined identifier: no variable can have it)
RESERVED_SMEM = "%reserved_smem_offset_begin"
#: the reserved shared memory per block, as a GPU's ``cudaDevAttrReservedSharedMemoryPerBlock``
RESERVED_SMEM_BYTES = 1024
_RESERVED = {
    "%reserved_smem_offset_begin": 0,
    "%reserved_smem_offset_0": 0,
    "%reserved_smem_offset_1": RESERVED_SMEM_BYTES // 2,
    "%reserved_smem_offset_end": RESERVED_SMEM_BYTES,
}
_AXES = {"x": 0, "y": 1, "z": 2}
_U32 = np.uint32


def reads_reserved_smem(code: FunctionCode) -> bool:
    """Whether ``code`` reads a ``%reserved_smem_offset_*`` register (its kernel then reserves the region)."""
    return any(
        isinstance(o, Reg) and o.name.startswith("%reserved_smem_offset")
        for ins in code.code
        for o in ins.operands
    )


def special_register(c: Compiler, name: str) -> Getter | None:
    """The getter of a cluster or reserved-shared-memory special register, ``None`` for another name."""
    if name in _RESERVED or name == "%reserved_smem_offset_cap":
        begin = c.layout.shared.get(RESERVED_SMEM)
        if begin is None:
            raise UnsupportedError(f"special register {name} in a function its kernel does not reach")
        value = _U32(RESERVED_SMEM_BYTES if name.endswith("_cap") else begin + _RESERVED[name])
        return lambda f: value
    if name == "%is_explicit_cluster":
        return lambda f: np.bool_(f.batch.cluster is not None)
    if name == "%cluster_ctarank":
        return _rank
    if name == "%cluster_nctarank":
        return lambda f: _U32(f.batch.cluster.size if f.batch.cluster is not None else 1)
    base, _, axis_name = name.partition(".")
    axis = _AXES.get(axis_name, -1)
    if axis < 0:
        return None
    if base == "%cluster_ctaid":
        return lambda f: f.batch.ctaid[axis] % _dim(f.batch, axis)
    if base == "%cluster_nctaid":
        return lambda f: _dim(f.batch, axis)
    if base == "%clusterid":
        return lambda f: f.batch.ctaid[axis] // _dim(f.batch, axis)
    if base == "%nclusterid":
        return lambda f: _U32(f.batch.grid_dim[axis]) // _dim(f.batch, axis)
    return None


def _dim(batch: Batch, axis: int) -> Any:
    return _U32(batch.cluster.dim[axis] if batch.cluster is not None else 1)


def _rank(f: Frame) -> Any:
    cluster = f.batch.cluster
    if cluster is None:
        return _U32(0)
    return (f.batch.block_index % cluster.size).astype(_U32)


# -- barrier.cluster ----------------------------------------------------------------------------

#: ``Batch.derived`` key of the threads' arrival and wait counts
_COUNTS = ("barrier.cluster", "counts")


def _fault(message: str) -> KernelFaultError:
    return KernelFaultError(CUresult.CUDA_ERROR_LAUNCH_FAILED, message)


def cluster_barrier(c: Compiler, ins: Instruction, guard: Getter | None) -> Op:
    """``barrier.cluster.arrive{.release,.relaxed}{.aligned}`` /
    ``barrier.cluster.wait{.acquire}{.aligned}``."""
    mods = [m for m in ins.mods if m != "aligned"]
    if ins.operands or mods[:1] != ["cluster"] or len(mods) > 3:
        raise UnsupportedError("barrier.cluster.arrive{.release,.relaxed} / barrier.cluster.wait{.acquire}")
    kind, sem = mods[1] if len(mods) > 1 else "", mods[2:]
    if kind == "arrive" and sem in ([], ["release"], ["relaxed"]):
        return Op(PLAIN, _arrive(ins.text), guard, ins.line, ins.text)
    if kind == "wait" and sem in ([], ["acquire"]):
        # threads of the kernel's own frame waiting at an unconditional exit count as exited
        exits = (
            frozenset(
                pc for pc, i in enumerate(c.code.code) if i.opcode in ("exit", "ret") and i.guard is None
            )
            if c.fn.kind == "entry"
            else frozenset()
        )
        return Op(WAIT, _wait(ins.text, exits), guard, ins.line, ins.text)
    raise UnsupportedError("barrier.cluster.arrive{.release,.relaxed} / barrier.cluster.wait{.acquire}")


def _counts(batch: Batch) -> tuple[Any, Any]:
    counts = batch.derived.get(_COUNTS)
    if counts is None:
        counts = batch.derived[_COUNTS] = (np.zeros(batch.n, np.int64), np.zeros(batch.n, np.int64))
    return counts


def _arrive(text: str) -> Runner:
    def arrive(f: Frame, m: Mask | None) -> None:
        arrivals, waits = _counts(f.batch)
        rows = active_rows(m, f.batch.n)
        if (arrivals[rows] > waits[rows]).any():
            raise _fault(f"{text}: a thread arrived twice at the cluster barrier without waiting")
        arrivals[rows] += 1

    return arrive


def _wait(text: str, exits: frozenset[int]) -> Runner:
    def wait(f: Frame, m: Mask | None) -> None:
        batch = f.batch
        arrivals, waits = _counts(batch)
        rows = active_rows(m, batch.n)
        if (arrivals[rows] != waits[rows] + 1).any():
            raise _fault(f"{text}: a thread waits at the cluster barrier without having arrived")
        size = batch.cluster.size if batch.cluster is not None else 1
        cluster = batch.block_index // size if size > 1 else batch.block_index
        phase = np.zeros(int(cluster[-1]) + 1, np.int64)
        np.maximum.at(phase, cluster[rows], arrivals[rows])
        done = batch.exited | (arrivals >= phase[cluster])
        if exits and f.stack:
            above = np.zeros(batch.n, dtype=np.bool_)
            for pc, _, mask in reversed(f.stack):
                if pc in exits:
                    done |= mask & ~above
                above |= mask
        if not done.all():  # the machine runs the sibling path first, else the launch fails
            t = int(np.flatnonzero(~done)[0])
            raise MustWaitError(
                f"{text}: thread {int(batch.linear_tid[t])} of block {int(batch.block_index[t])} of the "
                "batch has not arrived at the cluster barrier and runs on another path (a cluster barrier "
                "in divergent code)"
            )
        waits[rows] += 1

    return wait


# -- mapa, getctarank ---------------------------------------------------------------------------


def _shared_space(ins: Instruction, what: str) -> tuple[str, str]:
    """The instruction's space (``shared::cluster`` or generic) and type (u32 or u64)."""
    mods = list(ins.mods)
    space = "generic"
    if mods and mods[0] == "shared::cluster":
        space = mods.pop(0)
    if mods not in (["u32"], ["u64"]):
        raise UnsupportedError(f"{what}{{.shared::cluster}}.{{u32,u64}}")
    return space, mods[0]


def _offsets(f: Frame, addrs: Any, generic: bool, what: str) -> Any:
    """Shared::cluster addresses of generic (or shared::cluster) ``addrs``; outside shared memory is
    ``CUDA_ERROR_ILLEGAL_ADDRESS``."""
    a = np.asarray(addrs).astype(np.uint64)
    if not generic:
        return a
    if np.any((a >> np.uint64(WINDOW_BITS)) != 1):
        raise illegal(f"{what} of an address outside shared memory")
    return a - np.uint64(SHARED_WINDOW)


def _mapa(c: Compiler, ins: Instruction) -> Runner:
    """``mapa{.shared::cluster}.{u32,u64} d, a, rank``: the address of ``a``'s location in block ``rank``
    of the cluster (generic in, generic out; or shared::cluster)."""
    space, t = _shared_space(ins, "mapa")
    if len(ins.operands) != 3:
        raise UnsupportedError("mapa d, a, rank")
    dt = DTYPES[t]
    get, rank_of, put = (
        c.read(ins.operands[1], dt),
        c.read(ins.operands[2], DTYPES["u32"]),
        c.write(ins.operands[0], dt),
    )
    generic = space == "generic"

    def mapa(f: Frame, m: Mask | None) -> None:
        batch = f.batch
        rows = active_rows(m, batch.n)
        size = batch.cluster.size if batch.cluster is not None else 1
        n = batch.n
        offs = _offsets(f, np.broadcast_to(get(f), (n,))[rows], generic, "mapa")
        ranks = np.broadcast_to(rank_of(f), (n,))[rows].astype(np.uint64)
        if rows.size and int(ranks.max()) >= size:
            raise illegal(f"mapa to rank {int(ranks.max())} of a cluster of {size} blocks")
        location = offs & np.uint64((1 << RANK_SHIFT) - 1)
        # in a cluster of one block every address is the block's own; else the target rank's tag
        out = location if size == 1 else location | ((ranks + np.uint64(1)) << np.uint64(RANK_SHIFT))
        if generic:
            out = out + np.uint64(SHARED_WINDOW)
        full = np.zeros(n, dtype=np.uint64)
        full[rows] = out
        put(f, full.astype(dt) if dt.itemsize == 8 else full.astype(np.uint32), m)

    return mapa


def _getctarank(c: Compiler, ins: Instruction) -> Runner:
    """``getctarank{.shared::cluster}.{u32,u64} d, a``: the rank of the block whose shared memory ``a``
    (generic or shared::cluster) names."""
    space, t = _shared_space(ins, "getctarank")
    if len(ins.operands) != 2:
        raise UnsupportedError("getctarank d, a")
    get, put = c.read(ins.operands[1], DTYPES[t]), c.write(ins.operands[0], DTYPES["u32"])
    generic = space == "generic"

    def getctarank(f: Frame, m: Mask | None) -> None:
        batch = f.batch
        rows = active_rows(m, batch.n)
        offs = _offsets(f, np.broadcast_to(get(f), (batch.n,))[rows], generic, "getctarank")
        blocks, _ = resolve_shared(batch, rows, offs)
        size = batch.cluster.size if batch.cluster is not None else 1
        full = np.zeros(batch.n, dtype=np.uint32)
        full[rows] = blocks % size
        put(f, full, m)

    return getctarank


# -- elect.sync -----------------------------------------------------------------------------------


def _elect(c: Compiler, ins: Instruction) -> Runner:
    """``elect.sync d|p, membermask``: of the active threads of each warp whose lanes are in
    ``membermask``, the lowest lane leads: ``d`` is its lane number for every executing thread, ``p``
    true for it alone (the ISA elects "one"; a GPU elects the lowest, and so does the engine)."""
    if ins.mods != ("sync",) or len(ins.operands) != 2:
        raise UnsupportedError("elect.sync d|p, membermask")
    dest, member = ins.operands
    if isinstance(dest, Pair):
        put, put_p = c.write(dest.first, DTYPES["u32"]), c.write(dest.second, DTYPES["pred"])
    else:
        put, put_p = c.write(dest, DTYPES["u32"]), None
    get_mask = c.read(member, DTYPES["u32"])

    def elect(f: Frame, m: Mask | None) -> None:
        batch = f.batch
        n = batch.n
        lane = (batch.linear_tid & np.uint32(31)).astype(np.int64)
        members = np.broadcast_to(np.asarray(get_mask(f), dtype=np.uint32), (n,)).astype(np.int64)
        candidate = ((members >> lane) & 1).astype(np.bool_)
        if m is not None:
            candidate &= m
        group, count = warp_groups(f)
        leader = np.full(count, 32, dtype=np.int64)
        np.minimum.at(leader, group[candidate], lane[candidate])
        lead = leader[group]
        put(f, lead.astype(np.uint32), m)
        if put_p is not None:
            put_p(f, candidate & (lane == lead), m)

    return elect


CLUSTER: dict[str, InstructionCompiler] = {
    "elect": _elect,
    "mapa": _mapa,
    "getctarank": _getctarank,
}
