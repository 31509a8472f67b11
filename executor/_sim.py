"""The ``sim`` backend: a CPU simulator on NumPy with CUDA's semantics for everything but kernels.

Theory of operation
-------------------
One :class:`SimExecutor` is one VM's GPU. Its state lives in three places, each owned by one module:
device memory (``_sim_memory``: blocks, the VMM API, bounds and access checks), streams, events,
capture and graphs (``_sim_graph``), and cuBLAS arithmetic (``_sim_blas``). This module holds the
handles and applies CUDA's rules for calls.

*Execution.* Stream-ordered work (memsets, copies, GEMMs, event records, graph launches, kernel
launches) goes through :meth:`SimExecutor.enqueue`, which runs it at once — every stream is always
idle, so ``cuStreamQuery`` and ``cuEventQuery`` answer ``CUDA_SUCCESS`` and in-stream and
cross-stream order hold trivially — or, on a capturing stream, records it into the capture.

*Capture rules*, as CUDA applies them:

* the legacy NULL stream cannot capture (``CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED``); work on it while a
  blocking stream captures fails with ``CUDA_ERROR_STREAM_CAPTURE_IMPLICIT`` and invalidates that
  capture (non-blocking streams do not synchronize with it);
* waiting for a capturing stream (``cuStreamSynchronize``, ``cuStreamQuery``, ``cuCtxSynchronize``, a
  copy or memset submitted without ``ASYNC``, which the guest waits for) fails with
  ``CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED`` and invalidates the capture; later work on it fails with
  ``CUDA_ERROR_STREAM_CAPTURE_INVALIDATED``, and so does ``cuStreamEndCapture``, which ends it;
* in ``GLOBAL`` and ``THREAD_LOCAL`` mode (the mediator cannot tell a guest's threads apart, so both
  act as global) ``cuMemAlloc`` and ``cuMemFree`` are unsafe: ``CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED``,
  capture invalidated; ``RELAXED`` (GGML's mode) allows them;
* querying, synchronizing or timing an event last recorded in a capture fails with
  ``CUDA_ERROR_CAPTURED_EVENT`` (the capture carries on);
* host copies (``memcpy_htod``/``memcpy_dtoh``) cannot be captured across the remoting boundary — the
  guest's host buffer is not ours to read or write when the graph is launched later — so they fail
  with ``CUDA_ERROR_NOT_SUPPORTED`` and invalidate the capture (the graph would miss them).

*Kernels*: modules load, and their kernels, parameter layouts, globals and function attributes
are found, for any real image (``_sim_modules``); every launch runs on the PTX engine
(``executor.ptx``) from the image's PTX for the simulated compute capability (a cubin-only image is
``CUDA_ERROR_NOT_SUPPORTED``, saying which entries it had). A kernel using an instruction the engine
does not implement is ``CUDA_ERROR_NOT_SUPPORTED`` naming it, before anything runs; a fault inside a
kernel is sticky (``CUDA_ERROR_ILLEGAL_ADDRESS``, ``CUDA_ERROR_MISALIGNED_ADDRESS``), as on a GPU.
The parsed module, prepared kernels and a captured launch's parameters are charged to the VM's host
budget.

*Deliberate simplifications*: every resource belongs to the VM rather than to a context (contexts are
bookkeeping; no call needs a current one, and releasing or destroying a context frees nothing).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Final

import numpy as np
import structlog

from protocol import (
    CublasStatus,
    CudaDataType,
    CUresult,
    FunctionAttribute,
    StreamCaptureMode,
    StreamCaptureStatus,
)
from protocol.models import (
    AddressFreeArgs,
    AddressReserveArgs,
    BeginCaptureArgs,
    CapturedResult,
    CaptureInfoResult,
    CountResult,
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
    EventRecordFlagsArgs,
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
    GraphExecNodeArgs,
    GraphExecResult,
    GraphExecUpdateArgs,
    GraphExecUpdateResult,
    GraphInstantiateArgs,
    GraphLaunchArgs,
    GraphLaunchPhaseArgs,
    GraphResult,
    GuestNodeArgs,
    GuestNodeResult,
    I32Result,
    LaunchClusterArgs,
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
    ModuleGlobalAliasArgs,
    ModuleLoadResult,
    NoArgs,
    NoResult,
    OccupancyArgs,
    SgemmArgs,
    StreamArgs,
    StreamCreateResult,
    StreamWaitEventArgs,
)

from ._base import AllocationMap, CallIO, DeviceConfig, Executor, HandleTable, HostBudget
from ._errors import CudaError
from ._kernels import LaunchDims
from ._module_upload import ModuleUploadCalls, ModuleUploads
from ._modules import KernelAttributes
from ._pinned_calls import PinnedHostCalls
from ._sim_blas import (
    ITEMSIZE,
    GemmShape,
    check_gemm_work,
    check_pointer_arrays,
    ex_gemm_shape,
    gemm,
    gemm_ranges,
    read_pointer_arrays,
)
from ._sim_blas_trsm import SimTrsmCalls
from ._sim_device import blocks_per_sm, device_attributes
from ._sim_graph import Capture, EventState, Graph, GraphBody, GraphExec, StreamState, update_mismatch
from ._sim_memory import Bytes, DeviceMemory, fill_views
from ._sim_modules import FunctionLimits, SimFunction, SimModules, symbol_name
from ._sim_nvml import SimNvmlCalls
from ._sim_pinned import SimPinnedCalls
from ._sim_pitched import SimPitchedCalls
from ._sim_tensor_maps import SimTensorMapCalls
from ._sim_textures import SimTextureCalls, SimTextures
from .ptx import GRID_WORKSPACE_BYTES, Limits, cluster_shape, printf_listening
from .ptx import launch as run_ptx_kernel
from .ptx import load_module as load_ptx_module

__all__ = ["SimExecutor"]

log = structlog.get_logger("executor.sim")

CU_STREAM_NON_BLOCKING: Final = 0x1
CU_EVENT_BLOCKING_SYNC: Final = 0x1
CU_EVENT_DISABLE_TIMING: Final = 0x2
CU_EVENT_INTERPROCESS: Final = 0x4
CU_EVENT_WAIT_EXTERNAL: Final = 0x1
CU_EVENT_RECORD_EXTERNAL: Final = 0x1
#: scheduling (0x07), MAP_HOST, LMEM_RESIZE_TO_MAX, COREDUMP, USER_COREDUMP, SYNC_MEMOPS
_CTX_FLAGS: Final = 0xFF
_GRAPH_INSTANTIATE_FLAGS: Final = 0x1 | 0x2 | 0x8  # AUTO_FREE_ON_LAUNCH, UPLOAD, USE_NODE_PRIORITY
_CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION: Final = 0x10
_RELAXED = StreamCaptureMode.CU_STREAM_CAPTURE_MODE_RELAXED
#: results are frozen: one instance answers every call that returns nothing but its status
_NO_RESULT: Final = NoResult()
_MEMSET_NAMES: Final = {1: "cuMemsetD8", 2: "cuMemsetD16", 4: "cuMemsetD32"}
#: the device limits a launch is checked against (compute capability 7.0 and newer)
MAX_THREADS_PER_BLOCK: Final = 1024
MAX_BLOCK_DIM: Final = (1024, 1024, 64)
MAX_GRID_DIM: Final = (2**31 - 1, 65535, 65535)
#: the most GEMMs one batched call may ask the simulator for: each is a NumPy call of its own, and a
#: guest's ``batch_count`` of 2**31 over one tiny matrix would otherwise build billions of them (host
#: memory, not the VM's quota); a GPU runs such a batch in milliseconds, the simulator refuses it
MAX_SIM_GEMM_BATCH: Final = 1 << 16
#: graph nodes one VM may hold at once, in captures, graphs and graph execs together: each is host
#: memory of the VM's worker (a closure), which no device-memory quota sees; CUDA answers a graph it
#: cannot hold with CUDA_ERROR_OUT_OF_MEMORY, and so does the simulator past this many
MAX_GRAPH_NODES: Final = 1 << 18
#: host bytes one graph node is charged to the VM's host budget (a Node, its frozenset of
#: dependencies and the closure with the arguments it replays: 300-700 bytes measured, rounded up);
#: a node that keeps a payload (a launch's parameters) is charged that on top
GRAPH_NODE_BYTES: Final = 1024
#: a phase launched into a capture holds its leaves in a tuple of its own: a reference each
PHASE_NODE_BYTES: Final = 8


class SimExecutor(SimNvmlCalls, SimTrsmCalls, SimPinnedCalls, SimTextureCalls, SimTensorMapCalls,
                  SimPitchedCalls, PinnedHostCalls, ModuleUploadCalls, Executor):
    """One VM's simulated GPU. See the module's theory of operation."""

    backend_name = "sim"
    max_batch = MAX_SIM_GEMM_BATCH  # the same bound for batched triangular solves

    def __init__(self, config: DeviceConfig | None = None, memory_quota: int | None = None, *,
                 clock: Callable[[], int] = time.perf_counter_ns, host_budget: int | None = None,
                 va_floor: int = 0, on_va_lease: Callable[[int], None] | None = None) -> None:
        """``host_budget``: the host bytes the VM's calls may make this backend keep outside device
        memory (parsed modules, graph nodes; None: unbounded). ``va_floor`` and ``on_va_lease``: see
        ``_sim_memory`` (no address below the floor is handed out; each new lease is reported)."""
        super().__init__()
        config = config or DeviceConfig()
        self.config = config
        self.launch_limits = Limits(seconds=config.launch_timeout_s, instructions=config.launch_instructions,
                                    printf_bytes=config.printf_bytes, printf_lines=config.printf_lines)
        self._clock = clock  # nanoseconds, for event timestamps
        self.host = HostBudget(host_budget)
        self.module_uploads = ModuleUploads(config.module_bytes, self.host)  # images past the arena
        # one id space for every kind of handle: an id names at most one object, so a handle passed
        # where another kind is expected is always refused, never mistaken for one of that kind
        ids = itertools.count(1)
        self.memory = DeviceMemory(config.total_memory, memory_quota, ids=ids, va_floor=va_floor,
                                   on_lease=on_va_lease)
        self._attributes = device_attributes(config)  # _sim_device: all of CUDA 13's
        major, minor = config.compute_capability
        limits = FunctionLimits(  # from the device attributes: threads, registers, shared memory per block
            major * 10 + minor, self._attributes[1], self._attributes[12], self._attributes[8],
            self._attributes[97], self._attributes[10])
        self.modules = SimModules(self.memory, limits, ids=ids, host=self.host, jit=self._jit_layout)
        self.textures = SimTextures(self.memory, self._attributes, ids, self.host)  # arrays, tex/surf objects
        self._legacy = StreamState(0, 0)
        self._streams: HandleTable[StreamState] = HandleTable("stream", ids=ids)
        self._events: HandleTable[EventState] = HandleTable("event", ids=ids)
        self._graphs: HandleTable[Graph] = HandleTable("graph", ids=ids)
        self._graph_execs: HandleTable[GraphExec] = HandleTable("graph exec", ids=ids)
        self._blas: HandleTable[_BlasHandle] = HandleTable(
            "cuBLAS", CublasStatus.CUBLAS_STATUS_NOT_INITIALIZED, ids=ids)
        self._contexts: HandleTable[int] = HandleTable(
            "context", CUresult.CUDA_ERROR_INVALID_CONTEXT, ids=ids)
        self._primary: int | None = None
        self._primary_refs = 0
        self._ctx_stack: list[int] = []
        self._captures: dict[int, Capture] = {}
        self._capture_ids = 0
        self._graph_nodes = 0  # nodes held by live graphs and graph execs (captures count their own)

    # -- what other parts of the backend use ----------------------------------------------------

    @property
    def allocations(self) -> AllocationMap:
        """The VM's :class:`AllocationMap` (device address ranges)."""
        return self.memory.allocations

    def device_view(self, ptr: int, nbytes: int, *, readonly: bool = False) -> Bytes:
        """A uint8 view of device memory ``[ptr, ptr + nbytes)``, writable unless ``readonly``.

        ``CUDA_ERROR_INVALID_VALUE`` outside the VM's allocations, ``CUDA_ERROR_ILLEGAL_ADDRESS`` on mapped
        memory without the access needed, ``CUDA_ERROR_NOT_SUPPORTED`` for a range that straddles
        separately mapped VMM chunks (use :meth:`device_read`/:meth:`device_write` there).
        """
        return self.memory.view(ptr, nbytes, write=not readonly)

    def device_read(self, ptr: int, nbytes: int) -> Bytes:
        """A copy of ``[ptr, ptr + nbytes)``; works across adjacent VMM chunks."""
        return self.memory.read(ptr, nbytes)

    def device_write(self, ptr: int, data: Bytes) -> None:
        """Store bytes at ``ptr``; works across adjacent VMM chunks."""
        self.memory.write(ptr, data)

    def enqueue(self, stream: int, op: Callable[[], None], what: str, host_bytes: int = 0) -> None:
        """Run stream-ordered work now, or record it when ``stream`` is capturing; ``host_bytes``:
        what the recorded ``op`` keeps beyond a node's own cost (a launch's parameter block), charged
        to the VM's host budget with the node."""
        state = self._stream(stream)
        if state is self._legacy:
            self._touch_legacy(what)
        if state.capture is None:
            op()
            return
        if state.capture.invalid_reason is None:
            self._hold_nodes(1, what, state.capture, host_bytes)
        state.capture.record(state, self._paced(op), what)

    def _paced(self, op: Callable[[], None]) -> Callable[[], None]:
        """``op`` as a graph node: a graph launch replays its nodes in one call, each bounded (a
        kernel by the PTX engine's limits) but not their sum, so :attr:`between_ops` runs before each."""

        def node() -> None:
            hook = self.between_ops
            if hook is not None:
                hook()
            op()

        return node

    def _hold_nodes(self, count: int, what: str, capture: Capture | None = None, host_bytes: int = 0) -> int:
        """Refuse graph nodes past :data:`MAX_GRAPH_NODES` or the VM's host budget (a capture that
        cannot grow is invalidated); charges the budget, adds the bytes to ``capture``'s, and
        returns them."""
        held = self._graph_nodes + sum(len(c.nodes) for c in self._captures.values())
        nbytes = count * GRAPH_NODE_BYTES + host_bytes
        try:
            if held + count > MAX_GRAPH_NODES:
                raise CudaError(CUresult.CUDA_ERROR_OUT_OF_MEMORY,
                                f"{what}: {count} more graph nodes would exceed the {MAX_GRAPH_NODES} a VM "
                                f"may hold (it holds {held} in captures, graphs and graph execs)")
            self.host.charge(nbytes, f"{what}: {count} graph node(s)")
        except CudaError as exc:
            if capture is not None:
                self._invalidate(capture, exc.message)
            raise
        if capture is not None:
            capture.host_bytes += nbytes
        return nbytes

    def _end_capture(self, capture: Capture, *, keep: bool) -> None:
        """The capture is over; its nodes' host bytes go to the graph made of them (``keep``) or
        back to the budget."""
        capture.finish()
        del self._captures[capture.capture_id]
        if not keep:
            self.host.release(capture.host_bytes)

    def set_memory_quota(self, quota: int | None) -> None:
        """Change the VM's quota (the supervisor's ``set_quota``); live allocations stay."""
        self.memory.quota = quota

    # -- Executor --------------------------------------------------------------------------------

    def memory_used(self) -> int:
        return self.memory.used

    def holds_context(self) -> bool:
        return len(self._contexts) > 0

    def live_handles(self) -> int:
        """Handles of every kind the VM holds now (streams, events, …, memory handles, modules)."""
        tables = (self._streams, self._events, self._graphs, self._graph_execs, self._blas, self._contexts,
                  self.memory.handles, self.modules.modules, self.modules.functions)
        return sum(len(table) for table in tables) + len(self.textures)

    def close(self) -> None:
        for capture in list(self._captures.values()):
            capture.finish()
        self._captures.clear()
        self._graph_nodes = 0
        self.module_uploads.close()
        self.host.used = 0  # every graph and module goes below
        for table in (self._streams, self._events, self._graphs, self._graph_execs, self._blas,
                      self._contexts):
            table.clear()
        self._ctx_stack.clear()
        self._primary = None
        self._primary_refs = 0
        self.modules.clear()
        self.textures.clear()
        self.memory.close()

    # -- helpers ---------------------------------------------------------------------------------

    def _device(self, device: int) -> None:
        if device != 0:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_DEVICE,
                            f"device {device} does not exist (the VM has one device, 0)")

    def _stream(self, handle: int) -> StreamState:
        return self._legacy if handle == 0 else self._streams.get(handle)

    def _invalidate(self, capture: Capture, reason: str) -> None:
        capture.invalidate(reason)
        log.info("capture invalidated", capture_id=capture.capture_id, reason=reason)

    def _touch_legacy(self, what: str) -> None:
        """Work on (or a wait for) the legacy stream: CUDA forbids it while a blocking stream captures."""
        if not self._captures:
            return
        hit = [c for c in self._captures.values() if any(s.blocking for s in c.streams)]
        if hit:
            reason = f"{what} on the legacy NULL stream, which synchronizes with the capturing stream"
            for capture in hit:
                self._invalidate(capture, reason)
            raise CudaError(CUresult.CUDA_ERROR_STREAM_CAPTURE_IMPLICIT,
                            f"{reason} (capture {', '.join(str(c.capture_id) for c in hit)})")

    def _wait_for(self, state: StreamState, what: str) -> None:
        """A host wait for ``state``'s work: impossible while it captures."""
        if state is self._legacy:
            self._touch_legacy(what)
        elif state.capture is not None:
            self._invalidate(state.capture, f"{what} waited for the capturing stream {state.handle}")
            raise CudaError(CUresult.CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED,
                            f"{what}: stream {state.handle} is capturing (capture "
                            f"{state.capture.capture_id} is now invalidated)")

    def _unsafe(self, what: str) -> None:
        """A call that GLOBAL and THREAD_LOCAL capture modes prohibit."""
        strict = [c for c in self._captures.values() if c.mode != _RELAXED]
        if strict:
            for capture in strict:
                self._invalidate(capture, f"{what} during a {capture.mode.name} capture")
            raise CudaError(CUresult.CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED,
                            f"{what} is not permitted while a stream captures in "
                            f"{strict[0].mode.name} mode (use RELAXED)")

    def _stream_work(self, stream: int, io: CallIO, what: str, *, host: bool = False) -> StreamState:
        """Checks for a copy or memset before it is enqueued: waits and host buffers vs capture."""
        state = self._stream(stream)
        capture = state.capture
        if capture is not None:
            if host:
                self._invalidate(capture, f"{what} referenced guest host memory")
                raise CudaError(CUresult.CUDA_ERROR_NOT_SUPPORTED,
                                f"{what} on capturing stream {stream}: a graph node cannot reference the "
                                "guest's host memory across the remoting boundary (capture invalidated)")
            if io.blocking:
                self._wait_for(state, f"synchronous {what}")
        return state

    def _event(self, handle: int) -> EventState:
        return self._events.get(handle)

    def _not_captured(self, event: EventState, handle: int, what: str) -> None:
        if event.capture is not None:
            raise CudaError(CUresult.CUDA_ERROR_CAPTURED_EVENT,
                            f"{what}: event {handle} was last recorded in capture "
                            f"{event.capture.capture_id}")

    # -- driver and device -------------------------------------------------------------------------

    def nop(self, args: NoArgs, io: CallIO) -> NoResult:
        return _NO_RESULT

    def init(self, args: FlagsArgs, io: CallIO) -> NoResult:
        if args.flags != 0:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE, f"cuInit flags must be 0, not {args.flags}")
        return _NO_RESULT

    def driver_get_version(self, args: NoArgs, io: CallIO) -> I32Result:
        return I32Result(value=self.config.driver_version)

    def device_get_count(self, args: NoArgs, io: CallIO) -> I32Result:
        return I32Result(value=1)

    def device_get(self, args: DeviceGetArgs, io: CallIO) -> DeviceGetResult:
        self._device(args.ordinal)
        return DeviceGetResult(device=0)

    def _write_string(self, text: str, io: CallIO, what: str) -> None:
        if len(io.out) == 0:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE, f"{what}: no room for the string (out_cap 0)")
        data = text.encode()[:len(io.out) - 1] + b"\0"
        io.out[:len(data)] = data
        io.out_len = len(data)

    def device_get_name(self, args: DeviceArgs, io: CallIO) -> NoResult:
        self._device(args.device)
        self._write_string(self.config.name, io, "cuDeviceGetName")
        return _NO_RESULT

    def device_get_attribute(self, args: DeviceGetAttributeArgs, io: CallIO) -> I32Result:
        self._device(args.device)
        try:
            return I32Result(value=self._attributes[args.attrib])
        except KeyError:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"device attribute {args.attrib} is unknown to the simulated device") from None

    def device_total_mem(self, args: DeviceArgs, io: CallIO) -> DeviceTotalMemResult:
        self._device(args.device)
        return DeviceTotalMemResult(bytes=self.config.total_memory)

    def device_get_uuid(self, args: DeviceArgs, io: CallIO) -> DeviceUuidResult:
        self._device(args.device)
        return DeviceUuidResult(uuid=self.config.uuid)

    def device_get_pci_bus_id(self, args: DeviceArgs, io: CallIO) -> NoResult:
        self._device(args.device)
        self._write_string(self.config.pci_bus_id, io, "cuDeviceGetPCIBusId")
        return _NO_RESULT

    # -- contexts ----------------------------------------------------------------------------------

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
        return _NO_RESULT

    def ctx_create(self, args: CtxCreateArgs, io: CallIO) -> CtxResult:
        self._device(args.device)
        sched = args.flags & 0x7
        if args.flags & ~_CTX_FLAGS or sched not in (0, 1, 2, 4):
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
        return _NO_RESULT

    def ctx_set_current(self, args: CtxArgs, io: CallIO) -> NoResult:
        if args.ctx == 0:
            if self._ctx_stack:
                self._ctx_stack.pop()
            return _NO_RESULT
        self._contexts.get(args.ctx)
        if self._ctx_stack:
            self._ctx_stack[-1] = args.ctx
        else:
            self._ctx_stack.append(args.ctx)
        return _NO_RESULT

    def ctx_get_current(self, args: NoArgs, io: CallIO) -> CtxResult:
        return CtxResult(ctx=self._ctx_stack[-1] if self._ctx_stack else 0)

    def ctx_synchronize(self, args: NoArgs, io: CallIO) -> NoResult:
        if self._captures:
            for capture in self._captures.values():
                self._invalidate(capture, "cuCtxSynchronize during capture")
            raise CudaError(CUresult.CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED,
                            "cuCtxSynchronize while streams capture (every capture is now invalidated)")
        return _NO_RESULT

    def mem_get_info(self, args: NoArgs, io: CallIO) -> MemGetInfoResult:
        return MemGetInfoResult(free=max(0, self.memory.limit - self.memory.used),
                                total=self.config.total_memory)

    # -- memory ------------------------------------------------------------------------------------

    def mem_alloc(self, args: MemAllocArgs, io: CallIO) -> DevPtrResult:
        self._unsafe("cuMemAlloc")
        return DevPtrResult(dptr=self.memory.alloc(args.bytesize))

    def mem_free(self, args: MemFreeArgs, io: CallIO) -> NoResult:
        if args.dptr == 0:
            return _NO_RESULT  # cudaFree(NULL) is CUDA's no-op
        self._unsafe("cuMemFree")
        self.memory.free(args.dptr)
        return _NO_RESULT

    def graph_mem_alloc(self, args: MemAllocArgs, io: CallIO) -> DevPtrResult:
        """A graph memory node's block (the guest keeps the node): CUDA allows it during any capture."""
        return DevPtrResult(dptr=self.memory.alloc(args.bytesize))

    def graph_mem_free(self, args: MemFreeArgs, io: CallIO) -> NoResult:
        self.memory.free(args.dptr)
        return _NO_RESULT

    def _memset(self, dst: int, count: int, value: int, width: int, stream: int, io: CallIO) -> NoResult:
        what = _MEMSET_NAMES[width]
        state = self._legacy if stream == 0 else self._streams.get(stream)
        if state.capture is not None:
            self._stream_work(stream, io, what)  # what a capturing stream refuses
        if count == 0:
            return _NO_RESULT
        memory = self.memory
        if dst % width:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"{what} destination {dst:#x} is not {width}-byte aligned")
        views = memory.segments(dst, count * width, write=True, what="destination")
        if state.capture is None:  # the common case: run it now on the views just checked
            if state is self._legacy:
                self._touch_legacy(what)
            fill_views(views, value, width)
            return _NO_RESULT
        # recorded: a replay checks the range again, since the graph may outlive the allocation
        self.enqueue(stream, lambda: memory.fill(dst, count, value, width), what)
        return _NO_RESULT

    def memset_d8(self, args: MemsetD8Args, io: CallIO) -> NoResult:
        return self._memset(args.dst, args.count, args.value, 1, args.stream, io)

    def memset_d16(self, args: MemsetD16Args, io: CallIO) -> NoResult:
        return self._memset(args.dst, args.count, args.value, 2, args.stream, io)

    def memset_d32(self, args: MemsetD32Args, io: CallIO) -> NoResult:
        return self._memset(args.dst, args.count, args.value, 4, args.stream, io)

    def memcpy_htod(self, args: MemcpyHtoDArgs, io: CallIO) -> NoResult:
        self._stream_work(args.stream, io, "cuMemcpyHtoD", host=True)
        if len(io.inp) == 0:
            return _NO_RESULT
        memory, dst = self.memory, args.dst
        data = np.frombuffer(io.inp, dtype=np.uint8)
        self.enqueue(args.stream, lambda: memory.write(dst, data, "destination"), "cuMemcpyHtoD")
        return _NO_RESULT

    def memcpy_dtoh(self, args: MemcpyDtoHArgs, io: CallIO) -> NoResult:
        if args.count > len(io.out):
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"cuMemcpyDtoH of {args.count} bytes into a {len(io.out)}-byte output area")
        self._stream_work(args.stream, io, "cuMemcpyDtoH", host=True)
        if args.count == 0:
            return _NO_RESULT
        memory, src, count = self.memory, args.src, args.count
        out = np.frombuffer(io.out, dtype=np.uint8, count=count)
        self.enqueue(args.stream, lambda: memory.read_into(src, out, "source"), "cuMemcpyDtoH")
        io.out_len = count
        return _NO_RESULT

    def memcpy_dtod(self, args: MemcpyDtoDArgs, io: CallIO) -> NoResult:
        self._stream_work(args.stream, io, "cuMemcpyDtoD")
        if args.count == 0:
            return _NO_RESULT
        memory, dst, src, count = self.memory, args.dst, args.src, args.count
        memory.check(src, count, write=False, what="source")
        memory.check(dst, count, write=True, what="destination")
        self.enqueue(args.stream, lambda: memory.copy(dst, src, count), "cuMemcpyDtoD")
        return _NO_RESULT

    # -- virtual memory management -------------------------------------------------------------------

    def mem_get_allocation_granularity(self, args: GranularityArgs, io: CallIO) -> GranularityResult:
        self._device(args.device)
        return GranularityResult(granularity=self.memory.granularity(args.option))

    def mem_create(self, args: MemCreateArgs, io: CallIO) -> MemHandleResult:
        self._device(args.device)
        return MemHandleResult(handle=self.memory.create(args.size, args.flags))

    def mem_release(self, args: MemHandleArgs, io: CallIO) -> NoResult:
        self.memory.release(args.handle)
        return _NO_RESULT

    def mem_address_reserve(self, args: AddressReserveArgs, io: CallIO) -> DevPtrResult:
        return DevPtrResult(dptr=self.memory.reserve(args.size, args.alignment, args.addr, args.flags))

    def mem_address_free(self, args: AddressFreeArgs, io: CallIO) -> NoResult:
        self.memory.address_free(args.ptr, args.size)
        return _NO_RESULT

    def mem_map(self, args: MemMapArgs, io: CallIO) -> NoResult:
        self.memory.map(args.ptr, args.size, args.offset, args.handle, args.flags)
        return _NO_RESULT

    def mem_unmap(self, args: MemUnmapArgs, io: CallIO) -> NoResult:
        self.memory.unmap(args.ptr, args.size)
        return _NO_RESULT

    def mem_set_access(self, args: MemSetAccessArgs, io: CallIO) -> NoResult:
        self._device(args.device)
        self.memory.set_access(args.ptr, args.size, int(args.flags))
        return _NO_RESULT

    # -- streams -------------------------------------------------------------------------------------

    def stream_create(self, args: FlagsArgs, io: CallIO) -> StreamCreateResult:
        if args.flags & ~CU_STREAM_NON_BLOCKING:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"cuStreamCreate flags {args.flags:#x}: only CU_STREAM_NON_BLOCKING (1) "
                            "is defined")
        state = StreamState(0, args.flags)
        state.handle = self._streams.add(state)
        return StreamCreateResult(stream=state.handle)

    def stream_destroy(self, args: StreamArgs, io: CallIO) -> NoResult:
        if args.stream == 0:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_HANDLE, "the NULL stream cannot be destroyed")
        state = self._streams.pop(args.stream)
        capture = state.capture
        if capture is not None and capture.origin is state:
            self._invalidate(capture, f"stream {args.stream} was destroyed while capturing")
            self._end_capture(capture, keep=False)
        elif capture is not None:
            # a stream that joined the capture leaves it, as in CUDA (NVIDIA's graphMemoryNodes
            # destroys its second stream mid-capture); work of it no stream joined back is still
            # refused when the capture ends (CUDA_ERROR_STREAM_CAPTURE_UNJOINED)
            capture.streams.remove(state)
            state.capture = None
        return _NO_RESULT

    def stream_synchronize(self, args: StreamArgs, io: CallIO) -> NoResult:
        self._wait_for(self._stream(args.stream), "cuStreamSynchronize")
        return _NO_RESULT

    def stream_query(self, args: StreamArgs, io: CallIO) -> NoResult:
        self._wait_for(self._stream(args.stream), "cuStreamQuery")
        return _NO_RESULT  # work runs at submission: a stream is always idle

    def stream_wait_event(self, args: StreamWaitEventArgs, io: CallIO) -> NoResult:
        state = self._stream(args.stream)
        event = self._event(args.event)
        if args.flags & ~CU_EVENT_WAIT_EXTERNAL:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE, f"cuStreamWaitEvent flags {args.flags:#x}")
        if state is self._legacy:
            self._touch_legacy("cuStreamWaitEvent")
        source = event.capture
        if source is None:
            return _NO_RESULT  # the event's work is done: in-order execution already satisfies the wait
        if source.capture_id not in self._captures:
            raise CudaError(CUresult.CUDA_ERROR_CAPTURED_EVENT,
                            f"cuStreamWaitEvent: event {args.event} was last recorded in capture "
                            f"{source.capture_id}, which has ended")
        if state is self._legacy:
            raise CudaError(CUresult.CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED,
                            "the legacy NULL stream cannot join a capture")
        if state.capture is not None and state.capture is not source:
            self._invalidate(state.capture, "waited for an event of another capture")
            raise CudaError(CUresult.CUDA_ERROR_STREAM_CAPTURE_ISOLATION,
                            f"cuStreamWaitEvent: stream {args.stream} captures into capture "
                            f"{state.capture.capture_id}, event {args.event} belongs to capture "
                            f"{source.capture_id}")
        if source.invalid_reason is not None:
            raise CudaError(CUresult.CUDA_ERROR_STREAM_CAPTURE_INVALIDATED,
                            f"capture {source.capture_id} was invalidated ({source.invalid_reason})")
        source.join(state, event.frontier)
        return _NO_RESULT

    # -- events --------------------------------------------------------------------------------------

    def event_create(self, args: FlagsArgs, io: CallIO) -> EventCreateResult:
        flags = args.flags
        if flags & ~(CU_EVENT_BLOCKING_SYNC | CU_EVENT_DISABLE_TIMING | CU_EVENT_INTERPROCESS) or (
            flags & CU_EVENT_INTERPROCESS and not flags & CU_EVENT_DISABLE_TIMING
        ):
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"cuEventCreate flags {flags:#x} are invalid (INTERPROCESS needs DISABLE_TIMING)")
        return EventCreateResult(event=self._events.add(EventState(flags)))

    def event_destroy(self, args: EventArgs, io: CallIO) -> NoResult:
        self._events.pop(args.event)
        return _NO_RESULT

    def event_record(self, args: EventRecordArgs, io: CallIO) -> NoResult:
        event = self._event(args.event)
        state = self._stream(args.stream)
        if state is self._legacy:
            self._touch_legacy("cuEventRecord")
        capture = state.capture
        if capture is not None:
            if capture.invalid_reason is not None:
                raise CudaError(CUresult.CUDA_ERROR_STREAM_CAPTURE_INVALIDATED,
                                f"cuEventRecord: capture {capture.capture_id} was invalidated "
                                f"({capture.invalid_reason})")
            event.capture = capture
            event.frontier = state.frontier
            return _NO_RESULT

        def record() -> None:
            event.time_ns = self._clock()
            event.recorded = True
            event.capture = None
            event.frontier = frozenset()

        self.enqueue(args.stream, record, "cuEventRecord")
        return _NO_RESULT

    def event_record_with_flags(self, args: EventRecordFlagsArgs, io: CallIO) -> NoResult:
        """``CU_EVENT_RECORD_EXTERNAL`` on a capturing stream is an event record node: the event is
        recorded when the graph runs (not a fork/join marker); otherwise this is ``cuEventRecord``."""
        if args.flags & ~CU_EVENT_RECORD_EXTERNAL:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"cuEventRecordWithFlags flags {args.flags:#x}")
        state = self._stream(args.stream)
        capture = state.capture
        if not args.flags or capture is None:
            return self.event_record(EventRecordArgs(event=args.event, stream=args.stream), io)
        if capture.invalid_reason is not None:
            raise CudaError(CUresult.CUDA_ERROR_STREAM_CAPTURE_INVALIDATED,
                            f"cuEventRecordWithFlags: capture {capture.capture_id} was invalidated "
                            f"({capture.invalid_reason})")
        event = self._event(args.event)

        def record() -> None:
            event.time_ns = self._clock()
            event.recorded = True
            event.capture = None
            event.frontier = frozenset()

        self.enqueue(args.stream, record, "cuEventRecordWithFlags")
        return _NO_RESULT

    def event_synchronize(self, args: EventArgs, io: CallIO) -> NoResult:
        self._not_captured(self._event(args.event), args.event, "cuEventSynchronize")
        return _NO_RESULT

    def event_query(self, args: EventArgs, io: CallIO) -> NoResult:
        self._not_captured(self._event(args.event), args.event, "cuEventQuery")
        return _NO_RESULT

    def event_elapsed_time(self, args: EventElapsedArgs, io: CallIO) -> EventElapsedResult:
        times: list[int] = []
        for handle in (args.start, args.end):
            event = self._event(handle)
            if event.flags & CU_EVENT_DISABLE_TIMING:
                raise CudaError(CUresult.CUDA_ERROR_INVALID_HANDLE,
                                f"cuEventElapsedTime: event {handle} was created with "
                                "CU_EVENT_DISABLE_TIMING")
            self._not_captured(event, handle, "cuEventElapsedTime")
            if not event.recorded:
                raise CudaError(CUresult.CUDA_ERROR_INVALID_HANDLE,
                                f"cuEventElapsedTime: event {handle} has never been recorded")
            times.append(event.time_ns)
        return EventElapsedResult(milliseconds=float(np.float32((times[1] - times[0]) / 1e6)))

    # -- modules and launch ----------------------------------------------------------------------

    def module_load_data(self, args: NoArgs, io: CallIO) -> ModuleLoadResult:
        return self._load_module_image(io.inp)

    def _load_module_image(self, data: memoryview | bytes) -> ModuleLoadResult:
        """An image from the payload, or a chunked upload (``_module_upload``)."""
        handle, module = self.modules.load(data)
        image = module.image
        log.debug("module loaded", module=handle, kind=image.kind, parts=image.parts,
                  kernels=len(image.kernels), globals=len(image.globals), ptx_target=image.ptx_target)
        if image.ptx is None and image.kernels:  # said once, here; each launch says it again
            log.info("module has no PTX the simulated device can run: it loads and answers attributes "
                     "and layouts, its launches are refused (CUDA_ERROR_NOT_SUPPORTED)", module=handle,
                     parts=image.parts, skipped=image.skipped)
        return ModuleLoadResult(module=handle)

    def module_unload(self, args: ModuleArgs, io: CallIO) -> NoResult:
        self.modules.unload(args.module)
        return _NO_RESULT

    def module_get_function(self, args: ModuleArgs, io: CallIO) -> FunctionResult:
        name = symbol_name(io.inp, "cuModuleGetFunction")
        return FunctionResult(function=self.modules.function(args.module, name))

    def module_get_global(self, args: ModuleArgs, io: CallIO) -> GlobalResult:
        ptr, size = self.modules.global_(args.module, symbol_name(io.inp, "cuModuleGetGlobal"))
        return GlobalResult(dptr=ptr, bytes=size)

    def module_global_alias(self, args: ModuleGlobalAliasArgs, io: CallIO) -> NoResult:
        name = symbol_name(io.inp, "__cudaRegisterManagedVar")
        self.modules.alias_global(args.module, name, args.address, args.size)
        return NoResult()

    def func_get_param_info(self, args: FuncParamInfoArgs, io: CallIO) -> FuncParamInfoResult:
        params = self.modules.functions.get(args.function).kernel.params
        if args.index >= len(params):
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"cuFuncGetParamInfo: index {args.index}, the kernel has "
                            f"{len(params)} parameters")
        param = params[args.index]
        return FuncParamInfoResult(offset=param.offset, size=param.size)

    def func_get_param_layout(self, args: FuncArgs, io: CallIO) -> FuncParamLayoutResult:
        """Writes as many (offset, size) pairs as fit ``out_cap``; ``count`` is always the total."""
        kernel = self.modules.functions.get(args.function).kernel
        fit = min(len(kernel.params), len(io.out) // 8)
        if fit:
            pairs = np.array([(p.offset, p.size) for p in kernel.params[:fit]], dtype="<u4")
            io.out[:8 * fit] = pairs.tobytes()
            io.out_len = 8 * fit
        return FuncParamLayoutResult(count=len(kernel.params), param_bytes=kernel.param_bytes)

    def func_get_attribute(self, args: FuncGetAttributeArgs, io: CallIO) -> I32Result:
        return I32Result(value=self.modules.attribute(args.function, args.attrib))

    def _jit_layout(self, function: SimFunction) -> KernelAttributes:
        """The PTX engine is this device's JIT compiler: a PTX entry's registers, shared, const and
        local sizes are what it lays out (from the parse alone; charged to the VM's host budget)."""
        program = load_ptx_module(self.modules.ptx_source(function), self.host)
        r = program.resources(function.kernel.name, self.modules.limits.max_threads_per_block)
        v = function.variant
        assert v is not None
        bound = min(r.max_threads, v.max_threads or r.max_threads)
        return replace(v, num_regs=r.registers, static_shared=r.static_shared, const_bytes=r.const_bytes,
                       local_bytes=r.local_bytes, max_threads=bound)

    def func_set_attribute(self, args: FuncSetAttributeArgs, io: CallIO) -> NoResult:
        self.modules.set_attribute(args.function, args.attrib, args.value)
        return _NO_RESULT

    def _check_launch(self, args: LaunchKernelArgs, function: SimFunction) -> LaunchDims:
        block = (args.block_x, args.block_y, args.block_z)
        grid = (args.grid_x, args.grid_y, args.grid_z)
        threads = block[0] * block[1] * block[2]
        if threads > MAX_THREADS_PER_BLOCK or any(d > m for d, m in zip(block, MAX_BLOCK_DIM, strict=True)):
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"cuLaunchKernel: block {block} ({threads} threads) exceeds the device's limits "
                            f"{MAX_BLOCK_DIM}, {MAX_THREADS_PER_BLOCK} threads")
        if any(d > m for d, m in zip(grid, MAX_GRID_DIM, strict=True)):
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"cuLaunchKernel: grid {grid} exceeds the device's limits {MAX_GRID_DIM}")
        limit = self.modules.dynamic_shared_limit(function)
        if args.shared_mem_bytes > limit:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"cuLaunchKernel: {args.shared_mem_bytes} bytes of dynamic shared memory, "
                            f"{function.kernel.name} may use {limit} (its "
                            "CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES)")
        return LaunchDims(grid, block, args.shared_mem_bytes)

    def launch_kernel(self, args: LaunchKernelArgs, io: CallIO) -> NoResult:
        return self._launch(args, io, cooperative=False)

    def launch_cluster_kernel(self, args: LaunchClusterArgs, io: CallIO) -> NoResult:
        """In clusters of the launch's shape (cuLaunchKernelEx's cluster-dimension attribute): the
        engine runs each cluster's blocks in one batch (``executor/ptx/_cluster.py``)."""
        cluster = (args.cluster_x, args.cluster_y, args.cluster_z)
        return self._launch(args, io, cooperative=False, cluster=cluster)

    def launch_cooperative_kernel(self, args: LaunchKernelArgs, io: CallIO) -> NoResult:
        """Every block resident at once, as CUDA requires of a cooperative grid; the engine runs it
        as one batch with a grid-sync workspace of its own (device memory of the VM, for the launch)."""
        threads = args.block_x * args.block_y * args.block_z
        blocks = args.grid_x * args.grid_y * args.grid_z
        per_sm = self._blocks_per_sm(args.function, threads, args.shared_mem_bytes)
        most = per_sm * self._attributes[16]
        if blocks > most:
            raise CudaError(CUresult.CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE,
                            f"cuLaunchCooperativeKernel: {blocks} blocks of {threads} threads with "
                            f"{args.shared_mem_bytes} bytes of dynamic shared memory; at most {most} are "
                            f"resident at once ({per_sm} per multiprocessor, as cuOccupancyMaxActiveBlocks"
                            f"PerMultiprocessor answers, times {self._attributes[16]} multiprocessors)")
        return self._launch(args, io, cooperative=True)

    def func_occupancy(self, args: OccupancyArgs, io: CallIO) -> I32Result:
        if args.flags > 1:  # CU_OCCUPANCY_DEFAULT, CU_OCCUPANCY_DISABLE_CACHING_OVERRIDE
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE, f"cuOccupancy: flags {args.flags:#x}")
        return I32Result(value=self._blocks_per_sm(args.function, args.block_size, args.dynamic_smem))

    def _blocks_per_sm(self, handle: int, threads: int, dynamic_smem: int) -> int:
        """The function's resident blocks per multiprocessor (``_sim_device.blocks_per_sm``) from its
        static shared memory and the registers the engine holds for it (its NUM_REGS)."""
        attrib = FunctionAttribute
        static = self.modules.attribute(handle, attrib.CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES)
        registers = self.modules.attribute(handle, attrib.CU_FUNC_ATTRIBUTE_NUM_REGS)
        return blocks_per_sm(self._attributes, threads, static + dynamic_smem, registers)

    def _launch(self, args: LaunchKernelArgs, io: CallIO, *, cooperative: bool,
                cluster: tuple[int, int, int] | None = None) -> NoResult:
        function = self.modules.functions.get(args.function)
        kernel = function.kernel
        dims = self._check_launch(args, function)
        if len(io.inp) < kernel.param_bytes:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"cuLaunchKernel: the parameter block has {len(io.inp)} bytes, {kernel.name} "
                            f"takes {kernel.param_bytes}")
        # the PTX engine runs the kernel; preparing it here answers NOT_SUPPORTED (naming the
        # instruction) for a kernel it cannot run before anything is enqueued or executed. The
        # parsed module and the prepared kernel are charged to the VM's host budget first.
        program = load_ptx_module(self.modules.ptx_source(function), self.host)
        prepared = program.kernel(kernel.name, self.host)
        # a cluster shape a GPU refuses (the launch's or the kernel's __cluster_dims__) fails the call
        cluster_shape(kernel.name, dims.grid, prepared.codes[kernel.name].function.cluster_dims, cluster,
                      prepared.layout.dynamic_base + dims.shared_bytes)
        self._stream_work(args.stream, io, "cuLaunchKernel")
        # the parameter block's copy: held by a captured launch's node (charged with it by enqueue),
        # only checked for one that runs now
        self.host.check(kernel.param_bytes, "cuLaunchKernel: a copy of the parameter block")
        params = bytes(io.inp[:kernel.param_bytes])  # the payload is the guest's again once we return
        symbols = self.modules.symbols(function)
        memory, textures = self.memory, self.textures

        def run() -> None:
            # a cooperative grid's barrier word: zeroed device memory of the VM for this launch
            workspace = memory.alloc(GRID_WORKSPACE_BYTES) if cooperative else 0
            try:
                with printf_listening(self.kernel_output):
                    run_ptx_kernel(program, kernel.name, memory, dims, params, symbols, self.launch_limits,
                                   grid_workspace=workspace, cluster=cluster, textures=textures)
            finally:
                if workspace:
                    memory.free(workspace)

        self.enqueue(args.stream, run, "cuLaunchKernel", host_bytes=len(params))
        return _NO_RESULT

    # -- cuBLAS --------------------------------------------------------------------------------------

    def cublas_create(self, args: NoArgs, io: CallIO) -> CublasCreateResult:
        return CublasCreateResult(handle=self._blas.add(_BlasHandle()))

    def cublas_destroy(self, args: CublasArgs, io: CallIO) -> NoResult:
        self._blas.pop(args.handle)
        return _NO_RESULT

    def cublas_set_stream(self, args: CublasSetStreamArgs, io: CallIO) -> NoResult:
        handle = self._blas.get(args.handle)
        if args.stream and args.stream not in self._streams:
            raise CudaError(CublasStatus.CUBLAS_STATUS_INVALID_VALUE,
                            f"cublasSetStream: stream {args.stream} is not a live stream of this VM")
        handle.stream = args.stream
        return _NO_RESULT

    def cublas_set_math_mode(self, args: CublasSetMathModeArgs, io: CallIO) -> NoResult:
        handle = self._blas.get(args.handle)
        if args.mode & ~_CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION not in (0, 1, 2, 3):
            raise CudaError(CublasStatus.CUBLAS_STATUS_INVALID_VALUE,
                            f"cublasSetMathMode: unknown mode {args.mode:#x}")
        handle.math_mode = args.mode
        return _NO_RESULT

    def _check_gemms(self, shape: GemmShape, batches: list[tuple[int, int, int]], what: str) -> None:
        """Every matrix of every batch inside the VM's memory, or EXECUTION_FAILED (nothing written)."""
        try:
            for a, b, c in batches:
                for ptr, size, written, name in gemm_ranges(shape, a, b, c):
                    self.memory.check(ptr, size, write=written, what=name)
        except CudaError as exc:
            raise CudaError(CublasStatus.CUBLAS_STATUS_EXECUTION_FAILED,
                            f"{what}: {exc.message} (the kernel would fault)") from exc

    def _gemms(self, handle_id: int, shape: GemmShape, batches: Callable[[], list[tuple[int, int, int]]],
               what: str, count: int = 1) -> NoResult:
        """Enqueue ``count`` GEMMs on the handle's stream (refused past the simulator's work bound);
        ``batches`` gives the (A, B, C) pointers when they run."""
        check_gemm_work(shape, count, what)
        memory = self.memory

        def run() -> None:
            todo = batches()
            self._check_gemms(shape, todo, what)
            for a, b, c in todo:
                gemm(memory, shape, a, b, c)

        return self._enqueue_blas(handle_id, run, what)

    def _enqueue_blas(self, handle_id: int, run: Callable[[], None], what: str) -> NoResult:
        """Enqueue a cuBLAS call's work on its handle's stream; a CUDA error on the way (the stream's,
        a capture's) answers EXECUTION_FAILED, as cuBLAS reports it."""
        handle = self._blas.get(handle_id)
        try:
            self.enqueue(handle.stream, run, what)
        except CudaError as exc:
            if isinstance(exc.status, CublasStatus):
                raise
            raise CudaError(CublasStatus.CUBLAS_STATUS_EXECUTION_FAILED,
                            f"{what}: {exc.status.name}: {exc.message}") from exc
        return _NO_RESULT

    def _static_gemms(self, handle_id: int, shape: GemmShape, batches: list[tuple[int, int, int]],
                      what: str) -> NoResult:
        """GEMMs whose pointers are known now: checked at submission too, so a capture reports them."""
        self._blas.get(handle_id)
        check_gemm_work(shape, len(batches), what)
        self._check_gemms(shape, batches, what)
        return self._gemms(handle_id, shape, lambda: batches, what, len(batches))

    def cublas_sgemm(self, args: SgemmArgs, io: CallIO) -> NoResult:
        f32 = CudaDataType.CUDA_R_32F
        shape = GemmShape(args.transa, args.transb, args.m, args.n, args.k, args.alpha, args.beta,
                          f32, args.lda, f32, args.ldb, f32, args.ldc)
        return self._static_gemms(args.handle, shape, [(args.a, args.b, args.c)], "cublasSgemm")

    def _ex_shape(self, args: GemmExArgs | GemmStridedBatchedExArgs | GemmBatchedExArgs) -> GemmShape:
        self._blas.get(args.handle)
        return ex_gemm_shape(args)

    def cublas_gemm_ex(self, args: GemmExArgs, io: CallIO) -> NoResult:
        shape = self._ex_shape(args)
        return self._static_gemms(args.handle, shape, [(args.a, args.b, args.c)], "cublasGemmEx")

    @staticmethod
    def _batch_count(count: int, what: str) -> int:
        if count > MAX_SIM_GEMM_BATCH:
            raise CudaError(CublasStatus.CUBLAS_STATUS_NOT_SUPPORTED,
                            f"{what}: batch_count {count}; the sim backend simulates at most "
                            f"{MAX_SIM_GEMM_BATCH} GEMMs per call")
        return count

    def cublas_gemm_strided_batched_ex(self, args: GemmStridedBatchedExArgs, io: CallIO) -> NoResult:
        shape = self._ex_shape(args)
        self._batch_count(args.batch_count, "cublasGemmStridedBatchedEx")
        sa, sb, sc = (ITEMSIZE[t] for t in (args.a_type, args.b_type, args.c_type))
        batches = [(args.a + i * args.stride_a * sa, args.b + i * args.stride_b * sb,
                    args.c + i * args.stride_c * sc) for i in range(args.batch_count)]
        return self._static_gemms(args.handle, shape, batches, "cublasGemmStridedBatchedEx")

    def cublas_gemm_batched_ex(self, args: GemmBatchedExArgs, io: CallIO) -> NoResult:
        """The pointer arrays are device memory, read when the GEMMs run (GGML fills them with a kernel
        just before, in the same stream — inside a captured graph too)."""
        shape = self._ex_shape(args)
        what = "cublasGemmBatchedEx"
        count, memory = self._batch_count(args.batch_count, what), self.memory
        arrays = ((args.a, "Aarray"), (args.b, "Barray"), (args.c, "Carray"))
        check_pointer_arrays(memory, arrays, count, what)

        def batches() -> list[tuple[int, int, int]]:
            a, b, c = read_pointer_arrays(memory, arrays, count, what)
            return list(zip(a, b, c, strict=True))

        return self._gemms(args.handle, shape, batches, what, count)

    # -- stream capture and graphs -----------------------------------------------------------------------

    def stream_begin_capture(self, args: BeginCaptureArgs, io: CallIO) -> NoResult:
        state = self._stream(args.stream)
        if state is self._legacy:
            raise CudaError(CUresult.CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED,
                            "the legacy NULL stream cannot be captured")
        if state.capture is not None:
            raise CudaError(CUresult.CUDA_ERROR_ILLEGAL_STATE,
                            f"stream {args.stream} is already capturing (capture {state.capture.capture_id})")
        self._capture_ids += 1
        capture = Capture(self._capture_ids, StreamCaptureMode(args.mode), state)
        capture.join(state, frozenset())
        self._captures[capture.capture_id] = capture
        return _NO_RESULT

    def stream_end_capture(self, args: StreamArgs, io: CallIO) -> GraphResult:
        state = self._stream(args.stream)
        capture = state.capture
        if capture is None:
            raise CudaError(CUresult.CUDA_ERROR_ILLEGAL_STATE, f"stream {args.stream} is not capturing")
        if capture.origin is not state:
            raise CudaError(CUresult.CUDA_ERROR_STREAM_CAPTURE_UNMATCHED,
                            f"stream {args.stream} joined capture {capture.capture_id} but did not begin it; "
                            f"end it on stream {capture.origin.handle}")
        unjoined = capture.unjoined()
        keep = capture.invalid_reason is None and not unjoined
        self._end_capture(capture, keep=keep)
        if capture.invalid_reason is not None:
            raise CudaError(CUresult.CUDA_ERROR_STREAM_CAPTURE_INVALIDATED,
                            f"capture {capture.capture_id} was invalidated ({capture.invalid_reason})")
        if unjoined:
            names = ", ".join(capture.nodes[i].what for i in unjoined)
            raise CudaError(CUresult.CUDA_ERROR_STREAM_CAPTURE_UNJOINED,
                            f"capture {capture.capture_id}: work forked to other streams was not joined "
                            f"back into stream {args.stream} ({names})")
        handle = self._graphs.add(Graph(capture.body()))
        self._graph_nodes += len(capture.nodes)
        return GraphResult(graph=handle)

    def stream_get_capture_info(self, args: StreamArgs, io: CallIO) -> CaptureInfoResult:
        state = self._stream(args.stream)
        if state is self._legacy and any(
            s.blocking for c in self._captures.values() for s in c.streams
        ):
            raise CudaError(CUresult.CUDA_ERROR_STREAM_CAPTURE_IMPLICIT,
                            "the legacy NULL stream synchronizes with a capturing stream")
        capture = state.capture
        if capture is None:
            return CaptureInfoResult(status=StreamCaptureStatus.CU_STREAM_CAPTURE_STATUS_NONE, capture_id=0)
        status = (StreamCaptureStatus.CU_STREAM_CAPTURE_STATUS_ACTIVE if capture.invalid_reason is None
                  else StreamCaptureStatus.CU_STREAM_CAPTURE_STATUS_INVALIDATED)
        return CaptureInfoResult(status=status, capture_id=capture.capture_id)

    def graph_instantiate(self, args: GraphInstantiateArgs, io: CallIO) -> GraphExecResult:
        graph = self._graphs.get(args.graph)
        if args.flags & ~_GRAPH_INSTANTIATE_FLAGS:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"cuGraphInstantiateWithFlags flags {args.flags:#x} are not supported")
        # the exec shares the graph's nodes, but outlives it: charged as a graph of its own
        self._hold_nodes(len(graph.nodes), "cuGraphInstantiate", host_bytes=graph.body.host_bytes
                         - len(graph.nodes) * GRAPH_NODE_BYTES)
        handle = self._graph_execs.add(GraphExec(graph.body))
        self._graph_nodes += len(graph.nodes)
        return GraphExecResult(graph_exec=handle)

    def graph_launch(self, args: GraphLaunchArgs, io: CallIO) -> NoResult:
        graph_exec = self._graph_execs.get(args.graph_exec)
        if graph_exec.body.guest_nodes:
            raise CudaError(CUresult.CUDA_ERROR_NOT_SUPPORTED,
                            f"cuGraphLaunch: graph exec {args.graph_exec} holds "
                            f"{graph_exec.body.guest_nodes} guest node(s) (host functions, host memory "
                            "copies): it is launched phase by phase (graph_launch_phase), the guest "
                            "performing those nodes between the phases")
        self._launch_body(args.stream, io, "cuGraphLaunch", graph_exec.body, graph_exec.replay)
        return _NO_RESULT

    def _launch_body(self, stream: int, io: CallIO, what: str, body: GraphBody,
                     run: Callable[[], None], host_bytes: int = 0) -> None:
        """``run`` on ``stream``, or captured: a child graph node holding ``body`` (bounded depth and
        size; ``host_bytes`` more charged when ``body`` is made for the capture)."""
        state = self._stream_work(stream, io, what)
        capture = state.capture
        if capture is None:
            self.enqueue(stream, run, what)
            return
        if capture.invalid_reason is None:
            try:
                capture.check_child(body, what)
            except CudaError as exc:
                self._invalidate(capture, exc.message)
                raise
            self._hold_nodes(1, what, capture, host_bytes)
        capture.record(state, None, what, child=body)

    def graph_launch_phase(self, args: GraphLaunchPhaseArgs, io: CallIO) -> NoResult:
        """One phase of an exec with guest nodes (``_sim_graph``'s theory of operation)."""
        graph_exec = self._graph_execs.get(args.graph_exec)
        if args.phase > graph_exec.body.guest_nodes:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"graph exec {args.graph_exec} runs in {graph_exec.body.guest_nodes + 1} "
                            f"phase(s); there is no phase {args.phase}")
        what = f"cuGraphLaunch (phase {args.phase})"
        state = self._stream(args.stream)
        body, held = graph_exec.body, 0
        if state.capture is not None:  # a body of its own (up to 2**18 leaves): charged as it holds them
            body = graph_exec.phase_body(args.phase)
            held = len(body.nodes) * PHASE_NODE_BYTES
        self._launch_body(args.stream, io, what, body, lambda: graph_exec.replay(args.phase), held)
        return _NO_RESULT

    def stream_add_guest_node(self, args: GuestNodeArgs, io: CallIO) -> CapturedResult:
        """A guest node on a capturing stream; on any other stream nothing: the guest performs it now."""
        state = self._stream(args.stream)
        capture = state.capture
        if capture is None:
            if state is self._legacy:
                self._touch_legacy("cuLaunchHostFunc")
            return CapturedResult(captured=0)
        what = "guest node (host function or host memory copy)"
        if capture.invalid_reason is None:
            self._hold_nodes(1, what, capture)
        capture.record(state, None, what, guest=args.tag)
        return CapturedResult(captured=1)

    def graph_exec_guest_node(self, args: GraphExecNodeArgs, io: CallIO) -> GuestNodeResult:
        graph_exec = self._graph_execs.get(args.graph_exec)
        count = graph_exec.body.guest_nodes
        if args.index >= count:
            return GuestNodeResult(count=count, tag=0)
        return GuestNodeResult(count=count, tag=graph_exec.guest_tags()[args.index])

    def graph_node_count(self, args: GraphArgs, io: CallIO) -> CountResult:
        return CountResult(count=len(self._graphs.get(args.graph).nodes))

    def graph_exec_update(self, args: GraphExecUpdateArgs, io: CallIO) -> GraphExecUpdateResult:
        """The exec takes the graph's nodes when their topology and kinds match (``update_mismatch``)."""
        graph_exec, new = self._graph_execs.get(args.graph_exec), self._graphs.get(args.graph).body
        why = update_mismatch(graph_exec.body, new)
        if why:
            return GraphExecUpdateResult(result=why)
        old = graph_exec.body
        self._hold_nodes(len(new.nodes), "cuGraphExecUpdate",
                         host_bytes=new.host_bytes - len(new.nodes) * GRAPH_NODE_BYTES)
        self._graph_nodes += len(new.nodes) - len(old.nodes)
        self.host.release(old.host_bytes)
        graph_exec.take(new)
        return GraphExecUpdateResult(result=0)

    def graph_clone(self, args: GraphArgs, io: CallIO) -> GraphResult:
        """A clone shares the original's (immutable) nodes, charged as a graph of its own."""
        body = self._graphs.get(args.graph).body
        self._hold_nodes(len(body.nodes), "cuGraphClone",
                         host_bytes=body.host_bytes - len(body.nodes) * GRAPH_NODE_BYTES)
        handle = self._graphs.add(Graph(body))
        self._graph_nodes += len(body.nodes)
        return GraphResult(graph=handle)

    def graph_exec_destroy(self, args: GraphExecArgs, io: CallIO) -> NoResult:
        body = self._graph_execs.pop(args.graph_exec).body
        self._graph_nodes -= len(body.nodes)
        self.host.release(body.host_bytes)
        return _NO_RESULT

    def graph_destroy(self, args: GraphArgs, io: CallIO) -> NoResult:
        body = self._graphs.pop(args.graph).body
        self._graph_nodes -= len(body.nodes)
        self.host.release(body.host_bytes)
        return _NO_RESULT


class _BlasHandle:
    __slots__ = ("math_mode", "stream")

    def __init__(self) -> None:
        self.stream = 0
        self.math_mode = 0
