"""cuBLAS calls of the ``cuda`` backend, through ``nvmath.bindings.cublas``.

Theory of operation
-------------------
A cuBLAS handle is a per-VM id for nvmath's handle, with the stream the guest set on it and its math
mode. Before a GEMM reaches cuBLAS every matrix it reads or writes is checked against the VM's memory
(the same ranges ``sim`` computes, ``gemm_ranges``); a matrix outside it is
``CUBLAS_STATUS_EXECUTION_FAILED`` (the kernel would fault), never a launch. ``cublasGemmBatchedEx``
takes its matrices from pointer arrays in device memory: outside a capture they are read back after
the handle's stream has drained and every matrix they name is checked; during a capture they are not
final yet, so only the arrays themselves are checked and the per-process address space bounds the
kernel (see ``_cuda_memory``). Every type combination cuBLAS offers is passed on (checked first by
``check_gemm_types``); the scalars are passed by host pointer in the GEMM's scale type (f16, f32,
f64, int32 or complex, ``scale_type``). A GEMM submitted without ``ASYNC`` waits for the
handle's stream; a failure there is the GEMM's ``CUBLAS_STATUS_EXECUTION_FAILED``. The triangular
solves (``cublasStrsm``, ``cublasStrsmBatched``) and the batched LU factorizations
(``cublas<S,D,C,Z>getrfBatched``) are checked and run the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import numpy as np

from protocol import CublasStatus, CudaDataType
from protocol.models import (
    CublasArgs,
    CublasCreateResult,
    CublasSetMathModeArgs,
    CublasSetStreamArgs,
    GemmBatchedExArgs,
    GemmExArgs,
    GemmStridedBatchedExArgs,
    GetrfBatchedArgs,
    NoArgs,
    NoResult,
    SgemmArgs,
    StrsmArgs,
    StrsmBatchedArgs,
)

from ._base import CallIO
from ._cuda_base import BlasHandle, CudaBase
from ._errors import CudaError
from ._sim_blas import ITEMSIZE, GemmShape, ex_gemm_shape, gemm_ranges, scale_type
from ._sim_blas_getrf import getrf_ranges
from ._sim_blas_trsm import TrsmShape, trsm_ranges, trsm_shape

__all__ = ["BlasCalls"]

_CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION: Final = 0x10
_SCALE_DTYPES: Final = {CudaDataType.CUDA_R_16F: np.float16, CudaDataType.CUDA_R_32F: np.float32,
                        CudaDataType.CUDA_R_64F: np.float64, CudaDataType.CUDA_R_32I: np.int32,
                        CudaDataType.CUDA_C_32F: np.complex64, CudaDataType.CUDA_C_64F: np.complex128}


def scalars(shape: GemmShape) -> np.ndarray[tuple[int], np.dtype[np.generic]]:
    """alpha and beta side by side in the GEMM's scale type (``ex_gemm_shape`` checked they fit)."""
    dtype = np.dtype(_SCALE_DTYPES[scale_type(shape.compute, shape.c_type)])
    if dtype.kind == "c":
        return np.array([shape.alpha_value, shape.beta_value], dtype=dtype)
    if dtype.kind == "i":
        return np.array([int(shape.alpha), int(shape.beta)], dtype=dtype)
    return np.array([shape.alpha, shape.beta], dtype=dtype)


