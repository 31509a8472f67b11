/*
 * Driver API: device memory, copies, memsets, the virtual memory management API and host memory.
 *
 * Device pointers are the host's real GPU addresses. Copies of pageable memory go through the
 * transport's chunking; the *Async variants post (host-to-device bytes are in the arena when the call
 * returns, so the caller may reuse its buffer at once), and device-to-host copies into pageable memory
 * always wait: their bytes must be in the caller's buffer before it looks.
 * Pinned host memory (cuMemAllocHost, cuMemHostAlloc) lives in the region's pinned area (cu_pinned.c):
 * copies from and to it name the range and the host moves the bytes itself, and their *Async variants
 * are truly asynchronous, both ways (the buffer is the stream's until it is synchronized, as in CUDA).
 * When the area has no room the memory is ordinary memory of this process, 256-byte aligned, and its
 * copies are staged. cuMemHostRegister moves the range's pages into the pinned area at the same addresses
 * (cu_pinned.c), so they are pinned memory as above (and DEVICEMAP maps them); when they cannot move
 * (no room) it records the range, whose copies stay staged.
 */
#include <stdlib.h>
#include <string.h>

#include "cu_api.h"
#include "cu_graph_mem.h"
#include "shim.h"
#include "vgpu_protocol.h"

#define HOST_ALIGN 256
#define CU_MEMHOSTALLOC_PORTABLE 0x01u
#define CU_MEMHOSTALLOC_DEVICEMAP 0x02u
#define CU_MEMHOSTALLOC_WRITECOMBINED 0x04u
#define CU_MEMHOSTREGISTER_DEVICEMAP 0x02u
#define CU_MEMHOSTREGISTER_IOMEMORY 0x04u

CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytesize)
{
    if (!dptr)
        return CUDA_ERROR_INVALID_VALUE;
    struct vgpu_args_mem_alloc a = {.bytesize = bytesize};
    struct vgpu_result_mem_alloc r;
    CUresult rc = vgpu_cu_call(VGPU_CALL_MEM_ALLOC, &a, sizeof a, &r, sizeof r);
    if (rc)
        return rc;
    *dptr = r.dptr;
    vgpu_track_range(r.dptr, bytesize, VGPU_PTR_DEVICE);
    return CUDA_SUCCESS;
}

CUresult cuMemFree_v2(CUdeviceptr dptr)
{
    CUresult managed_rc;
    if (vgpu_managed_free(dptr, &managed_rc)) /* cuMemAllocManaged's (cu_managed.c) */
        return managed_rc;
    if (vgpu_gmem_free_outside(dptr, NULL, &managed_rc)) /* a graph's allocation (cu_graph_mem.c) */
        return managed_rc;
    struct vgpu_args_mem_free a = {.dptr = dptr};
    CUresult rc = vgpu_cu_call(VGPU_CALL_MEM_FREE, &a, sizeof a, NULL, 0);
    if (rc == CUDA_SUCCESS && dptr)
        vgpu_untrack_range(dptr);
    return rc;
}

/* -- memsets ----------------------------------------------------------------------------------- */

static CUresult memset_on(uint16_t call_id, CUdeviceptr dst, uint32_t value, size_t count, CUstream stream,
                          int wait)
{
    uint32_t sid;
    CUresult rc = vgpu_shim_stream_id(stream, &sid);
    if (rc)
        return rc;
    /* the three argument structs share one layout but for the width of `value` */
    struct vgpu_args_memset_d32 a = {.dst = dst, .count = count, .value = 0, .stream = sid};
    if (call_id == VGPU_CALL_MEMSET_D8) {
        struct vgpu_args_memset_d8 b = {.dst = dst, .count = count, .value = (uint8_t)value, .stream = sid};
        return vgpu_cu_async(call_id, &b, sizeof b, NULL, 0, wait);
    }
    if (call_id == VGPU_CALL_MEMSET_D16) {
        struct vgpu_args_memset_d16 b = {.dst = dst, .count = count, .value = (uint16_t)value, .stream = sid};
        return vgpu_cu_async(call_id, &b, sizeof b, NULL, 0, wait);
    }
    a.value = value;
    return vgpu_cu_async(call_id, &a, sizeof a, NULL, 0, wait);
}

