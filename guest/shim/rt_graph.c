/* The runtime's graph building, on the driver's (cu_graph_build.c): the same rules and limits. */
#include "cu_api.h"
#include "rt_internal.h"

struct cudaKernelNodeParams { void *func; dim3 gridDim, blockDim; unsigned int sharedMemBytes; void **kernelParams, **extra; };
struct cudaMemsetParams { void *dst; size_t pitch; unsigned int value, elementSize; size_t width, height; };
typedef struct {
    CUfunction func;
    unsigned int gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY, blockDimZ, sharedMemBytes;
    void **kernelParams, **extra;
    void *kern;
    CUcontext ctx;
} vgpu_kernel_node_params;

CUresult cuGraphCreate(CUgraph *graph, unsigned int flags);
CUresult cuGraphAddEmptyNode(CUgraphNode *node, CUgraph graph, const CUgraphNode *deps, size_t ndeps);
CUresult cuGraphAddKernelNode_v2(CUgraphNode *node, CUgraph graph, const CUgraphNode *deps, size_t ndeps,
                                 const vgpu_kernel_node_params *p);
CUresult cuGraphAddMemsetNode(CUgraphNode *node, CUgraph graph, const CUgraphNode *deps, size_t ndeps,
                              const struct cudaMemsetParams *p, CUcontext ctx);
CUresult cuGraphAddChildGraphNode(CUgraphNode *node, CUgraph graph, const CUgraphNode *deps, size_t ndeps,
                                  CUgraph child);
CUresult cuGraphClone(CUgraph *clone, CUgraph original);

cudaError_t cudaGraphCreate(cudaGraph_t *graph, unsigned int flags);
cudaError_t cudaGraphAddEmptyNode(cudaGraphNode_t *node, cudaGraph_t graph, const cudaGraphNode_t *deps, size_t n);
cudaError_t cudaGraphAddKernelNode(cudaGraphNode_t *node, cudaGraph_t graph, const cudaGraphNode_t *deps, size_t n,
                                   const struct cudaKernelNodeParams *p);
cudaError_t cudaGraphAddMemsetNode(cudaGraphNode_t *node, cudaGraph_t graph, const cudaGraphNode_t *deps, size_t n,
                                   const struct cudaMemsetParams *p);
cudaError_t cudaGraphAddChildGraphNode(cudaGraphNode_t *node, cudaGraph_t graph, const cudaGraphNode_t *deps,
                                       size_t n, cudaGraph_t child);
cudaError_t cudaGraphClone(cudaGraph_t *clone, cudaGraph_t original);

cudaError_t cudaGraphCreate(cudaGraph_t *graph, unsigned int flags) { RT_CALL(cuGraphCreate(graph, flags)); }

cudaError_t cudaGraphAddEmptyNode(cudaGraphNode_t *node, cudaGraph_t graph, const cudaGraphNode_t *deps, size_t n)
{
    RT_CALL(cuGraphAddEmptyNode(node, graph, deps, n));
}

/* The kernel is named by its host function, as for cudaLaunchKernel. */
cudaError_t cudaGraphAddKernelNode(cudaGraphNode_t *node, cudaGraph_t graph, const cudaGraphNode_t *deps, size_t n,
                                   const struct cudaKernelNodeParams *p)
{
    if (!p)
        return rt_ret(cudaErrorInvalidValue);
    struct CUkern_st *k;
    CUfunction f = NULL;
    cudaError_t err = rt_kernel_of(p->func, &k);
    if (!err)
        err = rt_kernel_function(k, &f);
    if (err)
        return rt_ret(err);
    vgpu_kernel_node_params d = {f, p->gridDim.x, p->gridDim.y, p->gridDim.z, p->blockDim.x, p->blockDim.y,
                                 p->blockDim.z, p->sharedMemBytes, p->kernelParams, p->extra, NULL, NULL};
    RT_CALL(cuGraphAddKernelNode_v2(node, graph, deps, n, &d));
}

/* cudaMemsetParams and CUDA_MEMSET_NODE_PARAMS have one layout (a pointer for a CUdeviceptr). */
cudaError_t cudaGraphAddMemsetNode(cudaGraphNode_t *node, cudaGraph_t graph, const cudaGraphNode_t *deps, size_t n,
                                   const struct cudaMemsetParams *p)
{
    RT_CALL(cuGraphAddMemsetNode(node, graph, deps, n, p, NULL));
}

cudaError_t cudaGraphAddChildGraphNode(cudaGraphNode_t *node, cudaGraph_t graph, const cudaGraphNode_t *deps,
                                       size_t n, cudaGraph_t child)
{
    RT_CALL(cuGraphAddChildGraphNode(node, graph, deps, n, child));
}

cudaError_t cudaGraphClone(cudaGraph_t *clone, cudaGraph_t original) { RT_CALL(cuGraphClone(clone, original)); }
