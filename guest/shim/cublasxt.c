/*
 * libcublas.so.13: cuBLASXt's GEMMs (cublasXt<S,D,C,Z>gemm) on the VM's one GPU.
 *
 * cuBLASXt takes matrices in host or device memory and returns when the product is in C. Here each
 * matrix not already in the VM's device memory is copied into a dense device buffer (cublasSetMatrix),
 * the product is the protocol's GemmEx on the handle's own cuBLAS handle (legacy stream, so the copies
 * and the GEMM are ordered), and C is copied back (cublasGetMatrix), which also waits for it. Tiling
 * over several GPUs has nothing to tile over: cublasXtDeviceSelect accepts the one device, and the
 * block dimension is kept for cublasXtGetBlockDim only. Dimensions beyond int are not served
 * (CUBLAS_STATUS_NOT_SUPPORTED), as the protocol's GEMMs take ints.
 */
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "cublas_wrap.h"
#include "shim.h"
#include "vgpu_protocol.h"

#define VGPU_MAGIC_CUBLASXT 0x74587856u /* "VxXt" */
#define CUBLAS_GEMM_DEFAULT (-1)
#define XT_DEFAULT_BLOCK_DIM 1024

struct vgpu_cublasxt {
    uint32_t magic;
    cublasHandle_t blas;
    int block_dim;
};
typedef struct vgpu_cublasxt *cublasXtHandle_t;

cublasStatus_t cublasDestroy_v2(cublasHandle_t handle);
cublasStatus_t cublasSetMatrix(int rows, int cols, int elem, const void *A, int lda, void *B, int ldb);
cublasStatus_t cublasGetMatrix(int rows, int cols, int elem, const void *A, int lda, void *B, int ldb);
cublasStatus_t cublasGemmEx(cublasHandle_t h, int transa, int transb, int m, int n, int k, const void *alpha,
                            const void *A, int atype, int lda, const void *B, int btype, int ldb, const void *beta,
                            void *C, int ctype, int ldc, int compute, int algo);
CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytesize);
CUresult cuMemFree_v2(CUdeviceptr dptr);

cublasStatus_t cublasXtCreate(cublasXtHandle_t *handle);
cublasStatus_t cublasXtDestroy(cublasXtHandle_t handle);
cublasStatus_t cublasXtDeviceSelect(cublasXtHandle_t handle, int count, int devices[]);
cublasStatus_t cublasXtSetBlockDim(cublasXtHandle_t handle, int block_dim);
cublasStatus_t cublasXtGetBlockDim(cublasXtHandle_t handle, int *block_dim);

static int valid(cublasXtHandle_t h) { return h && h->magic == VGPU_MAGIC_CUBLASXT; }

