/* The PTX engine's shared and local window accesses in C (executor.ptx._winfast, built optionally by
   setup.py), for executor/ptx/_memory.py's window_index and window_store: what NumPy does in six passes
   (the alignment test, min, max, a cast, a shift, an add) in one, and a scatter without NumPy's
   fancy-index machinery (about twice as fast at a batch's 16,384 elements).

   index(a, starts, shift, out) -> (lo, hi, bits): out[i] = starts[i] + (a[i] >> shift) for every
       thread, and the register's least and greatest value and the OR of all its values (the caller
       tests alignment and bounds on those, as the NumPy form does). a: 4- or 8-byte unsigned elements;
       starts and out: int64, as many.
   put(table, at, k, values) -> -1 or i: table[at[i] + k] = values[i] in thread order (the last of
       threads storing to one element wins, as NumPy's assignment leaves it); table and values of the
       same element size (1, 2, 4 or 8 bytes), values as many as at or one (every thread's), at int64.

   breaks(a, stride, limit) -> [j, ...]: where a device access's addresses stop being one stride apart
       (_memory.runs), at most limit of them, in one pass.

   Safety: the caller has checked that every index lies in its thread's window; put checks again that
   each lies inside the table before it stores anything, and answers the first thread whose index does
   not (storing nothing), so a caller's mistake is a fallback to the checked path, never a write
   outside the table. A buffer of the wrong element size or length raises ValueError before anything
   is done. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "pyargs.h"
#include <stdint.h>
#include <string.h>

/* acquire count buffers, objs[w] writable when w >= 0: all held and C-contiguous, or an exception set
   and none held */
static int acquire(PyObject *const *objs, Py_ssize_t nargs, Py_ssize_t want, Arg *args, int w) {
    if (nargs != want) {
        PyErr_Format(PyExc_TypeError, "takes %zd arguments", want);
        return -1;
    }
    for (Py_ssize_t i = 0; i < want; i++) {
        if (objs[i] == Py_None || PyLong_Check(objs[i])) {
            args[i].held = 0;
            continue;
        }
        int flags = i == w ? (PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) : PyBUF_C_CONTIGUOUS;
        if (PyObject_GetBuffer(objs[i], &args[i].view, flags) < 0) {
            release(args, (int)i);
            return -1;
        }
        args[i].held = 1;
    }
    return 0;
}

static int elements(Arg *a, Py_ssize_t itemsize, Py_ssize_t *n, const char *what) {
    if (!a->held || a->view.itemsize != itemsize || a->view.len % itemsize) {
        PyErr_Format(PyExc_ValueError, "%s must be a buffer of %zd-byte elements", what, itemsize);
        return -1;
    }
    *n = a->view.len / itemsize;
    return 0;
}

static PyObject *index_(PyObject *self, PyObject *const *objs, Py_ssize_t nargs) {
    (void)self;
    Arg args[4];
    memset(args, 0, sizeof args);
    if (acquire(objs, nargs, 4, args, 3) < 0)
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t n = 0, ns = 0, no = 0;
    long shift = PyLong_Check(objs[2]) ? PyLong_AsLong(objs[2]) : -1;
    PyErr_Clear(); /* a shift that does not fit a long: refused below as out of range */
    Py_ssize_t size = args[0].held ? args[0].view.itemsize : 0;
    if (size != 4 && size != 8) {
        PyErr_SetString(PyExc_ValueError, "a must be a buffer of 4- or 8-byte elements");
        goto done;
    }
    if (elements(&args[0], size, &n, "a") < 0 || elements(&args[1], 8, &ns, "starts") < 0 ||
        elements(&args[3], 8, &no, "out") < 0)
        goto done;
    if (ns != n || no != n || n == 0 || shift < 0 || shift > 3) {
        PyErr_SetString(PyExc_ValueError, "starts and out must be as long as a (not empty); shift 0-3");
        goto done;
    }
    const int64_t *starts = args[1].view.buf;
    int64_t *out = args[3].view.buf;
    uint64_t lo = UINT64_MAX, hi = 0, bits = 0;
    if (size == 4) {
        const uint32_t *a = args[0].view.buf;
        uint32_t l = UINT32_MAX, h = 0, b = 0;
        for (Py_ssize_t i = 0; i < n; i++) {
            uint32_t v = a[i];
            l = v < l ? v : l;
            h = v > h ? v : h;
            b |= v;
            out[i] = (int64_t)((uint64_t)starts[i] + (uint64_t)(v >> shift));
        }
        lo = l, hi = h, bits = b;
    } else {
        const uint64_t *a = args[0].view.buf;
        for (Py_ssize_t i = 0; i < n; i++) {
            uint64_t v = a[i];
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
            bits |= v;
            out[i] = (int64_t)((uint64_t)starts[i] + (v >> shift));
        }
    }
    result = Py_BuildValue("(KKK)", (unsigned long long)lo, (unsigned long long)hi, (unsigned long long)bits);
done:
    release(args, 4);
    return result;
}

