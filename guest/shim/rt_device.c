/*
 * Runtime API: initialization, errors, devices and versions.
 *
 * The runtime initializes on its first call that needs the device, as NVIDIA's does: cuInit, then
 * device 0's primary context is retained and made current. cudaGetDeviceProperties is assembled
 * from device attributes (cached by the driver layer, and the whole struct here after the first
 * time); an attribute the host does not know is reported as 0, logged once.
 */
#include <stddef.h>
#include <string.h>

#include "cu_api.h"
#include "rt_internal.h"

static __thread cudaError_t last_error;
static __thread int current_device;

cudaError_t rt_ret(cudaError_t err)
{
    if (err != cudaSuccess)
        last_error = err;
    return err;
}

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static cudaError_t init_status;

static void initialize(void)
{
    CUresult rc = cuInit(0);
    CUcontext ctx = NULL;
    if (rc == CUDA_SUCCESS)
        rc = cuDevicePrimaryCtxRetain(&ctx, 0);
    if (rc == CUDA_SUCCESS)
        rc = cuCtxSetCurrent(ctx);
    if (rc != CUDA_SUCCESS)
        vgpu_shim_log("the CUDA runtime could not initialize: error %d", rc);
    /* no device at all is cudaErrorNoDevice, as the runtime reports it */
    init_status = rc == CUDA_ERROR_NO_DEVICE ? cudaErrorNoDevice : rt_err(rc);
}

cudaError_t rt_init(void)
{
    pthread_once(&init_once, initialize);
    return init_status;
}

/* -- errors ------------------------------------------------------------------------------------ */

cudaError_t cudaGetLastError(void)
{
    cudaError_t err = last_error;
    last_error = cudaSuccess;
    return err;
}

cudaError_t cudaPeekAtLastError(void) { return last_error; }

const char *cudaGetErrorName(cudaError_t err)
{
    const char *name = vgpu_shim_error_name(err);
    return name ? name : "cudaErrorUnknown";
}

const char *cudaGetErrorString(cudaError_t err)
{
    const char *text = vgpu_shim_error_text(err);
    return text ? text : "unrecognized error code";
}

/* -- versions and devices ---------------------------------------------------------------------- */

cudaError_t cudaRuntimeGetVersion(int *version)
{
    if (!version)
        return rt_ret(cudaErrorInvalidValue);
    *version = CUDART_VERSION_SERVED;
    return cudaSuccess;
}

cudaError_t cudaDriverGetVersion(int *version)
{
    if (!version)
        return rt_ret(cudaErrorInvalidValue);
    CUresult rc = cuDriverGetVersion(version);
    if (rc == CUDA_ERROR_NO_DEVICE) { /* no driver: the runtime reports version 0 */
        *version = 0;
        return cudaSuccess;
    }
    return rt_ret(rt_err(rc));
}

cudaError_t cudaGetDeviceCount(int *count)
{
    if (!count)
        return rt_ret(cudaErrorInvalidValue);
    cudaError_t err = rt_init();
    if (err) {
        *count = 0;
        return rt_ret(err);
    }
    return rt_ret(rt_err(cuDeviceGetCount(count)));
}

/* One host context serves every call, and no call carries a device: only device 0 is served. */
static cudaError_t check_device(int device)
{
    int count;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err)
        return err;
    if (device < 0 || device >= count)
        return rt_ret(cudaErrorInvalidDevice);
    if (device != 0)
        VGPU_UNSUPPORTED_USE(rt_ret(cudaErrorNotSupported), "device %d: only device 0 of a VM is served",
                             device);
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int device)
{
    cudaError_t err = check_device(device);
    if (err == cudaSuccess)
        current_device = device;
    return err;
}

cudaError_t cudaGetDevice(int *device)
{
    if (!device)
        return rt_ret(cudaErrorInvalidValue);
    cudaError_t err = rt_init();
    if (err)
        return rt_ret(err);
    *device = current_device;
    return cudaSuccess;
}

cudaError_t cudaInitDevice(int device, unsigned int device_flags, unsigned int flags)
{
    if (device_flags || flags)
        VGPU_UNSUPPORTED_USE(rt_ret(cudaErrorNotSupported), "cudaInitDevice flags %#x/%#x are not served",
                             device_flags, flags);
    return check_device(device);
}

cudaError_t cudaDeviceGetAttribute(int *value, int attr, int device)
{
    RT_CALL(cuDeviceGetAttribute(value, attr, device));
}

cudaError_t cudaDeviceSynchronize(void) { RT_CALL(cuCtxSynchronize()); }

cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes)
{
    RT_CALL(cuMemGetInfo_v2(free_bytes, total_bytes));
}

cudaError_t cudaDeviceGetPCIBusId(char *bus_id, int len, int device)
{
    RT_CALL(cuDeviceGetPCIBusId(bus_id, len, device));
}

cudaError_t cudaDeviceGetStreamPriorityRange(int *least, int *greatest)
{
    RT_CALL(cuCtxGetStreamPriorityRange(least, greatest));
}

/* -- cudaGetDeviceProperties ------------------------------------------------------------------- */

/* int fields and int arrays (one attribute per element), and size_t fields (FIELDZ) */
#define FIELD(f, ...) {offsetof(struct cudaDeviceProp, f), sizeof(((struct cudaDeviceProp *)0)->f) / sizeof(int), 0, {__VA_ARGS__}}
#define FIELDZ(f, a) {offsetof(struct cudaDeviceProp, f), 1, 1, {a}}

/* Each field of cudaDeviceProp that an attribute fills. */
static const struct { size_t offset, count; int wide; int attrs[3]; } prop_fields[] = {
    FIELDZ(sharedMemPerBlock, 8), FIELD(regsPerBlock, 12), FIELD(warpSize, 10), FIELDZ(memPitch, 11),
    FIELD(maxThreadsPerBlock, 1), FIELD(maxThreadsDim, 2, 3, 4), FIELD(maxGridSize, 5, 6, 7),
    FIELDZ(totalConstMem, 9), FIELD(major, 75), FIELD(minor, 76), FIELDZ(textureAlignment, 14),
    FIELDZ(texturePitchAlignment, 51), FIELD(multiProcessorCount, 16), FIELD(integrated, 18),
    FIELD(canMapHostMemory, 19), FIELD(maxTexture1D, 21), FIELD(maxTexture1DMipmap, 77),
    FIELD(maxTexture2D, 22, 23), FIELD(maxTexture2DMipmap, 73, 74), FIELD(maxTexture2DLinear, 70, 71, 72),
    FIELD(maxTexture2DGather, 45, 46), FIELD(maxTexture3D, 24, 25, 26), FIELD(maxTexture3DAlt, 47, 48, 49),
    FIELD(maxTextureCubemap, 52), FIELD(maxTexture1DLayered, 42, 43), FIELD(maxTexture2DLayered, 27, 28, 29),
    FIELD(maxTextureCubemapLayered, 53, 54), FIELD(maxSurface1D, 55), FIELD(maxSurface2D, 56, 57),
    FIELD(maxSurface3D, 58, 59, 60), FIELD(maxSurface1DLayered, 61, 62), FIELD(maxSurface2DLayered, 63, 64, 65),
    FIELD(maxSurfaceCubemap, 66), FIELD(maxSurfaceCubemapLayered, 67, 68), FIELDZ(surfaceAlignment, 30),
    FIELD(concurrentKernels, 31), FIELD(ECCEnabled, 32), FIELD(pciBusID, 33), FIELD(pciDeviceID, 34),
    FIELD(pciDomainID, 50), FIELD(tccDriver, 35), FIELD(asyncEngineCount, 40), FIELD(unifiedAddressing, 41),
    FIELD(memoryBusWidth, 37), FIELD(l2CacheSize, 38), FIELD(persistingL2CacheMaxSize, 108),
    FIELD(maxThreadsPerMultiProcessor, 39), FIELD(streamPrioritiesSupported, 78),
    FIELD(globalL1CacheSupported, 79), FIELD(localL1CacheSupported, 80), FIELDZ(sharedMemPerMultiprocessor, 81),
    FIELD(regsPerMultiprocessor, 82), FIELD(managedMemory, 83), FIELD(isMultiGpuBoard, 84),
    FIELD(multiGpuBoardGroupID, 85), FIELD(hostNativeAtomicSupported, 86), FIELD(pageableMemoryAccess, 88),
    FIELD(concurrentManagedAccess, 89), FIELD(computePreemptionSupported, 90),
    FIELD(canUseHostPointerForRegisteredMem, 91), FIELD(cooperativeLaunch, 95),
    FIELDZ(sharedMemPerBlockOptin, 97), FIELD(pageableMemoryAccessUsesHostPageTables, 100),
    FIELD(directManagedMemAccessFromHost, 101), FIELD(maxBlocksPerMultiProcessor, 106),
    FIELD(accessPolicyMaxWindowSize, 109), FIELDZ(reservedSharedMemPerBlock, 111),
    FIELD(hostRegisterSupported, 99), FIELD(sparseCudaArraySupported, 112),
    FIELD(hostRegisterReadOnlySupported, 113), FIELD(timelineSemaphoreInteropSupported, 114),
    FIELD(memoryPoolsSupported, 115), FIELD(gpuDirectRDMASupported, 116),
    FIELD(gpuDirectRDMAFlushWritesOptions, 117), FIELD(gpuDirectRDMAWritesOrdering, 118),
    FIELD(memoryPoolSupportedHandleTypes, 119), FIELD(deferredMappingCudaArraySupported, 121),
    FIELD(ipcEventSupported, 125), FIELD(clusterLaunch, 120), FIELD(unifiedFunctionPointers, 129),
    FIELD(deviceNumaConfig, 130), FIELD(deviceNumaId, 131), FIELD(mpsEnabled, 133), FIELD(hostNumaId, 134),
    FIELD(gpuPciDeviceID, 139), FIELD(gpuPciSubsystemID, 140), FIELD(hostNumaMultinodeIpcSupported, 143),
};

