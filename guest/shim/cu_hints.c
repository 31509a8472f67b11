/*
 * Driver API calls that are hints or no-ops on a real GPU: profiler control and the context limits
 * the mediator can honour.
 *
 * No profiler runs in the guest (a profiler attaches on the host, to the mediator's worker), and
 * with none attached NVIDIA's driver answers cuProfilerStart/Stop with success: so does the shim.
 * Of the context limits, the L2 fetch granularity is a hint the driver may ignore (recorded and
 * read back), and the persisting-L2 set-aside is 0 because access-policy windows are not served
 * (CU_DEVICE_ATTRIBUTE_MAX_PERSISTING_L2_CACHE_SIZE is 0): setting it to 0 is honoured, anything
 * else is not. The other limits (stack, printf FIFO, malloc heap, device runtime) would have to
 * reach the host's context: they answer CUDA_ERROR_NOT_SUPPORTED, logged once.
 */
#include "cu_api.h"
#include "shim.h"

#define CU_LIMIT_MAX_L2_FETCH_GRANULARITY 0x05
#define CU_LIMIT_PERSISTING_L2_CACHE_SIZE 0x06
#define CU_LIMIT_MAX 0x07

static size_t l2_fetch_granularity;
static int have_l2_fetch_granularity;

CUresult cuProfilerStart(void) { return CUDA_SUCCESS; }
CUresult cuProfilerStop(void) { return CUDA_SUCCESS; }

/* A current context is needed, as for NVIDIA's (limits are per context). */
static CUresult need_context(void)
{
    CUcontext ctx = NULL;
    CUresult rc = cuCtxGetCurrent(&ctx);
    return rc ? rc : ctx ? CUDA_SUCCESS : CUDA_ERROR_INVALID_CONTEXT;
}

CUresult cuCtxSetLimit(int limit, size_t value)
{
    if (limit < 0 || limit >= CU_LIMIT_MAX)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult rc = need_context();
    if (rc)
        return rc;
    if (limit == CU_LIMIT_MAX_L2_FETCH_GRANULARITY) {
        if (value > 128)
            return CUDA_ERROR_INVALID_VALUE;
        __atomic_store_n(&l2_fetch_granularity, value, __ATOMIC_RELAXED);
        __atomic_store_n(&have_l2_fetch_granularity, 1, __ATOMIC_RELEASE);
        return CUDA_SUCCESS;
    }
    if (limit == CU_LIMIT_PERSISTING_L2_CACHE_SIZE && value == 0)
        return CUDA_SUCCESS;
    VGPU_UNSUPPORTED_USE(CUDA_ERROR_NOT_SUPPORTED,
                         "cuCtxSetLimit: limit %d = %zu is not served (it would have to reach the host's context)",
                         limit, value);
}

CUresult cuCtxGetLimit(size_t *value, int limit)
{
    if (!value || limit < 0 || limit >= CU_LIMIT_MAX)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult rc = need_context();
    if (rc)
        return rc;
    if (limit == CU_LIMIT_PERSISTING_L2_CACHE_SIZE) {
        *value = 0;
        return CUDA_SUCCESS;
    }
    if (limit == CU_LIMIT_MAX_L2_FETCH_GRANULARITY && __atomic_load_n(&have_l2_fetch_granularity, __ATOMIC_ACQUIRE)) {
        *value = __atomic_load_n(&l2_fetch_granularity, __ATOMIC_RELAXED);
        return CUDA_SUCCESS;
    }
    VGPU_UNSUPPORTED_USE(CUDA_ERROR_NOT_SUPPORTED,
                         "cuCtxGetLimit: limit %d is not known to the guest (the host's context holds it)", limit);
}

/* Peers: a VM has one device, which is no peer of itself (CUDA answers 0 for a device and itself,
 * and refuses enabling access to itself); any other ordinal does not exist. */
CUresult cuDeviceCanAccessPeer(int *can, CUdevice dev, CUdevice peer);
CUresult cuCtxEnablePeerAccess(CUcontext peer, unsigned int flags);
CUresult cuCtxDisablePeerAccess(CUcontext peer);

CUresult cuDeviceCanAccessPeer(int *can, CUdevice dev, CUdevice peer)
{
    if (!can)
        return CUDA_ERROR_INVALID_VALUE;
    int count;
    CUresult rc = cuDeviceGetCount(&count);
    if (rc)
        return rc;
    if (dev < 0 || dev >= count || peer < 0 || peer >= count)
        return CUDA_ERROR_INVALID_DEVICE;
    *can = 0; /* one device: the only candidate is the device itself */
    return CUDA_SUCCESS;
}

/* Every context of a VM is on its one device: none is another device's peer. */
CUresult cuCtxEnablePeerAccess(CUcontext peer, unsigned int flags)
{
    if (flags || !peer)
        return CUDA_ERROR_INVALID_VALUE;
    return CUDA_ERROR_PEER_ACCESS_UNSUPPORTED;
}

CUresult cuCtxDisablePeerAccess(CUcontext peer)
{
    return peer ? CUDA_ERROR_PEER_ACCESS_NOT_ENABLED : CUDA_ERROR_INVALID_VALUE;
}
