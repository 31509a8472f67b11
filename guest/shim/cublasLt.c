/*
 * libcublasLt.so.13: cuBLASLt's version and status queries (its matmul API is cublasLt_matmul.c;
 * what neither serves answers CUBLAS_STATUS_NOT_SUPPORTED and logs once, the generated stubs).
 */
#include <stddef.h>

#include "cublas_status.h"
#include "shim.h"

#define CUBLASLT_VERSION_SERVED 130000 /* the cuBLAS 13 API, as libcublas.so.13 reports it */

size_t cublasLtGetVersion(void);
size_t cublasLtGetCudartVersion(void);
const char *cublasLtGetStatusName(cublasStatus_t st);
const char *cublasLtGetStatusString(cublasStatus_t st);
unsigned cublasLtDisableCpuInstructionsSetMask(unsigned mask);

size_t cublasLtGetVersion(void) { return CUBLASLT_VERSION_SERVED; }
size_t cublasLtGetCudartVersion(void) { return CUDART_VERSION_BUILT; }
const char *cublasLtGetStatusName(cublasStatus_t st) { return vgpu_blas_status_name(st); }
const char *cublasLtGetStatusString(cublasStatus_t st) { return vgpu_blas_status_text(st); }

/* Which CPU instruction sets cuBLASLt's host code may use: the shim's does no numeric work on the
 * CPU, so the mask is only kept, and the previous one returned, as cuBLASLt does. */
static unsigned cpu_mask;
unsigned cublasLtDisableCpuInstructionsSetMask(unsigned mask)
{
    return __atomic_exchange_n(&cpu_mask, mask, __ATOMIC_RELAXED);
}
