/*
 * libcublas.so.13: cublasSetVector/GetVector/SetMatrix/GetMatrix, their Async and _64 forms.
 *
 * These are copies between host memory and a column-major (or strided) device array, and the
 * protocol's copies carry them: no call of their own. A dense device side (ldb == rows, incy == 1)
 * is one copy, packed or unpacked on the guest's side; a device side with gaps is one copy per
 * column (per element for a strided vector), so that nothing between the columns is touched. The
 * Set forms post their copies (the bytes travel with the call, the caller's buffer is free at
 * return); the synchronous forms run on the legacy stream, the Async forms on the given one. As in
 * cuBLAS, no handle is needed.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shim.h"

/* a failed copy is CUBLAS_STATUS_MAPPING_ERROR, as cuBLAS reports it */
static cublasStatus_t copy_status(CUresult rc)
{
    return rc == CUDA_SUCCESS ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_MAPPING_ERROR;
}

static int mul_overflows(int64_t a, int64_t b, int64_t *out)
{
    return a < 0 || b < 0 || __builtin_mul_overflow(a, b, out);
}

/* Host <-> device copy of a rows x cols array of elem-byte elements: host leading dimension hld,
 * device leading dimension dld (both in elements, >= rows; a vector is rows = 1, ld = inc). */
static cublasStatus_t transfer(int to_device, int64_t rows, int64_t cols, int64_t elem, void *host, int64_t hld,
                               uint64_t dev, int64_t dld, cudaStream_t stream, int asynchronous)
{
    if (rows < 0 || cols < 0 || elem <= 0 || hld < (rows > 1 ? rows : 1) || dld < (rows > 1 ? rows : 1))
        return CUBLAS_STATUS_INVALID_VALUE;
    int64_t row_bytes, total, hpitch, dpitch;
    if (mul_overflows(rows, elem, &row_bytes) || mul_overflows(row_bytes, cols, &total) ||
        mul_overflows(hld, elem, &hpitch) || mul_overflows(dld, elem, &dpitch))
        return CUBLAS_STATUS_INVALID_VALUE;
    if (total == 0)
        return CUBLAS_STATUS_SUCCESS;
    if (!host || !dev)
        return CUBLAS_STATUS_INVALID_VALUE;
    uint32_t sid;
    if (vgpu_shim_stream_id(stream, &sid) != CUDA_SUCCESS)
        return CUBLAS_STATUS_INVALID_VALUE;
    unsigned char *h = host;
    if (dld == rows || cols == 1) { /* the device side is one contiguous range */
        if (hld == rows || cols == 1) {
            /* into pinned memory a Get*Async is posted too (vgpu_shim_dtoh_on); into pageable it waits */
            return copy_status(to_device ? vgpu_shim_htod(dev, sid, h, (size_t)total, asynchronous)
                                         : vgpu_shim_dtoh_on(h, dev, sid, (size_t)total, asynchronous));
        }
        unsigned char *packed = malloc((size_t)total);
        if (!packed)
            return CUBLAS_STATUS_ALLOC_FAILED;
        CUresult rc = CUDA_SUCCESS;
        if (to_device) {
            for (int64_t c = 0; c < cols; c++)
                memcpy(packed + c * row_bytes, h + c * hpitch, (size_t)row_bytes);
            rc = vgpu_shim_htod(dev, sid, packed, (size_t)total, asynchronous);
        } else if ((rc = vgpu_shim_dtoh(packed, dev, sid, (size_t)total)) == CUDA_SUCCESS) {
            for (int64_t c = 0; c < cols; c++)
                memcpy(h + c * hpitch, packed + c * row_bytes, (size_t)row_bytes);
        }
        free(packed);
        return copy_status(rc);
    }
    for (int64_t c = 0; c < cols; c++) { /* gaps on the device: each column alone */
        uint64_t d = dev + (uint64_t)(c * dpitch);
        CUresult rc = to_device ? vgpu_shim_htod(d, sid, h + c * hpitch, (size_t)row_bytes, asynchronous)
                                : vgpu_shim_dtoh_on(h + c * hpitch, d, sid, (size_t)row_bytes, asynchronous);
        if (rc)
            return copy_status(rc);
    }
    return CUBLAS_STATUS_SUCCESS;
}

/* A vector of n elements with strides incx (host) and incy (device) is an n-column matrix of one
 * row whose leading dimensions are the strides. */
static cublasStatus_t vector(int to_device, int64_t n, int64_t elem, void *host, int64_t hinc, uint64_t dev,
                             int64_t dinc, cudaStream_t stream, int asynchronous)
{
    if (n < 0 || hinc <= 0 || dinc <= 0)
        return CUBLAS_STATUS_INVALID_VALUE;
    return transfer(to_device, 1, n, elem, host, hinc, dev, dinc, stream, asynchronous);
}

