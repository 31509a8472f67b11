/*
 * graph_memory ROUNDS LAUNCHES: the cost of graph memory nodes per launch through the C shim
 * (benchmarks/graph_memory.py runs it against a mediator).
 *
 * Built with cc against the shim's libcudart (the few runtime calls used are declared below as NVIDIA's
 * headers declare them). Three captured graphs do the same work, a 4 KiB memset and a copy of it into
 * an output buffer, on:
 *   plain     a cudaMalloc buffer (the floor: no memory node),
 *   freed     a cudaMallocAsync block the graph also frees (alloc and free nodes),
 *   outside   a cudaMallocAsync block the graph does not free, freed by cudaFreeAsync after each launch
 *             (CUDA's rule: it may not be launched again before).
 * Per graph, ROUNDS rounds of LAUNCHES launches (and frees) on one stream and one synchronize; prints
 *   ROW graph=<name> launch_ns=<best round's time per launch>
 * and `SELFTEST PASS` when every call succeeded and the output holds the memset's bytes.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* -- the part of NVIDIA's runtime API used here ---------------------------------------------------- */
typedef int cudaError_t;
typedef struct CUstream_st *cudaStream_t;
typedef struct CUgraph_st *cudaGraph_t;
typedef struct CUgraphExec_st *cudaGraphExec_t;
enum { cudaMemcpyDeviceToDevice = 3, cudaMemcpyDeviceToHost = 2, cudaStreamCaptureModeGlobal = 0 };
cudaError_t cudaMalloc(void **ptr, size_t size);
cudaError_t cudaFree(void *ptr);
cudaError_t cudaMallocAsync(void **ptr, size_t size, cudaStream_t stream);
cudaError_t cudaFreeAsync(void *ptr, cudaStream_t stream);
cudaError_t cudaMemsetAsync(void *dst, int value, size_t count, cudaStream_t stream);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t count, int kind, cudaStream_t stream);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t count, int kind);
cudaError_t cudaStreamCreate(cudaStream_t *stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamBeginCapture(cudaStream_t stream, int mode);
cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t *graph);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph, unsigned long long flags);
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec);
cudaError_t cudaGraphDestroy(cudaGraph_t graph);
const char *cudaGetErrorString(cudaError_t err);

/* -- the benchmark ------------------------------------------------------------------------------- */

#define BYTES 4096u

static int failures;

static void check(cudaError_t err, const char *what)
{
    if (err) {
        printf("FAIL %s: %s (%d)\n", what, cudaGetErrorString(err), err);
        failures++;
    }
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

enum kind { PLAIN, FREED, OUTSIDE };

/* The graph of `kind`: memset `value` into its buffer, copy it to `out`; *block is its allocation. */
static cudaGraphExec_t make(enum kind kind, cudaStream_t s, void *plain, void *out, int value, void **block)
{
    cudaGraph_t g = NULL;
    cudaGraphExec_t x = NULL;
    check(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), "cudaStreamBeginCapture");
    *block = plain;
    if (kind != PLAIN)
        check(cudaMallocAsync(block, BYTES, s), "cudaMallocAsync (captured)");
    check(cudaMemsetAsync(*block, value, BYTES, s), "cudaMemsetAsync (captured)");
    check(cudaMemcpyAsync(out, *block, BYTES, cudaMemcpyDeviceToDevice, s), "cudaMemcpyAsync (captured)");
    if (kind == FREED)
        check(cudaFreeAsync(*block, s), "cudaFreeAsync (captured)");
    check(cudaStreamEndCapture(s, &g), "cudaStreamEndCapture");
    check(cudaGraphInstantiate(&x, g, 0), "cudaGraphInstantiate");
    check(cudaGraphDestroy(g), "cudaGraphDestroy");
    return x;
}

int main(int argc, char **argv)
{
    if (argc != 3)
        return fprintf(stderr, "usage: graph_memory ROUNDS LAUNCHES\n"), 2;
    int rounds = atoi(argv[1]), launches = atoi(argv[2]);
    static const char *const names[] = {"plain", "freed", "outside"};
    cudaStream_t s;
    void *plain, *out;
    check(cudaStreamCreate(&s), "cudaStreamCreate");
    check(cudaMalloc(&plain, BYTES), "cudaMalloc");
    check(cudaMalloc(&out, BYTES), "cudaMalloc");
    for (int k = PLAIN; k <= OUTSIDE && !failures; k++) {
        void *block;
        cudaGraphExec_t x = make((enum kind)k, s, plain, out, 0x40 + k, &block);
        double best = 1e30;
        for (int r = 0; r < rounds && !failures; r++) {
            uint64_t start = now_ns();
            for (int i = 0; i < launches; i++) {
                check(cudaGraphLaunch(x, s), "cudaGraphLaunch");
                if (k == OUTSIDE)
                    check(cudaFreeAsync(block, s), "cudaFreeAsync (outside the graph)");
            }
            check(cudaStreamSynchronize(s), "cudaStreamSynchronize");
            double per = (double)(now_ns() - start) / launches;
            best = per < best ? per : best;
        }
        unsigned char host[BYTES];
        check(cudaMemcpy(host, out, BYTES, cudaMemcpyDeviceToHost), "cudaMemcpy");
        for (unsigned i = 0; i < BYTES && !failures; i++)
            if (host[i] != 0x40 + k)
                printf("FAIL %s: byte %u is %#x\n", names[k], i, host[i]), failures++;
        check(cudaGraphExecDestroy(x), "cudaGraphExecDestroy");
        printf("ROW graph=%s launch_ns=%.0f\n", names[k], best);
    }
    check(cudaFree(plain), "cudaFree");
    check(cudaFree(out), "cudaFree");
    check(cudaStreamDestroy(s), "cudaStreamDestroy");
    printf(failures ? "SELFTEST FAIL %d\n" : "SELFTEST PASS\n", failures);
    return failures != 0;
}
