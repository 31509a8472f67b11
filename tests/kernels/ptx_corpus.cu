// Kernels that exercise what nvcc 13 emits, for the PTX engine's tests (tests/ptx): every kernel
// writes what each thread computed to `out`, and the tests compare it with an exact NumPy reference
// (bitwise for integers, within the ISA's documented error for approximations). extern "C" keeps the
// names short. Built for compute_75, compute_80 and compute_90 by build.sh (ptx_corpus.*.ptx).
//
// Layout convention: a kernel with K results per element writes result k of element i at
// out[k * n + i]; elements are i = blockIdx.x * blockDim.x + threadIdx.x, guarded by i < n.

#include <cstdint>

#define ELEMENT() \
    int i = blockIdx.x * blockDim.x + threadIdx.x; \
    if (i >= n) return;

// 32-bit integer arithmetic, signed and unsigned
extern "C" __global__ void int32_ops(const int* a, const int* b, int* out, int n) {
    ELEMENT();
    int x = a[i], y = b[i];
    unsigned ux = (unsigned)x, uy = (unsigned)y;
    int k = 0;
    out[k++ * n + i] = x + y;
    out[k++ * n + i] = x - y;
    out[k++ * n + i] = x * y;
    out[k++ * n + i] = __mulhi(x, y);
    out[k++ * n + i] = (int)__umulhi(ux, uy);
    out[k++ * n + i] = y != 0 ? x / y : 0;
    out[k++ * n + i] = y != 0 ? x % y : 0;
    out[k++ * n + i] = uy != 0 ? (int)(ux / uy) : 0;
    out[k++ * n + i] = uy != 0 ? (int)(ux % uy) : 0;
    out[k++ * n + i] = min(x, y);
    out[k++ * n + i] = max(x, y);
    out[k++ * n + i] = (int)min(ux, uy);
    out[k++ * n + i] = (int)max(ux, uy);
    out[k++ * n + i] = abs(x);
    out[k++ * n + i] = -x;
    out[k++ * n + i] = x & y;
    out[k++ * n + i] = x | y;
    out[k++ * n + i] = x ^ y;
    out[k++ * n + i] = ~x;
    out[k++ * n + i] = x << (y & 31);
    out[k++ * n + i] = x >> (y & 31);
    out[k++ * n + i] = (int)(ux >> (uy & 31));
    out[k++ * n + i] = __popc(ux);
    out[k++ * n + i] = __clz(x);
    out[k++ * n + i] = (int)__brev(ux);
    out[k++ * n + i] = (int)__byte_perm(ux, uy, uy & 0xffff);
    out[k++ * n + i] = __ffs(x);
    out[k++ * n + i] = __sad(x, y, 7);
    out[k++ * n + i] = x * 7 + y;
    out[k++ * n + i] = __hadd(x, y);
    unsigned bfe_u, bfi_r;
    int bfe_s;
    asm("bfe.u32 %0, %1, %2, %3;" : "=r"(bfe_u) : "r"(ux), "r"(uy & 0xff), "r"((uy >> 8) & 0xff));
    asm("bfe.s32 %0, %1, %2, %3;" : "=r"(bfe_s) : "r"(x), "r"(uy & 0xff), "r"((uy >> 8) & 0xff));
    asm("bfi.b32 %0, %1, %2, %3, %4;" : "=r"(bfi_r) : "r"(ux), "r"(uy), "r"((ux >> 16) & 0xff), "r"((ux >> 24) & 0xff));
    out[k++ * n + i] = (int)bfe_u;
    out[k++ * n + i] = bfe_s;
    out[k++ * n + i] = (int)bfi_r;
}

// 64-bit and 16-bit integer arithmetic
extern "C" __global__ void int64_ops(const long long* a, const long long* b, long long* out, int n) {
    ELEMENT();
    long long x = a[i], y = b[i];
    unsigned long long ux = (unsigned long long)x, uy = (unsigned long long)y;
    short sx = (short)x, sy = (short)y;
    int k = 0;
    out[k++ * n + i] = x + y;
    out[k++ * n + i] = x - y;
    out[k++ * n + i] = x * y;
    out[k++ * n + i] = __mul64hi(x, y);
    out[k++ * n + i] = (long long)__umul64hi(ux, uy);
    out[k++ * n + i] = y != 0 ? x / y : 0;
    out[k++ * n + i] = y != 0 ? x % y : 0;
    out[k++ * n + i] = uy != 0 ? (long long)(ux / uy) : 0;
    out[k++ * n + i] = uy != 0 ? (long long)(ux % uy) : 0;
    out[k++ * n + i] = min(x, y);
    out[k++ * n + i] = max(ux, uy);
    out[k++ * n + i] = x << (y & 63);
    out[k++ * n + i] = x >> (y & 63);
    out[k++ * n + i] = (long long)(ux >> (uy & 63));
    out[k++ * n + i] = __popcll(ux);
    out[k++ * n + i] = __clzll(x);
    out[k++ * n + i] = (long long)__brevll(ux);
    out[k++ * n + i] = (long long)(int)x * (long long)(int)y;          // mul.wide.s32
    out[k++ * n + i] = (long long)((unsigned long long)(unsigned)x * (unsigned)y);  // mul.wide.u32
    out[k++ * n + i] = (short)(sx * sy + sx);
    out[k++ * n + i] = (unsigned short)sx / (unsigned short)(sy | 1);
    out[k++ * n + i] = (long long)(int)x;   // cvt.s64.s32 of the low half
    out[k++ * n + i] = (long long)(unsigned char)x + (long long)(signed char)y;
}

// float32 arithmetic, IEEE rounding modes, approximations
extern "C" __global__ void f32_ops(const float* a, const float* b, const float* c, float* out, int n) {
    ELEMENT();
    float x = a[i], y = b[i], z = c[i];
    int k = 0;
    out[k++ * n + i] = x + y;
    out[k++ * n + i] = x - y;
    out[k++ * n + i] = x * y;
    out[k++ * n + i] = x / y;
    out[k++ * n + i] = fmaf(x, y, z);
    out[k++ * n + i] = __fadd_rz(x, y);
    out[k++ * n + i] = __fadd_rd(x, y);
    out[k++ * n + i] = __fadd_ru(x, y);
    out[k++ * n + i] = __fmul_rz(x, y);
    out[k++ * n + i] = __fmul_rd(x, y);
    out[k++ * n + i] = __fmul_ru(x, y);
    out[k++ * n + i] = __fmaf_rz(x, y, z);
    out[k++ * n + i] = __fmaf_rd(x, y, z);
    out[k++ * n + i] = __fmaf_ru(x, y, z);
    out[k++ * n + i] = __fdiv_rz(x, y);
    out[k++ * n + i] = __fdiv_rd(x, y);
    out[k++ * n + i] = __fdiv_ru(x, y);
    out[k++ * n + i] = fminf(x, y);
    out[k++ * n + i] = fmaxf(x, y);
    out[k++ * n + i] = fabsf(x);
    out[k++ * n + i] = -x;
    out[k++ * n + i] = copysignf(x, y);
    out[k++ * n + i] = sqrtf(fabsf(x));
    out[k++ * n + i] = __frcp_rn(y);
    out[k++ * n + i] = __saturatef(x);
    out[k++ * n + i] = (x < y) ? z : x;
    out[k++ * n + i] = floorf(x);
    out[k++ * n + i] = ceilf(x);
    out[k++ * n + i] = truncf(x);
    out[k++ * n + i] = rintf(x);
}

