/*
 * Graphs built node by node (cuGraphCreate, cuGraphAdd*Node, cuGraphClone), on the protocol's
 * captured graphs.
 *
 * The host knows graphs only through stream capture, so an explicit graph lives in the guest until
 * it is instantiated: then its nodes are issued in the order they were added, on a stream of its
 * own under capture, and the captured graph is instantiated on the host (and dropped). Nodes can
 * only depend on nodes added before them, so that order respects every dependency; the graph runs
 * its nodes one after another (correct, without the concurrency independent branches could have).
 * Served nodes: kernels (their arguments copied when the node is added, by the kernel's parameter
 * layout), memsets (1, 2 or 4-byte elements, 2D as one memset), copies between device memory and device or
 * guest host memory (1D to 3D, by rows when pitched), event record and wait nodes (recorded and waited
 * for when the graph runs), memory allocation and free nodes, empty nodes, child graphs (copied when
 * added) and host nodes. Host nodes and copies of host memory are issued as guest nodes
 * (cu_guest_nodes.c): the guest performs them between the phases of the launch, one per row of a
 * pitched host copy.
 *
 * Memory nodes: the allocation is made (and counted against the VM's quota) when the node is added,
 * at the address the node reports, and held while a graph or executable graph names it;
 * cu_graph_mem.c keeps the allocations and CUDA's per-launch rules for those a graph does not free.
 * A child graph with memory nodes is refused, as CUDA refuses it.
 *
 * Not served, answered CUDA_ERROR_NOT_SUPPORTED and logged once: copies of CUDA arrays, host-to-host
 * copies, and edges added afterwards (cuGraphAddDependencies).
 *
 * Executable graphs made from these graphs keep a copy of their graph: cuGraphExecUpdate and the
 * cuGraphExec*NodeSetParams calls change that copy and instantiate it again on the host, the
 * executable graph's handle staying the same (the host's previous one is destroyed).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cu_api.h"
#include "cu_graph_mem.h"
#include "shim.h"
#include "vgpu_protocol.h"

#define VGPU_MAGIC_XGRAPH 0x68705856u /* "VXph" */
#define VGPU_MAGIC_XNODE 0x646e5856u  /* "VXnd" */
#define CU_STREAM_NON_BLOCKING 0x1
#define CU_STREAM_CAPTURE_MODE_RELAXED 2

/* CUgraphNodeType's values, for cuGraphNodeGetType */
enum node_kind {
    NODE_KERNEL = 0,
    NODE_MEMCPY = 1,
    NODE_MEMSET = 2,
    NODE_HOST = 3,
    NODE_CHILD = 4,
    NODE_EMPTY = 5,
    NODE_EVENT_WAIT = 6,
    NODE_EVENT_RECORD = 7,
    NODE_MEM_ALLOC = 10,
    NODE_MEM_FREE = 11,
};

#define CU_MEMORYTYPE_HOST 1
#define CU_MEMORYTYPE_DEVICE 2
#define CU_MEMORYTYPE_ARRAY 3
#define CU_MEMORYTYPE_UNIFIED 4
#define CU_EVENT_RECORD_EXTERNAL 1
#define CU_EVENT_WAIT_EXTERNAL 1

struct vgpu_xgraph;

/* A copy of width bytes x height rows x depth slices; a side in guest host memory is a host address. */
struct memcpy_node {
    CUdeviceptr dst, src;
    size_t dpitch, spitch, dheight, sheight, width, height, depth;
    int dst_host, src_host;
};

struct CUgraphNode_st {
    uint32_t magic;
    enum node_kind kind;
    struct vgpu_xgraph *graph;
    union {
        struct {
            CUfunction f;
            unsigned int grid[3], block[3], shared;
            size_t count;
            void **args;           /* pointers into `blob` */
            unsigned char *blob;   /* the arguments' bytes, at their layout's offsets */
        } kernel;
        struct { CUdeviceptr dst; size_t pitch; unsigned int value, element; size_t width, height; } memset;
        struct memcpy_node memcpy;
        CUevent event;
        struct graph_alloc *alloc;
        struct vgpu_xgraph *child;
        struct { void (*fn)(void *); void *data; } host;
    } u;
};

struct vgpu_xgraph {
    uint32_t magic, unused;
    size_t count, cap;
    struct CUgraphNode_st **nodes;
};

typedef struct {
    CUdeviceptr dst;
    size_t pitch;
    unsigned int value, elementSize;
    size_t width, height;
} vgpu_memset_node_params;

CUresult cuGraphCreate(CUgraph *graph, unsigned int flags);
CUresult cuGraphAddEmptyNode(CUgraphNode *node, CUgraph graph, const CUgraphNode *deps, size_t ndeps);
CUresult cuGraphAddKernelNode_v2(CUgraphNode *node, CUgraph graph, const CUgraphNode *deps, size_t ndeps,
                                 const vgpu_kernel_node_params *p);
CUresult cuGraphAddMemsetNode(CUgraphNode *node, CUgraph graph, const CUgraphNode *deps, size_t ndeps,
                              const vgpu_memset_node_params *p, CUcontext ctx);
CUresult cuGraphAddChildGraphNode(CUgraphNode *node, CUgraph graph, const CUgraphNode *deps, size_t ndeps,
                                  CUgraph child);
CUresult cuGraphClone(CUgraph *clone, CUgraph original);
/* for cu_stream.c: is this an explicit graph, and its instantiation and destruction */
VGPU_HIDDEN int vgpu_xgraph_is(CUgraph graph);
VGPU_HIDDEN CUresult vgpu_xgraph_instantiate(CUgraphExec *exec, CUgraph graph, unsigned long long flags);
VGPU_HIDDEN CUresult vgpu_xgraph_destroy(CUgraph graph);
CUresult cuLaunchHostFunc(CUstream s, void (*fn)(void *), void *data); /* cu_guest_nodes.c */

static struct vgpu_xgraph *xgraph(CUgraph g)
{
    struct vgpu_xgraph *x = (struct vgpu_xgraph *)(void *)g;
    return x && x->magic == VGPU_MAGIC_XGRAPH ? x : NULL;
}

int vgpu_xgraph_is(CUgraph graph) { return xgraph(graph) != NULL; }

CUresult cuGraphCreate(CUgraph *graph, unsigned int flags)
{
    if (!graph || flags)
        return CUDA_ERROR_INVALID_VALUE;
    struct vgpu_xgraph *x = calloc(1, sizeof *x);
    if (!x)
        return CUDA_ERROR_OUT_OF_MEMORY;
    x->magic = VGPU_MAGIC_XGRAPH;
    *graph = (CUgraph)(void *)x;
    return CUDA_SUCCESS;
}

static void free_node(struct CUgraphNode_st *n)
{
    if (n->kind == NODE_KERNEL) {
        free(n->u.kernel.args);
        free(n->u.kernel.blob);
    } else if (n->kind == NODE_CHILD) {
        vgpu_xgraph_destroy((CUgraph)(void *)n->u.child);
    } else if (n->kind == NODE_MEM_ALLOC || n->kind == NODE_MEM_FREE) {
        vgpu_gmem_release(n->u.alloc);
    }
    n->magic = VGPU_MAGIC_DEAD;
    free(n);
}

static void forget_origin(struct vgpu_xgraph *x);

