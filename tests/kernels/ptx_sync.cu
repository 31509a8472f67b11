// The PTX engine's corpus for grid-wide and asynchronous synchronization: cooperative_groups'
// grid.sync() (cooperative launches), cuda::barrier / mbarrier, cp.async.bulk and the tensor-core
// shape sm_70 introduced (mma.m8n8k4). Built by build.sh for compute_80 and compute_90 (the bulk
// copies and the transaction-count barrier need sm_90; those kernels are compiled only there).
#include <cooperative_groups.h>
#include <cuda/barrier>
#include <cuda/pipeline>
#include <cuda_fp16.h>
namespace cg = cooperative_groups;
#pragma nv_diag_suppress static_var_with_dynamic_init  // a cuda::barrier in __shared__, initialized by init()

// Every block adds its slice to partial[blockIdx.x]; after grid.sync() thread 0 sums the blocks.
extern "C" __global__ void coop_grid_sum(const int *in, int *partial, int *out, int n)
{
    cg::grid_group g = cg::this_grid();
    int s = 0;
    for (int i = g.thread_rank(); i < n; i += g.size())
        s += in[i];
    atomicAdd(&partial[blockIdx.x], s);
    g.sync();
    if (g.thread_rank() == 0) {
        int t = 0;
        for (unsigned b = 0; b < gridDim.x; ++b)
            t += partial[b];
        out[0] = t;
    }
}

// `rounds` grid-wide steps of a ring: each thread takes the sum of itself and its right neighbour
// (over the whole grid) from the previous round; the barrier's phase flips every round.
extern "C" __global__ void coop_ring(unsigned *a, unsigned *b, int rounds)
{
    cg::grid_group g = cg::this_grid();
    unsigned n = g.size(), i = g.thread_rank();
    for (int r = 0; r < rounds; ++r) {
        unsigned *src = (r & 1) ? b : a, *dst = (r & 1) ? a : b;
        dst[i] = src[i] * 3u + src[(i + 1) % n];
        g.sync();
    }
}

// mma.m8n8k4 with f16 inputs, sm_70's shape: a warp computes four independent 8x8x4 products, one
// per quad-pair (lanes 0-3 with 16-19, 4-7 with 20-23, ...). Each lane's fragments come in and go
// out as they sit in its registers: a[lane*2 + j], b[lane*2 + j] (f16x2 words), c and d as eight
// f32 or four f16x2 words per lane.
#define MMA884_F32(NAME, AL, BL, CT)                                                                         \
    extern "C" __global__ void NAME(const unsigned *a, const unsigned *b, const unsigned *c, unsigned *d) \
    {                                                                                                        \
        unsigned l = threadIdx.x, a0 = a[l * 2], a1 = a[l * 2 + 1], b0 = b[l * 2], b1 = b[l * 2 + 1];       \
        float r[8];                                                                                          \
        MMA884_C_##CT(AL, BL)                                                                                \
        for (int i = 0; i < 8; ++i)                                                                          \
            d[l * 8 + i] = __float_as_uint(r[i]);                                                            \
    }
#define MMA884_C_f32(AL, BL)                                                                                         \
    float c0 = __uint_as_float(c[l * 8]), c1 = __uint_as_float(c[l * 8 + 1]), c2 = __uint_as_float(c[l * 8 + 2]),  \
          c3 = __uint_as_float(c[l * 8 + 3]), c4 = __uint_as_float(c[l * 8 + 4]),                             \
          c5 = __uint_as_float(c[l * 8 + 5]), c6 = __uint_as_float(c[l * 8 + 6]),                             \
          c7 = __uint_as_float(c[l * 8 + 7]);                                                                 \
    asm volatile("mma.sync.aligned.m8n8k4." AL "." BL ".f32.f16.f16.f32 {%0,%1,%2,%3,%4,%5,%6,%7}, {%8,%9}, "    \
                 "{%10,%11}, {%12,%13,%14,%15,%16,%17,%18,%19};"                                             \
                 : "=f"(r[0]), "=f"(r[1]), "=f"(r[2]), "=f"(r[3]), "=f"(r[4]), "=f"(r[5]), "=f"(r[6]), "=f"(r[7]) \
                 : "r"(a0), "r"(a1), "r"(b0), "r"(b1), "f"(c0), "f"(c1), "f"(c2), "f"(c3), "f"(c4), "f"(c5),     \
                   "f"(c6), "f"(c7));
#define MMA884_C_f16(AL, BL)                                                                                      \
    unsigned c0 = c[l * 4], c1 = c[l * 4 + 1], c2 = c[l * 4 + 2], c3 = c[l * 4 + 3];                          \
    asm volatile("mma.sync.aligned.m8n8k4." AL "." BL ".f32.f16.f16.f16 {%0,%1,%2,%3,%4,%5,%6,%7}, {%8,%9}, "    \
                 "{%10,%11}, {%12,%13,%14,%15};"                                                             \
                 : "=f"(r[0]), "=f"(r[1]), "=f"(r[2]), "=f"(r[3]), "=f"(r[4]), "=f"(r[5]), "=f"(r[6]), "=f"(r[7]) \
                 : "r"(a0), "r"(a1), "r"(b0), "r"(b1), "r"(c0), "r"(c1), "r"(c2), "r"(c3));
