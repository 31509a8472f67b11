/*
 * cuBLAS's status names and texts, shared by libcublas.so.13 and libcublasLt.so.13 (whose
 * cublasLtGetStatusName/String answer the same statuses).
 */
#ifndef VGPU_CUBLAS_STATUS_H
#define VGPU_CUBLAS_STATUS_H

#include <stddef.h>

#include "shim_abi.h"

/* the CUDA runtime version the cuBLAS 13 API is served for (cublas(Lt)GetCudartVersion) */
#define CUDART_VERSION_BUILT 13000

static const struct vgpu_blas_status { cublasStatus_t status; const char *name, *text; } vgpu_blas_statuses[] = {
    {CUBLAS_STATUS_SUCCESS, "CUBLAS_STATUS_SUCCESS", "success"},
    {CUBLAS_STATUS_NOT_INITIALIZED, "CUBLAS_STATUS_NOT_INITIALIZED", "the library was not initialized"},
    {CUBLAS_STATUS_ALLOC_FAILED, "CUBLAS_STATUS_ALLOC_FAILED", "the resource allocation failed"},
    {CUBLAS_STATUS_INVALID_VALUE, "CUBLAS_STATUS_INVALID_VALUE", "an invalid numeric value was used as an argument"},
    {CUBLAS_STATUS_ARCH_MISMATCH, "CUBLAS_STATUS_ARCH_MISMATCH", "an absent device architectural feature is required"},
    {CUBLAS_STATUS_MAPPING_ERROR, "CUBLAS_STATUS_MAPPING_ERROR", "an access to GPU memory space failed"},
    {CUBLAS_STATUS_EXECUTION_FAILED, "CUBLAS_STATUS_EXECUTION_FAILED", "the GPU program failed to execute"},
    {CUBLAS_STATUS_INTERNAL_ERROR, "CUBLAS_STATUS_INTERNAL_ERROR", "an internal operation failed"},
    {CUBLAS_STATUS_NOT_SUPPORTED, "CUBLAS_STATUS_NOT_SUPPORTED", "the functionality requested is not supported"},
    {CUBLAS_STATUS_LICENSE_ERROR, "CUBLAS_STATUS_LICENSE_ERROR", "error detected trying to check the license"},
};

static inline const char *vgpu_blas_status_name(cublasStatus_t st)
{
    for (size_t i = 0; i < sizeof vgpu_blas_statuses / sizeof vgpu_blas_statuses[0]; i++)
        if (vgpu_blas_statuses[i].status == st)
            return vgpu_blas_statuses[i].name;
    return "CUBLAS_STATUS_UNKNOWN";
}

static inline const char *vgpu_blas_status_text(cublasStatus_t st)
{
    for (size_t i = 0; i < sizeof vgpu_blas_statuses / sizeof vgpu_blas_statuses[0]; i++)
        if (vgpu_blas_statuses[i].status == st)
            return vgpu_blas_statuses[i].text;
    return "unknown error";
}

#endif /* VGPU_CUBLAS_STATUS_H */