// approximate special functions (compared within the ISA's documented error)
extern "C" __global__ void f32_approx(const float* a, float* out, int n) {
    ELEMENT();
    float x = a[i];
    float t;
    asm("tanh.approx.f32 %0, %1;" : "=f"(t) : "f"(x));
    int k = 0;
    out[k++ * n + i] = exp2f(x);       // ex2.approx.ftz.f32 (with the libdevice wrapper)
    out[k++ * n + i] = __expf(x);
    out[k++ * n + i] = __log2f(fabsf(x) + 1.0f);
    out[k++ * n + i] = __sinf(x);
    out[k++ * n + i] = __cosf(x);
    out[k++ * n + i] = rsqrtf(fabsf(x) + 1.0f);
    out[k++ * n + i] = __frcp_rn(x + 3.0f);
    out[k++ * n + i] = t;
    out[k++ * n + i] = expf(x);
    out[k++ * n + i] = tanhf(x);
    out[k++ * n + i] = __fdividef(x, 3.0f);
}

// float64 arithmetic and conversions between widths
extern "C" __global__ void f64_ops(const double* a, const double* b, const double* c, double* out,
                                   float* out32, int n) {
    ELEMENT();
    double x = a[i], y = b[i], z = c[i];
    int k = 0;
    out[k++ * n + i] = x + y;
    out[k++ * n + i] = x - y;
    out[k++ * n + i] = x * y;
    out[k++ * n + i] = x / y;
    out[k++ * n + i] = fma(x, y, z);
    out[k++ * n + i] = sqrt(fabs(x));
    out[k++ * n + i] = fmin(x, y);
    out[k++ * n + i] = fmax(x, y);
    out[k++ * n + i] = -fabs(x);
    out[k++ * n + i] = __dadd_rz(x, y);
    out[k++ * n + i] = __dmul_ru(x, y);
    int j = 0;
    out32[j++ * n + i] = (float)x;
    out32[j++ * n + i] = __double2float_rz(x);
    out32[j++ * n + i] = __double2float_rd(x);
    out32[j++ * n + i] = __double2float_ru(x);
    out32[j++ * n + i] = (float)(x * y);
}

// conversions between integers and floats, with every rounding mode
extern "C" __global__ void conversions(const float* a, const int* b, const long long* c, int* out_i,
                                       float* out_f, long long* out_l, int n) {
    ELEMENT();
    float x = a[i];
    int y = b[i];
    long long z = c[i];
    int k = 0;
    out_i[k++ * n + i] = __float2int_rn(x);
    out_i[k++ * n + i] = __float2int_rz(x);
    out_i[k++ * n + i] = __float2int_rd(x);
    out_i[k++ * n + i] = __float2int_ru(x);
    out_i[k++ * n + i] = (int)__float2uint_rn(x);
    out_i[k++ * n + i] = (int)(unsigned short)__float2uint_rz(x);
    out_i[k++ * n + i] = (signed char)y;
    out_i[k++ * n + i] = (unsigned short)y;
    int m = 0;
    out_f[m++ * n + i] = (float)y;
    out_f[m++ * n + i] = __int2float_rz(y);
    out_f[m++ * n + i] = __int2float_rd(y);
    out_f[m++ * n + i] = __int2float_ru(y);
    out_f[m++ * n + i] = __uint2float_rn((unsigned)y);
    out_f[m++ * n + i] = (float)z;
    out_f[m++ * n + i] = (float)(double)z;
    int l = 0;
    out_l[l++ * n + i] = __float2ll_rn(x);
    out_l[l++ * n + i] = __float2ll_rz(x * 1e10f);
    out_l[l++ * n + i] = (long long)__float2ull_rd(x);
    out_l[l++ * n + i] = __double2ll_rn((double)x * 3.0e9);
}

// comparisons and predicate logic (NaN-aware for floats); results as 0/1
extern "C" __global__ void compares(const int* a, const int* b, const float* fa, const float* fb, int* out, int n) {
    ELEMENT();
    int x = a[i], y = b[i];
    unsigned ux = (unsigned)x, uy = (unsigned)y;
    float p = fa[i], q = fb[i];
    int k = 0;
    out[k++ * n + i] = x == y;
    out[k++ * n + i] = x != y;
    out[k++ * n + i] = x < y;
    out[k++ * n + i] = x <= y;
    out[k++ * n + i] = x > y;
    out[k++ * n + i] = x >= y;
    out[k++ * n + i] = ux < uy;
    out[k++ * n + i] = ux <= uy;
    out[k++ * n + i] = ux > uy;
    out[k++ * n + i] = ux >= uy;
    out[k++ * n + i] = p == q;
    out[k++ * n + i] = p != q;
    out[k++ * n + i] = p < q;
    out[k++ * n + i] = p <= q;
    out[k++ * n + i] = p > q;
    out[k++ * n + i] = p >= q;
    out[k++ * n + i] = !(p < q);
    out[k++ * n + i] = !(p >= q);
    out[k++ * n + i] = p != p;
    out[k++ * n + i] = (x < y) && (p < q);
    out[k++ * n + i] = (x < y) || (p < q);
    out[k++ * n + i] = (x < y) != (p < q);
    out[k++ * n + i] = (x < y) ? x : y * 3;
}

// control flow: nested divergence, data-dependent loops, early exit, a non-inlined call
__device__ __noinline__ int collatz_steps(int v, int limit) {
    int steps = 0;
    while (v > 1 && steps < limit) {
        v = (v & 1) ? 3 * v + 1 : v / 2;
        steps++;
    }
    return steps;
}

extern "C" __global__ void control_flow(const int* a, int* out, int n) {
    ELEMENT();
    int x = a[i];
    int r;
    if (x % 3 == 0) {
        r = 100;
        for (int j = 0; j < (x & 7); j++) {
            if (j == 5) break;
            r += j * j;
        }
    } else if (x % 3 == 1) {
        r = -x;
        while (r < 0) r += 7;
    } else {
        switch (x & 3) {
            case 0: r = 1; break;
            case 1: r = 11; break;
            case 2: r = 111; break;
            default: r = 1111;
        }
    }
    out[i] = r;
    out[n + i] = collatz_steps(x & 1023, 200);
}

// recursion: a .func that calls itself, with work after the call (so it stays a recursion)
__device__ __noinline__ int walk(const int* table, int v) {
    if (v <= 0) return table[0];
    int here = table[v & 7];
    return (walk(table, v - 1) ^ here) + v;
}

extern "C" __global__ void recursion(const int* a, const int* table, int* out, int n) {
    ELEMENT();
    out[i] = walk(table, a[i]);
}

// vector loads and stores, local memory with a run-time index, dynamic shared memory
extern "C" __global__ void vectors(const float4* in4, const double2* in2, float4* out4, double2* out2,
                                   int* out_local, int n) {
    ELEMENT();
    float4 v = in4[i];
    out4[i] = make_float4(v.w, v.z + 1.0f, v.y, v.x);
    double2 d = in2[i];
    out2[i] = make_double2(d.y, d.x * 2.0);
    int local[16];
    for (int j = 0; j < 16; j++) local[j] = i * j;
    out_local[i] = local[(i * 7) & 15] + local[i & 15];
}

extern "C" __global__ void dynamic_shared_reverse(const float* in, float* out, int n) {
    extern __shared__ float tile[];
    int t = threadIdx.x;
    int i = blockIdx.x * blockDim.x + t;
    tile[t] = i < n ? in[i] : 0.0f;
    __syncthreads();
    if (i < n) out[i] = tile[blockDim.x - 1 - t];
}

