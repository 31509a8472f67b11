/* Shared between the transport core and its two backends. Private to libvgpu_transport. */
#ifndef VGPU_TRANSPORT_INTERNAL_H
#define VGPU_TRANSPORT_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "vgpu_region.h"
#include "vgpu_transport.h"

enum vt_backend { VT_PCI, VT_SOCKET };

struct vt_inflight {
    uint32_t sq_index; /* the sq tail after the push that used the span */
    uint64_t end;      /* the arena's free-running tail after the span */
};

struct cuda_transport {
    enum vt_backend backend;
    pthread_mutex_t lock;

    /* the mapping */
    uint8_t *region;
    size_t region_size;
    uint8_t *arena;
    uint64_t arena_size;
    uint64_t sq_offset, cq_offset;
    uint32_t sq_entries, cq_entries;
    uint32_t vm_id;
    uint32_t host_peer_id;
    uint32_t epoch;
    uint32_t peer_id;

    /* PCI backend */
    uint8_t *bar0;
    size_t bar0_size;
    int pci_lock_fd; /* resource2, flock()ed exclusively while open */

    /* socket backend */
    int sock;
    int region_fd;
    int doorbell_fd; /* the host's vector 0 */
    int irq_fd;      /* our vector 0 */

    /* our private indices (only ever written to the region, never trusted from it) */
    uint32_t sq_tail;
    uint32_t cq_head;
    uint32_t seq;

    /* the data arena: a ring of payload bytes, reused once the host's sq_head passed it */
    uint64_t arena_tail;
    uint64_t arena_freed;
    struct vt_inflight *inflight; /* ring of sq_entries + 1 */
    uint32_t inflight_head, inflight_count;

    size_t chunk;
    uint64_t timeout_ns;
    uint64_t spin_ns;

    /* the first ASYNC_ERROR completion not yet taken */
    int have_async_error;
    struct cuda_call_result async_error;

    struct cuda_transport_stats stats;
};

/* core (vgpu_transport.c) */
int vt_fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int vt_attach_region(struct cuda_transport *t); /* validate the header, set up the rings */
struct cuda_transport *vt_alloc(enum vt_backend backend);
void vt_free(struct cuda_transport *t);

/* backends */
int vt_pci_open(struct cuda_transport *t, const char *bdf);
void vt_pci_close(struct cuda_transport *t);
void vt_pci_kick(struct cuda_transport *t);
int vt_socket_open(struct cuda_transport *t, const char *path);
void vt_socket_close(struct cuda_transport *t);
void vt_socket_kick(struct cuda_transport *t);
/* sleep until our vector fires or `ns` pass (socket backend) */
void vt_socket_wait_irq(struct cuda_transport *t, uint64_t ns);

#endif
