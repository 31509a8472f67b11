/*
 * Graph memory: the allocations of memory nodes, whether added to a built graph
 * (cu_graph_build.c) or captured (cuMemAllocAsync / cuMemFreeAsync on a capturing stream).
 *
 * An allocation is made when its node is made, against the VM's quota, at the address the node
 * reports, and that address stays the same over every launch of the graph, as CUDA promises. The
 * memory is held while a graph or executable graph names it, not only between its alloc and free
 * nodes (the host runs launches in stream order; nothing here can reuse it in between). The
 * host never sees a memory node: an allocation is an ordinary mem_alloc, so sim and cuda serve it
 * alike.
 *
 * CUDA's rules for an allocation its graph does not free, kept per launch: a launch allocates it
 * (it is outstanding), and until something frees it (cuMemFreeAsync, cuMemFree, or a launch of a
 * graph whose free node names it) another launch of the same executable graph fails with
 * CUDA_ERROR_INVALID_VALUE, unless it was instantiated with CUDA_GRAPH_INSTANTIATE_FLAG_AUTO_FREE_ON_LAUNCH.
 * Freeing it when it is not outstanding is CUDA_ERROR_INVALID_VALUE too. Once no graph names it an
 * outstanding allocation is the program's: its free releases the memory; one that is not
 * outstanding is released when the last graph naming it goes.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cu_graph_mem.h"
#include "vgpu_protocol.h"

#define CUDA_GRAPH_INSTANTIATE_FLAG_AUTO_FREE_ON_LAUNCH 1ull

struct holder {
    int kind;
    const void *id;
    const void *origin; /* an exec's graph, while it lives: one exec per graph with memory nodes */
    unsigned long long flags;
    size_t count;
    struct graph_alloc **allocs;
    unsigned char *roles;
    struct holder *next;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct graph_alloc *allocs;
static struct holder *holders;
static uint64_t current, high;

/* The host's graph_mem_alloc/graph_mem_free: cuMemAlloc's blocks, allowed while streams capture. */
static CUresult host_alloc(size_t size, CUdeviceptr *dptr)
{
    struct vgpu_args_graph_mem_alloc a = {.bytesize = size};
    struct vgpu_result_graph_mem_alloc r;
    CUresult rc = vgpu_cu_call(VGPU_CALL_GRAPH_MEM_ALLOC, &a, sizeof a, &r, sizeof r);
    if (rc == CUDA_SUCCESS) {
        *dptr = r.dptr;
        vgpu_track_range(r.dptr, size, VGPU_PTR_DEVICE);
    }
    return rc;
}

static CUresult host_free(CUdeviceptr dptr)
{
    struct vgpu_args_graph_mem_free a = {.dptr = dptr};
    CUresult rc = vgpu_cu_call(VGPU_CALL_GRAPH_MEM_FREE, &a, sizeof a, NULL, 0);
    if (rc == CUDA_SUCCESS)
        vgpu_untrack_range(dptr);
    return rc;
}

static void unlink_alloc(struct graph_alloc *a)
{
    for (struct graph_alloc **link = &allocs; *link; link = &(*link)->next)
        if (*link == a) {
            *link = a->next;
            break;
        }
    current -= a->size;
}

CUresult vgpu_gmem_alloc(size_t size, struct graph_alloc **out)
{
    struct graph_alloc *a = calloc(1, sizeof *a);
    if (!a)
        return CUDA_ERROR_OUT_OF_MEMORY;
    CUresult rc = host_alloc(size, &a->dptr);
    if (rc) {
        free(a);
        return rc;
    }
    a->refs = 1;
    a->size = size;
    pthread_mutex_lock(&lock);
    a->next = allocs;
    allocs = a;
    current += size;
    if (current > high)
        high = current;
    pthread_mutex_unlock(&lock);
    *out = a;
    return CUDA_SUCCESS;
}

void vgpu_gmem_hold(struct graph_alloc *a)
{
    pthread_mutex_lock(&lock);
    a->refs++;
    pthread_mutex_unlock(&lock);
}