CUresult cuMemsetD8_v2(CUdeviceptr dst, unsigned char uc, size_t n)
{
    return memset_on(VGPU_CALL_MEMSET_D8, dst, uc, n, NULL, 1);
}
CUresult cuMemsetD16_v2(CUdeviceptr dst, unsigned short us, size_t n)
{
    return memset_on(VGPU_CALL_MEMSET_D16, dst, us, n, NULL, 1);
}
CUresult cuMemsetD32_v2(CUdeviceptr dst, unsigned int ui, size_t n)
{
    return memset_on(VGPU_CALL_MEMSET_D32, dst, ui, n, NULL, 1);
}
CUresult cuMemsetD8Async(CUdeviceptr dst, unsigned char uc, size_t n, CUstream s)
{
    return memset_on(VGPU_CALL_MEMSET_D8, dst, uc, n, s, 0);
}
CUresult cuMemsetD16Async(CUdeviceptr dst, unsigned short us, size_t n, CUstream s)
{
    return memset_on(VGPU_CALL_MEMSET_D16, dst, us, n, s, 0);
}
CUresult cuMemsetD32Async(CUdeviceptr dst, unsigned int ui, size_t n, CUstream s)
{
    return memset_on(VGPU_CALL_MEMSET_D32, dst, ui, n, s, 0);
}

/* A 2D memset is one call: the host sets the rows `pitch` bytes apart and checks every field (a row
 * wider than the pitch, the span, the alignment); the gaps between rows are not touched. A row wider
 * than the pitch is also refused here, so that an asynchronous memset reports it at once, as CUDA does. */
static CUresult memset_2d(CUdeviceptr dst, size_t pitch, uint32_t value, unsigned int size, size_t width,
                          size_t height, CUstream stream, int wait)
{
    size_t row;
    if (height > 1 && (__builtin_mul_overflow(width, size, &row) || row > pitch))
        return CUDA_ERROR_INVALID_VALUE;
    uint32_t sid;
    CUresult rc = vgpu_shim_stream_id(stream, &sid);
    if (rc)
        return rc;
    struct vgpu_args_memset_2d a = {.dst = dst, .pitch = pitch, .width = width, .height = height, .value = value,
                                    .element_bytes = size, .stream = sid};
    return vgpu_cu_async(VGPU_CALL_MEMSET_2D, &a, sizeof a, NULL, 0, wait);
}

CUresult cuMemsetD2D8_v2(CUdeviceptr dst, size_t pitch, unsigned char uc, size_t width, size_t height)
{
    return memset_2d(dst, pitch, uc, 1, width, height, NULL, 1);
}
CUresult cuMemsetD2D16_v2(CUdeviceptr dst, size_t pitch, unsigned short us, size_t width, size_t height)
{
    return memset_2d(dst, pitch, us, 2, width, height, NULL, 1);
}
CUresult cuMemsetD2D32_v2(CUdeviceptr dst, size_t pitch, unsigned int ui, size_t width, size_t height)
{
    return memset_2d(dst, pitch, ui, 4, width, height, NULL, 1);
}
CUresult cuMemsetD2D8Async(CUdeviceptr dst, size_t pitch, unsigned char uc, size_t width, size_t height, CUstream s)
{
    return memset_2d(dst, pitch, uc, 1, width, height, s, 0);
}
CUresult cuMemsetD2D16Async(CUdeviceptr dst, size_t pitch, unsigned short us, size_t width, size_t height,
                            CUstream s)
{
    return memset_2d(dst, pitch, us, 2, width, height, s, 0);
}
CUresult cuMemsetD2D32Async(CUdeviceptr dst, size_t pitch, unsigned int ui, size_t width, size_t height, CUstream s)
{
    return memset_2d(dst, pitch, ui, 4, width, height, s, 0);
}

