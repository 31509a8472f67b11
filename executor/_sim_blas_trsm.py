"""cuBLAS's single-precision triangular solve (``cublasStrsm``) for the ``sim`` backend, on NumPy.

``op(A) X = alpha B`` (``CUBLAS_SIDE_LEFT``, A ``m x m``) or ``X op(A) = alpha B`` (``RIGHT``, A
``n x n``), X overwriting B (``m x n``, column-major with ``ldb``). Only A's ``uplo`` triangle is
read; with ``CUBLAS_DIAG_UNIT`` its diagonal is taken as ones and not read either. ``op`` is the
transpose for ``T`` and ``C`` (real matrices). When ``alpha == 0`` A is not read and B becomes zeros;
when ``m == 0`` or ``n == 0`` nothing is touched.

The solve is substitution, one row of X at a time in dependency order, in float64 from the f32
inputs and rounded once to f32 (cuBLAS substitutes in f32: results may differ from its in the last
bits, and are not less accurate). A zero on a non-unit diagonal divides by zero as the GPU would
(infinities and NaNs, no error). Matrices outside the VM's memory fail with
``CUBLAS_STATUS_EXECUTION_FAILED`` and nothing written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from protocol import CublasDiagType, CublasFillMode, CublasOperation, CublasSideMode, CublasStatus, CUresult
from protocol.models import GetrfBatchedArgs, NoResult, StrsmArgs, StrsmBatchedArgs

from ._base import CallIO, HandleTable
from ._errors import CudaError
from ._sim_blas import check_pointer_arrays, read_pointer_arrays
from ._sim_blas_getrf import getrf_batched
from ._sim_memory import DeviceMemory

__all__ = ["MAX_SIM_SOLVE_WORK", "SimTrsmCalls", "TrsmShape", "trsm", "trsm_ranges", "trsm_shape"]

#: the multiply-adds one call may ask the simulator for (a solve's ``order * m * n`` over its batch, a
#: factorization's ``n**3`` over its batch): each step is a NumPy call of its own, and a call
#: of many times this would hold the worker for minutes (a GPU does it in milliseconds); past it the
#: simulator answers CUBLAS_STATUS_NOT_SUPPORTED
MAX_SIM_SOLVE_WORK = 1 << 32

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class TrsmShape:
    side: CublasSideMode
    uplo: CublasFillMode
    trans: CublasOperation
    diag: CublasDiagType
    m: int
    n: int
    alpha: float
    lda: int
    ldb: int

    @property
    def order(self) -> int:
        """A is ``order x order``."""
        return self.m if self.side == CublasSideMode.CUBLAS_SIDE_LEFT else self.n

    @property
    def touches_b(self) -> bool:
        return self.m > 0 and self.n > 0

    @property
    def reads_a(self) -> bool:
        return self.touches_b and self.alpha != 0.0


def _span(rows: int, cols: int, ld: int) -> int:
    """Bytes from a column-major f32 matrix's first element to the end of its last."""
    return 0 if rows == 0 or cols == 0 else ((cols - 1) * ld + rows) * 4


def trsm_ranges(shape: TrsmShape, a: int, b: int) -> list[tuple[int, int, bool, str]]:
    """The device ranges one solve touches: (ptr, bytes, written, name). A's triangle spans its whole
    column-major extent (its first and last elements are both on the diagonal)."""
    ranges: list[tuple[int, int, bool, str]] = []
    if shape.reads_a:
        ranges.append((a, _span(shape.order, shape.order, shape.lda), False, "matrix A"))
    if shape.touches_b:
        ranges.append((b, _span(shape.m, shape.n, shape.ldb), True, "matrix B"))
    return ranges


def _columns(raw: npt.NDArray[np.uint8], rows: int, cols: int, ld: int) -> npt.NDArray[np.uint8]:
    """A ``(cols, rows * 4)`` byte view of a column-major f32 matrix: row j holds column j."""
    return np.lib.stride_tricks.as_strided(raw, shape=(cols, rows * 4), strides=(ld * 4, 1))


