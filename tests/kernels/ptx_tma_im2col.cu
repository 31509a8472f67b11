// TMA im2col mode (tests/ptx/test_tma_im2col.py): cp.async.bulk.tensor's .im2col loads of 3, 4 and 5
// dimensions (NWC, NHWC, NDHWC) with a map of cuTensorMapEncodeIm2col, in CUTLASS's spellings
// (cute/arch/copy_sm90_tma.hpp: SM90_TMA_LOAD_IM2COL_{3,4,5}D, the multicast form, the im2col
// prefetch): each loads pixelsPerColumn pixels of channelsPerPixel channels into shared memory,
// completing an mbarrier's transaction count, and copies the shared bytes out raw.
#include <cuda.h>
#include <cstdint>

constexpr int TILE_BYTES = 16384;

__device__ void wait_parity(uint32_t mbar) {
    uint32_t done = 0;
    while (!done)
        asm volatile("{\n\t.reg .pred p;\n\tmbarrier.try_wait.parity.shared::cta.b64 p, [%1], 0;\n\t"
                     "selp.u32 %0, 1, 0, p;\n\t}"
                     : "=r"(done)
                     : "r"(mbar)
                     : "memory");
}

// thread 0 sets up the barrier and issues `issue(smem, mbar)`; every thread waits, then shared -> out
template <typename Issue>
__device__ void load_and_dump(Issue issue, unsigned* out, int bytes) {
    __shared__ alignas(1024) unsigned char tile[TILE_BYTES];
    __shared__ alignas(8) uint64_t bar;
    uint32_t smem = static_cast<uint32_t>(__cvta_generic_to_shared(tile));
    uint32_t mbar = static_cast<uint32_t>(__cvta_generic_to_shared(&bar));
    if (threadIdx.x == 0) {
        asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(mbar), "r"(1));
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(mbar), "r"(bytes) : "memory");
        issue(smem, mbar);
    }
    wait_parity(mbar);
    for (int i = threadIdx.x; i < bytes / 4; i += blockDim.x) out[i] = reinterpret_cast<unsigned*>(tile)[i];
}

extern "C" __global__ void im2col_load_3d(const __grid_constant__ CUtensorMap map, unsigned* out, int bytes, int c,
                                          int w, int n, int ow) {
    load_and_dump(
        [&](uint32_t smem, uint32_t mbar) {
            asm volatile(
                "cp.async.bulk.tensor.3d.shared::cluster.global.im2col.mbarrier::complete_tx::bytes"
                " [%0], [%1, {%3, %4, %5}], [%2], {%6};" ::"r"(smem),
                "l"(&map), "r"(mbar), "r"(c), "r"(w), "r"(n), "h"(static_cast<uint16_t>(ow))
                : "memory");
        },
        out, bytes);
}

extern "C" __global__ void im2col_load_4d(const __grid_constant__ CUtensorMap map, unsigned* out, int bytes, int c,
                                          int w, int h, int n, int ow, int oh) {
    load_and_dump(
        [&](uint32_t smem, uint32_t mbar) {
            asm volatile(
                "cp.async.bulk.tensor.4d.shared::cluster.global.im2col.mbarrier::complete_tx::bytes"
                " [%0], [%1, {%3, %4, %5, %6}], [%2], {%7, %8};" ::"r"(smem),
                "l"(&map), "r"(mbar), "r"(c), "r"(w), "r"(h), "r"(n), "h"(static_cast<uint16_t>(ow)),
                "h"(static_cast<uint16_t>(oh))
                : "memory");
        },
        out, bytes);
}

// with a prefetch of the same pixels first and an L2 cache hint on the load
extern "C" __global__ void im2col_load_5d(const __grid_constant__ CUtensorMap map, unsigned* out, int bytes, int c,
                                          int w, int h, int d, int n, int ow, int oh, int od) {
    if (threadIdx.x == 0)
        asm volatile("cp.async.bulk.prefetch.tensor.5d.L2.global.im2col [%0, {%1, %2, %3, %4, %5}], {%6, %7, %8};" ::"l"(
                         &map),
                     "r"(c), "r"(w), "r"(h), "r"(d), "r"(n), "h"(static_cast<uint16_t>(ow)),
                     "h"(static_cast<uint16_t>(oh)), "h"(static_cast<uint16_t>(od))
                     : "memory");
    load_and_dump(
        [&](uint32_t smem, uint32_t mbar) {
            uint64_t hint = 0x12F0000000000000ull;  // CUTLASS's EVICT_NORMAL
            asm volatile(
                "cp.async.bulk.tensor.5d.shared::cluster.global.im2col.mbarrier::complete_tx::bytes.L2::cache_hint"
                " [%0], [%1, {%3, %4, %5, %6, %7}], [%2], {%8, %9, %10}, %11;" ::"r"(smem),
                "l"(&map), "r"(mbar), "r"(c), "r"(w), "r"(h), "r"(d), "r"(n), "h"(static_cast<uint16_t>(ow)),
                "h"(static_cast<uint16_t>(oh)), "h"(static_cast<uint16_t>(od)), "l"(hint)
                : "memory");
        },
        out, bytes);
}

// SM90_TMA_LOAD_IM2COL_MULTICAST_4D: clusters of two blocks, rank 0 loads the pixels into both blocks'
// tiles, each block's barrier completing; every block copies its tile to its own slot of `out`
extern "C" __global__ void __cluster_dims__(2, 1, 1)
    im2col_multicast_4d(const __grid_constant__ CUtensorMap map, unsigned* out, int bytes, int c, int w, int h, int n,
                        int ow, int oh) {
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
                "cp.async.bulk.tensor.4d.shared::cluster.global.im2col.mbarrier::complete_tx::bytes.multicast::cluster"
                " [%0], [%1, {%3, %4, %5, %6}], [%2], {%7, %8}, %9;" ::"r"(smem),
                "l"(&map), "r"(mbar), "r"(c), "r"(w), "r"(h), "r"(n), "h"(static_cast<uint16_t>(ow)),
                "h"(static_cast<uint16_t>(oh)), "h"(mask)
                : "memory");
        }
    }
    wait_parity(mbar);
    for (int i = threadIdx.x; i < bytes / 4; i += blockDim.x)
        out[blockIdx.x * (bytes / 4) + i] = reinterpret_cast<unsigned*>(tile)[i];
    asm volatile("barrier.cluster.arrive.release.aligned;\n\tbarrier.cluster.wait.acquire.aligned;" ::: "memory");
}
