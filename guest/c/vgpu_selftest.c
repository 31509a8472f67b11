/*
 * vgpu_selftest: a small CUDA workload through libvgpu_transport, checked on the guest side.
 *
 * Runs inside a VM (PCI backend) or on the host (VGPU_TRANSPORT_SOCKET=<vm socket>, or
 * `--socket PATH`). Every check prints one line
 *
 *     RESULT name=<name> ok=<0|1> value=<free text up to the end of the line>
 *
 * and the last line is `SELFTEST PASS` or `SELFTEST FAIL <number of failed checks>`; the exit
 * status is 0 only on PASS. tests/qemu/ parses these lines.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vgpu_transport.h"

#include "vgpu_protocol.h"

#define CUDA_ERROR_INVALID_VALUE 1u
#define COMPLETE_LATCHED 2u
#define CUBLAS_OP_N 0u
#define COPY_BYTES (16u << 20)

static int failures;
static struct cuda_transport *T;
static int copy_rounds = 1; /* > 1 pushes more bytes through the arena than it holds: reuse */

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
    if (!ok)
        failures++;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* A synchronous call whose result struct (if any) lands in `res`. Returns status or transport error. */
static int call(uint16_t id, const void *args, uint32_t nargs, void *res, size_t res_size,
                struct cuda_call_result *raw)
{
    struct cuda_call_result local;
    struct cuda_call_result *r = raw ? raw : &local;
    int rc = cuda_transport_call(T, id, args, nargs, NULL, 0, r, NULL, 0, NULL);
    if (rc < 0)
        fprintf(stderr, "transport error %d (%s): %s\n", rc, cuda_transport_strerror(rc),
                cuda_transport_last_error());
    if (rc == 0 && res)
        memcpy(res, r->results, res_size);
    return rc;
}

static int post(uint16_t id, const void *args, uint32_t nargs)
{
    int rc = cuda_transport_post(T, id, args, nargs, NULL, 0);
    if (rc < 0)
        fprintf(stderr, "transport error %d (%s): %s\n", rc, cuda_transport_strerror(rc),
                cuda_transport_last_error());
    return rc;
}

static uint64_t mem_alloc(uint64_t bytes, int *rc)
{
    struct vgpu_args_mem_alloc a = {.bytesize = bytes};
    struct vgpu_result_mem_alloc r = {0};
    *rc = call(VGPU_CALL_MEM_ALLOC, &a, sizeof a, &r, sizeof r, NULL);
    return *rc == 0 ? r.dptr : 0;
}

static int mem_free(uint64_t dptr)
{
    struct vgpu_args_mem_free a = {.dptr = dptr};
    return call(VGPU_CALL_MEM_FREE, &a, sizeof a, NULL, 0, NULL);
}

static void fill_pattern(uint8_t *p, size_t n, uint64_t seed)
{
    uint64_t x = seed | 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (uint8_t)(x >> 24);
    }
}

static void test_device(void)
{
    struct vgpu_args_init init = {.flags = 0};
    int rc = call(VGPU_CALL_INIT, &init, sizeof init, NULL, 0, NULL);
    report("init", rc == 0, "status=%d", rc);

    struct vgpu_result_device_get_count count = {0};
    rc = call(VGPU_CALL_DEVICE_GET_COUNT, NULL, 0, &count, sizeof count, NULL);
    report("device_count", rc == 0 && count.value >= 1, "%d", rc == 0 ? count.value : -1);

    struct vgpu_args_device_get_name name_args = {.device = 0};
    char name[256] = "";
    size_t got = 0;
    struct cuda_call_result r;
    rc = cuda_transport_call(T, VGPU_CALL_DEVICE_GET_NAME, &name_args, sizeof name_args, NULL, 0, &r,
                             name, sizeof name - 1, &got);
    name[got < sizeof name ? got : sizeof name - 1] = '\0';
    report("device_name", rc == 0 && name[0] != '\0', "%s", name);

    struct vgpu_args_device_total_mem mem_args = {.device = 0};
    struct vgpu_result_device_total_mem total = {0};
    rc = call(VGPU_CALL_DEVICE_TOTAL_MEM, &mem_args, sizeof mem_args, &total, sizeof total, NULL);
    report("device_total_mem", rc == 0 && total.bytes >= COPY_BYTES, "%llu",
           (unsigned long long)total.bytes);
}

