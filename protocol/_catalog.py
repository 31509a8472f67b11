"""The call catalog: every call's number, name, argument and result models, and its semantics.

This is the single source of truth: the codec, ``docs/protocol.md``'s call table and the C header
are derived from it. Numbers are grouped by area (0x00xx mediator, 0x001x driver and device, 0x002x
contexts, 0x003x memory, 0x004x virtual memory, 0x005x streams, 0x006x events, 0x007x modules and
launch, 0x008x cuBLAS, 0x009x capture and graphs, 0x00Ax NVML, 0x00Bx arrays, textures and surfaces,
0x00C0-0x00C7 tensor maps, 0x00C8-0x00CF pitched memsets and pinned box copies); a number is never reused.

Asynchronous calls (``is_async``) may be submitted two ways: with ``SubmitFlags.ASYNC`` they are
CUDA's ``*Async`` variant (no completion unless they fail); without it the host completes them only
once their work has finished, which is CUDA's synchronous variant (``cuMemsetD8``, ``cuMemcpyHtoD``,
…), and like every call that waits they report a latched asynchronous error.

Payloads: ``in_payload`` says what the input payload area carries (bytes to copy, a module image, a
NUL-terminated name, a packed kernel parameter block); ``out_payload`` what the host writes to the
output area. ``synchronizing`` calls wait for earlier work; they report a latched asynchronous error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, Self

from pydantic import model_validator

from ._enums import (
    CublasComputeType,
    CublasDiagType,
    CublasFillMode,
    CublasOperation,
    CublasSideMode,
    CudaDataType,
    FunctionAttribute,
    GranularityOption,
    MemAccessFlags,
    StreamCaptureMode,
    StreamCaptureStatus,
)
from ._pitched import Memcpy3DPinnedArgs, Memset2DArgs
from ._tensor_maps import ModuleGlobalAliasArgs, TensorMapEncodeIm2colArgs, TensorMapEncodeTiledArgs
from ._textures import (
    ArrayArgs,
    ArrayCreateArgs,
    ArrayResult,
    Memcpy3DArgs,
    Memcpy3DHostArgs,
    SurfObjectArgs,
    SurfObjectCreateArgs,
    SurfObjectResult,
    TexObjectArgs,
    TexObjectCreateArgs,
    TexObjectResult,
)
from ._wire import (
    F32,
    F64,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    Bytes16,
    CtxH,
    CublasH,
    Device,
    DevPtr,
    EventH,
    FunctionH,
    GraphExecH,
    GraphH,
    MemH,
    ModuleH,
    StreamH,
    WireModel,
    enum_field,
    layout_of,
)

__all__ = ["CALLS", "CALLS_BY_NAME", "CallSpec", "spec_for"]

StatusDomain = Literal["CUresult", "cublasStatus_t"]

# ---------------------------------------------------------------------------------------------
# Shared shapes


class NoArgs(WireModel):
    """No arguments."""


class NoResult(WireModel):
    """No results beyond the status."""


class DeviceArgs(WireModel):
    device: Device


class StreamArgs(WireModel):
    stream: StreamH


class EventArgs(WireModel):
    event: EventH


class CtxArgs(WireModel):
    ctx: CtxH


class CtxResult(WireModel):
    ctx: CtxH


class FlagsArgs(WireModel):
    flags: U32


class I32Result(WireModel):
    value: I32


class ModuleArgs(WireModel):
    module: ModuleH


class CublasArgs(WireModel):
    handle: CublasH


class DevPtrResult(WireModel):
    dptr: DevPtr


# ---------------------------------------------------------------------------------------------
# Driver, device, context, memory info


class DeviceGetArgs(WireModel):
    ordinal: I32


class DeviceGetResult(WireModel):
    device: Device


class DeviceGetAttributeArgs(WireModel):
    attrib: I32
    device: Device


class DeviceTotalMemResult(WireModel):
    bytes: U64


class DeviceUuidResult(WireModel):
    uuid: Bytes16


class CtxCreateArgs(WireModel):
    flags: U32
    device: Device


class MemGetInfoResult(WireModel):
    free: U64
    total: U64


# ---------------------------------------------------------------------------------------------
# Memory: allocation, memset, copies


class MemAllocArgs(WireModel):
    bytesize: U64


class MemFreeArgs(WireModel):
    dptr: DevPtr


class MemsetD8Args(WireModel):
    dst: DevPtr
    count: U64
    value: U8
    stream: StreamH


class MemsetD16Args(WireModel):
    dst: DevPtr
    count: U64
    value: U16
    stream: StreamH


class MemsetD32Args(WireModel):
    dst: DevPtr
    count: U64
    value: U32
    stream: StreamH


class MemcpyHtoDArgs(WireModel):
    """The bytes ride in the input payload; ``in_len`` is the copy's length."""

    dst: DevPtr
    stream: StreamH


class MemcpyDtoHArgs(WireModel):
    """The bytes come back in the output payload; ``count`` must fit ``out_cap``."""

    src: DevPtr
    count: U64
    stream: StreamH


class MemcpyDtoDArgs(WireModel):
    dst: DevPtr
    src: DevPtr
    count: U64
    stream: StreamH


class MemHostAllocArgs(WireModel):
    """A range of the VM's pinned area (region header ``pinned_offset``/``pinned_size``), owned by
    the calling channel until freed or closed. Flags: CU_MEMHOSTALLOC_PORTABLE (1), DEVICEMAP (2)
    and WRITECOMBINED (4) are accepted (every range is portable and write-combined-able; a range is
    mapped into the device's address space by ``mem_host_alias``)."""

    bytesize: U64
    flags: U32


class MemHostAllocResult(WireModel):
    offset: U64  # pinned offset: relative to the pinned area's start, a multiple of 4096


class MemFreeHostArgs(WireModel):
    offset: U64  # the pinned offset mem_host_alloc answered


