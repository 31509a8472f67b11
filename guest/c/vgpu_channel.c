/*
 * Channels (protocol 2.x): how a process gets a pair of rings of its own in the VM's region, keeps
 * it, and gives it back. The host never sees the claim; it sees open_request, heartbeat and
 * close_request in the channel's header.
 *
 * Theory of operation:
 *  - Claim: an open-file-description write lock (F_OFD_SETLK, one byte at offset c) on an open file
 *    description of the region file that this process made itself (PCI: its own open of resource2;
 *    socket: its own open of /proc/self/fd/<memfd>, because SCM_RIGHTS hands every peer the
 *    server's one description). The first free c wins. The kernel drops the lock however the
 *    process ends. A forked child's copy of the descriptor is closed by the fork handler, so a
 *    child that outlives its parent never keeps the parent's claim.
 *  - Open: owner_pid, owner_peer and heartbeat, then open_request = a fresh nonce (release), then
 *    the doorbell on vector c % vectors. The host frees whatever the channel still had (a dead
 *    predecessor's context), lays its rings out at 0, creates a fresh context, and writes
 *    open_ack = nonce last; we wait up to 5 s for it.
 *  - Heartbeat: a thread (all signals blocked) bumps `heartbeat` every lease_ms / 4 (at least
 *    10 ms) while the channel is open. A heartbeat that stands still for lease_ms makes the host
 *    close the channel and free everything it held: this is how a process killed without a word
 *    gives its memory back, and also why a process stopped for longer than the lease (SIGSTOP, a
 *    debugger) comes back to a closed channel. On the socket backend the same thread takes the
 *    server's later messages (other peers' eventfds) off the connection and notices its end.
 *  - Close: close_request = nonce, the doorbell, a wait of at most 1 s for the host to free the
 *    channel, then the claim is dropped.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "transport_internal.h"

#define OPEN_TIMEOUT_NS 5000000000ull
#define CLOSE_TIMEOUT_NS 1000000000ull
#define REKICK_NS 100000000ull /* ring again while waiting, in case the host slept through it */
#define HEARTBEAT_MIN_MS 10u
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

/* -- the process, its forks, its open transports --------------------------------------------------- */

static pthread_once_t process_once = PTHREAD_ONCE_INIT;
static pid_t current_pid;
static pthread_mutex_t open_lock = PTHREAD_MUTEX_INITIALIZER;
static struct cuda_transport *open_list;

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static void before_fork(void) { pthread_mutex_lock(&open_lock); }
static void after_fork_in_parent(void) { pthread_mutex_unlock(&open_lock); }

/*
 * In the child: it has no heartbeat thread and must never write to its parent's channel. Closing
 * its copies of the descriptors keeps it from holding the parent's claim or connection after the
 * parent is gone; the transport itself answers E_CLOSED in the child (owner_pid differs).
 */
static void after_fork_in_child(void)
{
    __atomic_store_n(&current_pid, getpid(), __ATOMIC_RELEASE);
    for (struct cuda_transport *t = open_list; t; t = t->next_open) {
        close_fd(&t->claim_fd);
        close_fd(&t->stop_fd);
        close_fd(&t->sock);
        for (uint32_t i = 0; i < VR_MAX_CHANNELS; i++) {
            close_fd(&t->host_fds[i]);
            close_fd(&t->own_fds[i]);
        }
        t->heartbeat_running = 0;
    }
    open_list = NULL; /* none of them is the child's */
    pthread_mutex_unlock(&open_lock);
}

static void process_init(void)
{
    current_pid = getpid();
    pthread_atfork(before_fork, after_fork_in_parent, after_fork_in_child);
}

pid_t vt_current_pid(void)
{
    pthread_once(&process_once, process_init);
    return __atomic_load_n(&current_pid, __ATOMIC_ACQUIRE);
}