/* 16 MiB in and out, byte for byte; then a memset in the middle of it. */
static void test_copies(void)
{
    int rc;
    uint64_t dptr = mem_alloc(COPY_BYTES, &rc);
    report("mem_alloc", rc == 0 && dptr != 0 && dptr % 256 == 0, "0x%llx", (unsigned long long)dptr);
    if (rc)
        return;
    uint8_t *out = malloc(COPY_BYTES), *back = malloc(COPY_BYTES);
    if (!out || !back) {
        report("copy_16mib", 0, "out of memory");
        free(out);
        free(back);
        return;
    }
    double htod_ms = 0, dtoh_ms = 0;
    size_t mismatches = 0, first = (size_t)-1;
    int htod = 0, dtoh = 0;
    struct cuda_call_result r;
    struct cuda_transport_stats before, after;
    size_t chunks = 0; /* the submissions of one htod copy: the transport picks its chunks */
    for (int round = 0; round < copy_rounds && !htod && !dtoh; round++) {
        fill_pattern(out, COPY_BYTES, 0x9e3779b97f4a7c15ull + (uint64_t)round);
        memset(back, 0, COPY_BYTES);
        cuda_transport_get_stats(T, &before);
        double t0 = now_ms();
        htod = cuda_transport_memcpy_htod(T, dptr, 0, out, COPY_BYTES, 0, &r);
        double t1 = now_ms();
        cuda_transport_get_stats(T, &after);
        chunks = (size_t)(after.submitted - before.submitted);
        dtoh = cuda_transport_memcpy_dtoh(T, back, dptr, 0, COPY_BYTES, &r);
        double t2 = now_ms();
        htod_ms += t1 - t0;
        dtoh_ms += t2 - t1;
        for (size_t i = 0; i < COPY_BYTES; i++)
            if (out[i] != back[i]) {
                if (!mismatches)
                    first = i;
                mismatches++;
            }
    }
    report("copy_16mib", htod == 0 && dtoh == 0 && mismatches == 0,
           "bytes=%u rounds=%d mismatches=%zu first_mismatch=%lld chunks=%zu htod_ms=%.2f dtoh_ms=%.2f "
           "htod_status=%d dtoh_status=%d", COPY_BYTES, copy_rounds, mismatches,
           mismatches ? (long long)first : -1LL, chunks, htod_ms / copy_rounds, dtoh_ms / copy_rounds,
           htod, dtoh);

    /* memset_d8 over [4096, 4096 + 1000): synchronous (no ASYNC flag: CUDA's cuMemsetD8) */
    struct vgpu_args_memset_d8 ms = {.dst = dptr + 4096, .count = 1000, .value = 0xA5, .stream = 0};
    int set = call(VGPU_CALL_MEMSET_D8, &ms, sizeof ms, NULL, 0, NULL);
    uint8_t window[8192];
    int rd = cuda_transport_memcpy_dtoh(T, window, dptr, 0, sizeof window, &r);
    size_t bad = 0;
    for (size_t i = 0; i < sizeof window; i++) {
        uint8_t want = (i >= 4096 && i < 5096) ? 0xA5 : out[i];
        bad += window[i] != want;
    }
    report("memset_d8", set == 0 && rd == 0 && bad == 0, "status=%d wrong_bytes=%zu", set, bad);
    report("mem_free", mem_free(dptr) == 0, "0x%llx", (unsigned long long)dptr);
    free(out);
    free(back);
}

