/*
 * Driver API: initialization, devices and contexts.
 *
 * Answers that cannot change while the process lives (driver version, device count, a device's
 * name, attributes, memory size, UUID, PCI bus id) are asked once and kept; cuMemGetInfo and the
 * context calls always go to the host.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cu_api.h"
#include "shim.h"
#include "vgpu_protocol.h"

#define MAX_DEVICES 16
#define MAX_ATTRIBUTE 160

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static int have_version, driver_version;
static int have_count, device_count;
static struct device_cache {
    unsigned char have_attr[MAX_ATTRIBUTE];
    int attr[MAX_ATTRIBUTE];
    int have_name, have_mem, have_uuid, have_bus_id;
    char name[256];
    size_t total_mem;
    CUuuid uuid;
    char bus_id[32];
} devices[MAX_DEVICES];

static struct device_cache *device_slot(CUdevice dev)
{
    return dev >= 0 && dev < MAX_DEVICES ? &devices[dev] : NULL;
}

CUresult cuInit(unsigned int flags)
{
    struct vgpu_args_init a = {.flags = flags};
    return vgpu_cu_call(VGPU_CALL_INIT, &a, sizeof a, NULL, 0);
}

CUresult cuDriverGetVersion(int *version)
{
    if (!version)
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&cache_lock);
    int have = have_version, value = driver_version;
    pthread_mutex_unlock(&cache_lock);
    if (!have) {
        struct vgpu_result_driver_get_version r;
        CUresult rc = vgpu_cu_call(VGPU_CALL_DRIVER_GET_VERSION, NULL, 0, &r, sizeof r);
        if (rc)
            return rc;
        value = r.value;
        pthread_mutex_lock(&cache_lock);
        have_version = 1;
        driver_version = value;
        pthread_mutex_unlock(&cache_lock);
    }
    *version = value;
    return CUDA_SUCCESS;
}

CUresult cuDeviceGetCount(int *count)
{
    if (!count)
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&cache_lock);
    int have = have_count, value = device_count;
    pthread_mutex_unlock(&cache_lock);
    if (!have) {
        struct vgpu_result_device_get_count r;
        CUresult rc = vgpu_cu_call(VGPU_CALL_DEVICE_GET_COUNT, NULL, 0, &r, sizeof r);
        if (rc)
            return rc;
        value = r.value;
        pthread_mutex_lock(&cache_lock);
        have_count = 1;
        device_count = value;
        pthread_mutex_unlock(&cache_lock);
    }
    *count = value;
    return CUDA_SUCCESS;
}

CUresult cuDeviceGet(CUdevice *device, int ordinal)
{
    if (!device)
        return CUDA_ERROR_INVALID_VALUE;
    struct vgpu_args_device_get a = {.ordinal = ordinal};
    struct vgpu_result_device_get r;
    CUresult rc = vgpu_cu_call(VGPU_CALL_DEVICE_GET, &a, sizeof a, &r, sizeof r);
    if (rc == CUDA_SUCCESS)
        *device = r.device;
    return rc;
}

/* Capabilities the shim does not provide, whatever the GPU can do: mapping the process's own pages
 * into the GPU (pageable access, registered memory), concurrent managed access, stream priorities
 * (guest-side), and those whose calls it does not serve
 * (multi-device cooperative launches, stream memory operations, memory pools, exportable handles,
 * IPC, tensor maps, multicast, host-NUMA allocations), so that a program that checks before it calls
 * never takes a path that cannot work. Cooperative (95) and cluster (120) launches, mapped pinned
 * memory (19) and managed memory (83) are the host's answer (cu_managed.c serves them). */
