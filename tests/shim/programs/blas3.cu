// cuBLAS's triangular solves and the Ex GEMMs' type table through the shim, compiled against NVIDIA's
// cublas_v2.h: cublasStrsm (left and right, lower and upper, transposed, unit diagonal) and
// cublasStrsmBatched (the llama.cpp CUDA backend links it) solve systems whose solutions are exact,
// reading only A's triangle (the other holds NaNs); cublasGemmStridedBatchedEx in FP64, int8 -> int32,
// FP16 compute and complex FP32 (A^H) against exact host references; a combination outside cuBLAS's
// table is CUBLAS_STATUS_NOT_SUPPORTED at once; cublasDgemm and cublasZgemmStridedBatched on the same GEMMs;
// cublasDgetrfBatched (P A = L U, a singular matrix's info).
#include <cmath>
#include <complex>
#include <cstdint>
#include <cstring>
#include <vector>

#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "check.h"

template <typename T>
static T* to_device(const std::vector<T>& v) {
    T* d = nullptr;
    cudaMalloc(&d, v.size() * sizeof(T));
    cudaMemcpy(d, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice);
    return d;
}

template <typename T>
static std::vector<T> from_device(const T* d, size_t count) {
    std::vector<T> v(count);
    cudaDeviceSynchronize();
    cudaMemcpy(v.data(), d, count * sizeof(T), cudaMemcpyDeviceToHost);
    return v;
}

static int small(unsigned& state, int span) {  // -span..span, deterministic
    state = state * 1664525u + 1013904223u;
    return static_cast<int>((state >> 9) % (2u * span + 1)) - span;
}

// A k x k triangle (column-major, ld = k) whose solves are exact in FP32: small integers off the
// diagonal, powers of two on it; NaN where cuBLAS must not read (the other triangle, a unit diagonal).
static std::vector<float> triangle(int k, bool lower, bool unit, unsigned seed, std::vector<float>& dense) {
    std::vector<float> stored(k * k, NAN);
    dense.assign(k * k, 0.0f);
    const float diagonal[] = {1.0f, 2.0f, 0.5f, -1.0f};
    for (int j = 0; j < k; j++)
        for (int i = 0; i < k; i++) {
            bool inside = lower ? i > j : i < j;
            if (i == j) {
                dense[i + j * k] = unit ? 1.0f : diagonal[(i + seed) % 4];
                if (!unit) stored[i + j * k] = dense[i + j * k];
            } else if (inside) {
                dense[i + j * k] = stored[i + j * k] = static_cast<float>(small(seed, 2));
            }
        }
    return stored;
}

// B = op(A) X (left) or X op(A) (right), column-major, in double (exact for these values)
static std::vector<float> product(bool left, bool trans, int m, int n, const std::vector<float>& a,
                                  const std::vector<float>& x, float alpha) {
    int k = left ? m : n;
    auto op = [&](int i, int j) { return trans ? a[j + i * k] : a[i + j * k]; };
    std::vector<float> b(m * n);
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            double sum = 0;
            for (int p = 0; p < k; p++) sum += left ? op(i, p) * x[p + j * m] : x[i + p * m] * op(p, j);
            b[i + j * m] = static_cast<float>(sum / alpha);
        }
    return b;
}

static void check_trsm(cublasHandle_t h, const char* name, cublasSideMode_t side, cublasFillMode_t uplo,
                       cublasOperation_t trans, cublasDiagType_t diag, unsigned seed) {
    const int m = 5, n = 4;
    bool left = side == CUBLAS_SIDE_LEFT;
    int k = left ? m : n;
    std::vector<float> dense, x(m * n);
    std::vector<float> stored = triangle(k, uplo == CUBLAS_FILL_MODE_LOWER, diag == CUBLAS_DIAG_UNIT, seed, dense);
    for (auto& v : x) v = static_cast<float>(small(seed, 4));
    float alpha = 2.0f;
    std::vector<float> b = product(left, trans != CUBLAS_OP_N, m, n, dense, x, alpha);
    float *dA = to_device(stored), *dB = to_device(b);
    cublasStatus_t st = cublasStrsm(h, side, uplo, trans, diag, m, n, &alpha, dA, k, dB, m);
    std::vector<float> got = from_device(dB, b.size());
    int wrong = 0;
    for (int i = 0; i < m * n; i++) wrong += got[i] != x[i];
    report(name, st == CUBLAS_STATUS_SUCCESS && wrong == 0, "status=%d wrong=%d of %d", st, wrong, m * n);
    cudaFree(dA);
    cudaFree(dB);
}

