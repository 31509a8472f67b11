/*
 * libcudart.so.13 internals: the runtime is the driver API (libcuda.so.1) plus per-thread state
 * (last error, current device, launch configurations) and the registry of what nvcc's host code
 * registered (fatbins, kernels, device variables).
 */
#ifndef VGPU_RT_INTERNAL_H
#define VGPU_RT_INTERNAL_H

#include "shim.h"

#define RT_HIDDEN __attribute__((visibility("hidden")))
#define CUDART_VERSION_SERVED 13000

/* Record `err` as the thread's last error (when it is one) and return it. */
RT_HIDDEN cudaError_t rt_ret(cudaError_t err);
/* The primary context of device 0 made current, once: cudaSuccess or why not. */
RT_HIDDEN cudaError_t rt_init(void);
/* A driver status as the runtime's (the numbers the shim produces coincide). */
static inline cudaError_t rt_err(CUresult rc) { return (cudaError_t)rc; }
/* Return the driver call's status, recorded, after rt_init: `RT_CALL(cuFoo(...));` */
#define RT_CALL(expr)                                                                             \
    do {                                                                                          \
        cudaError_t init_ = rt_init();                                                            \
        return rt_ret(init_ ? init_ : rt_err(expr));                                              \
    } while (0)

/* A registered fatbin: loaded on the host the first time one of its kernels or variables is used. */
struct rt_fatbin {
    const void *image;
    pthread_mutex_t lock;
    int loaded;
    cudaError_t load_status;
    CUmodule module;
    struct rt_managed *managed; /* its __managed__ variables (rt_managed.c), placed when it loads */
};

/* rt_managed.c: a loaded fatbin's __managed__ variables into managed memory (under fb->lock) */
RT_HIDDEN cudaError_t rt_place_managed(struct rt_fatbin *fb);
/* rt_launch.c: `host_var` as a symbol of `fb` already at `dptr` (cudaMemcpyToSymbol and friends) */
RT_HIDDEN cudaError_t rt_symbol_add(struct rt_fatbin *fb, const void *host_var, const char *name, size_t size,
                                    CUdeviceptr dptr);

/* A kernel nvcc registered (cudaKernel_t is a pointer to one). */
struct CUkern_st {
    const void *host_fun;
    struct rt_fatbin *fatbin;
    char *device_name;
    CUfunction function; /* looked up on first use */
};

/* A __device__ / __constant__ variable nvcc registered. */
struct rt_var {
    const void *host_var;
    struct rt_fatbin *fatbin;
    char *device_name;
    size_t size;
    CUdeviceptr dptr; /* looked up on first use */
};

/* The runtime's 3D copy (cudaMemcpy3D, graph memcpy nodes): positions and extents count bytes, or
 * elements of a side that is a CUDA array. */
struct cudaPos { size_t x, y, z; };
struct cudaPitchedPtr { void *ptr; size_t pitch, xsize, ysize; };
struct cudaExtent { size_t width, height, depth; };
struct cudaMemcpy3DParms {
    void *srcArray;
    struct cudaPos srcPos;
    struct cudaPitchedPtr srcPtr;
    void *dstArray;
    struct cudaPos dstPos;
    struct cudaPitchedPtr dstPtr;
    struct cudaExtent extent;
    int kind;
};
_Static_assert(sizeof(struct cudaMemcpy3DParms) == 160, "cudaMemcpy3DParms");

RT_HIDDEN cudaError_t rt_kernel_of(const void *host_fun, struct CUkern_st **kernel);
RT_HIDDEN cudaError_t rt_kernel_function(struct CUkern_st *kernel, CUfunction *function);
RT_HIDDEN cudaError_t rt_symbol(const void *host_var, CUdeviceptr *dptr, size_t *size);

#endif /* VGPU_RT_INTERNAL_H */
