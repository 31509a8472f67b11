"""What every part of the ``cuda`` backend shares: the VM's per-VM records, the state they live in and
the checks more than one family of calls makes.

:class:`CudaBase` declares the state (:class:`~executor._cuda.CudaExecutor` creates it) and holds the
helpers: the VM's one device (:meth:`CudaBase._device`), stream handles (:meth:`CudaBase._stream`,
stream 0 the legacy NULL stream), waiting for a stream (:meth:`CudaBase._sync`), the bounds and access
check every copy, memset and GEMM gets before the driver sees a pointer (:meth:`CudaBase._check_range`,
see ``_cuda_memory``), and the one capture rule that is ours (:meth:`CudaBase._host_copy_allowed`,
see ``_cuda_streams``). The calls themselves live in one mixin per family: ``_cuda_memory`` (memory,
copies, the VMM API), ``_cuda_modules`` (modules, functions, launch), ``_cuda_streams`` (streams,
events, capture, graphs) and ``_cuda_blas`` (cuBLAS).
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import numpy as np
from structlog.typing import FilteringBoundLogger

from protocol import CublasStatus, CUresult

from ._base import AllocationMap, Executor, HandleTable
from ._cuda_driver import (
    Context,
    Cublas,
    Device,
    Driver,
    Event,
    Function,
    Graph,
    GraphExec,
    Module,
    PhysicalHandle,
    Stream,
    load_cublas,
)
from ._errors import BackendUnavailableError, CudaError

__all__ = ["READ", "READWRITE", "BlasHandle", "CudaBase", "FunctionRecord", "Mapping", "ModuleRecord",
           "Physical", "host_address"]

READ: Final = 1  # CU_MEM_ACCESS_FLAGS_PROT_READ
READWRITE: Final = 3  # CU_MEM_ACCESS_FLAGS_PROT_READWRITE


def host_address(view: memoryview) -> int:
    """The host address of a (possibly read-only) buffer's first byte."""
    return int(np.frombuffer(view, dtype=np.uint8).ctypes.data)


# ---------------------------------------------------------------------------------------------
# Per-VM records


@dataclass(eq=False, slots=True)
class Physical:
    """A ``cuMemCreate`` allocation: its bytes count against the VM until released and unmapped."""

    handle: PhysicalHandle
    size: int
    released: bool = False
    mappings: int = 0


@dataclass(eq=False, slots=True)
class Mapping:
    """A mapped VMM range; ``access`` holds the protection of each granule."""

    physical: Physical
    access: bytearray


@dataclass(eq=False, slots=True)
class ModuleRecord:
    module: Module
    functions: list[int] = field(default_factory=list)
    globals: list[int] = field(default_factory=list)


@dataclass(eq=False, slots=True)
class FunctionRecord:
    function: Function
    module: int
    layout: tuple[tuple[int, int], ...] | None = None
    param_bytes: int = 0


@dataclass(eq=False, slots=True)
class BlasHandle:
    handle: int
    stream: int = 0
    math_mode: int = 0


