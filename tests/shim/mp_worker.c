/*
 * mp_worker MODE [ARGS]: one CUDA process of a multi-process test (tests/shim/test_processes.py on
 * the host, tests/qemu/test_vm_processes.py in a VM). Built by the tests with cc against the shim's
 * libraries (no CUDA toolkit): the runtime API, cuBLAS and two driver calls, declared below as
 * NVIDIA's headers declare them.
 *
 * Every check prints `RESULT name=<name> ok=<0|1> value=<text>` and the last line is `SELFTEST PASS`
 * or `SELFTEST FAIL <n>` (tests/qemu/_support.SelftestReport parses them); lines the test waits
 * for start with a word in capitals (READY, COMPUTING, COPYING). Modes:
 *
 *   pair            print READY ptr=<its device buffer>; read `peer <pointer>` (the other process's
 *                   buffer) from stdin; compute rounds (copies, memsets, cuBLAS, a captured graph, each
 *                   checked) until `stop` arrives on stdin, printing COMPUTING after the first; the
 *                   other process's buffer must be refused (copy from it, free it) without harm.
 *   copy-loop MIB   allocate MIB, then copy MIB host to device over and over (COPYING before each):
 *                   the test kills it in the middle of one.
 *   short free|leak one short life: allocate, compute, check; `free` releases everything, `leak`
 *                   exits holding the memory, a stream, an event and a cuBLAS handle.
 *   hold MIB        allocate MIB, print READY, compute rounds until `stop` on stdin.
 *   discover        what a GPU discovery process does: count, name, compute capability,
 *                   cudaMemGetInfo, total memory; then exit.
 *   wait            allocate, print READY, wait for a line on stdin, then allocate and memset again
 *                   and print AFTER status=<cudaError_t> (the test may have stopped it meanwhile).
 *   fork            allocate, fork: the child's CUDA calls must be refused (it has no channel; as on
 *                   a GPU, CUDA does not survive fork) and its exit must leave the parent's channel
 *                   alone; the parent then computes and checks as before.
 */
#define _GNU_SOURCE
#include <math.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* -- the part of NVIDIA's API used here ---------------------------------------------------------- */
typedef int cudaError_t;
typedef struct CUstream_st *cudaStream_t;
typedef struct CUevent_st *cudaEvent_t;
typedef struct CUgraph_st *cudaGraph_t;
typedef struct CUgraphExec_st *cudaGraphExec_t;
typedef struct cublasContext *cublasHandle_t;
enum { cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2, cudaMemcpyDeviceToDevice = 3 };
enum { cudaStreamCaptureModeGlobal = 0, cudaDevAttrComputeCapabilityMajor = 75,
       cudaDevAttrComputeCapabilityMinor = 76, CUBLAS_OP_N = 0 };

cudaError_t cudaGetDeviceCount(int *count);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaDeviceGetAttribute(int *value, int attr, int device);
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes);
cudaError_t cudaMalloc(void **ptr, size_t size);
cudaError_t cudaFree(void *ptr);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, int kind);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, int kind, cudaStream_t stream);
cudaError_t cudaMemset(void *dst, int value, size_t n);
cudaError_t cudaMemsetAsync(void *dst, int value, size_t n, cudaStream_t stream);
cudaError_t cudaStreamCreate(cudaStream_t *stream);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaEventCreate(cudaEvent_t *event);
cudaError_t cudaEventDestroy(cudaEvent_t event);
cudaError_t cudaStreamBeginCapture(cudaStream_t stream, int mode);
cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t *graph);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph, unsigned long long flags);
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec);
cudaError_t cudaGraphDestroy(cudaGraph_t graph);
cudaError_t cudaGetLastError(void);
int cublasCreate_v2(cublasHandle_t *handle);
int cublasDestroy_v2(cublasHandle_t handle);
int cublasSetStream_v2(cublasHandle_t handle, cudaStream_t stream);
int cublasSgemm_v2(cublasHandle_t handle, int transa, int transb, int m, int n, int k, const float *alpha,
                   const float *a, int lda, const float *b, int ldb, const float *beta, float *c, int ldc);
int cuDeviceGetName(char *name, int len, int device);
int cuDeviceTotalMem_v2(size_t *bytes, int device);

/* -- reporting ------------------------------------------------------------------------------------ */
static int failures;