CUresult vgpu_xgraph_destroy(CUgraph graph)
{
    struct vgpu_xgraph *x = xgraph(graph);
    if (!x)
        return CUDA_ERROR_INVALID_HANDLE;
    for (size_t i = 0; i < x->count; i++)
        free_node(x->nodes[i]);
    free(x->nodes);
    forget_origin(x);
    vgpu_gmem_graph_gone(x);
    x->magic = VGPU_MAGIC_DEAD;
    free(x);
    return CUDA_SUCCESS;
}

/* A new node of `graph` after its dependencies, which must be its own earlier nodes. */
static CUresult add_node(CUgraph graph, const CUgraphNode *deps, size_t ndeps, enum node_kind kind,
                         struct CUgraphNode_st **out)
{
    struct vgpu_xgraph *x = xgraph(graph);
    if (!x) {
        if (VGPU_CHECK_HANDLE(graph, VGPU_MAGIC_GRAPH))
            VGPU_UNSUPPORTED_USE(CUDA_ERROR_NOT_SUPPORTED,
                                 "adding nodes to a captured graph is not served (only to cuGraphCreate's)");
        return CUDA_ERROR_INVALID_VALUE;
    }
    if (ndeps && !deps)
        return CUDA_ERROR_INVALID_VALUE;
    for (size_t i = 0; i < ndeps; i++)
        if (!deps[i] || deps[i]->magic != VGPU_MAGIC_XNODE || deps[i]->graph != x)
            return CUDA_ERROR_INVALID_VALUE;
    if (x->count == x->cap) {
        size_t cap = x->cap ? 2 * x->cap : 16;
        void *grown = realloc(x->nodes, cap * sizeof *x->nodes);
        if (!grown)
            return CUDA_ERROR_OUT_OF_MEMORY;
        x->nodes = grown;
        x->cap = cap;
    }
    struct CUgraphNode_st *n = calloc(1, sizeof *n);
    if (!n)
        return CUDA_ERROR_OUT_OF_MEMORY;
    n->magic = VGPU_MAGIC_XNODE;
    n->kind = kind;
    n->graph = x;
    *out = n;
    return CUDA_SUCCESS;
}

static CUresult commit_node(struct CUgraphNode_st *n, CUgraphNode *node)
{
    struct vgpu_xgraph *x = n->graph;
    x->nodes[x->count++] = n;
    if (node)
        *node = n;
    return CUDA_SUCCESS;
}

CUresult cuGraphAddEmptyNode(CUgraphNode *node, CUgraph graph, const CUgraphNode *deps, size_t ndeps)
{
    struct CUgraphNode_st *n;
    if (!node)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult rc = add_node(graph, deps, ndeps, NODE_EMPTY, &n);
    return rc ? rc : commit_node(n, node);
}

/* A kernel node's parameters checked, and its arguments' total size by the kernel's layout. */
static CUresult check_kernel(const vgpu_kernel_node_params *p, size_t *count_out, size_t *total_out)
{
    if (!p || !VGPU_CHECK_HANDLE(p->func, VGPU_MAGIC_FUNC))
        return CUDA_ERROR_INVALID_VALUE;
    if (p->extra || (!p->kernelParams && p->func->param_count))
        VGPU_UNSUPPORTED_USE(CUDA_ERROR_NOT_SUPPORTED, "cuGraphAddKernelNode: only kernelParams are served");
    unsigned int grid[3] = {p->gridDimX, p->gridDimY, p->gridDimZ}, block[3] = {p->blockDimX, p->blockDimY, p->blockDimZ};
    CUresult rc = vgpu_shim_check_dims(grid, block);
    if (rc)
        return rc;
    size_t count = 0, total = 0;
    for (;; count++) {
        size_t offset, size;
        rc = cuFuncGetParamInfo(p->func, count, &offset, &size);
        if (rc == CUDA_ERROR_INVALID_VALUE)
            break; /* past the last parameter */
        if (rc)
            return rc;
        if (offset + size > total)
            total = offset + size;
    }
    *count_out = count;
    *total_out = total;
    return CUDA_SUCCESS;
}

/* A kernel node's contents from checked parameters: the arguments are read now, as CUDA reads them
 * when the node is added (or its parameters set). On failure the node's kernel fields are empty. */
