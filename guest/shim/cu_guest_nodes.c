/*
 * Guest nodes: stream work only the guest can do — host functions (cuLaunchHostFunc,
 * cuStreamAddCallback, host nodes) and copies of the guest's host memory inside graphs.
 *
 * The host cannot call into the guest, nor read the guest's memory in the middle of a graph launch,
 * so the shim performs this work itself, in CUDA's order:
 *
 * - Outside capture, a host function waits for the stream's earlier work (cuStreamSynchronize) and
 *   runs on the calling thread before the call returns; later work of the stream is submitted only
 *   after it, so it waits for the function. The caller blocks where CUDA would return at once: a
 *   function that waits for something its caller does after the call deadlocks (documented limit).
 *   cuLaunchHostFunc does not run the function when the stream's work failed (CUDA's rule); a stream
 *   callback runs with the failure as its status, and the call returns it.
 * - On a capturing stream, a host function or a copy of host memory becomes a guest node of the host's
 *   capture (stream_add_guest_node), named by a tag: an index into this process's table of guest node
 *   records. Records are interned (the same function and data, or the same copy, reuse one record),
 *   so capturing the same work again and again does not grow the table.
 * - An executable graph with guest nodes runs in phases (executor/_sim_graph.py): cuGraphLaunch
 *   launches phase 0, performs guest node 0 (on the launching stream, by the rules above: a function
 *   waits for phase 0, a copy is queued behind it), launches phase 1, and so on. Launched into a
 *   capture, the same sequence records the phases and the guest nodes into that capture.
 *
 * Whether a stream captures is asked of the host only while a capture begun by this process may be
 * in progress (`captures`), so a program that never captures pays nothing on its copies.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cu_api.h"
#include "shim.h"
#include "vgpu_protocol.h"

/* the most distinct guest node records one process may hold (each a few dozen bytes) */
#define MAX_GUEST_RECORDS (1u << 20)

enum guest_kind { GUEST_HOST_FN = 1, GUEST_HTOD = 2, GUEST_DTOH = 3 };

struct guest_record {
    enum guest_kind kind;
    void (*fn)(void *);
    void *data;         /* the function's argument, or the copy's host buffer */
    CUdeviceptr device; /* the copy's device side */
    size_t bytes;
};

/* A record, with the calls asking the host about it now and whether a capture took it. */
struct slot {
    struct guest_record r;
    uint32_t asking;
    int kept;
};
static struct slot *records;
static uint32_t nrecords, records_cap;
static pthread_mutex_t records_lock = PTHREAD_MUTEX_INITIALIZER;
static int captures; /* captures this process began that may still be in progress (never too few) */

VGPU_HIDDEN void vgpu_capture_begun(void);
VGPU_HIDDEN void vgpu_capture_ended(void);
VGPU_HIDDEN int vgpu_guest_copy_captured(CUstream s, CUdeviceptr device, void *host, size_t bytes, int to_device,
                                         CUresult *rc);
VGPU_HIDDEN CUresult vgpu_guest_exec_register(CUgraphExec exec);
VGPU_HIDDEN void vgpu_guest_exec_forget(uint32_t id);
VGPU_HIDDEN int vgpu_guest_exec_launch(CUgraphExec exec, CUstream s, CUresult *rc);
CUresult cuLaunchHostFunc(CUstream s, void (*fn)(void *), void *data);
CUresult cuStreamAddCallback(CUstream s, void (*cb)(CUstream, CUresult, void *), void *data, unsigned int flags);

void vgpu_capture_begun(void) { __atomic_add_fetch(&captures, 1, __ATOMIC_RELAXED); }

/* for cu_graph_mem.c and cu_mempool.c: whether any stream may capture (else none is asked about) */
VGPU_HIDDEN int vgpu_capture_possible(void);
int vgpu_capture_possible(void) { return __atomic_load_n(&captures, __ATOMIC_RELAXED) > 0; }

