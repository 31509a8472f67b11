// The PTX engine's texture and surface corpus (tests/ptx/test_textures.py): each kernel reads its
// coordinates from arrays and writes what the texture or surface instruction answered, so the test
// can compare every lane with a CPU reference over the same texels.
#include <cuda_runtime.h>

// tex1Dfetch on linear memory (tex.1d.v4.s32.s32 / f32.s32)
extern "C" __global__ void fetch1d_f(cudaTextureObject_t t, const int *x, float4 *out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = tex1Dfetch<float4>(t, x[i]);
}
extern "C" __global__ void fetch1d_i(cudaTextureObject_t t, const int *x, int4 *out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = tex1Dfetch<int4>(t, x[i]);
}
extern "C" __global__ void fetch1d_u(cudaTextureObject_t t, const int *x, uint4 *out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = tex1Dfetch<uint4>(t, x[i]);
}
extern "C" __global__ void tex1d_f(cudaTextureObject_t t, const float *x, float4 *out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = tex1D<float4>(t, x[i]);
}
extern "C" __global__ void tex2d_f(cudaTextureObject_t t, const float2 *c, float4 *out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = tex2D<float4>(t, c[i].x, c[i].y);
}
extern "C" __global__ void tex2d_u(cudaTextureObject_t t, const float2 *c, uint4 *out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = tex2D<uint4>(t, c[i].x, c[i].y);
}
extern "C" __global__ void tex2d_i(cudaTextureObject_t t, const float2 *c, int4 *out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = tex2D<int4>(t, c[i].x, c[i].y);
}
extern "C" __global__ void tex2d_scalar(cudaTextureObject_t t, const float2 *c, float *out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = tex2D<float>(t, c[i].x, c[i].y);
}
extern "C" __global__ void tex3d_f(cudaTextureObject_t t, const float4 *c, float4 *out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = tex3D<float4>(t, c[i].x, c[i].y, c[i].z);
}
extern "C" __global__ void tex1dlayered_f(cudaTextureObject_t t, const float4 *c, float4 *out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = tex1DLayered<float4>(t, c[i].x, (int)c[i].w);
}
extern "C" __global__ void tex2dlayered_f(cudaTextureObject_t t, const float4 *c, float4 *out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = tex2DLayered<float4>(t, c[i].x, c[i].y, (int)c[i].w);
}
extern "C" __global__ void texcube_f(cudaTextureObject_t t, const float4 *c, float4 *out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = texCubemap<float4>(t, c[i].x, c[i].y, c[i].z);
}
extern "C" __global__ void texcubelayered_f(cudaTextureObject_t t, const float4 *c, float4 *out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = texCubemapLayered<float4>(t, c[i].x, c[i].y, c[i].z, (int)c[i].w);
}
extern "C" __global__ void tex2dlod_f(cudaTextureObject_t t, const float4 *c, float4 *out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = tex2DLod<float4>(t, c[i].x, c[i].y, c[i].z);
}
extern "C" __global__ void tex2dgrad_f(cudaTextureObject_t t, const float4 *c, float4 *out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = tex2DGrad<float4>(t, c[i].x, c[i].y, make_float2(c[i].z, 0.f), make_float2(0.f, c[i].w));
}
extern "C" __global__ void gather2d(cudaTextureObject_t t, const float2 *c, float4 *out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        out[4 * i + 0] = tex2Dgather<float4>(t, c[i].x, c[i].y, 0);
        out[4 * i + 1] = tex2Dgather<float4>(t, c[i].x, c[i].y, 1);
        out[4 * i + 2] = tex2Dgather<float4>(t, c[i].x, c[i].y, 2);
        out[4 * i + 3] = tex2Dgather<float4>(t, c[i].x, c[i].y, 3);
    }
}
// txq on a texture and suq on a surface (no CUDA C wrapper: PTX inline)
extern "C" __global__ void query(cudaTextureObject_t t, cudaSurfaceObject_t s, int *out) {
    int w, h, d, ct, co, nc, fm, a0, a1, a2, sw, sh, sd, ml, al;
    asm("txq.width.b32 %0, [%1];" : "=r"(w) : "l"(t));
    asm("txq.height.b32 %0, [%1];" : "=r"(h) : "l"(t));
    asm("txq.depth.b32 %0, [%1];" : "=r"(d) : "l"(t));
    asm("txq.channel_data_type.b32 %0, [%1];" : "=r"(ct) : "l"(t));
    asm("txq.channel_order.b32 %0, [%1];" : "=r"(co) : "l"(t));
    asm("txq.normalized_coords.b32 %0, [%1];" : "=r"(nc) : "l"(t));
    asm("txq.filter_mode.b32 %0, [%1];" : "=r"(fm) : "l"(t));
    asm("txq.addr_mode_0.b32 %0, [%1];" : "=r"(a0) : "l"(t));
    asm("txq.addr_mode_1.b32 %0, [%1];" : "=r"(a1) : "l"(t));
    asm("txq.addr_mode_2.b32 %0, [%1];" : "=r"(a2) : "l"(t));
    asm("txq.num_mipmap_levels.b32 %0, [%1];" : "=r"(ml) : "l"(t));
    asm("txq.array_size.b32 %0, [%1];" : "=r"(al) : "l"(t));
    asm("suq.width.b32 %0, [%1];" : "=r"(sw) : "l"(s));
    asm("suq.height.b32 %0, [%1];" : "=r"(sh) : "l"(s));
    asm("suq.depth.b32 %0, [%1];" : "=r"(sd) : "l"(s));
    int v[15] = {w, h, d, ct, co, nc, fm, a0, a1, a2, ml, al, sw, sh, sd};
    for (int k = 0; k < 15; ++k) out[k] = v[k];
}
extern "C" __global__ void is_texture(unsigned long long h, int *out) {
    int p, q;
    asm("{ .reg .pred a, b; istypep.texref a, %2; istypep.surfref b, %2; selp.s32 %0, 1, 0, a; selp.s32 %1, 1, 0, b; }"
        : "=r"(p), "=r"(q) : "l"(h));
    out[0] = p;
    out[1] = q;
}
// surfaces: x in bytes; each lane copies one texel from src to dst, with the three boundary modes
extern "C" __global__ void surf2d_copy_u32(cudaSurfaceObject_t src, cudaSurfaceObject_t dst, const int2 *c, unsigned *out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        unsigned v = surf2Dread<unsigned>(src, c[i].x * 4, c[i].y, cudaBoundaryModeZero);
        out[i] = v;
        surf2Dwrite(v + 1u, dst, c[i].x * 4, c[i].y, cudaBoundaryModeZero);
    }
}
extern "C" __global__ void surf2d_clamp_u32(cudaSurfaceObject_t src, const int2 *c, unsigned *out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = surf2Dread<unsigned>(src, c[i].x * 4, c[i].y, cudaBoundaryModeClamp);
}
extern "C" __global__ void surf2d_trap_u32(cudaSurfaceObject_t src, const int2 *c, unsigned *out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = surf2Dread<unsigned>(src, c[i].x * 4, c[i].y);
}
extern "C" __global__ void surf2d_write_trap(cudaSurfaceObject_t dst, const int2 *c, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) surf2Dwrite((unsigned)i, dst, c[i].x * 4, c[i].y);
}
extern "C" __global__ void surf1d_rw_uchar4(cudaSurfaceObject_t s, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        uchar4 v = surf1Dread<uchar4>(s, i * 4);
        surf1Dwrite(make_uchar4(v.w, v.z, v.y, v.x), s, i * 4);
    }
}
extern "C" __global__ void surf3d_rw_float2(cudaSurfaceObject_t s, int w, int h, int d) {
    int x = threadIdx.x, y = threadIdx.y, z = blockIdx.x;
    if (x < w && y < h && z < d) {
        float2 v = surf3Dread<float2>(s, x * 8, y, z);
        surf3Dwrite(make_float2(v.y * 2.f, v.x + z), s, x * 8, y, z);
    }
}
extern "C" __global__ void surf2dlayered_rw_short(cudaSurfaceObject_t s, int w, int h, int layers) {
    int x = threadIdx.x, y = threadIdx.y, l = blockIdx.x;
    if (x < w && y < h && l < layers) {
        short v = surf2DLayeredread<short>(s, x * 2, y, l);
        surf2DLayeredwrite((short)(v * 3 - l), s, x * 2, y, l);
    }
}
extern "C" __global__ void surf1dlayered_rw_ll(cudaSurfaceObject_t s, int w, int layers) {
    int x = threadIdx.x, l = blockIdx.x;
    if (x < w && l < layers) {
        long long v = surf1DLayeredread<long long>(s, x * 8, l);
        surf1DLayeredwrite(v * 3 - l, s, x * 8, l);
    }
}
extern "C" __global__ void surf2d_rw_float4(cudaSurfaceObject_t s, int w, int h) {
    int x = threadIdx.x, y = blockIdx.x;
    if (x < w && y < h) {
        float4 v = surf2Dread<float4>(s, x * 16, y);
        surf2Dwrite(make_float4(v.w, v.z, v.y, v.x + 1.f), s, x * 16, y);
    }
}
// formatted store (sust.p): the value is converted to the surface's format
extern "C" __global__ void sustp_2d(cudaSurfaceObject_t s, const float4 *v, int w, int h) {
    int x = threadIdx.x, y = blockIdx.x;
    if (x < w && y < h) {
        float4 f = v[y * w + x];
        asm volatile("sust.p.2d.v4.b32.trap [%0, {%1, %2}], {%3, %4, %5, %6};"
                     :: "l"(s), "r"(x * 4), "r"(y), "f"(f.x), "f"(f.y), "f"(f.z), "f"(f.w) : "memory");
    }
}
// cube-map surfaces: suld/sust .a2d with the face (and layer * 6) as the layer
extern "C" __global__ void surfcube_rw_float(cudaSurfaceObject_t s, int side, int cubes) {
    int x = threadIdx.x, y = threadIdx.y, face = blockIdx.x % 6, cube = blockIdx.x / 6;
    if (x < side && y < side && cube < cubes) {
        float v = cubes == 1 ? surfCubemapread<float>(s, x * 4, y, face)
                             : surfCubemapLayeredread<float>(s, x * 4, y, cube * 6 + face);
        surfCubemapLayeredwrite(v * 2.f + face, s, x * 4, y, cube * 6 + face);
    }
}
