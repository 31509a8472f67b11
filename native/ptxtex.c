/* The PTX engine's texture sampling in C (executor.ptx._texfast, built optionally by setup.py).

   sample(span, out, x, y, z, layer, config) does for every lane what executor/ptx/_texture_sample.py's
   sample() does in NumPy -- coordinates to texels (normalized coordinates, address modes), point or
   linear filtering with 8-bit weights, texels to values (read modes, border color) -- with the same
   operations in the same order, so that every result is bitwise the Python form's (-ffp-contract=off:
   no fused products). The Python form stays the reference and the fallback for what this does not
   serve (half floats, sRGB, tld4, tex1Dfetch).

   Safety: `span` is the resource's whole extent, already checked by the caller as readable device
   memory of the VM. Every texel offset is formed from indices the address mode brought inside the
   resource, and is checked against the span's length before it is read: one outside (a layout the
   caller did not vet) stops the call, which then answers the lane's index and writes nothing more;
   the caller then takes the checked gather, which names the fault. NaN coordinates read as 0,
   infinite and huge ones are clamped to 2^40 texels before they become integers.

   x, y, z: float32 buffers of k elements or of one (uniform); y, z (None) beyond the dimensions.
   layer: int64 buffer of k or one element, or None. out: a writable float64 buffer of k * nch
   elements, nch the texture's channels, or 4 where config says bordered. config: a tuple, see
   CONFIG_FORMAT. Answers None, or the index of a lane whose texel is outside the span (or whose
   layer is outside the resource): then the NumPy form serves the fetch. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "pyargs.h"
#include <math.h>
#include <stdint.h>
#include <limits.h>
#include <string.h>

enum { WRAP = 0, CLAMP = 1, MIRROR = 2, BORDER = 3 };
enum { K_SIGNED = 0, K_UNSIGNED = 1, K_FLOAT = 2 };

/* coordinates past this magnitude (in texels) are clamped to it (_texture_sample._FAR) */
#define FAR 1099511627776.0f

typedef struct {
    int dims;
    long long size[3];  /* width, height, depth */
    long long pitch[3]; /* texel bytes, row pitch, slice pitch */
    long long layers, layer_pitch;
    int channels, bits, kind;
    int mode[3];
    int linear, normalized, norm_read, as_float, bordered;
    double border[4];
} Config;

/* dims, width, height, depth, layers, texel bytes, row/slice/layer pitch, channels, bits, kind,
   three address modes, linear, normalized, normalized read, as_float, bordered, border color */
#define CONFIG_FORMAT "iLLLLLLLLiiiiiiiiiiidddd"

static int parse_config(PyObject *tuple, Config *c) {
    if (!PyTuple_Check(tuple)) {
        PyErr_SetString(PyExc_TypeError, "config must be a tuple");
        return -1;
    }
    if (!PyArg_ParseTuple(tuple, CONFIG_FORMAT, &c->dims, &c->size[0], &c->size[1], &c->size[2], &c->layers,
                          &c->pitch[0], &c->pitch[1], &c->pitch[2], &c->layer_pitch, &c->channels, &c->bits,
                          &c->kind, &c->mode[0], &c->mode[1], &c->mode[2], &c->linear, &c->normalized,
                          &c->norm_read, &c->as_float, &c->bordered, &c->border[0], &c->border[1],
                          &c->border[2], &c->border[3]))
        return -1;
    int ok = c->dims >= 1 && c->dims <= 3 && c->layers >= 1 && (c->channels == 1 || c->channels == 2 ||
             c->channels == 4) && (c->bits == 8 || c->bits == 16 || c->bits == 32) &&
             c->kind >= K_SIGNED && c->kind <= K_FLOAT && !(c->kind == K_FLOAT && c->bits != 32) &&
             c->pitch[0] == (long long)c->channels * c->bits / 8;
    for (int a = 0; a < 3; a++)
        ok = ok && c->size[a] >= 1 && c->size[a] <= ((long long)1 << 48) && c->pitch[a] >= 0 &&
             c->mode[a] >= WRAP && c->mode[a] <= BORDER;
    ok = ok && c->layers <= ((long long)1 << 48) && c->layer_pitch >= 0;
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "config out of range");
        return -1;
    }
    return 0;
}

#define INLINE static inline __attribute__((always_inline))

