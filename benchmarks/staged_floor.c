/* The best a staged (two-copy) copy can do on this machine, in C, with nothing of ours in it.
 *
 * Two processes share an anonymous shared mapping (shmem, as the region's memfd is): the "guest" on
 * one CPU, the "host" on another, each spinning on the other's counter (no calls, no rings, no sleeps).
 * htod: the guest copies the source into the arena chunk by chunk and publishes each; the host copies
 * each chunk out into its own "device" buffer and publishes it; the copy ends when the host has the
 * last chunk. dtoh: the guest asks, the host copies device chunks into the arena (as far ahead as the
 * arena lets it), the guest copies each out. Every copy starts at the arena's first byte, as ours do.
 * Beside it, in the same run: one memcpy of the size in one process (the memcpy floor) and two
 * processes each doing one such memcpy at the same time (what the memory system gives two copies).
 *
 *   staged_floor MODE SIZE CHUNK REPEATS GUEST_CPU HOST_CPU [NT [ROTATE]]
 *   MODE: htod | dtoh | one | two; NT=1: the arena is written with non-temporal stores; ROTATE=1: each
 *   copy starts where the last one ended in the arena (both slower here: see docs/benchmarks.md)
 *
 * Prints "best_ns median_ns" over REPEATS copies (after as many warm-up copies); exits 1 if the bytes
 * that came through are not the sender's.
 */
#define _GNU_SOURCE
#include <emmintrin.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LINE 64
#define ARENA_BYTES (16u << 20) /* the benchmark channel's arena is about this */

struct shared {
    _Alignas(LINE) _Atomic uint64_t posted;   /* chunks the producer has published (running total) */
    _Alignas(LINE) _Atomic uint64_t consumed; /* chunks the consumer has taken (running total) */
    _Alignas(LINE) _Atomic uint64_t go;       /* copies started (dtoh: the guest's request; two: both) */
    _Alignas(LINE) _Atomic uint64_t ready;    /* two: processes at the barrier */
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set)) {
        perror("sched_setaffinity");
        exit(2);
    }
}

static void *buffer(size_t size, int fill, int shared)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS,
                   -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        exit(2);
    }
    memset(p, fill, size); /* touched: no first-use faults in a timed copy */
    return p;
}

/* memcpy with non-temporal 16-byte stores (dst 16-byte aligned): no read-for-ownership of lines
 * the other core holds, and they do not evict the writer's cache. */
static void copy_nt(uint8_t *dst, const uint8_t *src, size_t n)
{
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        __m128i a = _mm_loadu_si128((const __m128i *)(src + i)), b = _mm_loadu_si128((const __m128i *)(src + i + 16));
        __m128i c = _mm_loadu_si128((const __m128i *)(src + i + 32)), d = _mm_loadu_si128((const __m128i *)(src + i + 48));
        _mm_stream_si128((__m128i *)(dst + i), a);
        _mm_stream_si128((__m128i *)(dst + i + 16), b);
        _mm_stream_si128((__m128i *)(dst + i + 32), c);
        _mm_stream_si128((__m128i *)(dst + i + 48), d);
    }
    memcpy(dst + i, src + i, n - i);
    _mm_sfence();
}

static void wait_until(_Atomic uint64_t *word, uint64_t at_least)
{
    while (atomic_load_explicit(word, memory_order_acquire) < at_least)
        _mm_pause();
}

/* Byte i of a side's own buffer: a pattern with the side's seed, so a chunk copied to the wrong place
 * or not at all shows in check(). */
static void fill_pattern(uint8_t *p, size_t size, unsigned seed)
{
    for (size_t i = 0; i < size; i++)
        p[i] = (uint8_t)((i >> 12) * 131 + i + seed);
}

static int check(const uint8_t *p, size_t size, unsigned seed)
{
    for (size_t i = 0; i < size; i++)
        if (p[i] != (uint8_t)((i >> 12) * 131 + i + seed)) {
            fprintf(stderr, "byte %zu of the copy is wrong\n", i);
            return 1;
        }
    return 0;
}

