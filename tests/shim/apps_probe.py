"""What real applications do before any kernel, through the shim's libraries with ctypes (run by
test_apps.py in its own process: the shim connects once per process): every device attribute,
device properties, versions, device flags, profiler and limits, cuBLAS's Set/Get Vector/Matrix.
Prints the selftest's RESULT lines and verdict. Usage: apps_probe.py SHIM_DIRECTORY"""

from __future__ import annotations

import ctypes as ct
import struct
import sys
from pathlib import Path

shim = Path(sys.argv[1])
cuda = ct.CDLL(str(shim / "libcuda.so.1"))
cudart = ct.CDLL(str(shim / "libcudart.so.13"))
cublas = ct.CDLL(str(shim / "libcublas.so.13"))
cublaslt = ct.CDLL(str(shim / "libcublasLt.so.13"))
failures = 0
ATTRIBUTE_COUNT = 148  # CU_DEVICE_ATTRIBUTE_MAX in CUDA 13.0


def report(name: str, ok: bool, value: str) -> None:
    global failures
    print(f"RESULT name={name} ok={int(ok)} value={value}", flush=True)
    failures += not ok


# -- versions: a CUDA 13 runtime needs a driver at least as new
driver, runtime = ct.c_int(), ct.c_int()
rcs = [cudart.cudaDriverGetVersion(ct.byref(driver)), cudart.cudaRuntimeGetVersion(ct.byref(runtime))]
report("versions", rcs == [0, 0] and driver.value >= runtime.value == 13000,
       f"driver={driver.value} runtime={runtime.value} status={rcs}")

# -- every attribute answers, and those whose calls are not served say 0
values, bad = {}, []
for attrib in range(1, ATTRIBUTE_COUNT):
    v = ct.c_int(-7)
    rc = cudart.cudaDeviceGetAttribute(ct.byref(v), attrib, 0)
    values[attrib] = v.value
    if rc:
        bad.append((attrib, rc))
# 95 (cooperative launch), 120 (cluster launch), 19 (mapped pinned memory) and 83 (managed memory) are
# served on sim; the others here are not (89: managed memory is not accessed concurrently)
unserved = [a for a in (96, 89, 125) if values.get(a)]
served = [values[a] for a in (95, 120, 19, 83)]
report("every_attribute", not bad and not unserved and values[115] == 1 and served == [1, 1, 1, 1],
       f"failed={bad} claimed_unserved={unserved} memory_pools={values[115]} "  # the shim serves the default pool
       f"cooperative, cluster, mapped, managed={served}")

# -- the legacy cuDeviceGetProperties (programs still look it up): 14 ints, attributes 1 to 14 in order
legacy = (ct.c_int * 14)()
rc = cuda.cuDeviceGetProperties(legacy, 0)
report("legacy_properties", rc == 0 and list(legacy) == [values[a] for a in range(1, 15)], f"status={rc}")

# -- cudaGetDeviceProperties: the struct, 1,032 bytes in CUDA 13; a texture limit and the SM count
prop = ct.create_string_buffer(4096)
rc = cudart.cudaGetDeviceProperties(prop, 0)
name = prop.raw[:256].split(b"\0")[0].decode()
report("device_properties", rc == 0 and bool(name), f"name={name!r} status={rc}")

# -- hints and no-ops: device flags, profiler, the limits the shim honours
flags = ct.c_uint(99)
rcs = [cudart.cudaSetDeviceFlags(4), cudart.cudaGetDeviceFlags(ct.byref(flags))]  # cudaDeviceScheduleBlockingSync
bad_flags = cudart.cudaSetDeviceFlags(3)  # not a scheduling mode
report("device_flags", rcs == [0, 0] and flags.value == 4 and bad_flags == 1,
       f"status={rcs} flags={flags.value} invalid={bad_flags}")
