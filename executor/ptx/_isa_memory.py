"""Data movement: mov, cvta, ld/st in every state space, cp.async (atomics: ``_isa_atomic``)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from protocol import CUresult

from ._compiler import (
    SPACES,
    Compiler,
    InstructionCompiler,
    Mask,
    Runner,
    Setter,
    UnsupportedError,
    access,
    active_rows,
    instr_type,
    is_hint,
    operands_of,
    select_rows,
    unary,
)
from ._memory import (
    LOCAL_WINDOW,
    SHARED_WINDOW,
    check_aligned,
    device_elements,
    device_runs,
    gather_device,
    window_index,
    window_load,
    window_store,
)
from ._numeric import DTYPES, fit, uint_of
from ._parse import Addr, Imm, Instruction, Operand, Reg, Vec
from ._state import Frame, KernelFaultError

# -- data movement ----------------------------------------------------------------------------


def _c_mov(c: Compiler, ins: Instruction) -> Runner:
    t, _ = instr_type(ins)
    d, a = operands_of(ins, 2)
    dt = DTYPES[t]
    if isinstance(a, Vec) or isinstance(d, Vec):
        return _pack(c, d, a, dt)
    get, put = c.read(a, dt), c.write(d, dt)
    return lambda f, m: put(f, get(f), m)


def _pack(c: Compiler, d: Operand, a: Operand, dt: np.dtype[Any]) -> Runner:
    """``mov.b64 d, {lo, hi}`` and ``mov.b64 {lo, hi}, a`` (and 32-bit from 16-bit halves)."""
    if isinstance(a, Vec) and isinstance(d, Reg):
        width = dt.itemsize // len(a.items)
        if width not in (1, 2, 4) or width * len(a.items) != dt.itemsize:
            raise UnsupportedError("vector widths")
        part = uint_of(width)
        getters = [c.read(x, part) for x in a.items]
        put = c.write(d, dt)

        def pack(f: Frame, m: Mask | None) -> None:
            parts = [np.asarray(g(f), dtype=part) for g in getters]
            n = max(p.size for p in parts)
            if (
                sys.byteorder == "little"
                and max(p.ndim for p in parts) == 1
                and all(p.shape in ((n,), ()) for p in parts)
            ):
                # the halves side by side, little-endian: each thread's row is the whole value's bytes
                rows = np.empty((n, len(parts)), dtype=part)
                for k, piece in enumerate(parts):
                    rows[:, k] = piece
                put(f, rows.view(uint_of(dt.itemsize)).reshape(n).view(dt), m)
                return
            value = np.asarray(0, dtype=uint_of(dt.itemsize))
            for k, g in enumerate(getters):
                value = value | (
                    np.asarray(g(f)).astype(uint_of(dt.itemsize)) << uint_of(dt.itemsize).type(8 * width * k)
                )
            put(f, fit(value if value.ndim else value[()], dt), m)

        return pack
    if isinstance(d, Vec) and not isinstance(a, Vec):
        width = dt.itemsize // len(d.items)
        if width not in (1, 2, 4) or width * len(d.items) != dt.itemsize:
            raise UnsupportedError("vector widths")
        part = uint_of(width)
        whole = uint_of(dt.itemsize)
        get = c.read(a, whole)
        puts = [c.write(x, part) for x in d.items]

        def unpack(f: Frame, m: Mask | None) -> None:
            v = np.asarray(get(f))
            if v.ndim == 1 and sys.byteorder == "little":  # each thread's value as its parts, in place
                rows = np.ascontiguousarray(v).view(part).reshape(v.size, len(puts))
                for k, p in enumerate(puts):
                    p(f, rows[:, k].copy(), m)
                return
            for k, p in enumerate(puts):
                piece = (v >> whole.type(8 * width * k)).astype(part)
                p(f, piece if piece.ndim else piece[()], m)

        return unpack
    raise UnsupportedError("vector operands")


def _c_cvta(c: Compiler, ins: Instruction) -> Runner:
    mods = list(ins.mods)
    to = bool(mods) and mods[0] == "to"
    if to:
        mods = mods[1:]
    if len(mods) != 2 or mods[0] not in SPACES or mods[1] != "u64":
        raise UnsupportedError("cvta[.to].space.u64 only")
    base = {"shared": SHARED_WINDOW, "local": LOCAL_WINDOW}.get(mods[0], 0)
    offset = np.uint64(base)
    if to:
        return unary(c, ins, lambda a: a - offset, "u64")
    return unary(c, ins, lambda a: a + offset, "u64")


def window_operand(c: Compiler, space: str, addr_op: Operand, size: int) -> tuple[str, int] | None:
    """For ``[reg+imm]`` in shared or local space with an integer register of 4 or 8 bytes and an
    access of 1, 2, 4 or 8 bytes: the register's name and the offset (signed, as the address
    arithmetic wraps it), for the window index path (``_memory.window_index``); else ``None``."""
    if space not in ("shared", "local") or size not in (1, 2, 4, 8) or not isinstance(addr_op, Addr):
        return None
    base = addr_op.base
    if not isinstance(base, Reg) or base.negated or base.name not in c.fn.registers:
        return None
    dt = c.reg_type(base.name)
    if dt.kind not in "ui" or dt.itemsize not in (4, 8):
        return None
    offset = ((addr_op.offset + (1 << 63)) & ((1 << 64) - 1)) - (1 << 63)
    return base.name, offset


def _c_ld(c: Compiler, ins: Instruction) -> Runner:
    space, vec, t = c.space_and_type(ins)
    if ins.opcode == "ldu" and space not in ("global", "generic"):
        raise UnsupportedError("ldu outside global space")
    d, a = operands_of(ins, 2)
    dt = DTYPES[t]
    items = d.items if isinstance(d, Vec) else (d,)
    if len(items) != vec:
        raise UnsupportedError("vector width and operand differ")
    puts = [c.write(x, dt) for x in items]
    at = c.kernel_param_offset(space, a, dt.itemsize * vec)
    if at is not None:  # the launch's parameters: the same value for every thread
        size = dt.itemsize * vec

        def ld_param(f: Frame, m: Mask | None) -> None:
            raw = f.batch.params[at : at + size]
            if len(raw) < size:
                raise KernelFaultError(
                    CUresult.CUDA_ERROR_INVALID_VALUE, "the parameter block is too short", sticky=False
                )
            values = np.frombuffer(raw, dtype=dt)
            for k, put in enumerate(puts):
                put(f, values[k], m)

        return ld_param
    load = c.load_bytes(space, a, dt.itemsize * vec)

    def loaded(f: Frame, m: Mask | None, rows: npt.NDArray[np.intp], values: npt.NDArray[Any]) -> None:
        """Write the active threads' values (``(rows, vec)`` of ``dt``) to the destinations."""
        n = f.batch.n
        for k, put in enumerate(puts):
            if m is None:
                put(f, values[:, k].copy(), None)
            else:
                full = np.zeros(n, dtype=dt)
                full[rows] = values[:, k]
                put(f, full, m)

    def ld(f: Frame, m: Mask | None) -> None:
        rows = active_rows(m, f.batch.n)
        raw = np.ascontiguousarray(load(f, rows))
        loaded(f, m, rows, raw.view(dt).reshape(rows.size, vec))

    if space in ("global", "const"):
        return _device_load(c, space, a, dt, vec, puts, loaded)
    window = window_operand(c, space, a, dt.itemsize * vec)
    if window is None and space == "shared":
        return _uniform_shared_load(c, a, dt, vec, puts, ld)
    if window is None:
        return ld
    name, offset = window
    size = dt.itemsize * vec

    def ld_window(f: Frame, m: Mask | None) -> None:
        """Through the address register's cached window index: one gather (see ``_memory``)."""
        batch = f.batch
        base = f.regs.get(name)
        win = window_index(batch, space, base, size) if base is not None else None
        rows = None if m is None else np.flatnonzero(m)
        got = window_load(win, offset, size, rows) if win is not None else None
        if got is None:
            ld(f, m)  # the checked path decides, and names any fault
        elif vec == 1 and m is None:
            puts[0](f, got.view(dt), None)
        else:
            loaded(f, m, active_rows(m, batch.n), got.view(dt).reshape(-1, vec))

    return ld_window


