/*
 * Runtime API: streams, events, stream capture and graphs. cudaStream_t, cudaEvent_t, cudaGraph_t
 * and cudaGraphExec_t are the driver's handles, so each call is its driver call.
 */
#include "cu_api.h"
#include "rt_internal.h"

cudaError_t cudaStreamCreate(cudaStream_t *s) { RT_CALL(cuStreamCreate(s, 0)); }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned int flags) { RT_CALL(cuStreamCreate(s, flags)); }
cudaError_t cudaStreamCreateWithPriority(cudaStream_t *s, unsigned int flags, int priority)
{
    RT_CALL(cuStreamCreateWithPriority(s, flags, priority));
}
cudaError_t cudaStreamDestroy(cudaStream_t s) { RT_CALL(cuStreamDestroy_v2(s)); }
cudaError_t cudaStreamSynchronize(cudaStream_t s) { RT_CALL(cuStreamSynchronize(s)); }
cudaError_t cudaStreamQuery(cudaStream_t s) { RT_CALL(cuStreamQuery(s)); }
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned int flags)
{
    RT_CALL(cuStreamWaitEvent(s, e, flags));
}
cudaError_t cudaStreamGetFlags(cudaStream_t s, unsigned int *flags) { RT_CALL(cuStreamGetFlags(s, flags)); }
cudaError_t cudaStreamGetPriority(cudaStream_t s, int *priority) { RT_CALL(cuStreamGetPriority(s, priority)); }

cudaError_t cudaEventCreate(cudaEvent_t *e) { RT_CALL(cuEventCreate(e, 0)); }
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned int flags) { RT_CALL(cuEventCreate(e, flags)); }
cudaError_t cudaEventDestroy(cudaEvent_t e) { RT_CALL(cuEventDestroy_v2(e)); }
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) { RT_CALL(cuEventRecord(e, s)); }
cudaError_t cudaEventRecordWithFlags(cudaEvent_t e, cudaStream_t s, unsigned int flags)
{
    RT_CALL(cuEventRecordWithFlags(e, s, flags));
}
cudaError_t cudaEventSynchronize(cudaEvent_t e) { RT_CALL(cuEventSynchronize(e)); }
cudaError_t cudaEventQuery(cudaEvent_t e) { RT_CALL(cuEventQuery(e)); }
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end)
{
    RT_CALL(cuEventElapsedTime_v2(ms, start, end));
}

cudaError_t cudaStreamBeginCapture(cudaStream_t s, enum cudaStreamCaptureMode mode)
{
    RT_CALL(cuStreamBeginCapture_v2(s, (int)mode));
}
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *graph) { RT_CALL(cuStreamEndCapture(s, graph)); }
cudaError_t cudaStreamIsCapturing(cudaStream_t s, enum cudaStreamCaptureStatus *status)
{
    RT_CALL(cuStreamIsCapturing(s, (int *)status));
}
cudaError_t cudaStreamGetCaptureInfo(cudaStream_t s, enum cudaStreamCaptureStatus *status, unsigned long long *id,
                                     cudaGraph_t *graph, const cudaGraphNode_t **deps, const void **edges,
                                     size_t *count)
{
    RT_CALL(cuStreamGetCaptureInfo_v3(s, (int *)status, id, graph, deps, edges, count));
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph, unsigned long long flags)
{
    RT_CALL(cuGraphInstantiateWithFlags(exec, graph, flags));
}
cudaError_t cudaGraphInstantiateWithFlags(cudaGraphExec_t *exec, cudaGraph_t graph, unsigned long long flags)
{
    RT_CALL(cuGraphInstantiateWithFlags(exec, graph, flags));
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t s) { RT_CALL(cuGraphLaunch(exec, s)); }
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) { RT_CALL(cuGraphExecDestroy(exec)); }
cudaError_t cudaGraphDestroy(cudaGraph_t graph) { RT_CALL(cuGraphDestroy(graph)); }

/* cuGraphExecUpdate's answer (cu_stream.c): the update fails, the caller instantiates again. The
 * result info has the driver's layout. */
struct vgpu_exec_update_info;
CUresult cuGraphExecUpdate_v2(CUgraphExec exec, CUgraph graph, struct vgpu_exec_update_info *info);
cudaError_t cudaGraphExecUpdate(cudaGraphExec_t exec, cudaGraph_t graph, struct vgpu_exec_update_info *info);
cudaError_t cudaGraphExecUpdate(cudaGraphExec_t exec, cudaGraph_t graph, struct vgpu_exec_update_info *info)
{
    RT_CALL(cuGraphExecUpdate_v2(exec, graph, info));
}

/* Host functions run in the guest (cu_guest_nodes.c). A stream callback gets the runtime's status:
 * the driver's callback is wrapped, which the synchronous driver call lets live on the stack. */
CUresult cuLaunchHostFunc(CUstream s, void (*fn)(void *), void *data);
CUresult cuStreamAddCallback(CUstream s, void (*cb)(CUstream, CUresult, void *), void *data, unsigned int flags);
typedef void (*rt_stream_callback)(cudaStream_t, cudaError_t, void *);
cudaError_t cudaLaunchHostFunc(cudaStream_t s, void (*fn)(void *), void *data);
cudaError_t cudaStreamAddCallback(cudaStream_t s, rt_stream_callback cb, void *data, unsigned int flags);

cudaError_t cudaLaunchHostFunc(cudaStream_t s, void (*fn)(void *), void *data) { RT_CALL(cuLaunchHostFunc(s, fn, data)); }

struct rt_callback { rt_stream_callback cb; void *data; };
static void rt_callback_trampoline(CUstream s, CUresult status, void *p)
{
    struct rt_callback *c = p;
    c->cb(s, rt_err(status), c->data);
}

cudaError_t cudaStreamAddCallback(cudaStream_t s, rt_stream_callback cb, void *data, unsigned int flags)
{
    if (!cb)
        return rt_ret(cudaErrorInvalidValue);
    struct rt_callback c = {cb, data};
    RT_CALL(cuStreamAddCallback(s, rt_callback_trampoline, &c, flags));
}

/* The per-thread default stream forms: that stream is served as the legacy one. */
cudaError_t cudaLaunchHostFunc_ptsz(cudaStream_t s, void (*fn)(void *), void *data);
cudaError_t cudaStreamAddCallback_ptsz(cudaStream_t s, rt_stream_callback cb, void *data, unsigned int flags);
cudaError_t cudaGraphLaunch_ptsz(cudaGraphExec_t exec, cudaStream_t s);
cudaError_t cudaLaunchHostFunc_ptsz(cudaStream_t s, void (*fn)(void *), void *data)
{
    return cudaLaunchHostFunc(s, fn, data);
}
cudaError_t cudaStreamAddCallback_ptsz(cudaStream_t s, rt_stream_callback cb, void *data, unsigned int flags)
{
    return cudaStreamAddCallback(s, cb, data, flags);
}
cudaError_t cudaGraphLaunch_ptsz(cudaGraphExec_t exec, cudaStream_t s) { return cudaGraphLaunch(exec, s); }
