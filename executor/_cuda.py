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

*Isolation.* Device pointers are real. Every pointer a copy, memset or GEMM names is checked against
the VM's :class:`AllocationMap` (``cuMemAlloc`` blocks, mapped VMM ranges, module globals the VM has
looked up) *before* the driver sees it: outside them is ``CUDA_ERROR_INVALID_VALUE``; a mapped range
without the access the operation needs is ``CUDA_ERROR_ILLEGAL_ADDRESS`` (not sticky: we refuse it, the
copy engine never faults). A range may run from one VMM mapping into the next adjacent one (GGML's pool
grows by mapping chunks back to back), never out of a ``cuMemAlloc`` block. Kernels are the one thing
we cannot bound-check (their parameters are opaque bytes); there the GPU's per-process address space
is the wall: a kernel of this VM's worker can reach only this process's memory, and a fault is a
sticky error of this VM's context alone.

*Copies.* :meth:`attach_arena` registers the region's data arena as pinned host memory
(``cuMemHostRegister``), so ``memcpy_htod``/``memcpy_dtoh`` DMA straight from/to the guest's payload,
with no staging copy; without it (registration failed, or no arena attached) the same calls run as
pageable copies, which the driver stages. Because the guest may reuse an input payload as soon as the
call returns (the host advancing ``sq_head``), a host-to-device copy always waits for its DMA before
returning, ASYNC or not — the wait CUDA itself makes for ``cuMemcpyHtoDAsync`` from pageable memory.
A device-to-host copy submitted ASYNC is only enqueued: its bytes are valid once the guest has
synchronized the stream, as the catalog says.

*Blocking.* ``CallIO.blocking`` True (an async-capable call submitted without ``ASYNC``) makes the
handler synchronize the call's stream before it returns; False only enqueues the work.

*Capture.* Capture rules are the driver's own (unsafe calls in ``GLOBAL`` mode, waits on a capturing
stream, the legacy stream's implicit synchronization). One rule is ours, as in ``sim``: a host copy
cannot be captured across the remoting boundary (the guest's payload is not ours to read when the
graph is launched later), so it fails with ``CUDA_ERROR_NOT_SUPPORTED`` and the capture is marked
invalidated: ``cuStreamGetCaptureInfo`` reports it, and ``cuStreamEndCapture`` ends it and fails with
``CUDA_ERROR_STREAM_CAPTURE_INVALIDATED``.

*Errors.* Driver failures become :class:`CudaError` with the same ``CUresult`` value (unknown values:
``CUDA_ERROR_UNKNOWN``, the number in the message); context-poisoning ones are ``sticky``. cuBLAS
failures carry the ``cublasStatus_t``.
"""

from __future__ import annotations

import ctypes
import itertools
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final

import numpy as np
import structlog

from protocol import CallSpec, CublasStatus, CudaDataType, CUresult, StreamCaptureStatus, WireModel
from protocol.models import (
    AddressFreeArgs,
    AddressReserveArgs,
    BeginCaptureArgs,
    CaptureInfoResult,
    CtxArgs,
    CtxCreateArgs,
    CtxResult,
    CublasArgs,
    CublasCreateResult,
    CublasSetMathModeArgs,
    CublasSetStreamArgs,
    DeviceArgs,
    DeviceGetArgs,
    DeviceGetAttributeArgs,
    DeviceGetResult,
    DeviceTotalMemResult,
    DeviceUuidResult,
    DevPtrResult,
    EventArgs,
    EventCreateResult,
    EventElapsedArgs,
    EventElapsedResult,
    EventRecordArgs,
    FlagsArgs,
    FuncArgs,
    FuncGetAttributeArgs,
    FuncParamInfoArgs,
    FuncParamInfoResult,
    FuncParamLayoutResult,
    FuncSetAttributeArgs,
    FunctionResult,
    GemmBatchedExArgs,
    GemmExArgs,
    GemmStridedBatchedExArgs,
    GlobalResult,
    GranularityArgs,
    GranularityResult,
    GraphArgs,
    GraphExecArgs,
    GraphExecResult,
    GraphInstantiateArgs,
    GraphLaunchArgs,
    GraphResult,
    I32Result,
    LaunchKernelArgs,
    MemAllocArgs,
    MemcpyDtoDArgs,
    MemcpyDtoHArgs,
    MemcpyHtoDArgs,
    MemCreateArgs,
    MemFreeArgs,
    MemGetInfoResult,
    MemHandleArgs,
    MemHandleResult,
    MemMapArgs,
    MemSetAccessArgs,
    MemsetD8Args,
    MemsetD16Args,
    MemsetD32Args,
    MemUnmapArgs,
    ModuleArgs,
    ModuleLoadResult,
    NoArgs,
    NoResult,
    SgemmArgs,
    StreamArgs,
    StreamCreateResult,
    StreamWaitEventArgs,
)

from ._base import Allocation, AllocationMap, CallIO, Executor, HandleTable
from ._cuda_driver import (
    check,
    cublas_error,
    cuda_available,
    driver_error,
    load_cublas,
    load_driver,
    status_code,
)
from ._errors import BackendUnavailableError, CudaError
from ._sim_blas import ITEMSIZE, GemmShape, check_gemm_types, gemm_ranges

__all__ = ["CudaExecutor", "cuda_available"]

log = structlog.get_logger("executor.cuda")

_READ: Final = 1  # CU_MEM_ACCESS_FLAGS_PROT_READ
_READWRITE: Final = 3  # CU_MEM_ACCESS_FLAGS_PROT_READWRITE
_CTX_FLAGS: Final = 0xFF
_CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION: Final = 0x10
_ELF_MAGIC: Final = b"\x7fELF"
_FATBIN_MAGIC: Final = b"\x50\xed\x55\xba"
_CU_LAUNCH_PARAM_END: Final = 0
_CU_LAUNCH_PARAM_BUFFER_POINTER: Final = 1
_CU_LAUNCH_PARAM_BUFFER_SIZE: Final = 2


def _host_address(view: memoryview) -> int:
    """The host address of a (possibly read-only) buffer's first byte."""
    return int(np.frombuffer(view, dtype=np.uint8).ctypes.data)


def _cstring(data: memoryview, what: str) -> bytes:
    raw = bytes(data).split(b"\0", 1)[0]
    if not raw:
        raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE, f"{what}: the name is empty")
    try:
        raw.decode()
    except UnicodeDecodeError:
        raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE, f"{what}: the name is not UTF-8") from None
    return raw


