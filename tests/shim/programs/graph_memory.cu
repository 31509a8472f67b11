// Graph memory nodes through the shim, with CUDA's documented rules: cudaMallocAsync/cudaFreeAsync
// on a stream under global capture become alloc/free nodes (the address fixed when captured, the same
// on every launch, the memory charged to the VM and reported by cudaDeviceGetGraphMemAttribute); an
// allocation the graph does not free may not be allocated again by a second launch until something
// frees it (cudaFreeAsync outside the graph, or a launch of a graph whose free node names it) unless
// the exec auto-frees on launch; freeing it when it is not allocated is an error; a graph destroyed
// with its allocation outstanding leaves it to the program (cudaFree); a captured free of memory no
// capture allocated is refused, and so is such a graph launched into a capture; cudaGraphUpload checks its
// exec; conditional nodes are refused.
#include <cstring>
#include <vector>

#include "check.h"

static const size_t kBytes = 1 << 16;

// One captured graph: alloc p, fill it with `value`, copy it to `out`, and free it unless `keep`.
static cudaGraphExec_t captured(cudaStream_t s, void* out, int value, bool keep, void** p,
                                unsigned long long flags = 0) {
    cudaGraph_t g = nullptr;
    cudaGraphExec_t x = nullptr;
    cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal);
    cudaError_t e1 = cudaMallocAsync(p, kBytes, s);
    cudaMemsetAsync(*p, value, kBytes, s);
    cudaMemcpyAsync(out, *p, kBytes, cudaMemcpyDeviceToDevice, s);
    if (!keep) cudaFreeAsync(*p, s);
    cudaError_t e2 = cudaStreamEndCapture(s, &g);
    cudaError_t e3 = cudaGraphInstantiateWithFlags(&x, g, flags);
    cudaGraphDestroy(g);
    if (e1 || e2 || e3) printf("capture: %d %d %d\n", e1, e2, e3);
    return x;
}

static bool filled(const void* d, int value) {
    std::vector<unsigned char> v(kBytes);
    cudaMemcpy(v.data(), d, kBytes, cudaMemcpyDeviceToHost);
    for (unsigned char c : v)
        if (c != value) return false;
    return true;
}

static unsigned long long used_now() {
    unsigned long long v = ~0ull;
    cudaDeviceGetGraphMemAttribute(0, cudaGraphMemAttrUsedMemCurrent, &v);
    return v;
}