class BlasCalls(CudaBase):
    """The cuBLAS calls (see the module's theory of operation)."""

    def cublas_create(self, args: NoArgs, io: CallIO) -> CublasCreateResult:
        handle = self._cublas().create()
        return CublasCreateResult(handle=self._blas.add(BlasHandle(handle)))

    def cublas_destroy(self, args: CublasArgs, io: CallIO) -> NoResult:
        blas = self._blas.get(args.handle)
        self._cublas().destroy(blas.handle)
        self._blas.pop(args.handle)
        return NoResult()

    def cublas_set_stream(self, args: CublasSetStreamArgs, io: CallIO) -> NoResult:
        blas = self._blas.get(args.handle)
        if args.stream and args.stream not in self._streams:
            raise CudaError(CublasStatus.CUBLAS_STATUS_INVALID_VALUE,
                            f"cublasSetStream: stream {args.stream} is not a live stream of this VM")
        stream = self._stream(args.stream)
        self._cublas().set_stream(blas.handle, int(stream))
        blas.stream = args.stream
        return NoResult()

    def cublas_set_math_mode(self, args: CublasSetMathModeArgs, io: CallIO) -> NoResult:
        blas = self._blas.get(args.handle)
        if args.mode & ~_CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION not in (0, 1, 2, 3):
            raise CudaError(CublasStatus.CUBLAS_STATUS_INVALID_VALUE,
                            f"cublasSetMathMode: unknown mode {args.mode:#x}")
        self._cublas().set_math_mode(blas.handle, args.mode)
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

    def _run_gemm(self, blas: BlasHandle, io: CallIO, what: str, call: Callable[[], None]) -> NoResult:
        call()  # a cuBLAS failure is already a CudaError with its cublasStatus_t
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
                  ) -> tuple[BlasHandle, GemmShape]:
        blas = self._blas.get(args.handle)
        return blas, ex_gemm_shape(args)

    def cublas_gemm_ex(self, args: GemmExArgs, io: CallIO) -> NoResult:
        blas, shape = self._ex_shape(args)
        self._check_gemm(shape, [(args.a, args.b, args.c)], "cublasGemmEx")
        cublas = self._cublas()
        held = scalars(shape)
        alpha, beta = held.ctypes.data, held.ctypes.data + held.itemsize
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
        held = scalars(shape)
        alpha, beta = held.ctypes.data, held.ctypes.data + held.itemsize
        return self._run_gemm(blas, io, "cublasGemmStridedBatchedEx", lambda: cublas.gemm_strided_batched_ex(
            blas.handle, int(args.transa), int(args.transb), args.m, args.n, args.k, alpha,
            args.a, int(args.a_type), args.lda, args.stride_a, args.b, int(args.b_type), args.ldb,
            args.stride_b, beta, args.c, int(args.c_type), args.ldc, args.stride_c, args.batch_count,
            int(args.compute_type), args.algo))

    def cublas_gemm_batched_ex(self, args: GemmBatchedExArgs, io: CallIO) -> NoResult:
        """The pointer arrays live in device memory (see the module's theory of operation)."""
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
        capturing = self._drv.stream_is_capturing(stream) != 0
        if count and not capturing:
            self._sync(stream, what)
            arrays = []
            for ptr in (args.a, args.b, args.c):
                host = np.empty(count, dtype="<u8")
                self._drv.memcpy_dtoh(host.ctypes.data, ptr, 8 * count, f"{what}: reading pointers")
                arrays.append(host)
            self._check_gemm(shape, [(int(arrays[0][i]), int(arrays[1][i]), int(arrays[2][i]))
                                     for i in range(count)], what)
        cublas = self._cublas()
        held = scalars(shape)
        alpha, beta = held.ctypes.data, held.ctypes.data + held.itemsize
        return self._run_gemm(blas, io, what, lambda: cublas.gemm_batched_ex(
            blas.handle, int(args.transa), int(args.transb), args.m, args.n, args.k, alpha,
            args.a, int(args.a_type), args.lda, args.b, int(args.b_type), args.ldb, beta,
            args.c, int(args.c_type), args.ldc, count, int(args.compute_type), args.algo))

    def _check_trsm(self, shape: TrsmShape, systems: list[tuple[int, int]], what: str) -> None:
        try:
            for a, b in systems:
                for ptr, size, written, name in trsm_ranges(shape, a, b):
                    self._check_range(ptr, size, write=written, what=name)
        except CudaError as exc:
            raise CudaError(CublasStatus.CUBLAS_STATUS_EXECUTION_FAILED,
                            f"{what}: {exc.message} (the kernel would fault)") from exc

    def cublas_strsm(self, args: StrsmArgs, io: CallIO) -> NoResult:
        blas = self._blas.get(args.handle)
        shape = trsm_shape(args)
        self._check_trsm(shape, [(args.a, args.b)], "cublasStrsm")
        cublas = self._cublas()
        alpha = np.array([args.alpha], dtype=np.float32)
        return self._run_gemm(blas, io, "cublasStrsm", lambda: cublas.strsm(
            blas.handle, int(args.side), int(args.uplo), int(args.trans), int(args.diag), args.m, args.n,
            alpha.ctypes.data, args.a, args.lda, args.b, args.ldb))

    def cublas_strsm_batched(self, args: StrsmBatchedArgs, io: CallIO) -> NoResult:
        """The pointer arrays live in device memory, read back and checked as GemmBatchedEx's are."""
        blas = self._blas.get(args.handle)
        shape = trsm_shape(args)
        what = "cublasStrsmBatched"
        count = args.batch_count
        stream = self._stream(blas.stream)
        try:
            for ptr, name in ((args.a, "Aarray"), (args.b, "Barray")):
                if count:
                    self._check_range(ptr, 8 * count, write=False, what=f"pointer array {name}")
        except CudaError as exc:
            raise CudaError(CublasStatus.CUBLAS_STATUS_EXECUTION_FAILED, f"{what}: {exc.message}") from exc
        if count and self._drv.stream_is_capturing(stream) == 0:
            self._sync(stream, what)
            arrays = []
            for ptr in (args.a, args.b):
                host = np.empty(count, dtype="<u8")
                self._drv.memcpy_dtoh(host.ctypes.data, ptr, 8 * count, f"{what}: reading pointers")
                arrays.append(host)
            self._check_trsm(shape, [(int(arrays[0][i]), int(arrays[1][i])) for i in range(count)], what)
        cublas = self._cublas()
        alpha = np.array([args.alpha], dtype=np.float32)
        return self._run_gemm(blas, io, what, lambda: cublas.strsm_batched(
            blas.handle, int(args.side), int(args.uplo), int(args.trans), int(args.diag), args.m, args.n,
            alpha.ctypes.data, args.a, args.lda, args.b, args.ldb, count))

    def cublas_getrf_batched(self, args: GetrfBatchedArgs, io: CallIO) -> NoResult:
        """The pointer array lives in device memory, read back and checked as GemmBatchedEx's is."""
        blas = self._blas.get(args.handle)
        prefix = {CudaDataType.CUDA_R_32F: "s", CudaDataType.CUDA_R_64F: "d", CudaDataType.CUDA_C_32F: "c",
                  CudaDataType.CUDA_C_64F: "z"}[args.data_type]
        what = f"cublas{prefix.upper()}getrfBatched"
        count = args.batch_count
        stream = self._stream(blas.stream)
        try:
            if count:
                self._check_range(args.a, 8 * count, write=False, what="pointer array Aarray")
                self._check_range(args.info, 4 * count, write=True, what="info array")
                if args.pivots and args.n:
                    self._check_range(args.pivots, 4 * args.n * count, write=True, what="pivot array")
            if count and self._drv.stream_is_capturing(stream) == 0:
                self._sync(stream, what)
                host = np.empty(count, dtype="<u8")
                self._drv.memcpy_dtoh(host.ctypes.data, args.a, 8 * count, f"{what}: reading pointers")
                for ptr, size, written, name in getrf_ranges(args.n, args.lda, args.data_type,
                                                             [int(p) for p in host], 0, args.info):
                    self._check_range(ptr, size, write=written, what=name)
        except CudaError as exc:
            raise CudaError(CublasStatus.CUBLAS_STATUS_EXECUTION_FAILED,
                            f"{what}: {exc.message} (the kernel would fault)") from exc
        cublas = self._cublas()
        return self._run_gemm(blas, io, what, lambda: cublas.getrf_batched(
            prefix, blas.handle, args.n, args.a, args.lda, args.pivots, args.info, count))
