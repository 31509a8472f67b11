"""The ``cuda`` backend's boundary with NVIDIA's bindings: lazy imports, status translation, probing,
and the typed layer the handlers call.

Nothing here imports ``cuda.bindings`` or ``nvmath`` at module import time, so ``executor._cuda`` can be
imported on a machine with neither a driver nor the packages; :func:`load_driver` and
:func:`load_cublas` import them on first use and turn an :class:`ImportError` into
:class:`BackendUnavailableError`. Every driver call goes through :func:`check`, which turns a failing
``CUresult`` into a :class:`CudaError` carrying the protocol's ``CUresult`` of the same value (unknown
values become ``CUDA_ERROR_UNKNOWN`` with the number in the message) and marks the errors that poison a
context as sticky.

Neither package ships annotations mypy can read, so their untyped surface ends here: :class:`Driver`
and :class:`Cublas` hold the modules and give each call the backend makes a typed method that passes
its arguments through unchanged, checks the status (``what`` names the call in the error; it defaults
to the driver's or cuBLAS's own name) and returns plain Python values. The driver's objects
(``CUstream``, ``CUevent``, ``CUmodule``, …) stay opaque: :class:`DriverHandle` is all the backend
needs to know of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final, Protocol, TypeAlias, cast

from protocol import CublasStatus, CUresult

from ._errors import BackendUnavailableError, CudaError

__all__ = [
    "STICKY",
    "Cublas",
    "Driver",
    "DriverHandle",
    "check",
    "cublas_error",
    "cuda_available",
    "driver_error",
    "load_cublas",
    "load_driver",
    "status_code",
]

#: ``CUresult`` values after which the context is unusable (cuda.h: "the process must be terminated
#: and relaunched"): illegal address, launch timeout, assert, hardware stack error, illegal
#: instruction, misaligned address, invalid address space, invalid PC, launch failed, and the
#: tensor memory leak faults (720, a cooperative grid too large, is refused before it runs).
#: CU_STREAM_CAPTURE_MODE_RELAXED
RELAXED_CAPTURE: Final = 2
STICKY: Final = frozenset({700, 702, 710, 714, 715, 716, 717, 718, 719, 721, 722})

_driver: Any = None
_cublas: Cublas | None = None


def load_driver() -> Any:
    """``cuda.bindings.driver``, imported on first use."""
    global _driver
    if _driver is None:
        try:
            from cuda.bindings import driver
        except ImportError as exc:
            raise BackendUnavailableError(
                "the cuda backend needs NVIDIA's cuda-bindings (pip install 'vgpu-mediator[cuda]'): "
                f"{exc}") from exc
        _driver = driver
    return _driver


def load_cublas() -> Cublas:
    """``nvmath.bindings.cublas`` behind :class:`Cublas`, imported on first use (it loads libcublas
    itself)."""
    global _cublas
    if _cublas is None:
        try:
            from nvmath.bindings import cublas
        except ImportError as exc:
            raise BackendUnavailableError(
                f"cuBLAS calls need nvmath-python (pip install 'vgpu-mediator[cuda]'): {exc}") from exc
        _cublas = Cublas(cublas)
    return _cublas


def status_code(err: Any) -> int:
    """The integer value of a cuda-bindings ``CUresult`` (an enum member or a plain int)."""
    value = getattr(err, "value", err)
    return int(value)


def _describe(code: int) -> str:
    driver = _driver
    if driver is None:
        return f"CUresult {code}"
    try:
        err = driver.CUresult(code)
        _, name = driver.cuGetErrorName(err)
        _, text = driver.cuGetErrorString(err)
    except Exception:
        return f"CUresult {code}"
    name_s = name.decode() if isinstance(name, bytes) else str(name)
    text_s = text.decode() if isinstance(text, bytes) else str(text)
    return f"{name_s} ({text_s})"


def driver_error(code: int, what: str) -> CudaError:
    """The :class:`CudaError` for a failed driver call ``what`` that returned ``code``."""
    try:
        status = CUresult(code)
        detail = f"{what} failed: {_describe(code)}"
    except ValueError:
        status = CUresult.CUDA_ERROR_UNKNOWN
        detail = f"{what} failed with CUresult {code}, which the protocol has no name for: {_describe(code)}"
    return CudaError(status, detail, sticky=code in STICKY)


def check(result: Any, what: str) -> Any:
    """Unpack a cuda-bindings return tuple ``(err, *values)``: the value (or a tuple of them, or None);
    raises :class:`CudaError` when ``err`` is not ``CUDA_SUCCESS``."""
    if isinstance(result, tuple):
        code = status_code(result[0])
        if code:
            raise driver_error(code, what)
        if len(result) == 1:
            return None
        if len(result) == 2:
            return result[1]
        return result[1:]
    code = status_code(result)
    if code:
        raise driver_error(code, what)
    return None


def cublas_error(exc: Exception, what: str) -> CudaError:
    """Translate nvmath's ``cuBLASError`` (its ``status`` attribute is the ``cublasStatus_t``)."""
    raw = getattr(exc, "status", None)
    try:
        status = CublasStatus(int(raw)) if raw is not None else CublasStatus.CUBLAS_STATUS_INTERNAL_ERROR
    except (TypeError, ValueError):
        status = CublasStatus.CUBLAS_STATUS_INTERNAL_ERROR
    return CudaError(status, f"{what} failed: {exc}")


