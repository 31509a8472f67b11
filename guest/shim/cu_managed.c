/*
 * Driver API: host memory the device addresses — mapped pinned memory and managed memory (#13, #19).
 *
 * Both are ranges of the region's pinned area mapped into the device's address space (cu_pinned.c,
 * protocol mem_host_alias): the host and the device see the same bytes, with no copy either way.
 *  - cuMemHostGetDevicePointer answers a pinned range's device address: its host pointer when the host
 *    could map it there (unified addressing), else the host's own choice.
 *  - Managed memory (cuMemAllocManaged) is a pinned range whose device pointer IS its host pointer.
 *    The device reports concurrentManagedAccess 0: as on a GPU without it, the guest must not touch
 *    managed memory while a kernel may be using it (synchronize first). Nothing migrates, so
 *    attaching memory to a stream only checks its arguments, and prefetching to the host is a no-op;
 *    prefetching to the device is CUDA's CUDA_ERROR_INVALID_DEVICE for such a device.
 *  - Memory of cuMemHostRegister (the process's own pages) stays invisible to the host: never mapped.
 */
#include "cu_api.h"
#include "shim.h"

#define CU_MEM_ATTACH_GLOBAL 0x1u
#define CU_MEM_ATTACH_HOST 0x2u
#define CU_MEM_ATTACH_SINGLE 0x4u
#define CU_MEMORYTYPE_HOST 1u
#define CU_MEMORYTYPE_DEVICE 2u
#define CU_DEVICE_CPU (-1)
#define CU_MEM_LOCATION_TYPE_DEVICE 1
#define CU_MEM_LOCATION_TYPE_HOST 2
#define CU_MEM_LOCATION_TYPE_HOST_NUMA 3
#define CU_MEM_LOCATION_TYPE_HOST_NUMA_CURRENT 4
#define CU_MEM_ADVISE_SET_READ_MOSTLY 1
#define CU_MEM_ADVISE_UNSET_READ_MOSTLY 2
#define CU_MEM_ADVISE_UNSET_ACCESSED_BY 6

enum { ATTR_MEMORY_TYPE = 2, ATTR_DEVICE_POINTER = 3, ATTR_HOST_POINTER = 4, ATTR_IS_MANAGED = 8,
       ATTR_DEVICE_ORDINAL = 9, ATTR_RANGE_START = 11, ATTR_RANGE_SIZE = 12, ATTR_MAPPED = 13 };

CUresult cuMemHostGetDevicePointer_v2(CUdeviceptr *pdptr, void *p, unsigned int flags)
{
    uint64_t dptr;
    if (!pdptr || !p || flags)
        return CUDA_ERROR_INVALID_VALUE;
    if (!vgpu_pinned_mapping(p, &dptr, NULL, NULL))
        return CUDA_ERROR_INVALID_VALUE; /* not pinned memory of ours: CUDA's answer for unmapped memory */
    if (!dptr)
        VGPU_UNSUPPORTED_USE(CUDA_ERROR_NOT_SUPPORTED,
                             "cuMemHostGetDevicePointer: the host did not map this pinned memory into the device");
    *pdptr = dptr;
    return CUDA_SUCCESS;
}

CUresult cuMemAllocManaged(CUdeviceptr *dptr, size_t bytesize, unsigned int flags)
{
    if (!dptr || !bytesize || (flags != CU_MEM_ATTACH_GLOBAL && flags != CU_MEM_ATTACH_HOST))
        return CUDA_ERROR_INVALID_VALUE;
    void *p;
    CUresult rc = vgpu_pinned_alloc(&p, bytesize, VGPU_PINNED_MANAGED);
    if (rc == CUDA_ERROR_NOT_SUPPORTED)
        VGPU_UNSUPPORTED_USE(rc, "cuMemAllocManaged(%zu): the region has no pinned area, or the device cannot "
                             "address it at the guest's pointers: managed memory is not served", bytesize);
    if (rc)
        return rc; /* CUDA_ERROR_OUT_OF_MEMORY: the VM's pinned share is spent (no ordinary fallback) */
    vgpu_track_range((uint64_t)(uintptr_t)p, bytesize, VGPU_PTR_HOST);
    *dptr = (CUdeviceptr)(uintptr_t)p;
    return CUDA_SUCCESS;
}

