/*
 * The runtime's CUDA arrays, texture and surface objects and the copies with an array as a side, on the
 * driver API of cu_array.c and cu_texture.c (cudaArray_t is a CUarray, cudaTextureObject_t a
 * CUtexObject). A channel descriptor becomes a CUarray_format and a channel count: 1, 2 or 4 channels
 * of one width (cudaErrorInvalidChannelDescriptor otherwise); the normalized, block-compressed and
 * video kinds are not served. Mipmapped arrays are not served (their entry points answer
 * cudaErrorNotSupported from the generated stubs).
 */
#include <string.h>

#include "cu_array.h"
#include "rt_internal.h"

struct cudaChannelFormatDesc { int x, y, z, w; int f; };
/* cudaResourceDesc and cudaTextureDesc as CUDA 13's driver_types.h and texture_types.h lay them out */
struct cudaResourceDesc {
    int resType;
    union {
        struct { CUarray array; } array;
        struct { void *mipmap; } mipmap;
        struct { void *devPtr; struct cudaChannelFormatDesc desc; size_t sizeInBytes; } linear;
        struct { void *devPtr; struct cudaChannelFormatDesc desc; size_t width, height, pitchInBytes; } pitch2D;
        struct { int reserved[32]; } reserved;
    } res;
    unsigned int flags;
};
struct cudaTextureDesc {
    int addressMode[3];
    int filterMode, readMode, sRGB;
    float borderColor[4];
    int normalizedCoords;
    unsigned int maxAnisotropy;
    int mipmapFilterMode;
    float mipmapLevelBias, minMipmapLevelClamp, maxMipmapLevelClamp;
    int disableTrilinearOptimization, seamlessCubemap;
};
_Static_assert(sizeof(struct cudaResourceDesc) == 144 && sizeof(struct cudaTextureDesc) == 72, "CUDA 13 layouts");
typedef unsigned long long cudaTextureObject_t, cudaSurfaceObject_t;

enum { ERR_INVALID_CHANNEL = 20 }; /* cudaErrorInvalidChannelDescriptor */
enum { READ_AS_INTEGER = 0x1, NORMALIZED_COORDINATES = 0x2, SRGB = 0x10, NO_TRILINEAR = 0x20, SEAMLESS = 0x40 };

cudaError_t cudaMallocPitch(void **dptr, size_t *pitch, size_t width, size_t height);
cudaError_t cudaMemset2D(void *dptr, size_t pitch, int value, size_t width, size_t height);
cudaError_t cudaMemset2DAsync(void *dptr, size_t pitch, int value, size_t width, size_t height, cudaStream_t s);
cudaError_t cudaMallocArray(CUarray *array, const struct cudaChannelFormatDesc *desc, size_t width, size_t height,
                            unsigned int flags);
cudaError_t cudaMalloc3DArray(CUarray *array, const struct cudaChannelFormatDesc *desc, struct cudaExtent extent,
                              unsigned int flags);
cudaError_t cudaFreeArray(CUarray array);
cudaError_t cudaArrayGetInfo(struct cudaChannelFormatDesc *desc, struct cudaExtent *extent, unsigned int *flags,
                             CUarray array);
cudaError_t cudaGetChannelDesc(struct cudaChannelFormatDesc *desc, CUarray array);
cudaError_t cudaMemcpy2DToArray(CUarray dst, size_t w_offset, size_t h_offset, const void *src, size_t spitch,
                                size_t width, size_t height, int kind);
cudaError_t cudaMemcpy2DToArrayAsync(CUarray dst, size_t w_offset, size_t h_offset, const void *src, size_t spitch,
                                     size_t width, size_t height, int kind, cudaStream_t s);
cudaError_t cudaMemcpy2DFromArray(void *dst, size_t dpitch, CUarray src, size_t w_offset, size_t h_offset,
                                  size_t width, size_t height, int kind);
cudaError_t cudaMemcpy2DFromArrayAsync(void *dst, size_t dpitch, CUarray src, size_t w_offset, size_t h_offset,
                                       size_t width, size_t height, int kind, cudaStream_t s);
cudaError_t cudaMemcpy2DArrayToArray(CUarray dst, size_t w_dst, size_t h_dst, CUarray src, size_t w_src,
                                     size_t h_src, size_t width, size_t height, int kind);
