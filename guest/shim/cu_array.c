/*
 * CUDA arrays and the 2D/3D copies (cuArrayCreate, cuArray3DCreate, cuMemcpy2D, cuMemcpy3D and their
 * Async forms) on protocol calls 0x00B0-0x00B4. The host checks every descriptor and box; the guest
 * keeps the descriptor an array was made with (cuArray*GetDescriptor answer from it).
 *
 * A copy has two sides, each host memory, device memory or an array (CU_MEMORYTYPE_UNIFIED is told
 * apart by the address). Device-side to device-side is one call (memcpy_3d). A side in pinned memory of
 * ours is one call that names its range (memcpy_3d_htod/dtoh_pinned, cu_memory.c: the host moves the
 * rows; posted both ways when asynchronous). A side in other host memory is
 * packed into (or unpacked from) the payload of memcpy_3d_htod/dtoh, in boxes of at most the
 * transport's chunk size: whole slices, else runs of rows, else pieces of a row. Copies to that memory
 * wait (pageable memory, as cuMemcpyDtoH does); copies from it are posted when asynchronous. Host to
 * host is a memcpy in stream order (after the stream has drained).
 */
#include <stdlib.h>
#include <string.h>

#include "cu_array.h"
#include "shim.h"
#include "vgpu_protocol.h"
#include "vgpu_transport.h"

/* -- arrays ------------------------------------------------------------------------------------ */

CUresult cuArray3DCreate_v2(CUarray *array, const vgpu_array3d_desc *desc)
{
    if (!array || !desc)
        return CUDA_ERROR_INVALID_VALUE;
    struct CUarray_st *rec = calloc(1, sizeof *rec);
    if (!rec)
        return CUDA_ERROR_OUT_OF_MEMORY;
    struct vgpu_args_array_create a = {.width = desc->Width, .height = desc->Height, .depth = desc->Depth,
                                       .format = (uint32_t)desc->Format, .channels = desc->NumChannels,
                                       .flags = desc->Flags};
    struct vgpu_result_array_create r = {0};
    CUresult rc = vgpu_cu_call(VGPU_CALL_ARRAY_CREATE, &a, sizeof a, &r, sizeof r);
    if (rc) {
        free(rec);
        return rc;
    }
    *rec = (struct CUarray_st){VGPU_MAGIC_ARRAY, r.array, *desc};
    *array = rec;
    return CUDA_SUCCESS;
}

CUresult cuArrayCreate_v2(CUarray *array, const vgpu_array_desc *desc)
{
    if (!desc)
        return CUDA_ERROR_INVALID_VALUE;
    vgpu_array3d_desc d = {desc->Width, desc->Height, 0, desc->Format, desc->NumChannels, 0};
    return cuArray3DCreate_v2(array, &d);
}

CUresult cuArrayDestroy(CUarray array)
{
    if (!VGPU_CHECK_HANDLE(array, VGPU_MAGIC_ARRAY))
        return CUDA_ERROR_INVALID_HANDLE;
    return vgpu_cu_release(VGPU_CALL_ARRAY_DESTROY, array->id, &array->magic, array);
}

CUresult cuArray3DGetDescriptor_v2(vgpu_array3d_desc *desc, CUarray array)
{
    if (!desc)
        return CUDA_ERROR_INVALID_VALUE;
    if (!VGPU_CHECK_HANDLE(array, VGPU_MAGIC_ARRAY))
        return CUDA_ERROR_INVALID_HANDLE;
    *desc = array->desc;
    return CUDA_SUCCESS;
}

CUresult cuArrayGetDescriptor_v2(vgpu_array_desc *desc, CUarray array)
{
    if (!desc)
        return CUDA_ERROR_INVALID_VALUE;
    if (!VGPU_CHECK_HANDLE(array, VGPU_MAGIC_ARRAY))
        return CUDA_ERROR_INVALID_HANDLE;
    if (array->desc.Depth)
        return CUDA_ERROR_INVALID_VALUE; /* CUDA: a 3D or layered array has no 2D descriptor */
    *desc = (vgpu_array_desc){array->desc.Width, array->desc.Height, array->desc.Format, array->desc.NumChannels};
    return CUDA_SUCCESS;
}