/* The last holder gone: the memory is released, unless a launch left it outstanding (the program's). */
void vgpu_gmem_release(struct graph_alloc *a)
{
    pthread_mutex_lock(&lock);
    int last = --a->refs == 0 && !a->outstanding;
    if (last)
        unlink_alloc(a);
    pthread_mutex_unlock(&lock);
    if (last) {
        host_free(a->dptr);
        free(a);
    }
}

static struct graph_alloc *find_locked(CUdeviceptr dptr)
{
    struct graph_alloc *a = allocs;
    while (a && a->dptr != dptr)
        a = a->next;
    return a;
}

struct graph_alloc *vgpu_gmem_find(CUdeviceptr dptr)
{
    pthread_mutex_lock(&lock);
    struct graph_alloc *a = find_locked(dptr);
    pthread_mutex_unlock(&lock);
    return a;
}

/* -- stream capture ----------------------------------------------------------------------------- */

static int pending; /* allocations of captures still in progress */

CUresult vgpu_gmem_capture_alloc(CUdeviceptr *dptr, size_t size, unsigned long long capture)
{
    if (!dptr || !size)
        return CUDA_ERROR_INVALID_VALUE;
    struct graph_alloc *a;
    CUresult rc = vgpu_gmem_alloc(size, &a);
    if (rc)
        return rc;
    pthread_mutex_lock(&lock);
    a->capture = capture;
    a->capturing = 1;
    __atomic_add_fetch(&pending, 1, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&lock);
    *dptr = a->dptr;
    return CUDA_SUCCESS;
}

/* A free node of the same capture's allocation; anything else is refused, and says why. */
CUresult vgpu_gmem_capture_free(CUdeviceptr dptr, unsigned long long capture)
{
    pthread_mutex_lock(&lock);
    struct graph_alloc *a = find_locked(dptr);
    int mine = a && a->capturing && a->capture == capture, twice = mine && a->freed_in_graph;
    if (mine && !twice)
        a->freed_in_graph = 1;
    pthread_mutex_unlock(&lock);
    if (twice)
        return CUDA_ERROR_INVALID_VALUE;
    if (!mine)
        VGPU_UNSUPPORTED_USE(CUDA_ERROR_NOT_SUPPORTED,
                             "cuMemFreeAsync under stream capture: only memory cuMemAllocAsync allocated in the "
                             "same capture is freed by a captured free node");
    return CUDA_SUCCESS;
}

int vgpu_gmem_capture_pending(void) { return __atomic_load_n(&pending, __ATOMIC_RELAXED) > 0; }

