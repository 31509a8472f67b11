/*
 * protocol._cring: the ring hot path in C (the pure-Python protocol/_ring.py is the reference and
 * the fallback; tests run both and compare them).
 *
 * One object is one side of one ring over a region buffer (a writable, contiguous Python buffer that
 * the object holds exported until release()). It keeps its own index privately and only ever stores
 * it to the region (a release store, after the entry it publishes); the other side's index is read
 * with an acquire load and is untrusted. Entries are read once into locals and validated there, so a
 * guest rewriting a slot under us cannot make a checked value change after its check.
 *
 * Only the common, well-formed case is handled here. Whatever this code does not accept at once
 * (an argument that is not a plain in-range int, a malformed entry, an impossible index) is handed
 * to the Python implementation, which either does the same thing or raises the protocol's own
 * error with its exact message (for a malformed entry, one that carries the fields the host answers
 * it by): both paths agree by construction.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#define CPU_RELAX() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define CPU_RELAX() __asm__ __volatile__("yield" ::: "memory")
#else
#define CPU_RELAX() ((void)0)
#endif

/* frame layout (protocol/_frames.py) */
#define SQE_HEADER 32
#define MAX_INLINE_ARGS 160
#define CQE_HEADER 16
#define MAX_INLINE_RESULTS 48
#define SUBMIT_FLAGS 0x3u   /* ASYNC | CHUNK_MORE */
#define COMPLETE_FLAGS 0x3u /* ASYNC_ERROR | LATCHED */

/* set once by configure(): the Python types and the fallbacks that raise the exact errors */
static PyObject *submission_type, *completion_type;
static PyObject *py_encode_submission, *py_decode_submission, *py_encode_completion;
static PyObject *py_ring_error; /* (kind, theirs, mine, entries) -> raises RemoteProtocolError */
static PyObject *str_seq, *str_call_id, *str_args, *str_flags, *str_in_off, *str_in_len, *str_out_off,
    *str_out_cap, *str_status, *str_results, *str_out_len, *empty_bytes;

static inline uint32_t load_acquire(const uint8_t *p) {
    return __atomic_load_n((const uint32_t *)p, __ATOMIC_ACQUIRE);
}

static inline void store_release(uint8_t *p, uint32_t v) {
    __atomic_store_n((uint32_t *)p, v, __ATOMIC_RELEASE);
}

static inline uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

typedef struct {
    PyObject_HEAD
    Py_buffer view;
    int held;
    uint8_t *base;
    uint32_t ring_offset, entries, mask, entry_size, mine, theirs;
    uint32_t index;
} Side;

static int side_check(Side *self) {
    if (!self->held) {
        PyErr_SetString(PyExc_ValueError, "ring side used after its region was released");
        return -1;
    }
    return 0;
}

static int side_init(Side *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"buf", "ring_offset", "entries", "entry_size", "mine", "theirs", NULL};
    PyObject *buf;
    unsigned long ring_offset, entries, entry_size, mine, theirs;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "Okkkkk", kwlist, &buf, &ring_offset, &entries,
                                     &entry_size, &mine, &theirs))
        return -1;
    if (self->held) {
        PyBuffer_Release(&self->view);
        self->held = 0;
    }
    if (PyObject_GetBuffer(buf, &self->view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0)
        return -1;
    self->held = 1;
    Py_ssize_t len = self->view.len;
    if (entries == 0 || (entries & (entries - 1)) || entries > (1u << 16) ||
        (entry_size != SQE_HEADER + MAX_INLINE_ARGS && entry_size != CQE_HEADER + MAX_INLINE_RESULTS) ||
        (unsigned long long)ring_offset + (unsigned long long)entries * entry_size > (unsigned long long)len ||
        mine % 4 || theirs % 4 || (Py_ssize_t)mine + 4 > len || (Py_ssize_t)theirs + 4 > len) {
        PyBuffer_Release(&self->view);
        self->held = 0;
        PyErr_SetString(PyExc_ValueError, "ring geometry does not fit the buffer");
        return -1;
    }
    self->base = (uint8_t *)self->view.buf;
    self->ring_offset = (uint32_t)ring_offset;
    self->entries = (uint32_t)entries;
    self->mask = (uint32_t)entries - 1;
    self->entry_size = (uint32_t)entry_size;
    self->mine = (uint32_t)mine;
    self->theirs = (uint32_t)theirs;
    self->index = load_acquire(self->base + mine); /* resume where the region says (fresh: 0) */
    return 0;
}