/* _scaled + _finite: a coordinate in texels, in float32 as the hardware's arithmetic is */
INLINE double scaled(float c, long long size, int mode, int normalized) {
    if (normalized) {
        if (mode == WRAP || mode == MIRROR) {
            float whole = floorf(c);
            c = c - whole;
            /* fmod(whole, 2) != 0: odd (a float32 past 2^24 is even; infinite and NaN wholes made c NaN) */
            if (mode == MIRROR && fabsf(whole) < 16777216.0f && ((long long)whole & 1))
                c = 1.0f - c;
        }
        c = c * (float)size;
    }
    if (c != c)
        return 0.0;
    if (c > FAR)
        c = FAR;
    else if (c < -FAR)
        c = -FAR;
    return (double)c;
}

/* address(): an index brought inside [0, size) by the mode; *outside set for the border */
INLINE long long wrap_index(long long i, long long size, int mode, int normalized, int *outside) {
    if (i >= 0 && i < size)
        return i; /* inside already: every mode leaves it (and no division) */
    if (mode == BORDER)
        *outside = 1;
    if (normalized && mode == WRAP) {
        long long r = i % size;
        return r < 0 ? r + size : r;
    }
    if (normalized && mode == MIRROR) {
        long long period = 2 * size, p = i % period;
        if (p < 0)
            p += period;
        return p < size ? p : period - 1 - p;
    }
    return i < 0 ? 0 : i >= size ? size - 1 : i;
}

/* decode(): one texel's channels as the register receives them (values[0..channels)) */
INLINE void decode(const uint8_t *p, const Config *c, double *values) {
    for (int ch = 0; ch < c->channels; ch++) {
        double v;
        if (c->bits == 32) {
            uint32_t word;
            memcpy(&word, p + 4 * ch, 4);
            if (c->kind == K_FLOAT) {
                float f;
                memcpy(&f, &word, 4);
                v = c->as_float ? (double)f : (double)(int32_t)word; /* else its bits */
            } else {
                v = c->kind == K_SIGNED ? (double)(int32_t)word : (double)word;
            }
        } else if (c->bits == 16) {
            uint16_t half;
            memcpy(&half, p + 2 * ch, 2);
            v = c->kind == K_SIGNED ? (double)(int16_t)half : (double)half;
        } else {
            v = c->kind == K_SIGNED ? (double)(int8_t)p[ch] : (double)p[ch];
        }
        if (c->norm_read && c->as_float && c->kind != K_FLOAT && c->bits < 32) {
            if (c->kind == K_UNSIGNED) {
                v = v / (double)((1LL << c->bits) - 1);
            } else {
                v = v / (double)((1LL << (c->bits - 1)) - 1);
                v = v < -1.0 ? -1.0 : v;
            }
        }
        values[ch] = v;
    }
}

typedef struct {
    const float *coord[3];
    Py_ssize_t stride[3];
    const long long *layer;
    Py_ssize_t layer_stride;
} Lanes;

/* the byte offset of a texel, or -1 where it would not lie inside the span */
INLINE long long texel_offset(const Config *c, const long long *index, long long layer, Py_ssize_t span, int dims) {
    long long off = index[0] * c->pitch[0];
    for (int a = 1; a < dims; a++)
        if (c->size[a] > 1)
            off += index[a] * c->pitch[a];
    if (c->layers > 1)
        off += layer * c->layer_pitch;
    if (off < 0 || off > (long long)span - c->pitch[0])
        return -1;
    return off;
}

/* one texel's values: float32 texels read as floats straight (F32), else decode() */
INLINE void texel(const Config *c, const uint8_t *p, int outside, double *values, int nch, int f32) {
    if (outside) {
        memcpy(values, c->border, 4 * sizeof(double));
    } else if (f32) {
        for (int ch = 0; ch < nch; ch++) {
            float f;
            memcpy(&f, p + 4 * ch, 4);
            values[ch] = (double)f;
        }
    } else {
        values[0] = values[1] = values[2] = 0.0;
        values[3] = 1.0;
        decode(p, c, values);
    }
}

/* one lane: its nch values into out; 0, or -1 where a texel is outside the span. dims, linear (a
   linear filter read as floats), nch and f32 are constants where run_lanes() calls it, so that each
   combination compiles to its own loop */
