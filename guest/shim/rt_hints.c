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