class MemHostAliasArgs(WireModel):
    """Map the caller's pinned range that holds ``offset`` into the device's address space, so a
    kernel reaches its bytes (mapped pinned and managed memory). The whole range gets one alias:
    where ``address`` names ``offset`` (the guest's own pointer to it, so that host pointer ==
    device pointer) when those device addresses are free, else INVALID_VALUE; where the host
    chooses when ``address`` is 0. A range has one alias, made by the first call, until it is freed."""

    offset: U64  # a pinned offset inside one of the caller's live ranges
    address: DevPtr  # the device address wanted for offset (0: the host's choice); page-congruent to it


class MemcpyHtoDPinnedArgs(WireModel):
    """Copy ``count`` bytes from the caller's pinned range at ``offset`` (no payload)."""

    dst: DevPtr
    offset: U64
    count: U64
    stream: StreamH


class MemcpyDtoHPinnedArgs(WireModel):
    """Copy ``count`` bytes into the caller's pinned range at ``offset`` (no payload)."""

    src: DevPtr
    offset: U64
    count: U64
    stream: StreamH


# ---------------------------------------------------------------------------------------------
# Virtual memory management


class GranularityArgs(WireModel):
    device: Device
    option: enum_field(GranularityOption)  # type: ignore[valid-type]


class GranularityResult(WireModel):
    granularity: U64


class MemCreateArgs(WireModel):
    """Pinned device memory on ``device`` (``CU_MEM_ALLOCATION_TYPE_PINNED``, no export handle)."""

    size: U64
    device: Device
    flags: U32

    @model_validator(mode="after")
    def _size_positive(self) -> Self:
        if self.size == 0:
            raise ValueError("size must be positive")
        return self


class MemHandleArgs(WireModel):
    handle: MemH


class MemHandleResult(WireModel):
    handle: MemH


class AddressReserveArgs(WireModel):
    size: U64
    alignment: U64
    addr: DevPtr
    flags: U64

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.size == 0:
            raise ValueError("size must be positive")
        if self.alignment & (self.alignment - 1):
            raise ValueError("alignment must be 0 or a power of two")
        return self


class AddressFreeArgs(WireModel):
    ptr: DevPtr
    size: U64


class MemMapArgs(WireModel):
    ptr: DevPtr
    size: U64
    offset: U64
    handle: MemH
    flags: U32


class MemUnmapArgs(WireModel):
    ptr: DevPtr
    size: U64


class MemSetAccessArgs(WireModel):
    """One ``CUmemAccessDesc`` (a device location and its protection)."""

    ptr: DevPtr
    size: U64
    device: Device
    flags: enum_field(MemAccessFlags)  # type: ignore[valid-type]


# ---------------------------------------------------------------------------------------------
# Streams and events


class StreamCreateResult(WireModel):
    stream: StreamH


class StreamWaitEventArgs(WireModel):
    stream: StreamH
    event: EventH
    flags: U32


class EventCreateResult(WireModel):
    event: EventH


class EventRecordArgs(WireModel):
    event: EventH
    stream: StreamH


class EventRecordFlagsArgs(WireModel):
    event: EventH
    stream: StreamH
    flags: U32


class EventElapsedArgs(WireModel):
    start: EventH
    end: EventH


class EventElapsedResult(WireModel):
    milliseconds: F32


# ---------------------------------------------------------------------------------------------
# Modules and launch


class ModuleLoadResult(WireModel):
    module: ModuleH


class FunctionResult(WireModel):
    function: FunctionH


class GlobalResult(WireModel):
    dptr: DevPtr
    bytes: U64


class OccupancyArgs(WireModel):
    function: FunctionH
    block_size: U32
    dynamic_smem: U64
    flags: U32


class ModuleUploadBeginArgs(WireModel):
    bytes: U64  # the whole image's size


class ModuleUploadResult(WireModel):
    upload: U32


class ModuleUploadChunkArgs(WireModel):
    """The input payload holds the image's bytes from ``offset``: where the previous chunk ended."""

    upload: U32
    offset: U64


class ModuleUploadArgs(WireModel):
    upload: U32


class FuncParamInfoArgs(WireModel):
    function: FunctionH
    index: U32


class FuncParamInfoResult(WireModel):
    offset: U64
    size: U64


class FuncArgs(WireModel):
    function: FunctionH


class FuncParamLayoutResult(WireModel):
    """``count`` parameters; the output payload holds ``count`` (u32 offset, u32 size) pairs."""

    count: U32
    param_bytes: U32


class FuncGetAttributeArgs(WireModel):
    attrib: enum_field(FunctionAttribute)  # type: ignore[valid-type]
    function: FunctionH


class FuncSetAttributeArgs(WireModel):
    function: FunctionH
    attrib: enum_field(FunctionAttribute)  # type: ignore[valid-type]
    value: I32


class LaunchKernelArgs(WireModel):
    """The packed parameter block (each parameter at its offset) rides in the input payload."""

    function: FunctionH
    grid_x: U32
    grid_y: U32
    grid_z: U32
    block_x: U32
    block_y: U32
    block_z: U32
    shared_mem_bytes: U32
    stream: StreamH

    @model_validator(mode="after")
    def _dims(self) -> Self:
        if min(self.grid_x, self.grid_y, self.grid_z, self.block_x, self.block_y, self.block_z) == 0:
            raise ValueError("grid and block dimensions must be at least 1")
        if self.block_x * self.block_y * self.block_z > 1024:
            raise ValueError("a block has at most 1024 threads")
        if self.grid_y > 65535 or self.grid_z > 65535 or self.grid_x > 2**31 - 1:
            raise ValueError("grid dimensions exceed CUDA's limits")
        return self


class LaunchClusterArgs(LaunchKernelArgs):
    """A launch in thread-block clusters (cuLaunchKernelEx's CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION)."""

    cluster_x: U32
    cluster_y: U32
    cluster_z: U32


