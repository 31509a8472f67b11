"""The executor interface that every backend implements, and the per-VM bookkeeping they share.

A backend serves exactly one VM (it lives in that VM's worker process). The worker decodes each
submission into a :class:`protocol.CallSpec` and an argument model and calls
:meth:`Executor.execute`; the backend dispatches to the handler named after the call
(``mem_alloc``, ``memcpy_htod``, …) with the signature ``(self, args, io) -> result model``. A call a
backend has no handler for answers ``CUDA_ERROR_NOT_SUPPORTED`` and is logged.

Handles that the guest sees (streams, events, modules, …) are small per-VM ids from a
:class:`HandleTable`; device pointers are the backend's real device addresses, and every copy and
memset is checked against the VM's own allocations in :class:`AllocationMap` first.
"""

from __future__ import annotations

import bisect
import itertools
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import structlog

from protocol import CallSpec, CublasStatus, CUresult, WireModel

from ._errors import CudaError
from ._pinned import PinnedClient

__all__ = [
    "Allocation",
    "AllocationMap",
    "CallIO",
    "DeviceConfig",
    "Executor",
    "HandleTable",
    "HostBudget",
]

T = TypeVar("T")
log = structlog.get_logger("executor")


@dataclass(slots=True)
class CallIO:
    """One call's payloads: ``inp`` (read-only input), ``out`` (the output area, ``out_cap`` bytes)
    and ``blocking`` (True when the guest waits: an async-capable call submitted without ASYNC must
    finish its work before the handler returns). A handler sets ``out_len`` to the bytes it wrote."""

    inp: memoryview
    out: memoryview
    blocking: bool = True
    out_len: int = 0


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    """What the virtual device reports about itself (the sim backend's whole identity)."""

    name: str = "vGPU Simulated H100"
    total_memory: int = 16 * 1024**3
    compute_capability: tuple[int, int] = (9, 0)
    uuid: bytes = bytes.fromhex("5647505553494d000000000000000001")
    pci_bus_id: str = "0000:00:05.0"
    multiprocessor_count: int = 132
    driver_version: int = 13000  # CUDA 13.0: a runtime refuses a driver older than itself
    # sim's PTX engine, per launch (executor.ptx.Limits, whose defaults these are): the bounds past which
    # a launch ends with CUDA_ERROR_LAUNCH_TIMEOUT, and the printf output it keeps
    launch_timeout_s: float = 5.0
    launch_instructions: int = 50_000_000
    printf_bytes: int = 64 << 10
    printf_lines: int = 1024
    # the largest module image a context loads (one larger than the arena comes in chunks), and what
    # its uploads under way may hold together (executor._module_upload)
    module_bytes: int = 64 << 20


class HandleTable(Generic[T]):
    """Per-VM ids for one kind of handle. Ids start at 1 (0 is CUDA's null handle) and are never
    reused within a session, so a stale id is always recognised as such. Tables that share ``ids``
    (one counter for all of a VM's kinds) never issue the same number twice, so a handle of the wrong
    kind is recognised as well: it is never issued in this table."""

    def __init__(self, kind: str, status: CUresult | CublasStatus = CUresult.CUDA_ERROR_INVALID_HANDLE,
                 limit: int = 1 << 20, *, ids: Iterator[int] | None = None) -> None:
        self.kind = kind
        self._status = status
        self._objects: dict[int, T] = {}
        self._ids = ids if ids is not None else itertools.count(1)
        self._limit = limit

    def add(self, obj: T) -> int:
        if len(self._objects) >= self._limit:
            raise CudaError(CUresult.CUDA_ERROR_OUT_OF_MEMORY,
                            f"too many live {self.kind} handles ({self._limit})")
        handle = next(self._ids)
        self._objects[handle] = obj
        return handle

    def get(self, handle: int) -> T:
        try:
            return self._objects[handle]
        except KeyError:
            raise CudaError(self._status, f"{self.kind} handle {handle} was never issued to this VM "
                            "or is already destroyed") from None

    def pop(self, handle: int) -> T:
        obj = self.get(handle)
        del self._objects[handle]
        return obj

    def __len__(self) -> int:
        return len(self._objects)

    def __contains__(self, handle: int) -> bool:
        return handle in self._objects

    def items(self) -> Iterator[tuple[int, T]]:
        return iter(list(self._objects.items()))

    def clear(self) -> list[T]:
        objects = list(self._objects.values())
        self._objects.clear()
        return objects