// an early return before a barrier (the returning threads count as arrived), 2-D blocks
extern "C" __global__ void early_exit_barrier(const float* in, float* out, int width, int height) {
    __shared__ float row_sum[32];
    int x = threadIdx.x, y = threadIdx.y;
    if (y >= height) return;
    if (x == 0) row_sum[y] = 0.0f;
    __syncthreads();
    if (x < width) atomicAdd(&row_sum[y], in[y * width + x]);
    __syncthreads();
    if (x == 0) out[y] = row_sum[y];
}

// warp-level primitives
extern "C" __global__ void warp_ops(const int* in, int* out, int n) {
    ELEMENT();
    int v = in[i];
    unsigned full = 0xffffffffu;
    int k = 0;
    out[k++ * n + i] = __shfl_sync(full, v, (threadIdx.x * 7) & 31);
    out[k++ * n + i] = __shfl_up_sync(full, v, 3);
    out[k++ * n + i] = __shfl_down_sync(full, v, 5);
    out[k++ * n + i] = __shfl_xor_sync(full, v, 6);
    out[k++ * n + i] = __shfl_sync(full, v, 2, 8);
    out[k++ * n + i] = __shfl_up_sync(full, v, 1, 16);
    out[k++ * n + i] = __shfl_down_sync(full, v, 2, 4);
    out[k++ * n + i] = (int)__ballot_sync(full, v & 1);
    out[k++ * n + i] = __any_sync(full, v > 1000);
    out[k++ * n + i] = __all_sync(full, v > -1000);
    int lane, warp;
    asm("mov.u32 %0, %%laneid;" : "=r"(lane));
    asm("mov.u32 %0, %%warpid;" : "=r"(warp));
    out[k++ * n + i] = lane;
    out[k++ * n + i] = warp;
    int sum = v;
    for (int off = 16; off > 0; off >>= 1) sum += __shfl_xor_sync(full, sum, off);
    out[k++ * n + i] = sum;
    out[k++ * n + i] = (v & 1) ? (int)__activemask() : -1;
}

// atomics on global and shared memory
extern "C" __global__ void atomics(const int* in, int* gint, unsigned* guint, float* gfloat,
                                   unsigned long long* g64, int* old_out, int n) {
    __shared__ int hist[8];
    int t = threadIdx.x;
    int i = blockIdx.x * blockDim.x + t;
    if (t < 8) hist[t] = 0;
    __syncthreads();
    if (i < n) {
        int v = in[i];
        old_out[i] = atomicAdd(&gint[0], v);
        atomicMin(&gint[1], v);
        atomicMax(&gint[2], v);
        atomicAnd(&gint[3], v | 0x10000);
        atomicOr(&gint[4], v & 0xff);
        atomicXor(&gint[5], v);
        atomicExch(&gint[6], v);
        atomicCAS(&gint[7], 0, v);
        atomicInc(&guint[0], 17u);
        atomicDec(&guint[1], 13u);
        atomicMin(&guint[2], (unsigned)v);
        atomicMax(&guint[3], (unsigned)v);
        atomicAdd(&gfloat[0], (float)(v & 15) * 0.25f);
        atomicAdd(&g64[0], (unsigned long long)(v & 0xffff));
        atomicAdd(&hist[v & 7], 1);
    }
    __syncthreads();
    if (t < 8) atomicAdd(&gint[8 + t], hist[t]);
}

// thread and block geometry, 3-D
extern "C" __global__ void geometry(int* out) {
    int t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    int b = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    int i = b * (blockDim.x * blockDim.y * blockDim.z) + t;
    int* o = out + 8 * i;
    o[0] = threadIdx.x; o[1] = threadIdx.y; o[2] = threadIdx.z;
    o[3] = blockIdx.x; o[4] = blockIdx.y; o[5] = blockIdx.z;
    o[6] = blockDim.x * 100 + blockDim.y * 10 + blockDim.z;
    o[7] = gridDim.x * 100 + gridDim.y * 10 + gridDim.z;
}

// faults and bounds: a trap, an endless loop, a store through a computed pointer
extern "C" __global__ void trapper(int* out, int when) {
    if (threadIdx.x == when) asm volatile("trap;");
    out[threadIdx.x] = 1;
}

extern "C" __global__ void spin(volatile int* flag) {
    while (flag[0] == 0) { }
}

extern "C" __global__ void store_at(int* base, long long offset) {
    base[offset + threadIdx.x] = 7;
}

// the sm_70 quad-pair tensor-core shape m8n8k4 with f16 inputs (once the engine's pinned
// "unsupported instruction"; tests/kernels/ptx_sync.cu covers it now, and mma.sp is that case)
extern "C" __global__ void uses_mma(const unsigned* a, const unsigned* b, float* d) {
    unsigned a0 = a[0], a1 = a[1], b0 = b[0], b1 = b[0];
    float c0 = 0.f, c1 = 0.f, c2 = 0.f, c3 = 0.f, c4 = 0.f, c5 = 0.f, c6 = 0.f, c7 = 0.f;
    asm volatile("mma.sync.aligned.m8n8k4.row.col.f32.f16.f16.f32 {%0,%1,%2,%3,%4,%5,%6,%7}, {%8,%9}, {%10,%11}, "
                 "{%0,%1,%2,%3,%4,%5,%6,%7};"
                 : "+f"(c0), "+f"(c1), "+f"(c2), "+f"(c3), "+f"(c4), "+f"(c5), "+f"(c6), "+f"(c7)
                 : "r"(a0), "r"(a1), "r"(b0), "r"(b1));
    d[threadIdx.x * 4 + 0] = c0;
    d[threadIdx.x * 4 + 1] = c1;
    d[threadIdx.x * 4 + 2] = c2;
    d[threadIdx.x * 4 + 3] = c3 + c4 + c5 + c6 + c7;
}

// more integer instructions: funnel shifts, dot products, three-input logic, a byte permute with
// sign replication, 24-bit multiplies, the read-only data cache
extern "C" __global__ void more_int_ops(const unsigned* a, const unsigned* b, const unsigned* c, unsigned* out, int n) {
    ELEMENT();
    unsigned x = __ldg(&a[i]), y = b[i], z = c[i];
    unsigned r;
    int k = 0;
    out[k++ * n + i] = __funnelshift_l(x, y, z);
    out[k++ * n + i] = __funnelshift_r(x, y, z);
    out[k++ * n + i] = __funnelshift_lc(x, y, z);
    out[k++ * n + i] = __funnelshift_rc(x, y, z);
    out[k++ * n + i] = (unsigned)__dp4a((int)x, (int)y, (int)z);
    out[k++ * n + i] = __dp4a(x, y, z);
    out[k++ * n + i] = (unsigned)__dp2a_lo((int)x, (int)y, (int)z);
    out[k++ * n + i] = __dp2a_hi(x, y, z);
    asm("lop3.b32 %0, %1, %2, %3, 0xE8;" : "=r"(r) : "r"(x), "r"(y), "r"(z));  // majority
    out[k++ * n + i] = r;
    asm("lop3.b32 %0, %1, %2, %3, 0x96;" : "=r"(r) : "r"(x), "r"(y), "r"(z));  // a ^ b ^ c
    out[k++ * n + i] = r;
    asm("prmt.b32 %0, %1, %2, %3;" : "=r"(r) : "r"(x), "r"(y), "r"(z));       // selector with sign bits
    out[k++ * n + i] = r;
    out[k++ * n + i] = (unsigned)__mul24((int)x, (int)y);
    out[k++ * n + i] = __umul24(x, y);
    out[k++ * n + i] = __umulhi(x, y) + __usad(x, y, z);
}