cudart.cudaGetLastError()
rcs = [cudart.cudaProfilerStart(), cudart.cudaProfilerStop()]
report("profiler", rcs == [0, 0], f"status={rcs}")
limit = ct.c_size_t(99)
rcs = [cudart.cudaDeviceSetLimit(5, ct.c_size_t(64)), cudart.cudaDeviceGetLimit(ct.byref(limit), 5)]
persisting = ct.c_size_t(99)
rcs += [cudart.cudaDeviceSetLimit(6, ct.c_size_t(0)), cudart.cudaDeviceGetLimit(ct.byref(persisting), 6)]
refused = [cudart.cudaDeviceSetLimit(6, ct.c_size_t(1 << 20)), cudart.cudaDeviceSetLimit(0, ct.c_size_t(8192))]
report("limits", rcs == [0] * 4 and limit.value == 64 and persisting.value == 0 and refused == [801, 801],
       f"status={rcs} l2_fetch={limit.value} persisting={persisting.value} refused={refused}")
cudart.cudaGetLastError()

# -- cuBLAS's host <-> device copies: dense, through a leading dimension, strided, asynchronous
rows, cols, lda, ldb = 5, 4, 7, 6
host = [float(i) for i in range(lda * cols)]
a = struct.pack(f"<{lda * cols}f", *host)
dev = ct.c_void_p()
cudart.cudaMalloc(ct.byref(dev), ct.c_size_t(4 * ldb * cols))
cudart.cudaMemset(dev, 0, ct.c_size_t(4 * ldb * cols))
rc_set = cublas.cublasSetMatrix(rows, cols, 4, a, lda, dev, ldb)
raw = ct.create_string_buffer(4 * ldb * cols)
cudart.cudaMemcpy(raw, dev, ct.c_size_t(4 * ldb * cols), 2)
device_side = struct.unpack(f"<{ldb * cols}f", raw.raw)
want_device = [host[c * lda + r] if r < rows else 0.0 for c in range(cols) for r in range(ldb)]
back = ct.create_string_buffer(4 * lda * cols)
rc_get = cublas.cublasGetMatrix(rows, cols, 4, dev, ldb, back, lda)
got = struct.unpack(f"<{lda * cols}f", back.raw)
want_back = [host[c * lda + r] if r < rows else 0.0 for c in range(cols) for r in range(lda)]
report("set_get_matrix", (rc_set, rc_get) == (0, 0) and list(device_side) == want_device and list(got) == want_back,
       f"status={rc_set},{rc_get}")

n = 8
x = struct.pack(f"<{n}d", *[i + 0.5 for i in range(n)])
dv = ct.c_void_p()
cudart.cudaMalloc(ct.byref(dv), ct.c_size_t(8 * 2 * n))
cudart.cudaMemset(dv, 0, ct.c_size_t(8 * 2 * n))
stream = ct.c_void_p()
cudart.cudaStreamCreate(ct.byref(stream))
rcs = [cublas.cublasSetVectorAsync(n, 8, x, 1, dv, 2, stream), cudart.cudaStreamSynchronize(stream)]
strided = ct.create_string_buffer(8 * 2 * n)
cudart.cudaMemcpy(strided, dv, ct.c_size_t(8 * 2 * n), 2)
every_other = struct.unpack(f"<{2 * n}d", strided.raw)
out = ct.create_string_buffer(8 * n)
rcs.append(cublas.cublasGetVector(n, 8, dv, 2, out, 1))
report("set_get_vector", rcs == [0, 0, 0] and every_other[0::2] == struct.unpack(f"<{n}d", x)
       and every_other[1::2] == (0.0,) * n and out.raw == x, f"status={rcs}")

refused = [cublas.cublasSetVector(n, 8, x, 0, dv, 1), cublas.cublasSetMatrix(rows, cols, 4, a, 2, dev, ldb),
           cublas.cublasGetMatrix(rows, cols, 0, dev, ldb, back, lda)]
report("set_get_invalid", refused == [7, 7, 7], f"status={refused}")  # CUBLAS_STATUS_INVALID_VALUE
cudart.cudaFree(dev)
cudart.cudaFree(dv)


# -- the typed GEMM family on the protocol's GEMMs: C[m,n] = A[m,k] B[k,n], column-major, two batches
m, k, n_cols, batch = 2, 3, 2, 2
mats_a = [[float(1 + i + 6 * b) for i in range(m * k)] for b in range(batch)]
mats_b = [[float((i % 4) - 1 + b) for i in range(k * n_cols)] for b in range(batch)]


