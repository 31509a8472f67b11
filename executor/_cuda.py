"""The ``cuda`` backend: one VM's calls replayed on a physical GPU through ``cuda.bindings.driver`` and
``nvmath.bindings.cublas``.

Theory of operation
-------------------
*One executor, one context.* :class:`CudaExecutor` creates its own CUDA context with ``cuCtxCreate``
rather than retaining the device's primary context. The worker process is per-VM, so the primary
context would do there; an own context also keeps two executors in one process (the test suite, a
future in-process mode) apart — separate device address spaces, a sticky fault confined to the VM
that caused it — and ``cuCtxDestroy`` in :meth:`CudaExecutor.close` frees whatever the driver still
holds for the VM even if our bookkeeping missed something. The context is made current on the thread
that calls :meth:`execute` (checked per call, cheaply). The guest's own context calls
(``cuCtxCreate``, ``cuDevicePrimaryCtxRetain``, …) are bookkeeping on per-VM ids, as in ``sim``: every
one of them stands for this one real context. The VM sees one device, ordinal 0, which is the
executor's ``device_ordinal``.

*Handles.* Streams, events, modules, functions, VMM allocation handles, cuBLAS handles, graphs and
graph execs are per-VM ids from :class:`HandleTable`\\s that map to the driver's objects; an id the VM
was never given is ``CUDA_ERROR_INVALID_HANDLE`` (``CUBLAS_STATUS_NOT_INITIALIZED`` for cuBLAS), never a
driver call. Stream 0 is the context's legacy NULL stream.

*Where the calls live.* This module holds the executor's life (context, arena, close) and the device
and context calls; each other family of calls is a mixin with its own theory of operation:
``_cuda_memory`` (memory, copies, the VMM API, isolation), ``_cuda_modules`` (modules and launch),
``_cuda_streams`` (streams, events, capture, graphs), ``_cuda_blas`` (cuBLAS). ``_cuda_base`` holds
the state they share and ``_cuda_driver`` the typed layer over NVIDIA's bindings that every driver and
cuBLAS call goes through.

*Errors.* Driver failures become :class:`CudaError` with the same ``CUresult`` value (unknown values:
``CUDA_ERROR_UNKNOWN``, the number in the message); context-poisoning ones are ``sticky``. cuBLAS
failures carry the ``cublasStatus_t``.
"""

from __future__ import annotations

import ctypes
import itertools
import threading
from collections.abc import Callable
from functools import partial
from typing import Final

import structlog

from protocol import CallSpec, CublasStatus, CUresult, WireModel
from protocol.models import (
    CtxArgs,
    CtxCreateArgs,
    CtxResult,
    DeviceArgs,
    DeviceGetArgs,
    DeviceGetAttributeArgs,
    DeviceGetResult,
    DeviceTotalMemResult,
    DeviceUuidResult,
    FlagsArgs,
    I32Result,
    NoArgs,
    NoResult,
)

from ._base import AllocationMap, CallIO, DeviceConfig, HandleTable
from ._cuda_base import BlasHandle, FunctionRecord, ModuleRecord, Physical, host_address
from ._cuda_blas import BlasCalls
from ._cuda_driver import (
    Cublas,
    Driver,
    Event,
    Graph,
    GraphExec,
    Stream,
    cuda_available,
    load_cublas,
    load_driver,
)
from ._cuda_guest_nodes import GuestMarks
from ._cuda_managed_globals import CudaManagedGlobalCalls
from ._cuda_memory import MemoryCalls
from ._cuda_modules import (
    CU_LAUNCH_PARAM_BUFFER_POINTER,
    CU_LAUNCH_PARAM_BUFFER_SIZE,
    CU_LAUNCH_PARAM_END,
    ModuleCalls,
)
from ._cuda_nvml import NvmlCalls
from ._cuda_pinned import CudaPinnedCalls
from ._cuda_pitched import CudaPitchedCalls
from ._cuda_streams import StreamCalls
from ._cuda_tensor_maps import CudaTensorMapCalls
from ._cuda_textures import CudaTextureCalls, CudaTextures
from ._errors import BackendUnavailableError, CudaError
from ._module_upload import ModuleUploads

__all__ = ["CudaExecutor", "cuda_available"]

log = structlog.get_logger("executor.cuda")

_CTX_FLAGS: Final = 0xFF
#: CU_DEVICE_ATTRIBUTE_MANAGED_MEMORY
_MANAGED_MEMORY: Final = 83


