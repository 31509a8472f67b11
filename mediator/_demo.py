"""``vgpu-mediator demo``: a mediator and a guest, end to end, on whatever backend is here.

Starts a real daemon (its own process, its own socket directory), connects a Python guest exactly
as QEMU would, and runs a GGML-shaped workload: upload weights, a transformer-block-sized GEMM
with cuBLAS column-major semantics, memsets and device-to-device copies, read back, check against
NumPy, and print what happened and how fast.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

from guest import CudaCallError, GuestClient
from protocol import CublasComputeType, CublasOperation, CudaDataType
from protocol.models import CublasArgs, GemmExArgs

from ._control_client import request
from ._launcher import running_mediator

__all__ = ["run_demo"]


def _gemm(client: GuestClient, handle: int, m: int, n: int, k: int, a: int, b: int, c: int) -> None:
    """C[m×n] = A[m×k] · B[k×n], column-major f32, as GGML asks cuBLAS for it."""
    args = GemmExArgs(
        handle=handle, transa=CublasOperation.CUBLAS_OP_N, transb=CublasOperation.CUBLAS_OP_N,
        m=m, n=n, k=k, alpha=1.0, a=a, a_type=CudaDataType.CUDA_R_32F, lda=m, b=b,
        b_type=CudaDataType.CUDA_R_32F, ldb=k, beta=0.0, c=c, c_type=CudaDataType.CUDA_R_32F, ldc=m,
        compute_type=CublasComputeType.CUBLAS_COMPUTE_32F, algo=-1)
    client.checked("cublas_gemm_ex", args)


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
            print(f"weights {size_mib} MiB: upload {weights.nbytes / up / 2**20:.0f} MiB/s, "
                  f"download {weights.nbytes / down / 2**20:.0f} MiB/s, identical: {ok_copy}")

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
