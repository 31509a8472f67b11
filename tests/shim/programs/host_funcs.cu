// Host functions through the shim: cudaLaunchHostFunc and cudaStreamAddCallback in stream order
// (after the stream's earlier work, before its later work), their behaviour after an error, a
// captured graph with a host function and copies of host memory (pageable and pinned) between
// kernels, launched many times, cloned, and launched into another capture; a graph built node by
// node with host nodes and host memory copies (a host node's parameters read and changed in its exec); a
// failing phase that keeps its host node from running;
// an exec updated from a captured graph of the same topology, and refused one of another.
#include <cstring>
#include <vector>

#include "check.h"
#include "../../kernels/test_kernels.cu"

static const int N = 256;

struct Seen {
    const float* host;  // what the function reads
    float* out;         // what it writes for the work after it
    int calls;
    int bad;            // elements that were not what the stream's earlier work left
    float expect;
};

// Checks the host buffer holds `expect` everywhere, then writes expect + 1 into `out`.
static void check_and_bump(void* p) {
    Seen* s = static_cast<Seen*>(p);
    s->calls++;
    for (int i = 0; i < N; i++) s->bad += s->host[i] != s->expect;
    for (int i = 0; i < N; i++) s->out[i] = s->expect + 1.0f;
}

struct Callback {
    int calls;
    cudaError_t status;
};

static void CUDART_CB on_stream(cudaStream_t, cudaError_t status, void* p) {
    Callback* c = static_cast<Callback*>(p);
    c->calls++;
    c->status = status;
}

static void count_call(void* p) { ++*static_cast<int*>(p); }

static std::vector<float> fetch(const float* d) {
    std::vector<float> v(N);
    cudaMemcpy(v.data(), d, N * sizeof(float), cudaMemcpyDeviceToHost);
    return v;
}

static int mismatches(const std::vector<float>& v, float want) {
    int bad = 0;
    for (float x : v) bad += x != want;
    return bad;
}