INLINE int sample_lane(const Config *c, const Lanes *lanes, Py_ssize_t i, const uint8_t *base, Py_ssize_t span,
                       double *out, int dims, int linear, int nch, int f32) {
    /* the caller clamps the layer (as for the NumPy form); one outside the resource all the same (a cube
       map's face in a malformed layout) is the NumPy form's to decide, as a texel outside the span is */
    long long layer = lanes->layer != NULL && c->layers > 1 ? lanes->layer[i * lanes->layer_stride] : 0;
    if (layer < 0 || layer >= c->layers)
        return -1;
    double values[4];
    if (!linear) {
        long long index[3] = {0, 0, 0};
        int outside = 0;
        for (int a = 0; a < dims; a++) {
            double x = scaled(lanes->coord[a][i * lanes->stride[a]], c->size[a], c->mode[a], c->normalized);
            index[a] = wrap_index((long long)floor(x), c->size[a], c->mode[a], c->normalized, &outside);
        }
        long long off = texel_offset(c, index, layer, span, dims);
        if (off < 0)
            return -1;
        texel(c, base + off, outside, values, nch, f32);
        memcpy(out, values, (size_t)nch * sizeof(double));
        return 0;
    }
    long long pair[3][2] = {{0, 0}, {0, 0}, {0, 0}};
    int out_of[3][2] = {{0, 0}, {0, 0}, {0, 0}};
    double keep[3][2];
    for (int a = 0; a < dims; a++) {
        double xb = scaled(lanes->coord[a][i * lanes->stride[a]], c->size[a], c->mode[a], c->normalized) - 0.5;
        double first = floor(xb);
        double alpha = nearbyint((xb - first) * 256.0) / 256.0;
        long long i0 = (long long)first;
        pair[a][0] = wrap_index(i0, c->size[a], c->mode[a], c->normalized, &out_of[a][0]);
        pair[a][1] = wrap_index(i0 + 1, c->size[a], c->mode[a], c->normalized, &out_of[a][1]);
        keep[a][0] = 1.0 - alpha;
        keep[a][1] = alpha;
    }
    double acc[4] = {0.0, 0.0, 0.0, 0.0};
    for (int corner = 0; corner < (1 << dims); corner++) {
        long long index[3] = {0, 0, 0};
        int outside = 0;
        for (int a = 0; a < dims; a++) {
            int second = (corner >> a) & 1;
            index[a] = pair[a][second];
            outside |= out_of[a][second];
        }
        long long off = texel_offset(c, index, layer, span, dims);
        if (off < 0)
            return -1;
        texel(c, base + off, outside, values, nch, f32);
        double weight = keep[0][corner & 1];
        for (int a = 1; a < dims; a++)
            weight = weight * keep[a][(corner >> a) & 1];
        for (int ch = 0; ch < nch; ch++)
            acc[ch] = acc[ch] + weight * values[ch];
    }
    memcpy(out, acc, (size_t)nch * sizeof(double));
    return 0;
}

INLINE Py_ssize_t lanes_of(const Config *c, const Lanes *lanes, const uint8_t *base, Py_ssize_t span, double *out,
                           Py_ssize_t k, int dims, int linear, int nch, int f32) {
    for (Py_ssize_t i = 0; i < k; i++)
        if (sample_lane(c, lanes, i, base, span, out + i * nch, dims, linear, nch, f32) < 0)
            return i;
    return -1;
}

#define BY_CHANNELS(dims, linear)                                                                          \
    (nch == 1   ? lanes_of(c, lanes, base, span, out, k, dims, linear, 1, f32)                             \
     : nch == 2 ? lanes_of(c, lanes, base, span, out, k, dims, linear, 2, f32)                             \
                : lanes_of(c, lanes, base, span, out, k, dims, linear, 4, f32))
#define BY_FILTER(dims) (linear ? BY_CHANNELS(dims, 1) : BY_CHANNELS(dims, 0))

/* every lane; the index of the first whose texel is outside the span, or -1. A loop per dimensions,
   filter and channels, float32 texels read as floats apart; one clone per CPU: with SSE4.1 floor and
   nearbyint are one instruction each (the same results: they are exact) */
__attribute__((target_clones("avx2", "sse4.1", "default"))) static Py_ssize_t run_lanes(
    const Config *c, const Lanes *lanes, const uint8_t *base, Py_ssize_t span, double *out, int nch, Py_ssize_t k) {
    int linear = c->linear && c->as_float;
    if (c->kind == K_FLOAT && c->as_float && !c->bordered) {
        const int f32 = 1;
        return c->dims == 1 ? BY_FILTER(1) : c->dims == 2 ? BY_FILTER(2) : BY_FILTER(3);
    }
    const int f32 = 0;
    return c->dims == 1 ? BY_FILTER(1) : c->dims == 2 ? BY_FILTER(2) : BY_FILTER(3);
}

