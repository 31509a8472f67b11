/*
 * libcublas.so.13: the typed GEMM family on the protocol's GEMMs. cublasSgemmEx is GemmEx computing
 * in FP32; cublasSgemmBatched/StridedBatched are GemmBatchedEx/GemmStridedBatchedEx on FP32
 * matrices; the half-precision cublasHgemm family is the same on FP16 matrices with its FP16 scalars
 * widened, computed in FP32 and rounded to FP16 once (NVIDIA's may round partial sums to FP16: the
 * results may differ from its in the last bits, and are not less accurate). The D, C and Z families
 * are the same GEMMs on FP64, complex FP32 and complex FP64 matrices.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "shim.h"
#include "vgpu_protocol.h"

#define CUBLAS_COMPUTE_32F 68
#define CUBLAS_GEMM_DEFAULT (-1)

cublasStatus_t cublasGemmEx(cublasHandle_t h, int transa, int transb, int m, int n, int k, const void *alpha,
                            const void *A, int atype, int lda, const void *B, int btype, int ldb, const void *beta,
                            void *C, int ctype, int ldc, int compute, int algo);
cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t h, int transa, int transb, int m, int n, int k,
                                          const void *alpha, const void *A, int atype, int lda, long long stride_a,
                                          const void *B, int btype, int ldb, long long stride_b, const void *beta,
                                          void *C, int ctype, int ldc, long long stride_c, int batch, int compute,
                                          int algo);
cublasStatus_t cublasGemmBatchedEx(cublasHandle_t h, int transa, int transb, int m, int n, int k,
                                   const void *alpha, const void *const Aarray[], int atype, int lda,
                                   const void *const Barray[], int btype, int ldb, const void *beta,
                                   void *const Carray[], int ctype, int ldc, int batch, int compute, int algo);

/* IEEE binary16 -> float (every value exact); cublas.c reads f16 scalars with it too. */
VGPU_HIDDEN float vgpu_half_to_float(uint16_t h);
float vgpu_half_to_float(uint16_t h)
{
    int sign = h >> 15, exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff;
    float value;
    if (exponent == 0)
        value = ldexpf((float)mantissa, -24);
    else if (exponent == 31)
        value = mantissa ? NAN : INFINITY;
    else
        value = ldexpf((float)(mantissa | 0x400), exponent - 25);
    return sign ? -value : value;
}

/* The scalars of a half-precision call, widened (NULL stays NULL: the GEMM refuses it). */
static const float *widen(const void *h, float *out)
{
    if (!h)
        return NULL;
    uint16_t bits;
    memcpy(&bits, h, sizeof bits);
    *out = vgpu_half_to_float(bits);
    return out;
}

