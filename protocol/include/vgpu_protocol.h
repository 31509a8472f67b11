/*
 * vgpu_protocol.h — the vgpu-mediator wire protocol for guests (C11).
 *
 * GENERATED from protocol/ by `python -m protocol`; do not edit. `python -m protocol --check`
 * fails when this file differs from what the catalog generates. The rules (ring discipline,
 * payloads, chunking, errors, versioning) are in docs/protocol.md.
 *
 * All multi-byte values are little-endian. Structs carry explicit padding members (padN_), which
 * must be written as zero; static asserts pin every size and offset.
 */
#ifndef VGPU_PROTOCOL_H
#define VGPU_PROTOCOL_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

/* ---- constants ------------------------------------------------------------------------- */

#define VGPU_MAGIC UINT64_C(0x0044454d55504756) /* "VGPUMED\0" little-endian */
#define VGPU_CHANNEL_MAGIC UINT64_C(0x004e484355504756) /* "VGPUCHN\0" little-endian */
#define VGPU_VERSION_MAJOR 2u
#define VGPU_VERSION_MINOR 2u
#define VGPU_HEADER_SIZE 4096u
#define VGPU_SQE_SIZE 192u
#define VGPU_CQE_SIZE 64u
#define VGPU_MAX_INLINE_ARGS 160u
#define VGPU_MAX_INLINE_RESULTS 48u
#define VGPU_SECTION_ALIGN 4096u /* rings and arena start on this boundary */
#define VGPU_MIN_ARENA 65536u
#define VGPU_MAX_RING_ENTRIES 65536u
#define VGPU_MIN_REGION_SIZE UINT64_C(131072)
#define VGPU_MAX_REGION_SIZE UINT64_C(1099511627776)
#define VGPU_MAX_CHANNELS 256u
#define VGPU_DEFAULT_LEASE_MS 800u
#define VGPU_MIN_LEASE_MS 40u

/* feature bits (header `features`, `guest_features`) */
#define VGPU_FEATURE_NEED_WAKEUP UINT64_C(0x1)
#define VGPU_FEATURE_ASYNC_CALLS UINT64_C(0x2)
#define VGPU_FEATURE_CHUNKED_COPY UINT64_C(0x4)
#define VGPU_FEATURE_GUEST_IRQ UINT64_C(0x8)
#define VGPU_FEATURE_CHANNELS UINT64_C(0x10)
#define VGPU_ALL_FEATURES UINT64_C(0x1f)

/* submission flags (SQE `flags`) */
#define VGPU_SUBMIT_ASYNC 0x0001u
#define VGPU_SUBMIT_CHUNK_MORE 0x0002u

/* completion flags (CQE `flags`) */
#define VGPU_COMPLETE_ASYNC_ERROR 0x0001u
#define VGPU_COMPLETE_LATCHED 0x0002u

/* the host-owned `device_state` word */
enum vgpu_device_state {
    VGPU_DEVICE_STATE_UNINITIALIZED = 0,
    VGPU_DEVICE_STATE_READY = 1,
    VGPU_DEVICE_STATE_DRAINING = 2,
    VGPU_DEVICE_STATE_STOPPED = 3,
    VGPU_DEVICE_STATE_BROKEN = 4,
    VGPU_DEVICE_STATE_RESETTING = 5,
};

/* the host-owned `channel_state` word of a channel header */
enum vgpu_channel_state {
    VGPU_CHANNEL_FREE = 0,
    VGPU_CHANNEL_OPEN = 1,
    VGPU_CHANNEL_CLOSED_BY_HOST = 2,
};

/* the host-owned `close_reason` word of a channel header */
enum vgpu_close_reason {
    VGPU_CLOSE_NONE = 0,
    VGPU_CLOSE_GUEST_CLOSE = 1,
    VGPU_CLOSE_LEASE_EXPIRED = 2,
    VGPU_CLOSE_PEER_GONE = 3,
    VGPU_CLOSE_RESET = 4,
    VGPU_CLOSE_PROTOCOL_VIOLATION = 5,
};

/* ---- the region header (first VGPU_HEADER_SIZE bytes of the region) ------------------- */

/* byte offsets of the region header's fields */
#define VGPU_REG_MAGIC 0u /* uint64_t, host (lay-out) */
#define VGPU_REG_VERSION_MAJOR 8u /* uint16_t, host (lay-out) */
#define VGPU_REG_VERSION_MINOR 10u /* uint16_t, host (lay-out) */
#define VGPU_REG_HEADER_SIZE 12u /* uint32_t, host (lay-out) */
#define VGPU_REG_REGION_SIZE 16u /* uint64_t, host (lay-out) */
#define VGPU_REG_FEATURES 24u /* uint64_t, host (lay-out) */
#define VGPU_REG_VM_ID 32u /* uint32_t, host (lay-out) */
#define VGPU_REG_CHANNEL_COUNT 36u /* uint32_t, host (lay-out) */
#define VGPU_REG_CHANNEL_SIZE 40u /* uint64_t, host (lay-out) */
#define VGPU_REG_CHANNELS_OFFSET 48u /* uint64_t, host (lay-out) */
#define VGPU_REG_LEASE_MS 56u /* uint32_t, host (lay-out) */
#define VGPU_REG_VECTORS 60u /* uint32_t, host (lay-out) */
#define VGPU_REG_PINNED_OFFSET 64u /* uint64_t, host (lay-out) */
#define VGPU_REG_PINNED_SIZE 72u /* uint64_t, host (lay-out) */
#define VGPU_REG_DEVICE_STATE 128u /* uint32_t, host */
#define VGPU_REG_EPOCH 132u /* uint32_t, host */
#define VGPU_REG_HOST_PEER_ID 140u /* uint32_t, host */

struct vgpu_region_header {
    uint64_t magic;                     /* host (lay-out) */
    uint16_t version_major;             /* host (lay-out) */
    uint16_t version_minor;             /* host (lay-out) */
    uint32_t header_size;               /* host (lay-out) */
    uint64_t region_size;               /* host (lay-out) */
    uint64_t features;                  /* host (lay-out) */
    uint32_t vm_id;                     /* host (lay-out) */
    uint32_t channel_count;             /* host (lay-out) */
    uint64_t channel_size;              /* host (lay-out) */
    uint64_t channels_offset;           /* host (lay-out) */
    uint32_t lease_ms;                  /* host (lay-out) */
    uint32_t vectors;                   /* host (lay-out) */
    uint64_t pinned_offset;             /* host (lay-out) */
    uint64_t pinned_size;               /* host (lay-out) */
    uint8_t pad0_[48];
    uint32_t device_state;              /* host */
    uint32_t epoch;                     /* host */
    uint8_t pad1_[4];
    uint32_t host_peer_id;              /* host */
    uint8_t pad2_[3952];
};
static_assert(sizeof(struct vgpu_region_header) == 4096, "struct vgpu_region_header is 4096 bytes");
static_assert(offsetof(struct vgpu_region_header, magic) == 0, "vgpu_region_header.magic offset");
static_assert(offsetof(struct vgpu_region_header, version_major) == 8, "vgpu_region_header.version_major offset");
static_assert(offsetof(struct vgpu_region_header, version_minor) == 10, "vgpu_region_header.version_minor offset");
static_assert(offsetof(struct vgpu_region_header, header_size) == 12, "vgpu_region_header.header_size offset");
static_assert(offsetof(struct vgpu_region_header, region_size) == 16, "vgpu_region_header.region_size offset");
static_assert(offsetof(struct vgpu_region_header, features) == 24, "vgpu_region_header.features offset");
static_assert(offsetof(struct vgpu_region_header, vm_id) == 32, "vgpu_region_header.vm_id offset");
static_assert(offsetof(struct vgpu_region_header, channel_count) == 36, "vgpu_region_header.channel_count offset");
static_assert(offsetof(struct vgpu_region_header, channel_size) == 40, "vgpu_region_header.channel_size offset");
static_assert(offsetof(struct vgpu_region_header, channels_offset) == 48, "vgpu_region_header.channels_offset offset");
static_assert(offsetof(struct vgpu_region_header, lease_ms) == 56, "vgpu_region_header.lease_ms offset");
static_assert(offsetof(struct vgpu_region_header, vectors) == 60, "vgpu_region_header.vectors offset");
static_assert(offsetof(struct vgpu_region_header, pinned_offset) == 64, "vgpu_region_header.pinned_offset offset");
static_assert(offsetof(struct vgpu_region_header, pinned_size) == 72, "vgpu_region_header.pinned_size offset");
static_assert(offsetof(struct vgpu_region_header, device_state) == 128, "vgpu_region_header.device_state offset");
static_assert(offsetof(struct vgpu_region_header, epoch) == 132, "vgpu_region_header.epoch offset");
static_assert(offsetof(struct vgpu_region_header, host_peer_id) == 140, "vgpu_region_header.host_peer_id offset");

/* ---- a channel header (first VGPU_HEADER_SIZE bytes of channel c's block, which starts at
 * region offset channels_offset + c * channel_size; offsets below are block-relative) ---- */

/* byte offsets of the channel header's fields */
#define VGPU_CHN_MAGIC 0u /* uint64_t, host (lay-out) */
#define VGPU_CHN_VERSION_MAJOR 8u /* uint16_t, host (lay-out) */
#define VGPU_CHN_VERSION_MINOR 10u /* uint16_t, host (lay-out) */
#define VGPU_CHN_HEADER_SIZE 12u /* uint32_t, host (lay-out) */
#define VGPU_CHN_REGION_SIZE 16u /* uint64_t, host (lay-out) */
#define VGPU_CHN_FEATURES 24u /* uint64_t, host (lay-out) */
#define VGPU_CHN_VM_ID 32u /* uint32_t, host (lay-out) */
#define VGPU_CHN_SQ_ENTRIES 36u /* uint32_t, host (lay-out) */
#define VGPU_CHN_CQ_ENTRIES 40u /* uint32_t, host (lay-out) */
#define VGPU_CHN_SQE_SIZE 44u /* uint32_t, host (lay-out) */
#define VGPU_CHN_CQE_SIZE 48u /* uint32_t, host (lay-out) */
#define VGPU_CHN_MAX_INLINE_ARGS 52u /* uint32_t, host (lay-out) */
#define VGPU_CHN_SQ_OFFSET 56u /* uint64_t, host (lay-out) */
#define VGPU_CHN_CQ_OFFSET 64u /* uint64_t, host (lay-out) */
#define VGPU_CHN_ARENA_OFFSET 72u /* uint64_t, host (lay-out) */
#define VGPU_CHN_ARENA_SIZE 80u /* uint64_t, host (lay-out) */
#define VGPU_CHN_CHANNEL_INDEX 88u /* uint32_t, host (lay-out) */
#define VGPU_CHN_CHANNEL_STATE 128u /* uint32_t, host */
#define VGPU_CHN_GENERATION 132u /* uint32_t, host */
#define VGPU_CHN_HOST_NEED_WAKEUP 136u /* uint32_t, host */
#define VGPU_CHN_CALLS_COMPLETED 144u /* uint64_t, host */
#define VGPU_CHN_CALLS_FAILED 152u /* uint64_t, host */
#define VGPU_CHN_LATCHED_ERROR 160u /* uint32_t, host */
#define VGPU_CHN_OPEN_ACK 164u /* uint32_t, host */
#define VGPU_CHN_CLOSE_REASON 168u /* uint32_t, host */
#define VGPU_CHN_HOST_BUSY 172u /* uint32_t, host */
#define VGPU_CHN_GUEST_NEED_IRQ 192u /* uint32_t, guest */
#define VGPU_CHN_GUEST_FEATURES 200u /* uint64_t, guest */
#define VGPU_CHN_CALLS_SUBMITTED 208u /* uint64_t, guest */
#define VGPU_CHN_OPEN_REQUEST 216u /* uint32_t, guest */
#define VGPU_CHN_OWNER_PID 220u /* uint32_t, guest */
#define VGPU_CHN_OWNER_PEER 224u /* uint32_t, guest */
#define VGPU_CHN_CLOSE_REQUEST 228u /* uint32_t, guest */
#define VGPU_CHN_HEARTBEAT 232u /* uint64_t, guest */
#define VGPU_CHN_SQ_TAIL 256u /* uint32_t, guest */
#define VGPU_CHN_SQ_HEAD 320u /* uint32_t, host */
#define VGPU_CHN_CQ_TAIL 384u /* uint32_t, host */
#define VGPU_CHN_CQ_HEAD 448u /* uint32_t, guest */

struct vgpu_channel_header {
    uint64_t magic;                     /* host (lay-out) */
    uint16_t version_major;             /* host (lay-out) */
    uint16_t version_minor;             /* host (lay-out) */
    uint32_t header_size;               /* host (lay-out) */
    uint64_t region_size;               /* host (lay-out) */
    uint64_t features;                  /* host (lay-out) */
    uint32_t vm_id;                     /* host (lay-out) */
    uint32_t sq_entries;                /* host (lay-out) */
    uint32_t cq_entries;                /* host (lay-out) */
    uint32_t sqe_size;                  /* host (lay-out) */
    uint32_t cqe_size;                  /* host (lay-out) */
    uint32_t max_inline_args;           /* host (lay-out) */
    uint64_t sq_offset;                 /* host (lay-out) */
    uint64_t cq_offset;                 /* host (lay-out) */
    uint64_t arena_offset;              /* host (lay-out) */
    uint64_t arena_size;                /* host (lay-out) */
    uint32_t channel_index;             /* host (lay-out) */
    uint8_t pad0_[36];
    uint32_t channel_state;             /* host */
    uint32_t generation;                /* host */
    uint32_t host_need_wakeup;          /* host */
    uint8_t pad1_[4];
    uint64_t calls_completed;           /* host */
    uint64_t calls_failed;              /* host */
    uint32_t latched_error;             /* host */
    uint32_t open_ack;                  /* host */
    uint32_t close_reason;              /* host */
    uint32_t host_busy;                 /* host */
    uint8_t pad2_[16];
    uint32_t guest_need_irq;            /* guest */
    uint8_t pad3_[4];
    uint64_t guest_features;            /* guest */
    uint64_t calls_submitted;           /* guest */
    uint32_t open_request;              /* guest */
    uint32_t owner_pid;                 /* guest */
    uint32_t owner_peer;                /* guest */
    uint32_t close_request;             /* guest */
    uint64_t heartbeat;                 /* guest */
    uint8_t pad4_[16];
    uint32_t sq_tail;                   /* guest */
    uint8_t pad5_[60];
    uint32_t sq_head;                   /* host */
    uint8_t pad6_[60];
    uint32_t cq_tail;                   /* host */
    uint8_t pad7_[60];
    uint32_t cq_head;                   /* guest */
    uint8_t pad8_[3644];
};
static_assert(sizeof(struct vgpu_channel_header) == 4096, "struct vgpu_channel_header is 4096 bytes");
static_assert(offsetof(struct vgpu_channel_header, magic) == 0, "vgpu_channel_header.magic offset");
static_assert(offsetof(struct vgpu_channel_header, version_major) == 8, "vgpu_channel_header.version_major offset");
static_assert(offsetof(struct vgpu_channel_header, version_minor) == 10, "vgpu_channel_header.version_minor offset");
static_assert(offsetof(struct vgpu_channel_header, header_size) == 12, "vgpu_channel_header.header_size offset");
static_assert(offsetof(struct vgpu_channel_header, region_size) == 16, "vgpu_channel_header.region_size offset");
static_assert(offsetof(struct vgpu_channel_header, features) == 24, "vgpu_channel_header.features offset");
static_assert(offsetof(struct vgpu_channel_header, vm_id) == 32, "vgpu_channel_header.vm_id offset");
static_assert(offsetof(struct vgpu_channel_header, sq_entries) == 36, "vgpu_channel_header.sq_entries offset");
static_assert(offsetof(struct vgpu_channel_header, cq_entries) == 40, "vgpu_channel_header.cq_entries offset");
static_assert(offsetof(struct vgpu_channel_header, sqe_size) == 44, "vgpu_channel_header.sqe_size offset");
static_assert(offsetof(struct vgpu_channel_header, cqe_size) == 48, "vgpu_channel_header.cqe_size offset");
static_assert(offsetof(struct vgpu_channel_header, max_inline_args) == 52, "vgpu_channel_header.max_inline_args offset");
static_assert(offsetof(struct vgpu_channel_header, sq_offset) == 56, "vgpu_channel_header.sq_offset offset");
static_assert(offsetof(struct vgpu_channel_header, cq_offset) == 64, "vgpu_channel_header.cq_offset offset");
static_assert(offsetof(struct vgpu_channel_header, arena_offset) == 72, "vgpu_channel_header.arena_offset offset");
static_assert(offsetof(struct vgpu_channel_header, arena_size) == 80, "vgpu_channel_header.arena_size offset");
static_assert(offsetof(struct vgpu_channel_header, channel_index) == 88, "vgpu_channel_header.channel_index offset");
static_assert(offsetof(struct vgpu_channel_header, channel_state) == 128, "vgpu_channel_header.channel_state offset");
static_assert(offsetof(struct vgpu_channel_header, generation) == 132, "vgpu_channel_header.generation offset");
static_assert(offsetof(struct vgpu_channel_header, host_need_wakeup) == 136, "vgpu_channel_header.host_need_wakeup offset");
static_assert(offsetof(struct vgpu_channel_header, calls_completed) == 144, "vgpu_channel_header.calls_completed offset");
static_assert(offsetof(struct vgpu_channel_header, calls_failed) == 152, "vgpu_channel_header.calls_failed offset");
static_assert(offsetof(struct vgpu_channel_header, latched_error) == 160, "vgpu_channel_header.latched_error offset");
static_assert(offsetof(struct vgpu_channel_header, open_ack) == 164, "vgpu_channel_header.open_ack offset");
static_assert(offsetof(struct vgpu_channel_header, close_reason) == 168, "vgpu_channel_header.close_reason offset");
static_assert(offsetof(struct vgpu_channel_header, host_busy) == 172, "vgpu_channel_header.host_busy offset");
static_assert(offsetof(struct vgpu_channel_header, guest_need_irq) == 192, "vgpu_channel_header.guest_need_irq offset");
static_assert(offsetof(struct vgpu_channel_header, guest_features) == 200, "vgpu_channel_header.guest_features offset");
static_assert(offsetof(struct vgpu_channel_header, calls_submitted) == 208, "vgpu_channel_header.calls_submitted offset");
static_assert(offsetof(struct vgpu_channel_header, open_request) == 216, "vgpu_channel_header.open_request offset");
static_assert(offsetof(struct vgpu_channel_header, owner_pid) == 220, "vgpu_channel_header.owner_pid offset");
static_assert(offsetof(struct vgpu_channel_header, owner_peer) == 224, "vgpu_channel_header.owner_peer offset");
static_assert(offsetof(struct vgpu_channel_header, close_request) == 228, "vgpu_channel_header.close_request offset");
static_assert(offsetof(struct vgpu_channel_header, heartbeat) == 232, "vgpu_channel_header.heartbeat offset");
static_assert(offsetof(struct vgpu_channel_header, sq_tail) == 256, "vgpu_channel_header.sq_tail offset");
static_assert(offsetof(struct vgpu_channel_header, sq_head) == 320, "vgpu_channel_header.sq_head offset");
static_assert(offsetof(struct vgpu_channel_header, cq_tail) == 384, "vgpu_channel_header.cq_tail offset");
static_assert(offsetof(struct vgpu_channel_header, cq_head) == 448, "vgpu_channel_header.cq_head offset");

/* ---- ring entries ---------------------------------------------------------------------- */

