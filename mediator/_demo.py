"""``vgpu-mediator demo``: a mediator and a guest, end to end, on whatever backend is here.

Starts a real daemon (its own process, its own socket directory), connects a Python guest exactly
as QEMU would, and runs a GGML-shaped workload: upload weights, a transformer-block-sized GEMM
with cuBLAS column-major semantics, memsets, a kernel from a real nvcc fatbin, the GEMM and the kernel
captured into a graph and replayed, read back, check against NumPy, and print what happened and how
fast.

The kernel ships with the package (``mediator/demo_kernels.fatbin``, the same bytes as
``tests/kernels/test_kernels.fatbin``, nvcc 13.0: sm_80 and sm_90 code and compute_90 PTX), so an
installed wheel runs the demo as a checkout does. On sim the PTX engine (``executor/ptx``) runs the
kernel from its PTX; on cuda the driver loads the sm_90 code (or JIT-compiles the PTX).
"""

from __future__ import annotations

import os
import struct
import tempfile
import time
from importlib import resources
from pathlib import Path

import numpy as np
import numpy.typing as npt

from guest import CudaCallError, GuestClient
from protocol import CublasComputeType, CublasOperation, CudaDataType, StreamCaptureMode
from protocol.models import CublasArgs, GemmExArgs

from ._control_client import request
from ._launcher import running_mediator

__all__ = ["run_demo"]

#: real nvcc output (tests/kernels/build.sh), shipped as package data
KERNEL_IMAGE = "demo_kernels.fatbin"


def kernel_image() -> bytes:
    return resources.files("mediator").joinpath(KERNEL_IMAGE).read_bytes()


def _gemm(client: GuestClient, handle: int, m: int, n: int, k: int, a: int, b: int, c: int) -> None:
    """C[m×n] = A[m×k] · B[k×n], column-major f32, as GGML asks cuBLAS for it."""
    args = GemmExArgs(
        handle=handle, transa=CublasOperation.CUBLAS_OP_N, transb=CublasOperation.CUBLAS_OP_N,
        m=m, n=n, k=k, alpha=1.0, a=a, a_type=CudaDataType.CUDA_R_32F, lda=m, b=b,
        b_type=CudaDataType.CUDA_R_32F, ldb=k, beta=0.0, c=c, c_type=CudaDataType.CUDA_R_32F, ldc=m,
        compute_type=CublasComputeType.CUBLAS_COMPUTE_32F, algo=-1)
    client.checked("cublas_gemm_ex", args)


def _kernel_and_graph(gpu: GuestClient, handle: int, d: int, tokens: int, w_ptr: int, x_ptr: int,
                      y_ptr: int, wx: npt.NDArray[np.float32]) -> bool:
    """SiLU from a real nvcc fatbin after the GEMM, captured into a graph and replayed."""
    module = int(gpu.value("module_load_data", "module", data=kernel_image()))
    silu = int(gpu.value("module_get_function", "function", gpu.args("module_get_function", module=module),
                         data=b"_Z8silu_f32PKfPfi"))
    stream = gpu.stream_create()
    gpu.checked("cublas_set_stream", gpu.args("cublas_set_stream", handle=handle, stream=stream))
    n = d * tokens
    launch = gpu.args("launch_kernel", function=silu, grid_x=(n + 255) // 256, grid_y=1, grid_z=1,
                      block_x=256, block_y=1, block_z=1, shared_mem_bytes=0, stream=stream)
    gpu.checked("stream_begin_capture", gpu.args("stream_begin_capture", stream=stream,
                                                 mode=StreamCaptureMode.CU_STREAM_CAPTURE_MODE_RELAXED))
    _gemm(gpu, handle, d, tokens, d, w_ptr, x_ptr, y_ptr)
    gpu.call("launch_kernel", launch, data=struct.pack("<QQi", y_ptr, y_ptr, n), asynchronous=True)
    graph = gpu.value("stream_end_capture", "graph", gpu.args("stream_end_capture", stream=stream))
    graph_exec = gpu.value("graph_instantiate", "graph_exec", gpu.args("graph_instantiate", graph=graph,
                                                                         flags=0))
    started = time.perf_counter()
    replays = 5
    for _ in range(replays):
        gpu.checked("graph_launch", gpu.args("graph_launch", graph_exec=graph_exec, stream=stream))
    gpu.stream_synchronize(stream)
    replay_s = (time.perf_counter() - started) / replays
    y = np.frombuffer(gpu.memcpy_dtoh(y_ptr, 4 * n), dtype=np.float32).reshape(d, tokens, order="F")
    ok = bool(np.allclose(y, wx / (1 + np.exp(-wx)), rtol=1e-4, atol=1e-3))
    print(f"graph (GemmEx + silu kernel from {KERNEL_IMAGE}) replayed {replays}×: "
          f"{replay_s * 1e3:.2f} ms each, matches NumPy: {ok}")
    for name, field, value in (("graph_exec_destroy", "graph_exec", graph_exec),
                               ("graph_destroy", "graph", graph), ("module_unload", "module", module)):
        gpu.checked(name, gpu.args(name, **{field: value}))
    gpu.stream_destroy(stream)
    return ok


