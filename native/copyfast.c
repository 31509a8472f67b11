/*
 * mediator._copyfast: host-device copies served in C on `sim` (issue 19): pinned copies
 * (memcpy_htod_pinned, memcpy_dtoh_pinned: between the region's pinned area and device memory) and
 * the host side of staged ones (memcpy_htod, memcpy_dtoh: between the channel's arena and device
 * memory). The Python path (mediator/_server.py's _serve, executor/_sim_pinned.py, executor/_sim.py)
 * is the reference, and the fallback for everything this code does not take.
 *
 * Theory of operation. One FastCopy object serves one channel. The server calls serve() when the
 * entry at the submission head is one of these copies; serve() reads that entry and the ones after
 * it straight from the ring and serves every one that is plainly fine, stopping at the first that is
 * anything else: another call, a malformed header, a payload a pinned copy should not have or a
 * staged copy's that is not simply inside the arena, a zero count, an unknown stream, a pinned range
 * or device pointer it has not been told about, a synchronous copy with no completion room, the
 * async cap about to throttle, a capture or an injected fault pending in the executor. It returns
 * how many it served; the server advances the head by that many and serves the entry it stopped at
 * in Python, which answers it exactly as before (its error, log line and counters).
 *
 * What a copy may touch is known from two small caches that Python fills (learn_block, learn_range)
 * with what the Python path has just checked for a copy it served: a device block (a cuMemAlloc or
 * module global of this context: its address range and the buffer behind it, which the cache holds
 * exported, so the bytes stay valid however stale the entry) and a pinned range of this context.
 * Both stay true until something is freed, so each cache is stamped with a version that the Python
 * side bumps on every removal (DeviceMemory.version, PinnedAllocator.version) and is emptied as soon
 * as serve() sees a newer one (DeviceMemory's also moves when a mapping's access changes). A VMM
 * mapping is a block here only while all of it grants read-write access, and a copy that runs from
 * one mapping into the next is never served here. Every entry
 * is read once into locals; every offset, pointer and count is checked against a cached range, in
 * 64-bit arithmetic that cannot wrap, before any byte moves.
 *
 * Waking the guest early: a guest waiting for a completion behind a long run of posted copies sleeps on
 * its vector (GUEST_NEED_IRQ set), and a sleeping vCPU takes ~20 us from the kick to run again. Posted
 * copies write no completion, so the worker's kick came only after the run, and the guest's wake-up
 * added to every batch. With kick_early() set, serve() rings the guest's vector once the entries still
 * queued behind the copy just served would take no longer than the lead at the pace of that copy: the
 * guest wakes while the last copies run and spins (yielding) into its completion. Only while the
 * guest says it sleeps, at most once a serve(), never with nothing queued behind (the run's own
 * completions are the worker's ordinary kick). A guest woken early by a long entry queued behind the
 * copies (a launch) spins for its spin time and sleeps again: one wake-up, counted in early_kicks.
 *
 * Progress during a run: with publish_progress() set, serve() publishes the submission head as it goes (at
 * most every progress_ns), not only when the server advances past the run at its end. A guest that waits
 * behind the run sees the host consume its queue and keeps spinning (yielding) instead of going to sleep
 * (guest/c/vgpu_transport.c's wait_for): on this host a sleeping vCPU costs its waker 10-15 us in the
 * eventfd write and itself 20-40 us to run again (docs/benchmarks.md, eighth session). The head never
 * passes an entry before its copy is done, so a payload's span is free when the guest sees it passed.
 *
 * Visibility: each copy served here counts in the worker's counters as the Python path counts it
 * (calls, async calls, bytes, latency and its histogram); the server leaves this path off while a
 * trace is attached, an error is latched or the context is sticky, so those stay the Python path's.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>

#define SQE_HEADER 32
#define SQE_SIZE 192
#define PINNED_ARGS 32       /* "<QQQI4x": device pointer, pinned offset, count, stream */
#define HTOD_ARGS 16         /* "<QI4x": device pointer, stream (the count is the input payload's) */
#define DTOH_ARGS 24         /* "<QQI4x": device pointer, count, stream (into the output payload) */
#define FLAG_ASYNC 0x1u
#define FLAG_CHUNK_MORE 0x2u /* a staged copy's chunks; on a pinned copy the Python path's error */
#define NBLOCKS 16
#define NRANGES 16
#define LATENCY_BUCKETS 24   /* mediator/_stats.py */

typedef struct {
    uint64_t start, size;
    uint8_t *host;
    Py_buffer view;
} Block;

typedef struct {
    uint64_t start, end;
} Range;