// half and bfloat16 conversions
#include <cuda_fp16.h>
#include <cuda_bf16.h>
extern "C" __global__ void half_conversions(const float* a, const unsigned short* h, float* out, unsigned short* out_h,
                                            int n) {
    ELEMENT();
    float x = a[i];
    __half hx = __ushort_as_half(h[i]);
    __nv_bfloat16 bx = __ushort_as_bfloat16(h[i]);
    int k = 0;
    out_h[k++ * n + i] = __half_as_ushort(__float2half_rn(x));
    out_h[k++ * n + i] = __half_as_ushort(__float2half_rz(x));
    out_h[k++ * n + i] = __half_as_ushort(__float2half_rd(x));
    out_h[k++ * n + i] = __half_as_ushort(__float2half_ru(x));
    out_h[k++ * n + i] = __bfloat16_as_ushort(__float2bfloat16_rn(x));
    out_h[k++ * n + i] = __bfloat16_as_ushort(__float2bfloat16_rz(x));
    out_h[k++ * n + i] = __half_as_ushort(__double2half((double)x * 1.0000001));
    int m = 0;
    out[m++ * n + i] = __half2float(hx);
    out[m++ * n + i] = __bfloat162float(bx);
    out[m++ * n + i] = (float)__half2int_rz(hx);
}

// more atomics: reductions without a result, every operation on shared memory, 64-bit and f64
extern "C" __global__ void more_atomics(const int* in, int* g, unsigned long long* g64, double* gd, int* out, int n) {
    __shared__ int s[9];
    __shared__ unsigned su[2];
    int t = threadIdx.x;
    int i = blockIdx.x * blockDim.x + t;
    if (t == 0) {
        s[0] = 0; s[1] = 1 << 30; s[2] = -(1 << 30); s[3] = -1; s[4] = 0; s[5] = 0; s[6] = 0; s[7] = 0; s[8] = 0;
        su[0] = 0; su[1] = 50;
    }
    __syncthreads();
    if (i < n) {
        int v = in[i];
        atomicAdd(&g[0], v);                      // red.global.add
        atomicMax(&g[1], v);                      // red.global.max
        atomicAdd(&s[0], v);
        atomicMin(&s[1], v);
        atomicMax(&s[2], v);
        atomicAnd(&s[3], ~(1 << (v & 31)));
        atomicOr(&s[4], 1 << (v & 31));
        atomicXor(&s[5], v);
        atomicExch(&s[6], v);
        atomicCAS(&s[7], 0, v + 1);
        atomicInc(&su[0], 9u);
        atomicDec(&su[1], 60u);
        out[i] = atomicAdd(&s[8], 1);
        atomicCAS(&g64[0], 0ull, (unsigned long long)(v + 5));
        atomicExch(&g64[1], (unsigned long long)v);
        atomicAdd(&gd[0], (double)v * 0.5);
    }
    __syncthreads();
    if (t < 8) atomicAdd(&g[2 + t], s[t]);
    if (t == 8) { atomicAdd(&g[10], (int)su[0]); atomicAdd(&g[11], (int)su[1]); }
}

// block and warp collectives: barrier reductions, match, and (sm_80+) redux
extern "C" __global__ void collectives(const int* in, int* out, int n) {
    ELEMENT();
    int v = in[i];
    unsigned full = 0xffffffffu;
    int k = 0;
    out[k++ * n + i] = __syncthreads_count(v & 1);
    out[k++ * n + i] = __syncthreads_and(v > -1500);
    out[k++ * n + i] = __syncthreads_or(v > 1500);
    out[k++ * n + i] = (int)__match_any_sync(full, v & 7);
    int pred = 0;
    out[k++ * n + i] = (int)__match_all_sync(full, v >> 20, &pred);
    out[k++ * n + i] = pred;
#if __CUDA_ARCH__ >= 800
    out[k++ * n + i] = __reduce_add_sync(full, v);
    out[k++ * n + i] = __reduce_min_sync(full, v);
    out[k++ * n + i] = __reduce_max_sync(full, v);
    out[k++ * n + i] = (int)__reduce_and_sync(full, (unsigned)v);
    out[k++ * n + i] = (int)__reduce_or_sync(full, (unsigned)v);
    out[k++ * n + i] = (int)__reduce_xor_sync(full, (unsigned)v);
    out[k++ * n + i] = (int)__reduce_min_sync(full, (unsigned)v);
#endif
}

// half-precision arithmetic, scalar and packed pairs (results as bits)
extern "C" __global__ void half_arith(const unsigned short* a, const unsigned short* b, const unsigned short* c,
                                      unsigned short* out, int n) {
    ELEMENT();
    __half x = __ushort_as_half(a[i]), y = __ushort_as_half(b[i]), z = __ushort_as_half(c[i]);
    __half2 xy = __halves2half2(x, y), yz = __halves2half2(y, z), zx = __halves2half2(z, x);
    int k = 0;
    out[k++ * n + i] = __half_as_ushort(__hadd(x, y));
    out[k++ * n + i] = __half_as_ushort(__hsub(x, y));
    out[k++ * n + i] = __half_as_ushort(__hmul(x, y));
    out[k++ * n + i] = __half_as_ushort(__hfma(x, y, z));
    out[k++ * n + i] = __half_as_ushort(__hneg(x));
    out[k++ * n + i] = __half_as_ushort(__habs(x));
    out[k++ * n + i] = __half_as_ushort(__hmin(x, y));
    out[k++ * n + i] = __half_as_ushort(__hmax(x, y));
    __half2 s = __hadd2(xy, yz), p = __hmul2(xy, zx), f = __hfma2(xy, yz, zx);
    out[k++ * n + i] = __half_as_ushort(__low2half(s));
    out[k++ * n + i] = __half_as_ushort(__high2half(s));
    out[k++ * n + i] = __half_as_ushort(__low2half(p));
    out[k++ * n + i] = __half_as_ushort(__high2half(p));
    out[k++ * n + i] = __half_as_ushort(__low2half(f));
    out[k++ * n + i] = __half_as_ushort(__high2half(f));
    out[k++ * n + i] = __hlt(x, y) ? 1 : 0;
    out[k++ * n + i] = __hge(x, y) ? 1 : 0;
}

// asynchronous copies to shared memory (sm_80+; executed synchronously by the engine), with a
// partial last chunk: its source bytes past `valid_bytes` are not read and land as zeros
extern "C" __global__ void async_copy(const float4* in, float4* out, int valid_bytes) {
    __shared__ float4 tile[64];
    int t = threadIdx.x;
    int bytes = t == 63 ? valid_bytes : 16;
#if __CUDA_ARCH__ >= 800
    unsigned dst = (unsigned)__cvta_generic_to_shared(&tile[t]);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(dst), "l"(in + t), "r"(bytes));
    asm volatile("cp.async.commit_group;");
    asm volatile("cp.async.wait_group 0;");
#else
    const char* src = reinterpret_cast<const char*>(in + t);
    char* to = reinterpret_cast<char*>(&tile[t]);
    for (int b = 0; b < 16; b++) to[b] = b < bytes ? src[b] : 0;
#endif
    __syncthreads();
    out[t] = tile[63 - t];
}

// tensor cores: each warp's mma.sync, every lane's fragment registers given raw (thread t's at
// t * count), so the tests place matrix elements by the PTX ISA's fragment layouts; sm_75 has only
// m16n8k8 with f16 inputs, the others need sm_80
#define MMA_LOAD(T, P, N) T P##_[N]; for (int r = 0; r < N; r++) P##_[r] = P[threadIdx.x * N + r]
#define MMA_STORE(P, N) for (int r = 0; r < N; r++) P[threadIdx.x * N + r] = P##_[r]