static CUresult fill_kernel(struct CUgraphNode_st *n, const vgpu_kernel_node_params *p, size_t count, size_t total)
{
    unsigned int grid[3] = {p->gridDimX, p->gridDimY, p->gridDimZ}, block[3] = {p->blockDimX, p->blockDimY, p->blockDimZ};
    n->u.kernel.f = p->func;
    memcpy(n->u.kernel.grid, grid, sizeof grid);
    memcpy(n->u.kernel.block, block, sizeof block);
    n->u.kernel.shared = p->sharedMemBytes;
    n->u.kernel.count = count;
    n->u.kernel.args = calloc(count ? count : 1, sizeof(void *));
    n->u.kernel.blob = calloc(total ? total : 1, 1);
    if (!n->u.kernel.args || !n->u.kernel.blob) {
        free(n->u.kernel.args);
        free(n->u.kernel.blob);
        n->u.kernel.args = NULL;
        n->u.kernel.blob = NULL;
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    for (size_t i = 0; i < count; i++) {
        size_t offset, size;
        cuFuncGetParamInfo(p->func, i, &offset, &size);
        memcpy(n->u.kernel.blob + offset, p->kernelParams[i], size);
        n->u.kernel.args[i] = n->u.kernel.blob + offset;
    }
    return CUDA_SUCCESS;
}

CUresult cuGraphAddKernelNode_v2(CUgraphNode *node, CUgraph graph, const CUgraphNode *deps, size_t ndeps,
                                 const vgpu_kernel_node_params *p)
{
    size_t count, total;
    struct CUgraphNode_st *n;
    CUresult rc = node ? check_kernel(p, &count, &total) : CUDA_ERROR_INVALID_VALUE;
    if (rc || (rc = add_node(graph, deps, ndeps, NODE_KERNEL, &n)))
        return rc;
    if ((rc = fill_kernel(n, p, count, total))) {
        free_node(n);
        return rc;
    }
    return commit_node(n, node);
}

static int memset_valid(const vgpu_memset_node_params *p)
{
    return p && (p->elementSize == 1 || p->elementSize == 2 || p->elementSize == 4) && p->width && p->height &&
           (p->height == 1 || p->pitch >= p->width * p->elementSize);
}

static void fill_memset(struct CUgraphNode_st *n, const vgpu_memset_node_params *p)
{
    n->u.memset.dst = p->dst;
    n->u.memset.pitch = p->pitch;
    n->u.memset.value = p->value;
    n->u.memset.element = p->elementSize;
    n->u.memset.width = p->width;
    n->u.memset.height = p->height;
}

CUresult cuGraphAddMemsetNode(CUgraphNode *node, CUgraph graph, const CUgraphNode *deps, size_t ndeps,
                              const vgpu_memset_node_params *p, CUcontext ctx)
{
    (void)ctx; /* one device, one context */
    if (!node || !memset_valid(p))
        return CUDA_ERROR_INVALID_VALUE;
    struct CUgraphNode_st *n;
    CUresult rc = add_node(graph, deps, ndeps, NODE_MEMSET, &n);
    if (rc)
        return rc;
    fill_memset(n, p);
    return commit_node(n, node);
}

/* A deep copy of an explicit graph (its nodes' arguments included). */
static CUresult copy_graph(struct vgpu_xgraph *from, struct vgpu_xgraph **to)
{
    CUgraph g;
    CUresult rc = cuGraphCreate(&g, 0);
    if (rc)
        return rc;
    struct vgpu_xgraph *x = xgraph(g);
    for (size_t i = 0; i < from->count && rc == CUDA_SUCCESS; i++) {
        struct CUgraphNode_st *src = from->nodes[i], *n;
        if ((rc = add_node(g, NULL, 0, src->kind, &n)))
            break;
        n->u = src->u;
        if (src->kind == NODE_KERNEL) {
            size_t total = 0;
            for (size_t k = 0; k < src->u.kernel.count; k++) {
                size_t offset, size;
                cuFuncGetParamInfo(src->u.kernel.f, k, &offset, &size);
                if (offset + size > total)
                    total = offset + size;
            }
            n->u.kernel.args = calloc(src->u.kernel.count ? src->u.kernel.count : 1, sizeof(void *));
            n->u.kernel.blob = malloc(total ? total : 1);
            if (!n->u.kernel.args || !n->u.kernel.blob) {
                n->kind = NODE_EMPTY;
                free(n->u.kernel.args);
                free(n->u.kernel.blob);
                free_node(n);
                rc = CUDA_ERROR_OUT_OF_MEMORY;
                break;
            }
            memcpy(n->u.kernel.blob, src->u.kernel.blob, total ? total : 1);
            for (size_t k = 0; k < src->u.kernel.count; k++)
                n->u.kernel.args[k] = n->u.kernel.blob + ((unsigned char *)src->u.kernel.args[k] - src->u.kernel.blob);
        } else if (src->kind == NODE_CHILD && (rc = copy_graph(src->u.child, &n->u.child))) {
            n->kind = NODE_EMPTY;
            free_node(n);
            break;
        } else if (src->kind == NODE_MEM_ALLOC || src->kind == NODE_MEM_FREE) {
            vgpu_gmem_hold(n->u.alloc);
        }
        commit_node(n, NULL);
    }
    if (rc) {
        vgpu_xgraph_destroy(g);
        return rc;
    }
    *to = x;
    return CUDA_SUCCESS;
}

CUresult cuGraphAddChildGraphNode(CUgraphNode *node, CUgraph graph, const CUgraphNode *deps, size_t ndeps,
                                  CUgraph child)
{
    struct vgpu_xgraph *c = xgraph(child);
    if (!node || !c)
        return VGPU_CHECK_HANDLE(child, VGPU_MAGIC_GRAPH) ? CUDA_ERROR_NOT_SUPPORTED : CUDA_ERROR_INVALID_VALUE;
    for (size_t i = 0; i < c->count; i++)
        if (c->nodes[i]->kind == NODE_MEM_ALLOC || c->nodes[i]->kind == NODE_MEM_FREE)
            return CUDA_ERROR_NOT_SUPPORTED; /* CUDA refuses memory nodes in a child graph */
    struct CUgraphNode_st *n;
    CUresult rc = add_node(graph, deps, ndeps, NODE_CHILD, &n);
    if (rc)
        return rc;
    if ((rc = copy_graph(c, &n->u.child))) { /* CUDA copies the child graph into the node */
        n->kind = NODE_EMPTY;
        free_node(n);
        return rc;
    }
    return commit_node(n, node);
}

/* A captured graph is cloned on the host (for cu_stream.c's record of it) */
VGPU_HIDDEN CUresult vgpu_graph_clone_captured(CUgraph *clone, CUgraph original);

CUresult cuGraphClone(CUgraph *clone, CUgraph original)
{
    struct vgpu_xgraph *x = xgraph(original), *copy;
    if (clone && !x && VGPU_CHECK_HANDLE(original, VGPU_MAGIC_GRAPH))
        return vgpu_graph_clone_captured(clone, original);
    if (!clone || !x)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult rc = copy_graph(x, &copy);
    if (rc == CUDA_SUCCESS)
        *clone = (CUgraph)(void *)copy;
    return rc;
}

/* One span of a copy, by where its sides are (a host side: a guest node under capture). */
static CUresult copy_span(const struct memcpy_node *c, CUdeviceptr dst, CUdeviceptr src, size_t bytes, CUstream s)
{
    if (c->src_host)
        return cuMemcpyHtoDAsync_v2(dst, (const void *)(uintptr_t)src, bytes, s);
    if (c->dst_host)
        return cuMemcpyDtoHAsync_v2((void *)(uintptr_t)dst, src, bytes, s);
    return cuMemcpyDtoDAsync_v2(dst, src, bytes, s);
}

/* A row-by-row copy on `s` (one copy when both sides are dense); the sizes were checked when added. */
static CUresult replay_memcpy(const struct memcpy_node *c, CUstream s)
{
    if (!c->width || !c->height || !c->depth)
        return CUDA_SUCCESS;
    int dense = c->spitch == c->width && c->dpitch == c->width &&
                (c->depth == 1 || (c->sheight == c->height && c->dheight == c->height));
    if ((c->height == 1 && c->depth == 1) || dense)
        return copy_span(c, c->dst, c->src, c->width * c->height * c->depth, s);
    for (size_t z = 0; z < c->depth; z++)
        for (size_t y = 0; y < c->height; y++) {
            CUresult rc = copy_span(c, c->dst + (z * c->dheight + y) * c->dpitch,
                                    c->src + (z * c->sheight + y) * c->spitch, c->width, s);
            if (rc)
                return rc;
        }
    return CUDA_SUCCESS;
}

/* An event record node: recorded when the graph runs (CU_EVENT_RECORD_EXTERNAL under capture). */
static CUresult record_event(CUevent e, CUstream s)
{
    if (!VGPU_CHECK_HANDLE(e, VGPU_MAGIC_EVENT))
        return CUDA_ERROR_INVALID_HANDLE; /* destroyed since the node was added */
    struct vgpu_args_event_record_with_flags a = {.event = e->id, .flags = CU_EVENT_RECORD_EXTERNAL};
    CUresult rc = vgpu_shim_stream_id(s, &a.stream);
    return rc ? rc : vgpu_cu_post(VGPU_CALL_EVENT_RECORD_WITH_FLAGS, &a, sizeof a, NULL, 0);
}

/* Issue every node, in the order they were added, on `s` (which is capturing). */
static CUresult replay(struct vgpu_xgraph *x, CUstream s)
{
    for (size_t i = 0; i < x->count; i++) {
        struct CUgraphNode_st *n = x->nodes[i];
        CUresult rc = CUDA_SUCCESS;
        if (n->kind == NODE_KERNEL) {
            const unsigned int *g = n->u.kernel.grid, *b = n->u.kernel.block;
            rc = cuLaunchKernel(n->u.kernel.f, g[0], g[1], g[2], b[0], b[1], b[2], n->u.kernel.shared, s,
                                n->u.kernel.args, NULL);
        } else if (n->kind == NODE_MEMSET && n->u.memset.height > 1) { /* one memset_2d, however many rows */
            CUdeviceptr d = n->u.memset.dst;
            size_t pitch = n->u.memset.pitch, w = n->u.memset.width, h = n->u.memset.height;
            unsigned int v = n->u.memset.value;
            rc = n->u.memset.element == 1 ? cuMemsetD2D8Async(d, pitch, (unsigned char)v, w, h, s)
                 : n->u.memset.element == 2 ? cuMemsetD2D16Async(d, pitch, (unsigned short)v, w, h, s)
                                            : cuMemsetD2D32Async(d, pitch, v, w, h, s);
        } else if (n->kind == NODE_MEMSET) {
            CUdeviceptr d = n->u.memset.dst;
            unsigned int v = n->u.memset.value;
            rc = n->u.memset.element == 1 ? cuMemsetD8Async(d, (unsigned char)v, n->u.memset.width, s)
                 : n->u.memset.element == 2 ? cuMemsetD16Async(d, (unsigned short)v, n->u.memset.width, s)
                                            : cuMemsetD32Async(d, v, n->u.memset.width, s);
        } else if (n->kind == NODE_MEMCPY) {
            rc = replay_memcpy(&n->u.memcpy, s);
        } else if (n->kind == NODE_EVENT_RECORD) {
            rc = record_event(n->u.event, s);
        } else if (n->kind == NODE_EVENT_WAIT) {
            rc = cuStreamWaitEvent(s, n->u.event, CU_EVENT_WAIT_EXTERNAL);
        } else if (n->kind == NODE_CHILD) {
            rc = replay(n->u.child, s);
        } else if (n->kind == NODE_HOST) {
            rc = cuLaunchHostFunc(s, n->u.host.fn, n->u.host.data); /* a guest node: s captures */
        } /* memory nodes: the allocation exists for the graph's life (see the top of the file) */
        if (rc)
            return rc;
    }
    return CUDA_SUCCESS;
}

/* The graph captured on the host and instantiated there: a new executable graph. */
static CUresult capture_instantiate(struct vgpu_xgraph *x, CUgraphExec *exec, unsigned long long flags)
{
    CUstream s;
    CUresult rc = cuStreamCreate(&s, CU_STREAM_NON_BLOCKING);
    if (rc)
        return rc;
    CUgraph captured = NULL;
    rc = cuStreamBeginCapture_v2(s, CU_STREAM_CAPTURE_MODE_RELAXED);
    if (rc == CUDA_SUCCESS) {
        CUresult issued = replay(x, s);
        rc = cuStreamEndCapture(s, &captured); /* always ends the capture */
        if (issued)
            rc = issued;
    }
    if (rc == CUDA_SUCCESS)
        rc = cuGraphInstantiateWithFlags(exec, captured, flags);
    if (captured)
        cuGraphDestroy(captured);
    cuStreamDestroy_v2(s);
    return rc;
}


/* -- copies, events, host and memory nodes -------------------------------------------------------- */


CUresult cuGraphAddMemcpyNode(CUgraphNode *node, CUgraph graph, const CUgraphNode *deps, size_t ndeps,
                              const vgpu_memcpy3d *p, CUcontext ctx);
CUresult cuGraphAddEventRecordNode(CUgraphNode *node, CUgraph graph, const CUgraphNode *deps, size_t ndeps, CUevent e);
CUresult cuGraphAddEventWaitNode(CUgraphNode *node, CUgraph graph, const CUgraphNode *deps, size_t ndeps, CUevent e);

/* Where one side of a copy is: a device address, or (*is_host) an address of the guest's host memory. */
static CUresult device_side(int type, const void *host, CUdeviceptr device, CUdeviceptr *out, int *is_host)
{
    uint64_t base, size;
    if (type == CU_MEMORYTYPE_UNIFIED) {
        if (vgpu_shim_ptr_kind(device, &base, &size) == VGPU_PTR_DEVICE) {
            type = CU_MEMORYTYPE_DEVICE;
        } else {
            type = CU_MEMORYTYPE_HOST;
            host = (const void *)(uintptr_t)device;
        }
    }
    if (type == CU_MEMORYTYPE_DEVICE && host && !device) /* the runtime's kind named it a host pointer */
        type = CU_MEMORYTYPE_HOST;
    if (type == CU_MEMORYTYPE_ARRAY)
        VGPU_UNSUPPORTED_USE(CUDA_ERROR_NOT_SUPPORTED, "graph memcpy node on a CUDA array: not served (copies with arrays outside graphs are)");
    if (type == CU_MEMORYTYPE_HOST) {
        if (!host)
            return CUDA_ERROR_INVALID_VALUE;
        *out = (CUdeviceptr)(uintptr_t)host;
        *is_host = 1;
        return CUDA_SUCCESS;
    }
    if (type != CU_MEMORYTYPE_DEVICE)
        return CUDA_ERROR_INVALID_VALUE;
    *out = device;
    *is_host = 0;
    return CUDA_SUCCESS;
}

/* The last byte a pitched side reaches, without overflow: off + ((depth-1)*height + height-1)*pitch + width. */
static int side_fits(CUdeviceptr base, size_t pitch, size_t height, const vgpu_memcpy3d *p)
{
    size_t rows, bytes, end;
    return !__builtin_mul_overflow(p->Depth - 1, height, &rows) && !__builtin_add_overflow(rows, p->Height - 1, &rows) &&
           !__builtin_mul_overflow(rows, pitch, &bytes) && !__builtin_add_overflow(bytes, p->WidthInBytes, &bytes) &&
           !__builtin_add_overflow(base, bytes, &end);
}

static CUresult fill_memcpy(struct memcpy_node *c, const vgpu_memcpy3d *p)
{
    CUdeviceptr src, dst;
    int src_host, dst_host;
    CUresult rc;
    if (!p || p->srcLOD || p->dstLOD || p->reserved0 || p->reserved1)
        return CUDA_ERROR_INVALID_VALUE;
    if ((rc = device_side(p->srcMemoryType, p->srcHost, p->srcDevice, &src, &src_host)) ||
        (rc = device_side(p->dstMemoryType, p->dstHost, p->dstDevice, &dst, &dst_host)))
        return rc;
    if (src_host && dst_host)
        VGPU_UNSUPPORTED_USE(CUDA_ERROR_NOT_SUPPORTED,
                             "graph memcpy node from host memory to host memory: not served");
    if (!p->WidthInBytes || !p->Height || !p->Depth) {
        *c = (struct memcpy_node){0};
        return CUDA_SUCCESS;
    }
    size_t spitch = p->Height * p->Depth > 1 ? p->srcPitch : p->WidthInBytes;
    size_t dpitch = p->Height * p->Depth > 1 ? p->dstPitch : p->WidthInBytes;
    size_t sheight = p->Depth > 1 ? p->srcHeight : p->Height, dheight = p->Depth > 1 ? p->dstHeight : p->Height;
    if (spitch < p->WidthInBytes || dpitch < p->WidthInBytes || sheight < p->Height || dheight < p->Height)
        return CUDA_ERROR_INVALID_VALUE;
    size_t soff, doff, total;
    /* the starting element: (x, y, z) within each side's pitched layout */
    if (__builtin_mul_overflow(p->srcZ * sheight + p->srcY, spitch, &soff) ||
        __builtin_add_overflow(soff, p->srcXInBytes, &soff) ||
        __builtin_mul_overflow(p->dstZ * dheight + p->dstY, dpitch, &doff) ||
        __builtin_add_overflow(doff, p->dstXInBytes, &doff) ||
        __builtin_mul_overflow(p->WidthInBytes * p->Height, p->Depth, &total) ||
        !side_fits(src + soff, spitch, sheight, p) || !side_fits(dst + doff, dpitch, dheight, p))
        return CUDA_ERROR_INVALID_VALUE;
    *c = (struct memcpy_node){.dst = dst + doff, .src = src + soff, .dpitch = dpitch, .spitch = spitch,
                              .dheight = dheight, .sheight = sheight, .width = p->WidthInBytes,
                              .height = p->Height, .depth = p->Depth, .dst_host = dst_host, .src_host = src_host};
    return CUDA_SUCCESS;
}

CUresult cuGraphAddMemcpyNode(CUgraphNode *node, CUgraph graph, const CUgraphNode *deps, size_t ndeps,
                              const vgpu_memcpy3d *p, CUcontext ctx)
{
    (void)ctx; /* one device, one context */
    struct memcpy_node c;
    CUresult rc = node ? fill_memcpy(&c, p) : CUDA_ERROR_INVALID_VALUE;
    struct CUgraphNode_st *n;
    if (rc || (rc = add_node(graph, deps, ndeps, NODE_MEMCPY, &n)))
        return rc;
    n->u.memcpy = c;
    return commit_node(n, node);
}

static CUresult add_event_node(CUgraphNode *node, CUgraph graph, const CUgraphNode *deps, size_t ndeps, CUevent e,
                               enum node_kind kind)
{
    if (!node || !VGPU_CHECK_HANDLE(e, VGPU_MAGIC_EVENT))
        return CUDA_ERROR_INVALID_VALUE;
    struct CUgraphNode_st *n;
    CUresult rc = add_node(graph, deps, ndeps, kind, &n);
    if (rc)
        return rc;
    n->u.event = e;
    return commit_node(n, node);
}

CUresult cuGraphAddEventRecordNode(CUgraphNode *node, CUgraph graph, const CUgraphNode *deps, size_t ndeps, CUevent e)
{
    return add_event_node(node, graph, deps, ndeps, e, NODE_EVENT_RECORD);
}

CUresult cuGraphAddEventWaitNode(CUgraphNode *node, CUgraph graph, const CUgraphNode *deps, size_t ndeps, CUevent e)
{
    return add_event_node(node, graph, deps, ndeps, e, NODE_EVENT_WAIT);
}

/* CUDA_HOST_NODE_PARAMS (cudaHostNodeParams has the same layout) */
typedef struct { void (*fn)(void *); void *userData; } vgpu_host_node_params;
CUresult cuGraphAddHostNode(CUgraphNode *node, CUgraph graph, const CUgraphNode *deps, size_t ndeps,
                            const vgpu_host_node_params *p);

/* The function runs in the guest when the graph reaches it (cu_guest_nodes.c). */
CUresult cuGraphAddHostNode(CUgraphNode *node, CUgraph graph, const CUgraphNode *deps, size_t ndeps,
                            const vgpu_host_node_params *p)
{
    if (!node || !p || !p->fn)
        return CUDA_ERROR_INVALID_VALUE;
    struct CUgraphNode_st *n;
    CUresult rc = add_node(graph, deps, ndeps, NODE_HOST, &n);
    if (rc)
        return rc;
    n->u.host.fn = p->fn;
    n->u.host.data = p->userData;
    return commit_node(n, node);
}

typedef struct {
    int allocType, handleTypes;
    CUmemLocation location;
    void *win32SecurityAttributes;
    size_t maxSize;
    unsigned short usage;
    unsigned char reserved[54];
} vgpu_mem_pool_props;
typedef struct {
    vgpu_mem_pool_props poolProps;
    const CUmemAccessDesc *accessDescs;
    size_t accessDescCount;
    size_t bytesize;
    CUdeviceptr dptr;
} vgpu_mem_alloc_node_params;
_Static_assert(sizeof(vgpu_mem_pool_props) == 88, "CUmemPoolProps");
_Static_assert(sizeof(vgpu_mem_alloc_node_params) == 120, "CUDA_MEM_ALLOC_NODE_PARAMS");

CUresult cuGraphAddMemAllocNode(CUgraphNode *node, CUgraph graph, const CUgraphNode *deps, size_t ndeps,
                                vgpu_mem_alloc_node_params *p);
CUresult cuGraphAddMemFreeNode(CUgraphNode *node, CUgraph graph, const CUgraphNode *deps, size_t ndeps,
                               CUdeviceptr dptr);

/* The allocation is made now, against the VM's quota, at the address the node reports. */
CUresult cuGraphAddMemAllocNode(CUgraphNode *node, CUgraph graph, const CUgraphNode *deps, size_t ndeps,
                                vgpu_mem_alloc_node_params *p)
{
    if (!node || !p || !p->bytesize || p->poolProps.allocType != 1 /* pinned */ || p->poolProps.handleTypes ||
        p->poolProps.location.type != 1 /* device */ || p->poolProps.location.id != 0 || p->accessDescCount > 1 ||
        (p->accessDescCount && (!p->accessDescs || p->accessDescs[0].location.type != 1 ||
                                p->accessDescs[0].location.id != 0)))
        return CUDA_ERROR_INVALID_VALUE;
    struct graph_alloc *a;
    struct CUgraphNode_st *n;
    CUresult rc = add_node(graph, deps, ndeps, NODE_MEM_ALLOC, &n);
    if (rc == CUDA_SUCCESS && (rc = vgpu_gmem_alloc(p->bytesize, &a)))
        free(n);
    if (rc)
        return rc;
    n->u.alloc = a;
    p->dptr = a->dptr;
    return commit_node(n, node);
}

/* An allocation of this graph's own alloc nodes, not yet freed by it, or another graph's allocation
 * (freed when this graph is launched: cu_graph_mem.c's rules). */
CUresult cuGraphAddMemFreeNode(CUgraphNode *node, CUgraph graph, const CUgraphNode *deps, size_t ndeps,
                               CUdeviceptr dptr)
{
    struct vgpu_xgraph *x = xgraph(graph);
    struct graph_alloc *a = NULL;
    if (!node || !x)
        return CUDA_ERROR_INVALID_VALUE;
    int own = 0;
    for (size_t i = 0; i < x->count && !a; i++)
        if (x->nodes[i]->kind == NODE_MEM_ALLOC && x->nodes[i]->u.alloc->dptr == dptr)
            a = x->nodes[i]->u.alloc, own = 1;
    for (size_t i = 0; i < x->count && !own && a == NULL; i++)
        if (x->nodes[i]->kind == NODE_MEM_FREE && x->nodes[i]->u.alloc->dptr == dptr)
            return CUDA_ERROR_INVALID_VALUE; /* freed twice */
    if (!a && !(a = vgpu_gmem_find(dptr)))
        VGPU_UNSUPPORTED_USE(CUDA_ERROR_NOT_SUPPORTED,
                             "cuGraphAddMemFreeNode: only memory a graph's alloc node allocated is freed by a free "
                             "node");
    if (a->freed_in_graph)
        return CUDA_ERROR_INVALID_VALUE;
    struct CUgraphNode_st *n;
    CUresult rc = add_node(graph, deps, ndeps, NODE_MEM_FREE, &n);
    if (rc)
        return rc;
    a->freed_in_graph |= own;
    vgpu_gmem_hold(a);
    n->u.alloc = a;
    return commit_node(n, node);
}

CUresult cuDeviceGetGraphMemAttribute(CUdevice device, int attr, void *value);
CUresult cuDeviceSetGraphMemAttribute(CUdevice device, int attr, void *value);
CUresult cuDeviceGraphMemTrim(CUdevice device);

/* Used and reserved memory are the same here: an allocation is made for its node, and none is kept
 * in a pool after it is freed (so trimming has nothing to give back). */
CUresult cuDeviceGetGraphMemAttribute(CUdevice device, int attr, void *value)
{
    if (device != 0 || !value || attr < 0 || attr > 3)
        return device != 0 ? CUDA_ERROR_INVALID_DEVICE : CUDA_ERROR_INVALID_VALUE;
    uint64_t now, most;
    vgpu_gmem_usage(&now, &most);
    uint64_t v = attr % 2 ? most : now; /* USED/RESERVED _CURRENT 0, 2; _HIGH 1, 3 */
    memcpy(value, &v, sizeof v);
    return CUDA_SUCCESS;
}

/* Only the high watermarks can be set, and only to 0: they restart from what is held now. */
CUresult cuDeviceSetGraphMemAttribute(CUdevice device, int attr, void *value)
{
    uint64_t v;
    if (device != 0)
        return CUDA_ERROR_INVALID_DEVICE;
    if (!value || (attr != 1 && attr != 3) || (memcpy(&v, value, sizeof v), v != 0))
        return CUDA_ERROR_INVALID_VALUE;
    vgpu_gmem_reset_high();
    return CUDA_SUCCESS;
}

CUresult cuDeviceGraphMemTrim(CUdevice device) { return device != 0 ? CUDA_ERROR_INVALID_DEVICE : CUDA_SUCCESS; }

CUresult cuGraphUpload(CUgraphExec exec, CUstream s);
CUresult cuGraphUpload_ptsz(CUgraphExec exec, CUstream s);

/* An exec is instantiated whole on the host when it is made, and its graph's memory allocated with
 * its nodes: nothing is left to upload. The exec and the stream are checked, as CUDA checks them. */
CUresult cuGraphUpload(CUgraphExec exec, CUstream s)
{
    uint32_t stream;
    if (!VGPU_CHECK_HANDLE(exec, VGPU_MAGIC_EXEC))
        return CUDA_ERROR_INVALID_HANDLE;
    return vgpu_shim_stream_id(s, &stream);
}

CUresult cuGraphUpload_ptsz(CUgraphExec exec, CUstream s) { return cuGraphUpload(exec, s); }

/* CUDA_GRAPH_INSTANTIATE_PARAMS (cudaGraphInstantiateParams has its layout) */
typedef struct {
    unsigned long long flags;
    CUstream upload_stream;
    CUgraphNode err_node_out;
    int result_out; /* CUgraphInstantiateResult */
} vgpu_instantiate_params;
_Static_assert(sizeof(vgpu_instantiate_params) == 32, "CUDA_GRAPH_INSTANTIATE_PARAMS");

CUresult cuGraphInstantiateWithParams(CUgraphExec *exec, CUgraph graph, vgpu_instantiate_params *p);
CUresult cuGraphInstantiateWithParams_ptsz(CUgraphExec *exec, CUgraph graph, vgpu_instantiate_params *p);

/* cuGraphInstantiateWithFlags, then the upload CUDA_GRAPH_INSTANTIATE_FLAG_UPLOAD (2) asks for. */
CUresult cuGraphInstantiateWithParams(CUgraphExec *exec, CUgraph graph, vgpu_instantiate_params *p)
{
    if (!p)
        return CUDA_ERROR_INVALID_VALUE;
    p->err_node_out = NULL;
    CUresult rc = cuGraphInstantiateWithFlags(exec, graph, p->flags);
    if (rc == CUDA_SUCCESS && (p->flags & 2) && (rc = cuGraphUpload(*exec, p->upload_stream)))
        cuGraphExecDestroy(*exec);
    p->result_out = rc ? 1 /* CUDA_GRAPH_INSTANTIATE_ERROR */ : 0;
    return rc;
}

CUresult cuGraphInstantiateWithParams_ptsz(CUgraphExec *exec, CUgraph graph, vgpu_instantiate_params *p)
{
    return cuGraphInstantiateWithParams(exec, graph, p);
}

CUresult cuGraphConditionalHandleCreate(unsigned long long *handle, CUgraph graph, CUcontext ctx, unsigned int value,
                                        unsigned int flags);

/* Conditional nodes need their condition set on the device: nvcc compiles cudaGraphSetConditional
 * in a kernel to a call of an .extern .func of the device runtime, which a graph on the host (sim's
 * replay, or one driver graph per phase on cuda) cannot honour between its nodes. */
CUresult cuGraphConditionalHandleCreate(unsigned long long *handle, CUgraph graph, CUcontext ctx, unsigned int value,
                                        unsigned int flags)
{
    (void)handle, (void)graph, (void)ctx, (void)value, (void)flags;
    VGPU_UNSUPPORTED_USE(CUDA_ERROR_NOT_SUPPORTED,
                         "cuGraphConditionalHandleCreate: conditional graph nodes are not served -- kernels set their "
                         "condition with the device runtime's cudaGraphSetConditional (an .extern .func call in "
                         "their PTX), which the host's graphs cannot evaluate between nodes");
}

/* -- nodes and their types -------------------------------------------------------------------------- */

CUresult cuGraphGetNodes(CUgraph graph, CUgraphNode *nodes, size_t *count);
CUresult cuGraphNodeGetType(CUgraphNode node, int *type);

/* A captured graph's node count, from the host; its nodes themselves are not served. */
static CUresult captured_nodes(CUgraph graph, CUgraphNode *nodes, size_t *count)
{
    if (nodes)
        VGPU_UNSUPPORTED_USE(CUDA_ERROR_NOT_SUPPORTED,
                             "cuGraphGetNodes: the nodes of a captured graph are not served (their count is)");
    struct vgpu_args_graph_node_count a = {.graph = graph->id};
    struct vgpu_result_graph_node_count r;
    CUresult rc = vgpu_cu_call(VGPU_CALL_GRAPH_NODE_COUNT, &a, sizeof a, &r, sizeof r);
    if (rc == CUDA_SUCCESS)
        *count = r.count;
    return rc;
}

CUresult cuGraphGetNodes(CUgraph graph, CUgraphNode *nodes, size_t *count)
{
    struct vgpu_xgraph *x = xgraph(graph);
    if (count && !x && VGPU_CHECK_HANDLE(graph, VGPU_MAGIC_GRAPH))
        return captured_nodes(graph, nodes, count);
    if (!count || !x)
        return CUDA_ERROR_INVALID_VALUE;
    if (nodes) {
        size_t want = *count;
        for (size_t i = 0; i < want; i++)
            nodes[i] = i < x->count ? x->nodes[i] : NULL;
        *count = want < x->count ? want : x->count;
    } else {
        *count = x->count;
    }
    return CUDA_SUCCESS;
}

CUresult cuGraphNodeGetType(CUgraphNode node, int *type)
{
    if (!node || node->magic != VGPU_MAGIC_XNODE || !type)
        return CUDA_ERROR_INVALID_VALUE;
    *type = (int)node->kind;
    return CUDA_SUCCESS;
}

/* -- executable graphs: their graph kept, updated and instantiated again ---------------------------- */

/* cuGraphExecUpdate's result (CUgraphExecUpdateResultInfo), as cu_stream.c declares it */
struct vgpu_exec_update_info { int result; CUgraphNode error_node, error_from_node; };

struct exec_entry {
    CUgraphExec exec;
    struct vgpu_xgraph *source; /* the exec's own copy of the graph */
    struct vgpu_xgraph *origin; /* the graph it was made from, NULL once destroyed: its nodes name ours */
    unsigned long long flags;
    struct exec_entry *next;
};
static struct exec_entry *execs;
static pthread_mutex_t execs_lock = PTHREAD_MUTEX_INITIALIZER;

/* for cu_stream.c */
VGPU_HIDDEN void vgpu_xgraph_exec_forget(CUgraphExec exec);
VGPU_HIDDEN CUresult vgpu_xgraph_exec_update(CUgraphExec exec, CUgraph graph,
                                             struct vgpu_exec_update_info *info);

static void forget_origin(struct vgpu_xgraph *x)
{
    pthread_mutex_lock(&execs_lock);
    for (struct exec_entry *e = execs; e; e = e->next)
        if (e->origin == x)
            e->origin = NULL;
    pthread_mutex_unlock(&execs_lock);
}

/* What the exec's launches allocate and free (cu_graph_mem.c keeps CUDA's per-launch rules). */
static CUresult register_memory(const struct vgpu_xgraph *x, const struct vgpu_xgraph *origin, CUgraphExec exec,
                                unsigned long long flags)
{
    size_t count = 0;
    struct graph_alloc **list = calloc(x->count ? x->count : 1, sizeof *list);
    unsigned char *roles = malloc(x->count ? x->count : 1);
    CUresult rc = list && roles ? CUDA_SUCCESS : CUDA_ERROR_OUT_OF_MEMORY;
    for (size_t i = 0; !rc && i < x->count; i++) {
        struct CUgraphNode_st *n = x->nodes[i];
        if (n->kind == NODE_MEM_ALLOC)
            roles[count] = (unsigned char)(ROLE_ALLOCATES | (n->u.alloc->freed_in_graph ? ROLE_FREES : 0));
        else if (n->kind == NODE_MEM_FREE && !n->u.alloc->freed_in_graph) /* another graph's allocation */
            roles[count] = ROLE_FREES;
        else
            continue;
        list[count++] = n->u.alloc;
    }
    if (!rc)
        rc = vgpu_gmem_register(exec, origin, flags, count, list, roles);
    free(list);
    free(roles);
    return rc;
}

CUresult vgpu_xgraph_instantiate(CUgraphExec *exec, CUgraph graph, unsigned long long flags)
{
    struct vgpu_xgraph *x = xgraph(graph), *copy;
    if (!exec || !x)
        return CUDA_ERROR_INVALID_VALUE;
    struct exec_entry *e = calloc(1, sizeof *e);
    if (!e)
        return CUDA_ERROR_OUT_OF_MEMORY;
    CUresult rc = copy_graph(x, &copy);
    if (rc) {
        free(e);
        return rc;
    }
    if ((rc = capture_instantiate(x, exec, flags))) {
        vgpu_xgraph_destroy((CUgraph)(void *)copy);
        free(e);
        return rc;
    }
    if ((rc = register_memory(copy, x, *exec, flags))) {
        cuGraphExecDestroy(*exec);
        vgpu_xgraph_destroy((CUgraph)(void *)copy);
        free(e);
        return rc;
    }
    *e = (struct exec_entry){*exec, copy, x, flags, NULL};
    pthread_mutex_lock(&execs_lock);
    e->next = execs;
    execs = e;
    pthread_mutex_unlock(&execs_lock);
    return CUDA_SUCCESS;
}

void vgpu_xgraph_exec_forget(CUgraphExec exec)
{
    struct exec_entry *found = NULL;
    pthread_mutex_lock(&execs_lock);
    for (struct exec_entry **link = &execs; *link; link = &(*link)->next)
        if ((*link)->exec == exec) {
            found = *link;
            *link = found->next;
            break;
        }
    pthread_mutex_unlock(&execs_lock);
    if (found) {
        vgpu_xgraph_destroy((CUgraph)(void *)found->source);
        free(found);
    }
}

static struct exec_entry *entry_of(CUgraphExec exec)
{
    struct exec_entry *e;
    pthread_mutex_lock(&execs_lock);
    for (e = execs; e && e->exec != exec; e = e->next)
        ;
    pthread_mutex_unlock(&execs_lock);
    return e;
}

/* for cu_stream.c: is this an exec of a graph built here (which keeps its graph's copy) */
VGPU_HIDDEN int vgpu_xgraph_exec_is(CUgraphExec exec);
int vgpu_xgraph_exec_is(CUgraphExec exec) { return entry_of(exec) != NULL; }

/* `source` instantiated anew under the same handle: the host's previous executable graph destroyed. */
static CUresult reinstantiate(struct exec_entry *e, struct vgpu_xgraph *source)
{
    CUgraphExec fresh;
    CUresult rc = capture_instantiate(source, &fresh, e->flags);
    if (rc)
        return rc;
    uint32_t id = fresh->id;
    fresh->id = e->exec->id;
    e->exec->id = id;
    cuGraphExecDestroy(fresh); /* the previous host executable graph, under the temporary handle */
    return CUDA_SUCCESS;
}

/* The exec's copy of `node` (a node of the graph the exec was made from), or NULL. */
static struct CUgraphNode_st *exec_node(CUgraphExec exec, CUgraphNode node, struct exec_entry **entry)
{
    struct exec_entry *e = VGPU_CHECK_HANDLE(exec, VGPU_MAGIC_EXEC) ? entry_of(exec) : NULL;
    if (!e || !node || node->magic != VGPU_MAGIC_XNODE || node->graph != e->origin)
        return NULL;
    for (size_t i = 0; i < e->origin->count; i++)
        if (e->origin->nodes[i] == node) {
            *entry = e;
            return e->source->nodes[i];
        }
    return NULL;
}

CUresult cuGraphExecKernelNodeSetParams_v2(CUgraphExec exec, CUgraphNode node, const vgpu_kernel_node_params *p);
CUresult cuGraphExecKernelNodeSetParams(CUgraphExec exec, CUgraphNode node, const vgpu_kernel_node_params *p);
CUresult cuGraphExecMemsetNodeSetParams(CUgraphExec exec, CUgraphNode node, const vgpu_memset_node_params *p,
                                        CUcontext ctx);
CUresult cuGraphExecMemcpyNodeSetParams(CUgraphExec exec, CUgraphNode node, const vgpu_memcpy3d *p, CUcontext ctx);

CUresult cuGraphExecKernelNodeSetParams_v2(CUgraphExec exec, CUgraphNode node, const vgpu_kernel_node_params *p)
{
    struct exec_entry *e;
    struct CUgraphNode_st *n = exec_node(exec, node, &e);
    size_t count, total;
    if (!n || n->kind != NODE_KERNEL)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult rc = check_kernel(p, &count, &total);
    if (rc)
        return rc;
    struct CUgraphNode_st was = *n;
    if ((rc = fill_kernel(n, p, count, total)) || (rc = reinstantiate(e, e->source))) {
        if (n->u.kernel.args != was.u.kernel.args) {
            free(n->u.kernel.args);
            free(n->u.kernel.blob);
        }
        *n = was; /* the exec runs what it ran before */
        return rc;
    }
    free(was.u.kernel.args);
    free(was.u.kernel.blob);
    return CUDA_SUCCESS;
}

/* CUDA_KERNEL_NODE_PARAMS_v1 is v2 without its last two fields, which are not read here. */
CUresult cuGraphExecKernelNodeSetParams(CUgraphExec exec, CUgraphNode node, const vgpu_kernel_node_params *p)
{
    if (!p)
        return CUDA_ERROR_INVALID_VALUE;
    vgpu_kernel_node_params v2 = {0};
    memcpy(&v2, p, offsetof(vgpu_kernel_node_params, kern));
    return cuGraphExecKernelNodeSetParams_v2(exec, node, &v2);
}

CUresult cuGraphExecMemsetNodeSetParams(CUgraphExec exec, CUgraphNode node, const vgpu_memset_node_params *p,
                                        CUcontext ctx)
{
    (void)ctx;
    struct exec_entry *e;
    struct CUgraphNode_st *n = exec_node(exec, node, &e);
    if (!n || n->kind != NODE_MEMSET || !memset_valid(p))
        return CUDA_ERROR_INVALID_VALUE;
    struct CUgraphNode_st was = *n;
    fill_memset(n, p);
    CUresult rc = reinstantiate(e, e->source);
    if (rc)
        *n = was;
    return rc;
}

CUresult cuGraphExecMemcpyNodeSetParams(CUgraphExec exec, CUgraphNode node, const vgpu_memcpy3d *p, CUcontext ctx)
{
    (void)ctx;
    struct exec_entry *e;
    struct CUgraphNode_st *n = exec_node(exec, node, &e);
    if (!n || n->kind != NODE_MEMCPY)
        return CUDA_ERROR_INVALID_VALUE;
    struct memcpy_node c;
    CUresult rc = fill_memcpy(&c, p);
    if (rc)
        return rc;
    struct memcpy_node was = n->u.memcpy;
    n->u.memcpy = c;
    if ((rc = reinstantiate(e, e->source)))
        n->u.memcpy = was;
    return rc;
}

/* Same node kinds in the same order (child graphs alike), or the update result saying where not. */
static int same_shape(const struct vgpu_xgraph *a, const struct vgpu_xgraph *b, CUgraphNode *where)
{
    if (a->count != b->count)
        return 2; /* CU_GRAPH_EXEC_UPDATE_ERROR_TOPOLOGY_CHANGED */
    for (size_t i = 0; i < a->count; i++) {
        if (a->nodes[i]->kind != b->nodes[i]->kind) {
            *where = b->nodes[i];
            return 3; /* CU_GRAPH_EXEC_UPDATE_ERROR_NODE_TYPE_CHANGED */
        }
        if (a->nodes[i]->kind == NODE_CHILD && same_shape(a->nodes[i]->u.child, b->nodes[i]->u.child, where)) {
            *where = b->nodes[i];
            return 2;
        }
        if (a->nodes[i]->kind == NODE_MEM_ALLOC || a->nodes[i]->kind == NODE_MEM_FREE) {
            *where = b->nodes[i];
            return 6; /* CU_GRAPH_EXEC_UPDATE_ERROR_NOT_SUPPORTED: CUDA does not update memory nodes */
        }
    }
    return 0;
}

/* cuGraphExecUpdate of an exec made from a graph built here, with such a graph: the exec takes the
 * graph's parameters when its shape is the same (CUDA's rule), by instantiating it anew. */
CUresult vgpu_xgraph_exec_update(CUgraphExec exec, CUgraph graph, struct vgpu_exec_update_info *info)
{
    struct vgpu_xgraph *x = xgraph(graph), *copy;
    struct exec_entry *e = VGPU_CHECK_HANDLE(exec, VGPU_MAGIC_EXEC) ? entry_of(exec) : NULL;
    if (!x || !info || !VGPU_CHECK_HANDLE(exec, VGPU_MAGIC_EXEC))
        return CUDA_ERROR_INVALID_VALUE;
    *info = (struct vgpu_exec_update_info){0, NULL, NULL};
    int why = e ? same_shape(e->source, x, &info->error_node) : 6; /* an exec of a captured graph */
    if (why) {
        info->result = why;
        return CUDA_ERROR_GRAPH_EXEC_UPDATE_FAILURE;
    }
    CUresult rc = copy_graph(x, &copy);
    if (rc == CUDA_SUCCESS && (rc = reinstantiate(e, copy))) {
        vgpu_xgraph_destroy((CUgraph)(void *)copy);
    } else if (rc == CUDA_SUCCESS) {
        vgpu_xgraph_destroy((CUgraph)(void *)e->source);
        e->source = copy;
        e->origin = x;
    }
    if (rc)
        info->result = 1; /* CU_GRAPH_EXEC_UPDATE_ERROR */
    return rc;
}

/* -- host nodes' parameters ------------------------------------------------------------------------ */

CUresult cuGraphHostNodeGetParams(CUgraphNode node, vgpu_host_node_params *p);
CUresult cuGraphHostNodeSetParams(CUgraphNode node, const vgpu_host_node_params *p);
CUresult cuGraphExecHostNodeSetParams(CUgraphExec exec, CUgraphNode node, const vgpu_host_node_params *p);

static int host_node(CUgraphNode node) { return node && node->magic == VGPU_MAGIC_XNODE && node->kind == NODE_HOST; }

CUresult cuGraphHostNodeGetParams(CUgraphNode node, vgpu_host_node_params *p)
{
    if (!host_node(node) || !p)
        return CUDA_ERROR_INVALID_VALUE;
    *p = (vgpu_host_node_params){node->u.host.fn, node->u.host.data};
    return CUDA_SUCCESS;
}

/* The graph's node changes; executable graphs made from it earlier keep what they were made with. */
CUresult cuGraphHostNodeSetParams(CUgraphNode node, const vgpu_host_node_params *p)
{
    if (!host_node(node) || !p || !p->fn)
        return CUDA_ERROR_INVALID_VALUE;
    node->u.host.fn = p->fn;
    node->u.host.data = p->userData;
    return CUDA_SUCCESS;
}

CUresult cuGraphExecHostNodeSetParams(CUgraphExec exec, CUgraphNode node, const vgpu_host_node_params *p)
{
    struct exec_entry *e;
    struct CUgraphNode_st *n = exec_node(exec, node, &e);
    if (!n || n->kind != NODE_HOST || !p || !p->fn)
        return CUDA_ERROR_INVALID_VALUE;
    struct CUgraphNode_st was = *n;
    n->u.host.fn = p->fn;
    n->u.host.data = p->userData;
    CUresult rc = reinstantiate(e, e->source); /* its guest node's tag is the new function's */
    if (rc)
        *n = was;
    return rc;
}
