/*
 * libvgpu_transport: the guest end of the vgpu-mediator region, in C.
 *
 * A guest shim (libcuda, libcudart, libcublas replacements) turns each CUDA call into one
 * catalog call: a call id, a packed argument struct (protocol/include/vgpu_protocol.h), and
 * optionally an input payload (bytes to copy, a module image) and an output area (bytes copied
 * back). This library moves those through the shared region and waits for the answer.
 *
 * The region (protocol 2.x) has several channels, each an independent pair of rings with its share
 * of the payload arena: one per process. Opening the transport claims a free channel with an
 * open-file-description lock on one byte of the region file (the kernel drops it however the
 * process ends), opens it on the host (a fresh CUDA context there), and starts a heartbeat thread;
 * closing it asks the host to free everything the channel held. A process stopped for longer than
 * the host's lease (SIGSTOP, a debugger) finds its channel closed: every later call answers
 * CUDA_TRANSPORT_E_CLOSED. A forked child does not inherit the channel (its calls answer E_CLOSED).
 *
 * Two backends share everything but how the region is reached:
 *   - PCI (inside a VM): the QEMU ivshmem-doorbell device 1af4:1110, found under
 *     /sys/bus/pci/devices; BAR2 (resource2) is the region, BAR0 (resource0) holds the doorbell
 *     register. There is no interrupt without a kernel driver: completions are polled.
 *   - socket (on the host: tests, benchmarks): connect to the mediator's per-VM Unix socket and
 *     perform the ivshmem-server handshake exactly as QEMU does; the doorbell is the host's
 *     eventfd and completions can sleep on our own vector's eventfd.
 *
 * Calls are synchronous unless posted (cuda_transport_post: SubmitFlags.ASYNC, no completion
 * unless the call fails; a failure is latched by the host and reported by the next call that
 * waits, as CUDA reports an earlier asynchronous error at cuStreamSynchronize).
 *
 * All functions are thread-safe: one mutex serialises the rings of a transport.
 */
#ifndef VGPU_TRANSPORT_H
#define VGPU_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library is built with -fvisibility=hidden: only these functions are exported. */
#ifndef CUDA_TRANSPORT_API
#define CUDA_TRANSPORT_API __attribute__((visibility("default")))
#endif

/* Transport errors: always negative, so they never collide with a call's status (>= 0). */
enum cuda_transport_error {
    CUDA_TRANSPORT_OK = 0,
    CUDA_TRANSPORT_E_NODEV = -1,     /* no ivshmem device / socket to connect to */
    CUDA_TRANSPORT_E_SYS = -2,       /* a system call failed (see cuda_transport_last_error) */
    CUDA_TRANSPORT_E_LAYOUT = -3,    /* the region's header is not one this library speaks */
    CUDA_TRANSPORT_E_HANDSHAKE = -4, /* the ivshmem-server handshake went wrong */
    CUDA_TRANSPORT_E_GONE = -5,      /* the host stopped serving (state not READY, new epoch) */
    CUDA_TRANSPORT_E_TIMEOUT = -6,   /* no completion / no space: the host made no progress for the timeout */
    CUDA_TRANSPORT_E_INVAL = -7,     /* bad argument (args too long, payload larger than arena) */
    CUDA_TRANSPORT_E_PROTOCOL = -8,  /* the host's ring indices are impossible */
    CUDA_TRANSPORT_E_BUSY = -9,      /* every channel of the device is held by other processes */
    CUDA_TRANSPORT_E_CLOSED = -10,   /* the host closed our channel (lease expired, peer gone), or we did */
    CUDA_TRANSPORT_E_REFUSED = -11,  /* the mediator refused the connection (the reason is in last_error) */
};

#define CUDA_TRANSPORT_MAX_ARGS 160u
#define CUDA_TRANSPORT_MAX_RESULTS 48u

/* What a completion said. */
struct cuda_call_result {
    uint32_t status;   /* CUresult (cublasStatus_t for cuBLAS calls) */
    uint32_t flags;    /* CompleteFlags: 1 ASYNC_ERROR, 2 LATCHED (status is an earlier async error) */
    uint32_t seq;      /* the submission's sequence number */
    uint32_t out_len;  /* bytes the host wrote to the output area */
    uint8_t results[CUDA_TRANSPORT_MAX_RESULTS]; /* the call's packed result struct */
    uint32_t call_id;  /* the call the completion answers (for an async error: the call that failed) */
};

struct cuda_transport;

/* Counters, for tests and tuning. */
struct cuda_transport_stats {
    uint64_t submitted;     /* submissions pushed */
    uint64_t posted;        /* of which ASYNC */
    uint64_t kicks;         /* doorbell writes (the host was asleep) */
    uint64_t sleeps;        /* waits that went past spinning */
    uint64_t async_errors;  /* ASYNC_ERROR completions seen */
    uint64_t bytes_htod;    /* payload bytes sent by memcpy_htod */
    uint64_t bytes_dtoh;    /* payload bytes received by memcpy_dtoh */
};

