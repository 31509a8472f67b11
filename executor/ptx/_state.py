"""What a running batch of threads holds: registers per frame, shared, local and param memory.

A *batch* is one or more whole blocks whose threads execute together, thread ``t`` of the batch being
thread ``t % block_threads`` of block ``t // block_threads``. Every register is a NumPy array with one
element per thread of the batch — or a NumPy scalar while every thread holds the same value (loaded
parameters, constants, addresses derived from them), which arithmetic broadcasts. Registers are never
changed in place (a write builds a new array), so two registers may share one array safely.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from protocol import CUresult

from .._kernels import DeviceMemory

if TYPE_CHECKING:
    from ._cluster import ClusterShape
    from ._printf import PrintfSink
    from ._texture_objects import TextureObjects

__all__ = ["Batch", "KernelFaultError", "Frame", "Limits", "MustWaitError", "Value", "count_set"]

#: a register's or an operand's value: an ndarray with one element per thread, or a NumPy scalar
#: that every thread shares. Typed ``Any``: NumPy's operator stubs cannot type mixed array/scalar
#: arithmetic across dtypes, which is all the engine does.
Value = Any
Mask = npt.NDArray[np.bool_]


def _count_nonzero() -> Callable[[Any], int]:
    """NumPy's C ``count_nonzero``: ``np.count_nonzero`` wraps it in Python, which costs more than
    counting a small mask (the engine counts masks at every branch and guarded instruction)."""
    try:
        count: Callable[[Any], int] = importlib.import_module("numpy._core.multiarray").count_nonzero
    except (ImportError, AttributeError):
        return np.count_nonzero
    return count


#: how many elements of an array (a mask) are set
count_set = _count_nonzero()


class KernelFaultError(Exception):
    """What ends a launch from inside: a GPU's fault (illegal address, trap) or a bound (time)."""

    def __init__(self, status: CUresult, message: str, *, sticky: bool = True) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.sticky = sticky


class MustWaitError(Exception):
    """A waiting instruction (a named or cluster barrier) whose threads wait for threads on another
    path of the SIMT stack: the machine runs that path first and retries the instruction."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on one launch: wall-clock seconds and executed instructions (per batch-instruction,
    summed over the grid) before ``CUDA_ERROR_LAUNCH_TIMEOUT``; threads per batch; local memory.

    The time bound stays well inside the daemon's ``worker_timeout_s`` (30 s by default): a launch
    runs on the worker's thread, which publishes no heartbeat while it runs."""

    seconds: float = 5.0
    instructions: int = 50_000_000
    batch_threads: int = 16384
    local_bytes_per_thread: int = 64 << 10
    local_bytes_total: int = 64 << 20
    shared_bytes_total: int = 32 << 20
    call_depth: int = 64
    printf_bytes: int = 64 << 10  # printf output kept per launch; the rest is counted as dropped
    printf_lines: int = 1024


@dataclass(eq=False, slots=True)
class Batch:
    """One batch of blocks of a launch (see the module docstring)."""

    kernel: str
    memory: DeviceMemory
    symbols: Mapping[str, int]
    params: bytes
    n: int  # threads in the batch
    block_threads: int
    block_dim: tuple[int, int, int]
    grid_dim: tuple[int, int, int]
    block_index: npt.NDArray[np.intp]  # thread -> block of the batch (0-based)
    ctaid: tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint32], npt.NDArray[np.uint32]]
    tid: tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint32], npt.NDArray[np.uint32]]
    linear_tid: npt.NDArray[np.uint32]  # thread's index within its block
    shared: npt.NDArray[np.uint8]  # (blocks, bytes)
    dynamic_shared: int
    limits: Limits
    local: npt.NDArray[np.uint8] = field(default_factory=lambda: np.zeros((0, 0), dtype=np.uint8))
    exited: Mask = field(default_factory=lambda: np.zeros(0, dtype=np.bool_))
    printf: PrintfSink | None = None  # the launch's printf output
    deadline: float = float("inf")  # the launch's wall-clock bound (time.monotonic), for long ops
    #: a cooperative launch's grid-sync workspace (device memory; 0 otherwise), read by
    #: cooperative_groups through %envreg1 (high word) and %envreg2 (low word), as a driver provides it
    grid_workspace: int = 0
    #: an explicit cluster launch's shape (``_cluster``): its blocks are in the batch cluster by cluster
    cluster: ClusterShape | None = None
    #: the launching VM's texture and surface objects, by handle (``tex``, ``suld``, ``sust``, ...)
    textures: TextureObjects | None = None
    steps: int = 0  # batch-instructions executed, shared across the launch through Launch
    depth: int = 0
    #: what depends only on the batch's shape (lane numbers, shuffle sources for uniform operands),
    #: computed once per batch by the instructions that use it
    derived: dict[Any, Any] = field(default_factory=dict)
    #: thread ``t`` is thread ``t % block_threads`` of block ``t // block_threads`` (an ordinary batch);
    #: ``False`` for a compacted one (``_compact``), whose threads are some of a batch's
    whole_blocks: bool = True

    def ensure_local(self, top: int) -> None:
        """Grow every thread's local stack to ``top`` bytes, within the limits."""
        if top <= self.local.shape[1]:
            return
        limits = self.limits
        if top > limits.local_bytes_per_thread or top * self.n > limits.local_bytes_total:
            raise KernelFaultError(
                CUresult.CUDA_ERROR_NOT_SUPPORTED,
                f"the kernel needs {top} bytes of local memory per thread; the engine allows "
                f"{limits.local_bytes_per_thread} (and {limits.local_bytes_total} per batch)",
                sticky=False,
            )
        width = max(top, min(2 * self.local.shape[1], limits.local_bytes_per_thread))
        grown = np.zeros((self.n, width), dtype=np.uint8)
        grown[:, : self.local.shape[1]] = self.local
        self.local = grown


@dataclass(eq=False, slots=True)
class Frame:
    """One function activation: its registers, its ``.param`` variables and its local stack base."""

    batch: Batch
    regs: dict[str, Value]
    params: dict[str, npt.NDArray[np.uint8]]  # per-thread param bytes: (n, size)
    local_base: int
    entry: bool  # the kernel's own frame (its params are the launch's parameter block)
    function: str
    #: the SIMT stack of the frame's run (``_machine._run``): which registers threads waiting on it
    #: still need (``_liveness``)
    stack: list[Any] | None = None
