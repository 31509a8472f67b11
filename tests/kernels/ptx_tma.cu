// TMA (tests/ptx/test_tma.py): boxes of a tensor moved by cp.async.bulk.tensor with a CUtensorMap, as
// libcu++'s cuda::device::experimental API emits it for compute_90 (what CUTLASS's sm_90 kernels use):
// loads of 1 to 5 dimensions into shared memory completing an mbarrier's transaction count, the map a
// __grid_constant__ parameter or in global memory, stores back from shared memory with a bulk group,
// and the prefetches (inline PTX). Each kernel copies the shared bytes out raw, so the test sees the
// layout (and the swizzle) exactly.
#include <cuda.h>
#include <cuda/barrier>

using barrier = cuda::barrier<cuda::thread_scope_block>;
namespace cde = cuda::device::experimental;

constexpr int TILE_BYTES = 16384;

// the box into shared memory (thread 0 issues the copy, every thread waits), then shared -> out
template <typename Issue>
__device__ void load_and_dump(Issue issue, unsigned* out, int bytes) {
    __shared__ alignas(1024) unsigned char tile[TILE_BYTES];
#pragma nv_diag_suppress static_var_with_dynamic_init
    __shared__ barrier bar;
    if (threadIdx.x == 0) {
        init(&bar, blockDim.x);
        cde::fence_proxy_async_shared_cta();
    }
    __syncthreads();
    barrier::arrival_token token;
    if (threadIdx.x == 0) {
        issue(tile, bar);
        token = cuda::device::barrier_arrive_tx(bar, 1, bytes);
    } else {
        token = bar.arrive();
    }
    bar.wait(std::move(token));
    for (int i = threadIdx.x; i < bytes / 4; i += blockDim.x) out[i] = reinterpret_cast<unsigned*>(tile)[i];
}

extern "C" __global__ void tma_load_1d(const __grid_constant__ CUtensorMap map, unsigned* out, int bytes, int c0) {
    load_and_dump([&](void* t, barrier& b) { cde::cp_async_bulk_tensor_1d_global_to_shared(t, &map, c0, b); },
                  out, bytes);
}

extern "C" __global__ void tma_load_2d(const __grid_constant__ CUtensorMap map, unsigned* out, int bytes, int c0,
                                       int c1) {
    load_and_dump([&](void* t, barrier& b) { cde::cp_async_bulk_tensor_2d_global_to_shared(t, &map, c0, c1, b); },
                  out, bytes);
}

extern "C" __global__ void tma_load_3d(const __grid_constant__ CUtensorMap map, unsigned* out, int bytes, int c0,
                                       int c1, int c2) {
    load_and_dump(
        [&](void* t, barrier& b) { cde::cp_async_bulk_tensor_3d_global_to_shared(t, &map, c0, c1, c2, b); }, out,
        bytes);
}

extern "C" __global__ void tma_load_5d(const __grid_constant__ CUtensorMap map, unsigned* out, int bytes, int c0,
                                       int c1, int c2, int c3, int c4) {
    load_and_dump(
        [&](void* t, barrier& b) {
            cde::cp_async_bulk_tensor_5d_global_to_shared(t, &map, c0, c1, c2, c3, c4, b);
        },
        out, bytes);
}

// the map in global memory (a pointer), as a kernel that takes it by reference does
extern "C" __global__ void tma_load_2d_global(const CUtensorMap* map, unsigned* out, int bytes, int c0, int c1) {
    load_and_dump([&](void* t, barrier& b) { cde::cp_async_bulk_tensor_2d_global_to_shared(t, map, c0, c1, b); },
                  out, bytes);
}

