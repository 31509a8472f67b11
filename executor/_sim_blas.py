"""cuBLAS GEMMs of the ``sim`` backend, on NumPy.

cuBLAS's conventions, exactly: matrices are column-major with a leading dimension (``lda >= rows``;
the elements between ``rows`` and ``lda`` of each column are neither read nor written), ``op(X)`` is
``X``, its transpose, or (``CUBLAS_OP_C``) its conjugate transpose (the transpose for real types),
and ``C = alpha * op(A) @ op(B) + beta * C`` with ``op(A)`` ``m x k`` and ``op(B)`` ``k x n``.

Every type combination ``cublasGemmEx`` and its batched forms offer (:data:`GEMM_TYPES`) is served.
The arithmetic follows the compute type: f32 for the ``CUBLAS_COMPUTE_32F`` family (f16, bf16 and
int8 inputs widened exactly, complex in complex64), f64 for ``CUBLAS_COMPUTE_64F`` (complex128),
two's-complement int32 for ``CUBLAS_COMPUTE_32I`` (int8 products summed exactly, then wrapped as
32-bit arithmetic would), and f32 rounded once to f16 for ``CUBLAS_COMPUTE_16F`` (NVIDIA's may round
partial sums to f16: results may differ from its in the last bits, and are not less accurate).
Results are rounded to C's type to nearest-even. When ``beta == 0`` C is not read (NaNs in it are
ignored); when ``alpha == 0`` or ``k == 0``, A and B are not read; when ``m == 0`` or ``n == 0``
nothing happens.

A matrix that is not inside the VM's memory fails the GEMM with ``CUBLAS_STATUS_EXECUTION_FAILED`` (on
a GPU the kernel would fault); a type combination cuBLAS does not offer answers
``CUBLAS_STATUS_NOT_SUPPORTED``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from protocol import CublasComputeType, CublasOperation, CublasStatus, CudaDataType, CUresult
from protocol.models import GemmBatchedExArgs, GemmExArgs, GemmStridedBatchedExArgs

from ._errors import CudaError
from ._sim_memory import DeviceMemory

__all__ = ["GEMM_TYPES", "ITEMSIZE", "MAX_SIM_GEMM_WORK", "GemmShape", "bf16_to_f32", "check_gemm_scalars",
           "check_gemm_types", "check_gemm_work",
           "check_pointer_arrays", "ex_gemm_shape", "f32_to_bf16", "gemm", "gemm_ranges",
           "read_pointer_arrays", "scale_type"]

F32 = npt.NDArray[np.float32]
Bytes = npt.NDArray[np.uint8]
Array = npt.NDArray[Any]

_T = CudaDataType
_C = CublasComputeType
ITEMSIZE: Final = {_T.CUDA_R_32F: 4, _T.CUDA_R_16F: 2, _T.CUDA_R_16BF: 2, _T.CUDA_R_64F: 8, _T.CUDA_R_8I: 1,
                   _T.CUDA_R_32I: 4, _T.CUDA_C_32F: 8, _T.CUDA_C_64F: 16, _T.CUDA_C_8I: 2}
_ALGOS = frozenset(range(-1, 24)) | frozenset(range(99, 116))  # CUBLAS_GEMM_DEFAULT … ALGO15_TENSOR_OP

_F32_ONLY: Final = frozenset({(_T.CUDA_R_32F, _T.CUDA_R_32F), (_T.CUDA_C_32F, _T.CUDA_C_32F)})
_F32_ALL: Final = frozenset({
    (_T.CUDA_R_16BF, _T.CUDA_R_16BF), (_T.CUDA_R_16F, _T.CUDA_R_16F), (_T.CUDA_R_8I, _T.CUDA_R_32F),
    (_T.CUDA_R_16BF, _T.CUDA_R_32F), (_T.CUDA_R_16F, _T.CUDA_R_32F), (_T.CUDA_R_32F, _T.CUDA_R_32F),
    (_T.CUDA_C_8I, _T.CUDA_C_32F), (_T.CUDA_C_32F, _T.CUDA_C_32F)})
_F64: Final = frozenset({(_T.CUDA_R_64F, _T.CUDA_R_64F), (_T.CUDA_C_64F, _T.CUDA_C_64F)})
#: cuBLAS's table for cublasGemmEx, cublasGemmBatchedEx and cublasGemmStridedBatchedEx: per compute
#: type, the (A and B type, C type) pairs it offers
GEMM_TYPES: Final[dict[CublasComputeType, frozenset[tuple[CudaDataType, CudaDataType]]]] = {
    _C.CUBLAS_COMPUTE_16F: frozenset({(_T.CUDA_R_16F, _T.CUDA_R_16F)}),
    _C.CUBLAS_COMPUTE_16F_PEDANTIC: frozenset({(_T.CUDA_R_16F, _T.CUDA_R_16F)}),
    _C.CUBLAS_COMPUTE_32I: frozenset({(_T.CUDA_R_8I, _T.CUDA_R_32I)}),
    _C.CUBLAS_COMPUTE_32I_PEDANTIC: frozenset({(_T.CUDA_R_8I, _T.CUDA_R_32I)}),
    _C.CUBLAS_COMPUTE_32F: _F32_ALL,
    _C.CUBLAS_COMPUTE_32F_PEDANTIC: _F32_ALL,
    _C.CUBLAS_COMPUTE_32F_FAST_16F: _F32_ONLY,
    _C.CUBLAS_COMPUTE_32F_FAST_16BF: _F32_ONLY,
    _C.CUBLAS_COMPUTE_32F_FAST_TF32: _F32_ONLY,
    _C.CUBLAS_COMPUTE_64F: _F64,
    _C.CUBLAS_COMPUTE_64F_PEDANTIC: _F64,
}
_COMPLEX: Final = frozenset({_T.CUDA_C_32F, _T.CUDA_C_64F, _T.CUDA_C_8I})


def scale_type(compute: CublasComputeType, c_type: CudaDataType) -> CudaDataType:
    """The type of alpha and beta (cuBLAS's ``scaleType``) for a compute type and C's type."""
    if compute in (_C.CUBLAS_COMPUTE_16F, _C.CUBLAS_COMPUTE_16F_PEDANTIC):
        return _T.CUDA_R_16F
    if compute in (_C.CUBLAS_COMPUTE_32I, _C.CUBLAS_COMPUTE_32I_PEDANTIC):
        return _T.CUDA_R_32I
    if compute in (_C.CUBLAS_COMPUTE_64F, _C.CUBLAS_COMPUTE_64F_PEDANTIC):
        return _T.CUDA_C_64F if c_type in _COMPLEX else _T.CUDA_R_64F
    return _T.CUDA_C_32F if c_type in _COMPLEX else _T.CUDA_R_32F


def bf16_to_f32(bits: npt.NDArray[np.uint16]) -> F32:
    """bfloat16 bit patterns to float32 (exact)."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


def f32_to_bf16(values: F32) -> npt.NDArray[np.uint16]:
    """float32 to bfloat16 bit patterns, rounding to nearest-even; NaNs stay (quiet) NaNs."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(values)
    if nan.any():
        rounded[nan] = ((bits[nan] >> 16) | 0x40).astype(np.uint16)
    return rounded


_STORED: Final = {_T.CUDA_R_32F: "<f4", _T.CUDA_R_16F: "<f2", _T.CUDA_R_64F: "<f8", _T.CUDA_R_8I: "i1",
                  _T.CUDA_R_32I: "<i4", _T.CUDA_C_32F: "<c8", _T.CUDA_C_64F: "<c16"}


def _decode(raw: Bytes, dtype: CudaDataType, compute: np.dtype[Any]) -> Array:
    """Stored elements as the compute dtype (every widening here is exact)."""
    if dtype == _T.CUDA_R_16BF:
        return bf16_to_f32(raw.view("<u2")).astype(compute)
    if dtype == _T.CUDA_C_8I:
        pairs = raw.view("i1").astype(np.float32)
        return (pairs[0::2] + 1j * pairs[1::2]).astype(compute)
    return raw.view(_STORED[dtype]).astype(compute)


def _encode(values: Array, dtype: CudaDataType) -> Bytes:
    """Computed values as C's type: rounded to nearest-even, or wrapped to 32 bits for integers."""
    if dtype == _T.CUDA_R_16BF:
        return np.ascontiguousarray(f32_to_bf16(values.astype(np.float32))).view(np.uint8)
    if dtype == _T.CUDA_R_32I:
        wrapped = values.astype(np.int64) & 0xFFFF_FFFF
        return np.ascontiguousarray(wrapped.astype(np.uint32).view("<i4")).view(np.uint8)
    return np.ascontiguousarray(values.astype(_STORED[dtype])).view(np.uint8)


def check_gemm_types(a_type: CudaDataType, b_type: CudaDataType, c_type: CudaDataType,
                     compute: CublasComputeType, algo: int) -> None:
    """cublasGemmEx's type table (:data:`GEMM_TYPES`): A and B alike, C as the compute type allows."""
    if a_type != b_type or (a_type, c_type) not in GEMM_TYPES[compute]:
        raise CudaError(CublasStatus.CUBLAS_STATUS_NOT_SUPPORTED,
                        f"cuBLAS offers no GEMM with A {a_type.name}, B {b_type.name}, C {c_type.name} "
                        f"and {compute.name}")
    if algo not in _ALGOS:
        raise CudaError(CublasStatus.CUBLAS_STATUS_INVALID_VALUE, f"unknown cublasGemmAlgo_t {algo}")


@dataclass(frozen=True, slots=True)
class GemmShape:
    transa: CublasOperation
    transb: CublasOperation
    m: int
    n: int
    k: int
    alpha: float
    beta: float
    a_type: CudaDataType
    lda: int
    b_type: CudaDataType
    ldb: int
    c_type: CudaDataType
    ldc: int
    compute: CublasComputeType = CublasComputeType.CUBLAS_COMPUTE_32F
    alpha_imag: float = 0.0  # complex scale types only
    beta_imag: float = 0.0

    @property
    def alpha_value(self) -> complex:
        return complex(self.alpha, self.alpha_imag)

    @property
    def beta_value(self) -> complex:
        return complex(self.beta, self.beta_imag)

    @property
    def a_dims(self) -> tuple[int, int]:
        """Rows and columns of A as stored."""
        return (self.m, self.k) if self.transa == CublasOperation.CUBLAS_OP_N else (self.k, self.m)

    @property
    def b_dims(self) -> tuple[int, int]:
        return (self.k, self.n) if self.transb == CublasOperation.CUBLAS_OP_N else (self.n, self.k)

    @property
    def reads_ab(self) -> bool:
        return self.m > 0 and self.n > 0 and self.k > 0 and self.alpha_value != 0

    @property
    def touches_c(self) -> bool:
        return self.m > 0 and self.n > 0


def ex_gemm_shape(args: GemmExArgs | GemmStridedBatchedExArgs | GemmBatchedExArgs) -> GemmShape:
    """An Ex GEMM's shape once its types, algorithm and scalars are known to be served."""
    check_gemm_types(args.a_type, args.b_type, args.c_type, args.compute_type, args.algo)
    shape = GemmShape(args.transa, args.transb, args.m, args.n, args.k, args.alpha, args.beta,
                      args.a_type, args.lda, args.b_type, args.ldb, args.c_type, args.ldc,
                      args.compute_type, args.alpha_imag, args.beta_imag)
    check_gemm_scalars(shape)
    return shape


#: the work one GEMM call may ask the simulator for, in float32 multiply-adds: ``m * n * k`` over its
#: batch, weighted by what a multiply-add costs NumPy in the GEMM's compute type next to float32
#: (:data:`WORK_WEIGHT`, measured on the 2-core development machine: float32 10, float64 5, complex128
#: 1.8 and int64 0.13 GMAC/s, which has no BLAS). 2**34 is about 2 s of float32 there; a GPU does such
#: a call in milliseconds, the simulator answers CUBLAS_STATUS_NOT_SUPPORTED (logged) past it
MAX_SIM_GEMM_WORK = 1 << 34
WORK_WEIGHT: dict[str, int] = {"float32": 1, "float64": 2, "complex64": 4, "complex128": 8, "int64": 64}


def check_gemm_work(shape: GemmShape, count: int, what: str) -> None:
    """Refuse a call of ``count`` GEMMs of ``shape`` past :data:`MAX_SIM_GEMM_WORK`."""
    compute = _compute_dtype(shape)
    work = shape.m * shape.n * (shape.k if shape.reads_ab else 1) * count * WORK_WEIGHT[compute.name]
    if work > MAX_SIM_GEMM_WORK:
        raise CudaError(CublasStatus.CUBLAS_STATUS_NOT_SUPPORTED,
                        f"{what}: {count} GEMM(s) of {shape.m}x{shape.n}x{shape.k} in {compute} are {work} "
                        f"float32-equivalent multiply-adds; the sim backend does at most {MAX_SIM_GEMM_WORK} "
                        "per call")


def _span(rows: int, cols: int, ld: int, itemsize: int) -> int:
    """Bytes from a column-major matrix's first element to the end of its last."""
    return 0 if rows == 0 or cols == 0 else ((cols - 1) * ld + rows) * itemsize


def gemm_ranges(shape: GemmShape, a: int, b: int, c: int) -> list[tuple[int, int, bool, str]]:
    """The device ranges one GEMM touches: (ptr, bytes, written, name)."""
    ranges: list[tuple[int, int, bool, str]] = []
    if shape.reads_ab:
        ranges.append((a, _span(*shape.a_dims, shape.lda, ITEMSIZE[shape.a_type]), False, "matrix A"))
        ranges.append((b, _span(*shape.b_dims, shape.ldb, ITEMSIZE[shape.b_type]), False, "matrix B"))
    if shape.touches_c:
        ranges.append((c, _span(shape.m, shape.n, shape.ldc, ITEMSIZE[shape.c_type]), True, "matrix C"))
    return ranges


def _columns(raw: Bytes, rows: int, cols: int, ld: int, itemsize: int) -> Bytes:
    """A ``(cols, rows * itemsize)`` byte view of a column-major matrix: row j holds column j."""
    return np.lib.stride_tricks.as_strided(raw, shape=(cols, rows * itemsize), strides=(ld * itemsize, 1))


def _compute_dtype(shape: GemmShape) -> np.dtype[Any]:
    scale = scale_type(shape.compute, shape.c_type)
    return np.dtype({_T.CUDA_R_16F: np.float32, _T.CUDA_R_32F: np.float32, _T.CUDA_C_32F: np.complex64,
                     _T.CUDA_R_64F: np.float64, _T.CUDA_C_64F: np.complex128, _T.CUDA_R_32I: np.int64}[scale])


def _scalar(value: complex, dtype: np.dtype[Any]) -> Any:
    """alpha or beta in the compute dtype; a value its scale type cannot hold is INVALID_VALUE."""
    if dtype.kind == "c":
        return dtype.type(value)
    if value.imag != 0:
        raise CudaError(CublasStatus.CUBLAS_STATUS_INVALID_VALUE,
                        f"scalar {value}: an imaginary part for a real scale type")
    if dtype.kind == "i" and not (value.real.is_integer() and -(1 << 31) <= value.real < (1 << 31)):
        raise CudaError(CublasStatus.CUBLAS_STATUS_INVALID_VALUE, f"scalar {value.real} is not an int32")
    return dtype.type(int(value.real) if dtype.kind == "i" else value.real)


def check_gemm_scalars(shape: GemmShape) -> None:
    """alpha and beta representable in the GEMM's scale type, or INVALID_VALUE (at submission)."""
    compute = _compute_dtype(shape)
    _scalar(shape.alpha_value, compute)
    _scalar(shape.beta_value, compute)


def _load(memory: DeviceMemory, ptr: int, rows: int, cols: int, ld: int, dtype: CudaDataType,
          compute: np.dtype[Any], what: str) -> Array:
    """The stored ``rows x cols`` matrix in the compute dtype (row-major NumPy array)."""
    itemsize = ITEMSIZE[dtype]
    raw = memory.read(ptr, _span(rows, cols, ld, itemsize), what)
    packed = np.ascontiguousarray(_columns(raw, rows, cols, ld, itemsize))  # (cols, rows*itemsize)
    return _decode(packed.reshape(-1), dtype, compute).reshape(cols, rows).T


def _op(matrix: Array, op: CublasOperation) -> Array:
    if op == CublasOperation.CUBLAS_OP_N:
        return matrix
    return matrix.conj().T if op == CublasOperation.CUBLAS_OP_C else matrix.T


def _wrap32(values: Array) -> Array:
    """int64 values as 32-bit two's-complement arithmetic leaves them."""
    return ((values + (1 << 31)) & 0xFFFF_FFFF) - (1 << 31)


def gemm(memory: DeviceMemory, shape: GemmShape, a: int, b: int, c: int) -> None:
    """One GEMM, reading and writing device memory; bounds errors become EXECUTION_FAILED."""
    try:
        _gemm(memory, shape, a, b, c)
    except CudaError as exc:
        if isinstance(exc.status, CUresult):
            raise CudaError(CublasStatus.CUBLAS_STATUS_EXECUTION_FAILED,
                            f"GEMM kernel fault: {exc.message}") from exc
        raise


def _gemm(memory: DeviceMemory, shape: GemmShape, a: int, b: int, c: int) -> None:
    m, n = shape.m, shape.n
    if not shape.touches_c:
        return
    compute = _compute_dtype(shape)
    integer = compute.kind == "i"
    alpha, beta = _scalar(shape.alpha_value, compute), _scalar(shape.beta_value, compute)
    if shape.reads_ab:
        stored_a = _load(memory, a, *shape.a_dims, shape.lda, shape.a_type, compute, "matrix A")
        stored_b = _load(memory, b, *shape.b_dims, shape.ldb, shape.b_type, compute, "matrix B")
        mat_a, mat_b = _op(stored_a, shape.transa), _op(stored_b, shape.transb)
        product = np.matmul(mat_a, mat_b, dtype=compute)
        result: Array = _wrap32(_wrap32(product) * alpha) if integer else product * alpha
    else:
        result = np.zeros((m, n), dtype=compute)
    itemsize = ITEMSIZE[shape.c_type]
    raw = memory.read(c, _span(m, n, shape.ldc, itemsize), "matrix C")
    if shape.beta_value != 0:
        old = _decode(np.ascontiguousarray(_columns(raw, m, n, shape.ldc, itemsize)).reshape(-1),
                      shape.c_type, compute).reshape(n, m).T
        result = _wrap32(result + _wrap32(old * beta)) if integer else result + beta * old
    columns = _columns(raw, m, n, shape.ldc, itemsize)
    columns[...] = _encode(np.ascontiguousarray(result.T), shape.c_type).reshape(n, m * itemsize)
    memory.write(c, raw, "matrix C")


def check_pointer_arrays(memory: DeviceMemory, arrays: Sequence[tuple[int, str]], count: int,
                         what: str) -> None:
    """A batched call's device arrays of ``count`` matrix pointers, ``(address, name)``, inside the VM's
    memory, or EXECUTION_FAILED (on a GPU the kernel would fault)."""
    try:
        for ptr, name in arrays:
            memory.check(ptr, 8 * count, write=False, what=f"pointer array {name}")
    except CudaError as exc:
        raise CudaError(CublasStatus.CUBLAS_STATUS_EXECUTION_FAILED, f"{what}: {exc.message}") from exc


def read_pointer_arrays(memory: DeviceMemory, arrays: Sequence[tuple[int, str]], count: int,
                        what: str) -> list[list[int]]:
    """The pointers of each array, read when the batch runs (a kernel may have written them just before)."""
    try:
        raws = [memory.read(ptr, 8 * count, f"pointer array {name}") for ptr, name in arrays]
    except CudaError as exc:
        raise CudaError(CublasStatus.CUBLAS_STATUS_EXECUTION_FAILED, f"{what}: {exc.message}") from exc
    return [[int(p) for p in raw.view("<u8")] for raw in raws]