class CudaBase(Executor):
    """The state and shared checks of one VM's GPU (see the module's docstring)."""

    log: FilteringBoundLogger
    # the driver and the VM's one device and context
    _drv: Driver
    device_ordinal: int
    memory_quota: int | None
    memory_others: Callable[[], int]  # device memory the VM's other contexts (channels) hold
    _dev: Device
    _ctx: Context
    _null: Stream
    # memory: cuMemAlloc blocks, mapped VMM ranges and module globals, and what they cost the VM
    allocations: AllocationMap
    _alloc_bytes: int
    _physical_bytes: int
    _physicals: HandleTable[Physical]
    _reservations: dict[int, int]  # start -> size
    _granularity: int | None
    # the VM's handles of every other kind (one id space: a wrong-kind handle is never valid)
    _streams: HandleTable[Stream]
    _events: HandleTable[Event]
    _modules: HandleTable[ModuleRecord]
    _functions: HandleTable[FunctionRecord]
    _graphs: HandleTable[Graph]
    _graph_execs: HandleTable[GraphExec]
    _blas: HandleTable[BlasHandle]
    _invalidated: dict[int, str]  # capture id -> why we invalidated it
    # the launch's `extra` array, reused: BUFFER_POINTER, <block>, BUFFER_SIZE, &size, END
    _param_size: ctypes.c_size_t
    _extra: ctypes.Array[ctypes.c_void_p]
    _extra_address: int

    def memory_used(self) -> int:
        return self._alloc_bytes + self._physical_bytes

    def _device(self, device: int) -> Device:
        if device != 0:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_DEVICE,
                            f"device {device} does not exist (the VM has one device, 0)")
        return self._dev

    def _stream(self, handle: int) -> Stream:
        return self._null if handle == 0 else self._streams.get(handle)

    def _sync(self, stream: Stream, what: str) -> None:
        self._drv.stream_synchronize(stream, f"cuStreamSynchronize after {what}")

    def _cublas(self) -> Cublas:
        try:
            return load_cublas()
        except BackendUnavailableError as exc:
            raise CudaError(CublasStatus.CUBLAS_STATUS_NOT_INITIALIZED, str(exc)) from exc

    def _alloc_prop(self) -> object:
        return self._drv.pinned_allocation_prop(self.device_ordinal)

    def _vmm_granularity(self) -> int:
        if self._granularity is None:
            self._granularity = self._drv.mem_get_allocation_granularity(
                self._alloc_prop(), 0)  # CU_MEM_ALLOC_GRANULARITY_MINIMUM
        return self._granularity

    def _check_range(self, ptr: int, size: int, *, write: bool, what: str) -> None:
        """``[ptr, ptr + size)`` lies in the VM's memory with the access needed, or CudaError."""
        alloc = self.allocations.find(ptr)
        end = ptr + size
        if alloc is None:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"{what} {ptr:#x} is not inside any allocation of this VM")
        if alloc.kind != "vmm":
            if end > alloc.end:
                raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                                f"{what} range [{ptr:#x}, +{size}) runs past the end of its allocation "
                                f"[{alloc.start:#x}, +{alloc.size})")
            return
        need = READWRITE if write else READ
        granularity = self._vmm_granularity()
        cur = ptr
        while True:
            mapping: Mapping = alloc.obj
            first = (cur - alloc.start) // granularity
            last = (min(end, alloc.end) - alloc.start + granularity - 1) // granularity
            if any(flags & need != need for flags in mapping.access[first:last]):
                raise CudaError(CUresult.CUDA_ERROR_ILLEGAL_ADDRESS,
                                f"{what} range [{ptr:#x}, +{size}) touches mapped memory without "
                                f"{'read-write' if write else 'read'} access (cuMemSetAccess it first)")
            if end <= alloc.end:
                return
            cur = alloc.end
            nxt = self.allocations.find(cur)
            if nxt is None or nxt.kind != "vmm":
                raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                                f"{what} range [{ptr:#x}, +{size}) runs past the mapped memory at {cur:#x}")
            alloc = nxt

    def _host_copy_allowed(self, stream: Stream, handle: int, what: str) -> None:
        """Host copies cannot be captured (see ``_cuda_streams``)."""
        if self._drv.stream_is_capturing(stream, f"cuStreamIsCapturing for {what}") == 0:
            return
        _, capture_id = self._drv.stream_get_capture_info(stream, f"cuStreamGetCaptureInfo for {what}")
        reason = f"{what} referenced guest host memory"
        self._invalidated.setdefault(capture_id, reason)
        raise CudaError(CUresult.CUDA_ERROR_NOT_SUPPORTED,
                        f"{what} on capturing stream {handle}: a graph node cannot reference the guest's "
                        f"host memory across the remoting boundary (capture {capture_id} invalidated)")