def _uniform_shared_load(
    c: Compiler, a: Operand, dt: np.dtype[Any], vec: int, puts: list[Setter], ld: Runner
) -> Runner:
    """A full batch's shared load from an address every thread shares (a shared variable's, ``[buf]``:
    a value one thread of each block stored for the others): each block's bytes read once and repeated
    for its threads, where every thread's own gather read the same element. A per-thread, misaligned or
    out-of-window address, a mask, or a cluster's shared memory (``mapa``): the checked ``ld``."""
    addr, _ = c.address(a, "shared")
    size = dt.itemsize * vec

    def ld_uniform(f: Frame, m: Mask | None) -> None:
        at = addr(f) if m is None else None
        batch = f.batch
        if at is None or type(at) is np.ndarray or batch.cluster is not None:
            ld(f, m)
            return
        off = int(at)
        if off % size or off + size > batch.shared.shape[1]:  # the checked path names the fault
            ld(f, m)
            return
        per_block = np.ascontiguousarray(batch.shared[:, off : off + size]).view(dt)  # (blocks, vec)
        for k, put in enumerate(puts):
            column = per_block[:, k]
            if batch.whole_blocks:  # thread t of block t // block_threads
                put(f, np.repeat(column, batch.block_threads), None)
            else:  # a compacted batch's threads (_compact): each its own block's
                put(f, column.take(batch.block_index), None)

    return ld_uniform