# ---------------------------------------------------------------------------------------------
# cuBLAS


class CublasCreateResult(WireModel):
    handle: CublasH


class CublasSetStreamArgs(WireModel):
    handle: CublasH
    stream: StreamH


class CublasSetMathModeArgs(WireModel):
    handle: CublasH
    mode: U32


_OpField = enum_field(CublasOperation)
_TypeField = enum_field(CudaDataType)
_ComputeField = enum_field(CublasComputeType)


def _check_gemm_shape(
    transa: CublasOperation, transb: CublasOperation, m: int, n: int, k: int,
    lda: int, ldb: int, ldc: int,
) -> None:
    if min(m, n, k) < 0:
        raise ValueError("m, n and k must not be negative")
    rows_a = m if transa == CublasOperation.CUBLAS_OP_N else k
    rows_b = k if transb == CublasOperation.CUBLAS_OP_N else n
    if lda < max(1, rows_a):
        raise ValueError(f"lda={lda} < max(1, {rows_a})")
    if ldb < max(1, rows_b):
        raise ValueError(f"ldb={ldb} < max(1, {rows_b})")
    if ldc < max(1, m):
        raise ValueError(f"ldc={ldc} < max(1, {m})")


class SgemmArgs(WireModel):
    handle: CublasH
    transa: _OpField  # type: ignore[valid-type]
    transb: _OpField  # type: ignore[valid-type]
    m: I32
    n: I32
    k: I32
    alpha: F32
    a: DevPtr
    lda: I32
    b: DevPtr
    ldb: I32
    beta: F32
    c: DevPtr
    ldc: I32

    @model_validator(mode="after")
    def _shape(self) -> Self:
        _check_gemm_shape(self.transa, self.transb, self.m, self.n, self.k, self.lda, self.ldb, self.ldc)
        return self


class GemmExArgs(WireModel):
    """``alpha``/``beta`` travel as doubles, whatever the scale type (f16, f32, f64 and i32 values
    are all exact as doubles); ``alpha_imag``/``beta_imag`` are their imaginary parts for complex
    scale types, 0 otherwise."""

    handle: CublasH
    transa: _OpField  # type: ignore[valid-type]
    transb: _OpField  # type: ignore[valid-type]
    m: I32
    n: I32
    k: I32
    alpha: F64
    a: DevPtr
    a_type: _TypeField  # type: ignore[valid-type]
    lda: I32
    b: DevPtr
    b_type: _TypeField  # type: ignore[valid-type]
    ldb: I32
    beta: F64
    c: DevPtr
    c_type: _TypeField  # type: ignore[valid-type]
    ldc: I32
    compute_type: _ComputeField  # type: ignore[valid-type]
    algo: I32
    alpha_imag: F64 = 0.0
    beta_imag: F64 = 0.0

    @model_validator(mode="after")
    def _shape(self) -> Self:
        _check_gemm_shape(self.transa, self.transb, self.m, self.n, self.k, self.lda, self.ldb, self.ldc)
        return self


class GemmStridedBatchedExArgs(WireModel):
    """Scalars as in :class:`GemmExArgs`; strides in elements."""

    handle: CublasH
    transa: _OpField  # type: ignore[valid-type]
    transb: _OpField  # type: ignore[valid-type]
    m: I32
    n: I32
    k: I32
    alpha: F64
    a: DevPtr
    a_type: _TypeField  # type: ignore[valid-type]
    lda: I32
    stride_a: I64
    b: DevPtr
    b_type: _TypeField  # type: ignore[valid-type]
    ldb: I32
    stride_b: I64
    beta: F64
    c: DevPtr
    c_type: _TypeField  # type: ignore[valid-type]
    ldc: I32
    stride_c: I64
    batch_count: I32
    compute_type: _ComputeField  # type: ignore[valid-type]
    algo: I32
    alpha_imag: F64 = 0.0
    beta_imag: F64 = 0.0

    @model_validator(mode="after")
    def _shape(self) -> Self:
        _check_gemm_shape(self.transa, self.transb, self.m, self.n, self.k, self.lda, self.ldb, self.ldc)
        if self.batch_count < 0:
            raise ValueError("batch_count must not be negative")
        return self


class GemmBatchedExArgs(WireModel):
    """``a``, ``b``, ``c`` are device arrays of ``batch_count`` device pointers."""

    handle: CublasH
    transa: _OpField  # type: ignore[valid-type]
    transb: _OpField  # type: ignore[valid-type]
    m: I32
    n: I32
    k: I32
    alpha: F64
    a: DevPtr
    a_type: _TypeField  # type: ignore[valid-type]
    lda: I32
    b: DevPtr
    b_type: _TypeField  # type: ignore[valid-type]
    ldb: I32
    beta: F64
    c: DevPtr
    c_type: _TypeField  # type: ignore[valid-type]
    ldc: I32
    batch_count: I32
    compute_type: _ComputeField  # type: ignore[valid-type]
    algo: I32
    alpha_imag: F64 = 0.0
    beta_imag: F64 = 0.0

    @model_validator(mode="after")
    def _shape(self) -> Self:
        _check_gemm_shape(self.transa, self.transb, self.m, self.n, self.k, self.lda, self.ldb, self.ldc)
        if self.batch_count < 0:
            raise ValueError("batch_count must not be negative")
        return self


_SideField = enum_field(CublasSideMode)
_FillField = enum_field(CublasFillMode)
_DiagField = enum_field(CublasDiagType)


class StrsmArgs(WireModel):
    """``op(A) X = alpha B`` (left) or ``X op(A) = alpha B`` (right), X overwriting B (``m x n``)."""

    handle: CublasH
    side: _SideField  # type: ignore[valid-type]
    uplo: _FillField  # type: ignore[valid-type]
    trans: _OpField  # type: ignore[valid-type]
    diag: _DiagField  # type: ignore[valid-type]
    m: I32
    n: I32
    alpha: F32
    a: DevPtr
    lda: I32
    b: DevPtr
    ldb: I32

    @model_validator(mode="after")
    def _shape(self) -> Self:
        _check_trsm_shape(self.side, self.m, self.n, self.lda, self.ldb)
        return self