typedef struct {
    PyObject_HEAD
    Py_buffer region;
    int region_held;
    uint32_t sq_offset, sq_mask;
    uint64_t arena_offset, arena_size;
    uint16_t htod_id, dtoh_id, staged_htod_id, staged_dtoh_id;
    PyObject *counters, *cq_space, *cq_push;
    /* bound to one executor context by bind(); the pinned area, client and allocator may be absent */
    Py_buffer pinned;
    int pinned_held;
    PyObject *executor, *client, *memory, *allocator, *streams, *captures, *faults;
    long long mem_version, pin_version;
    Block blocks[NBLOCKS];
    int nblocks, next_block;
    Range ranges[NRANGES];
    int nranges, next_range;
    long long async_run;
    /* kick_early(): the guest's vector (our own dup, -1: off), its flag and the tail, the lead */
    int kick_fd;
    uint32_t need_irq_off, sq_tail_off;
    uint64_t kick_lead_ns;
    unsigned long long early_kicks;
    /* publish_progress(): the channel's SQ_HEAD word (0: off) and how often a run publishes it */
    uint32_t head_off;
    uint64_t progress_ns;
} FastCopy;

static PyObject *str_version, *str_pinned, *str_calls, *str_async_calls, *str_bytes_htod, *str_bytes_dtoh,
    *str_latency_sum_ns, *str_latency, *str_space, *str_push, *kw_completion, *kw_completion_out;

/* Whether rep movsb moves a co-aligned copy here at least as fast as memcpy does in a worker: Intel with
 * ERMS. Workers run with glibc's rep-movsb threshold past any size (MEMCPY_TUNABLE, mediator/_worker.py:
 * on AMD Zen 3 rep movsb crawls when the destination sits 1-31 bytes past the source modulo 4 KiB), so
 * their memcpy takes its vector loop; on an Intel core rep movsb is what glibc would have chosen, and
 * between buffers at the same offset in a cache line it is 5-9% faster from 64 KiB to 1 MiB (a region
 * page and a device block: docs/benchmarks.md, sixth session). Set once at import. */
static int fast_strings;

#define MOVSB_MIN 4096u          /* below this memcpy is as fast */
#define MOVSB_MAX (4u << 20)     /* from here both are bound by memory; glibc goes non-temporal */

static void detect_fast_strings(void) {
#if defined(__x86_64__)
    unsigned a, b, c, d;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0), "c"(0));
    int intel = b == 0x756e6547u && d == 0x49656e69u && c == 0x6c65746eu; /* "GenuineIntel" */
    const char *off = getenv("VGPU_COPYFAST_MOVSB"); /* "0": memcpy only (a before and after on one tree) */
    if (!intel || a < 7 || (off && off[0] == '0'))
        return;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(7), "c"(0));
    fast_strings = (b >> 9) & 1; /* ERMS */
#endif
}

/* one host-device copy: rep movsb where it is the faster (see fast_strings), memcpy elsewhere */
static inline void copy_bytes(uint8_t *dst, const uint8_t *src, size_t n) {
#if defined(__x86_64__)
    if (fast_strings && n >= MOVSB_MIN && n < MOVSB_MAX && !(((uintptr_t)dst ^ (uintptr_t)src) & 63)) {
        __asm__ volatile("rep movsb" : "+D"(dst), "+S"(src), "+c"(n) : : "memory");
        return;
    }
#endif
    memcpy(dst, src, n);
}

static inline uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void forget_blocks(FastCopy *self) {
    for (int i = 0; i < self->nblocks; i++)
        PyBuffer_Release(&self->blocks[i].view);
    self->nblocks = self->next_block = 0;
}

static void forget_ranges(FastCopy *self) { self->nranges = self->next_range = 0; }

static void unbind(FastCopy *self) {
    forget_blocks(self);
    forget_ranges(self);
    if (self->pinned_held) {
        PyBuffer_Release(&self->pinned);
        self->pinned_held = 0;
    }
    Py_CLEAR(self->executor);
    Py_CLEAR(self->client);
    Py_CLEAR(self->memory);
    Py_CLEAR(self->allocator);
    Py_CLEAR(self->streams);
    Py_CLEAR(self->captures);
    Py_CLEAR(self->faults);
    self->mem_version = self->pin_version = -1;
}

static void kick_off(FastCopy *self) {
    if (self->kick_fd >= 0)
        close(self->kick_fd);
    self->kick_fd = -1;
}

static void release_all(FastCopy *self) {
    unbind(self);
    kick_off(self);
    self->head_off = 0; /* checked against this region only */
    if (self->region_held) {
        PyBuffer_Release(&self->region);
        self->region_held = 0;
    }
    Py_CLEAR(self->counters);
    Py_CLEAR(self->cq_space);
    Py_CLEAR(self->cq_push);
}