def _write_string(text: bytes, io: CallIO, what: str) -> None:
    if len(io.out) == 0:
        raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE, f"{what}: no room for the string (out_cap 0)")
    data = text[:len(io.out) - 1] + b"\0"
    io.out[:len(data)] = data
    io.out_len = len(data)


# ---------------------------------------------------------------------------------------------
# Per-VM records


@dataclass(eq=False, slots=True)
class _Physical:
    """A ``cuMemCreate`` allocation: its bytes count against the VM until released and unmapped."""

    handle: Any
    size: int
    released: bool = False
    mappings: int = 0


@dataclass(eq=False, slots=True)
class _Mapping:
    """A mapped VMM range; ``access`` holds the protection of each granule."""

    physical: _Physical
    access: bytearray


@dataclass(eq=False, slots=True)
class _Module:
    module: Any
    functions: list[int] = field(default_factory=list)
    globals: list[int] = field(default_factory=list)


@dataclass(eq=False, slots=True)
class _Function:
    function: Any
    module: int
    layout: tuple[tuple[int, int], ...] | None = None
    param_bytes: int = 0


@dataclass(eq=False, slots=True)
class _Blas:
    handle: int
    stream: int = 0
    math_mode: int = 0


class CudaExecutor(Executor):
    """One VM's GPU: a CUDA context of its own on device ``device_ordinal``. See the module's theory of
    operation."""

    backend_name = "cuda"

    def __init__(self, device_ordinal: int = 0, memory_quota: int | None = None) -> None:
        super().__init__()
        self._closed = True  # until the context exists: close() then has nothing to undo
        driver = load_driver()
        usable, why = cuda_available()
        if not usable:
            raise BackendUnavailableError(f"the cuda backend cannot run here: {why}")
        self._d: Any = driver
        self.device_ordinal = device_ordinal
        self.memory_quota = memory_quota
        try:
            self._dev = check(driver.cuDeviceGet(device_ordinal), f"cuDeviceGet({device_ordinal})")
        except CudaError as exc:
            raise BackendUnavailableError(f"CUDA device {device_ordinal} is not usable: {exc}") from exc
        self._ctx = self._create_context()
        self._closed = False
        self._thread = threading.get_ident()
        self.log = log.bind(device=device_ordinal)
        self._null: Any = driver.CUstream(0)
        self.allocations = AllocationMap()
        self._alloc_bytes = 0
        self._physical_bytes = 0
        ids = itertools.count(1)  # one id space for all kinds: a wrong-kind handle is never valid
        self._physicals: HandleTable[_Physical] = HandleTable("VMM allocation", ids=ids)
        self._reservations: dict[int, int] = {}  # start -> size
        self._granularity: int | None = None
        self._streams: HandleTable[Any] = HandleTable("stream", ids=ids)
        self._events: HandleTable[Any] = HandleTable("event", ids=ids)
        self._modules: HandleTable[_Module] = HandleTable("module", ids=ids)
        self._functions: HandleTable[_Function] = HandleTable("function", ids=ids)
        self._graphs: HandleTable[Any] = HandleTable("graph", ids=ids)
        self._graph_execs: HandleTable[Any] = HandleTable("graph exec", ids=ids)
        self._blas: HandleTable[_Blas] = HandleTable("cuBLAS", CublasStatus.CUBLAS_STATUS_NOT_INITIALIZED,
                                                     ids=ids)
        self._contexts: HandleTable[int] = HandleTable("context", CUresult.CUDA_ERROR_INVALID_CONTEXT,
                                                       ids=ids)
        self._primary: int | None = None
        self._primary_refs = 0
        self._ctx_stack: list[int] = []
        self._invalidated: dict[int, str] = {}  # capture id -> why we invalidated it
        self._arena: tuple[int, int] | None = None  # registered (address, size)
        # the launch's `extra` array, reused: BUFFER_POINTER, <block>, BUFFER_SIZE, &size, END
        self._param_size = ctypes.c_size_t(0)
        self._extra = (ctypes.c_void_p * 5)(
            _CU_LAUNCH_PARAM_BUFFER_POINTER, None, _CU_LAUNCH_PARAM_BUFFER_SIZE,
            ctypes.addressof(self._param_size), _CU_LAUNCH_PARAM_END)
        self._extra_address = ctypes.addressof(self._extra)
        name = check(driver.cuDeviceGetName(256, self._dev), "cuDeviceGetName")
        self.device_name = bytes(name).split(b"\0", 1)[0].decode(errors="replace")
        self.log.info("cuda executor ready", device_name=self.device_name, memory_quota=memory_quota)

    def _create_context(self) -> Any:
        driver = self._d
        try:
            # CUDA 13's cuCtxCreate takes a CUctxCreateParams first; CUDA 12's does not.
            return check(driver.cuCtxCreate(None, 0, self._dev), "cuCtxCreate")
        except TypeError:
            return check(driver.cuCtxCreate(0, self._dev), "cuCtxCreate")

    # -- Executor ----------------------------------------------------------------------------------

    def execute(self, spec: CallSpec, args: WireModel, io: CallIO) -> WireModel:
        if self._closed:
            raise CudaError(CUresult.CUDA_ERROR_CONTEXT_IS_DESTROYED, "the VM's CUDA context is closed")
        thread = threading.get_ident()
        if thread != self._thread:
            check(self._d.cuCtxSetCurrent(self._ctx), "cuCtxSetCurrent")
            self._thread = thread
        return super().execute(spec, args, io)

    def memory_used(self) -> int:
        return self._alloc_bytes + self._physical_bytes

    def live_handles(self) -> int:
        tables = (self._physicals, self._streams, self._events, self._modules, self._functions, self._graphs,
                  self._graph_execs, self._blas, self._contexts)
        return sum(len(table) for table in tables)

    def set_memory_quota(self, quota: int | None) -> None:
        """Change the VM's quota (the supervisor's ``set_quota``); live allocations stay."""
        self.memory_quota = quota

    def attach_arena(self, arena: memoryview) -> None:
        """Register the region's data arena as pinned host memory, so copies DMA straight from and to
        the guest's payloads. Falls back to pageable copies (logged) when the driver refuses."""
        if self._closed or self._arena is not None or len(arena) == 0:
            return
        address, size = _host_address(arena), len(arena)
        try:
            check(self._d.cuMemHostRegister(address, size, 0), "cuMemHostRegister")
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
        self._closed = True
        d = self._d
        steps: list[tuple[str, Callable[[], Any]]] = [("cuCtxSynchronize", d.cuCtxSynchronize)]
        steps += [("cuGraphExecDestroy", partial(d.cuGraphExecDestroy, g)) for g in self._graph_execs.clear()]
        steps += [("cuGraphDestroy", partial(d.cuGraphDestroy, g)) for g in self._graphs.clear()]
        cublas = _cublas_or_none() if len(self._blas) else None
        if cublas is not None:
            steps += [("cublasDestroy", partial(cublas.destroy, h.handle)) for h in self._blas.clear()]
        steps += [("cuEventDestroy", partial(d.cuEventDestroy, e)) for e in self._events.clear()]
        steps += [("cuStreamDestroy", partial(d.cuStreamDestroy, s)) for s in self._streams.clear()]
        self._functions.clear()
        steps += [("cuModuleUnload", partial(d.cuModuleUnload, m.module)) for m in self._modules.clear()]
        for alloc in self.allocations:
            if alloc.kind == "vmm":
                steps.append(("cuMemUnmap", partial(d.cuMemUnmap, alloc.start, alloc.size)))
            elif alloc.kind == "alloc":
                steps.append(("cuMemFree", partial(d.cuMemFree, alloc.start)))
        steps += [("cuMemRelease", partial(d.cuMemRelease, p.handle)) for p in self._physicals.clear()]
        steps += [("cuMemAddressFree", partial(d.cuMemAddressFree, start, size))
                  for start, size in self._reservations.items()]
        if self._arena is not None:
            steps.append(("cuMemHostUnregister", partial(d.cuMemHostUnregister, self._arena[0])))
        steps.append(("cuCtxDestroy", partial(d.cuCtxDestroy, self._ctx)))
        for what, step in steps:
            try:
                check(step(), what)
            except CudaError as exc:
                self.log.warning("cleanup step failed", step=what, reason=exc.message)
            except Exception as exc:  # nvmath raises its own errors; cleanup carries on regardless
                self.log.warning("cleanup step failed", step=what, reason=repr(exc))
        self.allocations = AllocationMap()
        self._reservations.clear()
        self._alloc_bytes = self._physical_bytes = 0
        self._arena = None
        self._contexts.clear()
        self._ctx_stack.clear()
        self.log.info("cuda executor closed")

    # -- helpers -----------------------------------------------------------------------------------

    def _device(self, device: int) -> Any:
        if device != 0:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_DEVICE,
                            f"device {device} does not exist (the VM has one device, 0)")
        return self._dev

    def _stream(self, handle: int) -> Any:
        return self._null if handle == 0 else self._streams.get(handle)

    def _sync(self, stream: Any, what: str) -> None:
        check(self._d.cuStreamSynchronize(stream), f"cuStreamSynchronize after {what}")

    def _charge(self, size: int, what: str) -> None:
        quota = self.memory_quota
        if quota is not None and self.memory_used() + size > quota:
            raise CudaError(CUresult.CUDA_ERROR_OUT_OF_MEMORY,
                            f"{what} of {size} bytes exceeds the VM's quota ({self.memory_used()} of "
                            f"{quota} bytes in use)")

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
        need = _READWRITE if write else _READ
        granularity = self._vmm_granularity()
        cur = ptr
        while True:
            mapping: _Mapping = alloc.obj
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

    def _host_copy_allowed(self, stream: Any, handle: int, what: str) -> None:
        """Host copies cannot be captured (see the theory of operation)."""
        status = check(self._d.cuStreamIsCapturing(stream), f"cuStreamIsCapturing for {what}")
        if status_code(status) == 0:
            return
        info = check(self._d.cuStreamGetCaptureInfo(stream), f"cuStreamGetCaptureInfo for {what}")
        capture_id = int(info[1])
        reason = f"{what} referenced guest host memory"
        self._invalidated.setdefault(capture_id, reason)
        raise CudaError(CUresult.CUDA_ERROR_NOT_SUPPORTED,
                        f"{what} on capturing stream {handle}: a graph node cannot reference the guest's "
                        f"host memory across the remoting boundary (capture {capture_id} invalidated)")

    # -- driver and device -----------------------------------------------------------------------------

    def nop(self, args: NoArgs, io: CallIO) -> NoResult:
        return NoResult()

    def init(self, args: FlagsArgs, io: CallIO) -> NoResult:
        if args.flags != 0:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE, f"cuInit flags must be 0, not {args.flags}")
        return NoResult()

    def driver_get_version(self, args: NoArgs, io: CallIO) -> I32Result:
        return I32Result(value=int(check(self._d.cuDriverGetVersion(), "cuDriverGetVersion")))

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
        try:
            attrib = self._d.CUdevice_attribute(args.attrib)
        except ValueError:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"device attribute {args.attrib} is unknown to the driver bindings") from None
        return I32Result(value=int(check(self._d.cuDeviceGetAttribute(attrib, dev), "cuDeviceGetAttribute")))

    def device_total_mem(self, args: DeviceArgs, io: CallIO) -> DeviceTotalMemResult:
        total = int(check(self._d.cuDeviceTotalMem(self._device(args.device)), "cuDeviceTotalMem"))
        if self.memory_quota is not None:
            total = min(total, self.memory_quota)
        return DeviceTotalMemResult(bytes=total)

    def device_get_uuid(self, args: DeviceArgs, io: CallIO) -> DeviceUuidResult:
        uuid = check(self._d.cuDeviceGetUuid(self._device(args.device)), "cuDeviceGetUuid")
        raw = uuid.bytes
        data = raw.encode("latin-1") if isinstance(raw, str) else bytes(raw)
        return DeviceUuidResult(uuid=data[:16].ljust(16, b"\0"))

    def device_get_pci_bus_id(self, args: DeviceArgs, io: CallIO) -> NoResult:
        raw = check(self._d.cuDeviceGetPCIBusId(64, self._device(args.device)), "cuDeviceGetPCIBusId")
        _write_string(bytes(raw).split(b"\0", 1)[0], io, "cuDeviceGetPCIBusId")
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
        check(self._d.cuCtxSynchronize(), "cuCtxSynchronize")
        return NoResult()

    def mem_get_info(self, args: NoArgs, io: CallIO) -> MemGetInfoResult:
        free, total = check(self._d.cuMemGetInfo(), "cuMemGetInfo")
        free, total = int(free), int(total)
        if self.memory_quota is not None:
            total = min(total, self.memory_quota)
            free = min(free, max(0, total - self.memory_used()))
        return MemGetInfoResult(free=free, total=total)

    # -- memory ------------------------------------------------------------------------------------------

    def mem_alloc(self, args: MemAllocArgs, io: CallIO) -> DevPtrResult:
        size = args.bytesize
        if size == 0:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE, "cuMemAlloc of 0 bytes")
        self._charge(size, "cuMemAlloc")
        dptr = int(check(self._d.cuMemAlloc(size), "cuMemAlloc"))
        self.allocations.add(Allocation(dptr, size, "alloc"))
        self._alloc_bytes += size
        return DevPtrResult(dptr=dptr)

    def mem_free(self, args: MemFreeArgs, io: CallIO) -> NoResult:
        if args.dptr == 0:
            return NoResult()  # cuMemFree(0) is CUDA's no-op
        alloc = self.allocations.find(args.dptr)
        if alloc is None or alloc.kind != "alloc" or alloc.start != args.dptr:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"cuMemFree({args.dptr:#x}): not the start of a live cuMemAlloc block of this VM")
        check(self._d.cuMemFree(args.dptr), "cuMemFree")
        self.allocations.remove(args.dptr, "alloc")
        self._alloc_bytes -= alloc.size
        return NoResult()

    def _memset(self, dst: int, count: int, value: int, width: int, handle: int, io: CallIO) -> NoResult:
        what = f"cuMemsetD{width * 8}"
        stream = self._stream(handle)
        if count:
            if dst % width:
                raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                                f"{what} destination {dst:#x} is not {width}-byte aligned")
            self._check_range(dst, count * width, write=True, what=f"{what} destination")
            d = self._d
            fn = d.cuMemsetD8Async if width == 1 else d.cuMemsetD16Async if width == 2 else d.cuMemsetD32Async
            check(fn(dst, value, count, stream), what)
        if io.blocking:
            self._sync(stream, what)
        return NoResult()

    def memset_d8(self, args: MemsetD8Args, io: CallIO) -> NoResult:
        return self._memset(args.dst, args.count, args.value, 1, args.stream, io)

    def memset_d16(self, args: MemsetD16Args, io: CallIO) -> NoResult:
        return self._memset(args.dst, args.count, args.value, 2, args.stream, io)

    def memset_d32(self, args: MemsetD32Args, io: CallIO) -> NoResult:
        return self._memset(args.dst, args.count, args.value, 4, args.stream, io)

    def memcpy_htod(self, args: MemcpyHtoDArgs, io: CallIO) -> NoResult:
        stream = self._stream(args.stream)
        count = len(io.inp)
        if count == 0:
            if io.blocking:
                self._sync(stream, "cuMemcpyHtoD")
            return NoResult()
        self._check_range(args.dst, count, write=True, what="cuMemcpyHtoD destination")
        self._host_copy_allowed(stream, args.stream, "cuMemcpyHtoD")
        src = _host_address(io.inp)
        check(self._d.cuMemcpyHtoDAsync(args.dst, src, count, stream), "cuMemcpyHtoDAsync")
        # the payload is the guest's again once we return: wait for the DMA (theory of operation)
        self._sync(stream, "cuMemcpyHtoD")
        return NoResult()

    def memcpy_dtoh(self, args: MemcpyDtoHArgs, io: CallIO) -> NoResult:
        count = args.count
        if count > len(io.out):
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"cuMemcpyDtoH of {count} bytes into a {len(io.out)}-byte output area")
        stream = self._stream(args.stream)
        if count:
            self._check_range(args.src, count, write=False, what="cuMemcpyDtoH source")
            self._host_copy_allowed(stream, args.stream, "cuMemcpyDtoH")
            dst = _host_address(io.out)
            check(self._d.cuMemcpyDtoHAsync(dst, args.src, count, stream), "cuMemcpyDtoHAsync")
            io.out_len = count
        if io.blocking:
            self._sync(stream, "cuMemcpyDtoH")
        return NoResult()

    def memcpy_dtod(self, args: MemcpyDtoDArgs, io: CallIO) -> NoResult:
        stream = self._stream(args.stream)
        if args.count:
            self._check_range(args.src, args.count, write=False, what="cuMemcpyDtoD source")
            self._check_range(args.dst, args.count, write=True, what="cuMemcpyDtoD destination")
            check(self._d.cuMemcpyDtoDAsync(args.dst, args.src, args.count, stream), "cuMemcpyDtoDAsync")
        if io.blocking:
            self._sync(stream, "cuMemcpyDtoD")
        return NoResult()

    # -- virtual memory management -------------------------------------------------------------------

    def _alloc_prop(self) -> Any:
        d = self._d
        prop = d.CUmemAllocationProp()
        prop.type = d.CUmemAllocationType.CU_MEM_ALLOCATION_TYPE_PINNED
        prop.location.type = d.CUmemLocationType.CU_MEM_LOCATION_TYPE_DEVICE
        prop.location.id = self.device_ordinal
        return prop

    def _vmm_granularity(self) -> int:
        if self._granularity is None:
            option = self._d.CUmemAllocationGranularity_flags.CU_MEM_ALLOC_GRANULARITY_MINIMUM
            self._granularity = int(check(self._d.cuMemGetAllocationGranularity(self._alloc_prop(), option),
                                          "cuMemGetAllocationGranularity"))
        return self._granularity

    def mem_get_allocation_granularity(self, args: GranularityArgs, io: CallIO) -> GranularityResult:
        self._device(args.device)
        option = self._d.CUmemAllocationGranularity_flags(int(args.option))
        value = check(self._d.cuMemGetAllocationGranularity(self._alloc_prop(), option),
                      "cuMemGetAllocationGranularity")
        return GranularityResult(granularity=int(value))

    def mem_create(self, args: MemCreateArgs, io: CallIO) -> MemHandleResult:
        self._device(args.device)
        if args.flags:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"cuMemCreate flags must be 0, not {args.flags}")
        self._charge(args.size, "cuMemCreate")
        handle = check(self._d.cuMemCreate(args.size, self._alloc_prop(), 0), "cuMemCreate")
        self._physical_bytes += args.size
        return MemHandleResult(handle=self._physicals.add(_Physical(handle, args.size)))

    def _drop_physical(self, physical: _Physical) -> None:
        if physical.released and physical.mappings == 0 and physical.size:
            self._physical_bytes -= physical.size
            physical.size = 0

    def mem_release(self, args: MemHandleArgs, io: CallIO) -> NoResult:
        physical = self._physicals.get(args.handle)
        check(self._d.cuMemRelease(physical.handle), "cuMemRelease")
        self._physicals.pop(args.handle)
        physical.released = True
        self._drop_physical(physical)
        return NoResult()

    def mem_address_reserve(self, args: AddressReserveArgs, io: CallIO) -> DevPtrResult:
        ptr = int(check(self._d.cuMemAddressReserve(args.size, args.alignment, args.addr, args.flags),
                        "cuMemAddressReserve"))
        self._reservations[ptr] = args.size
        return DevPtrResult(dptr=ptr)

    def _mappings_in(self, start: int, end: int) -> Iterator[Allocation]:
        return (a for a in self.allocations if a.kind == "vmm" and a.start < end and a.end > start)

    def mem_address_free(self, args: AddressFreeArgs, io: CallIO) -> NoResult:
        if self._reservations.get(args.ptr) != args.size:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"cuMemAddressFree({args.ptr:#x}, {args.size}) does not name a reservation of "
                            "this VM: ptr and size must be what cuMemAddressReserve returned and was given")
        if any(True for _ in self._mappings_in(args.ptr, args.ptr + args.size)):
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"cuMemAddressFree({args.ptr:#x}): mappings are still in the range; "
                            "cuMemUnmap them first")
        check(self._d.cuMemAddressFree(args.ptr, args.size), "cuMemAddressFree")
        del self._reservations[args.ptr]
        return NoResult()

    def mem_map(self, args: MemMapArgs, io: CallIO) -> NoResult:
        if args.flags:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE, f"cuMemMap flags must be 0, not {args.flags}")
        physical = self._physicals.get(args.handle)
        if args.size == 0 or not any(start <= args.ptr and args.ptr + args.size <= start + size
                                     for start, size in self._reservations.items()):
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"cuMemMap range [{args.ptr:#x}, +{args.size}) is not inside one address "
                            "reservation of this VM")
        granularity = self._vmm_granularity()
        mapping = _Mapping(physical, bytearray(-(-args.size // granularity)))
        alloc = Allocation(args.ptr, args.size, "vmm", mapping)
        self.allocations.add(alloc)  # CUDA_ERROR_ALREADY_MAPPED on overlap, before the driver
        try:
            check(self._d.cuMemMap(args.ptr, args.size, args.offset, physical.handle, 0), "cuMemMap")
        except CudaError:
            self.allocations.remove(args.ptr, "vmm")
            raise
        physical.mappings += 1
        return NoResult()

    def _walk_mapped(self, ptr: int, size: int, what: str, whole: bool) -> list[Allocation]:
        found: list[Allocation] = []
        cur, end = ptr, ptr + size
        if size == 0:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE, f"{what} of 0 bytes")
        while cur < end:
            alloc = self.allocations.find(cur)
            if alloc is None or alloc.kind != "vmm":
                raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                                f"{what}({ptr:#x}, {size}): {cur:#x} is not mapped")
            if whole and (alloc.start != cur or alloc.end > end):
                raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                                f"{what}({ptr:#x}, {size}) would split the mapping [{alloc.start:#x}, "
                                f"+{alloc.size}); a mapping is unmapped whole")
            found.append(alloc)
            cur = alloc.end
        return found

    def mem_unmap(self, args: MemUnmapArgs, io: CallIO) -> NoResult:
        found = self._walk_mapped(args.ptr, args.size, "cuMemUnmap", whole=True)
        check(self._d.cuMemUnmap(args.ptr, args.size), "cuMemUnmap")
        for alloc in found:
            self.allocations.remove(alloc.start, "vmm")
            physical = alloc.obj.physical
            physical.mappings -= 1
            self._drop_physical(physical)
        return NoResult()

    def mem_set_access(self, args: MemSetAccessArgs, io: CallIO) -> NoResult:
        self._device(args.device)
        found = self._walk_mapped(args.ptr, args.size, "cuMemSetAccess", whole=False)
        d = self._d
        desc = d.CUmemAccessDesc()
        desc.location.type = d.CUmemLocationType.CU_MEM_LOCATION_TYPE_DEVICE
        desc.location.id = self.device_ordinal
        desc.flags = d.CUmemAccess_flags(int(args.flags))
        check(d.cuMemSetAccess(args.ptr, args.size, [desc], 1), "cuMemSetAccess")
        granularity = self._vmm_granularity()
        end = args.ptr + args.size
        for alloc in found:
            mapping: _Mapping = alloc.obj
            first = (max(args.ptr, alloc.start) - alloc.start) // granularity
            last = -(-(min(end, alloc.end) - alloc.start) // granularity)
            mapping.access[first:last] = bytes([int(args.flags)]) * (last - first)
        return NoResult()

    # -- streams and events -------------------------------------------------------------------------------

    def stream_create(self, args: FlagsArgs, io: CallIO) -> StreamCreateResult:
        if args.flags & ~0x1:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"cuStreamCreate flags {args.flags:#x}: only CU_STREAM_NON_BLOCKING (1) is "
                            "defined")
        stream = check(self._d.cuStreamCreate(args.flags), "cuStreamCreate")
        return StreamCreateResult(stream=self._streams.add(stream))

    def stream_destroy(self, args: StreamArgs, io: CallIO) -> NoResult:
        if args.stream == 0:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_HANDLE, "the NULL stream cannot be destroyed")
        stream = self._streams.get(args.stream)
        for h, blas in self._blas.items():
            if blas.stream == args.stream:  # cuBLAS would otherwise launch into a dead stream
                self._cublas().set_stream(blas.handle, 0)
                blas.stream = 0
                self.log.info("cuBLAS handle moved to the NULL stream", cublas=h, stream=args.stream)
        check(self._d.cuStreamDestroy(stream), "cuStreamDestroy")
        self._streams.pop(args.stream)
        return NoResult()

    def stream_synchronize(self, args: StreamArgs, io: CallIO) -> NoResult:
        check(self._d.cuStreamSynchronize(self._stream(args.stream)), "cuStreamSynchronize")
        return NoResult()

    def stream_query(self, args: StreamArgs, io: CallIO) -> NoResult:
        check(self._d.cuStreamQuery(self._stream(args.stream)), "cuStreamQuery")
        return NoResult()

    def stream_wait_event(self, args: StreamWaitEventArgs, io: CallIO) -> NoResult:
        stream, event = self._stream(args.stream), self._events.get(args.event)
        check(self._d.cuStreamWaitEvent(stream, event, args.flags), "cuStreamWaitEvent")
        if io.blocking:
            self._sync(stream, "cuStreamWaitEvent")
        return NoResult()

    def event_create(self, args: FlagsArgs, io: CallIO) -> EventCreateResult:
        event = check(self._d.cuEventCreate(args.flags), "cuEventCreate")
        return EventCreateResult(event=self._events.add(event))

    def event_destroy(self, args: EventArgs, io: CallIO) -> NoResult:
        check(self._d.cuEventDestroy(self._events.get(args.event)), "cuEventDestroy")
        self._events.pop(args.event)
        return NoResult()

    def event_record(self, args: EventRecordArgs, io: CallIO) -> NoResult:
        event, stream = self._events.get(args.event), self._stream(args.stream)
        check(self._d.cuEventRecord(event, stream), "cuEventRecord")
        if io.blocking:
            self._sync(stream, "cuEventRecord")
        return NoResult()

    def event_synchronize(self, args: EventArgs, io: CallIO) -> NoResult:
        check(self._d.cuEventSynchronize(self._events.get(args.event)), "cuEventSynchronize")
        return NoResult()

    def event_query(self, args: EventArgs, io: CallIO) -> NoResult:
        check(self._d.cuEventQuery(self._events.get(args.event)), "cuEventQuery")
        return NoResult()

    def event_elapsed_time(self, args: EventElapsedArgs, io: CallIO) -> EventElapsedResult:
        start, end = self._events.get(args.start), self._events.get(args.end)
        ms = check(self._d.cuEventElapsedTime(start, end), "cuEventElapsedTime")
        return EventElapsedResult(milliseconds=float(ms))

    # -- modules and launch ------------------------------------------------------------------------------

    def module_load_data(self, args: NoArgs, io: CallIO) -> ModuleLoadResult:
        image = bytes(io.inp)
        if not image:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_IMAGE, "cuModuleLoadData: the image is empty")
        if not image.startswith((_ELF_MAGIC, _FATBIN_MAGIC)) and not image.endswith(b"\0"):
            image += b"\0"  # PTX text: the driver reads it as a C string
        buffer = np.frombuffer(image, dtype=np.uint8)
        module = check(self._d.cuModuleLoadData(buffer.ctypes.data), "cuModuleLoadData")
        return ModuleLoadResult(module=self._modules.add(_Module(module)))

    def module_unload(self, args: ModuleArgs, io: CallIO) -> NoResult:
        record = self._modules.get(args.module)
        check(self._d.cuModuleUnload(record.module), "cuModuleUnload")
        self._modules.pop(args.module)
        for handle in record.functions:
            if handle in self._functions:
                self._functions.pop(handle)
        for start in record.globals:
            self.allocations.remove(start, "global")
        return NoResult()

    def module_get_function(self, args: ModuleArgs, io: CallIO) -> FunctionResult:
        record = self._modules.get(args.module)
        name = _cstring(io.inp, "cuModuleGetFunction")
        function = check(self._d.cuModuleGetFunction(record.module, name), f"cuModuleGetFunction({name!r})")
        handle = self._functions.add(_Function(function, args.module))
        record.functions.append(handle)
        return FunctionResult(function=handle)

    def module_get_global(self, args: ModuleArgs, io: CallIO) -> GlobalResult:
        record = self._modules.get(args.module)
        name = _cstring(io.inp, "cuModuleGetGlobal")
        dptr, size = check(self._d.cuModuleGetGlobal(record.module, name), f"cuModuleGetGlobal({name!r})")
        dptr, size = int(dptr), int(size)
        if dptr not in record.globals and size:
            self.allocations.add(Allocation(dptr, size, "global", args.module))
            record.globals.append(dptr)
        return GlobalResult(dptr=dptr, bytes=size)

    def _layout(self, record: _Function) -> tuple[tuple[int, int], ...]:
        if record.layout is None:
            params: list[tuple[int, int]] = []
            while True:
                err, offset, size = self._d.cuFuncGetParamInfo(record.function, len(params))
                code = status_code(err)
                if code == int(CUresult.CUDA_ERROR_INVALID_VALUE):
                    break  # past the last parameter
                if code:
                    raise driver_error(code, "cuFuncGetParamInfo")
                params.append((int(offset), int(size)))
            record.layout = tuple(params)
            record.param_bytes = max((o + s for o, s in params), default=0)
        return record.layout

    def func_get_param_info(self, args: FuncParamInfoArgs, io: CallIO) -> FuncParamInfoResult:
        record = self._functions.get(args.function)
        offset, size = check(self._d.cuFuncGetParamInfo(record.function, args.index),
                             f"cuFuncGetParamInfo(index {args.index})")
        return FuncParamInfoResult(offset=int(offset), size=int(size))

    def func_get_param_layout(self, args: FuncArgs, io: CallIO) -> FuncParamLayoutResult:
        """Writes as many (offset, size) pairs as fit ``out_cap``; ``count`` is always the total."""
        record = self._functions.get(args.function)
        layout = self._layout(record)
        fit = min(len(layout), len(io.out) // 8)
        if fit:
            pairs = np.array(layout[:fit], dtype="<u4").reshape(-1)
            io.out[:8 * fit] = pairs.tobytes()
            io.out_len = 8 * fit
        return FuncParamLayoutResult(count=len(layout), param_bytes=record.param_bytes)

    def func_get_attribute(self, args: FuncGetAttributeArgs, io: CallIO) -> I32Result:
        record = self._functions.get(args.function)
        attrib = self._d.CUfunction_attribute(int(args.attrib))
        value = check(self._d.cuFuncGetAttribute(attrib, record.function),
                      f"cuFuncGetAttribute({args.attrib.name})")
        return I32Result(value=int(value))

    def func_set_attribute(self, args: FuncSetAttributeArgs, io: CallIO) -> NoResult:
        record = self._functions.get(args.function)
        attrib = self._d.CUfunction_attribute(int(args.attrib))
        check(self._d.cuFuncSetAttribute(record.function, attrib, args.value),
              f"cuFuncSetAttribute({args.attrib.name}, {args.value})")
        return NoResult()

    def launch_kernel(self, args: LaunchKernelArgs, io: CallIO) -> NoResult:
        record = self._functions.get(args.function)
        stream = self._stream(args.stream)
        self._layout(record)
        need = record.param_bytes
        if len(io.inp) < need:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"cuLaunchKernel: the parameter block has {len(io.inp)} bytes, the kernel takes "
                            f"{need}")
        extra = 0
        if need:
            self._extra[1] = _host_address(io.inp)
            self._param_size.value = need
            extra = self._extra_address
        # the driver copies the parameter block during the call: the payload is free when it returns
        check(self._d.cuLaunchKernel(record.function, args.grid_x, args.grid_y, args.grid_z,
                                     args.block_x, args.block_y, args.block_z, args.shared_mem_bytes,
                                     stream, 0, extra), "cuLaunchKernel")
        if io.blocking:
            self._sync(stream, "cuLaunchKernel")
        return NoResult()

    # -- cuBLAS -----------------------------------------------------------------------------------------

    def _cublas(self) -> Any:
        try:
            return load_cublas()
        except BackendUnavailableError as exc:
            raise CudaError(CublasStatus.CUBLAS_STATUS_NOT_INITIALIZED, str(exc)) from exc

    def cublas_create(self, args: NoArgs, io: CallIO) -> CublasCreateResult:
        cublas = self._cublas()
        try:
            handle = int(cublas.create())
        except Exception as exc:
            raise cublas_error(exc, "cublasCreate") from exc
        return CublasCreateResult(handle=self._blas.add(_Blas(handle)))

    def cublas_destroy(self, args: CublasArgs, io: CallIO) -> NoResult:
        blas = self._blas.get(args.handle)
        try:
            self._cublas().destroy(blas.handle)
        except CudaError:
            raise
        except Exception as exc:
            raise cublas_error(exc, "cublasDestroy") from exc
        self._blas.pop(args.handle)
        return NoResult()

    def cublas_set_stream(self, args: CublasSetStreamArgs, io: CallIO) -> NoResult:
        blas = self._blas.get(args.handle)
        if args.stream and args.stream not in self._streams:
            raise CudaError(CublasStatus.CUBLAS_STATUS_INVALID_VALUE,
                            f"cublasSetStream: stream {args.stream} is not a live stream of this VM")
        stream = self._stream(args.stream)
        try:
            self._cublas().set_stream(blas.handle, int(stream))
        except Exception as exc:
            raise cublas_error(exc, "cublasSetStream") from exc
        blas.stream = args.stream
        return NoResult()

    def cublas_set_math_mode(self, args: CublasSetMathModeArgs, io: CallIO) -> NoResult:
        blas = self._blas.get(args.handle)
        if args.mode & ~_CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION not in (0, 1, 2, 3):
            raise CudaError(CublasStatus.CUBLAS_STATUS_INVALID_VALUE,
                            f"cublasSetMathMode: unknown mode {args.mode:#x}")
        try:
            self._cublas().set_math_mode(blas.handle, args.mode)
        except Exception as exc:
            raise cublas_error(exc, "cublasSetMathMode") from exc
        blas.math_mode = args.mode
        return NoResult()

    def _check_gemm(self, shape: GemmShape, batches: list[tuple[int, int, int]], what: str) -> None:
        try:
            for a, b, c in batches:
                for ptr, size, written, name in gemm_ranges(shape, a, b, c):
                    self._check_range(ptr, size, write=written, what=name)
        except CudaError as exc:
            raise CudaError(CublasStatus.CUBLAS_STATUS_EXECUTION_FAILED,
                            f"{what}: {exc.message} (the kernel would fault)") from exc

    def _run_gemm(self, blas: _Blas, io: CallIO, what: str, call: Callable[[], None]) -> NoResult:
        try:
            call()
        except Exception as exc:
            raise cublas_error(exc, what) from exc
        if io.blocking:
            try:
                self._sync(self._stream(blas.stream), what)
            except CudaError as exc:
                raise CudaError(CublasStatus.CUBLAS_STATUS_EXECUTION_FAILED,
                                f"{what}: {exc.status.name}: {exc.message}", sticky=exc.sticky) from exc
        return NoResult()

    def cublas_sgemm(self, args: SgemmArgs, io: CallIO) -> NoResult:
        blas = self._blas.get(args.handle)
        f32 = CudaDataType.CUDA_R_32F
        shape = GemmShape(args.transa, args.transb, args.m, args.n, args.k, args.alpha, args.beta,
                          f32, args.lda, f32, args.ldb, f32, args.ldc)
        self._check_gemm(shape, [(args.a, args.b, args.c)], "cublasSgemm")
        cublas = self._cublas()
        scalars = np.array([args.alpha, args.beta], dtype=np.float32)
        alpha, beta = scalars.ctypes.data, scalars.ctypes.data + 4
        return self._run_gemm(blas, io, "cublasSgemm", lambda: cublas.sgemm(
            blas.handle, int(args.transa), int(args.transb), args.m, args.n, args.k, alpha,
            args.a, args.lda, args.b, args.ldb, beta, args.c, args.ldc))

    def _ex_shape(self, args: GemmExArgs | GemmStridedBatchedExArgs | GemmBatchedExArgs,
                  ) -> tuple[_Blas, GemmShape]:
        blas = self._blas.get(args.handle)
        check_gemm_types(args.a_type, args.b_type, args.c_type, args.compute_type, args.algo)
        return blas, GemmShape(args.transa, args.transb, args.m, args.n, args.k, args.alpha, args.beta,
                               args.a_type, args.lda, args.b_type, args.ldb, args.c_type, args.ldc)

    def cublas_gemm_ex(self, args: GemmExArgs, io: CallIO) -> NoResult:
        blas, shape = self._ex_shape(args)
        self._check_gemm(shape, [(args.a, args.b, args.c)], "cublasGemmEx")
        cublas = self._cublas()
        scalars = np.array([args.alpha, args.beta], dtype=np.float32)  # every compute type here is f32
        alpha, beta = scalars.ctypes.data, scalars.ctypes.data + 4
        return self._run_gemm(blas, io, "cublasGemmEx", lambda: cublas.gemm_ex(
            blas.handle, int(args.transa), int(args.transb), args.m, args.n, args.k, alpha,
            args.a, int(args.a_type), args.lda, args.b, int(args.b_type), args.ldb, beta,
            args.c, int(args.c_type), args.ldc, int(args.compute_type), args.algo))

    def cublas_gemm_strided_batched_ex(self, args: GemmStridedBatchedExArgs, io: CallIO) -> NoResult:
        blas, shape = self._ex_shape(args)
        sa, sb, sc = (ITEMSIZE[t] for t in (args.a_type, args.b_type, args.c_type))
        batches = [(args.a + i * args.stride_a * sa, args.b + i * args.stride_b * sb,
                    args.c + i * args.stride_c * sc) for i in range(args.batch_count)]
        self._check_gemm(shape, batches, "cublasGemmStridedBatchedEx")
        cublas = self._cublas()
        scalars = np.array([args.alpha, args.beta], dtype=np.float32)
        alpha, beta = scalars.ctypes.data, scalars.ctypes.data + 4
        return self._run_gemm(blas, io, "cublasGemmStridedBatchedEx", lambda: cublas.gemm_strided_batched_ex(
            blas.handle, int(args.transa), int(args.transb), args.m, args.n, args.k, alpha,
            args.a, int(args.a_type), args.lda, args.stride_a, args.b, int(args.b_type), args.ldb,
            args.stride_b, beta, args.c, int(args.c_type), args.ldc, args.stride_c, args.batch_count,
            int(args.compute_type), args.algo))

    def cublas_gemm_batched_ex(self, args: GemmBatchedExArgs, io: CallIO) -> NoResult:
        """The pointer arrays live in device memory: outside a capture they are read back (after the
        handle's stream has drained) and every matrix they name is checked; during a capture they are
        not final yet, so only the arrays themselves are checked and the per-process address space
        bounds the kernel (see the theory of operation)."""
        blas, shape = self._ex_shape(args)
        what = "cublasGemmBatchedEx"
        count = args.batch_count
        stream = self._stream(blas.stream)
        try:
            for ptr, name in ((args.a, "Aarray"), (args.b, "Barray"), (args.c, "Carray")):
                if count:
                    self._check_range(ptr, 8 * count, write=False, what=f"pointer array {name}")
        except CudaError as exc:
            raise CudaError(CublasStatus.CUBLAS_STATUS_EXECUTION_FAILED, f"{what}: {exc.message}") from exc
        capturing = status_code(check(self._d.cuStreamIsCapturing(stream), "cuStreamIsCapturing")) != 0
        if count and not capturing:
            self._sync(stream, what)
            arrays = []
            for ptr in (args.a, args.b, args.c):
                host = np.empty(count, dtype="<u8")
                check(self._d.cuMemcpyDtoH(host.ctypes.data, ptr, 8 * count), f"{what}: reading pointers")
                arrays.append(host)
            self._check_gemm(shape, [(int(arrays[0][i]), int(arrays[1][i]), int(arrays[2][i]))
                                     for i in range(count)], what)
        cublas = self._cublas()
        scalars = np.array([args.alpha, args.beta], dtype=np.float32)
        alpha, beta = scalars.ctypes.data, scalars.ctypes.data + 4
        return self._run_gemm(blas, io, what, lambda: cublas.gemm_batched_ex(
            blas.handle, int(args.transa), int(args.transb), args.m, args.n, args.k, alpha,
            args.a, int(args.a_type), args.lda, args.b, int(args.b_type), args.ldb, beta,
            args.c, int(args.c_type), args.ldc, count, int(args.compute_type), args.algo))

    # -- stream capture and graphs ----------------------------------------------------------------------

    def stream_begin_capture(self, args: BeginCaptureArgs, io: CallIO) -> NoResult:
        stream = self._stream(args.stream)
        if args.stream == 0:
            raise CudaError(CUresult.CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED,
                            "the legacy NULL stream cannot be captured")
        mode = self._d.CUstreamCaptureMode(int(args.mode))
        check(self._d.cuStreamBeginCapture(stream, mode), "cuStreamBeginCapture")
        return NoResult()

    def stream_end_capture(self, args: StreamArgs, io: CallIO) -> GraphResult:
        stream = self._stream(args.stream)
        info = check(self._d.cuStreamGetCaptureInfo(stream), "cuStreamGetCaptureInfo")
        capture_id = int(info[1]) if status_code(info[0]) else 0
        graph = check(self._d.cuStreamEndCapture(stream), "cuStreamEndCapture")
        reason = self._invalidated.pop(capture_id, None)
        if reason is not None:
            check(self._d.cuGraphDestroy(graph), "cuGraphDestroy")
            raise CudaError(CUresult.CUDA_ERROR_STREAM_CAPTURE_INVALIDATED,
                            f"capture {capture_id} was invalidated ({reason})")
        return GraphResult(graph=self._graphs.add(graph))

    def stream_get_capture_info(self, args: StreamArgs, io: CallIO) -> CaptureInfoResult:
        info = check(self._d.cuStreamGetCaptureInfo(self._stream(args.stream)), "cuStreamGetCaptureInfo")
        status, capture_id = StreamCaptureStatus(status_code(info[0])), int(info[1])
        if status == StreamCaptureStatus.CU_STREAM_CAPTURE_STATUS_ACTIVE and capture_id in self._invalidated:
            status = StreamCaptureStatus.CU_STREAM_CAPTURE_STATUS_INVALIDATED
        return CaptureInfoResult(status=status, capture_id=capture_id)

    def graph_instantiate(self, args: GraphInstantiateArgs, io: CallIO) -> GraphExecResult:
        graph = self._graphs.get(args.graph)
        graph_exec = check(self._d.cuGraphInstantiate(graph, args.flags), "cuGraphInstantiate")
        return GraphExecResult(graph_exec=self._graph_execs.add(graph_exec))

    def graph_launch(self, args: GraphLaunchArgs, io: CallIO) -> NoResult:
        graph_exec, stream = self._graph_execs.get(args.graph_exec), self._stream(args.stream)
        check(self._d.cuGraphLaunch(graph_exec, stream), "cuGraphLaunch")
        if io.blocking:
            self._sync(stream, "cuGraphLaunch")
        return NoResult()

    def graph_exec_destroy(self, args: GraphExecArgs, io: CallIO) -> NoResult:
        check(self._d.cuGraphExecDestroy(self._graph_execs.get(args.graph_exec)), "cuGraphExecDestroy")
        self._graph_execs.pop(args.graph_exec)
        return NoResult()

    def graph_destroy(self, args: GraphArgs, io: CallIO) -> NoResult:
        check(self._d.cuGraphDestroy(self._graphs.get(args.graph)), "cuGraphDestroy")
        self._graphs.pop(args.graph)
        return NoResult()


def _cublas_or_none() -> Any:
    try:
        return load_cublas()
    except BackendUnavailableError:
        return None
