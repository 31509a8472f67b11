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
#include "pyargs.h"
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

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

/* run_f32(code, slots, n, scratch): a straight line of f32 (and predicate) instructions over n lanes in one
   call (executor/ptx/_native_run.py builds it from a fused run): lanes in chunks of CHUNK, every
   instruction over a chunk before the next chunk, so operands stay in cache and no array is made per
   instruction. `code` is int32 records (op, d, a, b, c) naming slots; `slots` a tuple of buffers, each
   of 1 element (uniform: broadcast) or n (an element per lane); the first `scratch` slot numbers past
   len(slots) are per-chunk temporaries (registers that die inside the run). Every index, element size,
   length and writability is checked before anything is computed: ValueError otherwise. Float results
   are IEEE single operations (correctly rounded, as NumPy's float32 operators), the special functions
   double's rounded once to float (as the engine's Python forms compute them), fma C's fmaf with the
   Python form's NaN. */

enum {
    R_MOV, R_ADD, R_SUB, R_MUL, R_DIV, R_FMA, R_NEG, R_ABS, R_EX2, R_LG2, R_RSQRT, R_RCP, R_SQRT,
    R_EQ, R_LT, R_LE, R_GT, R_GE, R_SELP, R_TANH, R_SIN, R_COS, R_OPS
};
/* or'd into an op: `.ftz` as the Python forms do it (_compiler.float_pre/float_post), subnormals becoming
   zeros of their sign: R_FTZ_D the float result's after the op, R_FTZ_A/B/C a float operand's before it
   (_native_run leaves out an operand an earlier .ftz record of the segment left flushed) */
#define R_OP 63
#define R_FTZ_D 64
#define R_FTZ_A 128
#define R_FTZ_B 256
#define R_FTZ_C 512
#define CHUNK 512
#define MAX_SLOTS 4096

/* element sizes of (d, a, b, c) per op; 0: unused */
static const signed char SIZES[R_OPS][4] = {
    [R_MOV] = {4, 4, 0, 0}, [R_ADD] = {4, 4, 4, 0}, [R_SUB] = {4, 4, 4, 0}, [R_MUL] = {4, 4, 4, 0},
    [R_DIV] = {4, 4, 4, 0}, [R_FMA] = {4, 4, 4, 4}, [R_NEG] = {4, 4, 0, 0}, [R_ABS] = {4, 4, 0, 0},
    [R_EX2] = {4, 4, 0, 0}, [R_LG2] = {4, 4, 0, 0}, [R_RSQRT] = {4, 4, 0, 0}, [R_RCP] = {4, 4, 0, 0},
    [R_SQRT] = {4, 4, 0, 0}, [R_EQ] = {1, 4, 4, 0}, [R_LT] = {1, 4, 4, 0}, [R_LE] = {1, 4, 4, 0},
    [R_GT] = {1, 4, 4, 0}, [R_GE] = {1, 4, 4, 0}, [R_SELP] = {4, 4, 4, 1}, [R_TANH] = {4, 4, 0, 0},
    [R_SIN] = {4, 4, 0, 0}, [R_COS] = {4, 4, 0, 0},
};

typedef struct {
    char *base;       /* the buffer, or the chunk-sized broadcast/scratch buffer */
    Py_ssize_t step;  /* bytes to advance per lane of the chunk's start (0: the same chunk every time) */
    Py_ssize_t size;  /* element size, once known (0: not yet) */
} Slot;

/* ex2.approx.f32 and lg2.approx.f32 as the Python forms define them (_isa_arith._approx: the float's
   function in double, rounded once to float), vectorized, so that they need not end a segment: glibc's
   exp2/log2 are 8-14 ns a lane, these under one. Each is a double polynomial within a few double ulps
   (2^-50 relative) of the true value; a chunk with a lane whose result lies within 2^-44 of a float
   rounding boundary (one lane in 2^19 or so) or whose operand is special (NaN; lg2's zero, negative,
   infinite) is passed again, and those lanes are computed in long double (exp2l/log2l, 64-bit
   mantissas). So each float is the correctly rounded one, whichever clone ran (with or without an FMA
   unit the doubles may differ in their last bits, never across the margin) — as the float of NumPy's
   double is too, but where its double (SVML's, within an ulp) falls across a float midpoint: about
   one lane in 2^29, more exact here (tests/ptx/test_native_run.py compares with long double's). */
