/*
 * Driver API: streams, events, stream capture and graphs.
 *
 * Each handle is a record holding the host's id (shim.h); destroying it marks the record dead
 * before it is freed, so a stale handle is refused rather than sent. Event records and stream
 * waits are posted; the synchronizing calls (cuStreamSynchronize, cuEventSynchronize) wait and
 * report errors latched on the host by earlier posted work.
 */
#include <stdlib.h>
#include <string.h>

#include "cu_api.h"
#include "cu_graph_mem.h"
#include "shim.h"
#include "vgpu_protocol.h"

CUresult vgpu_shim_stream_id(CUstream stream, uint32_t *id)
{
    if (stream == NULL || stream == CU_STREAM_LEGACY) {
        *id = 0;
        return CUDA_SUCCESS;
    }
    if (stream == CU_STREAM_PER_THREAD) {
        /* The host has one legacy stream per VM: the per-thread stream is served as that one. */
        static int once;
        if (!__atomic_exchange_n(&once, 1, __ATOMIC_RELAXED))
            vgpu_shim_log("the per-thread default stream is served as the legacy default stream");
        *id = 0;
        return CUDA_SUCCESS;
    }
    if (stream->magic != VGPU_MAGIC_STREAM)
        return CUDA_ERROR_INVALID_HANDLE;
    *id = stream->id;
    return CUDA_SUCCESS;
}

/* -- streams ----------------------------------------------------------------------------------- */

