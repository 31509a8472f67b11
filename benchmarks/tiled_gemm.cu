// C = A @ B with 16x16 tiles staged in shared memory (A: m x k, B: k x n, row-major; sizes multiples of 16)
extern "C" __global__ void tiled_gemm(float *c, const float *a, const float *b, int k, int n) {
    __shared__ float as[16][16];
    __shared__ float bs[16][16];
    int tx = threadIdx.x, ty = threadIdx.y;
    int row = blockIdx.y * 16 + ty, col = blockIdx.x * 16 + tx;
    float sum = 0.0f;
    for (int t = 0; t < k; t += 16) {
        as[ty][tx] = a[row * k + t + tx];
        bs[ty][tx] = b[(t + ty) * n + col];
        __syncthreads();
#pragma unroll
        for (int i = 0; i < 16; ++i) sum += as[ty][i] * bs[i][tx];
        __syncthreads();
    }
    c[row * n + col] = sum;
}