static int fc_init(FastCopy *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"region", "sq_offset", "sq_entries", "arena_offset", "arena_size", "call_ids",
                             "counters", "cq", NULL};
    PyObject *region, *counters, *cq;
    unsigned long sq_offset, sq_entries;
    unsigned long long arena_offset, arena_size;
    unsigned long ids[4];
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OkkKK(kkkk)OO", kwlist, &region, &sq_offset, &sq_entries,
                                     &arena_offset, &arena_size, &ids[0], &ids[1], &ids[2], &ids[3],
                                     &counters, &cq))
        return -1;
    release_all(self);
    if (PyObject_GetBuffer(region, &self->region, PyBUF_WRITABLE) < 0)
        return -1;
    self->region_held = 1;
    unsigned long long len = (unsigned long long)self->region.len;
    if (sq_entries == 0 || (sq_entries & (sq_entries - 1)) || sq_entries > (1u << 16) || ids[0] > 0xFFFF ||
        ids[1] > 0xFFFF || ids[2] > 0xFFFF || ids[3] > 0xFFFF ||
        (unsigned long long)sq_offset + (unsigned long long)sq_entries * SQE_SIZE > len ||
        arena_offset > len || arena_size > len - arena_offset) {
        release_all(self);
        PyErr_SetString(PyExc_ValueError, "ring or arena geometry does not fit the region");
        return -1;
    }
    self->sq_offset = (uint32_t)sq_offset;
    self->sq_mask = (uint32_t)sq_entries - 1;
    self->arena_offset = arena_offset;
    self->arena_size = arena_size;
    self->htod_id = (uint16_t)ids[0];
    self->dtoh_id = (uint16_t)ids[1];
    self->staged_htod_id = (uint16_t)ids[2];
    self->staged_dtoh_id = (uint16_t)ids[3];
    self->cq_space = PyObject_GetAttr(cq, str_space);
    self->cq_push = PyObject_GetAttr(cq, str_push);
    if (!self->cq_space || !self->cq_push) {
        release_all(self);
        return -1;
    }
    self->counters = Py_NewRef(counters);
    self->mem_version = self->pin_version = -1;
    return 0;
}

static PyObject *fc_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    FastCopy *self = (FastCopy *)PyType_GenericNew(type, args, kwds);
    if (self)
        self->kick_fd = -1; /* no early kicks until kick_early() (0 would be stdin) */
    return (PyObject *)self;
}

static int fc_traverse(FastCopy *self, visitproc visit, void *arg) {
    Py_VISIT(self->counters);
    Py_VISIT(self->cq_space);
    Py_VISIT(self->cq_push);
    Py_VISIT(self->executor);
    Py_VISIT(self->client);
    Py_VISIT(self->memory);
    Py_VISIT(self->allocator);
    Py_VISIT(self->streams);
    Py_VISIT(self->captures);
    Py_VISIT(self->faults);
    return 0;
}

static int fc_clear(FastCopy *self) {
    release_all(self);
    return 0;
}

static void fc_dealloc(FastCopy *self) {
    PyObject_GC_UnTrack(self);
    release_all(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* bind(executor, client, pinned_view, memory, allocator, streams, captures, faults): the context
 * whose copies this object serves (client, pinned_view and allocator None where it has no pinned
 * area); forgets every cached fact. */
static PyObject *fc_bind(FastCopy *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 8) {
        PyErr_SetString(PyExc_TypeError,
                        "bind(executor, client, pinned_view, memory, allocator, streams, captures, faults)");
        return NULL;
    }
    if (!self->region_held) {
        PyErr_SetString(PyExc_ValueError, "FastCopy used after release()");
        return NULL;
    }
    if (!PyDict_CheckExact(args[5]) || !PyDict_CheckExact(args[6]) || !PyList_CheckExact(args[7])) {
        PyErr_SetString(PyExc_TypeError, "streams and captures must be dicts, faults a list");
        return NULL;
    }
    unbind(self);
    if (args[2] != Py_None) {
        if (PyObject_GetBuffer(args[2], &self->pinned, PyBUF_WRITABLE) < 0)
            return NULL;
        self->pinned_held = 1;
    }
    self->executor = Py_NewRef(args[0]);
    self->client = Py_NewRef(args[1]);
    self->memory = Py_NewRef(args[3]);
    self->allocator = Py_NewRef(args[4]);
    self->streams = Py_NewRef(args[5]);
    self->captures = Py_NewRef(args[6]);
    self->faults = Py_NewRef(args[7]);
    Py_RETURN_NONE;
}

/* a non-negative int attribute of obj that fits a long long; -1 (and no exception) on anything else */
static long long version_of(PyObject *obj) {
    PyObject *v = PyObject_GetAttr(obj, str_version);
    if (!v) {
        PyErr_Clear();
        return -1;
    }
    long long x = PyLong_Check(v) ? PyLong_AsLongLong(v) : -1;
    Py_DECREF(v);
    if (x == -1 && PyErr_Occurred())
        PyErr_Clear();
    return x < 0 ? -1 : x;
}

/* the caches hold only while nothing was freed since they were filled: the block cache's answer
 * (0: unusable), and in *pinned_ok whether pinned ranges may be used (the executor's pinned client
 * is still the one bound, and its allocator's version is read) */
static int caches_current(FastCopy *self, int *pinned_ok) {
    long long mv = version_of(self->memory);
    if (mv < 0)
        return 0;
    if (mv != self->mem_version) {
        forget_blocks(self);
        self->mem_version = mv;
    }
    *pinned_ok = 0;
    if (!self->pinned_held)
        return 1;
    PyObject *client = PyObject_GetAttr(self->executor, str_pinned);
    if (!client) {
        PyErr_Clear();
        return 1;
    }
    Py_DECREF(client); /* only its identity matters: the executor still holds it */
    long long pv = client == self->client ? version_of(self->allocator) : -1;
    if (pv < 0)
        return 1;
    if (pv != self->pin_version) {
        forget_ranges(self);
        self->pin_version = pv;
    }
    *pinned_ok = 1;
    return 1;
}

static PyObject *fc_learn_block(FastCopy *self, PyObject *const *args, Py_ssize_t nargs) {
    unsigned long long start, size;
    long long version;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "learn_block(start, size, buffer, version)");
        return NULL;
    }
    start = PyLong_AsUnsignedLongLong(args[0]);
    if (PyErr_Occurred())
        return NULL;
    size = PyLong_AsUnsignedLongLong(args[1]);
    if (PyErr_Occurred())
        return NULL;
    version = PyLong_AsLongLong(args[3]);
    if (version == -1 && PyErr_Occurred())
        return NULL;
    if (!self->memory)
        Py_RETURN_FALSE;
    if (version != self->mem_version) {
        forget_blocks(self);
        self->mem_version = version;
    }
    Block fresh;
    if (PyObject_GetBuffer(args[2], &fresh.view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0)
        return NULL;
    if (size == 0 || size > (unsigned long long)fresh.view.len || start + size < start) {
        PyBuffer_Release(&fresh.view);
        Py_RETURN_FALSE;
    }
    fresh.start = start;
    fresh.size = size;
    fresh.host = (uint8_t *)fresh.view.buf;
    for (int i = 0; i < self->nblocks; i++)
        if (self->blocks[i].start == start) { /* the same block again: replace its entry */
            PyBuffer_Release(&self->blocks[i].view);
            self->blocks[i] = fresh;
            Py_RETURN_TRUE;
        }
    int slot;
    if (self->nblocks < NBLOCKS) {
        slot = self->nblocks++;
    } else {
        slot = self->next_block;
        self->next_block = (self->next_block + 1) % NBLOCKS;
        PyBuffer_Release(&self->blocks[slot].view);
    }
    self->blocks[slot] = fresh;
    Py_RETURN_TRUE;
}

