/*
 * The stream-ordered allocator on the protocol's allocations: the device's default memory pool.
 *
 * cuMemAllocAsync allocates at once (cuMemAlloc): memory that exists before the stream reaches
 * the allocation is valid in the stream's order, and it is counted against the VM's quota as any
 * allocation is. cuMemFreeAsync must not free before the stream's earlier work is done: it waits
 * for the stream, then frees (so a free is a synchronization point, where NVIDIA's returns at
 * once). The pool keeps no memory: its attributes are recorded (the release threshold, the reuse
 * policies) and its reserved and used figures are what its live allocations hold. Only the default
 * pool exists (cuMemPoolCreate is not served). On a capturing stream an allocation or free is a
 * graph memory node (cu_graph_mem.c), and freeing a graph's allocation follows its rules.
 */
#include <stdlib.h>
#include <string.h>

#include "cu_api.h"
#include "cu_graph_mem.h"
#include "shim.h"

#define CU_MEMPOOL_ATTR_REUSE_FOLLOW_EVENT_DEPENDENCIES 1
#define CU_MEMPOOL_ATTR_REUSE_ALLOW_OPPORTUNISTIC 2
#define CU_MEMPOOL_ATTR_REUSE_ALLOW_INTERNAL_DEPENDENCIES 3
#define CU_MEMPOOL_ATTR_RELEASE_THRESHOLD 4
#define CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT 5
#define CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH 6
#define CU_MEMPOOL_ATTR_USED_MEM_CURRENT 7
#define CU_MEMPOOL_ATTR_USED_MEM_HIGH 8
#define VGPU_MAGIC_POOL 0x6c6f6f56u /* "Vool" */

typedef struct CUmemPool_st *CUmemoryPool;

/* The default pool of device 0, and its live allocations (address -> size). */
static struct CUmemPool_st {
    uint32_t magic;
    pthread_mutex_t lock;
    int reuse[4]; /* the three reuse policies, by attribute */
    uint64_t release_threshold, used, used_high;
    size_t count, cap;
    struct { CUdeviceptr ptr; size_t size; } *live;
} pool = {VGPU_MAGIC_POOL, PTHREAD_MUTEX_INITIALIZER, {0, 1, 1, 1}, 0, 0, 0, 0, 0, NULL};

CUresult cuDeviceGetDefaultMemPool(CUmemoryPool *out, CUdevice dev);
CUresult cuDeviceGetMemPool(CUmemoryPool *out, CUdevice dev);
CUresult cuDeviceSetMemPool(CUdevice dev, CUmemoryPool p);
CUresult cuMemAllocAsync(CUdeviceptr *dptr, size_t size, CUstream s);
CUresult cuMemAllocFromPoolAsync(CUdeviceptr *dptr, size_t size, CUmemoryPool p, CUstream s);
CUresult cuMemFreeAsync(CUdeviceptr dptr, CUstream s);
CUresult cuMemPoolSetAttribute(CUmemoryPool p, int attr, void *value);
CUresult cuMemPoolGetAttribute(CUmemoryPool p, int attr, void *value);
CUresult cuMemPoolTrimTo(CUmemoryPool p, size_t keep);

static CUresult check_dev(CUdevice dev)
{
    int count;
    CUresult rc = cuDeviceGetCount(&count);
    return rc ? rc : dev < 0 || dev >= count ? CUDA_ERROR_INVALID_DEVICE : dev ? CUDA_ERROR_NOT_SUPPORTED : 0;
}

CUresult cuDeviceGetDefaultMemPool(CUmemoryPool *out, CUdevice dev)
{
    if (!out)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult rc = check_dev(dev);
    if (rc == CUDA_SUCCESS)
        *out = &pool;
    return rc;
}

CUresult cuDeviceGetMemPool(CUmemoryPool *out, CUdevice dev) { return cuDeviceGetDefaultMemPool(out, dev); }

CUresult cuDeviceSetMemPool(CUdevice dev, CUmemoryPool p)
{
    CUresult rc = check_dev(dev);
    if (rc)
        return rc;
    if (p != &pool)
        return CUDA_ERROR_INVALID_VALUE; /* only the default pool exists */
    return CUDA_SUCCESS;
}

/* Stream-ordered calls on a capturing stream are graph memory nodes of that capture (*capture). */
static CUresult check_stream(CUstream s, int *capturing, unsigned long long *capture)
{
    uint32_t id;
    if (!vgpu_capture_possible()) /* no capture is in progress: the handle checked here, the host not asked */
        return vgpu_shim_stream_id(s, &id);
    CUresult rc = cuStreamGetCaptureInfo(s, capturing, capture);
    return rc ? rc : *capturing == 2 ? 901 /* CUDA_ERROR_STREAM_CAPTURE_INVALIDATED */ : CUDA_SUCCESS;
}