struct vgpu_sqe {
    uint32_t seq;
    uint16_t call_id;
    uint16_t flags;
    uint32_t in_off;
    uint32_t in_len;
    uint32_t out_off;
    uint32_t out_cap;
    uint32_t args_len;
    uint32_t reserved;
    uint8_t args[160];
};
static_assert(sizeof(struct vgpu_sqe) == 192, "struct vgpu_sqe is 192 bytes");
static_assert(offsetof(struct vgpu_sqe, seq) == 0, "vgpu_sqe.seq offset");
static_assert(offsetof(struct vgpu_sqe, call_id) == 4, "vgpu_sqe.call_id offset");
static_assert(offsetof(struct vgpu_sqe, flags) == 6, "vgpu_sqe.flags offset");
static_assert(offsetof(struct vgpu_sqe, in_off) == 8, "vgpu_sqe.in_off offset");
static_assert(offsetof(struct vgpu_sqe, in_len) == 12, "vgpu_sqe.in_len offset");
static_assert(offsetof(struct vgpu_sqe, out_off) == 16, "vgpu_sqe.out_off offset");
static_assert(offsetof(struct vgpu_sqe, out_cap) == 20, "vgpu_sqe.out_cap offset");
static_assert(offsetof(struct vgpu_sqe, args_len) == 24, "vgpu_sqe.args_len offset");
static_assert(offsetof(struct vgpu_sqe, reserved) == 28, "vgpu_sqe.reserved offset");
static_assert(offsetof(struct vgpu_sqe, args) == 32, "vgpu_sqe.args offset");

struct vgpu_cqe {
    uint32_t seq;
    uint16_t call_id;
    uint16_t flags;
    uint32_t status;
    uint32_t out_len;
    uint8_t results[48];
};
static_assert(sizeof(struct vgpu_cqe) == 64, "struct vgpu_cqe is 64 bytes");
static_assert(offsetof(struct vgpu_cqe, seq) == 0, "vgpu_cqe.seq offset");
static_assert(offsetof(struct vgpu_cqe, call_id) == 4, "vgpu_cqe.call_id offset");
static_assert(offsetof(struct vgpu_cqe, flags) == 6, "vgpu_cqe.flags offset");
static_assert(offsetof(struct vgpu_cqe, status) == 8, "vgpu_cqe.status offset");
static_assert(offsetof(struct vgpu_cqe, out_len) == 12, "vgpu_cqe.out_len offset");
static_assert(offsetof(struct vgpu_cqe, results) == 16, "vgpu_cqe.results offset");

/* ---- status codes and enumerations (CUDA's values, VGPU_-prefixed names) -------------- */

/* CUresult */
enum vgpu_curesult {
    VGPU_CUDA_SUCCESS = 0,
    VGPU_CUDA_ERROR_INVALID_VALUE = 1,
    VGPU_CUDA_ERROR_OUT_OF_MEMORY = 2,
    VGPU_CUDA_ERROR_NOT_INITIALIZED = 3,
    VGPU_CUDA_ERROR_DEINITIALIZED = 4,
    VGPU_CUDA_ERROR_NO_DEVICE = 100,
    VGPU_CUDA_ERROR_INVALID_DEVICE = 101,
    VGPU_CUDA_ERROR_INVALID_IMAGE = 200,
    VGPU_CUDA_ERROR_INVALID_CONTEXT = 201,
    VGPU_CUDA_ERROR_MAP_FAILED = 205,
    VGPU_CUDA_ERROR_UNMAP_FAILED = 206,
    VGPU_CUDA_ERROR_ALREADY_MAPPED = 208,
    VGPU_CUDA_ERROR_NO_BINARY_FOR_GPU = 209,
    VGPU_CUDA_ERROR_NOT_MAPPED = 211,
    VGPU_CUDA_ERROR_INVALID_PTX = 218,
    VGPU_CUDA_ERROR_INVALID_SOURCE = 300,
    VGPU_CUDA_ERROR_INVALID_HANDLE = 400,
    VGPU_CUDA_ERROR_ILLEGAL_STATE = 401,
    VGPU_CUDA_ERROR_NOT_FOUND = 500,
    VGPU_CUDA_ERROR_NOT_READY = 600,
    VGPU_CUDA_ERROR_ILLEGAL_ADDRESS = 700,
    VGPU_CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES = 701,
    VGPU_CUDA_ERROR_LAUNCH_TIMEOUT = 702,
    VGPU_CUDA_ERROR_CONTEXT_IS_DESTROYED = 709,
    VGPU_CUDA_ERROR_ASSERT = 710,
    VGPU_CUDA_ERROR_MISALIGNED_ADDRESS = 716,
    VGPU_CUDA_ERROR_LAUNCH_FAILED = 719,
    VGPU_CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE = 720,
    VGPU_CUDA_ERROR_NOT_PERMITTED = 800,
    VGPU_CUDA_ERROR_NOT_SUPPORTED = 801,
    VGPU_CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED = 900,
    VGPU_CUDA_ERROR_STREAM_CAPTURE_INVALIDATED = 901,
    VGPU_CUDA_ERROR_STREAM_CAPTURE_UNMATCHED = 903,
    VGPU_CUDA_ERROR_STREAM_CAPTURE_UNJOINED = 904,
    VGPU_CUDA_ERROR_STREAM_CAPTURE_ISOLATION = 905,
    VGPU_CUDA_ERROR_STREAM_CAPTURE_IMPLICIT = 906,
    VGPU_CUDA_ERROR_CAPTURED_EVENT = 907,
    VGPU_CUDA_ERROR_STREAM_CAPTURE_WRONG_THREAD = 908,
    VGPU_CUDA_ERROR_TIMEOUT = 909,
    VGPU_CUDA_ERROR_INVALID_CLUSTER_SIZE = 912,
    VGPU_CUDA_ERROR_UNKNOWN = 999,
};

/* cublasStatus_t */
enum vgpu_cublas_status {
    VGPU_CUBLAS_STATUS_SUCCESS = 0,
    VGPU_CUBLAS_STATUS_NOT_INITIALIZED = 1,
    VGPU_CUBLAS_STATUS_ALLOC_FAILED = 3,
    VGPU_CUBLAS_STATUS_INVALID_VALUE = 7,
    VGPU_CUBLAS_STATUS_ARCH_MISMATCH = 8,
    VGPU_CUBLAS_STATUS_MAPPING_ERROR = 11,
    VGPU_CUBLAS_STATUS_EXECUTION_FAILED = 13,
    VGPU_CUBLAS_STATUS_INTERNAL_ERROR = 14,
    VGPU_CUBLAS_STATUS_NOT_SUPPORTED = 15,
};

/* CUmemAllocationGranularity_flags */
enum vgpu_mem_alloc_granularity {
    VGPU_CU_MEM_ALLOC_GRANULARITY_MINIMUM = 0,
    VGPU_CU_MEM_ALLOC_GRANULARITY_RECOMMENDED = 1,
};

/* CUmemAccess_flags */
enum vgpu_mem_access_flags {
    VGPU_CU_MEM_ACCESS_FLAGS_PROT_NONE = 0,
    VGPU_CU_MEM_ACCESS_FLAGS_PROT_READ = 1,
    VGPU_CU_MEM_ACCESS_FLAGS_PROT_READWRITE = 3,
};

/* CUstreamCaptureMode */
enum vgpu_stream_capture_mode {
    VGPU_CU_STREAM_CAPTURE_MODE_GLOBAL = 0,
    VGPU_CU_STREAM_CAPTURE_MODE_THREAD_LOCAL = 1,
    VGPU_CU_STREAM_CAPTURE_MODE_RELAXED = 2,
};

/* CUstreamCaptureStatus */
enum vgpu_stream_capture_status {
    VGPU_CU_STREAM_CAPTURE_STATUS_NONE = 0,
    VGPU_CU_STREAM_CAPTURE_STATUS_ACTIVE = 1,
    VGPU_CU_STREAM_CAPTURE_STATUS_INVALIDATED = 2,
};

/* CUfunction_attribute */
enum vgpu_function_attribute {
    VGPU_CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK = 0,
    VGPU_CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES = 1,
    VGPU_CU_FUNC_ATTRIBUTE_CONST_SIZE_BYTES = 2,
    VGPU_CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES = 3,
    VGPU_CU_FUNC_ATTRIBUTE_NUM_REGS = 4,
    VGPU_CU_FUNC_ATTRIBUTE_PTX_VERSION = 5,
    VGPU_CU_FUNC_ATTRIBUTE_BINARY_VERSION = 6,
    VGPU_CU_FUNC_ATTRIBUTE_CACHE_MODE_CA = 7,
    VGPU_CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8,
    VGPU_CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT = 9,
    VGPU_CU_FUNC_ATTRIBUTE_CLUSTER_SIZE_MUST_BE_SET = 10,
    VGPU_CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_WIDTH = 11,
    VGPU_CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_HEIGHT = 12,
    VGPU_CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_DEPTH = 13,
    VGPU_CU_FUNC_ATTRIBUTE_NON_PORTABLE_CLUSTER_SIZE_ALLOWED = 14,
    VGPU_CU_FUNC_ATTRIBUTE_CLUSTER_SCHEDULING_POLICY_PREFERENCE = 15,
};

/* cublasOperation_t */
enum vgpu_cublas_operation {
    VGPU_CUBLAS_OP_N = 0,
    VGPU_CUBLAS_OP_T = 1,
    VGPU_CUBLAS_OP_C = 2,
};

/* cudaDataType_t */
enum vgpu_cuda_data_type {
    VGPU_CUDA_R_32F = 0,
    VGPU_CUDA_R_64F = 1,
    VGPU_CUDA_R_16F = 2,
    VGPU_CUDA_R_8I = 3,
    VGPU_CUDA_C_32F = 4,
    VGPU_CUDA_C_64F = 5,
    VGPU_CUDA_C_8I = 7,
    VGPU_CUDA_R_32I = 10,
    VGPU_CUDA_R_16BF = 14,
};

/* cublasComputeType_t */
enum vgpu_cublas_compute_type {
    VGPU_CUBLAS_COMPUTE_16F = 64,
    VGPU_CUBLAS_COMPUTE_16F_PEDANTIC = 65,
    VGPU_CUBLAS_COMPUTE_32F = 68,
    VGPU_CUBLAS_COMPUTE_32F_PEDANTIC = 69,
    VGPU_CUBLAS_COMPUTE_64F = 70,
    VGPU_CUBLAS_COMPUTE_64F_PEDANTIC = 71,
    VGPU_CUBLAS_COMPUTE_32I = 72,
    VGPU_CUBLAS_COMPUTE_32I_PEDANTIC = 73,
    VGPU_CUBLAS_COMPUTE_32F_FAST_16F = 74,
    VGPU_CUBLAS_COMPUTE_32F_FAST_16BF = 75,
    VGPU_CUBLAS_COMPUTE_32F_FAST_TF32 = 77,
};

/* cublasSideMode_t */
enum vgpu_cublas_side_mode {
    VGPU_CUBLAS_SIDE_LEFT = 0,
    VGPU_CUBLAS_SIDE_RIGHT = 1,
};

/* cublasFillMode_t */
enum vgpu_cublas_fill_mode {
    VGPU_CUBLAS_FILL_MODE_LOWER = 0,
    VGPU_CUBLAS_FILL_MODE_UPPER = 1,
};

/* cublasDiagType_t */
enum vgpu_cublas_diag_type {
    VGPU_CUBLAS_DIAG_NON_UNIT = 0,
    VGPU_CUBLAS_DIAG_UNIT = 1,
};

/* ---- call ids ------------------------------------------------------------------------- */

#define VGPU_CALL_NOP 0x0001 /* vgpuNop */
#define VGPU_CALL_INIT 0x0010 /* cuInit */
#define VGPU_CALL_DRIVER_GET_VERSION 0x0011 /* cuDriverGetVersion */
#define VGPU_CALL_DEVICE_GET_COUNT 0x0012 /* cuDeviceGetCount */
#define VGPU_CALL_DEVICE_GET 0x0013 /* cuDeviceGet */
#define VGPU_CALL_DEVICE_GET_NAME 0x0014 /* cuDeviceGetName */
#define VGPU_CALL_DEVICE_GET_ATTRIBUTE 0x0015 /* cuDeviceGetAttribute */
#define VGPU_CALL_DEVICE_TOTAL_MEM 0x0016 /* cuDeviceTotalMem_v2 */
#define VGPU_CALL_DEVICE_GET_UUID 0x0017 /* cuDeviceGetUuid_v2 */
#define VGPU_CALL_DEVICE_GET_PCI_BUS_ID 0x0018 /* cuDeviceGetPCIBusId */
#define VGPU_CALL_PRIMARY_CTX_RETAIN 0x0020 /* cuDevicePrimaryCtxRetain */
#define VGPU_CALL_PRIMARY_CTX_RELEASE 0x0021 /* cuDevicePrimaryCtxRelease_v2 */
#define VGPU_CALL_CTX_CREATE 0x0022 /* cuCtxCreate_v2 */
#define VGPU_CALL_CTX_DESTROY 0x0023 /* cuCtxDestroy_v2 */
#define VGPU_CALL_CTX_SET_CURRENT 0x0024 /* cuCtxSetCurrent */
#define VGPU_CALL_CTX_GET_CURRENT 0x0025 /* cuCtxGetCurrent */
#define VGPU_CALL_CTX_SYNCHRONIZE 0x0026 /* cuCtxSynchronize, synchronizing */
#define VGPU_CALL_MEM_GET_INFO 0x0027 /* cuMemGetInfo_v2 */
#define VGPU_CALL_MEM_ALLOC 0x0030 /* cuMemAlloc_v2 */
#define VGPU_CALL_MEM_FREE 0x0031 /* cuMemFree_v2 */
#define VGPU_CALL_MEMSET_D8 0x0032 /* cuMemsetD8Async, async-capable */
#define VGPU_CALL_MEMSET_D16 0x0033 /* cuMemsetD16Async, async-capable */
#define VGPU_CALL_MEMSET_D32 0x0034 /* cuMemsetD32Async, async-capable */
#define VGPU_CALL_MEMCPY_HTOD 0x0035 /* cuMemcpyHtoDAsync_v2, async-capable */
#define VGPU_CALL_MEMCPY_DTOH 0x0036 /* cuMemcpyDtoHAsync_v2, async-capable */
#define VGPU_CALL_MEMCPY_DTOD 0x0037 /* cuMemcpyDtoDAsync_v2, async-capable */
#define VGPU_CALL_MEM_HOST_ALLOC 0x0038 /* cuMemHostAlloc */
#define VGPU_CALL_MEM_FREE_HOST 0x0039 /* cuMemFreeHost */
#define VGPU_CALL_MEMCPY_HTOD_PINNED 0x003a /* cuMemcpyHtoDAsync_v2, async-capable */
#define VGPU_CALL_MEMCPY_DTOH_PINNED 0x003b /* cuMemcpyDtoHAsync_v2, async-capable */
#define VGPU_CALL_MEM_HOST_ALIAS 0x003c /* cuMemHostGetDevicePointer_v2 */
#define VGPU_CALL_MEM_GET_ALLOCATION_GRANULARITY 0x0040 /* cuMemGetAllocationGranularity */
#define VGPU_CALL_MEM_CREATE 0x0041 /* cuMemCreate */
#define VGPU_CALL_MEM_RELEASE 0x0042 /* cuMemRelease */
#define VGPU_CALL_MEM_ADDRESS_RESERVE 0x0043 /* cuMemAddressReserve */
#define VGPU_CALL_MEM_ADDRESS_FREE 0x0044 /* cuMemAddressFree */
#define VGPU_CALL_MEM_MAP 0x0045 /* cuMemMap */
#define VGPU_CALL_MEM_UNMAP 0x0046 /* cuMemUnmap */
#define VGPU_CALL_MEM_SET_ACCESS 0x0047 /* cuMemSetAccess */
#define VGPU_CALL_STREAM_CREATE 0x0050 /* cuStreamCreate */
#define VGPU_CALL_STREAM_DESTROY 0x0051 /* cuStreamDestroy_v2 */
#define VGPU_CALL_STREAM_SYNCHRONIZE 0x0052 /* cuStreamSynchronize, synchronizing */
#define VGPU_CALL_STREAM_QUERY 0x0053 /* cuStreamQuery */
#define VGPU_CALL_STREAM_WAIT_EVENT 0x0054 /* cuStreamWaitEvent, async-capable */
#define VGPU_CALL_EVENT_CREATE 0x0060 /* cuEventCreate */
#define VGPU_CALL_EVENT_DESTROY 0x0061 /* cuEventDestroy_v2 */
#define VGPU_CALL_EVENT_RECORD 0x0062 /* cuEventRecord, async-capable */
#define VGPU_CALL_EVENT_SYNCHRONIZE 0x0063 /* cuEventSynchronize, synchronizing */
#define VGPU_CALL_EVENT_QUERY 0x0064 /* cuEventQuery */
#define VGPU_CALL_EVENT_ELAPSED_TIME 0x0065 /* cuEventElapsedTime */
#define VGPU_CALL_EVENT_RECORD_WITH_FLAGS 0x0066 /* cuEventRecordWithFlags, async-capable */
#define VGPU_CALL_MODULE_LOAD_DATA 0x0070 /* cuModuleLoadData */
#define VGPU_CALL_MODULE_UNLOAD 0x0071 /* cuModuleUnload */
#define VGPU_CALL_MODULE_GET_FUNCTION 0x0072 /* cuModuleGetFunction */
#define VGPU_CALL_MODULE_GET_GLOBAL 0x0073 /* cuModuleGetGlobal_v2 */
#define VGPU_CALL_FUNC_GET_PARAM_INFO 0x0074 /* cuFuncGetParamInfo */
#define VGPU_CALL_FUNC_GET_PARAM_LAYOUT 0x0075 /* vgpuFuncGetParamLayout */
#define VGPU_CALL_LAUNCH_KERNEL 0x0076 /* cuLaunchKernel, async-capable */
#define VGPU_CALL_FUNC_GET_ATTRIBUTE 0x0077 /* cuFuncGetAttribute */
#define VGPU_CALL_FUNC_SET_ATTRIBUTE 0x0078 /* cuFuncSetAttribute */
#define VGPU_CALL_LAUNCH_COOPERATIVE_KERNEL 0x0079 /* cuLaunchCooperativeKernel, async-capable */
#define VGPU_CALL_LAUNCH_CLUSTER_KERNEL 0x007e /* cuLaunchKernelEx, async-capable */
#define VGPU_CALL_MODULE_UPLOAD_BEGIN 0x007a /* vgpuModuleUploadBegin */
#define VGPU_CALL_MODULE_UPLOAD_CHUNK 0x007b /* vgpuModuleUploadChunk */
#define VGPU_CALL_MODULE_LOAD_UPLOAD 0x007c /* vgpuModuleLoadUpload */
#define VGPU_CALL_FUNC_OCCUPANCY 0x007d /* cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags */
#define VGPU_CALL_CUBLAS_CREATE 0x0080 /* cublasCreate_v2, status is cublasStatus_t */
#define VGPU_CALL_CUBLAS_DESTROY 0x0081 /* cublasDestroy_v2, status is cublasStatus_t */
#define VGPU_CALL_CUBLAS_SET_STREAM 0x0082 /* cublasSetStream_v2, status is cublasStatus_t */
#define VGPU_CALL_CUBLAS_SET_MATH_MODE 0x0083 /* cublasSetMathMode, status is cublasStatus_t */
#define VGPU_CALL_CUBLAS_SGEMM 0x0084 /* cublasSgemm_v2, async-capable, status is cublasStatus_t */
#define VGPU_CALL_CUBLAS_GEMM_EX 0x0085 /* cublasGemmEx, async-capable, status is cublasStatus_t */
#define VGPU_CALL_CUBLAS_GEMM_STRIDED_BATCHED_EX 0x0086 /* cublasGemmStridedBatchedEx, async-capable, status is cublasStatus_t */
#define VGPU_CALL_CUBLAS_GEMM_BATCHED_EX 0x0087 /* cublasGemmBatchedEx, async-capable, status is cublasStatus_t */
#define VGPU_CALL_CUBLAS_STRSM 0x0088 /* cublasStrsm_v2, async-capable, status is cublasStatus_t */
#define VGPU_CALL_CUBLAS_STRSM_BATCHED 0x0089 /* cublasStrsmBatched, async-capable, status is cublasStatus_t */
#define VGPU_CALL_CUBLAS_GETRF_BATCHED 0x008a /* cublasSgetrfBatched, async-capable, status is cublasStatus_t */
#define VGPU_CALL_STREAM_BEGIN_CAPTURE 0x0090 /* cuStreamBeginCapture_v2 */
#define VGPU_CALL_STREAM_END_CAPTURE 0x0091 /* cuStreamEndCapture */
#define VGPU_CALL_STREAM_GET_CAPTURE_INFO 0x0092 /* cuStreamGetCaptureInfo */
#define VGPU_CALL_GRAPH_INSTANTIATE 0x0093 /* cuGraphInstantiateWithFlags */
#define VGPU_CALL_GRAPH_LAUNCH 0x0094 /* cuGraphLaunch, async-capable */
#define VGPU_CALL_GRAPH_EXEC_DESTROY 0x0095 /* cuGraphExecDestroy */
#define VGPU_CALL_GRAPH_DESTROY 0x0096 /* cuGraphDestroy */
#define VGPU_CALL_STREAM_ADD_GUEST_NODE 0x0097 /* cuLaunchHostFunc */
#define VGPU_CALL_GRAPH_EXEC_GUEST_NODE 0x0098 /* vgpuGraphExecGetGuestNode */
#define VGPU_CALL_GRAPH_LAUNCH_PHASE 0x0099 /* vgpuGraphLaunchPhase, async-capable */
#define VGPU_CALL_GRAPH_NODE_COUNT 0x009a /* cuGraphGetNodes */
#define VGPU_CALL_GRAPH_CLONE 0x009b /* cuGraphClone */
#define VGPU_CALL_GRAPH_EXEC_UPDATE 0x009c /* cuGraphExecUpdate_v2 */
#define VGPU_CALL_GRAPH_MEM_ALLOC 0x009d /* cuGraphAddMemAllocNode */
#define VGPU_CALL_GRAPH_MEM_FREE 0x009e /* cuGraphDestroy */
#define VGPU_CALL_NVML_MEMORY_INFO 0x00a0 /* nvmlDeviceGetMemoryInfo */
#define VGPU_CALL_NVML_DRIVER_VERSION 0x00a1 /* nvmlSystemGetDriverVersion */
#define VGPU_CALL_NVML_COMPUTE_PROCESSES 0x00a2 /* nvmlDeviceGetComputeRunningProcesses_v3 */
#define VGPU_CALL_ARRAY_CREATE 0x00b0 /* cuArray3DCreate_v2 */
#define VGPU_CALL_ARRAY_DESTROY 0x00b1 /* cuArrayDestroy */
#define VGPU_CALL_MEMCPY_3D 0x00b2 /* cuMemcpy3DAsync_v2, async-capable */
#define VGPU_CALL_MEMCPY_3D_HTOD 0x00b3 /* cuMemcpy3DAsync_v2, async-capable */
#define VGPU_CALL_MEMCPY_3D_DTOH 0x00b4 /* cuMemcpy3DAsync_v2, async-capable */
#define VGPU_CALL_TEX_OBJECT_CREATE 0x00b5 /* cuTexObjectCreate */
#define VGPU_CALL_TEX_OBJECT_DESTROY 0x00b6 /* cuTexObjectDestroy */
#define VGPU_CALL_SURF_OBJECT_CREATE 0x00b7 /* cuSurfObjectCreate */
#define VGPU_CALL_SURF_OBJECT_DESTROY 0x00b8 /* cuSurfObjectDestroy */
#define VGPU_CALL_TENSOR_MAP_ENCODE_TILED 0x00c0 /* cuTensorMapEncodeTiled */
#define VGPU_CALL_MODULE_GLOBAL_ALIAS 0x00c1 /* __cudaRegisterManagedVar */
#define VGPU_CALL_MEMSET_2D 0x00c8 /* cuMemsetD2D32Async, async-capable */
#define VGPU_CALL_MEMCPY_3D_HTOD_PINNED 0x00c9 /* cuMemcpy3DAsync_v2, async-capable */
#define VGPU_CALL_MEMCPY_3D_DTOH_PINNED 0x00ca /* cuMemcpy3DAsync_v2, async-capable */
#define VGPU_CALL_TENSOR_MAP_ENCODE_IM2COL 0x00cb /* cuTensorMapEncodeIm2col */