def matmul(a: list[float], b: list[float]) -> list[float]:
    return [sum(a[r + m * p] * b[p + k * c] for p in range(k)) for c in range(n_cols) for r in range(m)]


def flat(rows: list[list[float]]) -> list[float]:
    return [v for row in rows for v in row]


want = [matmul(mats_a[b], mats_b[b]) for b in range(batch)]
handle = ct.c_void_p()
cublas.cublasCreate_v2(ct.byref(handle))


def device(data: bytes) -> ct.c_void_p:
    ptr = ct.c_void_p()
    cudart.cudaMalloc(ct.byref(ptr), ct.c_size_t(max(len(data), 1)))
    cudart.cudaMemcpy(ptr, data, ct.c_size_t(len(data)), 1)
    return ptr


def fetch(ptr: ct.c_void_p, size: int) -> bytes:
    buf = ct.create_string_buffer(size)
    cudart.cudaMemcpy(buf, ptr, ct.c_size_t(size), 2)
    return buf.raw


one, zero = ct.c_float(1.0), ct.c_float(0.0)
d_a = device(struct.pack(f"<{batch * m * k}f", *flat(mats_a)))
d_b = device(struct.pack(f"<{batch * k * n_cols}f", *flat(mats_b)))
d_c = device(bytes(4 * batch * m * n_cols))
rc = cublas.cublasSgemmStridedBatched(handle, 0, 0, m, n_cols, k, ct.byref(one), d_a, m, ct.c_longlong(m * k), d_b,
                                      k, ct.c_longlong(k * n_cols), ct.byref(zero), d_c, m, ct.c_longlong(m * n_cols),
                                      batch)
product = list(struct.unpack(f"<{batch * m * n_cols}f", fetch(d_c, 4 * batch * m * n_cols)))
report("sgemm_strided_batched", rc == 0 and product == flat(want), f"status={rc} got={product}")

pointers = [[(d.value or 0) + b * 4 * size for b in range(batch)] for d, size in ((d_a, m * k), (d_b, k * n_cols),
                                                                         (d_c, m * n_cols))]
arrays = [device(struct.pack(f"<{batch}Q", *p)) for p in pointers]
cudart.cudaMemset(d_c, 0, ct.c_size_t(4 * batch * m * n_cols))
two = ct.c_float(2.0)
rc = cublas.cublasSgemmBatched(handle, 0, 0, m, n_cols, k, ct.byref(two), arrays[0], m, arrays[1], k, ct.byref(zero),
                               arrays[2], m, batch)
product = list(struct.unpack(f"<{batch * m * n_cols}f", fetch(d_c, 4 * batch * m * n_cols)))
report("sgemm_batched", rc == 0 and product == [2 * v for v in flat(want)], f"status={rc} got={product}")

h_a = device(struct.pack(f"<{m * k}e", *mats_a[0]))
h_b = device(struct.pack(f"<{k * n_cols}e", *mats_b[0]))
h_c = device(bytes(2 * m * n_cols))
h_one, h_zero = struct.pack("<e", 1.0), struct.pack("<e", 0.0)
rc = cublas.cublasHgemm(handle, 0, 0, m, n_cols, k, h_one, h_a, m, h_b, k, h_zero, h_c, m)
product = list(struct.unpack(f"<{m * n_cols}e", fetch(h_c, 2 * m * n_cols)))
report("hgemm", rc == 0 and product == want[0], f"status={rc} got={product} want={want[0]}")