static pthread_mutex_t props_lock = PTHREAD_MUTEX_INITIALIZER;
static int have_props;
static struct cudaDeviceProp props0;

static cudaError_t fill_props(struct cudaDeviceProp *p)
{
    memset(p, 0, sizeof *p);
    CUresult rc = cuDeviceGetName(p->name, sizeof p->name, 0);
    if (!rc)
        rc = cuDeviceGetUuid_v2(&p->uuid, 0);
    if (!rc)
        rc = cuDeviceTotalMem_v2(&p->totalGlobalMem, 0);
    if (rc)
        return rt_err(rc);
    int unknown = 0, first_unknown = 0;
    for (size_t i = 0; i < sizeof prop_fields / sizeof prop_fields[0]; i++) {
        for (size_t k = 0; k < prop_fields[i].count && k < 3; k++) {
            int value = 0, attr = prop_fields[i].attrs[k];
            rc = cuDeviceGetAttribute(&value, attr, 0);
            if (rc == CUDA_ERROR_INVALID_VALUE) { /* an attribute the host does not report */
                if (!unknown++)
                    first_unknown = attr;
                value = 0;
            } else if (rc) {
                return rt_err(rc);
            }
            unsigned char *field = (unsigned char *)p + prop_fields[i].offset;
            if (prop_fields[i].wide) {
                size_t wide = (size_t)(unsigned int)value;
                memcpy(field, &wide, sizeof wide);
            } else {
                memcpy(field + k * sizeof(int), &value, sizeof value);
            }
        }
    }
    if (unknown)
        vgpu_shim_log("cudaGetDeviceProperties: %d attributes the host does not report (first: %d) are 0",
                      unknown, first_unknown);
    return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *prop, int device)
{
    if (!prop)
        return rt_ret(cudaErrorInvalidValue);
    cudaError_t err = check_device(device);
    if (err)
        return err;
    pthread_mutex_lock(&props_lock);
    if (!have_props && (err = fill_props(&props0)) == cudaSuccess)
        have_props = 1;
    if (have_props)
        *prop = props0;
    pthread_mutex_unlock(&props_lock);
    return rt_ret(err);
}

/* -- the driver's entry points, as the runtime hands them out ---------------------------------- */

cudaError_t cudaGetDriverEntryPointByVersion(const char *symbol, void **fn, unsigned int version,
                                             unsigned long long flags, int *status)
{
    CUresult rc = cuGetProcAddress_v2(symbol, fn, (int)version, flags, (CUdriverProcAddressQueryResult *)status);
    /* the runtime reports a missing symbol through *status, with cudaSuccess */
    return rc == CUDA_ERROR_NOT_FOUND && status ? cudaSuccess : rt_ret(rt_err(rc));
}

cudaError_t cudaGetDriverEntryPoint(const char *symbol, void **fn, unsigned long long flags, int *status)
{
    return cudaGetDriverEntryPointByVersion(symbol, fn, CUDART_VERSION_SERVED, flags, status);
}

/* -- channel descriptors: a value, no device involved ------------------------------------------ */

struct cudaChannelFormatDesc { int x, y, z, w; int f; };
struct cudaChannelFormatDesc cudaCreateChannelDesc(int x, int y, int z, int w, int f);
struct cudaChannelFormatDesc cudaCreateChannelDesc(int x, int y, int z, int w, int f)
{
    return (struct cudaChannelFormatDesc){x, y, z, w, f};
}
