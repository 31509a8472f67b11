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
kernel (see ``_cuda_memory``). The scalars are f32 for every type combination served (checked by
``check_gemm_types``), passed by host pointer. A GEMM submitted without ``ASYNC`` waits for the
handle's stream; a failure there is the GEMM's ``CUBLAS_STATUS_EXECUTION_FAILED``.
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
    NoArgs,
    NoResult,
    SgemmArgs,
)

from ._base import CallIO
from ._cuda_base import BlasHandle, CudaBase
from ._errors import CudaError
from ._sim_blas import ITEMSIZE, GemmShape, check_gemm_types, gemm_ranges

__all__ = ["BlasCalls"]

_CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION: Final = 0x10


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
        scalars = np.array([args.alpha, args.beta], dtype=np.float32)
        alpha, beta = scalars.ctypes.data, scalars.ctypes.data + 4
        return self._run_gemm(blas, io, what, lambda: cublas.gemm_batched_ex(
            blas.handle, int(args.transa), int(args.transb), args.m, args.n, args.k, alpha,
            args.a, int(args.a_type), args.lda, args.b, int(args.b_type), args.ldb, beta,
            args.c, int(args.c_type), args.ldc, count, int(args.compute_type), args.algo))