/* -- copies ------------------------------------------------------------------------------------ */

/* a copy of host memory on a capturing stream becomes a guest node (cu_guest_nodes.c) */
VGPU_HIDDEN int vgpu_guest_copy_captured(CUstream s, CUdeviceptr device, void *host, size_t bytes, int to_device,
                                         CUresult *rc);

static CUresult htod(CUdeviceptr dst, const void *src, size_t n, CUstream stream, int asynchronous)
{
    if (n && !src)
        return CUDA_ERROR_INVALID_VALUE;
    uint32_t sid;
    CUresult rc;
    if (asynchronous && vgpu_guest_copy_captured(stream, dst, (void *)(uintptr_t)src, n, 1, &rc))
        return rc;
    rc = vgpu_shim_stream_id(stream, &sid);
    return rc ? rc : vgpu_shim_htod(dst, sid, src, n, asynchronous);
}

static CUresult dtoh(void *dst, CUdeviceptr src, size_t n, CUstream stream, int asynchronous)
{
    if (n && !dst)
        return CUDA_ERROR_INVALID_VALUE;
    uint32_t sid;
    CUresult rc;
    if (vgpu_guest_copy_captured(stream, src, dst, n, 0, &rc))
        return rc;
    rc = vgpu_shim_stream_id(stream, &sid);
    return rc ? rc : vgpu_shim_dtoh_on(dst, src, sid, n, asynchronous);
}

static CUresult dtod(CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream stream, int wait)
{
    uint32_t sid;
    CUresult rc = vgpu_shim_stream_id(stream, &sid);
    if (rc)
        return rc;
    struct vgpu_args_memcpy_dtod a = {.dst = dst, .src = src, .count = n, .stream = sid};
    return vgpu_cu_async(VGPU_CALL_MEMCPY_DTOD, &a, sizeof a, NULL, 0, wait);
}

CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void *src, size_t n) { return htod(dst, src, n, NULL, 0); }
CUresult cuMemcpyDtoH_v2(void *dst, CUdeviceptr src, size_t n) { return dtoh(dst, src, n, NULL, 0); }
CUresult cuMemcpyDtoD_v2(CUdeviceptr dst, CUdeviceptr src, size_t n) { return dtod(dst, src, n, NULL, 1); }
CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void *src, size_t n, CUstream s)
{
    return htod(dst, src, n, s, 1);
}
CUresult cuMemcpyDtoHAsync_v2(void *dst, CUdeviceptr src, size_t n, CUstream s) { return dtoh(dst, src, n, s, 1); }
CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream s)
{
    return dtod(dst, src, n, s, 0);
}

/*
 * A pitched box (cu_array.c's cuMemcpy2D/3D) whose host side lies in one pinned range of ours: one call
 * that names the range by offset, the device side as `dev` says; the host moves the rows itself when the
 * stream runs the copy, posted when asynchronous both ways, as the 1D pinned copies. 0 when the host
 * side (`first`, rows `pitch` and slices `pitch * height` apart) is not all pinned memory of ours: the
 * caller stages it.
 */
VGPU_HIDDEN int vgpu_pinned_box(const char *first, size_t pitch, size_t height,
                                const struct vgpu_args_memcpy_3d_htod *dev, int to_device, int asynchronous,
                                CUresult *rc);