cudaError_t cudaMemcpyToArray(CUarray dst, size_t w_offset, size_t h_offset, const void *src, size_t count, int kind);
cudaError_t cudaMemcpyFromArray(void *dst, CUarray src, size_t w_offset, size_t h_offset, size_t count, int kind);
cudaError_t cudaMemcpy3D(const struct cudaMemcpy3DParms *p);
cudaError_t cudaMemcpy3DAsync(const struct cudaMemcpy3DParms *p, cudaStream_t s);
cudaError_t cudaCreateTextureObject(cudaTextureObject_t *tex, const struct cudaResourceDesc *res,
                                    const struct cudaTextureDesc *desc, const void *view);
cudaError_t cudaDestroyTextureObject(cudaTextureObject_t tex);
cudaError_t cudaGetTextureObjectResourceDesc(struct cudaResourceDesc *res, cudaTextureObject_t tex);
cudaError_t cudaGetTextureObjectTextureDesc(struct cudaTextureDesc *desc, cudaTextureObject_t tex);
cudaError_t cudaCreateSurfaceObject(cudaSurfaceObject_t *surf, const struct cudaResourceDesc *res);
cudaError_t cudaDestroySurfaceObject(cudaSurfaceObject_t surf);
cudaError_t cudaGetSurfaceObjectResourceDesc(struct cudaResourceDesc *res, cudaSurfaceObject_t surf);

/* -- channel descriptors <-> CUarray_format ---------------------------------------------------- */

static cudaError_t to_format(const struct cudaChannelFormatDesc *d, int *format, unsigned int *channels)
{
    if (!d)
        return cudaErrorInvalidValue;
    if (d->f > 3)
        VGPU_UNSUPPORTED_USE(cudaErrorNotSupported, "channel format kind %d (normalized, block-compressed or "
                             "video) is not served", d->f);
    int bits = d->x;
    unsigned int n = !!d->x + !!d->y + !!d->z + !!d->w;
    if (n == 3 || (n >= 2 && d->y != bits) || (n == 4 && (d->z != bits || d->w != bits)) || (n < 4 && (d->z || d->w))
        || (n < 2 && d->y))
        return ERR_INVALID_CHANNEL;
    static const int formats[3][3] = {{0x08, 0x09, 0x0a}, {0x01, 0x02, 0x03}, {0, 0x10, 0x20}};
    int width = bits == 8 ? 0 : bits == 16 ? 1 : bits == 32 ? 2 : -1;
    if (d->f == 3 || width < 0 || !formats[d->f][width])
        return ERR_INVALID_CHANNEL;
    *format = formats[d->f][width];
    *channels = n;
    return cudaSuccess;
}

static struct cudaChannelFormatDesc from_format(int format, unsigned int channels)
{
    int bits = (int)(vgpu_texel_bytes(format, 1) * 8);
    int kind = format >= 0x10 ? 2 : format >= 0x08 ? 0 : 1;
    return (struct cudaChannelFormatDesc){bits, channels > 1 ? bits : 0, channels > 2 ? bits : 0,
                                          channels > 3 ? bits : 0, kind};
}

/* -- arrays ------------------------------------------------------------------------------------ */

cudaError_t cudaMalloc3DArray(CUarray *array, const struct cudaChannelFormatDesc *desc, struct cudaExtent extent,
                              unsigned int flags)
{
    vgpu_array3d_desc d = {extent.width, extent.height, extent.depth, 0, 0, flags};
    cudaError_t err = to_format(desc, &d.Format, &d.NumChannels);
    if (err)
        return rt_ret(err);
    RT_CALL(cuArray3DCreate_v2(array, &d));
}

cudaError_t cudaMallocArray(CUarray *array, const struct cudaChannelFormatDesc *desc, size_t width, size_t height,
                            unsigned int flags)
{
    return cudaMalloc3DArray(array, desc, (struct cudaExtent){width, height, 0}, flags);
}

cudaError_t cudaFreeArray(CUarray array)
{
    if (!array)
        return cudaSuccess;
    RT_CALL(cuArrayDestroy(array));
}

cudaError_t cudaArrayGetInfo(struct cudaChannelFormatDesc *desc, struct cudaExtent *extent, unsigned int *flags,
                             CUarray array)
{
    vgpu_array3d_desc d;
    CUresult rc = cuArray3DGetDescriptor_v2(&d, array);
    if (rc)
        return rt_ret(rt_err(rc));
    if (desc)
        *desc = from_format(d.Format, d.NumChannels);
    if (extent)
        *extent = (struct cudaExtent){d.Width, d.Height, d.Depth};
    if (flags)
        *flags = d.Flags;
    return cudaSuccess;
}

