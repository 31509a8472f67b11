/* The runtime's graph building, on the driver's (cu_graph_build.c): the same rules and limits. */
#include "cu_api.h"
#include "rt_internal.h"

struct cudaKernelNodeParams { void *func; dim3 gridDim, blockDim; unsigned int sharedMemBytes; void **kernelParams, **extra; };
struct cudaMemsetParams { void *dst; size_t pitch; unsigned int value, elementSize; size_t width, height; };

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
static cudaError_t to_driver_kernel(const struct cudaKernelNodeParams *p, vgpu_kernel_node_params *d)
{
    if (!p)
        return cudaErrorInvalidValue;
    struct CUkern_st *k;
    CUfunction f = NULL;
    cudaError_t err = rt_kernel_of(p->func, &k);
    if (!err)
        err = rt_kernel_function(k, &f);
    if (err)
        return err;
    *d = (vgpu_kernel_node_params){f, p->gridDim.x, p->gridDim.y, p->gridDim.z, p->blockDim.x, p->blockDim.y,
                                   p->blockDim.z, p->sharedMemBytes, p->kernelParams, p->extra, NULL, NULL};
    return cudaSuccess;
}

cudaError_t cudaGraphAddKernelNode(cudaGraphNode_t *node, cudaGraph_t graph, const cudaGraphNode_t *deps, size_t n,
                                   const struct cudaKernelNodeParams *p)
{
    vgpu_kernel_node_params d;
    cudaError_t err = to_driver_kernel(p, &d);
    if (err)
        return rt_ret(err);
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

/* cudaHostNodeParams and CUDA_HOST_NODE_PARAMS have one layout; the function runs in the guest. */
struct cudaHostNodeParams;
CUresult cuGraphAddHostNode(CUgraphNode *node, CUgraph graph, const CUgraphNode *deps, size_t ndeps,
                            const struct cudaHostNodeParams *p);
cudaError_t cudaGraphAddHostNode(cudaGraphNode_t *node, cudaGraph_t graph, const cudaGraphNode_t *deps, size_t n,
                                 const struct cudaHostNodeParams *p);
cudaError_t cudaGraphAddHostNode(cudaGraphNode_t *node, cudaGraph_t graph, const cudaGraphNode_t *deps, size_t n,
                                 const struct cudaHostNodeParams *p)
{
    RT_CALL(cuGraphAddHostNode(node, graph, deps, n, p));
}

CUresult cuGraphHostNodeGetParams(CUgraphNode node, struct cudaHostNodeParams *p);
CUresult cuGraphHostNodeSetParams(CUgraphNode node, const struct cudaHostNodeParams *p);
CUresult cuGraphExecHostNodeSetParams(CUgraphExec exec, CUgraphNode node, const struct cudaHostNodeParams *p);
cudaError_t cudaGraphHostNodeGetParams(cudaGraphNode_t node, struct cudaHostNodeParams *p);
cudaError_t cudaGraphHostNodeSetParams(cudaGraphNode_t node, const struct cudaHostNodeParams *p);
cudaError_t cudaGraphExecHostNodeSetParams(cudaGraphExec_t exec, cudaGraphNode_t node,
                                           const struct cudaHostNodeParams *p);
cudaError_t cudaGraphHostNodeGetParams(cudaGraphNode_t node, struct cudaHostNodeParams *p)
{
    RT_CALL(cuGraphHostNodeGetParams(node, p));
}
cudaError_t cudaGraphHostNodeSetParams(cudaGraphNode_t node, const struct cudaHostNodeParams *p)
{
    RT_CALL(cuGraphHostNodeSetParams(node, p));
}
cudaError_t cudaGraphExecHostNodeSetParams(cudaGraphExec_t exec, cudaGraphNode_t node,
                                           const struct cudaHostNodeParams *p)
{
    RT_CALL(cuGraphExecHostNodeSetParams(exec, node, p));
}

/* -- copies, events, memory nodes, nodes, executable graphs ----------------------------------------- */

struct vgpu_exec_update_info;

CUresult cuGraphAddMemcpyNode(CUgraphNode *node, CUgraph graph, const CUgraphNode *deps, size_t ndeps,
                              const vgpu_memcpy3d *p, CUcontext ctx);
CUresult cuGraphAddEventRecordNode(CUgraphNode *node, CUgraph graph, const CUgraphNode *deps, size_t ndeps, CUevent e);
CUresult cuGraphAddEventWaitNode(CUgraphNode *node, CUgraph graph, const CUgraphNode *deps, size_t ndeps, CUevent e);
CUresult cuGraphAddMemAllocNode(CUgraphNode *node, CUgraph graph, const CUgraphNode *deps, size_t ndeps, void *p);
CUresult cuGraphAddMemFreeNode(CUgraphNode *node, CUgraph graph, const CUgraphNode *deps, size_t ndeps,
                               CUdeviceptr dptr);
CUresult cuGraphGetNodes(CUgraph graph, CUgraphNode *nodes, size_t *count);
CUresult cuGraphNodeGetType(CUgraphNode node, int *type);
CUresult cuGraphExecKernelNodeSetParams_v2(CUgraphExec exec, CUgraphNode node, const vgpu_kernel_node_params *p);
CUresult cuGraphExecMemsetNodeSetParams(CUgraphExec exec, CUgraphNode node, const struct cudaMemsetParams *p,
                                        CUcontext ctx);
CUresult cuGraphExecMemcpyNodeSetParams(CUgraphExec exec, CUgraphNode node, const vgpu_memcpy3d *p, CUcontext ctx);

cudaError_t cudaGraphAddMemcpyNode(cudaGraphNode_t *node, cudaGraph_t graph, const cudaGraphNode_t *deps, size_t n,
                                   const struct cudaMemcpy3DParms *p);
cudaError_t cudaGraphAddMemcpyNode1D(cudaGraphNode_t *node, cudaGraph_t graph, const cudaGraphNode_t *deps, size_t n,
                                     void *dst, const void *src, size_t count, int kind);
cudaError_t cudaGraphAddEventRecordNode(cudaGraphNode_t *node, cudaGraph_t graph, const cudaGraphNode_t *deps,
                                        size_t n, cudaEvent_t event);
cudaError_t cudaGraphAddEventWaitNode(cudaGraphNode_t *node, cudaGraph_t graph, const cudaGraphNode_t *deps,
                                      size_t n, cudaEvent_t event);
cudaError_t cudaGraphAddMemAllocNode(cudaGraphNode_t *node, cudaGraph_t graph, const cudaGraphNode_t *deps,
                                     size_t n, void *params);
cudaError_t cudaGraphAddMemFreeNode(cudaGraphNode_t *node, cudaGraph_t graph, const cudaGraphNode_t *deps, size_t n,
                                    void *dptr);
cudaError_t cudaGraphGetNodes(cudaGraph_t graph, cudaGraphNode_t *nodes, size_t *count);
cudaError_t cudaGraphNodeGetType(cudaGraphNode_t node, int *type);
cudaError_t cudaGraphExecKernelNodeSetParams(cudaGraphExec_t exec, cudaGraphNode_t node,
                                             const struct cudaKernelNodeParams *p);
cudaError_t cudaGraphExecMemsetNodeSetParams(cudaGraphExec_t exec, cudaGraphNode_t node,
                                             const struct cudaMemsetParams *p);
cudaError_t cudaGraphExecMemcpyNodeSetParams(cudaGraphExec_t exec, cudaGraphNode_t node,
                                             const struct cudaMemcpy3DParms *p);
cudaError_t cudaGraphExecMemcpyNodeSetParams1D(cudaGraphExec_t exec, cudaGraphNode_t node, void *dst,
                                               const void *src, size_t count, int kind);

/* cudaMemcpyKind -> CUmemorytype of each side (cudaMemcpyDefault: unified, told apart by the address) */
static int side_type(int kind, int source)
{
    switch (kind) {
    case 0: return 1;                     /* host to host */
    case 1: return source ? 1 : 2;        /* host to device */
    case 2: return source ? 2 : 1;        /* device to host */
    case 3: return 2;                     /* device to device */
    case 4: return 4;                     /* default: unified addressing */
    default: return -1;
    }
}

/* The runtime's 3D copy as the driver's: bytes for x on linear memory; arrays are refused there. */
static cudaError_t to_driver_copy(const struct cudaMemcpy3DParms *p, vgpu_memcpy3d *c)
{
    if (!p || side_type(p->kind, 1) < 0 || (p->srcArray && p->srcPtr.ptr) || (p->dstArray && p->dstPtr.ptr))
        return cudaErrorInvalidValue;
    int st = side_type(p->kind, 1), dt = side_type(p->kind, 0);
    *c = (vgpu_memcpy3d){
        .srcXInBytes = p->srcPos.x, .srcY = p->srcPos.y, .srcZ = p->srcPos.z,
        .srcMemoryType = p->srcArray ? 3 : st, .srcHost = st == 1 ? p->srcPtr.ptr : NULL,
        .srcDevice = st == 1 ? 0 : (CUdeviceptr)(uintptr_t)p->srcPtr.ptr, .srcArray = p->srcArray,
        .srcPitch = p->srcPtr.pitch, .srcHeight = p->srcPtr.ysize,
        .dstXInBytes = p->dstPos.x, .dstY = p->dstPos.y, .dstZ = p->dstPos.z,
        .dstMemoryType = p->dstArray ? 3 : dt, .dstHost = dt == 1 ? p->dstPtr.ptr : NULL,
        .dstDevice = dt == 1 ? 0 : (CUdeviceptr)(uintptr_t)p->dstPtr.ptr, .dstArray = p->dstArray,
        .dstPitch = p->dstPtr.pitch, .dstHeight = p->dstPtr.ysize,
        .WidthInBytes = p->extent.width, .Height = p->extent.height, .Depth = p->extent.depth};
    return cudaSuccess;
}

static struct cudaMemcpy3DParms linear(void *dst, const void *src, size_t count, int kind)
{
    return (struct cudaMemcpy3DParms){.srcPtr = {(void *)(uintptr_t)src, count, count, 1},
                                      .dstPtr = {dst, count, count, 1}, .extent = {count, 1, 1}, .kind = kind};
}

cudaError_t cudaGraphAddMemcpyNode(cudaGraphNode_t *node, cudaGraph_t graph, const cudaGraphNode_t *deps, size_t n,
                                   const struct cudaMemcpy3DParms *p)
{
    vgpu_memcpy3d c;
    cudaError_t err = to_driver_copy(p, &c);
    if (err)
        return rt_ret(err);
    RT_CALL(cuGraphAddMemcpyNode(node, graph, deps, n, &c, NULL));
}

cudaError_t cudaGraphAddMemcpyNode1D(cudaGraphNode_t *node, cudaGraph_t graph, const cudaGraphNode_t *deps, size_t n,
                                     void *dst, const void *src, size_t count, int kind)
{
    struct cudaMemcpy3DParms p = linear(dst, src, count, kind);
    return cudaGraphAddMemcpyNode(node, graph, deps, n, &p);
}

cudaError_t cudaGraphAddEventRecordNode(cudaGraphNode_t *node, cudaGraph_t graph, const cudaGraphNode_t *deps,
                                        size_t n, cudaEvent_t event)
{
    RT_CALL(cuGraphAddEventRecordNode(node, graph, deps, n, event));
}

cudaError_t cudaGraphAddEventWaitNode(cudaGraphNode_t *node, cudaGraph_t graph, const cudaGraphNode_t *deps,
                                      size_t n, cudaEvent_t event)
{
    RT_CALL(cuGraphAddEventWaitNode(node, graph, deps, n, event));
}

/* cudaMemAllocNodeParams and CUDA_MEM_ALLOC_NODE_PARAMS have one layout (a pointer for a CUdeviceptr). */
cudaError_t cudaGraphAddMemAllocNode(cudaGraphNode_t *node, cudaGraph_t graph, const cudaGraphNode_t *deps,
                                     size_t n, void *params)
{
    RT_CALL(cuGraphAddMemAllocNode(node, graph, deps, n, params));
}

cudaError_t cudaGraphAddMemFreeNode(cudaGraphNode_t *node, cudaGraph_t graph, const cudaGraphNode_t *deps, size_t n,
                                    void *dptr)
{
    RT_CALL(cuGraphAddMemFreeNode(node, graph, deps, n, (CUdeviceptr)(uintptr_t)dptr));
}

cudaError_t cudaGraphGetNodes(cudaGraph_t graph, cudaGraphNode_t *nodes, size_t *count)
{
    RT_CALL(cuGraphGetNodes(graph, nodes, count));
}

/* cudaGraphNodeType and CUgraphNodeType have the same values. */
cudaError_t cudaGraphNodeGetType(cudaGraphNode_t node, int *type) { RT_CALL(cuGraphNodeGetType(node, type)); }

cudaError_t cudaGraphExecKernelNodeSetParams(cudaGraphExec_t exec, cudaGraphNode_t node,
                                             const struct cudaKernelNodeParams *p)
{
    vgpu_kernel_node_params d;
    cudaError_t err = to_driver_kernel(p, &d);
    if (err)
        return rt_ret(err);
    RT_CALL(cuGraphExecKernelNodeSetParams_v2(exec, node, &d));
}

cudaError_t cudaGraphExecMemsetNodeSetParams(cudaGraphExec_t exec, cudaGraphNode_t node,
                                             const struct cudaMemsetParams *p)
{
    RT_CALL(cuGraphExecMemsetNodeSetParams(exec, node, p, NULL));
}

cudaError_t cudaGraphExecMemcpyNodeSetParams(cudaGraphExec_t exec, cudaGraphNode_t node,
                                             const struct cudaMemcpy3DParms *p)
{
    vgpu_memcpy3d c;
    cudaError_t err = to_driver_copy(p, &c);
    if (err)
        return rt_ret(err);
    RT_CALL(cuGraphExecMemcpyNodeSetParams(exec, node, &c, NULL));
}

cudaError_t cudaGraphExecMemcpyNodeSetParams1D(cudaGraphExec_t exec, cudaGraphNode_t node, void *dst,
                                               const void *src, size_t count, int kind)
{
    struct cudaMemcpy3DParms p = linear(dst, src, count, kind);
    return cudaGraphExecMemcpyNodeSetParams(exec, node, &p);
}

CUresult cuDeviceGetGraphMemAttribute(CUdevice device, int attr, void *value);
CUresult cuDeviceSetGraphMemAttribute(CUdevice device, int attr, void *value);
CUresult cuDeviceGraphMemTrim(CUdevice device);
cudaError_t cudaDeviceGetGraphMemAttribute(int device, int attr, void *value);
cudaError_t cudaDeviceSetGraphMemAttribute(int device, int attr, void *value);
cudaError_t cudaDeviceGraphMemTrim(int device);

/* cudaGraphMemAttributeType and CUgraphMem_attribute have the same values. */
cudaError_t cudaDeviceGetGraphMemAttribute(int device, int attr, void *value)
{
    RT_CALL(cuDeviceGetGraphMemAttribute(device, attr, value));
}

cudaError_t cudaDeviceSetGraphMemAttribute(int device, int attr, void *value)
{
    RT_CALL(cuDeviceSetGraphMemAttribute(device, attr, value));
}

cudaError_t cudaDeviceGraphMemTrim(int device) { RT_CALL(cuDeviceGraphMemTrim(device)); }

CUresult cuGraphUpload(CUgraphExec exec, CUstream s);
cudaError_t cudaGraphUpload(cudaGraphExec_t exec, cudaStream_t s);
cudaError_t cudaGraphUpload_ptsz(cudaGraphExec_t exec, cudaStream_t s);
cudaError_t cudaGraphUpload(cudaGraphExec_t exec, cudaStream_t s) { RT_CALL(cuGraphUpload(exec, s)); }
cudaError_t cudaGraphUpload_ptsz(cudaGraphExec_t exec, cudaStream_t s) { RT_CALL(cuGraphUpload(exec, s)); }

/* cudaGraphInstantiateParams and CUDA_GRAPH_INSTANTIATE_PARAMS have one layout. */
struct cudaGraphInstantiateParams;
CUresult cuGraphInstantiateWithParams(CUgraphExec *exec, CUgraph graph, struct cudaGraphInstantiateParams *p);
cudaError_t cudaGraphInstantiateWithParams(cudaGraphExec_t *exec, cudaGraph_t graph,
                                           struct cudaGraphInstantiateParams *p);
cudaError_t cudaGraphInstantiateWithParams_ptsz(cudaGraphExec_t *exec, cudaGraph_t graph,
                                                struct cudaGraphInstantiateParams *p);
cudaError_t cudaGraphInstantiateWithParams(cudaGraphExec_t *exec, cudaGraph_t graph,
                                           struct cudaGraphInstantiateParams *p)
{
    RT_CALL(cuGraphInstantiateWithParams(exec, graph, p));
}
cudaError_t cudaGraphInstantiateWithParams_ptsz(cudaGraphExec_t *exec, cudaGraph_t graph,
                                                struct cudaGraphInstantiateParams *p)
{
    RT_CALL(cuGraphInstantiateWithParams(exec, graph, p));
}

CUresult cuGraphConditionalHandleCreate(unsigned long long *handle, CUgraph graph, CUcontext ctx, unsigned int value,
                                        unsigned int flags);
cudaError_t cudaGraphConditionalHandleCreate(unsigned long long *handle, cudaGraph_t graph, unsigned int value,
                                             unsigned int flags);
cudaError_t cudaGraphConditionalHandleCreate(unsigned long long *handle, cudaGraph_t graph, unsigned int value,
                                             unsigned int flags)
{
    RT_CALL(cuGraphConditionalHandleCreate(handle, graph, NULL, value, flags));
}
