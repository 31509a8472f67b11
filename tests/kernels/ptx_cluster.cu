// The PTX engine's corpus of what compute_90 added for cooperation between warps and blocks, and what
// cooperative_groups builds on it: multi-warp tiles (their barriers and exchange slots live in the
// block's reserved shared memory from compute_80 on), invoke_one (elect.sync on compute_90), an
// mbarrier handed from a producer warp to a consumer warp that spins on it, named barriers with a
// thread count (bar.sync / bar.arrive, warp specialization), and thread-block clusters
// (__cluster_dims__, cooperative_groups::this_cluster(), barrier.cluster, distributed shared memory).
// Built by build.sh for compute_75, compute_80 and compute_90; the cluster kernels exist only in the
// compute_90 build. tests/ptx/test_clusters.py holds the exact references.
#include <cooperative_groups.h>
#include <cooperative_groups/reduce.h>
#include <cuda/barrier>
#include <cuda/ptx>
#include <utility>

#pragma nv_diag_suppress static_var_with_dynamic_init  // a cuda::barrier in __shared__, initialized by init()

namespace cg = cooperative_groups;

// Tiles of 64 and 128 threads of a 256-thread block: a sum and a maximum over each tile, a broadcast
// from one rank of it, and the tile's own numbering. compute_75 keeps the tiles' scratch in the
// block_tile_memory below; compute_80 and compute_90 in the reserved shared memory.
extern "C" __global__ void multi_warp_tiles(const int *in, int *out) {
    __shared__ cg::block_tile_memory<256> scratch;
    cg::thread_block block = cg::this_thread_block(scratch);
    cg::thread_block_tile<64> t64 = cg::tiled_partition<64>(block);
    cg::thread_block_tile<128> t128 = cg::tiled_partition<128>(block);
    unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
    int v = in[i];
    int sum = cg::reduce(t64, v, cg::plus<int>());
    int most = cg::reduce(t128, v, cg::greater<int>());
    t64.sync();
    int from40 = t64.shfl(v, 40);
    int from100 = t128.shfl(v * 3, 100);
    t128.sync();
    int *o = out + i * 6;
    o[0] = sum;
    o[1] = most;
    o[2] = from40;
    o[3] = from100;
    o[4] = (int)(t64.meta_group_rank() | (t64.thread_rank() << 8) | (t64.meta_group_size() << 16));
    o[5] = (int)(t128.meta_group_rank() | (t128.thread_rank() << 8) | (t128.num_threads() << 16));
}

// The odd values' threads of each warp elect one of them, which counts them and hands its own thread
// index to the others (invoke_one / invoke_one_broadcast: elect.sync on compute_90, rank 0 of the
// coalesced group elsewhere; both are its lowest lane).
extern "C" __global__ void elect_leader(const int *in, int *leader, unsigned *counts) {
    unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
    int out = -1;
    if (in[i] & 1) {
        cg::coalesced_group odd = cg::coalesced_threads();
        cg::invoke_one(odd, [&] { atomicAdd(&counts[i / 32], odd.num_threads()); });
        out = cg::invoke_one_broadcast(odd, [&] { return (int)threadIdx.x; });
    }
    leader[i] = out;
}

// One warp produces (2 * its inputs into shared memory, then arrives); the other waits for the phase
// in a try_wait loop before it reads them. `producer` chooses which warp produces, so both orders of
// the branch's two paths are run.
extern "C" __global__ void mbarrier_handoff(const int *in, int *out, int producer) {
    __shared__ int data[32];
    __shared__ cuda::barrier<cuda::thread_scope_block> bar;
    if (threadIdx.x == 0)
        init(&bar, blockDim.x);
    __syncthreads();
    unsigned lane = threadIdx.x % 32;
    if ((int)(threadIdx.x / 32) == producer) {
        data[lane] = 2 * in[blockIdx.x * 32 + lane];
        auto token = bar.arrive();
        (void)token;
    } else {
        bar.arrive_and_wait();
        out[blockIdx.x * 32 + lane] = data[lane] + 1;
    }
}