static int guest_capability(int attrib, int *value)
{
    switch (attrib) {
    case 92: case 93: case 94: case 122: case 123: /* stream memory operations */
    case 96:                                       /* COOPERATIVE_MULTI_DEVICE_LAUNCH (95: the host's) */
    case 103: case 104: case 105: case 128:        /* shareable allocation handles */
    case 119: case 142: case 144:                  /* shareable and host memory pools */
    case 124: case 146:                            /* dma-buf */
    case 125:                                      /* IPC_EVENT_SUPPORTED */
    case 127:                                      /* TENSOR_MAP_ACCESS_SUPPORTED */
    case 132:                                      /* MULTICAST_SUPPORTED */
    case 141: case 143: case 145:                  /* host-NUMA and host virtual memory */
    case 78:  /* STREAM_PRIORITIES_SUPPORTED */
    case 88:  /* PAGEABLE_MEMORY_ACCESS */
    case 89:  /* CONCURRENT_MANAGED_ACCESS */
    case 91:  /* CAN_USE_HOST_POINTER_FOR_REGISTERED_MEM */
    case 100: /* PAGEABLE_MEMORY_ACCESS_USES_HOST_PAGE_TABLES */
    case 101: /* DIRECT_MANAGED_MEM_ACCESS_FROM_HOST */
        *value = 0;
        return 1;
    case 115: /* MEMORY_POOLS_SUPPORTED: the shim serves the default pool itself (cu_mempool.c) */
        *value = 1;
        return 1;
    default:
        return 0;
    }
}

CUresult cuDeviceGetAttribute(int *value, int attrib, CUdevice dev)
{
    if (!value)
        return CUDA_ERROR_INVALID_VALUE;
    int count;
    if (guest_capability(attrib, value)) {
        CUresult rc = cuDeviceGetCount(&count); /* the device must still exist */
        return rc ? rc : dev < 0 || dev >= count ? CUDA_ERROR_INVALID_DEVICE : CUDA_SUCCESS;
    }
    struct device_cache *slot = device_slot(dev);
    int cacheable = slot && attrib >= 0 && attrib < MAX_ATTRIBUTE;
    if (cacheable) {
        pthread_mutex_lock(&cache_lock);
        int have = slot->have_attr[attrib], v = slot->attr[attrib];
        pthread_mutex_unlock(&cache_lock);
        if (have) {
            *value = v;
            return CUDA_SUCCESS;
        }
    }
    struct vgpu_args_device_get_attribute a = {.attrib = attrib, .device = dev};
    struct vgpu_result_device_get_attribute r;
    CUresult rc = vgpu_cu_call(VGPU_CALL_DEVICE_GET_ATTRIBUTE, &a, sizeof a, &r, sizeof r);
    if (rc)
        return rc;
    if (cacheable) {
        pthread_mutex_lock(&cache_lock);
        slot->have_attr[attrib] = 1;
        slot->attr[attrib] = r.value;
        pthread_mutex_unlock(&cache_lock);
    }
    *value = r.value;
    return CUDA_SUCCESS;
}

/* A string the host writes into the output area (name, PCI bus id), cached per device. */
static CUresult device_string(uint16_t call_id, CUdevice dev, char *out, int len)
{
    if (!out || len <= 0)
        return CUDA_ERROR_INVALID_VALUE;
    struct device_cache *slot = device_slot(dev);
    if (!slot)
        return CUDA_ERROR_INVALID_DEVICE;
    int is_name = call_id == VGPU_CALL_DEVICE_GET_NAME;
    char *cache = is_name ? slot->name : slot->bus_id;
    size_t cap = is_name ? sizeof slot->name : sizeof slot->bus_id;
    int *have = is_name ? &slot->have_name : &slot->have_bus_id;
    pthread_mutex_lock(&cache_lock);
    int cached = *have;
    pthread_mutex_unlock(&cache_lock);
    if (!cached) {
        char text[256];
        struct vgpu_args_device_get_name a = {.device = dev};
        size_t got = 0;
        int rc = vgpu_shim_call(call_id, &a, sizeof a, NULL, 0, NULL, 0, text, sizeof text, &got);
        if (rc)
            return vgpu_shim_cu_status(rc);
        text[got < sizeof text ? got : sizeof text - 1] = '\0';
        pthread_mutex_lock(&cache_lock);
        snprintf(cache, cap, "%s", text);
        *have = 1;
        pthread_mutex_unlock(&cache_lock);
    }
    snprintf(out, (size_t)len, "%s", cache);
    return CUDA_SUCCESS;
}

CUresult cuDeviceGetName(char *name, int len, CUdevice dev)
{
    return device_string(VGPU_CALL_DEVICE_GET_NAME, dev, name, len);
}

CUresult cuDeviceGetPCIBusId(char *bus_id, int len, CUdevice dev)
{
    return device_string(VGPU_CALL_DEVICE_GET_PCI_BUS_ID, dev, bus_id, len);
}

CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice dev)
{
    if (!bytes)
        return CUDA_ERROR_INVALID_VALUE;
    struct device_cache *slot = device_slot(dev);
    if (slot) {
        pthread_mutex_lock(&cache_lock);
        int have = slot->have_mem;
        size_t v = slot->total_mem;
        pthread_mutex_unlock(&cache_lock);
        if (have) {
            *bytes = v;
            return CUDA_SUCCESS;
        }
    }
    struct vgpu_args_device_total_mem a = {.device = dev};
    struct vgpu_result_device_total_mem r;
    CUresult rc = vgpu_cu_call(VGPU_CALL_DEVICE_TOTAL_MEM, &a, sizeof a, &r, sizeof r);
    if (rc)
        return rc;
    if (slot) {
        pthread_mutex_lock(&cache_lock);
        slot->have_mem = 1;
        slot->total_mem = (size_t)r.bytes;
        pthread_mutex_unlock(&cache_lock);
    }
    *bytes = (size_t)r.bytes;
    return CUDA_SUCCESS;
}

CUresult cuDeviceGetUuid_v2(CUuuid *uuid, CUdevice dev)
{
    if (!uuid)
        return CUDA_ERROR_INVALID_VALUE;
    struct device_cache *slot = device_slot(dev);
    if (slot) {
        pthread_mutex_lock(&cache_lock);
        int have = slot->have_uuid;
        CUuuid v = slot->uuid;
        pthread_mutex_unlock(&cache_lock);
        if (have) {
            *uuid = v;
            return CUDA_SUCCESS;
        }
    }
    struct vgpu_args_device_get_uuid a = {.device = dev};
    struct vgpu_result_device_get_uuid r;
    CUresult rc = vgpu_cu_call(VGPU_CALL_DEVICE_GET_UUID, &a, sizeof a, &r, sizeof r);
    if (rc)
        return rc;
    memcpy(uuid->bytes, r.uuid, sizeof uuid->bytes);
    if (slot) {
        pthread_mutex_lock(&cache_lock);
        slot->have_uuid = 1;
        slot->uuid = *uuid;
        pthread_mutex_unlock(&cache_lock);
    }
    return CUDA_SUCCESS;
}

/* The v1 entry point returns the same UUID (the two differ only for MIG instances). */
CUresult cuDeviceGetUuid(CUuuid *uuid, CUdevice dev) { return cuDeviceGetUuid_v2(uuid, dev); }

CUresult cuDeviceComputeCapability(int *major, int *minor, CUdevice dev)
{
    if (!major || !minor)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult rc = cuDeviceGetAttribute(major, 75, dev);
    return rc ? rc : cuDeviceGetAttribute(minor, 76, dev);
}

/* The legacy device properties (CUdevprop, deprecated but still exported), from the attributes. */
typedef struct CUdevprop_st {
    int maxThreadsPerBlock, maxThreadsDim[3], maxGridSize[3], sharedMemPerBlock, totalConstantMemory, SIMDWidth,
        memPitch, regsPerBlock, clockRate, textureAlign;
} CUdevprop;
CUresult cuDeviceGetProperties(CUdevprop *prop, CUdevice dev);
_Static_assert(sizeof(CUdevprop) == 14 * sizeof(int), "CUdevprop is 14 ints");

CUresult cuDeviceGetProperties(CUdevprop *prop, CUdevice dev)
{
    if (!prop)
        return CUDA_ERROR_INVALID_VALUE;
    static const int attrs[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14}; /* in CUdevprop's order */
    int values[14];
    for (int i = 0; i < 14; i++) {
        CUresult rc = cuDeviceGetAttribute(&values[i], attrs[i], dev);
        if (rc)
            return rc;
    }
    memcpy(prop, values, sizeof *prop);
    return CUDA_SUCCESS;
}

CUresult cuMemGetInfo_v2(size_t *free_bytes, size_t *total_bytes)
{
    struct vgpu_result_mem_get_info r;
    CUresult rc = vgpu_cu_call(VGPU_CALL_MEM_GET_INFO, NULL, 0, &r, sizeof r);
    if (rc)
        return rc;
    if (free_bytes)
        *free_bytes = (size_t)r.free;
    if (total_bytes)
        *total_bytes = (size_t)r.total;
    return CUDA_SUCCESS;
}

