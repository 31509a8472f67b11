// cuBLAS through the shim, compiled against NVIDIA's cublas_v2.h: a handle on a stream, math
// mode, Sgemm, GemmEx, GemmStridedBatchedEx and GemmBatchedEx checked against a host reference,
// and an invalid leading dimension refused.
#include <cmath>
#include <cstdio>
#include <vector>

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "check.h"

// column-major C = alpha * op(A) op(B) + beta * C, on the host in double
static void reference(bool ta, bool tb, int m, int n, int k, float alpha, const float* A, int lda, const float* B,
                      int ldb, float beta, float* C, int ldc) {
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            double sum = 0.0;
            for (int p = 0; p < k; p++) {
                double a = ta ? A[p + i * lda] : A[i + p * lda];
                double b = tb ? B[j + p * ldb] : B[p + j * ldb];
                sum += a * b;
            }
            C[i + j * ldc] = static_cast<float>(alpha * sum + beta * C[i + j * ldc]);
        }
}

static double max_rel_error(const std::vector<float>& got, const std::vector<float>& want) {
    double worst = 0.0;
    for (size_t i = 0; i < got.size(); i++) {
        double err = std::fabs(got[i] - want[i]) / (std::fabs(want[i]) + 1.0);
        if (err > worst || std::isnan(err)) worst = std::isnan(err) ? 1e30 : err;
    }
    return worst;
}

static std::vector<float> filled(size_t count, int seed) {
    std::vector<float> v(count);
    unsigned state = 12345u + static_cast<unsigned>(seed) * 7919u;
    for (auto& x : v) {
        state = state * 1664525u + 1013904223u;
        x = static_cast<float>(static_cast<int>(state >> 9) % 2001 - 1000) / 500.0f;
    }
    return v;
}

static float* to_device(const std::vector<float>& v) {
    float* d = nullptr;
    cudaMalloc(&d, v.size() * sizeof(float));
    cudaMemcpy(d, v.data(), v.size() * sizeof(float), cudaMemcpyHostToDevice);
    return d;
}

static std::vector<float> from_device(const float* d, size_t count, cudaStream_t s) {
    std::vector<float> v(count);
    cudaMemcpyAsync(v.data(), d, count * sizeof(float), cudaMemcpyDeviceToHost, s);
    cudaStreamSynchronize(s);
    return v;
}