def _write_string(text: bytes, io: CallIO, what: str) -> None:
    if len(io.out) == 0:
        raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE, f"{what}: no room for the string (out_cap 0)")
    data = text[:len(io.out) - 1] + b"\0"
    io.out[:len(data)] = data
    io.out_len = len(data)


def _nothing() -> int:
    return 0


#: the executor whose context is current on each thread (a worker's channels share its thread)
_CURRENT = threading.local()


class CudaExecutor(MemoryCalls, ModuleCalls, StreamCalls, BlasCalls, NvmlCalls, CudaPinnedCalls,
                   CudaTextureCalls, CudaTensorMapCalls, CudaManagedGlobalCalls, CudaPitchedCalls):
    """One VM's GPU: a CUDA context of its own on device ``device_ordinal``. See the module's theory of
    operation."""

    backend_name = "cuda"

    def __init__(self, device_ordinal: int = 0, memory_quota: int | None = None, *,
                 module_bytes: int = DeviceConfig().module_bytes) -> None:
        super().__init__()
        self._closed = True  # until the context exists: close() then has nothing to undo
        self.module_uploads = ModuleUploads(module_bytes)  # no host budget here: bounded by module_bytes
        driver = load_driver()
        usable, why = cuda_available()
        if not usable:
            raise BackendUnavailableError(f"the cuda backend cannot run here: {why}")
        self._drv = Driver(driver)
        self.device_ordinal = device_ordinal
        self.memory_quota = memory_quota
        self.memory_others = _nothing  # the worker points it at the VM's other channels
        try:
            self._dev = self._drv.device_get(device_ordinal)
        except CudaError as exc:
            raise BackendUnavailableError(f"CUDA device {device_ordinal} is not usable: {exc}") from exc
        self._ctx = self._drv.ctx_create(self._dev)  # current on this thread from now on
        _CURRENT.executor = self
        self._closed = False
        self.log = log.bind(device=device_ordinal)
        self._null = self._drv.null_stream()
        self.allocations = AllocationMap()
        self._alloc_bytes = 0
        self._physical_bytes = 0
        ids = itertools.count(1)  # one id space for all kinds: a wrong-kind handle is never valid
        self._physicals = HandleTable[Physical]("VMM allocation", ids=ids)
        self._reservations = {}
        self._granularity = None
        self._streams = HandleTable[Stream]("stream", ids=ids)
        self._events = HandleTable[Event]("event", ids=ids)
        self._modules = HandleTable[ModuleRecord]("module", ids=ids)
        self._functions = HandleTable[FunctionRecord]("function", ids=ids)
        self._graphs = HandleTable[Graph]("graph", ids=ids)
        self._graph_execs = HandleTable[GraphExec]("graph exec", ids=ids)
        self._blas = HandleTable[BlasHandle]("cuBLAS", CublasStatus.CUBLAS_STATUS_NOT_INITIALIZED, ids=ids)
        self._contexts = HandleTable[int]("context", CUresult.CUDA_ERROR_INVALID_CONTEXT, ids=ids)
        self._textures = CudaTextures(ids)  # arrays and texture/surface objects (close destroys them)
        self._primary: int | None = None
        self._primary_refs = 0
        self._ctx_stack: list[int] = []
        self._invalidated = {}
        self._guest = GuestMarks()  # guest nodes' marks and phased execs (_cuda_guest_nodes)
        self._arena: tuple[int, int] | None = None  # registered (address, size)
        self._pinned_registered = {}  # _cuda_pinned: our ranges of the VM's pinned area the driver registered
        self._pinned_aliases = {}  # _cuda_pinned: their device pointers handed out (mem_host_alias)
        self._param_size = ctypes.c_size_t(0)
        self._extra = (ctypes.c_void_p * 5)(
            CU_LAUNCH_PARAM_BUFFER_POINTER, None, CU_LAUNCH_PARAM_BUFFER_SIZE,
            ctypes.addressof(self._param_size), CU_LAUNCH_PARAM_END)
        self._extra_address = ctypes.addressof(self._extra)
        name = self._drv.device_get_name(self._dev)
        self.device_name = name.split(b"\0", 1)[0].decode(errors="replace")
        self.log.info("cuda executor ready", device_name=self.device_name, memory_quota=memory_quota)

    # -- Executor ----------------------------------------------------------------------------------

    def execute(self, spec: CallSpec, args: WireModel, io: CallIO) -> WireModel:
        if self._closed:
            raise CudaError(CUresult.CUDA_ERROR_CONTEXT_IS_DESTROYED, "the VM's CUDA context is closed")
        self.activate()
        return super().execute(spec, args, io)

    def activate(self) -> None:
        if getattr(_CURRENT, "executor", None) is not self and not self._closed:
            self._drv.ctx_set_current(self._ctx)
            _CURRENT.executor = self

    def holds_context(self) -> bool:
        return len(self._contexts) > 0

    def live_handles(self) -> int:
        tables = (self._physicals, self._streams, self._events, self._modules, self._functions, self._graphs,
                  self._graph_execs, self._blas, self._contexts)
        return sum(len(table) for table in tables) + len(self._textures)

    def set_memory_quota(self, quota: int | None) -> None:
        """Change the VM's quota (the supervisor's ``set_quota``); live allocations stay."""
        self.memory_quota = quota

    def attach_arena(self, arena: memoryview) -> None:
        """Register the region's data arena as pinned host memory, so copies DMA straight from and to
        the guest's payloads (see ``_cuda_memory``). Falls back to pageable copies (logged) when the
        driver refuses."""
        if self._closed or self._arena is not None or len(arena) == 0:
            return
        address, size = host_address(arena), len(arena)
        try:
            self._drv.mem_host_register(address, size)
        except CudaError as exc:
            self.log.warning("arena not pinned: host copies fall back to pageable (staged) copies",
                             arena_bytes=size, reason=exc.message)
            return
        self._arena = (address, size)
        self.log.info("arena pinned for DMA", arena_bytes=size, page_aligned=address % 4096 == 0)

    @property
    def arena_pinned(self) -> bool:
        return self._arena is not None

    def close(self) -> None:
        if self._closed:
            return
        d = self._drv
        try:  # another channel's context may be current on this thread: everything below is ours
            self.activate()
        except CudaError as exc:
            self.log.warning("cleanup step failed", step="cuCtxSetCurrent", reason=exc.message)
        self._closed = True
        self.module_uploads.close()
        if getattr(_CURRENT, "executor", None) is self:
            _CURRENT.executor = None
        steps: list[tuple[str, Callable[[], None]]] = [("cuCtxSynchronize", d.ctx_synchronize)]
        steps += [("cuGraphExecDestroy", partial(d.graph_exec_destroy, g)) for g in self._graph_execs.clear()]
        steps += [("cuGraphDestroy", partial(d.graph_destroy, g)) for g in self._graphs.clear()]
        cublas = _cublas_or_none() if len(self._blas) else None
        if cublas is not None:
            steps += [("cublasDestroy", partial(cublas.destroy, h.handle)) for h in self._blas.clear()]
        steps += [("cuEventDestroy", partial(d.event_destroy, e)) for e in self._events.clear()]
        steps += [("cuStreamDestroy", partial(d.stream_destroy, s)) for s in self._streams.clear()]
        steps += self.release_textures()  # objects, then their arrays
        self._functions.clear()
        steps += [("cuModuleUnload", partial(d.module_unload, m.module)) for m in self._modules.clear()]
        for alloc in self.allocations:
            if alloc.kind == "vmm":
                steps.append(("cuMemUnmap", partial(d.mem_unmap, alloc.start, alloc.size)))
            elif alloc.kind == "alloc":
                steps.append(("cuMemFree", partial(d.mem_free, alloc.start)))
        steps += [("cuMemRelease", partial(d.mem_release, p.handle)) for p in self._physicals.clear()]
        steps += [("cuMemAddressFree", partial(d.mem_address_free, start, size))
                  for start, size in self._reservations.items()]
        if self._arena is not None:
            steps.append(("cuMemHostUnregister", partial(d.mem_host_unregister, self._arena[0])))
        # our pinned ranges: unregistered before they are discarded, which the VM's share does next
        steps += [("cuMemHostUnregister", partial(d.mem_host_unregister, address))
                  for address, _ in self.unregister_pinned()]
        steps.append(("cuCtxDestroy", partial(d.ctx_destroy, self._ctx)))
        for what, step in steps:
            try:
                step()  # each raises a CudaError naming its call when it fails
            except CudaError as exc:
                self.log.warning("cleanup step failed", step=what, reason=exc.message)
            except Exception as exc:  # a broken driver or binding: cleanup carries on regardless
                self.log.warning("cleanup step failed", step=what, reason=repr(exc))
        self.allocations = AllocationMap()
        self._reservations.clear()
        self._alloc_bytes = self._physical_bytes = 0
        self._arena = None
        self._contexts.clear()
        self._ctx_stack.clear()
        self.log.info("cuda executor closed")

    # -- driver and device -------------------------------------------------------------------------

    def nop(self, args: NoArgs, io: CallIO) -> NoResult:
        return NoResult()

    def init(self, args: FlagsArgs, io: CallIO) -> NoResult:
        if args.flags != 0:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE, f"cuInit flags must be 0, not {args.flags}")
        return NoResult()

    def driver_get_version(self, args: NoArgs, io: CallIO) -> I32Result:
        return I32Result(value=self._drv.driver_get_version())

    def device_get_count(self, args: NoArgs, io: CallIO) -> I32Result:
        return I32Result(value=1)

    def device_get(self, args: DeviceGetArgs, io: CallIO) -> DeviceGetResult:
        self._device(args.ordinal)
        return DeviceGetResult(device=0)

    def device_get_name(self, args: DeviceArgs, io: CallIO) -> NoResult:
        self._device(args.device)
        _write_string(self.device_name.encode(), io, "cuDeviceGetName")
        return NoResult()

    def device_get_attribute(self, args: DeviceGetAttributeArgs, io: CallIO) -> I32Result:
        dev = self._device(args.device)
        if args.attrib == _MANAGED_MEMORY:  # the driver maps a range where it likes, never at the guest's
            return I32Result(value=0)       # pointer: the guest's managed memory cannot be served
        return I32Result(value=self._drv.device_get_attribute(args.attrib, dev))

    def device_total_mem(self, args: DeviceArgs, io: CallIO) -> DeviceTotalMemResult:
        total = self._drv.device_total_mem(self._device(args.device))
        if self.memory_quota is not None:
            total = min(total, self.memory_quota)
        return DeviceTotalMemResult(bytes=total)

    def device_get_uuid(self, args: DeviceArgs, io: CallIO) -> DeviceUuidResult:
        data = self._drv.device_get_uuid(self._device(args.device))
        return DeviceUuidResult(uuid=data[:16].ljust(16, b"\0"))

    def device_get_pci_bus_id(self, args: DeviceArgs, io: CallIO) -> NoResult:
        raw = self._drv.device_get_pci_bus_id(self._device(args.device))
        _write_string(raw.split(b"\0", 1)[0], io, "cuDeviceGetPCIBusId")
        return NoResult()

    # -- contexts (per-VM bookkeeping; all stand for the executor's one context) ----------------------

    def primary_ctx_retain(self, args: DeviceArgs, io: CallIO) -> CtxResult:
        self._device(args.device)
        if self._primary is None:
            self._primary = self._contexts.add(0)
        self._primary_refs += 1
        return CtxResult(ctx=self._primary)

    def primary_ctx_release(self, args: DeviceArgs, io: CallIO) -> NoResult:
        self._device(args.device)
        if self._primary_refs == 0:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_CONTEXT,
                            "cuDevicePrimaryCtxRelease: the primary context is not retained")
        self._primary_refs -= 1
        return NoResult()

    def ctx_create(self, args: CtxCreateArgs, io: CallIO) -> CtxResult:
        self._device(args.device)
        if args.flags & ~_CTX_FLAGS or args.flags & 0x7 not in (0, 1, 2, 4):
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"cuCtxCreate flags {args.flags:#x} are invalid")
        ctx = self._contexts.add(args.flags)
        self._ctx_stack.append(ctx)
        return CtxResult(ctx=ctx)

    def ctx_destroy(self, args: CtxArgs, io: CallIO) -> NoResult:
        self._contexts.get(args.ctx)
        if args.ctx == self._primary:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_CONTEXT,
                            "cuCtxDestroy of the primary context: release it with cuDevicePrimaryCtxRelease")
        self._contexts.pop(args.ctx)
        self._ctx_stack = [c for c in self._ctx_stack if c != args.ctx]
        return NoResult()

    def ctx_set_current(self, args: CtxArgs, io: CallIO) -> NoResult:
        if args.ctx == 0:
            if self._ctx_stack:
                self._ctx_stack.pop()
            return NoResult()
        self._contexts.get(args.ctx)
        if self._ctx_stack:
            self._ctx_stack[-1] = args.ctx
        else:
            self._ctx_stack.append(args.ctx)
        return NoResult()

    def ctx_get_current(self, args: NoArgs, io: CallIO) -> CtxResult:
        return CtxResult(ctx=self._ctx_stack[-1] if self._ctx_stack else 0)

    def ctx_synchronize(self, args: NoArgs, io: CallIO) -> NoResult:
        self._drv.ctx_synchronize()
        return NoResult()


def _cublas_or_none() -> Cublas | None:
    try:
        return load_cublas()
    except BackendUnavailableError:
        return None