/* -- contexts: the host's ids, each behind one record that lives as long as the process ------- */

#define MAX_CONTEXTS 256
static struct CUctx_st *contexts[MAX_CONTEXTS];
static int primary_retains[MAX_DEVICES];

/* The record for host context `id` (created on first sight). NULL for id 0 or out of records. */
static CUcontext context_record(uint32_t id, int device)
{
    if (id == 0)
        return NULL;
    pthread_mutex_lock(&cache_lock);
    CUcontext found = NULL, *free_slot = NULL;
    for (int i = 0; i < MAX_CONTEXTS && !found; i++) {
        if (contexts[i] && contexts[i]->id == id && contexts[i]->magic == VGPU_MAGIC_CTX)
            found = contexts[i];
        else if (!contexts[i] && !free_slot)
            free_slot = &contexts[i];
    }
    if (!found && free_slot && (found = calloc(1, sizeof *found))) {
        *found = (struct CUctx_st){VGPU_MAGIC_CTX, id, device};
        *free_slot = found;
    }
    pthread_mutex_unlock(&cache_lock);
    if (!found)
        vgpu_shim_log("no record for context %u: more than %d contexts", id, MAX_CONTEXTS);
    return found;
}

CUresult cuDevicePrimaryCtxRetain(CUcontext *ctx, CUdevice dev)
{
    if (!ctx)
        return CUDA_ERROR_INVALID_VALUE;
    struct vgpu_args_primary_ctx_retain a = {.device = dev};
    struct vgpu_result_primary_ctx_retain r;
    CUresult rc = vgpu_cu_call(VGPU_CALL_PRIMARY_CTX_RETAIN, &a, sizeof a, &r, sizeof r);
    if (rc)
        return rc;
    if (!(*ctx = context_record(r.ctx, dev)))
        return CUDA_ERROR_OUT_OF_MEMORY;
    if (dev >= 0 && dev < MAX_DEVICES)
        __atomic_add_fetch(&primary_retains[dev], 1, __ATOMIC_RELAXED);
    return CUDA_SUCCESS;
}

CUresult cuDevicePrimaryCtxRelease_v2(CUdevice dev)
{
    struct vgpu_args_primary_ctx_release a = {.device = dev};
    CUresult rc = vgpu_cu_call(VGPU_CALL_PRIMARY_CTX_RELEASE, &a, sizeof a, NULL, 0);
    if (rc == CUDA_SUCCESS && dev >= 0 && dev < MAX_DEVICES)
        __atomic_sub_fetch(&primary_retains[dev], 1, __ATOMIC_RELAXED);
    return rc;
}

/* The primary context's flags as this process set them: they are scheduling hints for how a
 * thread waits (the shim waits on the transport however they are set) and permissions the shim
 * checks where they matter (pinned memory is mapped into the device whatever they say, as under
 * unified addressing CUDA maps it). */
static unsigned int primary_flags[MAX_DEVICES];

#define CU_CTX_SCHED_MASK 0x07u
#define CU_CTX_FLAGS_MASK 0xffu /* scheduling, MAP_HOST, LMEM_RESIZE_TO_MAX, COREDUMP, USER_COREDUMP, SYNC_MEMOPS */

static CUresult check_device_ordinal(CUdevice dev)
{
    if (dev < 0 || dev >= MAX_DEVICES)
        return CUDA_ERROR_INVALID_DEVICE;
    int count;
    CUresult rc = cuDeviceGetCount(&count);
    return rc ? rc : dev >= count ? CUDA_ERROR_INVALID_DEVICE : CUDA_SUCCESS;
}

CUresult cuDevicePrimaryCtxSetFlags_v2(CUdevice dev, unsigned int flags)
{
    unsigned int sched = flags & CU_CTX_SCHED_MASK;
    if ((flags & ~CU_CTX_FLAGS_MASK) || (sched != 0 && sched != 1 && sched != 2 && sched != 4))
        return CUDA_ERROR_INVALID_VALUE;
    CUresult rc = check_device_ordinal(dev);
    if (rc == CUDA_SUCCESS)
        __atomic_store_n(&primary_flags[dev], flags, __ATOMIC_RELAXED);
    return rc;
}