int main() {
    const int m = 64, n = 48, k = 32;
    cublasHandle_t h = nullptr;
    cublasStatus_t st = cublasCreate(&h);
    cudaStream_t s;
    cudaStreamCreate(&s);
    cublasStatus_t st2 = cublasSetStream(h, s);
    cublasStatus_t st3 = cublasSetMathMode(h, CUBLAS_DEFAULT_MATH);
    cudaStream_t got = nullptr;
    cublasGetStream(h, &got);
    report("handle", st == CUBLAS_STATUS_SUCCESS && !st2 && !st3 && got == s, "status=%d/%d/%d", st, st2, st3);

    // Sgemm: C[m,n] = 1.5 A[m,k] B[k,n] + 0.5 C
    std::vector<float> A = filled(m * k, 1), B = filled(k * n, 2), C = filled(m * n, 3);
    float *dA = to_device(A), *dB = to_device(B), *dC = to_device(C);
    float alpha = 1.5f, beta = 0.5f;
    st = cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &alpha, dA, m, dB, k, &beta, dC, m);
    std::vector<float> want = C;
    reference(false, false, m, n, k, alpha, A.data(), m, B.data(), k, beta, want.data(), m);
    double err = max_rel_error(from_device(dC, m * n, s), want);
    report("sgemm", st == CUBLAS_STATUS_SUCCESS && err < 1e-4, "status=%d max_rel_error=%.2e", st, err);

    // GemmEx, A transposed (stored k x m), 32-bit floats throughout
    std::vector<float> At = filled(k * m, 4), C2 = filled(m * n, 5);
    float *dAt = to_device(At), *dC2 = to_device(C2);
    float one = 1.0f, zero = 0.0f;
    st = cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &one, dAt, CUDA_R_32F, k, dB, CUDA_R_32F, k, &zero, dC2,
                      CUDA_R_32F, m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    want = C2;
    reference(true, false, m, n, k, 1.0f, At.data(), k, B.data(), k, 0.0f, want.data(), m);
    err = max_rel_error(from_device(dC2, m * n, s), want);
    report("gemm_ex", st == CUBLAS_STATUS_SUCCESS && err < 1e-4, "status=%d max_rel_error=%.2e", st, err);

    // GemmStridedBatchedEx: three independent products laid out back to back
    const int batch = 3;
    std::vector<float> As = filled(batch * m * k, 6), Bs = filled(batch * k * n, 7), Cs = filled(batch * m * n, 8);
    float *dAs = to_device(As), *dBs = to_device(Bs), *dCs = to_device(Cs);
    st = cublasGemmStridedBatchedEx(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &alpha, dAs, CUDA_R_32F, m,
                                    (long long)m * k, dBs, CUDA_R_32F, k, (long long)k * n, &beta, dCs, CUDA_R_32F, m,
                                    (long long)m * n, batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    want = Cs;
    for (int b = 0; b < batch; b++)
        reference(false, false, m, n, k, alpha, As.data() + b * m * k, m, Bs.data() + b * k * n, k, beta,
                  want.data() + b * m * n, m);
    std::vector<float> strided = from_device(dCs, batch * m * n, s);
    err = max_rel_error(strided, want);
    report("gemm_strided_batched_ex", st == CUBLAS_STATUS_SUCCESS && err < 1e-4, "status=%d batches=%d max_rel_error=%.2e",
           st, batch, err);

    // GemmBatchedEx: the same products through device arrays of device pointers
    cudaMemcpy(dCs, Cs.data(), Cs.size() * sizeof(float), cudaMemcpyHostToDevice);
    const void* ha[batch];
    const void* hb[batch];
    void* hc[batch];
    for (int b = 0; b < batch; b++) {
        ha[b] = dAs + b * m * k;
        hb[b] = dBs + b * k * n;
        hc[b] = dCs + b * m * n;
    }
    void **dpa, **dpb, **dpc;
    cudaMalloc(&dpa, sizeof ha);
    cudaMalloc(&dpb, sizeof hb);
    cudaMalloc(&dpc, sizeof hc);
    cudaMemcpy(dpa, ha, sizeof ha, cudaMemcpyHostToDevice);
    cudaMemcpy(dpb, hb, sizeof hb, cudaMemcpyHostToDevice);
    cudaMemcpy(dpc, hc, sizeof hc, cudaMemcpyHostToDevice);
    st = cublasGemmBatchedEx(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &alpha, (const void* const*)dpa, CUDA_R_32F, m,
                             (const void* const*)dpb, CUDA_R_32F, k, &beta, (void* const*)dpc, CUDA_R_32F, m, batch,
                             CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    err = max_rel_error(from_device(dCs, batch * m * n, s), want);
    report("gemm_batched_ex", st == CUBLAS_STATUS_SUCCESS && err < 1e-4, "status=%d max_rel_error=%.2e", st, err);

    // a leading dimension smaller than the matrix's rows: refused before anything is posted
    st = cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &alpha, dA, m - 1, dB, k, &beta, dC, m);
    report("invalid_lda", st == CUBLAS_STATUS_INVALID_VALUE, "status=%d (%s)", st, cublasGetStatusName(st));

    // a GEMM the host refuses (A is no allocation of ours): posted, its failure reported by the
    // next synchronize as the CUDA error that means it, not as a raw cuBLAS status
    st = cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &alpha, reinterpret_cast<const float*>(0x1000), m, dB, k,
                     &beta, dC, m);
    cudaError_t reported = cudaStreamSynchronize(s);
    report("latched_gemm_error", st == CUBLAS_STATUS_SUCCESS &&
               (reported == cudaErrorInvalidValue || reported == cudaErrorIllegalAddress ||
                reported == cudaErrorLaunchFailure),
           "posted=%d reported=%d (%s)", st, STATUS(reported));

    cudaError_t e = cudaStreamSynchronize(s);
    st = cublasDestroy(h);
    report("destroy", st == CUBLAS_STATUS_SUCCESS && e == cudaSuccess, "status=%d sync=%d", st, e);
    for (void* p : {(void*)dA, (void*)dB, (void*)dC, (void*)dAt, (void*)dC2, (void*)dAs, (void*)dBs, (void*)dCs,
                    (void*)dpa, (void*)dpb, (void*)dpc})
        cudaFree(p);
    cudaStreamDestroy(s);
    return finish();
}