/*
 * Open the transport. Backend selection: VGPU_TRANSPORT_SOCKET=<path> uses the socket backend,
 * otherwise the PCI device (VGPU_PCI_DEVICE=<dddd:bb:dd.f> picks one of several). Environment:
 * VGPU_TRANSPORT_TIMEOUT_MS (default 30000): a wait gives up (E_TIMEOUT) once the host has made no
 * progress on our channel (consumed no submission, posted no completion) for this long, however long
 * the queued work takes in all, and the socket backend's handshake waits as long (5 s at least: a VM's
 * first peer waits for its worker to start); VGPU_TRANSPORT_SPIN_US (default 50).
 */
CUDA_TRANSPORT_API int cuda_transport_init(struct cuda_transport **out);
/*
 * The PCI backend; `bdf` NULL picks the first 1af4:1110 device. The claim is an OFD lock on the
 * process's own open file description of the device's resource2 file; when every channel is held
 * by other processes of the guest the open fails with CUDA_TRANSPORT_E_BUSY.
 */
CUDA_TRANSPORT_API int cuda_transport_init_pci(const char *bdf, struct cuda_transport **out);
/* The socket backend: connect to a mediator VM socket and do QEMU's ivshmem handshake; the claim
 * is an OFD lock on the process's own open of the region's memfd (/proc/self/fd/N). */
CUDA_TRANSPORT_API int cuda_transport_init_socket(const char *path, struct cuda_transport **out);
/* Close the channel (the host frees everything it held), stop the heartbeat, drop the claim, free. */
CUDA_TRANSPORT_API void cuda_transport_close(struct cuda_transport *t);
/*
 * The same without freeing anything, for exit time while other threads may still hold `t`: waits at
 * most about a second for a call in progress, then every later call answers E_CLOSED. Safe to call
 * more than once, and in a forked child (which leaves its parent's channel alone).
 */
CUDA_TRANSPORT_API void cuda_transport_shutdown(struct cuda_transport *t);

/*
 * One synchronous call. `args`/`nargs` is the packed argument struct (nargs bytes, at most 160);
 * `send_data`/`send_len` the input payload; `recv_data`/`recv_cap` where the output payload is
 * copied to, `*recv_len` (may be NULL) how much the host wrote. `result` may be NULL.
 * Returns the call's status (>= 0: 0 is success) or a negative cuda_transport_error.
 */
CUDA_TRANSPORT_API int cuda_transport_call(struct cuda_transport *t, uint16_t call_id, const void *args, uint32_t nargs,
                        const void *send_data, size_t send_len, struct cuda_call_result *result,
                        void *recv_data, size_t recv_cap, size_t *recv_len);

/*
 * Post an asynchronous call (one the catalog marks is_async): returns once it is in the ring.
 * Returns 0 or a negative cuda_transport_error; a failure of the call itself is reported later.
 */
CUDA_TRANSPORT_API int cuda_transport_post(struct cuda_transport *t, uint16_t call_id, const void *args, uint32_t nargs,
                        const void *send_data, size_t send_len);

/*
 * Copies of any size: split into chunks of at most cuda_transport_chunk_size() bytes; every chunk
 * but the last is posted with CHUNK_MORE. htod with `asynchronous` != 0 posts the last chunk too.
 */
CUDA_TRANSPORT_API int cuda_transport_memcpy_htod(struct cuda_transport *t, uint64_t dst, uint32_t stream,
                               const void *src, size_t len, int asynchronous,
                               struct cuda_call_result *result);
CUDA_TRANSPORT_API int cuda_transport_memcpy_dtoh(struct cuda_transport *t, void *dst, uint64_t src, uint32_t stream,
                               size_t len, struct cuda_call_result *result);

/* The first ASYNC_ERROR completion not yet taken: 1 and *result filled, or 0 if none. */
CUDA_TRANSPORT_API int cuda_transport_take_async_error(struct cuda_transport *t, struct cuda_call_result *result);

CUDA_TRANSPORT_API size_t cuda_transport_chunk_size(const struct cuda_transport *t);
CUDA_TRANSPORT_API int cuda_transport_set_chunk_size(struct cuda_transport *t, size_t bytes);
CUDA_TRANSPORT_API size_t cuda_transport_arena_size(const struct cuda_transport *t);
CUDA_TRANSPORT_API size_t cuda_transport_region_size(const struct cuda_transport *t);
CUDA_TRANSPORT_API const char *cuda_transport_backend(const struct cuda_transport *t); /* "pci" or "socket" */
CUDA_TRANSPORT_API uint32_t cuda_transport_vm_id(const struct cuda_transport *t);
CUDA_TRANSPORT_API uint32_t cuda_transport_peer_id(const struct cuda_transport *t); /* our ivshmem peer id */
CUDA_TRANSPORT_API int cuda_transport_channel(const struct cuda_transport *t); /* the channel we hold */
CUDA_TRANSPORT_API uint32_t cuda_transport_channel_count(const struct cuda_transport *t); /* the VM's */
CUDA_TRANSPORT_API void cuda_transport_get_stats(const struct cuda_transport *t, struct cuda_transport_stats *stats);

/* Why the last failing function of this thread failed (never NULL). */
CUDA_TRANSPORT_API const char *cuda_transport_last_error(void);
CUDA_TRANSPORT_API const char *cuda_transport_strerror(int err);

#ifdef __cplusplus
}
#endif
#endif /* VGPU_TRANSPORT_H */