/* C = alpha * A * B + beta * C, column-major, non-square so a transposition error shows. */
static void test_gemm(void)
{
    enum { M = 96, N = 80, K = 64 };
    static float a[M * K], b[K * N], c[M * N], want[M * N], got[M * N];
    const float alpha = 1.5f, beta = -0.5f;
    for (int i = 0; i < M; i++)
        for (int l = 0; l < K; l++)
            a[i + l * M] = (float)((i * 7 + l * 3) % 17 - 8) / 4.0f;
    for (int l = 0; l < K; l++)
        for (int j = 0; j < N; j++)
            b[l + j * K] = (float)((l * 5 + j * 11) % 13 - 6) / 4.0f;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            c[i + j * M] = (float)((i + j) % 5);
            double sum = 0;
            for (int l = 0; l < K; l++)
                sum += (double)a[i + l * M] * (double)b[l + j * K];
            want[i + j * M] = (float)(alpha * sum + beta * c[i + j * M]);
        }
    int rc1, rc2, rc3;
    uint64_t da = mem_alloc(sizeof a, &rc1), db = mem_alloc(sizeof b, &rc2), dc = mem_alloc(sizeof c, &rc3);
    struct cuda_call_result r;
    int up = rc1 || rc2 || rc3;
    if (!up)
        up = cuda_transport_memcpy_htod(T, da, 0, a, sizeof a, 0, &r) ||
             cuda_transport_memcpy_htod(T, db, 0, b, sizeof b, 0, &r) ||
             cuda_transport_memcpy_htod(T, dc, 0, c, sizeof c, 0, &r);
    struct vgpu_result_cublas_create handle = {0};
    int created = call(VGPU_CALL_CUBLAS_CREATE, NULL, 0, &handle, sizeof handle, NULL);
    report("cublas_create", created == 0 && handle.handle != 0, "handle=%u status=%d", handle.handle, created);
    struct vgpu_args_cublas_sgemm g = {
        .handle = handle.handle, .transa = CUBLAS_OP_N, .transb = CUBLAS_OP_N, .m = M, .n = N, .k = K,
        .alpha = alpha, .a = da, .lda = M, .b = db, .ldb = K, .beta = beta, .c = dc, .ldc = M,
    };
    /* As cuBLAS does: the GEMM is posted (ASYNC), the stream synchronized, then C copied back. */
    int posted = post(VGPU_CALL_CUBLAS_SGEMM, &g, sizeof g);
    int synced = call(VGPU_CALL_CTX_SYNCHRONIZE, NULL, 0, NULL, 0, NULL);
    int down = cuda_transport_memcpy_dtoh(T, got, dc, 0, sizeof got, &r);
    double max_err = 0;
    for (int i = 0; i < M * N; i++) {
        double e = fabs((double)got[i] - (double)want[i]);
        if (e > max_err || isnan(got[i]))
            max_err = isnan(got[i]) ? INFINITY : e;
    }
    report("gemm", !up && posted == 0 && synced == 0 && down == 0 && max_err <= 1e-3,
           "m=%d n=%d k=%d max_abs_err=%g c00=%g want00=%g sync_status=%d", M, N, K, max_err,
           (double)got[0], (double)want[0], synced);
    struct vgpu_args_cublas_destroy d = {.handle = handle.handle};
    report("cublas_destroy", call(VGPU_CALL_CUBLAS_DESTROY, &d, sizeof d, NULL, 0, NULL) == 0, "handle=%u",
           handle.handle);
    int freed = mem_free(da) | mem_free(db) | mem_free(dc);
    report("gemm_free", freed == 0, "status=%d", freed);
}

/* Events around posted work on the default stream. */
static void test_events(void)
{
    int rc;
    uint64_t dptr = mem_alloc(COPY_BYTES, &rc);
    struct vgpu_args_event_create ec = {.flags = 0};
    struct vgpu_result_event_create start = {0}, end = {0};
    int c1 = call(VGPU_CALL_EVENT_CREATE, &ec, sizeof ec, &start, sizeof start, NULL);
    int c2 = call(VGPU_CALL_EVENT_CREATE, &ec, sizeof ec, &end, sizeof end, NULL);
    report("event_create", rc == 0 && c1 == 0 && c2 == 0 && start.event && end.event && start.event != end.event,
           "start=%u end=%u", start.event, end.event);
    struct vgpu_args_event_record rec = {.event = start.event, .stream = 0};
    int p1 = post(VGPU_CALL_EVENT_RECORD, &rec, sizeof rec);
    struct vgpu_args_memset_d32 ms = {.dst = dptr, .count = COPY_BYTES / 4, .value = 0xDEADBEEFu, .stream = 0};
    int p2 = post(VGPU_CALL_MEMSET_D32, &ms, sizeof ms);
    rec.event = end.event;
    int p3 = post(VGPU_CALL_EVENT_RECORD, &rec, sizeof rec);
    struct vgpu_args_event_synchronize es = {.event = end.event};
    int synced = call(VGPU_CALL_EVENT_SYNCHRONIZE, &es, sizeof es, NULL, 0, NULL);
    struct vgpu_args_event_elapsed_time et = {.start = start.event, .end = end.event};
    struct vgpu_result_event_elapsed_time ms_result = {0};
    int el = call(VGPU_CALL_EVENT_ELAPSED_TIME, &et, sizeof et, &ms_result, sizeof ms_result, NULL);
    uint32_t words[1024];
    struct cuda_call_result r;
    int rd = cuda_transport_memcpy_dtoh(T, words, dptr + COPY_BYTES - sizeof words, 0, sizeof words, &r);
    size_t bad = 0;
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        bad += words[i] != 0xDEADBEEFu;
    report("events", p1 == 0 && p2 == 0 && p3 == 0 && synced == 0 && el == 0 && ms_result.milliseconds >= 0.0f,
           "elapsed_ms=%.4f sync_status=%d elapsed_status=%d", (double)ms_result.milliseconds, synced, el);
    report("memset_d32", rd == 0 && bad == 0, "wrong_words=%zu", bad);
    struct vgpu_args_event_destroy ed = {.event = start.event};
    int d1 = call(VGPU_CALL_EVENT_DESTROY, &ed, sizeof ed, NULL, 0, NULL);
    ed.event = end.event;
    int d2 = call(VGPU_CALL_EVENT_DESTROY, &ed, sizeof ed, NULL, 0, NULL);
    report("event_destroy", d1 == 0 && d2 == 0, "status=%d,%d", d1, d2);
    mem_free(dptr);
}