def _device_load(
    c: Compiler,
    space: str,
    a: Operand,
    dt: np.dtype[Any],
    vec: int,
    puts: list[Setter],
    loaded: Callable[[Frame, Mask | None, npt.NDArray[np.intp], npt.NDArray[Any]], None],
) -> Runner:
    """A global or constant load. One whose address every thread shares (a scalar: a parameter, or
    derived from parameters only) reads its bytes once, checked as any thread's access, and (for a
    full batch) its registers stay uniform scalars."""
    addr, _ = c.address(a, space)
    size = dt.itemsize * vec

    def ld_device(f: Frame, m: Mask | None) -> None:
        at = addr(f)
        if type(at) is np.ndarray:
            if m is None and vec == 1 and size <= 8:  # the common load: one span, in place
                got = device_elements(f.batch.memory, at, size)
                if got is not None:
                    puts[0](f, got.view(dt), None)
                    return
            elif m is None:  # a vector: when coalesced, each register a row of one transposing copy
                pieces = device_runs(f.batch.memory, at, size, write=False)
                if pieces is not None:
                    columns = np.empty((vec, at.size), dtype=dt)
                    for first, end, words in pieces:
                        columns[:, first:end] = words.view(dt).T
                    for k, put in enumerate(puts):
                        put(f, columns[k], None)
                    return
            n = f.batch.n
            rows = active_rows(m, n)
            addrs = select_rows(at, rows, n).astype(np.uint64, copy=False)
            raw = np.ascontiguousarray(access(f, space, rows, addrs, size, None))
            loaded(f, m, rows, raw.view(dt).reshape(rows.size, vec))
            return
        one = np.array([at], dtype=np.uint64)
        values = np.ascontiguousarray(access(f, space, _FIRST_ROW, one, size, None)).view(dt).reshape(vec)
        if m is None:
            for k, put in enumerate(puts):
                put(f, values[k], None)
        else:  # as the per-thread path writes it (zeros where a register had no value)
            rows = np.flatnonzero(m)
            loaded(f, m, rows, np.broadcast_to(values, (rows.size, vec)))

    return ld_device


#: the rows argument of a one-address device access (device memory has no per-thread window)
_FIRST_ROW = np.zeros(1, dtype=np.intp)
_FIRST_ROW.flags.writeable = False


def _c_st(c: Compiler, ins: Instruction) -> Runner:
    space, vec, t = c.space_and_type(ins)
    a, s = operands_of(ins, 2)
    dt = DTYPES[t]
    items = s.items if isinstance(s, Vec) else (s,)
    if len(items) != vec:
        raise UnsupportedError("vector width and operand differ")
    gets = [c.read(x, dt) for x in items]
    store = c.store_bytes(space, a, dt.itemsize * vec)

    def st(f: Frame, m: Mask | None) -> None:
        n = f.batch.n
        rows = active_rows(m, n)
        cols = [select_rows(g(f), rows, n).astype(dt, copy=False) for g in gets]
        data = (
            np.ascontiguousarray(np.stack(cols, axis=1)).view(np.uint8).reshape(rows.size, dt.itemsize * vec)
        )
        store(f, rows, data)

    if space == "global":
        addr, _ = c.address(a, space)
        size = dt.itemsize * vec

        def st_device(f: Frame, m: Mask | None) -> None:
            """A full batch's coalesced store: the values written into the run in place (one view of
            the VM's memory, checked for writing as a whole); anything else the checked path."""
            at = addr(f) if m is None else None
            if type(at) is np.ndarray:
                pieces = device_runs(f.batch.memory, at, size, write=True)
                if pieces is not None:
                    values = [g(f) for g in gets]
                    for first, end, words in pieces:  # in thread order, as store_runs stores
                        into = words.view(dt)  # (threads, vec): the VM's memory itself
                        for k, v in enumerate(values):  # a scalar fills its column, as each thread's
                            into[:, k] = v[first:end] if type(v) is np.ndarray and v.ndim else v
                    return
                n = f.batch.n  # the checked path, with the addresses already formed
                cols = [select_rows(g(f), active_rows(None, n), n).astype(dt, copy=False) for g in gets]
                data = np.ascontiguousarray(np.stack(cols, axis=1)).view(np.uint8).reshape(n, size)
                access(f, space, active_rows(None, n), at.astype(np.uint64, copy=False), size, data)
                return
            st(f, m)

        return st_device
    window = window_operand(c, space, a, dt.itemsize * vec)
    if window is None:
        return st
    name, offset = window
    size = dt.itemsize * vec
    elem = uint_of(size)

    def st_window(f: Frame, m: Mask | None) -> None:
        """Through the address register's cached window index: one scatter (see ``_memory``)."""
        batch = f.batch
        base = f.regs.get(name)
        win = window_index(batch, space, base, size) if base is not None else None
        if win is None:
            st(f, m)
            return
        n = batch.n
        rows = active_rows(m, n)
        value = gets[0](f) if vec == 1 else None
        if value is not None and type(value) is not np.ndarray:  # uniform: one element for every thread
            values = np.array([value], dtype=dt).view(elem)
        elif vec == 1:
            values = np.ascontiguousarray(select_rows(value, rows, n), dtype=dt).view(elem)
        else:
            cols = [select_rows(g(f), rows, n).astype(dt, copy=False) for g in gets]
            values = np.ascontiguousarray(np.stack(cols, axis=1)).view(elem).reshape(-1)
        if not window_store(win, offset, values, None if m is None else rows):
            st(f, m)  # the checked path decides, and names any fault

    return st_window