static PyObject *fc_learn_range(FastCopy *self, PyObject *const *args, Py_ssize_t nargs) {
    unsigned long long start, end;
    long long version;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "learn_range(start, end, version)");
        return NULL;
    }
    start = PyLong_AsUnsignedLongLong(args[0]);
    if (PyErr_Occurred())
        return NULL;
    end = PyLong_AsUnsignedLongLong(args[1]);
    if (PyErr_Occurred())
        return NULL;
    version = PyLong_AsLongLong(args[2]);
    if (version == -1 && PyErr_Occurred())
        return NULL;
    if (!self->pinned_held || start >= end || end > (unsigned long long)self->pinned.len)
        Py_RETURN_FALSE;
    if (version != self->pin_version) {
        forget_ranges(self);
        self->pin_version = version;
    }
    for (int i = 0; i < self->nranges; i++)
        if (self->ranges[i].start == start) {
            self->ranges[i].end = end;
            Py_RETURN_TRUE;
        }
    int slot;
    if (self->nranges < NRANGES) {
        slot = self->nranges++;
    } else {
        slot = self->next_range;
        self->next_range = (self->next_range + 1) % NRANGES;
    }
    self->ranges[slot].start = start;
    self->ranges[slot].end = end;
    Py_RETURN_TRUE;
}

static inline const Block *find_block(const FastCopy *self, uint64_t ptr, uint64_t count) {
    for (int i = 0; i < self->nblocks; i++) {
        const Block *b = &self->blocks[i];
        if (ptr >= b->start && ptr - b->start < b->size && count <= b->size - (ptr - b->start))
            return b;
    }
    return NULL;
}

static inline int range_known(const FastCopy *self, uint64_t offset, uint64_t count) {
    for (int i = 0; i < self->nranges; i++) {
        const Range *r = &self->ranges[i];
        if (offset >= r->start && offset < r->end && count <= r->end - offset)
            return 1;
    }
    return 0;
}

/* whether stream handle h names a live stream of the context (0, the legacy stream, always does) */
static int stream_live(FastCopy *self, uint32_t h) {
    if (h == 0)
        return 1;
    PyObject *key = PyLong_FromUnsignedLong(h);
    if (!key)
        return -1;
    int found = PyDict_Contains(self->streams, key);
    Py_DECREF(key);
    return found;
}

/* completion room for one more entry: 1, 0 (none), -1 (the Python path should look: it raises) */
static int cq_room(FastCopy *self) {
    PyObject *r = PyObject_CallNoArgs(self->cq_space);
    if (!r) {
        PyErr_Clear();
        return -1;
    }
    long space = PyLong_AsLong(r);
    Py_DECREF(r);
    if (space == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return -1;
    }
    return space > 0;
}

/* the completion of a synchronous copy: status 0, and out_len for a staged DtoH */
static int push_done(FastCopy *self, uint32_t seq, uint16_t call_id, uint64_t out_len) {
    PyObject *s = PyLong_FromUnsignedLong(seq), *c = PyLong_FromUnsignedLong(call_id);
    PyObject *zero = PyLong_FromLong(0), *n = PyLong_FromUnsignedLongLong(out_len);
    PyObject *r = NULL;
    if (s && c && zero && n) {
        PyObject *argv[4] = {s, c, zero, n};
        r = PyObject_Vectorcall(self->cq_push, argv, 0, out_len ? kw_completion_out : kw_completion);
    }
    Py_XDECREF(s);
    Py_XDECREF(c);
    Py_XDECREF(zero);
    Py_XDECREF(n);
    if (!r)
        return -1;
    Py_DECREF(r);
    return 0;
}