static inline uint64_t bits_of(double x) {
    uint64_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}
static inline double double_of(uint64_t u) {
    double x;
    memcpy(&x, &u, sizeof x);
    return x;
}
#define MAGIC 6755399441055744.0 /* 1.5 * 2^52: x + MAGIC rounds x to an integer in its low bits */
/* whether y (a result in float's normal range) is within 256 double ulps (2^-44 of it) of a float
   midpoint, where its rounding to float changes: the 29 bits a float drops, read off as an integer.
   In float's subnormal range fewer bits are kept: any y in [2^-151, 2^-126) counts as near (below
   2^-151 the float is 0 whatever the error; ex2 only, and only there: lg2's results are never there) */
#define NEAR_ULPS 256
static inline int near_boundary(double y) {
    uint64_t b = bits_of(y) & 0x7fffffffffffffffULL;
    int mid = ((b & 0x1fffffff) - (0x10000000 - NEAR_ULPS)) < 2 * NEAR_ULPS;
    int sub = (b < 0x3810000000000000ULL) & (b >= 0x3680000000000000ULL); /* 2^-126, 2^-151 */
    return mid | sub;
}

static inline __attribute__((always_inline)) double exp2_approx(double x) {
    /* 2^-160 rounds to float 0, 2^160 to inf; NaN: the caller's. Quiet comparisons (<, > may trap on
       NaN, which keeps the compiler from vectorizing the loop) */
    x = __builtin_isless(fabs(x), 160.0) ? x : copysign(160.0, x);
    double t = x + MAGIC, k = t - MAGIC, f = x - k; /* f in [-0.5, 0.5], exact */
    double scale = double_of((bits_of(t) - bits_of(MAGIC) + 1023) << 52); /* 2^k */
    /* exp(f ln 2)'s Taylor series to f^13 (ln 2^i / i!, Horner's written out so that it vectorizes):
       the tail is below 2^-57 */
    double q = 0x1.816193166d0f9p-40;
    q = fma(q, f, 0x1.c3bd650fc2986p-36);
    q = fma(q, f, 0x1.e8cac7351bb25p-32);
    q = fma(q, f, 0x1.e4cf5158b8ecap-28);
    q = fma(q, f, 0x1.b5253d395e7c4p-24);
    q = fma(q, f, 0x1.62c0223a5c824p-20);
    q = fma(q, f, 0x1.ffcbfc588b0c7p-17);
    q = fma(q, f, 0x1.430912f86c787p-13);
    q = fma(q, f, 0x1.5d87fe78a6731p-10);
    q = fma(q, f, 0x1.3b2ab6fba4e77p-7);
    q = fma(q, f, 0x1.c6b08d704a0c0p-5);
    q = fma(q, f, 0x1.ebfbdff82c58fp-3);
    q = fma(q, f, 0x1.62e42fefa39efp-1);
    q = fma(q, f, 1.0);
    return q * scale;
}

/* tanh of a double, within about 2^-50 of it: e / (e + 2) with e = expm1(2|x|), the sign put back;
   expm1 by its Taylor series to t^15 below ln 2 / 2 (no cancellation there), else 2^(t log2 e) - 1,
   which loses at most a bit and a half; |x| past 40 is 40 (the float is 1 either way). NaN: the
   caller's. */