/* -- pitched memory ---------------------------------------------------------------------------- */

/* Rows padded to 512 bytes: a multiple of the texture pitch alignment, as a GPU's pitches are. */
enum { PITCH_ALIGNMENT = 512 };

CUresult cuMemAllocPitch_v2(CUdeviceptr *dptr, size_t *pitch, size_t width, size_t height, unsigned int element)
{
    if (!dptr || !pitch || !width || !height || (element != 4 && element != 8 && element != 16))
        return CUDA_ERROR_INVALID_VALUE;
    size_t padded, bytes;
    if (__builtin_add_overflow(width, PITCH_ALIGNMENT - 1, &padded) ||
        __builtin_mul_overflow(padded / PITCH_ALIGNMENT * PITCH_ALIGNMENT, height, &bytes))
        return CUDA_ERROR_INVALID_VALUE;
    CUresult rc = cuMemAlloc_v2(dptr, bytes);
    if (!rc)
        *pitch = padded / PITCH_ALIGNMENT * PITCH_ALIGNMENT;
    return rc;
}

/* -- copies ------------------------------------------------------------------------------------ */

/* cu_memory.c: a box whose host side is pinned memory of ours as one call (0: not pinned, stage it) */
VGPU_HIDDEN int vgpu_pinned_box(const char *first, size_t pitch, size_t height,
                                const struct vgpu_args_memcpy_3d_htod *dev, int to_device, int asynchronous,
                                CUresult *rc);

/* One side of a copy, resolved: host memory (`host`), device memory (`device`) or an array (`array`). */
struct side {
    int type;
    const char *host;
    CUdeviceptr device;
    uint32_t array;
    size_t x, y, z, pitch, height;
};

static CUresult resolve(struct side *s, int type, const void *host, CUdeviceptr device, void *array, size_t x,
                        size_t y, size_t z, size_t pitch, size_t height)
{
    if (type == VGPU_MEMORYTYPE_UNIFIED)
        type = vgpu_shim_ptr_kind(device, NULL, NULL) == VGPU_PTR_DEVICE ? VGPU_MEMORYTYPE_DEVICE
                                                                         : VGPU_MEMORYTYPE_HOST;
    *s = (struct side){.type = type, .x = x, .y = y, .z = z, .pitch = pitch, .height = height};
    switch (type) {
    case VGPU_MEMORYTYPE_HOST:
        s->host = host ? host : (const char *)(uintptr_t)device; /* unified: the address is the host's */
        return s->host ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
    case VGPU_MEMORYTYPE_DEVICE:
        s->device = device;
        return CUDA_SUCCESS;
    case VGPU_MEMORYTYPE_ARRAY: {
        CUarray a = array;
        if (!VGPU_CHECK_HANDLE(a, VGPU_MAGIC_ARRAY))
            return CUDA_ERROR_INVALID_HANDLE;
        s->array = a->id;
        s->pitch = s->height = 0;
        return CUDA_SUCCESS;
    }
    default:
        return CUDA_ERROR_INVALID_VALUE;
    }
}

static char *host_row(const struct side *s, size_t x, size_t y, size_t z)
{
    return (char *)(uintptr_t)s->host + (s->z + z) * s->pitch * s->height + (s->y + y) * s->pitch + s->x + x;
}

/* The memcpy_3d_htod/dtoh arguments for the box at (x, y, z) of `s`, w x h x d bytes. */
static struct vgpu_args_memcpy_3d_htod box_args(const struct side *s, uint32_t stream, size_t x, size_t y,
                                                size_t z, size_t w, size_t h, size_t d)
{
    return (struct vgpu_args_memcpy_3d_htod){
        .array = s->array, .stream = stream, .x = s->x + x, .y = s->y + y, .z = s->z + z, .device = s->device,
        .pitch = s->pitch, .layout_height = s->height, .width_bytes = w, .height = h, .depth = d};
}