void vgpu_capture_ended(void)
{
    int now = __atomic_load_n(&captures, __ATOMIC_RELAXED);
    while (now > 0 && !__atomic_compare_exchange_n(&captures, &now, now - 1, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        ;
}

/* The tag (index + 1) of a record equal to `r`, added when there is none, marked as being asked
 * about (settle() ends that). 0: the table is full. */
static uint32_t intern(const struct guest_record *r)
{
    uint32_t tag = 0;
    pthread_mutex_lock(&records_lock);
    for (uint32_t i = nrecords; i-- > 0 && !tag;)
        if (!memcmp(&records[i].r, r, sizeof *r))
            tag = i + 1;
    if (!tag && nrecords < MAX_GUEST_RECORDS) {
        if (nrecords == records_cap) {
            uint32_t cap = records_cap ? 2 * records_cap : 64;
            void *grown = realloc(records, cap * sizeof *records);
            if (grown) {
                records = grown;
                records_cap = cap;
            }
        }
        if (nrecords < records_cap) {
            records[nrecords++] = (struct slot){*r, 0, 0};
            tag = nrecords;
        }
    }
    if (tag)
        records[tag - 1].asking++;
    pthread_mutex_unlock(&records_lock);
    return tag;
}

/* The host's answer about record `tag`: kept for good once a capture took it; the last record, which
 * no capture took and no call is asking about, is dropped again, so copies on streams that do not
 * capture (made while another stream captures) do not fill the table. */
static void settle(uint32_t tag, int captured)
{
    pthread_mutex_lock(&records_lock);
    struct slot *slot = &records[tag - 1];
    slot->asking--;
    slot->kept |= captured;
    if (tag == nrecords && !slot->kept && !slot->asking)
        nrecords--;
    pthread_mutex_unlock(&records_lock);
}

static int lookup(uint32_t tag, struct guest_record *out)
{
    pthread_mutex_lock(&records_lock);
    int ok = tag >= 1 && tag <= nrecords;
    if (ok)
        *out = records[tag - 1].r;
    pthread_mutex_unlock(&records_lock);
    return ok;
}

static int named_stream(CUstream s) { return s && s != CU_STREAM_LEGACY && s != CU_STREAM_PER_THREAD; }

/* The stream's earlier work done. Work on the legacy stream follows the earlier work of every blocking
 * stream, so for it the whole context is waited for. */
static CUresult wait_for(CUstream s) { return named_stream(s) ? cuStreamSynchronize(s) : cuCtxSynchronize(); }

/* Record `r` as a guest node when `s` captures: 1 and *rc when it was asked, 0 when `s` does not capture. */
static int add_if_capturing(CUstream s, const struct guest_record *r, CUresult *rc)
{
    if (!__atomic_load_n(&captures, __ATOMIC_RELAXED) || !named_stream(s))
        return 0;
    struct vgpu_args_stream_add_guest_node a = {0};
    if ((*rc = vgpu_shim_stream_id(s, &a.stream)))
        return 1;
    if (!(a.tag = intern(r))) {
        vgpu_shim_log("a graph holds more than %u distinct host functions and host copies: refused",
                      MAX_GUEST_RECORDS);
        *rc = CUDA_ERROR_OUT_OF_MEMORY;
        return 1;
    }
    struct vgpu_result_stream_add_guest_node res = {0};
    *rc = vgpu_cu_call(VGPU_CALL_STREAM_ADD_GUEST_NODE, &a, sizeof a, &res, sizeof res);
    settle(a.tag, !*rc && res.captured);
    if (*rc)
        return *rc != CUDA_ERROR_NOT_SUPPORTED; /* a host before 2.2: run it now (a capture then refuses) */
    return res.captured != 0;
}

/* -- host functions ---------------------------------------------------------------------------------- */

CUresult cuLaunchHostFunc(CUstream s, void (*fn)(void *), void *data)
{
    if (!fn)
        return CUDA_ERROR_INVALID_VALUE;
    struct guest_record r;
    memset(&r, 0, sizeof r); /* padding too: records are compared bytewise */
    r.kind = GUEST_HOST_FN;
    r.fn = fn;
    r.data = data;
    CUresult rc;
    if (add_if_capturing(s, &r, &rc))
        return rc;
    if ((rc = wait_for(s)))
        return rc; /* CUDA does not call a host function after an error in the context */
    fn(data);
    return CUDA_SUCCESS;
}

/* Not capturable (CUDA's rule); runs after the stream's work with that work's status. */
CUresult cuStreamAddCallback(CUstream s, void (*cb)(CUstream, CUresult, void *), void *data, unsigned int flags)
{
    uint32_t sid;
    if (!cb || flags)
        return CUDA_ERROR_INVALID_VALUE;
    if (vgpu_shim_stream_id(s, &sid))
        return CUDA_ERROR_INVALID_HANDLE; /* no callback for a stream that does not exist */
    if (__atomic_load_n(&captures, __ATOMIC_RELAXED) && named_stream(s)) {
        int status = 0;
        CUresult rc = cuStreamIsCapturing(s, &status);
        if (rc)
            return rc;
        if (status)
            return (CUresult)VGPU_CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
    }
    CUresult rc = wait_for(s);
    cb(s, rc, data);
    return rc;
}

/* -- copies of host memory under capture -------------------------------------------------------------- */

/* A copy between device memory and the guest's host memory on a capturing stream: a guest node (1, with
 * *rc); 0 when `s` does not capture and the caller copies as usual. */
int vgpu_guest_copy_captured(CUstream s, CUdeviceptr device, void *host, size_t bytes, int to_device, CUresult *rc)
{
    struct guest_record r;
    memset(&r, 0, sizeof r);
    r.kind = to_device ? GUEST_HTOD : GUEST_DTOH;
    r.data = host;
    r.device = device;
    r.bytes = bytes;
    return add_if_capturing(s, &r, rc);
}

/* Perform guest node `tag` on `s` (capturing or not: the calls below decide). */
static CUresult perform(uint32_t tag, CUstream s)
{
    struct guest_record r;
    if (!lookup(tag, &r)) {
        vgpu_shim_log("a graph names guest node %u, which this process never made", tag);
        return CUDA_ERROR_INVALID_VALUE;
    }
    switch (r.kind) {
    case GUEST_HOST_FN: return cuLaunchHostFunc(s, r.fn, r.data);
    case GUEST_HTOD: return cuMemcpyHtoDAsync_v2(r.device, r.data, r.bytes, s);
    case GUEST_DTOH: return cuMemcpyDtoHAsync_v2(r.data, r.device, r.bytes, s);
    }
    return CUDA_ERROR_INVALID_VALUE;
}

/* -- executable graphs with guest nodes ------------------------------------------------------------------ */

struct phased_exec {
    uint32_t id; /* the host's exec id */
    uint32_t count;
    uint32_t *tags;
    struct phased_exec *next;
};
static struct phased_exec *phased;
static pthread_mutex_t phased_lock = PTHREAD_MUTEX_INITIALIZER;

/* After an instantiation: the exec's guest nodes, when this process ever made any. */
CUresult vgpu_guest_exec_register(CUgraphExec exec)
{
    pthread_mutex_lock(&records_lock);
    uint32_t made = nrecords;
    pthread_mutex_unlock(&records_lock);
    if (!made)
        return CUDA_SUCCESS;
    struct vgpu_args_graph_exec_guest_node a = {.graph_exec = exec->id, .index = 0};
    struct vgpu_result_graph_exec_guest_node r;
    CUresult rc = vgpu_cu_call(VGPU_CALL_GRAPH_EXEC_GUEST_NODE, &a, sizeof a, &r, sizeof r);
    if (rc == CUDA_ERROR_NOT_SUPPORTED)
        return CUDA_SUCCESS; /* a host before protocol 2.2 makes no guest nodes */
    if (rc || !r.count)
        return rc;
    struct phased_exec *p = calloc(1, sizeof *p);
    uint32_t *tags = calloc(r.count, sizeof *tags);
    if (!p || !tags) {
        free(p);
        free(tags);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    *p = (struct phased_exec){exec->id, r.count, tags, NULL};
    tags[0] = r.tag;
    for (uint32_t i = 1; i < r.count && rc == CUDA_SUCCESS; i++) {
        a.index = i;
        struct vgpu_result_graph_exec_guest_node ri;
        if ((rc = vgpu_cu_call(VGPU_CALL_GRAPH_EXEC_GUEST_NODE, &a, sizeof a, &ri, sizeof ri)) == CUDA_SUCCESS)
            tags[i] = ri.tag;
    }
    if (rc) {
        free(tags);
        free(p);
        return rc;
    }
    pthread_mutex_lock(&phased_lock);
    p->next = phased;
    phased = p;
    pthread_mutex_unlock(&phased_lock);
    return CUDA_SUCCESS;
}

void vgpu_guest_exec_forget(uint32_t id)
{
    struct phased_exec *found = NULL;
    pthread_mutex_lock(&phased_lock);
    for (struct phased_exec **link = &phased; *link; link = &(*link)->next)
        if ((*link)->id == id) {
            found = *link;
            *link = found->next;
            break;
        }
    pthread_mutex_unlock(&phased_lock);
    if (found) {
        free(found->tags);
        free(found);
    }
}

/* A copy of the exec's guest node tags (the caller frees them), or 0 when it has none. */
static uint32_t tags_of(uint32_t id, uint32_t **tags)
{
    uint32_t count = 0;
    pthread_mutex_lock(&phased_lock);
    for (struct phased_exec *p = phased; p; p = p->next)
        if (p->id == id) {
            if ((*tags = malloc(p->count * sizeof **tags))) {
                memcpy(*tags, p->tags, p->count * sizeof **tags);
                count = p->count;
            }
            break;
        }
    pthread_mutex_unlock(&phased_lock);
    return count;
}

/* cuGraphLaunch of an exec with guest nodes: its phases, and the guest nodes between them (1, with
 * *rc); 0 for an exec without, which the caller launches whole. */
int vgpu_guest_exec_launch(CUgraphExec exec, CUstream s, CUresult *rc)
{
    if (!__atomic_load_n(&phased, __ATOMIC_ACQUIRE))
        return 0;
    uint32_t *tags = NULL;
    uint32_t count = tags_of(exec->id, &tags);
    if (!count)
        return 0;
    struct vgpu_args_graph_launch_phase a = {.graph_exec = exec->id};
    *rc = vgpu_shim_stream_id(s, &a.stream);
    for (uint32_t phase = 0; phase <= count && *rc == CUDA_SUCCESS; phase++) {
        a.phase = phase;
        *rc = vgpu_cu_post(VGPU_CALL_GRAPH_LAUNCH_PHASE, &a, sizeof a, NULL, 0);
        if (*rc == CUDA_SUCCESS && phase < count)
            *rc = perform(tags[phase], s);
    }
    free(tags);
    return 1;
}

/* The per-thread default stream forms: that stream is served as the legacy one (cu_stream.c). */
CUresult cuLaunchHostFunc_ptsz(CUstream s, void (*fn)(void *), void *data);
CUresult cuStreamAddCallback_ptsz(CUstream s, void (*cb)(CUstream, CUresult, void *), void *data,
                                  unsigned int flags);
CUresult cuLaunchHostFunc_ptsz(CUstream s, void (*fn)(void *), void *data) { return cuLaunchHostFunc(s, fn, data); }
CUresult cuStreamAddCallback_ptsz(CUstream s, void (*cb)(CUstream, CUresult, void *), void *data,
                                  unsigned int flags)
{
    return cuStreamAddCallback(s, cb, data, flags);
}