def _c_nop(c: Compiler, ins: Instruction) -> Runner:
    return lambda f, m: None


def _c_griddepcontrol(c: Compiler, ins: Instruction) -> Runner:
    """``griddepcontrol.launch_dependents``/``.wait`` (programmatic dependent launch): launches run
    one after another in stream order, each to completion, so a dependent grid never starts early
    and every prerequisite grid's memory is visible before it starts: nothing to signal or wait for."""
    if ins.mods not in (("launch_dependents",), ("wait",)) or ins.operands:
        raise UnsupportedError("griddepcontrol.launch_dependents or griddepcontrol.wait only")
    return _c_nop(c, ins)


def _c_cp_async(c: Compiler, ins: Instruction) -> Runner:
    """``cp.async`` runs synchronously: the copy happens at the instruction (checked like any load and
    store), so ``commit_group``/``wait_group``/``wait_all`` have nothing left to wait for.
    ``cp.async.{ca,cg}.shared.global [dst], [src], cp-size{, src-size}``: the first ``src-size`` bytes
    are copied, the rest of the ``cp-size`` bytes are zeros (and their source is not read)."""
    mods = [m for m in ins.mods if m in ("ca", "cg") or not is_hint(m)]  # ca/cg name the variant here
    if mods[:1] != ["async"]:
        raise UnsupportedError("cp.async only")
    mods = mods[1:]
    if mods in (["commit_group"], ["wait_all"]) or (mods == ["wait_group"] and len(ins.operands) == 1):
        return lambda f, m: None
    if len(mods) != 3 or mods[0] not in ("ca", "cg") or mods[1:] != ["shared", "global"]:
        raise UnsupportedError("cp.async.{ca,cg}.shared.global, commit_group, wait_group, wait_all")
    if len(ins.operands) not in (3, 4) or not isinstance(ins.operands[2], Imm):
        raise UnsupportedError("cp.async [dst], [src], cp-size{, src-size}")
    size = int(ins.operands[2].value)
    if size not in (4, 8, 16) or (mods[0] == "cg" and size != 16):
        raise UnsupportedError(f"a cp-size of {size}")
    dst, _ = c.address(ins.operands[0], "shared")
    src, _ = c.address(ins.operands[1], "global")
    count = c.read(ins.operands[3], DTYPES["u32"]) if len(ins.operands) == 4 else None

    def cp_async(f: Frame, m: Mask | None) -> None:
        n = f.batch.n
        rows = active_rows(m, n)
        sources = select_rows(src(f), rows, n).astype(np.uint64)
        check_aligned(sources, size, "global")
        data = np.zeros((rows.size, size), dtype=np.uint8)
        wanted = (
            np.full(rows.size, size) if count is None else np.minimum(select_rows(count(f), rows, n), size)
        )
        for part in np.unique(wanted):
            if part == 0:
                continue
            pick = wanted == part
            data[pick, :part] = gather_device(f.batch.memory, sources[pick], int(part))
        access(f, "shared", rows, select_rows(dst(f), rows, n).astype(np.uint64), size, data)

    return cp_async


MEMORY: dict[str, InstructionCompiler] = {
    "mov": _c_mov,
    "cvta": _c_cvta,
    "ld": _c_ld,
    "ldu": _c_ld,
    "st": _c_st,
    "membar": _c_nop,
    "fence": _c_nop,
    "griddepcontrol": _c_griddepcontrol,
    "cp": _c_cp_async,
}
