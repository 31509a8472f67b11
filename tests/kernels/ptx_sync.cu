// The PTX engine's corpus for grid-wide and asynchronous synchronization: cooperative_groups'
// grid.sync() (cooperative launches), cuda::barrier / mbarrier, cp.async.bulk and the tensor-core
// shape sm_70 introduced (mma.m8n8k4). Built by build.sh for compute_80 and compute_90 (the bulk
// copies and the transaction-count barrier need sm_90; those kernels are compiled only there).
#include <cooperative_groups.h>
#include <cuda/barrier>
#include <cuda_fp16.h>
namespace cg = cooperative_groups;

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