cudaError_t cudaGetChannelDesc(struct cudaChannelFormatDesc *desc, CUarray array)
{
    if (!desc)
        return rt_ret(cudaErrorInvalidValue);
    return cudaArrayGetInfo(desc, NULL, NULL, array);
}

/* -- pitched memory ---------------------------------------------------------------------------- */

cudaError_t cudaMallocPitch(void **dptr, size_t *pitch, size_t width, size_t height)
{
    if (!dptr)
        return rt_ret(cudaErrorInvalidValue);
    CUdeviceptr d = 0;
    cudaError_t init = rt_init();
    CUresult rc = init ? CUDA_SUCCESS : cuMemAllocPitch_v2(&d, pitch, width, height, 4);
    if (!init && !rc)
        *dptr = (void *)(uintptr_t)d;
    return rt_ret(init ? init : rt_err(rc));
}

/* A 2D memset is one call (cuMemsetD2D8: the host checks the pitch and the span). */
cudaError_t cudaMemset2D(void *dptr, size_t pitch, int value, size_t width, size_t height)
{
    RT_CALL(cuMemsetD2D8_v2((CUdeviceptr)(uintptr_t)dptr, pitch, (unsigned char)value, width, height));
}

cudaError_t cudaMemset2DAsync(void *dptr, size_t pitch, int value, size_t width, size_t height, cudaStream_t s)
{
    RT_CALL(cuMemsetD2D8Async((CUdeviceptr)(uintptr_t)dptr, pitch, (unsigned char)value, width, height, s));
}

/* -- copies ------------------------------------------------------------------------------------ */

/* One side of a copy in linear memory, as cudaMemcpyKind says (`source`: the side read). */
static cudaError_t linear_side(int kind, int source, const void *ptr, int *type, const void **host,
                               CUdeviceptr *device)
{
    static const int types[5][2] = {{1, 1}, {2, 1}, {1, 2}, {2, 2}, {4, 4}}; /* [kind][source]: host, device */
    if (kind < 0 || kind > 4)
        return cudaErrorInvalidMemcpyDirection;
    *type = types[kind][source];
    *host = *type == 1 ? ptr : NULL;
    *device = *type == 1 ? 0 : (CUdeviceptr)(uintptr_t)ptr;
    return cudaSuccess;
}

static cudaError_t copy_2d(vgpu_memcpy2d *p, int kind, const void *linear, int linear_is_source, cudaStream_t s,
                           int async)
{
    cudaError_t err = cudaSuccess;
    if (linear_is_source >= 0) {
        if (linear_is_source)
            err = linear_side(kind, 1, linear, &p->srcMemoryType, &p->srcHost, &p->srcDevice);
        else
            err = linear_side(kind, 0, linear, &p->dstMemoryType, (const void **)&p->dstHost, &p->dstDevice);
    }
    if (err)
        return rt_ret(err);
    RT_CALL(async ? cuMemcpy2DAsync_v2(p, s) : cuMemcpy2D_v2(p));
}

static vgpu_memcpy2d to_array(CUarray dst, size_t w_offset, size_t h_offset, size_t spitch, size_t width,
                              size_t height)
{
    return (vgpu_memcpy2d){.srcPitch = spitch, .dstXInBytes = w_offset, .dstY = h_offset,
                           .dstMemoryType = VGPU_MEMORYTYPE_ARRAY, .dstArray = dst, .WidthInBytes = width,
                           .Height = height};
}

static vgpu_memcpy2d from_array(CUarray src, size_t w_offset, size_t h_offset, size_t dpitch, size_t width,
                                size_t height)
{
    return (vgpu_memcpy2d){.srcXInBytes = w_offset, .srcY = h_offset, .srcMemoryType = VGPU_MEMORYTYPE_ARRAY,
                           .srcArray = src, .dstPitch = dpitch, .WidthInBytes = width, .Height = height};
}

cudaError_t cudaMemcpy2DToArray(CUarray dst, size_t w_offset, size_t h_offset, const void *src, size_t spitch,
                                size_t width, size_t height, int kind)
{
    vgpu_memcpy2d p = to_array(dst, w_offset, h_offset, spitch, width, height);
    return copy_2d(&p, kind, src, 1, NULL, 0);
}

cudaError_t cudaMemcpy2DToArrayAsync(CUarray dst, size_t w_offset, size_t h_offset, const void *src, size_t spitch,
                                     size_t width, size_t height, int kind, cudaStream_t s)
{
    vgpu_memcpy2d p = to_array(dst, w_offset, h_offset, spitch, width, height);
    return copy_2d(&p, kind, src, 1, s, 1);
}