/* Host memory to or from a device-side operand, box by box through a staging buffer. */
static CUresult host_copy(const struct side *host, const struct side *dev, size_t w, size_t h, size_t d,
                          uint32_t stream, int to_device, int asynchronous)
{
    int err;
    struct cuda_transport *t = vgpu_shim_transport(&err);
    if (!t)
        return err;
    size_t cap = cuda_transport_chunk_size(t), slice;
    size_t bw = w, bh = h, bd = 1; /* the box each call moves */
    if (!__builtin_mul_overflow(w, h, &slice) && slice <= cap)
        bd = cap / slice;
    else if (w <= cap)
        bh = cap / w;
    else {
        bw = cap & ~(size_t)15; /* whole elements of any array: an element is at most 16 bytes */
        bh = 1;
    }
    char *buf = malloc(bw * bh * (bd < d ? bd : d));
    if (!buf)
        return CUDA_ERROR_OUT_OF_MEMORY;
    CUresult rc = CUDA_SUCCESS;
    for (size_t z = 0; z < d && !rc; z += bd)
        for (size_t y = 0; y < h && !rc; y += bh)
            for (size_t x = 0; x < w && !rc; x += bw) {
                size_t cw = w - x < bw ? w - x : bw, ch = h - y < bh ? h - y : bh, cd = d - z < bd ? d - z : bd;
                struct vgpu_args_memcpy_3d_htod a = box_args(dev, stream, x, y, z, cw, ch, cd);
                size_t len = cw * ch * cd, got = 0;
                if (to_device) {
                    for (size_t k = 0; k < cd; k++)
                        for (size_t j = 0; j < ch; j++)
                            memcpy(buf + (k * ch + j) * cw, host_row(host, x, y + j, z + k), cw);
                    rc = vgpu_cu_async(VGPU_CALL_MEMCPY_3D_HTOD, &a, sizeof a, buf, len, !asynchronous);
                    continue;
                }
                _Static_assert(sizeof a == sizeof(struct vgpu_args_memcpy_3d_dtoh), "one layout for both ways");
                rc = vgpu_shim_cu_status(vgpu_shim_call(VGPU_CALL_MEMCPY_3D_DTOH, &a, sizeof a, NULL, 0, NULL, 0,
                                                        buf, len, &got));
                if (!rc && got != len)
                    rc = CUDA_ERROR_UNKNOWN;
                for (size_t k = 0; k < cd && !rc; k++)
                    for (size_t j = 0; j < ch; j++)
                        memcpy(host_row(host, x, y + j, z + k), buf + (k * ch + j) * cw, cw);
            }
    free(buf);
    return rc;
}

