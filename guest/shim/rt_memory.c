/*
 * Runtime API: memory, copies, memsets and device variables (symbols), on the driver API.
 */
#include <stdlib.h>
#include <string.h>

#include "cu_api.h"
#include "cu_array.h"
#include "rt_internal.h"

#define cudaHostAllocMapped 0x02u

cudaError_t cudaMalloc(void **ptr, size_t size)
{
    if (!ptr)
        return rt_ret(cudaErrorInvalidValue);
    if (size == 0) { /* CUDA answers a zero-byte allocation with NULL and success */
        *ptr = NULL;
        return cudaSuccess;
    }
    CUdeviceptr d = 0;
    cudaError_t err = rt_init();
    if (!err && !(err = rt_err(cuMemAlloc_v2(&d, size))))
        *ptr = (void *)(uintptr_t)d;
    return rt_ret(err);
}

cudaError_t cudaFree(void *ptr)
{
    if (!ptr)
        return cudaSuccess;
    RT_CALL(cuMemFree_v2((CUdeviceptr)(uintptr_t)ptr));
}

cudaError_t cudaHostAlloc(void **ptr, size_t size, unsigned int flags) { RT_CALL(cuMemHostAlloc(ptr, size, flags)); }

cudaError_t cudaHostGetDevicePointer(void **pDevice, void *pHost, unsigned int flags)
{
    CUdeviceptr d = 0;
    cudaError_t err = rt_init();
    if (!err && !pDevice)
        err = cudaErrorInvalidValue;
    if (!err && !(err = rt_err(cuMemHostGetDevicePointer_v2(&d, pHost, flags))))
        *pDevice = (void *)(uintptr_t)d;
    return rt_ret(err);
}

cudaError_t cudaMallocManaged(void **ptr, size_t size, unsigned int flags)
{
    CUdeviceptr d = 0;
    cudaError_t err = rt_init();
    if (!err && !ptr)
        err = cudaErrorInvalidValue;
    if (!err && !(err = rt_err(cuMemAllocManaged(&d, size, flags))))
        *ptr = (void *)(uintptr_t)d;
    return rt_ret(err);
}

cudaError_t cudaStreamAttachMemAsync(cudaStream_t stream, void *ptr, size_t length, unsigned int flags)
{
    RT_CALL(cuStreamAttachMemAsync(stream, (CUdeviceptr)(uintptr_t)ptr, length, flags));
}

cudaError_t cudaMemPrefetchAsync(const void *ptr, size_t count, CUmemLocation location, unsigned int flags,
                                 cudaStream_t stream)
{
    RT_CALL(cuMemPrefetchAsync_v2((CUdeviceptr)(uintptr_t)ptr, count, location, flags, stream));
}

cudaError_t cudaMallocHost(void **ptr, size_t size) { RT_CALL(cuMemAllocHost_v2(ptr, size)); }
cudaError_t cudaHostGetFlags(unsigned int *flags, void *ptr) { RT_CALL(cuMemHostGetFlags(flags, ptr)); }
cudaError_t cudaFreeHost(void *ptr) { RT_CALL(cuMemFreeHost(ptr)); }

cudaError_t cudaHostRegister(void *ptr, size_t size, unsigned int flags)
{
    RT_CALL(cuMemHostRegister_v2(ptr, size, flags)); /* cudaHostRegisterMapped is DEVICEMAP */
}

cudaError_t cudaHostUnregister(void *ptr) { RT_CALL(cuMemHostUnregister(ptr)); }

cudaError_t cudaPointerGetAttributes(struct cudaPointerAttributes *attr, const void *ptr)
{
    if (!attr)
        return rt_ret(cudaErrorInvalidValue);
    memset(attr, 0, sizeof *attr);
    switch (vgpu_shim_ptr_kind((uint64_t)(uintptr_t)ptr, NULL, NULL)) {
    case VGPU_PTR_DEVICE:
        attr->type = cudaMemoryTypeDevice;
        attr->devicePointer = (void *)ptr;
        break;
    case VGPU_PTR_HOST:
    case VGPU_PTR_HOST_REGISTERED: { /* registered: mapped when its pages moved into the pinned area */
        CUdeviceptr dptr = 0;
        int managed = 0; /* both left as they are for memory the device cannot see */
        (void)cuPointerGetAttribute(&dptr, 3 /* DEVICE_POINTER */, (CUdeviceptr)(uintptr_t)ptr);
        (void)cuPointerGetAttribute(&managed, 8 /* IS_MANAGED */, (CUdeviceptr)(uintptr_t)ptr);
        attr->type = managed ? cudaMemoryTypeManaged : cudaMemoryTypeHost;
        attr->hostPointer = (void *)ptr;
        attr->devicePointer = (void *)(uintptr_t)dptr; /* NULL: not mapped into the device */
        break;
    }
    default:
        attr->type = cudaMemoryTypeUnregistered;
        attr->device = -2; /* what the runtime reports for unregistered memory */
        attr->hostPointer = (void *)ptr;
    }
    return cudaSuccess;
}

