// Vector and packed-half atomics (tests/ptx/test_atomic_vec.py): atomicAdd on __half, __half2,
// __nv_bfloat16, __nv_bfloat162 (atom.add.noftz.{f16,f16x2,bf16,bf16x2} on compute_90, NVIDIA's
// atomicCAS loops where bf16 atomics are not native), on global and shared memory; compute_90's
// atomicAdd on float2/float4 (atom/red.global.add.v2/.v4.f32) and, in inline PTX as CUTLASS writes
// it, the 16-bit vector forms with min and max (atom/red.global.{add,min,max}.noftz.v8.f16/.v4.bf16x2).
// Thread i works on slot i % slots; old[i] receives the value it replaced.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#define INDEX int i = blockIdx.x * blockDim.x + threadIdx.x; if (i >= n) return

extern "C" __global__ void half_add(__half* p, const __half* v, int n, int slots, __half* old) {
    INDEX;
    old[i] = atomicAdd(p + i % slots, v[i]);
}

extern "C" __global__ void half2_add(__half2* p, const __half2* v, int n, int slots, __half2* old) {
    INDEX;
    old[i] = atomicAdd(p + i % slots, v[i]);
}

extern "C" __global__ void bf16_add(__nv_bfloat16* p, const __nv_bfloat16* v, int n, int slots,
                                    __nv_bfloat16* old) {
    INDEX;
    old[i] = atomicAdd(p + i % slots, v[i]);
}

extern "C" __global__ void bf162_add(__nv_bfloat162* p, const __nv_bfloat162* v, int n, int slots,
                                     __nv_bfloat162* old) {
    INDEX;
    old[i] = atomicAdd(p + i % slots, v[i]);
}

// each block sums its threads' pairs into 4 shared slots (generic addresses into shared memory)
extern "C" __global__ void half2_shared(const __half2* v, int n, __half2* out, __half2* old) {
    __shared__ __half2 sums[4];
    if (threadIdx.x < 4) sums[threadIdx.x] = __floats2half2_rn(0.0f, 0.0f);
    __syncthreads();
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) old[i] = atomicAdd(&sums[threadIdx.x % 4], v[i]);
    __syncthreads();
    if (threadIdx.x < 4) out[blockIdx.x * 4 + threadIdx.x] = sums[threadIdx.x];
}

extern "C" __global__ void float4_add(float4* p, const float4* v, int n, int slots, float4* old) {
    INDEX;
#if __CUDA_ARCH__ >= 900
    old[i] = atomicAdd(p + i % slots, v[i]);
#else
    float4 b = v[i], *q = p + i % slots;
    old[i] = make_float4(atomicAdd(&q->x, b.x), atomicAdd(&q->y, b.y), atomicAdd(&q->z, b.z),
                         atomicAdd(&q->w, b.w));
#endif
}

extern "C" __global__ void float2_red(float2* p, const float2* v, int n, int slots) {
    INDEX;
#if __CUDA_ARCH__ >= 900
    atomicAdd(p + i % slots, v[i]);
#else
    atomicAdd(&p[i % slots].x, v[i].x);
    atomicAdd(&p[i % slots].y, v[i].y);
#endif
}

#if __CUDA_ARCH__ >= 900
// 8 halves (16 bytes) a thread: atom.global.{op}.noftz.v8.f16
#define H8(OP)                                                                                        \
    extern "C" __global__ void half8_##OP(uint4* p, const uint4* v, int n, int slots, uint4* old) {   \
        INDEX;                                                                                        \
        const unsigned short* b = reinterpret_cast<const unsigned short*>(v + i);                     \
        unsigned short d[8];                                                                          \
        asm volatile("atom.global." #OP ".noftz.v8.f16 {%0,%1,%2,%3,%4,%5,%6,%7}, [%8],"             \
                     " {%9,%10,%11,%12,%13,%14,%15,%16};"                                             \
                     : "=h"(d[0]), "=h"(d[1]), "=h"(d[2]), "=h"(d[3]), "=h"(d[4]), "=h"(d[5]),        \
                       "=h"(d[6]), "=h"(d[7])                                                         \
                     : "l"(p + i % slots), "h"(b[0]), "h"(b[1]), "h"(b[2]), "h"(b[3]), "h"(b[4]),     \
                       "h"(b[5]), "h"(b[6]), "h"(b[7])                                                \
                     : "memory");                                                                     \
        unsigned short* o = reinterpret_cast<unsigned short*>(old + i);                               \
        for (int k = 0; k < 8; ++k) o[k] = d[k];                                                      \
    }
H8(add)
H8(min)
H8(max)

// four bf16 pairs (16 bytes) a thread: atom.global.{op}.noftz.v4.bf16x2
#define B4(OP)                                                                                        \
    extern "C" __global__ void bf16x2x4_##OP(uint4* p, const uint4* v, int n, int slots, uint4* old) { \
        INDEX;                                                                                        \
        uint4 b = v[i], d;                                                                            \
        asm volatile("atom.global." #OP ".noftz.v4.bf16x2 {%0,%1,%2,%3}, [%4], {%5,%6,%7,%8};"        \
                     : "=r"(d.x), "=r"(d.y), "=r"(d.z), "=r"(d.w)                                     \
                     : "l"(p + i % slots), "r"(b.x), "r"(b.y), "r"(b.z), "r"(b.w)                     \
                     : "memory");                                                                     \
        old[i] = d;                                                                                   \
    }
B4(add)
B4(min)
B4(max)

// red.global.add.noftz.v4.bf16 and .v2.f16x2: no result
extern "C" __global__ void reductions(uint2* p, const uint2* v, uint2* q, const uint2* w, int n, int slots) {
    INDEX;
    const unsigned short* b = reinterpret_cast<const unsigned short*>(v + i);
    asm volatile("red.global.add.noftz.v4.bf16 [%0], {%1,%2,%3,%4};"
                 :: "l"(p + i % slots), "h"(b[0]), "h"(b[1]), "h"(b[2]), "h"(b[3]) : "memory");
    asm volatile("red.global.add.noftz.v2.f16x2 [%0], {%1,%2};"
                 :: "l"(q + i % slots), "r"(w[i].x), "r"(w[i].y) : "memory");
}
#endif