static void report(const char *name, int ok, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void report(const char *name, int ok, const char *fmt, ...)
{
    char value[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(value, sizeof value, fmt, ap);
    va_end(ap);
    printf("RESULT name=%s ok=%d value=%s\n", name, ok ? 1 : 0, value);
    fflush(stdout);
    failures += !ok;
}

static int verdict(void)
{
    if (failures)
        printf("SELFTEST FAIL %d\n", failures);
    else
        printf("SELFTEST PASS\n");
    fflush(stdout);
    return failures ? 1 : 0;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

/* A line from stdin if one is there (wait_ms: how long to wait for it), else "". */
static const char *stdin_line(int wait_ms)
{
    static char line[256];
    struct pollfd p = {.fd = 0, .events = POLLIN};
    line[0] = '\0';
    if (poll(&p, 1, wait_ms) > 0 && !fgets(line, sizeof line, stdin))
        snprintf(line, sizeof line, "stop"); /* stdin closed: the test is gone */
    return line;
}

static void fill(uint8_t *p, size_t n, uint64_t seed)
{
    uint64_t x = seed | 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (uint8_t)(x >> 24);
    }
}

/* -- one round of work, checked ------------------------------------------------------------------ */

#define BYTES (1u << 20)
#define DIM 48

struct work {
    uint8_t *a, *b, *c;      /* device buffers of BYTES */
    float *ma, *mb, *mc;     /* device matrices DIM x DIM */
    cudaStream_t stream;
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    cublasHandle_t blas;
    uint8_t *host, *back;
};

static int setup(struct work *w)
{
    int rc = cudaMalloc((void **)&w->a, BYTES) | cudaMalloc((void **)&w->b, BYTES) |
             cudaMalloc((void **)&w->c, BYTES) | cudaMalloc((void **)&w->ma, DIM * DIM * 4) |
             cudaMalloc((void **)&w->mb, DIM * DIM * 4) | cudaMalloc((void **)&w->mc, DIM * DIM * 4);
    rc |= cudaStreamCreate(&w->stream);
    /* the graph: c = 0x5A everywhere, then its first half = a's first half (copied when launched) */
    rc |= cudaStreamBeginCapture(w->stream, cudaStreamCaptureModeGlobal);
    rc |= cudaMemsetAsync(w->c, 0x5A, BYTES, w->stream);
    rc |= cudaMemcpyAsync(w->c, w->a, BYTES / 2, cudaMemcpyDeviceToDevice, w->stream);
    rc |= cudaStreamEndCapture(w->stream, &w->graph);
    rc |= cudaGraphInstantiate(&w->exec, w->graph, 0);
    rc |= cublasCreate_v2(&w->blas) | cublasSetStream_v2(w->blas, w->stream);
    w->host = malloc(BYTES);
    w->back = malloc(BYTES);
    return rc || !w->host || !w->back;
}

static void teardown(struct work *w)
{
    int rc = cublasDestroy_v2(w->blas) | cudaGraphExecDestroy(w->exec) | cudaGraphDestroy(w->graph) |
             cudaStreamDestroy(w->stream);
    void *ptrs[] = {w->a, w->b, w->c, w->ma, w->mb, w->mc};
    for (size_t i = 0; i < sizeof ptrs / sizeof ptrs[0]; i++)
        rc |= cudaFree(ptrs[i]);
    report("freed", rc == 0, "status=%d", rc);
    free(w->host);
    free(w->back);
}

/* Copies, a memset, the graph and an SGEMM, each checked on the host. 0 when all were right. */
static int round_of_work(struct work *w, unsigned round, char *why, size_t why_len)
{
    fill(w->host, BYTES, (uint64_t)getpid() << 20 | round);
    int rc = cudaMemcpy(w->a, w->host, BYTES, cudaMemcpyHostToDevice);
    rc |= cudaMemset(w->b, (int)(round & 0xff), BYTES);
    rc |= cudaGraphLaunch(w->exec, w->stream);
    static float ha[DIM * DIM], hb[DIM * DIM], hc[DIM * DIM], want[DIM * DIM];
    for (int i = 0; i < DIM * DIM; i++) {
        ha[i] = (float)((i * 7 + (int)round) % 11 - 5) / 2.0f;
        hb[i] = (float)((i * 3 + (int)round * 5) % 13 - 6) / 4.0f;
    }
    for (int i = 0; i < DIM; i++)
        for (int j = 0; j < DIM; j++) {
            double sum = 0;
            for (int l = 0; l < DIM; l++)
                sum += (double)ha[i + l * DIM] * (double)hb[l + j * DIM];
            want[i + j * DIM] = (float)sum;
        }
    const float one = 1.0f, zero = 0.0f;
    rc |= cudaMemcpy(w->ma, ha, sizeof ha, cudaMemcpyHostToDevice);
    rc |= cudaMemcpy(w->mb, hb, sizeof hb, cudaMemcpyHostToDevice);
    rc |= cublasSgemm_v2(w->blas, CUBLAS_OP_N, CUBLAS_OP_N, DIM, DIM, DIM, &one, w->ma, DIM, w->mb, DIM, &zero,
                         w->mc, DIM);
    rc |= cudaStreamSynchronize(w->stream);
    if (rc) {
        snprintf(why, why_len, "round %u: a call failed (statuses or-ed: %d)", round, rc);
        return 1;
    }
    if (cudaMemcpy(w->back, w->b, BYTES, cudaMemcpyDeviceToHost))
        return snprintf(why, why_len, "round %u: copying b back failed", round), 1;
    for (size_t i = 0; i < BYTES; i++)
        if (w->back[i] != (uint8_t)round)
            return snprintf(why, why_len, "round %u: memset byte %zu is %u", round, i, w->back[i]), 1;
    if (cudaMemcpy(w->back, w->c, BYTES, cudaMemcpyDeviceToHost))
        return snprintf(why, why_len, "round %u: copying c back failed", round), 1;
    for (size_t i = 0; i < BYTES; i++) {
        uint8_t expect = i < BYTES / 2 ? w->host[i] : 0x5A;
        if (w->back[i] != expect)
            return snprintf(why, why_len, "round %u: graph byte %zu is %u, not %u", round, i, w->back[i], expect), 1;
    }
    if (cudaMemcpy(hc, w->mc, sizeof hc, cudaMemcpyDeviceToHost))
        return snprintf(why, why_len, "round %u: copying the GEMM back failed", round), 1;
    for (int i = 0; i < DIM * DIM; i++)
        if (fabsf(hc[i] - want[i]) > 1e-3f)
            return snprintf(why, why_len, "round %u: gemm[%d] is %g, not %g", round, i, (double)hc[i],
                            (double)want[i]), 1;
    return 0;
}

/* Rounds until `stop` arrives on stdin; COMPUTING after the first. */
static void compute_until_stopped(struct work *w, void *peer)
{
    unsigned rounds = 0, bad = 0;
    char why[256] = "";
    int peer_copy = -1, peer_free = -1;
    for (;;) {
        if (round_of_work(w, rounds + 1, why, sizeof why))
            bad++;
        rounds++;
        if (rounds == 1) {
            if (peer) { /* another process's memory is not ours to read or free */
                uint8_t probe[4096];
                peer_copy = cudaMemcpy(probe, peer, sizeof probe, cudaMemcpyDeviceToHost);
                peer_free = cudaFree(peer);
                cudaGetLastError();
            }
            say("COMPUTING");
        }
        if (!strncmp(stdin_line(0), "stop", 4) || bad)
            break;
    }
    report("rounds", bad == 0 && rounds >= 2, "rounds=%u bad=%u %s", rounds, bad, why);
    if (peer)
        report("peer_refused", peer_copy != 0 && peer_free != 0, "copy_status=%d free_status=%d", peer_copy,
               peer_free);
}

/* -- modes ------------------------------------------------------------------------------------------ */

static int mode_pair(void)
{
    struct work w = {0};
    int rc = setup(&w);
    report("setup", rc == 0, "status=%d", rc);
    if (rc)
        return verdict();
    say("READY ptr=%p", (void *)w.a);
    const char *line;
    while (!*(line = stdin_line(60000)))
        ;
    void *peer = NULL;
    if (sscanf(line, "peer %p", &peer) != 1)
        report("peer", 0, "expected `peer <pointer>`, got %s", line);
    compute_until_stopped(&w, peer);
    teardown(&w);
    return verdict();
}

static int mode_copy_loop(size_t mib)
{
    size_t bytes = mib << 20;
    void *dev = NULL;
    uint8_t *host = malloc(bytes);
    int rc = host ? cudaMalloc(&dev, bytes) : -1;
    report("alloc", rc == 0, "bytes=%zu status=%d", bytes, rc);
    if (rc)
        return verdict();
    fill(host, bytes, 7);
    for (unsigned round = 1;; round++) {
        say("COPYING round=%u", round);
        if ((rc = cudaMemcpy(dev, host, bytes, cudaMemcpyHostToDevice))) {
            report("copy", 0, "round=%u status=%d", round, rc);
            return verdict();
        }
    }
}

static int mode_short(int leak)
{
    uint8_t *dev = NULL;
    static uint8_t host[65536], back[65536];
    fill(host, sizeof host, (uint64_t)getpid());
    int rc = cudaMalloc((void **)&dev, 1u << 20);
    rc |= cudaMemcpy(dev, host, sizeof host, cudaMemcpyHostToDevice);
    rc |= cudaMemset(dev + sizeof host, 0x33, sizeof back);
    rc |= cudaMemcpy(back, dev, sizeof back, cudaMemcpyDeviceToHost);
    int same = !memcmp(back, host, sizeof back);
    rc |= cudaMemcpy(back, dev + sizeof host, sizeof back, cudaMemcpyDeviceToHost);
    int set = back[0] == 0x33 && back[sizeof back - 1] == 0x33;
    if (leak) { /* exit holding memory and handles of every kind: the host frees them */
        cudaStream_t stream;
        cudaEvent_t event;
        cublasHandle_t blas;
        rc |= cudaStreamCreate(&stream) | cudaEventCreate(&event) | cublasCreate_v2(&blas);
    } else {
        rc |= cudaFree(dev);
    }
    report("short", rc == 0 && same && set, "status=%d copy_ok=%d memset_ok=%d leak=%d", rc, same, set, leak);
    return verdict();
}

static int mode_hold(size_t mib)
{
    void *big = NULL;
    int rc = cudaMalloc(&big, mib << 20);
    rc |= cudaMemset(big, 0x11, mib << 20);
    struct work w = {0};
    rc |= setup(&w);
    report("hold", rc == 0, "bytes=%zu status=%d", mib << 20, rc);
    if (rc)
        return verdict();
    say("READY ptr=%p", big);
    compute_until_stopped(&w, NULL);
    teardown(&w);
    report("released", cudaFree(big) == 0, "bytes=%zu", mib << 20);
    return verdict();
}

static int mode_discover(void)
{
    int count = 0, major = 0, minor = 0;
    char name[256] = "";
    size_t free_bytes = 0, total = 0, total_mem = 0;
    int rc = cudaGetDeviceCount(&count);
    report("count", rc == 0 && count >= 1, "status=%d count=%d", rc, count);
    if (rc)
        return verdict();
    rc = cudaSetDevice(0) | cuDeviceGetName(name, sizeof name, 0) |
         cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0) |
         cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, 0) |
         cudaMemGetInfo(&free_bytes, &total) | cuDeviceTotalMem_v2(&total_mem, 0);
    report("discover", rc == 0 && name[0] && major > 0 && total > 0 && free_bytes <= total,
           "status=%d name=%s cc=%d.%d free=%zu total=%zu total_mem=%zu", rc, name, major, minor, free_bytes,
           total, total_mem);
    return verdict();
}