# -- gemv as a GEMM: y = alpha op(A) x + beta y with strided vectors, both ways, in FP64 and FP32
xs = [float(3 - i) for i in range(max(m, k))]
y0 = [float(10 * i) for i in range(max(m, k))]
v_a = device(struct.pack(f"<{m * k}d", *mats_a[0]))
v_x = device(struct.pack(f"<{2 * k}d", *[v for x in xs[:k] for v in (x, -99.0)]))  # incx 2
v_y = device(struct.pack(f"<{3 * m}d", *[v for y in y0[:m] for v in (y, -7.0, -7.0)]))  # incy 3
d_two, d_one = ct.c_double(2.0), ct.c_double(1.0)
rc = cublas.cublasDgemv_v2(handle, 0, m, k, ct.byref(d_two), v_a, m, v_x, 2, ct.byref(d_one), v_y, 3)
got_y = list(struct.unpack(f"<{3 * m}d", fetch(v_y, 8 * 3 * m)))
ax = [sum(mats_a[0][r + m * p] * xs[p] for p in range(k)) for r in range(m)]
ok = rc == 0 and got_y == [v for r in range(m) for v in (2 * ax[r] + y0[r], -7.0, -7.0)]
s_a = device(struct.pack(f"<{m * k}f", *mats_a[0]))
s_x, s_y = device(struct.pack(f"<{m}f", *xs[:m])), device(bytes(4 * k))
rc_t = cublas.cublasSgemv_v2(handle, 1, m, k, ct.byref(one), s_a, m, s_x, 1, ct.byref(zero), s_y, 1)
atx = list(struct.unpack(f"<{k}f", fetch(s_y, 4 * k)))
ok = ok and rc_t == 0 and atx == [sum(mats_a[0][r + m * c] * xs[r] for r in range(m)) for c in range(k)]
refused = [cublas.cublasSgemv_v2(handle, 0, m, k, ct.byref(one), s_a, m, s_x, 0, ct.byref(zero), s_y, 1),
           cublas.cublasSgemv_v2(handle, 0, m, k, ct.byref(one), s_a, m, s_x, -1, ct.byref(zero), s_y, 1)]
report("gemv", ok and refused == [7, 15], f"status={rc}/{rc_t} got={got_y} atx={atx} refused={refused}")
cublas.cublasDestroy_v2(handle)

# -- cuBLASLt: D = alpha A B + beta C as GemmEx expresses it; an epilogue it cannot is refused
lt, op_desc, pref = ct.c_void_p(), ct.c_void_p(), ct.c_void_p()
layouts = [ct.c_void_p() for _ in range(3)]
rcs = [cublaslt.cublasLtCreate(ct.byref(lt)), cublaslt.cublasLtMatmulDescCreate(ct.byref(op_desc), 68, 0),
       cublaslt.cublasLtMatmulPreferenceCreate(ct.byref(pref))]
for layout, (rows, cols) in zip(layouts, ((m, k), (k, n_cols), (m, n_cols)), strict=True):
    rcs.append(cublaslt.cublasLtMatrixLayoutCreate(ct.byref(layout), 0, ct.c_uint64(rows), ct.c_uint64(cols),
                                                   ct.c_int64(rows)))
workspace = ct.c_uint64(1 << 20)
rcs.append(cublaslt.cublasLtMatmulPreferenceSetAttribute(pref, 1, ct.byref(workspace), ct.c_size_t(8)))
results = ct.create_string_buffer(128 * 4)  # room for four cublasLtMatmulHeuristicResult_t
found = ct.c_int()
rcs.append(cublaslt.cublasLtMatmulAlgoGetHeuristic(lt, op_desc, layouts[0], layouts[1], layouts[2], layouts[2], pref,
                                                   4, results, ct.byref(found)))
lt_a, lt_b = d_a, d_b  # the first matrices of the batched GEMM above
lt_c = device(struct.pack(f"<{m * n_cols}f", *[1.0] * (m * n_cols)))
lt_d = device(bytes(4 * m * n_cols))
rcs.append(cublaslt.cublasLtMatmul(lt, op_desc, ct.byref(one), lt_a, layouts[0], lt_b, layouts[1], ct.byref(one),
                                   lt_c, layouts[2], lt_d, layouts[2], results, None, ct.c_size_t(0), None))
in_place = list(struct.unpack(f"<{m * n_cols}f", fetch(lt_d, 4 * m * n_cols)))
relu = ct.c_uint32(2)  # CUBLASLT_EPILOGUE_RELU
rcs.append(cublaslt.cublasLtMatmulDescSetAttribute(op_desc, 7, ct.byref(relu), ct.c_size_t(4)))
refused = cublaslt.cublasLtMatmulAlgoGetHeuristic(lt, op_desc, layouts[0], layouts[1], layouts[2], layouts[2], pref,
                                                  4, results, ct.byref(found))