def cuda_available() -> tuple[bool, str]:
    """Whether the ``cuda`` backend can run here, and why (never raises)."""
    try:
        driver = load_driver()
    except BackendUnavailableError as exc:
        return False, str(exc)
    try:
        code = status_code(driver.cuInit(0)[0])
        if code:
            return False, f"cuInit failed: {_describe(code)}"
        err, count = driver.cuDeviceGetCount()
        if status_code(err):
            return False, f"cuDeviceGetCount failed: {_describe(status_code(err))}"
        if count < 1:
            return False, "the driver reports no CUDA device"
        err, version = driver.cuDriverGetVersion()
        version_s = f"{version // 1000}.{version % 1000 // 10}" if not status_code(err) else "?"
        return True, f"{count} CUDA device(s), driver API {version_s}"
    except Exception as exc:  # a broken driver installation must not take the caller down
        return False, f"probing the CUDA driver failed: {exc!r}"


# ---------------------------------------------------------------------------------------------
# The typed layer


class DriverHandle(Protocol):
    """One of cuda-bindings' handle objects (``CUdevice``, ``CUcontext``, ``CUstream``, ``CUevent``,
    ``CUmodule``, ``CUfunction``, ``CUgraph``, ``CUgraphExec``, ``CUmemGenericAllocationHandle``):
    opaque to the backend, which only hands it back to the driver (``int()`` gives its value)."""

    def __int__(self) -> int: ...


#: the driver's objects by kind, for signatures that say which one they take (all opaque alike)
Device: TypeAlias = DriverHandle
Context: TypeAlias = DriverHandle
Stream: TypeAlias = DriverHandle
Event: TypeAlias = DriverHandle
Module: TypeAlias = DriverHandle
Function: TypeAlias = DriverHandle
Graph: TypeAlias = DriverHandle
GraphExec: TypeAlias = DriverHandle
GraphNode: TypeAlias = DriverHandle
PhysicalHandle: TypeAlias = DriverHandle


def _handle(result: Any, what: str) -> DriverHandle:
    return cast(DriverHandle, check(result, what))


def _as_bytes(raw: Any) -> bytes:
    """A ``char`` array or string field of cuda-bindings as bytes (some fields come back as ``str``)."""
    return raw.encode("latin-1") if isinstance(raw, str) else bytes(raw)


