/* The runtime's stream-ordered allocator, on the driver's (cu_mempool.c); the same attribute values. */
#include "cu_api.h"
#include "rt_internal.h"

typedef struct CUmemPool_st *cudaMemPool_t;

CUresult cuDeviceGetDefaultMemPool(cudaMemPool_t *out, CUdevice dev);
CUresult cuDeviceGetMemPool(cudaMemPool_t *out, CUdevice dev);
CUresult cuDeviceSetMemPool(CUdevice dev, cudaMemPool_t p);
CUresult cuMemAllocAsync(CUdeviceptr *dptr, size_t size, CUstream s);
CUresult cuMemAllocFromPoolAsync(CUdeviceptr *dptr, size_t size, cudaMemPool_t p, CUstream s);
CUresult cuMemFreeAsync(CUdeviceptr dptr, CUstream s);
CUresult cuMemPoolSetAttribute(cudaMemPool_t p, int attr, void *value);
CUresult cuMemPoolGetAttribute(cudaMemPool_t p, int attr, void *value);
CUresult cuMemPoolTrimTo(cudaMemPool_t p, size_t keep);

cudaError_t cudaDeviceGetDefaultMemPool(cudaMemPool_t *out, int device);
cudaError_t cudaDeviceGetMemPool(cudaMemPool_t *out, int device);
cudaError_t cudaDeviceSetMemPool(int device, cudaMemPool_t p);
cudaError_t cudaMallocAsync(void **ptr, size_t size, cudaStream_t s);
cudaError_t cudaMallocFromPoolAsync(void **ptr, size_t size, cudaMemPool_t p, cudaStream_t s);
cudaError_t cudaFreeAsync(void *ptr, cudaStream_t s);
cudaError_t cudaMemPoolSetAttribute(cudaMemPool_t p, int attr, void *value);
cudaError_t cudaMemPoolGetAttribute(cudaMemPool_t p, int attr, void *value);
cudaError_t cudaMemPoolTrimTo(cudaMemPool_t p, size_t keep);

cudaError_t cudaDeviceGetDefaultMemPool(cudaMemPool_t *out, int device) { RT_CALL(cuDeviceGetDefaultMemPool(out, device)); }
cudaError_t cudaDeviceGetMemPool(cudaMemPool_t *out, int device) { RT_CALL(cuDeviceGetMemPool(out, device)); }
cudaError_t cudaDeviceSetMemPool(int device, cudaMemPool_t p) { RT_CALL(cuDeviceSetMemPool(device, p)); }

cudaError_t cudaMallocFromPoolAsync(void **ptr, size_t size, cudaMemPool_t p, cudaStream_t s)
{
    if (!ptr)
        return rt_ret(cudaErrorInvalidValue);
    CUdeviceptr d = 0;
    cudaError_t err = rt_init();
    if (!err)
        err = rt_err(cuMemAllocFromPoolAsync(&d, size, p, s));
    if (!err)
        *ptr = (void *)(uintptr_t)d;
    return rt_ret(err);
}

cudaError_t cudaMallocAsync(void **ptr, size_t size, cudaStream_t s)
{
    cudaMemPool_t p;
    cudaError_t err = cudaDeviceGetMemPool(&p, 0);
    return err ? err : cudaMallocFromPoolAsync(ptr, size, p, s);
}

cudaError_t cudaFreeAsync(void *ptr, cudaStream_t s) { RT_CALL(cuMemFreeAsync((CUdeviceptr)(uintptr_t)ptr, s)); }
cudaError_t cudaMemPoolSetAttribute(cudaMemPool_t p, int attr, void *value) { RT_CALL(cuMemPoolSetAttribute(p, attr, value)); }
cudaError_t cudaMemPoolGetAttribute(cudaMemPool_t p, int attr, void *value) { RT_CALL(cuMemPoolGetAttribute(p, attr, value)); }
cudaError_t cudaMemPoolTrimTo(cudaMemPool_t p, size_t keep) { RT_CALL(cuMemPoolTrimTo(p, keep)); }
