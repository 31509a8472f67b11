/*
 * The transport core: region validation, the two rings of our channel, the payload arena, calls
 * and posts. How a channel is claimed, opened, kept and closed is vgpu_channel.c's.
 *
 * Theory of operation (the guest side of protocol/_ring.py and guest/_client.py):
 *  - The region (protocol 2.x) is a header page and `channel_count` channel blocks. A process
 *    claims one channel and works on its block only: every ring field below is relative to the
 *    block (t->chan), which is laid out as a whole 1.x region was. The region header holds what
 *    is global: the device state and the epoch of its layout.
 *  - The submission ring and the completion ring are single-producer/single-consumer rings with
 *    free-running u32 indices. We keep our own indices privately (sq_tail, cq_head) and only ever
 *    write them to the region; the host's indices (sq_head, cq_tail) are read with acquire loads
 *    and checked: a count larger than the ring means the host is broken (E_PROTOCOL).
 *  - A submission's payload is written to the arena before the entry, and the entry before the
 *    tail that publishes it (release store). The arena is a ring of bytes that this side owns:
 *    a span becomes free again once the host's sq_head has passed the entry that used it (and, for
 *    a dtoh output area not yet copied out, once we have copied it: `holding`). With nothing in
 *    flight it starts over at its first byte, still in the cache. A payload of PHASE_MIN bytes or
 *    more starts at the application buffer's offset within a page (see PHASE_MIN).
 *  - Copies larger than PIPELINE_MIN are pipelined in chunks (copy_chunk): htod posts every chunk
 *    but the last, so the host copies one out while we copy the next in; dtoh keeps two chunks in
 *    flight, the host filling the next output area while we copy the last one out.
 *  - After publishing, a seq_cst fence, then the doorbell is rung only if the host said it sleeps
 *    (HOST_NEED_WAKEUP): a busy host costs the guest no VM exit.
 *  - Waiting for a completion: spin for spin_ns (flat out for SPIN_FLAT_NS, then yielding the CPU
 *    between looks; socket: and on while the host's sq_head keeps moving, as it serves our queue ahead
 *    of the call: each spin_ns in which it moved buys another), then (PCI) sleep 50 µs between looks,
 *    or (socket) set GUEST_NEED_IRQ and sleep on
 *    our vector's eventfd (the host kicks it when it writes a completion, or a little before the end
 *    of a run of posted copies, so that we wake while it finishes: a guest woken then must not stand
 *    in the way of a worker on its CPU, hence the yield). Waiting for room (a full ring or arena: the
 *    host has that much queued): spin for spin_ns, then nap between looks (wait_for_room). A wait
 *    gives up (E_TIMEOUT) only when the host made no progress on our channel for timeout_ns (struct
 *    progress): a GPU's synchronize
 *    waits as long as the queued work takes, and the host advances sq_head after it has served an
 *    entry (a launch on sim has run by then), so a long queue of launches keeps moving it. Each
 *    slow look checks that the device is
 *    still READY in the epoch we attached to and that our channel is still ours (OPEN, the
 *    generation our open got): a channel the host closed (lease expired, peer gone) is lost for
 *    good and every later call answers E_CLOSED; a reset of the region re-opens it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "transport_internal.h"

#include "vgpu_protocol.h"

static _Thread_local char vt_error[256] = "no error";

int vt_fail(int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(vt_error, sizeof vt_error, fmt, ap);
    va_end(ap);
    return err;
}

const char *cuda_transport_last_error(void) { return vt_error; }

const char *cuda_transport_strerror(int err)
{
    switch (err) {
    case CUDA_TRANSPORT_OK: return "success";
    case CUDA_TRANSPORT_E_NODEV: return "no vgpu device";
    case CUDA_TRANSPORT_E_SYS: return "system call failed";
    case CUDA_TRANSPORT_E_LAYOUT: return "region layout not understood";
    case CUDA_TRANSPORT_E_HANDSHAKE: return "ivshmem handshake failed";
    case CUDA_TRANSPORT_E_GONE: return "the host stopped serving this device";
    case CUDA_TRANSPORT_E_TIMEOUT: return "timed out";
    case CUDA_TRANSPORT_E_INVAL: return "invalid argument";
    case CUDA_TRANSPORT_E_PROTOCOL: return "the host broke the ring protocol";
    case CUDA_TRANSPORT_E_BUSY: return "every channel of the device is held by other processes";
    case CUDA_TRANSPORT_E_CLOSED: return "this process's channel is closed";
    case CUDA_TRANSPORT_E_REFUSED: return "the mediator refused the connection";
    default: return err > 0 ? "the call failed (status)" : "unknown transport error";
    }
}

/* -- region access ----------------------------------------------------------------------------- */

/* a field of the region header (page 0) */
static inline uint32_t rld32(const struct cuda_transport *t, size_t off)
{
    return __atomic_load_n((const uint32_t *)(const void *)(t->region + off), __ATOMIC_ACQUIRE);
}

/* a field of our channel's block */
static inline uint32_t ld32(const struct cuda_transport *t, size_t off)
{
    return __atomic_load_n((const uint32_t *)(const void *)(t->chan + off), __ATOMIC_ACQUIRE);
}

static inline void st32(struct cuda_transport *t, size_t off, uint32_t value)
{
    __atomic_store_n((uint32_t *)(void *)(t->chan + off), value, __ATOMIC_RELEASE);
}

static inline void st64(struct cuda_transport *t, size_t off, uint64_t value)
{
    __atomic_store_n((uint64_t *)(void *)(t->chan + off), value, __ATOMIC_RELEASE);
}

static uint64_t rd64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint16_t rd16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int is_pow2(uint64_t v) { return v && !(v & (v - 1)); }

/*
 * Payloads from PHASE_MIN bytes up start in the arena at the same offset within a page as the
 * application's buffer: glibc's memcpy (rep movsb from 4 KiB to the L2 size) is 10-15x slower on
 * AMD Zen 3 when the destination is 1-31 bytes past the source modulo 4 KiB (docs/benchmarks.md).
 */
#define PHASE_MIN (16u << 10)
#define PAGE_BYTES 4096u
#define NO_PHASE (-1)
/* Copies above PIPELINE_MIN go in chunks of sqrt(len * PIPELINE_GRAIN) rounded up to the grain, from
 * PIPELINE_MIN to PIPELINE_CHUNK (never above t->chunk): S bytes in N chunks take about S/rate + N *
 * (a chunk's calls on both sides) + S/N/rate (the first chunk's fill or the last one's drain), least at
 * N = sqrt(S / (rate * per-chunk cost)). A chunk costs this library and the host's C copy path about a
 * microsecond each, less than the Python guest's calls, so its chunks are smaller than guest/_client.py's:
 * 256 KiB in 3 of 96 KiB, 1 MiB in 6 of 192 KiB, 4 MiB in 11 of 384 KiB, 32 MiB up in 1 MiB
 * (docs/benchmarks.md, pageable copies, sixth session). */
#ifndef PIPELINE_MIN /* -D overrides: a benchmark tries other rules on one tree */
#define PIPELINE_MIN (64u << 10)
#endif
#define PIPELINE_CHUNK (1u << 20)
#ifndef PIPELINE_GRAIN
#define PIPELINE_GRAIN (32u << 10)
#endif