/* ---- argument and result structs (SQE `args`, CQE `results`) -------------------------- */

/* nop: no arguments (args_len = 0) */

/* nop: no results (status only) */

struct vgpu_args_init {
    uint32_t flags;
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_args_init) == 8, "struct vgpu_args_init is 8 bytes");
static_assert(offsetof(struct vgpu_args_init, flags) == 0, "vgpu_args_init.flags offset");

/* init: no results (status only) */

/* driver_get_version: no arguments (args_len = 0) */

struct vgpu_result_driver_get_version {
    int32_t value;
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_result_driver_get_version) == 8, "struct vgpu_result_driver_get_version is 8 bytes");
static_assert(offsetof(struct vgpu_result_driver_get_version, value) == 0, "vgpu_result_driver_get_version.value offset");

/* device_get_count: no arguments (args_len = 0) */

struct vgpu_result_device_get_count {
    int32_t value;
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_result_device_get_count) == 8, "struct vgpu_result_device_get_count is 8 bytes");
static_assert(offsetof(struct vgpu_result_device_get_count, value) == 0, "vgpu_result_device_get_count.value offset");

struct vgpu_args_device_get {
    int32_t ordinal;
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_args_device_get) == 8, "struct vgpu_args_device_get is 8 bytes");
static_assert(offsetof(struct vgpu_args_device_get, ordinal) == 0, "vgpu_args_device_get.ordinal offset");

struct vgpu_result_device_get {
    int32_t device;                     /* device ordinal (CUdevice) */
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_result_device_get) == 8, "struct vgpu_result_device_get is 8 bytes");
static_assert(offsetof(struct vgpu_result_device_get, device) == 0, "vgpu_result_device_get.device offset");

struct vgpu_args_device_get_name {
    int32_t device;                     /* device ordinal (CUdevice) */
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_args_device_get_name) == 8, "struct vgpu_args_device_get_name is 8 bytes");
static_assert(offsetof(struct vgpu_args_device_get_name, device) == 0, "vgpu_args_device_get_name.device offset");

/* device_get_name: no results (status only) */

struct vgpu_args_device_get_attribute {
    int32_t attrib;
    int32_t device;                     /* device ordinal (CUdevice) */
};
static_assert(sizeof(struct vgpu_args_device_get_attribute) == 8, "struct vgpu_args_device_get_attribute is 8 bytes");
static_assert(offsetof(struct vgpu_args_device_get_attribute, attrib) == 0, "vgpu_args_device_get_attribute.attrib offset");
static_assert(offsetof(struct vgpu_args_device_get_attribute, device) == 4, "vgpu_args_device_get_attribute.device offset");

struct vgpu_result_device_get_attribute {
    int32_t value;
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_result_device_get_attribute) == 8, "struct vgpu_result_device_get_attribute is 8 bytes");
static_assert(offsetof(struct vgpu_result_device_get_attribute, value) == 0, "vgpu_result_device_get_attribute.value offset");

struct vgpu_args_device_total_mem {
    int32_t device;                     /* device ordinal (CUdevice) */
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_args_device_total_mem) == 8, "struct vgpu_args_device_total_mem is 8 bytes");
static_assert(offsetof(struct vgpu_args_device_total_mem, device) == 0, "vgpu_args_device_total_mem.device offset");

struct vgpu_result_device_total_mem {
    uint64_t bytes;
};
static_assert(sizeof(struct vgpu_result_device_total_mem) == 8, "struct vgpu_result_device_total_mem is 8 bytes");
static_assert(offsetof(struct vgpu_result_device_total_mem, bytes) == 0, "vgpu_result_device_total_mem.bytes offset");

struct vgpu_args_device_get_uuid {
    int32_t device;                     /* device ordinal (CUdevice) */
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_args_device_get_uuid) == 8, "struct vgpu_args_device_get_uuid is 8 bytes");
static_assert(offsetof(struct vgpu_args_device_get_uuid, device) == 0, "vgpu_args_device_get_uuid.device offset");

struct vgpu_result_device_get_uuid {
    uint8_t uuid[16];
};
static_assert(sizeof(struct vgpu_result_device_get_uuid) == 16, "struct vgpu_result_device_get_uuid is 16 bytes");
static_assert(offsetof(struct vgpu_result_device_get_uuid, uuid) == 0, "vgpu_result_device_get_uuid.uuid offset");

struct vgpu_args_device_get_pci_bus_id {
    int32_t device;                     /* device ordinal (CUdevice) */
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_args_device_get_pci_bus_id) == 8, "struct vgpu_args_device_get_pci_bus_id is 8 bytes");
static_assert(offsetof(struct vgpu_args_device_get_pci_bus_id, device) == 0, "vgpu_args_device_get_pci_bus_id.device offset");

/* device_get_pci_bus_id: no results (status only) */

struct vgpu_args_primary_ctx_retain {
    int32_t device;                     /* device ordinal (CUdevice) */
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_args_primary_ctx_retain) == 8, "struct vgpu_args_primary_ctx_retain is 8 bytes");
static_assert(offsetof(struct vgpu_args_primary_ctx_retain, device) == 0, "vgpu_args_primary_ctx_retain.device offset");

struct vgpu_result_primary_ctx_retain {
    uint32_t ctx;                       /* context handle: per-channel id, 0 = null */
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_result_primary_ctx_retain) == 8, "struct vgpu_result_primary_ctx_retain is 8 bytes");
static_assert(offsetof(struct vgpu_result_primary_ctx_retain, ctx) == 0, "vgpu_result_primary_ctx_retain.ctx offset");

struct vgpu_args_primary_ctx_release {
    int32_t device;                     /* device ordinal (CUdevice) */
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_args_primary_ctx_release) == 8, "struct vgpu_args_primary_ctx_release is 8 bytes");
static_assert(offsetof(struct vgpu_args_primary_ctx_release, device) == 0, "vgpu_args_primary_ctx_release.device offset");

/* primary_ctx_release: no results (status only) */

struct vgpu_args_ctx_create {
    uint32_t flags;
    int32_t device;                     /* device ordinal (CUdevice) */
};
static_assert(sizeof(struct vgpu_args_ctx_create) == 8, "struct vgpu_args_ctx_create is 8 bytes");
static_assert(offsetof(struct vgpu_args_ctx_create, flags) == 0, "vgpu_args_ctx_create.flags offset");
static_assert(offsetof(struct vgpu_args_ctx_create, device) == 4, "vgpu_args_ctx_create.device offset");

struct vgpu_result_ctx_create {
    uint32_t ctx;                       /* context handle: per-channel id, 0 = null */
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_result_ctx_create) == 8, "struct vgpu_result_ctx_create is 8 bytes");
static_assert(offsetof(struct vgpu_result_ctx_create, ctx) == 0, "vgpu_result_ctx_create.ctx offset");

struct vgpu_args_ctx_destroy {
    uint32_t ctx;                       /* context handle: per-channel id, 0 = null */
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_args_ctx_destroy) == 8, "struct vgpu_args_ctx_destroy is 8 bytes");
static_assert(offsetof(struct vgpu_args_ctx_destroy, ctx) == 0, "vgpu_args_ctx_destroy.ctx offset");

/* ctx_destroy: no results (status only) */

struct vgpu_args_ctx_set_current {
    uint32_t ctx;                       /* context handle: per-channel id, 0 = null */
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_args_ctx_set_current) == 8, "struct vgpu_args_ctx_set_current is 8 bytes");
static_assert(offsetof(struct vgpu_args_ctx_set_current, ctx) == 0, "vgpu_args_ctx_set_current.ctx offset");

/* ctx_set_current: no results (status only) */

/* ctx_get_current: no arguments (args_len = 0) */

struct vgpu_result_ctx_get_current {
    uint32_t ctx;                       /* context handle: per-channel id, 0 = null */
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_result_ctx_get_current) == 8, "struct vgpu_result_ctx_get_current is 8 bytes");
static_assert(offsetof(struct vgpu_result_ctx_get_current, ctx) == 0, "vgpu_result_ctx_get_current.ctx offset");

/* ctx_synchronize: no arguments (args_len = 0) */

/* ctx_synchronize: no results (status only) */

/* mem_get_info: no arguments (args_len = 0) */

struct vgpu_result_mem_get_info {
    uint64_t free;
    uint64_t total;
};
static_assert(sizeof(struct vgpu_result_mem_get_info) == 16, "struct vgpu_result_mem_get_info is 16 bytes");
static_assert(offsetof(struct vgpu_result_mem_get_info, free) == 0, "vgpu_result_mem_get_info.free offset");
static_assert(offsetof(struct vgpu_result_mem_get_info, total) == 8, "vgpu_result_mem_get_info.total offset");

struct vgpu_args_mem_alloc {
    uint64_t bytesize;
};
static_assert(sizeof(struct vgpu_args_mem_alloc) == 8, "struct vgpu_args_mem_alloc is 8 bytes");
static_assert(offsetof(struct vgpu_args_mem_alloc, bytesize) == 0, "vgpu_args_mem_alloc.bytesize offset");

struct vgpu_result_mem_alloc {
    uint64_t dptr;                      /* device pointer */
};
static_assert(sizeof(struct vgpu_result_mem_alloc) == 8, "struct vgpu_result_mem_alloc is 8 bytes");
static_assert(offsetof(struct vgpu_result_mem_alloc, dptr) == 0, "vgpu_result_mem_alloc.dptr offset");

struct vgpu_args_mem_free {
    uint64_t dptr;                      /* device pointer */
};
static_assert(sizeof(struct vgpu_args_mem_free) == 8, "struct vgpu_args_mem_free is 8 bytes");
static_assert(offsetof(struct vgpu_args_mem_free, dptr) == 0, "vgpu_args_mem_free.dptr offset");

/* mem_free: no results (status only) */

struct vgpu_args_memset_d8 {
    uint64_t dst;                       /* device pointer */
    uint64_t count;
    uint8_t value;
    uint8_t pad0_[3];
    uint32_t stream;                    /* stream handle: per-channel id, 0 = null (the default stream) */
};
static_assert(sizeof(struct vgpu_args_memset_d8) == 24, "struct vgpu_args_memset_d8 is 24 bytes");
static_assert(offsetof(struct vgpu_args_memset_d8, dst) == 0, "vgpu_args_memset_d8.dst offset");
static_assert(offsetof(struct vgpu_args_memset_d8, count) == 8, "vgpu_args_memset_d8.count offset");
static_assert(offsetof(struct vgpu_args_memset_d8, value) == 16, "vgpu_args_memset_d8.value offset");
static_assert(offsetof(struct vgpu_args_memset_d8, stream) == 20, "vgpu_args_memset_d8.stream offset");

/* memset_d8: no results (status only) */

struct vgpu_args_memset_d16 {
    uint64_t dst;                       /* device pointer */
    uint64_t count;
    uint16_t value;
    uint8_t pad0_[2];
    uint32_t stream;                    /* stream handle: per-channel id, 0 = null (the default stream) */
};
static_assert(sizeof(struct vgpu_args_memset_d16) == 24, "struct vgpu_args_memset_d16 is 24 bytes");
static_assert(offsetof(struct vgpu_args_memset_d16, dst) == 0, "vgpu_args_memset_d16.dst offset");
static_assert(offsetof(struct vgpu_args_memset_d16, count) == 8, "vgpu_args_memset_d16.count offset");
static_assert(offsetof(struct vgpu_args_memset_d16, value) == 16, "vgpu_args_memset_d16.value offset");
static_assert(offsetof(struct vgpu_args_memset_d16, stream) == 20, "vgpu_args_memset_d16.stream offset");

/* memset_d16: no results (status only) */

struct vgpu_args_memset_d32 {
    uint64_t dst;                       /* device pointer */
    uint64_t count;
    uint32_t value;
    uint32_t stream;                    /* stream handle: per-channel id, 0 = null (the default stream) */
};
static_assert(sizeof(struct vgpu_args_memset_d32) == 24, "struct vgpu_args_memset_d32 is 24 bytes");
static_assert(offsetof(struct vgpu_args_memset_d32, dst) == 0, "vgpu_args_memset_d32.dst offset");
static_assert(offsetof(struct vgpu_args_memset_d32, count) == 8, "vgpu_args_memset_d32.count offset");
static_assert(offsetof(struct vgpu_args_memset_d32, value) == 16, "vgpu_args_memset_d32.value offset");
static_assert(offsetof(struct vgpu_args_memset_d32, stream) == 20, "vgpu_args_memset_d32.stream offset");

/* memset_d32: no results (status only) */

struct vgpu_args_memcpy_htod {
    uint64_t dst;                       /* device pointer */
    uint32_t stream;                    /* stream handle: per-channel id, 0 = null (the default stream) */
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_args_memcpy_htod) == 16, "struct vgpu_args_memcpy_htod is 16 bytes");
static_assert(offsetof(struct vgpu_args_memcpy_htod, dst) == 0, "vgpu_args_memcpy_htod.dst offset");
static_assert(offsetof(struct vgpu_args_memcpy_htod, stream) == 8, "vgpu_args_memcpy_htod.stream offset");

/* memcpy_htod: no results (status only) */

struct vgpu_args_memcpy_dtoh {
    uint64_t src;                       /* device pointer */
    uint64_t count;
    uint32_t stream;                    /* stream handle: per-channel id, 0 = null (the default stream) */
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_args_memcpy_dtoh) == 24, "struct vgpu_args_memcpy_dtoh is 24 bytes");
static_assert(offsetof(struct vgpu_args_memcpy_dtoh, src) == 0, "vgpu_args_memcpy_dtoh.src offset");
static_assert(offsetof(struct vgpu_args_memcpy_dtoh, count) == 8, "vgpu_args_memcpy_dtoh.count offset");
static_assert(offsetof(struct vgpu_args_memcpy_dtoh, stream) == 16, "vgpu_args_memcpy_dtoh.stream offset");

/* memcpy_dtoh: no results (status only) */

struct vgpu_args_memcpy_dtod {
    uint64_t dst;                       /* device pointer */
    uint64_t src;                       /* device pointer */
    uint64_t count;
    uint32_t stream;                    /* stream handle: per-channel id, 0 = null (the default stream) */
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_args_memcpy_dtod) == 32, "struct vgpu_args_memcpy_dtod is 32 bytes");
static_assert(offsetof(struct vgpu_args_memcpy_dtod, dst) == 0, "vgpu_args_memcpy_dtod.dst offset");
static_assert(offsetof(struct vgpu_args_memcpy_dtod, src) == 8, "vgpu_args_memcpy_dtod.src offset");
static_assert(offsetof(struct vgpu_args_memcpy_dtod, count) == 16, "vgpu_args_memcpy_dtod.count offset");
static_assert(offsetof(struct vgpu_args_memcpy_dtod, stream) == 24, "vgpu_args_memcpy_dtod.stream offset");

/* memcpy_dtod: no results (status only) */

struct vgpu_args_mem_host_alloc {
    uint64_t bytesize;
    uint32_t flags;
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_args_mem_host_alloc) == 16, "struct vgpu_args_mem_host_alloc is 16 bytes");
static_assert(offsetof(struct vgpu_args_mem_host_alloc, bytesize) == 0, "vgpu_args_mem_host_alloc.bytesize offset");
static_assert(offsetof(struct vgpu_args_mem_host_alloc, flags) == 8, "vgpu_args_mem_host_alloc.flags offset");

struct vgpu_result_mem_host_alloc {
    uint64_t offset;
};
static_assert(sizeof(struct vgpu_result_mem_host_alloc) == 8, "struct vgpu_result_mem_host_alloc is 8 bytes");
static_assert(offsetof(struct vgpu_result_mem_host_alloc, offset) == 0, "vgpu_result_mem_host_alloc.offset offset");

struct vgpu_args_mem_free_host {
    uint64_t offset;
};
static_assert(sizeof(struct vgpu_args_mem_free_host) == 8, "struct vgpu_args_mem_free_host is 8 bytes");
static_assert(offsetof(struct vgpu_args_mem_free_host, offset) == 0, "vgpu_args_mem_free_host.offset offset");

