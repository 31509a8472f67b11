// A small CUDA graph through stream capture: two kernels, a device-to-device copy and a memset
// captured on a stream, instantiated once and launched three times.
#include <cstring>
#include <vector>

#include "check.h"
#include "../../kernels/test_kernels.cu"

int main() {
    const int n = 1 << 16;
    const size_t bytes = n * sizeof(float);
    std::vector<float> x(n), y(n), out(n);
    for (int i = 0; i < n; i++) {
        x[i] = static_cast<float>(i % 100) * 0.25f;
        y[i] = static_cast<float>(i % 7);
    }
    float *dx, *dy, *dz, *dw, *dpad;
    cudaMalloc(&dx, bytes);
    cudaMalloc(&dy, bytes);
    cudaMalloc(&dz, bytes);
    cudaMalloc(&dw, bytes);
    cudaMalloc(&dpad, bytes);
    cudaMemcpy(dx, x.data(), bytes, cudaMemcpyHostToDevice);
    cudaMemcpy(dy, y.data(), bytes, cudaMemcpyHostToDevice);

    cudaStream_t s;
    cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
    cudaError_t e = cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed);
    cudaStreamCaptureStatus during = cudaStreamCaptureStatusNone;
    cudaError_t e2 = cudaStreamIsCapturing(s, &during);
    scale_f32<<<(n + 255) / 256, 256, 0, s>>>(dx, 2.0f, n);          // x *= 2
    vector_add<<<(n + 255) / 256, 256, 0, s>>>(dx, dy, dz, n);       // z = x + y
    cudaError_t e3 = cudaMemcpyAsync(dw, dz, bytes, cudaMemcpyDeviceToDevice, s);  // w = z
    cudaError_t e4 = cudaMemsetAsync(dpad, 0, bytes, s);             // pad = 0
    cudaGraph_t graph = nullptr;
    cudaError_t e5 = cudaStreamEndCapture(s, &graph);
    cudaStreamCaptureStatus after = cudaStreamCaptureStatusActive;
    cudaError_t e6 = cudaStreamIsCapturing(s, &after);
    report("capture", !e && !e2 && !e3 && !e4 && !e5 && !e6 && graph && during == cudaStreamCaptureStatusActive &&
               after == cudaStreamCaptureStatusNone,
           "during=%d after=%d status=%d/%d/%d/%d/%d/%d", during, after, e, e2, e3, e4, e5, e6);

    // nothing ran while capturing
    e = cudaMemcpy(out.data(), dx, bytes, cudaMemcpyDeviceToHost);
    int bad = 0;
    for (int i = 0; i < n; i++) bad += out[i] != x[i];
    report("capture_deferred", !e && bad == 0, "changed=%d", bad);

    cudaGraphExec_t exec = nullptr;
    e = cudaGraphInstantiate(&exec, graph, 0);
    cudaError_t launches[3];
    for (int r = 0; r < 3; r++) launches[r] = cudaGraphLaunch(exec, s);
    e2 = cudaStreamSynchronize(s);
    report("instantiate_launch", !e && !launches[0] && !launches[1] && !launches[2] && !e2,
           "status=%d launches=%d/%d/%d sync=%d", e, launches[0], launches[1], launches[2], e2);

    e = cudaMemcpy(out.data(), dw, bytes, cudaMemcpyDeviceToHost);
    bad = 0;
    for (int i = 0; i < n; i++) bad += out[i] != x[i] * 8.0f + y[i];
    report("graph_result", !e && bad == 0, "mismatches=%d (w = x*2^3 + y after three launches)", bad);

    e = cudaGraphExecDestroy(exec);
    e2 = cudaGraphDestroy(graph);
    e3 = cudaStreamDestroy(s);
    report("graph_destroy", !e && !e2 && !e3, "status=%d/%d/%d", e, e2, e3);
    cudaFree(dx);
    cudaFree(dy);
    cudaFree(dz);
    cudaFree(dw);
    cudaFree(dpad);
    return finish();
}