static void register_open(struct cuda_transport *t)
{
    pthread_mutex_lock(&open_lock);
    t->next_open = open_list;
    open_list = t;
    pthread_mutex_unlock(&open_lock);
}

static void unregister_open(struct cuda_transport *t)
{
    pthread_mutex_lock(&open_lock);
    for (struct cuda_transport **p = &open_list; *p; p = &(*p)->next_open)
        if (*p == t) {
            *p = t->next_open;
            break;
        }
    pthread_mutex_unlock(&open_lock);
}

/* -- channel header access ---------------------------------------------------------------------- */

static uint32_t ld32(const struct cuda_transport *t, size_t off)
{
    return __atomic_load_n((const uint32_t *)(const void *)(t->chan + off), __ATOMIC_ACQUIRE);
}

static void st32(struct cuda_transport *t, size_t off, uint32_t value)
{
    __atomic_store_n((uint32_t *)(void *)(t->chan + off), value, __ATOMIC_RELEASE);
}

static uint32_t rld32(const struct cuda_transport *t, size_t off)
{
    return __atomic_load_n((const uint32_t *)(const void *)(t->region + off), __ATOMIC_ACQUIRE);
}

static void bump_heartbeat(struct cuda_transport *t)
{
    uint64_t beat = __atomic_add_fetch(&t->heartbeat_count, 1, __ATOMIC_RELAXED);
    __atomic_store_n((uint64_t *)(void *)(t->chan + VC_OFF_HEARTBEAT), beat, __ATOMIC_RELEASE);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void nap_us(long us)
{
    struct timespec ts = {0, us * 1000};
    nanosleep(&ts, NULL);
}

/* The doorbell of our channel's vector, rung whether or not the host says it sleeps. */
static void ring(struct cuda_transport *t)
{
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (t->backend == VT_PCI)
        vt_pci_kick(t);
    else
        vt_socket_kick(t);
}

/* -- claim ------------------------------------------------------------------------------------- */

static int lock_byte(int fd, uint32_t offset, short type)
{
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = (off_t)offset, .l_len = 1};
    return fcntl(fd, F_OFD_SETLK, &fl);
}

static int claim(struct cuda_transport *t)
{
    for (uint32_t c = 0; c < t->channel_count; c++) {
        if (lock_byte(t->claim_fd, c, F_WRLCK) == 0) {
            t->channel = (int)c;
            return 0;
        }
        if (errno != EAGAIN && errno != EACCES)
            return vt_fail(CUDA_TRANSPORT_E_SYS, "cannot lock byte %u of the region file to claim channel %u: "
                           "%s", c, c, strerror(errno));
    }
    return vt_fail(CUDA_TRANSPORT_E_BUSY, "all %u channels of VM %u are held by other processes (one per "
                   "CUDA process; the VM's `channels` setting on the host says how many)", t->channel_count,
                   t->vm_id);
}

static void unclaim(struct cuda_transport *t)
{
    if (t->claim_fd >= 0 && t->channel >= 0)
        lock_byte(t->claim_fd, (uint32_t)t->channel, F_UNLCK);
}

/* -- heartbeat --------------------------------------------------------------------------------- */

static void *heartbeat_main(void *arg)
{
    struct cuda_transport *t = arg;
    int interval_ms = (int)(t->lease_ms / 4 > HEARTBEAT_MIN_MS ? t->lease_ms / 4 : HEARTBEAT_MIN_MS);
    struct pollfd p[2] = {{.fd = t->stop_fd, .events = POLLIN}, {.fd = t->sock, .events = POLLIN}};
    for (;;) {
        bump_heartbeat(t);
        int n = poll(p, 2, interval_ms);
        if (n > 0 && p[0].revents)
            return NULL;
        if (n > 0 && p[1].revents && vt_socket_drain(t) < 0) {
            __atomic_store_n(&t->host_hung_up, 1, __ATOMIC_RELEASE);
            p[1].fd = -1;
        }
    }
}

