// Kernel launches through the runtime: device queries, copies, <<<>>> launches of the test
// kernels (tests/kernels/test_kernels.cu, which the sim backend runs from their PTX: the programs
// are built with compute_90 PTX beside the cubins), device variables, a launch the device refuses,
// and a kernel the sim backend cannot run (a tensor-core instruction).
#include <cmath>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <vector>

#include "check.h"
#include "../../kernels/test_kernels.cu"

// an instruction the sim backend's PTX engine does not implement (the sparse tensor-core mma.sp, with
// its metadata operand): the launch is refused naming it, never run wrong
__global__ void uses_mma(float* d) {
    float c[4] = {0.f, 0.f, 0.f, 0.f};
    unsigned a0 = threadIdx.x, a1 = 0, b0 = 0, b1 = 0, e = 0;
    asm volatile("mma.sp.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5}, {%6,%7}, "
                 "{%0,%1,%2,%3}, %8, 0x0;"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a0), "r"(a1), "r"(b0), "r"(b1), "r"(e));
    d[threadIdx.x] = c[0] + c[1] + c[2] + c[3];
}

int main() {
    const int n = 1 << 20;
    int count = -1;
    cudaError_t e = cudaGetDeviceCount(&count);
    report("device_count", e == cudaSuccess && count >= 1, "count=%d status=%d (%s)", count, STATUS(e));

    cudaDeviceProp prop;
    memset(&prop, 0, sizeof prop);
    e = cudaGetDeviceProperties(&prop, 0);
    report("device_properties", e == cudaSuccess && prop.name[0] && prop.major >= 7 && prop.warpSize == 32 &&
               prop.totalGlobalMem > 0 && prop.maxThreadsPerBlock == 1024 && prop.multiProcessorCount > 0,
           "name=%s cc=%d.%d sms=%d mem=%zu warp=%d status=%d (%s)", prop.name, prop.major, prop.minor,
           prop.multiProcessorCount, prop.totalGlobalMem, prop.warpSize, STATUS(e));

    int driver = 0, runtime = 0;
    cudaDriverGetVersion(&driver);
    cudaRuntimeGetVersion(&runtime);
    report("versions", driver > 0 && runtime == 13000, "driver=%d runtime=%d", driver, runtime);

    std::vector<float> a(n), b(n), c(n);
    for (int i = 0; i < n; i++) {
        a[i] = static_cast<float>(i % 1000) * 0.5f;
        b[i] = static_cast<float>(i % 77) - 20.0f;
    }
    float *da = nullptr, *db = nullptr, *dc = nullptr;
    cudaError_t ea = cudaMalloc(&da, n * sizeof(float));
    cudaError_t eb = cudaMalloc(&db, n * sizeof(float));
    cudaError_t ec = cudaMalloc(&dc, n * sizeof(float));
    report("malloc", !ea && !eb && !ec && da && db && dc, "a=%p b=%p c=%p", (void*)da, (void*)db, (void*)dc);

    e = cudaMemcpy(da, a.data(), n * sizeof(float), cudaMemcpyHostToDevice);
    cudaError_t e2 = cudaMemcpy(db, b.data(), n * sizeof(float), cudaMemcpyHostToDevice);
    report("copy_in", !e && !e2, "status=%d (%s)", STATUS(e ? e : e2));

    vector_add<<<(n + 255) / 256, 256>>>(da, db, dc, n);
    cudaError_t launch = cudaGetLastError();
    cudaError_t sync = cudaDeviceSynchronize();
    e = cudaMemcpy(c.data(), dc, n * sizeof(float), cudaMemcpyDeviceToHost);
    int bad = 0;
    for (int i = 0; i < n; i++) bad += c[i] != a[i] + b[i];
    report("vector_add", !launch && !sync && !e && bad == 0, "n=%d mismatches=%d launch=%d sync=%d", n, bad,
           launch, sync);

    scale_f32<<<(n + 255) / 256, 256>>>(dc, 0.5f, n);
    e = cudaMemcpy(c.data(), dc, n * sizeof(float), cudaMemcpyDeviceToHost);
    bad = 0;
    for (int i = 0; i < n; i++) bad += c[i] != (a[i] + b[i]) * 0.5f;
    report("scale_f32", !e && bad == 0, "mismatches=%d status=%d (%s)", bad, STATUS(e));

    // a __device__ variable, set and read through the runtime's symbol calls
    float scale = 3.0f, back = 0.0f;
    void* gaddr = nullptr;
    e = cudaMemcpyToSymbol(g_scale, &scale, sizeof scale);
    e2 = cudaMemcpyFromSymbol(&back, g_scale, sizeof back);
    cudaError_t e3 = cudaGetSymbolAddress(&gaddr, g_scale);
    scale_by_global<<<(n + 255) / 256, 256>>>(dc, n);
    cudaError_t e4 = cudaMemcpy(c.data(), dc, n * sizeof(float), cudaMemcpyDeviceToHost);
    bad = 0;
    for (int i = 0; i < n; i++) bad += c[i] != (a[i] + b[i]) * 0.5f * 3.0f;
    report("device_variable", !e && !e2 && !e3 && !e4 && back == 3.0f && gaddr && bad == 0,
           "read_back=%g addr=%p mismatches=%d status=%d/%d/%d/%d", back, gaddr, bad, e, e2, e3, e4);

    cudaPointerAttributes attr;
    e = cudaPointerGetAttributes(&attr, da);
    report("pointer_attributes", !e && attr.type == cudaMemoryTypeDevice && attr.devicePointer == da,
           "type=%d", static_cast<int>(attr.type));

    // more threads per block than the device has: refused at launch, as CUDA does
    vector_add<<<1, 2048>>>(da, db, dc, n);
    e = cudaGetLastError();
    report("invalid_configuration", e == cudaErrorInvalidConfiguration, "status=%d (%s)", STATUS(e));

    // function attributes of softmax_rows (8 KiB of static shared memory): its figures, the dynamic
    // shared memory limit it launches under, raised as GGML raises it, and what CUDA refuses
    cudaFuncAttributes fa;
    memset(&fa, 0, sizeof fa);
    e = cudaFuncGetAttributes(&fa, softmax_rows);
    const int default_dynamic = static_cast<int>(prop.sharedMemPerBlock) - 8192;
    report("func_attributes", !e && fa.sharedSizeBytes == 8192 && fa.localSizeBytes == 0 && fa.numRegs > 0 &&
               fa.maxThreadsPerBlock == 1024 && fa.maxDynamicSharedSizeBytes == default_dynamic &&
               fa.preferredShmemCarveout == -1 && fa.binaryVersion == prop.major * 10 && fa.ptxVersion >= 80,
           "shared=%zu const=%zu local=%zu regs=%d max_threads=%d ptx=%d binary=%d dynamic=%d carveout=%d "
           "status=%d (%s)", fa.sharedSizeBytes, fa.constSizeBytes, fa.localSizeBytes, fa.numRegs,
           fa.maxThreadsPerBlock, fa.ptxVersion, fa.binaryVersion, fa.maxDynamicSharedSizeBytes,
           fa.preferredShmemCarveout, STATUS(e));

    const int rows = 4, cols = 256, big = 64 * 1024;
    softmax_rows<<<rows, 256, big>>>(da, dc, rows, cols);  // past the default limit: refused
    cudaError_t at_launch = cudaGetLastError();  // a GPU refuses at once; the shim's posted launch
    cudaError_t at_sync = cudaDeviceSynchronize();  // is refused by the host, reported here
    cudaGetLastError();
    e = cudaFuncSetAttribute(softmax_rows, cudaFuncAttributeMaxDynamicSharedMemorySize, big);
    softmax_rows<<<rows, 256, big>>>(da, dc, rows, cols);
    launch = cudaGetLastError();
    sync = cudaDeviceSynchronize();
    e2 = cudaMemcpy(c.data(), dc, rows * cols * sizeof(float), cudaMemcpyDeviceToHost);
    double worst = 0;
    for (int r = 0; r < rows; r++) {
        double sum = 0;
        for (int k = 0; k < cols; k++) sum += c[r * cols + k];
        worst = fmax(worst, fabs(sum - 1.0));
    }
    cudaFuncAttributes raised;
    memset(&raised, 0, sizeof raised);
    e3 = cudaFuncGetAttributes(&raised, softmax_rows);
    const int past_opt_in = static_cast<int>(prop.sharedMemPerBlockOptin) - 8192 + 1;
    cudaError_t refused[] = {
        cudaFuncSetAttribute(softmax_rows, cudaFuncAttributeMaxDynamicSharedMemorySize, past_opt_in),
        cudaFuncSetAttribute(softmax_rows, cudaFuncAttributePreferredSharedMemoryCarveout, 101),
        cudaFuncSetAttribute(softmax_rows, static_cast<cudaFuncAttribute>(3), 1),  // not settable
        cudaFuncSetAttribute(reinterpret_cast<const void*>(&prop), cudaFuncAttributeMaxDynamicSharedMemorySize, 0),
    };
    cudaError_t carveout = cudaFuncSetAttribute(softmax_rows, cudaFuncAttributePreferredSharedMemoryCarveout, 50);
    cudaGetLastError();
    report("func_set_attribute",
           (at_launch == cudaErrorInvalidValue) != (at_sync == cudaErrorInvalidValue) && !e && !launch && !sync &&
               !e2 && worst < 1e-4 && !e3 && raised.maxDynamicSharedSizeBytes == big &&
               refused[0] == cudaErrorInvalidValue && refused[1] == cudaErrorInvalidValue &&
               refused[2] == cudaErrorInvalidValue && refused[3] == cudaErrorInvalidDeviceFunction && !carveout,
           "default_refused=%d/%d set=%d launch=%d sync=%d row_sum_error=%.2g raised=%d refused=%d/%d/%d/%d "
           "carveout=%d", at_launch, at_sync, e, launch, sync, worst, raised.maxDynamicSharedSizeBytes,
           refused[0], refused[1], refused[2], refused[3], carveout);

    // a kernel the sim backend cannot run: posted, its failure reported at the next sync
    uses_mma<<<1, 32>>>(dc);
    cudaError_t posted = cudaGetLastError();
    cudaError_t reported = cudaDeviceSynchronize();
    cudaError_t after = cudaDeviceSynchronize();
    report("unreferenced_kernel", posted == cudaSuccess && after == cudaSuccess, "posted=%d status=%d (%s) after=%d",
           posted, STATUS(reported), after);

    // figures, not checks of correctness: posted launches end to end, and a round trip that waits
    const int reps = 2000;
    auto now_us = [] {
        timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
    };
    double t0 = now_us();
    for (int r = 0; r < reps; r++) scale_f32<<<1, 64>>>(da, 1.0f, 64);
    double t1 = now_us();
    e = cudaDeviceSynchronize();
    double t2 = now_us();
    for (int r = 0; r < reps; r++) e2 = cudaStreamQuery(0);
    double t3 = now_us();
    report("timings", !e && !e2, "launch_post_us=%.2f launch_end_to_end_us=%.2f round_trip_us=%.2f reps=%d",
           (t1 - t0) / reps, (t2 - t0) / reps, (t3 - t2) / reps, reps);

    e = cudaFree(da);
    e2 = cudaFree(db);
    e3 = cudaFree(dc);
    report("free", !e && !e2 && !e3, "status=%d/%d/%d", e, e2, e3);
    return finish();
}