int vgpu_pinned_box(const char *first, size_t pitch, size_t height, const struct vgpu_args_memcpy_3d_htod *dev,
                    int to_device, int asynchronous, CUresult *rc)
{
    size_t w = dev->width_bytes, h = dev->height, d = dev->depth, slice = 0, rows = 0, span = w;
    if (d > 1 && (__builtin_mul_overflow(pitch, height, &slice) || __builtin_mul_overflow(d - 1, slice, &slice)))
        return 0;
    if (h > 1 && __builtin_mul_overflow(h - 1, pitch, &rows))
        return 0;
    uint64_t offset;
    if (__builtin_add_overflow(span, slice, &span) || __builtin_add_overflow(span, rows, &span) ||
        !vgpu_shim_pinned_lookup(first, span, &offset))
        return 0;
    struct vgpu_args_memcpy_3d_htod_pinned a = {
        .array = dev->array, .stream = dev->stream, .x = dev->x, .y = dev->y, .z = dev->z, .device = dev->device,
        .pitch = dev->pitch, .layout_height = dev->layout_height, .width_bytes = w, .height = h, .depth = d,
        .offset = offset, .host_pitch = pitch, .host_layout_height = height};
    _Static_assert(sizeof a == sizeof(struct vgpu_args_memcpy_3d_dtoh_pinned), "one layout for both ways");
    *rc = vgpu_cu_async(to_device ? VGPU_CALL_MEMCPY_3D_HTOD_PINNED : VGPU_CALL_MEMCPY_3D_DTOH_PINNED, &a, sizeof a,
                        NULL, 0, !asynchronous);
    return 1;
}

/* cuMemcpy/cuMemcpyAsync infer the direction from the pointers (unified addressing). */
static CUresult unified_copy(CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream s, int asynchronous)
{
    int dst_dev = vgpu_shim_ptr_kind(dst, NULL, NULL) == VGPU_PTR_DEVICE;
    int src_dev = vgpu_shim_ptr_kind(src, NULL, NULL) == VGPU_PTR_DEVICE;
    if (dst_dev && src_dev)
        return dtod(dst, src, n, s, !asynchronous);
    if (dst_dev)
        return htod(dst, (const void *)(uintptr_t)src, n, s, asynchronous);
    if (src_dev)
        return dtoh((void *)(uintptr_t)dst, src, n, s, asynchronous);
    if (n)
        memmove((void *)(uintptr_t)dst, (const void *)(uintptr_t)src, n); /* host to host */
    return CUDA_SUCCESS;
}

CUresult cuMemcpy(CUdeviceptr dst, CUdeviceptr src, size_t n) { return unified_copy(dst, src, n, NULL, 0); }
CUresult cuMemcpyAsync(CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream s)
{
    return unified_copy(dst, src, n, s, 1);
}

/* -- the virtual memory management API --------------------------------------------------------- */

static CUresult device_of(const CUmemLocation *location, int *device)
{
    if (location->type != VGPU_MEM_LOCATION_DEVICE)
        VGPU_UNSUPPORTED_USE(CUDA_ERROR_NOT_SUPPORTED, "VMM location type %d: only device memory is served",
                             location->type);
    *device = location->id;
    return CUDA_SUCCESS;
}

CUresult cuMemGetAllocationGranularity(size_t *granularity, const CUmemAllocationProp *prop, int option)
{
    if (!granularity || !prop)
        return CUDA_ERROR_INVALID_VALUE;
    int device;
    CUresult rc = device_of(&prop->location, &device);
    if (rc)
        return rc;
    struct vgpu_args_mem_get_allocation_granularity a = {.device = device, .option = (uint32_t)option};
    struct vgpu_result_mem_get_allocation_granularity r;
    if ((rc = vgpu_cu_call(VGPU_CALL_MEM_GET_ALLOCATION_GRANULARITY, &a, sizeof a, &r, sizeof r)))
        return rc;
    *granularity = (size_t)r.granularity;
    return CUDA_SUCCESS;
}