static int mode_wait(void)
{
    void *first = NULL, *second = NULL;
    int rc = cudaMalloc(&first, 1u << 20) | cudaMemset(first, 1, 1u << 20);
    report("wait", rc == 0, "status=%d", rc);
    say("READY ptr=%p", first);
    while (!*stdin_line(600000))
        ;
    rc = cudaMalloc(&second, 1u << 20);
    if (rc == 0)
        rc = cudaMemset(second, 2, 1u << 20);
    say("AFTER status=%d", rc);
    return 0;
}

static int mode_fork(void)
{
    struct work w = {0};
    int rc = setup(&w);
    char why[256] = "";
    int before = rc ? 1 : round_of_work(&w, 1, why, sizeof why);
    report("before_fork", rc == 0 && before == 0, "status=%d %s", rc, why);
    pid_t child = fork();
    if (child == 0) {
        void *mine = NULL;
        int memset_status = cudaMemset(w.b, 0, BYTES), malloc_status = cudaMalloc(&mine, 4096);
        report("child_refused", memset_status != 0 && malloc_status != 0, "memset_status=%d malloc_status=%d",
               memset_status, malloc_status);
        exit(0); /* destructors run: the parent's channel must stay open */
    }
    int status = 0;
    waitpid(child, &status, 0);
    report("child_exit", WIFEXITED(status) && WEXITSTATUS(status) == 0, "status=%#x", status);
    int after = round_of_work(&w, 2, why, sizeof why);
    report("parent_after_fork", after == 0, "%s", why);
    teardown(&w);
    return verdict();
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    if (!strcmp(mode, "pair"))
        return mode_pair();
    if (!strcmp(mode, "copy-loop") && argc > 2)
        return mode_copy_loop(strtoull(argv[2], NULL, 10));
    if (!strcmp(mode, "short") && argc > 2)
        return mode_short(!strcmp(argv[2], "leak"));
    if (!strcmp(mode, "hold") && argc > 2)
        return mode_hold(strtoull(argv[2], NULL, 10));
    if (!strcmp(mode, "discover"))
        return mode_discover();
    if (!strcmp(mode, "wait"))
        return mode_wait();
    if (!strcmp(mode, "fork"))
        return mode_fork();
    fprintf(stderr, "usage: %s pair | copy-loop MIB | short free|leak | hold MIB | discover | wait | fork\n", argv[0]);
    return 2;
}