def run_demo(*, backend: str = "auto", size_mib: int = 16) -> int:
    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory(prefix="vgpu-demo-") as tmp, \
            running_mediator(Path(tmp), backend=backend) as mediator:
        sockets = mediator.sockets
        print(f"mediator started (backend {backend}), guest connecting to {sockets / 'vm1.sock'}")
        with GuestClient.connect(sockets / "vm1.sock") as gpu:
            gpu.init()
            print(f"device: {gpu.device_name()}, {gpu.device_total_mem() / 2**30:.0f} GiB, "
                  f"compute capability {gpu.device_attribute(75)}.{gpu.device_attribute(76)}")
            started = time.perf_counter()
            for _ in range(2000):
                gpu.nop()
            rtt = (time.perf_counter() - started) / 2000
            print(f"round trip of an empty call: {rtt * 1e6:.1f} µs")

            weights = rng.standard_normal(size_mib * 2**20 // 4, dtype=np.float32)
            dptr = gpu.mem_alloc(weights.nbytes)
            started = time.perf_counter()
            gpu.memcpy_htod(dptr, weights.data)
            up = time.perf_counter() - started
            started = time.perf_counter()
            back = np.frombuffer(gpu.memcpy_dtoh(dptr, weights.nbytes), dtype=np.float32)
            down = time.perf_counter() - started
            ok_copy = np.array_equal(back, weights)
            # one cold copy each way (fresh pages on both sides): vgpu-bench measures steady state
            print(f"weights {size_mib} MiB, first copy each way: upload {weights.nbytes / up / 2**20:.0f} "
                  f"MiB/s, download {weights.nbytes / down / 2**20:.0f} MiB/s, identical: {ok_copy}")

            # One transformer-block-sized projection: x[tokens×d] · W[d×d] (column-major view).
            d, tokens = 256, 32
            w = weights[: d * d].reshape(d, d, order="F")
            x = rng.standard_normal((d, tokens), dtype=np.float32)
            x_ptr = gpu.mem_alloc(x.nbytes)
            y_ptr = gpu.mem_alloc(d * tokens * 4)
            gpu.memcpy_htod(x_ptr, np.asfortranarray(x).tobytes(order="F"))
            gpu.memset_d32(y_ptr, 0x7FC00000, d * tokens)  # NaN: beta=0 must ignore it
            ok_gemm: bool | None = None
            try:
                handle = int(gpu.checked("cublas_create").result.handle)  # type: ignore[union-attr]
                started = time.perf_counter()
                _gemm(gpu, handle, d, tokens, d, dptr, x_ptr, y_ptr)
                gpu.ctx_synchronize()
                gemm_s = time.perf_counter() - started
                y = np.frombuffer(gpu.memcpy_dtoh(y_ptr, d * tokens * 4), dtype=np.float32)
                y = y.reshape(d, tokens, order="F")
                ok_gemm = bool(np.allclose(y, w @ x, rtol=1e-4, atol=1e-3))
                print(f"GemmEx {d}×{tokens}×{d} f32: {gemm_s * 1e3:.2f} ms, matches NumPy: {ok_gemm}")
                ok_gemm = ok_gemm and _kernel_and_graph(gpu, handle, d, tokens, dptr, x_ptr, y_ptr, w @ x)
                gpu.checked("cublas_destroy", CublasArgs(handle=handle))
            except CudaCallError as exc:
                print(f"GEMM not served by this backend: {exc}")
            for ptr in (dptr, x_ptr, y_ptr):
                gpu.mem_free(ptr)
            free, _total = gpu.mem_get_info()
            held = request(mediator.control, {"cmd": "status"})["vms"][0]["memory_used"]
            print(f"after freeing: the VM holds {held} bytes of device memory, "
                  f"{free / 2**30:.1f} GiB free to it")
        ok = ok_copy and ok_gemm is not False
        print("demo", "passed" if ok else "FAILED", f"(pid {os.getpid()})")
        return 0 if ok else 1