/* the table, at and the element buffer checked; *n threads, *size bytes an element, *k the offset */
static int table_args(Arg *args, PyObject *const *objs, Py_ssize_t *n, Py_ssize_t *size, Py_ssize_t *rows,
                      int64_t *k, int *one) {
    *size = args[0].held ? args[0].view.itemsize : 0;
    if (*size != 1 && *size != 2 && *size != 4 && *size != 8) {
        PyErr_SetString(PyExc_ValueError, "table must be a buffer of 1-, 2-, 4- or 8-byte elements");
        return -1;
    }
    Py_ssize_t nv = 0;
    if (elements(&args[0], *size, rows, "table") < 0 || elements(&args[1], 8, n, "at") < 0 ||
        elements(&args[3], *size, &nv, "values") < 0)
        return -1;
    if (nv != *n && nv != 1) {
        PyErr_SetString(PyExc_ValueError, "values must be as long as at, or one element");
        return -1;
    }
    *one = nv == 1;
    int overflow = 0;
    long long kk = PyLong_Check(objs[2]) ? PyLong_AsLongLongAndOverflow(objs[2], &overflow) : 0;
    if (!PyLong_Check(objs[2]) || overflow || (kk == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        PyErr_SetString(PyExc_ValueError, "k must be an int of 64 bits");
        return -1;
    }
    *k = (int64_t)kk;
    return 0;
}

/* the first thread whose element is outside [0, rows), or -1; a sum past int64 is outside (so the
   stores' at[i] + k never overflows) */
static Py_ssize_t outside(const int64_t *at, Py_ssize_t n, int64_t k, Py_ssize_t rows) {
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t e;
        if (__builtin_add_overflow(at[i], k, &e) || e < 0 || e >= (int64_t)rows)
            return i;
    }
    return -1;
}

#define PUT(T)                                                                                           \
    do {                                                                                                 \
        T *t = (T *)table;                                                                               \
        const T *v = (const T *)src;                                                                     \
        if (one) {                                                                                       \
            for (Py_ssize_t i = 0; i < n; i++)                                                           \
                t[at[i] + k] = v[0];                                                                     \
        } else {                                                                                         \
            for (Py_ssize_t i = 0; i < n; i++)                                                           \
                t[at[i] + k] = v[i];                                                                     \
        }                                                                                                \
    } while (0)

static PyObject *put(PyObject *self, PyObject *const *objs, Py_ssize_t nargs) {
    (void)self;
    Arg args[4];
    memset(args, 0, sizeof args);
    if (acquire(objs, nargs, 4, args, 0) < 0)
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t n, size, rows;
    int64_t k;
    int one;
    if (table_args(args, objs, &n, &size, &rows, &k, &one) < 0)
        goto done;
    const int64_t *at = args[1].view.buf;
    Py_ssize_t bad = outside(at, n, k, rows);
    if (bad < 0) {
        char *table = args[0].view.buf;
        const char *src = args[3].view.buf;
        switch (size) {
        case 1: PUT(uint8_t); break;
        case 2: PUT(uint16_t); break;
        case 4: PUT(uint32_t); break;
        default: PUT(uint64_t); break;
        }
    }
    result = PyLong_FromSsize_t(bad);
done:
    release(args, 4);
    return result;
}

/* breaks(a, stride, limit) -> [j, ...]: the threads j (in order, at most limit of them) after which the
   next address is not stride bytes further (a[j + 1] - a[j] != stride, modulo 2^64), for runs(): one
   pass and no temporary array where NumPy's np.diff takes two and two arrays. a: uint64 addresses. */
static PyObject *breaks(PyObject *self, PyObject *const *objs, Py_ssize_t nargs) {
    (void)self;
    Arg args[3];
    memset(args, 0, sizeof args);
    if (acquire(objs, nargs, 3, args, -1) < 0)
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t n;
    if (elements(&args[0], 8, &n, "a") < 0)
        goto done;
    if (!PyLong_Check(objs[1]) || !PyLong_Check(objs[2])) {
        PyErr_SetString(PyExc_ValueError, "stride and limit must be ints");
        goto done;
    }
    uint64_t stride = PyLong_AsUnsignedLongLongMask(objs[1]);
    Py_ssize_t limit = PyLong_AsSsize_t(objs[2]);
    if (limit == -1 && PyErr_Occurred()) {
        PyErr_SetString(PyExc_ValueError, "limit must fit a Py_ssize_t");
        goto done;
    }
    result = PyList_New(0);
    if (!result)
        goto done;
    const uint64_t *a = args[0].view.buf;
    Py_ssize_t found = 0;
    for (Py_ssize_t j = 0; j + 1 < n && found < limit; j++) {
        if (a[j + 1] - a[j] != stride) {
            PyObject *at = PyLong_FromSsize_t(j);
            if (!at || PyList_Append(result, at) < 0) {
                Py_XDECREF(at);
                Py_CLEAR(result);
                goto done;
            }
            Py_DECREF(at);
            found++;
        }
    }
done:
    release(args, 3);
    return result;
}

static PyMethodDef methods[] = {
    {"index", (PyCFunction)(void (*)(void))index_, METH_FASTCALL,
     "index(a, starts, shift, out) -> (lo, hi, bits): out[i] = starts[i] + (a[i] >> shift)"},
    {"put", (PyCFunction)(void (*)(void))put, METH_FASTCALL,
     "put(table, at, k, values) -> -1 or the first thread outside the table: table[at[i] + k] = values[i]"},
    {"breaks", (PyCFunction)(void (*)(void))breaks, METH_FASTCALL,
     "breaks(a, stride, limit) -> the first threads j (at most limit) with a[j + 1] - a[j] != stride"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_winfast", NULL, 0, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__winfast(void) { return PyModule_Create(&module); }