// Warp specialization as CUTLASS's NamedBarrier does it: warp 0 produces a tile in shared memory and
// arrives on barrier 1; warps 1 and 2 sync on it, consume the tile, and arrive on barrier 2, on which
// the producer syncs before it overwrites the tile in the next round.
extern "C" __global__ void named_barriers(const int *in, int *out, int rounds) {
    __shared__ int tile[32];
    unsigned warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int *src = in + blockIdx.x * rounds * 32;
    int *dst = out + blockIdx.x * rounds * 64;
    for (int r = 0; r < rounds; r++) {
        if (warp == 0) {
            if (r > 0)
                asm volatile("bar.sync 2, 96;" ::: "memory");
            tile[lane] = src[r * 32 + lane];
            asm volatile("bar.arrive 1, 96;" ::: "memory");
        } else {
            asm volatile("bar.sync 1, 96;" ::: "memory");
            dst[(r * 2 + warp - 1) * 32 + lane] = tile[lane] * (int)warp;
            if (r + 1 < rounds)
                asm volatile("bar.arrive 2, 96;" ::: "memory");
        }
    }
}

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
// Each block reports its place in its cluster and the grid's clusters, and reads the value its
// cluster neighbour (rank + 1) wrote for thread t + 1 into its own shared memory.
__device__ void cluster_report(unsigned *out) {
    cg::cluster_group cluster = cg::this_cluster();
    cg::grid_group grid = cg::this_grid();
    __shared__ unsigned mine[128];
    unsigned b = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    unsigned t = threadIdx.x;
    mine[t] = b * 1000 + t;
    cluster.sync();
    unsigned rank = cluster.block_rank();
    unsigned peer = (rank + 1) % cluster.num_blocks();
    unsigned *theirs = cluster.map_shared_rank(mine, peer);
    unsigned got = theirs[(t + 1) % blockDim.x];
    unsigned who = cluster.query_shared_rank(theirs);
    cluster.sync();
    unsigned *o = out + (b * blockDim.x + t) * 12;
    dim3 bi = cluster.block_index();
    dim3 db = cluster.dim_blocks();
    dim3 ci = grid.cluster_index();
    dim3 dc = grid.dim_clusters();
    o[0] = rank;
    o[1] = cluster.num_blocks();
    o[2] = bi.x | (bi.y << 8) | (bi.z << 16);
    o[3] = db.x | (db.y << 8) | (db.z << 16);
    o[4] = got;
    o[5] = cluster.thread_rank();
    o[6] = cluster.num_threads();
    o[7] = who;
    o[8] = ci.x | (ci.y << 8) | (ci.z << 16);
    o[9] = dc.x | (dc.y << 8) | (dc.z << 16);
    o[10] = (unsigned)grid.cluster_rank();
    o[11] = (unsigned)grid.num_clusters();
}

extern "C" __global__ void __cluster_dims__(2, 1, 1) cluster_fixed(unsigned *out) { cluster_report(out); }

// the same, in clusters of the launch's shape (the cluster-dimension launch attribute); an ordinary
// launch is a cluster of one block
extern "C" __global__ void cluster_launched(unsigned *out) { cluster_report(out); }

// every thread adds its input into rank 0's shared total (atomics on distributed shared memory)
extern "C" __global__ void __cluster_dims__(4, 1, 1) cluster_atomic(const int *in, int *out) {
    cg::cluster_group cluster = cg::this_cluster();
    __shared__ int total;
    if (threadIdx.x == 0)
        total = 0;
    cluster.sync();
    int *root = cluster.map_shared_rank(&total, 0);
    atomicAdd(root, in[blockIdx.x * blockDim.x + threadIdx.x]);
    cluster.sync();
    if (cluster.block_rank() == 0 && threadIdx.x == 0)
        out[blockIdx.x / 4] = total;
}

// split arrive and wait: each block writes into the next rank's shared memory between them
extern "C" __global__ void __cluster_dims__(2, 2, 1) cluster_split(int *out) {
    cg::cluster_group cluster = cg::this_cluster();
    __shared__ int box[64];
    unsigned n = cluster.num_blocks();
    unsigned rank = cluster.block_rank();
    int *next = cluster.map_shared_rank(box, (rank + 1) % n);
    cluster.sync();
    next[threadIdx.x] = (int)(rank * 100 + threadIdx.x);
    auto token = cluster.barrier_arrive();
    cluster.barrier_wait(std::move(token));
    unsigned b = blockIdx.x + gridDim.x * blockIdx.y;
    out[b * blockDim.x + threadIdx.x] = box[threadIdx.x];
}

// reads element `at[t]` of the next rank's 64-word array: an index past it is outside that block's
// shared memory
extern "C" __global__ void __cluster_dims__(2, 1, 1) cluster_reach(const unsigned *at, unsigned *out) {
    cg::cluster_group cluster = cg::this_cluster();
    __shared__ unsigned words[64];
    words[threadIdx.x] = blockIdx.x * 64 + threadIdx.x;
    cluster.sync();
    unsigned *next = cluster.map_shared_rank(words, (cluster.block_rank() + 1) % 2);
    out[blockIdx.x * blockDim.x + threadIdx.x] = next[at[blockIdx.x * blockDim.x + threadIdx.x]];
    cluster.sync();
}