CUresult cuMemCreate(CUmemGenericAllocationHandle *handle, size_t size, const CUmemAllocationProp *prop,
                     unsigned long long flags)
{
    if (!handle || !prop)
        return CUDA_ERROR_INVALID_VALUE;
    int device;
    CUresult rc = device_of(&prop->location, &device);
    if (rc)
        return rc;
    if (prop->type != VGPU_MEM_ALLOCATION_PINNED || prop->requestedHandleTypes != 0)
        VGPU_UNSUPPORTED_USE(CUDA_ERROR_NOT_SUPPORTED,
                             "cuMemCreate: allocation type %d / exportable handle types %#x are not served",
                             prop->type, prop->requestedHandleTypes);
    struct vgpu_args_mem_create a = {.size = size, .device = device, .flags = (uint32_t)flags};
    struct vgpu_result_mem_create r;
    if (flags >> 32)
        return CUDA_ERROR_INVALID_VALUE;
    if ((rc = vgpu_cu_call(VGPU_CALL_MEM_CREATE, &a, sizeof a, &r, sizeof r)))
        return rc;
    *handle = r.handle;
    return CUDA_SUCCESS;
}

CUresult cuMemRelease(CUmemGenericAllocationHandle handle)
{
    if (handle > UINT32_MAX)
        return CUDA_ERROR_INVALID_HANDLE;
    struct vgpu_args_mem_release a = {.handle = (uint32_t)handle};
    return vgpu_cu_call(VGPU_CALL_MEM_RELEASE, &a, sizeof a, NULL, 0);
}

CUresult cuMemAddressReserve(CUdeviceptr *ptr, size_t size, size_t alignment, CUdeviceptr addr,
                             unsigned long long flags)
{
    if (!ptr)
        return CUDA_ERROR_INVALID_VALUE;
    struct vgpu_args_mem_address_reserve a = {.size = size, .alignment = alignment, .addr = addr, .flags = flags};
    struct vgpu_result_mem_address_reserve r;
    CUresult rc = vgpu_cu_call(VGPU_CALL_MEM_ADDRESS_RESERVE, &a, sizeof a, &r, sizeof r);
    if (rc)
        return rc;
    *ptr = r.dptr;
    vgpu_track_range(r.dptr, size, VGPU_PTR_DEVICE);
    return CUDA_SUCCESS;
}

CUresult cuMemAddressFree(CUdeviceptr ptr, size_t size)
{
    struct vgpu_args_mem_address_free a = {.ptr = ptr, .size = size};
    CUresult rc = vgpu_cu_call(VGPU_CALL_MEM_ADDRESS_FREE, &a, sizeof a, NULL, 0);
    if (rc == CUDA_SUCCESS)
        vgpu_untrack_range(ptr);
    return rc;
}

CUresult cuMemMap(CUdeviceptr ptr, size_t size, size_t offset, CUmemGenericAllocationHandle handle,
                  unsigned long long flags)
{
    if (handle > UINT32_MAX || flags >> 32)
        return handle > UINT32_MAX ? CUDA_ERROR_INVALID_HANDLE : CUDA_ERROR_INVALID_VALUE;
    struct vgpu_args_mem_map a = {.ptr = ptr, .size = size, .offset = offset, .handle = (uint32_t)handle,
                                  .flags = (uint32_t)flags};
    return vgpu_cu_call(VGPU_CALL_MEM_MAP, &a, sizeof a, NULL, 0);
}

CUresult cuMemUnmap(CUdeviceptr ptr, size_t size)
{
    struct vgpu_args_mem_unmap a = {.ptr = ptr, .size = size};
    return vgpu_cu_call(VGPU_CALL_MEM_UNMAP, &a, sizeof a, NULL, 0);
}

/* One call per descriptor: the protocol's mem_set_access carries one device. */
CUresult cuMemSetAccess(CUdeviceptr ptr, size_t size, const CUmemAccessDesc *desc, size_t count)
{
    if (!desc || count == 0)
        return CUDA_ERROR_INVALID_VALUE;
    for (size_t i = 0; i < count; i++) {
        int device;
        CUresult rc = device_of(&desc[i].location, &device);
        if (rc)
            return rc;
        struct vgpu_args_mem_set_access a = {.ptr = ptr, .size = size, .device = device,
                                             .flags = (uint32_t)desc[i].flags};
        if ((rc = vgpu_cu_call(VGPU_CALL_MEM_SET_ACCESS, &a, sizeof a, NULL, 0)))
            return rc;
    }
    return CUDA_SUCCESS;
}