static int add_to(PyObject *obj, PyObject *name, unsigned long long amount) {
    if (!amount)
        return 0;
    PyObject *old = PyObject_GetAttr(obj, name);
    if (!old)
        return -1;
    PyObject *delta = PyLong_FromUnsignedLongLong(amount);
    PyObject *sum = delta ? PyNumber_Add(old, delta) : NULL;
    Py_DECREF(old);
    Py_XDECREF(delta);
    if (!sum)
        return -1;
    int rc = PyObject_SetAttr(obj, name, sum);
    Py_DECREF(sum);
    return rc;
}

/* counters.latency[i] += hist[i], on the list the counters hold now */
static int add_latency(PyObject *counters, const unsigned long long *hist) {
    PyObject *list = PyObject_GetAttr(counters, str_latency);
    if (!list)
        return -1;
    if (!PyList_CheckExact(list) || PyList_GET_SIZE(list) != LATENCY_BUCKETS) {
        Py_DECREF(list);
        PyErr_SetString(PyExc_TypeError, "counters.latency must be a list of the latency buckets");
        return -1;
    }
    for (int i = 0; i < LATENCY_BUCKETS; i++) {
        if (!hist[i])
            continue;
        PyObject *delta = PyLong_FromUnsignedLongLong(hist[i]);
        PyObject *sum = delta ? PyNumber_Add(PyList_GET_ITEM(list, i), delta) : NULL;
        Py_XDECREF(delta);
        if (!sum) {
            Py_DECREF(list);
            return -1;
        }
        PyList_SetItem(list, i, sum); /* steals sum, drops the old item */
    }
    Py_DECREF(list);
    return 0;
}

/* serve(head, limit, async_run, async_cap, ns_left[, budget, slice_ns]) -> served; see the theory at
 * the top. At most `limit` entries; past `budget` of them (default: limit) only while the run has taken
 * less than `slice_ns`: a pass's budget counts calls, and copies served here cost a fraction of a call
 * in Python, so a run may go on for the time a pass of Python calls would take. */
