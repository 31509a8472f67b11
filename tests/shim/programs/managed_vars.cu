// __managed__ variables through the shim (tests/shim/test_managed_vars.py): their initial values seen
// by the host before any other CUDA call, host writes seen by a kernel, kernel writes (atomics and
// plain stores) seen by the host after a synchronize, cudaMemcpyToSymbol/FromSymbol on them, and a
// pointer to one as an ordinary managed pointer (cudaPointerGetAttributes).
#include "check.h"

__managed__ int counter = 5;
__managed__ float data[256];
__managed__ double scale = 0.5;

__global__ void bump(int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        atomicAdd(&counter, 1);
        data[i] = data[i] * (float)scale + 1.0f;
    }
}

int main() {
    report("initial_values", counter == 5 && scale == 0.5 && data[7] == 0.0f, "counter=%d scale=%g data[7]=%g",
           counter, scale, data[7]);
    for (int i = 0; i < 256; i++) data[i] = (float)i;
    counter += 10;
    scale = 2.0;
    bump<<<2, 128>>>(256);
    cudaError_t e = cudaDeviceSynchronize();
    bool same = true;
    for (int i = 0; i < 256; i++) same &= data[i] == 2.0f * i + 1.0f;
    report("kernel_sees_host_writes", e == cudaSuccess && counter == 15 + 256 && same, "status=%d counter=%d data[3]=%g",
           (int)e, counter, data[3]);
    int seven = 7, back = 0;
    cudaError_t to = cudaMemcpyToSymbol(counter, &seven, sizeof seven);
    cudaError_t from = cudaMemcpyFromSymbol(&back, counter, sizeof back);
    report("symbol_copies", to == cudaSuccess && from == cudaSuccess && counter == 7 && back == 7,
           "to=%d from=%d counter=%d back=%d", (int)to, (int)from, counter, back);
    cudaPointerAttributes attr{};
    cudaError_t pa = cudaPointerGetAttributes(&attr, &counter);
    report("managed_pointer", pa == cudaSuccess && attr.type == cudaMemoryTypeManaged && attr.devicePointer == &counter,
           "status=%d type=%d", (int)pa, (int)attr.type);
    return finish();
}