static int start_heartbeat(struct cuda_transport *t)
{
    t->stop_fd = eventfd(0, EFD_CLOEXEC);
    if (t->stop_fd < 0)
        return vt_fail(CUDA_TRANSPORT_E_SYS, "eventfd: %s", strerror(errno));
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* the thread inherits it: signals go to the program's */
    int err = pthread_create(&t->heartbeat, &attr, heartbeat_main, t);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (err)
        return vt_fail(CUDA_TRANSPORT_E_SYS, "cannot start the heartbeat thread: %s", strerror(err));
    t->heartbeat_running = 1;
    return 0;
}

static void stop_heartbeat(struct cuda_transport *t)
{
    if (!__atomic_exchange_n(&t->heartbeat_running, 0, __ATOMIC_ACQ_REL))
        return;
    uint64_t one = 1;
    if (write(t->stop_fd, &one, sizeof one) < 0) {
        /* an eventfd write only fails when the counter would overflow: it is already signalled */
    }
    pthread_join(t->heartbeat, NULL);
}

/* -- open and close ---------------------------------------------------------------------------- */

static uint32_t fresh_nonce(const struct cuda_transport *t)
{
    uint32_t nonce = 0;
    if (getrandom(&nonce, sizeof nonce, GRND_NONBLOCK) != (ssize_t)sizeof nonce)
        nonce = (uint32_t)now_ns() ^ ((uint32_t)getpid() << 16);
    while (nonce == 0 || nonce == ld32(t, VC_OFF_OPEN_ACK) || nonce == ld32(t, VC_OFF_OPEN_REQUEST) ||
           nonce == t->nonce)
        nonce = nonce * 2654435761u + 1u;
    return nonce;
}

int vt_channel_open(struct cuda_transport *t)
{
    uint64_t start = now_ns(), deadline = start + OPEN_TIMEOUT_NS, rung = 0;
    uint32_t epoch = rld32(t, VR_OFF_EPOCH);
    t->nonce = fresh_nonce(t);
    st32(t, VC_OFF_OWNER_PID, (uint32_t)t->owner_pid);
    st32(t, VC_OFF_OWNER_PEER, t->peer_id);
    st32(t, VC_OFF_CLOSE_REQUEST, 0);
    bump_heartbeat(t);
    st32(t, VC_OFF_OPEN_REQUEST, t->nonce); /* release: the fields above are visible first */
    for (unsigned spins = 0;; spins++) {
        uint64_t now = now_ns();
        if (now - rung >= REKICK_NS) {
            ring(t);
            rung = now;
        }
        if (ld32(t, VC_OFF_OPEN_ACK) == t->nonce) {
            if (ld32(t, VC_OFF_CHANNEL_STATE) == VC_STATE_OPEN)
                break;
            return vt_fail(CUDA_TRANSPORT_E_GONE, "the host answered the open of channel %d but left it in "
                           "state %u (close reason %u)", t->channel, ld32(t, VC_OFF_CHANNEL_STATE),
                           ld32(t, VC_OFF_CLOSE_REASON));
        }
        uint32_t state = rld32(t, VR_OFF_DEVICE_STATE);
        if (state != VR_STATE_READY && state != VR_STATE_RESETTING && state != VR_STATE_UNINITIALIZED)
            return vt_fail(CUDA_TRANSPORT_E_GONE, "device state %u while opening channel %d", state, t->channel);
        if (state == VR_STATE_READY && rld32(t, VR_OFF_EPOCH) != epoch) {
            /* a reset swept the request away: ask again in the new epoch */
            epoch = rld32(t, VR_OFF_EPOCH);
            t->nonce = fresh_nonce(t);
            st32(t, VC_OFF_OPEN_REQUEST, t->nonce);
            rung = 0;
            continue;
        }
        if (now > deadline)
            return vt_fail(CUDA_TRANSPORT_E_TIMEOUT, "the host did not open channel %d within %llu s "
                           "(open_request %#x, open_ack %#x, state %u)", t->channel,
                           (unsigned long long)(OPEN_TIMEOUT_NS / 1000000000ull), t->nonce,
                           ld32(t, VC_OFF_OPEN_ACK), ld32(t, VC_OFF_CHANNEL_STATE));
        nap_us(spins < 20 ? 50 : 500);
    }
    t->opened = 1;
    t->reopen = 0;
    t->generation = ld32(t, VC_OFF_GENERATION);
    t->epoch = rld32(t, VR_OFF_EPOCH);
    return vt_attach_channel(t);
}