class Driver:
    """``cuda.bindings.driver`` with types: one method per driver call the backend makes, in the
    driver's argument order; each raises :class:`CudaError` on a failing ``CUresult``."""

    __slots__ = ("module",)

    def __init__(self, module: Any) -> None:
        self.module = module  # untyped: see the module's docstring

    # -- device and context -----------------------------------------------------------------------

    def device_get(self, ordinal: int) -> Device:
        return _handle(self.module.cuDeviceGet(ordinal), f"cuDeviceGet({ordinal})")

    def ctx_create(self, device: Device) -> Context:
        try:
            # CUDA 13's cuCtxCreate takes a CUctxCreateParams first; CUDA 12's does not.
            return _handle(self.module.cuCtxCreate(None, 0, device), "cuCtxCreate")
        except TypeError:
            return _handle(self.module.cuCtxCreate(0, device), "cuCtxCreate")

    def ctx_set_current(self, ctx: Context) -> None:
        check(self.module.cuCtxSetCurrent(ctx), "cuCtxSetCurrent")

    def ctx_synchronize(self) -> None:
        check(self.module.cuCtxSynchronize(), "cuCtxSynchronize")

    def ctx_destroy(self, ctx: Context) -> None:
        check(self.module.cuCtxDestroy(ctx), "cuCtxDestroy")

    def driver_get_version(self) -> int:
        return int(check(self.module.cuDriverGetVersion(), "cuDriverGetVersion"))

    def device_get_name(self, device: Device) -> bytes:
        """The name field, NUL padding and all (256 bytes asked for)."""
        return bytes(check(self.module.cuDeviceGetName(256, device), "cuDeviceGetName"))

    def device_get_attribute(self, attrib: int, device: Device) -> int:
        try:
            attribute = self.module.CUdevice_attribute(attrib)
        except ValueError:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"device attribute {attrib} is unknown to the driver bindings") from None
        return int(check(self.module.cuDeviceGetAttribute(attribute, device), "cuDeviceGetAttribute"))

    def device_total_mem(self, device: Device) -> int:
        return int(check(self.module.cuDeviceTotalMem(device), "cuDeviceTotalMem"))

    def device_get_uuid(self, device: Device) -> bytes:
        return _as_bytes(check(self.module.cuDeviceGetUuid(device), "cuDeviceGetUuid").bytes)

    def device_get_pci_bus_id(self, device: Device) -> bytes:
        """The bus id field, NUL padding and all (64 bytes asked for)."""
        return bytes(check(self.module.cuDeviceGetPCIBusId(64, device), "cuDeviceGetPCIBusId"))

    # -- memory and copies ------------------------------------------------------------------------

    def mem_get_info(self) -> tuple[int, int]:
        """(free, total) bytes of the device."""
        free, total = check(self.module.cuMemGetInfo(), "cuMemGetInfo")
        return int(free), int(total)

    def mem_alloc(self, size: int) -> int:
        return int(check(self.module.cuMemAlloc(size), "cuMemAlloc"))

    def mem_free(self, dptr: int) -> None:
        check(self.module.cuMemFree(dptr), "cuMemFree")

    @contextmanager
    def relaxed_capture(self) -> Iterator[None]:
        """This thread's capture mode relaxed for a while: graph memory nodes' memory is allocated and
        given back while streams capture in global mode, where a plain cuMemAlloc or cuMemFree is
        refused (and invalidates the capture)."""
        m = self.module
        relaxed = m.CUstreamCaptureMode(RELAXED_CAPTURE)
        before = check(m.cuThreadExchangeStreamCaptureMode(relaxed), "cuThreadExchangeStreamCaptureMode")
        try:
            yield
        finally:
            check(m.cuThreadExchangeStreamCaptureMode(before), "cuThreadExchangeStreamCaptureMode")

    def memset_async(self, width: int, dst: int, value: int, count: int, stream: Stream, what: str) -> None:
        """``cuMemsetD8Async``, ``cuMemsetD16Async`` or ``cuMemsetD32Async`` by element ``width``."""
        m = self.module
        fn = m.cuMemsetD8Async if width == 1 else m.cuMemsetD16Async if width == 2 else m.cuMemsetD32Async
        check(fn(dst, value, count, stream), what)

    def memcpy_htod_async(self, dst: int, src: int, count: int, stream: Stream) -> None:
        check(self.module.cuMemcpyHtoDAsync(dst, src, count, stream), "cuMemcpyHtoDAsync")

    def memcpy_dtoh_async(self, dst: int, src: int, count: int, stream: Stream) -> None:
        check(self.module.cuMemcpyDtoHAsync(dst, src, count, stream), "cuMemcpyDtoHAsync")

    def memcpy_dtod_async(self, dst: int, src: int, count: int, stream: Stream) -> None:
        check(self.module.cuMemcpyDtoDAsync(dst, src, count, stream), "cuMemcpyDtoDAsync")

    def memcpy_dtoh(self, dst: int, src: int, count: int, what: str = "cuMemcpyDtoH") -> None:
        check(self.module.cuMemcpyDtoH(dst, src, count), what)

    def mem_host_register(self, address: int, size: int, flags: int = 0) -> None:
        check(self.module.cuMemHostRegister(address, size, flags), "cuMemHostRegister")

    def mem_host_get_device_pointer(self, address: int) -> int:
        err, dptr = self.module.cuMemHostGetDevicePointer(address, 0)
        check(err, "cuMemHostGetDevicePointer")
        return int(dptr)

    def mem_host_unregister(self, address: int) -> None:
        check(self.module.cuMemHostUnregister(address), "cuMemHostUnregister")

    # -- virtual memory management ----------------------------------------------------------------

    def pinned_allocation_prop(self, ordinal: int) -> object:
        """A ``CUmemAllocationProp`` for pinned memory on device ``ordinal``."""
        m = self.module
        prop = m.CUmemAllocationProp()
        prop.type = m.CUmemAllocationType.CU_MEM_ALLOCATION_TYPE_PINNED
        prop.location.type = m.CUmemLocationType.CU_MEM_LOCATION_TYPE_DEVICE
        prop.location.id = ordinal
        return cast(object, prop)

    def mem_get_allocation_granularity(self, prop: object, option: int) -> int:
        flags = self.module.CUmemAllocationGranularity_flags(option)
        return int(check(self.module.cuMemGetAllocationGranularity(prop, flags),
                         "cuMemGetAllocationGranularity"))

    def mem_create(self, size: int, prop: object) -> PhysicalHandle:
        return _handle(self.module.cuMemCreate(size, prop, 0), "cuMemCreate")

    def mem_release(self, handle: PhysicalHandle) -> None:
        check(self.module.cuMemRelease(handle), "cuMemRelease")

    def mem_address_reserve(self, size: int, alignment: int, addr: int, flags: int) -> int:
        return int(check(self.module.cuMemAddressReserve(size, alignment, addr, flags),
                         "cuMemAddressReserve"))

    def mem_address_free(self, ptr: int, size: int) -> None:
        check(self.module.cuMemAddressFree(ptr, size), "cuMemAddressFree")

    def mem_map(self, ptr: int, size: int, offset: int, handle: PhysicalHandle) -> None:
        check(self.module.cuMemMap(ptr, size, offset, handle, 0), "cuMemMap")

    def mem_unmap(self, ptr: int, size: int) -> None:
        check(self.module.cuMemUnmap(ptr, size), "cuMemUnmap")

    def mem_set_access(self, ptr: int, size: int, ordinal: int, flags: int) -> None:
        """Grant device ``ordinal`` the ``CUmemAccess_flags`` ``flags`` on ``[ptr, ptr + size)``."""
        m = self.module
        desc = m.CUmemAccessDesc()
        desc.location.type = m.CUmemLocationType.CU_MEM_LOCATION_TYPE_DEVICE
        desc.location.id = ordinal
        desc.flags = m.CUmemAccess_flags(flags)
        check(m.cuMemSetAccess(ptr, size, [desc], 1), "cuMemSetAccess")

    # -- streams and events -----------------------------------------------------------------------

    def null_stream(self) -> Stream:
        """The context's legacy NULL stream."""
        return cast(Stream, self.module.CUstream(0))

    def stream_create(self, flags: int) -> Stream:
        return _handle(self.module.cuStreamCreate(flags), "cuStreamCreate")

    def stream_destroy(self, stream: Stream) -> None:
        check(self.module.cuStreamDestroy(stream), "cuStreamDestroy")

    def stream_synchronize(self, stream: Stream, what: str = "cuStreamSynchronize") -> None:
        check(self.module.cuStreamSynchronize(stream), what)

    def stream_query(self, stream: Stream) -> None:
        """Returns when the stream is idle; ``CUDA_ERROR_NOT_READY`` (a CudaError) while it is busy."""
        check(self.module.cuStreamQuery(stream), "cuStreamQuery")

    def stream_wait_event(self, stream: Stream, event: Event, flags: int) -> None:
        check(self.module.cuStreamWaitEvent(stream, event, flags), "cuStreamWaitEvent")

    def event_create(self, flags: int) -> Event:
        return _handle(self.module.cuEventCreate(flags), "cuEventCreate")

    def event_destroy(self, event: Event) -> None:
        check(self.module.cuEventDestroy(event), "cuEventDestroy")

    def event_record(self, event: Event, stream: Stream) -> None:
        check(self.module.cuEventRecord(event, stream), "cuEventRecord")

    def event_record_with_flags(self, event: Event, stream: Stream, flags: int) -> None:
        check(self.module.cuEventRecordWithFlags(event, stream, flags), "cuEventRecordWithFlags")

    def event_synchronize(self, event: Event) -> None:
        check(self.module.cuEventSynchronize(event), "cuEventSynchronize")

    def event_query(self, event: Event) -> None:
        check(self.module.cuEventQuery(event), "cuEventQuery")

    def event_elapsed_time(self, start: Event, end: Event) -> float:
        return float(check(self.module.cuEventElapsedTime(start, end), "cuEventElapsedTime"))

    # -- capture and graphs -----------------------------------------------------------------------

    def stream_is_capturing(self, stream: Stream, what: str = "cuStreamIsCapturing") -> int:
        """The stream's ``CUstreamCaptureStatus`` (0: not capturing)."""
        return status_code(check(self.module.cuStreamIsCapturing(stream), what))

    def stream_get_capture_info(self, stream: Stream,
                                what: str = "cuStreamGetCaptureInfo") -> tuple[int, int]:
        """(``CUstreamCaptureStatus``, capture id) of the stream."""
        info = check(self.module.cuStreamGetCaptureInfo(stream), what)
        return status_code(info[0]), int(info[1])

    def stream_begin_capture(self, stream: Stream, mode: int) -> None:
        capture_mode = self.module.CUstreamCaptureMode(mode)
        check(self.module.cuStreamBeginCapture(stream, capture_mode), "cuStreamBeginCapture")

    def stream_end_capture(self, stream: Stream) -> Graph:
        return _handle(self.module.cuStreamEndCapture(stream), "cuStreamEndCapture")

    def graph_instantiate(self, graph: Graph, flags: int) -> GraphExec:
        return _handle(self.module.cuGraphInstantiate(graph, flags), "cuGraphInstantiate")

    def graph_launch(self, graph_exec: GraphExec, stream: Stream) -> None:
        check(self.module.cuGraphLaunch(graph_exec, stream), "cuGraphLaunch")

    def graph_exec_destroy(self, graph_exec: GraphExec) -> None:
        check(self.module.cuGraphExecDestroy(graph_exec), "cuGraphExecDestroy")

    def graph_destroy(self, graph: Graph) -> None:
        check(self.module.cuGraphDestroy(graph), "cuGraphDestroy")

    # guest nodes (executor/_cuda_guest_nodes.py): marks in a capture, and a graph cut into phases

    def stream_capture_frontier(self, stream: Stream) -> tuple[Graph, list[GraphNode]]:
        """The graph a capturing stream records into and the nodes its next node will depend on."""
        info = check(self.module.cuStreamGetCaptureInfo(stream), "cuStreamGetCaptureInfo")
        # (status, id, graph, dependencies, edge data, number of dependencies)
        return info[2], list(info[3] or ())[:int(info[5])]

    def graph_add_empty_node(self, graph: Graph, deps: list[GraphNode]) -> GraphNode:
        return _handle(self.module.cuGraphAddEmptyNode(graph, deps, len(deps)), "cuGraphAddEmptyNode")

    def stream_set_capture_dependencies(self, stream: Stream, nodes: list[GraphNode]) -> None:
        """CU_STREAM_SET_CAPTURE_DEPENDENCIES (1): the stream's next node depends on ``nodes`` only."""
        check(self.module.cuStreamUpdateCaptureDependencies(stream, nodes, None, len(nodes), 1),
              "cuStreamUpdateCaptureDependencies")

    def graph_nodes(self, graph: Graph) -> list[GraphNode]:
        _, count = check(self.module.cuGraphGetNodes(graph, 0), "cuGraphGetNodes")
        if not int(count):
            return []
        nodes, count = check(self.module.cuGraphGetNodes(graph, int(count)), "cuGraphGetNodes")
        return list(nodes)[:int(count)]

    def graph_node_dependencies(self, node: GraphNode) -> list[GraphNode]:
        _, _, count = check(self.module.cuGraphNodeGetDependencies(node, 0), "cuGraphNodeGetDependencies")
        if not int(count):
            return []
        deps, _, count = check(self.module.cuGraphNodeGetDependencies(node, int(count)),
                               "cuGraphNodeGetDependencies")
        return list(deps)[:int(count)]

    def graph_clone(self, graph: Graph) -> Graph:
        return _handle(self.module.cuGraphClone(graph), "cuGraphClone")

    def graph_node_find_in_clone(self, node: GraphNode, clone: Graph) -> GraphNode:
        return _handle(self.module.cuGraphNodeFindInClone(node, clone), "cuGraphNodeFindInClone")

    def graph_destroy_node(self, node: GraphNode) -> None:
        check(self.module.cuGraphDestroyNode(node), "cuGraphDestroyNode")

    def graph_exec_update(self, graph_exec: GraphExec, graph: Graph) -> int:
        """0 when the exec took the graph's parameters, else the ``CUgraphExecUpdateResult`` saying why
        (the driver's CUDA_ERROR_GRAPH_EXEC_UPDATE_FAILURE is that answer, not a failure of the call)."""
        result = self.module.cuGraphExecUpdate(graph_exec, graph)
        code = status_code(result[0])
        if code and code != 910:  # CUDA_ERROR_GRAPH_EXEC_UPDATE_FAILURE
            raise driver_error(code, "cuGraphExecUpdate")
        if not code:
            return 0
        info = result[1] if len(result) > 1 else None  # the bindings may leave the outputs None on failure
        reason = status_code(info.result) if info is not None else 0
        return reason or 1  # CU_GRAPH_EXEC_UPDATE_ERROR when the driver gave no reason

    # -- modules and launch -----------------------------------------------------------------------

    def module_load_data(self, image_address: int) -> Module:
        """Load the image at ``image_address`` (the caller keeps it alive for the call)."""
        return _handle(self.module.cuModuleLoadData(image_address), "cuModuleLoadData")

    def module_unload(self, module: Module) -> None:
        check(self.module.cuModuleUnload(module), "cuModuleUnload")

    def module_get_function(self, module: Module, name: bytes) -> Function:
        return _handle(self.module.cuModuleGetFunction(module, name), f"cuModuleGetFunction({name!r})")

    def module_get_global(self, module: Module, name: bytes) -> tuple[int, int]:
        """(device address, size) of the global ``name``."""
        dptr, size = check(self.module.cuModuleGetGlobal(module, name), f"cuModuleGetGlobal({name!r})")
        return int(dptr), int(size)

    def func_get_param_info(self, function: Function, index: int, what: str) -> tuple[int, int]:
        """(offset, size) of parameter ``index``."""
        offset, size = check(self.module.cuFuncGetParamInfo(function, index), what)
        return int(offset), int(size)

    def func_param_info_or_none(self, function: Function, index: int) -> tuple[int, int] | None:
        """(offset, size) of parameter ``index``, None past the last one (the driver's
        ``CUDA_ERROR_INVALID_VALUE``); any other failure raises."""
        err, offset, size = self.module.cuFuncGetParamInfo(function, index)
        code = status_code(err)
        if code == int(CUresult.CUDA_ERROR_INVALID_VALUE):
            return None
        if code:
            raise driver_error(code, "cuFuncGetParamInfo")
        return int(offset), int(size)

    def func_get_attribute(self, attrib: int, function: Function, what: str) -> int:
        attribute = self.module.CUfunction_attribute(attrib)
        return int(check(self.module.cuFuncGetAttribute(attribute, function), what))

    def occupancy(self, function: Function, block_size: int, dynamic_smem: int, flags: int) -> int:
        """``cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags``: resident blocks per SM."""
        what = "cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags"
        if block_size > 0x7FFFFFFF:  # the driver's blockSize is an int: the bindings raise OverflowError
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE, f"{what}: blockSize {block_size} past an int")
        return int(check(self.module.cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags(
            function, block_size, dynamic_smem, flags), what))

    def func_set_attribute(self, function: Function, attrib: int, value: int, what: str) -> None:
        attribute = self.module.CUfunction_attribute(attrib)
        check(self.module.cuFuncSetAttribute(function, attribute, value), what)

    def launch_kernel(self, function: Function, grid: tuple[int, int, int], block: tuple[int, int, int],
                      shared_mem_bytes: int, stream: Stream, extra: int) -> None:
        """``cuLaunchKernel`` with no ``kernelParams``; ``extra`` is the address of a
        ``CU_LAUNCH_PARAM_*`` array naming the parameter block (0 for none)."""
        check(self.module.cuLaunchKernel(function, *grid, *block, shared_mem_bytes, stream, 0, extra),
              "cuLaunchKernel")

    def launch_cluster_kernel(self, function: Function, grid: tuple[int, int, int],
                              block: tuple[int, int, int], shared_mem_bytes: int, stream: Stream, extra: int,
                              cluster: tuple[int, int, int]) -> None:
        """``cuLaunchKernelEx`` with one attribute, ``CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION``; ``extra`` as
        for :meth:`launch_kernel`."""
        m = self.module
        attribute = m.CUlaunchAttribute()
        attribute.id = m.CUlaunchAttributeID(4)  # CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION
        dim = attribute.value.clusterDim
        dim.x, dim.y, dim.z = cluster
        config = m.CUlaunchConfig()
        config.gridDimX, config.gridDimY, config.gridDimZ = grid
        config.blockDimX, config.blockDimY, config.blockDimZ = block
        config.sharedMemBytes = shared_mem_bytes
        config.hStream = stream
        config.attrs = [attribute]
        config.numAttrs = 1
        check(m.cuLaunchKernelEx(config, function, 0, extra), "cuLaunchKernelEx")

    def launch_cooperative_kernel(self, function: Function, grid: tuple[int, int, int],
                                  block: tuple[int, int, int], shared_mem_bytes: int, stream: Stream,
                                  kernel_params: int) -> None:
        """``cuLaunchCooperativeKernel``; ``kernel_params`` is the address of an array of pointers,
        one to each parameter's value (0 for a kernel without parameters): it takes no ``extra``."""
        check(self.module.cuLaunchCooperativeKernel(function, *grid, *block, shared_mem_bytes, stream,
                                                    kernel_params), "cuLaunchCooperativeKernel")


