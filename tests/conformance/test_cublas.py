"""cuBLAS through the rings: column-major GEMMs with transposes, alpha/beta, types, and batches."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from guest import GuestClient
from protocol import CublasComputeType, CublasStatus, CudaDataType

from ._util import gemm_ex

F32 = npt.NDArray[np.float32]
_NUMPY = {CudaDataType.CUDA_R_32F: np.float32, CudaDataType.CUDA_R_16F: np.float16}


def put(gpu: GuestClient, matrix: npt.NDArray[Any]) -> int:
    """Upload ``matrix`` column-major (as cuBLAS reads it)."""
    raw = np.asfortranarray(matrix).tobytes(order="F")
    ptr = gpu.mem_alloc(len(raw))
    gpu.memcpy_htod(ptr, raw)
    return ptr


def get(gpu: GuestClient, ptr: int, rows: int, cols: int) -> F32:
    raw = gpu.memcpy_dtoh(ptr, 4 * rows * cols)
    return np.frombuffer(raw, dtype=np.float32).reshape((rows, cols), order="F")


@pytest.fixture
def blas(gpu: GuestClient) -> int:
    return int(gpu.value("cublas_create", "handle"))


@pytest.mark.parametrize(("transa", "transb"), [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_sgemm_with_transposes_alpha_and_beta(gpu: GuestClient, blas: int, transa: int, transb: int) -> None:
    m, n, k = 33, 17, 65
    rng = np.random.default_rng(transa * 2 + transb)
    a = rng.standard_normal((k, m) if transa else (m, k), dtype=np.float32)
    b = rng.standard_normal((n, k) if transb else (k, n), dtype=np.float32)
    c = rng.standard_normal((m, n), dtype=np.float32)
    pa, pb, pc = put(gpu, a), put(gpu, b), put(gpu, c)
    args = gpu.args("cublas_sgemm", handle=blas, transa=transa, transb=transb, m=m, n=n, k=k, alpha=0.5,
                    a=pa, lda=a.shape[0], b=pb, ldb=b.shape[0], beta=2.0, c=pc, ldc=m)
    gpu.checked("cublas_sgemm", args)
    expected = 0.5 * ((a.T if transa else a) @ (b.T if transb else b)) + 2.0 * c
    np.testing.assert_allclose(get(gpu, pc, m, n), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", [CudaDataType.CUDA_R_32F, CudaDataType.CUDA_R_16F])
def test_gemm_ex_accumulates_in_f32(gpu: GuestClient, blas: int, dtype: CudaDataType) -> None:
    m, n, k = 64, 48, 128
    rng = np.random.default_rng(5)
    a = rng.standard_normal((m, k)).astype(_NUMPY[dtype])
    b = rng.standard_normal((k, n)).astype(_NUMPY[dtype])
    pc = gpu.mem_alloc(4 * m * n)
    assert gemm_ex(gpu, blas, m, n, k, put(gpu, a), put(gpu, b), pc, dtype=dtype, asynchronous=False) == 0
    expected = a.astype(np.float32) @ b.astype(np.float32)
    np.testing.assert_allclose(get(gpu, pc, m, n), expected, rtol=2e-3, atol=2e-3)


def test_bf16_inputs(gpu: GuestClient, blas: int) -> None:
    m = n = k = 32
    rng = np.random.default_rng(9)
    a32, b32 = rng.standard_normal((m, k), dtype=np.float32), rng.standard_normal((k, n), dtype=np.float32)

    def bf16(x: F32) -> tuple[npt.NDArray[np.uint16], F32]:
        bits = (np.asfortranarray(x).view(np.uint32) >> 16).astype(np.uint16)  # truncation is a valid bf16
        return bits, (bits.astype(np.uint32) << 16).view(np.float32)

    (abits, a), (bbits, b) = bf16(a32), bf16(b32)
    pa, pb, pc = gpu.mem_alloc(2 * m * k), gpu.mem_alloc(2 * k * n), gpu.mem_alloc(4 * m * n)
    gpu.memcpy_htod(pa, abits.tobytes(order="F"))
    gpu.memcpy_htod(pb, bbits.tobytes(order="F"))
    assert gemm_ex(gpu, blas, m, n, k, pa, pb, pc, dtype=CudaDataType.CUDA_R_16BF, asynchronous=False) == 0
    np.testing.assert_allclose(get(gpu, pc, m, n), a @ b, rtol=1e-3, atol=1e-3)


def test_strided_and_pointer_array_batches(gpu: GuestClient, blas: int) -> None:
    m, n, k, batch = 8, 6, 10, 3
    rng = np.random.default_rng(11)
    a = rng.standard_normal((batch, m, k), dtype=np.float32)
    b = rng.standard_normal((batch, k, n), dtype=np.float32)
    pa = put(gpu, np.concatenate([x.reshape(-1, order="F") for x in a]))
    pb = put(gpu, np.concatenate([x.reshape(-1, order="F") for x in b]))
    pc = gpu.mem_alloc(4 * batch * m * n)
    f32, compute = CudaDataType.CUDA_R_32F, CublasComputeType.CUBLAS_COMPUTE_32F
    gpu.checked("cublas_gemm_strided_batched_ex", gpu.args(
        "cublas_gemm_strided_batched_ex", handle=blas, transa=0, transb=0, m=m, n=n, k=k, alpha=1.0,
        a=pa, a_type=f32, lda=m, stride_a=m * k, b=pb, b_type=f32, ldb=k, stride_b=k * n, beta=0.0, c=pc,
        c_type=f32, ldc=m, stride_c=m * n, batch_count=batch, compute_type=compute, algo=-1))
    for i in range(batch):
        np.testing.assert_allclose(get(gpu, pc + 4 * i * m * n, m, n), a[i] @ b[i], rtol=1e-4, atol=1e-4)
    # the same through arrays of device pointers, into a second output
    pc2 = gpu.mem_alloc(4 * batch * m * n)
    arrays = [put(gpu, np.array([base + 4 * i * size for i in range(batch)], dtype=np.uint64))
              for base, size in ((pa, m * k), (pb, k * n), (pc2, m * n))]
    gpu.checked("cublas_gemm_batched_ex", gpu.args(
        "cublas_gemm_batched_ex", handle=blas, transa=0, transb=0, m=m, n=n, k=k, alpha=1.0, a=arrays[0],
        a_type=f32, lda=m, b=arrays[1], b_type=f32, ldb=k, beta=0.0, c=arrays[2], c_type=f32, ldc=m,
        batch_count=batch, compute_type=compute, algo=-1))
    assert gpu.memcpy_dtoh(pc2, 4 * batch * m * n) == gpu.memcpy_dtoh(pc, 4 * batch * m * n)


def test_handle_stream_math_mode_and_errors(gpu: GuestClient, blas: int) -> None:
    stream = gpu.stream_create()
    gpu.checked("cublas_set_stream", gpu.args("cublas_set_stream", handle=blas, stream=stream))
    gpu.checked("cublas_set_math_mode", gpu.args("cublas_set_math_mode", handle=blas, mode=0))
    outside = gpu.mem_alloc(256)
    # C runs past its allocation: refused before any arithmetic
    status = gemm_ex(gpu, blas, 64, 64, 1, outside, outside, outside, asynchronous=False)
    assert status != 0
    gpu.checked("cublas_destroy", gpu.args("cublas_destroy", handle=blas))
    status = gpu.call("cublas_set_stream", gpu.args("cublas_set_stream", handle=blas, stream=0)).status
    assert status == CublasStatus.CUBLAS_STATUS_NOT_INITIALIZED


def test_strsm_and_strsm_batched_solve_exactly(gpu: GuestClient, blas: int) -> None:
    """L X = 2 B with L lower triangular (powers of two on its diagonal): exact in f32 on any backend."""
    m, n = 4, 3
    rng = np.random.default_rng(11)
    lower = (np.tril(rng.integers(-2, 3, (m, m)), -1) + np.diag([1.0, 2.0, 0.5, -1.0])).astype(np.float32)
    x = rng.integers(-4, 5, (m, n)).astype(np.float32)
    pa, pb = put(gpu, lower), put(gpu, (lower @ x) / 2)
    common = dict(handle=blas, side=0, uplo=0, trans=0, diag=0, m=m, n=n, alpha=2.0, lda=m, ldb=m)
    gpu.checked("cublas_strsm", gpu.args("cublas_strsm", a=pa, b=pb, **common))
    np.testing.assert_array_equal(get(gpu, pb, m, n), x)
    pb2 = put(gpu, (lower @ x) / 2)
    arrays = [put(gpu, np.array([p], dtype=np.uint64)) for p in (pa, pb2)]
    gpu.checked("cublas_strsm_batched", gpu.args("cublas_strsm_batched", a=arrays[0], b=arrays[1], batch_count=1,
                                                 **common))
    gpu.checked("stream_synchronize", gpu.args("stream_synchronize", stream=0))
    np.testing.assert_array_equal(get(gpu, pb2, m, n), x)


def test_strided_batched_gemm_in_f64_and_int8(gpu: GuestClient, blas: int) -> None:
    """Two entries of cuBLAS's type table beyond f32: FP64 (CUBLAS_COMPUTE_64F) and int8 -> int32."""
    m, n, k = 3, 2, 4
    rng = np.random.default_rng(12)
    a, b = rng.integers(-3, 4, (m, k)).astype(np.float64), rng.integers(-3, 4, (k, n)).astype(np.float64)
    pc = gpu.mem_alloc(8 * m * n)
    args = gpu.args("cublas_gemm_strided_batched_ex", handle=blas, transa=0, transb=0, m=m, n=n, k=k, alpha=0.5,
                    a=put(gpu, a), a_type=CudaDataType.CUDA_R_64F, lda=m, stride_a=0, b=put(gpu, b),
                    b_type=CudaDataType.CUDA_R_64F, ldb=k, stride_b=0, beta=0.0, c=pc,
                    c_type=CudaDataType.CUDA_R_64F, ldc=m, stride_c=0, batch_count=1,
                    compute_type=CublasComputeType.CUBLAS_COMPUTE_64F, algo=-1)
    gpu.checked("cublas_gemm_strided_batched_ex", args)
    got = np.frombuffer(gpu.memcpy_dtoh(pc, 8 * m * n), dtype=np.float64).reshape((m, n), order="F")
    np.testing.assert_array_equal(got, 0.5 * (a @ b))
    i8a, i8b = rng.integers(-100, 100, (k, m)).astype(np.int8), rng.integers(-100, 100, (k, n)).astype(np.int8)
    pi = gpu.mem_alloc(4 * m * n)
    args = gpu.args("cublas_gemm_strided_batched_ex", handle=blas, transa=1, transb=0, m=m, n=n, k=k, alpha=3.0,
                    a=put(gpu, i8a), a_type=CudaDataType.CUDA_R_8I, lda=k, stride_a=0, b=put(gpu, i8b),
                    b_type=CudaDataType.CUDA_R_8I, ldb=k, stride_b=0, beta=0.0, c=pi,
                    c_type=CudaDataType.CUDA_R_32I, ldc=m, stride_c=0, batch_count=1,
                    compute_type=CublasComputeType.CUBLAS_COMPUTE_32I, algo=-1)
    gpu.checked("cublas_gemm_strided_batched_ex", args)
    got_i = np.frombuffer(gpu.memcpy_dtoh(pi, 4 * m * n), dtype=np.int32).reshape((m, n), order="F")
    np.testing.assert_array_equal(got_i, 3 * (i8a.T.astype(np.int32) @ i8b.astype(np.int32)))


