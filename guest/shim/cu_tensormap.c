/*
 * cuTensorMapEncodeTiled and cuTensorMapEncodeIm2col: the 128-byte CUtensorMap that TMA copies
 * (cp.async.bulk.tensor) read, encoded by the host (protocol calls tensor_map_encode_tiled/_im2col): on
 * cuda the driver's map for the VM's device pointer, on sim the simulator's own encoding, which its PTX
 * engine checks again at every copy. The
 * guest keeps the bytes (a kernel passes them as a __grid_constant__ parameter or reads them from
 * memory). Runtime programs reach it through cudaGetDriverEntryPoint{,ByVersion} (cuGetProcAddress).
 * Here only what the guest itself must get right is checked: the map's own pointer (64-byte aligned)
 * and the arrays to read; the host checks every value.
 */
#include <string.h>

#include "cu_api.h"
#include "shim.h"
#include "vgpu_protocol.h"

#define TENSOR_MAP_BYTES 128
#define TENSOR_MAP_ALIGN 64
#define TENSOR_MAP_MAX_RANK 5

/* The host's 128 bytes for the arguments `a` of `call`, into the guest's map. */
static CUresult encode(uint16_t call, const void *a, uint32_t size, void *tensor_map)
{
    unsigned char map[TENSOR_MAP_BYTES];
    size_t got = 0;
    int rc = vgpu_shim_call(call, a, size, NULL, 0, NULL, 0, map, sizeof map, &got);
    if (rc)
        return vgpu_shim_cu_status(rc);
    if (got != sizeof map)
        return CUDA_ERROR_UNKNOWN;
    memcpy(tensor_map, map, sizeof map);
    return CUDA_SUCCESS;
}

CUresult cuTensorMapEncodeTiled(void *tensor_map, int data_type, unsigned int rank, void *global_address,
                                const uint64_t *global_dim, const uint64_t *global_strides,
                                const unsigned int *box_dim, const unsigned int *element_strides, int interleave,
                                int swizzle, int l2_promotion, int oob_fill)
{
    if (!tensor_map || (uintptr_t)tensor_map % TENSOR_MAP_ALIGN || rank == 0 || rank > TENSOR_MAP_MAX_RANK ||
        !global_dim || !box_dim || !element_strides || (rank > 1 && !global_strides))
        return CUDA_ERROR_INVALID_VALUE;
    struct vgpu_args_tensor_map_encode_tiled a = {
        .global_address = (uint64_t)(uintptr_t)global_address,
        .data_type = (uint32_t)data_type,
        .rank = rank,
        .interleave = (uint32_t)interleave,
        .swizzle = (uint32_t)swizzle,
        .l2_promotion = (uint32_t)l2_promotion,
        .oob_fill = (uint32_t)oob_fill,
    };
    uint64_t *dims[] = {&a.dim0, &a.dim1, &a.dim2, &a.dim3, &a.dim4};
    uint64_t *strides[] = {&a.stride1, &a.stride2, &a.stride3, &a.stride4};
    uint32_t *box[] = {&a.box0, &a.box1, &a.box2, &a.box3, &a.box4};
    uint32_t *steps[] = {&a.elem_stride0, &a.elem_stride1, &a.elem_stride2, &a.elem_stride3, &a.elem_stride4};
    for (unsigned int i = 0; i < rank; i++) {
        *dims[i] = global_dim[i];
        *box[i] = box_dim[i];
        *steps[i] = element_strides[i];
        if (i + 1 < rank)
            *strides[i] = global_strides[i];
    }
    return encode(VGPU_CALL_TENSOR_MAP_ENCODE_TILED, &a, sizeof a, tensor_map);
}

CUresult cuTensorMapEncodeIm2col(void *tensor_map, int data_type, unsigned int rank, void *global_address,
                                 const uint64_t *global_dim, const uint64_t *global_strides, const int *lower_corner,
                                 const int *upper_corner, unsigned int channels_per_pixel,
                                 unsigned int pixels_per_column, const unsigned int *element_strides, int interleave,
                                 int swizzle, int l2_promotion, int oob_fill)
{
    if (!tensor_map || (uintptr_t)tensor_map % TENSOR_MAP_ALIGN || rank < 3 || rank > TENSOR_MAP_MAX_RANK ||
        !global_dim || !global_strides || !lower_corner || !upper_corner || !element_strides)
        return CUDA_ERROR_INVALID_VALUE;
    struct vgpu_args_tensor_map_encode_im2col a = {
        .global_address = (uint64_t)(uintptr_t)global_address,
        .data_type = (uint32_t)data_type,
        .rank = rank,
        .channels_per_pixel = channels_per_pixel,
        .pixels_per_column = pixels_per_column,
        .interleave = (uint32_t)interleave,
        .swizzle = (uint32_t)swizzle,
        .l2_promotion = (uint32_t)l2_promotion,
        .oob_fill = (uint32_t)oob_fill,
    };
    uint64_t *dims[] = {&a.dim0, &a.dim1, &a.dim2, &a.dim3, &a.dim4};
    uint64_t *strides[] = {&a.stride1, &a.stride2, &a.stride3, &a.stride4};
    uint32_t *steps[] = {&a.elem_stride0, &a.elem_stride1, &a.elem_stride2, &a.elem_stride3, &a.elem_stride4};
    int32_t *lower[] = {&a.lower0, &a.lower1, &a.lower2}, *upper[] = {&a.upper0, &a.upper1, &a.upper2};
    for (unsigned int i = 0; i < rank; i++) {
        *dims[i] = global_dim[i];
        *steps[i] = element_strides[i];
        if (i + 1 < rank)
            *strides[i] = global_strides[i];
        if (i + 2 < rank) { /* the corners of the spatial dimensions (1 .. rank - 2), W first */
            *lower[i] = lower_corner[i];
            *upper[i] = upper_corner[i];
        }
    }
    return encode(VGPU_CALL_TENSOR_MAP_ENCODE_IM2COL, &a, sizeof a, tensor_map);
}
