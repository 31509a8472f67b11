/*
 * libcublas.so.13: handles, stream, math mode and the GEMMs the protocol carries, on the host's
 * cuBLAS (sim: NumPy).
 *
 * A handle is a record with the host's id and what was set on it (stream, math mode). GEMMs are
 * asynchronous in cuBLAS, so they are posted; their arguments are checked here first, by the
 * same rules as the host's (dimensions, leading dimensions, operations, types), so that a call
 * that cannot succeed fails at once with its cuBLAS status instead of later as a latched error.
 * Scalars are read from host memory (CUBLAS_POINTER_MODE_HOST) in the GEMM's scale type (f16, f32,
 * f64, int32, complex f32/f64) and travel as doubles, exactly; device-resident scalars are not
 * served. Every type combination cublasGemmEx's table offers is served; the triangular solves
 * (cublasStrsm_v2, cublasStrsmBatched) and the batched LU factorizations (cublas<S,D,C,Z>getrfBatched)
 * are posted like the GEMMs.
 */
#include <stdlib.h>
#include <string.h>

#include "cublas_status.h"
#include "shim.h"
#include "vgpu_protocol.h"
#include "vgpu_transport.h"

#define CUBLAS_VERSION_SERVED 130000 /* the cuBLAS 13 API */
#define CUBLAS_POINTER_MODE_HOST 0
#define CUBLAS_COMPUTE_32F 68

VGPU_HIDDEN float vgpu_half_to_float(uint16_t h); /* cublas_gemm_family.c */

struct cublasContext {
    uint32_t magic, id;
    cudaStream_t stream;
    int math_mode;
    int pointer_mode;
};

static cublasStatus_t blas_status(int rc)
{
    if (rc >= 0)
        return rc;
    return rc == CUDA_TRANSPORT_E_NODEV ? CUBLAS_STATUS_NOT_INITIALIZED : CUBLAS_STATUS_INTERNAL_ERROR;
}

static cublasStatus_t call(uint16_t id, const void *args, uint32_t nargs, void *results, size_t size)
{
    return blas_status(vgpu_shim_call(id, args, nargs, NULL, 0, results, size, NULL, 0, NULL));
}

#define CHECK(h)                                                                                  \
    do {                                                                                          \
        if (!VGPU_CHECK_HANDLE((h), VGPU_MAGIC_CUBLAS))                                           \
            return CUBLAS_STATUS_NOT_INITIALIZED;                                                 \
    } while (0)