/* -- host memory: the region's pinned area, else this process's own ---------------------------- */

/* The flags each host allocation was made with (cuMemHostGetFlags), pinned or fallen back. */
struct host_flags { uintptr_t base; size_t size; unsigned int flags; };
static struct host_flags *host_flags;
static size_t n_host_flags, host_flags_cap;
static pthread_mutex_t host_flags_lock = PTHREAD_MUTEX_INITIALIZER;

static void remember_flags(void *p, size_t size, unsigned int flags)
{
    pthread_mutex_lock(&host_flags_lock);
    if (n_host_flags == host_flags_cap) {
        size_t cap = host_flags_cap ? host_flags_cap * 2 : 32;
        struct host_flags *grown = realloc(host_flags, cap * sizeof *grown);
        if (!grown) { /* only cuMemHostGetFlags loses it: it answers INVALID_VALUE for this one */
            pthread_mutex_unlock(&host_flags_lock);
            return;
        }
        host_flags = grown;
        host_flags_cap = cap;
    }
    host_flags[n_host_flags++] = (struct host_flags){(uintptr_t)p, size ? size : 1, flags};
    pthread_mutex_unlock(&host_flags_lock);
}

static void forget_flags(void *p)
{
    pthread_mutex_lock(&host_flags_lock);
    for (size_t i = 0; i < n_host_flags; i++)
        if (host_flags[i].base == (uintptr_t)p) {
            host_flags[i] = host_flags[--n_host_flags];
            break;
        }
    pthread_mutex_unlock(&host_flags_lock);
}

CUresult cuMemHostGetFlags(unsigned int *flags, void *p)
{
    if (!flags || !p)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult rc = CUDA_ERROR_INVALID_VALUE; /* not memory of cuMemHostAlloc & co. (as CUDA answers) */
    pthread_mutex_lock(&host_flags_lock);
    for (size_t i = 0; i < n_host_flags; i++)
        if ((uintptr_t)p - host_flags[i].base < host_flags[i].size) {
            *flags = host_flags[i].flags;
            rc = CUDA_SUCCESS;
            break;
        }
    pthread_mutex_unlock(&host_flags_lock);
    return rc;
}

CUresult cuMemHostAlloc(void **pp, size_t bytesize, unsigned int flags)
{
    if (!pp)
        return CUDA_ERROR_INVALID_VALUE;
    if (flags & ~(CU_MEMHOSTALLOC_PORTABLE | CU_MEMHOSTALLOC_DEVICEMAP | CU_MEMHOSTALLOC_WRITECOMBINED))
        return CUDA_ERROR_INVALID_VALUE;
    void *p = NULL;
    CUresult rc = bytesize ? vgpu_pinned_alloc(&p, bytesize, flags) : CUDA_ERROR_NOT_SUPPORTED;
    if (rc && (flags & CU_MEMHOSTALLOC_DEVICEMAP)) /* mapped memory must be the region's: no fallback */
        VGPU_UNSUPPORTED_USE(bytesize ? rc : CUDA_ERROR_INVALID_VALUE,
                             "cuMemHostAlloc(%zu, DEVICEMAP): status %d (the pinned area is full, absent or "
                             "not mapped into the device); mapped memory has no ordinary-memory fallback "
                             "(logged once)", bytesize, (int)rc);
    if (rc == CUDA_ERROR_OUT_OF_MEMORY || rc == CUDA_ERROR_NOT_SUPPORTED) {
        static int once;
        if (bytesize && !__atomic_exchange_n(&once, 1, __ATOMIC_RELAXED))
            vgpu_shim_log("cuMemHostAlloc(%zu): %s; pinned host memory falls back to ordinary memory, whose "
                          "copies are staged (logged once)", bytesize,
                          rc == CUDA_ERROR_OUT_OF_MEMORY ? "the region's pinned area is full"
                                                         : "the region has no pinned area");
        if (posix_memalign(&p, HOST_ALIGN, bytesize ? bytesize : 1))
            return CUDA_ERROR_OUT_OF_MEMORY;
    } else if (rc) {
        return rc;
    }
    *pp = p;
    vgpu_track_range((uint64_t)(uintptr_t)p, bytesize, VGPU_PTR_HOST);
    remember_flags(p, bytesize, flags);
    return CUDA_SUCCESS;
}

