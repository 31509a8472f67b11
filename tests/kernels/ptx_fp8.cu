// FP8 conversions as cuda_fp8.h compiles them: on compute_90 the cvt instructions for e4m3x2 and e5m2x2
// pairs, on compute_75/80 NVIDIA's own integer emulation of the same rounding (round to nearest even,
// saturating to the largest finite value); and two floats to half2 / bfloat162 (cvt.rn.f16x2.f32 and
// cvt.rn.bf16x2.f32 from compute_80 on, one value at a time or emulated on compute_75). Built by build.sh for compute_75, compute_80 and compute_90;
// tests/ptx/test_fp8.py holds the exact references.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

// pairs of floats to e4m3x2 and e5m2x2 (the codes) and back to floats through f16x2
extern "C" __global__ void fp8_pairs(const float *in, unsigned short *e4, unsigned short *e5, float *back4,
                                     float *back5, unsigned n) {
    unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n)
        return;
    float2 v = make_float2(in[2 * i], in[2 * i + 1]);
    __nv_fp8x2_e4m3 a(v);
    __nv_fp8x2_e5m2 b(v);
    e4[i] = a.__x;
    e5[i] = b.__x;
    float2 fa = float2(a), fb = float2(b);
    back4[2 * i] = fa.x;
    back4[2 * i + 1] = fa.y;
    back5[2 * i] = fb.x;
    back5[2 * i + 1] = fb.y;
}

// pairs of halves to e4m3x2 and e5m2x2
extern "C" __global__ void fp8_from_halves(const __half2 *in, unsigned short *e4, unsigned short *e5, unsigned n) {
    unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n)
        return;
    e4[i] = __nv_fp8x2_e4m3(in[i]).__x;
    e5[i] = __nv_fp8x2_e5m2(in[i]).__x;
}

// pairs of floats to half2 and to bfloat162 (x in the low half)
extern "C" __global__ void half_pairs(const float *in, __half2 *h, __nv_bfloat162 *b, unsigned n) {
    unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n)
        return;
    h[i] = __floats2half2_rn(in[2 * i], in[2 * i + 1]);
    b[i] = __floats2bfloat162_rn(in[2 * i], in[2 * i + 1]);
}

// cuda_fp16.hpp's half2 functions (their inline assembly declares `.reg.b16` registers and tests special
// cases with set.eq.f16x2.f16x2)
extern "C" __global__ void half2_functions(const __half2 *in, __half2 *out, unsigned n) {
    unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n)
        return;
    __half2 v = in[i];
    __half2 *o = out + 6 * i;
    o[0] = h2exp(v);
    o[1] = h2exp2(v);
    o[2] = h2log(__habs2(v));
    o[3] = h2sin(v);
    o[4] = h2cos(v);
    o[5] = h2sqrt(__habs2(v));
}
