"""The sim backend's GemmStridedBatchedEx over cuBLAS's whole type table, and its triangular solves
(Strsm, StrsmBatched), against exact NumPy references."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from executor._sim_blas import GEMM_TYPES, f32_to_bf16
from protocol import CublasComputeType, CublasStatus, CudaDataType

from .test_sim_blas import Gpu

N, T, C = 0, 1, 2
LEFT, RIGHT = 0, 1
LOWER, UPPER = 0, 1
NON_UNIT, UNIT = 0, 1
_T = CudaDataType

_STORED: dict[CudaDataType, str] = {_T.CUDA_R_32F: "<f4", _T.CUDA_R_16F: "<f2", _T.CUDA_R_64F: "<f8",
                                    _T.CUDA_R_8I: "i1", _T.CUDA_R_32I: "<i4", _T.CUDA_C_32F: "<c8",
                                    _T.CUDA_C_64F: "<c16"}
COMPLEX = {_T.CUDA_C_32F, _T.CUDA_C_64F, _T.CUDA_C_8I}


@pytest.fixture
def gpu() -> Gpu:
    return Gpu()


@pytest.fixture
def blas(gpu: Gpu) -> int:
    return int(gpu("cublas_create").handle)


def stored(values: npt.NDArray[Any], dtype: CudaDataType) -> bytes:
    """Column-major elements (``values`` already in column order) in cuBLAS's layout for ``dtype``."""
    if dtype == _T.CUDA_R_16BF:
        return f32_to_bf16(values.astype(np.float32)).tobytes()
    if dtype == _T.CUDA_C_8I:
        pairs = np.empty(2 * values.size, dtype="i1")
        pairs[0::2], pairs[1::2] = values.real, values.imag
        return pairs.tobytes()
    return bytes(values.astype(_STORED[dtype]).tobytes())