cublasStatus_t cublasXtCreate(cublasXtHandle_t *handle)
{
    if (!handle)
        return CUBLAS_STATUS_INVALID_VALUE;
    cublasStatus_t st;
    cublasXtHandle_t h = vgpu_blas_wrapper_new(sizeof *h, offsetof(struct vgpu_cublasxt, blas), &st);
    if (!h)
        return st;
    h->magic = VGPU_MAGIC_CUBLASXT;
    h->block_dim = XT_DEFAULT_BLOCK_DIM;
    *handle = h;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasXtDestroy(cublasXtHandle_t h)
{
    if (!valid(h))
        return CUBLAS_STATUS_NOT_INITIALIZED;
    cublasStatus_t st = cublasDestroy_v2(h->blas);
    h->magic = VGPU_MAGIC_DEAD;
    free(h);
    return st;
}

/* A VM has one device, 0: it may be named once. */
cublasStatus_t cublasXtDeviceSelect(cublasXtHandle_t h, int count, int devices[])
{
    if (!valid(h))
        return CUBLAS_STATUS_NOT_INITIALIZED;
    if (count != 1 || !devices || devices[0] != 0)
        return CUBLAS_STATUS_INVALID_VALUE;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasXtSetBlockDim(cublasXtHandle_t h, int block_dim)
{
    if (!valid(h))
        return CUBLAS_STATUS_NOT_INITIALIZED;
    if (block_dim < 1)
        return CUBLAS_STATUS_INVALID_VALUE;
    h->block_dim = block_dim;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasXtGetBlockDim(cublasXtHandle_t h, int *block_dim)
{
    if (!valid(h))
        return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!block_dim)
        return CUBLAS_STATUS_INVALID_VALUE;
    *block_dim = h->block_dim;
    return CUBLAS_STATUS_SUCCESS;
}

/* One operand on the device: its own address when it is the VM's device memory, else a dense copy. */
struct operand { const void *ptr; int ld; CUdeviceptr owned; };

static cublasStatus_t place(const void *p, size_t rows, size_t cols, size_t ld, int elem, int copy_in,
                            struct operand *out)
{
    uint64_t base, size;
    *out = (struct operand){p, (int)ld, 0};
    if (!rows || !cols || vgpu_shim_ptr_kind((uint64_t)(uintptr_t)p, &base, &size) == VGPU_PTR_DEVICE)
        return CUBLAS_STATUS_SUCCESS;
    if (!p)
        return CUBLAS_STATUS_INVALID_VALUE;
    if (cuMemAlloc_v2(&out->owned, rows * cols * (size_t)elem))
        return CUBLAS_STATUS_ALLOC_FAILED;
    out->ptr = (const void *)(uintptr_t)out->owned;
    out->ld = (int)rows;
    cublasStatus_t st = copy_in ? cublasSetMatrix((int)rows, (int)cols, elem, p, (int)ld, (void *)out->ptr, (int)rows)
                                : CUBLAS_STATUS_SUCCESS;
    if (st) {
        cuMemFree_v2(out->owned);
        out->owned = 0;
    }
    return st;
}

static cublasStatus_t xt_gemm(cublasXtHandle_t h, int transa, int transb, size_t m, size_t n, size_t k,
                              const void *alpha, const void *A, size_t lda, const void *B, size_t ldb,
                              const void *beta, void *C, size_t ldc, int type, int elem, int compute)
{
    if (!valid(h))
        return CUBLAS_STATUS_NOT_INITIALIZED;
    if (m > INT_MAX || n > INT_MAX || k > INT_MAX || lda > INT_MAX || ldb > INT_MAX || ldc > INT_MAX)
        VGPU_UNSUPPORTED_USE(CUBLAS_STATUS_NOT_SUPPORTED, "cublasXt GEMM dimensions beyond int are not served");
    if (!alpha || !beta)
        return CUBLAS_STATUS_INVALID_VALUE;
    size_t ra = transa == VGPU_CUBLAS_OP_N ? m : k, ca = transa == VGPU_CUBLAS_OP_N ? k : m;
    size_t rb = transb == VGPU_CUBLAS_OP_N ? k : n, cb = transb == VGPU_CUBLAS_OP_N ? n : k;
    if (lda < (ra ? ra : 1) || ldb < (rb ? rb : 1) || ldc < (m ? m : 1))
        return CUBLAS_STATUS_INVALID_VALUE;
    struct operand a = {0}, b = {0}, c = {0};
    cublasStatus_t st = place(A, ra, ca, lda, elem, 1, &a);
    if (!st)
        st = place(B, rb, cb, ldb, elem, 1, &b);
    if (!st)
        st = place(C, m, n, ldc, elem, 1, &c);
    if (!st)
        st = cublasGemmEx(h->blas, transa, transb, (int)m, (int)n, (int)k, alpha, a.ptr, type, a.ld, b.ptr, type,
                          b.ld, beta, (void *)c.ptr, type, c.ld, compute, CUBLAS_GEMM_DEFAULT);
    if (!st && c.owned) /* back to host memory; on the legacy stream, after the GEMM */
        st = cublasGetMatrix((int)m, (int)n, elem, c.ptr, c.ld, C, (int)ldc);
    for (struct operand *o = &a; o <= &c; o++)
        if (o->owned)
            cuMemFree_v2(o->owned);
    return st;
}

#define XT_GEMM(X, T, TYPE, COMPUTE)                                                                              \
    cublasStatus_t cublasXt##X##gemm(cublasXtHandle_t h, int transa, int transb, size_t m, size_t n, size_t k,   \
                                     const T *alpha, const T *A, size_t lda, const T *B, size_t ldb,             \
                                     const T *beta, T *C, size_t ldc);                                           \
    cublasStatus_t cublasXt##X##gemm(cublasXtHandle_t h, int transa, int transb, size_t m, size_t n, size_t k,   \
                                     const T *alpha, const T *A, size_t lda, const T *B, size_t ldb,             \
                                     const T *beta, T *C, size_t ldc)                                            \
    {                                                                                                             \
        return xt_gemm(h, transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc, TYPE, (int)sizeof(T),    \
                       COMPUTE);                                                                                  \
    }

typedef struct { float re, im; } xt_complex_f32;
typedef struct { double re, im; } xt_complex_f64;
XT_GEMM(S, float, VGPU_CUDA_R_32F, VGPU_CUBLAS_COMPUTE_32F)
XT_GEMM(D, double, VGPU_CUDA_R_64F, VGPU_CUBLAS_COMPUTE_64F)
XT_GEMM(C, xt_complex_f32, VGPU_CUDA_C_32F, VGPU_CUBLAS_COMPUTE_32F)
XT_GEMM(Z, xt_complex_f64, VGPU_CUDA_C_64F, VGPU_CUBLAS_COMPUTE_64F)