CUresult cuStreamCreateWithPriority(CUstream *out, unsigned int flags, int priority)
{
    if (!out)
        return CUDA_ERROR_INVALID_VALUE;
    struct vgpu_args_stream_create a = {.flags = flags};
    struct vgpu_result_stream_create r;
    CUresult rc = vgpu_cu_call(VGPU_CALL_STREAM_CREATE, &a, sizeof a, &r, sizeof r);
    if (rc)
        return rc;
    CUstream s = malloc(sizeof *s);
    if (!s) {
        struct vgpu_args_stream_destroy d = {.stream = r.stream};
        vgpu_cu_call(VGPU_CALL_STREAM_DESTROY, &d, sizeof d, NULL, 0);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    /* The device's priority range is [0, 0] (cuCtxGetStreamPriorityRange): CUDA clamps into it. */
    (void)priority;
    *s = (struct CUstream_st){VGPU_MAGIC_STREAM, r.stream, flags, 0};
    *out = s;
    return CUDA_SUCCESS;
}

CUresult cuStreamCreate(CUstream *out, unsigned int flags) { return cuStreamCreateWithPriority(out, flags, 0); }

CUresult cuStreamDestroy_v2(CUstream s)
{
    if (!VGPU_CHECK_HANDLE(s, VGPU_MAGIC_STREAM))
        return CUDA_ERROR_INVALID_HANDLE;
    return vgpu_cu_release(VGPU_CALL_STREAM_DESTROY, s->id, &s->magic, s);
}

CUresult cuStreamSynchronize(CUstream s)
{
    struct vgpu_args_stream_synchronize a;
    memset(&a, 0, sizeof a);
    CUresult rc = vgpu_shim_stream_id(s, &a.stream);
    return rc ? rc : vgpu_cu_call(VGPU_CALL_STREAM_SYNCHRONIZE, &a, sizeof a, NULL, 0);
}

CUresult cuStreamQuery(CUstream s)
{
    struct vgpu_args_stream_query a;
    memset(&a, 0, sizeof a);
    CUresult rc = vgpu_shim_stream_id(s, &a.stream);
    return rc ? rc : vgpu_cu_call(VGPU_CALL_STREAM_QUERY, &a, sizeof a, NULL, 0);
}

CUresult cuStreamWaitEvent(CUstream s, CUevent e, unsigned int flags)
{
    if (!VGPU_CHECK_HANDLE(e, VGPU_MAGIC_EVENT))
        return CUDA_ERROR_INVALID_HANDLE;
    struct vgpu_args_stream_wait_event a = {.event = e->id, .flags = flags};
    CUresult rc = vgpu_shim_stream_id(s, &a.stream);
    return rc ? rc : vgpu_cu_post(VGPU_CALL_STREAM_WAIT_EVENT, &a, sizeof a, NULL, 0);
}

/* Flags and priority are what the stream was created with: answered from its record. */
CUresult cuStreamGetFlags(CUstream s, unsigned int *flags)
{
    if (!flags)
        return CUDA_ERROR_INVALID_VALUE;
    if (s == NULL || s == CU_STREAM_LEGACY || s == CU_STREAM_PER_THREAD) {
        *flags = 0;
        return CUDA_SUCCESS;
    }
    if (s->magic != VGPU_MAGIC_STREAM)
        return CUDA_ERROR_INVALID_HANDLE;
    *flags = s->flags;
    return CUDA_SUCCESS;
}

CUresult cuStreamGetPriority(CUstream s, int *priority)
{
    if (!priority)
        return CUDA_ERROR_INVALID_VALUE;
    if (s && s != CU_STREAM_LEGACY && s != CU_STREAM_PER_THREAD && s->magic != VGPU_MAGIC_STREAM)
        return CUDA_ERROR_INVALID_HANDLE;
    *priority = 0;
    return CUDA_SUCCESS;
}

CUresult cuCtxGetStreamPriorityRange(int *least, int *greatest)
{
    if (least)
        *least = 0;
    if (greatest)
        *greatest = 0;
    return CUDA_SUCCESS;
}

/* -- events ------------------------------------------------------------------------------------ */

CUresult cuEventCreate(CUevent *out, unsigned int flags)
{
    if (!out)
        return CUDA_ERROR_INVALID_VALUE;
    struct vgpu_args_event_create a = {.flags = flags};
    struct vgpu_result_event_create r;
    CUresult rc = vgpu_cu_call(VGPU_CALL_EVENT_CREATE, &a, sizeof a, &r, sizeof r);
    if (rc)
        return rc;
    CUevent e = malloc(sizeof *e);
    if (!e) {
        struct vgpu_args_event_destroy d = {.event = r.event};
        vgpu_cu_call(VGPU_CALL_EVENT_DESTROY, &d, sizeof d, NULL, 0);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    *e = (struct CUevent_st){VGPU_MAGIC_EVENT, r.event, flags};
    *out = e;
    return CUDA_SUCCESS;
}

CUresult cuEventDestroy_v2(CUevent e)
{
    if (!VGPU_CHECK_HANDLE(e, VGPU_MAGIC_EVENT))
        return CUDA_ERROR_INVALID_HANDLE;
    return vgpu_cu_release(VGPU_CALL_EVENT_DESTROY, e->id, &e->magic, e);
}

CUresult cuEventRecord(CUevent e, CUstream s)
{
    if (!VGPU_CHECK_HANDLE(e, VGPU_MAGIC_EVENT))
        return CUDA_ERROR_INVALID_HANDLE;
    struct vgpu_args_event_record a = {.event = e->id};
    CUresult rc = vgpu_shim_stream_id(s, &a.stream);
    return rc ? rc : vgpu_cu_post(VGPU_CALL_EVENT_RECORD, &a, sizeof a, NULL, 0);
}

/* CU_EVENT_RECORD_EXTERNAL (1): under capture an event record node (recorded when the graph runs),
 * otherwise cuEventRecord; the host's event_record_with_flags decides which. */
CUresult cuEventRecordWithFlags(CUevent e, CUstream s, unsigned int flags)
{
    if (flags == 0)
        return cuEventRecord(e, s);
    if (flags != 1)
        return CUDA_ERROR_INVALID_VALUE;
    if (!VGPU_CHECK_HANDLE(e, VGPU_MAGIC_EVENT))
        return CUDA_ERROR_INVALID_HANDLE;
    struct vgpu_args_event_record_with_flags a = {.event = e->id, .flags = flags};
    CUresult rc = vgpu_shim_stream_id(s, &a.stream);
    return rc ? rc : vgpu_cu_post(VGPU_CALL_EVENT_RECORD_WITH_FLAGS, &a, sizeof a, NULL, 0);
}

static CUresult event_call(uint16_t call_id, CUevent e)
{
    if (!VGPU_CHECK_HANDLE(e, VGPU_MAGIC_EVENT))
        return CUDA_ERROR_INVALID_HANDLE;
    struct vgpu_args_event_synchronize a = {.event = e->id};
    return vgpu_cu_call(call_id, &a, sizeof a, NULL, 0);
}

CUresult cuEventSynchronize(CUevent e) { return event_call(VGPU_CALL_EVENT_SYNCHRONIZE, e); }
CUresult cuEventQuery(CUevent e) { return event_call(VGPU_CALL_EVENT_QUERY, e); }

CUresult cuEventElapsedTime_v2(float *ms, CUevent start, CUevent end)
{
    if (!ms)
        return CUDA_ERROR_INVALID_VALUE;
    if (!VGPU_CHECK_HANDLE(start, VGPU_MAGIC_EVENT) || !VGPU_CHECK_HANDLE(end, VGPU_MAGIC_EVENT))
        return CUDA_ERROR_INVALID_HANDLE;
    struct vgpu_args_event_elapsed_time a = {.start = start->id, .end = end->id};
    struct vgpu_result_event_elapsed_time r;
    CUresult rc = vgpu_cu_call(VGPU_CALL_EVENT_ELAPSED_TIME, &a, sizeof a, &r, sizeof r);
    if (rc == CUDA_SUCCESS)
        *ms = r.milliseconds;
    return rc;
}

CUresult cuEventElapsedTime(float *ms, CUevent start, CUevent end) { return cuEventElapsedTime_v2(ms, start, end); }

/* -- stream capture ---------------------------------------------------------------------------- */

/* captures this process began, for the guest nodes (cu_guest_nodes.c) */
VGPU_HIDDEN void vgpu_capture_begun(void);
VGPU_HIDDEN void vgpu_capture_ended(void);

CUresult cuStreamBeginCapture_v2(CUstream s, int mode)
{
    struct vgpu_args_stream_begin_capture a = {.mode = (uint32_t)mode};
    CUresult rc = vgpu_shim_stream_id(s, &a.stream);
    if (rc == CUDA_SUCCESS && (rc = vgpu_cu_call(VGPU_CALL_STREAM_BEGIN_CAPTURE, &a, sizeof a, NULL, 0)) == CUDA_SUCCESS)
        vgpu_capture_begun();
    return rc;
}

static CUresult graph_record(uint32_t id, CUgraph *out)
{
    CUgraph g = malloc(sizeof *g);
    if (!g) {
        struct vgpu_args_graph_destroy d = {.graph = id};
        vgpu_cu_call(VGPU_CALL_GRAPH_DESTROY, &d, sizeof d, NULL, 0);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    *g = (struct CUgraph_st){VGPU_MAGIC_GRAPH, id};
    *out = g;
    return CUDA_SUCCESS;
}

VGPU_HIDDEN CUresult vgpu_graph_clone_captured(CUgraph *clone, CUgraph original);

/* cuGraphClone of a captured graph (cu_graph_build.c clones built ones): a copy made on the host. */
CUresult vgpu_graph_clone_captured(CUgraph *clone, CUgraph original)
{
    struct vgpu_args_graph_clone a = {.graph = original->id};
    struct vgpu_result_graph_clone r;
    CUresult rc = vgpu_cu_call(VGPU_CALL_GRAPH_CLONE, &a, sizeof a, &r, sizeof r);
    if (rc || (rc = graph_record(r.graph, clone)))
        return rc;
    if ((rc = vgpu_gmem_copy(VGPU_GMEM_GRAPH, original, VGPU_GMEM_GRAPH, *clone, 0)))
        cuGraphDestroy(*clone);
    return rc;
}

CUresult cuStreamEndCapture(CUstream s, CUgraph *graph)
{
    if (!graph)
        return CUDA_ERROR_INVALID_VALUE;
    struct vgpu_args_stream_end_capture a;
    memset(&a, 0, sizeof a);
    CUresult rc = vgpu_shim_stream_id(s, &a.stream);
    if (rc)
        return rc;
    int status = 0, ended; /* the capture's memory nodes' allocations pass to its graph (cu_graph_mem.c) */
    unsigned long long capture = 0;
    int memory = vgpu_gmem_capture_pending() && !cuStreamGetCaptureInfo(s, &status, &capture) && status;
    struct vgpu_result_stream_end_capture r;
    rc = vgpu_cu_call(VGPU_CALL_STREAM_END_CAPTURE, &a, sizeof a, &r, sizeof r);
    ended = rc == CUDA_SUCCESS || rc == (CUresult)VGPU_CUDA_ERROR_STREAM_CAPTURE_INVALIDATED ||
            rc == (CUresult)VGPU_CUDA_ERROR_STREAM_CAPTURE_UNJOINED;
    if (ended)
        vgpu_capture_ended(); /* these end the capture */
    if (rc == CUDA_SUCCESS)
        rc = graph_record(r.graph, graph);
    if (memory && ended)
        vgpu_gmem_capture_ended(capture, rc == CUDA_SUCCESS, rc == CUDA_SUCCESS ? *graph : NULL);
    return rc;
}

/* The status and id of a stream's capture. The graph and dependency outputs of the v2/v3 entry
 * points describe a capture in progress, which the host does not expose: asking for them is
 * CUDA_ERROR_NOT_SUPPORTED. */
static CUresult capture_info(CUstream s, int *status, unsigned long long *id, void *graph, void *deps,
                             void *edges, void *count)
{
    if (graph || deps || edges || count)
        VGPU_UNSUPPORTED_USE(CUDA_ERROR_NOT_SUPPORTED,
                             "cuStreamGetCaptureInfo: the graph and dependencies of a capture in progress are not served");
    if (!status)
        return CUDA_ERROR_INVALID_VALUE;
    struct vgpu_args_stream_get_capture_info a;
    memset(&a, 0, sizeof a);
    CUresult rc = vgpu_shim_stream_id(s, &a.stream);
    if (rc)
        return rc;
    struct vgpu_result_stream_get_capture_info r;
    if ((rc = vgpu_cu_call(VGPU_CALL_STREAM_GET_CAPTURE_INFO, &a, sizeof a, &r, sizeof r)))
        return rc;
    *status = (int)r.status;
    if (id)
        *id = r.capture_id;
    return CUDA_SUCCESS;
}

CUresult cuStreamGetCaptureInfo(CUstream s, int *status, unsigned long long *id)
{
    return capture_info(s, status, id, NULL, NULL, NULL, NULL);
}
CUresult cuStreamGetCaptureInfo_v2(CUstream s, int *status, unsigned long long *id, CUgraph *graph,
                                   const CUgraphNode **deps, size_t *count)
{
    return capture_info(s, status, id, graph, deps, NULL, count);
}
CUresult cuStreamGetCaptureInfo_v3(CUstream s, int *status, unsigned long long *id, CUgraph *graph,
                                   const CUgraphNode **deps, const void **edges, size_t *count)
{
    return capture_info(s, status, id, graph, deps, edges, count);
}

CUresult cuStreamIsCapturing(CUstream s, int *status) { return capture_info(s, status, NULL, NULL, NULL, NULL, NULL); }

/* -- graphs ------------------------------------------------------------------------------------ */

/* graphs built node by node live in the guest until instantiated (cu_graph_build.c) */
VGPU_HIDDEN int vgpu_xgraph_is(CUgraph graph);
VGPU_HIDDEN CUresult vgpu_xgraph_instantiate(CUgraphExec *exec, CUgraph graph, unsigned long long flags);
VGPU_HIDDEN CUresult vgpu_xgraph_destroy(CUgraph graph);
struct vgpu_exec_update_info;
VGPU_HIDDEN void vgpu_xgraph_exec_forget(CUgraphExec exec);
VGPU_HIDDEN CUresult vgpu_xgraph_exec_update(CUgraphExec exec, CUgraph graph, struct vgpu_exec_update_info *info);
/* executable graphs with guest nodes launch in phases (cu_guest_nodes.c) */
VGPU_HIDDEN CUresult vgpu_guest_exec_register(CUgraphExec exec);
VGPU_HIDDEN void vgpu_guest_exec_forget(uint32_t id);
VGPU_HIDDEN int vgpu_guest_exec_launch(CUgraphExec exec, CUstream s, CUresult *rc);

CUresult cuGraphInstantiateWithFlags(CUgraphExec *exec, CUgraph graph, unsigned long long flags)
{
    if (!exec)
        return CUDA_ERROR_INVALID_VALUE;
    if (vgpu_xgraph_is(graph))
        return vgpu_xgraph_instantiate(exec, graph, flags);
    if (!VGPU_CHECK_HANDLE(graph, VGPU_MAGIC_GRAPH))
        return CUDA_ERROR_INVALID_HANDLE;
    struct vgpu_args_graph_instantiate a = {.graph = graph->id, .flags = flags};
    struct vgpu_result_graph_instantiate r;
    CUresult rc = vgpu_cu_call(VGPU_CALL_GRAPH_INSTANTIATE, &a, sizeof a, &r, sizeof r);
    if (rc)
        return rc;
    CUgraphExec x = malloc(sizeof *x);
    if (!x) {
        struct vgpu_args_graph_exec_destroy d = {.graph_exec = r.graph_exec};
        vgpu_cu_call(VGPU_CALL_GRAPH_EXEC_DESTROY, &d, sizeof d, NULL, 0);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    *x = (struct CUgraphExec_st){VGPU_MAGIC_EXEC, r.graph_exec};
    if ((rc = vgpu_guest_exec_register(x)) || (rc = vgpu_gmem_copy(VGPU_GMEM_GRAPH, graph, VGPU_GMEM_EXEC, x, flags))) {
        cuGraphExecDestroy(x);
        return rc;
    }
    *exec = x;
    return CUDA_SUCCESS;
}

/* The CUDA 11 form: there is no failing node or log to report beyond the status. */
CUresult cuGraphInstantiate_v2(CUgraphExec *exec, CUgraph graph, CUgraphNode *error_node, char *log,
                               size_t log_size)
{
    if (error_node)
        *error_node = NULL;
    if (log && log_size)
        log[0] = '\0';
    return cuGraphInstantiateWithFlags(exec, graph, 0);
}

CUresult cuGraphLaunch(CUgraphExec exec, CUstream s)
{
    if (!VGPU_CHECK_HANDLE(exec, VGPU_MAGIC_EXEC))
        return CUDA_ERROR_INVALID_HANDLE;
    CUresult rc = vgpu_gmem_launch(exec, s); /* CUDA's rules for graph allocations (cu_graph_mem.c) */
    if (rc)
        return rc;
    if (vgpu_guest_exec_launch(exec, s, &rc))
        return rc; /* it has guest nodes: launched phase by phase */
    struct vgpu_args_graph_launch a = {.graph_exec = exec->id};
    rc = vgpu_shim_stream_id(s, &a.stream);
    return rc ? rc : vgpu_cu_post(VGPU_CALL_GRAPH_LAUNCH, &a, sizeof a, NULL, 0);
}

/* the per-thread default stream is served as the legacy one */
CUresult cuGraphLaunch_ptsz(CUgraphExec exec, CUstream s);
CUresult cuGraphLaunch_ptsz(CUgraphExec exec, CUstream s) { return cuGraphLaunch(exec, s); }

CUresult cuGraphExecDestroy(CUgraphExec exec)
{
    if (!VGPU_CHECK_HANDLE(exec, VGPU_MAGIC_EXEC))
        return CUDA_ERROR_INVALID_HANDLE;
    vgpu_xgraph_exec_forget(exec); /* the copy of its graph an exec of a built graph keeps */
    vgpu_guest_exec_forget(exec->id);
    vgpu_gmem_forget(VGPU_GMEM_EXEC, exec);
    return vgpu_cu_release(VGPU_CALL_GRAPH_EXEC_DESTROY, exec->id, &exec->magic, exec);
}

CUresult cuGraphDestroy(CUgraph graph)
{
    if (vgpu_xgraph_is(graph))
        return vgpu_xgraph_destroy(graph);
    if (!VGPU_CHECK_HANDLE(graph, VGPU_MAGIC_GRAPH))
        return CUDA_ERROR_INVALID_HANDLE;
    vgpu_gmem_forget(VGPU_GMEM_GRAPH, graph);
    return vgpu_cu_release(VGPU_CALL_GRAPH_DESTROY, graph->id, &graph->magic, graph);
}

/* A captured graph updates an exec of a captured graph on the host (graph_exec_update): CUDA's rules
 * of a same topology, the reason in the result info when it fails (its error nodes are NULL: a
 * captured graph's nodes are not handles here) and the exec left as it was. An exec of a graph built
 * here keeps its own copy of that graph, so a captured graph does not update it (NOT_SUPPORTED). */
struct vgpu_exec_update_info { int result; CUgraphNode error_node, error_from_node; };
CUresult cuGraphExecUpdate_v2(CUgraphExec exec, CUgraph graph, struct vgpu_exec_update_info *info);
VGPU_HIDDEN int vgpu_xgraph_exec_is(CUgraphExec exec);

CUresult cuGraphExecUpdate_v2(CUgraphExec exec, CUgraph graph, struct vgpu_exec_update_info *info)
{
    if (vgpu_xgraph_is(graph)) /* a graph built node by node: served (cu_graph_build.c) */
        return vgpu_xgraph_exec_update(exec, graph, info);
    if (!VGPU_CHECK_HANDLE(exec, VGPU_MAGIC_EXEC) || !VGPU_CHECK_HANDLE(graph, VGPU_MAGIC_GRAPH) || !info)
        return CUDA_ERROR_INVALID_VALUE;
    *info = (struct vgpu_exec_update_info){6, NULL, NULL}; /* CU_GRAPH_EXEC_UPDATE_ERROR_NOT_SUPPORTED */
    if (vgpu_xgraph_exec_is(exec))
        return CUDA_ERROR_GRAPH_EXEC_UPDATE_FAILURE;
    if (vgpu_gmem_holds(VGPU_GMEM_EXEC, exec) || vgpu_gmem_holds(VGPU_GMEM_GRAPH, graph))
        return CUDA_ERROR_GRAPH_EXEC_UPDATE_FAILURE; /* CUDA does not update memory nodes (cu_graph_mem.c) */
    struct vgpu_args_graph_exec_update a = {.graph_exec = exec->id, .graph = graph->id};
    struct vgpu_result_graph_exec_update r;
    CUresult rc = vgpu_cu_call(VGPU_CALL_GRAPH_EXEC_UPDATE, &a, sizeof a, &r, sizeof r);
    if (rc)
        return rc;
    info->result = (int)r.result;
    if (r.result)
        return CUDA_ERROR_GRAPH_EXEC_UPDATE_FAILURE;
    vgpu_guest_exec_forget(exec->id); /* the guest nodes' tags are the new graph's */
    return vgpu_guest_exec_register(exec);
}