cublasStatus_t cublasCreate_v2(cublasHandle_t *handle)
{
    if (!handle)
        return CUBLAS_STATUS_INVALID_VALUE;
    struct vgpu_result_cublas_create r;
    cublasStatus_t st = call(VGPU_CALL_CUBLAS_CREATE, NULL, 0, &r, sizeof r);
    if (st)
        return st;
    cublasHandle_t h = calloc(1, sizeof *h);
    if (!h) {
        struct vgpu_args_cublas_destroy d = {.handle = r.handle};
        call(VGPU_CALL_CUBLAS_DESTROY, &d, sizeof d, NULL, 0);
        return CUBLAS_STATUS_ALLOC_FAILED;
    }
    *h = (struct cublasContext){VGPU_MAGIC_CUBLAS, r.handle, NULL, 0, CUBLAS_POINTER_MODE_HOST};
    *handle = h;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy_v2(cublasHandle_t h)
{
    CHECK(h);
    struct vgpu_args_cublas_destroy a = {.handle = h->id};
    cublasStatus_t st = call(VGPU_CALL_CUBLAS_DESTROY, &a, sizeof a, NULL, 0);
    if (st == CUBLAS_STATUS_SUCCESS) {
        h->magic = VGPU_MAGIC_DEAD;
        free(h);
    }
    return st;
}

cublasStatus_t cublasSetStream_v2(cublasHandle_t h, cudaStream_t stream)
{
    CHECK(h);
    struct vgpu_args_cublas_set_stream a = {.handle = h->id};
    if (vgpu_shim_stream_id(stream, &a.stream))
        return CUBLAS_STATUS_INVALID_VALUE;
    cublasStatus_t st = call(VGPU_CALL_CUBLAS_SET_STREAM, &a, sizeof a, NULL, 0);
    if (st == CUBLAS_STATUS_SUCCESS)
        h->stream = stream;
    return st;
}

/* The host's cuBLAS needs no scratch memory: a workspace is checked as cuBLAS checks it (256-byte
 * aligned, present when sized) and left unused, which cuBLAS allows. */
cublasStatus_t cublasSetWorkspace_v2(cublasHandle_t h, void *workspace, size_t size)
{
    CHECK(h);
    if ((size && !workspace) || ((uintptr_t)workspace & 255))
        return CUBLAS_STATUS_INVALID_VALUE;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGetStream_v2(cublasHandle_t h, cudaStream_t *stream)
{
    CHECK(h);
    if (!stream)
        return CUBLAS_STATUS_INVALID_VALUE;
    *stream = h->stream;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t h, int mode)
{
    CHECK(h);
    struct vgpu_args_cublas_set_math_mode a = {.handle = h->id, .mode = (uint32_t)mode};
    cublasStatus_t st = call(VGPU_CALL_CUBLAS_SET_MATH_MODE, &a, sizeof a, NULL, 0);
    if (st == CUBLAS_STATUS_SUCCESS)
        h->math_mode = mode;
    return st;
}

cublasStatus_t cublasGetMathMode(cublasHandle_t h, int *mode)
{
    CHECK(h);
    if (!mode)
        return CUBLAS_STATUS_INVALID_VALUE;
    *mode = h->math_mode;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetPointerMode_v2(cublasHandle_t h, int mode)
{
    CHECK(h);
    if (mode != CUBLAS_POINTER_MODE_HOST)
        VGPU_UNSUPPORTED_USE(CUBLAS_STATUS_NOT_SUPPORTED,
                             "cublasSetPointerMode: device-resident scalars are not served");
    h->pointer_mode = mode;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGetPointerMode_v2(cublasHandle_t h, int *mode)
{
    CHECK(h);
    if (!mode)
        return CUBLAS_STATUS_INVALID_VALUE;
    *mode = h->pointer_mode;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGetVersion_v2(cublasHandle_t h, int *version)
{
    (void)h; /* may be NULL, as in cuBLAS */
    if (!version)
        return CUBLAS_STATUS_INVALID_VALUE;
    *version = CUBLAS_VERSION_SERVED;
    return CUBLAS_STATUS_SUCCESS;
}

const char *cublasGetStatusName(cublasStatus_t st) { return vgpu_blas_status_name(st); }

const char *cublasGetStatusString(cublasStatus_t st) { return vgpu_blas_status_text(st); }

/* The CUDA runtime cuBLAS was built against, as cublasGetCudartVersion reports it. */
size_t cublasGetCudartVersion(void) { return CUDART_VERSION_BUILT; }

/* -- GEMMs ------------------------------------------------------------------------------------- */

static int valid_op(int op) { return op == VGPU_CUBLAS_OP_N || op == VGPU_CUBLAS_OP_T || op == VGPU_CUBLAS_OP_C; }
static int max1(int v) { return v > 1 ? v : 1; }

/* The host's rules for a column-major C[m,n] = op(A)[m,k] op(B)[k,n]. */
static cublasStatus_t check_shape(int transa, int transb, int m, int n, int k, int lda, int ldb, int ldc)
{
    if (!valid_op(transa) || !valid_op(transb) || m < 0 || n < 0 || k < 0)
        return CUBLAS_STATUS_INVALID_VALUE;
    int rows_a = transa == VGPU_CUBLAS_OP_N ? m : k, rows_b = transb == VGPU_CUBLAS_OP_N ? k : n;
    if (lda < max1(rows_a) || ldb < max1(rows_b) || ldc < max1(m))
        return CUBLAS_STATUS_INVALID_VALUE;
    return CUBLAS_STATUS_SUCCESS;
}

/* cublasGemmEx's type table: per compute type, the (A and B type, C type) pairs it offers. */
static const struct gemm_types { int compute, ab, c; } gemm_types[] = {
    {VGPU_CUBLAS_COMPUTE_16F, VGPU_CUDA_R_16F, VGPU_CUDA_R_16F},
    {VGPU_CUBLAS_COMPUTE_32I, VGPU_CUDA_R_8I, VGPU_CUDA_R_32I},
    {VGPU_CUBLAS_COMPUTE_32F, VGPU_CUDA_R_16BF, VGPU_CUDA_R_16BF},
    {VGPU_CUBLAS_COMPUTE_32F, VGPU_CUDA_R_16F, VGPU_CUDA_R_16F},
    {VGPU_CUBLAS_COMPUTE_32F, VGPU_CUDA_R_8I, VGPU_CUDA_R_32F},
    {VGPU_CUBLAS_COMPUTE_32F, VGPU_CUDA_R_16BF, VGPU_CUDA_R_32F},
    {VGPU_CUBLAS_COMPUTE_32F, VGPU_CUDA_R_16F, VGPU_CUDA_R_32F},
    {VGPU_CUBLAS_COMPUTE_32F, VGPU_CUDA_R_32F, VGPU_CUDA_R_32F},
    {VGPU_CUBLAS_COMPUTE_32F, VGPU_CUDA_C_8I, VGPU_CUDA_C_32F},
    {VGPU_CUBLAS_COMPUTE_32F, VGPU_CUDA_C_32F, VGPU_CUDA_C_32F},
    {VGPU_CUBLAS_COMPUTE_32F_FAST_16F, VGPU_CUDA_R_32F, VGPU_CUDA_R_32F},
    {VGPU_CUBLAS_COMPUTE_32F_FAST_16F, VGPU_CUDA_C_32F, VGPU_CUDA_C_32F},
    {VGPU_CUBLAS_COMPUTE_64F, VGPU_CUDA_R_64F, VGPU_CUDA_R_64F},
    {VGPU_CUBLAS_COMPUTE_64F, VGPU_CUDA_C_64F, VGPU_CUDA_C_64F},
};

/* The table's row group of a compute type: pedantic forms as theirs, the fast 32F forms alike. */
static int compute_class(int compute)
{
    switch (compute) {
    case VGPU_CUBLAS_COMPUTE_16F_PEDANTIC: return VGPU_CUBLAS_COMPUTE_16F;
    case VGPU_CUBLAS_COMPUTE_32I_PEDANTIC: return VGPU_CUBLAS_COMPUTE_32I;
    case VGPU_CUBLAS_COMPUTE_32F_PEDANTIC: return VGPU_CUBLAS_COMPUTE_32F;
    case VGPU_CUBLAS_COMPUTE_64F_PEDANTIC: return VGPU_CUBLAS_COMPUTE_64F;
    case VGPU_CUBLAS_COMPUTE_32F_FAST_16BF:
    case VGPU_CUBLAS_COMPUTE_32F_FAST_TF32: return VGPU_CUBLAS_COMPUTE_32F_FAST_16F;
    default: return compute;
    }
}

/* The compute type cuBLAS means (it still takes the cudaDataType_t of the older API). */
static cublasStatus_t compute_type(int requested, uint32_t *out)
{
    switch (requested) {
    case VGPU_CUDA_R_16F: requested = VGPU_CUBLAS_COMPUTE_16F; break;
    case VGPU_CUDA_R_32F: case VGPU_CUDA_C_32F: requested = VGPU_CUBLAS_COMPUTE_32F; break;
    case VGPU_CUDA_R_64F: case VGPU_CUDA_C_64F: requested = VGPU_CUBLAS_COMPUTE_64F; break;
    case VGPU_CUDA_R_32I: requested = VGPU_CUBLAS_COMPUTE_32I; break;
    default: break;
    }
    switch (requested) {
    case VGPU_CUBLAS_COMPUTE_16F: case VGPU_CUBLAS_COMPUTE_16F_PEDANTIC:
    case VGPU_CUBLAS_COMPUTE_32F: case VGPU_CUBLAS_COMPUTE_32F_PEDANTIC:
    case VGPU_CUBLAS_COMPUTE_64F: case VGPU_CUBLAS_COMPUTE_64F_PEDANTIC:
    case VGPU_CUBLAS_COMPUTE_32I: case VGPU_CUBLAS_COMPUTE_32I_PEDANTIC:
    case VGPU_CUBLAS_COMPUTE_32F_FAST_16F: case VGPU_CUBLAS_COMPUTE_32F_FAST_16BF:
    case VGPU_CUBLAS_COMPUTE_32F_FAST_TF32:
        *out = (uint32_t)requested;
        return CUBLAS_STATUS_SUCCESS;
    default:
        return CUBLAS_STATUS_INVALID_VALUE;
    }
}

/* alpha and beta as the wire carries them: doubles, real and imaginary parts, read in the scale
 * type (cuBLAS's scaleType) the compute type and C's type imply. */
struct scalars { double alpha, alpha_imag, beta, beta_imag; };

static void read_scalar(int compute_cls, int ctype, const void *p, double *re, double *im)
{
    int cplx = ctype == VGPU_CUDA_C_32F || ctype == VGPU_CUDA_C_64F;
    *im = 0;
    if (compute_cls == VGPU_CUBLAS_COMPUTE_16F) {
        uint16_t bits;
        memcpy(&bits, p, sizeof bits);
        *re = vgpu_half_to_float(bits);
    } else if (compute_cls == VGPU_CUBLAS_COMPUTE_32I) {
        int32_t v;
        memcpy(&v, p, sizeof v);
        *re = v;
    } else if (compute_cls == VGPU_CUBLAS_COMPUTE_64F) {
        double v[2];
        memcpy(v, p, (cplx ? 2 : 1) * sizeof(double));
        *re = v[0];
        *im = cplx ? v[1] : 0;
    } else {
        float v[2];
        memcpy(v, p, (cplx ? 2 : 1) * sizeof(float));
        *re = v[0];
        *im = cplx ? v[1] : 0;
    }
}

static cublasStatus_t post(uint16_t id, const void *args, uint32_t nargs)
{
    int rc = vgpu_shim_post(id, args, nargs, NULL, 0);
    return rc ? blas_status(rc) : CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSgemm_v2(cublasHandle_t h, int transa, int transb, int m, int n, int k, const float *alpha,
                              const float *A, int lda, const float *B, int ldb, const float *beta, float *C,
                              int ldc)
{
    CHECK(h);
    cublasStatus_t st = check_shape(transa, transb, m, n, k, lda, ldb, ldc);
    if (st)
        return st;
    if (!alpha || !beta)
        return CUBLAS_STATUS_INVALID_VALUE;
    struct vgpu_args_cublas_sgemm a = {
        .handle = h->id, .transa = (uint32_t)transa, .transb = (uint32_t)transb, .m = m, .n = n, .k = k,
        .alpha = *alpha, .a = (uint64_t)(uintptr_t)A, .lda = lda, .b = (uint64_t)(uintptr_t)B, .ldb = ldb,
        .beta = *beta, .c = (uint64_t)(uintptr_t)C, .ldc = ldc};
    return post(VGPU_CALL_CUBLAS_SGEMM, &a, sizeof a);
}

/* The Ex GEMMs' common checks: shape, compute type, the type table, and the scalars in their type. */
static cublasStatus_t check_ex(cublasHandle_t h, int transa, int transb, int m, int n, int k, int lda, int ldb,
                               int ldc, int atype, int btype, int ctype, int compute, const void *alpha,
                               const void *beta, uint32_t *compute_out, struct scalars *sc)
{
    CHECK(h);
    cublasStatus_t st = check_shape(transa, transb, m, n, k, lda, ldb, ldc);
    if (st)
        return st;
    if ((st = compute_type(compute, compute_out)))
        return st;
    int cls = compute_class((int)*compute_out), offered = 0;
    for (size_t i = 0; i < sizeof gemm_types / sizeof gemm_types[0]; i++)
        offered |= gemm_types[i].compute == cls && gemm_types[i].ab == atype && gemm_types[i].c == ctype;
    if (!offered || atype != btype)
        return CUBLAS_STATUS_NOT_SUPPORTED; /* as cuBLAS answers a combination its table lacks */
    if (!alpha || !beta)
        return CUBLAS_STATUS_INVALID_VALUE;
    read_scalar(cls, ctype, alpha, &sc->alpha, &sc->alpha_imag);
    read_scalar(cls, ctype, beta, &sc->beta, &sc->beta_imag);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGemmEx(cublasHandle_t h, int transa, int transb, int m, int n, int k, const void *alpha,
                            const void *A, int atype, int lda, const void *B, int btype, int ldb, const void *beta,
                            void *C, int ctype, int ldc, int compute, int algo)
{
    uint32_t ct;
    struct scalars sc;
    cublasStatus_t st = check_ex(h, transa, transb, m, n, k, lda, ldb, ldc, atype, btype, ctype, compute, alpha,
                                 beta, &ct, &sc);
    if (st)
        return st;
    struct vgpu_args_cublas_gemm_ex a = {
        .handle = h->id, .transa = (uint32_t)transa, .transb = (uint32_t)transb, .m = m, .n = n, .k = k,
        .alpha = sc.alpha, .a = (uint64_t)(uintptr_t)A, .a_type = (uint32_t)atype, .lda = lda,
        .b = (uint64_t)(uintptr_t)B, .b_type = (uint32_t)btype, .ldb = ldb, .beta = sc.beta,
        .c = (uint64_t)(uintptr_t)C, .c_type = (uint32_t)ctype, .ldc = ldc, .compute_type = ct, .algo = algo,
        .alpha_imag = sc.alpha_imag, .beta_imag = sc.beta_imag};
    return post(VGPU_CALL_CUBLAS_GEMM_EX, &a, sizeof a);
}

cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t h, int transa, int transb, int m, int n, int k,
                                          const void *alpha, const void *A, int atype, int lda, long long stride_a,
                                          const void *B, int btype, int ldb, long long stride_b, const void *beta,
                                          void *C, int ctype, int ldc, long long stride_c, int batch, int compute,
                                          int algo)
{
    uint32_t ct;
    struct scalars sc;
    cublasStatus_t st = check_ex(h, transa, transb, m, n, k, lda, ldb, ldc, atype, btype, ctype, compute, alpha,
                                 beta, &ct, &sc);
    if (st)
        return st;
    if (batch < 0)
        return CUBLAS_STATUS_INVALID_VALUE;
    struct vgpu_args_cublas_gemm_strided_batched_ex a = {
        .handle = h->id, .transa = (uint32_t)transa, .transb = (uint32_t)transb, .m = m, .n = n, .k = k,
        .alpha = sc.alpha, .a = (uint64_t)(uintptr_t)A, .a_type = (uint32_t)atype, .lda = lda,
        .stride_a = stride_a, .b = (uint64_t)(uintptr_t)B, .b_type = (uint32_t)btype, .ldb = ldb,
        .stride_b = stride_b, .beta = sc.beta, .c = (uint64_t)(uintptr_t)C, .c_type = (uint32_t)ctype,
        .ldc = ldc, .stride_c = stride_c, .batch_count = batch, .compute_type = ct, .algo = algo,
        .alpha_imag = sc.alpha_imag, .beta_imag = sc.beta_imag};
    return post(VGPU_CALL_CUBLAS_GEMM_STRIDED_BATCHED_EX, &a, sizeof a);
}

/* Aarray, Barray and Carray are device arrays of device pointers: they travel as device pointers. */
cublasStatus_t cublasGemmBatchedEx(cublasHandle_t h, int transa, int transb, int m, int n, int k,
                                   const void *alpha, const void *const Aarray[], int atype, int lda,
                                   const void *const Barray[], int btype, int ldb, const void *beta,
                                   void *const Carray[], int ctype, int ldc, int batch, int compute, int algo)
{
    uint32_t ct;
    struct scalars sc;
    cublasStatus_t st = check_ex(h, transa, transb, m, n, k, lda, ldb, ldc, atype, btype, ctype, compute, alpha,
                                 beta, &ct, &sc);
    if (st)
        return st;
    if (batch < 0)
        return CUBLAS_STATUS_INVALID_VALUE;
    struct vgpu_args_cublas_gemm_batched_ex a = {
        .handle = h->id, .transa = (uint32_t)transa, .transb = (uint32_t)transb, .m = m, .n = n, .k = k,
        .alpha = sc.alpha, .a = (uint64_t)(uintptr_t)Aarray, .a_type = (uint32_t)atype, .lda = lda,
        .b = (uint64_t)(uintptr_t)Barray, .b_type = (uint32_t)btype, .ldb = ldb, .beta = sc.beta,
        .c = (uint64_t)(uintptr_t)Carray, .c_type = (uint32_t)ctype, .ldc = ldc, .batch_count = batch,
        .compute_type = ct, .algo = algo, .alpha_imag = sc.alpha_imag, .beta_imag = sc.beta_imag};
    return post(VGPU_CALL_CUBLAS_GEMM_BATCHED_EX, &a, sizeof a);
}

/* -- triangular solves -------------------------------------------------------------------------- */

/* The host's rules for op(A) X = alpha B or X op(A) = alpha B, B m x n. */
static cublasStatus_t check_trsm(int side, int uplo, int trans, int diag, int m, int n, int lda, int ldb,
                                 const float *alpha)
{
    if ((side != VGPU_CUBLAS_SIDE_LEFT && side != VGPU_CUBLAS_SIDE_RIGHT) ||
        (uplo != VGPU_CUBLAS_FILL_MODE_LOWER && uplo != VGPU_CUBLAS_FILL_MODE_UPPER) || !valid_op(trans) ||
        (diag != VGPU_CUBLAS_DIAG_NON_UNIT && diag != VGPU_CUBLAS_DIAG_UNIT) || m < 0 || n < 0 || !alpha)
        return CUBLAS_STATUS_INVALID_VALUE;
    if (lda < max1(side == VGPU_CUBLAS_SIDE_LEFT ? m : n) || ldb < max1(m))
        return CUBLAS_STATUS_INVALID_VALUE;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasStrsm_v2(cublasHandle_t h, int side, int uplo, int trans, int diag, int m, int n,
                              const float *alpha, const float *A, int lda, float *B, int ldb)
{
    CHECK(h);
    cublasStatus_t st = check_trsm(side, uplo, trans, diag, m, n, lda, ldb, alpha);
    if (st)
        return st;
    struct vgpu_args_cublas_strsm a = {
        .handle = h->id, .side = (uint32_t)side, .uplo = (uint32_t)uplo, .trans = (uint32_t)trans,
        .diag = (uint32_t)diag, .m = m, .n = n, .alpha = *alpha, .a = (uint64_t)(uintptr_t)A, .lda = lda,
        .b = (uint64_t)(uintptr_t)B, .ldb = ldb};
    return post(VGPU_CALL_CUBLAS_STRSM, &a, sizeof a);
}

/* Aarray and Barray are device arrays of device pointers: they travel as device pointers. */
cublasStatus_t cublasStrsmBatched(cublasHandle_t h, int side, int uplo, int trans, int diag, int m, int n,
                                  const float *alpha, const float *const A[], int lda, float *const B[], int ldb,
                                  int batch)
{
    CHECK(h);
    cublasStatus_t st = check_trsm(side, uplo, trans, diag, m, n, lda, ldb, alpha);
    if (st)
        return st;
    if (batch < 0)
        return CUBLAS_STATUS_INVALID_VALUE;
    struct vgpu_args_cublas_strsm_batched a = {
        .handle = h->id, .side = (uint32_t)side, .uplo = (uint32_t)uplo, .trans = (uint32_t)trans,
        .diag = (uint32_t)diag, .m = m, .n = n, .alpha = *alpha, .a = (uint64_t)(uintptr_t)A, .lda = lda,
        .b = (uint64_t)(uintptr_t)B, .ldb = ldb, .batch_count = batch};
    return post(VGPU_CALL_CUBLAS_STRSM_BATCHED, &a, sizeof a);
}

/* -- batched LU factorization ------------------------------------------------------------------- */

/* Aarray is a device array of device pointers, P (n ints per matrix, NULL: no pivoting) and info
 * (one int per matrix) device arrays: they all travel as device pointers. */
static cublasStatus_t getrf_batched(cublasHandle_t h, int n, const void *A, int lda, int *P, int *info, int batch,
                                    uint32_t type)
{
    CHECK(h);
    if (n < 0 || lda < max1(n) || batch < 0 || !info)
        return CUBLAS_STATUS_INVALID_VALUE;
    struct vgpu_args_cublas_getrf_batched a = {
        .handle = h->id, .n = n, .a = (uint64_t)(uintptr_t)A, .lda = lda, .pivots = (uint64_t)(uintptr_t)P,
        .info = (uint64_t)(uintptr_t)info, .batch_count = batch, .data_type = type};
    return post(VGPU_CALL_CUBLAS_GETRF_BATCHED, &a, sizeof a);
}

cublasStatus_t cublasSgetrfBatched(cublasHandle_t h, int n, float *const A[], int lda, int *P, int *info, int batch)
{
    return getrf_batched(h, n, A, lda, P, info, batch, VGPU_CUDA_R_32F);
}

cublasStatus_t cublasDgetrfBatched(cublasHandle_t h, int n, double *const A[], int lda, int *P, int *info, int batch)
{
    return getrf_batched(h, n, A, lda, P, info, batch, VGPU_CUDA_R_64F);
}

cublasStatus_t cublasCgetrfBatched(cublasHandle_t h, int n, void *const A[], int lda, int *P, int *info, int batch)
{
    return getrf_batched(h, n, A, lda, P, info, batch, VGPU_CUDA_C_32F);
}

cublasStatus_t cublasZgetrfBatched(cublasHandle_t h, int n, void *const A[], int lda, int *P, int *info, int batch)
{
    return getrf_batched(h, n, A, lda, P, info, batch, VGPU_CUDA_C_64F);
}