CUresult cuMemAllocHost_v2(void **pp, size_t bytesize) { return cuMemHostAlloc(pp, bytesize, 0); }

CUresult cuMemFreeHost(void *p)
{
    uint64_t base;
    if (p && vgpu_shim_ptr_kind((uint64_t)(uintptr_t)p, &base, NULL) != VGPU_PTR_HOST)
        return CUDA_ERROR_INVALID_VALUE;
    if (p && base != (uint64_t)(uintptr_t)p)
        return CUDA_ERROR_INVALID_VALUE;
    if (p) {
        vgpu_untrack_range((uint64_t)(uintptr_t)p);
        forget_flags(p);
        CUresult rc;
        if (vgpu_pinned_free(p, &rc))
            return rc;
        free(p);
    }
    return CUDA_SUCCESS;
}

CUresult cuMemHostRegister_v2(void *p, size_t bytesize, unsigned int flags)
{
    if (!p || !bytesize)
        return CUDA_ERROR_INVALID_VALUE;
    if (flags & CU_MEMHOSTREGISTER_IOMEMORY)
        VGPU_UNSUPPORTED_USE(CUDA_ERROR_NOT_SUPPORTED,
                             "cuMemHostRegister flags %#x: I/O memory cannot be mapped into the GPU", flags);
    if (vgpu_shim_ptr_kind((uint64_t)(uintptr_t)p, NULL, NULL) != VGPU_PTR_NONE ||
        vgpu_shim_ptr_kind((uint64_t)(uintptr_t)p + bytesize - 1, NULL, NULL) != VGPU_PTR_NONE)
        return 712; /* CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED */
    CUresult rc = vgpu_pinned_register(p, bytesize, flags & CU_MEMHOSTREGISTER_DEVICEMAP);
    if (rc == CUDA_ERROR_NOT_SUPPORTED || rc == CUDA_ERROR_OUT_OF_MEMORY) { /* the pages stay: staged */
        static int once;
        if (flags & CU_MEMHOSTREGISTER_DEVICEMAP)
            VGPU_UNSUPPORTED_USE(CUDA_ERROR_NOT_SUPPORTED, "cuMemHostRegister(DEVICEMAP) of %zu bytes: the pages "
                                 "cannot move into the region's pinned area (no room, or no area), so the device "
                                 "cannot reach them", bytesize);
        if (!__atomic_exchange_n(&once, 1, __ATOMIC_RELAXED))
            vgpu_shim_log("cuMemHostRegister of %zu bytes: the pages cannot move into the region's pinned area "
                          "(status %d): their copies are staged (logged once)", bytesize, (int)rc);
    } else if (rc) {
        return rc;
    }
    vgpu_track_range((uint64_t)(uintptr_t)p, bytesize, VGPU_PTR_HOST_REGISTERED);
    return CUDA_SUCCESS;
}

CUresult cuMemHostUnregister(void *p)
{
    uint64_t base;
    if (!p || vgpu_shim_ptr_kind((uint64_t)(uintptr_t)p, &base, NULL) != VGPU_PTR_HOST_REGISTERED ||
        base != (uint64_t)(uintptr_t)p)
        return 713; /* CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED */
    vgpu_untrack_range(base);
    CUresult rc = CUDA_SUCCESS;
    (void)vgpu_pinned_unregister(p, &rc); /* 0: a staged registration, nothing moved */
    return rc;
}