static inline __attribute__((always_inline)) double tanh_approx(double x) {
    double a = fabs(x);
    a = __builtin_isless(a, 40.0) ? a : 40.0;
    double t = a + a;
    double q = 0x1.ae7f3e733b81fp-41; /* 1 / (k + 1)! */
    q = fma(q, t, 0x1.93974a8c07c9dp-37);
    q = fma(q, t, 0x1.6124613a86d09p-33);
    q = fma(q, t, 0x1.1eed8eff8d898p-29);
    q = fma(q, t, 0x1.ae64567f544e4p-26);
    q = fma(q, t, 0x1.27e4fb7789f5cp-22);
    q = fma(q, t, 0x1.71de3a556c734p-19);
    q = fma(q, t, 0x1.a01a01a01a01ap-16);
    q = fma(q, t, 0x1.a01a01a01a01ap-13);
    q = fma(q, t, 0x1.6c16c16c16c17p-10);
    q = fma(q, t, 0x1.1111111111111p-7);
    q = fma(q, t, 0x1.5555555555555p-5);
    q = fma(q, t, 0x1.5555555555555p-3);
    q = fma(q, t, 0x1.0000000000000p-1);
    q = fma(q, t, 0x1.0000000000000p+0);
    double small = t * q, large = exp2_approx(t * 0x1.71547652b82fep+0) - 1.0;
    double e = __builtin_isless(t, 0.34657359027997264) ? small : large;
    return copysign(e / (e + 2.0), x);
}

/* sin (cosine: 0) or cos (1) of a double |x| < 2^20, within about 2^-51 of it: x = k pi/2 + r, |r| <= pi/4,
   with pi/2 in three parts (33, 33 and 53 bits: k P1 and k P2 are exact for k < 2^20, so r is exact to
   2^-52 of itself even where x is near a multiple of pi/2), then the Taylor series of sin r (to r^19)
   or cos r (to r^20) by k's quadrant. Larger, infinite or NaN x: the caller's. */
static inline __attribute__((always_inline)) double sincos_approx(double x, int cosine) {
    double t = x * 0x1.45f306dc9c883p-1 + MAGIC, k = t - MAGIC; /* k = round(x 2/pi) */
    uint64_t quadrant = (bits_of(t) + (uint64_t)cosine) & 3;
    double r = ((x - k * 0x1.921fb54400000p+0) - k * 0x1.0b4611a600000p-34) - k * 0x1.3198a2e037073p-69;
    double z = r * r;
    double s = -0x1.2f49b46814157p-57;
    s = fma(s, z, 0x1.952c77030ad4ap-49);
    s = fma(s, z, -0x1.ae7f3e733b81fp-41);
    s = fma(s, z, 0x1.6124613a86d09p-33);
    s = fma(s, z, -0x1.ae64567f544e4p-26);
    s = fma(s, z, 0x1.71de3a556c734p-19);
    s = fma(s, z, -0x1.a01a01a01a01ap-13);
    s = fma(s, z, 0x1.1111111111111p-7);
    s = fma(s, z, -0x1.5555555555555p-3);
    s = r * fma(z, s, 1.0); /* not r + r z s: that makes sin(-0) +0 */
    double c = 0x1.e542ba4020225p-62;
    c = fma(c, z, -0x1.6827863b97d97p-53);
    c = fma(c, z, 0x1.ae7f3e733b81fp-45);
    c = fma(c, z, -0x1.93974a8c07c9dp-37);
    c = fma(c, z, 0x1.1eed8eff8d898p-29);
    c = fma(c, z, -0x1.27e4fb7789f5cp-22);
    c = fma(c, z, 0x1.a01a01a01a01ap-16);
    c = fma(c, z, -0x1.6c16c16c16c17p-10);
    c = fma(c, z, 0x1.5555555555555p-5);
    c = fma(c, z, -0x1.0000000000000p-1);
    c = fma(c, z, 1.0);
    /* sin x by quadrant: sin r, cos r, -sin r, -cos r (cos x: one quadrant on) */
    double v = (quadrant & 1) ? c : s;
    return (quadrant & 2) ? -v : v;
}

/* whether x is positive and finite (quiet comparisons, as above) */
static inline int positive(float x) {
    return __builtin_isgreater(x, 0.0f) & __builtin_islessequal(x, FLT_MAX);
}