static int phase_of(const void *p, size_t len)
{
    return p && len >= PHASE_MIN ? (int)((uintptr_t)p & (PAGE_BYTES - 1)) : NO_PHASE;
}

static uint64_t isqrt(uint64_t x)
{
    uint64_t r = x, y = (x + 1) / 2;
    while (y < r) { /* Newton's iteration, from above: r ends at floor(sqrt(x)) */
        r = y;
        y = (r + x / r) / 2;
    }
    return r;
}

static size_t copy_chunk(const struct cuda_transport *t, size_t len)
{
    if (len <= PIPELINE_MIN)
        return t->chunk;
    uint64_t c = (uint64_t)len >= (uint64_t)PIPELINE_CHUNK * PIPELINE_CHUNK / PIPELINE_GRAIN
                     ? PIPELINE_CHUNK
                     : isqrt((uint64_t)len * PIPELINE_GRAIN);
    c = (c + PIPELINE_GRAIN - 1) / PIPELINE_GRAIN * PIPELINE_GRAIN;
    c = c < PIPELINE_MIN ? PIPELINE_MIN : c > PIPELINE_CHUNK ? PIPELINE_CHUNK : c;
    return c < t->chunk ? (size_t)c : t->chunk;
}

/* The generated header and this library must agree; a mismatch fails the build, not a guest. */
_Static_assert(sizeof(struct vgpu_sqe) == VR_SQE_SIZE, "SQE size differs from vgpu_protocol.h");
_Static_assert(sizeof(struct vgpu_cqe) == VR_CQE_SIZE, "CQE size differs from vgpu_protocol.h");
_Static_assert(VGPU_MAGIC == VR_MAGIC && VGPU_CHANNEL_MAGIC == VR_CHANNEL_MAGIC &&
               VGPU_VERSION_MAJOR == VR_VERSION_MAJOR && VGPU_HEADER_SIZE == VR_HEADER_SIZE &&
               VGPU_MAX_CHANNELS == VR_MAX_CHANNELS && VGPU_ALL_FEATURES == VR_ALL_FEATURES, "constants");
_Static_assert(VGPU_REG_MAGIC == VR_OFF_MAGIC && VGPU_REG_VERSION_MAJOR == VR_OFF_VERSION_MAJOR &&
               VGPU_REG_HEADER_SIZE == VR_OFF_HEADER_SIZE && VGPU_REG_REGION_SIZE == VR_OFF_REGION_SIZE &&
               VGPU_REG_FEATURES == VR_OFF_FEATURES && VGPU_REG_VM_ID == VR_OFF_VM_ID &&
               VGPU_REG_CHANNEL_COUNT == VR_OFF_CHANNEL_COUNT && VGPU_REG_CHANNEL_SIZE == VR_OFF_CHANNEL_SIZE &&
               VGPU_REG_CHANNELS_OFFSET == VR_OFF_CHANNELS_OFFSET && VGPU_REG_LEASE_MS == VR_OFF_LEASE_MS &&
               VGPU_REG_VECTORS == VR_OFF_VECTORS && VGPU_REG_DEVICE_STATE == VR_OFF_DEVICE_STATE &&
               VGPU_REG_EPOCH == VR_OFF_EPOCH && VGPU_REG_HOST_PEER_ID == VR_OFF_HOST_PEER_ID,
               "region header offsets differ from vgpu_protocol.h");
_Static_assert(VGPU_CHN_MAGIC == VC_OFF_MAGIC && VGPU_CHN_VERSION_MAJOR == VC_OFF_VERSION_MAJOR &&
               VGPU_CHN_HEADER_SIZE == VC_OFF_HEADER_SIZE && VGPU_CHN_REGION_SIZE == VC_OFF_REGION_SIZE &&
               VGPU_CHN_FEATURES == VC_OFF_FEATURES && VGPU_CHN_SQ_ENTRIES == VC_OFF_SQ_ENTRIES &&
               VGPU_CHN_CQ_ENTRIES == VC_OFF_CQ_ENTRIES && VGPU_CHN_SQE_SIZE == VC_OFF_SQE_SIZE &&
               VGPU_CHN_CQE_SIZE == VC_OFF_CQE_SIZE && VGPU_CHN_MAX_INLINE_ARGS == VC_OFF_MAX_INLINE_ARGS &&
               VGPU_CHN_SQ_OFFSET == VC_OFF_SQ_OFFSET && VGPU_CHN_CQ_OFFSET == VC_OFF_CQ_OFFSET &&
               VGPU_CHN_ARENA_OFFSET == VC_OFF_ARENA_OFFSET && VGPU_CHN_ARENA_SIZE == VC_OFF_ARENA_SIZE &&
               VGPU_CHN_CHANNEL_INDEX == VC_OFF_CHANNEL_INDEX && VGPU_CHN_CHANNEL_STATE == VC_OFF_CHANNEL_STATE &&
               VGPU_CHN_GENERATION == VC_OFF_GENERATION && VGPU_CHN_HOST_NEED_WAKEUP == VC_OFF_HOST_NEED_WAKEUP &&
               VGPU_CHN_LATCHED_ERROR == VC_OFF_LATCHED_ERROR && VGPU_CHN_OPEN_ACK == VC_OFF_OPEN_ACK &&
               VGPU_CHN_CLOSE_REASON == VC_OFF_CLOSE_REASON && VGPU_CHN_HOST_BUSY == VC_OFF_HOST_BUSY &&
               VGPU_CHN_GUEST_NEED_IRQ == VC_OFF_GUEST_NEED_IRQ &&
               VGPU_CHN_GUEST_FEATURES == VC_OFF_GUEST_FEATURES &&
               VGPU_CHN_CALLS_SUBMITTED == VC_OFF_CALLS_SUBMITTED && VGPU_CHN_OPEN_REQUEST == VC_OFF_OPEN_REQUEST &&
               VGPU_CHN_OWNER_PID == VC_OFF_OWNER_PID && VGPU_CHN_OWNER_PEER == VC_OFF_OWNER_PEER &&
               VGPU_CHN_CLOSE_REQUEST == VC_OFF_CLOSE_REQUEST && VGPU_CHN_HEARTBEAT == VC_OFF_HEARTBEAT &&
               VGPU_CHN_SQ_TAIL == VC_OFF_SQ_TAIL && VGPU_CHN_SQ_HEAD == VC_OFF_SQ_HEAD &&
               VGPU_CHN_CQ_TAIL == VC_OFF_CQ_TAIL && VGPU_CHN_CQ_HEAD == VC_OFF_CQ_HEAD,
               "channel header offsets differ from vgpu_protocol.h");
_Static_assert((int)VGPU_DEVICE_STATE_READY == (int)VR_STATE_READY && (int)VGPU_DEVICE_STATE_RESETTING == (int)VR_STATE_RESETTING &&
               (int)VGPU_DEVICE_STATE_UNINITIALIZED == (int)VR_STATE_UNINITIALIZED && (int)VGPU_CHANNEL_FREE == (int)VC_STATE_FREE &&
               (int)VGPU_CHANNEL_OPEN == (int)VC_STATE_OPEN && (int)VGPU_CHANNEL_CLOSED_BY_HOST == (int)VC_STATE_CLOSED_BY_HOST &&
               (int)VGPU_CLOSE_GUEST_CLOSE == (int)VC_CLOSE_GUEST && (int)VGPU_CLOSE_LEASE_EXPIRED == (int)VC_CLOSE_LEASE_EXPIRED &&
               (int)VGPU_CLOSE_PEER_GONE == (int)VC_CLOSE_PEER_GONE && (int)VGPU_CLOSE_RESET == (int)VC_CLOSE_RESET &&
               (int)VGPU_CLOSE_PROTOCOL_VIOLATION == (int)VC_CLOSE_PROTOCOL_VIOLATION, "states differ from vgpu_protocol.h");
