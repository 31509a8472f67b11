/* The PTX engine's fused multiply-add in C (executor.ptx._fmafast, built optionally by setup.py).

   fma32(out, x, y, z) and fma64(out, x, y, z) write x * y + z rounded once to nearest even (C's
   fmaf/fma, correctly rounded whether the CPU has an FMA unit or glibc computes it in software) for
   every element: `fma.rn.f32`/`fma.rn.f64`. NumPy has no fused multiply-add, and the engine's Python
   form (executor/ptx/_fuse.py _fma32, _isa_arith.py) takes nine array passes for f32 and some twenty
   (Dekker's error-free product) for f64. A NaN result is computed as the Python form computes it
   (x * y + z in double), so that its payload is the same (a GPU's is canonical; NumPy may take a
   uniform operand's NaN first, so payloads are not promised).

   `out` is a writable contiguous buffer of n elements; each input is a contiguous buffer of n
   elements or of one (a uniform operand, read for every element); the element size must be the
   function's (4 or 8 bytes). Anything else raises ValueError, before anything is written. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <string.h>

typedef struct {
    Py_buffer view;
    int held;
} Arg;

static void release(Arg *args, int count) {
    for (int i = 0; i < count; i++) {
        if (args[i].held) {
            PyBuffer_Release(&args[i].view);
            args[i].held = 0;
        }
    }
}

/* args[0] is out: all four acquired and checked, or an exception set and none held */
static int acquire(PyObject *const *objs, Py_ssize_t nargs, Arg *args, Py_ssize_t itemsize, Py_ssize_t *n) {
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "takes out, x, y, z");
        return -1;
    }
    for (int i = 0; i < 4; i++) {
        int flags = i == 0 ? (PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) : PyBUF_C_CONTIGUOUS;
        if (PyObject_GetBuffer(objs[i], &args[i].view, flags) < 0) {
            release(args, i);
            return -1;
        }
        args[i].held = 1;
        if (args[i].view.itemsize != itemsize) {
            release(args, i + 1);
            PyErr_Format(PyExc_ValueError, "operand %d has %zd-byte elements, not %zd", i, args[i].view.itemsize,
                         itemsize);
            return -1;
        }
    }
    *n = args[0].view.len / itemsize;
    for (int i = 1; i < 4; i++) {
        Py_ssize_t len = args[i].view.len / itemsize;
        if (len != *n && len != 1) {
            release(args, 4);
            PyErr_Format(PyExc_ValueError, "operand %d has %zd elements, out %zd", i, len, *n);
            return -1;
        }
    }
    return 0;
}

/* One clone per CPU: with an FMA unit fmaf/fma are one instruction, vectorized (operands of n elements
   get a loop of their own without the uniform operands' index arithmetic); without one, glibc's. NaN
   results are rare: the loop only notes one, and a second pass recomputes those. */
#define FMA_LOOP(name, T, FMA)                                                                             \
    __attribute__((target_clones("fma", "default"))) static void name(                                  \
        T *restrict out, const T *restrict x, const T *restrict y, const T *restrict z, Py_ssize_t sx,     \
        Py_ssize_t sy, Py_ssize_t sz, Py_ssize_t n) {                                                      \
        int nan = 0;                                                                                       \
        if (sx && sy && sz) {                                                                              \
            for (Py_ssize_t i = 0; i < n; i++) {                                                           \
                T r = FMA(x[i], y[i], z[i]);                                                               \
                nan |= r != r;                                                                             \
                out[i] = r;                                                                                \
            }                                                                                              \
        } else {                                                                                           \
            for (Py_ssize_t i = 0; i < n; i++) {                                                           \
                T r = FMA(x[i * sx], y[i * sy], z[i * sz]);                                                \
                nan |= r != r;                                                                             \
                out[i] = r;                                                                                \
            }                                                                                              \
        }                                                                                                  \
        if (nan) {                                                                                         \
            for (Py_ssize_t i = 0; i < n; i++) {                                                           \
                if (out[i] != out[i])                                                                      \
                    out[i] = (T)((double)x[i * sx] * (double)y[i * sy] + (double)z[i * sz]);               \
            }                                                                                              \
        }                                                                                                  \
    }

FMA_LOOP(loop32, float, fmaf)
FMA_LOOP(loop64, double, fma)

/* fma32/fma64: the same checks and loop at element size 4 (float) or 8 (double) */
static PyObject *fma_n(PyObject *const *objs, Py_ssize_t nargs, Py_ssize_t size) {
    Arg args[4];
    memset(args, 0, sizeof args);
    Py_ssize_t n;
    if (acquire(objs, nargs, args, size, &n) < 0)
        return NULL;
    void *out = args[0].view.buf;
    const void *x = args[1].view.buf, *y = args[2].view.buf, *z = args[3].view.buf;
    /* an operand of one element is uniform: stride 0 */
    Py_ssize_t sx = args[1].view.len == size ? 0 : 1, sy = args[2].view.len == size ? 0 : 1;
    Py_ssize_t sz = args[3].view.len == size ? 0 : 1;
    Py_BEGIN_ALLOW_THREADS
    if (size == 4)
        loop32(out, x, y, z, sx, sy, sz, n);
    else
        loop64(out, x, y, z, sx, sy, sz, n);
    Py_END_ALLOW_THREADS
    release(args, 4);
    Py_RETURN_NONE;
}

static PyObject *fma32(PyObject *self, PyObject *const *objs, Py_ssize_t nargs) {
    (void)self;
    return fma_n(objs, nargs, 4);
}

static PyObject *fma64(PyObject *self, PyObject *const *objs, Py_ssize_t nargs) {
    (void)self;
    return fma_n(objs, nargs, 8);
}

static PyMethodDef methods[] = {
    {"fma32", (PyCFunction)(void (*)(void))fma32, METH_FASTCALL, "fma32(out, x, y, z): fma.rn.f32 elementwise"},
    {"fma64", (PyCFunction)(void (*)(void))fma64, METH_FASTCALL, "fma64(out, x, y, z): fma.rn.f64 elementwise"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_fmafast", NULL, 0, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__fmafast(void) { return PyModule_Create(&module); }