int main() {
    const size_t bytes = N * sizeof(float);
    float *d, *d2;
    cudaMalloc(&d, bytes);
    cudaMalloc(&d2, bytes);
    std::vector<float> host(N), out(N), ones(N, 1.0f);
    float* pinned = nullptr;
    cudaMallocHost(&pinned, bytes);
    cudaStream_t s, s2;
    cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
    cudaStreamCreateWithFlags(&s2, cudaStreamNonBlocking);
    float two = 2.0f;
    int n = N;
    dim3 grid((N + 127) / 128), block(128);

    // stream order: ones -> x2 -> copied out -> the function sees 2 and writes 3s -> copied in -> x2 = 6
    {
        Seen seen = {host.data(), out.data(), 0, 0, 2.0f};
        cudaMemcpyAsync(d, ones.data(), bytes, cudaMemcpyHostToDevice, s);
        scale_f32<<<grid, block, 0, s>>>(d, two, n);
        cudaMemcpyAsync(host.data(), d, bytes, cudaMemcpyDeviceToHost, s);
        cudaError_t e = cudaLaunchHostFunc(s, check_and_bump, &seen);
        cudaError_t e1 = cudaMemcpyAsync(d, out.data(), bytes, cudaMemcpyHostToDevice, s);
        scale_f32<<<grid, block, 0, s>>>(d, two, n);
        cudaError_t e2 = cudaStreamSynchronize(s);
        int bad = mismatches(fetch(d), 6.0f);
        report("launch_host_func_order", !e && !e1 && !e2 && seen.calls == 1 && seen.bad == 0 && bad == 0,
               "status=%d/%d/%d calls=%d saw_wrong=%d result_mismatches=%d", e, e1, e2, seen.calls, seen.bad, bad);
    }

    // a stream callback runs after the stream's work with its status; NULL stream too
    {
        Callback cb = {0, cudaErrorUnknown};
        cudaMemsetAsync(d, 0, bytes, s);
        cudaError_t e = cudaStreamAddCallback(s, on_stream, &cb, 0);
        Callback legacy = {0, cudaErrorUnknown};
        cudaError_t e1 = cudaStreamAddCallback(nullptr, on_stream, &legacy, 0);
        cudaError_t flags = cudaStreamAddCallback(s, on_stream, &cb, 1);  // flags must be 0
        int bad = mismatches(fetch(d), 0.0f);
        report("stream_callback", !e && !e1 && cb.calls == 1 && cb.status == cudaSuccess && legacy.calls == 1 &&
                   legacy.status == cudaSuccess && flags == cudaErrorInvalidValue && bad == 0,
               "status=%d/%d calls=%d/%d cb_status=%d/%d flags=%d mismatches=%d", e, e1, cb.calls, legacy.calls,
               cb.status, legacy.status, flags, bad);
    }

    // after failed work: a host function is not run and the call reports the error; a stream callback
    // runs with the error as its status
    {
        float* gone;
        cudaMalloc(&gone, bytes);
        cudaFree(gone);
        int calls = 0;
        cudaMemsetAsync(gone, 0, bytes, s);  // fails on the host, reported later
        cudaError_t e = cudaLaunchHostFunc(s, count_call, &calls);
        cudaGetLastError();
        Callback cb = {0, cudaSuccess};
        cudaMemsetAsync(gone, 0, bytes, s);
        cudaError_t e1 = cudaStreamAddCallback(s, on_stream, &cb, 0);
        cudaGetLastError();
        cudaError_t after = cudaStreamSynchronize(s);
        report("after_an_error", e != cudaSuccess && calls == 0 && cb.calls == 1 && cb.status != cudaSuccess &&
                   e1 == cb.status && after == cudaSuccess,
               "host_func=%d calls=%d callback=%d status=%d then=%d", e, calls, cb.calls, cb.status, after);
    }

    // a captured graph: memset, x2, copy out (pageable), host function, copy in (pinned), x2
    cudaGraph_t g = nullptr, clone = nullptr;
    cudaGraphExec_t exec = nullptr, clone_exec = nullptr;
    Seen seen = {host.data(), pinned, 0, 0, 2.0f};
    {
        cudaError_t e = cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal);
        cudaMemsetAsync(d, 0, bytes, s);
        cudaMemcpyAsync(d, d2, bytes, cudaMemcpyDeviceToDevice, s);  // d2 holds ones (below)
        scale_f32<<<grid, block, 0, s>>>(d, two, n);
        cudaMemcpyAsync(host.data(), d, bytes, cudaMemcpyDeviceToHost, s);
        cudaError_t e1 = cudaLaunchHostFunc(s, check_and_bump, &seen);
        cudaError_t e3 = cudaMemcpyAsync(d, pinned, bytes, cudaMemcpyHostToDevice, s);
        scale_f32<<<grid, block, 0, s>>>(d, two, n);
        cudaError_t e4 = cudaStreamEndCapture(s, &g);
        size_t count = 0;
        cudaError_t e5 = cudaGraphGetNodes(g, nullptr, &count);
        // a stream callback cannot be captured (CUDA's rule)
        cudaGraph_t refused_graph = nullptr;
        Callback refused = {0, cudaSuccess};
        cudaStreamBeginCapture(s2, cudaStreamCaptureModeRelaxed);
        cudaError_t e2 = cudaStreamAddCallback(s2, on_stream, &refused, 0);
        cudaStreamEndCapture(s2, &refused_graph);
        cudaGetLastError();
        if (refused_graph) cudaGraphDestroy(refused_graph);
        report("capture", !e && !e1 && e2 == cudaErrorStreamCaptureUnsupported && !e3 && !e4 && !e5 && count == 7 &&
                   seen.calls == 0 && refused.calls == 0,
               "status=%d/%d/%d/%d/%d/%d nodes=%zu calls_during_capture=%d", e, e1, e2, e3, e4, e5, count, seen.calls);
    }
    {
        cudaMemcpy(d2, ones.data(), bytes, cudaMemcpyHostToDevice);
        cudaError_t e = cudaGraphInstantiate(&exec, g, 0);
        cudaError_t e1 = cudaGraphClone(&clone, g);
        cudaError_t e2 = cudaGraphInstantiate(&clone_exec, clone, 0);
        const int launches = 25;
        cudaError_t e3 = cudaSuccess;
        for (int i = 0; i < launches && !e3; i++) e3 = cudaGraphLaunch(i % 2 ? clone_exec : exec, s);
        cudaError_t e4 = cudaStreamSynchronize(s);
        int bad = mismatches(fetch(d), 6.0f);
        report("graph_launches", !e && !e1 && !e2 && !e3 && !e4 && seen.calls == launches && seen.bad == 0 &&
                   bad == 0,
               "status=%d/%d/%d/%d/%d calls=%d saw_wrong=%d result_mismatches=%d", e, e1, e2, e3, e4, seen.calls,
               seen.bad, bad);
    }

    // the exec launched into another capture: its phases and guest nodes become that graph's
    {
        cudaGraph_t outer = nullptr;
        cudaGraphExec_t outer_exec = nullptr;
        int calls = 0;
        cudaError_t e = cudaStreamBeginCapture(s2, cudaStreamCaptureModeRelaxed);
        cudaError_t e1 = cudaGraphLaunch(exec, s2);
        cudaError_t e2 = cudaLaunchHostFunc(s2, count_call, &calls);
        cudaError_t e3 = cudaStreamEndCapture(s2, &outer);
        int before = seen.calls;
        cudaError_t e4 = cudaGraphInstantiate(&outer_exec, outer, 0);
        cudaError_t e5 = cudaGraphLaunch(outer_exec, s2);
        cudaError_t e6 = cudaGraphLaunch(outer_exec, s2);
        cudaError_t e7 = cudaStreamSynchronize(s2);
        int bad = mismatches(fetch(d), 6.0f);
        report("nested_capture", !e && !e1 && !e2 && !e3 && !e4 && !e5 && !e6 && !e7 && before == 25 &&
                   seen.calls == 27 && calls == 2 && bad == 0 && seen.bad == 0,
               "status=%d/%d/%d/%d/%d/%d/%d/%d inner_calls=%d->%d outer_calls=%d mismatches=%d", e, e1, e2, e3, e4,
               e5, e6, e7, before, seen.calls, calls, bad);
        cudaGraphExecDestroy(outer_exec);
        cudaGraphDestroy(outer);
    }

    // built node by node: memset(d2 <- 0) -> copy in (pageable ones) -> x2 -> copy out -> host node -> copy in
    // (the host node's output) -> x2; then the same graph with its memset target freed: phase 0 fails and
    // the host node does not run
    {
        cudaGraph_t b;
        cudaGraphCreate(&b, 0);
        cudaGraphNode_t set, in, k1, outn, h, in2, k2;
        cudaMemsetParams mp = {};
        mp.dst = d2;
        mp.elementSize = 4;
        mp.width = N;
        mp.height = 1;
        Seen built = {host.data(), out.data(), 0, 0, 2.0f};
        void* args[] = {&d2, &two, &n};
        cudaKernelNodeParams kp = {};
        kp.func = reinterpret_cast<void*>(scale_f32);
        kp.gridDim = grid;
        kp.blockDim = block;
        kp.kernelParams = args;
        cudaHostNodeParams hp = {check_and_bump, &built};
        cudaError_t e = cudaGraphAddMemsetNode(&set, b, nullptr, 0, &mp);
        cudaError_t e1 = cudaGraphAddMemcpyNode1D(&in, b, &set, 1, d2, ones.data(), bytes, cudaMemcpyHostToDevice);
        cudaError_t e2 = cudaGraphAddKernelNode(&k1, b, &in, 1, &kp);
        cudaError_t e3 = cudaGraphAddMemcpyNode1D(&outn, b, &k1, 1, host.data(), d2, bytes, cudaMemcpyDefault);
        cudaError_t e4 = cudaGraphAddHostNode(&h, b, &outn, 1, &hp);
        cudaError_t e5 = cudaGraphAddMemcpyNode1D(&in2, b, &h, 1, d2, out.data(), bytes, cudaMemcpyHostToDevice);
        cudaError_t e6 = cudaGraphAddKernelNode(&k2, b, &in2, 1, &kp);
        cudaGraphNodeType type = cudaGraphNodeTypeEmpty;
        cudaGraphNodeGetType(h, &type);
        cudaGraphExec_t be = nullptr;
        cudaError_t e7 = cudaGraphInstantiate(&be, b, 0);
        const int launches = 40;
        cudaError_t e8 = cudaSuccess;
        for (int i = 0; i < launches && !e8; i++) e8 = cudaGraphLaunch(be, s);
        cudaError_t e9 = cudaStreamSynchronize(s);
        int bad = mismatches(fetch(d2), 6.0f);
        report("built_graph", !e && !e1 && !e2 && !e3 && !e4 && !e5 && !e6 && !e7 && !e8 && !e9 &&
                   type == cudaGraphNodeTypeHost && built.calls == launches && built.bad == 0 && bad == 0,
               "status=%d/%d/%d/%d/%d/%d/%d/%d/%d/%d type=%d calls=%d saw_wrong=%d mismatches=%d", e, e1, e2, e3, e4, e5,
               e6, e7, e8, e9, type, built.calls, built.bad, bad);

        // the host node's parameters read back, and changed in the executable graph: the new function runs
        cudaHostNodeParams got = {};
        cudaError_t g0 = cudaGraphHostNodeGetParams(h, &got);
        int switched = 0;
        cudaHostNodeParams other = {count_call, &switched};
        cudaError_t g1 = cudaGraphExecHostNodeSetParams(be, h, &other);
        cudaError_t g2 = cudaGraphLaunch(be, s);
        cudaError_t g3 = cudaStreamSynchronize(s);
        cudaError_t g4 = cudaGraphExecHostNodeSetParams(be, k1, &other);  // not a host node
        cudaGetLastError();
        report("host_node_params", !g0 && got.fn == check_and_bump && got.userData == &built && !g1 && !g2 && !g3 &&
                   switched == 1 && built.calls == launches && g4 == cudaErrorInvalidValue,
               "status=%d/%d/%d/%d not_host=%d switched=%d calls=%d", g0, g1, g2, g3, g4, switched, built.calls);

        float* gone;
        cudaMalloc(&gone, bytes);
        cudaGraph_t f;
        cudaGraphCreate(&f, 0);
        cudaGraphNode_t fs, fh;
        mp.dst = gone;
        int calls = 0;
        cudaHostNodeParams counted = {count_call, &calls};
        cudaGraphAddMemsetNode(&fs, f, nullptr, 0, &mp);
        cudaGraphAddHostNode(&fh, f, &fs, 1, &counted);
        cudaGraphExec_t fe = nullptr;
        cudaError_t i0 = cudaGraphInstantiate(&fe, f, 0);
        cudaFree(gone);
        cudaError_t l0 = cudaGraphLaunch(fe, s);
        cudaGetLastError();
        cudaError_t after = cudaStreamSynchronize(s);
        report("failing_phase", !i0 && l0 != cudaSuccess && calls == 0 && after == cudaSuccess,
               "instantiate=%d launch=%d calls=%d then=%d", i0, l0, calls, after);
        cudaGraphExecDestroy(fe);
        cudaGraphDestroy(f);
        cudaGraphExecDestroy(be);
        cudaGraphDestroy(b);
    }

    // cudaGraphExecUpdate from a captured graph of the same topology: another factor, another host function
    // (its guest node follows); a graph of another topology is refused and the exec runs as before
    {
        int first = 0, second = 0;
        float three = 3.0f;
        auto capture = [&](float* factor, int* calls, bool short_graph) {
            cudaGraph_t graph = nullptr;
            cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed);
            cudaMemsetAsync(d2, 0, bytes, s);
            if (!short_graph) {
                cudaMemcpyAsync(d2, ones.data(), bytes, cudaMemcpyHostToDevice, s);
                scale_f32<<<grid, block, 0, s>>>(d2, *factor, n);
                cudaLaunchHostFunc(s, count_call, calls);
            }
            cudaStreamEndCapture(s, &graph);
            return graph;
        };
        cudaGraph_t g1 = capture(&two, &first, false), g2 = capture(&three, &second, false), g3 = capture(&two, &first, true);
        cudaGraphExec_t ue = nullptr;
        cudaError_t e = cudaGraphInstantiate(&ue, g1, 0);
        cudaError_t e1 = cudaGraphLaunch(ue, s);
        cudaStreamSynchronize(s);
        int bad1 = mismatches(fetch(d2), 2.0f);
        cudaGraphExecUpdateResultInfo info = {};
        cudaError_t e2 = cudaGraphExecUpdate(ue, g2, &info);
        cudaError_t e3 = cudaGraphLaunch(ue, s);
        cudaStreamSynchronize(s);
        int bad2 = mismatches(fetch(d2), 3.0f);
        cudaGraphExecUpdateResultInfo refused = {};
        cudaError_t e4 = cudaGraphExecUpdate(ue, g3, &refused);
        cudaGetLastError();
        cudaError_t e5 = cudaGraphLaunch(ue, s);
        cudaStreamSynchronize(s);
        int bad3 = mismatches(fetch(d2), 3.0f);
        report("exec_update", !e && !e1 && !e2 && info.result == cudaGraphExecUpdateSuccess && !e3 &&
                   e4 == cudaErrorGraphExecUpdateFailure && refused.result == cudaGraphExecUpdateErrorTopologyChanged &&
                   !e5 && first == 1 && second == 2 && bad1 == 0 && bad2 == 0 && bad3 == 0,
               "status=%d/%d/%d/%d/%d/%d result=%d refused=%d calls=%d/%d mismatches=%d/%d/%d", e, e1, e2, e3, e4, e5,
               info.result, refused.result, first, second, bad1, bad2, bad3);
        cudaGraphExecDestroy(ue);
        cudaGraphDestroy(g1);
        cudaGraphDestroy(g2);
        cudaGraphDestroy(g3);
    }

    cudaError_t e = cudaGraphExecDestroy(exec);
    cudaError_t e1 = cudaGraphExecDestroy(clone_exec);
    cudaError_t e2 = cudaGraphDestroy(g);
    cudaError_t e3 = cudaGraphDestroy(clone);
    cudaStreamDestroy(s);
    cudaStreamDestroy(s2);
    cudaFreeHost(pinned);
    cudaFree(d);
    cudaFree(d2);
    report("cleanup", !e && !e1 && !e2 && !e3 && cudaDeviceSynchronize() == cudaSuccess, "status=%d/%d/%d/%d", e,
           e1, e2, e3);
    return finish();
}