/* A posted call that fails is latched and reported by the next call that waits, once. */
static void test_async_error(void)
{
    struct vgpu_args_memset_d8 ms = {.dst = 0x10, .count = 64, .value = 1, .stream = 0}; /* not ours */
    int p = post(VGPU_CALL_MEMSET_D8, &ms, sizeof ms);
    struct cuda_call_result r;
    int first = call(VGPU_CALL_CTX_SYNCHRONIZE, NULL, 0, NULL, 0, &r);
    unsigned flags = first >= 0 ? r.flags : 0;
    struct cuda_call_result err;
    int taken = cuda_transport_take_async_error(T, &err);
    int second = call(VGPU_CALL_CTX_SYNCHRONIZE, NULL, 0, NULL, 0, NULL);
    report("async_error_latched",
           p == 0 && first == (int)CUDA_ERROR_INVALID_VALUE && (flags & COMPLETE_LATCHED) && taken == 1 &&
               err.status == CUDA_ERROR_INVALID_VALUE && second == 0,
           "first_sync=%d flags=%u async_error_seen=%d async_status=%u second_sync=%d", first, flags, taken,
           taken ? err.status : 0, second);
}

int main(int argc, char **argv)
{
    const char *socket_path = NULL;
    size_t chunk = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--socket") && i + 1 < argc)
            socket_path = argv[++i];
        else if (!strcmp(argv[i], "--chunk") && i + 1 < argc)
            chunk = (size_t)strtoull(argv[++i], NULL, 0);
        else if (!strcmp(argv[i], "--copy-rounds") && i + 1 < argc)
            copy_rounds = atoi(argv[++i]) > 1 ? atoi(argv[i]) : 1;
        else {
            fprintf(stderr, "usage: %s [--socket PATH] [--chunk BYTES] [--copy-rounds N]\n", argv[0]);
            return 2;
        }
    }
    double t0 = now_ms();
    int rc = socket_path ? cuda_transport_init_socket(socket_path, &T) : cuda_transport_init(&T);
    double t1 = now_ms();
    if (rc) {
        report("transport_init", 0, "error=%d %s: %s", rc, cuda_transport_strerror(rc), cuda_transport_last_error());
        printf("SELFTEST FAIL %d\n", failures);
        return 1;
    }
    if (chunk && cuda_transport_set_chunk_size(T, chunk))
        report("set_chunk", 0, "%s", cuda_transport_last_error());
    report("transport_init", 1, "backend=%s vm_id=%u peer_id=%u channel=%d channels=%u region=%zu arena=%zu "
           "chunk=%zu init_ms=%.2f", cuda_transport_backend(T), cuda_transport_vm_id(T), cuda_transport_peer_id(T),
           cuda_transport_channel(T), cuda_transport_channel_count(T), cuda_transport_region_size(T),
           cuda_transport_arena_size(T), cuda_transport_chunk_size(T), t1 - t0);

    test_device();
    test_copies();
    test_gemm();
    test_events();
    test_async_error();

    struct cuda_transport_stats s;
    cuda_transport_get_stats(T, &s);
    report("transport_stats", s.submitted > 0,
           "submitted=%llu posted=%llu kicks=%llu sleeps=%llu async_errors=%llu bytes_htod=%llu bytes_dtoh=%llu",
           (unsigned long long)s.submitted, (unsigned long long)s.posted, (unsigned long long)s.kicks,
           (unsigned long long)s.sleeps, (unsigned long long)s.async_errors, (unsigned long long)s.bytes_htod,
           (unsigned long long)s.bytes_dtoh);
    report("workload_ms", 1, "%.1f", now_ms() - t1);
    cuda_transport_close(T);
    if (failures) {
        printf("SELFTEST FAIL %d\n", failures);
        return 1;
    }
    printf("SELFTEST PASS\n");
    return 0;
}