static void side_dealloc(Side *self) {
    if (self->held)
        PyBuffer_Release(&self->view);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *side_release(Side *self, PyObject *Py_UNUSED(ignored)) {
    if (self->held) {
        PyBuffer_Release(&self->view);
        self->held = 0;
    }
    Py_RETURN_NONE;
}

static PyObject *side_slot_offset(Side *self, PyObject *arg) {
    unsigned long long index = PyLong_AsUnsignedLongLongMask(arg);
    if (index == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    return PyLong_FromUnsignedLong(self->ring_offset + ((uint32_t)index & self->mask) * self->entry_size);
}

static PyObject *side_get_index(Side *self, void *Py_UNUSED(c)) {
    return PyLong_FromUnsignedLong(self->index);
}

static PyObject *side_get_entries(Side *self, void *Py_UNUSED(c)) {
    return PyLong_FromUnsignedLong(self->entries);
}

static inline void publish(Side *self, uint32_t index) {
    self->index = index;
    store_release(self->base + self->mine, index);
}

/* pending entries for a consumer; kind names the ring for the error helper. -1: error raised */
static long consumer_pending(Side *self, const char *kind) {
    uint32_t tail = load_acquire(self->base + self->theirs);
    uint32_t count = tail - self->index;
    if (count > self->entries) {
        PyObject *r = PyObject_CallFunction(py_ring_error, "sIII", kind, tail, self->index, self->entries);
        Py_XDECREF(r);
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_SystemError, "ring error helper did not raise");
        return -1;
    }
    return (long)count;
}

/* --- keyword parsing for push(): keyword-only arguments matched by (interned) name -------------- */

static int parse_kw(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, PyObject **names,
                    int n, PyObject **out, const char *fname) {
    if (nargs) {
        PyErr_Format(PyExc_TypeError, "%s() takes keyword arguments only", fname);
        return -1;
    }
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, k);
        int i;
        for (i = 0; i < n; i++)
            if (key == names[i])
                break;
        if (i == n)
            for (i = 0; i < n; i++)
                if (PyUnicode_Compare(key, names[i]) == 0)
                    break;
        if (i == n) {
            PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument %R", fname, key);
            return -1;
        }
        out[i] = args[k];
    }
    return 0;
}

/* a plain int in [0, limit]; 0 on anything else (the Python path then decides) */
static inline int small_uint(PyObject *o, unsigned long long limit, unsigned long long *v) {
    if (o == NULL) {
        *v = 0;
        return 1;
    }
    if (!PyLong_CheckExact(o))
        return 0;
    int overflow;
    long long x = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (overflow || x < 0 || (unsigned long long)x > limit)
        return 0;
    *v = (unsigned long long)x;
    return 1;
}

/* release a temporary memoryview over our buffer without disturbing a pending exception */
static void release_view(PyObject *mv) {
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyObject *r = PyObject_CallMethod(mv, "release", NULL);
    if (r)
        Py_DECREF(r);
    else
        PyErr_Clear();
    PyErr_Restore(type, value, tb);
    Py_DECREF(mv);
}

static PyObject *call_python_encoder(PyObject *encoder, Side *self, PyObject **names, PyObject **vals,
                                     int n) {
    PyObject *kw = PyDict_New();
    if (!kw)
        return NULL;
    for (int i = 0; i < n; i++)
        if (vals[i] && PyDict_SetItem(kw, names[i], vals[i]) < 0) {
            Py_DECREF(kw);
            return NULL;
        }
    PyObject *off = PyLong_FromUnsignedLong(self->ring_offset + (self->index & self->mask) * self->entry_size);
    PyObject *mv = off ? PyMemoryView_FromBuffer(&self->view) : NULL;
    PyObject *pos = mv ? PyTuple_Pack(2, mv, off) : NULL;
    PyObject *r = pos ? PyObject_Call(encoder, pos, kw) : NULL;
    if (mv)
        release_view(mv);
    Py_XDECREF(pos);
    Py_XDECREF(off);
    Py_DECREF(kw);
    return r;
}

/* --- SubmissionProducer (the guest) ------------------------------------------------------------- */