extern "C" __global__ void mma_f16_k8_f32(const unsigned* a, const unsigned* b, const float* c, float* d) {
    MMA_LOAD(unsigned, a, 2); MMA_LOAD(unsigned, b, 1); MMA_LOAD(float, c, 4); float d_[4];
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%7,%8,%9,%10};"
                 : "=f"(d_[0]), "=f"(d_[1]), "=f"(d_[2]), "=f"(d_[3])
                 : "r"(a_[0]), "r"(a_[1]), "r"(b_[0]), "f"(c_[0]), "f"(c_[1]), "f"(c_[2]), "f"(c_[3]));
    MMA_STORE(d, 4);
}

extern "C" __global__ void mma_f16_k16(const unsigned* a, const unsigned* b, const float* c, float* d,
                                       const unsigned* ch, unsigned* dh) {
#if __CUDA_ARCH__ >= 800
    MMA_LOAD(unsigned, a, 4); MMA_LOAD(unsigned, b, 2); MMA_LOAD(float, c, 4); MMA_LOAD(unsigned, ch, 2);
    float d_[4];
    unsigned dh_[2];
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%10,%11,%12,%13};"
                 : "=f"(d_[0]), "=f"(d_[1]), "=f"(d_[2]), "=f"(d_[3])
                 : "r"(a_[0]), "r"(a_[1]), "r"(a_[2]), "r"(a_[3]), "r"(b_[0]), "r"(b_[1]),
                   "f"(c_[0]), "f"(c_[1]), "f"(c_[2]), "f"(c_[3]));
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f16.f16.f16.f16 {%0,%1}, {%2,%3,%4,%5}, {%6,%7}, {%8,%9};"
                 : "=r"(dh_[0]), "=r"(dh_[1])
                 : "r"(a_[0]), "r"(a_[1]), "r"(a_[2]), "r"(a_[3]), "r"(b_[0]), "r"(b_[1]), "r"(ch_[0]), "r"(ch_[1]));
    MMA_STORE(d, 4);
    MMA_STORE(dh, 2);
#endif
}

extern "C" __global__ void mma_bf16_k16(const unsigned* a, const unsigned* b, const float* c, float* d) {
#if __CUDA_ARCH__ >= 800
    MMA_LOAD(unsigned, a, 4); MMA_LOAD(unsigned, b, 2); MMA_LOAD(float, c, 4); float d_[4];
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%10,%11,%12,%13};"
                 : "=f"(d_[0]), "=f"(d_[1]), "=f"(d_[2]), "=f"(d_[3])
                 : "r"(a_[0]), "r"(a_[1]), "r"(a_[2]), "r"(a_[3]), "r"(b_[0]), "r"(b_[1]),
                   "f"(c_[0]), "f"(c_[1]), "f"(c_[2]), "f"(c_[3]));
    MMA_STORE(d, 4);
#endif
}

extern "C" __global__ void mma_tf32_k8(const unsigned* a, const unsigned* b, const float* c, float* d) {
#if __CUDA_ARCH__ >= 800
    MMA_LOAD(unsigned, a, 4); MMA_LOAD(unsigned, b, 2); MMA_LOAD(float, c, 4); float d_[4];
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%10,%11,%12,%13};"
                 : "=f"(d_[0]), "=f"(d_[1]), "=f"(d_[2]), "=f"(d_[3])
                 : "r"(a_[0]), "r"(a_[1]), "r"(a_[2]), "r"(a_[3]), "r"(b_[0]), "r"(b_[1]),
                   "f"(c_[0]), "f"(c_[1]), "f"(c_[2]), "f"(c_[3]));
    MMA_STORE(d, 4);
#endif
}

extern "C" __global__ void mma_f64_k4(const double* a, const double* b, const double* c, double* d) {
#if __CUDA_ARCH__ >= 800
    MMA_LOAD(double, a, 1); MMA_LOAD(double, b, 1); MMA_LOAD(double, c, 2); double d_[2];
    asm volatile("mma.sync.aligned.m8n8k4.row.col.f64.f64.f64.f64 {%0,%1}, {%2}, {%3}, {%4,%5};"
                 : "=d"(d_[0]), "=d"(d_[1]) : "d"(a_[0]), "d"(b_[0]), "d"(c_[0]), "d"(c_[1]));
    MMA_STORE(d, 2);
#endif
}

extern "C" __global__ void mma_s8_k32(const unsigned* a, const unsigned* b, const int* c, int* d, int* dsat) {
#if __CUDA_ARCH__ >= 800
    MMA_LOAD(unsigned, a, 4); MMA_LOAD(unsigned, b, 2); MMA_LOAD(int, c, 4); int d_[4], dsat_[4];
    asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%10,%11,%12,%13};"
                 : "=r"(d_[0]), "=r"(d_[1]), "=r"(d_[2]), "=r"(d_[3])
                 : "r"(a_[0]), "r"(a_[1]), "r"(a_[2]), "r"(a_[3]), "r"(b_[0]), "r"(b_[1]),
                   "r"(c_[0]), "r"(c_[1]), "r"(c_[2]), "r"(c_[3]));
    asm volatile("mma.sync.aligned.m16n8k32.row.col.satfinite.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
                 "{%8,%9}, {%10,%11,%12,%13};"
                 : "=r"(dsat_[0]), "=r"(dsat_[1]), "=r"(dsat_[2]), "=r"(dsat_[3])
                 : "r"(a_[0]), "r"(a_[1]), "r"(a_[2]), "r"(a_[3]), "r"(b_[0]), "r"(b_[1]),
                   "r"(c_[0]), "r"(c_[1]), "r"(c_[2]), "r"(c_[3]));
    MMA_STORE(d, 4);
    MMA_STORE(dsat, 4);
#endif
}

// ldmatrix: a 32x8 tile of 16-bit values in shared memory as four 8x8 matrices, lane l giving the
// address of row l; every form's registers stored (x4, x4.trans, x2, x1: 11 words per thread)
extern "C" __global__ void load_matrices(const unsigned short* in, unsigned* out) {
    __shared__ __align__(16) unsigned short tile[32 * 8];
    int l = threadIdx.x;
    for (int k = 0; k < 8; k++) tile[l * 8 + k] = in[l * 8 + k];
    __syncwarp();
    unsigned row = (unsigned)__cvta_generic_to_shared(&tile[l * 8]);
    unsigned r[11];
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(row));
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[4]), "=r"(r[5]), "=r"(r[6]), "=r"(r[7]) : "r"(row));
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];" : "=r"(r[8]), "=r"(r[9]) : "r"(row));
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];" : "=r"(r[10]) : "r"(row));
    for (int k = 0; k < 11; k++) out[l * 11 + k] = r[k];
}