cublasStatus_t cublasSgemmEx(cublasHandle_t h, int transa, int transb, int m, int n, int k, const float *alpha,
                             const void *A, int atype, int lda, const void *B, int btype, int ldb,
                             const float *beta, void *C, int ctype, int ldc)
{
    return cublasGemmEx(h, transa, transb, m, n, k, alpha, A, atype, lda, B, btype, ldb, beta, C, ctype, ldc,
                        CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
}

cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t h, int transa, int transb, int m, int n, int k,
                                         const float *alpha, const float *A, int lda, long long stride_a,
                                         const float *B, int ldb, long long stride_b, const float *beta, float *C,
                                         int ldc, long long stride_c, int batch)
{
    return cublasGemmStridedBatchedEx(h, transa, transb, m, n, k, alpha, A, VGPU_CUDA_R_32F, lda, stride_a, B,
                                      VGPU_CUDA_R_32F, ldb, stride_b, beta, C, VGPU_CUDA_R_32F, ldc, stride_c, batch,
                                      CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
}

cublasStatus_t cublasSgemmBatched(cublasHandle_t h, int transa, int transb, int m, int n, int k, const float *alpha,
                                  const float *const Aarray[], int lda, const float *const Barray[], int ldb,
                                  const float *beta, float *const Carray[], int ldc, int batch)
{
    return cublasGemmBatchedEx(h, transa, transb, m, n, k, alpha, (const void *const *)Aarray, VGPU_CUDA_R_32F, lda,
                               (const void *const *)Barray, VGPU_CUDA_R_32F, ldb, beta, (void *const *)Carray,
                               VGPU_CUDA_R_32F, ldc, batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
}

cublasStatus_t cublasHgemm(cublasHandle_t h, int transa, int transb, int m, int n, int k, const void *alpha,
                           const void *A, int lda, const void *B, int ldb, const void *beta, void *C, int ldc)
{
    float a, b;
    return cublasGemmEx(h, transa, transb, m, n, k, widen(alpha, &a), A, VGPU_CUDA_R_16F, lda, B, VGPU_CUDA_R_16F,
                        ldb, widen(beta, &b), C, VGPU_CUDA_R_16F, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
}

cublasStatus_t cublasHgemmStridedBatched(cublasHandle_t h, int transa, int transb, int m, int n, int k,
                                         const void *alpha, const void *A, int lda, long long stride_a,
                                         const void *B, int ldb, long long stride_b, const void *beta, void *C,
                                         int ldc, long long stride_c, int batch)
{
    float a, b;
    return cublasGemmStridedBatchedEx(h, transa, transb, m, n, k, widen(alpha, &a), A, VGPU_CUDA_R_16F, lda,
                                      stride_a, B, VGPU_CUDA_R_16F, ldb, stride_b, widen(beta, &b), C,
                                      VGPU_CUDA_R_16F, ldc, stride_c, batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
}

cublasStatus_t cublasHgemmBatched(cublasHandle_t h, int transa, int transb, int m, int n, int k, const void *alpha,
                                  const void *const Aarray[], int lda, const void *const Barray[], int ldb,
                                  const void *beta, void *const Carray[], int ldc, int batch)
{
    float a, b;
    return cublasGemmBatchedEx(h, transa, transb, m, n, k, widen(alpha, &a), Aarray, VGPU_CUDA_R_16F, lda, Barray,
                               VGPU_CUDA_R_16F, ldb, widen(beta, &b), Carray, VGPU_CUDA_R_16F, ldc, batch,
                               CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
}

/* Double and complex precision: the same GEMMs on FP64, complex FP32 and complex FP64 matrices with
 * CUBLAS_COMPUTE_64F / CUBLAS_COMPUTE_32F (cuBLAS's own type table for them). */
#define GEMM_FAMILY(X, T, TYPE, COMPUTE)                                                                           \
    cublasStatus_t cublas##X##gemm_v2(cublasHandle_t h, int transa, int transb, int m, int n, int k,              \
                                      const T *alpha, const T *A, int lda, const T *B, int ldb, const T *beta,    \
                                      T *C, int ldc);                                                              \
    cublasStatus_t cublas##X##gemm_v2(cublasHandle_t h, int transa, int transb, int m, int n, int k,              \
                                      const T *alpha, const T *A, int lda, const T *B, int ldb, const T *beta,    \
                                      T *C, int ldc)                                                               \
    {                                                                                                              \
        return cublasGemmEx(h, transa, transb, m, n, k, alpha, A, TYPE, lda, B, TYPE, ldb, beta, C, TYPE, ldc,    \
                            COMPUTE, CUBLAS_GEMM_DEFAULT);                                                         \
    }                                                                                                              \
    cublasStatus_t cublas##X##gemmStridedBatched(cublasHandle_t h, int transa, int transb, int m, int n, int k,   \
                                                 const T *alpha, const T *A, int lda, long long stride_a,          \
                                                 const T *B, int ldb, long long stride_b, const T *beta, T *C,     \
                                                 int ldc, long long stride_c, int batch);                          \
    cublasStatus_t cublas##X##gemmStridedBatched(cublasHandle_t h, int transa, int transb, int m, int n, int k,   \
                                                 const T *alpha, const T *A, int lda, long long stride_a,          \
                                                 const T *B, int ldb, long long stride_b, const T *beta, T *C,     \
                                                 int ldc, long long stride_c, int batch)                           \
    {                                                                                                              \
        return cublasGemmStridedBatchedEx(h, transa, transb, m, n, k, alpha, A, TYPE, lda, stride_a, B, TYPE,     \
                                          ldb, stride_b, beta, C, TYPE, ldc, stride_c, batch, COMPUTE,             \
                                          CUBLAS_GEMM_DEFAULT);                                                    \
    }                                                                                                              \
    cublasStatus_t cublas##X##gemmBatched(cublasHandle_t h, int transa, int transb, int m, int n, int k,          \
                                          const T *alpha, const T *const Aarray[], int lda,                        \
                                          const T *const Barray[], int ldb, const T *beta, T *const Carray[],      \
                                          int ldc, int batch);                                                     \
    cublasStatus_t cublas##X##gemmBatched(cublasHandle_t h, int transa, int transb, int m, int n, int k,          \
                                          const T *alpha, const T *const Aarray[], int lda,                        \
                                          const T *const Barray[], int ldb, const T *beta, T *const Carray[],      \
                                          int ldc, int batch)                                                      \
    {                                                                                                              \
        return cublasGemmBatchedEx(h, transa, transb, m, n, k, alpha, (const void *const *)Aarray, TYPE, lda,     \
                                   (const void *const *)Barray, TYPE, ldb, beta, (void *const *)Carray, TYPE, ldc, \
                                   batch, COMPUTE, CUBLAS_GEMM_DEFAULT);                                           \
    }