static inline long long sq_space(Side *self) {
    return (long long)self->entries - (long long)(uint32_t)(self->index - load_acquire(self->base + self->theirs));
}

static PyObject *sqp_consumed(Side *self, void *Py_UNUSED(c)) {
    if (side_check(self) < 0)
        return NULL;
    return PyLong_FromUnsignedLong(load_acquire(self->base + self->theirs));
}

static PyObject *sqp_space(Side *self, PyObject *Py_UNUSED(ignored)) {
    if (side_check(self) < 0)
        return NULL;
    return PyLong_FromLongLong(sq_space(self));
}

static PyObject *sqp_push(Side *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    PyObject *names[8] = {str_seq, str_call_id, str_args, str_flags, str_in_off, str_in_len, str_out_off,
                          str_out_cap};
    PyObject *v[8] = {NULL};
    if (parse_kw(args, nargs, kwnames, names, 8, v, "push") < 0 || side_check(self) < 0)
        return NULL;
    if (!v[0] || !v[1]) {
        PyErr_SetString(PyExc_TypeError, "push() needs seq and call_id");
        return NULL;
    }
    if (sq_space(self) <= 0)
        Py_RETURN_FALSE;
    unsigned long long seq, call_id, flags, in_off, in_len, out_off, out_cap;
    PyObject *a = v[2];
    int fast = small_uint(v[0], 0xFFFFFFFFu, &seq) && small_uint(v[1], 0xFFFFu, &call_id) &&
               small_uint(v[3], 0xFFFFu, &flags) && small_uint(v[4], 0xFFFFFFFFu, &in_off) &&
               small_uint(v[5], 0xFFFFFFFFu, &in_len) && small_uint(v[6], 0xFFFFFFFFu, &out_off) &&
               small_uint(v[7], 0xFFFFFFFFu, &out_cap) &&
               (a == NULL || (PyBytes_CheckExact(a) && PyBytes_GET_SIZE(a) <= MAX_INLINE_ARGS));
    if (!fast) {
        PyObject *r = call_python_encoder(py_encode_submission, self, names, v, 8);
        if (!r)
            return NULL;
        Py_DECREF(r);
    } else {
        uint8_t *slot = self->base + self->ring_offset + (self->index & self->mask) * self->entry_size;
        uint32_t args_len = a ? (uint32_t)PyBytes_GET_SIZE(a) : 0;
        uint32_t h[8];
        h[0] = (uint32_t)seq;
        h[1] = (uint32_t)call_id | ((uint32_t)flags << 16);
        h[2] = (uint32_t)in_off;
        h[3] = (uint32_t)in_len;
        h[4] = (uint32_t)out_off;
        h[5] = (uint32_t)out_cap;
        h[6] = args_len;
        h[7] = 0;
        memcpy(slot, h, sizeof h); /* little-endian hosts only: the module refuses to load elsewhere */
        if (args_len)
            memcpy(slot + SQE_HEADER, PyBytes_AS_STRING(a), args_len);
    }
    publish(self, self->index + 1);
    Py_RETURN_TRUE;
}

/* --- SubmissionConsumer (the host) -------------------------------------------------------------- */

static PyObject *sqc_pending(Side *self, PyObject *Py_UNUSED(ignored)) {
    if (side_check(self) < 0)
        return NULL;
    long n = consumer_pending(self, "submission");
    return n < 0 ? NULL : PyLong_FromLong(n);
}

static PyObject *python_decode(PyObject *decoder, Side *self, uint32_t offset) {
    PyObject *mv = PyMemoryView_FromBuffer(&self->view);
    if (!mv)
        return NULL;
    PyObject *r = PyObject_CallFunction(decoder, "OI", mv, offset);
    release_view(mv);
    return r;
}

static PyObject *new_tuple_of(PyObject *type, Py_ssize_t n) {
    /* a NamedTuple subclass instance, built as tuple.__new__ builds one (no __dict__: slots=()) */
    return ((PyTypeObject *)type)->tp_alloc((PyTypeObject *)type, n);
}