def _triangle(memory: DeviceMemory, shape: TrsmShape, a: int) -> F64:
    """``op(A)`` as a dense float64 matrix: the unread triangle zero, a unit diagonal set to one."""
    k = shape.order
    raw = memory.read(a, _span(k, k, shape.lda), "matrix A")
    stored = np.ascontiguousarray(_columns(raw, k, k, shape.lda)).reshape(-1).view("<f4")
    full: F64 = stored.astype(np.float64).reshape(k, k).T  # row-major A
    lower = shape.uplo == CublasFillMode.CUBLAS_FILL_MODE_LOWER
    tri: F64 = np.tril(full) if lower else np.triu(full)
    if shape.diag == CublasDiagType.CUBLAS_DIAG_UNIT:
        np.fill_diagonal(tri, 1.0)
    return tri if shape.trans == CublasOperation.CUBLAS_OP_N else np.ascontiguousarray(tri.T)


def _substitute(tri: F64, lower: bool, rhs: F64) -> F64:
    """X with ``tri @ X == rhs`` for a triangular ``tri`` (lower: forward, upper: backward)."""
    k = tri.shape[0]
    x = np.zeros_like(rhs)
    rows: Any = range(k) if lower else range(k - 1, -1, -1)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for i in rows:
            known = tri[i, :i] @ x[:i] if lower else tri[i, i + 1:] @ x[i + 1:]
            x[i] = (rhs[i] - known) / tri[i, i]
    return x


def trsm(memory: DeviceMemory, shape: TrsmShape, a: int, b: int) -> None:
    """One solve in device memory; bounds errors become EXECUTION_FAILED."""
    try:
        _trsm(memory, shape, a, b)
    except CudaError as exc:
        if isinstance(exc.status, CUresult):
            raise CudaError(CublasStatus.CUBLAS_STATUS_EXECUTION_FAILED,
                            f"TRSM kernel fault: {exc.message}") from exc
        raise


def _trsm(memory: DeviceMemory, shape: TrsmShape, a: int, b: int) -> None:
    m, n = shape.m, shape.n
    if not shape.touches_b:
        return
    raw = memory.read(b, _span(m, n, shape.ldb), "matrix B")
    columns = _columns(raw, m, n, shape.ldb)
    if shape.reads_a:
        tri = _triangle(memory, shape, a)
        # op(A) is lower triangular when A is lower and not transposed, or upper and transposed
        lower = (shape.uplo == CublasFillMode.CUBLAS_FILL_MODE_LOWER) == (
            shape.trans == CublasOperation.CUBLAS_OP_N)
        stored = np.ascontiguousarray(columns).reshape(-1).view("<f4")
        rhs: F64 = stored.astype(np.float64).reshape(n, m).T * shape.alpha  # row-major B, scaled
        with np.errstate(over="ignore", invalid="ignore"):
            if shape.side == CublasSideMode.CUBLAS_SIDE_LEFT:
                x = _substitute(tri, lower, rhs)
            else:  # X op(A) = rhs  <=>  op(A)^T X^T = rhs^T
                x = _substitute(np.ascontiguousarray(tri.T), not lower, np.ascontiguousarray(rhs.T)).T
            result = x.astype(np.float32)
    else:
        result = np.zeros((m, n), dtype=np.float32)
    columns[...] = np.ascontiguousarray(result.T, dtype="<f4").view(np.uint8).reshape(n, m * 4)
    memory.write(b, raw, "matrix B")