int vt_channel_connect(struct cuda_transport *t)
{
    t->owner_pid = vt_current_pid();
    if (t->claim_fd < 0)
        return vt_fail(CUDA_TRANSPORT_E_SYS, "no descriptor of the region file to claim a channel on");
    int rc = claim(t);
    if (rc)
        return rc;
    t->chan = t->region + t->channels_offset + (uint64_t)t->channel * t->channel_size;
    t->vector = (uint32_t)t->channel % t->vectors;
    /* The region is mapped lazily (one VM's 16 channels are mostly unused): make our block's pages
     * present now, so the first copies through the arena do not fault page by page. A kernel before
     * 5.14 does not know the advice; the pages then come on first touch. */
    if (t->backend == VT_SOCKET)
        madvise(t->chan, t->channel_size, MADV_POPULATE_WRITE);
    register_open(t);
    if ((rc = start_heartbeat(t)))
        return rc;
    return vt_channel_open(t);
}

/* Ask the host to free the channel and wait (at most a second) until it has. */
static void close_on_host(struct cuda_transport *t)
{
    st32(t, VC_OFF_CLOSE_REQUEST, t->nonce);
    uint64_t deadline = now_ns() + CLOSE_TIMEOUT_NS, rung = 0;
    for (unsigned spins = 0;; spins++) {
        if (ld32(t, VC_OFF_CHANNEL_STATE) != VC_STATE_OPEN || ld32(t, VC_OFF_OPEN_ACK) != t->nonce ||
            rld32(t, VR_OFF_DEVICE_STATE) != VR_STATE_READY || rld32(t, VR_OFF_EPOCH) != t->epoch)
            return;
        uint64_t now = now_ns();
        if (now > deadline)
            return; /* the lease will free it */
        if (now - rung >= REKICK_NS) {
            ring(t);
            rung = now;
        }
        nap_us(spins < 20 ? 50 : 500);
    }
}

void vt_channel_disconnect(struct cuda_transport *t)
{
    if (t->channel < 0 || t->owner_pid != vt_current_pid())
        return; /* nothing claimed, or a forked child: the channel is its parent's */
    if (t->opened && !t->lost && !t->reopen)
        close_on_host(t);
    t->opened = 0;
    stop_heartbeat(t);
    unclaim(t);
    unregister_open(t);
    close_fd(&t->stop_fd);
}

int vt_channel_lost(struct cuda_transport *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->lost_why, sizeof t->lost_why, fmt, ap);
    va_end(ap);
    t->lost = 1;
    t->opened = 0;
    stop_heartbeat(t); /* before the claim goes: the next owner's lease must not see our beats */
    unclaim(t);
    return vt_fail(CUDA_TRANSPORT_E_CLOSED, "%s", t->lost_why);
}

void cuda_transport_shutdown(struct cuda_transport *t)
{
    if (!t || t->owner_pid != vt_current_pid())
        return;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 1;
    if (pthread_mutex_timedlock(&t->lock, &until) != 0) {
        /* a call is stuck in another thread: leave the rings alone, let the lease free the channel */
        stop_heartbeat(t);
        return;
    }
    if (!t->closed && !t->lost) {
        vt_channel_disconnect(t);
        snprintf(t->lost_why, sizeof t->lost_why, "the transport was shut down (the process is exiting)");
    }
    t->closed = 1;
    pthread_mutex_unlock(&t->lock);
}
