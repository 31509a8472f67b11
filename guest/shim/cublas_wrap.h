/*
 * The handles that wrap a cuBLAS handle (cublasXt's in libcublas.so.13, cublasLt's in
 * libcublasLt.so.13): their calls run on a cuBLAS handle created with them.
 */
#ifndef VGPU_CUBLAS_WRAP_H
#define VGPU_CUBLAS_WRAP_H

#include <stdlib.h>
#include <string.h>

#include "shim_abi.h"

cublasStatus_t cublasCreate_v2(cublasHandle_t *handle);

/* `size` zeroed bytes with a new cuBLAS handle stored at `blas_at` (the wrapper's offsetof), or NULL
 * and why not in *status. */
static inline void *vgpu_blas_wrapper_new(size_t size, size_t blas_at, cublasStatus_t *status)
{
    unsigned char *h = calloc(1, size);
    if (!h) {
        *status = CUBLAS_STATUS_ALLOC_FAILED;
        return NULL;
    }
    cublasHandle_t blas;
    *status = cublasCreate_v2(&blas);
    if (*status) {
        free(h);
        return NULL;
    }
    memcpy(h + blas_at, &blas, sizeof blas);
    return h;
}

#endif /* VGPU_CUBLAS_WRAP_H */