class SimTrsmCalls:
    """``cublas_strsm``, ``cublas_strsm_batched`` and the batched LU factorization
    (``cublas_getrf_batched``, ``_sim_blas_getrf``) over the simulator's state, mixed into
    :class:`SimExecutor`: they run on the handle's stream (recorded when it captures)."""

    memory: DeviceMemory
    _blas: HandleTable[Any]
    _enqueue_blas: Callable[[int, Callable[[], None], str], NoResult]
    max_batch: int

    def _check_trsms(self, shape: TrsmShape, systems: list[tuple[int, int]], what: str) -> None:
        """Every matrix of every system inside the VM's memory, or EXECUTION_FAILED (nothing written)."""
        try:
            for a, b in systems:
                for ptr, size, written, name in trsm_ranges(shape, a, b):
                    self.memory.check(ptr, size, write=written, what=name)
        except CudaError as exc:
            raise CudaError(CublasStatus.CUBLAS_STATUS_EXECUTION_FAILED,
                            f"{what}: {exc.message} (the kernel would fault)") from exc

    def _trsms(self, handle_id: int, shape: TrsmShape, systems: Callable[[], list[tuple[int, int]]],
               what: str) -> NoResult:
        memory = self.memory

        def run() -> None:
            todo = systems()
            self._check_trsms(shape, todo, what)
            for a, b in todo:
                trsm(memory, shape, a, b)

        return self._enqueue_blas(handle_id, run, what)

    def _bound(self, work: int, what: str) -> None:
        if work > MAX_SIM_SOLVE_WORK:
            raise CudaError(CublasStatus.CUBLAS_STATUS_NOT_SUPPORTED,
                            f"{what}: {work} multiply-adds; the sim backend does at most "
                            f"{MAX_SIM_SOLVE_WORK} per call")

    def cublas_strsm(self, args: StrsmArgs, io: CallIO) -> NoResult:
        shape = trsm_shape(args)
        self._bound(shape.order * shape.m * shape.n, "cublasStrsm")
        self._blas.get(args.handle)
        systems = [(args.a, args.b)]
        self._check_trsms(shape, systems, "cublasStrsm")  # at submission too, so a capture reports it
        return self._trsms(args.handle, shape, lambda: systems, "cublasStrsm")

    def cublas_strsm_batched(self, args: StrsmBatchedArgs, io: CallIO) -> NoResult:
        """The pointer arrays are device memory, read when the solves run (as for GemmBatchedEx)."""
        shape = trsm_shape(args)
        what = "cublasStrsmBatched"
        count, memory = args.batch_count, self.memory
        self._bound(count * shape.order * shape.m * shape.n, what)
        if count > self.max_batch:
            raise CudaError(CublasStatus.CUBLAS_STATUS_NOT_SUPPORTED,
                            f"{what}: batch_count {count}; the sim backend simulates at most "
                            f"{self.max_batch} solves per call")
        arrays = ((args.a, "Aarray"), (args.b, "Barray"))
        check_pointer_arrays(memory, arrays, count, what)

        def systems() -> list[tuple[int, int]]:
            a, b = read_pointer_arrays(memory, arrays, count, what)
            return list(zip(a, b, strict=True))

        return self._trsms(args.handle, shape, systems, what)


    def cublas_getrf_batched(self, args: GetrfBatchedArgs, io: CallIO) -> NoResult:
        """The pointer array is device memory, read when the factorization runs."""
        what = "cublas getrfBatched"
        self._blas.get(args.handle)
        count, memory = args.batch_count, self.memory
        self._bound(count * args.n ** 3, what)
        if count > self.max_batch:
            raise CudaError(CublasStatus.CUBLAS_STATUS_NOT_SUPPORTED,
                            f"{what}: batch_count {count}; the sim backend factors at most {self.max_batch} "
                            "matrices per call")
        arrays = ((args.a, "Aarray"),)
        check_pointer_arrays(memory, arrays, count, what)

        def run() -> None:
            [pointers] = read_pointer_arrays(memory, arrays, count, what)
            getrf_batched(memory, args.n, args.lda, args.data_type, pointers, args.pivots, args.info)

        return self._enqueue_blas(args.handle, run, what)


def trsm_shape(args: StrsmArgs | StrsmBatchedArgs) -> TrsmShape:
    return TrsmShape(args.side, args.uplo, args.trans, args.diag, args.m, args.n, args.alpha, args.lda,
                     args.ldb)
