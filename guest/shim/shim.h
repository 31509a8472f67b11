/*
 * The shim's private interface: what libcuda.so.1 shares with libcudart.so.13 and libcublas.so.13
 * (the `vgpu_shim_*` functions, exported from libcuda.so.1 with status "internal" in exports.tsv),
 * and the records behind the CUDA handle types.
 *
 * One process has one connection to the mediator (one transport on a channel of its own, opened on
 * first use from the configuration, see cu_core.c), owned by libcuda.so.1. The runtime is built on the driver
 * API, as NVIDIA's is; cuBLAS calls go through vgpu_shim_call/vgpu_shim_post directly.
 */
#ifndef VGPU_SHIM_H
#define VGPU_SHIM_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "shim_abi.h"

#define VGPU_SHIM_API __attribute__((visibility("default")))

/* ---- handle records: a handle is a pointer to one of these, checked by its magic ------------- */

enum vgpu_magic {
    VGPU_MAGIC_CTX = 0x78746356u,     /* "Vctx" */
    VGPU_MAGIC_STREAM = 0x6d727456u,  /* "Vtrm" */
    VGPU_MAGIC_EVENT = 0x746e7656u,   /* "Vvnt" */
    VGPU_MAGIC_MODULE = 0x646f6d56u,  /* "Vmod" */
    VGPU_MAGIC_FUNC = 0x636e7556u,    /* "Vunc" */
    VGPU_MAGIC_GRAPH = 0x68707256u,   /* "Vrph" */
    VGPU_MAGIC_EXEC = 0x63657856u,    /* "Vxec" */
    VGPU_MAGIC_CUBLAS = 0x73616c56u,  /* "Vlas" */
    VGPU_MAGIC_DEAD = 0xdeadbeefu,    /* written on destroy: a stale handle is refused */
};

struct CUctx_st { uint32_t magic, id; int device; };
struct CUstream_st { uint32_t magic, id; unsigned int flags; int priority; };
struct CUevent_st { uint32_t magic, id; unsigned int flags; };
struct CUmod_st { uint32_t magic, id; };
struct CUgraph_st { uint32_t magic, id; };
struct CUgraphExec_st { uint32_t magic, id; };

/* A kernel: its host id and the parameter layout the host reported, fetched once. */
struct CUfunc_st {
    uint32_t magic, id;
    CUmodule module;
    pthread_once_t layout_once;
    int layout_status;      /* CUresult of fetching the layout */
    uint32_t param_count;
    uint32_t param_bytes;
    uint32_t (*params)[2];  /* (offset, size) per parameter */
    char name[];
};

/* ---- calls ----------------------------------------------------------------------------------- */

/*
 * One synchronous call to the host: returns the call's status (>= 0) or a negative
 * cuda_transport_error (no connection, device gone, timeout). `results` gets the result struct.
 */
VGPU_SHIM_API int vgpu_shim_call(uint16_t call_id, const void *args, uint32_t nargs, const void *send,
                                 size_t send_len, void *results, size_t results_size, void *recv,
                                 size_t recv_cap, size_t *recv_len);
/* Post an async-capable call without waiting: 0 or a negative cuda_transport_error. */
VGPU_SHIM_API int vgpu_shim_post(uint16_t call_id, const void *args, uint32_t nargs, const void *send,
                                 size_t send_len);
/* A transport error as the CUresult a program sees (statuses >= 0 pass through). */
VGPU_SHIM_API CUresult vgpu_shim_cu_status(int rc);
/* Copies through the transport's chunking (HtoD posted when `asynchronous`). CUresult. */
VGPU_SHIM_API CUresult vgpu_shim_htod(uint64_t dst, uint32_t stream, const void *src, size_t len,
                                      int asynchronous);
VGPU_SHIM_API CUresult vgpu_shim_dtoh(void *dst, uint64_t src, uint32_t stream, size_t len);
/* The same, posted when `asynchronous` and `dst` is pinned memory (the bytes are there once the stream
 * is synchronized, as in CUDA); into pageable memory it always waits. */
VGPU_SHIM_API CUresult vgpu_shim_dtoh_on(void *dst, uint64_t src, uint32_t stream, size_t len, int asynchronous);

/* ---- pinned host memory (cu_pinned.c) -------------------------------------------------------- */

/* 1 when [ptr, ptr + len) lies wholly inside one live pinned allocation of this process (memory the
 * host placed in the region's pinned area); *offset (may be NULL) is then ptr's pinned offset
 * (relative to the pinned area's start: what the host's pinned calls take). 0 otherwise: pageable
 * memory, a fallback allocation, a range that runs past its allocation's end, NULL. len 0 asks only
 * whether ptr itself is inside. */
VGPU_SHIM_API int vgpu_shim_pinned_lookup(const void *ptr, size_t len, uint64_t *offset);

/* ---- handles --------------------------------------------------------------------------------- */

/* The host id of a stream (NULL, CU_STREAM_LEGACY and CU_STREAM_PER_THREAD are 0). CUresult. */
VGPU_SHIM_API CUresult vgpu_shim_stream_id(CUstream stream, uint32_t *id);

/* Memory the guest knows of: device allocations, reservations and globals (VGPU_PTR_DEVICE) and
 * host memory from cuMemAllocHost/cuMemHostAlloc/cuMemHostRegister (VGPU_PTR_HOST), for
 * cudaMemcpyDefault and cudaPointerGetAttributes. Returns the kind of the range holding `ptr`
 * (VGPU_PTR_NONE if none) with its base and size. */