// bfloat16 arithmetic, scalar and packed pairs (results as bits; sm_80 has bf16 fma/min/max/neg/abs,
// sm_90 add/sub/mul too; empty for compute_75)
extern "C" __global__ void bf16_arith(const unsigned short* a, const unsigned short* b, const unsigned short* c,
                                      unsigned short* out, int n) {
#if __CUDA_ARCH__ >= 800
    ELEMENT();
    __nv_bfloat16 x = __ushort_as_bfloat16(a[i]), y = __ushort_as_bfloat16(b[i]), z = __ushort_as_bfloat16(c[i]);
    __nv_bfloat162 xy = __halves2bfloat162(x, y), yz = __halves2bfloat162(y, z);
    int k = 0;
    out[k++ * n + i] = __bfloat16_as_ushort(__hadd(x, y));
    out[k++ * n + i] = __bfloat16_as_ushort(__hsub(x, y));
    out[k++ * n + i] = __bfloat16_as_ushort(__hmul(x, y));
    out[k++ * n + i] = __bfloat16_as_ushort(__hfma(x, y, z));
    out[k++ * n + i] = __bfloat16_as_ushort(__hneg(x));
    out[k++ * n + i] = __bfloat16_as_ushort(__habs(x));
    out[k++ * n + i] = __bfloat16_as_ushort(__hmin(x, y));
    out[k++ * n + i] = __bfloat16_as_ushort(__hmax(x, y));
    __nv_bfloat162 s = __hadd2(xy, yz), f = __hfma2(xy, yz, xy);
    out[k++ * n + i] = __bfloat16_as_ushort(__low2bfloat16(s));
    out[k++ * n + i] = __bfloat16_as_ushort(__high2bfloat16(s));
    out[k++ * n + i] = __bfloat16_as_ushort(__low2bfloat16(f));
    out[k++ * n + i] = __bfloat16_as_ushort(__high2bfloat16(f));
#endif
}

// movmatrix: an 8x8 matrix of 16-bit values in ldmatrix's fragment layout (lane l's word holds row
// l / 4, columns 2 (l % 4) and + 1), transposed in registers
extern "C" __global__ void transpose_fragment(const unsigned* in, unsigned* out) {
    unsigned d, a = in[threadIdx.x];
    asm volatile("movmatrix.sync.aligned.m8n8.trans.b16 %0, %1;" : "=r"(d) : "r"(a));
    out[threadIdx.x] = d;
}

// device printf (vprintf): several conversions with flags, width, precision and length modifiers;
// the format string is chosen by `which` so a test can also pass a bad string pointer through %s
extern "C" __global__ void printf_formats(const char* name, int which) {
    int t = threadIdx.x;
    if (which == 0) {
        printf("t%d: %5d|%-4x|%08.3f|%+e|%s|%c%%\n", t, -t * 7, t * 255, t * 1.5f, t * 0.25, name, 'a' + t);
    } else if (which == 1) {
        printf("%lld %llu %#o %#X %hd %hhu %.0d| %g %G %a %.2a %5.1s %p\n", -1234567890123LL,
               18446744073709551615ULL, 8u, 255u, 70000, 300, 0, 1e-5, 1e20, 1.0, 1.0 / 3.0, name,
               (void*)0x1234);
    } else {
        printf("%s\n", name + (size_t)which);
    }
}

// more mma.sync shapes and types, fragments given raw as above (tests/ptx/test_tensor_cores.py places
// them by the PTX ISA's tables): the sm_75 integer shapes run on every architecture; bf16 m16n8k8,
// tf32 m16n8k4, s8/u8 m16n8k16, s4/u4 m16n8k32/k64 need sm_80; f64 m16n8k4/k8/k16 and the FP8 types
// (e4m3, e5m2) need sm_90
#define R1(x) "r"(x##_[0])
#define R2(x) "r"(x##_[0]), "r"(x##_[1])
#define R4(x) "r"(x##_[0]), "r"(x##_[1]), "r"(x##_[2]), "r"(x##_[3])
#define F4(x) "f"(x##_[0]), "f"(x##_[1]), "f"(x##_[2]), "f"(x##_[3])
#define OUT_F4(x) "=f"(x##_[0]), "=f"(x##_[1]), "=f"(x##_[2]), "=f"(x##_[3])
#define OUT_R4(x) "=r"(x##_[0]), "=r"(x##_[1]), "=r"(x##_[2]), "=r"(x##_[3])
#define OUT_R2(x) "=r"(x##_[0]), "=r"(x##_[1])

extern "C" __global__ void mma_m8n8_int(const unsigned* a, const unsigned* b, const int* c, int* d8, int* d4) {
    MMA_LOAD(unsigned, a, 1); MMA_LOAD(unsigned, b, 1); MMA_LOAD(int, c, 2); int d8_[2], d4_[2];
    asm volatile("mma.sync.aligned.m8n8k16.row.col.s32.u8.s8.s32 {%0,%1}, {%2}, {%3}, {%4,%5};"
                 : OUT_R2(d8) : R1(a), R1(b), R2(c));
    asm volatile("mma.sync.aligned.m8n8k32.row.col.satfinite.s32.s4.u4.s32 {%0,%1}, {%2}, {%3}, {%4,%5};"
                 : OUT_R2(d4) : R1(a), R1(b), R2(c));
    MMA_STORE(d8, 2);
    MMA_STORE(d4, 2);
}

extern "C" __global__ void mma_sm80_forms(const unsigned* a, const unsigned* b, const float* c, const int* ci,
                                          float* dbf, float* dtf, int* d8, int* d4, int* d4k64) {
#if __CUDA_ARCH__ >= 800
    MMA_LOAD(unsigned, a, 4); MMA_LOAD(unsigned, b, 2); MMA_LOAD(float, c, 4); MMA_LOAD(int, ci, 4);
    float dbf_[4], dtf_[4];
    int d8_[4], d4_[4], d4k64_[4];
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%7,%8,%9,%10};"
                 : OUT_F4(dbf) : R2(a), R1(b), F4(c));
    asm volatile("mma.sync.aligned.m16n8k4.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%7,%8,%9,%10};"
                 : OUT_F4(dtf) : R2(a), R1(b), F4(c));
    asm volatile("mma.sync.aligned.m16n8k16.row.col.s32.s8.u8.s32 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%7,%8,%9,%10};"
                 : OUT_R4(d8) : R2(a), R1(b), R4(ci));
    asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.u4.s4.s32 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%7,%8,%9,%10};"
                 : OUT_R4(d4) : R2(a), R1(b), R4(ci));
    asm volatile("mma.sync.aligned.m16n8k64.row.col.s32.s4.s4.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%10,%11,%12,%13};"
                 : OUT_R4(d4k64) : R4(a), R2(b), R4(ci));
    MMA_STORE(dbf, 4);
    MMA_STORE(dtf, 4);
    MMA_STORE(d8, 4);
    MMA_STORE(d4, 4);
    MMA_STORE(d4k64, 4);
#endif
}

extern "C" __global__ void mma_sm90_forms(const double* a, const double* b, const double* c, const unsigned* a8,
                                          const unsigned* b8, const float* c8, double* d4, double* dk8,
                                          double* dk16, float* df8) {
#if __CUDA_ARCH__ >= 900
    MMA_LOAD(double, a, 8); MMA_LOAD(double, b, 4); MMA_LOAD(double, c, 4);
    MMA_LOAD(unsigned, a8, 4); MMA_LOAD(unsigned, b8, 2); MMA_LOAD(float, c8, 4);
    double d4_[4], dk8_[4], dk16_[4];
    float df8_[4];
    asm volatile("mma.sync.aligned.m16n8k4.row.col.f64.f64.f64.f64 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%7,%8,%9,%10};"
                 : "=d"(d4_[0]), "=d"(d4_[1]), "=d"(d4_[2]), "=d"(d4_[3])
                 : "d"(a_[0]), "d"(a_[1]), "d"(b_[0]), "d"(c_[0]), "d"(c_[1]), "d"(c_[2]), "d"(c_[3]));
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f64.f64.f64.f64 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%10,%11,%12,%13};"
                 : "=d"(dk8_[0]), "=d"(dk8_[1]), "=d"(dk8_[2]), "=d"(dk8_[3])
                 : "d"(a_[0]), "d"(a_[1]), "d"(a_[2]), "d"(a_[3]), "d"(b_[0]), "d"(b_[1]),
                   "d"(c_[0]), "d"(c_[1]), "d"(c_[2]), "d"(c_[3]));
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f64.f64.f64.f64 {%0,%1,%2,%3}, {%4,%5,%6,%7,%8,%9,%10,%11}, "
                 "{%12,%13,%14,%15}, {%16,%17,%18,%19};"
                 : "=d"(dk16_[0]), "=d"(dk16_[1]), "=d"(dk16_[2]), "=d"(dk16_[3])
                 : "d"(a_[0]), "d"(a_[1]), "d"(a_[2]), "d"(a_[3]), "d"(a_[4]), "d"(a_[5]), "d"(a_[6]), "d"(a_[7]),
                   "d"(b_[0]), "d"(b_[1]), "d"(b_[2]), "d"(b_[3]), "d"(c_[0]), "d"(c_[1]), "d"(c_[2]), "d"(c_[3]));
    asm volatile("mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e5m2.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%10,%11,%12,%13};"
                 : OUT_F4(df8) : R4(a8), R2(b8), F4(c8));
    MMA_STORE(d4, 4);
    MMA_STORE(dk8, 4);
    MMA_STORE(dk16, 4);
    MMA_STORE(df8, 4);