int vgpu_managed_free(CUdeviceptr dptr, CUresult *rc)
{
    int managed = 0;
    uint64_t base;
    if (!vgpu_pinned_mapping((void *)(uintptr_t)dptr, NULL, &base, &managed) || !managed)
        return 0;
    *rc = base == dptr ? cuMemFreeHost((void *)(uintptr_t)dptr) : CUDA_ERROR_INVALID_VALUE;
    return 1;
}

/* The managed allocation holding all of [dptr, dptr + count): CUDA_ERROR_INVALID_VALUE otherwise. */
static CUresult managed_range(CUdeviceptr dptr, size_t count, uint64_t *base, uint64_t *size)
{
    int managed = 0;
    uint64_t start, bytes;
    if (!vgpu_pinned_mapping((void *)(uintptr_t)dptr, NULL, NULL, &managed) || !managed ||
        vgpu_shim_ptr_kind(dptr, &start, &bytes) != VGPU_PTR_HOST || count > bytes - (dptr - start))
        return CUDA_ERROR_INVALID_VALUE;
    if (base)
        *base = start;
    if (size)
        *size = bytes;
    return CUDA_SUCCESS;
}

CUresult cuStreamAttachMemAsync(CUstream stream, CUdeviceptr dptr, size_t length, unsigned int flags)
{
    uint32_t sid;
    uint64_t base, size;
    CUresult rc = vgpu_shim_stream_id(stream, &sid);
    if (rc)
        return rc;
    if (flags != CU_MEM_ATTACH_GLOBAL && flags != CU_MEM_ATTACH_HOST && flags != CU_MEM_ATTACH_SINGLE)
        return CUDA_ERROR_INVALID_VALUE;
    if (flags == CU_MEM_ATTACH_SINGLE && sid == 0) /* a single stream cannot be the legacy one */
        return CUDA_ERROR_INVALID_VALUE;
    if ((rc = managed_range(dptr, length, &base, &size)))
        return rc;
    if (base != dptr || (length && length != size)) /* the whole allocation, as CUDA requires */
        return CUDA_ERROR_INVALID_VALUE;
    return CUDA_SUCCESS; /* nothing migrates: the attachment changes where nothing moves */
}

static CUresult prefetch(CUdeviceptr dptr, size_t count, int to_host, CUstream stream)
{
    uint32_t sid;
    CUresult rc = vgpu_shim_stream_id(stream, &sid);
    if (!rc)
        rc = managed_range(dptr, count, NULL, NULL);
    if (rc)
        return rc;
    if (!to_host) /* CUDA's answer on a device whose concurrentManagedAccess is 0, as ours is */
        VGPU_UNSUPPORTED_USE(CUDA_ERROR_INVALID_DEVICE,
                             "cuMemPrefetchAsync to the device: concurrentManagedAccess is 0 (managed memory "
                             "lives in the region's pinned area, which the device reads in place)");
    return CUDA_SUCCESS; /* to the host: the memory is host memory already */
}

CUresult cuMemPrefetchAsync(CUdeviceptr dptr, size_t count, CUdevice device, CUstream stream)
{
    if (device != CU_DEVICE_CPU && device != 0)
        return CUDA_ERROR_INVALID_DEVICE;
    return prefetch(dptr, count, device == CU_DEVICE_CPU, stream);
}

CUresult cuMemPrefetchAsync_v2(CUdeviceptr dptr, size_t count, CUmemLocation location, unsigned int flags,
                               CUstream stream)
{
    if (flags)
        return CUDA_ERROR_INVALID_VALUE;
    switch (location.type) {
    case CU_MEM_LOCATION_TYPE_DEVICE:
        if (location.id != 0)
            return CUDA_ERROR_INVALID_DEVICE;
        return prefetch(dptr, count, 0, stream);
    case CU_MEM_LOCATION_TYPE_HOST:
    case CU_MEM_LOCATION_TYPE_HOST_NUMA:
    case CU_MEM_LOCATION_TYPE_HOST_NUMA_CURRENT:
        return prefetch(dptr, count, 1, stream);
    default:
        return CUDA_ERROR_INVALID_VALUE;
    }
}

/* Advice on a managed range (#13): checked as CUDA checks it — the range inside one managed allocation,
 * a known advice, and for the preferred location and accessed-by advice a location that exists (device
 * 0, or the host) — and otherwise a hint with nothing to act on: managed memory is host memory the
 * device reads in place, never migrated or duplicated, so every advice leaves it where it is. */