enum vgpu_ptr_kind { VGPU_PTR_NONE = 0, VGPU_PTR_DEVICE = 1, VGPU_PTR_HOST = 2, VGPU_PTR_HOST_REGISTERED = 3 };
VGPU_SHIM_API int vgpu_shim_ptr_kind(uint64_t ptr, uint64_t *base, uint64_t *size);

/* The runtime's name and text for a status (NULL when unknown). */
VGPU_SHIM_API const char *vgpu_shim_error_name(int code);
VGPU_SHIM_API const char *vgpu_shim_error_text(int code);

/* Grid and block within the device's limits: CUDA_ERROR_INVALID_VALUE otherwise. */
VGPU_SHIM_API CUresult vgpu_shim_check_dims(const unsigned int grid[3], const unsigned int block[3]);

/* ---- logging --------------------------------------------------------------------------------- */

VGPU_SHIM_API void vgpu_shim_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* An exported function that the shim does not serve: log once per function, return `code`. */
VGPU_SHIM_API int vgpu_shim_unsupported(const char *library, const char *name, int *once, int code);
/* The same for a served function called in a way it cannot serve (an unknown flag, a mode). */
#define VGPU_UNSUPPORTED_USE(code, ...)                                                           \
    do {                                                                                          \
        static int once_;                                                                         \
        if (!__atomic_exchange_n(&once_, 1, __ATOMIC_RELAXED))                                    \
            vgpu_shim_log(__VA_ARGS__);                                                           \
        return (code);                                                                            \
    } while (0)

/* ---- inside libcuda.so.1 only ---------------------------------------------------------------- */

#define VGPU_HIDDEN __attribute__((visibility("hidden")))

VGPU_HIDDEN void vgpu_track_range(uint64_t base, uint64_t size, int kind);
VGPU_HIDDEN void vgpu_untrack_range(uint64_t base);
VGPU_HIDDEN CUresult vgpu_cu_call(uint16_t call_id, const void *args, uint32_t nargs, void *results,
                                  size_t results_size);
VGPU_HIDDEN CUresult vgpu_cu_post(uint16_t call_id, const void *args, uint32_t nargs, const void *send,
                                  size_t send_len);
/* Async-capable calls: posted on a stream; submitted synchronously when `wait` is set. */
VGPU_HIDDEN CUresult vgpu_cu_async(uint16_t call_id, const void *args, uint32_t nargs, const void *send,
                                   size_t send_len, int wait);

/* Destroy host object `id` with `call_id` (an 8-byte {u32 id} argument), then retire its record:
 * marked dead (a stale handle is refused) and freed. */
VGPU_HIDDEN CUresult vgpu_cu_release(uint16_t call_id, uint32_t id, uint32_t *magic, void *record);

/* The process's connection (NULL and *err the CUresult when it could not be made). */
struct cuda_transport;
VGPU_HIDDEN struct cuda_transport *vgpu_shim_transport(int *err);
/* A range of the region's pinned area: CUDA_ERROR_OUT_OF_MEMORY when it has no room and
 * CUDA_ERROR_NOT_SUPPORTED when there is none (the caller falls back to ordinary memory). */
VGPU_HIDDEN CUresult vgpu_pinned_alloc(void **pp, size_t bytesize, unsigned int flags);
/* vgpu_pinned_alloc's flag for managed memory: the range's device pointer must be its host pointer */
#define VGPU_PINNED_MANAGED 0x80000000u
/* 1 when `ptr` lies in a pinned range of ours not yet freed: *dptr its device address (0: the range
 * is not mapped, or is from before a reset), *base the range's start, *managed whether it is managed
 * memory (each may be NULL). */
VGPU_HIDDEN int vgpu_pinned_mapping(const void *ptr, uint64_t *dptr, uint64_t *base, int *managed);
/* 1 and *rc when `dptr` lies in managed memory of ours (freed when it is the start), else 0. */
VGPU_HIDDEN int vgpu_managed_free(CUdeviceptr dptr, CUresult *rc);
/* 1 and *rc when `ptr` is the start of a pinned allocation of ours (now given back), else 0. */
VGPU_HIDDEN int vgpu_pinned_free(void *ptr, CUresult *rc);
/* cuMemHostRegister's pages [floor(ptr), ceil(ptr + bytesize)) moved into the pinned area, at the same
 * addresses (DEVICEMAP in `flags`: mapped into the device too, or refused). CUDA_ERROR_NOT_SUPPORTED
 * or CUDA_ERROR_OUT_OF_MEMORY when they cannot move (the caller registers them staged), 712 when the
 * bytes overlap a registration of ours, CUDA_ERROR_INVALID_VALUE for a hole in the range. */
VGPU_HIDDEN CUresult vgpu_pinned_register(void *ptr, size_t bytesize, unsigned int flags);
/* 1 and *rc when `ptr` was registered by vgpu_pinned_register (its pages private again), else 0. */
VGPU_HIDDEN int vgpu_pinned_unregister(void *ptr, CUresult *rc);

#define VGPU_CHECK_HANDLE(h, kind) ((h) != NULL && (h)->magic == (kind))

#endif /* VGPU_SHIM_H */