#endif
}

// wmma (nvcuda::wmma, as nvcc lowers it): warp w of the grid multiplies tile w of each input; the
// fragment layout is the implementation's, so the tests check only what load -> mma -> store gives
#include <mma.h>
#define WARP_TILE() int w = (blockIdx.x * blockDim.x + threadIdx.x) / 32

// f16 16x16x16: A row-major staged through shared memory with a padded stride of 24 (as
// cudaTensorCoreGemm skews its tiles), B column-major, C loaded column-major, D row-major (f32); the
// f16 accumulator filled with 0.5, scaled by 2 element by element, stored column-major
extern "C" __global__ void wmma_f16(const __half* a, const __half* b, const float* c, float* d, __half* dh) {
    using namespace nvcuda;
    __shared__ __align__(32) __half tile[2][16 * 24];
    WARP_TILE();
    int lw = threadIdx.x / 32, lane = threadIdx.x % 32;
    for (int k = lane; k < 256; k += 32) tile[lw][(k / 16) * 24 + k % 16] = a[w * 256 + k];
    __syncwarp();
    wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> fa;
    wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::col_major> fb;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> fc;
    wmma::fragment<wmma::accumulator, 16, 16, 16, __half> fh;
    wmma::load_matrix_sync(fa, tile[lw], 24);
    wmma::load_matrix_sync(fb, b + w * 256, 16);
    wmma::load_matrix_sync(fc, c + w * 256, 16, wmma::mem_col_major);
    wmma::fill_fragment(fh, __float2half(0.5f));
    for (int e = 0; e < fh.num_elements; e++) fh.x[e] = __hmul(fh.x[e], __float2half(2.0f));
    wmma::mma_sync(fc, fa, fb, fc);
    wmma::mma_sync(fh, fa, fb, fh);
    wmma::store_matrix_sync(d + w * 256, fc, 16, wmma::mem_row_major);
    wmma::store_matrix_sync(dh + w * 256, fh, 16, wmma::mem_col_major);
}

// f16 32x8x16 and 8x32x16: A column-major, B row-major; C f32 (row-major), D f16 and D f32
extern "C" __global__ void wmma_f16_tall_wide(const __half* a, const __half* b, const float* c, __half* dh,
                                              float* d) {
    using namespace nvcuda;
    WARP_TILE();
    wmma::fragment<wmma::matrix_a, 32, 8, 16, __half, wmma::col_major> ta;
    wmma::fragment<wmma::matrix_b, 32, 8, 16, __half, wmma::row_major> tb;
    wmma::fragment<wmma::accumulator, 32, 8, 16, float> tc;
    wmma::fragment<wmma::accumulator, 32, 8, 16, __half> td;
    wmma::load_matrix_sync(ta, a + w * 512, 32);
    wmma::load_matrix_sync(tb, b + w * 512, 8);
    wmma::load_matrix_sync(tc, c + w * 512, 8, wmma::mem_row_major);
    wmma::mma_sync(td, ta, tb, tc);
    wmma::store_matrix_sync(dh + w * 512, td, 8, wmma::mem_row_major);
    wmma::fragment<wmma::matrix_a, 8, 32, 16, __half, wmma::col_major> wa;
    wmma::fragment<wmma::matrix_b, 8, 32, 16, __half, wmma::row_major> wb;
    wmma::fragment<wmma::accumulator, 8, 32, 16, float> wc;
    wmma::load_matrix_sync(wa, a + w * 512, 8);
    wmma::load_matrix_sync(wb, b + w * 512, 32);
    wmma::load_matrix_sync(wc, c + w * 512, 8, wmma::mem_col_major);
    wmma::mma_sync(wc, wa, wb, wc);
    wmma::store_matrix_sync(d + w * 512, wc, 32, wmma::mem_row_major);
}

// s8 and u8 16x16x16 (A row-major, B column-major), the u8 product with satfinite, added to C
extern "C" __global__ void wmma_int8(const signed char* a, const unsigned char* b, const int* c, int* d, int* dsat) {
    using namespace nvcuda;
    WARP_TILE();
    wmma::fragment<wmma::matrix_a, 16, 16, 16, signed char, wmma::row_major> sa;
    wmma::fragment<wmma::matrix_b, 16, 16, 16, signed char, wmma::col_major> sb;
    wmma::fragment<wmma::matrix_a, 16, 16, 16, unsigned char, wmma::row_major> ua;
    wmma::fragment<wmma::matrix_b, 16, 16, 16, unsigned char, wmma::col_major> ub;
    wmma::fragment<wmma::accumulator, 16, 16, 16, int> acc, sat;
    wmma::load_matrix_sync(sa, a + w * 256, 16);
    wmma::load_matrix_sync(sb, reinterpret_cast<const signed char*>(b) + w * 256, 16);
    wmma::load_matrix_sync(ua, reinterpret_cast<const unsigned char*>(a) + w * 256, 16);
    wmma::load_matrix_sync(ub, b + w * 256, 16);
    wmma::load_matrix_sync(acc, c + w * 256, 16, wmma::mem_row_major);
    wmma::mma_sync(sat, ua, ub, acc, true);
    wmma::mma_sync(acc, sa, sb, acc);
    wmma::store_matrix_sync(d + w * 256, acc, 16, wmma::mem_row_major);
    wmma::store_matrix_sync(dsat + w * 256, sat, 16, wmma::mem_col_major);
}