rcs += [cublaslt.cublasLtMatmulDescDestroy(op_desc), cublaslt.cublasLtMatmulPreferenceDestroy(pref)]
rcs += [cublaslt.cublasLtMatrixLayoutDestroy(layout) for layout in layouts]
rcs.append(cublaslt.cublasLtDestroy(lt))
report("cublaslt_matmul", rcs == [0] * len(rcs) and in_place == [v + 1.0 for v in want[0]] and refused == 15,
       f"status={rcs} got={in_place} want={[v + 1.0 for v in want[0]]} relu={refused}")


# -- the stream-ordered allocator: the default pool, counted, freed in the stream's order
pool, again = ct.c_void_p(), ct.c_void_p()
mem_stream = ct.c_void_p()
cudart.cudaStreamCreate(ct.byref(mem_stream))
free0, total0 = ct.c_size_t(), ct.c_size_t()
cudart.cudaMemGetInfo(ct.byref(free0), ct.byref(total0))
block = ct.c_void_p()
rcs = [cudart.cudaDeviceGetDefaultMemPool(ct.byref(pool), 0), cudart.cudaDeviceGetMemPool(ct.byref(again), 0),
       cudart.cudaMallocAsync(ct.byref(block), ct.c_size_t(32 << 20), mem_stream),
       cudart.cudaMemsetAsync(block, 7, ct.c_size_t(32 << 20), mem_stream)]
free1 = ct.c_size_t()
cudart.cudaMemGetInfo(ct.byref(free1), ct.byref(total0))
used, threshold = ct.c_uint64(), ct.c_uint64(1 << 30)
rcs += [cudart.cudaMemPoolGetAttribute(pool, 7, ct.byref(used)),  # cudaMemPoolAttrUsedMemCurrent
        cudart.cudaMemPoolSetAttribute(pool, 4, ct.byref(threshold)),  # cudaMemPoolAttrReleaseThreshold
        cudart.cudaFreeAsync(block, mem_stream), cudart.cudaStreamSynchronize(mem_stream)]
after, kept = ct.c_uint64(), ct.c_uint64()
rcs += [cudart.cudaMemPoolGetAttribute(pool, 7, ct.byref(after)), cudart.cudaMemPoolGetAttribute(pool, 4, ct.byref(kept))]
report("stream_ordered_allocator", rcs == [0] * len(rcs) and pool.value == again.value and used.value == 32 << 20
       and after.value == 0 and kept.value == 1 << 30 and free0.value - free1.value == 32 << 20,
       f"status={rcs} used={used.value} after={after.value} quota_charged={free0.value - free1.value}")


# -- cudaGraphExecUpdate from a captured graph of the same topology succeeds (cudaGraphExecUpdateSuccess); the exec runs
cap_stream, graph, graph_exec = ct.c_void_p(), ct.c_void_p(), ct.c_void_p()
target = ct.c_void_p()
cudart.cudaStreamCreate(ct.byref(cap_stream))
cudart.cudaMalloc(ct.byref(target), ct.c_size_t(256))
rcs = [cudart.cudaStreamBeginCapture(cap_stream, 2), cudart.cudaMemsetAsync(target, 9, ct.c_size_t(256), cap_stream),
       cudart.cudaStreamEndCapture(cap_stream, ct.byref(graph)),
       cudart.cudaGraphInstantiate(ct.byref(graph_exec), graph, ct.c_ulonglong(0))]
info = (ct.c_int * 6)(-1)  # cudaGraphExecUpdateResultInfo: result, then two node pointers
update = cudart.cudaGraphExecUpdate(graph_exec, graph, info)
cudart.cudaGetLastError()
rcs += [cudart.cudaGraphLaunch(graph_exec, cap_stream), cudart.cudaStreamSynchronize(cap_stream)]
filled = fetch(target, 256)
rcs += [cudart.cudaGraphExecDestroy(graph_exec), cudart.cudaGraphDestroy(graph), cudart.cudaFree(target)]
report("graph_exec_update", rcs == [0] * len(rcs) and update == 0 and info[0] == 0 and filled == b"\x09" * 256,
       f"status={rcs} update={update} reason={info[0]}")