/* mem_free_host: no results (status only) */

struct vgpu_args_memcpy_htod_pinned {
    uint64_t dst;                       /* device pointer */
    uint64_t offset;
    uint64_t count;
    uint32_t stream;                    /* stream handle: per-channel id, 0 = null (the default stream) */
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_args_memcpy_htod_pinned) == 32, "struct vgpu_args_memcpy_htod_pinned is 32 bytes");
static_assert(offsetof(struct vgpu_args_memcpy_htod_pinned, dst) == 0, "vgpu_args_memcpy_htod_pinned.dst offset");
static_assert(offsetof(struct vgpu_args_memcpy_htod_pinned, offset) == 8, "vgpu_args_memcpy_htod_pinned.offset offset");
static_assert(offsetof(struct vgpu_args_memcpy_htod_pinned, count) == 16, "vgpu_args_memcpy_htod_pinned.count offset");
static_assert(offsetof(struct vgpu_args_memcpy_htod_pinned, stream) == 24, "vgpu_args_memcpy_htod_pinned.stream offset");

/* memcpy_htod_pinned: no results (status only) */

struct vgpu_args_memcpy_dtoh_pinned {
    uint64_t src;                       /* device pointer */
    uint64_t offset;
    uint64_t count;
    uint32_t stream;                    /* stream handle: per-channel id, 0 = null (the default stream) */
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_args_memcpy_dtoh_pinned) == 32, "struct vgpu_args_memcpy_dtoh_pinned is 32 bytes");
static_assert(offsetof(struct vgpu_args_memcpy_dtoh_pinned, src) == 0, "vgpu_args_memcpy_dtoh_pinned.src offset");
static_assert(offsetof(struct vgpu_args_memcpy_dtoh_pinned, offset) == 8, "vgpu_args_memcpy_dtoh_pinned.offset offset");
static_assert(offsetof(struct vgpu_args_memcpy_dtoh_pinned, count) == 16, "vgpu_args_memcpy_dtoh_pinned.count offset");
static_assert(offsetof(struct vgpu_args_memcpy_dtoh_pinned, stream) == 24, "vgpu_args_memcpy_dtoh_pinned.stream offset");

/* memcpy_dtoh_pinned: no results (status only) */

struct vgpu_args_mem_host_alias {
    uint64_t offset;
    uint64_t address;                   /* device pointer */
};
static_assert(sizeof(struct vgpu_args_mem_host_alias) == 16, "struct vgpu_args_mem_host_alias is 16 bytes");
static_assert(offsetof(struct vgpu_args_mem_host_alias, offset) == 0, "vgpu_args_mem_host_alias.offset offset");
static_assert(offsetof(struct vgpu_args_mem_host_alias, address) == 8, "vgpu_args_mem_host_alias.address offset");

struct vgpu_result_mem_host_alias {
    uint64_t dptr;                      /* device pointer */
};
static_assert(sizeof(struct vgpu_result_mem_host_alias) == 8, "struct vgpu_result_mem_host_alias is 8 bytes");
static_assert(offsetof(struct vgpu_result_mem_host_alias, dptr) == 0, "vgpu_result_mem_host_alias.dptr offset");

struct vgpu_args_mem_get_allocation_granularity {
    int32_t device;                     /* device ordinal (CUdevice) */
    uint32_t option;                    /* enum vgpu_mem_alloc_granularity */
};
static_assert(sizeof(struct vgpu_args_mem_get_allocation_granularity) == 8, "struct vgpu_args_mem_get_allocation_granularity is 8 bytes");
static_assert(offsetof(struct vgpu_args_mem_get_allocation_granularity, device) == 0, "vgpu_args_mem_get_allocation_granularity.device offset");
static_assert(offsetof(struct vgpu_args_mem_get_allocation_granularity, option) == 4, "vgpu_args_mem_get_allocation_granularity.option offset");

struct vgpu_result_mem_get_allocation_granularity {
    uint64_t granularity;
};
static_assert(sizeof(struct vgpu_result_mem_get_allocation_granularity) == 8, "struct vgpu_result_mem_get_allocation_granularity is 8 bytes");
static_assert(offsetof(struct vgpu_result_mem_get_allocation_granularity, granularity) == 0, "vgpu_result_mem_get_allocation_granularity.granularity offset");

struct vgpu_args_mem_create {
    uint64_t size;
    int32_t device;                     /* device ordinal (CUdevice) */
    uint32_t flags;
};
static_assert(sizeof(struct vgpu_args_mem_create) == 16, "struct vgpu_args_mem_create is 16 bytes");
static_assert(offsetof(struct vgpu_args_mem_create, size) == 0, "vgpu_args_mem_create.size offset");
static_assert(offsetof(struct vgpu_args_mem_create, device) == 8, "vgpu_args_mem_create.device offset");
static_assert(offsetof(struct vgpu_args_mem_create, flags) == 12, "vgpu_args_mem_create.flags offset");

struct vgpu_result_mem_create {
    uint32_t handle;                    /* memhandle handle: per-channel id, 0 = null */
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_result_mem_create) == 8, "struct vgpu_result_mem_create is 8 bytes");
static_assert(offsetof(struct vgpu_result_mem_create, handle) == 0, "vgpu_result_mem_create.handle offset");

struct vgpu_args_mem_release {
    uint32_t handle;                    /* memhandle handle: per-channel id, 0 = null */
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_args_mem_release) == 8, "struct vgpu_args_mem_release is 8 bytes");
static_assert(offsetof(struct vgpu_args_mem_release, handle) == 0, "vgpu_args_mem_release.handle offset");

/* mem_release: no results (status only) */

struct vgpu_args_mem_address_reserve {
    uint64_t size;
    uint64_t alignment;
    uint64_t addr;                      /* device pointer */
    uint64_t flags;
};
static_assert(sizeof(struct vgpu_args_mem_address_reserve) == 32, "struct vgpu_args_mem_address_reserve is 32 bytes");
static_assert(offsetof(struct vgpu_args_mem_address_reserve, size) == 0, "vgpu_args_mem_address_reserve.size offset");
static_assert(offsetof(struct vgpu_args_mem_address_reserve, alignment) == 8, "vgpu_args_mem_address_reserve.alignment offset");
static_assert(offsetof(struct vgpu_args_mem_address_reserve, addr) == 16, "vgpu_args_mem_address_reserve.addr offset");
static_assert(offsetof(struct vgpu_args_mem_address_reserve, flags) == 24, "vgpu_args_mem_address_reserve.flags offset");

struct vgpu_result_mem_address_reserve {
    uint64_t dptr;                      /* device pointer */
};
static_assert(sizeof(struct vgpu_result_mem_address_reserve) == 8, "struct vgpu_result_mem_address_reserve is 8 bytes");
static_assert(offsetof(struct vgpu_result_mem_address_reserve, dptr) == 0, "vgpu_result_mem_address_reserve.dptr offset");

struct vgpu_args_mem_address_free {
    uint64_t ptr;                       /* device pointer */
    uint64_t size;
};
static_assert(sizeof(struct vgpu_args_mem_address_free) == 16, "struct vgpu_args_mem_address_free is 16 bytes");
static_assert(offsetof(struct vgpu_args_mem_address_free, ptr) == 0, "vgpu_args_mem_address_free.ptr offset");
static_assert(offsetof(struct vgpu_args_mem_address_free, size) == 8, "vgpu_args_mem_address_free.size offset");

/* mem_address_free: no results (status only) */

struct vgpu_args_mem_map {
    uint64_t ptr;                       /* device pointer */
    uint64_t size;
    uint64_t offset;
    uint32_t handle;                    /* memhandle handle: per-channel id, 0 = null */
    uint32_t flags;
};
static_assert(sizeof(struct vgpu_args_mem_map) == 32, "struct vgpu_args_mem_map is 32 bytes");
static_assert(offsetof(struct vgpu_args_mem_map, ptr) == 0, "vgpu_args_mem_map.ptr offset");
static_assert(offsetof(struct vgpu_args_mem_map, size) == 8, "vgpu_args_mem_map.size offset");
static_assert(offsetof(struct vgpu_args_mem_map, offset) == 16, "vgpu_args_mem_map.offset offset");
static_assert(offsetof(struct vgpu_args_mem_map, handle) == 24, "vgpu_args_mem_map.handle offset");
static_assert(offsetof(struct vgpu_args_mem_map, flags) == 28, "vgpu_args_mem_map.flags offset");

/* mem_map: no results (status only) */

struct vgpu_args_mem_unmap {
    uint64_t ptr;                       /* device pointer */
    uint64_t size;
};
static_assert(sizeof(struct vgpu_args_mem_unmap) == 16, "struct vgpu_args_mem_unmap is 16 bytes");
static_assert(offsetof(struct vgpu_args_mem_unmap, ptr) == 0, "vgpu_args_mem_unmap.ptr offset");
static_assert(offsetof(struct vgpu_args_mem_unmap, size) == 8, "vgpu_args_mem_unmap.size offset");

/* mem_unmap: no results (status only) */

struct vgpu_args_mem_set_access {
    uint64_t ptr;                       /* device pointer */
    uint64_t size;
    int32_t device;                     /* device ordinal (CUdevice) */
    uint32_t flags;                     /* enum vgpu_mem_access_flags */
};
static_assert(sizeof(struct vgpu_args_mem_set_access) == 24, "struct vgpu_args_mem_set_access is 24 bytes");
static_assert(offsetof(struct vgpu_args_mem_set_access, ptr) == 0, "vgpu_args_mem_set_access.ptr offset");
static_assert(offsetof(struct vgpu_args_mem_set_access, size) == 8, "vgpu_args_mem_set_access.size offset");
static_assert(offsetof(struct vgpu_args_mem_set_access, device) == 16, "vgpu_args_mem_set_access.device offset");
static_assert(offsetof(struct vgpu_args_mem_set_access, flags) == 20, "vgpu_args_mem_set_access.flags offset");

/* mem_set_access: no results (status only) */

struct vgpu_args_stream_create {
    uint32_t flags;
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_args_stream_create) == 8, "struct vgpu_args_stream_create is 8 bytes");
static_assert(offsetof(struct vgpu_args_stream_create, flags) == 0, "vgpu_args_stream_create.flags offset");

struct vgpu_result_stream_create {
    uint32_t stream;                    /* stream handle: per-channel id, 0 = null (the default stream) */
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_result_stream_create) == 8, "struct vgpu_result_stream_create is 8 bytes");
static_assert(offsetof(struct vgpu_result_stream_create, stream) == 0, "vgpu_result_stream_create.stream offset");

struct vgpu_args_stream_destroy {
    uint32_t stream;                    /* stream handle: per-channel id, 0 = null (the default stream) */
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_args_stream_destroy) == 8, "struct vgpu_args_stream_destroy is 8 bytes");
static_assert(offsetof(struct vgpu_args_stream_destroy, stream) == 0, "vgpu_args_stream_destroy.stream offset");

/* stream_destroy: no results (status only) */

struct vgpu_args_stream_synchronize {
    uint32_t stream;                    /* stream handle: per-channel id, 0 = null (the default stream) */
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_args_stream_synchronize) == 8, "struct vgpu_args_stream_synchronize is 8 bytes");
static_assert(offsetof(struct vgpu_args_stream_synchronize, stream) == 0, "vgpu_args_stream_synchronize.stream offset");

/* stream_synchronize: no results (status only) */

struct vgpu_args_stream_query {
    uint32_t stream;                    /* stream handle: per-channel id, 0 = null (the default stream) */
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_args_stream_query) == 8, "struct vgpu_args_stream_query is 8 bytes");
static_assert(offsetof(struct vgpu_args_stream_query, stream) == 0, "vgpu_args_stream_query.stream offset");

/* stream_query: no results (status only) */

struct vgpu_args_stream_wait_event {
    uint32_t stream;                    /* stream handle: per-channel id, 0 = null (the default stream) */
    uint32_t event;                     /* event handle: per-channel id, 0 = null */
    uint32_t flags;
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_args_stream_wait_event) == 16, "struct vgpu_args_stream_wait_event is 16 bytes");
static_assert(offsetof(struct vgpu_args_stream_wait_event, stream) == 0, "vgpu_args_stream_wait_event.stream offset");
static_assert(offsetof(struct vgpu_args_stream_wait_event, event) == 4, "vgpu_args_stream_wait_event.event offset");
static_assert(offsetof(struct vgpu_args_stream_wait_event, flags) == 8, "vgpu_args_stream_wait_event.flags offset");

/* stream_wait_event: no results (status only) */

struct vgpu_args_event_create {
    uint32_t flags;
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_args_event_create) == 8, "struct vgpu_args_event_create is 8 bytes");
static_assert(offsetof(struct vgpu_args_event_create, flags) == 0, "vgpu_args_event_create.flags offset");

struct vgpu_result_event_create {
    uint32_t event;                     /* event handle: per-channel id, 0 = null */
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_result_event_create) == 8, "struct vgpu_result_event_create is 8 bytes");
static_assert(offsetof(struct vgpu_result_event_create, event) == 0, "vgpu_result_event_create.event offset");

struct vgpu_args_event_destroy {
    uint32_t event;                     /* event handle: per-channel id, 0 = null */
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_args_event_destroy) == 8, "struct vgpu_args_event_destroy is 8 bytes");
static_assert(offsetof(struct vgpu_args_event_destroy, event) == 0, "vgpu_args_event_destroy.event offset");

/* event_destroy: no results (status only) */

struct vgpu_args_event_record {
    uint32_t event;                     /* event handle: per-channel id, 0 = null */
    uint32_t stream;                    /* stream handle: per-channel id, 0 = null (the default stream) */
};
static_assert(sizeof(struct vgpu_args_event_record) == 8, "struct vgpu_args_event_record is 8 bytes");
static_assert(offsetof(struct vgpu_args_event_record, event) == 0, "vgpu_args_event_record.event offset");
static_assert(offsetof(struct vgpu_args_event_record, stream) == 4, "vgpu_args_event_record.stream offset");

/* event_record: no results (status only) */

struct vgpu_args_event_synchronize {
    uint32_t event;                     /* event handle: per-channel id, 0 = null */
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_args_event_synchronize) == 8, "struct vgpu_args_event_synchronize is 8 bytes");
static_assert(offsetof(struct vgpu_args_event_synchronize, event) == 0, "vgpu_args_event_synchronize.event offset");

/* event_synchronize: no results (status only) */

struct vgpu_args_event_query {
    uint32_t event;                     /* event handle: per-channel id, 0 = null */
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_args_event_query) == 8, "struct vgpu_args_event_query is 8 bytes");
static_assert(offsetof(struct vgpu_args_event_query, event) == 0, "vgpu_args_event_query.event offset");

/* event_query: no results (status only) */

struct vgpu_args_event_elapsed_time {
    uint32_t start;                     /* event handle: per-channel id, 0 = null */
    uint32_t end;                       /* event handle: per-channel id, 0 = null */
};
static_assert(sizeof(struct vgpu_args_event_elapsed_time) == 8, "struct vgpu_args_event_elapsed_time is 8 bytes");
static_assert(offsetof(struct vgpu_args_event_elapsed_time, start) == 0, "vgpu_args_event_elapsed_time.start offset");
static_assert(offsetof(struct vgpu_args_event_elapsed_time, end) == 4, "vgpu_args_event_elapsed_time.end offset");

struct vgpu_result_event_elapsed_time {
    float milliseconds;
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_result_event_elapsed_time) == 8, "struct vgpu_result_event_elapsed_time is 8 bytes");
static_assert(offsetof(struct vgpu_result_event_elapsed_time, milliseconds) == 0, "vgpu_result_event_elapsed_time.milliseconds offset");

struct vgpu_args_event_record_with_flags {
    uint32_t event;                     /* event handle: per-channel id, 0 = null */
    uint32_t stream;                    /* stream handle: per-channel id, 0 = null (the default stream) */
    uint32_t flags;
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_args_event_record_with_flags) == 16, "struct vgpu_args_event_record_with_flags is 16 bytes");
static_assert(offsetof(struct vgpu_args_event_record_with_flags, event) == 0, "vgpu_args_event_record_with_flags.event offset");
static_assert(offsetof(struct vgpu_args_event_record_with_flags, stream) == 4, "vgpu_args_event_record_with_flags.stream offset");
static_assert(offsetof(struct vgpu_args_event_record_with_flags, flags) == 8, "vgpu_args_event_record_with_flags.flags offset");

/* event_record_with_flags: no results (status only) */

/* module_load_data: no arguments (args_len = 0) */

struct vgpu_result_module_load_data {
    uint32_t module;                    /* module handle: per-channel id, 0 = null */
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_result_module_load_data) == 8, "struct vgpu_result_module_load_data is 8 bytes");
static_assert(offsetof(struct vgpu_result_module_load_data, module) == 0, "vgpu_result_module_load_data.module offset");

struct vgpu_args_module_unload {
    uint32_t module;                    /* module handle: per-channel id, 0 = null */
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_args_module_unload) == 8, "struct vgpu_args_module_unload is 8 bytes");
static_assert(offsetof(struct vgpu_args_module_unload, module) == 0, "vgpu_args_module_unload.module offset");

/* module_unload: no results (status only) */

struct vgpu_args_module_get_function {
    uint32_t module;                    /* module handle: per-channel id, 0 = null */
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_args_module_get_function) == 8, "struct vgpu_args_module_get_function is 8 bytes");
static_assert(offsetof(struct vgpu_args_module_get_function, module) == 0, "vgpu_args_module_get_function.module offset");

struct vgpu_result_module_get_function {
    uint32_t function;                  /* function handle: per-channel id, 0 = null */
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_result_module_get_function) == 8, "struct vgpu_result_module_get_function is 8 bytes");
static_assert(offsetof(struct vgpu_result_module_get_function, function) == 0, "vgpu_result_module_get_function.function offset");

struct vgpu_args_module_get_global {
    uint32_t module;                    /* module handle: per-channel id, 0 = null */
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_args_module_get_global) == 8, "struct vgpu_args_module_get_global is 8 bytes");
static_assert(offsetof(struct vgpu_args_module_get_global, module) == 0, "vgpu_args_module_get_global.module offset");

struct vgpu_result_module_get_global {
    uint64_t dptr;                      /* device pointer */
    uint64_t bytes;
};
static_assert(sizeof(struct vgpu_result_module_get_global) == 16, "struct vgpu_result_module_get_global is 16 bytes");
static_assert(offsetof(struct vgpu_result_module_get_global, dptr) == 0, "vgpu_result_module_get_global.dptr offset");
static_assert(offsetof(struct vgpu_result_module_get_global, bytes) == 8, "vgpu_result_module_get_global.bytes offset");

struct vgpu_args_func_get_param_info {
    uint32_t function;                  /* function handle: per-channel id, 0 = null */
    uint32_t index;
};
static_assert(sizeof(struct vgpu_args_func_get_param_info) == 8, "struct vgpu_args_func_get_param_info is 8 bytes");
static_assert(offsetof(struct vgpu_args_func_get_param_info, function) == 0, "vgpu_args_func_get_param_info.function offset");
static_assert(offsetof(struct vgpu_args_func_get_param_info, index) == 4, "vgpu_args_func_get_param_info.index offset");

struct vgpu_result_func_get_param_info {
    uint64_t offset;
    uint64_t size;
};
static_assert(sizeof(struct vgpu_result_func_get_param_info) == 16, "struct vgpu_result_func_get_param_info is 16 bytes");
static_assert(offsetof(struct vgpu_result_func_get_param_info, offset) == 0, "vgpu_result_func_get_param_info.offset offset");
static_assert(offsetof(struct vgpu_result_func_get_param_info, size) == 8, "vgpu_result_func_get_param_info.size offset");

struct vgpu_args_func_get_param_layout {
    uint32_t function;                  /* function handle: per-channel id, 0 = null */
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_args_func_get_param_layout) == 8, "struct vgpu_args_func_get_param_layout is 8 bytes");
static_assert(offsetof(struct vgpu_args_func_get_param_layout, function) == 0, "vgpu_args_func_get_param_layout.function offset");

