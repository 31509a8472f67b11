"""The Python guest client's module loads (``GuestClient.module_load``), guest and ring server in one
process (``benchmarks._loopback``) over a 1 MiB region: an image that fits the arena goes in one
``module_load_data``; a larger one is uploaded in chunks of the copy size, as the C shim does, and its
kernel runs; a refused chunk still finishes the upload, so the host lets it go."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from benchmarks._loopback import Loopback
from executor import CudaError
from executor._module_upload import ModuleUploads
from executor._sim import SimExecutor
from guest import CudaCallError
from protocol import CUresult, Submission

PTX = (Path(__file__).resolve().parents[1] / "kernels" / "test_kernels.ptx").read_bytes()
VECTOR_ADD = b"_Z10vector_addPKfS0_Pfi"


@pytest.fixture
def loop() -> Iterator[Loopback]:
    with Loopback(region_size=1 << 20) as loop:
        loop.guest.init()
        yield loop


def uploads(loop: Loopback) -> ModuleUploads:
    executor = loop.executor
    assert isinstance(executor, SimExecutor)
    return executor.module_uploads


def traced(loop: Loopback) -> list[str]:
    calls: list[str] = []

    def hook(sub: Submission, name: str, status: int, duration: int) -> None:
        calls.append(name)

    loop.server.trace = hook
    return calls


def padded(size: int) -> bytes:
    """The kernels' PTX with a comment that makes it ``size`` bytes (NUL included)."""
    return PTX + b"// " + b"x" * (size - len(PTX) - 5) + b"\n\0"


def released(loop: Loopback, size: int) -> bool:
    """Whether the host holds no upload now: one of ``size`` bytes, all ``module_bytes`` allows, begins
    (and is let go again)."""
    gpu = loop.guest
    began = gpu.call("module_upload_begin", gpu.args("module_upload_begin", bytes=size))
    if began.status:
        return False
    gpu.call("module_load_upload", gpu.args("module_load_upload", upload=began.result.upload))  # type: ignore[union-attr]
    return True


def vector_add(loop: Loopback, module: int) -> None:
    """Run the module's vector_add over 1,000 floats and check the sums."""
    gpu = loop.guest
    function = int(gpu.value("module_get_function", "function", gpu.args("module_get_function", module=module),
                             data=VECTOR_ADD))
    n = 1000
    a, b = np.arange(n, dtype=np.float32), np.full(n, 0.5, dtype=np.float32)
    pa, pb, pc = (gpu.mem_alloc(4 * n) for _ in range(3))
    gpu.memcpy_htod(pa, a.tobytes())
    gpu.memcpy_htod(pb, b.tobytes())
    params = np.array([pa, pb, pc], dtype=np.uint64).tobytes() + np.int32(n).tobytes()
    gpu.checked("launch_kernel", gpu.args("launch_kernel", function=function, grid_x=8, grid_y=1, grid_z=1,
                                          block_x=128, block_y=1, block_z=1, shared_mem_bytes=0, stream=0),
                data=params)
    assert np.array_equal(np.frombuffer(gpu.memcpy_dtoh(pc, 4 * n), dtype=np.float32), a + b)


def test_an_image_that_fits_the_arena_loads_in_one_call(loop: Loopback) -> None:
    calls = traced(loop)
    module = loop.guest.module_load(PTX + b"\0")
    assert calls == ["module_load_data"]
    vector_add(loop, module)


def test_an_image_past_the_arena_is_uploaded_in_chunks_and_its_kernel_runs(loop: Loopback) -> None:
    gpu = loop.guest
    image = padded(3 * gpu.arena.size)
    uploads(loop).limit = len(image)
    calls = traced(loop)
    module = gpu.module_load(image)
    chunks = -(-len(image) // gpu.chunk)
    assert calls == ["module_upload_begin", *["module_upload_chunk"] * chunks, "module_load_upload"]
    assert chunks >= 12  # a quarter of the arena each
    assert released(loop, len(image))  # nothing of the upload is held past its load
    vector_add(loop, module)
    gpu.module_unload(module)


def test_an_image_past_module_bytes_is_refused_before_any_chunk(loop: Loopback) -> None:
    gpu = loop.guest
    uploads(loop).limit = 2 * gpu.arena.size
    calls = traced(loop)
    with pytest.raises(CudaCallError) as failed:
        gpu.module_load(padded(3 * gpu.arena.size))
    assert (failed.value.call, failed.value.status) == ("module_upload_begin", CUresult.CUDA_ERROR_INVALID_VALUE)
    assert calls == ["module_upload_begin"]


def test_a_refused_chunk_still_finishes_the_upload(loop: Loopback, monkeypatch: pytest.MonkeyPatch) -> None:
    gpu = loop.guest
    held = uploads(loop)
    image = padded(3 * gpu.arena.size)
    held.limit = len(image)
    real, seen = held.chunk, []

    def chunk(handle: int, offset: int, data: memoryview) -> None:
        seen.append(offset)
        if len(seen) == 3:
            raise CudaError(CUresult.CUDA_ERROR_OUT_OF_MEMORY, "the third chunk, refused by the test")
        real(handle, offset, data)

    monkeypatch.setattr(held, "chunk", chunk)
    calls = traced(loop)
    with pytest.raises(CudaCallError) as failed:
        gpu.module_load(image)
    assert (failed.value.call, failed.value.status) == ("module_upload_chunk", CUresult.CUDA_ERROR_OUT_OF_MEMORY)
    # no chunk after the refused one; the upload was finished (its load refused: it is incomplete)
    assert calls == ["module_upload_begin", *["module_upload_chunk"] * 3, "module_load_upload"]
    monkeypatch.undo()
    assert released(loop, len(image))  # and the host let it go