MMA884_F32(mma884_row_col_f32_f32, "row", "col", f32)
MMA884_F32(mma884_row_row_f32_f32, "row", "row", f32)
MMA884_F32(mma884_col_col_f32_f32, "col", "col", f32)
MMA884_F32(mma884_col_row_f32_f32, "col", "row", f32)
MMA884_F32(mma884_row_col_f32_f16, "row", "col", f16)

// an f16 accumulator D: four f16x2 words per lane
extern "C" __global__ void mma884_row_col_f16_f16(const unsigned *a, const unsigned *b, const unsigned *c,
                                                  unsigned *d)
{
    unsigned l = threadIdx.x, a0 = a[l * 2], a1 = a[l * 2 + 1], b0 = b[l * 2], b1 = b[l * 2 + 1];
    unsigned r0, r1, r2, r3, c0 = c[l * 4], c1 = c[l * 4 + 1], c2 = c[l * 4 + 2], c3 = c[l * 4 + 3];
    asm volatile("mma.sync.aligned.m8n8k4.row.col.f16.f16.f16.f16 {%0,%1,%2,%3}, {%4,%5}, {%6,%7}, {%8,%9,%10,%11};"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                 : "r"(a0), "r"(a1), "r"(b0), "r"(b1), "r"(c0), "r"(c1), "r"(c2), "r"(c3));
    d[l * 4] = r0, d[l * 4 + 1] = r1, d[l * 4 + 2] = r2, d[l * 4 + 3] = r3;
}

extern "C" __global__ void mma884_col_row_f16_f16(const unsigned *a, const unsigned *b, const unsigned *c,
                                                  unsigned *d)
{
    unsigned l = threadIdx.x, a0 = a[l * 2], a1 = a[l * 2 + 1], b0 = b[l * 2], b1 = b[l * 2 + 1];
    unsigned r0, r1, r2, r3, c0 = c[l * 4], c1 = c[l * 4 + 1], c2 = c[l * 4 + 2], c3 = c[l * 4 + 3];
    asm volatile("mma.sync.aligned.m8n8k4.col.row.f16.f16.f16.f16 {%0,%1,%2,%3}, {%4,%5}, {%6,%7}, {%8,%9,%10,%11};"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                 : "r"(a0), "r"(a1), "r"(b0), "r"(b1), "r"(c0), "r"(c1), "r"(c2), "r"(c3));
    d[l * 4] = r0, d[l * 4 + 1] = r1, d[l * 4 + 2] = r2, d[l * 4 + 3] = r3;
}

// an instruction the engine does not implement — the sparse tensor-core mma (mma.sp, with its
// metadata operand): a launch that reaches it is refused naming it, and nothing of it runs
extern "C" __global__ void uses_mma_sp(const unsigned *a, unsigned *d)
{
    unsigned a0 = a[0], a1 = a[1], b0 = a[2], b1 = a[3], e = a[4];
    float c[4] = {0.f, 0.f, 0.f, 0.f};
    d[threadIdx.x] = 1u;  // a store before it: must not happen either
    asm volatile("mma.sp.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5}, {%6,%7}, "
                 "{%0,%1,%2,%3}, %8, 0x0;"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a0), "r"(a1), "r"(b0), "r"(b1), "r"(e));
    d[threadIdx.x] = __float_as_uint(c[0] + c[1] + c[2] + c[3]);
}

// -- mbarrier: cuda::barrier, cuda::memcpy_async, cuda::pipeline, and the raw operations ----------

using block_barrier = cuda::barrier<cuda::thread_scope_block>;

// each block copies its 256-int tile into shared memory with memcpy_async completing on a block
// barrier (compute_80: cp.async and cp.async.mbarrier.arrive; compute_90: cp.async.bulk with the
// barrier's transaction count), then adds tile[i] * (i + 1) into out[block]
extern "C" __global__ void mb_tile_sum(const int *in, int *out)
{
    __shared__ alignas(16) int tile[256];
    __shared__ block_barrier bar;
    auto block = cg::this_thread_block();
    if (block.thread_rank() == 0)
        init(&bar, block.size());
    block.sync();
    cuda::memcpy_async(block, tile, in + blockIdx.x * 256, cuda::aligned_size_t<16>(sizeof(tile)), bar);
    bar.arrive_and_wait();
    int s = 0;
    for (int i = threadIdx.x; i < 256; i += blockDim.x)
        s += tile[i] * (i + 1);
    atomicAdd(out + blockIdx.x, s);
}

// `rounds` times: every thread writes, the barrier completes a phase, every thread reads its
// neighbour's value, another phase (the parity flips twice a round)
extern "C" __global__ void mb_rounds(int *data, int rounds)
{
    __shared__ int buf[256];
    __shared__ block_barrier bar;
    if (threadIdx.x == 0)
        init(&bar, blockDim.x);
    __syncthreads();
    int mine = data[blockIdx.x * blockDim.x + threadIdx.x];
    for (int r = 0; r < rounds; ++r) {
        buf[threadIdx.x] = mine + r;
        bar.arrive_and_wait();
        mine = buf[(threadIdx.x + 1) % blockDim.x];
        bar.arrive_and_wait();
    }
    data[blockIdx.x * blockDim.x + threadIdx.x] = mine;
}