struct vgpu_result_func_get_param_layout {
    uint32_t count;
    uint32_t param_bytes;
};
static_assert(sizeof(struct vgpu_result_func_get_param_layout) == 8, "struct vgpu_result_func_get_param_layout is 8 bytes");
static_assert(offsetof(struct vgpu_result_func_get_param_layout, count) == 0, "vgpu_result_func_get_param_layout.count offset");
static_assert(offsetof(struct vgpu_result_func_get_param_layout, param_bytes) == 4, "vgpu_result_func_get_param_layout.param_bytes offset");

struct vgpu_args_launch_kernel {
    uint32_t function;                  /* function handle: per-channel id, 0 = null */
    uint32_t grid_x;
    uint32_t grid_y;
    uint32_t grid_z;
    uint32_t block_x;
    uint32_t block_y;
    uint32_t block_z;
    uint32_t shared_mem_bytes;
    uint32_t stream;                    /* stream handle: per-channel id, 0 = null (the default stream) */
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_args_launch_kernel) == 40, "struct vgpu_args_launch_kernel is 40 bytes");
static_assert(offsetof(struct vgpu_args_launch_kernel, function) == 0, "vgpu_args_launch_kernel.function offset");
static_assert(offsetof(struct vgpu_args_launch_kernel, grid_x) == 4, "vgpu_args_launch_kernel.grid_x offset");
static_assert(offsetof(struct vgpu_args_launch_kernel, grid_y) == 8, "vgpu_args_launch_kernel.grid_y offset");
static_assert(offsetof(struct vgpu_args_launch_kernel, grid_z) == 12, "vgpu_args_launch_kernel.grid_z offset");
static_assert(offsetof(struct vgpu_args_launch_kernel, block_x) == 16, "vgpu_args_launch_kernel.block_x offset");
static_assert(offsetof(struct vgpu_args_launch_kernel, block_y) == 20, "vgpu_args_launch_kernel.block_y offset");
static_assert(offsetof(struct vgpu_args_launch_kernel, block_z) == 24, "vgpu_args_launch_kernel.block_z offset");
static_assert(offsetof(struct vgpu_args_launch_kernel, shared_mem_bytes) == 28, "vgpu_args_launch_kernel.shared_mem_bytes offset");
static_assert(offsetof(struct vgpu_args_launch_kernel, stream) == 32, "vgpu_args_launch_kernel.stream offset");

/* launch_kernel: no results (status only) */

struct vgpu_args_func_get_attribute {
    uint32_t attrib;                    /* enum vgpu_function_attribute */
    uint32_t function;                  /* function handle: per-channel id, 0 = null */
};
static_assert(sizeof(struct vgpu_args_func_get_attribute) == 8, "struct vgpu_args_func_get_attribute is 8 bytes");
static_assert(offsetof(struct vgpu_args_func_get_attribute, attrib) == 0, "vgpu_args_func_get_attribute.attrib offset");
static_assert(offsetof(struct vgpu_args_func_get_attribute, function) == 4, "vgpu_args_func_get_attribute.function offset");

struct vgpu_result_func_get_attribute {
    int32_t value;
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_result_func_get_attribute) == 8, "struct vgpu_result_func_get_attribute is 8 bytes");
static_assert(offsetof(struct vgpu_result_func_get_attribute, value) == 0, "vgpu_result_func_get_attribute.value offset");

struct vgpu_args_func_set_attribute {
    uint32_t function;                  /* function handle: per-channel id, 0 = null */
    uint32_t attrib;                    /* enum vgpu_function_attribute */
    int32_t value;
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_args_func_set_attribute) == 16, "struct vgpu_args_func_set_attribute is 16 bytes");
static_assert(offsetof(struct vgpu_args_func_set_attribute, function) == 0, "vgpu_args_func_set_attribute.function offset");
static_assert(offsetof(struct vgpu_args_func_set_attribute, attrib) == 4, "vgpu_args_func_set_attribute.attrib offset");
static_assert(offsetof(struct vgpu_args_func_set_attribute, value) == 8, "vgpu_args_func_set_attribute.value offset");

/* func_set_attribute: no results (status only) */

struct vgpu_args_launch_cooperative_kernel {
    uint32_t function;                  /* function handle: per-channel id, 0 = null */
    uint32_t grid_x;
    uint32_t grid_y;
    uint32_t grid_z;
    uint32_t block_x;
    uint32_t block_y;
    uint32_t block_z;
    uint32_t shared_mem_bytes;
    uint32_t stream;                    /* stream handle: per-channel id, 0 = null (the default stream) */
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_args_launch_cooperative_kernel) == 40, "struct vgpu_args_launch_cooperative_kernel is 40 bytes");
static_assert(offsetof(struct vgpu_args_launch_cooperative_kernel, function) == 0, "vgpu_args_launch_cooperative_kernel.function offset");
static_assert(offsetof(struct vgpu_args_launch_cooperative_kernel, grid_x) == 4, "vgpu_args_launch_cooperative_kernel.grid_x offset");
static_assert(offsetof(struct vgpu_args_launch_cooperative_kernel, grid_y) == 8, "vgpu_args_launch_cooperative_kernel.grid_y offset");
static_assert(offsetof(struct vgpu_args_launch_cooperative_kernel, grid_z) == 12, "vgpu_args_launch_cooperative_kernel.grid_z offset");
static_assert(offsetof(struct vgpu_args_launch_cooperative_kernel, block_x) == 16, "vgpu_args_launch_cooperative_kernel.block_x offset");
static_assert(offsetof(struct vgpu_args_launch_cooperative_kernel, block_y) == 20, "vgpu_args_launch_cooperative_kernel.block_y offset");
static_assert(offsetof(struct vgpu_args_launch_cooperative_kernel, block_z) == 24, "vgpu_args_launch_cooperative_kernel.block_z offset");
static_assert(offsetof(struct vgpu_args_launch_cooperative_kernel, shared_mem_bytes) == 28, "vgpu_args_launch_cooperative_kernel.shared_mem_bytes offset");
static_assert(offsetof(struct vgpu_args_launch_cooperative_kernel, stream) == 32, "vgpu_args_launch_cooperative_kernel.stream offset");

/* launch_cooperative_kernel: no results (status only) */

struct vgpu_args_launch_cluster_kernel {
    uint32_t function;                  /* function handle: per-channel id, 0 = null */
    uint32_t grid_x;
    uint32_t grid_y;
    uint32_t grid_z;
    uint32_t block_x;
    uint32_t block_y;
    uint32_t block_z;
    uint32_t shared_mem_bytes;
    uint32_t stream;                    /* stream handle: per-channel id, 0 = null (the default stream) */
    uint32_t cluster_x;
    uint32_t cluster_y;
    uint32_t cluster_z;
};
static_assert(sizeof(struct vgpu_args_launch_cluster_kernel) == 48, "struct vgpu_args_launch_cluster_kernel is 48 bytes");
static_assert(offsetof(struct vgpu_args_launch_cluster_kernel, function) == 0, "vgpu_args_launch_cluster_kernel.function offset");
static_assert(offsetof(struct vgpu_args_launch_cluster_kernel, grid_x) == 4, "vgpu_args_launch_cluster_kernel.grid_x offset");
static_assert(offsetof(struct vgpu_args_launch_cluster_kernel, grid_y) == 8, "vgpu_args_launch_cluster_kernel.grid_y offset");
static_assert(offsetof(struct vgpu_args_launch_cluster_kernel, grid_z) == 12, "vgpu_args_launch_cluster_kernel.grid_z offset");
static_assert(offsetof(struct vgpu_args_launch_cluster_kernel, block_x) == 16, "vgpu_args_launch_cluster_kernel.block_x offset");
static_assert(offsetof(struct vgpu_args_launch_cluster_kernel, block_y) == 20, "vgpu_args_launch_cluster_kernel.block_y offset");
static_assert(offsetof(struct vgpu_args_launch_cluster_kernel, block_z) == 24, "vgpu_args_launch_cluster_kernel.block_z offset");
static_assert(offsetof(struct vgpu_args_launch_cluster_kernel, shared_mem_bytes) == 28, "vgpu_args_launch_cluster_kernel.shared_mem_bytes offset");
static_assert(offsetof(struct vgpu_args_launch_cluster_kernel, stream) == 32, "vgpu_args_launch_cluster_kernel.stream offset");
static_assert(offsetof(struct vgpu_args_launch_cluster_kernel, cluster_x) == 36, "vgpu_args_launch_cluster_kernel.cluster_x offset");
static_assert(offsetof(struct vgpu_args_launch_cluster_kernel, cluster_y) == 40, "vgpu_args_launch_cluster_kernel.cluster_y offset");
static_assert(offsetof(struct vgpu_args_launch_cluster_kernel, cluster_z) == 44, "vgpu_args_launch_cluster_kernel.cluster_z offset");

/* launch_cluster_kernel: no results (status only) */

struct vgpu_args_module_upload_begin {
    uint64_t bytes;
};
static_assert(sizeof(struct vgpu_args_module_upload_begin) == 8, "struct vgpu_args_module_upload_begin is 8 bytes");
static_assert(offsetof(struct vgpu_args_module_upload_begin, bytes) == 0, "vgpu_args_module_upload_begin.bytes offset");

struct vgpu_result_module_upload_begin {
    uint32_t upload;
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_result_module_upload_begin) == 8, "struct vgpu_result_module_upload_begin is 8 bytes");
static_assert(offsetof(struct vgpu_result_module_upload_begin, upload) == 0, "vgpu_result_module_upload_begin.upload offset");

struct vgpu_args_module_upload_chunk {
    uint32_t upload;
    uint8_t pad0_[4];
    uint64_t offset;
};
static_assert(sizeof(struct vgpu_args_module_upload_chunk) == 16, "struct vgpu_args_module_upload_chunk is 16 bytes");
static_assert(offsetof(struct vgpu_args_module_upload_chunk, upload) == 0, "vgpu_args_module_upload_chunk.upload offset");
static_assert(offsetof(struct vgpu_args_module_upload_chunk, offset) == 8, "vgpu_args_module_upload_chunk.offset offset");

/* module_upload_chunk: no results (status only) */

struct vgpu_args_module_load_upload {
    uint32_t upload;
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_args_module_load_upload) == 8, "struct vgpu_args_module_load_upload is 8 bytes");
static_assert(offsetof(struct vgpu_args_module_load_upload, upload) == 0, "vgpu_args_module_load_upload.upload offset");

struct vgpu_result_module_load_upload {
    uint32_t module;                    /* module handle: per-channel id, 0 = null */
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_result_module_load_upload) == 8, "struct vgpu_result_module_load_upload is 8 bytes");
static_assert(offsetof(struct vgpu_result_module_load_upload, module) == 0, "vgpu_result_module_load_upload.module offset");

struct vgpu_args_func_occupancy {
    uint32_t function;                  /* function handle: per-channel id, 0 = null */
    uint32_t block_size;
    uint64_t dynamic_smem;
    uint32_t flags;
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_args_func_occupancy) == 24, "struct vgpu_args_func_occupancy is 24 bytes");
static_assert(offsetof(struct vgpu_args_func_occupancy, function) == 0, "vgpu_args_func_occupancy.function offset");
static_assert(offsetof(struct vgpu_args_func_occupancy, block_size) == 4, "vgpu_args_func_occupancy.block_size offset");
static_assert(offsetof(struct vgpu_args_func_occupancy, dynamic_smem) == 8, "vgpu_args_func_occupancy.dynamic_smem offset");
static_assert(offsetof(struct vgpu_args_func_occupancy, flags) == 16, "vgpu_args_func_occupancy.flags offset");

struct vgpu_result_func_occupancy {
    int32_t value;
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_result_func_occupancy) == 8, "struct vgpu_result_func_occupancy is 8 bytes");
static_assert(offsetof(struct vgpu_result_func_occupancy, value) == 0, "vgpu_result_func_occupancy.value offset");

/* cublas_create: no arguments (args_len = 0) */

struct vgpu_result_cublas_create {
    uint32_t handle;                    /* cublas handle: per-channel id, 0 = null */
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_result_cublas_create) == 8, "struct vgpu_result_cublas_create is 8 bytes");
static_assert(offsetof(struct vgpu_result_cublas_create, handle) == 0, "vgpu_result_cublas_create.handle offset");

struct vgpu_args_cublas_destroy {
    uint32_t handle;                    /* cublas handle: per-channel id, 0 = null */
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_args_cublas_destroy) == 8, "struct vgpu_args_cublas_destroy is 8 bytes");
static_assert(offsetof(struct vgpu_args_cublas_destroy, handle) == 0, "vgpu_args_cublas_destroy.handle offset");

/* cublas_destroy: no results (status only) */

struct vgpu_args_cublas_set_stream {
    uint32_t handle;                    /* cublas handle: per-channel id, 0 = null */
    uint32_t stream;                    /* stream handle: per-channel id, 0 = null (the default stream) */
};
static_assert(sizeof(struct vgpu_args_cublas_set_stream) == 8, "struct vgpu_args_cublas_set_stream is 8 bytes");
static_assert(offsetof(struct vgpu_args_cublas_set_stream, handle) == 0, "vgpu_args_cublas_set_stream.handle offset");
static_assert(offsetof(struct vgpu_args_cublas_set_stream, stream) == 4, "vgpu_args_cublas_set_stream.stream offset");

/* cublas_set_stream: no results (status only) */

struct vgpu_args_cublas_set_math_mode {
    uint32_t handle;                    /* cublas handle: per-channel id, 0 = null */
    uint32_t mode;
};
static_assert(sizeof(struct vgpu_args_cublas_set_math_mode) == 8, "struct vgpu_args_cublas_set_math_mode is 8 bytes");
static_assert(offsetof(struct vgpu_args_cublas_set_math_mode, handle) == 0, "vgpu_args_cublas_set_math_mode.handle offset");
static_assert(offsetof(struct vgpu_args_cublas_set_math_mode, mode) == 4, "vgpu_args_cublas_set_math_mode.mode offset");

/* cublas_set_math_mode: no results (status only) */

struct vgpu_args_cublas_sgemm {
    uint32_t handle;                    /* cublas handle: per-channel id, 0 = null */
    uint32_t transa;                    /* enum vgpu_cublas_operation */
    uint32_t transb;                    /* enum vgpu_cublas_operation */
    int32_t m;
    int32_t n;
    int32_t k;
    float alpha;
    uint8_t pad0_[4];
    uint64_t a;                         /* device pointer */
    int32_t lda;
    uint8_t pad1_[4];
    uint64_t b;                         /* device pointer */
    int32_t ldb;
    float beta;
    uint64_t c;                         /* device pointer */
    int32_t ldc;
    uint8_t pad2_[4];
};
static_assert(sizeof(struct vgpu_args_cublas_sgemm) == 80, "struct vgpu_args_cublas_sgemm is 80 bytes");
static_assert(offsetof(struct vgpu_args_cublas_sgemm, handle) == 0, "vgpu_args_cublas_sgemm.handle offset");
static_assert(offsetof(struct vgpu_args_cublas_sgemm, transa) == 4, "vgpu_args_cublas_sgemm.transa offset");
static_assert(offsetof(struct vgpu_args_cublas_sgemm, transb) == 8, "vgpu_args_cublas_sgemm.transb offset");
static_assert(offsetof(struct vgpu_args_cublas_sgemm, m) == 12, "vgpu_args_cublas_sgemm.m offset");
static_assert(offsetof(struct vgpu_args_cublas_sgemm, n) == 16, "vgpu_args_cublas_sgemm.n offset");
static_assert(offsetof(struct vgpu_args_cublas_sgemm, k) == 20, "vgpu_args_cublas_sgemm.k offset");
static_assert(offsetof(struct vgpu_args_cublas_sgemm, alpha) == 24, "vgpu_args_cublas_sgemm.alpha offset");
static_assert(offsetof(struct vgpu_args_cublas_sgemm, a) == 32, "vgpu_args_cublas_sgemm.a offset");
static_assert(offsetof(struct vgpu_args_cublas_sgemm, lda) == 40, "vgpu_args_cublas_sgemm.lda offset");
static_assert(offsetof(struct vgpu_args_cublas_sgemm, b) == 48, "vgpu_args_cublas_sgemm.b offset");
static_assert(offsetof(struct vgpu_args_cublas_sgemm, ldb) == 56, "vgpu_args_cublas_sgemm.ldb offset");
static_assert(offsetof(struct vgpu_args_cublas_sgemm, beta) == 60, "vgpu_args_cublas_sgemm.beta offset");
static_assert(offsetof(struct vgpu_args_cublas_sgemm, c) == 64, "vgpu_args_cublas_sgemm.c offset");
static_assert(offsetof(struct vgpu_args_cublas_sgemm, ldc) == 72, "vgpu_args_cublas_sgemm.ldc offset");

/* cublas_sgemm: no results (status only) */

struct vgpu_args_cublas_gemm_ex {
    uint32_t handle;                    /* cublas handle: per-channel id, 0 = null */
    uint32_t transa;                    /* enum vgpu_cublas_operation */
    uint32_t transb;                    /* enum vgpu_cublas_operation */
    int32_t m;
    int32_t n;
    int32_t k;
    double alpha;
    uint64_t a;                         /* device pointer */
    uint32_t a_type;                    /* enum vgpu_cuda_data_type */
    int32_t lda;
    uint64_t b;                         /* device pointer */
    uint32_t b_type;                    /* enum vgpu_cuda_data_type */
    int32_t ldb;
    double beta;
    uint64_t c;                         /* device pointer */
    uint32_t c_type;                    /* enum vgpu_cuda_data_type */
    int32_t ldc;
    uint32_t compute_type;              /* enum vgpu_cublas_compute_type */
    int32_t algo;
    double alpha_imag;
    double beta_imag;
};
static_assert(sizeof(struct vgpu_args_cublas_gemm_ex) == 112, "struct vgpu_args_cublas_gemm_ex is 112 bytes");
static_assert(offsetof(struct vgpu_args_cublas_gemm_ex, handle) == 0, "vgpu_args_cublas_gemm_ex.handle offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_ex, transa) == 4, "vgpu_args_cublas_gemm_ex.transa offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_ex, transb) == 8, "vgpu_args_cublas_gemm_ex.transb offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_ex, m) == 12, "vgpu_args_cublas_gemm_ex.m offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_ex, n) == 16, "vgpu_args_cublas_gemm_ex.n offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_ex, k) == 20, "vgpu_args_cublas_gemm_ex.k offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_ex, alpha) == 24, "vgpu_args_cublas_gemm_ex.alpha offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_ex, a) == 32, "vgpu_args_cublas_gemm_ex.a offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_ex, a_type) == 40, "vgpu_args_cublas_gemm_ex.a_type offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_ex, lda) == 44, "vgpu_args_cublas_gemm_ex.lda offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_ex, b) == 48, "vgpu_args_cublas_gemm_ex.b offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_ex, b_type) == 56, "vgpu_args_cublas_gemm_ex.b_type offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_ex, ldb) == 60, "vgpu_args_cublas_gemm_ex.ldb offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_ex, beta) == 64, "vgpu_args_cublas_gemm_ex.beta offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_ex, c) == 72, "vgpu_args_cublas_gemm_ex.c offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_ex, c_type) == 80, "vgpu_args_cublas_gemm_ex.c_type offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_ex, ldc) == 84, "vgpu_args_cublas_gemm_ex.ldc offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_ex, compute_type) == 88, "vgpu_args_cublas_gemm_ex.compute_type offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_ex, algo) == 92, "vgpu_args_cublas_gemm_ex.algo offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_ex, alpha_imag) == 96, "vgpu_args_cublas_gemm_ex.alpha_imag offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_ex, beta_imag) == 104, "vgpu_args_cublas_gemm_ex.beta_imag offset");

/* cublas_gemm_ex: no results (status only) */