_Static_assert(VGPU_CALL_MEMCPY_HTOD == VR_CALL_MEMCPY_HTOD && VGPU_CALL_MEMCPY_DTOH == VR_CALL_MEMCPY_DTOH,
               "memcpy call ids differ from vgpu_protocol.h");
_Static_assert(sizeof(struct vgpu_args_memcpy_htod) == sizeof(struct vr_args_memcpy_htod) &&
               sizeof(struct vgpu_args_memcpy_dtoh) == sizeof(struct vr_args_memcpy_dtoh),
               "memcpy argument structs differ from vgpu_protocol.h");

/* -- lifetime ---------------------------------------------------------------------------------- */

static uint64_t env_u64(const char *name, uint64_t fallback)
{
    const char *text = getenv(name);
    if (!text || !*text)
        return fallback;
    char *end;
    unsigned long long v = strtoull(text, &end, 10);
    return *end ? fallback : (uint64_t)v;
}

struct cuda_transport *vt_alloc(enum vt_backend backend)
{
    struct cuda_transport *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->backend = backend;
    pthread_mutex_init(&t->lock, NULL);
    t->sock = t->region_fd = t->claim_fd = t->stop_fd = -1;
    t->channel = -1;
    for (size_t i = 0; i < VR_MAX_CHANNELS; i++)
        t->host_fds[i] = t->own_fds[i] = -1;
    t->timeout_ns = env_u64("VGPU_TRANSPORT_TIMEOUT_MS", 30000) * 1000000ull;
    t->spin_ns = env_u64("VGPU_TRANSPORT_SPIN_US", 50) * 1000ull;
    return t;
}

void vt_free(struct cuda_transport *t)
{
    if (!t)
        return;
    int child = t->channel >= 0 && t->owner_pid != vt_current_pid();
    vt_channel_disconnect(t); /* close_request, a short wait for FREE, the claim dropped */
    if (t->backend == VT_PCI)
        vt_pci_close(t);
    else
        vt_socket_close(t);
    free(t->inflight);
    if (!child) /* in a forked child a thread that is gone may have held it */
        pthread_mutex_destroy(&t->lock);
    free(t);
}

void cuda_transport_close(struct cuda_transport *t) { vt_free(t); }

int cuda_transport_init(struct cuda_transport **out)
{
    const char *path = getenv("VGPU_TRANSPORT_SOCKET");
    if (path && *path)
        return cuda_transport_init_socket(path, out);
    const char *bdf = getenv("VGPU_PCI_DEVICE");
    return cuda_transport_init_pci(bdf && *bdf ? bdf : NULL, out);
}

