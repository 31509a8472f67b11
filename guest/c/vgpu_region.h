/*
 * The region's wire layout as the transport core uses it (protocol/_layout.py, protocol/_frames.py),
 * protocol 2.0: page 0 is the region header (what is global to the VM), then `channel_count`
 * channel blocks of `channel_size` bytes. A channel block is laid out as a whole 1.x region was
 * (its own header page, submission ring, completion ring, arena), so the ring code only needs the
 * block's base. Private to libvgpu_transport; vgpu_transport.c checks these numbers against the
 * generated protocol/include/vgpu_protocol.h at compile time.
 */
#ifndef VGPU_REGION_H
#define VGPU_REGION_H

#include <stdint.h>

#define VR_MAGIC 0x0044454d55504756ull         /* "VGPUMED\0" little-endian: the region header */
#define VR_CHANNEL_MAGIC 0x004e484355504756ull /* "VGPUCHN\0" little-endian: a channel header */
#define VR_VERSION_MAJOR 2u
#define VR_HEADER_SIZE 4096u
#define VR_SQE_SIZE 192u
#define VR_CQE_SIZE 64u
#define VR_MAX_INLINE_ARGS 160u
#define VR_MAX_INLINE_RESULTS 48u
#define VR_SECTION_ALIGN 4096u
#define VR_MAX_RING_ENTRIES 65536u
#define VR_MAX_CHANNELS 256u
#define VR_ALL_FEATURES 0x1full

/* region header field byte offsets (page 0) */
enum {
    VR_OFF_MAGIC = 0,            /* u64 */
    VR_OFF_VERSION_MAJOR = 8,    /* u16 */
    VR_OFF_VERSION_MINOR = 10,   /* u16 */
    VR_OFF_HEADER_SIZE = 12,     /* u32 */
    VR_OFF_REGION_SIZE = 16,     /* u64 */
    VR_OFF_FEATURES = 24,        /* u64 */
    VR_OFF_VM_ID = 32,           /* u32 */
    VR_OFF_CHANNEL_COUNT = 36,   /* u32 */
    VR_OFF_CHANNEL_SIZE = 40,    /* u64 */
    VR_OFF_CHANNELS_OFFSET = 48, /* u64 */
    VR_OFF_LEASE_MS = 56,        /* u32 */
    VR_OFF_VECTORS = 60,         /* u32 */
    VR_OFF_DEVICE_STATE = 128,   /* u32, host */
    VR_OFF_EPOCH = 132,          /* u32, host */
    VR_OFF_HOST_PEER_ID = 140,   /* u32, host */
};

/* channel header field byte offsets, relative to the channel block (the 1.x header's for the rings) */
enum {
    VC_OFF_MAGIC = 0,              /* u64 */
    VC_OFF_VERSION_MAJOR = 8,      /* u16 */
    VC_OFF_HEADER_SIZE = 12,       /* u32 */
    VC_OFF_REGION_SIZE = 16,       /* u64: the block's size */
    VC_OFF_FEATURES = 24,          /* u64 */
    VC_OFF_SQ_ENTRIES = 36,        /* u32 */
    VC_OFF_CQ_ENTRIES = 40,        /* u32 */
    VC_OFF_SQE_SIZE = 44,          /* u32 */
    VC_OFF_CQE_SIZE = 48,          /* u32 */
    VC_OFF_MAX_INLINE_ARGS = 52,   /* u32 */
    VC_OFF_SQ_OFFSET = 56,         /* u64 */
    VC_OFF_CQ_OFFSET = 64,         /* u64 */
    VC_OFF_ARENA_OFFSET = 72,      /* u64 */
    VC_OFF_ARENA_SIZE = 80,        /* u64 */
    VC_OFF_CHANNEL_INDEX = 88,     /* u32 */
    VC_OFF_CHANNEL_STATE = 128,    /* u32, host */
    VC_OFF_GENERATION = 132,       /* u32, host */
    VC_OFF_HOST_NEED_WAKEUP = 136, /* u32, host */
    VC_OFF_LATCHED_ERROR = 160,    /* u32, host */
    VC_OFF_OPEN_ACK = 164,         /* u32, host */
    VC_OFF_CLOSE_REASON = 168,     /* u32, host */
    VC_OFF_HOST_BUSY = 172,        /* u32, host: +1 every 0.5 s while it serves us */
    VC_OFF_GUEST_NEED_IRQ = 192,   /* u32, guest */
    VC_OFF_GUEST_FEATURES = 200,   /* u64, guest */
    VC_OFF_CALLS_SUBMITTED = 208,  /* u64, guest */
    VC_OFF_OPEN_REQUEST = 216,     /* u32, guest */
    VC_OFF_OWNER_PID = 220,        /* u32, guest */
    VC_OFF_OWNER_PEER = 224,       /* u32, guest */
    VC_OFF_CLOSE_REQUEST = 228,    /* u32, guest */
    VC_OFF_HEARTBEAT = 232,        /* u64, guest */
    VC_OFF_SQ_TAIL = 256,          /* u32, guest */
    VC_OFF_SQ_HEAD = 320,          /* u32, host */
    VC_OFF_CQ_TAIL = 384,          /* u32, host */
    VC_OFF_CQ_HEAD = 448,          /* u32, guest */
};