struct vgpu_args_cublas_gemm_strided_batched_ex {
    uint32_t handle;                    /* cublas handle: per-channel id, 0 = null */
    uint32_t transa;                    /* enum vgpu_cublas_operation */
    uint32_t transb;                    /* enum vgpu_cublas_operation */
    int32_t m;
    int32_t n;
    int32_t k;
    double alpha;
    uint64_t a;                         /* device pointer */
    uint32_t a_type;                    /* enum vgpu_cuda_data_type */
    int32_t lda;
    int64_t stride_a;
    uint64_t b;                         /* device pointer */
    uint32_t b_type;                    /* enum vgpu_cuda_data_type */
    int32_t ldb;
    int64_t stride_b;
    double beta;
    uint64_t c;                         /* device pointer */
    uint32_t c_type;                    /* enum vgpu_cuda_data_type */
    int32_t ldc;
    int64_t stride_c;
    int32_t batch_count;
    uint32_t compute_type;              /* enum vgpu_cublas_compute_type */
    int32_t algo;
    uint8_t pad0_[4];
    double alpha_imag;
    double beta_imag;
};
static_assert(sizeof(struct vgpu_args_cublas_gemm_strided_batched_ex) == 144, "struct vgpu_args_cublas_gemm_strided_batched_ex is 144 bytes");
static_assert(offsetof(struct vgpu_args_cublas_gemm_strided_batched_ex, handle) == 0, "vgpu_args_cublas_gemm_strided_batched_ex.handle offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_strided_batched_ex, transa) == 4, "vgpu_args_cublas_gemm_strided_batched_ex.transa offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_strided_batched_ex, transb) == 8, "vgpu_args_cublas_gemm_strided_batched_ex.transb offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_strided_batched_ex, m) == 12, "vgpu_args_cublas_gemm_strided_batched_ex.m offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_strided_batched_ex, n) == 16, "vgpu_args_cublas_gemm_strided_batched_ex.n offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_strided_batched_ex, k) == 20, "vgpu_args_cublas_gemm_strided_batched_ex.k offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_strided_batched_ex, alpha) == 24, "vgpu_args_cublas_gemm_strided_batched_ex.alpha offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_strided_batched_ex, a) == 32, "vgpu_args_cublas_gemm_strided_batched_ex.a offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_strided_batched_ex, a_type) == 40, "vgpu_args_cublas_gemm_strided_batched_ex.a_type offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_strided_batched_ex, lda) == 44, "vgpu_args_cublas_gemm_strided_batched_ex.lda offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_strided_batched_ex, stride_a) == 48, "vgpu_args_cublas_gemm_strided_batched_ex.stride_a offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_strided_batched_ex, b) == 56, "vgpu_args_cublas_gemm_strided_batched_ex.b offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_strided_batched_ex, b_type) == 64, "vgpu_args_cublas_gemm_strided_batched_ex.b_type offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_strided_batched_ex, ldb) == 68, "vgpu_args_cublas_gemm_strided_batched_ex.ldb offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_strided_batched_ex, stride_b) == 72, "vgpu_args_cublas_gemm_strided_batched_ex.stride_b offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_strided_batched_ex, beta) == 80, "vgpu_args_cublas_gemm_strided_batched_ex.beta offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_strided_batched_ex, c) == 88, "vgpu_args_cublas_gemm_strided_batched_ex.c offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_strided_batched_ex, c_type) == 96, "vgpu_args_cublas_gemm_strided_batched_ex.c_type offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_strided_batched_ex, ldc) == 100, "vgpu_args_cublas_gemm_strided_batched_ex.ldc offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_strided_batched_ex, stride_c) == 104, "vgpu_args_cublas_gemm_strided_batched_ex.stride_c offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_strided_batched_ex, batch_count) == 112, "vgpu_args_cublas_gemm_strided_batched_ex.batch_count offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_strided_batched_ex, compute_type) == 116, "vgpu_args_cublas_gemm_strided_batched_ex.compute_type offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_strided_batched_ex, algo) == 120, "vgpu_args_cublas_gemm_strided_batched_ex.algo offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_strided_batched_ex, alpha_imag) == 128, "vgpu_args_cublas_gemm_strided_batched_ex.alpha_imag offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_strided_batched_ex, beta_imag) == 136, "vgpu_args_cublas_gemm_strided_batched_ex.beta_imag offset");

/* cublas_gemm_strided_batched_ex: no results (status only) */

struct vgpu_args_cublas_gemm_batched_ex {
    uint32_t handle;                    /* cublas handle: per-channel id, 0 = null */
    uint32_t transa;                    /* enum vgpu_cublas_operation */
    uint32_t transb;                    /* enum vgpu_cublas_operation */
    int32_t m;
    int32_t n;
    int32_t k;
    double alpha;
    uint64_t a;                         /* device pointer */
    uint32_t a_type;                    /* enum vgpu_cuda_data_type */
    int32_t lda;
    uint64_t b;                         /* device pointer */
    uint32_t b_type;                    /* enum vgpu_cuda_data_type */
    int32_t ldb;
    double beta;
    uint64_t c;                         /* device pointer */
    uint32_t c_type;                    /* enum vgpu_cuda_data_type */
    int32_t ldc;
    int32_t batch_count;
    uint32_t compute_type;              /* enum vgpu_cublas_compute_type */
    int32_t algo;
    uint8_t pad0_[4];
    double alpha_imag;
    double beta_imag;
};
static_assert(sizeof(struct vgpu_args_cublas_gemm_batched_ex) == 120, "struct vgpu_args_cublas_gemm_batched_ex is 120 bytes");
static_assert(offsetof(struct vgpu_args_cublas_gemm_batched_ex, handle) == 0, "vgpu_args_cublas_gemm_batched_ex.handle offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_batched_ex, transa) == 4, "vgpu_args_cublas_gemm_batched_ex.transa offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_batched_ex, transb) == 8, "vgpu_args_cublas_gemm_batched_ex.transb offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_batched_ex, m) == 12, "vgpu_args_cublas_gemm_batched_ex.m offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_batched_ex, n) == 16, "vgpu_args_cublas_gemm_batched_ex.n offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_batched_ex, k) == 20, "vgpu_args_cublas_gemm_batched_ex.k offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_batched_ex, alpha) == 24, "vgpu_args_cublas_gemm_batched_ex.alpha offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_batched_ex, a) == 32, "vgpu_args_cublas_gemm_batched_ex.a offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_batched_ex, a_type) == 40, "vgpu_args_cublas_gemm_batched_ex.a_type offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_batched_ex, lda) == 44, "vgpu_args_cublas_gemm_batched_ex.lda offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_batched_ex, b) == 48, "vgpu_args_cublas_gemm_batched_ex.b offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_batched_ex, b_type) == 56, "vgpu_args_cublas_gemm_batched_ex.b_type offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_batched_ex, ldb) == 60, "vgpu_args_cublas_gemm_batched_ex.ldb offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_batched_ex, beta) == 64, "vgpu_args_cublas_gemm_batched_ex.beta offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_batched_ex, c) == 72, "vgpu_args_cublas_gemm_batched_ex.c offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_batched_ex, c_type) == 80, "vgpu_args_cublas_gemm_batched_ex.c_type offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_batched_ex, ldc) == 84, "vgpu_args_cublas_gemm_batched_ex.ldc offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_batched_ex, batch_count) == 88, "vgpu_args_cublas_gemm_batched_ex.batch_count offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_batched_ex, compute_type) == 92, "vgpu_args_cublas_gemm_batched_ex.compute_type offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_batched_ex, algo) == 96, "vgpu_args_cublas_gemm_batched_ex.algo offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_batched_ex, alpha_imag) == 104, "vgpu_args_cublas_gemm_batched_ex.alpha_imag offset");
static_assert(offsetof(struct vgpu_args_cublas_gemm_batched_ex, beta_imag) == 112, "vgpu_args_cublas_gemm_batched_ex.beta_imag offset");

/* cublas_gemm_batched_ex: no results (status only) */

struct vgpu_args_cublas_strsm {
    uint32_t handle;                    /* cublas handle: per-channel id, 0 = null */
    uint32_t side;                      /* enum vgpu_cublas_side_mode */
    uint32_t uplo;                      /* enum vgpu_cublas_fill_mode */
    uint32_t trans;                     /* enum vgpu_cublas_operation */
    uint32_t diag;                      /* enum vgpu_cublas_diag_type */
    int32_t m;
    int32_t n;
    float alpha;
    uint64_t a;                         /* device pointer */
    int32_t lda;
    uint8_t pad0_[4];
    uint64_t b;                         /* device pointer */
    int32_t ldb;
    uint8_t pad1_[4];
};
static_assert(sizeof(struct vgpu_args_cublas_strsm) == 64, "struct vgpu_args_cublas_strsm is 64 bytes");
static_assert(offsetof(struct vgpu_args_cublas_strsm, handle) == 0, "vgpu_args_cublas_strsm.handle offset");
static_assert(offsetof(struct vgpu_args_cublas_strsm, side) == 4, "vgpu_args_cublas_strsm.side offset");
static_assert(offsetof(struct vgpu_args_cublas_strsm, uplo) == 8, "vgpu_args_cublas_strsm.uplo offset");
static_assert(offsetof(struct vgpu_args_cublas_strsm, trans) == 12, "vgpu_args_cublas_strsm.trans offset");
static_assert(offsetof(struct vgpu_args_cublas_strsm, diag) == 16, "vgpu_args_cublas_strsm.diag offset");
static_assert(offsetof(struct vgpu_args_cublas_strsm, m) == 20, "vgpu_args_cublas_strsm.m offset");
static_assert(offsetof(struct vgpu_args_cublas_strsm, n) == 24, "vgpu_args_cublas_strsm.n offset");
static_assert(offsetof(struct vgpu_args_cublas_strsm, alpha) == 28, "vgpu_args_cublas_strsm.alpha offset");
static_assert(offsetof(struct vgpu_args_cublas_strsm, a) == 32, "vgpu_args_cublas_strsm.a offset");
static_assert(offsetof(struct vgpu_args_cublas_strsm, lda) == 40, "vgpu_args_cublas_strsm.lda offset");
static_assert(offsetof(struct vgpu_args_cublas_strsm, b) == 48, "vgpu_args_cublas_strsm.b offset");
static_assert(offsetof(struct vgpu_args_cublas_strsm, ldb) == 56, "vgpu_args_cublas_strsm.ldb offset");

/* cublas_strsm: no results (status only) */

struct vgpu_args_cublas_strsm_batched {
    uint32_t handle;                    /* cublas handle: per-channel id, 0 = null */
    uint32_t side;                      /* enum vgpu_cublas_side_mode */
    uint32_t uplo;                      /* enum vgpu_cublas_fill_mode */
    uint32_t trans;                     /* enum vgpu_cublas_operation */
    uint32_t diag;                      /* enum vgpu_cublas_diag_type */
    int32_t m;
    int32_t n;
    float alpha;
    uint64_t a;                         /* device pointer */
    int32_t lda;
    uint8_t pad0_[4];
    uint64_t b;                         /* device pointer */
    int32_t ldb;
    int32_t batch_count;
};
static_assert(sizeof(struct vgpu_args_cublas_strsm_batched) == 64, "struct vgpu_args_cublas_strsm_batched is 64 bytes");
static_assert(offsetof(struct vgpu_args_cublas_strsm_batched, handle) == 0, "vgpu_args_cublas_strsm_batched.handle offset");
static_assert(offsetof(struct vgpu_args_cublas_strsm_batched, side) == 4, "vgpu_args_cublas_strsm_batched.side offset");
static_assert(offsetof(struct vgpu_args_cublas_strsm_batched, uplo) == 8, "vgpu_args_cublas_strsm_batched.uplo offset");
static_assert(offsetof(struct vgpu_args_cublas_strsm_batched, trans) == 12, "vgpu_args_cublas_strsm_batched.trans offset");
static_assert(offsetof(struct vgpu_args_cublas_strsm_batched, diag) == 16, "vgpu_args_cublas_strsm_batched.diag offset");
static_assert(offsetof(struct vgpu_args_cublas_strsm_batched, m) == 20, "vgpu_args_cublas_strsm_batched.m offset");
static_assert(offsetof(struct vgpu_args_cublas_strsm_batched, n) == 24, "vgpu_args_cublas_strsm_batched.n offset");
static_assert(offsetof(struct vgpu_args_cublas_strsm_batched, alpha) == 28, "vgpu_args_cublas_strsm_batched.alpha offset");
static_assert(offsetof(struct vgpu_args_cublas_strsm_batched, a) == 32, "vgpu_args_cublas_strsm_batched.a offset");
static_assert(offsetof(struct vgpu_args_cublas_strsm_batched, lda) == 40, "vgpu_args_cublas_strsm_batched.lda offset");
static_assert(offsetof(struct vgpu_args_cublas_strsm_batched, b) == 48, "vgpu_args_cublas_strsm_batched.b offset");
static_assert(offsetof(struct vgpu_args_cublas_strsm_batched, ldb) == 56, "vgpu_args_cublas_strsm_batched.ldb offset");
static_assert(offsetof(struct vgpu_args_cublas_strsm_batched, batch_count) == 60, "vgpu_args_cublas_strsm_batched.batch_count offset");

/* cublas_strsm_batched: no results (status only) */

struct vgpu_args_cublas_getrf_batched {
    uint32_t handle;                    /* cublas handle: per-channel id, 0 = null */
    int32_t n;
    uint64_t a;                         /* device pointer */
    int32_t lda;
    uint8_t pad0_[4];
    uint64_t pivots;                    /* device pointer */
    uint64_t info;                      /* device pointer */
    int32_t batch_count;
    uint32_t data_type;                 /* enum vgpu_cuda_data_type */
};
static_assert(sizeof(struct vgpu_args_cublas_getrf_batched) == 48, "struct vgpu_args_cublas_getrf_batched is 48 bytes");
static_assert(offsetof(struct vgpu_args_cublas_getrf_batched, handle) == 0, "vgpu_args_cublas_getrf_batched.handle offset");
static_assert(offsetof(struct vgpu_args_cublas_getrf_batched, n) == 4, "vgpu_args_cublas_getrf_batched.n offset");
static_assert(offsetof(struct vgpu_args_cublas_getrf_batched, a) == 8, "vgpu_args_cublas_getrf_batched.a offset");
static_assert(offsetof(struct vgpu_args_cublas_getrf_batched, lda) == 16, "vgpu_args_cublas_getrf_batched.lda offset");
static_assert(offsetof(struct vgpu_args_cublas_getrf_batched, pivots) == 24, "vgpu_args_cublas_getrf_batched.pivots offset");
static_assert(offsetof(struct vgpu_args_cublas_getrf_batched, info) == 32, "vgpu_args_cublas_getrf_batched.info offset");
static_assert(offsetof(struct vgpu_args_cublas_getrf_batched, batch_count) == 40, "vgpu_args_cublas_getrf_batched.batch_count offset");
static_assert(offsetof(struct vgpu_args_cublas_getrf_batched, data_type) == 44, "vgpu_args_cublas_getrf_batched.data_type offset");

/* cublas_getrf_batched: no results (status only) */

struct vgpu_args_stream_begin_capture {
    uint32_t stream;                    /* stream handle: per-channel id, 0 = null (the default stream) */
    uint32_t mode;                      /* enum vgpu_stream_capture_mode */
};
static_assert(sizeof(struct vgpu_args_stream_begin_capture) == 8, "struct vgpu_args_stream_begin_capture is 8 bytes");
static_assert(offsetof(struct vgpu_args_stream_begin_capture, stream) == 0, "vgpu_args_stream_begin_capture.stream offset");
static_assert(offsetof(struct vgpu_args_stream_begin_capture, mode) == 4, "vgpu_args_stream_begin_capture.mode offset");

/* stream_begin_capture: no results (status only) */

struct vgpu_args_stream_end_capture {
    uint32_t stream;                    /* stream handle: per-channel id, 0 = null (the default stream) */
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_args_stream_end_capture) == 8, "struct vgpu_args_stream_end_capture is 8 bytes");
static_assert(offsetof(struct vgpu_args_stream_end_capture, stream) == 0, "vgpu_args_stream_end_capture.stream offset");

struct vgpu_result_stream_end_capture {
    uint32_t graph;                     /* graph handle: per-channel id, 0 = null */
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_result_stream_end_capture) == 8, "struct vgpu_result_stream_end_capture is 8 bytes");
static_assert(offsetof(struct vgpu_result_stream_end_capture, graph) == 0, "vgpu_result_stream_end_capture.graph offset");

struct vgpu_args_stream_get_capture_info {
    uint32_t stream;                    /* stream handle: per-channel id, 0 = null (the default stream) */
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_args_stream_get_capture_info) == 8, "struct vgpu_args_stream_get_capture_info is 8 bytes");
static_assert(offsetof(struct vgpu_args_stream_get_capture_info, stream) == 0, "vgpu_args_stream_get_capture_info.stream offset");

struct vgpu_result_stream_get_capture_info {
    uint32_t status;                    /* enum vgpu_stream_capture_status */
    uint8_t pad0_[4];
    uint64_t capture_id;
};
static_assert(sizeof(struct vgpu_result_stream_get_capture_info) == 16, "struct vgpu_result_stream_get_capture_info is 16 bytes");
static_assert(offsetof(struct vgpu_result_stream_get_capture_info, status) == 0, "vgpu_result_stream_get_capture_info.status offset");
static_assert(offsetof(struct vgpu_result_stream_get_capture_info, capture_id) == 8, "vgpu_result_stream_get_capture_info.capture_id offset");

struct vgpu_args_graph_instantiate {
    uint32_t graph;                     /* graph handle: per-channel id, 0 = null */
    uint8_t pad0_[4];
    uint64_t flags;
};
static_assert(sizeof(struct vgpu_args_graph_instantiate) == 16, "struct vgpu_args_graph_instantiate is 16 bytes");
static_assert(offsetof(struct vgpu_args_graph_instantiate, graph) == 0, "vgpu_args_graph_instantiate.graph offset");
static_assert(offsetof(struct vgpu_args_graph_instantiate, flags) == 8, "vgpu_args_graph_instantiate.flags offset");

struct vgpu_result_graph_instantiate {
    uint32_t graph_exec;                /* graphexec handle: per-channel id, 0 = null */
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_result_graph_instantiate) == 8, "struct vgpu_result_graph_instantiate is 8 bytes");
static_assert(offsetof(struct vgpu_result_graph_instantiate, graph_exec) == 0, "vgpu_result_graph_instantiate.graph_exec offset");

struct vgpu_args_graph_launch {
    uint32_t graph_exec;                /* graphexec handle: per-channel id, 0 = null */
    uint32_t stream;                    /* stream handle: per-channel id, 0 = null (the default stream) */
};
static_assert(sizeof(struct vgpu_args_graph_launch) == 8, "struct vgpu_args_graph_launch is 8 bytes");
static_assert(offsetof(struct vgpu_args_graph_launch, graph_exec) == 0, "vgpu_args_graph_launch.graph_exec offset");
static_assert(offsetof(struct vgpu_args_graph_launch, stream) == 4, "vgpu_args_graph_launch.stream offset");

/* graph_launch: no results (status only) */

struct vgpu_args_graph_exec_destroy {
    uint32_t graph_exec;                /* graphexec handle: per-channel id, 0 = null */
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_args_graph_exec_destroy) == 8, "struct vgpu_args_graph_exec_destroy is 8 bytes");
static_assert(offsetof(struct vgpu_args_graph_exec_destroy, graph_exec) == 0, "vgpu_args_graph_exec_destroy.graph_exec offset");

/* graph_exec_destroy: no results (status only) */

struct vgpu_args_graph_destroy {
    uint32_t graph;                     /* graph handle: per-channel id, 0 = null */
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_args_graph_destroy) == 8, "struct vgpu_args_graph_destroy is 8 bytes");
static_assert(offsetof(struct vgpu_args_graph_destroy, graph) == 0, "vgpu_args_graph_destroy.graph offset");

/* graph_destroy: no results (status only) */