cudaError_t cudaMemcpy2DFromArray(void *dst, size_t dpitch, CUarray src, size_t w_offset, size_t h_offset,
                                  size_t width, size_t height, int kind)
{
    vgpu_memcpy2d p = from_array(src, w_offset, h_offset, dpitch, width, height);
    return copy_2d(&p, kind, dst, 0, NULL, 0);
}

cudaError_t cudaMemcpy2DFromArrayAsync(void *dst, size_t dpitch, CUarray src, size_t w_offset, size_t h_offset,
                                       size_t width, size_t height, int kind, cudaStream_t s)
{
    vgpu_memcpy2d p = from_array(src, w_offset, h_offset, dpitch, width, height);
    return copy_2d(&p, kind, dst, 0, s, 1);
}

cudaError_t cudaMemcpy2DArrayToArray(CUarray dst, size_t w_dst, size_t h_dst, CUarray src, size_t w_src,
                                     size_t h_src, size_t width, size_t height, int kind)
{
    (void)kind; /* both sides are arrays, whatever the kind says */
    vgpu_memcpy2d p = from_array(src, w_src, h_src, 0, width, height);
    p.dstXInBytes = w_dst;
    p.dstY = h_dst;
    p.dstMemoryType = VGPU_MEMORYTYPE_ARRAY;
    p.dstArray = dst;
    return copy_2d(&p, kind, NULL, -1, NULL, 0);
}

/*
 * The deprecated 1D forms: `count` bytes from (w_offset, h_offset) on, running from row to row — as
 * at most three boxes (the rest of the first row, whole rows, the start of the last row).
 */
static cudaError_t rows_of(CUarray array, size_t w_offset, size_t h_offset, size_t count, const char *linear,
                           int to, int kind)
{
    vgpu_array3d_desc d;
    CUresult rc = cuArray3DGetDescriptor_v2(&d, array);
    if (rc)
        return rt_ret(rt_err(rc));
    size_t row = d.Width * vgpu_texel_bytes(d.Format, d.NumChannels);
    if (w_offset >= row && count)
        return rt_ret(cudaErrorInvalidValue);
    while (count) {
        size_t width = row, height = count / row; /* whole rows */
        if (w_offset || !height) {                /* or what is left of one */
            width = row - w_offset < count ? row - w_offset : count;
            height = 1;
        }
        cudaError_t err = to ? cudaMemcpy2DToArray(array, w_offset, h_offset, linear, width, width, height, kind)
                             : cudaMemcpy2DFromArray((void *)linear, width, array, w_offset, h_offset, width, height,
                                                     kind);
        if (err)
            return err;
        linear += width * height;
        count -= width * height;
        h_offset += height;
        w_offset = 0;
    }
    return cudaSuccess;
}

cudaError_t cudaMemcpyToArray(CUarray dst, size_t w_offset, size_t h_offset, const void *src, size_t count, int kind)
{
    return rows_of(dst, w_offset, h_offset, count, src, 1, kind);
}

cudaError_t cudaMemcpyFromArray(void *dst, CUarray src, size_t w_offset, size_t h_offset, size_t count, int kind)
{
    return rows_of(src, w_offset, h_offset, count, dst, 0, kind);
}