typedef struct { float re, im; } vgpu_complex_f32;
typedef struct { double re, im; } vgpu_complex_f64;
GEMM_FAMILY(D, double, VGPU_CUDA_R_64F, VGPU_CUBLAS_COMPUTE_64F)
GEMM_FAMILY(C, vgpu_complex_f32, VGPU_CUDA_C_32F, VGPU_CUBLAS_COMPUTE_32F)
GEMM_FAMILY(Z, vgpu_complex_f64, VGPU_CUDA_C_64F, VGPU_CUBLAS_COMPUTE_64F)

/* Matrix-vector products as GEMMs: y = alpha op(A) x + beta y is y^T = alpha x^T op(A)^T + beta y^T,
 * x^T a 1 x len(x) matrix whose leading dimension is incx, y^T a 1 x len(y) one whose is incy (what
 * UnifiedMemoryStreams and other programs that offload a gemv need). Negative increments (a vector
 * walked backwards) are not served. */
static cublasStatus_t gemv(cublasHandle_t h, int trans, int m, int n, const void *alpha, const void *A, int lda,
                           const void *x, int incx, const void *beta, void *y, int incy, int type, int compute)
{
    if (trans < 0 || trans > 2 || m < 0 || n < 0 || lda < (m > 1 ? m : 1) || incx == 0 || incy == 0)
        return CUBLAS_STATUS_INVALID_VALUE;
    if (incx < 0 || incy < 0)
        VGPU_UNSUPPORTED_USE(CUBLAS_STATUS_NOT_SUPPORTED, "cublas*gemv: negative increments are not served");
    if (!m || !n)
        return CUBLAS_STATUS_SUCCESS; /* BLAS's quick return: y is left as it is */
    int rows = trans == 0 ? m : n, cols = trans == 0 ? n : m; /* of op(A): y has rows, x cols */
    return cublasGemmEx(h, 0, trans == 0 ? 1 : 0, 1, rows, cols, alpha, x, type, incx, A, type, lda, beta, y, type,
                        incy, compute, CUBLAS_GEMM_DEFAULT);
}

cublasStatus_t cublasSgemv_v2(cublasHandle_t h, int trans, int m, int n, const float *alpha, const float *A, int lda,
                              const float *x, int incx, const float *beta, float *y, int incy);
cublasStatus_t cublasSgemv_v2(cublasHandle_t h, int trans, int m, int n, const float *alpha, const float *A, int lda,
                              const float *x, int incx, const float *beta, float *y, int incy)
{
    return gemv(h, trans, m, n, alpha, A, lda, x, incx, beta, y, incy, VGPU_CUDA_R_32F, CUBLAS_COMPUTE_32F);
}

cublasStatus_t cublasDgemv_v2(cublasHandle_t h, int trans, int m, int n, const double *alpha, const double *A,
                              int lda, const double *x, int incx, const double *beta, double *y, int incy);
cublasStatus_t cublasDgemv_v2(cublasHandle_t h, int trans, int m, int n, const double *alpha, const double *A,
                              int lda, const double *x, int incx, const double *beta, double *y, int incy)
{
    return gemv(h, trans, m, n, alpha, A, lda, x, incx, beta, y, incy, VGPU_CUDA_R_64F, VGPU_CUBLAS_COMPUTE_64F);
}