class StrsmBatchedArgs(WireModel):
    """:class:`StrsmArgs` for ``batch_count`` systems; ``a`` and ``b`` are device arrays of device
    pointers."""

    handle: CublasH
    side: _SideField  # type: ignore[valid-type]
    uplo: _FillField  # type: ignore[valid-type]
    trans: _OpField  # type: ignore[valid-type]
    diag: _DiagField  # type: ignore[valid-type]
    m: I32
    n: I32
    alpha: F32
    a: DevPtr
    lda: I32
    b: DevPtr
    ldb: I32
    batch_count: I32

    @model_validator(mode="after")
    def _shape(self) -> Self:
        _check_trsm_shape(self.side, self.m, self.n, self.lda, self.ldb)
        if self.batch_count < 0:
            raise ValueError("batch_count must not be negative")
        return self


class GetrfBatchedArgs(WireModel):
    """LU factorization with partial pivoting of ``batch_count`` ``n x n`` matrices in place: ``a`` is a
    device array of device pointers; ``pivots`` (``n`` ints per matrix, 1-based rows; 0: no pivoting)
    and ``info`` (one int per matrix) are device arrays. ``data_type`` is R_32F, R_64F, C_32F or C_64F
    (cublasSgetrfBatched, D, C, Z)."""

    handle: CublasH
    n: I32
    a: DevPtr
    lda: I32
    pivots: DevPtr
    info: DevPtr
    batch_count: I32
    data_type: _TypeField  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _shape(self) -> Self:
        if self.n < 0 or self.batch_count < 0:
            raise ValueError("n and batch_count must not be negative")
        if self.lda < max(1, self.n):
            raise ValueError(f"lda={self.lda} < max(1, {self.n})")
        if self.data_type not in (CudaDataType.CUDA_R_32F, CudaDataType.CUDA_R_64F, CudaDataType.CUDA_C_32F,
                                  CudaDataType.CUDA_C_64F):
            raise ValueError(f"getrfBatched has no {self.data_type.name} form")
        return self


def _check_trsm_shape(side: CublasSideMode, m: int, n: int, lda: int, ldb: int) -> None:
    if min(m, n) < 0:
        raise ValueError("m and n must not be negative")
    order = m if side == CublasSideMode.CUBLAS_SIDE_LEFT else n
    if lda < max(1, order):
        raise ValueError(f"lda={lda} < max(1, {order})")
    if ldb < max(1, m):
        raise ValueError(f"ldb={ldb} < max(1, {m})")


# ---------------------------------------------------------------------------------------------
# Stream capture and graphs


class BeginCaptureArgs(WireModel):
    stream: StreamH
    mode: enum_field(StreamCaptureMode)  # type: ignore[valid-type]


class GraphResult(WireModel):
    graph: GraphH


class CaptureInfoResult(WireModel):
    status: enum_field(StreamCaptureStatus)  # type: ignore[valid-type]
    capture_id: U64


class GraphArgs(WireModel):
    graph: GraphH


class GraphInstantiateArgs(WireModel):
    graph: GraphH
    flags: U64


class GraphExecResult(WireModel):
    graph_exec: GraphExecH


class GraphExecArgs(WireModel):
    graph_exec: GraphExecH


class GraphLaunchArgs(WireModel):
    graph_exec: GraphExecH
    stream: StreamH


class GuestNodeArgs(WireModel):
    """A node the guest performs itself (a host function, a copy of host memory), named by a tag
    that only the guest gives meaning to."""

    stream: StreamH
    tag: U32


class CapturedResult(WireModel):
    captured: U32  # 1: recorded into the stream's capture; 0: the stream does not capture


class GraphExecNodeArgs(WireModel):
    graph_exec: GraphExecH
    index: U32


class GuestNodeResult(WireModel):
    count: U32  # the exec's guest nodes: it launches in count + 1 phases
    tag: U32  # guest node ``index``'s tag (0 when index >= count)


class GraphLaunchPhaseArgs(WireModel):
    graph_exec: GraphExecH
    stream: StreamH
    phase: U32


class CountResult(WireModel):
    count: U32


class GraphExecUpdateArgs(WireModel):
    graph_exec: GraphExecH
    graph: GraphH


class GraphExecUpdateResult(WireModel):
    result: U32  # CUgraphExecUpdateResult: 0 when the exec took the graph's parameters


# ---------------------------------------------------------------------------------------------
# NVML: what the guest's libnvidia-ml.so.1 needs that no CUDA call says


class NvmlMemoryResult(WireModel):
    """The VM's view of device memory: its quota (the device's memory when it has none) and what
    its allocations hold."""

    total: U64
    used: U64


class NvmlProcessesResult(WireModel):
    """``count`` processes of the VM use the device; the output payload holds as many as fit of
    (u32 pid, u32 zero, u64 bytes of device memory)."""

    count: U32


# ---------------------------------------------------------------------------------------------
# The registry


@dataclass(frozen=True, slots=True)
class CallSpec:
    """Everything the codec, the worker and the generators need to know about one call."""

    call_id: int
    name: str  # the catalog's snake_case name, also the executor's handler name
    cuda_name: str  # the CUDA / cuBLAS entry point it stands for
    args: type[WireModel]
    result: type[WireModel]
    is_async: bool = False  # CUDA returns before the work is done: may be submitted ASYNC
    synchronizing: bool = False  # waits for earlier work: reports a latched asynchronous error
    in_payload: str | None = None
    out_payload: str | None = None
    status_domain: StatusDomain = "CUresult"
    doc: str = ""