static PyObject *decode_sqe(Side *self, uint32_t index) {
    uint32_t offset = self->ring_offset + (index & self->mask) * self->entry_size;
    uint8_t *slot = self->base + offset;
    uint32_t h[8];
    memcpy(h, slot, sizeof h); /* once: the guest may rewrite the slot while we look */
    uint32_t flags = h[1] >> 16, args_len = h[6];
    if (h[7] != 0 || (flags & ~SUBMIT_FLAGS) || args_len > MAX_INLINE_ARGS)
        /* raises the exact complaint: MalformedSubmissionError, which carries what answers that
         * entry (its seq, call id and flags); the server fails it alone and goes on */
        return python_decode(py_decode_submission, self, offset);
    PyObject *args = args_len ? PyBytes_FromStringAndSize((const char *)slot + SQE_HEADER, args_len)
                              : Py_NewRef(empty_bytes);
    if (!args)
        return NULL;
    PyObject *t = new_tuple_of(submission_type, 8);
    if (!t) {
        Py_DECREF(args);
        return NULL;
    }
    PyObject *items[7] = {PyLong_FromUnsignedLong(h[0]), PyLong_FromUnsignedLong(h[1] & 0xFFFF),
                          PyLong_FromUnsignedLong(flags), PyLong_FromUnsignedLong(h[2]),
                          PyLong_FromUnsignedLong(h[3]), PyLong_FromUnsignedLong(h[4]),
                          PyLong_FromUnsignedLong(h[5])};
    for (int i = 0; i < 7; i++) {
        if (!items[i]) {
            for (int j = 0; j < 7; j++)
                Py_XDECREF(items[j]);
            Py_DECREF(args);
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, i, items[i]);
    }
    PyTuple_SET_ITEM(t, 7, args);
    return t;
}

static PyObject *sqc_read(Side *self, PyObject *const *args, Py_ssize_t nargs) {
    unsigned long ahead = 0;
    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError, "read() takes at most one argument");
        return NULL;
    }
    if (nargs == 1) {
        ahead = PyLong_AsUnsignedLongMask(args[0]);
        if (ahead == (unsigned long)-1 && PyErr_Occurred())
            return NULL;
    }
    if (side_check(self) < 0)
        return NULL;
    return decode_sqe(self, self->index + (uint32_t)ahead);
}

static PyObject *sqc_advance(Side *self, PyObject *const *args, Py_ssize_t nargs) {
    unsigned long count = 1;
    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError, "advance() takes at most one argument");
        return NULL;
    }
    if (nargs == 1) {
        count = PyLong_AsUnsignedLongMask(args[0]);
        if (count == (unsigned long)-1 && PyErr_Occurred())
            return NULL;
    }
    if (side_check(self) < 0)
        return NULL;
    publish(self, self->index + (uint32_t)count);
    Py_RETURN_NONE;
}

/* spin(timeout_ns, yield_after_ns=-1): wait, without the GIL, until the other side publishes an
 * entry or timeout_ns pass. With yield_after_ns >= 0 the wait is polite: after yield_after_ns of
 * tight spinning it yields the CPU between looks, and it gives up early, as soon as it sees that the
 * CPU is contended (a yield that let another task run, or a gap between looks that says this task
 * was preempted, longer than CONTENDED_NS): spinning then only delays the task it waits for, and the
 * caller should sleep until it is kicked. Returns pending() either way (which checks the index). */
#define CONTENDED_NS 20000u

static long spin_wait(Side *self, long long timeout_ns, long long yield_after_ns) {
    if (self->index != load_acquire(self->base + self->theirs) || timeout_ns <= 0)
        return 0;
    const uint8_t *word = self->base + self->theirs;
    uint32_t mine = self->index;
    int polite = yield_after_ns >= 0;
    Py_BEGIN_ALLOW_THREADS
    uint64_t start = now_ns(), deadline = start + (uint64_t)timeout_ns, prev = start;
    uint64_t yield_at = polite ? start + (uint64_t)yield_after_ns : UINT64_MAX;
    for (;;) {
        for (int i = 0; i < 64; i++) {
            if (load_acquire(word) != mine)
                goto done;
            CPU_RELAX();
        }
        uint64_t t = now_ns();
        if (t >= deadline || (polite && t - prev > CONTENDED_NS))
            break;
        if (t >= yield_at) {
            sched_yield();
            uint64_t after = now_ns();
            if (after - t > CONTENDED_NS)
                break;
            t = after;
        }
        prev = t;
    }
done:
    Py_END_ALLOW_THREADS
    return 0;
}