class HostBudget:
    """Host memory a VM's worker may spend on the guest's behalf outside device memory (parsed
    modules, graph nodes, trace records): charged *before* it is allocated, released when the
    object goes. ``limit`` None is unbounded (tests, tools); a worker gets the bound from its VM's
    settings (``mediator._limits``). Past it a call fails with ``CUDA_ERROR_OUT_OF_MEMORY``."""

    __slots__ = ("limit", "parent", "used")

    def __init__(self, limit: int | None, parent: HostBudget | None = None) -> None:
        self.limit = limit
        self.used = 0
        #: the VM's budget when this one is a context's (a channel's): every charge counts there too,
        #: so the VM's contexts share one bound
        self.parent = parent

    @property
    def available(self) -> int:
        own = (1 << 62) if self.limit is None else max(self.limit - self.used, 0)
        return own if self.parent is None else min(own, self.parent.available)

    def check(self, nbytes: int, what: str) -> None:
        """OUT_OF_MEMORY unless ``nbytes`` more would fit (charges nothing)."""
        if self.limit is not None and self.used + nbytes > self.limit:
            raise CudaError(CUresult.CUDA_ERROR_OUT_OF_MEMORY,
                            f"{what}: {nbytes} bytes of host memory would exceed the VM's host budget of "
                            f"{self.limit} bytes ({self.used} in use)")
        if self.parent is not None:
            self.parent.check(nbytes, what)

    def charge(self, nbytes: int, what: str) -> None:
        self.check(nbytes, what)
        self.used += nbytes
        if self.parent is not None:
            self.parent.used += nbytes

    def release(self, nbytes: int) -> None:
        released = min(nbytes, self.used)
        self.used -= released
        if self.parent is not None:
            self.parent.release(released)


@dataclass(slots=True)
class Allocation:
    """A range of device addresses the VM may touch; ``obj`` is the backend's own record."""

    start: int
    size: int
    kind: str  # "alloc" (cuMemAlloc), "vmm" (a mapped VMM range), "global" (a module global),
    # "host" (a pinned range mapped into the device's address space: mem_host_alias)
    obj: Any = field(default=None)
    end: int = field(init=False)  # kept, not computed: every bounds check of every copy reads it

    def __post_init__(self) -> None:
        self.end = self.start + self.size


class AllocationMap:
    """The VM's device address ranges, for bounds checks of every pointer it hands us."""

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._allocs: list[Allocation] = []

    def add(self, alloc: Allocation) -> None:
        i = bisect.bisect_right(self._starts, alloc.start)
        if (i > 0 and self._allocs[i - 1].end > alloc.start) or (
            i < len(self._allocs) and alloc.end > self._allocs[i].start
        ):
            raise CudaError(CUresult.CUDA_ERROR_ALREADY_MAPPED,
                            f"range [{alloc.start:#x}, +{alloc.size}) overlaps a live allocation")
        self._starts.insert(i, alloc.start)
        self._allocs.insert(i, alloc)

    def remove(self, start: int, kind: str | None = None) -> Allocation:
        i = bisect.bisect_left(self._starts, start)
        if i == len(self._starts) or self._starts[i] != start or (
            kind is not None and self._allocs[i].kind != kind
        ):
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"{start:#x} is not the start of a live allocation of this VM")
        del self._starts[i]
        return self._allocs.pop(i)

    def find(self, ptr: int) -> Allocation | None:
        i = bisect.bisect_right(self._starts, ptr) - 1
        if i >= 0 and ptr < self._allocs[i].end:
            return self._allocs[i]
        return None

    def check(self, ptr: int, size: int, what: str = "pointer") -> Allocation:
        """The allocation that holds all of ``[ptr, ptr + size)``, or CUDA_ERROR_INVALID_VALUE."""
        alloc = self.find(ptr)
        if alloc is None:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"{what} {ptr:#x} is not inside any allocation of this VM")
        if size > alloc.end - ptr:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"{what} range [{ptr:#x}, +{size}) runs past the end of its allocation "
                            f"[{alloc.start:#x}, +{alloc.size})")
        return alloc

    def __iter__(self) -> Iterator[Allocation]:
        return iter(list(self._allocs))

    def __len__(self) -> int:
        return len(self._allocs)


