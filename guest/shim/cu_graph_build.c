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
 * layout), memsets (1, 2 or 4-byte elements, 2D by rows), empty nodes, and child graphs (copied when
 * added). Other node kinds (copies, events, host callbacks, memory nodes) and edges added
 * afterwards (cuGraphAddDependencies) are not served.
 */
#include <stdlib.h>
#include <string.h>

#include "cu_api.h"
#include "shim.h"

#define VGPU_MAGIC_XGRAPH 0x68705856u /* "VXph" */
#define VGPU_MAGIC_XNODE 0x646e5856u  /* "VXnd" */
#define CU_STREAM_NON_BLOCKING 0x1
#define CU_STREAM_CAPTURE_MODE_RELAXED 2

enum node_kind { NODE_EMPTY, NODE_KERNEL, NODE_MEMSET, NODE_CHILD };

struct vgpu_xgraph;

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
        struct vgpu_xgraph *child;
    } u;
};

struct vgpu_xgraph {
    uint32_t magic, unused;
    size_t count, cap;
    struct CUgraphNode_st **nodes;
};

typedef struct {
    CUfunction func;
    unsigned int gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY, blockDimZ, sharedMemBytes;
    void **kernelParams, **extra;
    void *kern;
    CUcontext ctx;
} vgpu_kernel_node_params;

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
    }
    n->magic = VGPU_MAGIC_DEAD;
    free(n);
}

CUresult vgpu_xgraph_destroy(CUgraph graph)
{
    struct vgpu_xgraph *x = xgraph(graph);
    if (!x)
        return CUDA_ERROR_INVALID_HANDLE;
    for (size_t i = 0; i < x->count; i++)
        free_node(x->nodes[i]);
    free(x->nodes);
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

CUresult cuGraphAddKernelNode_v2(CUgraphNode *node, CUgraph graph, const CUgraphNode *deps, size_t ndeps,
                                 const vgpu_kernel_node_params *p)
{
    if (!node || !p || !VGPU_CHECK_HANDLE(p->func, VGPU_MAGIC_FUNC))
        return CUDA_ERROR_INVALID_VALUE;
    if (p->extra || (!p->kernelParams && p->func->param_count))
        VGPU_UNSUPPORTED_USE(CUDA_ERROR_NOT_SUPPORTED, "cuGraphAddKernelNode: only kernelParams are served");
    unsigned int grid[3] = {p->gridDimX, p->gridDimY, p->gridDimZ}, block[3] = {p->blockDimX, p->blockDimY, p->blockDimZ};
    CUresult rc = vgpu_shim_check_dims(grid, block);
    if (rc)
        return rc;
    /* the arguments are read now, as CUDA reads them when the node is added */
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
    struct CUgraphNode_st *n;
    if ((rc = add_node(graph, deps, ndeps, NODE_KERNEL, &n)))
        return rc;
    n->u.kernel.f = p->func;
    memcpy(n->u.kernel.grid, grid, sizeof grid);
    memcpy(n->u.kernel.block, block, sizeof block);
    n->u.kernel.shared = p->sharedMemBytes;
    n->u.kernel.count = count;
    n->u.kernel.args = calloc(count ? count : 1, sizeof(void *));
    n->u.kernel.blob = calloc(total ? total : 1, 1);
    if (!n->u.kernel.args || !n->u.kernel.blob) {
        free_node(n);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    for (size_t i = 0; i < count; i++) {
        size_t offset, size;
        cuFuncGetParamInfo(p->func, i, &offset, &size);
        memcpy(n->u.kernel.blob + offset, p->kernelParams[i], size);
        n->u.kernel.args[i] = n->u.kernel.blob + offset;
    }
    return commit_node(n, node);
}

CUresult cuGraphAddMemsetNode(CUgraphNode *node, CUgraph graph, const CUgraphNode *deps, size_t ndeps,
                              const vgpu_memset_node_params *p, CUcontext ctx)
{
    (void)ctx; /* one device, one context */
    if (!node || !p || (p->elementSize != 1 && p->elementSize != 2 && p->elementSize != 4) || !p->width ||
        !p->height || (p->height > 1 && p->pitch < p->width * p->elementSize))
        return CUDA_ERROR_INVALID_VALUE;
    struct CUgraphNode_st *n;
    CUresult rc = add_node(graph, deps, ndeps, NODE_MEMSET, &n);
    if (rc)
        return rc;
    n->u.memset.dst = p->dst;
    n->u.memset.pitch = p->pitch;
    n->u.memset.value = p->value;
    n->u.memset.element = p->elementSize;
    n->u.memset.width = p->width;
    n->u.memset.height = p->height;
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

CUresult cuGraphClone(CUgraph *clone, CUgraph original)
{
    struct vgpu_xgraph *x = xgraph(original), *copy;
    if (!clone || !x)
        return VGPU_CHECK_HANDLE(original, VGPU_MAGIC_GRAPH) ? CUDA_ERROR_NOT_SUPPORTED : CUDA_ERROR_INVALID_VALUE;
    CUresult rc = copy_graph(x, &copy);
    if (rc == CUDA_SUCCESS)
        *clone = (CUgraph)(void *)copy;
    return rc;
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
        } else if (n->kind == NODE_MEMSET) {
            for (size_t row = 0; row < n->u.memset.height && rc == CUDA_SUCCESS; row++) {
                CUdeviceptr d = n->u.memset.dst + row * n->u.memset.pitch;
                unsigned int v = n->u.memset.value;
                rc = n->u.memset.element == 1 ? cuMemsetD8Async(d, (unsigned char)v, n->u.memset.width, s)
                     : n->u.memset.element == 2 ? cuMemsetD16Async(d, (unsigned short)v, n->u.memset.width, s)
                                                : cuMemsetD32Async(d, v, n->u.memset.width, s);
            }
        } else if (n->kind == NODE_CHILD) {
            rc = replay(n->u.child, s);
        }
        if (rc)
            return rc;
    }
    return CUDA_SUCCESS;
}

CUresult vgpu_xgraph_instantiate(CUgraphExec *exec, CUgraph graph, unsigned long long flags)
{
    struct vgpu_xgraph *x = xgraph(graph);
    if (!exec || !x)
        return CUDA_ERROR_INVALID_VALUE;
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
