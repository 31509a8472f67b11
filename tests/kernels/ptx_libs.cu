// Device code of NVIDIA's libraries as real programs use it: CUB's block radix sort (bmsk on compute_80
// and later), block scan, block reduce and warp reduce. Built by build.sh for compute_75, compute_80 and
// compute_90; tests/ptx/test_libs.py holds the exact references.
#include <cub/cub.cuh>

constexpr int THREADS = 128;
constexpr int ITEMS = 4;

// each block sorts its THREADS * ITEMS keys (blocked: thread t holds keys t * ITEMS ...), writes them,
// their exclusive prefix sums and the block's total
extern "C" __global__ void cub_sort_scan(const int *in, int *sorted, int *sums, int *totals) {
    using Sort = cub::BlockRadixSort<int, THREADS, ITEMS>;
    using Scan = cub::BlockScan<int, THREADS>;
    __shared__ union {
        typename Sort::TempStorage sort;
        typename Scan::TempStorage scan;
    } tmp;
    int keys[ITEMS];
    const int base = (blockIdx.x * THREADS + threadIdx.x) * ITEMS;
    for (int k = 0; k < ITEMS; k++)
        keys[k] = in[base + k];
    Sort(tmp.sort).Sort(keys);
    for (int k = 0; k < ITEMS; k++)
        sorted[base + k] = keys[k];
    __syncthreads();
    int total;
    Scan(tmp.scan).ExclusiveSum(keys, keys, total);
    for (int k = 0; k < ITEMS; k++)
        sums[base + k] = keys[k];
    if (threadIdx.x == 0)
        totals[blockIdx.x] = total;
}

// a block's sum of floats (integer-valued: exact in any order) and each warp's largest key
extern "C" __global__ void cub_reduce(const float *in, const int *keys, float *sums, int *warp_max) {
    using Reduce = cub::BlockReduce<float, THREADS>;
    using WarpReduce = cub::WarpReduce<int>;
    __shared__ typename Reduce::TempStorage block_tmp;
    __shared__ typename WarpReduce::TempStorage warp_tmp[THREADS / 32];
    const int i = blockIdx.x * THREADS + threadIdx.x;
    float sum = Reduce(block_tmp).Sum(in[i]);
    int most = WarpReduce(warp_tmp[threadIdx.x / 32]).Reduce(keys[i], cuda::maximum<>{});
    if (threadIdx.x == 0)
        sums[blockIdx.x] = sum;
    if (threadIdx.x % 32 == 0)
        warp_max[i / 32] = most;
}

// the SIMD intrinsics of the CUDA Math API, one result each per thread (compute_90: add/min/max on
// u16x2/s16x2 and the video instruction vabsdiff; earlier targets emulate some of them)
extern "C" __global__ void simd_intrinsics(const unsigned *a, const unsigned *b, unsigned *out) {
    const unsigned i = blockIdx.x * blockDim.x + threadIdx.x, x = a[i], y = b[i];
    const unsigned r[] = {__vabs2(x),         __vabs4(x),        __vabsdiffs2(x, y), __vabsdiffs4(x, y),
                          __vabsdiffu2(x, y), __vabsdiffu4(x, y), __vabsss2(x),      __vabsss4(x),
                          __vadd2(x, y),      __vadd4(x, y),     __vaddss2(x, y),    __vaddus4(x, y),
                          __vavgs2(x, y),     __vavgu4(x, y),    __vcmpeq2(x, y),    __vcmpgts4(x, y),
                          __vhaddu2(x, y),    __vmaxs2(x, y),    __vmaxu2(x, y),     __vmaxs4(x, y),
                          __vmins2(x, y),     __vminu2(x, y),    __vminu4(x, y),     __vneg2(x),
                          __vsads2(x, y),     __vsadu2(x, y),    __vsads4(x, y),     __vsadu4(x, y),
                          __vsub2(x, y),      __vsubss4(x, y),   __vsetgeu4(x, y),   __vnegss4(x)};
    for (int k = 0; k < 32; k++)
        out[i * 32 + k] = r[k];
}

// sin, cos and tan of doubles: large arguments take libdevice's Payne-Hanek reduction, a chain of
// extended-precision multiplies (mad.lo.cc, madc.hi.cc, addc)
extern "C" __global__ void double_trig(const double *in, double *out, unsigned n) {
    const unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n)
        return;
    const double x = in[i];
    out[3 * i] = sin(x);
    out[3 * i + 1] = cos(x);
    out[3 * i + 2] = tan(x);
}