// in -> shared memory -> the box at (c0, c1) of the tensor (elements outside it are not written)
extern "C" __global__ void tma_store_2d(const __grid_constant__ CUtensorMap map, const unsigned* in, int bytes,
                                        int c0, int c1) {
    __shared__ alignas(1024) unsigned char tile[TILE_BYTES];
    for (int i = threadIdx.x; i < bytes / 4; i += blockDim.x) reinterpret_cast<unsigned*>(tile)[i] = in[i];
    cde::fence_proxy_async_shared_cta();
    __syncthreads();
    if (threadIdx.x == 0) {
        cde::cp_async_bulk_tensor_2d_shared_to_global(&map, c0, c1, tile);
        cde::cp_async_bulk_commit_group();
        cde::cp_async_bulk_wait_group_read<0>();
    }
}

// the prefetches (hints), then a 2d load
extern "C" __global__ void tma_prefetch_2d(const __grid_constant__ CUtensorMap map, unsigned* out, int bytes, int c0,
                                           int c1) {
    if (threadIdx.x == 0) {
        asm volatile("prefetch.tensormap [%0];" ::"l"(&map) : "memory");
        asm volatile("cp.async.bulk.prefetch.tensor.2d.L2.global.tile [%0, {%1, %2}];" ::"l"(&map), "r"(c0), "r"(c1)
                     : "memory");
    }
    load_and_dump([&](void* t, barrier& b) { cde::cp_async_bulk_tensor_2d_global_to_shared(t, &map, c0, c1, b); },
                  out, bytes);
}

// in -> shared memory -> combined into the box of the tensor (cp.reduce.async.bulk.tensor, inline PTX as
// CUTLASS's SM90_TMA_REDUCE_ADD writes it): add, max, xor, inc
#define TMA_REDUCE(OP)                                                                                       \
    extern "C" __global__ void tma_reduce_##OP##_2d(const __grid_constant__ CUtensorMap map, const unsigned* in, \
                                                    int bytes, int c0, int c1) {                             \
        __shared__ alignas(1024) unsigned char tile[TILE_BYTES];                                             \
        for (int i = threadIdx.x; i < bytes / 4; i += blockDim.x) reinterpret_cast<unsigned*>(tile)[i] = in[i]; \
        cde::fence_proxy_async_shared_cta();                                                                 \
        __syncthreads();                                                                                     \
        if (threadIdx.x == 0) {                                                                              \
            asm volatile("cp.reduce.async.bulk.tensor.2d.global.shared::cta." #OP ".tile.bulk_group"        \
                         " [%0, {%1, %2}], [%3];" ::"l"(&map),                                               \
                         "r"(c0), "r"(c1), "r"(static_cast<unsigned>(__cvta_generic_to_shared(tile)))        \
                         : "memory");                                                                        \
            cde::cp_async_bulk_commit_group();                                                               \
            cde::cp_async_bulk_wait_group_read<0>();                                                         \
        }                                                                                                    \
    }
TMA_REDUCE(add)
TMA_REDUCE(max)
TMA_REDUCE(xor)
TMA_REDUCE(inc)

// the map inside a larger __grid_constant__ parameter struct, as CUTLASS's kernel Params hold their
// TMA descriptors (its address: the parameter's plus an offset)
struct Params {
    int rows, cols;
    unsigned* out;
    CUtensorMap map;
    int bytes, c0, c1;
};

extern "C" __global__ void tma_load_2d_params(const __grid_constant__ Params p) {
    load_and_dump([&](void* t, barrier& b) { cde::cp_async_bulk_tensor_2d_global_to_shared(t, &p.map, p.c0, p.c1, b); },
                  p.out, p.bytes);
}