class Cublas:
    """``nvmath.bindings.cublas`` with types: one method per cuBLAS call the backend makes, in cuBLAS's
    argument order (pointers and handles as integers); each turns nvmath's ``cuBLASError`` into a
    :class:`CudaError` carrying the ``cublasStatus_t``."""

    __slots__ = ("module",)

    def __init__(self, module: Any) -> None:
        self.module = module  # untyped: see the module's docstring

    def _call(self, what: str, fn: Any, *args: int) -> Any:
        try:
            return fn(*args)
        except Exception as exc:  # nvmath raises its own cuBLASError
            raise cublas_error(exc, what) from exc

    def create(self) -> int:
        return int(self._call("cublasCreate", self.module.create))

    def destroy(self, handle: int) -> None:
        self._call("cublasDestroy", self.module.destroy, handle)

    def set_stream(self, handle: int, stream: int) -> None:
        self._call("cublasSetStream", self.module.set_stream, handle, stream)

    def set_math_mode(self, handle: int, mode: int) -> None:
        self._call("cublasSetMathMode", self.module.set_math_mode, handle, mode)

    def sgemm(self, handle: int, transa: int, transb: int, m: int, n: int, k: int, alpha: int,
              a: int, lda: int, b: int, ldb: int, beta: int, c: int, ldc: int) -> None:
        self._call("cublasSgemm", self.module.sgemm, handle, transa, transb, m, n, k, alpha, a, lda, b, ldb,
                   beta, c, ldc)

    def gemm_ex(self, handle: int, transa: int, transb: int, m: int, n: int, k: int, alpha: int,
                a: int, a_type: int, lda: int, b: int, b_type: int, ldb: int, beta: int,
                c: int, c_type: int, ldc: int, compute_type: int, algo: int) -> None:
        self._call("cublasGemmEx", self.module.gemm_ex, handle, transa, transb, m, n, k, alpha, a, a_type,
                   lda, b, b_type, ldb, beta, c, c_type, ldc, compute_type, algo)

    def gemm_strided_batched_ex(self, handle: int, transa: int, transb: int, m: int, n: int, k: int,
                                alpha: int, a: int, a_type: int, lda: int, stride_a: int, b: int, b_type: int,
                                ldb: int, stride_b: int, beta: int, c: int, c_type: int, ldc: int,
                                stride_c: int, batch_count: int, compute_type: int, algo: int) -> None:
        self._call("cublasGemmStridedBatchedEx", self.module.gemm_strided_batched_ex, handle, transa, transb,
                   m, n, k, alpha, a, a_type, lda, stride_a, b, b_type, ldb, stride_b, beta, c, c_type, ldc,
                   stride_c, batch_count, compute_type, algo)

    def strsm(self, handle: int, side: int, uplo: int, trans: int, diag: int, m: int, n: int, alpha: int,
              a: int, lda: int, b: int, ldb: int) -> None:
        self._call("cublasStrsm", self.module.strsm, handle, side, uplo, trans, diag, m, n, alpha, a, lda, b,
                   ldb)

    def strsm_batched(self, handle: int, side: int, uplo: int, trans: int, diag: int, m: int, n: int,
                      alpha: int, a: int, lda: int, b: int, ldb: int, batch_count: int) -> None:
        self._call("cublasStrsmBatched", self.module.strsm_batched, handle, side, uplo, trans, diag, m, n,
                   alpha, a, lda, b, ldb, batch_count)

    def getrf_batched(self, prefix: str, handle: int, n: int, a: int, lda: int, pivots: int, info: int,
                      batch_count: int) -> None:
        """``cublas<prefix>getrfBatched``, ``prefix`` one of s, d, c, z."""
        function = getattr(self.module, f"{prefix}getrf_batched")
        self._call(f"cublas{prefix.upper()}getrfBatched", function, handle, n, a, lda, pivots, info,
                   batch_count)

    def gemm_batched_ex(self, handle: int, transa: int, transb: int, m: int, n: int, k: int, alpha: int,
                        a: int, a_type: int, lda: int, b: int, b_type: int, ldb: int, beta: int,
                        c: int, c_type: int, ldc: int, batch_count: int, compute_type: int,
                        algo: int) -> None:
        self._call("cublasGemmBatchedEx", self.module.gemm_batched_ex, handle, transa, transb, m, n, k, alpha,
                   a, a_type, lda, b, b_type, ldb, beta, c, c_type, ldc, batch_count, compute_type, algo)
