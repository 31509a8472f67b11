/* Shared between the transport core and its two backends. Private to libvgpu_transport. */
#ifndef VGPU_TRANSPORT_INTERNAL_H
#define VGPU_TRANSPORT_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

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
    pid_t owner_pid; /* the process that opened the transport; a forked child never uses it */

    /* the whole region and its header (page 0) */
    uint8_t *region;
    size_t region_size;
    uint32_t vm_id;
    uint32_t host_peer_id;
    uint32_t epoch;
    uint32_t peer_id;
    uint64_t features;
    uint32_t channel_count;
    uint64_t channel_size, channels_offset;
    uint32_t lease_ms;
    uint32_t vectors;

    /* our channel: claimed by an OFD write lock on byte `channel` of claim_fd, opened on the host */
    int claim_fd;    /* this process's own open file description of the region file */
    int channel;     /* -1 until claimed */
    uint32_t vector; /* channel % vectors: the doorbell vector we ring */
    uint8_t *chan;   /* the channel block: every ring field is relative to it */
    uint32_t nonce;  /* our open_request; also the close_request that ends it */
    uint32_t generation;
    int opened;      /* the host acknowledged our open (and we have not closed) */
    int reopen;      /* the region was reset: open the channel again before the next call */
    int closed;      /* shut down by this process: every call answers E_CLOSED */
    int lost;        /* closed by the host for good: every call answers E_CLOSED */
    char lost_why[256];

    /* the heartbeat thread (started once the channel is open, stopped at close) */
    pthread_t heartbeat;
    int heartbeat_running;
    int stop_fd;              /* eventfd: wakes the heartbeat thread to stop */
    int host_hung_up;         /* atomic: the socket backend's connection ended */
    uint64_t heartbeat_count; /* atomic */

    /* PCI backend */
    uint8_t *bar0;
    size_t bar0_size;

    /* socket backend */
    int sock;
    int region_fd;
    int host_fds[VR_MAX_CHANNELS]; /* the host's vector eventfds, by vector */
    int own_fds[VR_MAX_CHANNELS];  /* ours: the host signals one when GUEST_NEED_IRQ is set */
    uint32_t n_host_fds, n_own_fds;

    /* our private indices (only ever written to the channel, never trusted from it) */
    uint32_t sq_tail;
    uint32_t cq_head;
    uint32_t seq;
    uint32_t kick_head; /* sq_head when we last kicked with entries queued (kick_live): see kick() */
    int kick_live;

    /* the channel's ring geometry */
    uint64_t sq_offset, cq_offset;
    uint32_t sq_entries, cq_entries;
    uint8_t *arena;
    uint64_t arena_size;

    /* the data arena: a ring of payload bytes, reused once the host's sq_head passed it */
    uint64_t arena_tail;
    uint64_t arena_freed;
    struct vt_inflight *inflight; /* ring of sq_entries + 1 */
    uint32_t inflight_head, inflight_count;
    /* a dtoh output area not yet copied out: spans pushed from hold_index on stay in use */
    int holding;
    uint32_t hold_index;

    size_t chunk;
    uint64_t timeout_ns;
    uint64_t spin_ns;

    /* the first ASYNC_ERROR completion not yet taken */
    int have_async_error;
    struct cuda_call_result async_error;

    struct cuda_transport_stats stats;

    struct cuda_transport *next_open; /* the process's open transports, for the fork handler */
};

/* core (vgpu_transport.c) */
int vt_fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int vt_attach_region(struct cuda_transport *t);  /* validate the region header, wait for READY */
int vt_attach_channel(struct cuda_transport *t); /* validate our opened channel's header, rings at 0 */
struct cuda_transport *vt_alloc(enum vt_backend backend);
void vt_free(struct cuda_transport *t);

/* channels (vgpu_channel.c): claim, open, heartbeat, close */
int vt_channel_connect(struct cuda_transport *t);  /* claim a free channel, open it, start the heartbeat */
int vt_channel_open(struct cuda_transport *t);     /* (re)open the claimed channel on the host */
void vt_channel_disconnect(struct cuda_transport *t); /* close it on the host, drop the claim */
/* the host closed our channel for good: remember why, stop the heartbeat, drop the claim; E_CLOSED */
int vt_channel_lost(struct cuda_transport *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
pid_t vt_current_pid(void); /* getpid(), kept by a fork handler so the hot path makes no system call */

/* backends */
int vt_pci_open(struct cuda_transport *t, const char *bdf);
void vt_pci_close(struct cuda_transport *t);
void vt_pci_kick(struct cuda_transport *t);
int vt_socket_open(struct cuda_transport *t, const char *path);
void vt_socket_close(struct cuda_transport *t);
void vt_socket_kick(struct cuda_transport *t);
/* sleep until one of our vectors fires or `ns` pass (socket backend) */
void vt_socket_wait_irq(struct cuda_transport *t, uint64_t ns);
/* take whatever the server sent since the handshake (new peers' eventfds): close them; 0, or -1 at EOF */
int vt_socket_drain(struct cuda_transport *t);

#endif