static CUresult add_holder(int kind, const void *id, const void *origin, unsigned long long flags, size_t count,
                           struct graph_alloc *const *list, const unsigned char *roles)
{
    if (!count)
        return CUDA_SUCCESS;
    struct holder *h = calloc(1, sizeof *h);
    struct graph_alloc **copy = calloc(count, sizeof *copy);
    unsigned char *r = malloc(count);
    if (!h || !copy || !r) {
        free(h);
        free(copy);
        free(r);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    memcpy(copy, list, count * sizeof *copy);
    memcpy(r, roles, count);
    *h = (struct holder){kind, id, origin, flags, count, copy, r, NULL};
    pthread_mutex_lock(&lock);
    int second = 0;
    for (struct holder *o = holders; o && origin && !second; o = o->next)
        second = o->kind == VGPU_GMEM_EXEC && o->origin == origin;
    if (!second) {
        for (size_t i = 0; i < count; i++)
            copy[i]->refs++;
        h->next = holders;
        holders = h;
    }
    pthread_mutex_unlock(&lock);
    if (second) {
        free(h);
        free(copy);
        free(r);
        static int once;
        if (!__atomic_exchange_n(&once, 1, __ATOMIC_RELAXED))
            vgpu_shim_log("cuGraphInstantiate: a graph with memory nodes has an executable graph already; CUDA "
                          "allows one at a time (CUDA_ERROR_INVALID_VALUE)");
        return CUDA_ERROR_INVALID_VALUE;
    }
    return CUDA_SUCCESS;
}

/* The capture's allocations pass to its graph (ok), or are released with it (invalidated). */
void vgpu_gmem_capture_ended(unsigned long long capture, int ok, const void *graph)
{
    size_t count = 0, n = 0;
    pthread_mutex_lock(&lock);
    for (struct graph_alloc *a = allocs; a; a = a->next)
        count += a->capturing && a->capture == capture;
    pthread_mutex_unlock(&lock);
    struct graph_alloc **list = calloc(count ? count : 1, sizeof *list);
    unsigned char *roles = malloc(count ? count : 1);
    pthread_mutex_lock(&lock);
    for (struct graph_alloc *a = allocs; a; a = a->next) {
        if (!a->capturing || a->capture != capture)
            continue;
        a->capturing = 0;
        __atomic_sub_fetch(&pending, 1, __ATOMIC_RELAXED);
        if (list && roles && n < count) {
            list[n] = a;
            roles[n++] = (unsigned char)(ROLE_ALLOCATES | (a->freed_in_graph ? ROLE_FREES : 0));
        } else {
            a->refs--;           /* out of guest memory for the list: the capture's reference dropped, */
            a->outstanding = 1; /* and the block left to the program (cuMemFree), as an unfreed one */
            ok = 0;
        }
    }
    pthread_mutex_unlock(&lock);
    if (ok && add_holder(VGPU_GMEM_GRAPH, graph, NULL, 0, n, list, roles))
        ok = 0;
    if (!ok && graph)
        vgpu_shim_log("graph memory: out of guest memory recording a captured graph's allocations; its "
                      "launches may fault");
    for (size_t i = 0; i < n; i++)
        vgpu_gmem_release(list[i]); /* the capture's own reference */
    free(list);
    free(roles);
}

/* -- holders: graphs and executable graphs ------------------------------------------------------- */

CUresult vgpu_gmem_register(const void *exec, const void *graph, unsigned long long flags, size_t count,
                            struct graph_alloc *const *list, const unsigned char *roles)
{
    return add_holder(VGPU_GMEM_EXEC, exec, graph, flags, count, list, roles);
}

/* The graph is gone: its execs may outlive it, and another graph may come at its address. */
void vgpu_gmem_graph_gone(const void *graph)
{
    pthread_mutex_lock(&lock);
    for (struct holder *h = holders; h; h = h->next)
        if (h->origin == graph)
            h->origin = NULL;
    pthread_mutex_unlock(&lock);
}

static struct holder *holder_locked(int kind, const void *id)
{
    struct holder *h = holders;
    while (h && (h->kind != kind || h->id != id))
        h = h->next;
    return h;
}

/* An executable graph of a captured graph, or a clone: the same allocations. */
CUresult vgpu_gmem_copy(int kind, const void *from, int to_kind, const void *to, unsigned long long flags)
{
    pthread_mutex_lock(&lock);
    struct holder *h = holder_locked(kind, from);
    size_t count = h ? h->count : 0;
    struct graph_alloc **list = count ? calloc(count, sizeof *list) : NULL;
    unsigned char *roles = count ? malloc(count) : NULL;
    if (list && roles) {
        memcpy(list, h->allocs, count * sizeof *list);
        memcpy(roles, h->roles, count);
        for (size_t i = 0; i < count; i++)
            list[i]->refs++; /* kept while the lock is let go */
    }
    pthread_mutex_unlock(&lock);
    CUresult rc = count && (!list || !roles) ? CUDA_ERROR_OUT_OF_MEMORY
                                            : add_holder(to_kind, to, to_kind == VGPU_GMEM_EXEC ? from : NULL,
                                                         flags, count, list, roles);
    for (size_t i = 0; list && roles && i < count; i++)
        vgpu_gmem_release(list[i]);
    free(list);
    free(roles);
    return rc;
}

int vgpu_gmem_holds(int kind, const void *id)
{
    pthread_mutex_lock(&lock);
    int holds = holder_locked(kind, id) != NULL;
    pthread_mutex_unlock(&lock);
    return holds;
}

void vgpu_gmem_forget(int kind, const void *id)
{
    if (kind == VGPU_GMEM_GRAPH)
        vgpu_gmem_graph_gone(id);
    struct holder *h = NULL;
    pthread_mutex_lock(&lock);
    for (struct holder **link = &holders; *link; link = &(*link)->next)
        if ((*link)->kind == kind && (*link)->id == id) {
            h = *link;
            *link = h->next;
            break;
        }
    pthread_mutex_unlock(&lock);
    if (!h)
        return;
    for (size_t i = 0; i < h->count; i++)
        vgpu_gmem_release(h->allocs[i]);
    free(h->allocs);
    free(h->roles);
    free(h);
}

/* CUDA's per-launch rules (see the top): checked for every allocation first, then applied. Launched
 * into a capture it would be a child graph with memory nodes, which CUDA refuses. */
CUresult vgpu_gmem_launch(const void *exec, CUstream s)
{
    CUresult rc = CUDA_SUCCESS;
    pthread_mutex_lock(&lock);
    int has_memory = holder_locked(VGPU_GMEM_EXEC, exec) != NULL;
    pthread_mutex_unlock(&lock);
    int capturing = 0;
    if (has_memory && vgpu_capture_possible() && (rc = cuStreamIsCapturing(s, &capturing)))
        return rc;
    if (capturing)
        VGPU_UNSUPPORTED_USE(CUDA_ERROR_NOT_SUPPORTED, "cuGraphLaunch: an executable graph with memory nodes "
                                                       "launched into a stream capture would be a child graph with "
                                                       "memory nodes, which CUDA does not allow");
    pthread_mutex_lock(&lock);
    struct holder *h = holder_locked(VGPU_GMEM_EXEC, exec);
    int auto_free = h && (h->flags & CUDA_GRAPH_INSTANTIATE_FLAG_AUTO_FREE_ON_LAUNCH);
    for (size_t i = 0; h && i < h->count && !rc; i++)
        if ((h->roles[i] == ROLE_ALLOCATES && h->allocs[i]->outstanding && !auto_free) ||
            (h->roles[i] == ROLE_FREES && !h->allocs[i]->outstanding))
            rc = CUDA_ERROR_INVALID_VALUE;
    for (size_t i = 0; h && i < h->count && !rc; i++)
        if (h->roles[i] != (ROLE_ALLOCATES | ROLE_FREES))
            h->allocs[i]->outstanding = h->roles[i] == ROLE_ALLOCATES;
    pthread_mutex_unlock(&lock);
    if (rc) {
        static int once;
        if (!__atomic_exchange_n(&once, 1, __ATOMIC_RELAXED))
            vgpu_shim_log("cuGraphLaunch: an allocation the graph does not free is still allocated by an "
                          "earlier launch, or one its free node names is not allocated (CUDA_ERROR_INVALID_VALUE)");
    }
    return rc;
}

int vgpu_gmem_free_outside(CUdeviceptr dptr, const CUstream *s, CUresult *rc)
{
    pthread_mutex_lock(&lock);
    struct graph_alloc *a = find_locked(dptr);
    int release = a && a->outstanding && a->refs == 0;
    if (a && !release) {
        *rc = a->outstanding ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
        a->outstanding = 0; /* the graph that allocated it may be launched again */
    }
    if (release)
        unlink_alloc(a);
    pthread_mutex_unlock(&lock);
    if (!a)
        return 0;
    if (release) { /* no graph names it any more: it is the program's to free */
        CUresult synced = s ? cuStreamSynchronize(*s) : CUDA_SUCCESS; /* its earlier work may use it */
        *rc = host_free(dptr);
        if (synced)
            *rc = synced;
        free(a);
    }
    return 1;
}

void vgpu_gmem_usage(uint64_t *now, uint64_t *most)
{
    pthread_mutex_lock(&lock);
    *now = current;
    *most = high;
    pthread_mutex_unlock(&lock);
}

void vgpu_gmem_reset_high(void)
{
    pthread_mutex_lock(&lock);
    high = current;
    pthread_mutex_unlock(&lock);
}
