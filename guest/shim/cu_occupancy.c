/*
 * cuOccupancyMaxPotentialBlockSize{,WithFlags}: the block size with the most resident threads per
 * multiprocessor, computed as CUDA computes it (the runtime's header template
 * cudaOccupancyMaxPotentialBlockSizeVariableSMemWithFlags is the published algorithm): from the
 * largest block the device and the function allow down by warps, each size's resident blocks asked
 * of the host (cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags: registers, shared memory and
 * the device's limits counted there), stopping at full occupancy. The dynamic shared memory per
 * block size comes from the application's callback, a guest function: it is called here, in the
 * guest, never on the host. The runtime's cudaOccupancyMaxPotentialBlockSize* are that template in
 * cuda_runtime.h, compiled into the application, over the calls libcudart already serves.
 */
#include "cu_api.h"
#include "shim.h"

#define ATTR_MAX_THREADS_PER_BLOCK 1           /* CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK */
#define ATTR_WARP_SIZE 10                      /* CU_DEVICE_ATTRIBUTE_WARP_SIZE */
#define ATTR_MULTIPROCESSOR_COUNT 16           /* CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT */
#define ATTR_MAX_THREADS_PER_MULTIPROCESSOR 39 /* CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR */
#define FUNC_MAX_THREADS_PER_BLOCK 0           /* CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK */
#define OCCUPANCY_FLAGS_ALL 1                  /* CU_OCCUPANCY_DEFAULT 0, ..._DISABLE_CACHING_OVERRIDE 1 */

typedef size_t (*block_to_smem)(int block_size); /* CUoccupancyB2DSize */

CUresult cuOccupancyMaxPotentialBlockSizeWithFlags(int *min_grid, int *block_size, CUfunction f,
                                                   block_to_smem smem_of, size_t dynamic_smem, int limit,
                                                   unsigned int flags)
{
    if (!min_grid || !block_size || limit < 0 || (flags & ~(unsigned int)OCCUPANCY_FLAGS_ALL))
        return CUDA_ERROR_INVALID_VALUE;
    if (!VGPU_CHECK_HANDLE(f, VGPU_MAGIC_FUNC))
        return CUDA_ERROR_INVALID_HANDLE;
    CUdevice dev;
    int sm_threads, warp, sms, dev_block, func_block;
    CUresult rc = cuCtxGetDevice(&dev);
    if (!rc)
        rc = cuDeviceGetAttribute(&sm_threads, ATTR_MAX_THREADS_PER_MULTIPROCESSOR, dev);
    if (!rc)
        rc = cuDeviceGetAttribute(&warp, ATTR_WARP_SIZE, dev);
    if (!rc)
        rc = cuDeviceGetAttribute(&sms, ATTR_MULTIPROCESSOR_COUNT, dev);
    if (!rc)
        rc = cuDeviceGetAttribute(&dev_block, ATTR_MAX_THREADS_PER_BLOCK, dev);
    if (!rc)
        rc = cuFuncGetAttribute(&func_block, FUNC_MAX_THREADS_PER_BLOCK, f);
    if (rc)
        return rc;
    if (warp <= 0 || dev_block <= 0 || func_block <= 0)
        return CUDA_ERROR_INVALID_VALUE;
    if (limit == 0 || limit > dev_block)
        limit = dev_block;
    if (limit > func_block)
        limit = func_block;
    int best_size = 0, best_blocks = 0, best_threads = 0;
    int aligned = (limit + warp - 1) / warp * warp;
    for (int size_aligned = aligned; size_aligned > 0; size_aligned -= warp) {
        int size = limit < size_aligned ? limit : size_aligned;
        size_t smem = smem_of ? smem_of(size) : dynamic_smem;
        int blocks = 0;
        rc = cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags(&blocks, f, size, smem, flags);
        if (rc)
            return rc;
        if (blocks * size > best_threads) {
            best_size = size;
            best_blocks = blocks;
            best_threads = blocks * size;
        }
        if (best_threads == sm_threads)
            break;
    }
    *min_grid = best_blocks * sms;
    *block_size = best_size;
    return CUDA_SUCCESS;
}

CUresult cuOccupancyMaxPotentialBlockSize(int *min_grid, int *block_size, CUfunction f, block_to_smem smem_of,
                                          size_t dynamic_smem, int limit)
{
    return cuOccupancyMaxPotentialBlockSizeWithFlags(min_grid, block_size, f, smem_of, dynamic_smem, limit, 0);
}