def _specs() -> list[CallSpec]:
    cs = CallSpec
    ns = NoArgs
    nr = NoResult
    return [
        cs(0x0001, "nop", "vgpuNop", ns, nr, doc="Does nothing; the floor of a round trip."),
        # driver and device
        cs(0x0010, "init", "cuInit", FlagsArgs, nr),
        cs(0x0011, "driver_get_version", "cuDriverGetVersion", ns, I32Result),
        cs(0x0012, "device_get_count", "cuDeviceGetCount", ns, I32Result),
        cs(0x0013, "device_get", "cuDeviceGet", DeviceGetArgs, DeviceGetResult),
        cs(0x0014, "device_get_name", "cuDeviceGetName", DeviceArgs, nr,
           out_payload="the device name, NUL-terminated, truncated to out_cap"),
        cs(0x0015, "device_get_attribute", "cuDeviceGetAttribute", DeviceGetAttributeArgs, I32Result),
        cs(0x0016, "device_total_mem", "cuDeviceTotalMem_v2", DeviceArgs, DeviceTotalMemResult),
        cs(0x0017, "device_get_uuid", "cuDeviceGetUuid_v2", DeviceArgs, DeviceUuidResult),
        cs(0x0018, "device_get_pci_bus_id", "cuDeviceGetPCIBusId", DeviceArgs, nr,
           out_payload="the PCI bus id 'dddd:bb:dd.f', NUL-terminated, truncated to out_cap"),
        # contexts
        cs(0x0020, "primary_ctx_retain", "cuDevicePrimaryCtxRetain", DeviceArgs, CtxResult),
        cs(0x0021, "primary_ctx_release", "cuDevicePrimaryCtxRelease_v2", DeviceArgs, nr),
        cs(0x0022, "ctx_create", "cuCtxCreate_v2", CtxCreateArgs, CtxResult),
        cs(0x0023, "ctx_destroy", "cuCtxDestroy_v2", CtxArgs, nr),
        cs(0x0024, "ctx_set_current", "cuCtxSetCurrent", CtxArgs, nr),
        cs(0x0025, "ctx_get_current", "cuCtxGetCurrent", ns, CtxResult),
        cs(0x0026, "ctx_synchronize", "cuCtxSynchronize", ns, nr, synchronizing=True),
        cs(0x0027, "mem_get_info", "cuMemGetInfo_v2", ns, MemGetInfoResult),
        # memory
        cs(0x0030, "mem_alloc", "cuMemAlloc_v2", MemAllocArgs, DevPtrResult),
        cs(0x0031, "mem_free", "cuMemFree_v2", MemFreeArgs, nr),
        cs(0x0032, "memset_d8", "cuMemsetD8Async", MemsetD8Args, nr, is_async=True),
        cs(0x0033, "memset_d16", "cuMemsetD16Async", MemsetD16Args, nr, is_async=True),
        cs(0x0034, "memset_d32", "cuMemsetD32Async", MemsetD32Args, nr, is_async=True),
        cs(0x0035, "memcpy_htod", "cuMemcpyHtoDAsync_v2", MemcpyHtoDArgs, nr, is_async=True,
           in_payload="the bytes to copy (one chunk of a larger copy: see chunking)"),
        cs(0x0036, "memcpy_dtoh", "cuMemcpyDtoHAsync_v2", MemcpyDtoHArgs, nr, is_async=True,
           out_payload="the bytes copied (count bytes); after an ASYNC submission they are valid "
           "once the stream has been synchronized"),
        cs(0x0037, "memcpy_dtod", "cuMemcpyDtoDAsync_v2", MemcpyDtoDArgs, nr, is_async=True),
        cs(0x0038, "mem_host_alloc", "cuMemHostAlloc", MemHostAllocArgs, MemHostAllocResult,
           doc="CUDA_ERROR_OUT_OF_MEMORY when the pinned area has no free run that long (the guest falls "
           "back to pageable memory); CUDA_ERROR_NOT_SUPPORTED when the region has no pinned area"),
        cs(0x0039, "mem_free_host", "cuMemFreeHost", MemFreeHostArgs, nr,
           doc="the range's pages are discarded: the next owner reads zeros"),
        cs(0x003A, "memcpy_htod_pinned", "cuMemcpyHtoDAsync_v2", MemcpyHtoDPinnedArgs, nr, is_async=True,
           doc="from pinned memory: the host reads the range when the stream runs the copy, so after "
           "an ASYNC submission the guest may not change it until the stream is synchronized"),
        cs(0x003B, "memcpy_dtoh_pinned", "cuMemcpyDtoHAsync_v2", MemcpyDtoHPinnedArgs, nr, is_async=True,
           doc="into pinned memory: after an ASYNC submission the bytes are there once the stream "
           "has been synchronized"),
        cs(0x003C, "mem_host_alias", "cuMemHostGetDevicePointer_v2", MemHostAliasArgs, DevPtrResult,
           doc="the device address of offset (its range's alias); NOT_SUPPORTED where the device "
           "cannot map host memory or the region has no pinned area"),
        # virtual memory management
        cs(0x0040, "mem_get_allocation_granularity", "cuMemGetAllocationGranularity",
           GranularityArgs, GranularityResult),
        cs(0x0041, "mem_create", "cuMemCreate", MemCreateArgs, MemHandleResult),
        cs(0x0042, "mem_release", "cuMemRelease", MemHandleArgs, nr),
        cs(0x0043, "mem_address_reserve", "cuMemAddressReserve", AddressReserveArgs, DevPtrResult),
        cs(0x0044, "mem_address_free", "cuMemAddressFree", AddressFreeArgs, nr),
        cs(0x0045, "mem_map", "cuMemMap", MemMapArgs, nr),
        cs(0x0046, "mem_unmap", "cuMemUnmap", MemUnmapArgs, nr),
        cs(0x0047, "mem_set_access", "cuMemSetAccess", MemSetAccessArgs, nr),
        # streams
        cs(0x0050, "stream_create", "cuStreamCreate", FlagsArgs, StreamCreateResult),
        cs(0x0051, "stream_destroy", "cuStreamDestroy_v2", StreamArgs, nr),
        cs(0x0052, "stream_synchronize", "cuStreamSynchronize", StreamArgs, nr, synchronizing=True),
        cs(0x0053, "stream_query", "cuStreamQuery", StreamArgs, nr,
           doc="CUDA_ERROR_NOT_READY while work is pending"),
        cs(0x0054, "stream_wait_event", "cuStreamWaitEvent", StreamWaitEventArgs, nr, is_async=True),
        # events
        cs(0x0060, "event_create", "cuEventCreate", FlagsArgs, EventCreateResult),
        cs(0x0061, "event_destroy", "cuEventDestroy_v2", EventArgs, nr),
        cs(0x0062, "event_record", "cuEventRecord", EventRecordArgs, nr, is_async=True),
        cs(0x0063, "event_synchronize", "cuEventSynchronize", EventArgs, nr, synchronizing=True),
        cs(0x0064, "event_query", "cuEventQuery", EventArgs, nr,
           doc="CUDA_ERROR_NOT_READY until the event has completed"),
        cs(0x0065, "event_elapsed_time", "cuEventElapsedTime", EventElapsedArgs, EventElapsedResult),
        cs(0x0066, "event_record_with_flags", "cuEventRecordWithFlags", EventRecordFlagsArgs, nr,
           is_async=True, doc="CU_EVENT_RECORD_EXTERNAL (1) on a capturing stream adds an event record "
           "node (the event is recorded when the graph runs)"),
        # modules and launch
        cs(0x0070, "module_load_data", "cuModuleLoadData", ns, ModuleLoadResult,
           in_payload="the module image: PTX text, a cubin or a fatbin"),
        cs(0x0071, "module_unload", "cuModuleUnload", ModuleArgs, nr),
        cs(0x0072, "module_get_function", "cuModuleGetFunction", ModuleArgs, FunctionResult,
           in_payload="the kernel's (mangled) name, UTF-8, optionally NUL-terminated"),
        cs(0x0073, "module_get_global", "cuModuleGetGlobal_v2", ModuleArgs, GlobalResult,
           in_payload="the global's name, UTF-8, optionally NUL-terminated"),
        cs(0x0074, "func_get_param_info", "cuFuncGetParamInfo", FuncParamInfoArgs, FuncParamInfoResult),
        cs(0x0075, "func_get_param_layout", "vgpuFuncGetParamLayout", FuncArgs, FuncParamLayoutResult,
           out_payload="count pairs of (u32 offset, u32 size), one per kernel parameter"),
        cs(0x0076, "launch_kernel", "cuLaunchKernel", LaunchKernelArgs, nr, is_async=True,
           in_payload="the packed parameter block: each parameter at its offset"),
        cs(0x0077, "func_get_attribute", "cuFuncGetAttribute", FuncGetAttributeArgs, I32Result,
           doc="CUDA_ERROR_NOT_SUPPORTED when the backend cannot know the value (the sim backend "
           "answers only what the module image declares)"),
        cs(0x0078, "func_set_attribute", "cuFuncSetAttribute", FuncSetAttributeArgs, nr,
           doc="CUDA_ERROR_INVALID_VALUE for a read-only attribute or a value out of range"),
        cs(0x0079, "launch_cooperative_kernel", "cuLaunchCooperativeKernel", LaunchKernelArgs, nr,
           is_async=True, in_payload="the packed parameter block: each parameter at its offset",
           doc="every block co-resident (at most the occupancy calculator's blocks per multiprocessor "
           "times the multiprocessors, else CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE), so that "
           "cooperative_groups' grid.sync() works"),
        cs(0x007E, "launch_cluster_kernel", "cuLaunchKernelEx", LaunchClusterArgs, nr, is_async=True,
           in_payload="the packed parameter block: each parameter at its offset",
           doc="in clusters of cluster_x * cluster_y * cluster_z blocks (the cluster-dimension launch "
           "attribute); CUDA_ERROR_INVALID_CLUSTER_SIZE past 8 blocks, for a cluster that does not divide "
           "the grid or differs from the kernel's compiled-in shape"),
        cs(0x007A, "module_upload_begin", "vgpuModuleUploadBegin", ModuleUploadBeginArgs, ModuleUploadResult,
           doc="an image larger than the arena, in chunks: at most device.module_bytes (all of a context's "
           "uploads together too), charged to the VM's host budget; CUDA_ERROR_INVALID_VALUE past the "
           "bound, CUDA_ERROR_OUT_OF_MEMORY past the budget or with 4 uploads under way"),
        cs(0x007B, "module_upload_chunk", "vgpuModuleUploadChunk", ModuleUploadChunkArgs, nr,
           in_payload="the image's next bytes, from offset (where the previous chunk ended)",
           doc="CUDA_ERROR_INVALID_VALUE for a chunk that does not start where the last ended or ends "
           "past the image"),
        cs(0x007C, "module_load_upload", "vgpuModuleLoadUpload", ModuleUploadArgs, ModuleLoadResult,
           doc="loads a complete upload as cuModuleLoadData would; the upload is let go whatever it "
           "answers (an incomplete one: CUDA_ERROR_INVALID_VALUE)"),
        cs(0x007D, "func_occupancy", "cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags", OccupancyArgs,
           I32Result, doc="blocks of the function resident per multiprocessor: the bound cooperative "
           "launches are checked against (sim: threads, blocks, shared memory and registers held; cuda: "
           "the driver's answer)"),
        # cuBLAS
        cs(0x0080, "cublas_create", "cublasCreate_v2", ns, CublasCreateResult,
           status_domain="cublasStatus_t"),
        cs(0x0081, "cublas_destroy", "cublasDestroy_v2", CublasArgs, nr, status_domain="cublasStatus_t"),
        cs(0x0082, "cublas_set_stream", "cublasSetStream_v2", CublasSetStreamArgs, nr,
           status_domain="cublasStatus_t"),
        cs(0x0083, "cublas_set_math_mode", "cublasSetMathMode", CublasSetMathModeArgs, nr,
           status_domain="cublasStatus_t"),
        cs(0x0084, "cublas_sgemm", "cublasSgemm_v2", SgemmArgs, nr, is_async=True,
           status_domain="cublasStatus_t"),
        cs(0x0085, "cublas_gemm_ex", "cublasGemmEx", GemmExArgs, nr, is_async=True,
           status_domain="cublasStatus_t"),
        cs(0x0086, "cublas_gemm_strided_batched_ex", "cublasGemmStridedBatchedEx",
           GemmStridedBatchedExArgs, nr, is_async=True, status_domain="cublasStatus_t"),
        cs(0x0087, "cublas_gemm_batched_ex", "cublasGemmBatchedEx", GemmBatchedExArgs, nr,
           is_async=True, status_domain="cublasStatus_t"),
        cs(0x0088, "cublas_strsm", "cublasStrsm_v2", StrsmArgs, nr, is_async=True,
           status_domain="cublasStatus_t"),
        cs(0x0089, "cublas_strsm_batched", "cublasStrsmBatched", StrsmBatchedArgs, nr, is_async=True,
           status_domain="cublasStatus_t"),
        cs(0x008A, "cublas_getrf_batched", "cublasSgetrfBatched", GetrfBatchedArgs, nr, is_async=True,
           status_domain="cublasStatus_t", doc="cublas<S,D,C,Z>getrfBatched by data_type"),
        # stream capture and graphs
        cs(0x0090, "stream_begin_capture", "cuStreamBeginCapture_v2", BeginCaptureArgs, nr),
        cs(0x0091, "stream_end_capture", "cuStreamEndCapture", StreamArgs, GraphResult),
        cs(0x0092, "stream_get_capture_info", "cuStreamGetCaptureInfo", StreamArgs, CaptureInfoResult),
        cs(0x0093, "graph_instantiate", "cuGraphInstantiateWithFlags", GraphInstantiateArgs,
           GraphExecResult),
        cs(0x0094, "graph_launch", "cuGraphLaunch", GraphLaunchArgs, nr, is_async=True),
        cs(0x0095, "graph_exec_destroy", "cuGraphExecDestroy", GraphExecArgs, nr),
        cs(0x0096, "graph_destroy", "cuGraphDestroy", GraphArgs, nr),
        cs(0x0097, "stream_add_guest_node", "cuLaunchHostFunc", GuestNodeArgs, CapturedResult,
           doc="On a capturing stream, a guest node (its tag kept for the guest) after the stream's "
           "work; on any other stream nothing (captured 0): the guest runs the node itself"),
        cs(0x0098, "graph_exec_guest_node", "vgpuGraphExecGetGuestNode", GraphExecNodeArgs, GuestNodeResult,
           doc="How many guest nodes the exec holds (child graphs expanded, in launch order) and the "
           "tag of one"),
        cs(0x0099, "graph_launch_phase", "vgpuGraphLaunchPhase", GraphLaunchPhaseArgs, nr, is_async=True,
           doc="The exec's nodes between guest nodes phase - 1 and phase; the guest launches an exec with "
           "guest nodes phase by phase and performs guest node i after phase i (cuGraphLaunch refuses it)"),
        cs(0x009A, "graph_node_count", "cuGraphGetNodes", GraphArgs, CountResult,
           doc="The nodes of a captured graph (a child graph is one node)"),
        cs(0x009B, "graph_clone", "cuGraphClone", GraphArgs, GraphResult,
           doc="A copy of a captured graph, guest nodes included"),
        cs(0x009C, "graph_exec_update", "cuGraphExecUpdate_v2", GraphExecUpdateArgs, GraphExecUpdateResult,
           doc="The exec takes a captured graph's parameters when the graph has its topology; otherwise "
           "result says why (the call itself succeeds) and the exec is unchanged"),
        cs(0x009D, "graph_mem_alloc", "cuGraphAddMemAllocNode", MemAllocArgs, DevPtrResult,
           doc="Device memory for a graph's memory alloc node (or a cuMemAllocAsync under capture), "
           "charged to the VM's quota as cuMemAlloc's; permitted while streams capture in any mode"),
        cs(0x009E, "graph_mem_free", "cuGraphDestroy", MemFreeArgs, nr,
           doc="Gives back graph_mem_alloc's memory (its graphs are gone); permitted while streams capture"),
        # NVML
        cs(0x00A0, "nvml_memory_info", "nvmlDeviceGetMemoryInfo", DeviceArgs, NvmlMemoryResult,
           doc="The VM's memory: its quota as the total, its allocations as used."),
        cs(0x00A1, "nvml_driver_version", "nvmlSystemGetDriverVersion", ns, nr,
           out_payload="the host driver's version string, NUL-terminated, truncated to out_cap"),
        cs(0x00A2, "nvml_compute_processes", "nvmlDeviceGetComputeRunningProcesses_v3", DeviceArgs,
           NvmlProcessesResult, out_payload="count entries of (u32 pid, u32 0, u64 bytes), as many as fit",
           doc="The VM's own processes that hold a context, with the device memory each uses."),
        # CUDA arrays, texture and surface objects (protocol/_textures.py)
        cs(0x00B0, "array_create", "cuArray3DCreate_v2", ArrayCreateArgs, ArrayResult,
           doc="dense device memory of the VM (charged to its quota, never named by address); "
           "CUDA_ERROR_INVALID_VALUE for a format, channel count, flag or size the device does not take, "
           "CUDA_ERROR_NOT_SUPPORTED for what sim does not serve (sparse, deferred mapping, video formats)"),
        cs(0x00B1, "array_destroy", "cuArrayDestroy", ArrayArgs, nr,
           doc="a texture or surface object still made of the array reads and writes fail with "
           "CUDA_ERROR_ILLEGAL_ADDRESS at use, as on a GPU"),
        cs(0x00B2, "memcpy_3d", "cuMemcpy3DAsync_v2", Memcpy3DArgs, nr, is_async=True,
           doc="between arrays and pitched device memory; CUDA_ERROR_INVALID_VALUE for a box outside "
           "either side or not a whole number of an array's elements"),
        cs(0x00B3, "memcpy_3d_htod", "cuMemcpy3DAsync_v2", Memcpy3DHostArgs, nr, is_async=True,
           in_payload="the box's bytes, packed (width_bytes x height x depth)",
           doc="host memory to an array or pitched device memory"),
        cs(0x00B4, "memcpy_3d_dtoh", "cuMemcpy3DAsync_v2", Memcpy3DHostArgs, nr, is_async=True,
           out_payload="the box's bytes, packed (width_bytes x height x depth); after an ASYNC submission "
           "valid once the stream has been synchronized",
           doc="an array or pitched device memory to host memory"),
        cs(0x00B5, "tex_object_create", "cuTexObjectCreate", TexObjectCreateArgs, TexObjectResult,
           doc="the handle is what kernels receive as cudaTextureObject_t; linear and pitch-2D resources "
           "are read through the guest's pointer when a kernel samples them (a bad one is "
           "CUDA_ERROR_ILLEGAL_ADDRESS then)"),
        cs(0x00B6, "tex_object_destroy", "cuTexObjectDestroy", TexObjectArgs, nr),
        cs(0x00B7, "surf_object_create", "cuSurfObjectCreate", SurfObjectCreateArgs, SurfObjectResult),
        cs(0x00B8, "surf_object_destroy", "cuSurfObjectDestroy", SurfObjectArgs, nr),
        # tensor maps (protocol/_tensor_maps.py)
        cs(0x00C0, "tensor_map_encode_tiled", "cuTensorMapEncodeTiled", TensorMapEncodeTiledArgs, nr,
           out_payload="the 128-byte CUtensorMap (out_cap at least 128)",
           doc="cuda: the driver's map for the VM's device pointer, whose whole extent must lie in the VM's "
           "memory; sim: the simulator's own encoding in those 128 bytes, which the PTX engine decodes "
           "and checks again at every TMA instruction (a guest may forge them). CUDA_ERROR_INVALID_VALUE "
           "for what CUDA refuses, CUDA_ERROR_NOT_SUPPORTED for interleaved layouts and types sim does "
           "not serve"),
        cs(0x00C1, "module_global_alias", "__cudaRegisterManagedVar", ModuleGlobalAliasArgs, nr,
           in_payload="the global's name, UTF-8, optionally NUL-terminated",
           doc="sim: the module's global is the managed range at address from now on (kernels and "
           "cuModuleGetGlobal name it there; it must be the VM's memory and the global's size); cuda: "
           "CUDA_ERROR_NOT_SUPPORTED (the driver keeps __managed__ variables in the worker's own memory)"),
        # pitched memsets and pinned box copies (protocol/_pitched.py)
        cs(0x00C8, "memset_2d", "cuMemsetD2D32Async", Memset2DArgs, nr, is_async=True,
           doc="cuMemsetD2D8/16/32 (element_bytes 1, 2, 4): rows pitch bytes apart, the gaps untouched; "
           "CUDA_ERROR_INVALID_VALUE for another element size, a row wider than the pitch, a misaligned "
           "destination or pitch, or a span that is not the VM's memory"),
        cs(0x00C9, "memcpy_3d_htod_pinned", "cuMemcpy3DAsync_v2", Memcpy3DPinnedArgs, nr, is_async=True,
           doc="from the caller's pinned memory to an array or pitched device memory: the host reads the "
           "range when the stream runs the copy (after an ASYNC submission the guest may not change it "
           "until the stream is synchronized); CUDA_ERROR_INVALID_VALUE for a box outside either side"),
        cs(0x00CA, "memcpy_3d_dtoh_pinned", "cuMemcpy3DAsync_v2", Memcpy3DPinnedArgs, nr, is_async=True,
           doc="from an array or pitched device memory into the caller's pinned memory: after an ASYNC "
           "submission the bytes are there once the stream has been synchronized"),
        cs(0x00CB, "tensor_map_encode_im2col", "cuTensorMapEncodeIm2col", TensorMapEncodeIm2colArgs, nr,
           out_payload="the 128-byte CUtensorMap (out_cap at least 128)",
           doc="as tensor_map_encode_tiled, for an im2col map (rank 3-5: the bounding box's corners, "
           "channels per pixel, pixels per column); sim's encoding is decoded and checked again at every "
           "im2col TMA instruction"),
    ]


def _build() -> tuple[dict[int, CallSpec], dict[str, CallSpec]]:
    by_id: dict[int, CallSpec] = {}
    by_name: dict[str, CallSpec] = {}
    from ._frames import MAX_INLINE_ARGS, MAX_INLINE_RESULTS

    for spec in _specs():
        if spec.call_id in by_id or spec.name in by_name:
            raise AssertionError(f"duplicate call {spec.call_id:#06x} {spec.name}")
        if layout_of(spec.args).size > MAX_INLINE_ARGS:
            raise AssertionError(f"{spec.name}: arguments do not fit inline")
        if layout_of(spec.result).size > MAX_INLINE_RESULTS:
            raise AssertionError(f"{spec.name}: results do not fit inline")
        by_id[spec.call_id] = spec
        by_name[spec.name] = spec
    return by_id, by_name


_BUILT = _build()
CALLS: Final[dict[int, CallSpec]] = _BUILT[0]
CALLS_BY_NAME: Final[dict[str, CallSpec]] = _BUILT[1]


def spec_for(call_id: int) -> CallSpec | None:
    return CALLS.get(call_id)