static CUresult advise(CUdeviceptr dptr, size_t count, int advice, int type, int id)
{
    if (!count || advice < CU_MEM_ADVISE_SET_READ_MOSTLY || advice > CU_MEM_ADVISE_UNSET_ACCESSED_BY)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult rc = managed_range(dptr, count, NULL, NULL);
    if (rc || advice <= CU_MEM_ADVISE_UNSET_READ_MOSTLY) /* read-mostly advice ignores the location */
        return rc;
    switch (type) {
    case CU_MEM_LOCATION_TYPE_DEVICE:
        return id == 0 ? CUDA_SUCCESS : CUDA_ERROR_INVALID_DEVICE;
    case CU_MEM_LOCATION_TYPE_HOST:
    case CU_MEM_LOCATION_TYPE_HOST_NUMA:
    case CU_MEM_LOCATION_TYPE_HOST_NUMA_CURRENT:
        return CUDA_SUCCESS;
    default:
        return CUDA_ERROR_INVALID_VALUE;
    }
}

CUresult cuMemAdvise_v2(CUdeviceptr dptr, size_t count, int advice, CUmemLocation location)
{
    return advise(dptr, count, advice, location.type, location.id);
}

/* CUDA 12's form: a device ordinal, CU_DEVICE_CPU for the host. */
CUresult cuMemAdvise(CUdeviceptr dptr, size_t count, int advice, CUdevice device)
{
    if (device == CU_DEVICE_CPU)
        return advise(dptr, count, advice, CU_MEM_LOCATION_TYPE_HOST, 0);
    return advise(dptr, count, advice, CU_MEM_LOCATION_TYPE_DEVICE, device);
}

/* The attributes of memory the guest knows of; others are not supported (logged once). */
CUresult cuPointerGetAttribute(void *data, int attribute, CUdeviceptr ptr)
{
    if (!data)
        return CUDA_ERROR_INVALID_VALUE;
    uint64_t base, size, dptr = 0;
    int managed = 0;
    int kind = vgpu_shim_ptr_kind(ptr, &base, &size);
    /* registered memory whose pages moved into the pinned area answers as pinned memory */
    int pinned = (kind == VGPU_PTR_HOST || kind == VGPU_PTR_HOST_REGISTERED) &&
                 vgpu_pinned_mapping((void *)(uintptr_t)ptr, &dptr, NULL, &managed);
    if (kind != VGPU_PTR_DEVICE && !pinned)
        return CUDA_ERROR_INVALID_VALUE; /* unknown, or host memory the device cannot see */
    switch (attribute) {
    case ATTR_MEMORY_TYPE:
        /* managed memory reads as device memory, as the driver reports it */
        *(unsigned int *)data = kind == VGPU_PTR_DEVICE || managed ? CU_MEMORYTYPE_DEVICE : CU_MEMORYTYPE_HOST;
        return CUDA_SUCCESS;
    case ATTR_DEVICE_POINTER:
        if (kind != VGPU_PTR_DEVICE && !dptr)
            return CUDA_ERROR_INVALID_VALUE;
        *(CUdeviceptr *)data = kind == VGPU_PTR_DEVICE ? ptr : dptr;
        return CUDA_SUCCESS;
    case ATTR_HOST_POINTER:
        if (kind == VGPU_PTR_DEVICE)
            return CUDA_ERROR_INVALID_VALUE; /* device memory has no host address */
        *(void **)data = (void *)(uintptr_t)ptr;
        return CUDA_SUCCESS;
    case ATTR_IS_MANAGED:
        *(int *)data = managed; /* written as the driver writes it: a whole int */
        return CUDA_SUCCESS;
    case ATTR_DEVICE_ORDINAL:
        *(int *)data = 0;
        return CUDA_SUCCESS;
    case ATTR_RANGE_START:
        *(CUdeviceptr *)data = base;
        return CUDA_SUCCESS;
    case ATTR_RANGE_SIZE:
        *(size_t *)data = size;
        return CUDA_SUCCESS;
    case ATTR_MAPPED:
        *(int *)data = 1;
        return CUDA_SUCCESS;
    default:
        VGPU_UNSUPPORTED_USE(CUDA_ERROR_NOT_SUPPORTED, "cuPointerGetAttribute(%d): not served", attribute);
    }
}