Handler = Callable[[Any, CallIO], WireModel]


class Executor(ABC):
    """One VM's view of a GPU. Subclasses implement handlers named after catalog calls."""

    #: the backend's name, as configured ("sim", "cuda")
    backend_name: str = "?"

    def __init__(self) -> None:
        self._handlers: dict[int, Handler] = {}
        #: injected faults for the next calls; while it is empty a caller may run the handler that
        #: :meth:`handler_for` gave it directly, which is what :meth:`execute` would do
        self.pending_faults: list[tuple[CUresult | CublasStatus, bool]] = []
        #: called between the stream-ordered operations one call runs back to back (a graph's
        #: nodes), so that a long queue of legitimate work keeps the worker's heartbeat; must be cheap
        self.between_ops: Callable[[], None] | None = None
        #: ``(kernel, lines)``: a launch's device printf output, bounded (sim); the worker traces it
        self.kernel_output: Callable[[str, list[str]], None] | None = None
        #: the VM's guest processes that hold a context, ``(pid, device bytes)`` per open channel: the
        #: worker knows them (NVML's running compute processes); None outside a worker
        self.vm_processes: Callable[[], list[tuple[int, int]]] | None = None
        #: this context's handle on the VM's pinned area (``_pinned``), given by :class:`VmShare` when the
        #: region has one; None: no pinned memory is served
        self.pinned: PinnedClient | None = None

    def handler_for(self, spec: CallSpec) -> Handler | None:
        cached = self._handlers.get(spec.call_id)
        if cached is None:
            found = getattr(self, spec.name, None)
            if not callable(found):
                return None
            cached = self._handlers[spec.call_id] = found
        return cached

    def inject_fault(self, status: CUresult | CublasStatus, *, sticky: bool) -> None:
        """Make the next call fail with ``status`` (fault injection for tests and drills): a sticky
        one stands for a device fault that poisons the context, as an illegal address does."""
        self.pending_faults.append((status, sticky))

    def execute(self, spec: CallSpec, args: WireModel, io: CallIO) -> WireModel:
        """Run one call; raises :class:`CudaError` with the status the guest should get."""
        if self.pending_faults:
            status, sticky = self.pending_faults.pop(0)
            raise CudaError(status, f"injected fault before {spec.cuda_name}", sticky=sticky)
        handler = self.handler_for(spec)
        if handler is None:
            raise CudaError(
                CublasStatus.CUBLAS_STATUS_NOT_SUPPORTED if spec.status_domain == "cublasStatus_t"
                else CUresult.CUDA_ERROR_NOT_SUPPORTED,
                f"the {self.backend_name} backend does not serve {spec.cuda_name}")
        return handler(args, io)

    def pinned_view(self, offset: int, length: int, what: str = "pinned range") -> memoryview:
        """A writable view of ``[offset, offset + length)`` of the VM's pinned area (``offset``
        relative to the area's start), once the whole range is checked to lie inside one live pinned
        allocation of this context. ``CUDA_ERROR_INVALID_VALUE`` otherwise (another process's range,
        a freed one, outside the area); ``CUDA_ERROR_NOT_SUPPORTED`` when the VM has no pinned area.
        Check again when the work runs (a graph node): the guest may free the range meanwhile."""
        if self.pinned is None:
            raise CudaError(CUresult.CUDA_ERROR_NOT_SUPPORTED,
                            f"{what}: this VM's region has no pinned area (pinned_size 0)")
        return self.pinned.view(offset, length, what)

    def activate(self) -> None:  # noqa: B027 (no-op by default: only a driver has contexts to switch)
        """Make this context the calling thread's current one before its calls are served: a worker
        serves several contexts (one per channel) on one thread. Backends without a driver context
        (``sim``) have nothing to switch."""

    @abstractmethod
    def memory_used(self) -> int:
        """Device memory this VM holds (allocations, VMM physical memory), for status and quotas."""

    @abstractmethod
    def live_handles(self) -> int:
        """Handles of every kind the VM holds (for status: zero once everything is released)."""

    def holds_context(self) -> bool:
        """Whether the guest process made a CUDA context here (NVML lists only those processes); a
        backend that keeps no contexts counts every channel."""
        return True

    @abstractmethod
    def close(self) -> None:
        """Release every resource the VM holds. Idempotent."""