static int spin_args(PyObject *const *args, Py_ssize_t nargs, long long *timeout, long long *yield_after) {
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "spin(timeout_ns, yield_after_ns=-1)");
        return -1;
    }
    *timeout = PyLong_AsLongLong(args[0]);
    if (*timeout == -1 && PyErr_Occurred())
        return -1;
    *yield_after = -1;
    if (nargs == 2) {
        *yield_after = PyLong_AsLongLong(args[1]);
        if (*yield_after == -1 && PyErr_Occurred())
            return -1;
    }
    return 0;
}

static PyObject *sqc_spin(Side *self, PyObject *const *args, Py_ssize_t nargs) {
    long long timeout, yield_after;
    if (spin_args(args, nargs, &timeout, &yield_after) < 0 || side_check(self) < 0)
        return NULL;
    spin_wait(self, timeout, yield_after);
    long n = consumer_pending(self, "submission");
    return n < 0 ? NULL : PyLong_FromLong(n);
}

/* --- CompletionProducer (the host) -------------------------------------------------------------- */

static long cq_space(Side *self) {
    uint32_t head = load_acquire(self->base + self->theirs);
    uint32_t used = self->index - head;
    if (used > self->entries) {
        PyObject *r = PyObject_CallFunction(py_ring_error, "sIII", "completion head", head, self->index,
                                            self->entries);
        Py_XDECREF(r);
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_SystemError, "ring error helper did not raise");
        return -1;
    }
    return (long)(self->entries - used);
}

static PyObject *cqp_space(Side *self, PyObject *Py_UNUSED(ignored)) {
    if (side_check(self) < 0)
        return NULL;
    long n = cq_space(self);
    return n < 0 ? NULL : PyLong_FromLong(n);
}

static PyObject *cqp_push(Side *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    PyObject *names[6] = {str_seq, str_call_id, str_status, str_results, str_out_len, str_flags};
    PyObject *v[6] = {NULL};
    if (parse_kw(args, nargs, kwnames, names, 6, v, "push") < 0 || side_check(self) < 0)
        return NULL;
    if (!v[0] || !v[1] || !v[2]) {
        PyErr_SetString(PyExc_TypeError, "push() needs seq, call_id and status");
        return NULL;
    }
    long space = cq_space(self);
    if (space < 0)
        return NULL;
    if (space == 0)
        Py_RETURN_FALSE;
    unsigned long long seq, call_id, status, out_len, flags;
    PyObject *res = v[3];
    int fast = small_uint(v[0], 0xFFFFFFFFu, &seq) && small_uint(v[1], 0xFFFFu, &call_id) &&
               small_uint(v[2], 0xFFFFFFFFu, &status) && small_uint(v[4], 0xFFFFFFFFu, &out_len) &&
               small_uint(v[5], 0xFFFFu, &flags) &&
               (res == NULL || (PyBytes_CheckExact(res) && PyBytes_GET_SIZE(res) <= MAX_INLINE_RESULTS));
    if (!fast) {
        PyObject *r = call_python_encoder(py_encode_completion, self, names, v, 6);
        if (!r)
            return NULL;
        Py_DECREF(r);
    } else {
        uint8_t *slot = self->base + self->ring_offset + (self->index & self->mask) * self->entry_size;
        uint32_t h[4] = {(uint32_t)seq, (uint32_t)call_id | ((uint32_t)flags << 16), (uint32_t)status,
                         (uint32_t)out_len};
        memcpy(slot, h, sizeof h);
        Py_ssize_t n = res ? PyBytes_GET_SIZE(res) : 0;
        if (n)
            memcpy(slot + CQE_HEADER, PyBytes_AS_STRING(res), (size_t)n);
        memset(slot + CQE_HEADER + n, 0, (size_t)(MAX_INLINE_RESULTS - n));
    }
    publish(self, self->index + 1);
    Py_RETURN_TRUE;
}

/* --- CompletionConsumer (the guest) ------------------------------------------------------------- */

static PyObject *cqc_pending(Side *self, PyObject *Py_UNUSED(ignored)) {
    if (side_check(self) < 0)
        return NULL;
    long n = consumer_pending(self, "completion");
    return n < 0 ? NULL : PyLong_FromLong(n);
}