/* -- copies and memsets ------------------------------------------------------------------------ */

static CUresult copy(void *dst, const void *src, size_t n, enum cudaMemcpyKind kind, CUstream s, int async)
{
    CUdeviceptr d = (CUdeviceptr)(uintptr_t)dst, sp = (CUdeviceptr)(uintptr_t)src;
    switch (kind) {
    case cudaMemcpyHostToHost:
        if (n)
            memmove(dst, src, n);
        return CUDA_SUCCESS;
    case cudaMemcpyHostToDevice:
        return async ? cuMemcpyHtoDAsync_v2(d, src, n, s) : cuMemcpyHtoD_v2(d, src, n);
    case cudaMemcpyDeviceToHost:
        return async ? cuMemcpyDtoHAsync_v2(dst, sp, n, s) : cuMemcpyDtoH_v2(dst, sp, n);
    case cudaMemcpyDeviceToDevice:
        return async ? cuMemcpyDtoDAsync_v2(d, sp, n, s) : cuMemcpyDtoD_v2(d, sp, n);
    case cudaMemcpyDefault:
        return async ? cuMemcpyAsync(d, sp, n, s) : cuMemcpy(d, sp, n);
    default:
        return (CUresult)cudaErrorInvalidMemcpyDirection;
    }
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, enum cudaMemcpyKind kind)
{
    RT_CALL(copy(dst, src, n, kind, NULL, 0));
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, enum cudaMemcpyKind kind, cudaStream_t s)
{
    RT_CALL(copy(dst, src, n, kind, s, 1));
}

/*
 * The side a pointer of a pitched copy is for cuMemcpy2D (cu_array.c), whose box calls move every row
 * of it at once: VGPU_MEMORYTYPE_DEVICE for our device memory, _HOST for the process's memory (pinned
 * and managed ranges too: cuMemcpy2D names their range in one call, the host moving the rows itself,
 * asynchronously); 0 to copy row by row as before, for a pointer that is not what the kind says (its
 * rows fail as they did). `device`: whether the kind says the side is device memory, -1 for
 * cudaMemcpyDefault (the address says).
 */
static int box_side(const void *ptr, int device)
{
    int found = vgpu_shim_ptr_kind((uint64_t)(uintptr_t)ptr, NULL, NULL);
    if (device < 0)
        device = found == VGPU_PTR_DEVICE;
    if (device)
        return found == VGPU_PTR_DEVICE ? VGPU_MEMORYTYPE_DEVICE : 0;
    return found != VGPU_PTR_DEVICE ? VGPU_MEMORYTYPE_HOST : 0;
}

/* A 2D copy is one copy when both pitches equal the width; between device memory and either side one
 * box copy (a call per transport chunk, not per row); else one copy per row. */
static CUresult copy_2d(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width, size_t height,
                        enum cudaMemcpyKind kind, CUstream s, int async)
{
    if (width > dpitch || width > spitch)
        return (CUresult)12; /* cudaErrorInvalidPitchValue */
    if (dpitch == width && spitch == width)
        return copy(dst, src, width * height, kind, s, async);
    if (height > 1 && kind >= cudaMemcpyHostToDevice && kind <= cudaMemcpyDefault) {
        int defaults = kind == cudaMemcpyDefault ? -1 : 0;
        int st = box_side(src, defaults ? -1 : kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice);
        int dt = box_side(dst, defaults ? -1 : kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice);
        /* host to host stays a memmove per row */
        int boxed = st && dt && (st == VGPU_MEMORYTYPE_DEVICE || dt == VGPU_MEMORYTYPE_DEVICE), capturing = 0;
        /* so does an asynchronous copy with a host side on a capturing stream: its rows become the graph's
         * guest nodes (cu_guest_nodes.c), where a box call would end the capture */
        if (boxed && async && (st == VGPU_MEMORYTYPE_HOST || dt == VGPU_MEMORYTYPE_HOST) &&
            cuStreamIsCapturing(s, &capturing) != CUDA_SUCCESS)
            capturing = 1; /* the rows' own copies answer */
        if (boxed && !capturing) {
            vgpu_memcpy2d p = {
                .srcMemoryType = st, .srcHost = st == VGPU_MEMORYTYPE_HOST ? src : NULL,
                .srcDevice = st == VGPU_MEMORYTYPE_DEVICE ? (CUdeviceptr)(uintptr_t)src : 0, .srcPitch = spitch,
                .dstMemoryType = dt, .dstHost = dt == VGPU_MEMORYTYPE_HOST ? dst : NULL,
                .dstDevice = dt == VGPU_MEMORYTYPE_DEVICE ? (CUdeviceptr)(uintptr_t)dst : 0, .dstPitch = dpitch,
                .WidthInBytes = width, .Height = height};
            return async ? cuMemcpy2DAsync_v2(&p, s) : cuMemcpy2D_v2(&p);
        }
    }
    for (size_t row = 0; row < height; row++) {
        CUresult rc = copy((char *)dst + row * dpitch, (const char *)src + row * spitch, width, kind, s, async);
        if (rc)
            return rc;
    }
    return CUDA_SUCCESS;
}