static PyObject *fc_serve(FastCopy *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 5 && nargs != 7) {
        PyErr_SetString(PyExc_TypeError, "serve(head, limit, async_run, async_cap, ns_left[, budget, slice_ns])");
        return NULL;
    }
    unsigned long head = PyLong_AsUnsignedLongMask(args[0]);
    long long limit = PyLong_AsLongLong(args[1]);
    long long async_run = PyLong_AsLongLong(args[2]);
    long long async_cap = PyLong_AsLongLong(args[3]);
    long long ns_left = PyLong_AsLongLong(args[4]);
    long long budget = nargs == 7 ? PyLong_AsLongLong(args[5]) : limit;
    long long slice_ns = nargs == 7 ? PyLong_AsLongLong(args[6]) : 0;
    if (PyErr_Occurred())
        return NULL;
    self->async_run = async_run;
    if (!self->region_held || !self->memory || limit <= 0 || PyDict_GET_SIZE(self->captures) ||
        PyList_GET_SIZE(self->faults))
        return PyLong_FromLong(0);
    int pinned_ok;
    if (!caches_current(self, &pinned_ok))
        return PyLong_FromLong(0);
    __atomic_thread_fence(__ATOMIC_ACQUIRE); /* the entries up to the tail the caller saw are published */
    const uint8_t *ring = (const uint8_t *)self->region.buf + self->sq_offset;
    uint8_t *arena = (uint8_t *)self->region.buf + self->arena_offset;
    uint8_t *pinned = pinned_ok ? (uint8_t *)self->pinned.buf : NULL;
    unsigned long long hist[LATENCY_BUCKETS] = {0}, htod = 0, dtoh = 0, asyncs = 0, spent = 0;
    long long served = 0;
    int failed = 0;
    uint64_t t = now_ns();
    int kick_armed = self->kick_fd >= 0; /* at most one early kick a serve() */
    const uint32_t *need_irq = (const uint32_t *)((const uint8_t *)self->region.buf + self->need_irq_off);
    const uint32_t *sq_tail = (const uint32_t *)((const uint8_t *)self->region.buf + self->sq_tail_off);
    uint32_t *sq_head = self->head_off ? (uint32_t *)((uint8_t *)self->region.buf + self->head_off) : NULL;
    uint64_t published = t; /* when the head was last published (publish_progress) */
    /* the last stream found live: only Python creates and destroys streams, and none runs in this loop */
    uint32_t live_stream = 0;
    while (served < limit) {
        uint32_t at = (uint32_t)head + (uint32_t)served;
        const uint8_t *slot = ring + (size_t)(at & self->sq_mask) * SQE_SIZE;
        if (served + 1 < limit) /* the guest wrote the next entry on its CPU: start fetching it now */
            __builtin_prefetch(ring + (size_t)((at + 1) & self->sq_mask) * SQE_SIZE);
        uint32_t h[8];
        uint64_t a[4];
        memcpy(h, slot, sizeof h); /* once: the guest may rewrite the slot while we look */
        memcpy(a, slot + SQE_HEADER, sizeof a);
        uint16_t call_id = (uint16_t)(h[1] & 0xFFFF);
        uint32_t flags = h[1] >> 16, in_off = h[2], in_len = h[3], out_off = h[4], out_cap = h[5];
        if (h[7] != 0 || (flags & ~(FLAG_ASYNC | FLAG_CHUNK_MORE)))
            break;
        int is_async = (flags & FLAG_ASYNC) != 0, to_device;
        uint64_t device, count;
        uint32_t stream;
        uint8_t *host;
        if (call_id == self->htod_id || call_id == self->dtoh_id) { /* pinned */
            uint64_t offset = a[1];
            count = a[2];
            if (!pinned || (flags & FLAG_CHUNK_MORE) || h[6] != PINNED_ARGS || in_len || out_cap || !count ||
                !range_known(self, offset, count))
                break;
            device = a[0];
            stream = (uint32_t)a[3];
            host = pinned + offset;
            to_device = call_id == self->htod_id;
        } else if (call_id == self->staged_htod_id) { /* from the input payload */
            if (h[6] != HTOD_ARGS || !in_len || out_cap || in_off >= self->arena_size ||
                in_len > self->arena_size - in_off)
                break;
            device = a[0];
            stream = (uint32_t)a[1];
            count = in_len;
            host = arena + in_off;
            to_device = 1;
        } else if (call_id == self->staged_dtoh_id) { /* into the output payload */
            count = a[1];
            if (h[6] != DTOH_ARGS || in_len || !count || count > out_cap || out_off >= self->arena_size ||
                out_cap > self->arena_size - out_off)
                break;
            device = a[0];
            stream = (uint32_t)a[2];
            host = arena + out_off;
            to_device = 0;
        } else {
            break;
        }
        if (is_async && async_cap > 0 && self->async_run + 1 >= async_cap)
            break;
        if (stream != live_stream) {
            int live = stream_live(self, stream);
            if (live < 0) {
                failed = 1;
                break;
            }
            if (!live)
                break;
            live_stream = stream;
        }
        const Block *block = find_block(self, device, count);
        if (!block)
            break;
        if (!is_async && cq_room(self) != 1)
            break; /* no room: the Python path sets cq_blocked (or raises for an impossible head) */
        uint8_t *dev = block->host + (device - block->start);
        if (to_device) {
            copy_bytes(dev, host, (size_t)count);
            htod += count;
        } else {
            copy_bytes(host, dev, (size_t)count);
            dtoh += count;
        }
        if (is_async) {
            asyncs++;
            self->async_run++;
        } else {
            self->async_run = 0;
            if (push_done(self, h[0], call_id, call_id == self->staged_dtoh_id ? count : 0) < 0) {
                /* only a guest that moved its completion head under us: the next look at the ring
                 * in Python raises for it; this entry was served */
                PyErr_Clear();
            }
        }
        served++;
        uint64_t after = now_ns(), duration = after - t;
        t = after;
        spent += duration;
        unsigned long long bucket = duration >> 10;
        int b = 0;
        while (bucket) {
            b++;
            bucket >>= 1;
        }
        hist[b < LATENCY_BUCKETS - 1 ? b : LATENCY_BUCKETS - 1]++;
        if (sq_head && after - published >= self->progress_ns) {
            /* the server publishes the same index, or a later one, when it advances past the run */
            __atomic_store_n(sq_head, (uint32_t)head + (uint32_t)served, __ATOMIC_RELEASE);
            published = after;
        }
        if (kick_armed && __atomic_load_n(need_irq, __ATOMIC_ACQUIRE)) {
            /* the guest sleeps: wake it if what is queued behind this copy ends within the lead (a
             * tail the guest wrote wrong, past the ring, only means no early kick) */
            uint32_t left = __atomic_load_n(sq_tail, __ATOMIC_ACQUIRE) - ((uint32_t)head + (uint32_t)served);
            if (left && left <= self->sq_mask + 1u && (uint64_t)left * duration <= self->kick_lead_ns) {
                uint64_t one = 1;
                kick_armed = 0;
                if (write(self->kick_fd, &one, sizeof one) == (ssize_t)sizeof one)
                    self->early_kicks++;
            }
        }
        if ((long long)spent > ns_left)
            break; /* slow copies: the worker beats and looks at its control socket first */
        if (served >= budget && (long long)spent >= slice_ns)
            break; /* the pass's share: the worker takes its turn round the other channels */
    }
    if (served && (add_to(self->counters, str_calls, (unsigned long long)served) < 0 ||
                   add_to(self->counters, str_async_calls, asyncs) < 0 ||
                   add_to(self->counters, str_bytes_htod, htod) < 0 ||
                   add_to(self->counters, str_bytes_dtoh, dtoh) < 0 ||
                   add_to(self->counters, str_latency_sum_ns, spent) < 0 || add_latency(self->counters, hist) < 0))
        failed = 1;
    if (failed) {
        if (served) /* what was served stays served: the caller advances past it, then sees the error */
            PyErr_Clear();
        else
            return NULL;
    }
    return PyLong_FromLongLong(served);
}

