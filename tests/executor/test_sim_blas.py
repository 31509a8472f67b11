"""The sim backend's cuBLAS GEMMs against NumPy: column-major layout, transposes, ld, alpha/beta, types."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from executor import CallIO, CudaError
from executor._sim import SimExecutor
from executor._sim_blas import MAX_SIM_GEMM_WORK, bf16_to_f32, f32_to_bf16
from protocol import CALLS_BY_NAME, CublasStatus, CUresult

N, T, C = 0, 1, 2
R32F, R16F, R16BF = 0, 2, 14
COMPUTE_32F = 68
DEFAULT_ALGO = -1
_DTYPES: dict[int, np.dtype[Any]] = {R32F: np.dtype("<f4"), R16F: np.dtype("<f2"), R16BF: np.dtype("<u2")}


class Gpu:
    def __init__(self) -> None:
        self.ex = SimExecutor()
        self.out = b""

    def __call__(self, name: str, *, inp: bytes = b"", out_cap: int = 0, **args: Any) -> Any:
        spec = CALLS_BY_NAME[name]
        io = CallIO(memoryview(inp), memoryview(bytearray(out_cap)), False)
        result = self.ex.execute(spec, spec.args(**args), io)
        self.out = bytes(io.out[:io.out_len])
        return result

    def fails(self, status: CUresult | CublasStatus, name: str, **kwargs: Any) -> CudaError:
        with pytest.raises(CudaError) as caught:
            self(name, **kwargs)
        assert caught.value.status == status, caught.value
        return caught.value

    def upload(self, raw: bytes) -> int:
        ptr = int(self("mem_alloc", bytesize=max(len(raw), 1)).dptr)
        self("memcpy_htod", inp=raw, dst=ptr, stream=0)
        return ptr

    def download(self, ptr: int, count: int) -> bytes:
        self("memcpy_dtoh", src=ptr, count=count, stream=0, out_cap=count)
        return self.out


def to_device(matrix: npt.NDArray[np.float32], ld: int, ctype: int = R32F, fill: float = 0.0) -> bytes:
    """A rows x cols matrix stored column-major with leading dimension ``ld`` (padding = ``fill``)."""
    rows, cols = matrix.shape
    store = np.full((cols, ld), fill, dtype=np.float32)
    store[:, :rows] = matrix.T
    if ctype == R16BF:
        return f32_to_bf16(store).tobytes()
    return bytes(store.astype(_DTYPES[ctype]).tobytes())


def from_device(raw: bytes, rows: int, cols: int, ld: int, ctype: int = R32F) -> npt.NDArray[np.float32]:
    values = np.frombuffer(raw, dtype=_DTYPES[ctype])
    wide = bf16_to_f32(values) if ctype == R16BF else values.astype(np.float32)
    return wide.reshape(cols, ld)[:, :rows].T


@pytest.fixture
def gpu() -> Gpu:
    return Gpu()


@pytest.fixture
def blas(gpu: Gpu) -> int:
    return int(gpu("cublas_create").handle)


@pytest.mark.parametrize("transa", [N, T, C])
@pytest.mark.parametrize("transb", [N, T])
@pytest.mark.parametrize(("alpha", "beta"), [(1.0, 0.0), (0.5, 2.0), (-1.25, 1.0)])
def test_sgemm_matches_numpy(gpu: Gpu, blas: int, transa: int, transb: int, alpha: float,
                             beta: float) -> None:
    rng = np.random.default_rng(7)
    m, n, k = 5, 3, 4
    op_a = rng.standard_normal((m, k)).astype(np.float32)
    op_b = rng.standard_normal((k, n)).astype(np.float32)
    c0 = rng.standard_normal((m, n)).astype(np.float32)
    stored_a = op_a if transa == N else op_a.T
    stored_b = op_b if transb == N else op_b.T
    lda, ldb, ldc = stored_a.shape[0] + 3, stored_b.shape[0] + 1, m + 2  # ld > rows everywhere
    a = gpu.upload(to_device(stored_a, lda))
    b = gpu.upload(to_device(stored_b, ldb))
    c = gpu.upload(to_device(c0, ldc, fill=-7.0))
    gpu("cublas_sgemm", handle=blas, transa=transa, transb=transb, m=m, n=n, k=k, alpha=alpha, a=a,
        lda=lda, b=b, ldb=ldb, beta=beta, c=c, ldc=ldc)
    raw = gpu.download(c, n * ldc * 4)
    expected = alpha * (op_a.astype(np.float64) @ op_b) + beta * c0
    np.testing.assert_allclose(from_device(raw, m, n, ldc), expected, rtol=1e-5, atol=1e-5)
    padding = np.frombuffer(raw, dtype="<f4").reshape(n, ldc)[:, m:]
    assert (padding == -7.0).all()  # rows between m and ldc are neither read nor written


def test_beta_zero_ignores_nans_in_c_and_alpha_zero_ignores_a_and_b(gpu: Gpu, blas: int) -> None:
    ones = np.ones((2, 2), dtype=np.float32)
    nans = np.full((2, 2), np.nan, dtype=np.float32)
    a, nan_ptr = gpu.upload(to_device(ones, 2)), gpu.upload(to_device(nans, 2))
    c = gpu.upload(to_device(nans, 2))
    gpu("cublas_sgemm", handle=blas, transa=N, transb=N, m=2, n=2, k=2, alpha=1.0, a=a, lda=2, b=a,
        ldb=2, beta=0.0, c=c, ldc=2)
    assert (from_device(gpu.download(c, 16), 2, 2, 2) == 2.0).all()
    gpu("cublas_sgemm", handle=blas, transa=N, transb=N, m=2, n=2, k=2, alpha=0.0, a=nan_ptr, lda=2,
        b=nan_ptr, ldb=2, beta=3.0, c=c, ldc=2)
    assert (from_device(gpu.download(c, 16), 2, 2, 2) == 6.0).all()


def test_degenerate_shapes(gpu: Gpu, blas: int) -> None:
    c = gpu.upload(to_device(np.full((2, 2), 4.0, dtype=np.float32), 2))
    a = gpu.upload(bytes(16))
    gpu("cublas_sgemm", handle=blas, transa=N, transb=N, m=2, n=2, k=0, alpha=1.0, a=a, lda=2, b=a,
        ldb=1, beta=0.5, c=c, ldc=2)  # k == 0: C = beta * C
    assert (from_device(gpu.download(c, 16), 2, 2, 2) == 2.0).all()
    gpu("cublas_sgemm", handle=blas, transa=N, transb=N, m=0, n=2, k=2, alpha=1.0, a=0, lda=1, b=0,
        ldb=2, beta=0.0, c=0, ldc=1)  # m == 0: nothing is touched, not even null pointers


def test_f16_gemm_rounds_results_to_half(gpu: Gpu, blas: int) -> None:
    rng = np.random.default_rng(1)
    m, n, k = 4, 6, 8
    op_a = rng.standard_normal((m, k)).astype(np.float16).astype(np.float32)
    op_b = rng.standard_normal((n, k)).astype(np.float16).astype(np.float32)  # stored transposed
    c0 = rng.standard_normal((m, n)).astype(np.float16).astype(np.float32)
    a, b = gpu.upload(to_device(op_a, m, R16F)), gpu.upload(to_device(op_b, n, R16F))
    c = gpu.upload(to_device(c0, m, R16F))
    gpu("cublas_gemm_ex", handle=blas, transa=N, transb=T, m=m, n=n, k=k, alpha=1.5, a=a, a_type=R16F,
        lda=m, b=b, b_type=R16F, ldb=n, beta=-0.5, c=c, c_type=R16F, ldc=m, compute_type=COMPUTE_32F,
        algo=DEFAULT_ALGO)
    got = from_device(gpu.download(c, m * n * 2), m, n, m, R16F)
    exact = 1.5 * (op_a.astype(np.float64) @ op_b.T) - 0.5 * c0
    assert (got == got.astype(np.float16)).all()  # results are halves
    np.testing.assert_allclose(got, exact, rtol=2e-3, atol=2e-3)


def test_bf16_gemm_with_f32_and_bf16_outputs(gpu: Gpu, blas: int) -> None:
    rng = np.random.default_rng(2)
    m, n, k = 3, 5, 16
    op_a = bf16_to_f32(f32_to_bf16(rng.standard_normal((k, m)).astype(np.float32))).T  # transposed A
    op_b = bf16_to_f32(f32_to_bf16(rng.standard_normal((k, n)).astype(np.float32)))
    a, b = gpu.upload(to_device(op_a.T, k, R16BF)), gpu.upload(to_device(op_b, k, R16BF))
    exact = op_a.astype(np.float64) @ op_b
    for ctype in (R32F, R16BF):
        c = gpu.upload(bytes(m * n * 4))
        gpu("cublas_gemm_ex", handle=blas, transa=T, transb=N, m=m, n=n, k=k, alpha=1.0, a=a,
            a_type=R16BF, lda=k, b=b, b_type=R16BF, ldb=k, beta=0.0, c=c, c_type=ctype, ldc=m,
            compute_type=COMPUTE_32F, algo=DEFAULT_ALGO)
        got = from_device(gpu.download(c, m * n * (4 if ctype == R32F else 2)), m, n, m, ctype)
        if ctype == R32F:
            np.testing.assert_allclose(got, exact, rtol=1e-5, atol=1e-5)
        else:
            np.testing.assert_array_equal(got, bf16_to_f32(f32_to_bf16(exact.astype(np.float32))))


def test_bf16_rounding_is_to_nearest_even() -> None:
    values = np.array([1.0, 1 + 2**-8, 1 + 3 * 2**-8, 1 + 2**-8 + 2**-20, -2.5, np.inf, -np.inf,
                       3.4e38], dtype=np.float32)
    expected = np.array([1.0, 1.0, 1 + 2**-6, 1 + 2**-7, -2.5, np.inf, -np.inf, np.inf],  # overflow
                        dtype=np.float32)
    np.testing.assert_array_equal(bf16_to_f32(f32_to_bf16(values)), expected)
    assert np.isnan(bf16_to_f32(f32_to_bf16(np.array([np.nan], dtype=np.float32)))).all()


def test_strided_batched_gemm_with_a_broadcast_operand(gpu: Gpu, blas: int) -> None:
    rng = np.random.default_rng(4)
    batch, m, n, k = 3, 4, 2, 5
    mats_a = rng.standard_normal((batch, m, k)).astype(np.float32)
    shared_b = rng.standard_normal((k, n)).astype(np.float32)
    a = gpu.upload(b"".join(to_device(mat, m) for mat in mats_a))
    b = gpu.upload(to_device(shared_b, k))
    c = gpu.upload(bytes(batch * (m * n + 16) * 4))
    gpu("cublas_gemm_strided_batched_ex", handle=blas, transa=N, transb=N, m=m, n=n, k=k, alpha=1.0,
        a=a, a_type=R32F, lda=m, stride_a=m * k, b=b, b_type=R32F, ldb=k, stride_b=0, beta=0.0, c=c,
        c_type=R32F, ldc=m, stride_c=m * n + 16, batch_count=batch, compute_type=COMPUTE_32F,
        algo=DEFAULT_ALGO)
    raw = gpu.download(c, batch * (m * n + 16) * 4)
    for i in range(batch):
        start = i * (m * n + 16) * 4
        got = from_device(raw[start:start + m * n * 4], m, n, m)
        np.testing.assert_allclose(got, mats_a[i].astype(np.float64) @ shared_b, rtol=1e-5, atol=1e-5)


def test_batched_gemm_reads_pointer_arrays_from_device_memory(gpu: Gpu, blas: int) -> None:
    rng = np.random.default_rng(5)
    m = n = k = 3
    mats = [rng.standard_normal((m, k)).astype(np.float16).astype(np.float32) for _ in range(4)]
    ptrs = [gpu.upload(to_device(mat, m, R16F)) for mat in mats]
    outs = [gpu.upload(bytes(m * n * 4)) for _ in range(2)]
    a_arr = gpu.upload(np.array(ptrs[:2], dtype="<u8").tobytes())
    b_arr = gpu.upload(np.array(ptrs[2:], dtype="<u8").tobytes())
    c_arr = gpu.upload(np.array(outs, dtype="<u8").tobytes())
    gpu("cublas_gemm_batched_ex", handle=blas, transa=N, transb=N, m=m, n=n, k=k, alpha=2.0, a=a_arr,
        a_type=R16F, lda=m, b=b_arr, b_type=R16F, ldb=k, beta=0.0, c=c_arr, c_type=R32F, ldc=m,
        batch_count=2, compute_type=COMPUTE_32F, algo=DEFAULT_ALGO)
    for i in range(2):
        got = from_device(gpu.download(outs[i], m * n * 4), m, n, m)
        np.testing.assert_allclose(got, 2.0 * (mats[i].astype(np.float64) @ mats[i + 2]), rtol=1e-5)


def test_gemm_on_a_vmm_range_that_straddles_two_chunks(gpu: Gpu, blas: int) -> None:
    g = 2 << 20
    base = int(gpu("mem_address_reserve", size=2 * g, alignment=0, addr=0, flags=0).dptr)
    for i in range(2):
        handle = int(gpu("mem_create", size=g, device=0, flags=0).handle)
        gpu("mem_map", ptr=base + i * g, size=g, offset=0, handle=handle, flags=0)
    gpu("mem_set_access", ptr=base, size=2 * g, device=0, flags=3)
    mat = np.arange(16, dtype=np.float32).reshape(4, 4)
    a = base + g - 32  # half of A in each chunk
    gpu("memcpy_htod", inp=to_device(mat, 4), dst=a, stream=0)
    gpu("cublas_sgemm", handle=blas, transa=N, transb=N, m=4, n=4, k=4, alpha=1.0, a=a, lda=4, b=a,
        ldb=4, beta=0.0, c=a, ldc=4)  # in place: A and B are read before C is written
    np.testing.assert_array_equal(from_device(gpu.download(a, 64), 4, 4, 4), mat @ mat)


def test_gemm_handle_stream_and_mode_errors(gpu: Gpu, blas: int) -> None:
    not_init = CublasStatus.CUBLAS_STATUS_NOT_INITIALIZED
    args = {"transa": N, "transb": N, "m": 1, "n": 1, "k": 1, "alpha": 1.0, "a": 0, "lda": 1, "b": 0,
            "ldb": 1, "beta": 0.0, "c": 0, "ldc": 1}
    gpu.fails(not_init, "cublas_sgemm", handle=blas + 1, **args)
    gpu.fails(not_init, "cublas_set_stream", handle=blas + 1, stream=0)
    gpu.fails(CublasStatus.CUBLAS_STATUS_INVALID_VALUE, "cublas_set_stream", handle=blas, stream=5)
    gpu.fails(CublasStatus.CUBLAS_STATUS_INVALID_VALUE, "cublas_set_math_mode", handle=blas, mode=4)
    gpu("cublas_set_math_mode", handle=blas, mode=3 | 16)
    stream = int(gpu("stream_create", flags=0).stream)
    gpu("cublas_set_stream", handle=blas, stream=stream)
    gpu("cublas_destroy", handle=blas)
    gpu.fails(not_init, "cublas_destroy", handle=blas)
    gpu.fails(not_init, "cublas_set_math_mode", handle=blas, mode=0)


def test_matrices_outside_the_vms_memory_fail_at_execution(gpu: Gpu, blas: int) -> None:
    failed = CublasStatus.CUBLAS_STATUS_EXECUTION_FAILED
    small = gpu.upload(bytes(12))  # room for 3 floats
    big = gpu.upload(bytes(64))
    args = {"transa": N, "transb": N, "m": 2, "n": 2, "k": 2, "alpha": 1.0, "lda": 2, "ldb": 2,
            "beta": 0.0, "ldc": 2}
    gpu.fails(failed, "cublas_sgemm", handle=blas, a=small, b=big, c=big, **args)
    gpu.fails(failed, "cublas_sgemm", handle=blas, a=big, b=big, c=small, **args)
    error = gpu.fails(failed, "cublas_sgemm", handle=blas, a=big, b=0xDEAD0000, c=big, **args)
    assert "matrix B" in error.message
    ex_args = {"transa": N, "transb": N, "m": 2, "n": 2, "k": 2, "alpha": 1.0, "a_type": R32F, "lda": 2,
               "b_type": R32F, "ldb": 2, "beta": 0.0, "c_type": R32F, "ldc": 2,
               "compute_type": COMPUTE_32F, "algo": DEFAULT_ALGO}
    gpu.fails(failed, "cublas_gemm_batched_ex", handle=blas, a=small, b=small, c=small, batch_count=2,
              **ex_args)  # 16 bytes of pointers do not fit in 12
    gpu.fails(failed, "cublas_gemm_strided_batched_ex", handle=blas, a=big, stride_a=4, b=big, stride_b=4,
              c=big, stride_c=4, batch_count=16, **ex_args)  # the last batches run off the end
    assert gpu.download(big, 64) == bytes(64)  # a GEMM that fails its checks writes nothing


@pytest.mark.parametrize(("a_type", "b_type", "c_type"), [
    (R32F, R32F, R16F), (R16F, R16BF, R32F), (R16BF, R16BF, R16F), (R32F, R16F, R32F)])
def test_type_combinations_cublas_does_not_offer(gpu: Gpu, blas: int, a_type: int, b_type: int,
                                                 c_type: int) -> None:
    buf = gpu.upload(bytes(64))
    gpu.fails(CublasStatus.CUBLAS_STATUS_NOT_SUPPORTED, "cublas_gemm_ex", handle=blas, transa=N, transb=N,
              m=2, n=2, k=2, alpha=1.0, a=buf, a_type=a_type, lda=2, b=buf, b_type=b_type, ldb=2, beta=0.0,
              c=buf, c_type=c_type, ldc=2, compute_type=COMPUTE_32F, algo=DEFAULT_ALGO)


def test_unknown_algorithm_is_an_invalid_value(gpu: Gpu, blas: int) -> None:
    buf = gpu.upload(bytes(64))
    gpu.fails(CublasStatus.CUBLAS_STATUS_INVALID_VALUE, "cublas_gemm_ex", handle=blas, transa=N, transb=N,
              m=2, n=2, k=2, alpha=1.0, a=buf, a_type=R32F, lda=2, b=buf, b_type=R32F, ldb=2, beta=0.0,
              c=buf, c_type=R32F, ldc=2, compute_type=COMPUTE_32F, algo=50)


def test_a_call_past_the_simulators_work_bound_is_not_supported_and_writes_nothing(gpu: Gpu, blas: int) -> None:
    """m*n*k over the batch, weighted by the compute type's cost: int8 GEMMs (no BLAS) count 64x."""
    r8i, r32i, compute_32i, n = 3, 10, 72, 1024
    a, b, c = gpu.upload(bytes(n * n)), gpu.upload(bytes(n * n)), gpu.upload(b"\x01" * (n * n * 4))
    error = gpu.fails(CublasStatus.CUBLAS_STATUS_NOT_SUPPORTED, "cublas_gemm_ex", handle=blas, transa=N,
                      transb=N, m=n, n=n, k=n, alpha=1.0, a=a, a_type=r8i, lda=n, b=b, b_type=r8i, ldb=n,
                      beta=0.0, c=c, c_type=r32i, ldc=n, compute_type=compute_32i, algo=DEFAULT_ALGO)
    assert f"at most {MAX_SIM_GEMM_WORK}" in error.message
    assert gpu.download(c, 16) == b"\x01" * 16
    small = gpu.upload(bytes(256 * 256 * 4))  # 2**24 multiply-adds a GEMM: 2**11 of them are too many
    strided: dict[str, Any] = {
        "transa": N, "transb": N, "m": 256, "n": 256, "k": 256, "alpha": 1.0, "a": small, "a_type": R32F,
        "lda": 256, "stride_a": 0, "b": small, "b_type": R32F, "ldb": 256, "stride_b": 0, "beta": 0.0, "c": small,
        "c_type": R32F, "ldc": 256, "stride_c": 0, "compute_type": COMPUTE_32F, "algo": DEFAULT_ALGO}
    gpu.fails(CublasStatus.CUBLAS_STATUS_NOT_SUPPORTED, "cublas_gemm_strided_batched_ex", handle=blas,
              batch_count=1 << 11, **strided)
    gpu("cublas_gemm_strided_batched_ex", handle=blas, batch_count=4, **strided)  # within the bound: runs
