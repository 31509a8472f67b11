// Kernels whose function attributes differ from the defaults, for the cuFuncGetAttribute tests:
// a launch bound, a stack frame, compile-time cluster dimensions, static shared memory past the
// default dynamic limit. extern "C" keeps the names short. Rebuild the images with build.sh.

// __launch_bounds__(256): .maxntid 256, 1, 1 (EIATTR_MAX_THREADS)
extern "C" __global__ void __launch_bounds__(256) bounded(float* x) { x[threadIdx.x] = 1.0f; }

// a local array indexed at run time and a call that cannot be inlined: a stack frame
__device__ __noinline__ float pick(const float* x, int i) {
    float a[40];
    for (int j = 0; j < 40; j++) a[j] = x[j + i];
    return a[static_cast<int>(x[0]) % 40];
}
extern "C" __global__ void with_stack(float* x, int i) {
    float b[10];
    for (int j = 0; j < 10; j++) b[j] = x[j];
    x[1] = b[i % 10] + pick(x, i);
}

// __cluster_dims__(2, 1, 1): .explicitcluster, .reqnctapercluster 2, 1, 1 (sm_90 and newer)
extern "C" __global__ void __cluster_dims__(2, 1, 1) clustered(float* x) { x[threadIdx.x] = 2.0f; }

// 48 KiB of static shared memory: the default dynamic limit (48 KiB per block less it) is 0
extern "C" __global__ void big_tile(float* x) {
    __shared__ float tile[12288];
    tile[threadIdx.x] = x[threadIdx.x];
    __syncthreads();
    x[threadIdx.x] = tile[12287 - threadIdx.x];
}