/* lg2 of a positive finite double x = m 2^e, m in [sqrt(1/2), sqrt(2)): e + 2 atanh(s) / ln 2 with
   s = (m - 1) / (m + 1), |s| < 0.172; the series to s^21 (the tail is below 2^-56 of the sum) */
static inline __attribute__((always_inline)) double log2_approx(double x) {
    uint64_t b = bits_of(x), eb = (b + (0x3ff0000000000000ULL - 0x3fe6a09e667f3bcdULL)) >> 52; /* e + 1023 */
    double m = double_of(b - ((eb - 1023) << 52));
    double ed = double_of(0x4330000000000000ULL | eb) - (0x1p52 + 1023); /* 2^52 + eb, exactly, less that */
    double s = (m - 1.0) / (m + 1.0), s2 = s * s;
    /* 2 / ((2i + 1) ln 2), Horner's in s^2 written out */
    double q = 0x1.1964ec6fc9491p-3;
    q = fma(q, s2, 0x1.3703c1f4d0ffep-3);
    q = fma(q, s2, 0x1.5b9ac9b743f0dp-3);
    q = fma(q, s2, 0x1.89f3b1694cffep-3);
    q = fma(q, s2, 0x1.c68f568d31760p-3);
    q = fma(q, s2, 0x1.0c9a84994022dp-2);
    q = fma(q, s2, 0x1.484b13d7c02a9p-2);
    q = fma(q, s2, 0x1.a61762a7aded9p-2);
    q = fma(q, s2, 0x1.2776c50ef9bfep-1);
    q = fma(q, s2, 0x1.ec709dc3a03fdp-1);
    q = fma(q, s2, 0x1.71547652b82fep+1);
    return ed + s * q;
}

/* the Python form's (float)(1 / sqrt(double)) without double's root and quotient (1.3 ns a lane): float's
   estimate r (within 2^-23), one correction in double (1 - x r^2 is exact to 2^-53; the series to e^2 leaves
   2^-66) gives y within 2^-52 of the true value; where y is not near a float midpoint both round to the
   correctly rounded float. Near ones and operands that are not positive and finite are computed as the
   Python form does (run_chunk). */
static inline __attribute__((always_inline)) double rsqrt_approx(float a) {
    float r0 = 1.0f / sqrtf(a);
    double x = a, r = r0, e = 1.0 - x * r * r;
    return r + r * (e * (0.5 + 0.375 * e));
}

/* v, or a zero of its sign when it is subnormal */
static inline float ftzf(float v) {
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    u = (u & 0x7f800000) ? u : (u & 0x80000000);
    memcpy(&v, &u, sizeof v);
    return v;
}

/* out[i] = ftzf(in[i]) (in place when out is in) */
static inline const float *flushed(float *out, const float *in, Py_ssize_t len) {
    for (Py_ssize_t i = 0; i < len; i++)
        out[i] = ftzf(in[i]);
    return out;
}

/* d[i] = EXPR over the chunk, flushed in the same pass when the record says .ftz (fz) */
#define LANES(EXPR)                                     \
    do {                                                \
        if (fz)                                         \
            for (i = 0; i < len; i++)                   \
                d[i] = ftzf(EXPR);                      \
        else                                            \
            for (i = 0; i < len; i++)                   \
                d[i] = (EXPR);                          \
        fz = 0;                                         \
    } while (0)

/* d[i] = (float)APPROX over the chunk (run_chunk's i, len, d, redo): APPROX is near enough to the true value
   to round as it does unless it is near a float midpoint; those lanes and the ones HARD marks (rare: only
   noted in the vectorized pass) are computed again as (float)(EXACT) */
#define ROUNDED(APPROX, HARD, EXACT)                    \
    do {                                                \
        int hard = 0;                                   \
        for (i = 0; i < len; i++) {                     \
            double y = (APPROX);                        \
            int h = near_boundary(y) | (HARD);          \
            hard |= h;                                  \
            redo[i] = h;                                \
            d[i] = (float)y;                            \
        }                                               \
        if (hard)                                       \
            for (i = 0; i < len; i++)                   \
                if (redo[i])                            \
                    d[i] = (float)(EXACT);              \
    } while (0)

