/*
 * pinned_shim ROUNDS MAX_BATCH SIZE...: pinned copies end to end through the C shim
 * (benchmarks/pinned_shim.py runs it against a mediator).
 *
 * Built with cc against the shim's libcudart (no CUDA toolkit: the few runtime calls used are declared
 * below as NVIDIA's headers declare them). Per size and direction, ROUNDS rounds of: a batch of
 * cudaMemcpyAsync on one stream between cudaMallocHost memory and a device buffer (64 MiB worth, at
 * least 8 and at most MAX_BATCH copies; a submission ring holds 256), then one cudaStreamSynchronize, as
 * bandwidthTest's pinned mode does; and as many back-to-back C memcpy of the size between two
 * page-aligned buffers of this process, the floor, in the same round so that load weighs on both.
 * Each round's batch runs twice: first after the floor (the worker has gone to sleep meanwhile, as after
 * any pause of the application's, unless its polling window has grown past the floor's time: `total`
 * includes waking it), then at once again (`steady`: the worker
 * is still polling, as in bandwidthTest's back-to-back copies). And a handoff floor in the same round: a
 * thread of this process asleep in poll() on an eventfd, woken as the worker is by a doorbell, does the
 * batch's memcpy between two buffers of its own and sets a flag that the caller yields on — what one
 * sleep/wake handoff costs on this machine, wherever the scheduler puts the two, with no rings and no
 * Python (measured after the rounds: among them it changed where the worker ran).
 * Prints one line per size and direction with the best round's figures, per copy in ns:
 *
 *   ROW bytes=B way=htod|dtoh batch=N total=<submit to synchronized> submit=<the guest's calls alone>
 *       events=<cudaEventElapsedTime between events around the batch: the host's side> floor=<memcpy>
 *       steady=<total of the batch run again at once> handoff=<the handoff floor>
 *
 * and last `SELFTEST PASS` (every call succeeded and the bytes came back as written) or `SELFTEST FAIL`.
 */
#define _GNU_SOURCE
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

/* -- the part of NVIDIA's runtime API used here ---------------------------------------------------- */
typedef int cudaError_t;
typedef struct CUstream_st *cudaStream_t;
typedef struct CUevent_st *cudaEvent_t;
enum { cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2 };
cudaError_t cudaMallocHost(void **ptr, size_t size);
cudaError_t cudaHostRegister(void *ptr, size_t size, unsigned int flags);
cudaError_t cudaHostUnregister(void *ptr);
cudaError_t cudaFreeHost(void *ptr);
cudaError_t cudaMalloc(void **ptr, size_t size);
cudaError_t cudaFree(void *ptr);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t count, int kind, cudaStream_t stream);
cudaError_t cudaStreamCreate(cudaStream_t *stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaEventCreate(cudaEvent_t *event);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream);
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end);
cudaError_t cudaEventDestroy(cudaEvent_t event);
const char *cudaGetErrorString(cudaError_t err);

/* -- the benchmark ------------------------------------------------------------------------------- */

#define BATCH_BYTES (64u << 20) /* what one batch moves at least, as benchmarks/pinned.py's */
#define MIN_BATCH 8u

static int failures;

static int check(cudaError_t err, const char *what)
{
    if (err) {
        printf("FAIL %s: %s (%d)\n", what, cudaGetErrorString(err), err);
        failures++;
    }
    return err != 0;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct best {
    double total, submit, events, floor, steady, handoff;
};

static void keep_min(double *slot, double value)
{
    if (value < *slot)
        *slot = value;
}

/* The handoff floor's thread: asleep in poll() on `doorbell` until asked for `batch` copies of `size`
 * bytes between its own two buffers, then sets `done` (the caller spins on it). */
struct handoff {
    pthread_t thread;
    int doorbell;
    uint8_t *src, *dst;
    size_t size;
    unsigned batch;
    int done, quit; /* atomics */
    int started;
};

static void *handoff_main(void *arg)
{
    struct handoff *h = arg;
    const char *cpu = getenv("PINNED_SHIM_HANDOFF_CPU"); /* --apart: the worker's CPU, not the caller's */
    if (cpu && *cpu) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(atoi(cpu), &set);
        if (sched_setaffinity(0, sizeof set, &set))
            perror("sched_setaffinity");
    }
    for (;;) {
        struct pollfd p = {.fd = h->doorbell, .events = POLLIN};
        uint64_t value;
        if (poll(&p, 1, -1) != 1 || read(h->doorbell, &value, sizeof value) != sizeof value)
            continue;
        if (__atomic_load_n(&h->quit, __ATOMIC_ACQUIRE))
            return NULL;
        for (unsigned i = 0; i < h->batch; i++) {
            memcpy(h->dst, h->src, h->size);
            __asm__ volatile("" ::: "memory");
        }
        __atomic_store_n(&h->done, 1, __ATOMIC_RELEASE);
    }
}