CUresult cuMemAllocFromPoolAsync(CUdeviceptr *dptr, size_t size, CUmemoryPool p, CUstream s)
{
    if (!dptr || p != &pool)
        return CUDA_ERROR_INVALID_VALUE;
    int capturing = 0;
    unsigned long long capture = 0;
    CUresult rc = check_stream(s, &capturing, &capture);
    if (rc || capturing)
        return rc ? rc : vgpu_gmem_capture_alloc(dptr, size, capture);
    pthread_mutex_lock(&pool.lock);
    if (pool.count == pool.cap) {
        size_t cap = pool.cap ? 2 * pool.cap : 64;
        void *grown = realloc(pool.live, cap * sizeof *pool.live);
        if (!grown) {
            pthread_mutex_unlock(&pool.lock);
            return CUDA_ERROR_OUT_OF_MEMORY;
        }
        pool.live = grown;
        pool.cap = cap;
    }
    pthread_mutex_unlock(&pool.lock);
    if ((rc = cuMemAlloc_v2(dptr, size)))
        return rc;
    pthread_mutex_lock(&pool.lock);
    pool.live[pool.count].ptr = *dptr;
    pool.live[pool.count++].size = size;
    pool.used += size;
    if (pool.used > pool.used_high)
        pool.used_high = pool.used;
    pthread_mutex_unlock(&pool.lock);
    return CUDA_SUCCESS;
}

CUresult cuMemAllocAsync(CUdeviceptr *dptr, size_t size, CUstream s)
{
    return cuMemAllocFromPoolAsync(dptr, size, &pool, s);
}

CUresult cuMemFreeAsync(CUdeviceptr dptr, CUstream s)
{
    int capturing = 0;
    unsigned long long capture = 0;
    CUresult rc = check_stream(s, &capturing, &capture);
    if (rc || capturing)
        return rc ? rc : vgpu_gmem_capture_free(dptr, capture);
    if (vgpu_gmem_free_outside(dptr, &s, &rc))
        return rc;
    if ((rc = cuStreamSynchronize(s))) /* the stream's earlier work may still use the memory */
        return rc;
    if ((rc = cuMemFree_v2(dptr)))
        return rc;
    pthread_mutex_lock(&pool.lock);
    for (size_t i = 0; i < pool.count; i++)
        if (pool.live[i].ptr == dptr) {
            pool.used -= pool.live[i].size;
            pool.live[i] = pool.live[--pool.count];
            break;
        }
    pthread_mutex_unlock(&pool.lock);
    return CUDA_SUCCESS;
}

CUresult cuMemPoolSetAttribute(CUmemoryPool p, int attr, void *value)
{
    if (p != &pool || !value)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult rc = CUDA_SUCCESS;
    pthread_mutex_lock(&pool.lock);
    if (attr >= CU_MEMPOOL_ATTR_REUSE_FOLLOW_EVENT_DEPENDENCIES && attr <= CU_MEMPOOL_ATTR_REUSE_ALLOW_INTERNAL_DEPENDENCIES)
        memcpy(&pool.reuse[attr], value, sizeof(int));
    else if (attr == CU_MEMPOOL_ATTR_RELEASE_THRESHOLD)
        memcpy(&pool.release_threshold, value, sizeof(uint64_t));
    else if (attr == CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH || attr == CU_MEMPOOL_ATTR_USED_MEM_HIGH) {
        uint64_t v;
        memcpy(&v, value, sizeof v);
        if (v != 0) /* the high-water marks may only be reset */
            rc = CUDA_ERROR_INVALID_VALUE;
        else
            pool.used_high = pool.used;
    } else
        rc = CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_unlock(&pool.lock);
    return rc;
}

CUresult cuMemPoolGetAttribute(CUmemoryPool p, int attr, void *value)
{
    if (p != &pool || !value)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult rc = CUDA_SUCCESS;
    pthread_mutex_lock(&pool.lock);
    uint64_t v = 0;
    switch (attr) {
    case CU_MEMPOOL_ATTR_REUSE_FOLLOW_EVENT_DEPENDENCIES:
    case CU_MEMPOOL_ATTR_REUSE_ALLOW_OPPORTUNISTIC:
    case CU_MEMPOOL_ATTR_REUSE_ALLOW_INTERNAL_DEPENDENCIES:
        memcpy(value, &pool.reuse[attr], sizeof(int));
        break;
    case CU_MEMPOOL_ATTR_RELEASE_THRESHOLD: v = pool.release_threshold; break;
    case CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT: /* the pool keeps nothing beyond what is used */
    case CU_MEMPOOL_ATTR_USED_MEM_CURRENT: v = pool.used; break;
    case CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH:
    case CU_MEMPOOL_ATTR_USED_MEM_HIGH: v = pool.used_high; break;
    default: rc = CUDA_ERROR_INVALID_VALUE;
    }
    if (rc == CUDA_SUCCESS && attr >= CU_MEMPOOL_ATTR_RELEASE_THRESHOLD)
        memcpy(value, &v, sizeof v);
    pthread_mutex_unlock(&pool.lock);
    return rc;
}

/* The pool holds no memory beyond its live allocations: there is nothing to trim. */
CUresult cuMemPoolTrimTo(CUmemoryPool p, size_t keep)
{
    (void)keep;
    return p == &pool ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}
