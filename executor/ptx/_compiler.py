"""Compiling instructions: operands, destinations, state spaces and the ops the SIMT loop runs.

:class:`Compiler` turns one function's instructions into :class:`Op` objects, using a table of
per-opcode compilers (``_isa``). An op's ``run`` takes the frame and the active mask (``None`` when
every thread of the batch is active) and updates registers or memory for the active threads only.
Control flow (``bra``, ``ret``, ``exit``, ``call``, barriers, ``trap``) is marked by ``kind`` and
carried out by the SIMT loop in ``_machine``.

An instruction, or a modifier of one, that the engine does not implement raises
:class:`UnsupportedError` at compile time — before a launch executes anything — so an unimplemented
instruction can never produce a wrong result.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from protocol import CUresult

from ._cluster import cluster_shared
from ._held import held
from ._memory import (
    LOCAL_WINDOW,
    SHARED_WINDOW,
    WINDOW_BITS,
    check_aligned,
    check_window,
    gather_device,
    illegal,
    scatter_device,
)
from ._numeric import DTYPES, fit, ftz32, uint_of
from ._parse import Addr, Args, Imm, Instruction, Operand, PtxSyntaxError, Reg, Sym, Variable
from ._printf import format_printf, read_string
from ._program import FunctionCode
from ._state import Frame, KernelFaultError, Value

__all__ = [
    "BAR",
    "CLOCK_KHZ",
    "BIT_TYPES",
    "BRA",
    "CALL",
    "Compiler",
    "EXIT",
    "FLOAT_TYPES",
    "Getter",
    "INT_ROUND_MODES",
    "INT_TYPES",
    "InstructionCompiler",
    "Layout",
    "Mask",
    "Op",
    "PLAIN",
    "RET",
    "ROUND_MODES",
    "Runner",
    "SPACES",
    "Setter",
    "TRAP",
    "WAIT",
    "UnsupportedError",
    "access",
    "active_rows",
    "binary",
    "broadcast_full",
    "constant",
    "float_post",
    "float_pre",
    "instr_type",
    "is_hint",
    "operands_of",
    "round_mode",
    "select_rows",
    "unary",
]


Mask = npt.NDArray[np.bool_]
Getter = Callable[[Frame], Value]
Setter = Callable[[Frame, Value, Mask | None], None]
Runner = Callable[[Frame, Mask | None], None]

PLAIN, BRA, RET, EXIT, CALL, BAR, TRAP = range(7)
#: an instruction that may have to wait for threads on another path (raises MustWaitError)
WAIT = 7


#: compiles one instruction into its runner (raises UnsupportedError)
InstructionCompiler = Callable[["Compiler", Instruction], Runner]


class UnsupportedError(Exception):
    """An instruction or modifier the engine does not implement."""


@dataclass(slots=True)
class Op:
    kind: int
    run: Runner | None
    guard: Getter | None
    line: int
    text: str
    target: int = -1
    callee: str = ""
    call_args: tuple[str, ...] = ()
    call_rets: tuple[str, ...] = ()


@dataclass(slots=True)
class Layout:
    """Where a kernel's variables are: shared offsets (static then the dynamic ``extern`` window),
    local offsets within each function's frame, and each function's frame size."""

    shared: dict[str, int] = field(default_factory=dict)
    static_shared: int = 0
    dynamic_base: int = 0
    local: dict[str, dict[str, int]] = field(default_factory=dict)  # function -> name -> offset
    frame_bytes: dict[str, int] = field(default_factory=dict)


ROUND_MODES = {"rn", "rz", "rm", "rp"}
INT_ROUND_MODES = {"rni", "rzi", "rmi", "rpi"}
HINTS = {
    "nc",
    "volatile",
    "relaxed",
    "acquire",
    "release",
    "weak",
    "ca",
    "cg",
    "cs",
    "lu",
    "cv",
    "wb",
    "wt",
    "sys",
    "gpu",
    "cta",
    "cluster",
    "uni",
    "aligned",
    "sync",
    "acq_rel",
    "mmio",
}
SPACES = {"global", "shared", "local", "const", "param"}


def is_hint(mod: str) -> bool:
    return mod in HINTS or mod.startswith(("L1::", "L2::", "level::")) or mod == "shared::cta"


def constant(dt: np.dtype[Any], value: int | float) -> Any:
    if dt.kind == "f":
        result: np.generic = dt.type(value)
        return result
    if isinstance(value, float):
        raise UnsupportedError(f"a float immediate {value} for an integer type")
    bits = int(value) & ((1 << (8 * dt.itemsize)) - 1)
    out: Any = np.array(bits, dtype=uint_of(dt.itemsize)).view(dt)[()]
    return out


def broadcast_full(v: Value, n: int) -> npt.NDArray[Any]:
    if isinstance(v, np.ndarray) and v.shape == (n,):
        return v
    return np.broadcast_to(v, (n,)).copy()


def _all_rows(n: int) -> npt.NDArray[np.intp]:
    # read-only, shared by every access of a batch this size
    return held(("rows", n), lambda: np.arange(n, dtype=np.intp))


def active_rows(mask: Mask | None, n: int) -> npt.NDArray[np.intp]:
    return _all_rows(n) if mask is None else np.flatnonzero(mask)


def select_rows(v: Value, rows: npt.NDArray[np.intp], n: int) -> npt.NDArray[Any]:
    if isinstance(v, np.ndarray) and v.ndim:
        return v[rows] if rows.size != n else v
    return np.broadcast_to(v, (rows.size,))


_SPECIAL_AXES = {"x": 0, "y": 1, "z": 2}
#: the SM clock %clock and %clock64 count at: sim's cudaDevAttrClockRate (executor/_sim_device.py)
CLOCK_KHZ = 1_980_000
#: how many distinct unimplemented instructions an error names
MAX_NAMED = 8


class Compiler:
    """Compiles the instructions of one function of a kernel (see the module docstring)."""

    def __init__(
        self,
        code: FunctionCode,
        layout: Layout,
        functions: Mapping[str, FunctionCode],
        globals_: Mapping[str, Variable],
        table: Mapping[str, InstructionCompiler],
    ) -> None:
        self.table = table
        self.code = code
        self.fn = code.function
        self.layout = layout
        self.functions = functions
        self.globals = globals_
        self.params = {p.name: p for p in self.fn.params}
        self.rets = {r.name: r for r in self.fn.returns}
        self.local_params = {v.name: v for v in self.fn.variables if v.space == "param"}
        self.param_offsets: dict[str, int] = {}
        offset = 0
        for p in self.fn.params:
            offset = -(-offset // p.align) * p.align
            self.param_offsets[p.name] = offset
            offset += p.size

    # -- compile ------------------------------------------------------------------------------

    def compile(self) -> list[Op]:
        """Every instruction's op; :class:`UnsupportedError` naming each distinct instruction (up to
        :data:`MAX_NAMED`) that the engine does not implement, with its first line."""
        ops: list[Op] = []
        missing: dict[str, str] = {}
        for pc, ins in enumerate(self.code.code):
            try:
                ops.append(self._op(pc, ins))
            except (UnsupportedError, PtxSyntaxError) as exc:
                if ins.text not in missing:
                    missing[ins.text] = f"{ins.text} (line {ins.line} of {self.fn.name}: {exc})"
        if missing:
            named = list(missing.values())
            more = f" and {len(named) - MAX_NAMED} more" if len(named) > MAX_NAMED else ""
            raise UnsupportedError("; ".join(named[:MAX_NAMED]) + more)
        return ops

    def _op(self, pc: int, ins: Instruction) -> Op:
        guard = self.pred(ins.guard) if ins.guard is not None else None
        op, mods = ins.opcode, ins.mods
        if op == "bra":
            if not ins.operands or not isinstance(ins.operands[0], Sym) or any(m != "uni" for m in mods):
                raise UnsupportedError("only bra[.uni] LABEL")
            return Op(
                BRA, None, guard, ins.line, ins.text, target=self.code.target(ins.operands[0].name, ins.line)
            )
        if op in ("ret", "exit"):
            if any(m != "uni" for m in mods):
                raise UnsupportedError("modifiers")
            kind = EXIT if op == "exit" or self.fn.kind == "entry" else RET
            return Op(kind, None, guard, ins.line, ins.text)
        if op == "trap":
            return Op(TRAP, None, guard, ins.line, ins.text)
        if op == "call":
            return self._call(ins, guard)
        if op in ("bar", "barrier"):
            return self._barrier(ins, guard)
        compiler = self.table.get(op)
        if compiler is None:
            raise UnsupportedError("the engine does not implement this instruction")
        return Op(PLAIN, compiler(self, ins), guard, ins.line, ins.text)

    def _barrier(self, ins: Instruction, guard: Getter | None) -> Op:
        mods = [m for m in ins.mods if m != "aligned"]
        if mods == ["warp", "sync"]:  # __syncwarp: a batch's threads run in lockstep already
            return Op(PLAIN, lambda f, m: None, guard, ins.line, ins.text)
        if mods[:1] == ["red"]:
            return self._barrier_reduction(ins, mods[1:], guard)
        if mods[:1] == ["cluster"]:
            from ._isa_cluster import cluster_barrier  # imports this module: at compile time only

            return cluster_barrier(self, ins, guard)
        if len(ins.operands) == 2 and mods in ([], ["sync"], ["arrive"]):  # a named barrier with a count
            from ._isa_barrier import named_barrier  # imports this module: at compile time only

            return named_barrier(self, ins, guard)
        if mods not in (["sync"], []) or len(ins.operands) != 1 or not isinstance(ins.operands[0], Imm | Reg):
            raise UnsupportedError("only bar.sync / barrier.sync with a barrier id and no thread count")
        return Op(BAR, None, guard, ins.line, ins.text)

    def _barrier_reduction(self, ins: Instruction, mods: list[str], guard: Getter | None) -> Op:
        """``bar.red.popc.u32 d, id, {!}c`` / ``bar.red.{and,or}.pred p, id, {!}c``: a barrier that
        also reduces ``c`` over the block's threads at it, the result going to each of them."""
        if mods not in (["popc", "u32"], ["and", "pred"], ["or", "pred"]) or len(ins.operands) != 3:
            raise UnsupportedError(
                "bar.red.popc.u32 / bar.red.{and,or}.pred with a barrier id, no thread count"
            )
        dest, _barrier_id, operand = ins.operands
        if not isinstance(operand, Reg):
            raise UnsupportedError("a predicate operand")
        get = self.pred(operand)
        kind = mods[0]
        put = self.write(dest, DTYPES["u32"] if kind == "popc" else DTYPES["pred"])

        def reduce(f: Frame, mask: Mask | None) -> None:
            b = f.batch
            arrived = np.ones(b.n, dtype=np.bool_) if mask is None else mask
            votes = (broadcast_full(np.asarray(get(f), dtype=np.bool_), b.n) & arrived).reshape(
                -1, b.block_threads
            )
            if kind == "popc":
                per_block: Value = votes.sum(axis=1).astype(np.uint32)
            elif kind == "and":  # over the threads at the barrier
                per_block = (votes | ~arrived.reshape(-1, b.block_threads)).all(axis=1)
            else:
                per_block = votes.any(axis=1)
            put(f, np.repeat(per_block, b.block_threads), mask)

        return Op(BAR, reduce, guard, ins.line, ins.text)

    def _call(self, ins: Instruction, guard: Getter | None) -> Op:
        ops = list(ins.operands)
        rets: tuple[str, ...] = ()
        if ops and isinstance(ops[0], Args):
            rets = tuple(self._param_name(a) for a in ops[0].items)
            ops = ops[1:]
        if not ops or not isinstance(ops[0], Sym):
            raise UnsupportedError("only direct calls")
        callee = ops[0].name
        args: tuple[str, ...] = ()
        if len(ops) > 1:
            if not isinstance(ops[1], Args) or len(ops) > 2:
                raise UnsupportedError("call with a prototype or an indirect target")
            args = tuple(self._param_name(a) for a in ops[1].items)
        target = self.functions.get(callee)
        if target is None and callee == "vprintf":
            return Op(PLAIN, self._vprintf(args, rets), guard, ins.line, ins.text)
        if target is None and callee == "__assertfail":
            return Op(PLAIN, self._assertfail(args), guard, ins.line, ins.text)
        if target is None:
            raise UnsupportedError(f"call to {callee}, which the module does not define")
        if len(args) != len(target.function.params) or len(rets) != len(target.function.returns):
            raise UnsupportedError(f"call to {callee} with a different number of parameters")
        return Op(CALL, None, guard, ins.line, ins.text, callee=callee, call_args=args, call_rets=rets)

    def _vprintf(self, args: tuple[str, ...], rets: tuple[str, ...]) -> Runner:
        """CUDA's device printf, an engine intrinsic: each active thread in order formats its
        arguments (read through the checked generic path) into the launch's bounded output."""
        if len(args) != 2 or len(rets) > 1 or any(self.local_params[a].size < 8 for a in args):
            raise UnsupportedError("vprintf with other than (format, args) pointers")
        fmt_name, args_name = args
        ret = rets[0] if rets else None

        def run(f: Frame, m: Mask | None) -> None:
            rows = active_rows(m, f.batch.n)
            fmts = _frame_param(f, fmt_name, self.local_params[fmt_name].size)
            bufs = _frame_param(f, args_name, self.local_params[args_name].size)
            results = np.zeros(rows.size, dtype=np.int32)
            for k, t in enumerate(rows):
                if time.monotonic() > f.batch.deadline:  # thousands of threads' printf is slow
                    raise KernelFaultError(
                        CUresult.CUDA_ERROR_LAUNCH_TIMEOUT,
                        f"the launch ran past its bound of {f.batch.limits.seconds} s in printf",
                    )
                fmt_addr = int.from_bytes(fmts[t, :8].tobytes(), "little")
                args_addr = int.from_bytes(bufs[t, :8].tobytes(), "little")
                text, results[k] = _printf_thread(f, int(t), fmt_addr, args_addr)
                if f.batch.printf is not None:
                    f.batch.printf.write(text)
            if ret is not None:
                out = _frame_param(f, ret, self.local_params[ret].size)
                out[rows, :4] = results.view(np.uint8).reshape(-1, 4)

        return run

    def _assertfail(self, args: tuple[str, ...]) -> Runner:
        """Device ``assert`` (``__assertfail(message, file, line, function, char size)``): the active
        threads (the first eight) print CUDA's line into the launch's printf output, then the launch
        ends with ``CUDA_ERROR_ASSERT``, sticky, as on a GPU. Strings are read through the checked path."""
        sizes = (8, 8, 4, 8, 8)
        if len(args) != 5 or any(self.local_params[a].size < n for a, n in zip(args, sizes, strict=True)):
            raise UnsupportedError("__assertfail with other than (message, file, line, function, size)")

        def run(f: Frame, m: Mask | None) -> None:
            rows = active_rows(m, f.batch.n)
            if not rows.size:
                return
            ptrs = [_frame_param(f, a, self.local_params[a].size) for a in args]
            first = ""
            for t in rows[:8]:  # the first few threads' lines: one is what the message needs
                row = np.array([t], dtype=np.intp)

                def read(address: int, size: int, row: npt.NDArray[np.intp] = row) -> bytes:
                    addrs = (np.uint64(address) + np.arange(size, dtype=np.uint64)) & np.uint64(2**64 - 1)
                    return access(f, "generic", np.repeat(row, size), addrs, 1, None).tobytes()

                message, file, function = (
                    read_string(read, int.from_bytes(ptrs[k][t, :8].tobytes(), "little"), 512).decode(
                        errors="replace"
                    )
                    for k in (0, 1, 3)
                )
                line = int.from_bytes(ptrs[2][t, :4].tobytes(), "little")
                b = f.batch
                block = [int(b.ctaid[axis][t]) for axis in range(3)]
                thread = [int(b.tid[axis][t]) for axis in range(3)]
                text = (
                    f"{file}:{line}: {function}: block: [{block[0]},{block[1]},{block[2]}], thread: "
                    f"[{thread[0]},{thread[1]},{thread[2]}] Assertion `{message}` failed."
                )
                first = first or text
                if f.batch.printf is not None:
                    f.batch.printf.write(text.encode() + b"\n")
            raise KernelFaultError(CUresult.CUDA_ERROR_ASSERT, first)

        return run

    def _param_name(self, item: Operand) -> str:
        if not isinstance(item, Sym) or item.name not in self.local_params:
            raise UnsupportedError("call arguments other than declared .param variables")
        return item.name

    # -- operands -----------------------------------------------------------------------------

    def pred(self, reg: Reg) -> Getter:
        dt = self._reg_type(reg.name)
        if dt.kind != "b":
            raise UnsupportedError(f"{reg.name} is not a predicate")
        name = reg.name
        false = np.False_
        if reg.negated:
            return lambda f: ~f.regs.get(name, false)
        return lambda f: f.regs.get(name, false)

    def reg_type(self, name: str) -> np.dtype[Any]:
        """The storage dtype of a declared register (``PtxSyntaxError`` when it is not declared)."""
        return self._reg_type(name)

    def _reg_type(self, name: str) -> np.dtype[Any]:
        t = self.fn.registers.get(name)
        if t is None:
            raise PtxSyntaxError(f"register {name} is not declared")
        dt = DTYPES.get(t)
        if dt is None:
            raise UnsupportedError(f"registers of type .{t}")
        return dt

    def read(self, operand: Operand, dt: np.dtype[Any]) -> Getter:
        """A getter of the operand's value as ``dt``."""
        if isinstance(operand, Imm):
            const = np.bool_(bool(operand.value)) if dt.kind == "b" else constant(dt, operand.value)
            return lambda f: const
        if isinstance(operand, Reg):
            if operand.name.startswith("%") and operand.name not in self.fn.registers:
                return self._special(operand.name, dt)
            rdt = self._reg_type(operand.name)
            name = operand.name
            zero = rdt.type(0)
            if rdt.kind == "b" or dt.kind == "b":
                if rdt.kind != dt.kind:
                    raise UnsupportedError(f"{name} used as {dt}")
                if operand.negated:
                    return lambda f: ~f.regs.get(name, zero)
                return lambda f: f.regs.get(name, zero)
            if operand.negated:
                raise UnsupportedError("a negated operand that is not a predicate")
            if rdt == dt:
                return lambda f: f.regs.get(name, zero)
            return lambda f: fit(f.regs.get(name, zero), dt)
        if isinstance(operand, Sym) and operand.name == "WARP_SZ":  # PTX's predefined constant
            warp = constant(dt, 32)
            return lambda f: warp
        if isinstance(operand, Sym | Addr):
            address = self.address_of(operand)
            if dt.kind not in "ui":
                raise UnsupportedError("an address used as a non-integer")
            return lambda f: fit(address(f), dt)
        raise UnsupportedError(f"operand {operand!r}")

    def address_of(self, operand: Sym | Addr) -> Getter:
        """The value of a variable's name (its address in its own state space), plus an offset."""
        if isinstance(operand, Addr):
            if not isinstance(operand.base, Sym):
                raise UnsupportedError("an address expression as a value")
            sym, off = operand.base.name, operand.offset
        else:
            sym, off = operand.name, 0
        if self.fn.kind == "entry" and sym in self.params:  # a kernel parameter: its param-space offset
            offset = np.uint64(self.param_offsets[sym] + off)
            return lambda f: offset
        if sym in self.layout.shared:
            value = np.uint64(self.layout.shared[sym] + off)
            return lambda f: value
        local = self.layout.local.get(self.fn.name, {})
        if sym in local:
            at = local[sym] + off
            return lambda f: np.uint64(f.local_base + at)
        if sym in self.globals:
            if self.globals[sym].space not in ("global", "const"):
                raise UnsupportedError(f"the address of {sym}")
            return lambda f: np.uint64(_symbol(f, sym) + off)
        raise UnsupportedError(f"the address of {sym!r}, which is not a variable the engine places")

    def _special(self, name: str, dt: np.dtype[Any]) -> Getter:
        base, _, axis_name = name.partition(".")
        axis = _SPECIAL_AXES.get(axis_name, -1)
        get: Getter
        if base in ("%tid", "%ntid", "%ctaid", "%nctaid") and axis >= 0:
            if base == "%tid":
                get = lambda f: f.batch.tid[axis]  # noqa: E731
            elif base == "%ctaid":
                get = lambda f: f.batch.ctaid[axis]  # noqa: E731
            elif base == "%ntid":
                get = lambda f: np.uint32(f.batch.block_dim[axis])  # noqa: E731
            else:
                get = lambda f: np.uint32(f.batch.grid_dim[axis])  # noqa: E731
        elif name == "%laneid":
            get = lambda f: f.batch.linear_tid & np.uint32(31)  # noqa: E731
        elif name == "%warpid":
            get = lambda f: f.batch.linear_tid >> np.uint32(5)  # noqa: E731
        elif name == "%nwarpid":
            get = lambda f: np.uint32(-(-f.batch.block_threads // 32))  # noqa: E731
        elif name in ("%lanemask_eq", "%lanemask_lt", "%lanemask_le", "%lanemask_gt", "%lanemask_ge"):
            kind = name[-2:]

            def get(f: Frame) -> Value:
                lane = (f.batch.linear_tid & np.uint32(31)).astype(np.uint64)
                bit = np.left_shift(np.uint64(1), lane)
                below = bit - np.uint64(1)
                out = {"eq": bit, "lt": below, "le": below | bit, "gt": ~(below | bit), "ge": ~below}[kind]
                return out.astype(np.uint32)
        elif name in ("%clock", "%clock64"):
            # cycles at the clock rate sim reports: a kernel that waits N cycles (N from
            # cudaDevAttrClockRate, as simpleHyperQ's spin does) waits the time a GPU would
            get = lambda f: np.uint64(time.monotonic_ns() * CLOCK_KHZ // 1_000_000)  # noqa: E731
        elif name == "%globaltimer":
            get = lambda f: np.uint64(time.monotonic_ns())  # noqa: E731
        elif name in ("%smid", "%gridid"):
            get = lambda f: np.uint32(0)  # noqa: E731
        elif name in ("%nsmid",):
            get = lambda f: np.uint32(1)  # noqa: E731
        elif name == "%dynamic_smem_size":
            get = lambda f: np.uint32(f.batch.dynamic_shared)  # noqa: E731
        elif name in ("%envreg1", "%envreg2"):  # the grid-sync workspace (cooperative launches)
            shift = 32 if name == "%envreg1" else 0
            get = lambda f: np.uint32((f.batch.grid_workspace >> shift) & 0xFFFFFFFF)  # noqa: E731
        else:
            from ._isa_cluster import special_register  # imports this module: at compile time only

            extra = special_register(self, name)  # clusters, the reserved shared memory
            if extra is None:
                raise UnsupportedError(f"special register {name}")
            get = extra
        return lambda f: fit(get(f), dt)

    def write(self, operand: Operand, dt: np.dtype[Any]) -> Setter:
        """A setter of a destination register (values arrive as ``dt``)."""
        if isinstance(operand, Sym) and operand.name == "_":
            return lambda f, v, m: None
        if not isinstance(operand, Reg) or operand.negated:
            raise UnsupportedError(f"destination {operand!r}")
        rdt = self._reg_type(operand.name)
        if (rdt.kind == "b") != (dt.kind == "b"):
            raise UnsupportedError(f"{operand.name} written as {dt}")
        name = operand.name

        def set_(f: Frame, v: Value, mask: Mask | None) -> None:
            v = fit(v, rdt)
            if mask is None:
                f.regs[name] = v
                return
            old = f.regs.get(name)
            if old is None or (
                np.ndim(v) == 0
                and np.ndim(old) == 0
                and old == v
                and (v != 0 or np.signbit(old) == np.signbit(v))
            ):
                # the inactive threads never wrote the register (PTX leaves what they would read
                # undefined), or it already holds this uniform value, bit for bit (-0.0 == +0.0): it
                # stays as it is written, a scalar when uniform (a constant set in divergent code
                # stays cheap to read)
                f.regs[name] = v
            else:
                f.regs[name] = np.where(mask, v, old)

        return set_

    # -- memory -------------------------------------------------------------------------------

    def space_and_type(self, ins: Instruction) -> tuple[str, int, str]:
        space, vec, t = "generic", 1, ""
        for m in ins.mods:
            if m in SPACES:
                space = m
            elif m in ("shared::cta", "shared::cluster"):  # a cluster's: another block's when mapa made it
                space = "shared"
            elif m in ("v2", "v4"):
                vec = int(m[1])
            elif m in DTYPES:
                t = m
            elif not is_hint(m):
                raise UnsupportedError(f"modifier .{m}")
        if not t or t == "pred" or t in ("f16x2", "bf16x2", "tf32"):
            raise UnsupportedError("this type")
        return space, vec, t

    def address(self, operand: Operand, space: str) -> tuple[Getter, bool]:
        """The getter of ``[…]``'s address, and whether it names a param variable (a frame's)."""
        if not isinstance(operand, Addr):
            raise UnsupportedError("an address operand [...]")
        off = np.uint64(operand.offset & ((1 << 64) - 1))
        base = operand.base
        if base is None:
            return (lambda f: off), False
        if isinstance(base, Reg):
            wide = self._is_64(base.name)
            get = self.read(Reg(base.name), DTYPES["u64"] if wide else DTYPES["u32"])
            if wide:  # already u64: no copy, and no addition of a zero offset
                return (lambda f: get(f) + off) if off else get, False
            return (lambda f: get(f).astype(np.uint64) + off), False
        if space == "param" and (
            base.name in self.params or base.name in self.rets or base.name in self.local_params
        ):
            return (lambda f: off), True
        address = self.address_of(base)
        return (lambda f: address(f) + off), False

    def _is_64(self, name: str) -> bool:
        if name not in self.fn.registers:
            raise UnsupportedError(f"{name} as an address")
        return self._reg_type(name).itemsize == 8

    def load_bytes(
        self, space: str, addr_op: Operand, size: int
    ) -> Callable[[Frame, npt.NDArray[np.intp]], npt.NDArray[np.uint8]]:
        """A loader of ``size`` bytes per active thread: ``(frame, rows) -> (len(rows), size)``."""
        addr, is_param = self.address(addr_op, space)
        if is_param:
            assert isinstance(addr_op, Addr) and isinstance(addr_op.base, Sym)
            return self._param_loader(addr_op.base.name, addr_op.offset, size)
        if space == "param":
            if self.fn.kind != "entry":
                raise UnsupportedError("a param load from a computed address outside a kernel")

            def param_at(f: Frame, rows: npt.NDArray[np.intp]) -> npt.NDArray[np.uint8]:
                # ``mov %rd, param`` then ``ld.param [%rd+8]`` (CUB's by-value functors): the launch's block
                addrs = select_rows(addr(f), rows, f.batch.n).astype(np.uint64, copy=False)
                return _kernel_params_at(f, addrs, size)

            return param_at

        def load(f: Frame, rows: npt.NDArray[np.intp]) -> npt.NDArray[np.uint8]:
            addrs = select_rows(addr(f), rows, f.batch.n).astype(np.uint64, copy=False)
            return access(f, space, rows, addrs, size, None)

        return load

    def kernel_param_offset(self, space: str, addr_op: Operand, size: int) -> int | None:
        """The offset in the launch's parameter block of ``ld.param [param+offset]`` in a kernel,
        or ``None`` for any other load."""
        if space != "param" or self.fn.kind != "entry" or not isinstance(addr_op, Addr):
            return None
        base = addr_op.base
        if not isinstance(base, Sym) or base.name not in self.params:
            return None
        if addr_op.offset < 0 or addr_op.offset + size > self.params[base.name].size:
            raise UnsupportedError(f"a load outside parameter {base.name}")
        return self.param_offsets[base.name] + addr_op.offset

    def _param_loader(
        self, name: str, offset: int, size: int
    ) -> Callable[[Frame, npt.NDArray[np.intp]], npt.NDArray[np.uint8]]:
        if self.fn.kind == "entry" and name in self.params:
            var = self.params[name]
            if offset < 0 or offset + size > var.size:
                raise UnsupportedError(f"a load outside parameter {name}")
            at = self.param_offsets[name] + offset

            def kernel_param(f: Frame, rows: npt.NDArray[np.intp]) -> npt.NDArray[np.uint8]:
                raw = f.batch.params[at : at + size]
                if len(raw) < size:
                    raise KernelFaultError(
                        CUresult.CUDA_ERROR_INVALID_VALUE,
                        f"the parameter block is too short for {name}",
                        sticky=False,
                    )
                return np.broadcast_to(np.frombuffer(raw, dtype=np.uint8), (rows.size, size))

            return kernel_param
        var = self.params.get(name) or self.rets.get(name) or self.local_params[name]
        if offset < 0 or offset + size > var.size:
            raise UnsupportedError(f"an access outside parameter {name}")

        def frame_param(f: Frame, rows: npt.NDArray[np.intp]) -> npt.NDArray[np.uint8]:
            buf = _frame_param(f, name, var.size)
            out: npt.NDArray[np.uint8] = buf[rows, offset : offset + size]
            return out

        return frame_param

    def store_bytes(
        self, space: str, addr_op: Operand, size: int
    ) -> Callable[[Frame, npt.NDArray[np.intp], npt.NDArray[np.uint8]], None]:
        addr, is_param = self.address(addr_op, space)
        if is_param:
            assert isinstance(addr_op, Addr) and isinstance(addr_op.base, Sym)
            name, offset = addr_op.base.name, addr_op.offset
            if self.fn.kind == "entry" and name in self.params:
                raise UnsupportedError("a store to a kernel parameter")
            var = self.params.get(name) or self.rets.get(name) or self.local_params[name]
            if offset < 0 or offset + size > var.size:
                raise UnsupportedError(f"an access outside parameter {name}")

            def param_store(f: Frame, rows: npt.NDArray[np.intp], data: npt.NDArray[np.uint8]) -> None:
                _frame_param(f, name, var.size)[rows, offset : offset + size] = data

            return param_store
        if space in ("param", "const"):
            raise UnsupportedError(f"a store to {space} space")

        def store(f: Frame, rows: npt.NDArray[np.intp], data: npt.NDArray[np.uint8]) -> None:
            addrs = select_rows(addr(f), rows, f.batch.n).astype(np.uint64, copy=False)
            access(f, space, rows, addrs, data.shape[1], data)

        return store


def _printf_thread(f: Frame, t: int, fmt_addr: int, args_addr: int) -> tuple[bytes, int]:
    """Thread ``t``'s printf: its format string and packed arguments, each byte read checked."""
    row = np.array([t], dtype=np.intp)
    offset = 0

    def read(address: int, size: int) -> bytes:
        addrs = (np.uint64(address) + np.arange(size, dtype=np.uint64)) & np.uint64(2**64 - 1)
        return access(f, "generic", np.repeat(row, size), addrs, 1, None).tobytes()

    def arg(size: int) -> bytes:  # the next argument, at its natural alignment in the buffer
        nonlocal offset
        offset = -(-offset // size) * size
        addrs = np.array([(args_addr + offset) & (2**64 - 1)], dtype=np.uint64)
        offset += size
        return access(f, "generic", row, addrs, size, None).tobytes()

    return format_printf(read_string(read, fmt_addr), arg, lambda a, n: read_string(read, a, n))


def _symbol(f: Frame, name: str) -> int:
    try:
        return f.batch.symbols[name]
    except KeyError:
        raise KernelFaultError(
            CUresult.CUDA_ERROR_NOT_SUPPORTED, f"the module global {name} has no device address", sticky=False
        ) from None


def _kernel_params_at(f: Frame, addrs: npt.NDArray[np.uint64], size: int) -> npt.NDArray[np.uint8]:
    """``size`` bytes of the launch's parameter block at each param-space address, checked."""
    check_aligned(addrs, size, "param")
    block = np.frombuffer(f.batch.params, dtype=np.uint8)
    if addrs.size and int(addrs.max()) + size > block.size:
        raise illegal(
            f"a param load of {size} bytes at {int(addrs.max()):#x}, past the {block.size}-byte "
            "parameter block"
        )
    loaded: npt.NDArray[np.uint8] = block[addrs.astype(np.intp)[:, None] + np.arange(size)]
    return loaded


def _frame_param(f: Frame, name: str, size: int) -> npt.NDArray[np.uint8]:
    buf = f.params.get(name)
    if buf is None:
        buf = f.params[name] = np.zeros((f.batch.n, size), dtype=np.uint8)
    return buf


def access(
    f: Frame,
    space: str,
    rows: npt.NDArray[np.intp],
    addrs: npt.NDArray[np.uint64],
    size: int,
    data: npt.NDArray[np.uint8] | None,
) -> npt.NDArray[np.uint8]:
    """Load (``data is None``) or store ``size`` bytes per thread in a state space; checked."""
    batch = f.batch
    check_aligned(addrs, size, space)
    if space == "generic":
        window = addrs >> np.uint64(WINDOW_BITS)
        out = np.empty((rows.size, size), dtype=np.uint8)
        for code, sub_space, base in (
            (0, "global", 0),
            (1, "shared", SHARED_WINDOW),
            (2, "local", LOCAL_WINDOW),
        ):
            # outside both windows is device memory, where the VM's allocations are checked
            pick = (window == code) if code else ((window == 0) | (window > 2))
            if not pick.any():
                continue
            sub = access(
                f,
                sub_space,
                rows[pick],
                addrs[pick] - np.uint64(base),
                size,
                None if data is None else data[pick],
            )
            if data is None:
                out[pick] = sub
        return out
    if batch.cluster is not None and space == "shared":  # addresses may name another block (mapa)
        return cluster_shared(batch, rows, addrs, size, data)
    if space in ("global", "const"):
        if data is None:
            return gather_device(batch.memory, addrs, size, aligned=True)
        scatter_device(batch.memory, addrs, data, aligned=True)
        return data
    if space in ("shared", "local") and size in (1, 2, 4, 8):
        # aligned (checked above): one typed gather or scatter over the flat window, no byte columns
        space_bytes: npt.NDArray[np.uint8] = batch.shared if space == "shared" else batch.local
        width = space_bytes.shape[1]
        if width % size == 0 and space_bytes.flags.c_contiguous:
            check_window(addrs, size, width, space)
            if space == "local":
                owner = rows
            else:  # every thread of the batch (active_rows of no mask): its block index, no gather
                owner = batch.block_index if rows is _all_rows(batch.n) else batch.block_index[rows]
            # the offset in elements: a shift (size is a power of two; a uint64 floor division is slow)
            shift = np.uint64(size.bit_length() - 1)
            index = owner * (width // size) + (addrs.astype(np.uint64, copy=False) >> shift).view(np.int64)
            typed = space_bytes.reshape(-1).view(uint_of(size))
            if data is None:
                got: npt.NDArray[np.uint8] = typed[index].view(np.uint8).reshape(-1, size)
                return got
            typed[index] = np.ascontiguousarray(data).view(uint_of(size)).reshape(-1)
            return data
    if space == "shared":
        check_window(addrs, size, batch.shared.shape[1], "shared")
        blocks = batch.block_index[rows][:, None]
        cols = addrs.astype(np.intp)[:, None] + np.arange(size)
        if data is None:
            loaded: npt.NDArray[np.uint8] = batch.shared[blocks, cols]
            return loaded
        batch.shared[blocks, cols] = data
        return data
    if space == "local":
        check_window(addrs, size, batch.local.shape[1], "local")
        cols = addrs.astype(np.intp)[:, None] + np.arange(size)
        if data is None:
            loaded = batch.local[rows[:, None], cols]
            return loaded
        batch.local[rows[:, None], cols] = data
        return data
    raise illegal(f"an access to {space} space")


# ---------------------------------------------------------------------------------------------
# instruction compilers


def instr_type(
    ins: Instruction, allowed: set[str] | None = None, *, extra: set[str] | frozenset[str] = frozenset()
) -> tuple[str, set[str]]:
    """The instruction's type (its last type modifier) and its other modifiers; checks both."""
    types = [m for m in ins.mods if m in DTYPES]
    if not types:
        raise UnsupportedError("no type")
    t = types[-1]
    rest = {m for m in ins.mods if m not in DTYPES}
    if allowed is not None and t not in allowed:
        raise UnsupportedError(f"type .{t}")
    unknown = rest - extra
    if unknown:
        raise UnsupportedError("modifier " + " ".join(f".{m}" for m in sorted(unknown)))
    return t, rest


def operands_of(ins: Instruction, count: int) -> tuple[Operand, ...]:
    if len(ins.operands) != count:
        raise UnsupportedError(f"{len(ins.operands)} operands, expected {count}")
    return ins.operands


INT_TYPES = {"u16", "u32", "u64", "s16", "s32", "s64", "b16", "b32", "b64"}
FLOAT_TYPES = {"f32", "f64"}
BIT_TYPES = {"b16", "b32", "b64"}


def round_mode(rest: set[str], default: str = "rn") -> str:
    modes = rest & ROUND_MODES
    return modes.pop() if modes else default


def unary(c: Compiler, ins: Instruction, fn: Callable[[Value], Value], t: str) -> Runner:
    d, a = operands_of(ins, 2)
    dt = DTYPES[t]
    get, put = c.read(a, dt), c.write(d, dt)
    return lambda f, m: put(f, fn(get(f)), m)


def binary(
    c: Compiler,
    ins: Instruction,
    fn: Callable[[Value, Value], Value],
    t: str,
    out: str | None = None,
    b_type: str | None = None,
) -> Runner:
    d, a, b = operands_of(ins, 3)
    dt = DTYPES[t]
    ga, gb = c.read(a, dt), c.read(b, DTYPES[b_type or t])
    put = c.write(d, DTYPES[out or t])
    return lambda f, m: put(f, fn(ga(f), gb(f)), m)


def float_post(t: str, rest: set[str]) -> Callable[[Value], Value]:
    ftz = "ftz" in rest and t == "f32"
    sat = "sat" in rest

    def post(v: Value) -> Value:
        if ftz:
            v = ftz32(v)
        if sat:
            v = np.where(np.isnan(v), 0, np.clip(v, 0, 1)).astype(v.dtype)
        return v

    return post


def float_pre(t: str, rest: set[str]) -> Callable[[Value], Value]:
    if "ftz" in rest and t == "f32":
        return ftz32
    return lambda v: v