static PyObject *cqc_pop(Side *self, PyObject *Py_UNUSED(ignored)) {
    if (side_check(self) < 0)
        return NULL;
    uint8_t *slot = self->base + self->ring_offset + (self->index & self->mask) * self->entry_size;
    uint32_t h[4];
    memcpy(h, slot, sizeof h);
    PyObject *results = PyBytes_FromStringAndSize((const char *)slot + CQE_HEADER, MAX_INLINE_RESULTS);
    if (!results)
        return NULL;
    PyObject *t = new_tuple_of(completion_type, 6);
    if (!t) {
        Py_DECREF(results);
        return NULL;
    }
    PyObject *items[5] = {PyLong_FromUnsignedLong(h[0]), PyLong_FromUnsignedLong(h[1] & 0xFFFF),
                          PyLong_FromUnsignedLong((h[1] >> 16) & COMPLETE_FLAGS),
                          PyLong_FromUnsignedLong(h[2]), PyLong_FromUnsignedLong(h[3])};
    for (int i = 0; i < 5; i++) {
        if (!items[i]) {
            for (int j = 0; j < 5; j++)
                Py_XDECREF(items[j]);
            Py_DECREF(results);
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, i, items[i]);
    }
    PyTuple_SET_ITEM(t, 5, results);
    publish(self, self->index + 1);
    return t;
}

static PyObject *cqc_spin(Side *self, PyObject *const *args, Py_ssize_t nargs) {
    long long timeout, yield_after;
    if (spin_args(args, nargs, &timeout, &yield_after) < 0 || side_check(self) < 0)
        return NULL;
    spin_wait(self, timeout, yield_after);
    long n = consumer_pending(self, "completion");
    return n < 0 ? NULL : PyLong_FromLong(n);
}

/* --- types -------------------------------------------------------------------------------------- */

static PyGetSetDef side_getset[] = {
    {"index", (getter)side_get_index, NULL, "this side's free-running index", NULL},
    {"entries", (getter)side_get_entries, NULL, "entries in the ring", NULL},
    {NULL},
};

static PyMethodDef side_methods[] = {
    {"slot_offset", (PyCFunction)side_slot_offset, METH_O, "byte offset of an index's slot"},
    {"release", (PyCFunction)side_release, METH_NOARGS, "drop the region buffer"},
    {NULL},
};

static PyTypeObject SideType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "protocol._cring.RingSide",
    .tp_basicsize = sizeof(Side),
    .tp_dealloc = (destructor)side_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "one side of one ring over a region buffer",
    .tp_methods = side_methods,
    .tp_getset = side_getset,
    .tp_init = (initproc)side_init,
    .tp_new = PyType_GenericNew,
};

static PyGetSetDef sqp_getset[] = {
    {"consumed", (getter)sqp_consumed, NULL, "the host's head", NULL},
    {NULL},
};

static PyMethodDef sqp_methods[] = {
    {"space", (PyCFunction)sqp_space, METH_NOARGS, "free entries"},
    {"push", (PyCFunction)(void (*)(void))sqp_push, METH_FASTCALL | METH_KEYWORDS, "write and publish"},
    {NULL},
};

static PyMethodDef sqc_methods[] = {
    {"pending", (PyCFunction)sqc_pending, METH_NOARGS, "entries published, not consumed"},
    {"read", (PyCFunction)(void (*)(void))sqc_read, METH_FASTCALL, "decode the entry ahead places on"},
    {"advance", (PyCFunction)(void (*)(void))sqc_advance, METH_FASTCALL, "consume entries"},
    {"spin", (PyCFunction)(void (*)(void))sqc_spin, METH_FASTCALL, "wait for an entry, bounded"},
    {NULL},
};

static PyMethodDef cqp_methods[] = {
    {"space", (PyCFunction)cqp_space, METH_NOARGS, "free entries"},
    {"push", (PyCFunction)(void (*)(void))cqp_push, METH_FASTCALL | METH_KEYWORDS, "write and publish"},
    {NULL},
};

static PyMethodDef cqc_methods[] = {
    {"pending", (PyCFunction)cqc_pending, METH_NOARGS, "entries published, not consumed"},
    {"pop", (PyCFunction)cqc_pop, METH_NOARGS, "decode the head entry and consume it"},
    {"spin", (PyCFunction)(void (*)(void))cqc_spin, METH_FASTCALL, "wait for an entry, bounded"},
    {NULL},
};