struct vgpu_args_stream_add_guest_node {
    uint32_t stream;                    /* stream handle: per-channel id, 0 = null (the default stream) */
    uint32_t tag;
};
static_assert(sizeof(struct vgpu_args_stream_add_guest_node) == 8, "struct vgpu_args_stream_add_guest_node is 8 bytes");
static_assert(offsetof(struct vgpu_args_stream_add_guest_node, stream) == 0, "vgpu_args_stream_add_guest_node.stream offset");
static_assert(offsetof(struct vgpu_args_stream_add_guest_node, tag) == 4, "vgpu_args_stream_add_guest_node.tag offset");

struct vgpu_result_stream_add_guest_node {
    uint32_t captured;
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_result_stream_add_guest_node) == 8, "struct vgpu_result_stream_add_guest_node is 8 bytes");
static_assert(offsetof(struct vgpu_result_stream_add_guest_node, captured) == 0, "vgpu_result_stream_add_guest_node.captured offset");

struct vgpu_args_graph_exec_guest_node {
    uint32_t graph_exec;                /* graphexec handle: per-channel id, 0 = null */
    uint32_t index;
};
static_assert(sizeof(struct vgpu_args_graph_exec_guest_node) == 8, "struct vgpu_args_graph_exec_guest_node is 8 bytes");
static_assert(offsetof(struct vgpu_args_graph_exec_guest_node, graph_exec) == 0, "vgpu_args_graph_exec_guest_node.graph_exec offset");
static_assert(offsetof(struct vgpu_args_graph_exec_guest_node, index) == 4, "vgpu_args_graph_exec_guest_node.index offset");

struct vgpu_result_graph_exec_guest_node {
    uint32_t count;
    uint32_t tag;
};
static_assert(sizeof(struct vgpu_result_graph_exec_guest_node) == 8, "struct vgpu_result_graph_exec_guest_node is 8 bytes");
static_assert(offsetof(struct vgpu_result_graph_exec_guest_node, count) == 0, "vgpu_result_graph_exec_guest_node.count offset");
static_assert(offsetof(struct vgpu_result_graph_exec_guest_node, tag) == 4, "vgpu_result_graph_exec_guest_node.tag offset");

struct vgpu_args_graph_launch_phase {
    uint32_t graph_exec;                /* graphexec handle: per-channel id, 0 = null */
    uint32_t stream;                    /* stream handle: per-channel id, 0 = null (the default stream) */
    uint32_t phase;
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_args_graph_launch_phase) == 16, "struct vgpu_args_graph_launch_phase is 16 bytes");
static_assert(offsetof(struct vgpu_args_graph_launch_phase, graph_exec) == 0, "vgpu_args_graph_launch_phase.graph_exec offset");
static_assert(offsetof(struct vgpu_args_graph_launch_phase, stream) == 4, "vgpu_args_graph_launch_phase.stream offset");
static_assert(offsetof(struct vgpu_args_graph_launch_phase, phase) == 8, "vgpu_args_graph_launch_phase.phase offset");

/* graph_launch_phase: no results (status only) */

struct vgpu_args_graph_node_count {
    uint32_t graph;                     /* graph handle: per-channel id, 0 = null */
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_args_graph_node_count) == 8, "struct vgpu_args_graph_node_count is 8 bytes");
static_assert(offsetof(struct vgpu_args_graph_node_count, graph) == 0, "vgpu_args_graph_node_count.graph offset");

struct vgpu_result_graph_node_count {
    uint32_t count;
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_result_graph_node_count) == 8, "struct vgpu_result_graph_node_count is 8 bytes");
static_assert(offsetof(struct vgpu_result_graph_node_count, count) == 0, "vgpu_result_graph_node_count.count offset");

struct vgpu_args_graph_clone {
    uint32_t graph;                     /* graph handle: per-channel id, 0 = null */
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_args_graph_clone) == 8, "struct vgpu_args_graph_clone is 8 bytes");
static_assert(offsetof(struct vgpu_args_graph_clone, graph) == 0, "vgpu_args_graph_clone.graph offset");

struct vgpu_result_graph_clone {
    uint32_t graph;                     /* graph handle: per-channel id, 0 = null */
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_result_graph_clone) == 8, "struct vgpu_result_graph_clone is 8 bytes");
static_assert(offsetof(struct vgpu_result_graph_clone, graph) == 0, "vgpu_result_graph_clone.graph offset");

struct vgpu_args_graph_exec_update {
    uint32_t graph_exec;                /* graphexec handle: per-channel id, 0 = null */
    uint32_t graph;                     /* graph handle: per-channel id, 0 = null */
};
static_assert(sizeof(struct vgpu_args_graph_exec_update) == 8, "struct vgpu_args_graph_exec_update is 8 bytes");
static_assert(offsetof(struct vgpu_args_graph_exec_update, graph_exec) == 0, "vgpu_args_graph_exec_update.graph_exec offset");
static_assert(offsetof(struct vgpu_args_graph_exec_update, graph) == 4, "vgpu_args_graph_exec_update.graph offset");

struct vgpu_result_graph_exec_update {
    uint32_t result;
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_result_graph_exec_update) == 8, "struct vgpu_result_graph_exec_update is 8 bytes");
static_assert(offsetof(struct vgpu_result_graph_exec_update, result) == 0, "vgpu_result_graph_exec_update.result offset");

struct vgpu_args_graph_mem_alloc {
    uint64_t bytesize;
};
static_assert(sizeof(struct vgpu_args_graph_mem_alloc) == 8, "struct vgpu_args_graph_mem_alloc is 8 bytes");
static_assert(offsetof(struct vgpu_args_graph_mem_alloc, bytesize) == 0, "vgpu_args_graph_mem_alloc.bytesize offset");

struct vgpu_result_graph_mem_alloc {
    uint64_t dptr;                      /* device pointer */
};
static_assert(sizeof(struct vgpu_result_graph_mem_alloc) == 8, "struct vgpu_result_graph_mem_alloc is 8 bytes");
static_assert(offsetof(struct vgpu_result_graph_mem_alloc, dptr) == 0, "vgpu_result_graph_mem_alloc.dptr offset");

struct vgpu_args_graph_mem_free {
    uint64_t dptr;                      /* device pointer */
};
static_assert(sizeof(struct vgpu_args_graph_mem_free) == 8, "struct vgpu_args_graph_mem_free is 8 bytes");
static_assert(offsetof(struct vgpu_args_graph_mem_free, dptr) == 0, "vgpu_args_graph_mem_free.dptr offset");

/* graph_mem_free: no results (status only) */

struct vgpu_args_nvml_memory_info {
    int32_t device;                     /* device ordinal (CUdevice) */
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_args_nvml_memory_info) == 8, "struct vgpu_args_nvml_memory_info is 8 bytes");
static_assert(offsetof(struct vgpu_args_nvml_memory_info, device) == 0, "vgpu_args_nvml_memory_info.device offset");

struct vgpu_result_nvml_memory_info {
    uint64_t total;
    uint64_t used;
};
static_assert(sizeof(struct vgpu_result_nvml_memory_info) == 16, "struct vgpu_result_nvml_memory_info is 16 bytes");
static_assert(offsetof(struct vgpu_result_nvml_memory_info, total) == 0, "vgpu_result_nvml_memory_info.total offset");
static_assert(offsetof(struct vgpu_result_nvml_memory_info, used) == 8, "vgpu_result_nvml_memory_info.used offset");

/* nvml_driver_version: no arguments (args_len = 0) */

/* nvml_driver_version: no results (status only) */

struct vgpu_args_nvml_compute_processes {
    int32_t device;                     /* device ordinal (CUdevice) */
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_args_nvml_compute_processes) == 8, "struct vgpu_args_nvml_compute_processes is 8 bytes");
static_assert(offsetof(struct vgpu_args_nvml_compute_processes, device) == 0, "vgpu_args_nvml_compute_processes.device offset");

struct vgpu_result_nvml_compute_processes {
    uint32_t count;
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_result_nvml_compute_processes) == 8, "struct vgpu_result_nvml_compute_processes is 8 bytes");
static_assert(offsetof(struct vgpu_result_nvml_compute_processes, count) == 0, "vgpu_result_nvml_compute_processes.count offset");

struct vgpu_args_array_create {
    uint64_t width;
    uint64_t height;
    uint64_t depth;
    uint32_t format;
    uint32_t channels;
    uint32_t flags;
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_args_array_create) == 40, "struct vgpu_args_array_create is 40 bytes");
static_assert(offsetof(struct vgpu_args_array_create, width) == 0, "vgpu_args_array_create.width offset");
static_assert(offsetof(struct vgpu_args_array_create, height) == 8, "vgpu_args_array_create.height offset");
static_assert(offsetof(struct vgpu_args_array_create, depth) == 16, "vgpu_args_array_create.depth offset");
static_assert(offsetof(struct vgpu_args_array_create, format) == 24, "vgpu_args_array_create.format offset");
static_assert(offsetof(struct vgpu_args_array_create, channels) == 28, "vgpu_args_array_create.channels offset");
static_assert(offsetof(struct vgpu_args_array_create, flags) == 32, "vgpu_args_array_create.flags offset");

struct vgpu_result_array_create {
    uint32_t array;                     /* array handle: per-channel id, 0 = null */
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_result_array_create) == 8, "struct vgpu_result_array_create is 8 bytes");
static_assert(offsetof(struct vgpu_result_array_create, array) == 0, "vgpu_result_array_create.array offset");

struct vgpu_args_array_destroy {
    uint32_t array;                     /* array handle: per-channel id, 0 = null */
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_args_array_destroy) == 8, "struct vgpu_args_array_destroy is 8 bytes");
static_assert(offsetof(struct vgpu_args_array_destroy, array) == 0, "vgpu_args_array_destroy.array offset");

/* array_destroy: no results (status only) */

struct vgpu_args_memcpy_3d {
    uint32_t src_array;                 /* array handle: per-channel id, 0 = null */
    uint32_t dst_array;                 /* array handle: per-channel id, 0 = null */
    uint32_t stream;                    /* stream handle: per-channel id, 0 = null (the default stream) */
    uint8_t pad0_[4];
    uint64_t src_x;
    uint64_t src_y;
    uint64_t src_z;
    uint64_t src_device;                /* device pointer */
    uint64_t src_pitch;
    uint64_t src_layout_height;
    uint64_t dst_x;
    uint64_t dst_y;
    uint64_t dst_z;
    uint64_t dst_device;                /* device pointer */
    uint64_t dst_pitch;
    uint64_t dst_layout_height;
    uint64_t width_bytes;
    uint64_t height;
    uint64_t depth;
};
static_assert(sizeof(struct vgpu_args_memcpy_3d) == 136, "struct vgpu_args_memcpy_3d is 136 bytes");
static_assert(offsetof(struct vgpu_args_memcpy_3d, src_array) == 0, "vgpu_args_memcpy_3d.src_array offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d, dst_array) == 4, "vgpu_args_memcpy_3d.dst_array offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d, stream) == 8, "vgpu_args_memcpy_3d.stream offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d, src_x) == 16, "vgpu_args_memcpy_3d.src_x offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d, src_y) == 24, "vgpu_args_memcpy_3d.src_y offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d, src_z) == 32, "vgpu_args_memcpy_3d.src_z offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d, src_device) == 40, "vgpu_args_memcpy_3d.src_device offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d, src_pitch) == 48, "vgpu_args_memcpy_3d.src_pitch offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d, src_layout_height) == 56, "vgpu_args_memcpy_3d.src_layout_height offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d, dst_x) == 64, "vgpu_args_memcpy_3d.dst_x offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d, dst_y) == 72, "vgpu_args_memcpy_3d.dst_y offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d, dst_z) == 80, "vgpu_args_memcpy_3d.dst_z offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d, dst_device) == 88, "vgpu_args_memcpy_3d.dst_device offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d, dst_pitch) == 96, "vgpu_args_memcpy_3d.dst_pitch offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d, dst_layout_height) == 104, "vgpu_args_memcpy_3d.dst_layout_height offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d, width_bytes) == 112, "vgpu_args_memcpy_3d.width_bytes offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d, height) == 120, "vgpu_args_memcpy_3d.height offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d, depth) == 128, "vgpu_args_memcpy_3d.depth offset");

/* memcpy_3d: no results (status only) */

struct vgpu_args_memcpy_3d_htod {
    uint32_t array;                     /* array handle: per-channel id, 0 = null */
    uint32_t stream;                    /* stream handle: per-channel id, 0 = null (the default stream) */
    uint64_t x;
    uint64_t y;
    uint64_t z;
    uint64_t device;                    /* device pointer */
    uint64_t pitch;
    uint64_t layout_height;
    uint64_t width_bytes;
    uint64_t height;
    uint64_t depth;
};
static_assert(sizeof(struct vgpu_args_memcpy_3d_htod) == 80, "struct vgpu_args_memcpy_3d_htod is 80 bytes");
static_assert(offsetof(struct vgpu_args_memcpy_3d_htod, array) == 0, "vgpu_args_memcpy_3d_htod.array offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d_htod, stream) == 4, "vgpu_args_memcpy_3d_htod.stream offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d_htod, x) == 8, "vgpu_args_memcpy_3d_htod.x offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d_htod, y) == 16, "vgpu_args_memcpy_3d_htod.y offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d_htod, z) == 24, "vgpu_args_memcpy_3d_htod.z offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d_htod, device) == 32, "vgpu_args_memcpy_3d_htod.device offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d_htod, pitch) == 40, "vgpu_args_memcpy_3d_htod.pitch offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d_htod, layout_height) == 48, "vgpu_args_memcpy_3d_htod.layout_height offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d_htod, width_bytes) == 56, "vgpu_args_memcpy_3d_htod.width_bytes offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d_htod, height) == 64, "vgpu_args_memcpy_3d_htod.height offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d_htod, depth) == 72, "vgpu_args_memcpy_3d_htod.depth offset");

/* memcpy_3d_htod: no results (status only) */

struct vgpu_args_memcpy_3d_dtoh {
    uint32_t array;                     /* array handle: per-channel id, 0 = null */
    uint32_t stream;                    /* stream handle: per-channel id, 0 = null (the default stream) */
    uint64_t x;
    uint64_t y;
    uint64_t z;
    uint64_t device;                    /* device pointer */
    uint64_t pitch;
    uint64_t layout_height;
    uint64_t width_bytes;
    uint64_t height;
    uint64_t depth;
};
static_assert(sizeof(struct vgpu_args_memcpy_3d_dtoh) == 80, "struct vgpu_args_memcpy_3d_dtoh is 80 bytes");
static_assert(offsetof(struct vgpu_args_memcpy_3d_dtoh, array) == 0, "vgpu_args_memcpy_3d_dtoh.array offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d_dtoh, stream) == 4, "vgpu_args_memcpy_3d_dtoh.stream offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d_dtoh, x) == 8, "vgpu_args_memcpy_3d_dtoh.x offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d_dtoh, y) == 16, "vgpu_args_memcpy_3d_dtoh.y offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d_dtoh, z) == 24, "vgpu_args_memcpy_3d_dtoh.z offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d_dtoh, device) == 32, "vgpu_args_memcpy_3d_dtoh.device offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d_dtoh, pitch) == 40, "vgpu_args_memcpy_3d_dtoh.pitch offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d_dtoh, layout_height) == 48, "vgpu_args_memcpy_3d_dtoh.layout_height offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d_dtoh, width_bytes) == 56, "vgpu_args_memcpy_3d_dtoh.width_bytes offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d_dtoh, height) == 64, "vgpu_args_memcpy_3d_dtoh.height offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d_dtoh, depth) == 72, "vgpu_args_memcpy_3d_dtoh.depth offset");

/* memcpy_3d_dtoh: no results (status only) */

struct vgpu_args_tex_object_create {
    uint32_t resource;
    uint32_t array;                     /* array handle: per-channel id, 0 = null */
    uint64_t device;                    /* device pointer */
    uint64_t size_bytes;
    uint64_t width;
    uint64_t height;
    uint64_t pitch;
    uint32_t format;
    uint32_t channels;
    uint32_t address_x;
    uint32_t address_y;
    uint32_t address_z;
    uint32_t filter;
    uint32_t flags;
    float border_r;
    float border_g;
    float border_b;
    float border_a;
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_args_tex_object_create) == 96, "struct vgpu_args_tex_object_create is 96 bytes");
static_assert(offsetof(struct vgpu_args_tex_object_create, resource) == 0, "vgpu_args_tex_object_create.resource offset");
static_assert(offsetof(struct vgpu_args_tex_object_create, array) == 4, "vgpu_args_tex_object_create.array offset");
static_assert(offsetof(struct vgpu_args_tex_object_create, device) == 8, "vgpu_args_tex_object_create.device offset");
static_assert(offsetof(struct vgpu_args_tex_object_create, size_bytes) == 16, "vgpu_args_tex_object_create.size_bytes offset");
static_assert(offsetof(struct vgpu_args_tex_object_create, width) == 24, "vgpu_args_tex_object_create.width offset");
static_assert(offsetof(struct vgpu_args_tex_object_create, height) == 32, "vgpu_args_tex_object_create.height offset");
static_assert(offsetof(struct vgpu_args_tex_object_create, pitch) == 40, "vgpu_args_tex_object_create.pitch offset");
static_assert(offsetof(struct vgpu_args_tex_object_create, format) == 48, "vgpu_args_tex_object_create.format offset");
static_assert(offsetof(struct vgpu_args_tex_object_create, channels) == 52, "vgpu_args_tex_object_create.channels offset");
static_assert(offsetof(struct vgpu_args_tex_object_create, address_x) == 56, "vgpu_args_tex_object_create.address_x offset");
static_assert(offsetof(struct vgpu_args_tex_object_create, address_y) == 60, "vgpu_args_tex_object_create.address_y offset");
static_assert(offsetof(struct vgpu_args_tex_object_create, address_z) == 64, "vgpu_args_tex_object_create.address_z offset");
static_assert(offsetof(struct vgpu_args_tex_object_create, filter) == 68, "vgpu_args_tex_object_create.filter offset");
static_assert(offsetof(struct vgpu_args_tex_object_create, flags) == 72, "vgpu_args_tex_object_create.flags offset");
static_assert(offsetof(struct vgpu_args_tex_object_create, border_r) == 76, "vgpu_args_tex_object_create.border_r offset");
static_assert(offsetof(struct vgpu_args_tex_object_create, border_g) == 80, "vgpu_args_tex_object_create.border_g offset");
static_assert(offsetof(struct vgpu_args_tex_object_create, border_b) == 84, "vgpu_args_tex_object_create.border_b offset");
static_assert(offsetof(struct vgpu_args_tex_object_create, border_a) == 88, "vgpu_args_tex_object_create.border_a offset");

struct vgpu_result_tex_object_create {
    uint32_t texture;                   /* texobject handle: per-channel id, 0 = null */
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_result_tex_object_create) == 8, "struct vgpu_result_tex_object_create is 8 bytes");
static_assert(offsetof(struct vgpu_result_tex_object_create, texture) == 0, "vgpu_result_tex_object_create.texture offset");

struct vgpu_args_tex_object_destroy {
    uint32_t texture;                   /* texobject handle: per-channel id, 0 = null */
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_args_tex_object_destroy) == 8, "struct vgpu_args_tex_object_destroy is 8 bytes");
static_assert(offsetof(struct vgpu_args_tex_object_destroy, texture) == 0, "vgpu_args_tex_object_destroy.texture offset");

/* tex_object_destroy: no results (status only) */

struct vgpu_args_surf_object_create {
    uint32_t array;                     /* array handle: per-channel id, 0 = null */
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_args_surf_object_create) == 8, "struct vgpu_args_surf_object_create is 8 bytes");
static_assert(offsetof(struct vgpu_args_surf_object_create, array) == 0, "vgpu_args_surf_object_create.array offset");

struct vgpu_result_surf_object_create {
    uint32_t surface;                   /* surfobject handle: per-channel id, 0 = null */
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_result_surf_object_create) == 8, "struct vgpu_result_surf_object_create is 8 bytes");
static_assert(offsetof(struct vgpu_result_surf_object_create, surface) == 0, "vgpu_result_surf_object_create.surface offset");

