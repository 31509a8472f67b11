/*
 * The socket backend: what QEMU's ivshmem-doorbell does when its chardev connects to an
 * ivshmem-server (QEMU docs/specs/ivshmem-spec.rst), so the mediator cannot tell us from a VM.
 *
 * The server sends little-endian int64 messages, file descriptors attached with SCM_RIGHTS:
 * the protocol version (0); our peer id; -1 with the region's fd; then for each other peer its id
 * once per vector with that vector's eventfd; then our own id once per vector with our eventfds.
 * The mediator refuses a connection by sending -2 in place of the version, then the length of a
 * reason and the reason: we return it (E_REFUSED) for the program's log.
 * A peer id without an fd later means that peer went away. We map the region as soon as its fd
 * arrives, so the host's peer id and its number of vectors are read from the header (HOST_PEER_ID,
 * VECTORS) rather than assumed. Our channel c rings the host's vector c % vectors.
 *
 * Every peer received the server's one open file description of the region, so the channel claim
 * (an OFD lock, vgpu_channel.c) is taken on a description of our own: /proc/self/fd/<memfd>
 * opened again. After the handshake the server may announce further peers (other programs on this
 * VM's socket) with their eventfds: the heartbeat thread takes those messages off (vt_socket_drain).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "transport_internal.h"

#define MAX_FDS_PER_MESSAGE 4
#define HANDSHAKE_MIN_NS 5000000000ull
#define REFUSED (-2)     /* in place of the protocol version: a reason follows */
#define MAX_REASON 1024

/* One 8-byte message and the first fd that came with it (-1 if none). */
static int recv_message(int sock, int64_t *value, int *fd)
{
    uint8_t buf[8];
    size_t have = 0;
    *fd = -1;
    while (have < sizeof buf) {
        union {
            struct cmsghdr align;
            char space[CMSG_SPACE(sizeof(int) * MAX_FDS_PER_MESSAGE)];
        } control;
        struct iovec iov = {.iov_base = buf + have, .iov_len = sizeof buf - have};
        struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.space,
                             .msg_controllen = sizeof control.space};
        ssize_t n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return vt_fail(CUDA_TRANSPORT_E_HANDSHAKE, "recvmsg: %s", errno == EAGAIN ? "timed out" : strerror(errno));
        if (n == 0)
            return vt_fail(CUDA_TRANSPORT_E_HANDSHAKE, "the server closed the connection during the handshake");
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                continue;
            size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < count; i++) {
                int got;
                memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof got);
                if (*fd < 0)
                    *fd = got;
                else
                    close(got);
            }
        }
        have += (size_t)n;
    }
    memcpy(value, buf, sizeof *value); /* x86 and arm64 are little-endian, as the protocol */
    return 0;
}

static int map_region(struct cuda_transport *t)
{
    struct stat st;
    if (fstat(t->region_fd, &st) < 0 || st.st_size <= 0)
        return vt_fail(CUDA_TRANSPORT_E_HANDSHAKE, "the region fd has no size");
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, t->region_fd, 0);
    if (p == MAP_FAILED)
        return vt_fail(CUDA_TRANSPORT_E_SYS, "mmap region: %s", strerror(errno));
    t->region = p;
    t->region_size = (size_t)st.st_size;
    return vt_attach_region(t);
}

/* The mediator refused the connection: -2 in place of the version, a length, then why (UTF-8). */
static int refusal(struct cuda_transport *t)
{
    int64_t len;
    int fd, rc = recv_message(t->sock, &len, &fd);
    if (fd >= 0)
        close(fd);
    char why[MAX_REASON + 1] = "";
    size_t have = 0;
    if (rc == 0 && len > 0) {
        size_t want = len < MAX_REASON ? (size_t)len : MAX_REASON;
        while (have < want) {
            ssize_t n = recv(t->sock, why + have, want - have, 0);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            have += (size_t)n;
        }
    }
    why[have] = '\0';
    return vt_fail(CUDA_TRANSPORT_E_REFUSED, "the mediator refused this connection: %s",
                   have ? why : "(no reason given)");
}