cudaError_t cudaMemcpy2D(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width, size_t height,
                         enum cudaMemcpyKind kind)
{
    RT_CALL(copy_2d(dst, dpitch, src, spitch, width, height, kind, NULL, 0));
}

cudaError_t cudaMemcpy2DAsync(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width,
                              size_t height, enum cudaMemcpyKind kind, cudaStream_t s)
{
    RT_CALL(copy_2d(dst, dpitch, src, spitch, width, height, kind, s, 1));
}

cudaError_t cudaMemset(void *dst, int value, size_t n)
{
    RT_CALL(cuMemsetD8_v2((CUdeviceptr)(uintptr_t)dst, (unsigned char)value, n));
}

cudaError_t cudaMemsetAsync(void *dst, int value, size_t n, cudaStream_t s)
{
    RT_CALL(cuMemsetD8Async((CUdeviceptr)(uintptr_t)dst, (unsigned char)value, n, s));
}

/* -- device variables -------------------------------------------------------------------------- */

cudaError_t cudaGetSymbolAddress(void **dptr, const void *symbol)
{
    if (!dptr)
        return rt_ret(cudaErrorInvalidValue);
    CUdeviceptr d;
    cudaError_t err = rt_symbol(symbol, &d, NULL);
    if (err == cudaSuccess)
        *dptr = (void *)(uintptr_t)d;
    return rt_ret(err);
}

cudaError_t cudaGetSymbolSize(size_t *size, const void *symbol)
{
    if (!size)
        return rt_ret(cudaErrorInvalidValue);
    CUdeviceptr d;
    return rt_ret(rt_symbol(symbol, &d, size));
}

/* The device address of [offset, offset + n) of a variable, checked against its size. */
static cudaError_t symbol_span(const void *symbol, size_t n, size_t offset, CUdeviceptr *d)
{
    size_t size;
    cudaError_t err = rt_symbol(symbol, d, &size);
    if (err)
        return err;
    if (offset > size || n > size - offset)
        return cudaErrorInvalidValue;
    *d += offset;
    return cudaSuccess;
}

static cudaError_t to_symbol(const void *symbol, const void *src, size_t n, size_t offset,
                             enum cudaMemcpyKind kind, CUstream s, int async)
{
    CUdeviceptr d;
    cudaError_t err = symbol_span(symbol, n, offset, &d);
    if (err)
        return err;
    if (kind != cudaMemcpyHostToDevice && kind != cudaMemcpyDeviceToDevice && kind != cudaMemcpyDefault)
        return cudaErrorInvalidMemcpyDirection;
    return rt_err(copy((void *)(uintptr_t)d, src, n, kind, s, async));
}

static cudaError_t from_symbol(void *dst, const void *symbol, size_t n, size_t offset,
                               enum cudaMemcpyKind kind, CUstream s, int async)
{
    CUdeviceptr d;
    cudaError_t err = symbol_span(symbol, n, offset, &d);
    if (err)
        return err;
    if (kind != cudaMemcpyDeviceToHost && kind != cudaMemcpyDeviceToDevice && kind != cudaMemcpyDefault)
        return cudaErrorInvalidMemcpyDirection;
    return rt_err(copy(dst, (const void *)(uintptr_t)d, n, kind, s, async));
}

cudaError_t cudaMemcpyToSymbol(const void *symbol, const void *src, size_t n, size_t offset,
                               enum cudaMemcpyKind kind)
{
    return rt_ret(to_symbol(symbol, src, n, offset, kind, NULL, 0));
}

cudaError_t cudaMemcpyToSymbolAsync(const void *symbol, const void *src, size_t n, size_t offset,
                                    enum cudaMemcpyKind kind, cudaStream_t s)
{
    return rt_ret(to_symbol(symbol, src, n, offset, kind, s, 1));
}

cudaError_t cudaMemcpyFromSymbol(void *dst, const void *symbol, size_t n, size_t offset,
                                 enum cudaMemcpyKind kind)
{
    return rt_ret(from_symbol(dst, symbol, n, offset, kind, NULL, 0));
}

cudaError_t cudaMemcpyFromSymbolAsync(void *dst, const void *symbol, size_t n, size_t offset,
                                      enum cudaMemcpyKind kind, cudaStream_t s)
{
    return rt_ret(from_symbol(dst, symbol, n, offset, kind, s, 1));
}
