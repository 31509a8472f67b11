// The explicit graph API's node kinds through the shim: a graph built node by node with a memory
// allocation node, memset, 1D and pitched 2D device-to-device copies, a kernel, event record and wait
// nodes and a free node; its nodes listed with their types; launched twice; an executable graph's
// kernel and memset parameters changed, and updated from a graph of the same shape (a different shape
// refused); a copy node between two host buffers and one with a host function left out refused.
#include <cstring>
#include <vector>

#include "check.h"
#include "../../kernels/test_kernels.cu"

static std::vector<float> fetch(const float* d, size_t n) {
    std::vector<float> v(n);
    cudaMemcpy(v.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost);
    return v;
}

int main() {
    const int n = 1024;
    const size_t bytes = n * sizeof(float);
    float *src, *dst, *pitched;
    const size_t pitch = 24 * sizeof(float);  // rows of 16 floats, 24 apart
    cudaMalloc(&src, bytes);
    cudaMalloc(&dst, bytes);
    cudaMalloc(&pitched, pitch * 8);
    std::vector<float> x(n);
    for (int i = 0; i < n; i++) x[i] = static_cast<float>(i % 97);
    cudaMemcpy(src, x.data(), bytes, cudaMemcpyHostToDevice);
    cudaMemset(pitched, 0, pitch * 8);
    cudaEvent_t ev;
    cudaEventCreate(&ev);
    cudaFuncAttributes attrs;
    cudaFuncGetAttributes(&attrs, scale_f32);  // the module (and its device variables) loaded before counting

    // alloc -> memset(tmp) -> copy src->tmp -> scale(tmp) -> copy tmp->dst -> 2D copy -> record -> wait -> free
    cudaGraph_t g;
    cudaError_t e = cudaGraphCreate(&g, 0);
    size_t free_before = 0, free_after = 0, total = 0;
    cudaMemGetInfo(&free_before, &total);
    cudaMemAllocNodeParams ap = {};
    ap.poolProps.allocType = cudaMemAllocationTypePinned;
    ap.poolProps.location.type = cudaMemLocationTypeDevice;
    ap.poolProps.location.id = 0;
    ap.bytesize = bytes;
    cudaGraphNode_t alloc, set, in, kern, out, copy2d, rec, wait, freed;
    cudaError_t ea = cudaGraphAddMemAllocNode(&alloc, g, nullptr, 0, &ap);
    float* tmp = static_cast<float*>(ap.dptr);
    cudaMemGetInfo(&free_after, &total);
    size_t held = 0;
    cudaError_t eh = cudaDeviceGetGraphMemAttribute(0, cudaGraphMemAttrUsedMemCurrent, &held);
    report("mem_alloc_node", !e && !ea && !eh && tmp && free_before - free_after >= bytes && held == bytes,
           "status=%d/%d/%d dptr=%p counted=%zu graph_mem=%zu", e, ea, eh, ap.dptr, free_before - free_after, held);

    cudaMemsetParams mp = {};
    mp.dst = tmp;
    mp.value = 0;
    mp.elementSize = 4;
    mp.width = n;
    mp.height = 1;
    cudaError_t e1 = cudaGraphAddMemsetNode(&set, g, &alloc, 1, &mp);
    cudaError_t e2 = cudaGraphAddMemcpyNode1D(&in, g, &set, 1, tmp, src, bytes, cudaMemcpyDeviceToDevice);
    float factor = 3.0f;
    int count = n;
    void* args[] = {&tmp, &factor, &count};
    cudaKernelNodeParams kp = {};
    kp.func = reinterpret_cast<void*>(scale_f32);
    kp.gridDim = dim3((n + 255) / 256);
    kp.blockDim = dim3(256);
    kp.kernelParams = args;
    cudaError_t e3 = cudaGraphAddKernelNode(&kern, g, &in, 1, &kp);
    cudaError_t e4 = cudaGraphAddMemcpyNode1D(&out, g, &kern, 1, dst, tmp, bytes, cudaMemcpyDefault);
    // rows 0..7 of the first 16 floats of tmp into the pitched array, one row of 16 per source stride 64
    cudaMemcpy3DParms p2 = {};
    p2.srcPtr = make_cudaPitchedPtr(tmp, 64 * sizeof(float), 16, 8);
    p2.dstPtr = make_cudaPitchedPtr(pitched, pitch, 16, 8);
    p2.extent = make_cudaExtent(16 * sizeof(float), 8, 1);
    p2.kind = cudaMemcpyDeviceToDevice;
    cudaError_t e5 = cudaGraphAddMemcpyNode(&copy2d, g, &out, 1, &p2);
    cudaError_t e6 = cudaGraphAddEventRecordNode(&rec, g, &copy2d, 1, ev);
    cudaError_t e7 = cudaGraphAddEventWaitNode(&wait, g, &rec, 1, ev);
    cudaError_t e8 = cudaGraphAddMemFreeNode(&freed, g, &wait, 1, tmp);
    report("add_nodes", !e1 && !e2 && !e3 && !e4 && !e5 && !e6 && !e7 && !e8, "status=%d/%d/%d/%d/%d/%d/%d/%d", e1,
           e2, e3, e4, e5, e6, e7, e8);

    size_t count_nodes = 0;
    e = cudaGraphGetNodes(g, nullptr, &count_nodes);
    std::vector<cudaGraphNode_t> nodes(count_nodes);
    e1 = cudaGraphGetNodes(g, nodes.data(), &count_nodes);
    cudaGraphNodeType types[9] = {};
    for (size_t i = 0; i < count_nodes && i < 9; i++) cudaGraphNodeGetType(nodes[i], &types[i]);
    const cudaGraphNodeType want[9] = {cudaGraphNodeTypeMemAlloc, cudaGraphNodeTypeMemset, cudaGraphNodeTypeMemcpy,
                                       cudaGraphNodeTypeKernel, cudaGraphNodeTypeMemcpy, cudaGraphNodeTypeMemcpy,
                                       cudaGraphNodeTypeEventRecord, cudaGraphNodeTypeWaitEvent,
                                       cudaGraphNodeTypeMemFree};
    report("nodes_and_types", !e && !e1 && count_nodes == 9 && !memcmp(types, want, sizeof want),
           "count=%zu types=%d,%d,%d,%d,%d,%d,%d,%d,%d", count_nodes, types[0], types[1], types[2], types[3], types[4],
           types[5], types[6], types[7], types[8]);

    cudaStream_t s;
    cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
    cudaGraphExec_t exec = nullptr;
    e = cudaGraphInstantiate(&exec, g, 0);
    e1 = cudaGraphLaunch(exec, s);
    e2 = cudaGraphLaunch(exec, s);
    e3 = cudaStreamSynchronize(s);
    e4 = cudaEventQuery(ev);
    std::vector<float> got = fetch(dst, n);
    int bad = 0;
    for (int i = 0; i < n; i++) bad += got[i] != x[i] * 3.0f;
    std::vector<float> rows(pitch / sizeof(float) * 8);
    cudaMemcpy(rows.data(), pitched, pitch * 8, cudaMemcpyDeviceToHost);
    for (int r = 0; r < 8; r++)
        for (int c = 0; c < 16; c++) bad += rows[r * pitch / sizeof(float) + c] != x[r * 64 + c] * 3.0f;
    report("launch", !e && !e1 && !e2 && !e3 && !e4 && bad == 0, "status=%d/%d/%d/%d event=%d mismatches=%d", e, e1,
           e2, e3, e4, bad);

    // the executable graph's kernel and memset parameters changed in place
    factor = 5.0f;
    e = cudaGraphExecKernelNodeSetParams(exec, kern, &kp);
    e1 = cudaGraphLaunch(exec, s);
    e2 = cudaStreamSynchronize(s);
    got = fetch(dst, n);
    bad = 0;
    for (int i = 0; i < n; i++) bad += got[i] != x[i] * 5.0f;
    report("exec_set_params", !e && !e1 && !e2 && bad == 0, "status=%d/%d/%d mismatches=%d", e, e1, e2, bad);

    // cudaGraphExecUpdate: a graph of the same shape (memset, copy, kernel with factor 7) takes over
    cudaGraph_t g2, g3;
    cudaGraphCreate(&g2, 0);
    cudaGraphCreate(&g3, 0);
    cudaGraphNode_t a, b, c;
    factor = 7.0f;
    cudaGraphAddMemsetNode(&a, g2, nullptr, 0, &(mp = cudaMemsetParams{dst, 0, 0, 4, (size_t)n, 1}));
    cudaGraphAddMemcpyNode1D(&b, g2, &a, 1, dst, src, bytes, cudaMemcpyDeviceToDevice);
    kp.kernelParams[0] = &dst;
    cudaGraphAddKernelNode(&c, g2, &b, 1, &kp);
    cudaGraphExec_t exec2 = nullptr;
    cudaGraphInstantiate(&exec2, g2, 0);
    factor = 11.0f;
    cudaGraphAddMemsetNode(&a, g3, nullptr, 0, &mp);
    cudaGraphAddMemcpyNode1D(&b, g3, &a, 1, dst, src, bytes, cudaMemcpyDeviceToDevice);
    cudaGraphAddKernelNode(&c, g3, &b, 1, &kp);
    cudaGraphExecUpdateResultInfo info = {};
    e = cudaGraphExecUpdate(exec2, g3, &info);
    e1 = cudaGraphLaunch(exec2, s);
    e2 = cudaStreamSynchronize(s);
    got = fetch(dst, n);
    bad = 0;
    for (int i = 0; i < n; i++) bad += got[i] != x[i] * 11.0f;
    cudaGraphExecUpdateResultInfo refused = {};
    e3 = cudaGraphExecUpdate(exec2, g, &refused);  // nine nodes for three: a different topology
    report("exec_update", !e && info.result == cudaGraphExecUpdateSuccess && !e1 && !e2 && bad == 0 &&
               e3 == cudaErrorGraphExecUpdateFailure && refused.result == cudaGraphExecUpdateErrorTopologyChanged,
           "status=%d/%d/%d mismatches=%d different_shape=%d result=%d", e, e1, e2, bad, e3, refused.result);
    cudaGetLastError();

    // stream capture: cudaEventRecordWithFlags(cudaEventRecordExternal) is a node recorded when the graph runs
    {
        cudaEvent_t before, inside;
        cudaEventCreate(&before);
        cudaEventCreate(&inside);
        cudaEventRecord(before, s);
        cudaStreamSynchronize(s);
        cudaGraph_t cg = nullptr;
        cudaGraphExec_t ce = nullptr;
        float ms = -1.0f;
        e = cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed);
        e1 = cudaMemsetAsync(dst, 0, bytes, s);
        e2 = cudaEventRecordWithFlags(inside, s, cudaEventRecordExternal);
        e3 = cudaStreamEndCapture(s, &cg);
        cudaError_t unrecorded = cudaEventElapsedTime(&ms, before, inside);  // not recorded yet
        cudaGetLastError();
        e4 = cudaGraphInstantiate(&ce, cg, 0);
        e5 = cudaGraphLaunch(ce, s);
        e6 = cudaStreamSynchronize(s);
        cudaError_t recorded = cudaEventElapsedTime(&ms, before, inside);
        report("external_event_record", !e && !e1 && !e2 && !e3 && !e4 && !e5 && !e6 && unrecorded != cudaSuccess &&
                   recorded == cudaSuccess && ms >= 0.0f,
               "status=%d/%d/%d/%d/%d/%d/%d before_launch=%d after=%d ms=%f", e, e1, e2, e3, e4, e5, e6, unrecorded,
               recorded, ms);
        cudaGraphExecDestroy(ce);
        cudaGraphDestroy(cg);
        cudaEventDestroy(before);
        cudaEventDestroy(inside);
    }

    // refused: a host node without its function (invalid), a copy from host memory to host memory (not served)
    cudaHostNodeParams hp = {};
    cudaGraphNode_t h;
    e = cudaGraphAddHostNode(&h, g3, nullptr, 0, &hp);
    cudaGetLastError();
    std::vector<float> y(n);
    e1 = cudaGraphAddMemcpyNode1D(&h, g3, nullptr, 0, y.data(), x.data(), bytes, cudaMemcpyHostToHost);
    cudaGetLastError();
    report("not_supported", e == cudaErrorInvalidValue && e1 == cudaErrorNotSupported, "host_node=%d host_to_host=%d",
           e, e1);

    cudaGraphExecDestroy(exec);
    cudaGraphExecDestroy(exec2);
    cudaGraphDestroy(g);
    cudaGraphDestroy(g2);
    cudaGraphDestroy(g3);
    size_t free_end = 0, held_end = 1;
    cudaMemGetInfo(&free_end, &total);
    cudaDeviceGetGraphMemAttribute(0, cudaGraphMemAttrUsedMemCurrent, &held_end);
    cudaEventDestroy(ev);
    cudaStreamDestroy(s);
    cudaFree(src);
    cudaFree(dst);
    cudaFree(pitched);
    size_t free_final = 0;
    cudaMemGetInfo(&free_final, &total);
    report("cleanup", free_end == free_before && free_final >= free_end && held_end == 0 &&
               cudaDeviceSynchronize() == cudaSuccess,
           "free before=%zu after destroy=%zu final=%zu graph_mem=%zu", free_before, free_end, free_final, held_end);
    return finish();
}