/* The runtime's 3D copy as the driver's: an array side counts x and the extent's width in its elements. */
static cudaError_t to_driver_3d(const struct cudaMemcpy3DParms *p, vgpu_memcpy3d *c)
{
    if (!p || (p->srcArray && p->srcPtr.ptr) || (p->dstArray && p->dstPtr.ptr))
        return cudaErrorInvalidValue;
    memset(c, 0, sizeof *c);
    size_t texel = 1, src_texel = 1, dst_texel = 1;
    CUarray src = p->srcArray, dst = p->dstArray;
    if (src) {
        if (!VGPU_CHECK_HANDLE(src, VGPU_MAGIC_ARRAY))
            return cudaErrorInvalidResourceHandle;
        texel = src_texel = vgpu_texel_bytes(src->desc.Format, src->desc.NumChannels);
        c->srcMemoryType = VGPU_MEMORYTYPE_ARRAY;
        c->srcArray = src;
    } else {
        cudaError_t err = linear_side(p->kind, 1, p->srcPtr.ptr, &c->srcMemoryType, &c->srcHost, &c->srcDevice);
        if (err)
            return err;
        c->srcPitch = p->srcPtr.pitch;
        c->srcHeight = p->srcPtr.ysize;
    }
    if (dst) {
        if (!VGPU_CHECK_HANDLE(dst, VGPU_MAGIC_ARRAY))
            return cudaErrorInvalidResourceHandle;
        dst_texel = vgpu_texel_bytes(dst->desc.Format, dst->desc.NumChannels);
        texel = src ? texel : dst_texel;
        c->dstMemoryType = VGPU_MEMORYTYPE_ARRAY;
        c->dstArray = dst;
    } else {
        cudaError_t err = linear_side(p->kind, 0, p->dstPtr.ptr, &c->dstMemoryType, (const void **)&c->dstHost,
                                      &c->dstDevice);
        if (err)
            return err;
        c->dstPitch = p->dstPtr.pitch;
        c->dstHeight = p->dstPtr.ysize;
    }
    c->srcXInBytes = p->srcPos.x * src_texel;
    c->srcY = p->srcPos.y;
    c->srcZ = p->srcPos.z;
    c->dstXInBytes = p->dstPos.x * dst_texel;
    c->dstY = p->dstPos.y;
    c->dstZ = p->dstPos.z;
    c->WidthInBytes = p->extent.width * texel;
    c->Height = p->extent.height;
    c->Depth = p->extent.depth;
    return cudaSuccess;
}

cudaError_t cudaMemcpy3D(const struct cudaMemcpy3DParms *p)
{
    vgpu_memcpy3d c;
    cudaError_t err = to_driver_3d(p, &c);
    if (err)
        return rt_ret(err);
    RT_CALL(cuMemcpy3D_v2(&c));
}

cudaError_t cudaMemcpy3DAsync(const struct cudaMemcpy3DParms *p, cudaStream_t s)
{
    vgpu_memcpy3d c;
    cudaError_t err = to_driver_3d(p, &c);
    if (err)
        return rt_ret(err);
    RT_CALL(cuMemcpy3DAsync_v2(&c, s));
}

/* -- texture and surface objects --------------------------------------------------------------- */

static cudaError_t to_driver_resource(const struct cudaResourceDesc *r, vgpu_resource_desc *d)
{
    if (!r)
        return cudaErrorInvalidValue;
    memset(d, 0, sizeof *d);
    d->resType = r->resType;
    d->flags = r->flags;
    switch (r->resType) {
    case 0:
        d->res.array.hArray = r->res.array.array;
        return cudaSuccess;
    case 1:
        d->res.mipmap.hMipmappedArray = r->res.mipmap.mipmap;
        return cudaSuccess;
    case 2:
        d->res.linear.devPtr = (CUdeviceptr)(uintptr_t)r->res.linear.devPtr;
        d->res.linear.sizeInBytes = r->res.linear.sizeInBytes;
        return to_format(&r->res.linear.desc, &d->res.linear.format, &d->res.linear.numChannels);
    case 3:
        d->res.pitch2D.devPtr = (CUdeviceptr)(uintptr_t)r->res.pitch2D.devPtr;
        d->res.pitch2D.width = r->res.pitch2D.width;
        d->res.pitch2D.height = r->res.pitch2D.height;
        d->res.pitch2D.pitchInBytes = r->res.pitch2D.pitchInBytes;
        return to_format(&r->res.pitch2D.desc, &d->res.pitch2D.format, &d->res.pitch2D.numChannels);
    default:
        return cudaErrorInvalidValue;
    }
}

static void from_driver_resource(const vgpu_resource_desc *d, struct cudaResourceDesc *r)
{
    memset(r, 0, sizeof *r);
    r->resType = d->resType;
    r->flags = d->flags;
    if (d->resType == 0)
        r->res.array.array = d->res.array.hArray;
    else if (d->resType == 2)
        r->res.linear = (__typeof__(r->res.linear)){(void *)(uintptr_t)d->res.linear.devPtr,
                                                    from_format(d->res.linear.format, d->res.linear.numChannels),
                                                    d->res.linear.sizeInBytes};
    else if (d->resType == 3)
        r->res.pitch2D = (__typeof__(r->res.pitch2D)){
            (void *)(uintptr_t)d->res.pitch2D.devPtr, from_format(d->res.pitch2D.format, d->res.pitch2D.numChannels),
            d->res.pitch2D.width, d->res.pitch2D.height, d->res.pitch2D.pitchInBytes};
}