/* Answered from this process's own retain count and the flags it set. */
CUresult cuDevicePrimaryCtxGetState(CUdevice dev, unsigned int *flags, int *active)
{
    if (!flags || !active)
        return CUDA_ERROR_INVALID_VALUE;
    if (dev < 0 || dev >= MAX_DEVICES)
        return CUDA_ERROR_INVALID_DEVICE;
    int count;
    CUresult rc = cuDeviceGetCount(&count);
    if (rc)
        return rc;
    if (dev >= count)
        return CUDA_ERROR_INVALID_DEVICE;
    *flags = __atomic_load_n(&primary_flags[dev], __ATOMIC_RELAXED);
    *active = __atomic_load_n(&primary_retains[dev], __ATOMIC_RELAXED) > 0;
    return CUDA_SUCCESS;
}

CUresult cuCtxCreate_v2(CUcontext *ctx, unsigned int flags, CUdevice dev)
{
    if (!ctx)
        return CUDA_ERROR_INVALID_VALUE;
    struct vgpu_args_ctx_create a = {.flags = flags, .device = dev};
    struct vgpu_result_ctx_create r;
    CUresult rc = vgpu_cu_call(VGPU_CALL_CTX_CREATE, &a, sizeof a, &r, sizeof r);
    if (rc)
        return rc;
    return (*ctx = context_record(r.ctx, dev)) ? CUDA_SUCCESS : CUDA_ERROR_OUT_OF_MEMORY;
}

CUresult cuCtxDestroy_v2(CUcontext ctx)
{
    if (!VGPU_CHECK_HANDLE(ctx, VGPU_MAGIC_CTX))
        return CUDA_ERROR_INVALID_CONTEXT;
    struct vgpu_args_ctx_destroy a = {.ctx = ctx->id};
    return vgpu_cu_call(VGPU_CALL_CTX_DESTROY, &a, sizeof a, NULL, 0);
}

CUresult cuCtxSetCurrent(CUcontext ctx)
{
    if (ctx && ctx->magic != VGPU_MAGIC_CTX)
        return CUDA_ERROR_INVALID_CONTEXT;
    struct vgpu_args_ctx_set_current a = {.ctx = ctx ? ctx->id : 0};
    return vgpu_cu_call(VGPU_CALL_CTX_SET_CURRENT, &a, sizeof a, NULL, 0);
}

CUresult cuCtxGetCurrent(CUcontext *ctx)
{
    if (!ctx)
        return CUDA_ERROR_INVALID_VALUE;
    struct vgpu_result_ctx_get_current r;
    CUresult rc = vgpu_cu_call(VGPU_CALL_CTX_GET_CURRENT, NULL, 0, &r, sizeof r);
    if (rc)
        return rc;
    *ctx = context_record(r.ctx, 0);
    return r.ctx && !*ctx ? CUDA_ERROR_OUT_OF_MEMORY : CUDA_SUCCESS;
}

CUresult cuCtxGetDevice(CUdevice *device)
{
    if (!device)
        return CUDA_ERROR_INVALID_VALUE;
    CUcontext ctx;
    CUresult rc = cuCtxGetCurrent(&ctx);
    if (rc)
        return rc;
    if (!ctx)
        return CUDA_ERROR_INVALID_CONTEXT;
    *device = ctx->device;
    return CUDA_SUCCESS;
}

CUresult cuCtxSynchronize(void) { return vgpu_cu_call(VGPU_CALL_CTX_SYNCHRONIZE, NULL, 0, NULL, 0); }

/* The CUDA 12.5 form: execution affinity and CIG parameters are not served. */
CUresult cuCtxCreate_v4(CUcontext *ctx, void *params, unsigned int flags, CUdevice dev)
{
    struct { void *affinity; int naffinity; void *cig; } *p = params;
    if (p && (p->affinity || p->naffinity || p->cig))
        VGPU_UNSUPPORTED_USE(CUDA_ERROR_NOT_SUPPORTED,
                             "cuCtxCreate_v4: execution affinity / CIG parameters are not served");
    return cuCtxCreate_v2(ctx, flags, dev);
}