/* One handoff: ring the sleeping thread, then yield until its copies are done (from the first look: a
 * thread woken onto this CPU runs at once); per copy in ns. */
static double handoff_round(struct handoff *h, size_t size, unsigned batch)
{
    struct timespec nap = {0, 300000}; /* as the worker after the floor: asleep, not polling */
    nanosleep(&nap, NULL);
    h->size = size;
    h->batch = batch;
    __atomic_store_n(&h->done, 0, __ATOMIC_RELAXED);
    uint64_t one = 1, t0 = now_ns();
    if (write(h->doorbell, &one, sizeof one) != sizeof one)
        return 1e30;
    while (!__atomic_load_n(&h->done, __ATOMIC_ACQUIRE))
        sched_yield();
    return (double)(now_ns() - t0) / batch;
}

/* What a round works with. */
struct bench {
    uint8_t *pinned, *floor_src, *floor_dst;
    void *device;
    cudaStream_t stream;
    cudaEvent_t start, stop;
    struct handoff handoff;
};

/* One batch through the shim: submit to synchronized, and the guest's calls and the host's time alone, per
 * copy in ns (0: a call failed). */
static double batch_of(const struct bench *b, int way, size_t size, unsigned batch, double *submit, double *events)
{
    uint8_t *pinned = b->pinned;
    void *device = b->device;
    cudaStream_t stream = b->stream;
    cudaEvent_t start = b->start, stop = b->stop;
    uint64_t t0 = now_ns();
    if (check(cudaEventRecord(start, stream), "cudaEventRecord"))
        return 0;
    for (unsigned i = 0; i < batch; i++) {
        cudaError_t err = way == cudaMemcpyHostToDevice
                              ? cudaMemcpyAsync(device, pinned, size, cudaMemcpyHostToDevice, stream)
                              : cudaMemcpyAsync(pinned, device, size, cudaMemcpyDeviceToHost, stream);
        if (check(err, "cudaMemcpyAsync"))
            return 0;
    }
    uint64_t t1 = now_ns();
    if (check(cudaEventRecord(stop, stream), "cudaEventRecord") ||
        check(cudaStreamSynchronize(stream), "cudaStreamSynchronize"))
        return 0;
    uint64_t t2 = now_ns();
    float ms = 0;
    if (check(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime"))
        return 0;
    *submit = (double)(t1 - t0) / batch;
    *events = (double)ms * 1e6 / batch;
    return (double)(t2 - t0) / batch;
}

/* One round of one direction: the batch through the shim from an idle worker and at once again, then the
 * floor for as many copies. */
static void round_of(struct bench *b, int way, size_t size, unsigned batch, struct best *best)
{
    double submit, events, steady_submit, steady_events;
    double total = batch_of(b, way, size, batch, &submit, &events);
    double steady = total ? batch_of(b, way, size, batch, &steady_submit, &steady_events) : 0;
    if (!total || !steady)
        return;
    keep_min(&best->total, total);
    keep_min(&best->submit, submit);
    keep_min(&best->events, events);
    keep_min(&best->steady, steady);
    uint64_t f0 = now_ns();
    for (unsigned i = 0; i < batch; i++) {
        memcpy(b->floor_dst, b->floor_src, size);
        __asm__ volatile("" ::: "memory"); /* every copy happens: none folded into the next */
    }
    keep_min(&best->floor, (double)(now_ns() - f0) / batch);
}

int main(int argc, char **argv)
{
    /* --registered: the host buffer is the program's own memory, cudaHostRegister'd (moved into the
     * region's pinned area: the same copies as cudaMallocHost memory's) */
    int registered = argc > 1 && !strcmp(argv[1], "--registered");
    argv += registered;
    argc -= registered;
    if (argc < 4) {
        fprintf(stderr, "usage: %s [--registered] ROUNDS MAX_BATCH SIZE...\n", argv[0]);
        return 2;
    }
    int rounds = atoi(argv[1]);
    unsigned max_batch = (unsigned)atoi(argv[2]);
    max_batch = max_batch < MIN_BATCH ? MIN_BATCH : max_batch;
    size_t largest = 0;
    for (int i = 3; i < argc; i++) {
        size_t size = strtoull(argv[i], NULL, 10);
        largest = size > largest ? size : largest;
    }
    struct bench b = {0};
    size_t floor_bytes = (largest + 4095) & ~(size_t)4095;
    if (registered && !(b.pinned = aligned_alloc(4096, floor_bytes))) {
        printf("FAIL out of memory for the registered buffer\n");
        failures++;
        goto out;
    }
    if ((registered ? check(cudaHostRegister(b.pinned, largest, 0), "cudaHostRegister")
                    : check(cudaMallocHost((void **)&b.pinned, largest), "cudaMallocHost")) ||
        check(cudaMalloc(&b.device, largest), "cudaMalloc") ||
        check(cudaStreamCreate(&b.stream), "cudaStreamCreate") ||
        check(cudaEventCreate(&b.start), "cudaEventCreate") ||
        check(cudaEventCreate(&b.stop), "cudaEventCreate"))
        goto out;
    b.floor_src = aligned_alloc(4096, floor_bytes);
    b.floor_dst = aligned_alloc(4096, floor_bytes);
    if (!b.floor_src || !b.floor_dst) {
        printf("FAIL out of memory for the floor's buffers\n");
        failures++;
        goto out;
    }
    memset(b.floor_src, 1, largest);
    memset(b.floor_dst, 2, largest);
    b.handoff.src = aligned_alloc(4096, floor_bytes);
    b.handoff.dst = aligned_alloc(4096, floor_bytes);
    b.handoff.doorbell = eventfd(0, 0);
    if (!b.handoff.src || !b.handoff.dst || b.handoff.doorbell < 0 ||
        pthread_create(&b.handoff.thread, NULL, handoff_main, &b.handoff)) {
        printf("FAIL the handoff floor's thread, eventfd or buffers\n");
        failures++;
        goto out;
    }
    b.handoff.started = 1;
    memset(b.handoff.src, 1, largest);
    memset(b.handoff.dst, 2, largest);
    for (int i = 3; i < argc && !failures; i++) {
        size_t size = strtoull(argv[i], NULL, 10);
        unsigned batch = (unsigned)(BATCH_BYTES / size);
        batch = batch < MIN_BATCH ? MIN_BATCH : batch > max_batch ? max_batch : batch;
        struct best best[2], warm[2];
        for (int w = 0; w < 2; w++)
            best[w] = warm[w] = (struct best){1e30, 1e30, 1e30, 1e30, 1e30, 1e30};
        for (int r = 0; r < rounds + 1 && !failures; r++) {
            struct best *keep = r ? best : warm; /* round 0 warms the host's caches: not kept */
            uint8_t value = (uint8_t)(r + i);
            memset(b.pinned, value, size);
            round_of(&b, cudaMemcpyHostToDevice, size, batch, &keep[0]);
            memset(b.pinned, 0, size);
            round_of(&b, cudaMemcpyDeviceToHost, size, batch, &keep[1]);
            for (size_t at = 0; at < size && !failures; at += 4093) /* what went up came back */
                if (b.pinned[at] != value) {
                    printf("FAIL %zu bytes: byte %zu came back %u, not %u\n", size, at, b.pinned[at], value);
                    failures++;
                }
        }
        /* the handoff floor after the rounds, not among them: its thread's wake-ups would change where the
         * scheduler puts the worker for the batches that follow (the guest's calls took 4x as long) */
        for (int r = 0; r < rounds + 1 && !failures; r++)
            keep_min(r ? &best[0].handoff : &warm[0].handoff, handoff_round(&b.handoff, size, batch));
        best[1].handoff = best[0].handoff;
        for (int w = 0; w < 2 && !failures; w++)
            printf("ROW bytes=%zu way=%s batch=%u total=%.1f submit=%.1f events=%.1f floor=%.1f steady=%.1f "
                   "handoff=%.1f\n", size, w ? "dtoh" : "htod", batch, best[w].total, best[w].submit,
                   best[w].events, best[w].floor, best[w].steady, best[w].handoff);
        fflush(stdout);
    }
out:
    if (b.handoff.started) {
        uint64_t one = 1;
        __atomic_store_n(&b.handoff.quit, 1, __ATOMIC_RELEASE);
        if (write(b.handoff.doorbell, &one, sizeof one) == sizeof one)
            pthread_join(b.handoff.thread, NULL);
        close(b.handoff.doorbell);
    }
    if (b.start)
        cudaEventDestroy(b.start);
    if (b.stop)
        cudaEventDestroy(b.stop);
    if (b.stream)
        cudaStreamDestroy(b.stream);
    if (b.device)
        cudaFree(b.device);
    if (b.pinned && registered) {
        check(cudaHostUnregister(b.pinned), "cudaHostUnregister");
        free(b.pinned);
    } else if (b.pinned) {
        cudaFreeHost(b.pinned);
    }
    free(b.floor_src);
    free(b.floor_dst);
    free(b.handoff.src);
    free(b.handoff.dst);
    puts(failures ? "SELFTEST FAIL" : "SELFTEST PASS");
    return failures != 0;
}
