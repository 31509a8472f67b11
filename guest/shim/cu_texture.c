/*
 * Texture and surface objects (cuTexObjectCreate, cuSurfObjectCreate, …) on protocol calls 0x00B5-0x00B8.
 * A CUtexObject / CUsurfObject is the host's handle itself: kernels receive it as a parameter and the
 * host resolves it when they sample. The guest keeps the descriptions each was made with, for
 * cuTexObjectGetResourceDesc and friends. Resource views and mipmapped arrays are not served.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cu_array.h"
#include "shim.h"
#include "vgpu_protocol.h"

/* -- what each live object was made with ------------------------------------------------------- */

struct object { CUtexObject handle; int surface; vgpu_resource_desc res; vgpu_texture_desc tex; };
static struct object *objects;
static size_t nobjects, objects_cap;
static pthread_mutex_t objects_lock = PTHREAD_MUTEX_INITIALIZER;

static void remember(CUtexObject handle, int surface, const vgpu_resource_desc *res, const vgpu_texture_desc *tex)
{
    pthread_mutex_lock(&objects_lock);
    if (nobjects == objects_cap) {
        size_t cap = objects_cap ? objects_cap * 2 : 16;
        struct object *grown = realloc(objects, cap * sizeof *grown);
        if (!grown) {
            pthread_mutex_unlock(&objects_lock);
            vgpu_shim_log("out of memory keeping texture object %llu's description: Get*Desc will not find it",
                          handle);
            return;
        }
        objects = grown;
        objects_cap = cap;
    }
    struct object *o = &objects[nobjects++];
    memset(o, 0, sizeof *o);
    *o = (struct object){.handle = handle, .surface = surface, .res = *res};
    if (tex)
        o->tex = *tex;
    pthread_mutex_unlock(&objects_lock);
}

/* Copy out (and with `forget`, drop) the record of a live object of the kind; 0 when there is none. */
static int recall(CUtexObject handle, int surface, struct object *out, int forget)
{
    int found = 0;
    pthread_mutex_lock(&objects_lock);
    for (size_t i = 0; i < nobjects; i++)
        if (objects[i].handle == handle && objects[i].surface == surface) {
            if (out)
                *out = objects[i];
            if (forget)
                objects[i] = objects[--nobjects];
            found = 1;
            break;
        }
    pthread_mutex_unlock(&objects_lock);
    return found;
}

/* -- creation ---------------------------------------------------------------------------------- */

static CUresult resource_args(const vgpu_resource_desc *res, struct vgpu_args_tex_object_create *a)
{
    if (res->flags)
        return CUDA_ERROR_INVALID_VALUE; /* must be zero */
    a->resource = (uint32_t)res->resType;
    switch (res->resType) {
    case 0: {
        CUarray array = res->res.array.hArray;
        if (!VGPU_CHECK_HANDLE(array, VGPU_MAGIC_ARRAY))
            return CUDA_ERROR_INVALID_HANDLE;
        a->array = array->id;
        return CUDA_SUCCESS;
    }
    case 1:
        VGPU_UNSUPPORTED_USE(CUDA_ERROR_NOT_SUPPORTED, "cuTexObjectCreate: mipmapped arrays are not served");
    case 2:
        a->device = res->res.linear.devPtr;
        a->format = (uint32_t)res->res.linear.format;
        a->channels = res->res.linear.numChannels;
        a->size_bytes = res->res.linear.sizeInBytes;
        return CUDA_SUCCESS;
    case 3:
        a->device = res->res.pitch2D.devPtr;
        a->format = (uint32_t)res->res.pitch2D.format;
        a->channels = res->res.pitch2D.numChannels;
        a->width = res->res.pitch2D.width;
        a->height = res->res.pitch2D.height;
        a->pitch = res->res.pitch2D.pitchInBytes;
        return CUDA_SUCCESS;
    default:
        return CUDA_ERROR_INVALID_VALUE;
    }
}