// a two-stage cuda::pipeline of cp.async copies (producer_acquire/commit, consumer_wait/release):
// out[t] = the sum over the chunks of in[c * blockDim.x + t]
extern "C" __global__ void mb_pipeline(const float *in, float *out, int chunks)
{
    __shared__ alignas(16) float stage[2][256];
    auto pipe = cuda::make_pipeline();
    float acc = 0.f;
    for (int c = 0; c < chunks; ++c) {
        pipe.producer_acquire();
        cuda::memcpy_async(&stage[c & 1][threadIdx.x], &in[c * blockDim.x + threadIdx.x], sizeof(float), pipe);
        pipe.producer_commit();
        pipe.consumer_wait();
        acc += stage[c & 1][threadIdx.x];
        pipe.consumer_release();
    }
    out[threadIdx.x] = acc;
}

__device__ unsigned mb_done(unsigned addr, unsigned parity)
{
    unsigned done;
    asm volatile("{ .reg .pred p; mbarrier.test_wait.parity.shared.b64 p, [%1], %2; selp.u32 %0, 1, 0, p; }"
                 : "=r"(done) : "r"(addr), "r"(parity) : "memory");
    return done;
}

// the raw operations, each step after a __syncthreads so that the answers do not depend on the
// order of arrivals: out[t * 8 + k] holds thread t's k-th observation
extern "C" __global__ void mb_ops(unsigned *out)
{
    __shared__ unsigned long long bar;
    unsigned addr = (unsigned)__cvta_generic_to_shared(&bar), t = threadIdx.x, *o = out + t * 8;
    if (t == 0)
        asm volatile("mbarrier.init.shared.b64 [%0], %1;" ::"r"(addr), "r"(blockDim.x) : "memory");
    __syncthreads();
    unsigned long long state;  // phase 0: everyone arrives; each state holds what was pending before it
    asm volatile("mbarrier.arrive.shared.b64 %0, [%1];" : "=l"(state) : "r"(addr) : "memory");
    asm volatile("mbarrier.pending_count.b64 %0, %1;" : "=r"(o[0]) : "l"(state));
    __syncthreads();
    o[1] = mb_done(addr, 0), o[2] = mb_done(addr, 1);  // phase 0 done, phase 1 not
    // phase 1: the lower half drops out of later phases
    if (t < blockDim.x / 2)
        asm volatile("mbarrier.arrive_drop.shared.b64 %0, [%1];" : "=l"(state) : "r"(addr) : "memory");
    else
        asm volatile("mbarrier.arrive.shared.b64 %0, [%1];" : "=l"(state) : "r"(addr) : "memory");
    __syncthreads();
    o[3] = mb_done(addr, 1);
    if (t >= blockDim.x / 2)  // phase 2 expects only the upper half
        asm volatile("mbarrier.arrive.shared.b64 %0, [%1];" : "=l"(state) : "r"(addr) : "memory");
    __syncthreads();
    o[4] = mb_done(addr, 0), o[5] = mb_done(addr, 1);  // phase 2 (parity 0) done, phase 3 not
#if __CUDA_ARCH__ >= 900
    // phase 3 waits for 256 bytes of transactions besides its arrivals
    if (t == 0)
        asm volatile("mbarrier.expect_tx.relaxed.cta.shared::cta.b64 [%0], 256;" ::"r"(addr) : "memory");
    __syncthreads();
    if (t >= blockDim.x / 2)
        asm volatile("mbarrier.arrive.shared.b64 %0, [%1];" : "=l"(state) : "r"(addr) : "memory");
    __syncthreads();
    o[6] = mb_done(addr, 1);  // arrivals done, transactions not: still pending
    if (t == 0)
        asm volatile("mbarrier.complete_tx.relaxed.cta.shared::cta.b64 [%0], 256;" ::"r"(addr) : "memory");
    __syncthreads();
    o[7] = mb_done(addr, 1);
#endif
    __syncthreads();
    if (t == 0)
        asm volatile("mbarrier.inval.shared.b64 [%0];" ::"r"(addr) : "memory");
}

#if __CUDA_ARCH__ >= 900
// a bulk copy from shared to global memory (bulk async-group completion): out[block][i] = i * block
extern "C" __global__ void mb_bulk_store(int *out)
{
    __shared__ alignas(16) int buf[128];
    buf[threadIdx.x] = threadIdx.x * blockIdx.x;
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
    __syncthreads();
    if (threadIdx.x == 0) {
        asm volatile("cp.async.bulk.global.shared::cta.bulk_group [%0], [%1], 512;"
                     ::"l"(out + blockIdx.x * 128), "r"((unsigned)__cvta_generic_to_shared(buf)) : "memory");
        asm volatile("cp.async.bulk.commit_group;" ::: "memory");
        asm volatile("cp.async.bulk.wait_group 0;" ::: "memory");
    }
}
#endif