int main() {
    cublasHandle_t h = nullptr;
    cublasStatus_t st = cublasCreate(&h);
    report("handle", st == CUBLAS_STATUS_SUCCESS, "status=%d", st);

    check_trsm(h, "strsm_left_lower", CUBLAS_SIDE_LEFT, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N, CUBLAS_DIAG_NON_UNIT, 1);
    check_trsm(h, "strsm_left_upper_trans", CUBLAS_SIDE_LEFT, CUBLAS_FILL_MODE_UPPER, CUBLAS_OP_T,
               CUBLAS_DIAG_NON_UNIT, 2);
    check_trsm(h, "strsm_right_upper", CUBLAS_SIDE_RIGHT, CUBLAS_FILL_MODE_UPPER, CUBLAS_OP_N, CUBLAS_DIAG_NON_UNIT,
               3);
    check_trsm(h, "strsm_right_lower_unit_trans", CUBLAS_SIDE_RIGHT, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_T,
               CUBLAS_DIAG_UNIT, 4);

    // StrsmBatched: three independent systems, the pointer arrays in device memory
    {
        const int m = 4, n = 3, batch = 3;
        std::vector<float*> a_ptrs, b_ptrs;
        std::vector<std::vector<float>> xs;
        unsigned seed = 9;
        for (int i = 0; i < batch; i++) {
            std::vector<float> dense, x(m * n);
            std::vector<float> stored = triangle(m, true, false, seed + i, dense);
            for (auto& v : x) v = static_cast<float>(small(seed, 4));
            a_ptrs.push_back(to_device(stored));
            b_ptrs.push_back(to_device(product(true, false, m, n, dense, x, 1.0f)));
            xs.push_back(x);
        }
        float** dA = to_device(a_ptrs);
        float** dB = to_device(b_ptrs);
        float one = 1.0f;
        st = cublasStrsmBatched(h, CUBLAS_SIDE_LEFT, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N, CUBLAS_DIAG_NON_UNIT, m, n,
                                &one, dA, m, dB, m, batch);
        int wrong = 0;
        for (int i = 0; i < batch; i++) {
            std::vector<float> got = from_device(b_ptrs[i], m * n);
            for (int j = 0; j < m * n; j++) wrong += got[j] != xs[i][j];
            cudaFree(a_ptrs[i]);
            cudaFree(b_ptrs[i]);
        }
        cublasStatus_t bad_ld = cublasStrsmBatched(h, CUBLAS_SIDE_LEFT, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N,
                                                   CUBLAS_DIAG_NON_UNIT, m, n, &one, dA, m - 1, dB, m, batch);
        report("strsm_batched", st == CUBLAS_STATUS_SUCCESS && wrong == 0 && bad_ld == CUBLAS_STATUS_INVALID_VALUE,
               "status=%d wrong=%d invalid_lda=%d", st, wrong, bad_ld);
        cudaFree(dA);
        cudaFree(dB);
    }

    // GemmStridedBatchedEx, FP64: C_i = 0.5 A_i B_i - C_i, two batches of 3x2 = 3x4 . 4x2
    {
        const int m = 3, n = 2, k = 4, batch = 2;
        unsigned seed = 21;
        std::vector<double> A(m * k * batch), B(k * n * batch), C(m * n * batch);
        for (auto& v : A) v = small(seed, 3);
        for (auto& v : B) v = small(seed, 3);
        for (auto& v : C) v = small(seed, 3);
        double *dA = to_device(A), *dB = to_device(B), *dC = to_device(C);
        double alpha = 0.5, beta = -1.0;
        st = cublasGemmStridedBatchedEx(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &alpha, dA, CUDA_R_64F, m, m * k, dB,
                                        CUDA_R_64F, k, k * n, &beta, dC, CUDA_R_64F, m, m * n, batch,
                                        CUBLAS_COMPUTE_64F, CUBLAS_GEMM_DEFAULT);
        std::vector<double> got = from_device(dC, C.size());
        int wrong = 0;
        for (int b = 0; b < batch; b++)
            for (int j = 0; j < n; j++)
                for (int i = 0; i < m; i++) {
                    double sum = 0;
                    for (int p = 0; p < k; p++) sum += A[b * m * k + i + p * m] * B[b * k * n + p + j * k];
                    wrong += got[b * m * n + i + j * m] != alpha * sum + beta * C[b * m * n + i + j * m];
                }
        report("gemm_strided_batched_f64", st == CUBLAS_STATUS_SUCCESS && wrong == 0, "status=%d wrong=%d", st, wrong);
        cudaFree(dA);
        cudaFree(dB);
        cudaFree(dC);
    }

    // int8 x int8 -> int32 with CUBLAS_COMPUTE_32I (int32 scalars), A^T B
    {
        const int m = 4, n = 4, k = 8;
        unsigned seed = 33;
        std::vector<int8_t> A(k * m), B(k * n);
        std::vector<int32_t> C(m * n);
        for (auto& v : A) v = static_cast<int8_t>(small(seed, 100));
        for (auto& v : B) v = static_cast<int8_t>(small(seed, 100));
        for (auto& v : C) v = small(seed, 1000);
        int8_t *dA = to_device(A), *dB = to_device(B);
        int32_t* dC = to_device(C);
        int32_t alpha = 3, beta = -2;
        st = cublasGemmStridedBatchedEx(h, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &alpha, dA, CUDA_R_8I, k, 0, dB,
                                        CUDA_R_8I, k, 0, &beta, dC, CUDA_R_32I, m, 0, 1, CUBLAS_COMPUTE_32I,
                                        CUBLAS_GEMM_DEFAULT);
        std::vector<int32_t> got = from_device(dC, C.size());
        int wrong = 0;
        for (int j = 0; j < n; j++)
            for (int i = 0; i < m; i++) {
                int32_t sum = 0;
                for (int p = 0; p < k; p++) sum += A[p + i * k] * B[p + j * k];
                wrong += got[i + j * m] != alpha * sum + beta * C[i + j * m];
            }
        report("gemm_int8_int32", st == CUBLAS_STATUS_SUCCESS && wrong == 0, "status=%d wrong=%d", st, wrong);
        cudaFree(dA);
        cudaFree(dB);
        cudaFree(dC);
    }

    // FP16 compute (half scalars), FP16 matrices: small integers, exact in half
    {
        const int m = 2, n = 2, k = 3;
        std::vector<__half> A(m * k), B(k * n), C(m * n);
        std::vector<float> a(m * k), b(k * n), c(m * n);
        unsigned seed = 44;
        for (int i = 0; i < m * k; i++) A[i] = __float2half(a[i] = static_cast<float>(small(seed, 3)));
        for (int i = 0; i < k * n; i++) B[i] = __float2half(b[i] = static_cast<float>(small(seed, 3)));
        for (int i = 0; i < m * n; i++) C[i] = __float2half(c[i] = static_cast<float>(small(seed, 3)));
        __half *dA = to_device(A), *dB = to_device(B), *dC = to_device(C);
        __half alpha = __float2half(2.0f), beta = __float2half(1.0f);
        st = cublasGemmStridedBatchedEx(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &alpha, dA, CUDA_R_16F, m, 0, dB,
                                        CUDA_R_16F, k, 0, &beta, dC, CUDA_R_16F, m, 0, 1, CUBLAS_COMPUTE_16F,
                                        CUBLAS_GEMM_DEFAULT);
        std::vector<__half> got = from_device(dC, C.size());
        int wrong = 0;
        for (int j = 0; j < n; j++)
            for (int i = 0; i < m; i++) {
                float sum = 0;
                for (int p = 0; p < k; p++) sum += a[i + p * m] * b[p + j * k];
                wrong += __half2float(got[i + j * m]) != 2.0f * sum + c[i + j * m];
            }
        report("gemm_f16_compute", st == CUBLAS_STATUS_SUCCESS && wrong == 0, "status=%d wrong=%d", st, wrong);
        cudaFree(dA);
        cudaFree(dB);
        cudaFree(dC);
    }

    // complex FP32: C = alpha A^H B + beta C
    {
        typedef std::complex<float> cf;
        const int m = 2, n = 3, k = 2;
        unsigned seed = 55;
        std::vector<cf> A(k * m), B(k * n), C(m * n);  // A stored k x m
        for (auto& v : A) v = cf(small(seed, 3), small(seed, 3));
        for (auto& v : B) v = cf(small(seed, 3), small(seed, 3));
        for (auto& v : C) v = cf(small(seed, 3), small(seed, 3));
        cf *dA = to_device(A), *dB = to_device(B), *dC = to_device(C);
        cf alpha(1.0f, -2.0f), beta(0.0f, 1.0f);
        st = cublasGemmStridedBatchedEx(h, CUBLAS_OP_C, CUBLAS_OP_N, m, n, k, &alpha, dA, CUDA_C_32F, k, 0, dB,
                                        CUDA_C_32F, k, 0, &beta, dC, CUDA_C_32F, m, 0, 1, CUBLAS_COMPUTE_32F,
                                        CUBLAS_GEMM_DEFAULT);
        std::vector<cf> got = from_device(dC, C.size());
        int wrong = 0;
        for (int j = 0; j < n; j++)
            for (int i = 0; i < m; i++) {
                cf sum = 0;
                for (int p = 0; p < k; p++) sum += std::conj(A[p + i * k]) * B[p + j * k];
                wrong += got[i + j * m] != alpha * sum + beta * C[i + j * m];
            }
        report("gemm_complex_f32", st == CUBLAS_STATUS_SUCCESS && wrong == 0, "status=%d wrong=%d", st, wrong);
        cudaFree(dA);
        cudaFree(dB);
        cudaFree(dC);
    }

    // the typed double and complex GEMMs: cublasDgemm and cublasZgemmStridedBatched (A^T, conjugated B)
    {
        const int m = 3, n = 2, k = 2;
        unsigned seed = 66;
        std::vector<double> A(k * m), B(k * n), C(m * n, 1.0);
        for (auto& v : A) v = small(seed, 3);
        for (auto& v : B) v = small(seed, 3);
        double *dA = to_device(A), *dB = to_device(B), *dC = to_device(C);
        double alpha = 2.0, beta = 0.5;
        cublasStatus_t sd = cublasDgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &alpha, dA, k, dB, k, &beta, dC, m);
        std::vector<double> got = from_device(dC, C.size());
        int wrong = 0;
        for (int j = 0; j < n; j++)
            for (int i = 0; i < m; i++) {
                double sum = 0;
                for (int p = 0; p < k; p++) sum += A[p + i * k] * B[p + j * k];
                wrong += got[i + j * m] != alpha * sum + beta * C[i + j * m];
            }
        typedef std::complex<double> cd;
        std::vector<cd> Z(2 * 2), W(2 * 2), V(2 * 2, cd(0, 0));
        for (auto& v : Z) v = cd(small(seed, 3), small(seed, 3));
        for (auto& v : W) v = cd(small(seed, 3), small(seed, 3));
        cd *dZ = to_device(Z), *dW = to_device(W), *dV = to_device(V);
        cd one(1, 0), zero(0, 0);
        cublasStatus_t sz = cublasZgemmStridedBatched(
            h, CUBLAS_OP_N, CUBLAS_OP_C, 2, 2, 2, reinterpret_cast<cuDoubleComplex*>(&one),
            reinterpret_cast<cuDoubleComplex*>(dZ), 2, 0, reinterpret_cast<cuDoubleComplex*>(dW), 2, 0,
            reinterpret_cast<cuDoubleComplex*>(&zero), reinterpret_cast<cuDoubleComplex*>(dV), 2, 0, 1);
        std::vector<cd> gz = from_device(dV, V.size());
        for (int j = 0; j < 2; j++)
            for (int i = 0; i < 2; i++) {
                cd sum = 0;
                for (int p = 0; p < 2; p++) sum += Z[i + p * 2] * std::conj(W[j + p * 2]);
                wrong += gz[i + j * 2] != sum;
            }
        report("dgemm_zgemm", sd == CUBLAS_STATUS_SUCCESS && sz == CUBLAS_STATUS_SUCCESS && wrong == 0,
               "status=%d/%d wrong=%d", sd, sz, wrong);
        cudaFree(dA);
        cudaFree(dB);
        cudaFree(dC);
        cudaFree(dZ);
        cudaFree(dW);
        cudaFree(dV);
    }

    // cublasDgetrfBatched: P A = L U with partial pivoting, and a singular matrix's info
    {
        const int n = 3;
        std::vector<double> A = {2, 4, -2, 1, -1, 3, 3, 0, 1};  // column-major; pivots rows 2, 2, 3
        std::vector<double> S = {1, 2, 0, 2, 4, 0, 0, 0, 1};     // second column twice the first: U(2,2) = 0
        double *dA = to_device(A), *dS = to_device(S);
        std::vector<double*> ptrs = {dA, dS};
        double** dptrs = to_device(ptrs);
        int *dpiv = nullptr, *dinfo = nullptr;
        cudaMalloc(&dpiv, 2 * n * sizeof(int));
        cudaMalloc(&dinfo, 2 * sizeof(int));
        cublasStatus_t sg = cublasDgetrfBatched(h, n, dptrs, n, dpiv, dinfo, 2);
        std::vector<double> lu = from_device(dA, A.size());
        std::vector<int> piv = from_device(dpiv, 2 * n), info = from_device(dinfo, 2);
        // rebuild L U and compare with the rows of A swapped as the pivots say
        std::vector<double> pa = A;
        for (int k = 0; k < n; k++)
            for (int j = 0; j < n; j++) std::swap(pa[k + j * n], pa[piv[k] - 1 + j * n]);
        double worst = 0;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) {
                double sum = 0;
                for (int p = 0; p <= (i < j ? i : j); p++) sum += (p == i ? 1.0 : lu[i + p * n]) * lu[p + j * n];
                worst = std::fmax(worst, std::fabs(sum - pa[i + j * n]));
            }
        report("getrf_batched", sg == CUBLAS_STATUS_SUCCESS && worst < 1e-12 && piv[0] == 2 && info[0] == 0 &&
                   info[1] == 2, "status=%d pivots=%d,%d,%d info=%d,%d error=%g", sg, piv[0], piv[1], piv[2],
               info[0], info[1], worst);
        cudaFree(dA);
        cudaFree(dS);
        cudaFree(dptrs);
        cudaFree(dpiv);
        cudaFree(dinfo);
    }

    // a combination cuBLAS's table lacks: FP64 matrices with FP32 compute
    {
        double one = 1.0;
        void* d = nullptr;
        cudaMalloc(&d, 64);
        st = cublasGemmStridedBatchedEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 1, &one, d, CUDA_R_64F, 1, 0, d,
                                        CUDA_R_64F, 1, 0, &one, d, CUDA_R_64F, 1, 0, 1, CUBLAS_COMPUTE_32F,
                                        CUBLAS_GEMM_DEFAULT);
        report("gemm_type_not_offered", st == CUBLAS_STATUS_NOT_SUPPORTED, "status=%d", st);
        cudaFree(d);
    }

    st = cublasDestroy(h);
    report("destroy", st == CUBLAS_STATUS_SUCCESS && cudaDeviceSynchronize() == cudaSuccess, "status=%d", st);
    return finish();
}
