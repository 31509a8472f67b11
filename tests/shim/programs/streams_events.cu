// Streams and events: pinned memory, asynchronous copies and launches on two streams ordered by an
// event, timing, queries, asynchronous memsets, and an asynchronous error latched until the
// stream is synchronized.
#include <cstdint>
#include <cstring>
#include <vector>

#include "check.h"
#include "../../kernels/test_kernels.cu"

int main() {
    const int n = 1 << 20;
    const size_t bytes = n * sizeof(float);
    float *ha = nullptr, *hb = nullptr, *hout = nullptr;
    cudaError_t e = cudaMallocHost(&ha, bytes);
    cudaError_t e2 = cudaHostAlloc(&hb, bytes, cudaHostAllocDefault);
    cudaError_t e3 = cudaMallocHost(&hout, bytes);
    bool aligned = (reinterpret_cast<uintptr_t>(ha) | reinterpret_cast<uintptr_t>(hb) |
                    reinterpret_cast<uintptr_t>(hout)) % 256 == 0;
    report("pinned_alloc", !e && !e2 && !e3 && aligned, "a=%p b=%p out=%p aligned256=%d", (void*)ha, (void*)hb,
           (void*)hout, aligned);
    for (int i = 0; i < n; i++) {
        ha[i] = static_cast<float>(i % 501) - 250.0f;
        hb[i] = static_cast<float>(i % 13);
    }

    cudaStream_t s1, s2;
    e = cudaStreamCreateWithFlags(&s1, cudaStreamNonBlocking);
    e2 = cudaStreamCreate(&s2);
    unsigned int flags = 99;
    e3 = cudaStreamGetFlags(s1, &flags);
    report("streams", !e && !e2 && !e3 && flags == cudaStreamNonBlocking, "flags=%u", flags);

    cudaEvent_t start, done, marker;
    e = cudaEventCreate(&start);
    e2 = cudaEventCreate(&done);
    e3 = cudaEventCreateWithFlags(&marker, cudaEventDisableTiming);
    report("events", !e && !e2 && !e3, "status=%d/%d/%d", e, e2, e3);

    float *da, *db, *dsum, *drelu;
    cudaMalloc(&da, bytes);
    cudaMalloc(&db, bytes);
    cudaMalloc(&dsum, bytes);
    cudaMalloc(&drelu, bytes);

    // s1: copy in, add, mark; s2: wait for the mark, relu, copy out
    cudaEventRecord(start, s1);
    e = cudaMemcpyAsync(da, ha, bytes, cudaMemcpyHostToDevice, s1);
    e2 = cudaMemcpyAsync(db, hb, bytes, cudaMemcpyHostToDevice, s1);
    vector_add<<<(n + 255) / 256, 256, 0, s1>>>(da, db, dsum, n);
    e3 = cudaEventRecord(done, s1);
    cudaError_t e4 = cudaStreamWaitEvent(s2, done, 0);
    relu_f32<<<(n + 255) / 256, 256, 0, s2>>>(dsum, drelu, n);
    cudaError_t e5 = cudaMemcpyAsync(hout, drelu, bytes, cudaMemcpyDeviceToHost, s2);
    cudaError_t e6 = cudaStreamSynchronize(s2);
    int bad = 0;
    for (int i = 0; i < n; i++) {
        float sum = ha[i] + hb[i];
        bad += hout[i] != (sum > 0.0f ? sum : 0.0f);
    }
    report("two_streams", !e && !e2 && !e3 && !e4 && !e5 && !e6 && bad == 0, "mismatches=%d status=%d/%d/%d/%d/%d/%d",
           bad, e, e2, e3, e4, e5, e6);

    e = cudaEventSynchronize(done);
    e2 = cudaEventQuery(done);
    float ms = -1.0f;
    e3 = cudaEventElapsedTime(&ms, start, done);
    e4 = cudaStreamQuery(s1);
    report("event_timing", !e && !e2 && !e3 && !e4 && ms >= 0.0f, "ms=%.3f status=%d/%d/%d/%d", ms, e, e2, e3, e4);

    // a timing query on an event created without timing is refused by the device
    cudaEventRecord(marker, s1);
    cudaEventSynchronize(marker);
    e = cudaEventElapsedTime(&ms, start, marker);
    report("event_without_timing", e != cudaSuccess, "status=%d (%s)", STATUS(e));

    e = cudaMemsetAsync(dsum, 0x3f, bytes, s1);
    e2 = cudaMemcpyAsync(hout, dsum, bytes, cudaMemcpyDeviceToHost, s1);
    e3 = cudaStreamSynchronize(s1);
    unsigned int word;
    memcpy(&word, &hout[n - 1], sizeof word);
    report("memset_async", !e && !e2 && !e3 && word == 0x3f3f3f3fu, "word=%#x", word);

    // asynchronous work that fails on the device: accepted when posted, reported by the sync
    e = cudaMemsetAsync(reinterpret_cast<void*>(0x1000), 0, 4096, s1);  // no allocation of ours
    e2 = cudaStreamSynchronize(s1);
    e3 = cudaStreamSynchronize(s1);
    report("async_error_latched", e == cudaSuccess && e2 != cudaSuccess && e3 == cudaSuccess,
           "posted=%d reported=%d (%s) after=%d", e, STATUS(e2), e3);

    e = cudaStreamDestroy(s1);
    e2 = cudaStreamDestroy(s2);
    e3 = cudaEventDestroy(start);
    e4 = cudaEventDestroy(done);
    e5 = cudaEventDestroy(marker);
    e6 = cudaFreeHost(ha);
    cudaError_t e7 = cudaFreeHost(hb);
    cudaError_t e8 = cudaFreeHost(hout);
    cudaFree(da);
    cudaFree(db);
    cudaFree(dsum);
    cudaFree(drelu);
    report("cleanup", !e && !e2 && !e3 && !e4 && !e5 && !e6 && !e7 && !e8, "status=%d/%d/%d/%d/%d/%d/%d/%d", e, e2, e3,
           e4, e5, e6, e7, e8);
    return finish();
}