/* one clone per CPU (AVX-512, AVX2 with FMA, baseline): with an FMA unit fmaf is one instruction;
   built without errno (setup.py: nothing here reads it) sqrt is one instruction too, and the loops
   vectorize */
__attribute__((target_clones("avx512f", "arch=haswell", "default")))
static void run_chunk(const int32_t *code, Py_ssize_t count, const Slot *slots, Py_ssize_t c0, Py_ssize_t len) {
    int32_t redo[CHUNK]; /* ex2/lg2: lanes to compute again exactly (not bytes: AVX-512F has no packing to them) */
    float flush[3][CHUNK];
    for (Py_ssize_t k = 0; k < count; k++) {
        const int32_t *r = code + 5 * k;
        char *pd = slots[r[1]].base + c0 * slots[r[1]].step;
        const char *pa = slots[r[2]].base + c0 * slots[r[2]].step;
        int op = r[0] & R_OP; /* checked before: op < R_OPS, no other bits */
        const char *pb = SIZES[op][2] ? slots[r[3]].base + c0 * slots[r[3]].step : NULL;
        const char *pc = SIZES[op][3] ? slots[r[4]].base + c0 * slots[r[4]].step : NULL;
        float *d = (float *)pd;
        const float *a = (const float *)pa, *b = (const float *)pb, *c = (const float *)pc;
        unsigned char *p = (unsigned char *)pd;
        Py_ssize_t i;
        int fz = (r[0] & R_FTZ_D) && SIZES[op][0] == 4; /* the result to flush (after the op, unless it did) */
        /* .ftz's float operands flushed into the chunk's own copies */
        if ((r[0] & R_FTZ_A) && SIZES[op][1] == 4)
            a = flushed(flush[0], a, len);
        if ((r[0] & R_FTZ_B) && SIZES[op][2] == 4)
            b = flushed(flush[1], b, len);
        if ((r[0] & R_FTZ_C) && SIZES[op][3] == 4)
            c = flushed(flush[2], c, len);
        switch (op) {
        case R_MOV: for (i = 0; i < len; i++) d[i] = a[i]; break;
        case R_ADD: LANES(a[i] + b[i]); break;
        case R_SUB: LANES(a[i] - b[i]); break;
        case R_MUL: LANES(a[i] * b[i]); break;
        case R_DIV: LANES(a[i] / b[i]); break;
        case R_FMA: {
            int nan = 0; /* NaN results are rare: noted in the vectorized pass, recomputed after it */
            for (i = 0; i < len; i++) {
                float v = fmaf(a[i], b[i], c[i]);
                nan |= v != v;
                d[i] = fz ? ftzf(v) : v; /* a NaN stays NaN */
            }
            fz = 0;
            if (nan)
                for (i = 0; i < len; i++)
                    if (d[i] != d[i])
                        d[i] = (float)((double)a[i] * (double)b[i] + (double)c[i]);
            break;
        }
        case R_NEG: for (i = 0; i < len; i++) d[i] = -a[i]; break;
        case R_ABS: for (i = 0; i < len; i++) d[i] = fabsf(a[i]); break;
        case R_EX2: ROUNDED(exp2_approx((double)a[i]), __builtin_isnan(a[i]), exp2l((long double)a[i])); break;
        case R_TANH: ROUNDED(tanh_approx((double)a[i]), __builtin_isnan(a[i]), tanhl((long double)a[i])); break;
        case R_SIN:
        case R_COS: { /* past 2^20: long double's own reduction, any size */
            int cosine = op == R_COS;
            ROUNDED(sincos_approx((double)a[i], cosine), !__builtin_isless(fabsf(a[i]), 0x1p20f),
                    cosine ? cosl((long double)a[i]) : sinl((long double)a[i]));
            break;
        }
        case R_LG2: /* zero, negative, infinite and NaN operands are the exact path's too */
            ROUNDED(log2_approx((double)a[i]), !positive(a[i]), log2l((long double)a[i]));
            break;
        case R_RSQRT: ROUNDED(rsqrt_approx(a[i]), !positive(a[i]), 1.0 / sqrt((double)a[i])); break;
        /* rcp and sqrt: float's own operations, the same bits as double's rounded to float (53 >= 2 * 24 + 2
           bits: the double rounding is innocuous for a quotient and a root, Figueroa 1995), in half the work */
        case R_RCP: for (i = 0; i < len; i++) d[i] = 1.0f / a[i]; break;
        case R_SQRT: for (i = 0; i < len; i++) d[i] = sqrtf(a[i]); break;
        case R_EQ: for (i = 0; i < len; i++) p[i] = a[i] == b[i]; break;
        case R_LT: for (i = 0; i < len; i++) p[i] = a[i] < b[i]; break;
        case R_LE: for (i = 0; i < len; i++) p[i] = a[i] <= b[i]; break;
        case R_GT: for (i = 0; i < len; i++) p[i] = a[i] > b[i]; break;
        case R_GE: for (i = 0; i < len; i++) p[i] = a[i] >= b[i]; break;
        case R_SELP: {
            const unsigned char *q = (const unsigned char *)pc;
            for (i = 0; i < len; i++) d[i] = q[i] ? a[i] : b[i];
            break;
        }
        default: break; /* unreachable: checked before */
        }
        if (fz)
            flushed(d, d, len);
    }
}