/* the resource's extent in bytes (the last texel's end), or LLONG_MAX where it overflows */
static long long extent(const Config *c) {
    long long total, term;
    if (__builtin_mul_overflow(c->pitch[0], c->size[0], &total))
        return LLONG_MAX;
    long long counts[3] = {c->size[1], c->size[2], c->layers};
    long long pitches[3] = {c->pitch[1], c->pitch[2], c->layer_pitch};
    for (int a = 0; a < 3; a++)
        if (__builtin_mul_overflow(counts[a] - 1, pitches[a], &term) || __builtin_add_overflow(total, term, &total))
            return LLONG_MAX;
    return total;
}

/* a float32 (itemsize 4) or int64 (8) operand of k or one element; None allowed where optional */
static int operand(PyObject *obj, Arg *arg, Py_ssize_t itemsize, Py_ssize_t k, const char *name) {
    if (PyObject_GetBuffer(obj, &arg->view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return -1;
    arg->held = 1;
    const char *fmt = arg->view.format;
    int float32 = fmt != NULL && strcmp(fmt, "f") == 0;
    int int64 = fmt != NULL && (strcmp(fmt, "q") == 0 || strcmp(fmt, "l") == 0);
    Py_ssize_t n = arg->view.itemsize ? arg->view.len / arg->view.itemsize : 0;
    if (arg->view.itemsize != itemsize || !(itemsize == 4 ? float32 : int64) || (n != k && n != 1)) {
        PyErr_Format(PyExc_ValueError, "%s: %zd elements of %zd bytes, not %zd (or 1) of %zd", name, n,
                     arg->view.itemsize, k, itemsize);
        return -1;
    }
    return 0;
}

static PyObject *sample(PyObject *self, PyObject *const *objs, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError, "takes span, out, x, y, z, layer, config");
        return NULL;
    }
    Config c;
    if (parse_config(objs[6], &c) < 0)
        return NULL;
    /* 0 span, 1 out, 2..4 coordinates, 5 layer */
    Arg args[6];
    memset(args, 0, sizeof args);
    PyObject *result = NULL;
    if (PyObject_GetBuffer(objs[0], &args[0].view, PyBUF_SIMPLE) < 0)
        goto done;
    args[0].held = 1;
    if (PyObject_GetBuffer(objs[1], &args[1].view, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE | PyBUF_FORMAT) < 0)
        goto done;
    args[1].held = 1;
    int nch = c.bordered ? 4 : c.channels;
    if (args[1].view.itemsize != 8 || args[1].view.format == NULL || strcmp(args[1].view.format, "d") != 0 ||
        args[1].view.len % (8 * nch)) {
        PyErr_SetString(PyExc_ValueError, "out: float64, a whole number of lanes");
        goto done;
    }
    Py_ssize_t k = args[1].view.len / (8 * nch);
    Lanes lanes;
    memset(&lanes, 0, sizeof lanes);
    for (int a = 0; a < 3; a++) {
        int wanted = a < c.dims;
        if ((objs[2 + a] != Py_None) != wanted) {
            PyErr_Format(PyExc_ValueError, "coordinate %d %s", a, wanted ? "missing" : "beyond the dimensions");
            goto done;
        }
        if (!wanted)
            continue;
        if (operand(objs[2 + a], &args[2 + a], 4, k, "coordinate") < 0)
            goto done;
        lanes.coord[a] = args[2 + a].view.buf;
        lanes.stride[a] = args[2 + a].view.len == 4 ? 0 : 1;
    }
    if (objs[5] != Py_None) {
        if (operand(objs[5], &args[5], 8, k, "layer") < 0)
            goto done;
        lanes.layer = args[5].view.buf;
        lanes.layer_stride = args[5].view.len == 8 ? 0 : 1;
    }
    const uint8_t *base = args[0].view.buf;
    Py_ssize_t span = args[0].view.len;
    if (extent(&c) > (long long)span) {
        PyErr_SetString(PyExc_ValueError, "the span is smaller than the resource");
        goto done;
    }
    double *out = args[1].view.buf;
    Py_ssize_t bad;
    Py_BEGIN_ALLOW_THREADS
    bad = run_lanes(&c, &lanes, base, span, out, nch, k);
    Py_END_ALLOW_THREADS
    if (bad >= 0)
        result = PyLong_FromSsize_t(bad);
    else
        result = Py_NewRef(Py_None);
done:
    release(args, 6);
    return result;
}

static PyMethodDef methods[] = {
    {"sample", (PyCFunction)(void (*)(void))sample, METH_FASTCALL,
     "sample(span, out, x, y, z, layer, config): point or linear texture sampling of every lane"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_texfast", NULL, 0, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__texfast(void) { return PyModule_Create(&module); }
