"""cuBLAS GEMMs of the ``sim`` backend, on NumPy.

cuBLAS's conventions, exactly: matrices are column-major with a leading dimension (``lda >= rows``;
the elements between ``rows`` and ``lda`` of each column are neither read nor written), ``op(X)`` is
``X`` or its transpose (``CUBLAS_OP_C`` is ``CUBLAS_OP_T`` for real types), and
``C = alpha * op(A) @ op(B) + beta * C`` with ``op(A)`` ``m x k`` and ``op(B)`` ``k x n``. Arithmetic
is f32 (every compute type here accumulates in f32). f16 and bf16 inputs are widened exactly;
results are rounded to C's type to nearest-even. When ``beta == 0`` C is not read (NaNs in it are
ignored); when ``alpha == 0`` or ``k == 0``, A and B are not read; when ``m == 0`` or ``n == 0``
nothing happens.

A matrix that is not inside the VM's memory fails the GEMM with ``CUBLAS_STATUS_EXECUTION_FAILED`` (on
a GPU the kernel would fault); a type combination cuBLAS does not offer with f32 compute answers
``CUBLAS_STATUS_NOT_SUPPORTED``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from protocol import CublasComputeType, CublasOperation, CublasStatus, CudaDataType, CUresult

from ._errors import CudaError
from ._sim_memory import DeviceMemory

__all__ = ["ITEMSIZE", "GemmShape", "bf16_to_f32", "check_gemm_types", "f32_to_bf16", "gemm", "gemm_ranges"]

F32 = npt.NDArray[np.float32]
Bytes = npt.NDArray[np.uint8]

ITEMSIZE = {CudaDataType.CUDA_R_32F: 4, CudaDataType.CUDA_R_16F: 2, CudaDataType.CUDA_R_16BF: 2}
_ALGOS = frozenset(range(-1, 24)) | frozenset(range(99, 116))  # CUBLAS_GEMM_DEFAULT … ALGO15_TENSOR_OP


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


def _decode(raw: Bytes, dtype: CudaDataType) -> F32:
    if dtype == CudaDataType.CUDA_R_32F:
        return raw.view("<f4").astype(np.float32)
    if dtype == CudaDataType.CUDA_R_16F:
        return raw.view("<f2").astype(np.float32)
    return bf16_to_f32(raw.view("<u2"))


def _encode(values: F32, dtype: CudaDataType) -> Bytes:
    if dtype == CudaDataType.CUDA_R_32F:
        return np.ascontiguousarray(values, dtype="<f4").view(np.uint8)
    if dtype == CudaDataType.CUDA_R_16F:
        return np.ascontiguousarray(values.astype("<f2")).view(np.uint8)
    return np.ascontiguousarray(f32_to_bf16(values)).view(np.uint8)


def check_gemm_types(a_type: CudaDataType, b_type: CudaDataType, c_type: CudaDataType,
                     compute: CublasComputeType, algo: int) -> None:
    """cublasGemmEx's type table for f32 compute: A and B alike, C of their type or f32."""
    del compute  # every accepted compute type accumulates in f32
    if a_type != b_type or c_type not in (a_type, CudaDataType.CUDA_R_32F):
        raise CudaError(CublasStatus.CUBLAS_STATUS_NOT_SUPPORTED,
                        f"cuBLAS offers no GEMM with A {a_type.name}, B {b_type.name}, C {c_type.name} "
                        "and f32 compute")
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

    @property
    def a_dims(self) -> tuple[int, int]:
        """Rows and columns of A as stored."""
        return (self.m, self.k) if self.transa == CublasOperation.CUBLAS_OP_N else (self.k, self.m)

    @property
    def b_dims(self) -> tuple[int, int]:
        return (self.k, self.n) if self.transb == CublasOperation.CUBLAS_OP_N else (self.n, self.k)

    @property
    def reads_ab(self) -> bool:
        return self.m > 0 and self.n > 0 and self.k > 0 and self.alpha != 0.0

    @property
    def touches_c(self) -> bool:
        return self.m > 0 and self.n > 0


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


def _load(memory: DeviceMemory, ptr: int, rows: int, cols: int, ld: int, dtype: CudaDataType,
          what: str) -> F32:
    """The stored ``rows x cols`` matrix as f32 (row-major NumPy array)."""
    itemsize = ITEMSIZE[dtype]
    raw = memory.read(ptr, _span(rows, cols, ld, itemsize), what)
    packed = np.ascontiguousarray(_columns(raw, rows, cols, ld, itemsize))  # (cols, rows*itemsize)
    return _decode(packed.reshape(-1), dtype).reshape(cols, rows).T


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
    if shape.reads_ab:
        mat_a = _load(memory, a, *shape.a_dims, shape.lda, shape.a_type, "matrix A")
        mat_b = _load(memory, b, *shape.b_dims, shape.ldb, shape.b_type, "matrix B")
        if shape.transa != CublasOperation.CUBLAS_OP_N:
            mat_a = mat_a.T
        if shape.transb != CublasOperation.CUBLAS_OP_N:
            mat_b = mat_b.T
        result: F32 = np.matmul(mat_a, mat_b, dtype=np.float32) * np.float32(shape.alpha)
    else:
        result = np.zeros((m, n), dtype=np.float32)
    itemsize = ITEMSIZE[shape.c_type]
    raw = memory.read(c, _span(m, n, shape.ldc, itemsize), "matrix C")
    if shape.beta != 0.0:
        old = _decode(np.ascontiguousarray(_columns(raw, m, n, shape.ldc, itemsize)).reshape(-1),
                      shape.c_type).reshape(n, m).T
        result = result + np.float32(shape.beta) * old
    columns = _columns(raw, m, n, shape.ldc, itemsize)
    columns[...] = _encode(np.ascontiguousarray(result.T), shape.c_type).reshape(n, m * itemsize)
    memory.write(c, raw, "matrix C")