/* whether the region given at init is still held; raises ValueError("released") when not */
static int region_held_or_raise(FastCopy *self) {
    if (!self->region_held)
        PyErr_SetString(PyExc_ValueError, "released");
    return self->region_held;
}

/* whether `off` is an aligned 32-bit word inside the held region (a guest's channel field) */
static int region_word(const FastCopy *self, unsigned long long off) {
    unsigned long long len = (unsigned long long)self->region.len;
    return !(off & 3) && len >= 4 && off <= len - 4;
}

/* kick_early(need_irq_offset, sq_tail_offset, fd, lead_ns): wake the guest through eventfd `fd` (dup'ed
 * here) ahead of the end of a run of posted copies (see the theory at the top); fd -1 turns it off. The
 * offsets are of the channel's GUEST_NEED_IRQ and SQ_TAIL words in the region given at init. */
static PyObject *fc_kick_early(FastCopy *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "kick_early(need_irq_offset, sq_tail_offset, fd, lead_ns)");
        return NULL;
    }
    unsigned long long irq_off = PyLong_AsUnsignedLongLong(args[0]), tail_off = PyLong_AsUnsignedLongLong(args[1]);
    long fd = PyLong_AsLong(args[2]);
    unsigned long long lead = PyLong_AsUnsignedLongLong(args[3]);
    if (PyErr_Occurred() || !region_held_or_raise(self))
        return NULL;
    if (!region_word(self, irq_off) || !region_word(self, tail_off) || fd < -1 || fd > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "kick_early: offsets outside the region or not aligned, or a bad fd");
        return NULL;
    }
    int dup_fd = -1;
    if (fd >= 0 && (dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    kick_off(self);
    self->kick_fd = dup_fd;
    self->need_irq_off = (uint32_t)irq_off;
    self->sq_tail_off = (uint32_t)tail_off;
    self->kick_lead_ns = lead;
    Py_RETURN_NONE;
}

/* publish_progress(sq_head_offset, every_ns): publish the submission head from inside a run, at most every
 * every_ns (see the theory at the top); offset 0 turns it off. The offset is the channel's SQ_HEAD word in
 * the region given at init. */
static PyObject *fc_publish_progress(FastCopy *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "publish_progress(sq_head_offset, every_ns)");
        return NULL;
    }
    unsigned long long off = PyLong_AsUnsignedLongLong(args[0]), every = PyLong_AsUnsignedLongLong(args[1]);
    if (PyErr_Occurred() || !region_held_or_raise(self))
        return NULL;
    if (!region_word(self, off)) {
        PyErr_SetString(PyExc_ValueError, "publish_progress: offset outside the region or not aligned");
        return NULL;
    }
    self->head_off = (uint32_t)off;
    self->progress_ns = every;
    Py_RETURN_NONE;
}

static PyObject *fc_forget(FastCopy *self, PyObject *Py_UNUSED(ignored)) {
    forget_blocks(self);
    forget_ranges(self);
    Py_RETURN_NONE;
}

static PyObject *fc_release(FastCopy *self, PyObject *Py_UNUSED(ignored)) {
    release_all(self);
    Py_RETURN_NONE;
}

static PyObject *fc_get_async_run(FastCopy *self, void *Py_UNUSED(c)) {
    return PyLong_FromLongLong(self->async_run);
}

static PyObject *fc_get_cached(FastCopy *self, void *Py_UNUSED(c)) {
    return Py_BuildValue("(ii)", self->nblocks, self->nranges);
}

static PyObject *fc_get_early_kicks(FastCopy *self, void *Py_UNUSED(c)) {
    return PyLong_FromUnsignedLongLong(self->early_kicks);
}

static PyGetSetDef fc_getset[] = {
    {"early_kicks", (getter)fc_get_early_kicks, NULL, "guests woken ahead of a run's end (kick_early)", NULL},
    {"async_run", (getter)fc_get_async_run, NULL, "asynchronous calls since the last that waited", NULL},
    {"cached", (getter)fc_get_cached, NULL, "(device blocks, pinned ranges) known now", NULL},
    {NULL},
};

static PyMethodDef fc_methods[] = {
    {"bind", (PyCFunction)(void (*)(void))fc_bind, METH_FASTCALL, "the context whose copies are served"},
    {"serve", (PyCFunction)(void (*)(void))fc_serve, METH_FASTCALL, "serve pinned copies at the head"},
    {"learn_block", (PyCFunction)(void (*)(void))fc_learn_block, METH_FASTCALL, "a live device block"},
    {"learn_range", (PyCFunction)(void (*)(void))fc_learn_range, METH_FASTCALL, "a live pinned range"},
    {"kick_early", (PyCFunction)(void (*)(void))fc_kick_early, METH_FASTCALL, "wake a sleeping guest early"},
    {"publish_progress", (PyCFunction)(void (*)(void))fc_publish_progress, METH_FASTCALL,
     "publish the submission head from inside a run"},
    {"forget", (PyCFunction)fc_forget, METH_NOARGS, "drop every cached fact"},
    {"release", (PyCFunction)fc_release, METH_NOARGS, "drop every buffer and reference held"},
    {NULL},
};

