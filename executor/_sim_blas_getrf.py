"""cuBLAS's batched LU factorization (``cublas<S,D,C,Z>getrfBatched``) for the ``sim`` backend, on NumPy.

LAPACK's ``getf2``, on every matrix of the batch at once: for each column ``k`` the pivot is the first
row at or below ``k`` with the largest ``|re| + |im|`` (``i?amax``), that row is swapped with row ``k``
across the whole matrix, the column below the diagonal is divided by the pivot and the trailing
matrix updated; the result is ``L`` (unit diagonal, not stored) and ``U`` in place, ``P A = L U``. The
arithmetic is in the matrices' own precision (f32, f64, complex64, complex128), as cuBLAS computes. A
zero pivot is not divided by: ``info`` is the first such column (1-based), and the factorization
goes on, as LAPACK's does. Without a pivot array no rows are swapped. Pivots are 1-based row numbers
(``n`` per matrix), ``info`` one int per matrix. Matrices outside the VM's memory fail with
``CUBLAS_STATUS_EXECUTION_FAILED`` and nothing written.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import numpy.typing as npt

from protocol import CublasStatus, CudaDataType, CUresult

from ._errors import CudaError
from ._sim_memory import DeviceMemory

__all__ = ["GETRF_DTYPES", "getrf_batched", "getrf_ranges"]

#: the matrices' element type per form
GETRF_DTYPES: Final[dict[CudaDataType, np.dtype[Any]]] = {
    CudaDataType.CUDA_R_32F: np.dtype("<f4"), CudaDataType.CUDA_R_64F: np.dtype("<f8"),
    CudaDataType.CUDA_C_32F: np.dtype("<c8"), CudaDataType.CUDA_C_64F: np.dtype("<c16")}


def _span(n: int, lda: int, itemsize: int) -> int:
    return 0 if n == 0 else ((n - 1) * lda + n) * itemsize


def _columns(raw: npt.NDArray[np.uint8], n: int, lda: int, itemsize: int) -> npt.NDArray[np.uint8]:
    """A ``(n, n * itemsize)`` byte view of a column-major matrix: row j holds column j."""
    return np.lib.stride_tricks.as_strided(raw, shape=(n, n * itemsize), strides=(lda * itemsize, 1))


def getrf_ranges(n: int, lda: int, dtype: CudaDataType, matrices: list[int], pivots: int,
                 info: int) -> list[tuple[int, int, bool, str]]:
    """The device ranges a factorization touches: (ptr, bytes, written, name)."""
    span = _span(n, lda, GETRF_DTYPES[dtype].itemsize)
    ranges = [(ptr, span, True, f"matrix {i}") for i, ptr in enumerate(matrices) if span]
    if pivots and matrices and n:
        ranges.append((pivots, 4 * n * len(matrices), True, "pivot array"))
    if matrices:
        ranges.append((info, 4 * len(matrices), True, "info array"))
    return ranges


def getrf_batched(memory: DeviceMemory, n: int, lda: int, dtype: CudaDataType, matrices: list[int],
                  pivots: int, info: int) -> None:
    """Factor every matrix in place; bounds errors become EXECUTION_FAILED (nothing written)."""
    try:
        for ptr, size, written, name in getrf_ranges(n, lda, dtype, matrices, pivots, info):
            memory.check(ptr, size, write=written, what=name)
        _getrf(memory, n, lda, GETRF_DTYPES[dtype], matrices, pivots, info)
    except CudaError as exc:
        if isinstance(exc.status, CUresult):
            raise CudaError(CublasStatus.CUBLAS_STATUS_EXECUTION_FAILED,
                            f"getrfBatched kernel fault: {exc.message}") from exc
        raise


def _getrf(memory: DeviceMemory, n: int, lda: int, dtype: np.dtype[Any], matrices: list[int], pivots: int,
           info: int) -> None:
    batch = len(matrices)
    if batch == 0:
        return
    status = np.zeros(batch, dtype="<i4")
    if n == 0:
        memory.write(info, status.view(np.uint8), "info array")
        return
    span = _span(n, lda, dtype.itemsize)
    raws = [memory.read(ptr, span, f"matrix {i}") for i, ptr in enumerate(matrices)]
    # (batch, n, n) row-major: a[b, i, j] is row i, column j (column-major storage with lda)
    a: npt.NDArray[Any] = np.empty((batch, n, n), dtype=dtype)
    for b, raw in enumerate(raws):
        cols = _columns(raw, n, lda, dtype.itemsize)
        a[b] = np.ascontiguousarray(cols).reshape(-1).view(dtype).reshape(n, n).T
    ipiv = np.tile(np.arange(1, n + 1, dtype="<i4"), (batch, 1))
    rows = np.arange(batch)
    with np.errstate(all="ignore"):
        for k in range(n):
            if pivots:
                column = a[:, k:, k]
                p = k + np.argmax(np.abs(column.real) + np.abs(column.imag), axis=1)  # first of the largest
                ipiv[:, k] = p + 1
                swap = p != k
                if swap.any():
                    which = rows[swap]
                    upper, lower = a[which, k, :].copy(), a[which, p[swap], :].copy()
                    a[which, k, :], a[which, p[swap], :] = lower, upper
            pivot = a[:, k, k]
            zero = pivot == 0
            status[zero & (status == 0)] = k + 1
            ok = ~zero
            if k + 1 < n and ok.any():
                live = rows[ok]
                a[live, k + 1:, k] /= pivot[ok][:, None]
                a[live, k + 1:, k + 1:] -= a[live, k + 1:, k][:, :, None] * a[live, k, k + 1:][:, None, :]
    for b, raw in enumerate(raws):
        cols = _columns(raw, n, lda, dtype.itemsize)
        cols[...] = np.ascontiguousarray(a[b].T).view(np.uint8).reshape(n, n * dtype.itemsize)
        memory.write(matrices[b], raw, f"matrix {b}")
    if pivots:
        memory.write(pivots, np.ascontiguousarray(ipiv).view(np.uint8).reshape(-1), "pivot array")
    memory.write(info, status.view(np.uint8), "info array")