int vt_socket_open(struct cuda_transport *t, const char *path)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof addr.sun_path)
        return vt_fail(CUDA_TRANSPORT_E_INVAL, "socket path too long: %s", path);
    strcpy(addr.sun_path, path);
    t->sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (t->sock < 0)
        return vt_fail(CUDA_TRANSPORT_E_SYS, "socket: %s", strerror(errno));
    if (connect(t->sock, (struct sockaddr *)&addr, sizeof addr) < 0)
        return vt_fail(CUDA_TRANSPORT_E_NODEV, "connect %s: %s", path, strerror(errno));
    /* The handshake waits as long as a call would (VGPU_TRANSPORT_TIMEOUT_MS), 5 s at least: the first
     * peer of a VM waits for its worker to start, seconds on a loaded host (6.4 s at load 21, 2 CPUs). */
    uint64_t wait_ns = t->timeout_ns > HANDSHAKE_MIN_NS ? t->timeout_ns : HANDSHAKE_MIN_NS;
    struct timeval tv = {.tv_sec = (time_t)(wait_ns / 1000000000ull),
                         .tv_usec = (suseconds_t)(wait_ns % 1000000000ull / 1000)};
    setsockopt(t->sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);

    int64_t value;
    int fd, rc;
    if ((rc = recv_message(t->sock, &value, &fd)))
        return rc;
    if (fd >= 0)
        close(fd);
    if (value == REFUSED)
        return refusal(t);
    if (value != 0)
        return vt_fail(CUDA_TRANSPORT_E_HANDSHAKE, "ivshmem protocol version %lld, expected 0", (long long)value);
    if ((rc = recv_message(t->sock, &value, &fd)))
        return rc;
    if (fd >= 0)
        close(fd);
    if (value < 0 || value > 0xffff)
        return vt_fail(CUDA_TRANSPORT_E_HANDSHAKE, "peer id %lld out of range", (long long)value);
    t->peer_id = (uint32_t)value;
    if ((rc = recv_message(t->sock, &value, &t->region_fd)))
        return rc;
    if (value != -1 || t->region_fd < 0)
        return vt_fail(CUDA_TRANSPORT_E_HANDSHAKE, "expected -1 with the shared memory fd, got %lld",
                       (long long)value);
    if ((rc = map_region(t)))
        return rc;
    /* the host's vectors and ours, in order: `vectors` of each (the region header says how many) */
    while (t->n_host_fds < t->vectors || t->n_own_fds < t->vectors) {
        if ((rc = recv_message(t->sock, &value, &fd)))
            return rc;
        if (fd < 0) { /* a peer went away */
            if ((uint64_t)value == t->host_peer_id)
                return vt_fail(CUDA_TRANSPORT_E_HANDSHAKE, "the host (peer %lld) went away during the handshake",
                               (long long)value);
            continue;
        }
        if ((uint64_t)value == t->peer_id && t->n_own_fds < t->vectors)
            t->own_fds[t->n_own_fds++] = fd;
        else if ((uint64_t)value == t->host_peer_id && t->n_host_fds < t->vectors)
            t->host_fds[t->n_host_fds++] = fd;
        else
            close(fd); /* another peer's vectors: not used */
    }
    tv.tv_sec = 0;
    setsockopt(t->sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char self[64];
    snprintf(self, sizeof self, "/proc/self/fd/%d", t->region_fd);
    t->claim_fd = open(self, O_RDWR | O_CLOEXEC);
    if (t->claim_fd < 0)
        return vt_fail(CUDA_TRANSPORT_E_SYS, "open %s (our own description of the region, to claim a channel "
                       "on): %s", self, strerror(errno));
    return 0;
}

void vt_socket_close(struct cuda_transport *t)
{
    if (t->region)
        munmap(t->region, t->region_size);
    t->region = NULL;
    int *fds[] = {&t->region_fd, &t->claim_fd, &t->sock};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++) {
        if (*fds[i] >= 0)
            close(*fds[i]);
        *fds[i] = -1;
    }
    for (uint32_t i = 0; i < VR_MAX_CHANNELS; i++) {
        if (t->host_fds[i] >= 0)
            close(t->host_fds[i]);
        if (t->own_fds[i] >= 0)
            close(t->own_fds[i]);
        t->host_fds[i] = t->own_fds[i] = -1;
    }
}

void vt_socket_kick(struct cuda_transport *t)
{
    uint64_t one = 1;
    if (write(t->host_fds[t->vector], &one, sizeof one) < 0) {
        /* EAGAIN: the counter is saturated, the host is being woken anyway */
    }
}

/* The host signals one of our vectors (which one is its choice): wait on all of them. */
void vt_socket_wait_irq(struct cuda_transport *t, uint64_t ns)
{
    struct pollfd p[VR_MAX_CHANNELS];
    for (uint32_t i = 0; i < t->n_own_fds; i++)
        p[i] = (struct pollfd){.fd = t->own_fds[i], .events = POLLIN};
    int ms = (int)(ns / 1000000ull);
    if (poll(p, t->n_own_fds, ms > 0 ? ms : 1) <= 0)
        return;
    for (uint32_t i = 0; i < t->n_own_fds; i++)
        if (p[i].revents & POLLIN) {
            uint64_t count;
            if (read(p[i].fd, &count, sizeof count) < 0) {
            }
        }
}

int vt_socket_drain(struct cuda_transport *t)
{
    for (;;) {
        uint8_t buf[256];
        union {
            struct cmsghdr align;
            char space[CMSG_SPACE(sizeof(int) * MAX_FDS_PER_MESSAGE)];
        } control;
        struct iovec iov = {.iov_base = buf, .iov_len = sizeof buf};
        struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.space,
                             .msg_controllen = sizeof control.space};
        ssize_t n = recvmsg(t->sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                continue;
            size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < count; i++) {
                int got;
                memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof got);
                close(got);
            }
        }
        if (n == 0)
            return -1; /* the server ended the connection */
    }
}