static CUresult copy3d(const vgpu_memcpy3d *p, CUstream stream, int asynchronous)
{
    if (!p)
        return CUDA_ERROR_INVALID_VALUE;
    if (p->srcLOD || p->dstLOD)
        VGPU_UNSUPPORTED_USE(CUDA_ERROR_NOT_SUPPORTED, "cuMemcpy3D: mipmap levels (LOD) are not served");
    struct side src, dst;
    CUresult rc = resolve(&src, p->srcMemoryType, p->srcHost, p->srcDevice, p->srcArray, p->srcXInBytes, p->srcY,
                          p->srcZ, p->srcPitch, p->srcHeight);
    if (!rc)
        rc = resolve(&dst, p->dstMemoryType, p->dstHost, p->dstDevice, p->dstArray, p->dstXInBytes, p->dstY,
                     p->dstZ, p->dstPitch, p->dstHeight);
    uint32_t sid = 0;
    if (!rc)
        rc = vgpu_shim_stream_id(stream, &sid);
    if (rc)
        return rc;
    size_t w = p->WidthInBytes, h = p->Height, d = p->Depth;
    if (!w || !h || !d)
        return CUDA_SUCCESS;
    for (const struct side *s = &src; s; s = s == &src ? &dst : NULL)
        if (s->type == VGPU_MEMORYTYPE_HOST && (h > 1 || d > 1) &&
            (s->pitch < s->x + w || (d > 1 && s->height < s->y + h)))
            return CUDA_ERROR_INVALID_VALUE; /* the rows or slices of a host side overlap */
    if (src.type == VGPU_MEMORYTYPE_HOST && dst.type == VGPU_MEMORYTYPE_HOST) {
        rc = cuStreamSynchronize(stream);
        for (size_t z = 0; z < d && !rc; z++)
            for (size_t y = 0; y < h; y++)
                memmove(host_row(&dst, 0, y, z), host_row(&src, 0, y, z), w);
        return rc;
    }
    for (int to_device = 1; to_device >= 0; to_device--) { /* a host side: one call if pinned, else staged */
        const struct side *host = to_device ? &src : &dst, *dev = to_device ? &dst : &src;
        if (host->type != VGPU_MEMORYTYPE_HOST)
            continue;
        struct vgpu_args_memcpy_3d_htod box = box_args(dev, sid, 0, 0, 0, w, h, d);
        if (vgpu_pinned_box(host_row(host, 0, 0, 0), host->pitch, host->height, &box, to_device, asynchronous, &rc))
            return rc;
        return host_copy(host, dev, w, h, d, sid, to_device, asynchronous);
    }
    struct vgpu_args_memcpy_3d a = {
        .src_array = src.array, .dst_array = dst.array, .stream = sid,
        .src_x = src.x, .src_y = src.y, .src_z = src.z, .src_device = src.device, .src_pitch = src.pitch,
        .src_layout_height = src.height,
        .dst_x = dst.x, .dst_y = dst.y, .dst_z = dst.z, .dst_device = dst.device, .dst_pitch = dst.pitch,
        .dst_layout_height = dst.height, .width_bytes = w, .height = h, .depth = d};
    return vgpu_cu_async(VGPU_CALL_MEMCPY_3D, &a, sizeof a, NULL, 0, !asynchronous);
}

static vgpu_memcpy3d from_2d(const vgpu_memcpy2d *p)
{
    return (vgpu_memcpy3d){
        .srcXInBytes = p->srcXInBytes, .srcY = p->srcY, .srcMemoryType = p->srcMemoryType, .srcHost = p->srcHost,
        .srcDevice = p->srcDevice, .srcArray = p->srcArray, .srcPitch = p->srcPitch,
        .dstXInBytes = p->dstXInBytes, .dstY = p->dstY, .dstMemoryType = p->dstMemoryType, .dstHost = p->dstHost,
        .dstDevice = p->dstDevice, .dstArray = p->dstArray, .dstPitch = p->dstPitch,
        .WidthInBytes = p->WidthInBytes, .Height = p->Height, .Depth = 1};
}

CUresult cuMemcpy3D_v2(const vgpu_memcpy3d *p) { return copy3d(p, NULL, 0); }
CUresult cuMemcpy3DAsync_v2(const vgpu_memcpy3d *p, CUstream s) { return copy3d(p, s, 1); }

CUresult cuMemcpy2D_v2(const vgpu_memcpy2d *p)
{
    if (!p)
        return CUDA_ERROR_INVALID_VALUE;
    vgpu_memcpy3d c = from_2d(p);
    return copy3d(&c, NULL, 0);
}

CUresult cuMemcpy2DUnaligned_v2(const vgpu_memcpy2d *p) { return cuMemcpy2D_v2(p); }

CUresult cuMemcpy2DAsync_v2(const vgpu_memcpy2d *p, CUstream s)
{
    if (!p)
        return CUDA_ERROR_INVALID_VALUE;
    vgpu_memcpy3d c = from_2d(p);
    return copy3d(&c, s, 1);
}