CUresult cuTexObjectCreate(CUtexObject *tex, const vgpu_resource_desc *res, const vgpu_texture_desc *desc,
                           const void *view)
{
    if (!tex || !res || !desc)
        return CUDA_ERROR_INVALID_VALUE;
    if (view)
        VGPU_UNSUPPORTED_USE(CUDA_ERROR_NOT_SUPPORTED, "cuTexObjectCreate: resource views are not served");
    struct vgpu_args_tex_object_create a = {0};
    CUresult rc = resource_args(res, &a);
    if (rc)
        return rc;
    for (int i = 0; i < 3; i++)
        if (desc->addressMode[i] < 0)
            return CUDA_ERROR_INVALID_VALUE;
    if (desc->filterMode < 0)
        return CUDA_ERROR_INVALID_VALUE;
    a.address_x = (uint32_t)desc->addressMode[0];
    a.address_y = (uint32_t)desc->addressMode[1];
    a.address_z = (uint32_t)desc->addressMode[2];
    a.filter = (uint32_t)desc->filterMode;
    a.flags = desc->flags;
    a.border_r = desc->borderColor[0];
    a.border_g = desc->borderColor[1];
    a.border_b = desc->borderColor[2];
    a.border_a = desc->borderColor[3];
    struct vgpu_result_tex_object_create r = {0};
    rc = vgpu_cu_call(VGPU_CALL_TEX_OBJECT_CREATE, &a, sizeof a, &r, sizeof r);
    if (rc)
        return rc;
    *tex = r.texture;
    remember(*tex, 0, res, desc);
    return CUDA_SUCCESS;
}

CUresult cuSurfObjectCreate(CUsurfObject *surf, const vgpu_resource_desc *res)
{
    if (!surf || !res || res->resType != 0 || res->flags)
        return CUDA_ERROR_INVALID_VALUE; /* a surface is always of an array */
    CUarray array = res->res.array.hArray;
    if (!VGPU_CHECK_HANDLE(array, VGPU_MAGIC_ARRAY))
        return CUDA_ERROR_INVALID_HANDLE;
    struct vgpu_args_surf_object_create a = {.array = array->id};
    struct vgpu_result_surf_object_create r = {0};
    CUresult rc = vgpu_cu_call(VGPU_CALL_SURF_OBJECT_CREATE, &a, sizeof a, &r, sizeof r);
    if (rc)
        return rc;
    *surf = r.surface;
    remember(*surf, 1, res, NULL);
    return CUDA_SUCCESS;
}

/* -- destruction and queries ------------------------------------------------------------------- */

static CUresult destroy(uint16_t call_id, unsigned long long handle, int surface)
{
    if (!handle || handle > UINT32_MAX)
        return CUDA_ERROR_INVALID_VALUE;
    struct { uint32_t id; uint8_t pad[4]; } a = {(uint32_t)handle, {0}};
    _Static_assert(sizeof a == sizeof(struct vgpu_args_tex_object_destroy) &&
                       sizeof a == sizeof(struct vgpu_args_surf_object_destroy), "one u32 handle");
    CUresult rc = vgpu_cu_call(call_id, &a, sizeof a, NULL, 0);
    if (!rc)
        recall(handle, surface, NULL, 1);
    return rc;
}

CUresult cuTexObjectDestroy(CUtexObject tex) { return destroy(VGPU_CALL_TEX_OBJECT_DESTROY, tex, 0); }
CUresult cuSurfObjectDestroy(CUsurfObject surf) { return destroy(VGPU_CALL_SURF_OBJECT_DESTROY, surf, 1); }

CUresult cuTexObjectGetResourceDesc(vgpu_resource_desc *res, CUtexObject tex)
{
    struct object o;
    if (!res || !recall(tex, 0, &o, 0))
        return CUDA_ERROR_INVALID_VALUE;
    *res = o.res;
    return CUDA_SUCCESS;
}

CUresult cuTexObjectGetTextureDesc(vgpu_texture_desc *desc, CUtexObject tex)
{
    struct object o;
    if (!desc || !recall(tex, 0, &o, 0))
        return CUDA_ERROR_INVALID_VALUE;
    *desc = o.tex;
    return CUDA_SUCCESS;
}

CUresult cuSurfObjectGetResourceDesc(vgpu_resource_desc *res, CUsurfObject surf)
{
    struct object o;
    if (!res || !recall(surf, 1, &o, 0))
        return CUDA_ERROR_INVALID_VALUE;
    *res = o.res;
    return CUDA_SUCCESS;
}