# -- peers: a VM's one device is no peer of itself, and there is no other
can = ct.c_int(7)
rcs = [cudart.cudaDeviceCanAccessPeer(ct.byref(can), 0, 0), cudart.cudaDeviceCanAccessPeer(ct.byref(can), 0, 1),
       cudart.cudaDeviceEnablePeerAccess(0, 0), cudart.cudaDeviceEnablePeerAccess(0, 1)]
cudart.cudaGetLastError()
report("peers", rcs == [0, 101, 101, 1] and can.value == 0, f"status={rcs} can={can.value}")


# -- a graph built node by node: memset -> kernel -> child graph (another kernel), cloned, run twice
class KernelNodeParams(ct.Structure):
    _fields_ = [("func", ct.c_void_p), ("grid", ct.c_uint * 3), ("block", ct.c_uint * 3), ("shared", ct.c_uint),
                ("kernelParams", ct.c_void_p), ("extra", ct.c_void_p), ("kern", ct.c_void_p), ("ctx", ct.c_void_p)]


class MemsetNodeParams(ct.Structure):
    _fields_ = [("dst", ct.c_uint64), ("pitch", ct.c_size_t), ("value", ct.c_uint), ("elementSize", ct.c_uint),
                ("width", ct.c_size_t), ("height", ct.c_size_t)]


kernels = Path(__file__).resolve().parents[1] / "kernels" / "test_kernels.fatbin"
module, scale = ct.c_void_p(), ct.c_void_p()
count_n = 256
vec = ct.c_void_p()
rcs = [cuda.cuModuleLoadData(ct.byref(module), kernels.read_bytes()),
       cuda.cuModuleGetFunction(ct.byref(scale), module, b"_Z9scale_f32Pffi"),
       cudart.cudaMalloc(ct.byref(vec), ct.c_size_t(4 * count_n))]


def kernel_params(factor: float) -> tuple[KernelNodeParams, tuple[object, ...]]:
    """The node's parameters, and the argument values they point at (kept alive by the caller)."""
    ptr, fac, cnt = ct.c_uint64(vec.value or 0), ct.c_float(factor), ct.c_int(count_n)
    pointers = (ct.c_void_p * 3)(ct.addressof(ptr), ct.addressof(fac), ct.addressof(cnt))
    return KernelNodeParams(scale.value, (ct.c_uint * 3)(1, 1, 1), (ct.c_uint * 3)(count_n, 1, 1), 0,
                            ct.addressof(pointers), None, None, None), (ptr, fac, cnt, pointers)


graph, child, clone = ct.c_void_p(), ct.c_void_p(), ct.c_void_p()
fill, times3, inner, nested = ct.c_void_p(), ct.c_void_p(), ct.c_void_p(), ct.c_void_p()
ones = MemsetNodeParams(vec.value or 0, 0, 0x3F800000, 4, count_n, 1)  # 1.0f
p3, keep3 = kernel_params(3.0)
p2, keep2 = kernel_params(2.0)
rcs += [cuda.cuGraphCreate(ct.byref(graph), 0), cuda.cuGraphCreate(ct.byref(child), 0),
        cuda.cuGraphAddMemsetNode(ct.byref(fill), graph, None, ct.c_size_t(0), ct.byref(ones), None),
        cuda.cuGraphAddKernelNode_v2(ct.byref(times3), graph, ct.byref(fill), ct.c_size_t(1), ct.byref(p3)),
        cuda.cuGraphAddKernelNode_v2(ct.byref(inner), child, None, ct.c_size_t(0), ct.byref(p2)),
        cuda.cuGraphAddChildGraphNode(ct.byref(nested), graph, ct.byref(times3), ct.c_size_t(1), child),
        cuda.cuGraphClone(ct.byref(clone), graph)]
