"""Small helpers for conformance tests: calls that must fail, and typed shortcuts."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from guest import GuestClient
from protocol import CublasComputeType, CudaDataType, WireModel

#: CU_MEM_ACCESS_FLAGS_PROT_READWRITE
RW = 3


def status_of(gpu: GuestClient, name: str, args: WireModel | None = None, **kwargs: Any) -> int:
    """The status a synchronous call completes with (the call is expected to be rejected or not)."""
    return gpu.call(name, args, **kwargs).status


def upload(gpu: GuestClient, array: npt.NDArray[Any]) -> int:
    data = np.ascontiguousarray(array)
    ptr = gpu.mem_alloc(max(data.nbytes, 1))
    gpu.memcpy_htod(ptr, data.tobytes())
    return ptr


def download(gpu: GuestClient, ptr: int, like: npt.NDArray[Any]) -> npt.NDArray[Any]:
    raw = gpu.memcpy_dtoh(ptr, like.nbytes)
    return np.frombuffer(raw, dtype=like.dtype).reshape(like.shape)



def vmm_pool(gpu: GuestClient, chunks: int, reserve_chunks: int = 8) -> tuple[int, int, list[int]]:
    """GGML's pool: reserve a range, then create and map ``chunks`` granules back to back, read/write.

    Returns (base, granularity, physical handles)."""
    gran = int(gpu.value("mem_get_allocation_granularity", "granularity",
                         gpu.args("mem_get_allocation_granularity", device=0, option=1)))
    base = int(gpu.value("mem_address_reserve", "dptr", gpu.args(
        "mem_address_reserve", size=reserve_chunks * gran, alignment=0, addr=0, flags=0)))
    handles = []
    for i in range(chunks):
        handle = int(gpu.value("mem_create", "handle", gpu.args("mem_create", size=gran, device=0, flags=0)))
        gpu.checked("mem_map", gpu.args("mem_map", ptr=base + i * gran, size=gran, offset=0, handle=handle,
                                        flags=0))
        gpu.checked("mem_set_access", gpu.args("mem_set_access", ptr=base + i * gran, size=gran, device=0,
                                               flags=RW))
        handles.append(handle)
    return base, gran, handles


def load_module(gpu: GuestClient, image: bytes) -> int:
    return int(gpu.value("module_load_data", "module", data=image))


def get_function(gpu: GuestClient, module: int, name: str) -> int:
    return int(gpu.value("module_get_function", "function", gpu.args("module_get_function", module=module),
                         data=name.encode()))


def launch(gpu: GuestClient, function: int, grid: int, block: int, params: bytes, *, stream: int = 0,
           asynchronous: bool = True, cooperative: bool = False) -> int:
    """Launch with a 1-D geometry; returns the submission's status (0 for an asynchronous post)."""
    call = "launch_cooperative_kernel" if cooperative else "launch_kernel"
    args = gpu.args(call, function=function, grid_x=grid, grid_y=1, grid_z=1, block_x=block,
                    block_y=1, block_z=1, shared_mem_bytes=0, stream=stream)
    return gpu.call(call, args, data=params, asynchronous=asynchronous).status


def gemm_ex(gpu: GuestClient, handle: int, m: int, n: int, k: int, a: int, b: int, c: int, *,
            dtype: CudaDataType = CudaDataType.CUDA_R_32F, alpha: float = 1.0, beta: float = 0.0,
            transa: int = 0, transb: int = 0, asynchronous: bool = True) -> int:
    """``cublasGemmEx`` on packed column-major matrices (leading dimension = rows as stored)."""
    lda = k if transa else m
    ldb = n if transb else k
    args = gpu.args("cublas_gemm_ex", handle=handle, transa=transa, transb=transb, m=m, n=n, k=k,
                    alpha=alpha, a=a, a_type=dtype, lda=lda, b=b, b_type=dtype, ldb=ldb, beta=beta, c=c,
                    c_type=CudaDataType.CUDA_R_32F, ldc=m,
                    compute_type=CublasComputeType.CUBLAS_COMPUTE_32F, algo=-1)
    return gpu.call("cublas_gemm_ex", args, asynchronous=asynchronous).status