enum { VR_STATE_UNINITIALIZED = 0, VR_STATE_READY = 1, VR_STATE_RESETTING = 5 };
enum { VC_STATE_FREE = 0, VC_STATE_OPEN = 1, VC_STATE_CLOSED_BY_HOST = 2 };
enum {
    VC_CLOSE_NONE = 0,
    VC_CLOSE_GUEST = 1,
    VC_CLOSE_LEASE_EXPIRED = 2,
    VC_CLOSE_PEER_GONE = 3,
    VC_CLOSE_RESET = 4,
    VC_CLOSE_PROTOCOL_VIOLATION = 5,
};

enum {
    VR_SUBMIT_ASYNC = 1u << 0,
    VR_SUBMIT_CHUNK_MORE = 1u << 1,
    VR_COMPLETE_ASYNC_ERROR = 1u << 0,
    VR_COMPLETE_LATCHED = 1u << 1,
};

/* ivshmem-doorbell BAR0 registers */
enum { VR_BAR0_IVPOSITION = 8, VR_BAR0_DOORBELL = 12 };

/* The two catalog calls the transport itself issues (chunked copies). */
enum { VR_CALL_MEMCPY_HTOD = 0x0035, VR_CALL_MEMCPY_DTOH = 0x0036 };

struct vr_sqe {
    uint32_t seq;
    uint16_t call_id;
    uint16_t flags;
    uint32_t in_off;
    uint32_t in_len;
    uint32_t out_off;
    uint32_t out_cap;
    uint32_t args_len;
    uint32_t reserved;
    uint8_t args[VR_MAX_INLINE_ARGS];
};

struct vr_cqe {
    uint32_t seq;
    uint16_t call_id;
    uint16_t flags;
    uint32_t status;
    uint32_t out_len;
    uint8_t results[VR_MAX_INLINE_RESULTS];
};

_Static_assert(sizeof(struct vr_sqe) == VR_SQE_SIZE, "SQE is 192 bytes");
_Static_assert(sizeof(struct vr_cqe) == VR_CQE_SIZE, "CQE is 64 bytes");

/* memcpy_htod / memcpy_dtoh argument structs (protocol/_catalog.py, packed to 8 bytes) */
struct vr_args_memcpy_htod {
    uint64_t dst;
    uint32_t stream;
    uint32_t pad_;
};
struct vr_args_memcpy_dtoh {
    uint64_t src;
    uint64_t count;
    uint32_t stream;
    uint32_t pad_;
};
_Static_assert(sizeof(struct vr_args_memcpy_htod) == 16, "memcpy_htod args");
_Static_assert(sizeof(struct vr_args_memcpy_dtoh) == 24, "memcpy_dtoh args");

#endif /* VGPU_REGION_H */
