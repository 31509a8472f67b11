/*
 * Runtime calls that are hints or no-ops on a real GPU, on the driver's (cu_hints.c, and the
 * primary context's flags in cu_device.c): device flags, profiler control, device limits.
 */
#include "cu_api.h"
#include "rt_internal.h"

cudaError_t cudaGetDevice(int *device); /* rt_device.c */
cudaError_t cudaSetDeviceFlags(unsigned int flags);
cudaError_t cudaGetDeviceFlags(unsigned int *flags);
cudaError_t cudaProfilerStart(void);
cudaError_t cudaProfilerStop(void);
cudaError_t cudaDeviceSetLimit(int limit, size_t value);
cudaError_t cudaDeviceGetLimit(size_t *value, int limit);

cudaError_t cudaSetDeviceFlags(unsigned int flags)
{
    int device = 0;
    cudaError_t err = cudaGetDevice(&device);
    if (err)
        return err;
    RT_CALL(cuDevicePrimaryCtxSetFlags_v2(device, flags));
}

cudaError_t cudaGetDeviceFlags(unsigned int *flags)
{
    if (!flags)
        return rt_ret(cudaErrorInvalidValue);
    int device = 0, active = 0;
    cudaError_t err = cudaGetDevice(&device);
    if (err)
        return err;
    RT_CALL(cuDevicePrimaryCtxGetState(device, flags, &active));
}

cudaError_t cudaProfilerStart(void) { RT_CALL(cuProfilerStart()); }
cudaError_t cudaProfilerStop(void) { RT_CALL(cuProfilerStop()); }

/* cudaLimit and CUlimit share their values. */
cudaError_t cudaDeviceSetLimit(int limit, size_t value)
{
    cudaError_t err = rt_init();
    if (err)
        return rt_ret(err);
    RT_CALL(cuCtxSetLimit(limit, value));
}

cudaError_t cudaDeviceGetLimit(size_t *value, int limit)
{
    cudaError_t err = rt_init();
    if (err)
        return rt_ret(err);
    RT_CALL(cuCtxGetLimit(value, limit));
}

/* Peers (cu_hints.c): a VM's one device is no peer of itself, and no other device exists. */
CUresult cuDeviceCanAccessPeer(int *can, CUdevice dev, CUdevice peer);
cudaError_t cudaDeviceCanAccessPeer(int *can, int device, int peer);
cudaError_t cudaDeviceEnablePeerAccess(int peer, unsigned int flags);
cudaError_t cudaDeviceDisablePeerAccess(int peer);

cudaError_t cudaDeviceCanAccessPeer(int *can, int device, int peer) { RT_CALL(cuDeviceCanAccessPeer(can, device, peer)); }

cudaError_t cudaDeviceEnablePeerAccess(int peer, unsigned int flags)
{
    (void)peer; /* none is valid: 0 is the device itself */
    cudaError_t err = rt_init();
    if (err)
        return rt_ret(err);
    return rt_ret(flags ? cudaErrorInvalidValue : cudaErrorInvalidDevice);
}

cudaError_t cudaDeviceDisablePeerAccess(int peer)
{
    (void)peer;
    cudaError_t err = rt_init();
    return rt_ret(err ? err : cudaErrorInvalidDevice);
}