static int init_backend(enum vt_backend backend, const char *where, struct cuda_transport **out)
{
    *out = NULL;
    struct cuda_transport *t = vt_alloc(backend);
    if (!t)
        return vt_fail(CUDA_TRANSPORT_E_SYS, "out of memory");
    /* the backend maps the region and validates its header (the socket one during the handshake) */
    int rc = backend == VT_PCI ? vt_pci_open(t, where) : vt_socket_open(t, where);
    if (rc == 0)
        rc = vt_channel_connect(t);
    if (rc) {
        vt_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

int cuda_transport_init_pci(const char *bdf, struct cuda_transport **out)
{
    return init_backend(VT_PCI, bdf, out);
}

int cuda_transport_init_socket(const char *path, struct cuda_transport **out)
{
    return init_backend(VT_SOCKET, path, out);
}

/* -- the headers ------------------------------------------------------------------------------- */

/* The region header (page 0): what is global to the VM. Waits for a region being laid out. */
int vt_attach_region(struct cuda_transport *t)
{
    const uint8_t *h = t->region;
    uint64_t size = t->region_size;
    /* A region being laid out (UNINITIALIZED) or reset (RESETTING) becomes READY shortly. */
    uint64_t deadline = now_ns() + t->timeout_ns;
    for (uint32_t state; size >= VR_HEADER_SIZE && (state = rld32(t, VR_OFF_DEVICE_STATE)) != VR_STATE_READY;) {
        if ((state != VR_STATE_UNINITIALIZED && state != VR_STATE_RESETTING) || now_ns() > deadline)
            return vt_fail(CUDA_TRANSPORT_E_GONE, "device state is %u, not READY", state);
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    if (size < VR_HEADER_SIZE)
        return vt_fail(CUDA_TRANSPORT_E_LAYOUT, "region is %llu bytes, smaller than its header",
                       (unsigned long long)size);
    uint64_t magic = rd64(h + VR_OFF_MAGIC);
    if (magic != VR_MAGIC)
        return vt_fail(CUDA_TRANSPORT_E_LAYOUT, "magic is %#018llx, expected %#018llx",
                       (unsigned long long)magic, (unsigned long long)VR_MAGIC);
    unsigned major = rd16(h + VR_OFF_VERSION_MAJOR);
    if (major != VR_VERSION_MAJOR)
        return vt_fail(CUDA_TRANSPORT_E_LAYOUT, "protocol major version %u, this library speaks %u",
                       major, VR_VERSION_MAJOR);
    if (rd32(h + VR_OFF_HEADER_SIZE) != VR_HEADER_SIZE)
        return vt_fail(CUDA_TRANSPORT_E_LAYOUT, "header_size is %u, expected %u",
                       rd32(h + VR_OFF_HEADER_SIZE), VR_HEADER_SIZE);
    uint64_t region_size = rd64(h + VR_OFF_REGION_SIZE);
    if (region_size != size || !is_pow2(region_size))
        return vt_fail(CUDA_TRANSPORT_E_LAYOUT, "region_size says %llu, the mapping has %llu",
                       (unsigned long long)region_size, (unsigned long long)size);
    uint64_t features = rd64(h + VR_OFF_FEATURES);
    if (features & ~VR_ALL_FEATURES)
        return vt_fail(CUDA_TRANSPORT_E_LAYOUT, "unknown feature bits %#llx",
                       (unsigned long long)(features & ~VR_ALL_FEATURES));
    uint32_t count = rd32(h + VR_OFF_CHANNEL_COUNT);
    uint64_t channel_size = rd64(h + VR_OFF_CHANNEL_SIZE), first = rd64(h + VR_OFF_CHANNELS_OFFSET);
    if (count == 0 || count > VR_MAX_CHANNELS)
        return vt_fail(CUDA_TRANSPORT_E_LAYOUT, "channel_count is %u, expected 1..%u", count, VR_MAX_CHANNELS);
    if (channel_size < 2 * VR_HEADER_SIZE || channel_size % VR_SECTION_ALIGN || first < VR_HEADER_SIZE ||
        first % VR_SECTION_ALIGN || first > size || (size - first) / channel_size < count)
        return vt_fail(CUDA_TRANSPORT_E_LAYOUT, "%u channels of %llu bytes from offset %llu do not fit the "
                       "%llu-byte region", count, (unsigned long long)channel_size, (unsigned long long)first,
                       (unsigned long long)size);
    uint32_t lease_ms = rd32(h + VR_OFF_LEASE_MS), vectors = rd32(h + VR_OFF_VECTORS);
    if (lease_ms == 0)
        return vt_fail(CUDA_TRANSPORT_E_LAYOUT, "lease_ms is 0");
    if (vectors == 0 || vectors > VR_MAX_CHANNELS)
        return vt_fail(CUDA_TRANSPORT_E_LAYOUT, "vectors is %u, expected 1..%u", vectors, VR_MAX_CHANNELS);
    t->vm_id = rd32(h + VR_OFF_VM_ID);
    t->features = features;
    t->channel_count = count;
    t->channel_size = channel_size;
    t->channels_offset = first;
    t->lease_ms = lease_ms;
    t->vectors = vectors;
    t->host_peer_id = rld32(t, VR_OFF_HOST_PEER_ID);
    t->epoch = rld32(t, VR_OFF_EPOCH);
    return 0;
}

/* Private indices, arena and async error back to a freshly opened channel's. */
static void start_over(struct cuda_transport *t)
{
    t->sq_tail = t->cq_head = 0;
    t->seq = 0;
    t->kick_live = 0;
    t->arena_tail = t->arena_freed = 0;
    t->inflight_head = t->inflight_count = 0;
    t->holding = 0;
    t->have_async_error = 0; /* it named a call of the context that is gone */
}

/* The header of our channel's block, as the host laid it out when it served our open. */
int vt_attach_channel(struct cuda_transport *t)
{
    const uint8_t *h = t->chan;
    uint64_t size = t->channel_size;
    uint64_t magic = rd64(h + VC_OFF_MAGIC);
    if (magic != VR_CHANNEL_MAGIC)
        return vt_fail(CUDA_TRANSPORT_E_LAYOUT, "channel %d: magic is %#018llx, expected %#018llx", t->channel,
                       (unsigned long long)magic, (unsigned long long)VR_CHANNEL_MAGIC);
    if (rd16(h + VC_OFF_VERSION_MAJOR) != VR_VERSION_MAJOR || rd32(h + VC_OFF_HEADER_SIZE) != VR_HEADER_SIZE ||
        rd64(h + VC_OFF_REGION_SIZE) != size || rd32(h + VC_OFF_CHANNEL_INDEX) != (uint32_t)t->channel)
        return vt_fail(CUDA_TRANSPORT_E_LAYOUT, "channel %d: header says version %u, header_size %u, size %llu, "
                       "index %u; the region header says %llu bytes", t->channel, rd16(h + VC_OFF_VERSION_MAJOR),
                       rd32(h + VC_OFF_HEADER_SIZE), (unsigned long long)rd64(h + VC_OFF_REGION_SIZE),
                       rd32(h + VC_OFF_CHANNEL_INDEX), (unsigned long long)size);
    if (rd32(h + VC_OFF_SQE_SIZE) != VR_SQE_SIZE || rd32(h + VC_OFF_CQE_SIZE) != VR_CQE_SIZE)
        return vt_fail(CUDA_TRANSPORT_E_LAYOUT, "entry sizes %u/%u, expected %u/%u",
                       rd32(h + VC_OFF_SQE_SIZE), rd32(h + VC_OFF_CQE_SIZE), VR_SQE_SIZE, VR_CQE_SIZE);
    if (rd32(h + VC_OFF_MAX_INLINE_ARGS) != VR_MAX_INLINE_ARGS)
        return vt_fail(CUDA_TRANSPORT_E_LAYOUT, "max_inline_args is %u, expected %u",
                       rd32(h + VC_OFF_MAX_INLINE_ARGS), VR_MAX_INLINE_ARGS);
    uint32_t sq_entries = rd32(h + VC_OFF_SQ_ENTRIES), cq_entries = rd32(h + VC_OFF_CQ_ENTRIES);
    if (!is_pow2(sq_entries) || sq_entries > VR_MAX_RING_ENTRIES || !is_pow2(cq_entries) ||
        cq_entries > VR_MAX_RING_ENTRIES)
        return vt_fail(CUDA_TRANSPORT_E_LAYOUT, "ring sizes %u/%u are not powers of two <= %u",
                       sq_entries, cq_entries, VR_MAX_RING_ENTRIES);
    struct { const char *name; uint64_t off, len; } sections[3] = {
        {"submission ring", rd64(h + VC_OFF_SQ_OFFSET), (uint64_t)sq_entries * VR_SQE_SIZE},
        {"completion ring", rd64(h + VC_OFF_CQ_OFFSET), (uint64_t)cq_entries * VR_CQE_SIZE},
        {"arena", rd64(h + VC_OFF_ARENA_OFFSET), rd64(h + VC_OFF_ARENA_SIZE)},
    };
    uint64_t end_of_previous = VR_HEADER_SIZE;
    for (int i = 0; i < 3; i++) {
        if (sections[i].off % VR_SECTION_ALIGN || sections[i].off < end_of_previous ||
            sections[i].len == 0 || sections[i].off > size || sections[i].len > size - sections[i].off)
            return vt_fail(CUDA_TRANSPORT_E_LAYOUT, "%s [%llu, +%llu) is misplaced in the %llu-byte channel",
                           sections[i].name, (unsigned long long)sections[i].off,
                           (unsigned long long)sections[i].len, (unsigned long long)size);
        end_of_previous = sections[i].off + sections[i].len;
    }
    t->sq_entries = sq_entries;
    t->cq_entries = cq_entries;
    t->sq_offset = sections[0].off;
    t->cq_offset = sections[1].off;
    t->arena = t->chan + sections[2].off;
    /* Payload offsets are u32: a larger arena is used up to 4 GiB. */
    uint64_t arena_size = sections[2].len > 0xFFFFF000ull ? 0xFFFFF000ull : sections[2].len;
    if (!t->inflight || arena_size != t->arena_size) {
        t->chunk = arena_size / 4 > 65536 ? (size_t)(arena_size / 4) : 65536;
        if (t->chunk > arena_size)
            t->chunk = (size_t)arena_size;
    }
    t->arena_size = arena_size;
    free(t->inflight);
    t->inflight = calloc((size_t)sq_entries + 1, sizeof *t->inflight);
    if (!t->inflight)
        return vt_fail(CUDA_TRANSPORT_E_SYS, "out of memory");
    start_over(t); /* the host re-laid the rings out: every index is 0 */
    st64(t, VC_OFF_GUEST_FEATURES, t->features);
    return 0;
}

/* -- rings and arena --------------------------------------------------------------------------- */

static const char *close_reason_text(uint32_t reason)
{
    switch (reason) {
    case VC_CLOSE_GUEST: return "closed at this process's request";
    case VC_CLOSE_LEASE_EXPIRED: return "its lease expired: the heartbeat did not move for the lease "
                                        "(was the process stopped, e.g. SIGSTOP or a debugger?)";
    case VC_CLOSE_PEER_GONE: return "the connection it was opened through is gone";
    case VC_CLOSE_RESET: return "the host reset it";
    case VC_CLOSE_PROTOCOL_VIOLATION: return "the host found its rings malformed";
    default: return "no reason given";
    }
}

/*
 * Is our channel still ours and the device serving? The channel is read before the region
 * header: a reset (protocol.md) makes the region RESETTING before it frees the channels and
 * READY in a new epoch after, so a channel found FREE with the region READY in our epoch was
 * closed by the host for this process alone.
 *
 * A reset of the region (new epoch) fails the call that notices it with E_GONE (every call in
 * flight and every handle from before is lost); we still hold our claim, so the next call opens
 * the channel again and is served. A channel the host closed on its own (lease expired, peer gone,
 * a malformed ring) is lost for good: E_CLOSED now and for every later call.
 */
static int check_alive(struct cuda_transport *t)
{
    if (t->lost || t->closed)
        return vt_fail(CUDA_TRANSPORT_E_CLOSED, "%s", t->lost_why);
    uint32_t cstate = ld32(t, VC_OFF_CHANNEL_STATE), generation = ld32(t, VC_OFF_GENERATION);
    uint32_t state = rld32(t, VR_OFF_DEVICE_STATE), epoch = rld32(t, VR_OFF_EPOCH);
    int hung_up = __atomic_load_n(&t->host_hung_up, __ATOMIC_ACQUIRE);
    if (state == VR_STATE_READY && epoch == t->epoch && cstate == VC_STATE_OPEN && generation == t->generation &&
        !hung_up)
        return 0;
    if (state == VR_STATE_RESETTING)
        return vt_fail(CUDA_TRANSPORT_E_GONE, "the host is resetting the device (epoch %u): every call "
                       "in flight is lost", t->epoch);
    if (state == VR_STATE_READY && epoch != t->epoch) {
        uint32_t old = t->epoch;
        t->epoch = epoch;
        t->reopen = 1;
        start_over(t);
        return vt_fail(CUDA_TRANSPORT_E_GONE, "the host reset the device (epoch %u -> %u): every call "
                       "in flight and every handle from before is lost; starting over on channel %d", old, epoch,
                       t->channel);
    }
    if (state != VR_STATE_READY)
        return vt_fail(CUDA_TRANSPORT_E_GONE, "device state %u epoch %u (attached in epoch %u)",
                       state, epoch, t->epoch);
    if (hung_up)
        return vt_channel_lost(t, "the mediator ended this process's connection: channel %d is gone with it",
                               t->channel);
    if (cstate == VC_STATE_OPEN)
        return vt_channel_lost(t, "channel %d was opened again by someone else (generation %u, ours was %u)",
                               t->channel, generation, t->generation);
    return vt_channel_lost(t, "the host closed channel %d (%s, close reason %u): every handle of this process "
                           "is gone", t->channel, close_reason_text(ld32(t, VC_OFF_CLOSE_REASON)),
                           ld32(t, VC_OFF_CLOSE_REASON));
}

/*
 * Ring the doorbell if the host said it sleeps. Once per sleep: while sq_head stands where it stood at our
 * last kick, made with entries queued, that kick is still pending for the host (it cannot sleep again
 * before it has served them, moving sq_head: it looks at every ring after announcing a sleep, and reads
 * its doorbell before announcing it). A guest submitting while the host wakes (40 us here) otherwise
 * kicked ~110 times per wake-up: a syscall each, a VM exit each on PCI (#19).
 */
static void kick(struct cuda_transport *t)
{
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (!ld32(t, VC_OFF_HOST_NEED_WAKEUP))
        return;
    uint32_t head = ld32(t, VC_OFF_SQ_HEAD);
    if (t->kick_live && head == t->kick_head)
        return;
    t->kick_head = head;
    t->kick_live = head != t->sq_tail;
    t->stats.kicks++;
    if (t->backend == VT_PCI)
        vt_pci_kick(t);
    else
        vt_socket_kick(t);
}

/* Take one pending completion, if any: 1 taken, 0 none, <0 protocol error. */
static int pop_completion(struct cuda_transport *t, struct vr_cqe *cqe)
{
    uint32_t tail = ld32(t, VC_OFF_CQ_TAIL);
    uint32_t pending = tail - t->cq_head;
    if (pending > t->cq_entries) {
        int rc = check_alive(t); /* a reset zeroed the host's indices: not a ring error */
        if (rc)
            return rc;
        return vt_fail(CUDA_TRANSPORT_E_PROTOCOL, "completion tail %u jumped past head %u", tail,
                       t->cq_head);
    }
    if (!pending)
        return 0;
    const uint8_t *slot = t->chan + t->cq_offset + (uint64_t)(t->cq_head & (t->cq_entries - 1)) * VR_CQE_SIZE;
    memcpy(cqe, slot, sizeof *cqe);
    t->cq_head++;
    st32(t, VC_OFF_CQ_HEAD, t->cq_head);
    return 1;
}

static void file_async_error(struct cuda_transport *t, const struct vr_cqe *cqe)
{
    t->stats.async_errors++;
    if (t->have_async_error)
        return;
    t->have_async_error = 1;
    memset(&t->async_error, 0, sizeof t->async_error);
    t->async_error.status = cqe->status;
    t->async_error.flags = cqe->flags;
    t->async_error.seq = cqe->seq;
    t->async_error.call_id = cqe->call_id;
}

/* Consume completions that are already there without waiting (async errors only expected). */
static int drain_completions(struct cuda_transport *t)
{
    struct vr_cqe cqe;
    int rc;
    while ((rc = pop_completion(t, &cqe)) > 0)
        if (cqe.flags & VR_COMPLETE_ASYNC_ERROR)
            file_async_error(t, &cqe);
    return rc;
}

static void pause_slow(struct cuda_transport *t)
{
    t->stats.sleeps++;
    if (t->backend == VT_SOCKET) {
        vt_socket_wait_irq(t, 50000000ull);
    } else {
        struct timespec ts = {0, 50000};
        nanosleep(&ts, NULL);
    }
}

/*
 * The host's progress on our channel while we wait: it consumed a submission (sq_head), posted a
 * completion (cq_tail) or is serving one of our calls now (host_busy, +1 every 0.5 s while it does).
 * A wait gives up only after timeout_ns in which none moved, not after timeout_ns in all: a queue of
 * long launches, or one launch or synchronize longer than the timeout, keeps us waiting as long as
 * the host works on it, and a host that stops serving us is still noticed within the timeout. (A host
 * from before host_busy leaves it 0: there one call past the timeout by itself still times out.)
 */
struct progress {
    uint32_t sq_head, cq_tail, busy;
    uint64_t deadline;
};

static void progress_start(const struct cuda_transport *t, struct progress *p, uint64_t now)
{
    p->sq_head = ld32(t, VC_OFF_SQ_HEAD);
    p->cq_tail = ld32(t, VC_OFF_CQ_TAIL);
    p->busy = ld32(t, VC_OFF_HOST_BUSY);
    p->deadline = now + t->timeout_ns;
}

/* 1 when the host has made no progress on our channel for the timeout */
static int progress_stalled(const struct cuda_transport *t, struct progress *p, uint64_t now)
{
    uint32_t head = ld32(t, VC_OFF_SQ_HEAD), tail = ld32(t, VC_OFF_CQ_TAIL), busy = ld32(t, VC_OFF_HOST_BUSY);
    if (head != p->sq_head || tail != p->cq_tail || busy != p->busy) {
        p->sq_head = head;
        p->cq_tail = tail;
        p->busy = busy;
        p->deadline = now + t->timeout_ns;
        return 0;
    }
    return now > p->deadline;
}

/*
 * Waiting for the host to consume (a full submission ring, a full arena): it has that much work
 * queued already. Spin for spin_ns (a host that is running frees room within a pass of its loop), then
 * nap between looks: a host that freed nothing for that long is likely waiting for a CPU, perhaps this
 * one. Spinning on cost up to 100 us a posted copy on a loaded host, yielding 3-11 us, napping
 * 0.6-13 us (docs/benchmarks.md, fifth session).
 */
#define ROOM_NAP_NS 20000
struct room_wait {
    struct progress progress;
    uint64_t spin_until; /* 0 until the first look found no room */
};

/* One look's wait: 0 to look again, or a transport error (`what` says what stays full). */
static int wait_for_room(struct cuda_transport *t, struct room_wait *w, const char *what)
{
    int rc = check_alive(t);
    if (rc)
        return rc;
    kick(t);
    if ((rc = drain_completions(t)) < 0)
        return rc;
    uint64_t now = now_ns();
    if (!w->spin_until) {
        progress_start(t, &w->progress, now);
        w->spin_until = now + t->spin_ns;
    } else if (progress_stalled(t, &w->progress, now)) {
        return vt_fail(CUDA_TRANSPORT_E_TIMEOUT, "%s: the host consumed nothing for %llu ms", what,
                       (unsigned long long)(t->timeout_ns / 1000000ull));
    }
    if (now < w->spin_until) {
        cpu_relax();
    } else {
        struct timespec nap = {0, ROOM_NAP_NS};
        nanosleep(&nap, NULL);
    }
    return 0;
}

static void arena_reclaim(struct cuda_transport *t)
{
    uint32_t consumed = ld32(t, VC_OFF_SQ_HEAD);
    uint32_t cap = t->sq_entries + 1;
    while (t->inflight_count) {
        struct vt_inflight *first = &t->inflight[t->inflight_head];
        if ((uint32_t)(consumed - first->sq_index) >= 0x80000000u)
            break;
        /* pushed at or after the held output area: not ours to reuse until it is copied out */
        if (t->holding && (uint32_t)(t->hold_index - first->sq_index) - 1u >= 0x7fffffffu)
            break;
        t->arena_freed = first->end;
        t->inflight_head = (t->inflight_head + 1) % cap;
        t->inflight_count--;
    }
}

/* Arena offset for `len` bytes (at `phase` within a page, or 64-byte aligned for NO_PHASE), waiting
 * for the host to consume earlier payloads if needed. */
static int arena_reserve(struct cuda_transport *t, uint64_t len, int phase, uint32_t *off)
{
    uint64_t size = t->arena_size;
    struct room_wait wait = {.spin_until = 0};
    for (;;) {
        arena_reclaim(t);
        if (!t->inflight_count && t->arena_tail % size) /* idle: back to the first, warm, byte */
            t->arena_tail = t->arena_freed = t->arena_tail + size - t->arena_tail % size;
        uint64_t start = phase == NO_PHASE ? (t->arena_tail + 63) & ~63ull
                                           : t->arena_tail + (((uint64_t)phase - t->arena_tail) & (PAGE_BYTES - 1));
        if (start % size + len > size) {
            start += size - start % size; /* a payload never wraps */
            if (phase != NO_PHASE && phase + len <= size)
                start += (uint64_t)phase;
        }
        if (start + len - t->arena_freed <= size) {
            t->arena_tail = start + len;
            *off = (uint32_t)(start % size);
            return 0;
        }
        int rc = wait_for_room(t, &wait, "the arena stays full");
        if (rc)
            return rc;
    }
}

static int push(struct cuda_transport *t, uint16_t call_id, uint16_t flags, const void *args,
                uint32_t nargs, uint32_t in_off, uint32_t in_len, uint32_t out_off, uint32_t out_cap,
                uint32_t *seq_out)
{
    struct room_wait wait = {.spin_until = 0};
    for (;;) {
        uint32_t head = ld32(t, VC_OFF_SQ_HEAD);
        uint32_t used = t->sq_tail - head;
        if (used > t->sq_entries) {
            int rc = check_alive(t); /* a reset zeroed the host's indices: not a ring error */
            if (rc)
                return rc;
            return vt_fail(CUDA_TRANSPORT_E_PROTOCOL, "submission head %u is %u behind tail %u",
                           head, used, t->sq_tail);
        }
        if (used < t->sq_entries)
            break;
        int rc = wait_for_room(t, &wait, "the submission ring stays full");
        if (rc)
            return rc;
    }
    /* The header and the argument bytes used, nothing past them (protocol.md: the host ignores them;
     * an earlier entry's stay there): a copy's entry is one cache line written, not three. */
    struct vr_sqe sqe;
    sqe.seq = ++t->seq;
    sqe.call_id = call_id;
    sqe.flags = flags;
    sqe.in_off = in_off;
    sqe.in_len = in_len;
    sqe.out_off = out_off;
    sqe.out_cap = out_cap;
    sqe.args_len = nargs;
    sqe.reserved = 0;
    if (nargs)
        memcpy(sqe.args, args, nargs);
    uint8_t *slot = t->chan + t->sq_offset + (uint64_t)(t->sq_tail & (t->sq_entries - 1)) * VR_SQE_SIZE;
    memcpy(slot, &sqe, offsetof(struct vr_sqe, args) + nargs);
    t->sq_tail++;
    st32(t, VC_OFF_SQ_TAIL, t->sq_tail); /* release: the entry and its payload are visible first */
    t->stats.submitted++;
    st64(t, VC_OFF_CALLS_SUBMITTED, t->stats.submitted);
    if (in_len || out_cap) {
        uint32_t cap = t->sq_entries + 1;
        struct vt_inflight *slot_if = &t->inflight[(t->inflight_head + t->inflight_count) % cap];
        slot_if->sq_index = t->sq_tail;
        slot_if->end = t->arena_tail;
        t->inflight_count++;
    }
    kick(t);
    *seq_out = sqe.seq;
    return 0;
}

/* How long a wait for a completion spins flat out before it yields the CPU between looks: a call the
 * host serves at once answers within it; past it the host is working, perhaps on this CPU. */
#define SPIN_FLAT_NS 5000
/* With more entries than this queued ahead of ours the host cannot answer within the flat spin (its
 * cheapest, a 4 KiB pinned copy, takes ~80 ns): yield from the first look, so that a worker sharing
 * this CPU starts on them now rather than after the spin (a batch of copies, then a synchronize) */
#define QUEUED_NO_FLAT 64u

static int wait_for(struct cuda_transport *t, uint32_t seq, struct vr_cqe *cqe)
{
    uint64_t start = now_ns(), spin_until = start + t->spin_ns, flat_until = start + SPIN_FLAT_NS;
    uint32_t seen_head = ld32(t, VC_OFF_SQ_HEAD);
    if (t->sq_tail - seen_head > QUEUED_NO_FLAT)
        flat_until = start;
    struct progress progress;
    progress_start(t, &progress, start);
    for (;;) {
        int rc = pop_completion(t, cqe);
        if (rc < 0)
            return rc;
        if (rc > 0) {
            if (cqe->flags & VR_COMPLETE_ASYNC_ERROR)
                file_async_error(t, cqe);
            else if (cqe->seq == seq)
                return 0;
            continue; /* a stale completion of an earlier, abandoned wait */
        }
        uint64_t now = now_ns();
        if (now < spin_until) {
            if (now < flat_until)
                cpu_relax();
            else
                sched_yield();
            continue;
        }
        if ((rc = check_alive(t)))
            return rc;
        if (progress_stalled(t, &progress, now))
            return vt_fail(CUDA_TRANSPORT_E_TIMEOUT, "no completion for seq %u: the host made no progress on "
                           "channel %d for %llu ms", seq, t->channel, (unsigned long long)(t->timeout_ns / 1000000ull));
        uint32_t head = ld32(t, VC_OFF_SQ_HEAD);
        if (t->backend == VT_SOCKET && head != seen_head) {
            /* the host consumed some of our queue within the last spin: it is serving what is ahead of us
             * (a run of copies publishes its head as it goes), so spin (yielding) on rather than sleep:
             * waking a sleeping vCPU costs the host's writer 10-15 us and us 20-40 us here. Only on the
             * socket, a process of the host, whose yield gives the worker its CPU: a VM's yield keeps
             * its vCPU running, perhaps on the worker's CPU, where its 50 us naps leave it free */
            seen_head = head;
            spin_until = now + t->spin_ns;
            continue;
        }
        if (t->backend == VT_SOCKET) {
            st32(t, VC_OFF_GUEST_NEED_IRQ, 1);
            __atomic_thread_fence(__ATOMIC_SEQ_CST);
            if (ld32(t, VC_OFF_CQ_TAIL) == t->cq_head)
                pause_slow(t);
            st32(t, VC_OFF_GUEST_NEED_IRQ, 0);
        } else {
            pause_slow(t);
        }
        flat_until = now_ns() + SPIN_FLAT_NS;
        spin_until = flat_until - SPIN_FLAT_NS + t->spin_ns;
    }
}

/* -- calls ------------------------------------------------------------------------------------- */

/*
 * Before anything touches the channel: a lost or closed channel is never touched again (its claim
 * is dropped, another process may own it now); after a reset it is opened again first.
 */
static int usable_locked(struct cuda_transport *t)
{
    if (t->lost || t->closed)
        return vt_fail(CUDA_TRANSPORT_E_CLOSED, "%s", t->lost_why);
    if (t->reopen)
        return vt_channel_open(t);
    return 0;
}

/* A forked child shares the parent's mappings but owns no channel: it must not touch it. */
static int forked(const struct cuda_transport *t)
{
    if (t->owner_pid == vt_current_pid())
        return 0;
    vt_fail(CUDA_TRANSPORT_E_CLOSED, "this process was forked from process %d, which opened channel %d: a "
            "forked child cannot use its parent's CUDA (as on a GPU); exec or open a transport of its own",
            (int)t->owner_pid, t->channel);
    return 1;
}

static int submit_locked(struct cuda_transport *t, uint16_t call_id, uint16_t flags, const void *args,
                         uint32_t nargs, const void *send_data, size_t send_len, const void *recv_data,
                         size_t recv_cap, uint32_t *seq, uint32_t *out_off)
{
    if (nargs > VR_MAX_INLINE_ARGS || (nargs && !args))
        return vt_fail(CUDA_TRANSPORT_E_INVAL, "%u bytes of arguments (at most %u)", nargs,
                       VR_MAX_INLINE_ARGS);
    int rc = usable_locked(t);
    if (rc)
        return rc;
    if ((send_len && !send_data) || (uint64_t)send_len + recv_cap > t->arena_size)
        return vt_fail(CUDA_TRANSPORT_E_INVAL, "payloads of %zu + %zu bytes exceed the %llu-byte arena",
                       send_len, recv_cap, (unsigned long long)t->arena_size);
    rc = check_alive(t);
    if (rc)
        return rc;
    uint32_t in_off = 0;
    *out_off = 0;
    if (send_len) {
        if ((rc = arena_reserve(t, send_len, phase_of(send_data, send_len), &in_off)))
            return rc;
        memcpy(t->arena + in_off, send_data, send_len);
    }
    if (recv_cap && (rc = arena_reserve(t, recv_cap, phase_of(recv_data, recv_cap), out_off)))
        return rc;
    return push(t, call_id, flags, args, nargs, in_off, (uint32_t)send_len, *out_off,
                (uint32_t)recv_cap, seq);
}

/* A completion as the caller's result (when it asked for one). */
static void completion_result(const struct vr_cqe *cqe, struct cuda_call_result *result)
{
    if (!result)
        return;
    result->status = cqe->status;
    result->flags = cqe->flags;
    result->seq = cqe->seq;
    result->out_len = cqe->out_len;
    result->call_id = cqe->call_id;
    memcpy(result->results, cqe->results, sizeof result->results);
}

/* Statuses are CUresult / cublasStatus_t values: small and non-negative. */
static int status_code(uint32_t status)
{
    return status > 0x7fffffffu ? 0x7fffffff : (int)status;
}

static int call_locked(struct cuda_transport *t, uint16_t call_id, uint16_t flags, const void *args,
                       uint32_t nargs, const void *send_data, size_t send_len,
                       struct cuda_call_result *result, void *recv_data, size_t recv_cap,
                       size_t *recv_len)
{
    uint32_t seq, out_off;
    if (recv_cap && !recv_data)
        return vt_fail(CUDA_TRANSPORT_E_INVAL, "recv_cap without a buffer");
    int rc = submit_locked(t, call_id, flags, args, nargs, send_data, send_len, recv_data, recv_cap, &seq,
                           &out_off);
    if (rc)
        return rc;
    struct vr_cqe cqe;
    if ((rc = wait_for(t, seq, &cqe)))
        return rc;
    size_t got = cqe.out_len < recv_cap ? cqe.out_len : recv_cap;
    if (got)
        memcpy(recv_data, t->arena + out_off, got);
    if (recv_len)
        *recv_len = got;
    completion_result(&cqe, result);
    return status_code(cqe.status);
}

int cuda_transport_call(struct cuda_transport *t, uint16_t call_id, const void *args, uint32_t nargs,
                        const void *send_data, size_t send_len, struct cuda_call_result *result,
                        void *recv_data, size_t recv_cap, size_t *recv_len)
{
    if (forked(t))
        return CUDA_TRANSPORT_E_CLOSED;
    pthread_mutex_lock(&t->lock);
    int rc = call_locked(t, call_id, 0, args, nargs, send_data, send_len, result, recv_data,
                         recv_cap, recv_len);
    pthread_mutex_unlock(&t->lock);
    return rc;
}

static int post_locked(struct cuda_transport *t, uint16_t call_id, uint16_t flags, const void *args,
                       uint32_t nargs, const void *send_data, size_t send_len)
{
    uint32_t seq, out_off;
    int rc = usable_locked(t);
    if (rc)
        return rc;
    if ((rc = drain_completions(t)) < 0)
        return rc;
    rc = submit_locked(t, call_id, (uint16_t)(flags | VR_SUBMIT_ASYNC), args, nargs, send_data,
                       send_len, NULL, 0, &seq, &out_off);
    if (rc == 0)
        t->stats.posted++;
    return rc;
}

int cuda_transport_post(struct cuda_transport *t, uint16_t call_id, const void *args, uint32_t nargs,
                        const void *send_data, size_t send_len)
{
    if (forked(t))
        return CUDA_TRANSPORT_E_CLOSED;
    pthread_mutex_lock(&t->lock);
    int rc = post_locked(t, call_id, 0, args, nargs, send_data, send_len);
    pthread_mutex_unlock(&t->lock);
    return rc;
}

int cuda_transport_memcpy_htod(struct cuda_transport *t, uint64_t dst, uint32_t stream,
                               const void *src, size_t len, int asynchronous,
                               struct cuda_call_result *result)
{
    const uint8_t *bytes = src;
    int rc = 0;
    if (forked(t))
        return CUDA_TRANSPORT_E_CLOSED;
    pthread_mutex_lock(&t->lock);
    size_t off = 0, chunk = copy_chunk(t, len);
    do {
        size_t n = len - off < chunk ? len - off : chunk;
        int last = off + n >= len;
        struct vr_args_memcpy_htod a = {.dst = dst + off, .stream = stream, .pad_ = 0};
        if (!last || asynchronous) {
            rc = post_locked(t, VR_CALL_MEMCPY_HTOD, last ? 0 : VR_SUBMIT_CHUNK_MORE, &a, sizeof a,
                             bytes + off, n);
            if (rc == 0 && result)
                memset(result, 0, sizeof *result);
        } else {
            rc = call_locked(t, VR_CALL_MEMCPY_HTOD, 0, &a, sizeof a, bytes + off, n, result, NULL, 0,
                             NULL);
        }
        if (rc < 0)
            break;
        t->stats.bytes_htod += n;
        off += n;
    } while (off < len && rc == 0);
    pthread_mutex_unlock(&t->lock);
    return rc;
}

/* A dtoh chunk in flight: its submission, where its output lands, where it goes. */
struct dtoh_chunk {
    uint32_t seq, out_off, sq_index;
    size_t off, n;
};

/* Wait for the oldest chunk in flight and copy its output out; the next in flight becomes held. */
static int finish_dtoh(struct cuda_transport *t, struct dtoh_chunk *fly, int *nfly, uint8_t *dst,
                       struct cuda_call_result *result)
{
    struct dtoh_chunk c = fly[0];
    fly[0] = fly[1];
    (*nfly)--;
    struct vr_cqe cqe;
    int rc = wait_for(t, c.seq, &cqe);
    if (rc)
        return rc;
    completion_result(&cqe, result);
    if (cqe.status)
        return status_code(cqe.status);
    if (cqe.out_len != c.n)
        return vt_fail(CUDA_TRANSPORT_E_PROTOCOL, "memcpy_dtoh of %zu bytes returned %u", c.n, cqe.out_len);
    memcpy(dst + c.off, t->arena + c.out_off, c.n);
    t->stats.bytes_dtoh += c.n;
    t->hold_index = fly[0].sq_index;
    t->holding = *nfly > 0;
    return 0;
}

int cuda_transport_memcpy_dtoh(struct cuda_transport *t, void *dst, uint64_t src, uint32_t stream,
                               size_t len, struct cuda_call_result *result)
{
    uint8_t *bytes = dst;
    int rc = 0;
    if (forked(t))
        return CUDA_TRANSPORT_E_CLOSED;
    pthread_mutex_lock(&t->lock);
    if (len == 0) { /* still one call: the host checks the pointer and reports a latched error */
        struct vr_args_memcpy_dtoh a = {.src = src, .count = 0, .stream = stream, .pad_ = 0};
        rc = call_locked(t, VR_CALL_MEMCPY_DTOH, 0, &a, sizeof a, NULL, 0, result, NULL, 0, NULL);
        pthread_mutex_unlock(&t->lock);
        return rc;
    }
    /* Two chunks in flight: the host fills the next output area while we copy the last one out. */
    struct dtoh_chunk fly[2];
    int nfly = 0;
    size_t off = 0, chunk = copy_chunk(t, len);
    while (rc == 0 && (off < len || nfly)) {
        if (off < len && nfly < 2) {
            size_t n = len - off < chunk ? len - off : chunk;
            struct vr_args_memcpy_dtoh a = {.src = src + off, .count = n, .stream = stream, .pad_ = 0};
            struct dtoh_chunk *c = &fly[nfly];
            rc = submit_locked(t, VR_CALL_MEMCPY_DTOH, off + n < len ? VR_SUBMIT_CHUNK_MORE : 0, &a, sizeof a,
                               NULL, 0, bytes + off, n, &c->seq, &c->out_off);
            if (rc)
                break;
            c->sq_index = t->sq_tail;
            c->off = off;
            c->n = n;
            if (!t->holding) {
                t->holding = 1;
                t->hold_index = c->sq_index;
            }
            nfly++;
            off += n;
            if (nfly < 2 && off < len)
                continue;
        }
        rc = finish_dtoh(t, fly, &nfly, bytes, result);
    }
    /* a chunk failed: answer the one still in flight before returning, leaving nothing behind */
    while (rc > 0 && nfly) {
        struct vr_cqe cqe;
        struct dtoh_chunk c = fly[0];
        fly[0] = fly[1];
        nfly--;
        if (wait_for(t, c.seq, &cqe))
            break;
    }
    t->holding = 0;
    pthread_mutex_unlock(&t->lock);
    return rc;
}

int cuda_transport_take_async_error(struct cuda_transport *t, struct cuda_call_result *result)
{
    if (forked(t))
        return 0;
    pthread_mutex_lock(&t->lock);
    if (usable_locked(t) == 0)
        drain_completions(t);
    int have = t->have_async_error;
    if (have) {
        if (result)
            *result = t->async_error;
        t->have_async_error = 0;
    }
    pthread_mutex_unlock(&t->lock);
    return have;
}

/* -- accessors --------------------------------------------------------------------------------- */

size_t cuda_transport_chunk_size(const struct cuda_transport *t) { return t->chunk; }

int cuda_transport_set_chunk_size(struct cuda_transport *t, size_t bytes)
{
    if (bytes == 0 || bytes > t->arena_size)
        return vt_fail(CUDA_TRANSPORT_E_INVAL, "chunk of %zu bytes (arena is %llu)", bytes,
                       (unsigned long long)t->arena_size);
    if (forked(t))
        return CUDA_TRANSPORT_E_CLOSED;
    pthread_mutex_lock(&t->lock);
    t->chunk = bytes;
    pthread_mutex_unlock(&t->lock);
    return 0;
}

size_t cuda_transport_arena_size(const struct cuda_transport *t) { return (size_t)t->arena_size; }
size_t cuda_transport_region_size(const struct cuda_transport *t) { return t->region_size; }
const char *cuda_transport_backend(const struct cuda_transport *t)
{
    return t->backend == VT_PCI ? "pci" : "socket";
}
uint32_t cuda_transport_vm_id(const struct cuda_transport *t) { return t->vm_id; }
uint32_t cuda_transport_peer_id(const struct cuda_transport *t) { return t->peer_id; }
int cuda_transport_channel(const struct cuda_transport *t) { return t->channel; }
uint32_t cuda_transport_channel_count(const struct cuda_transport *t) { return t->channel_count; }

void cuda_transport_get_stats(const struct cuda_transport *t, struct cuda_transport_stats *stats)
{
    if (forked(t)) {
        memset(stats, 0, sizeof *stats);
        return;
    }
    pthread_mutex_lock((pthread_mutex_t *)&t->lock);
    *stats = t->stats;
    pthread_mutex_unlock((pthread_mutex_t *)&t->lock);
}