cudaError_t cudaCreateTextureObject(cudaTextureObject_t *tex, const struct cudaResourceDesc *res,
                                    const struct cudaTextureDesc *desc, const void *view)
{
    vgpu_resource_desc r;
    cudaError_t err = to_driver_resource(res, &r);
    if (err || !desc)
        return rt_ret(err ? err : cudaErrorInvalidValue);
    vgpu_texture_desc t = {
        .addressMode = {desc->addressMode[0], desc->addressMode[1], desc->addressMode[2]},
        .filterMode = desc->filterMode,
        /* cudaReadModeElementType (0) reads integers as integers: the driver's READ_AS_INTEGER */
        .flags = (desc->readMode == 0 ? READ_AS_INTEGER : 0) | (desc->normalizedCoords ? NORMALIZED_COORDINATES : 0)
                 | (desc->sRGB ? SRGB : 0) | (desc->disableTrilinearOptimization ? NO_TRILINEAR : 0)
                 | (desc->seamlessCubemap ? SEAMLESS : 0),
        .maxAnisotropy = desc->maxAnisotropy, .mipmapFilterMode = desc->mipmapFilterMode,
        .mipmapLevelBias = desc->mipmapLevelBias, .minMipmapLevelClamp = desc->minMipmapLevelClamp,
        .maxMipmapLevelClamp = desc->maxMipmapLevelClamp,
        .borderColor = {desc->borderColor[0], desc->borderColor[1], desc->borderColor[2], desc->borderColor[3]}};
    RT_CALL(cuTexObjectCreate(tex, &r, &t, view));
}

cudaError_t cudaDestroyTextureObject(cudaTextureObject_t tex) { RT_CALL(cuTexObjectDestroy(tex)); }

/* An object's resource description, as the driver's getter `get` keeps it, in the runtime's layout. */
static cudaError_t resource_of(struct cudaResourceDesc *res, unsigned long long object,
                               CUresult (*get)(vgpu_resource_desc *, unsigned long long))
{
    vgpu_resource_desc d;
    CUresult rc = res ? get(&d, object) : CUDA_ERROR_INVALID_VALUE;
    if (rc)
        return rt_ret(rt_err(rc));
    from_driver_resource(&d, res);
    return cudaSuccess;
}

cudaError_t cudaGetTextureObjectResourceDesc(struct cudaResourceDesc *res, cudaTextureObject_t tex)
{
    return resource_of(res, tex, cuTexObjectGetResourceDesc);
}

cudaError_t cudaGetTextureObjectTextureDesc(struct cudaTextureDesc *desc, cudaTextureObject_t tex)
{
    vgpu_texture_desc t;
    CUresult rc = desc ? cuTexObjectGetTextureDesc(&t, tex) : CUDA_ERROR_INVALID_VALUE;
    if (rc)
        return rt_ret(rt_err(rc));
    *desc = (struct cudaTextureDesc){
        .addressMode = {t.addressMode[0], t.addressMode[1], t.addressMode[2]}, .filterMode = t.filterMode,
        .readMode = t.flags & READ_AS_INTEGER ? 0 : 1, .sRGB = !!(t.flags & SRGB),
        .borderColor = {t.borderColor[0], t.borderColor[1], t.borderColor[2], t.borderColor[3]},
        .normalizedCoords = !!(t.flags & NORMALIZED_COORDINATES), .maxAnisotropy = t.maxAnisotropy,
        .mipmapFilterMode = t.mipmapFilterMode, .mipmapLevelBias = t.mipmapLevelBias,
        .minMipmapLevelClamp = t.minMipmapLevelClamp, .maxMipmapLevelClamp = t.maxMipmapLevelClamp,
        .disableTrilinearOptimization = !!(t.flags & NO_TRILINEAR), .seamlessCubemap = !!(t.flags & SEAMLESS)};
    return cudaSuccess;
}

cudaError_t cudaCreateSurfaceObject(cudaSurfaceObject_t *surf, const struct cudaResourceDesc *res)
{
    vgpu_resource_desc r;
    cudaError_t err = to_driver_resource(res, &r);
    if (err)
        return rt_ret(err);
    RT_CALL(cuSurfObjectCreate(surf, &r));
}

cudaError_t cudaDestroySurfaceObject(cudaSurfaceObject_t surf) { RT_CALL(cuSurfObjectDestroy(surf)); }

cudaError_t cudaGetSurfaceObjectResourceDesc(struct cudaResourceDesc *res, cudaSurfaceObject_t surf)
{
    return resource_of(res, surf, cuSurfObjectGetResourceDesc);
}
