/*
 * Call ids and argument/result structs of the calls vgpu_selftest uses, in the catalog's layout
 * (protocol/_catalog.py, protocol/_wire.py: natural alignment, padded to 8 bytes).
 * Stand-in for the generated protocol/include/vgpu_protocol.h: vgpu_selftest.c uses that header
 * instead whenever it exists. Written out from the catalog; tests/qemu/test_c_transport_host.py
 * checks every size and id below against the catalog.
 */
#ifndef VGPU_CALLS_H
#define VGPU_CALLS_H

#include <stdint.h>

#define VGPU_CALL_NOP 0x0001
#define VGPU_CALL_INIT 0x0010
#define VGPU_CALL_DEVICE_GET_COUNT 0x0012
#define VGPU_CALL_DEVICE_GET_NAME 0x0014
#define VGPU_CALL_DEVICE_TOTAL_MEM 0x0016
#define VGPU_CALL_MEM_GET_INFO 0x0027
#define VGPU_CALL_MEM_ALLOC 0x0030
#define VGPU_CALL_MEM_FREE 0x0031
#define VGPU_CALL_MEMSET_D8 0x0032
#define VGPU_CALL_MEMSET_D32 0x0034
#define VGPU_CALL_MEMCPY_HTOD 0x0035
#define VGPU_CALL_MEMCPY_DTOH 0x0036
#define VGPU_CALL_CTX_SYNCHRONIZE 0x0026
#define VGPU_CALL_STREAM_SYNCHRONIZE 0x0052
#define VGPU_CALL_CUBLAS_CREATE 0x0080
#define VGPU_CALL_CUBLAS_DESTROY 0x0081
#define VGPU_CALL_CUBLAS_SGEMM 0x0084
#define VGPU_CALL_EVENT_CREATE 0x0060
#define VGPU_CALL_EVENT_RECORD 0x0062
#define VGPU_CALL_EVENT_SYNCHRONIZE 0x0063
#define VGPU_CALL_EVENT_ELAPSED_TIME 0x0065
#define VGPU_CALL_EVENT_DESTROY 0x0061

struct vgpu_args_init {
    uint32_t flags;
    uint8_t pad0_[4];
};
_Static_assert(sizeof(struct vgpu_args_init) == 8, "init args");
struct vgpu_result_device_get_count {
    int32_t value;
    uint8_t pad0_[4];
};
_Static_assert(sizeof(struct vgpu_result_device_get_count) == 8, "device_get_count result");
struct vgpu_args_device_get_name {
    int32_t device;
    uint8_t pad0_[4];
};
_Static_assert(sizeof(struct vgpu_args_device_get_name) == 8, "device_get_name args");
struct vgpu_args_device_total_mem {
    int32_t device;
    uint8_t pad0_[4];
};
_Static_assert(sizeof(struct vgpu_args_device_total_mem) == 8, "device_total_mem args");
struct vgpu_result_device_total_mem {
    uint64_t bytes;
};
_Static_assert(sizeof(struct vgpu_result_device_total_mem) == 8, "device_total_mem result");
struct vgpu_result_mem_get_info {
    uint64_t free;
    uint64_t total;
};
_Static_assert(sizeof(struct vgpu_result_mem_get_info) == 16, "mem_get_info result");
struct vgpu_args_mem_alloc {
    uint64_t bytesize;
};
_Static_assert(sizeof(struct vgpu_args_mem_alloc) == 8, "mem_alloc args");
struct vgpu_result_mem_alloc {
    uint64_t dptr;
};
_Static_assert(sizeof(struct vgpu_result_mem_alloc) == 8, "mem_alloc result");
struct vgpu_args_mem_free {
    uint64_t dptr;
};
_Static_assert(sizeof(struct vgpu_args_mem_free) == 8, "mem_free args");
struct vgpu_args_memset_d8 {
    uint64_t dst;
    uint64_t count;
    uint8_t value;
    uint8_t pad0_[3];
    uint32_t stream;
};
_Static_assert(sizeof(struct vgpu_args_memset_d8) == 24, "memset_d8 args");
struct vgpu_args_memset_d32 {
    uint64_t dst;
    uint64_t count;
    uint32_t value;
    uint32_t stream;
};
_Static_assert(sizeof(struct vgpu_args_memset_d32) == 24, "memset_d32 args");
struct vgpu_args_memcpy_htod {
    uint64_t dst;
    uint32_t stream;
    uint8_t pad0_[4];
};
_Static_assert(sizeof(struct vgpu_args_memcpy_htod) == 16, "memcpy_htod args");
struct vgpu_args_memcpy_dtoh {
    uint64_t src;
    uint64_t count;
    uint32_t stream;
    uint8_t pad0_[4];
};
_Static_assert(sizeof(struct vgpu_args_memcpy_dtoh) == 24, "memcpy_dtoh args");
struct vgpu_args_stream_synchronize {
    uint32_t stream;
    uint8_t pad0_[4];
};
_Static_assert(sizeof(struct vgpu_args_stream_synchronize) == 8, "stream_synchronize args");
struct vgpu_result_cublas_create {
    uint32_t handle;
    uint8_t pad0_[4];
};
_Static_assert(sizeof(struct vgpu_result_cublas_create) == 8, "cublas_create result");
struct vgpu_args_cublas_destroy {
    uint32_t handle;
    uint8_t pad0_[4];
};
_Static_assert(sizeof(struct vgpu_args_cublas_destroy) == 8, "cublas_destroy args");
struct vgpu_args_cublas_sgemm {
    uint32_t handle;
    uint32_t transa;
    uint32_t transb;
    int32_t m;
    int32_t n;
    int32_t k;
    float alpha;
    uint8_t pad0_[4];
    uint64_t a;
    int32_t lda;
    uint8_t pad1_[4];
    uint64_t b;
    int32_t ldb;
    float beta;
    uint64_t c;
    int32_t ldc;
    uint8_t pad2_[4];
};
_Static_assert(sizeof(struct vgpu_args_cublas_sgemm) == 80, "cublas_sgemm args");
struct vgpu_args_event_create {
    uint32_t flags;
    uint8_t pad0_[4];
};
_Static_assert(sizeof(struct vgpu_args_event_create) == 8, "event_create args");
struct vgpu_result_event_create {
    uint32_t event;
    uint8_t pad0_[4];
};
_Static_assert(sizeof(struct vgpu_result_event_create) == 8, "event_create result");
struct vgpu_args_event_record {
    uint32_t event;
    uint32_t stream;
};
_Static_assert(sizeof(struct vgpu_args_event_record) == 8, "event_record args");
struct vgpu_args_event_synchronize {
    uint32_t event;
    uint8_t pad0_[4];
};
_Static_assert(sizeof(struct vgpu_args_event_synchronize) == 8, "event_synchronize args");
struct vgpu_args_event_elapsed_time {
    uint32_t start;
    uint32_t end;
};
_Static_assert(sizeof(struct vgpu_args_event_elapsed_time) == 8, "event_elapsed_time args");
struct vgpu_result_event_elapsed_time {
    float milliseconds;
    uint8_t pad0_[4];
};
_Static_assert(sizeof(struct vgpu_result_event_elapsed_time) == 8, "event_elapsed_time result");
struct vgpu_args_event_destroy {
    uint32_t event;
    uint8_t pad0_[4];
};
_Static_assert(sizeof(struct vgpu_args_event_destroy) == 8, "event_destroy args");

#endif
