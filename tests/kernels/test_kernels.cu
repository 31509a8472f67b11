// Kernels that the tests and the GGML-shaped demo load as real module images.
//
// Every kernel has C++ linkage (its symbol is the mangled name, as GGML's are); the `sim` backend
// matches them by those names to the NumPy references in executor/_kernels.py, which follow the
// indexing written here exactly: elementwise kernels cover the first min(n, gridDim.x*blockDim.x)
// elements, row kernels handle one row per block (blockIdx.x) and stride over its columns by
// blockDim.x. Rebuild the images with tests/kernels/build.sh.

#include <cstdint>

// out = a + b
__global__ void vector_add(const float* a, const float* b, float* c, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) c[i] = a[i] + b[i];
}

// x *= s, in place
__global__ void scale_f32(float* x, float s, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] *= s;
}

// x[r, c] += bias[c] for a row-major [rows, cols] matrix; one thread per element
__global__ void add_bias_rows(float* x, const float* bias, int rows, int cols) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < rows * cols) x[i] += bias[i % cols];
}

// y = max(x, 0)
__global__ void relu_f32(const float* x, float* y, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

// GELU, tanh approximation (as GGML's gelu_f32)
__global__ void gelu_f32(const float* x, float* y, int n) {
    const float GELU_COEF_A = 0.044715f;
    const float SQRT_2_OVER_PI = 0.79788456080286535587989211986876f;
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float v = x[i];
    y[i] = 0.5f * v * (1.0f + tanhf(SQRT_2_OVER_PI * v * (1.0f + GELU_COEF_A * v * v)));
}

// SiLU: x / (1 + exp(-x))
__global__ void silu_f32(const float* x, float* y, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = x[i] / (1.0f + expf(-x[i]));
}

// z = x * y, elementwise
__global__ void mul_f32(const float* x, const float* y, float* z, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) z[i] = x[i] * y[i];
}

// Block-wide sum of one float per thread; blockDim.x must be a power of two <= 1024.
__device__ float block_sum(float v) {
    __shared__ float partial[1024];
    partial[threadIdx.x] = v;
    __syncthreads();
    for (unsigned int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) partial[threadIdx.x] += partial[threadIdx.x + s];
        __syncthreads();
    }
    float total = partial[0];
    __syncthreads();
    return total;
}

__device__ float block_max(float v) {
    __shared__ float partial[1024];
    partial[threadIdx.x] = v;
    __syncthreads();
    for (unsigned int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) partial[threadIdx.x] = fmaxf(partial[threadIdx.x], partial[threadIdx.x + s]);
        __syncthreads();
    }
    float total = partial[0];
    __syncthreads();
    return total;
}

// RMS norm of each row of a row-major [rows, cols] matrix: y = x / sqrt(mean(x^2) + eps).
// One block per row (blockIdx.x = row, rows beyond gridDim.x are untouched); blockDim.x a power of two.
__global__ void rms_norm_rows(const float* x, float* y, int rows, int cols, float eps) {
    int row = blockIdx.x;
    if (row >= rows) return;
    const float* xr = x + (size_t)row * cols;
    float* yr = y + (size_t)row * cols;
    float sum = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) sum += xr[c] * xr[c];
    sum = block_sum(sum);
    float scale = rsqrtf(sum / cols + eps);
    for (int c = threadIdx.x; c < cols; c += blockDim.x) yr[c] = xr[c] * scale;
}

// Softmax of each row (numerically stable); same geometry as rms_norm_rows.
__global__ void softmax_rows(const float* x, float* y, int rows, int cols) {
    int row = blockIdx.x;
    if (row >= rows) return;
    const float* xr = x + (size_t)row * cols;
    float* yr = y + (size_t)row * cols;
    float m = -INFINITY;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) m = fmaxf(m, xr[c]);
    m = block_max(m);
    float sum = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        float e = expf(xr[c] - m);
        yr[c] = e;
        sum += e;
    }
    sum = block_sum(sum);
    for (int c = threadIdx.x; c < cols; c += blockDim.x) yr[c] /= sum;
}

// A device global that the host sets with cuModuleGetGlobal + a copy; scale_by_global uses it.
__device__ float g_scale = 2.0f;
// A constant table with an initializer, and a zero-initialized counter array.
__constant__ int g_lut[4] = {1, 2, 3, 4};
__device__ unsigned int g_counters[16];

// x[i] *= g_scale
__global__ void scale_by_global(float* x, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] *= g_scale;
}

// x[i] += g_lut[i % 4]; counts launches' threads in g_counters[0] (atomically)
__global__ void add_lut(int* x, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        x[i] += g_lut[i % 4];
        atomicAdd(&g_counters[0], 1u);
    }
}

// Parameters of mixed sizes and alignments (a char, a double, a pointer, a struct by value), for
// the parameter layout tests. The simulator deliberately has no reference for it.
struct Pair { int a; int b; };
__global__ void mystery_kernel(char tag, double weight, float* out, Pair pair, short s) {
    if (threadIdx.x == 0 && blockIdx.x == 0) out[0] = tag + weight + pair.a * pair.b + s;
}
