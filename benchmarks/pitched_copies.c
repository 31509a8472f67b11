/*
 * pitched_copies ROUNDS WIDTH HEIGHT: cudaMemcpy2D of HEIGHT rows of WIDTH bytes between pitched device
 * memory (cudaMallocPitch) and host rows 64 bytes apart, both ways and device to device, beside the
 * floor: cudaMemcpy of the same bytes in one contiguous run (benchmarks/pitched_copies.py runs it
 * against a mediator).
 *
 * Built with cc against the shim's libcudart (the few runtime calls used are declared below as NVIDIA's
 * headers declare them). Per case, ROUNDS copies, the best kept; prints
 *   ROW case=<name> ns=<best copy's time>
 * and `SELFTEST PASS` when every call succeeded and the rows came back as they went.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* -- the part of NVIDIA's runtime API used here ---------------------------------------------------- */
typedef int cudaError_t;
enum { cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2, cudaMemcpyDeviceToDevice = 3 };
cudaError_t cudaMalloc(void **ptr, size_t size);
cudaError_t cudaMallocPitch(void **ptr, size_t *pitch, size_t width, size_t height);
cudaError_t cudaFree(void *ptr);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t count, int kind);
cudaError_t cudaMemcpy2D(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width, size_t height,
                         int kind);
const char *cudaGetErrorString(cudaError_t err);

/* -- the benchmark ------------------------------------------------------------------------------- */

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

struct bench {
    size_t width, height, hpitch, dpitch, dpitch2;
    char *host, *back;
    void *dense, *dense2, *pitched, *pitched2;
};

static void run_case(const struct bench *b, int which)
{
    size_t n = b->width * b->height;
    switch (which) {
    case 0: check(cudaMemcpy(b->dense, b->host, n, cudaMemcpyHostToDevice), "floor htod"); break;
    case 1: check(cudaMemcpy2D(b->pitched, b->dpitch, b->host, b->hpitch, b->width, b->height,
                               cudaMemcpyHostToDevice), "pitched htod"); break;
    case 2: check(cudaMemcpy(b->back, b->dense, n, cudaMemcpyDeviceToHost), "floor dtoh"); break;
    case 3: check(cudaMemcpy2D(b->back, b->hpitch, b->pitched, b->dpitch, b->width, b->height,
                               cudaMemcpyDeviceToHost), "pitched dtoh"); break;
    case 4: check(cudaMemcpy(b->dense2, b->dense, n, cudaMemcpyDeviceToDevice), "floor dtod"); break;
    default: check(cudaMemcpy2D(b->pitched2, b->dpitch2, b->pitched, b->dpitch, b->width, b->height,
                                cudaMemcpyDeviceToDevice), "pitched dtod"); break;
    }
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s ROUNDS WIDTH HEIGHT\n", argv[0]);
        return 2;
    }
    int rounds = atoi(argv[1]);
    struct bench b = {.width = strtoul(argv[2], NULL, 10), .height = strtoul(argv[3], NULL, 10)};
    b.hpitch = b.width + 64;
    b.host = malloc(b.hpitch * b.height);
    b.back = calloc(b.hpitch, b.height);
    if (!b.host || !b.back || rounds < 1)
        return 2;
    for (size_t i = 0; i < b.hpitch * b.height; i++)
        b.host[i] = (char)(i * 131 + (i >> 9));
    check(cudaMalloc(&b.dense, b.width * b.height), "cudaMalloc");
    check(cudaMalloc(&b.dense2, b.width * b.height), "cudaMalloc");
    check(cudaMallocPitch(&b.pitched, &b.dpitch, b.width, b.height), "cudaMallocPitch");
    check(cudaMallocPitch(&b.pitched2, &b.dpitch2, b.width + 1024, b.height), "cudaMallocPitch");
    static const char *names[] = {"floor_htod", "pitched_htod", "floor_dtoh", "pitched_dtoh", "floor_dtod",
                                  "pitched_dtod"};
    for (int which = 0; which < 6 && !failed; which++) {
        double best = 1e30;
        for (int r = 0; r < rounds; r++) {
            double t0 = now_ns();
            run_case(&b, which);
            double t = now_ns() - t0;
            best = t < best ? t : best;
        }
        printf("ROW case=%s ns=%.0f\n", names[which], best);
    }
    for (size_t y = 0; y < b.height && !failed; y++) /* the pitched round trip brought every row back */
        if (memcmp(b.back + y * b.hpitch, b.host + y * b.hpitch, b.width))
            check(1, "rows differ");
    cudaFree(b.dense);
    cudaFree(b.dense2);
    cudaFree(b.pitched);
    cudaFree(b.pitched2);
    printf("%s\n", failed ? "SELFTEST FAIL" : "SELFTEST PASS");
    return failed != 0;
}
