"""Chunked module uploads on ``sim``: an image loads once every byte is there, in order; a chunk out of
place, an image past ``module_bytes`` or an unfinished upload is refused; what an upload holds is
charged to the VM's host budget and given back when it is loaded, refused or its context closes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from executor import CallIO, CudaError
from executor._base import DeviceConfig
from executor._module_upload import MAX_UPLOADS
from executor._sim import SimExecutor
from protocol import CALLS_BY_NAME, CUresult

IMAGE = (Path(__file__).resolve().parents[1] / "kernels" / "test_kernels.fatbin").read_bytes()


class Gpu:
    def __init__(self, module_bytes: int = 1 << 20) -> None:
        self.ex = SimExecutor(DeviceConfig(module_bytes=module_bytes), host_budget=64 << 20)

    def __call__(self, name: str, *, inp: bytes = b"", **args: Any) -> Any:
        spec = CALLS_BY_NAME[name]
        return self.ex.execute(spec, spec.args(**args), CallIO(memoryview(inp), memoryview(bytearray(64)), True))

    def fails(self, status: CUresult, name: str, *, inp: bytes = b"", **args: Any) -> str:
        with pytest.raises(CudaError) as err:
            self(name, inp=inp, **args)
        assert err.value.status == status, err.value.message
        return err.value.message

    def upload(self, image: bytes, chunk: int) -> int:
        handle = int(self("module_upload_begin", bytes=len(image)).upload)
        for offset in range(0, len(image), chunk):
            self("module_upload_chunk", upload=handle, offset=offset, inp=image[offset:offset + chunk])
        return handle


def test_an_image_uploaded_in_chunks_loads_as_it_would_in_one_call() -> None:
    gpu = Gpu()
    before = gpu.ex.host.used
    module = gpu("module_load_upload", upload=gpu.upload(IMAGE, 4096)).module
    whole = gpu("module_load_data", inp=IMAGE).module
    for handle in (module, whole):  # the same kernels and globals, the same layouts
        function = gpu("module_get_function", module=handle, inp=b"_Z10vector_addPKfS0_Pfi").function
        layout = gpu("func_get_param_layout", function=function)
        assert (layout.count, layout.param_bytes) == (4, 28)
        assert gpu("module_get_global", module=handle, inp=b"g_lut").bytes == 16
    gpu("module_unload", module=module)
    gpu("module_unload", module=whole)
    assert gpu.ex.host.used == before  # the upload's buffer was given back when it loaded


def test_chunks_must_come_in_order_and_stay_inside_the_image() -> None:
    gpu = Gpu()
    handle = int(gpu("module_upload_begin", bytes=100).upload)
    assert "next must start at 0" in gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "module_upload_chunk",
                                               upload=handle, offset=10, inp=b"x" * 10)
    gpu("module_upload_chunk", upload=handle, offset=0, inp=b"x" * 60)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "module_upload_chunk", upload=handle, offset=60, inp=b"x" * 41)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "module_upload_chunk", upload=handle, offset=2**64 - 1,
              inp=b"x")
    # unfinished: refused, and let go (a second load of it names a handle no longer held)
    assert "60 of its 100 bytes" in gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "module_load_upload",
                                              upload=handle)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "module_load_upload", upload=handle)
    assert gpu.ex.host.used == 0


def test_the_bound_and_the_host_budget_hold() -> None:
    gpu = Gpu(module_bytes=1 << 20)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "module_upload_begin", bytes=(1 << 20) + 1)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_VALUE, "module_upload_begin", bytes=0)
    first = int(gpu("module_upload_begin", bytes=600 << 10).upload)
    assert gpu.ex.host.used == 600 << 10  # charged before it is spent
    gpu.fails(CUresult.CUDA_ERROR_OUT_OF_MEMORY, "module_upload_begin", bytes=500 << 10)  # 1.1 MiB together
    small = [int(gpu("module_upload_begin", bytes=1000).upload) for _ in range(MAX_UPLOADS - 1)]
    gpu.fails(CUresult.CUDA_ERROR_OUT_OF_MEMORY, "module_upload_begin", bytes=1000)
    assert first not in small
    gpu.ex.close()  # a context that closes lets its uploads go
    assert gpu.ex.host.used == 0


def test_a_garbage_image_is_refused_and_its_upload_let_go() -> None:
    gpu = Gpu()
    handle = gpu.upload(b"\x7fELF" + b"\0" * 200, 64)
    gpu.fails(CUresult.CUDA_ERROR_INVALID_IMAGE, "module_load_upload", upload=handle)
    assert gpu.ex.host.used == 0