static PyObject *run_f32(PyObject *self, PyObject *const *objs, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 4 || !PyTuple_Check(objs[1])) {
        PyErr_SetString(PyExc_TypeError, "takes code, slots (a tuple), n, scratch");
        return NULL;
    }
    Py_ssize_t n = PyLong_AsSsize_t(objs[2]), scratch = PyLong_AsSsize_t(objs[3]);
    if ((n == -1 || scratch == -1) && PyErr_Occurred())
        return NULL;
    Py_ssize_t given = PyTuple_GET_SIZE(objs[1]), total = given + scratch;
    if (n < 1 || scratch < 0 || total > MAX_SLOTS) {
        PyErr_SetString(PyExc_ValueError, "bad lane or slot count");
        return NULL;
    }
    Py_buffer code;
    if (PyObject_GetBuffer(objs[0], &code, PyBUF_C_CONTIGUOUS) < 0)
        return NULL;
    Py_ssize_t count = code.len / (5 * (Py_ssize_t)sizeof(int32_t));
    const int32_t *ins = (const int32_t *)code.buf;
    Py_buffer *views = PyMem_Calloc((size_t)(given ? given : 1), sizeof(Py_buffer));
    Slot *slots = PyMem_Calloc((size_t)(total ? total : 1), sizeof(Slot));
    char *written = PyMem_Calloc((size_t)(total ? total : 1), 1);
    char *pool = NULL;
    Py_ssize_t held = 0;
    PyObject *result = NULL;
    if (!views || !slots || !written) {
        PyErr_NoMemory();
        goto done;
    }
    if (code.len % (5 * (Py_ssize_t)sizeof(int32_t))) {
        PyErr_SetString(PyExc_ValueError, "code is not whole records");
        goto done;
    }
    /* the roles: element sizes and which slots are written */
    for (Py_ssize_t k = 0; k < count; k++) {
        const int32_t *r = ins + 5 * k;
        int op = r[0] & R_OP;
        if (r[0] & ~(R_OP | R_FTZ_D | R_FTZ_A | R_FTZ_B | R_FTZ_C) || op >= R_OPS) {
            PyErr_Format(PyExc_ValueError, "record %zd: unknown op %d", k, (int)r[0]);
            goto done;
        }
        for (int j = 0; j < 4; j++) {
            if (!SIZES[op][j])
                continue;
            if (r[1 + j] < 0 || r[1 + j] >= total) {
                PyErr_Format(PyExc_ValueError, "record %zd: slot %d out of range", k, (int)r[1 + j]);
                goto done;
            }
            /* a scratch slot holds uninitialized heap (or the last chunk's) bytes until a record writes it */
            if (j && r[1 + j] >= given && !written[r[1 + j]]) {
                PyErr_Format(PyExc_ValueError, "record %zd: scratch slot %d read before written", k, (int)r[1 + j]);
                goto done;
            }
            Slot *s = &slots[r[1 + j]];
            if (s->size && s->size != SIZES[op][j]) {
                PyErr_Format(PyExc_ValueError, "record %zd: slot %d used at two element sizes", k, (int)r[1 + j]);
                goto done;
            }
            s->size = SIZES[op][j];
        }
        written[r[1]] = 1;
    }
    Py_ssize_t pooled = 0; /* chunk buffers: scratch slots and broadcast uniform ones */
    for (Py_ssize_t i = 0; i < given; i++) {
        int flags = written[i] ? (PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) : PyBUF_C_CONTIGUOUS;
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(objs[1], i), &views[i], flags) < 0)
            goto done;
        held = i + 1;
        Py_ssize_t size = slots[i].size ? slots[i].size : views[i].itemsize;
        /* 1 or 4 (an unused slot's too): a uniform one is broadcast into a pool entry of CHUNK * 4 bytes */
        if ((size != 1 && size != 4) || views[i].itemsize != size || views[i].len % size) {
            PyErr_Format(PyExc_ValueError, "slot %zd has %zd-byte elements, not %zd", i, views[i].itemsize, size);
            goto done;
        }
        Py_ssize_t len = views[i].len / size;
        if (len != n && (len != 1 || written[i])) {
            PyErr_Format(PyExc_ValueError, "slot %zd has %zd elements for %zd lanes", i, len, n);
            goto done;
        }
        slots[i].size = size;
        if (len == n) {
            slots[i].base = views[i].buf;
            slots[i].step = size;
        } else {
            pooled++;
        }
    }
    for (Py_ssize_t i = given; i < total; i++) {
        if (!slots[i].size)
            slots[i].size = 4;
        pooled++;
    }
    pool = PyMem_Malloc((size_t)(pooled ? pooled : 1) * CHUNK * 4);
    if (!pool) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t next = 0;
    for (Py_ssize_t i = 0; i < total; i++) {
        if (slots[i].base)
            continue;
        char *buf = pool + next++ * CHUNK * 4;
        if (i < given) { /* a uniform operand, the same in every chunk */
            for (Py_ssize_t j = 0; j < CHUNK; j++)
                memcpy(buf + j * slots[i].size, views[i].buf, (size_t)slots[i].size);
        }
        slots[i].base = buf;
        slots[i].step = 0;
    }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t c0 = 0; c0 < n; c0 += CHUNK)
        run_chunk(ins, count, slots, c0, n - c0 < CHUNK ? n - c0 : CHUNK);
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    for (Py_ssize_t i = 0; i < held; i++)
        PyBuffer_Release(&views[i]);
    PyBuffer_Release(&code);
    PyMem_Free(views);
    PyMem_Free(slots);
    PyMem_Free(written);
    PyMem_Free(pool);
    return result;
}

static PyMethodDef methods[] = {
    {"fma32", (PyCFunction)(void (*)(void))fma32, METH_FASTCALL, "fma32(out, x, y, z): fma.rn.f32 elementwise"},
    {"fma64", (PyCFunction)(void (*)(void))fma64, METH_FASTCALL, "fma64(out, x, y, z): fma.rn.f64 elementwise"},
    {"run_f32", (PyCFunction)(void (*)(void))run_f32, METH_FASTCALL,
     "run_f32(code, slots, n, scratch): a straight line of f32 instructions over n lanes"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_fmafast", NULL, 0, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__fmafast(void) { return PyModule_Create(&module); }
