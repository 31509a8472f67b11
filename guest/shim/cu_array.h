/*
 * CUDA arrays, texture and surface objects (protocol calls 0x00B0-0x00B8): the driver API's structs as
 * CUDA 13's cuda.h lays them out, the array record behind a CUarray, and the prototypes libcudart's
 * rt_texture.c calls (the definitions are in cu_array.c and cu_texture.c).
 */
#ifndef VGPU_CU_ARRAY_H
#define VGPU_CU_ARRAY_H

#include "cu_api.h"

typedef unsigned long long CUtexObject;
typedef unsigned long long CUsurfObject;

/* CUDA_ARRAY3D_DESCRIPTOR_v2 and CUDA_ARRAY_DESCRIPTOR_v2 */
typedef struct {
    size_t Width, Height, Depth;
    int Format;
    unsigned int NumChannels, Flags;
} vgpu_array3d_desc;
typedef struct {
    size_t Width, Height;
    int Format;
    unsigned int NumChannels;
} vgpu_array_desc;
_Static_assert(sizeof(vgpu_array3d_desc) == 40 && sizeof(vgpu_array_desc) == 24, "CUDA_ARRAY*_DESCRIPTOR");

/* CUDA_MEMCPY2D_v2 */
typedef struct {
    size_t srcXInBytes, srcY;
    int srcMemoryType;
    const void *srcHost;
    CUdeviceptr srcDevice;
    void *srcArray;
    size_t srcPitch;
    size_t dstXInBytes, dstY;
    int dstMemoryType;
    void *dstHost;
    CUdeviceptr dstDevice;
    void *dstArray;
    size_t dstPitch;
    size_t WidthInBytes, Height;
} vgpu_memcpy2d;
_Static_assert(sizeof(vgpu_memcpy2d) == 128, "CUDA_MEMCPY2D");

/* CUDA_RESOURCE_DESC_v1 (resType: 0 array, 1 mipmapped array, 2 linear, 3 pitch 2D) */
typedef struct {
    int resType;
    union {
        struct { void *hArray; } array;
        struct { void *hMipmappedArray; } mipmap;
        struct { CUdeviceptr devPtr; int format; unsigned int numChannels; size_t sizeInBytes; } linear;
        struct {
            CUdeviceptr devPtr;
            int format;
            unsigned int numChannels;
            size_t width, height, pitchInBytes;
        } pitch2D;
        struct { int reserved[32]; } reserved;
    } res;
    unsigned int flags;
} vgpu_resource_desc;
_Static_assert(sizeof(vgpu_resource_desc) == 144, "CUDA_RESOURCE_DESC");

/* CUDA_TEXTURE_DESC_v1 */
typedef struct {
    int addressMode[3];
    int filterMode;
    unsigned int flags;
    unsigned int maxAnisotropy;
    int mipmapFilterMode;
    float mipmapLevelBias, minMipmapLevelClamp, maxMipmapLevelClamp;
    float borderColor[4];
    int reserved[12];
} vgpu_texture_desc;
_Static_assert(sizeof(vgpu_texture_desc) == 104, "CUDA_TEXTURE_DESC");

enum { VGPU_MAGIC_ARRAY = 0x72726156u }; /* "Varr" */
enum { VGPU_MEMORYTYPE_HOST = 1, VGPU_MEMORYTYPE_DEVICE = 2, VGPU_MEMORYTYPE_ARRAY = 3, VGPU_MEMORYTYPE_UNIFIED = 4 };

/* A CUarray (= cudaArray_t): the host's handle and the descriptor it was made with. */
struct CUarray_st {
    uint32_t magic, id;
    vgpu_array3d_desc desc;
};
typedef struct CUarray_st *CUarray;

/* Bytes of one element of a CUarray_format with `channels` channels (0: not a format arrays hold). */
static inline size_t vgpu_texel_bytes(int format, unsigned int channels)
{
    switch (format) {
    case 0x01: case 0x08: return channels;         /* 8-bit integers */
    case 0x02: case 0x09: case 0x10: return 2u * channels; /* 16-bit integers, half */
    case 0x03: case 0x0a: case 0x20: return 4u * channels; /* 32-bit integers, float */
    default: return 0;
    }
}

CUresult cuArrayCreate_v2(CUarray *array, const vgpu_array_desc *desc);
CUresult cuArray3DCreate_v2(CUarray *array, const vgpu_array3d_desc *desc);
CUresult cuArrayDestroy(CUarray array);
CUresult cuArrayGetDescriptor_v2(vgpu_array_desc *desc, CUarray array);
CUresult cuArray3DGetDescriptor_v2(vgpu_array3d_desc *desc, CUarray array);
CUresult cuMemAllocPitch_v2(CUdeviceptr *dptr, size_t *pitch, size_t width, size_t height, unsigned int element);
CUresult cuMemcpy2D_v2(const vgpu_memcpy2d *p);
CUresult cuMemcpy2DUnaligned_v2(const vgpu_memcpy2d *p);
CUresult cuMemcpy2DAsync_v2(const vgpu_memcpy2d *p, CUstream s);
CUresult cuMemcpy3D_v2(const vgpu_memcpy3d *p);
CUresult cuMemcpy3DAsync_v2(const vgpu_memcpy3d *p, CUstream s);
CUresult cuTexObjectCreate(CUtexObject *tex, const vgpu_resource_desc *res, const vgpu_texture_desc *desc,
                           const void *view);
CUresult cuTexObjectDestroy(CUtexObject tex);
CUresult cuTexObjectGetResourceDesc(vgpu_resource_desc *res, CUtexObject tex);
CUresult cuTexObjectGetTextureDesc(vgpu_texture_desc *desc, CUtexObject tex);
CUresult cuSurfObjectCreate(CUsurfObject *surf, const vgpu_resource_desc *res);
CUresult cuSurfObjectDestroy(CUsurfObject surf);
CUresult cuSurfObjectGetResourceDesc(vgpu_resource_desc *res, CUsurfObject surf);

#endif /* VGPU_CU_ARRAY_H */