static int by_value(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Produce chunks [0, n) of one copy into the arena: from src (htod guest, dtoh host). */
static void produce(struct shared *s, uint8_t *arena, const uint8_t *src, size_t size, size_t chunk, uint64_t base,
                    uint64_t first, uint64_t slots, int nt)
{
    uint64_t n = (size + chunk - 1) / chunk;
    for (uint64_t i = 0; i < n; i++) {
        size_t off = i * chunk, len = size - off < chunk ? size - off : chunk;
        if (i >= slots)
            wait_until(&s->consumed, base + i - slots + 1);
        uint8_t *at = arena + ((first + i) % slots) * chunk;
        if (nt)
            copy_nt(at, src + off, len);
        else
            memcpy(at, src + off, len);
        atomic_store_explicit(&s->posted, base + i + 1, memory_order_release);
    }
}

/* Consume chunks [0, n) of one copy out of the arena into dst. */
static void consume(struct shared *s, const uint8_t *arena, uint8_t *dst, size_t size, size_t chunk, uint64_t base,
                    uint64_t first, uint64_t slots)
{
    uint64_t n = (size + chunk - 1) / chunk;
    for (uint64_t i = 0; i < n; i++) {
        size_t off = i * chunk, len = size - off < chunk ? size - off : chunk;
        wait_until(&s->posted, base + i + 1);
        memcpy(dst + off, arena + ((first + i) % slots) * chunk, len);
        atomic_store_explicit(&s->consumed, base + i + 1, memory_order_release);
    }
}

int main(int argc, char **argv)
{
    if (argc < 7) {
        fprintf(stderr, "usage: %s htod|dtoh|one|two SIZE CHUNK REPEATS GUEST_CPU HOST_CPU [NT]\n", argv[0]);
        return 2;
    }
    const char *mode = argv[1];
    size_t size = strtoull(argv[2], NULL, 0), chunk = strtoull(argv[3], NULL, 0);
    int repeats = atoi(argv[4]), guest_cpu = atoi(argv[5]), host_cpu = atoi(argv[6]);
    int nt = argc > 7 && atoi(argv[7]), rotate = argc > 8 && atoi(argv[8]);
    int htod = !strcmp(mode, "htod"), dtoh = !strcmp(mode, "dtoh"), two = !strcmp(mode, "two");
    chunk = (htod || dtoh) ? (chunk + 4095) / 4096 * 4096 : 4096;
    if (!size || !chunk || repeats < 1 || chunk > ARENA_BYTES) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    uint64_t slots = ARENA_BYTES / chunk, n = (size + chunk - 1) / chunk, total = 2 * (uint64_t)repeats;
    struct shared *s = buffer(sizeof *s, 0, 1);
    uint8_t *arena = buffer(ARENA_BYTES, 0, 1);
    uint64_t *times = buffer(total * sizeof *times, 0, 1);

    if (!htod && !dtoh && !two) { /* one: the memcpy floor, one process */
        pin(guest_cpu);
        uint8_t *src = buffer(size, 1, 0), *dst = buffer(size, 0, 0);
        for (uint64_t r = 0; r < total; r++) {
            uint64_t t0 = now_ns();
            memcpy(dst, src, size);
            times[r] = now_ns() - t0;
        }
    } else {
        pid_t host = fork();
        if (host < 0) {
            perror("fork");
            return 2;
        }
        int is_host = host == 0;
        pin(is_host ? host_cpu : guest_cpu);
        /* each side's own buffer, written by it: the application's, or the device's */
        uint8_t *mine = buffer(size, 0, 0), *other = buffer(size, 0, 0);
        fill_pattern(mine, size, is_host ? 2 : 1);
        for (uint64_t r = 0; r < total; r++) {
            uint64_t base = r * n, first = rotate ? base % slots : 0;
            if (two) { /* both copy their own buffers at once, from a common start */
                atomic_fetch_add(&s->ready, 1);
                wait_until(&s->ready, 2 * (r + 1));
                uint64_t t0 = now_ns();
                memcpy(other, mine, size);
                atomic_fetch_add(&s->go, 1);
                wait_until(&s->go, 2 * (r + 1));
                if (!is_host)
                    times[r] = now_ns() - t0; /* until both are done */
            } else if (is_host) {
                if (htod) {
                    consume(s, arena, other, size, chunk, base, first, slots);
                } else {
                    wait_until(&s->go, r + 1);
                    produce(s, arena, mine, size, chunk, base, first, slots, nt);
                }
            } else {
                uint64_t t0 = now_ns();
                if (htod) {
                    produce(s, arena, mine, size, chunk, base, first, slots, nt);
                    wait_until(&s->consumed, base + n);
                } else {
                    atomic_store_explicit(&s->go, r + 1, memory_order_release);
                    consume(s, arena, other, size, chunk, base, first, slots);
                }
                times[r] = now_ns() - t0;
            }
        }
        /* what came through: the guest's bytes at the host (htod), the host's at the guest (dtoh) */
        int bad = (htod && is_host && check(other, size, 1)) || (dtoh && !is_host && check(other, size, 2));
        if (is_host)
            _exit(bad);
        int status;
        waitpid(host, &status, 0);
        if (bad || !WIFEXITED(status) || WEXITSTATUS(status))
            return 1;
    }
    qsort(times + repeats, (size_t)repeats, sizeof *times, by_value); /* the first half warmed up */
    printf("%llu %llu\n", (unsigned long long)times[repeats], (unsigned long long)times[repeats + repeats / 2]);
    return 0;
}