// CUTLASS's own spellings (cute/arch/copy_sm90_tma.hpp): no .tile (the default load mode), an L2 cache
// hint on the load, the prefetch and the store without .tile
extern "C" __global__ void tma_cutlass_2d(const __grid_constant__ CUtensorMap map, unsigned* out, int bytes, int c0,
                                          int c1) {
    uint64_t const* desc = reinterpret_cast<uint64_t const*>(&map);
    if (threadIdx.x == 0)
        asm volatile("cp.async.bulk.prefetch.tensor.2d.L2.global [%0, {%1, %2}];" ::"l"(desc), "r"(c0), "r"(c1)
                     : "memory");
    load_and_dump(
        [&](void* t, barrier& b) {
            uint32_t smem = static_cast<uint32_t>(__cvta_generic_to_shared(t));
            uint32_t mbar = static_cast<uint32_t>(__cvta_generic_to_shared(cuda::device::barrier_native_handle(b)));
            uint64_t hint = 0x12F0000000000000ull;  // CUTLASS's EVICT_NORMAL
            asm volatile(
                "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes.L2::cache_hint"
                " [%0], [%1, {%3, %4}], [%2], %5;" ::"r"(smem),
                "l"(desc), "r"(mbar), "r"(c0), "r"(c1), "l"(hint)
                : "memory");
        },
        out, bytes);
}

extern "C" __global__ void tma_cutlass_store_2d(const __grid_constant__ CUtensorMap map, const unsigned* in, int bytes,
                                                int c0, int c1) {
    __shared__ alignas(1024) unsigned char tile[TILE_BYTES];
    for (int i = threadIdx.x; i < bytes / 4; i += blockDim.x) reinterpret_cast<unsigned*>(tile)[i] = in[i];
    cde::fence_proxy_async_shared_cta();
    __syncthreads();
    if (threadIdx.x == 0) {
        uint32_t smem = static_cast<uint32_t>(__cvta_generic_to_shared(tile));
        asm volatile("cp.async.bulk.tensor.2d.global.shared::cta.bulk_group [%0, {%2, %3}], [%1];" ::"l"(&map),
                     "r"(smem), "r"(c0), "r"(c1)
                     : "memory");
        asm volatile("cp.async.bulk.commit_group;");
        asm volatile("cp.async.bulk.wait_group.read %0;" ::"n"(0) : "memory");
    }
}

// a multicast load (SM90_TMA_LOAD_MULTICAST's spelling): clusters of two blocks, rank 0 of each loads the
// box into both blocks' tiles, each block's barrier completing with the bytes; every block copies its
// tile out to its own slot of `out`
extern "C" __global__ void __cluster_dims__(2, 1, 1)
    tma_multicast_2d(const __grid_constant__ CUtensorMap map, unsigned* out, int bytes, int c0, int c1) {
    __shared__ alignas(1024) unsigned char tile[TILE_BYTES];
    __shared__ alignas(8) uint64_t bar;
    uint32_t rank;
    asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(rank));
    uint32_t smem = static_cast<uint32_t>(__cvta_generic_to_shared(tile));
    uint32_t mbar = static_cast<uint32_t>(__cvta_generic_to_shared(&bar));
    if (threadIdx.x == 0) {
        asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(mbar), "r"(1));
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    }
    asm volatile("barrier.cluster.arrive.release.aligned;\n\tbarrier.cluster.wait.acquire.aligned;" ::: "memory");
    if (threadIdx.x == 0) {
        asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(mbar), "r"(bytes) : "memory");
        if (rank == 0) {
            uint16_t mask = 0x3;
            asm volatile(
                "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes.multicast::cluster"
                " [%0], [%1, {%3, %4}], [%2], %5;" ::"r"(smem),
                "l"(&map), "r"(mbar), "r"(c0), "r"(c1), "h"(mask)
                : "memory");
        }
    }
    uint32_t done = 0;
    while (!done)
        asm volatile("{\n\t.reg .pred p;\n\tmbarrier.try_wait.parity.shared::cta.b64 p, [%1], 0;\n\t"
                     "selp.u32 %0, 1, 0, p;\n\t}"
                     : "=r"(done)
                     : "r"(mbar)
                     : "memory");
    for (int i = threadIdx.x; i < bytes / 4; i += blockDim.x)
        out[blockIdx.x * (bytes / 4) + i] = reinterpret_cast<unsigned*>(tile)[i];
    asm volatile("barrier.cluster.arrive.release.aligned;\n\tbarrier.cluster.wait.acquire.aligned;" ::: "memory");
}