#define SIDE_SUBTYPE(var, name, methods, getset)                                                        \
    static PyTypeObject var = {                                                                       \
        PyVarObject_HEAD_INIT(NULL, 0).tp_name = "protocol._cring." name,                             \
        .tp_basicsize = sizeof(Side),                                                                 \
        .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,                                         \
        .tp_methods = methods,                                                                        \
        .tp_getset = getset,                                                                          \
        .tp_base = &SideType,                                                                         \
    };

SIDE_SUBTYPE(SqpType, "SubmissionProducer", sqp_methods, sqp_getset)
SIDE_SUBTYPE(SqcType, "SubmissionConsumer", sqc_methods, NULL)
SIDE_SUBTYPE(CqpType, "CompletionProducer", cqp_methods, NULL)
SIDE_SUBTYPE(CqcType, "CompletionConsumer", cqc_methods, NULL)

/* --- module functions --------------------------------------------------------------------------- */

static PyObject *mod_fence(PyObject *Py_UNUSED(m), PyObject *Py_UNUSED(ignored)) {
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    Py_RETURN_NONE;
}

static PyObject *mod_configure(PyObject *Py_UNUSED(m), PyObject *args) {
    PyObject *st, *ct, *es, *ds, *ec, *re;
    if (!PyArg_ParseTuple(args, "OOOOOO", &st, &ct, &es, &ds, &ec, &re))
        return NULL;
    if (!PyType_Check(st) || !PyType_IsSubtype((PyTypeObject *)st, &PyTuple_Type) || !PyType_Check(ct) ||
        !PyType_IsSubtype((PyTypeObject *)ct, &PyTuple_Type) ||
        ((PyTypeObject *)st)->tp_dictoffset || ((PyTypeObject *)ct)->tp_dictoffset) {
        PyErr_SetString(PyExc_TypeError, "entry types must be tuple subclasses without a __dict__");
        return NULL;
    }
    Py_XSETREF(submission_type, Py_NewRef(st));
    Py_XSETREF(completion_type, Py_NewRef(ct));
    Py_XSETREF(py_encode_submission, Py_NewRef(es));
    Py_XSETREF(py_decode_submission, Py_NewRef(ds));
    Py_XSETREF(py_encode_completion, Py_NewRef(ec));
    Py_XSETREF(py_ring_error, Py_NewRef(re));
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"fence", mod_fence, METH_NOARGS, "a full (sequentially consistent) memory fence"},
    {"configure", mod_configure, METH_VARARGS, "hand over the entry types and the Python fallbacks"},
    {NULL},
};

static struct PyModuleDef cring_module = {
    PyModuleDef_HEAD_INIT, "protocol._cring", "The ring hot path in C (see native/cring.c).", -1,
    module_methods,
};

PyMODINIT_FUNC PyInit__cring(void) {
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
    PyErr_SetString(PyExc_ImportError, "protocol._cring supports little-endian hosts only");
    return NULL;
#endif
#define INTERN(var, s)                                                                                \
    if (!(var = PyUnicode_InternFromString(s)))                                                       \
        return NULL;
    INTERN(str_seq, "seq")
    INTERN(str_call_id, "call_id")
    INTERN(str_args, "args")
    INTERN(str_flags, "flags")
    INTERN(str_in_off, "in_off")
    INTERN(str_in_len, "in_len")
    INTERN(str_out_off, "out_off")
    INTERN(str_out_cap, "out_cap")
    INTERN(str_status, "status")
    INTERN(str_results, "results")
    INTERN(str_out_len, "out_len")
    if (!(empty_bytes = PyBytes_FromStringAndSize(NULL, 0)))
        return NULL;
    PyTypeObject *types[] = {&SideType, &SqpType, &SqcType, &CqpType, &CqcType};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++)
        if (PyType_Ready(types[i]) < 0)
            return NULL;
    PyObject *m = PyModule_Create(&cring_module);
    if (!m)
        return NULL;
    const char *names[] = {"RingSide", "SubmissionProducer", "SubmissionConsumer", "CompletionProducer",
                           "CompletionConsumer"};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++)
        if (PyModule_AddObjectRef(m, names[i], (PyObject *)types[i]) < 0) {
            Py_DECREF(m);
            return NULL;
        }
    return m;
}