static PyTypeObject FastCopyType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "mediator._copyfast.FastCopy",
    .tp_basicsize = sizeof(FastCopy),
    .tp_dealloc = (destructor)fc_dealloc,
    .tp_traverse = (traverseproc)fc_traverse,
    .tp_clear = (inquiry)fc_clear,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "pinned copies of one channel served in C (see native/copyfast.c)",
    .tp_methods = fc_methods,
    .tp_getset = fc_getset,
    .tp_init = (initproc)fc_init,
    .tp_new = fc_new,
};

/* memcpy_floor(dst, src, size, count) -> ns: `count` back-to-back memcpy of `size` bytes timed in C,
 * the benchmarks' floor for copies the C path serves (a floor timed around one numpy.copyto carries a
 * microsecond of Python call, which a 64 KiB copy's 2 µs cannot hide). */
static PyObject *memcpy_floor(PyObject *Py_UNUSED(mod), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "memcpy_floor(dst, src, size, count)");
        return NULL;
    }
    Py_ssize_t size = PyLong_AsSsize_t(args[2]), count = PyLong_AsSsize_t(args[3]);
    if ((size == -1 || count == -1) && PyErr_Occurred())
        return NULL;
    Py_buffer dst, src;
    if (PyObject_GetBuffer(args[0], &dst, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0)
        return NULL;
    if (PyObject_GetBuffer(args[1], &src, PyBUF_C_CONTIGUOUS) < 0) {
        PyBuffer_Release(&dst);
        return NULL;
    }
    long long took = -1;
    if (size < 0 || count < 1 || size > dst.len || size > src.len) {
        PyErr_SetString(PyExc_ValueError, "memcpy_floor: size past a buffer, or count below 1");
    } else {
        struct timespec a, b;
        Py_BEGIN_ALLOW_THREADS
        clock_gettime(CLOCK_MONOTONIC, &a);
        for (Py_ssize_t i = 0; i < count; i++) {
            memcpy(dst.buf, src.buf, (size_t)size);
            __asm__ volatile("" ::: "memory"); /* every copy happens: none folded into the next */
        }
        clock_gettime(CLOCK_MONOTONIC, &b);
        Py_END_ALLOW_THREADS
        took = (long long)(b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec);
    }
    PyBuffer_Release(&src);
    PyBuffer_Release(&dst);
    return took < 0 ? NULL : PyLong_FromLongLong(took);
}

static PyMethodDef copyfast_functions[] = {
    {"memcpy_floor", (PyCFunction)(void (*)(void))memcpy_floor, METH_FASTCALL, "back-to-back memcpy, ns"},
    {NULL},
};

static struct PyModuleDef copyfast_module = {
    PyModuleDef_HEAD_INIT, "mediator._copyfast", "Pinned copies served in C (see native/copyfast.c).", -1,
    copyfast_functions,
};

PyMODINIT_FUNC PyInit__copyfast(void) {
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
    PyErr_SetString(PyExc_ImportError, "mediator._copyfast supports little-endian hosts only");
    return NULL;
#endif
#define INTERN(var, s)                                                                                \
    if (!(var = PyUnicode_InternFromString(s)))                                                       \
        return NULL;
    INTERN(str_version, "version")
    INTERN(str_pinned, "pinned")
    INTERN(str_calls, "calls")
    INTERN(str_async_calls, "async_calls")
    INTERN(str_bytes_htod, "bytes_htod")
    INTERN(str_bytes_dtoh, "bytes_dtoh")
    INTERN(str_latency_sum_ns, "latency_sum_ns")
    INTERN(str_latency, "latency")
    INTERN(str_space, "space")
    INTERN(str_push, "push")
    PyObject *seq = PyUnicode_InternFromString("seq"), *call_id = PyUnicode_InternFromString("call_id"),
             *status = PyUnicode_InternFromString("status");
    if (!seq || !call_id || !status)
        return NULL;
    PyObject *out_len = PyUnicode_InternFromString("out_len");
    if (!out_len)
        return NULL;
    kw_completion = PyTuple_Pack(3, seq, call_id, status);
    kw_completion_out = PyTuple_Pack(4, seq, call_id, status, out_len);
    Py_DECREF(seq);
    Py_DECREF(call_id);
    Py_DECREF(status);
    Py_DECREF(out_len);
    if (!kw_completion || !kw_completion_out || PyType_Ready(&FastCopyType) < 0)
        return NULL;
    detect_fast_strings();
    PyObject *m = PyModule_Create(&copyfast_module);
    if (!m)
        return NULL;
    if (PyModule_AddObjectRef(m, "FastCopy", (PyObject *)&FastCopyType) < 0 ||
        PyModule_AddIntConstant(m, "MOVSB", fast_strings) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