int main() {
    cudaStream_t s;
    cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
    void* out;
    cudaMalloc(&out, kBytes);
    unsigned long long base = used_now();

    // cudaMallocAsync and cudaFreeAsync captured; three launches at the same address
    void* p = nullptr;
    cudaGraphExec_t x = captured(s, out, 7, false, &p);
    unsigned long long held = used_now();
    cudaError_t l1 = cudaGraphLaunch(x, s), l2 = cudaGraphLaunch(x, s), l3 = cudaGraphLaunch(x, s);
    cudaError_t sy = cudaStreamSynchronize(s);
    report("capture_alloc_free", x && p && !l1 && !l2 && !l3 && !sy && filled(out, 7) && held == base + kBytes,
           "launches=%d/%d/%d sync=%d held=%llu", l1, l2, l3, sy, held - base);
    // nothing is left to upload (instantiated whole on the host), but the handles are checked
    cudaError_t up = cudaGraphUpload(x, s), bad = cudaGraphUpload(nullptr, s);
    report("upload", !up && bad == cudaErrorInvalidResourceHandle, "upload=%d null=%d", up, bad);

    // CUDA does not update memory nodes: an update from a captured graph with them is refused
    cudaGraph_t g2 = nullptr;
    void* p2 = nullptr;
    cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal);
    cudaMallocAsync(&p2, kBytes, s);
    cudaFreeAsync(p2, s);
    cudaStreamEndCapture(s, &g2);
    cudaGraphExecUpdateResultInfo info = {};
    cudaError_t upd = cudaGraphExecUpdate(x, g2, &info);
    cudaGraphDestroy(g2);
    report("exec_update_refused",
           upd == cudaErrorGraphExecUpdateFailure && info.result == cudaGraphExecUpdateErrorNotSupported,
           "update=%d result=%d", upd, info.result);
    cudaError_t twice = cudaFree(p);  // the graph frees it: not the program's to free
    cudaGraphExecDestroy(x);
    report("graph_memory_released", twice == cudaErrorInvalidValue && used_now() == base,
           "free=%d used=%llu", twice, used_now() - base);

    // an allocation the graph does not free: a second launch before it is freed is refused
    x = captured(s, out, 9, true, &p);
    cudaError_t first = cudaGraphLaunch(x, s), again = cudaGraphLaunch(x, s);
    cudaError_t freed = cudaFreeAsync(p, s), relaunch = cudaGraphLaunch(x, s);
    cudaStreamSynchronize(s);
    report("unfreed_relaunch", !first && again == cudaErrorInvalidValue && !freed && !relaunch && filled(out, 9),
           "launch=%d again=%d free=%d relaunch=%d", first, again, freed, relaunch);

    // freed by another graph's free node; that graph launched twice frees what is not allocated
    cudaGraph_t fg;
    cudaGraphNode_t fn;
    cudaGraphCreate(&fg, 0);
    cudaError_t fa = cudaGraphAddMemFreeNode(&fn, fg, nullptr, 0, p);
    cudaGraphExec_t fx = nullptr;
    cudaGraphInstantiate(&fx, fg, 0);
    cudaGraphDestroy(fg);
    cudaError_t f1 = cudaGraphLaunch(fx, s), r1 = cudaGraphLaunch(x, s), f2 = cudaGraphLaunch(fx, s);
    cudaError_t f3 = cudaGraphLaunch(fx, s);
    cudaStreamSynchronize(s);
    report("free_node_of_another_graph", !fa && !f1 && !r1 && !f2 && f3 == cudaErrorInvalidValue,
           "add=%d free=%d launch=%d free=%d free_again=%d", fa, f1, r1, f2, f3);

    // outstanding when its graphs are destroyed: the program's, cudaFree gives it back
    cudaGraphLaunch(x, s);
    cudaStreamSynchronize(s);
    cudaGraphExecDestroy(x);
    cudaGraphExecDestroy(fx);
    unsigned long long kept = used_now();
    cudaError_t mine = cudaFree(p);
    report("outstanding_is_the_programs", kept == base + kBytes && !mine && used_now() == base,
           "kept=%llu free=%d used=%llu", kept - base, mine, used_now() - base);

    // auto-free on launch: relaunching without a free is allowed
    x = captured(s, out, 3, true, &p, cudaGraphInstantiateFlagAutoFreeOnLaunch);
    cudaError_t a1 = cudaGraphLaunch(x, s), a2 = cudaGraphLaunch(x, s);
    cudaStreamSynchronize(s);

    // launched into a capture it would be a child graph with memory nodes: refused, the capture intact
    cudaStream_t s2;
    cudaStreamCreateWithFlags(&s2, cudaStreamNonBlocking);
    cudaGraph_t child = nullptr;
    cudaStreamBeginCapture(s2, cudaStreamCaptureModeGlobal);
    cudaError_t nested = cudaGraphLaunch(x, s2), closed = cudaStreamEndCapture(s2, &child);
    if (child) cudaGraphDestroy(child);
    cudaStreamDestroy(s2);
    report("launch_into_capture_refused", nested == cudaErrorNotSupported && !closed, "launch=%d end=%d", nested,
           closed);
    cudaFreeAsync(p, s);
    cudaStreamSynchronize(s);
    cudaGraphExecDestroy(x);
    report("auto_free_on_launch", !a1 && !a2 && filled(out, 3) && used_now() == base, "launch=%d/%d used=%llu",
           a1, a2, used_now() - base);

    // a captured free of memory no capture allocated is refused, and says so; the capture goes on
    cudaGraph_t g = nullptr;
    cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal);
    cudaError_t foreign = cudaFreeAsync(out, s);
    cudaError_t ended = cudaStreamEndCapture(s, &g);
    if (g) cudaGraphDestroy(g);
    report("foreign_free_refused", foreign == cudaErrorNotSupported && !ended, "free=%d end=%d", foreign, ended);

    // the figures: the high watermark, its reset, trimming
    unsigned long long high = 0, zero = 0;
    cudaDeviceGetGraphMemAttribute(0, cudaGraphMemAttrUsedMemHigh, &high);
    cudaError_t reset = cudaDeviceSetGraphMemAttribute(0, cudaGraphMemAttrUsedMemHigh, &zero);
    unsigned long long after = ~0ull;
    cudaDeviceGetGraphMemAttribute(0, cudaGraphMemAttrUsedMemHigh, &after);
    cudaError_t trim = cudaDeviceGraphMemTrim(0);
    report("attributes", high >= base + kBytes && !reset && after == used_now() && !trim,
           "high=%llu reset=%d after=%llu trim=%d", high, reset, after, trim);

    // a graph with memory nodes has one executable graph at a time, captured or built
    void* q = nullptr;
    cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal);
    cudaMallocAsync(&q, kBytes, s);
    cudaFreeAsync(q, s);
    cudaStreamEndCapture(s, &g);
    cudaGraph_t built;
    cudaGraphCreate(&built, 0);
    cudaMemAllocNodeParams ap = {};
    ap.poolProps.allocType = cudaMemAllocationTypePinned;
    ap.poolProps.location.type = cudaMemLocationTypeDevice;
    ap.bytesize = kBytes;
    cudaGraphNode_t an, fn2;
    cudaGraphAddMemAllocNode(&an, built, nullptr, 0, &ap);
    cudaGraphAddMemFreeNode(&fn2, built, &an, 1, ap.dptr);
    cudaError_t once[2][3];
    cudaGraph_t both[2] = {g, built};
    for (int i = 0; i < 2; i++) {
        cudaGraphExec_t e1 = nullptr, e2 = nullptr;
        once[i][0] = cudaGraphInstantiate(&e1, both[i], 0);
        once[i][1] = cudaGraphInstantiate(&e2, both[i], 0);
        if (!once[i][1]) cudaGraphExecDestroy(e2);
        cudaGraphExecDestroy(e1);
        once[i][2] = cudaGraphInstantiate(&e2, both[i], 0);
        if (!once[i][2]) cudaGraphExecDestroy(e2);
        cudaGraphDestroy(both[i]);
    }
    report("one_exec_per_graph",
           !once[0][0] && once[0][1] == cudaErrorInvalidValue && !once[0][2] && !once[1][0] &&
               once[1][1] == cudaErrorInvalidValue && !once[1][2] && used_now() == base,
           "captured=%d/%d/%d built=%d/%d/%d used=%llu", once[0][0], once[0][1], once[0][2], once[1][0],
           once[1][1], once[1][2], used_now() - base);

    // cudaGraphInstantiateWithParams: the flags (upload on a stream), the result reported
    cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal);
    cudaMemsetAsync(out, 0x21, kBytes, s);
    cudaStreamEndCapture(s, &g);
    cudaGraphInstantiateParams ip = {};
    ip.flags = cudaGraphInstantiateFlagUpload;
    ip.uploadStream = s;
    ip.result_out = cudaGraphInstantiateError;
    cudaError_t wp = cudaGraphInstantiateWithParams(&x, g, &ip);
    cudaError_t wl = wp ? wp : cudaGraphLaunch(x, s);
    cudaStreamSynchronize(s);
    int result = ip.result_out;
    if (!wp) cudaGraphExecDestroy(x);
    cudaGraphDestroy(g);
    cudaGraphInstantiateParams none = {};
    cudaError_t wb = cudaGraphInstantiateWithParams(&x, nullptr, &none);
    report("instantiate_with_params",
           !wp && !wl && result == cudaGraphInstantiateSuccess && filled(out, 0x21) && wb &&
               none.result_out == cudaGraphInstantiateError,
           "status=%d launch=%d result=%d null_graph=%d/%d", wp, wl, result, wb, none.result_out);

    // conditional nodes are refused where their handle is made (their condition is set on the device)
    cudaGraph_t cg;
    cudaGraphCreate(&cg, 0);
    cudaGraphConditionalHandle handle = 0;
    cudaError_t cond = cudaGraphConditionalHandleCreate(&handle, cg, 0, 0);
    cudaGraphDestroy(cg);
    report("conditional_refused", cond == cudaErrorNotSupported, "status=%d", cond);

    cudaFree(out);
    cudaStreamDestroy(s);
    return finish();
}
