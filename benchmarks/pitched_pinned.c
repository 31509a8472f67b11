/*
 * pitched_pinned ROUNDS WIDTH HEIGHT: the pitched calls that were a call per row before the seventh
 * session: cudaMemset2D of HEIGHT rows of WIDTH bytes in pitched device memory (cudaMallocPitch), and
 * cudaMemcpy2D between it and pinned host rows (cudaMallocHost, 64 bytes apart) both ways, each beside
 * the floor: cudaMemset / cudaMemcpy of the same bytes in one contiguous run (benchmarks/pitched_pinned.py
 * runs it against a mediator).
 *
 * Built with cc against the shim's libcudart (the runtime calls used are declared below as NVIDIA's
 * headers declare them). Per case, ROUNDS calls, the best kept; prints
 *   ROW case=<name> ns=<best call's time>
 * and `SELFTEST PASS` when every call succeeded and the rows came back as they went.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef int cudaError_t;
enum { cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2 };
cudaError_t cudaMalloc(void **ptr, size_t size);
cudaError_t cudaMallocPitch(void **ptr, size_t *pitch, size_t width, size_t height);
cudaError_t cudaMallocHost(void **ptr, size_t size);
cudaError_t cudaFree(void *ptr);
cudaError_t cudaFreeHost(void *ptr);
cudaError_t cudaMemset(void *ptr, int value, size_t count);
cudaError_t cudaMemset2D(void *ptr, size_t pitch, int value, size_t width, size_t height);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t count, int kind);
cudaError_t cudaMemcpy2D(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width, size_t height,
                         int kind);
const char *cudaGetErrorString(cudaError_t err);

static int failed;

static void check(cudaError_t rc, const char *what)
{
    if (rc && !failed++)
        printf("%s: %s\n", what, cudaGetErrorString(rc));
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s ROUNDS WIDTH HEIGHT\n", argv[0]);
        return 2;
    }
    int rounds = atoi(argv[1]);
    size_t width = strtoul(argv[2], NULL, 10), height = strtoul(argv[3], NULL, 10), hpitch = width + 64, dpitch;
    char *host, *back;
    void *dense, *pitched;
    check(cudaMallocHost((void **)&host, hpitch * height), "cudaMallocHost");
    check(cudaMallocHost((void **)&back, hpitch * height), "cudaMallocHost");
    check(cudaMalloc(&dense, width * height), "cudaMalloc");
    check(cudaMallocPitch(&pitched, &dpitch, width, height), "cudaMallocPitch");
    if (failed || rounds < 1)
        return 2;
    for (size_t i = 0; i < hpitch * height; i++)
        host[i] = (char)(i * 131 + (i >> 9));
    memset(back, 0, hpitch * height);
    static const char *names[] = {"floor_memset", "memset2d", "floor_htod", "pinned_htod", "floor_dtoh",
                                  "pinned_dtoh"};
    size_t n = width * height;
    for (int which = 0; which < 6 && !failed; which++) {
        double best = 1e30;
        for (int r = 0; r < rounds; r++) {
            double t0 = now_ns();
            switch (which) {
            case 0: check(cudaMemset(dense, 0x5a, n), "floor memset"); break;
            case 1: check(cudaMemset2D(pitched, dpitch, 0x5a, width, height), "memset2d"); break;
            case 2: check(cudaMemcpy(dense, host, n, cudaMemcpyHostToDevice), "floor htod"); break;
            case 3: check(cudaMemcpy2D(pitched, dpitch, host, hpitch, width, height, cudaMemcpyHostToDevice),
                          "pinned htod"); break;
            case 4: check(cudaMemcpy(back, dense, n, cudaMemcpyDeviceToHost), "floor dtoh"); break;
            default: check(cudaMemcpy2D(back, hpitch, pitched, dpitch, width, height, cudaMemcpyDeviceToHost),
                           "pinned dtoh"); break;
            }
            double t = now_ns() - t0;
            best = t < best ? t : best;
        }
        printf("ROW case=%s ns=%.0f\n", names[which], best);
    }
    for (size_t y = 0; y < height && !failed; y++) /* the pinned round trip brought every row back */
        if (memcmp(back + y * hpitch, host + y * hpitch, width))
            check(1, "rows differ");
    cudaFree(dense);
    cudaFree(pitched);
    cudaFreeHost(host);
    cudaFreeHost(back);
    printf("%s\n", failed ? "SELFTEST FAIL" : "SELFTEST PASS");
    return failed != 0;
}
