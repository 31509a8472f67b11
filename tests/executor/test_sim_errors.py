"""The sim backend's coverage of the catalog, handle checking, and its promise to fail only as CUDA fails."""

from __future__ import annotations

import enum
import itertools
import math
import random
from typing import Any

import pydantic
import pytest

from executor import CallIO, CudaError
from executor._sim import SimExecutor
from protocol import CALLS, CALLS_BY_NAME, CublasStatus, CUresult

#: served by the module/launch part of the backend, wired separately
MODULE_CALLS = {"module_load_data", "module_unload", "module_get_function", "module_get_global",
                "func_get_param_info", "func_get_param_layout", "launch_kernel"}


class Gpu:
    def __init__(self) -> None:
        self.ex = SimExecutor()

    def __call__(self, name: str, *, inp: bytes = b"", out_cap: int = 0, **args: Any) -> Any:
        spec = CALLS_BY_NAME[name]
        io = CallIO(memoryview(inp), memoryview(bytearray(out_cap)))
        return self.ex.execute(spec, spec.args(**args), io)

    def fails(self, status: CUresult | CublasStatus, name: str, **kwargs: Any) -> CudaError:
        with pytest.raises(CudaError) as caught:
            self(name, **kwargs)
        assert caught.value.status == status, caught.value
        assert caught.value.message  # every failure says why
        return caught.value


def test_every_call_but_the_module_family_has_a_handler() -> None:
    ex = SimExecutor()
    missing = [spec.name for spec in CALLS.values()
               if spec.name not in MODULE_CALLS and ex.handler_for(spec) is None]
    assert missing == []
    assert ex.backend_name == "sim"


def test_handles_are_checked_by_kind() -> None:
    gpu = Gpu()
    stream = int(gpu("stream_create", flags=0).stream)
    event = int(gpu("event_create", flags=0).event)
    assert stream != event  # one id space for all kinds: a number names one object of one kind
    gpu("stream_destroy", stream=stream)
    gpu("event_record", event=event, stream=0)  # the event is untouched by the stream's destruction
    invalid = CUresult.CUDA_ERROR_INVALID_HANDLE
    gpu.fails(invalid, "stream_synchronize", stream=stream)
    gpu.fails(invalid, "event_query", event=event + 1)
    gpu.fails(invalid, "mem_release", handle=1)
    gpu.fails(invalid, "mem_map", ptr=0, size=2 << 20, offset=0, handle=3, flags=0)
    gpu.fails(invalid, "graph_destroy", graph=1)
    gpu.fails(invalid, "graph_exec_destroy", graph_exec=1)
    gpu.fails(invalid, "graph_launch", graph_exec=1, stream=0)
    gpu.fails(invalid, "stream_get_capture_info", stream=2)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_CONTEXT, "ctx_set_current", ctx=1)
    gpu.fails(CublasStatus.CUBLAS_STATUS_NOT_INITIALIZED, "cublas_destroy", handle=1)


def test_cublas_errors_stay_in_the_cublas_domain() -> None:
    gpu = Gpu()
    blas = int(gpu("cublas_create").handle)
    stream = int(gpu("stream_create", flags=0).stream)
    gpu("cublas_set_stream", handle=blas, stream=stream)
    gpu("stream_destroy", stream=stream)
    ptr = int(gpu("mem_alloc", bytesize=16).dptr)
    error = gpu.fails(CublasStatus.CUBLAS_STATUS_EXECUTION_FAILED, "cublas_sgemm", handle=blas, transa=0,
                      transb=0, m=2, n=2, k=2, alpha=1.0, a=ptr, lda=2, b=ptr, ldb=2, beta=0.0, c=ptr, ldc=2)
    assert "CUDA_ERROR_INVALID_HANDLE" in error.message  # the handle's stream is gone


def _candidates(annotation: Any, live: list[int]) -> list[Any]:
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return [*annotation, 3, 99]
    if annotation is float:
        return [0.0, 1.0, -2.5, math.nan, math.inf]
    return [0, 1, 2, 3, 4, 7, 255, 256, 4096, 1 << 21, (1 << 22) + 1, -1, 2**31 - 1, 2**64 - 1, *live,
            *(p + 1 for p in live), *(p + 4096 for p in live)]


def test_random_calls_fail_only_with_cuda_errors() -> None:
    """Whatever the arguments, a call succeeds or raises CudaError: never another exception."""
    rng = random.Random(1234)
    gpu = Gpu()
    ex = gpu.ex
    live = [int(gpu("mem_alloc", bytesize=4096).dptr)]
    vmm = int(gpu("mem_address_reserve", size=4 << 20, alignment=0, addr=0, flags=0).dptr)
    handle = int(gpu("mem_create", size=2 << 20, device=0, flags=0).handle)
    gpu("mem_map", ptr=vmm, size=2 << 20, offset=0, handle=handle, flags=0)
    gpu("mem_set_access", ptr=vmm, size=2 << 20, device=0, flags=3)
    live += [vmm, vmm + (2 << 20) - 8]
    gpu("stream_create", flags=0)
    gpu("event_create", flags=0)
    gpu("cublas_create")
    outcomes = {"ok": 0, "cuda": 0, "rejected_by_model": 0}
    specs = [spec for spec in CALLS.values() if spec.name not in MODULE_CALLS]
    for spec, _ in itertools.product(specs, range(40)):
        values = {name: rng.choice(_candidates(field.annotation, live))
                  for name, field in spec.args.model_fields.items()}
        try:
            args = spec.args(**values)
        except pydantic.ValidationError:
            outcomes["rejected_by_model"] += 1
            continue
        io = CallIO(memoryview(bytes(rng.choice([0, 1, 8, 64]))),
                    memoryview(bytearray(rng.choice([0, 1, 8, 64]))), rng.random() < 0.5)
        try:
            ex.execute(spec, args, io)
        except CudaError as exc:
            domain = CublasStatus if spec.status_domain == "cublasStatus_t" else CUresult
            assert isinstance(exc.status, domain)
            outcomes["cuda"] += 1
        else:
            outcomes["ok"] += 1
    assert outcomes["ok"] > 100 and outcomes["cuda"] > 100  # both paths were really exercised
    ex.close()
    assert ex.memory_used() == 0


def test_close_releases_every_kind_of_resource() -> None:
    gpu = Gpu()
    gpu("mem_alloc", bytesize=1 << 20)
    base = int(gpu("mem_address_reserve", size=2 << 20, alignment=0, addr=0, flags=0).dptr)
    handle = int(gpu("mem_create", size=2 << 20, device=0, flags=0).handle)
    gpu("mem_map", ptr=base, size=2 << 20, offset=0, handle=handle, flags=0)
    stream = int(gpu("stream_create", flags=0).stream)
    gpu("stream_begin_capture", stream=stream, mode=0)
    gpu("cublas_create")
    gpu("primary_ctx_retain", device=0)
    assert gpu.ex.memory_used() == 3 << 20
    gpu.ex.close()
    assert gpu.ex.memory_used() == 0
    gpu.ex.close()
    gpu.fails(CUresult.CUDA_ERROR_INVALID_HANDLE, "stream_synchronize", stream=stream)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "memset_d8", dst=base, count=1, value=0, stream=0)