results_seen = []
for built in (graph, clone):
    graph_exec = ct.c_void_p()
    cudart.cudaMemset(vec, 0, ct.c_size_t(4 * count_n))
    rcs += [cuda.cuGraphInstantiateWithFlags(ct.byref(graph_exec), built, ct.c_ulonglong(0)),
            cuda.cuGraphLaunch(graph_exec, None), cuda.cuCtxSynchronize(), cuda.cuGraphExecDestroy(graph_exec)]
    results_seen.append(set(struct.unpack(f"<{count_n}f", fetch(vec, 4 * count_n))))
rcs += [cuda.cuGraphDestroy(graph), cuda.cuGraphDestroy(child), cuda.cuGraphDestroy(clone),
        cudart.cudaFree(vec), cuda.cuModuleUnload(module)]
report("graph_built", rcs == [0] * len(rcs) and results_seen == [{6.0}, {6.0}],
       f"status={rcs} values={results_seen}")


# -- the runtime's graph building on the driver's: memset after an empty node, cloned, instantiated
rt_graph, rt_clone, first, second, rt_exec = (ct.c_void_p() for _ in range(5))
area = ct.c_void_p()
cudart.cudaMalloc(ct.byref(area), ct.c_size_t(4 * 64))
sevens = MemsetNodeParams(area.value or 0, 0, 7, 4, 64, 1)
rcs = [cudart.cudaGraphCreate(ct.byref(rt_graph), 0), cudart.cudaGraphAddEmptyNode(ct.byref(first), rt_graph, None,
                                                                                     ct.c_size_t(0)),
       cudart.cudaGraphAddMemsetNode(ct.byref(second), rt_graph, ct.byref(first), ct.c_size_t(1), ct.byref(sevens)),
       cudart.cudaGraphClone(ct.byref(rt_clone), rt_graph), cudart.cudaGraphDestroy(rt_graph),
       cudart.cudaGraphInstantiate(ct.byref(rt_exec), rt_clone, ct.c_ulonglong(0)),
       cudart.cudaGraphLaunch(rt_exec, None), cudart.cudaDeviceSynchronize()]
sevens_seen = set(struct.unpack("<64I", fetch(area, 4 * 64)))
rcs += [cudart.cudaGraphExecDestroy(rt_exec), cudart.cudaGraphDestroy(rt_clone), cudart.cudaFree(area)]
report("graph_built_runtime", rcs == [0] * len(rcs) and sevens_seen == {7}, f"status={rcs} values={sevens_seen}")


# -- cuBLASXt on the VM's one GPU: host matrices in and out, a device matrix used in place
xt = ct.c_void_p()
one_device, other_device = (ct.c_int * 1)(0), (ct.c_int * 1)(1)
xa = (ct.c_float * 6)(1, 2, 3, 4, 5, 6)  # 2x3 column-major
xb = (ct.c_float * 3)(1, 0, -1)  # 3x1
xc = (ct.c_float * 2)(10, 20)
x_alpha, x_beta = ct.c_float(2.0), ct.c_float(0.5)
xb_dev = ct.c_void_p()
cudart.cudaMalloc(ct.byref(xb_dev), ct.c_size_t(12))
cudart.cudaMemcpy(xb_dev, xb, ct.c_size_t(12), 1)
size = ct.c_size_t
rcs = [cublas.cublasXtCreate(ct.byref(xt)), cublas.cublasXtDeviceSelect(xt, 1, one_device),
       cublas.cublasXtSetBlockDim(xt, 64),
       cublas.cublasXtSgemm(xt, 0, 0, size(2), size(1), size(3), ct.byref(x_alpha), xa, size(2), xb_dev, size(3),
                            ct.byref(x_beta), xc, size(2))]
refused = cublas.cublasXtDeviceSelect(xt, 1, other_device)
rcs += [cublas.cublasXtDestroy(xt), cudart.cudaFree(xb_dev)]
# C = 2 * [1 3 5; 2 4 6] [1 0 -1]^T + 0.5 C = 2 * [-4, -4] + [5, 10]
report("cublasxt_sgemm", rcs == [0] * len(rcs) and list(xc) == [-3.0, 2.0] and refused == 7,
       f"status={rcs} c={list(xc)} other_device={refused}")

print("SELFTEST PASS" if failures == 0 else f"SELFTEST FAIL ({failures})", flush=True)
sys.exit(1 if failures else 0)