// sub-byte (nvcuda::wmma::experimental): s4 8x8x32 and b1 8x8x128 with XOR and AND popcounts; A
// row-major, B column-major, as the ISA requires
extern "C" __global__ void wmma_sub_byte(const unsigned* a, const unsigned* b, const int* c, int* d4, int* dx,
                                         int* dand) {
    using namespace nvcuda;
    WARP_TILE();
    wmma::fragment<wmma::matrix_a, 8, 8, 32, wmma::experimental::precision::s4, wmma::row_major> fa4;
    wmma::fragment<wmma::matrix_b, 8, 8, 32, wmma::experimental::precision::s4, wmma::col_major> fb4;
    wmma::fragment<wmma::accumulator, 8, 8, 32, int> acc4;
    wmma::load_matrix_sync(fa4, a + w * 32, 32);
    wmma::load_matrix_sync(fb4, b + w * 32, 32);
    wmma::load_matrix_sync(acc4, c + w * 64, 8, wmma::mem_row_major);
    wmma::mma_sync(acc4, fa4, fb4, acc4);
    wmma::store_matrix_sync(d4 + w * 64, acc4, 8, wmma::mem_row_major);
    wmma::fragment<wmma::matrix_a, 8, 8, 128, wmma::experimental::precision::b1, wmma::row_major> fa1;
    wmma::fragment<wmma::matrix_b, 8, 8, 128, wmma::experimental::precision::b1, wmma::col_major> fb1;
    wmma::fragment<wmma::accumulator, 8, 8, 128, int> acc1;
    wmma::load_matrix_sync(fa1, a + w * 32, 128);
    wmma::load_matrix_sync(fb1, b + w * 32, 128);
    wmma::fill_fragment(acc1, 0);
    wmma::bmma_sync(acc1, fa1, fb1, acc1, wmma::experimental::bmmaBitOpXOR);
    wmma::store_matrix_sync(dx + w * 64, acc1, 8, wmma::mem_row_major);
#if __CUDA_ARCH__ >= 800
    wmma::fill_fragment(acc1, 0);
    wmma::bmma_sync(acc1, fa1, fb1, acc1, wmma::experimental::bmmaBitOpAND);
    wmma::store_matrix_sync(dand + w * 64, acc1, 8, wmma::mem_col_major);
#endif
}

#if __CUDA_ARCH__ >= 800
// bf16 16x16x16 (both row-major), tf32 16x16x8 (inputs rounded by __float_to_tf32 element by
// element, B column-major), f64 8x8x4 (A row-major, B column-major); every C is loaded row-major
extern "C" __global__ void wmma_sm80(const __nv_bfloat16* abf, const __nv_bfloat16* bbf, const float* a32,
                                     const float* b32, const double* a64, const double* b64, const float* c,
                                     const double* c64, float* dbf, float* dtf, double* d64) {
    using namespace nvcuda;
    WARP_TILE();
    wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> ba;
    wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> bb;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> bc;
    wmma::load_matrix_sync(ba, abf + w * 256, 16);
    wmma::load_matrix_sync(bb, bbf + w * 256, 16);
    wmma::load_matrix_sync(bc, c + w * 256, 16, wmma::mem_row_major);
    wmma::mma_sync(bc, ba, bb, bc);
    wmma::store_matrix_sync(dbf + w * 256, bc, 16, wmma::mem_row_major);
    wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> ta;
    wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::col_major> tb;
    wmma::fragment<wmma::accumulator, 16, 16, 8, float> tc;
    wmma::load_matrix_sync(ta, a32 + w * 128, 8);
    wmma::load_matrix_sync(tb, b32 + w * 128, 8);
    for (int e = 0; e < ta.num_elements; e++) ta.x[e] = wmma::__float_to_tf32(ta.x[e]);
    for (int e = 0; e < tb.num_elements; e++) tb.x[e] = wmma::__float_to_tf32(tb.x[e]);
    wmma::load_matrix_sync(tc, c + w * 256, 16, wmma::mem_row_major);
    wmma::mma_sync(tc, ta, tb, tc);
    wmma::store_matrix_sync(dtf + w * 256, tc, 16, wmma::mem_row_major);
    wmma::fragment<wmma::matrix_a, 8, 8, 4, double, wmma::row_major> da;
    wmma::fragment<wmma::matrix_b, 8, 8, 4, double, wmma::col_major> db;
    wmma::fragment<wmma::accumulator, 8, 8, 4, double> dc;
    wmma::load_matrix_sync(da, a64 + w * 32, 4);
    wmma::load_matrix_sync(db, b64 + w * 32, 4);
    wmma::load_matrix_sync(dc, c64 + w * 64, 8, wmma::mem_row_major);
    wmma::mma_sync(dc, da, db, dc);
    wmma::store_matrix_sync(d64 + w * 64, dc, 8, wmma::mem_row_major);
}
#endif

#if __CUDA_ARCH__ >= 900
// stmatrix (sm_90): four 8x8 matrices held in ldmatrix's fragment layout (lane l's word j: row l / 4,
// columns 2 (l % 4) and + 1 of matrix j) stored as x4, x4.trans and x2 into three tiles of shared
// memory whose rows lane l addresses (row l of each 32x8 tile), then copied out tile after tile
extern "C" __global__ void store_matrices(const unsigned* in, unsigned short* out) {
    __shared__ __align__(16) unsigned short tile[3][32 * 8];
    int l = threadIdx.x;
    for (int m = 0; m < 3; m++)
        for (int k = 0; k < 8; k++) tile[m][l * 8 + k] = 0;
    __syncwarp();
    unsigned r0 = in[l * 4], r1 = in[l * 4 + 1], r2 = in[l * 4 + 2], r3 = in[l * 4 + 3];
    unsigned row0 = (unsigned)__cvta_generic_to_shared(&tile[0][l * 8]);
    unsigned row1 = (unsigned)__cvta_generic_to_shared(&tile[1][l * 8]);
    unsigned row2 = (unsigned)__cvta_generic_to_shared(&tile[2][l * 8]);
    asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1,%2,%3,%4};"
                 :: "r"(row0), "r"(r0), "r"(r1), "r"(r2), "r"(r3) : "memory");
    asm volatile("stmatrix.sync.aligned.m8n8.x4.trans.shared.b16 [%0], {%1,%2,%3,%4};"
                 :: "r"(row1), "r"(r0), "r"(r1), "r"(r2), "r"(r3) : "memory");
    asm volatile("stmatrix.sync.aligned.m8n8.x2.shared.b16 [%0], {%1,%2};" :: "r"(row2), "r"(r0), "r"(r1) : "memory");
    __syncwarp();
    for (int m = 0; m < 3; m++)
        for (int k = 0; k < 8; k++) out[(m * 32 + l) * 8 + k] = tile[m][l * 8 + k];
}
#endif

// device assert: threads at or past n fail it (each prints CUDA's line; the launch fails, sticky)
#include <cassert>
extern "C" __global__ void asserts(int n) {
    assert(threadIdx.x < n);
}

// single-bit mma.sync: C + popc(a op b) along k; m8n8k128 .xor (sm_75), m16n8k128 .and and
// m16n8k256 .xor (sm_80); fragments given raw as for the other mma kernels
extern "C" __global__ void mma_b1(const unsigned* a, const unsigned* b, const int* c, int* d8, int* d128,
                                  int* d256) {
    MMA_LOAD(unsigned, a, 4); MMA_LOAD(unsigned, b, 2); MMA_LOAD(int, c, 4); int d8_[2];
    asm volatile("mma.sync.aligned.m8n8k128.row.col.s32.b1.b1.s32.xor.popc {%0,%1}, {%2}, {%3}, {%4,%5};"
                 : OUT_R2(d8) : R1(a), R1(b), R2(c));
    MMA_STORE(d8, 2);
#if __CUDA_ARCH__ >= 800
    int d128_[4], d256_[4];
    asm volatile("mma.sync.aligned.m16n8k128.row.col.s32.b1.b1.s32.and.popc {%0,%1,%2,%3}, {%4,%5}, {%6}, "
                 "{%7,%8,%9,%10};" : OUT_R4(d128) : R2(a), R1(b), R4(c));
    asm volatile("mma.sync.aligned.m16n8k256.row.col.s32.b1.b1.s32.xor.popc {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
                 "{%8,%9}, {%10,%11,%12,%13};" : OUT_R4(d256) : R4(a), R2(b), R4(c));
    MMA_STORE(d128, 4);
    MMA_STORE(d256, 4);
#endif
}