def test_getrf_batched_factors_in_place(gpu: GuestClient, blas: int) -> None:
    """P A = L U for an FP64 matrix whose pivots are known (4 first, then 3), on any backend."""
    a = np.array([[2.0, 1.0, 3.0], [4.0, -1.0, 0.0], [-2.0, 3.0, 1.0]])
    pa = put(gpu, a)
    array = put(gpu, np.array([pa], dtype=np.uint64))
    pivots, info = gpu.mem_alloc(12), gpu.mem_alloc(4)
    gpu.checked("cublas_getrf_batched", gpu.args("cublas_getrf_batched", handle=blas, n=3, a=array, lda=3,
                                                 pivots=pivots, info=info, batch_count=1,
                                                 data_type=CudaDataType.CUDA_R_64F))
    gpu.checked("stream_synchronize", gpu.args("stream_synchronize", stream=0))
    lu = np.frombuffer(gpu.memcpy_dtoh(pa, 72), dtype=np.float64).reshape((3, 3), order="F")
    ipiv = np.frombuffer(gpu.memcpy_dtoh(pivots, 12), dtype=np.int32)
    assert list(ipiv) == [2, 3, 3] and np.frombuffer(gpu.memcpy_dtoh(info, 4), dtype=np.int32)[0] == 0
    swapped = a.copy()
    for k, p in enumerate(ipiv):
        swapped[[k, p - 1]] = swapped[[p - 1, k]]
    np.testing.assert_allclose((np.tril(lu, -1) + np.eye(3)) @ np.triu(lu), swapped, rtol=1e-12, atol=1e-12)