// Both blocks write into rank 0's shared memory and arrive on rank 0's mbarrier through shared::cluster
// addresses (mapa.shared::cluster, mbarrier.arrive.release.cluster.shared::cluster); rank 0 waits for
// the phase, then reads what rank 1 wrote and, with ld.shared::cluster, rank 1's own word.
extern "C" __global__ void __cluster_dims__(2, 1, 1) cluster_mbarrier(const int *in, int *out) {
    cg::cluster_group cluster = cg::this_cluster();
    __shared__ unsigned long long bar;
    __shared__ int data[2][64];
    __shared__ int own;
    unsigned rank = cluster.block_rank();
    unsigned t = threadIdx.x;
    unsigned bar_at = (unsigned)__cvta_generic_to_shared(&bar);
    if (t == 0) {
        asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(bar_at), "r"(2 * blockDim.x) : "memory");
        own = 1000 * (int)(rank + 1);
    }
    cluster.sync();
    cluster.map_shared_rank(&data[0][0], 0)[rank * 64 + t] = in[blockIdx.x * 64 + t] * 5;
    unsigned remote;
    asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(remote) : "r"(bar_at), "r"(0));
    asm volatile("mbarrier.arrive.release.cluster.shared::cluster.b64 _, [%0];" ::"r"(remote) : "memory");
    if (rank == 0) {
        unsigned done = 0;
        while (!done) {
            asm volatile("{\n\t.reg .pred p;\n\t"
                         "mbarrier.try_wait.parity.acquire.cluster.shared::cta.b64 p, [%1], %2;\n\t"
                         "selp.u32 %0, 1, 0, p;\n\t}"
                         : "=r"(done)
                         : "r"(bar_at), "r"(0)
                         : "memory");
        }
        unsigned their_own;
        asm volatile("mapa.shared::cluster.u32 %0, %1, %2;"
                     : "=r"(their_own)
                     : "r"((unsigned)__cvta_generic_to_shared(&own)), "r"(1));
        int theirs;
        asm volatile("ld.shared::cluster.u32 %0, [%1];" : "=r"(theirs) : "r"(their_own) : "memory");
        out[(blockIdx.x / 2) * 64 + t] = data[1][t] + data[0][t] + theirs;
    }
    cluster.sync();
}

// st.async and red.async: each block of a pair stores its inputs (times 3) into the other's shared memory
// and adds its thread index into the other's counters, both completing on the other block's mbarrier,
// which expects their bytes; each block waits for its phase and writes what arrived.
extern "C" __global__ void __cluster_dims__(2, 1, 1) cluster_async_stores(const int *in, int *out) {
    namespace ptx = cuda::ptx;
    cg::cluster_group cluster = cg::this_cluster();
    __shared__ alignas(16) int buf[64];
    __shared__ int counts[64];
    __shared__ uint64_t bar;
    unsigned t = threadIdx.x;
    buf[t] = -1;
    counts[t] = 100;
    if (t == 0) {
        ptx::mbarrier_init(&bar, 1u);
        ptx::fence_mbarrier_init(ptx::sem_release, ptx::scope_cluster);
    }
    cluster.sync();
    if (t == 0)
        (void)ptx::mbarrier_arrive_expect_tx(ptx::sem_release, ptx::scope_cluster, ptx::space_shared, &bar,
                                             2u * 64u * 4u);
    cluster.sync();
    unsigned other = cluster.block_rank() ^ 1;
    uint64_t *their_bar = cluster.map_shared_rank(&bar, other);
    ptx::st_async(cluster.map_shared_rank(buf, other) + t, in[blockIdx.x * 64 + t] * 3, their_bar);
    ptx::red_async(ptx::op_add, cluster.map_shared_rank(counts, other) + (t ^ 1), (int)t, their_bar);
    while (!ptx::mbarrier_try_wait_parity(&bar, 0)) {
    }
    out[blockIdx.x * 128 + t] = buf[t];
    out[blockIdx.x * 128 + 64 + t] = counts[t];
    cluster.sync();
}

// cp.async.bulk from this block's shared memory to the other's of the pair (distributed shared
// memory), completing on the other block's mbarrier: two copies of 128 bytes per block
extern "C" __global__ void __cluster_dims__(2, 1, 1) cluster_bulk_copy(const int *in, int *out) {
    namespace ptx = cuda::ptx;
    cg::cluster_group cluster = cg::this_cluster();
    __shared__ alignas(16) int mine[64];
    __shared__ alignas(16) int theirs[64];
    __shared__ uint64_t bar;
    unsigned t = threadIdx.x;
    mine[t] = in[blockIdx.x * 64 + t] + 7;
    theirs[t] = 0;
    if (t == 0) {
        ptx::mbarrier_init(&bar, 1u);
        ptx::fence_mbarrier_init(ptx::sem_release, ptx::scope_cluster);
    }
    cluster.sync();
    if (t == 0)
        (void)ptx::mbarrier_arrive_expect_tx(ptx::sem_release, ptx::scope_cluster, ptx::space_shared, &bar, 256u);
    cluster.sync();
    unsigned other = cluster.block_rank() ^ 1;
    if (t < 2) {
        ptx::fence_proxy_async(ptx::space_shared);
        ptx::cp_async_bulk(ptx::space_cluster, ptx::space_shared, cluster.map_shared_rank(theirs, other) + 32 * t,
                           mine + 32 * t, 128u, cluster.map_shared_rank(&bar, other));
    }
    while (!ptx::mbarrier_try_wait_parity(&bar, 0)) {
    }
    out[blockIdx.x * 64 + t] = theirs[t];
    cluster.sync();
}
#endif