struct vgpu_args_surf_object_destroy {
    uint32_t surface;                   /* surfobject handle: per-channel id, 0 = null */
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_args_surf_object_destroy) == 8, "struct vgpu_args_surf_object_destroy is 8 bytes");
static_assert(offsetof(struct vgpu_args_surf_object_destroy, surface) == 0, "vgpu_args_surf_object_destroy.surface offset");

/* surf_object_destroy: no results (status only) */

struct vgpu_args_tensor_map_encode_tiled {
    uint64_t global_address;            /* device pointer */
    uint64_t dim0;
    uint64_t dim1;
    uint64_t dim2;
    uint64_t dim3;
    uint64_t dim4;
    uint64_t stride1;
    uint64_t stride2;
    uint64_t stride3;
    uint64_t stride4;
    uint32_t data_type;
    uint32_t rank;
    uint32_t box0;
    uint32_t box1;
    uint32_t box2;
    uint32_t box3;
    uint32_t box4;
    uint32_t elem_stride0;
    uint32_t elem_stride1;
    uint32_t elem_stride2;
    uint32_t elem_stride3;
    uint32_t elem_stride4;
    uint32_t interleave;
    uint32_t swizzle;
    uint32_t l2_promotion;
    uint32_t oob_fill;
};
static_assert(sizeof(struct vgpu_args_tensor_map_encode_tiled) == 144, "struct vgpu_args_tensor_map_encode_tiled is 144 bytes");
static_assert(offsetof(struct vgpu_args_tensor_map_encode_tiled, global_address) == 0, "vgpu_args_tensor_map_encode_tiled.global_address offset");
static_assert(offsetof(struct vgpu_args_tensor_map_encode_tiled, dim0) == 8, "vgpu_args_tensor_map_encode_tiled.dim0 offset");
static_assert(offsetof(struct vgpu_args_tensor_map_encode_tiled, dim1) == 16, "vgpu_args_tensor_map_encode_tiled.dim1 offset");
static_assert(offsetof(struct vgpu_args_tensor_map_encode_tiled, dim2) == 24, "vgpu_args_tensor_map_encode_tiled.dim2 offset");
static_assert(offsetof(struct vgpu_args_tensor_map_encode_tiled, dim3) == 32, "vgpu_args_tensor_map_encode_tiled.dim3 offset");
static_assert(offsetof(struct vgpu_args_tensor_map_encode_tiled, dim4) == 40, "vgpu_args_tensor_map_encode_tiled.dim4 offset");
static_assert(offsetof(struct vgpu_args_tensor_map_encode_tiled, stride1) == 48, "vgpu_args_tensor_map_encode_tiled.stride1 offset");
static_assert(offsetof(struct vgpu_args_tensor_map_encode_tiled, stride2) == 56, "vgpu_args_tensor_map_encode_tiled.stride2 offset");
static_assert(offsetof(struct vgpu_args_tensor_map_encode_tiled, stride3) == 64, "vgpu_args_tensor_map_encode_tiled.stride3 offset");
static_assert(offsetof(struct vgpu_args_tensor_map_encode_tiled, stride4) == 72, "vgpu_args_tensor_map_encode_tiled.stride4 offset");
static_assert(offsetof(struct vgpu_args_tensor_map_encode_tiled, data_type) == 80, "vgpu_args_tensor_map_encode_tiled.data_type offset");
static_assert(offsetof(struct vgpu_args_tensor_map_encode_tiled, rank) == 84, "vgpu_args_tensor_map_encode_tiled.rank offset");
static_assert(offsetof(struct vgpu_args_tensor_map_encode_tiled, box0) == 88, "vgpu_args_tensor_map_encode_tiled.box0 offset");
static_assert(offsetof(struct vgpu_args_tensor_map_encode_tiled, box1) == 92, "vgpu_args_tensor_map_encode_tiled.box1 offset");
static_assert(offsetof(struct vgpu_args_tensor_map_encode_tiled, box2) == 96, "vgpu_args_tensor_map_encode_tiled.box2 offset");
static_assert(offsetof(struct vgpu_args_tensor_map_encode_tiled, box3) == 100, "vgpu_args_tensor_map_encode_tiled.box3 offset");
static_assert(offsetof(struct vgpu_args_tensor_map_encode_tiled, box4) == 104, "vgpu_args_tensor_map_encode_tiled.box4 offset");
static_assert(offsetof(struct vgpu_args_tensor_map_encode_tiled, elem_stride0) == 108, "vgpu_args_tensor_map_encode_tiled.elem_stride0 offset");
static_assert(offsetof(struct vgpu_args_tensor_map_encode_tiled, elem_stride1) == 112, "vgpu_args_tensor_map_encode_tiled.elem_stride1 offset");
static_assert(offsetof(struct vgpu_args_tensor_map_encode_tiled, elem_stride2) == 116, "vgpu_args_tensor_map_encode_tiled.elem_stride2 offset");
static_assert(offsetof(struct vgpu_args_tensor_map_encode_tiled, elem_stride3) == 120, "vgpu_args_tensor_map_encode_tiled.elem_stride3 offset");
static_assert(offsetof(struct vgpu_args_tensor_map_encode_tiled, elem_stride4) == 124, "vgpu_args_tensor_map_encode_tiled.elem_stride4 offset");
static_assert(offsetof(struct vgpu_args_tensor_map_encode_tiled, interleave) == 128, "vgpu_args_tensor_map_encode_tiled.interleave offset");
static_assert(offsetof(struct vgpu_args_tensor_map_encode_tiled, swizzle) == 132, "vgpu_args_tensor_map_encode_tiled.swizzle offset");
static_assert(offsetof(struct vgpu_args_tensor_map_encode_tiled, l2_promotion) == 136, "vgpu_args_tensor_map_encode_tiled.l2_promotion offset");
static_assert(offsetof(struct vgpu_args_tensor_map_encode_tiled, oob_fill) == 140, "vgpu_args_tensor_map_encode_tiled.oob_fill offset");

/* tensor_map_encode_tiled: no results (status only) */

struct vgpu_args_module_global_alias {
    uint32_t module;                    /* module handle: per-channel id, 0 = null */
    uint8_t pad0_[4];
    uint64_t address;                   /* device pointer */
    uint64_t size;
};
static_assert(sizeof(struct vgpu_args_module_global_alias) == 24, "struct vgpu_args_module_global_alias is 24 bytes");
static_assert(offsetof(struct vgpu_args_module_global_alias, module) == 0, "vgpu_args_module_global_alias.module offset");
static_assert(offsetof(struct vgpu_args_module_global_alias, address) == 8, "vgpu_args_module_global_alias.address offset");
static_assert(offsetof(struct vgpu_args_module_global_alias, size) == 16, "vgpu_args_module_global_alias.size offset");

/* module_global_alias: no results (status only) */

struct vgpu_args_memset_2d {
    uint64_t dst;                       /* device pointer */
    uint64_t pitch;
    uint64_t width;
    uint64_t height;
    uint32_t value;
    uint32_t element_bytes;
    uint32_t stream;                    /* stream handle: per-channel id, 0 = null (the default stream) */
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_args_memset_2d) == 48, "struct vgpu_args_memset_2d is 48 bytes");
static_assert(offsetof(struct vgpu_args_memset_2d, dst) == 0, "vgpu_args_memset_2d.dst offset");
static_assert(offsetof(struct vgpu_args_memset_2d, pitch) == 8, "vgpu_args_memset_2d.pitch offset");
static_assert(offsetof(struct vgpu_args_memset_2d, width) == 16, "vgpu_args_memset_2d.width offset");
static_assert(offsetof(struct vgpu_args_memset_2d, height) == 24, "vgpu_args_memset_2d.height offset");
static_assert(offsetof(struct vgpu_args_memset_2d, value) == 32, "vgpu_args_memset_2d.value offset");
static_assert(offsetof(struct vgpu_args_memset_2d, element_bytes) == 36, "vgpu_args_memset_2d.element_bytes offset");
static_assert(offsetof(struct vgpu_args_memset_2d, stream) == 40, "vgpu_args_memset_2d.stream offset");

/* memset_2d: no results (status only) */

struct vgpu_args_memcpy_3d_htod_pinned {
    uint32_t array;                     /* array handle: per-channel id, 0 = null */
    uint32_t stream;                    /* stream handle: per-channel id, 0 = null (the default stream) */
    uint64_t x;
    uint64_t y;
    uint64_t z;
    uint64_t device;                    /* device pointer */
    uint64_t pitch;
    uint64_t layout_height;
    uint64_t width_bytes;
    uint64_t height;
    uint64_t depth;
    uint64_t offset;
    uint64_t host_x;
    uint64_t host_y;
    uint64_t host_z;
    uint64_t host_pitch;
    uint64_t host_layout_height;
};
static_assert(sizeof(struct vgpu_args_memcpy_3d_htod_pinned) == 128, "struct vgpu_args_memcpy_3d_htod_pinned is 128 bytes");
static_assert(offsetof(struct vgpu_args_memcpy_3d_htod_pinned, array) == 0, "vgpu_args_memcpy_3d_htod_pinned.array offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d_htod_pinned, stream) == 4, "vgpu_args_memcpy_3d_htod_pinned.stream offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d_htod_pinned, x) == 8, "vgpu_args_memcpy_3d_htod_pinned.x offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d_htod_pinned, y) == 16, "vgpu_args_memcpy_3d_htod_pinned.y offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d_htod_pinned, z) == 24, "vgpu_args_memcpy_3d_htod_pinned.z offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d_htod_pinned, device) == 32, "vgpu_args_memcpy_3d_htod_pinned.device offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d_htod_pinned, pitch) == 40, "vgpu_args_memcpy_3d_htod_pinned.pitch offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d_htod_pinned, layout_height) == 48, "vgpu_args_memcpy_3d_htod_pinned.layout_height offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d_htod_pinned, width_bytes) == 56, "vgpu_args_memcpy_3d_htod_pinned.width_bytes offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d_htod_pinned, height) == 64, "vgpu_args_memcpy_3d_htod_pinned.height offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d_htod_pinned, depth) == 72, "vgpu_args_memcpy_3d_htod_pinned.depth offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d_htod_pinned, offset) == 80, "vgpu_args_memcpy_3d_htod_pinned.offset offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d_htod_pinned, host_x) == 88, "vgpu_args_memcpy_3d_htod_pinned.host_x offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d_htod_pinned, host_y) == 96, "vgpu_args_memcpy_3d_htod_pinned.host_y offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d_htod_pinned, host_z) == 104, "vgpu_args_memcpy_3d_htod_pinned.host_z offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d_htod_pinned, host_pitch) == 112, "vgpu_args_memcpy_3d_htod_pinned.host_pitch offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d_htod_pinned, host_layout_height) == 120, "vgpu_args_memcpy_3d_htod_pinned.host_layout_height offset");

/* memcpy_3d_htod_pinned: no results (status only) */

struct vgpu_args_memcpy_3d_dtoh_pinned {
    uint32_t array;                     /* array handle: per-channel id, 0 = null */
    uint32_t stream;                    /* stream handle: per-channel id, 0 = null (the default stream) */
    uint64_t x;
    uint64_t y;
    uint64_t z;
    uint64_t device;                    /* device pointer */
    uint64_t pitch;
    uint64_t layout_height;
    uint64_t width_bytes;
    uint64_t height;
    uint64_t depth;
    uint64_t offset;
    uint64_t host_x;
    uint64_t host_y;
    uint64_t host_z;
    uint64_t host_pitch;
    uint64_t host_layout_height;
};
static_assert(sizeof(struct vgpu_args_memcpy_3d_dtoh_pinned) == 128, "struct vgpu_args_memcpy_3d_dtoh_pinned is 128 bytes");
static_assert(offsetof(struct vgpu_args_memcpy_3d_dtoh_pinned, array) == 0, "vgpu_args_memcpy_3d_dtoh_pinned.array offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d_dtoh_pinned, stream) == 4, "vgpu_args_memcpy_3d_dtoh_pinned.stream offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d_dtoh_pinned, x) == 8, "vgpu_args_memcpy_3d_dtoh_pinned.x offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d_dtoh_pinned, y) == 16, "vgpu_args_memcpy_3d_dtoh_pinned.y offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d_dtoh_pinned, z) == 24, "vgpu_args_memcpy_3d_dtoh_pinned.z offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d_dtoh_pinned, device) == 32, "vgpu_args_memcpy_3d_dtoh_pinned.device offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d_dtoh_pinned, pitch) == 40, "vgpu_args_memcpy_3d_dtoh_pinned.pitch offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d_dtoh_pinned, layout_height) == 48, "vgpu_args_memcpy_3d_dtoh_pinned.layout_height offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d_dtoh_pinned, width_bytes) == 56, "vgpu_args_memcpy_3d_dtoh_pinned.width_bytes offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d_dtoh_pinned, height) == 64, "vgpu_args_memcpy_3d_dtoh_pinned.height offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d_dtoh_pinned, depth) == 72, "vgpu_args_memcpy_3d_dtoh_pinned.depth offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d_dtoh_pinned, offset) == 80, "vgpu_args_memcpy_3d_dtoh_pinned.offset offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d_dtoh_pinned, host_x) == 88, "vgpu_args_memcpy_3d_dtoh_pinned.host_x offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d_dtoh_pinned, host_y) == 96, "vgpu_args_memcpy_3d_dtoh_pinned.host_y offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d_dtoh_pinned, host_z) == 104, "vgpu_args_memcpy_3d_dtoh_pinned.host_z offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d_dtoh_pinned, host_pitch) == 112, "vgpu_args_memcpy_3d_dtoh_pinned.host_pitch offset");
static_assert(offsetof(struct vgpu_args_memcpy_3d_dtoh_pinned, host_layout_height) == 120, "vgpu_args_memcpy_3d_dtoh_pinned.host_layout_height offset");

/* memcpy_3d_dtoh_pinned: no results (status only) */

struct vgpu_args_tensor_map_encode_im2col {
    uint64_t global_address;            /* device pointer */
    uint64_t dim0;
    uint64_t dim1;
    uint64_t dim2;
    uint64_t dim3;
    uint64_t dim4;
    uint64_t stride1;
    uint64_t stride2;
    uint64_t stride3;
    uint64_t stride4;
    uint32_t data_type;
    uint32_t rank;
    int32_t lower0;
    int32_t lower1;
    int32_t lower2;
    int32_t upper0;
    int32_t upper1;
    int32_t upper2;
    uint32_t channels_per_pixel;
    uint32_t pixels_per_column;
    uint32_t elem_stride0;
    uint32_t elem_stride1;
    uint32_t elem_stride2;
    uint32_t elem_stride3;
    uint32_t elem_stride4;
    uint32_t interleave;
    uint32_t swizzle;
    uint32_t l2_promotion;
    uint32_t oob_fill;
    uint8_t pad0_[4];
};
static_assert(sizeof(struct vgpu_args_tensor_map_encode_im2col) == 160, "struct vgpu_args_tensor_map_encode_im2col is 160 bytes");
static_assert(offsetof(struct vgpu_args_tensor_map_encode_im2col, global_address) == 0, "vgpu_args_tensor_map_encode_im2col.global_address offset");
static_assert(offsetof(struct vgpu_args_tensor_map_encode_im2col, dim0) == 8, "vgpu_args_tensor_map_encode_im2col.dim0 offset");
static_assert(offsetof(struct vgpu_args_tensor_map_encode_im2col, dim1) == 16, "vgpu_args_tensor_map_encode_im2col.dim1 offset");
static_assert(offsetof(struct vgpu_args_tensor_map_encode_im2col, dim2) == 24, "vgpu_args_tensor_map_encode_im2col.dim2 offset");
static_assert(offsetof(struct vgpu_args_tensor_map_encode_im2col, dim3) == 32, "vgpu_args_tensor_map_encode_im2col.dim3 offset");
static_assert(offsetof(struct vgpu_args_tensor_map_encode_im2col, dim4) == 40, "vgpu_args_tensor_map_encode_im2col.dim4 offset");
static_assert(offsetof(struct vgpu_args_tensor_map_encode_im2col, stride1) == 48, "vgpu_args_tensor_map_encode_im2col.stride1 offset");
static_assert(offsetof(struct vgpu_args_tensor_map_encode_im2col, stride2) == 56, "vgpu_args_tensor_map_encode_im2col.stride2 offset");
static_assert(offsetof(struct vgpu_args_tensor_map_encode_im2col, stride3) == 64, "vgpu_args_tensor_map_encode_im2col.stride3 offset");
static_assert(offsetof(struct vgpu_args_tensor_map_encode_im2col, stride4) == 72, "vgpu_args_tensor_map_encode_im2col.stride4 offset");
static_assert(offsetof(struct vgpu_args_tensor_map_encode_im2col, data_type) == 80, "vgpu_args_tensor_map_encode_im2col.data_type offset");
static_assert(offsetof(struct vgpu_args_tensor_map_encode_im2col, rank) == 84, "vgpu_args_tensor_map_encode_im2col.rank offset");
static_assert(offsetof(struct vgpu_args_tensor_map_encode_im2col, lower0) == 88, "vgpu_args_tensor_map_encode_im2col.lower0 offset");
static_assert(offsetof(struct vgpu_args_tensor_map_encode_im2col, lower1) == 92, "vgpu_args_tensor_map_encode_im2col.lower1 offset");
static_assert(offsetof(struct vgpu_args_tensor_map_encode_im2col, lower2) == 96, "vgpu_args_tensor_map_encode_im2col.lower2 offset");
static_assert(offsetof(struct vgpu_args_tensor_map_encode_im2col, upper0) == 100, "vgpu_args_tensor_map_encode_im2col.upper0 offset");
static_assert(offsetof(struct vgpu_args_tensor_map_encode_im2col, upper1) == 104, "vgpu_args_tensor_map_encode_im2col.upper1 offset");
static_assert(offsetof(struct vgpu_args_tensor_map_encode_im2col, upper2) == 108, "vgpu_args_tensor_map_encode_im2col.upper2 offset");
static_assert(offsetof(struct vgpu_args_tensor_map_encode_im2col, channels_per_pixel) == 112, "vgpu_args_tensor_map_encode_im2col.channels_per_pixel offset");
static_assert(offsetof(struct vgpu_args_tensor_map_encode_im2col, pixels_per_column) == 116, "vgpu_args_tensor_map_encode_im2col.pixels_per_column offset");
static_assert(offsetof(struct vgpu_args_tensor_map_encode_im2col, elem_stride0) == 120, "vgpu_args_tensor_map_encode_im2col.elem_stride0 offset");
static_assert(offsetof(struct vgpu_args_tensor_map_encode_im2col, elem_stride1) == 124, "vgpu_args_tensor_map_encode_im2col.elem_stride1 offset");
static_assert(offsetof(struct vgpu_args_tensor_map_encode_im2col, elem_stride2) == 128, "vgpu_args_tensor_map_encode_im2col.elem_stride2 offset");
static_assert(offsetof(struct vgpu_args_tensor_map_encode_im2col, elem_stride3) == 132, "vgpu_args_tensor_map_encode_im2col.elem_stride3 offset");
static_assert(offsetof(struct vgpu_args_tensor_map_encode_im2col, elem_stride4) == 136, "vgpu_args_tensor_map_encode_im2col.elem_stride4 offset");
static_assert(offsetof(struct vgpu_args_tensor_map_encode_im2col, interleave) == 140, "vgpu_args_tensor_map_encode_im2col.interleave offset");
static_assert(offsetof(struct vgpu_args_tensor_map_encode_im2col, swizzle) == 144, "vgpu_args_tensor_map_encode_im2col.swizzle offset");
static_assert(offsetof(struct vgpu_args_tensor_map_encode_im2col, l2_promotion) == 148, "vgpu_args_tensor_map_encode_im2col.l2_promotion offset");
static_assert(offsetof(struct vgpu_args_tensor_map_encode_im2col, oob_fill) == 152, "vgpu_args_tensor_map_encode_im2col.oob_fill offset");

/* tensor_map_encode_im2col: no results (status only) */

#endif /* VGPU_PROTOCOL_H */