def loaded(raw: bytes, dtype: CudaDataType) -> npt.NDArray[Any]:
    if dtype == _T.CUDA_R_16BF:
        return (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    return np.frombuffer(raw, _STORED[dtype]).astype(np.complex128 if dtype in COMPLEX else np.float64)


def small_values(rng: np.random.Generator, shape: tuple[int, ...], complex_: bool) -> npt.NDArray[Any]:
    """Small integers: every product and sum below is exact in every type (f16 and int8 included)."""
    values = rng.integers(-3, 4, shape).astype(np.float64)
    if complex_:
        return values + 1j * rng.integers(-3, 4, shape)
    return values


COMBINATIONS = sorted({(compute, a_type, c_type) for compute, pairs in GEMM_TYPES.items()
                       for a_type, c_type in pairs})


@pytest.mark.parametrize(("compute", "a_type", "c_type"), COMBINATIONS,
                         ids=[f"{c.name[15:]}-{a.name[5:]}-{t.name[5:]}" for c, a, t in COMBINATIONS])
def test_strided_batched_gemm_in_every_type_combination_cublas_offers(
        gpu: Gpu, blas: int, compute: CublasComputeType, a_type: CudaDataType, c_type: CudaDataType) -> None:
    rng = np.random.default_rng(int(compute) * 100 + int(a_type) * 10 + int(c_type))
    m, n, k, batch = 3, 2, 4, 2
    cplx = c_type in COMPLEX
    transa = C if cplx else T  # op(A) = A^H for complex: the conjugate is part of the contract
    a_cols = small_values(rng, (batch, m, k), cplx)  # op(A) per batch, stored k x m (transposed)
    b_vals = small_values(rng, (batch, k, n), cplx)
    c_vals = small_values(rng, (batch, m, n), cplx)
    integer = c_type == _T.CUDA_R_32I
    alpha = complex(2, -1) if cplx else 2.0
    beta = complex(1, 1) if cplx else -1.0
    stride_a, stride_b, stride_c = k * m + 1, k * n, m * n + 3  # strides in elements, with gaps
    store_a = np.zeros(batch * stride_a, dtype=a_cols.dtype)
    store_b = np.zeros(batch * stride_b, dtype=b_vals.dtype)
    store_c = np.zeros(batch * stride_c, dtype=c_vals.dtype)
    for i in range(batch):
        stored_a = a_cols[i].conj().T if cplx else a_cols[i].T  # k x m, so that op(A) = a_cols[i]
        store_a[i * stride_a:i * stride_a + k * m] = stored_a.T.reshape(-1)  # column-major
        store_b[i * stride_b:i * stride_b + k * n] = b_vals[i].T.reshape(-1)
        store_c[i * stride_c:i * stride_c + m * n] = c_vals[i].T.reshape(-1)
    a = gpu.upload(stored(store_a, a_type))
    b = gpu.upload(stored(store_b, a_type))
    c = gpu.upload(stored(store_c, c_type))
    gpu("cublas_gemm_strided_batched_ex", handle=blas, transa=transa, transb=N, m=m, n=n, k=k,
        alpha=alpha.real if cplx else alpha, alpha_imag=alpha.imag if cplx else 0.0, a=a, a_type=a_type,
        lda=k, stride_a=stride_a, b=b, b_type=a_type, ldb=k, stride_b=stride_b,
        beta=beta.real if cplx else beta, beta_imag=beta.imag if cplx else 0.0, c=c, c_type=c_type, ldc=m,
        stride_c=stride_c, batch_count=batch, compute_type=compute, algo=-1)
    got = loaded(gpu.download(c, len(stored(store_c, c_type))), c_type)
    for i in range(batch):
        expected = alpha * (a_cols[i] @ b_vals[i]) + beta * c_vals[i]
        np.testing.assert_array_equal(got[i * stride_c:i * stride_c + m * n].reshape(n, m).T, expected)
        if not integer:
            gap = got[i * stride_c + m * n:(i + 1) * stride_c]
            assert (gap == 0).all()  # between the strided matrices nothing is written


def test_int32_compute_wraps_as_32_bit_arithmetic(gpu: Gpu, blas: int) -> None:
    a = gpu.upload(np.full(4, 127, dtype="i1").tobytes())  # 1x4 times 4x1: 4 * 127 * 127 = 64516
    c = gpu.upload(np.array([2**31 - 1], dtype="<i4").tobytes())
    gpu("cublas_gemm_strided_batched_ex", handle=blas, transa=T, transb=N, m=1, n=1, k=4, alpha=40000.0, a=a,
        a_type=_T.CUDA_R_8I, lda=4, stride_a=0, b=a, b_type=_T.CUDA_R_8I, ldb=4, stride_b=0, beta=1.0, c=c,
        c_type=_T.CUDA_R_32I, ldc=1, stride_c=0, batch_count=1,
        compute_type=CublasComputeType.CUBLAS_COMPUTE_32I, algo=-1)
    exact = 40000 * 64516 + 2**31 - 1
    wrapped = (exact + 2**31) % 2**32 - 2**31
    assert np.frombuffer(gpu.download(c, 4), "<i4")[0] == wrapped


def test_scalars_the_scale_type_cannot_hold_are_invalid(gpu: Gpu, blas: int) -> None:
    a = gpu.upload(bytes(16))
    common: dict[str, Any] = dict(handle=blas, transa=N, transb=N, m=1, n=1, k=1, a=a, lda=1, b=a, ldb=1, c=a,
                                  ldc=1, algo=-1)
    gpu.fails(CublasStatus.CUBLAS_STATUS_INVALID_VALUE, "cublas_gemm_ex", alpha=0.5, beta=0.0,
              a_type=_T.CUDA_R_8I, b_type=_T.CUDA_R_8I, c_type=_T.CUDA_R_32I,
              compute_type=CublasComputeType.CUBLAS_COMPUTE_32I, **common)
    gpu.fails(CublasStatus.CUBLAS_STATUS_INVALID_VALUE, "cublas_gemm_ex", alpha=1.0, alpha_imag=1.0, beta=0.0,
              a_type=_T.CUDA_R_32F, b_type=_T.CUDA_R_32F, c_type=_T.CUDA_R_32F,
              compute_type=CublasComputeType.CUBLAS_COMPUTE_32F, **common)
    gpu.fails(CublasStatus.CUBLAS_STATUS_NOT_SUPPORTED, "cublas_gemm_ex", alpha=1.0, beta=0.0,
              a_type=_T.CUDA_R_64F, b_type=_T.CUDA_R_64F, c_type=_T.CUDA_R_64F,
              compute_type=CublasComputeType.CUBLAS_COMPUTE_32F, **common)


# -- triangular solves ----------------------------------------------------------------------------------


def triangular(rng: np.random.Generator, k: int, uplo: int, diag: int) -> npt.NDArray[np.float64]:
    """A triangular matrix whose solves are exact in f32: small integers off the diagonal, powers of two
    on it (ones for a unit diagonal); the other triangle and a unit diagonal hold NaNs in storage."""
    tri = rng.integers(-2, 3, (k, k)).astype(np.float64)
    tri = np.tril(tri, -1) if uplo == LOWER else np.triu(tri, 1)
    np.fill_diagonal(tri, 1.0 if diag == UNIT else rng.choice([0.5, 1.0, 2.0, -1.0], k))
    return tri


def upload_matrix(gpu: Gpu, values: npt.NDArray[np.float64], ld: int, fill: float = np.nan) -> int:
    rows, cols = values.shape
    store = np.full((cols, ld), fill, dtype=np.float32)
    store[:, :rows] = values.T
    return gpu.upload(store.tobytes())


def stored_triangle(tri: npt.NDArray[np.float64], uplo: int, diag: int) -> npt.NDArray[np.float64]:
    """What the guest stores: the triangle, NaN where cuBLAS must not read."""
    k = tri.shape[0]
    mask = np.tril(np.ones((k, k), bool), 0 if diag == NON_UNIT else -1)
    mask = mask if uplo == LOWER else mask.T
    return np.where(mask, tri, np.nan)


@pytest.mark.parametrize("side", [LEFT, RIGHT])
@pytest.mark.parametrize("uplo", [LOWER, UPPER])
@pytest.mark.parametrize("trans", [N, T, C])
@pytest.mark.parametrize("diag", [NON_UNIT, UNIT])
def test_strsm_solves_exactly_reading_only_the_triangle(gpu: Gpu, blas: int, side: int, uplo: int, trans: int,
                                                        diag: int) -> None:
    rng = np.random.default_rng(side * 8 + uplo * 4 + trans * 2 + diag)
    m, n, alpha = 4, 3, 2.0
    k = m if side == LEFT else n
    tri = triangular(rng, k, uplo, diag)
    op_a = tri if trans == N else tri.T
    x = rng.integers(-4, 5, (m, n)).astype(np.float64)
    rhs = (op_a @ x if side == LEFT else x @ op_a) / alpha
    lda, ldb = k + 2, m + 1
    a = upload_matrix(gpu, stored_triangle(tri, uplo, diag), lda)
    b = upload_matrix(gpu, rhs, ldb, fill=-9.0)
    gpu("cublas_strsm", handle=blas, side=side, uplo=uplo, trans=trans, diag=diag, m=m, n=n, alpha=alpha, a=a,
        lda=lda, b=b, ldb=ldb)
    got = np.frombuffer(gpu.download(b, 4 * n * ldb), "<f4").reshape(n, ldb)
    np.testing.assert_array_equal(got[:, :m].T, x)
    assert (got[:, m:] == -9.0).all()  # rows between m and ldb are neither read nor written


def test_strsm_alpha_zero_zeroes_b_without_reading_a(gpu: Gpu, blas: int) -> None:
    b = upload_matrix(gpu, np.full((2, 2), np.nan), 2)
    gpu("cublas_strsm", handle=blas, side=LEFT, uplo=LOWER, trans=N, diag=NON_UNIT, m=2, n=2, alpha=0.0,
        a=0xDEAD0000, lda=2, b=b, ldb=2)
    assert (np.frombuffer(gpu.download(b, 16), "<f4") == 0).all()


def test_strsm_batched_reads_its_pointer_arrays_from_device_memory(gpu: Gpu, blas: int) -> None:
    rng = np.random.default_rng(3)
    m, n, batch = 3, 2, 3
    tris = [triangular(rng, m, UPPER, NON_UNIT) for _ in range(batch)]
    xs = [rng.integers(-4, 5, (m, n)).astype(np.float64) for _ in range(batch)]
    a_ptrs = [upload_matrix(gpu, stored_triangle(t, UPPER, NON_UNIT), m) for t in tris]
    b_ptrs = [upload_matrix(gpu, t @ x, m) for t, x in zip(tris, xs, strict=True)]
    a_array = gpu.upload(np.array(a_ptrs, dtype="<u8").tobytes())
    b_array = gpu.upload(np.array(b_ptrs, dtype="<u8").tobytes())
    gpu("cublas_strsm_batched", handle=blas, side=LEFT, uplo=UPPER, trans=N, diag=NON_UNIT, m=m, n=n, alpha=1.0,
        a=a_array, lda=m, b=b_array, ldb=m, batch_count=batch)
    for ptr, x in zip(b_ptrs, xs, strict=True):
        np.testing.assert_array_equal(np.frombuffer(gpu.download(ptr, 4 * m * n), "<f4").reshape(n, m).T, x)


def test_strsm_outside_the_vms_memory_fails_and_writes_nothing(gpu: Gpu, blas: int) -> None:
    b = upload_matrix(gpu, np.ones((2, 2)), 2)
    gpu.fails(CublasStatus.CUBLAS_STATUS_EXECUTION_FAILED, "cublas_strsm", handle=blas, side=LEFT, uplo=LOWER,
              trans=N, diag=NON_UNIT, m=2, n=2, alpha=1.0, a=0xDEAD0000, lda=2, b=b, ldb=2)
    assert (np.frombuffer(gpu.download(b, 16), "<f4") == 1).all()
    bad = gpu.upload(np.array([0xDEAD0000], dtype="<u8").tobytes())
    gpu.fails(CublasStatus.CUBLAS_STATUS_EXECUTION_FAILED, "cublas_strsm_batched", handle=blas, side=LEFT,
              uplo=LOWER, trans=N, diag=NON_UNIT, m=2, n=2, alpha=1.0, a=bad, lda=2, b=bad, ldb=2, batch_count=1)
    gpu.fails(CublasStatus.CUBLAS_STATUS_NOT_SUPPORTED, "cublas_strsm_batched", handle=blas, side=LEFT,
              uplo=LOWER, trans=N, diag=NON_UNIT, m=2, n=2, alpha=1.0, a=bad, lda=2, b=bad, ldb=2,
              batch_count=1 << 20)


# -- batched LU factorization --------------------------------------------------------------------------


def unpack_lu(lu: npt.NDArray[Any]) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    n = lu.shape[0]
    return np.tril(lu, -1) + np.eye(n), np.triu(lu)


def swapped(a: npt.NDArray[Any], ipiv: npt.NDArray[np.int32]) -> npt.NDArray[Any]:
    """P A from LAPACK's 1-based pivots, applied in order."""
    out = a.copy()
    for k, p in enumerate(ipiv):
        out[[k, p - 1]] = out[[p - 1, k]]
    return out


@pytest.mark.parametrize(("data_type", "dtype", "tol"), [(_T.CUDA_R_64F, "<f8", 1e-12), (_T.CUDA_R_32F, "<f4", 1e-5),
                                                          (_T.CUDA_C_64F, "<c16", 1e-12)])
def test_getrf_batched_factors_with_partial_pivoting(gpu: Gpu, blas: int, data_type: CudaDataType, dtype: str,
                                                     tol: float) -> None:
    rng = np.random.default_rng(21)
    n, lda, batch = 5, 7, 3
    mats = [rng.standard_normal((n, n)) + (1j * rng.standard_normal((n, n)) if dtype == "<c16" else 0)
            for _ in range(batch)]
    stores = []
    for m in mats:
        store = np.full((n, lda), 99, dtype=dtype)
        store[:, :n] = m.T  # column j is row j of the store
        stores.append(gpu.upload(store.tobytes()))
    array = gpu.upload(np.array(stores, dtype="<u8").tobytes())
    pivots, info = gpu.upload(bytes(4 * n * batch)), gpu.upload(b"\xff" * 4 * batch)
    gpu("cublas_getrf_batched", handle=blas, n=n, a=array, lda=lda, pivots=pivots, info=info, batch_count=batch,
        data_type=data_type)
    ipiv = np.frombuffer(gpu.download(pivots, 4 * n * batch), "<i4").reshape(batch, n)
    assert (np.frombuffer(gpu.download(info, 4 * batch), "<i4") == 0).all()
    size = np.dtype(dtype).itemsize
    for m, ptr, piv in zip(mats, stores, ipiv, strict=True):
        raw = np.frombuffer(gpu.download(ptr, n * lda * size), dtype).reshape(n, lda)
        lower, upper = unpack_lu(raw[:, :n].T.astype(np.complex128))
        np.testing.assert_allclose(lower @ upper, swapped(m, piv), rtol=tol, atol=tol)
        # partial pivoting by |re| + |im| (i?amax): multipliers at most 1, sqrt(2) in magnitude for complex
        bound = np.sqrt(2) if dtype == "<c16" else 1.0
        assert (np.abs(np.tril(lower, -1)) <= bound + tol).all()
        assert (raw[:, n:] == 99).all()  # rows between n and lda are neither read nor written


def test_getrf_batched_reports_a_zero_pivot_and_factors_without_pivoting(gpu: Gpu, blas: int) -> None:
    singular = np.array([[1.0, 2.0], [2.0, 4.0]])
    ptr = gpu.upload(np.asfortranarray(singular).tobytes(order="F"))
    array, info = gpu.upload(np.array([ptr], dtype="<u8").tobytes()), gpu.upload(bytes(4))
    gpu("cublas_getrf_batched", handle=blas, n=2, a=array, lda=2, pivots=0, info=info, batch_count=1,
        data_type=_T.CUDA_R_64F)
    assert np.frombuffer(gpu.download(info, 4), "<i4")[0] == 2  # U(2,2) is exactly zero
    lu = np.frombuffer(gpu.download(ptr, 32), "<f8").reshape(2, 2).T
    np.testing.assert_array_equal(lu, [[1.0, 2.0], [2.0, 0.0]])  # no row swapped without a pivot array
    gpu.fails(CublasStatus.CUBLAS_STATUS_EXECUTION_FAILED, "cublas_getrf_batched", handle=blas, n=2,
              a=gpu.upload(np.array([0xDEAD0000], dtype="<u8").tobytes()), lda=2, pivots=0, info=info,
              batch_count=1, data_type=_T.CUDA_R_64F)


def test_solves_and_factorizations_past_the_simulators_work_bound_are_refused(gpu: Gpu, blas: int) -> None:
    """A call that would hold the worker for minutes answers NOT_SUPPORTED before reading anything."""
    big = 1 << 11  # 2**33 multiply-adds for a square solve of 2048 columns
    gpu.fails(CublasStatus.CUBLAS_STATUS_NOT_SUPPORTED, "cublas_strsm", handle=blas, side=LEFT, uplo=LOWER,
              trans=N, diag=NON_UNIT, m=big, n=big, alpha=1.0, a=0xDEAD0000, lda=big, b=0xDEAD0000, ldb=big)
    gpu.fails(CublasStatus.CUBLAS_STATUS_NOT_SUPPORTED, "cublas_getrf_batched", handle=blas, n=big, a=0xDEAD0000,
              lda=big, pivots=0, info=0xDEAD0000, batch_count=1, data_type=_T.CUDA_R_64F)