#define DEV(p) ((uint64_t)(uintptr_t)(p))

cublasStatus_t cublasSetVector_64(int64_t n, int64_t elem, const void *x, int64_t incx, void *y, int64_t incy)
{
    return vector(1, n, elem, (void *)x, incx, DEV(y), incy, NULL, 0);
}
cublasStatus_t cublasGetVector_64(int64_t n, int64_t elem, const void *x, int64_t incx, void *y, int64_t incy)
{
    return vector(0, n, elem, y, incy, DEV(x), incx, NULL, 0);
}
cublasStatus_t cublasSetVectorAsync_64(int64_t n, int64_t elem, const void *x, int64_t incx, void *y,
                                       int64_t incy, cudaStream_t s)
{
    return vector(1, n, elem, (void *)x, incx, DEV(y), incy, s, 1);
}
cublasStatus_t cublasGetVectorAsync_64(int64_t n, int64_t elem, const void *x, int64_t incx, void *y,
                                       int64_t incy, cudaStream_t s)
{
    return vector(0, n, elem, y, incy, DEV(x), incx, s, 1);
}
cublasStatus_t cublasSetMatrix_64(int64_t rows, int64_t cols, int64_t elem, const void *a, int64_t lda, void *b,
                                  int64_t ldb)
{
    return transfer(1, rows, cols, elem, (void *)a, lda, DEV(b), ldb, NULL, 0);
}
cublasStatus_t cublasGetMatrix_64(int64_t rows, int64_t cols, int64_t elem, const void *a, int64_t lda, void *b,
                                  int64_t ldb)
{
    return transfer(0, rows, cols, elem, b, ldb, DEV(a), lda, NULL, 0);
}
cublasStatus_t cublasSetMatrixAsync_64(int64_t rows, int64_t cols, int64_t elem, const void *a, int64_t lda,
                                       void *b, int64_t ldb, cudaStream_t s)
{
    return transfer(1, rows, cols, elem, (void *)a, lda, DEV(b), ldb, s, 1);
}
cublasStatus_t cublasGetMatrixAsync_64(int64_t rows, int64_t cols, int64_t elem, const void *a, int64_t lda,
                                       void *b, int64_t ldb, cudaStream_t s)
{
    return transfer(0, rows, cols, elem, b, ldb, DEV(a), lda, s, 1);
}

cublasStatus_t cublasSetVector(int n, int elem, const void *x, int incx, void *y, int incy)
{
    return cublasSetVector_64(n, elem, x, incx, y, incy);
}
cublasStatus_t cublasGetVector(int n, int elem, const void *x, int incx, void *y, int incy)
{
    return cublasGetVector_64(n, elem, x, incx, y, incy);
}
cublasStatus_t cublasSetVectorAsync(int n, int elem, const void *x, int incx, void *y, int incy, cudaStream_t s)
{
    return cublasSetVectorAsync_64(n, elem, x, incx, y, incy, s);
}
cublasStatus_t cublasGetVectorAsync(int n, int elem, const void *x, int incx, void *y, int incy, cudaStream_t s)
{
    return cublasGetVectorAsync_64(n, elem, x, incx, y, incy, s);
}
cublasStatus_t cublasSetMatrix(int rows, int cols, int elem, const void *a, int lda, void *b, int ldb)
{
    return cublasSetMatrix_64(rows, cols, elem, a, lda, b, ldb);
}
cublasStatus_t cublasGetMatrix(int rows, int cols, int elem, const void *a, int lda, void *b, int ldb)
{
    return cublasGetMatrix_64(rows, cols, elem, a, lda, b, ldb);
}
cublasStatus_t cublasSetMatrixAsync(int rows, int cols, int elem, const void *a, int lda, void *b, int ldb,
                                    cudaStream_t s)
{
    return cublasSetMatrixAsync_64(rows, cols, elem, a, lda, b, ldb, s);
}
cublasStatus_t cublasGetMatrixAsync(int rows, int cols, int elem, const void *a, int lda, void *b, int ldb,
                                    cudaStream_t s)
{
    return cublasGetMatrixAsync_64(rows, cols, elem, a, lda, b, ldb, s);
}

/* -- cuBLAS's legacy API reports its status through cublasGetError ------------------------------ */

static __thread cublasStatus_t legacy_status;

/* Called by the generated stubs of the legacy functions (which return values, not statuses). */
__attribute__((visibility("hidden"))) void vgpu_cublas_legacy_unsupported(void);
void vgpu_cublas_legacy_unsupported(void) { legacy_status = CUBLAS_STATUS_NOT_SUPPORTED; }

cublasStatus_t cublasGetError(void)
{
    cublasStatus_t st = legacy_status;
    legacy_status = CUBLAS_STATUS_SUCCESS;
    return st;
}
