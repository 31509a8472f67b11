"""Running a kernel: prepared code, batches of blocks, the SIMT stack, barriers and bounds.

See the package docstring for the theory; this module holds :class:`LoadedModule` (a program with its
prepared kernels), :func:`launch` and the SIMT loop.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from protocol import CUresult

from .._errors import CudaError
from .._kernels import DeviceMemory, LaunchDims
from ._cluster import ClusterShape, cluster_shape
from ._compact import compactable, run_compact, sparse
from ._compiler import BAR, BRA, CALL, EXIT, PLAIN, RET, TRAP, WAIT, Compiler, Layout, Op, UnsupportedError
from ._fuse import Run, fuse
from ._held import held
from ._isa import COMPILERS
from ._isa_cluster import RESERVED_SMEM, RESERVED_SMEM_BYTES, reads_reserved_smem
from ._liveness import freeing_ops, frees, liveness, register_count, tracked
from ._parse import Instruction, PtxSyntaxError, Sym, Variable
from ._printf import PrintfSink
from ._printf import emit as emit_printf
from ._program import EXIT as NEVER
from ._program import FunctionCode, Program, build_program
from ._state import Batch, Frame, KernelFaultError, Limits, MustWaitError, count_set
from ._texture_objects import TextureObjects

__all__ = [
    "CACHED_MODULES",
    "CACHED_TEXT_BYTES",
    "GRID_WORKSPACE_BYTES",
    "PARSED_BYTES_PER_TEXT_BYTE",
    "PREPARED_BYTES_PER_INSTRUCTION",
    "Budget",
    "Kernel",
    "KernelResources",
    "LoadedModule",
    "launch",
    "load_module",
]

Mask = npt.NDArray[np.bool_]

#: bytes of registers one batch may hold (threads x registers held, ``_liveness``, x 8); with the
#: shared and local bounds of :class:`Limits` this keeps a launch's memory well inside a sim worker's
#: own limit (``worker_memory_overhead``, 512 MiB by default)
REGISTER_BYTES = 64 << 20
#: bytes of registers the one batch of a cooperative grid may hold: every block must be resident at
#: once, so the whole grid is one batch (the device's co-resident limit: up to 2,048 threads per SM);
#: still well inside a sim worker's own limit
COOPERATIVE_REGISTER_BYTES = 3 * REGISTER_BYTES
#: a function declaring more registers than this lets its dead ones go as it runs (``_liveness``), so a
#: batch holds only the live ones; one declaring fewer holds them all (no cost per instruction)
FREE_REGISTERS_ABOVE = 64
#: device bytes a cooperative launch's grid-sync workspace holds (cooperative_groups uses a word at 4)
GRID_WORKSPACE_BYTES = 16
#: check the clock every this many batch-instructions
_CLOCK_EVERY = 256
#: how many threads of a mask are set (NumPy's fastest test of a small mask: no ufunc reduction)
_count = count_set
#: host bytes a parsed module holds per byte of its PTX text: its skeleton and the unparsed bodies
#: (measured on ggml-cuda's modules: 1.2-1.3 held, 2.7-4.5 at the parse's peak)
PARSED_BYTES_PER_TEXT_BYTE = 5
#: host bytes a prepared kernel holds per instruction of its functions (the parsed bodies, compiled
#: closures, the fused runs' two generated variants and the control-flow and liveness analyses;
#: measured on ggml-cuda's decode kernels: 3,700-4,100, of which the fused runs about 1,300)
PREPARED_BYTES_PER_INSTRUCTION = 5120


class Budget(Protocol):
    """The VM's host budget (``executor._base.HostBudget``): charged before host memory is spent;
    ``charge`` raises ``CUDA_ERROR_OUT_OF_MEMORY`` (a :class:`CudaError`) past it."""

    @property
    def available(self) -> int: ...

    def charge(self, nbytes: int, what: str) -> None: ...

    def release(self, nbytes: int) -> None: ...


@dataclass(slots=True)
class Kernel:
    """A kernel prepared for launches: every reachable function compiled, variables placed."""

    name: str
    ops: dict[str, list[Op]]
    fused: dict[str, list[Run | None]]  # function -> pc -> the fused run starting there
    codes: dict[str, FunctionCode]
    reconvergence: dict[str, list[int]]
    layout: Layout
    param_bytes: int
    registers: int  # registers per thread a batch holds, over the reachable functions (_liveness)
    #: the kernel's own function: pc -> the registers its fused run names, where the run may run on a
    #: compacted batch when few threads are active (``_compact``)
    compact: list[tuple[str, ...] | None] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class KernelResources:
    """What the engine — ``sim``'s JIT compiler — lays out for a kernel, in ``cuFuncGetAttribute``'s
    terms: static shared bytes per block, the module's ``.const`` bytes, local bytes per thread (the
    frames of the kernel and every function it may call), registers per thread (those a batch holds
    at once for the kernel and its callees, ``_liveness``; at most 255 as a GPU's compiler allocates,
    spilling the rest) and the
    largest block the engine runs (the device's limit or the engine's register bound; the caller
    applies the kernel's launch bound)."""

    static_shared: int
    const_bytes: int
    local_bytes: int
    registers: int
    max_threads: int


class LoadedModule:
    """One module's PTX, parsed once; kernels are prepared at their first launch and kept.

    What it holds is charged to the budgets of the VMs that use it (:attr:`charges`): the parse to
    each VM that loads it (as each would hold its own copy in a worker of its own), a kernel's
    preparation to the VM whose launch prepares it; all released when the cache lets it go."""

    def __init__(self, text: str) -> None:
        try:
            self.program: Program | None = build_program(text)
            self.error = ""
        except PtxSyntaxError as exc:
            self.program, self.error = None, f"the engine cannot read the module's PTX: {exc}"
        self._kernels: dict[str, Kernel | str] = {}
        self.charges: list[tuple[Budget, int]] = []

    def charged(self, budget: Budget) -> bool:
        return any(b is budget for b, _ in self.charges)

    def release(self) -> None:
        """Give every charge back (the module leaves the cache)."""
        for budget, nbytes in self.charges:
            budget.release(nbytes)
        self.charges.clear()

    def kernel(self, name: str, budget: Budget | None = None) -> Kernel:
        """The prepared kernel, or CUDA_ERROR_NOT_SUPPORTED saying which instruction stops it;
        ``budget`` pays for a preparation before it starts (OUT_OF_MEMORY past it)."""
        known = self._kernels.get(name)
        if known is None:
            if budget is not None:
                self._charge_preparation(name, budget)
            try:
                known = self._prepare(name)
            except (UnsupportedError, PtxSyntaxError) as exc:
                known = f"kernel {name} uses what the PTX engine does not implement: {exc}"
            except (ArithmeticError, LookupError, TypeError, ValueError, RecursionError) as exc:
                # the engine's own failure on this (untrusted) code: refused, never a wrong result
                known = f"the PTX engine could not prepare kernel {name} ({type(exc).__name__}: {exc})"
            self._kernels[name] = known
        if isinstance(known, str):
            raise CudaError(CUresult.CUDA_ERROR_NOT_SUPPORTED, known)
        return known

    def resources(self, name: str, device_max_threads: int) -> KernelResources:
        """The kernel's layout without preparing it (no instruction is compiled), or
        CUDA_ERROR_NOT_SUPPORTED when the module cannot be read or has no such entry."""
        program = self.program
        try:
            entry = program.entry(name) if program is not None else None
            if program is None or entry is None:
                raise CudaError(
                    CUresult.CUDA_ERROR_NOT_SUPPORTED, self.error or f"no .entry {name} in the module's PTX"
                )
            reachable = _reachable(program, entry)
        except PtxSyntaxError as exc:
            raise CudaError(
                CUresult.CUDA_ERROR_NOT_SUPPORTED, f"the engine cannot read kernel {name}'s PTX: {exc}"
            ) from exc
        layout = _layout(program, reachable)
        registers = sum(_registers_held(code) for code in reachable)
        most = min(device_max_threads, REGISTER_BYTES // (max(registers, 1) * 8))
        const = sum(v.size for v in program.variables if v.space == "const")
        return KernelResources(
            layout.static_shared, const, sum(layout.frame_bytes.values()), min(registers, 255), most
        )

    def _charge_preparation(self, name: str, budget: Budget) -> None:
        """Charge what preparing ``name`` will hold: its reachable functions' instructions (the
        instruction count comes from the parse; no analysis is built for it)."""
        program = self.program
        fn = program.module.functions.get(name) if program is not None else None
        if program is None or fn is None or fn.kind != "entry" or not fn.defined:
            return  # nothing is prepared: the launch answers NOT_SUPPORTED
        seen = {name}
        todo = [fn]
        count = 0
        while todo:
            try:
                body = todo.pop().body or []
            except PtxSyntaxError:
                return  # the preparation fails on it too, before holding anything: NOT_SUPPORTED
            for item in body:
                if isinstance(item, Instruction):
                    count += 1
                    if item.opcode == "call":
                        callee = next((o.name for o in item.operands if isinstance(o, Sym)), "")
                        target = program.module.functions.get(callee)
                        if target is not None and callee not in seen:
                            seen.add(callee)
                            todo.append(target)
        nbytes = count * PREPARED_BYTES_PER_INSTRUCTION
        _make_room(budget, nbytes, self)
        budget.charge(nbytes, f"preparing kernel {name} ({count} PTX instructions) for the PTX engine")
        self.charges.append((budget, nbytes))

    def _prepare(self, name: str) -> Kernel:
        if self.program is None:
            raise UnsupportedError(self.error)
        program = self.program
        entry = program.entry(name)
        if entry is None:
            raise UnsupportedError(f"no .entry {name} in the module's PTX")
        reachable = _reachable(program, entry)
        globals_ = {v.name: v for v in program.variables if v.space in ("global", "const")}
        layout = _layout(program, reachable)
        ops: dict[str, list[Op]] = {}
        fused: dict[str, list[Run | None]] = {}
        reconv: dict[str, list[int]] = {}
        registers = 0
        for code in reachable:
            compiler = Compiler(code, layout, program.functions, globals_, COMPILERS)
            compiled = compiler.compile()
            facts = liveness(code) if tracked(code, FREE_REGISTERS_ABOVE) else None
            if facts is not None:  # let dead registers go: a batch holds only the live ones
                compiled = freeing_ops(compiled, code, facts)
            ops[code.name] = compiled
            after = frees(code, facts) if facts is not None else None
            runs = fuse(compiler, compiled, code.code, set(code.block_start), after)
            registers += register_count(code, facts) if facts is not None else len(code.function.registers)
            fused[code.name] = [runs.get(pc) for pc in range(len(compiled))]
            reconv[code.name] = [code.reconvergence(pc) for pc in range(len(code.code))]
        param_bytes = 0
        for p in entry.function.params:
            param_bytes = -(-param_bytes // p.align) * p.align + p.size
        codes = {c.name: c for c in reachable}
        names = {p.name for p in entry.function.params}
        compact = [
            compactable(entry.code[pc : pc + run.length], entry.function.registers, names) if run else None
            for pc, run in enumerate(fused[name])
        ]
        return Kernel(name, ops, fused, codes, reconv, layout, param_bytes, registers, compact)


def _registers_held(code: FunctionCode) -> int:
    """Registers per thread a batch holds for ``code``: the live ones where it lets dead ones go."""
    return register_count(code) if tracked(code, FREE_REGISTERS_ABOVE) else len(code.function.registers)


def _reachable(program: Program, entry: FunctionCode) -> list[FunctionCode]:
    out = [entry]
    seen = {entry.name}
    todo = [entry]
    while todo:
        code = todo.pop()
        for ins in code.code:
            if ins.opcode == "call":
                callee = next((o.name for o in ins.operands if isinstance(o, Sym)), None)
                target = program.functions.get(callee or "")
                if target is not None and target.name not in seen:
                    seen.add(target.name)
                    out.append(target)
                    todo.append(target)
    return out


def _align(value: int, alignment: int) -> int:
    return -(-value // alignment) * alignment


def _layout(program: Program, reachable: list[FunctionCode]) -> Layout:
    layout = Layout()
    shared: list[Variable] = [v for v in program.variables if v.space == "shared"]
    for code in reachable:
        shared += [v for v in code.function.variables if v.space == "shared"]
    offset = 0
    dynamic: list[Variable] = []
    for var in shared:
        if var.extern or var.size == 0:
            dynamic.append(var)
            continue
        offset = _align(offset, var.align)
        layout.shared[var.name] = offset
        offset += var.size
    layout.static_shared = offset
    if any(reads_reserved_smem(code) for code in reachable):  # the block's reserved region, after them
        offset = _align(offset, 16)
        layout.shared[RESERVED_SMEM] = offset
        offset += RESERVED_SMEM_BYTES
    layout.dynamic_base = _align(offset, max([16] + [v.align for v in dynamic]))
    for var in dynamic:
        layout.shared[var.name] = layout.dynamic_base
    for code in reachable:
        local: dict[str, int] = {}
        top = 0
        for var in code.function.variables:
            if var.space == "local":
                top = _align(top, var.align)
                local[var.name] = top
                top += var.size
        layout.local[code.name] = local
        layout.frame_bytes[code.name] = _align(top, 16)
    return layout


# ---------------------------------------------------------------------------------------------


#: parsed modules kept across launches, the most recently used first: at most this many, and at
#: most :data:`CACHED_TEXT_BYTES` of PTX text among them (what a parsed module holds grows with it)
CACHED_MODULES = 16
CACHED_TEXT_BYTES = 64 << 20
_cache: OrderedDict[str, LoadedModule] = OrderedDict()
_cache_lock = threading.RLock()


def _make_room(budget: Budget, nbytes: int, keep: LoadedModule | None) -> None:
    """Let cached modules charged to ``budget`` go, least recently used first, until ``nbytes``
    more fit in it (or none is left but ``keep``): a VM's own cache never refuses its launch."""
    with _cache_lock:
        for text, module in list(_cache.items()):
            if budget.available >= nbytes:
                return
            if module is not keep and module.charged(budget):
                del _cache[text]
                module.release()


def load_module(text: str, budget: Budget | None = None) -> LoadedModule:
    """The module for this PTX, parsed at most once while it stays among the recently used.

    ``budget`` (the launching VM's host budget) is charged for the parsed module before the parse,
    once per VM while the module stays cached; past it the call raises ``CUDA_ERROR_OUT_OF_MEMORY``."""
    cost = len(text) * PARSED_BYTES_PER_TEXT_BYTE
    what = f"parsing a module's PTX ({len(text)} bytes) for the PTX engine"
    with _cache_lock:
        module = _cache.get(text)
        if module is not None:
            _cache.move_to_end(text)
            if budget is not None and not module.charged(budget):
                _make_room(budget, cost, module)
                budget.charge(cost, what)
                module.charges.append((budget, cost))
            return module
        if budget is not None:
            _make_room(budget, cost, None)
            budget.charge(cost, what)
    try:
        module = LoadedModule(text)
    except BaseException:
        if budget is not None:
            budget.release(cost)
        raise
    if budget is not None:
        module.charges.append((budget, cost))
    with _cache_lock:
        previous = _cache.pop(text, None)  # another thread parsed it meanwhile: keep this one
        if previous is not None:
            previous.release()
        _cache[text] = module
        held = sum(len(key) for key in _cache)
        while len(_cache) > 1 and (len(_cache) > CACHED_MODULES or held > CACHED_TEXT_BYTES):
            evicted, gone = _cache.popitem(last=False)
            gone.release()
            held -= len(evicted)
    return module


def launch(
    module: LoadedModule,
    name: str,
    memory: DeviceMemory,
    dims: LaunchDims,
    params: bytes,
    symbols: Mapping[str, int],
    limits: Limits | None = None,
    *,
    grid_workspace: int = 0,
    cluster: tuple[int, int, int] | None = None,
    textures: TextureObjects | None = None,
) -> int:
    """Run kernel ``name`` for a whole grid; returns the batch-instructions executed (one per
    instruction issued for a batch of threads). Raises only :class:`CudaError`.

    ``grid_workspace`` (a cooperative launch: 0 for an ordinary one) is device memory of at least
    :data:`GRID_WORKSPACE_BYTES` zeroed bytes, which cooperative_groups' ``grid.sync()`` uses as its
    barrier word; the whole grid then runs as one batch in lockstep, so that every block is resident
    while any waits on the others (CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE when the engine cannot hold
    it as one batch).

    ``cluster`` (the launch's cluster-dimension attribute) or the kernel's ``.reqnctapercluster`` makes
    it a cluster launch (``_cluster``): each batch holds whole clusters.

    ``textures`` resolves the texture and surface object handles the kernel's ``tex``/``suld``/``sust``
    name (``None``: the VM has none, and every handle is unknown)."""
    kernel = module.kernel(name)
    limits = limits or Limits()
    if len(params) < kernel.param_bytes:
        raise CudaError(
            CUresult.CUDA_ERROR_INVALID_VALUE,
            f"kernel {name}: the parameter block has {len(params)} bytes, the kernel takes "
            f"{kernel.param_bytes}",
        )
    bt = dims.block[0] * dims.block[1] * dims.block[2]
    blocks = dims.grid[0] * dims.grid[1] * dims.grid[2]
    shared_size = kernel.layout.dynamic_base + dims.shared_bytes
    if bt * max(kernel.registers, 1) * 8 > REGISTER_BYTES or shared_size > limits.shared_bytes_total:
        raise CudaError(
            CUresult.CUDA_ERROR_NOT_SUPPORTED,
            f"kernel {name}: {kernel.registers} registers for {bt} threads per block and "
            f"{shared_size} bytes of shared memory exceed what the engine holds for one block",
        )
    # local memory: the frames of every function the kernel may call, once (recursion grows past it)
    local = sum(kernel.layout.frame_bytes.values())
    per_batch = max(
        1,
        min(
            limits.batch_threads // bt,
            REGISTER_BYTES // (bt * max(kernel.registers, 1) * 8),
            limits.shared_bytes_total // max(shared_size, 1),
            limits.local_bytes_total // max(bt * local, 1),
        ),
    )
    if grid_workspace:
        most = _cooperative_blocks(kernel, bt, shared_size, local, limits)
        if most < blocks:
            raise CudaError(
                CUresult.CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE,
                f"kernel {name}: a cooperative grid of {blocks} blocks of {bt} threads runs as one batch; "
                f"the engine holds at most {most} such blocks at once ({kernel.registers} registers, "
                f"{shared_size} bytes of shared and {local} of local memory per thread)",
            )
        per_batch = blocks
    clustered = cluster_shape(name, dims.grid, kernel.codes[name].function.cluster_dims, cluster, shared_size)
    if clustered is not None and not grid_workspace:  # whole clusters in each batch
        most = _cooperative_blocks(kernel, bt, shared_size, local, limits)
        if most < clustered.size:
            raise CudaError(
                CUresult.CUDA_ERROR_NOT_SUPPORTED,
                f"kernel {name}: a cluster of {clustered.size} blocks of {bt} threads runs as one batch; "
                f"the engine holds at most {most} such blocks at once",
            )
        per_batch = min(most, max(per_batch // clustered.size, 1) * clustered.size)
        per_batch -= per_batch % clustered.size
    deadline = time.monotonic() + limits.seconds
    printed = PrintfSink(limits.printf_bytes, limits.printf_lines)
    steps = 0
    first = 0
    try:
        with np.errstate(all="ignore"):
            while first < blocks:
                count = min(per_batch, blocks - first)
                batch = _batch(
                    kernel, memory, symbols, params, dims, first, count, shared_size, limits, clustered
                )
                batch.steps = steps
                batch.printf, batch.deadline = printed, deadline
                batch.grid_workspace = grid_workspace
                batch.textures = textures
                _run_entry(batch, kernel, deadline)
                steps = batch.steps
                first += count
    except KernelFaultError as fault:
        raise CudaError(fault.status, f"kernel {name}: {fault.message}", sticky=fault.sticky) from fault
    except CudaError:
        raise
    except (ArithmeticError, ValueError, IndexError, TypeError, KeyError, MemoryError) as exc:
        raise CudaError(
            CUresult.CUDA_ERROR_LAUNCH_FAILED,
            f"kernel {name}: the PTX engine failed ({type(exc).__name__}: {exc})",
            sticky=True,
        ) from exc
    finally:
        emit_printf(name, printed)  # what the kernel printed before it ended, as a GPU flushes it
    return steps


def _cooperative_blocks(kernel: Kernel, bt: int, shared_size: int, local: int, limits: Limits) -> int:
    """How many blocks of ``bt`` threads one batch may hold for a cooperative launch: the memory bounds
    of an ordinary batch (shared and local memory; registers within :data:`COOPERATIVE_REGISTER_BYTES`),
    without its thread count (which only trades speed for memory)."""
    return min(
        COOPERATIVE_REGISTER_BYTES // (bt * max(kernel.registers, 1) * 8),
        limits.shared_bytes_total // max(shared_size, 1),
        limits.local_bytes_total // max(bt * local, 1),
    )


def _batch(
    kernel: Kernel,
    memory: DeviceMemory,
    symbols: Mapping[str, int],
    params: bytes,
    dims: LaunchDims,
    first: int,
    count: int,
    shared_size: int,
    limits: Limits,
    cluster: ClusterShape | None = None,
) -> Batch:
    bt = dims.block[0] * dims.block[1] * dims.block[2]
    n = bt * count
    tid, linear_tid, block_index = _batch_shape(dims.block, count)
    if cluster is None and n <= _SHAPE_CACHE_THREADS:
        ctaid = _cached_ctaid(dims.grid, bt, first, count)
    else:
        ctaid = _ctaid(dims.grid, bt, first, count, cluster)
    return Batch(
        kernel=kernel.name,
        memory=memory,
        symbols=symbols,
        params=params,
        n=n,
        block_threads=bt,
        block_dim=dims.block,
        grid_dim=dims.grid,
        block_index=block_index,
        ctaid=ctaid,
        tid=tid,
        linear_tid=linear_tid,
        shared=np.zeros((count, shared_size), dtype=np.uint8),
        dynamic_shared=dims.shared_bytes,
        limits=limits,
        local=np.zeros((n, 0), dtype=np.uint8),
        exited=np.zeros(n, dtype=np.bool_),
        cluster=cluster,
    )


#: batches of at most this many threads share their shape's arrays (:func:`_batch_shape`) and their
#: blocks' %ctaid (:func:`_cached_ctaid`: a decode step launches many one-batch grids of few threads)
_SHAPE_CACHE_THREADS = 16384

CtaId = tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint32], npt.NDArray[np.uint32]]


def _ctaid(
    grid: tuple[int, int, int], bt: int, first: int, count: int, cluster: ClusterShape | None
) -> CtaId:
    """Each thread's ``%ctaid`` for the batch of ``count`` blocks from block ``first``."""
    gx, gy, _ = grid
    blocks = np.arange(first, first + count, dtype=np.int64)  # the blocks in the grid, then per thread
    if cluster is not None:  # positions in the cluster-major order
        blocks = cluster.grid_blocks(blocks)
    u32 = np.uint32
    return (
        np.repeat((blocks % gx).astype(u32), bt),
        np.repeat(((blocks // gx) % gy).astype(u32), bt),
        np.repeat((blocks // (gx * gy)).astype(u32), bt),
    )


def _cached_ctaid(grid: tuple[int, int, int], bt: int, first: int, count: int) -> CtaId:
    # read-only, shared by every batch of this shape and place (_held)
    return held(("ctaid", grid, bt, first, count), lambda: _ctaid(grid, bt, first, count, None))


def _batch_shape(
    block: tuple[int, int, int], count: int
) -> tuple[
    tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint32], npt.NDArray[np.uint32]],
    npt.NDArray[np.uint32],
    npt.NDArray[np.intp],
]:
    """Each thread's ``%tid``, index within its block and block within the batch: a function of the
    block's shape and the batch's block count only, so computed once for every batch of that shape
    (read-only, shared) when the batch is an ordinary one."""
    if block[0] * block[1] * block[2] * count <= _SHAPE_CACHE_THREADS:
        return _cached_shape(block, count)
    return _shape_arrays(block, count)


def _shape_arrays(
    block: tuple[int, int, int], count: int
) -> tuple[
    tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint32], npt.NDArray[np.uint32]],
    npt.NDArray[np.uint32],
    npt.NDArray[np.intp],
]:
    bx, by, bz = block
    bt = bx * by * bz
    t = np.arange(bt * count, dtype=np.int64)
    lt = t % bt
    u32 = np.uint32
    tid = ((lt % bx).astype(u32), ((lt // bx) % by).astype(u32), (lt // (bx * by)).astype(u32))
    return tid, lt.astype(u32), (t // bt).astype(np.intp)


def _cached_shape(
    block: tuple[int, int, int], count: int
) -> tuple[
    tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint32], npt.NDArray[np.uint32]],
    npt.NDArray[np.uint32],
    npt.NDArray[np.intp],
]:
    return held(("shape", block, count), lambda: _shape_arrays(block, count))


def _run_entry(batch: Batch, kernel: Kernel, deadline: float) -> None:
    entry = kernel.name
    batch.ensure_local(kernel.layout.frame_bytes[entry])
    frame = Frame(batch, {}, {}, 0, True, entry)
    _run(frame, kernel, entry, np.ones(batch.n, dtype=np.bool_), deadline)


def _fault_at(op: Op, fn: str, fault: KernelFaultError) -> KernelFaultError:
    return KernelFaultError(
        fault.status, f"{fault.message} (at {op.text}, line {op.line} of {fn})", sticky=fault.sticky
    )


def _run(frame: Frame, kernel: Kernel, fn: str, mask: Mask, deadline: float) -> None:
    """Execute function ``fn`` for the threads in ``mask`` until each returns or exits.

    The stack's entries are ``[pc, reconvergence pc, mask]``; the top one runs. A divergent branch
    turns the top entry into its reconvergence entry and pushes the two paths; an entry whose pc
    reaches its reconvergence pc is popped, its threads continuing in the entry below.
    """
    batch = frame.batch
    ops = kernel.ops[fn]
    fused = kernel.fused[fn]
    reconv = kernel.reconvergence[fn]
    nops = len(ops)
    compact = kernel.compact if frame.entry and batch.cluster is None else []
    limit = batch.limits.instructions
    stack: list[list[Any]] = [[0, NEVER, mask]]
    frame.stack = stack  # which registers its waiting threads still need (_liveness)
    full = _count(mask) == mask.size
    dirty = False
    stalled = -2  # batch.steps when a wait last let its sibling path run
    while stack:
        top = stack[-1]
        pc, rpc, m = top
        if dirty:
            if pc < 0 or pc == rpc or not _count(m):
                stack.pop()
                continue
            full = _count(m) == m.size
            dirty = False
        elif pc < 0 or pc == rpc:
            stack.pop()
            dirty = True
            continue
        if pc >= nops:  # falling off the end is a return
            gone = m
            _leave(batch, stack, gone, frame.entry)
            dirty = True
            continue
        op = ops[pc]
        run = fused[pc]
        if run is not None:  # a straight line of plain instructions, as one generated function
            before = batch.steps
            batch.steps = before + run.length
            if batch.steps // _CLOCK_EVERY != before // _CLOCK_EVERY:
                _check_budget(batch, deadline, limit, op, fn)
            try:
                if full:
                    run.full(frame, None, m)
                elif compact and (names := compact[pc]) is not None and sparse(batch, _count(m)):
                    run_compact(frame, run, m, names)  # few threads: as a batch of their own
                else:
                    run.masked(frame, m, m)
            except KernelFaultError as fault:
                raise _fault_at(ops[pc + run.op_index(fault.__traceback__)], fn, fault) from fault
            top[0] = pc + run.length
            continue
        batch.steps += 1
        if batch.steps % _CLOCK_EVERY == 0:
            _check_budget(batch, deadline, limit, op, fn)
        eff = m
        if op.guard is not None:
            g = op.guard(frame)
            if type(g) is not np.ndarray:  # a uniform predicate: every active thread or none
                eff = m if g else _none_of(batch)
            elif not full:
                eff = m & g
            else:  # registers are never changed in place, so the predicate itself is the mask
                eff = g
        kind = op.kind
        try:
            if kind == PLAIN:
                if op.guard is None:
                    active = None if full else m
                    op.run(frame, active)
                    pc += 1
                    # the straight-line run that follows, without going back through the stack
                    while pc < nops and pc != rpc:
                        op = ops[pc]
                        if op.kind != PLAIN or op.guard is not None:
                            break
                        batch.steps += 1
                        if batch.steps % _CLOCK_EVERY == 0:
                            _check_budget(batch, deadline, limit, op, fn)
                        op.run(frame, active)
                        pc += 1
                    top[0] = pc
                    continue
                if _count(eff):
                    op.run(frame, eff)
                top[0] = pc + 1
            elif kind == BRA:
                if op.guard is None:
                    top[0] = op.target
                    if op.target <= pc and len(stack) > 1:  # a loop's back edge: maybe a spin
                        dirty |= _yield_to_sibling(stack)
                elif not _count(eff):
                    top[0] = pc + 1
                else:
                    rest = m & ~eff
                    if not _count(rest):
                        top[0] = op.target
                        if op.target <= pc and len(stack) > 1:
                            dirty |= _yield_to_sibling(stack)
                    else:
                        r = reconv[pc]
                        top[0] = r if r != NEVER else -1
                        stack.append([pc + 1, r, rest])
                        stack.append([op.target, r, eff])
                        dirty = True
            elif kind in (RET, EXIT):
                top[0] = pc + 1
                if op.guard is None or _count(eff):
                    if kind == EXIT:
                        batch.exited |= eff
                    _leave(batch, stack, eff, frame.entry)
                    dirty = True
            elif kind == CALL:
                top[0] = pc + 1
                if op.guard is None or _count(eff):
                    _call(frame, kernel, op, eff, deadline)
                    if _count(batch.exited):
                        _leave(batch, stack, batch.exited, frame.entry)
                    dirty = True
            elif kind == BAR:
                top[0] = pc + 1
                _barrier(frame, stack, ops, eff, op)
                if op.run is not None:  # bar.red: the reduction once every thread is there
                    op.run(frame, None if full and op.guard is None else eff)
            elif kind == WAIT:  # a barrier that may wait for threads on the sibling path
                if op.guard is None or _count(eff):
                    try:
                        op.run(frame, None if full and op.guard is None else eff)
                    except MustWaitError as wait:
                        # the sibling runs and this instruction is retried after it, unless the
                        # sibling itself just failed its wait without doing anything (a deadlock)
                        if len(stack) > 1 and batch.steps != stalled + 1 and _yield_to_sibling(stack):
                            stalled = batch.steps
                            dirty = True
                            continue
                        raise KernelFaultError(CUresult.CUDA_ERROR_LAUNCH_FAILED, str(wait)) from wait
                top[0] = pc + 1
            elif kind == TRAP:
                if op.guard is None or _count(eff):
                    raise KernelFaultError(CUresult.CUDA_ERROR_LAUNCH_FAILED, "the kernel executed trap")
                top[0] = pc + 1
        except KernelFaultError as fault:
            raise _fault_at(op, fn, fault) from fault


def _none_of(batch: Batch) -> Mask:
    """An all-false mask of the batch's width (read-only: masks are never changed in place)."""
    none: Mask | None = batch.derived.get(_NONE)
    if none is None:
        none = batch.derived[_NONE] = np.zeros(batch.n, dtype=np.bool_)
    return none


_NONE = "machine.none"


def _yield_to_sibling(stack: list[list[Any]]) -> bool:
    """At a loop's back edge the running path lets its sibling — the other path of the branch that
    split them, which reconverges at the same pc — run first. Under independent thread scheduling a
    path may spin until threads on the other path write what it waits for (cooperative_groups'
    multi-warp tiles, an mbarrier's consumer waiting on its producer warp); in lockstep it would spin
    forever. Either order is one a GPU may choose, so taking turns at back edges changes nothing else."""
    top, below = stack[-1], stack[-2]
    if below[1] != top[1] or below[0] == below[1] or below[0] < 0:
        return False
    stack[-1], stack[-2] = below, top
    return True


def _leave(batch: Batch, stack: list[list[Any]], gone: Mask, entry: bool) -> None:
    """Threads in ``gone`` returned (or exited): they leave every entry of this function's stack."""
    for item in stack:
        item[2] = item[2] & ~gone


def _check_budget(batch: Batch, deadline: float, limit: int, op: Op, fn: str) -> None:
    if batch.steps > limit or time.monotonic() > deadline:
        raise KernelFaultError(
            CUresult.CUDA_ERROR_LAUNCH_TIMEOUT,
            f"the launch ran past its bound ({batch.steps} instructions, limit {limit} or "
            f"{batch.limits.seconds} s) at {op.text}, line {op.line} of {fn}",
        )


def _call(frame: Frame, kernel: Kernel, op: Op, mask: Mask, deadline: float) -> None:
    batch = frame.batch
    if batch.depth >= batch.limits.call_depth:
        raise KernelFaultError(
            CUresult.CUDA_ERROR_LAUNCH_FAILED,
            f"calls nest deeper than {batch.limits.call_depth} (recursion bound)",
        )
    callee = kernel.codes[op.callee].function
    params: dict[str, npt.NDArray[np.uint8]] = {}
    for var, arg in zip(callee.params, op.call_args, strict=True):
        params[var.name] = _param_array(frame, arg, var.size)
    for var, ret in zip(callee.returns, op.call_rets, strict=True):
        params[var.name] = _param_array(frame, ret, var.size)
    base = frame.local_base + kernel.layout.frame_bytes[frame.function]
    batch.ensure_local(base + kernel.layout.frame_bytes[op.callee])
    inner = Frame(batch, {}, params, base, False, op.callee)
    batch.depth += 1
    try:
        _run(inner, kernel, op.callee, mask, deadline)
    finally:
        batch.depth -= 1


def _param_array(frame: Frame, name: str, size: int) -> npt.NDArray[np.uint8]:
    buf = frame.params.get(name)
    if buf is None or buf.shape[1] < size:
        grown = np.zeros((frame.batch.n, size), dtype=np.uint8)
        if buf is not None:
            grown[:, : buf.shape[1]] = buf
        buf = frame.params[name] = grown
    return buf


def _barrier(frame: Frame, stack: list[list[Any]], ops: list[Op], arrived: Mask, op: Op) -> None:
    """``bar.sync``: every thread of each block that is still running must be here (or none).

    Threads that exited count as arrived (as on a GPU), and so do threads of the kernel's own frame
    that wait, below the running path, at an unconditional ``ret``/``exit``: they have nothing left
    to do but exit. A block in which only some of its running threads reach the barrier is a
    barrier in divergent code — undefined behaviour in CUDA — and ends the launch with
    ``CUDA_ERROR_LAUNCH_FAILED``.
    """
    if _count(arrived) == arrived.size:  # every thread of the batch is here: no block is partial
        return
    batch = frame.batch
    done = batch.exited.copy()
    if frame.entry:
        above = np.zeros(batch.n, dtype=np.bool_)
        for item in reversed(stack):
            pc, _, m = item
            if 0 <= pc < len(ops) and ops[pc].kind == EXIT and ops[pc].guard is None:
                done |= m & ~above
            above |= m
    here = arrived.reshape(-1, batch.block_threads)
    accounted = (arrived | done).reshape(-1, batch.block_threads)
    partial = here.any(axis=1) & ~accounted.all(axis=1)
    if partial.any():
        block = int(np.flatnonzero(partial)[0])
        got = int(here[block].sum())
        raise KernelFaultError(
            CUresult.CUDA_ERROR_LAUNCH_FAILED,
            f"{op.text} reached by {got} of the {batch.block_threads} threads of a block while "
            "others are still running elsewhere (a barrier in divergent code)",
        )
