"""Modules and launches: real nvcc images, kernels found by mangled name, parameter layouts, globals."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from guest import GuestClient
from protocol import CUresult

from ._util import download, get_function, launch, load_module, status_of, upload
from .conftest import KERNELS

VECTOR_ADD = "_Z10vector_addPKfS0_Pfi"
SCALE_BY_GLOBAL = "_Z15scale_by_globalPfi"
MYSTERY = "_Z14mystery_kernelcdPf4Pairs"


@pytest.mark.parametrize("image", ["test_kernels.ptx", "test_kernels.cubin", "test_kernels.fatbin",
                                   "test_kernels.default.fatbin", "test_kernels.lz4.fatbin"])
def test_vector_add_from_each_image_kind(gpu: GuestClient, backend: str, image: str) -> None:
    module = load_module(gpu, (KERNELS / image).read_bytes())
    function = get_function(gpu, module, VECTOR_ADD)
    n = 1000
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(n, dtype=np.float32), rng.standard_normal(n, dtype=np.float32)
    pa, pb, pc = upload(gpu, a), upload(gpu, b), gpu.mem_alloc(4 * n)
    params = struct.pack("<QQQi4x", pa, pb, pc, n)
    if backend == "sim" and image.endswith(".cubin"):  # sim runs PTX; a cubin cannot run on the CPU
        assert launch(gpu, function, 4, 256, params, asynchronous=False) == CUresult.CUDA_ERROR_NOT_SUPPORTED
        return
    assert launch(gpu, function, (n + 255) // 256, 256, params) == 0
    gpu.ctx_synchronize()
    np.testing.assert_allclose(download(gpu, pc, a), a + b, rtol=1e-6)
    gpu.checked("module_unload", gpu.args("module_unload", module=module))


def test_the_parameter_layout_is_the_compilers(gpu: GuestClient) -> None:
    module = load_module(gpu, (KERNELS / "test_kernels.fatbin").read_bytes())
    mystery = get_function(gpu, module, MYSTERY)
    # char at 0, double at 8, pointer at 16, struct Pair{int,int} at 24, short at 32
    expected = [(0, 1), (8, 8), (16, 8), (24, 8), (32, 2)]
    for index, (offset, size) in enumerate(expected):
        info = gpu.checked("func_get_param_info", gpu.args("func_get_param_info", function=mystery,
                                                           index=index)).result
        assert (info.offset, info.size) == (offset, size)  # type: ignore[union-attr]
    assert status_of(gpu, "func_get_param_info", gpu.args("func_get_param_info", function=mystery,
                                                            index=5)) == CUresult.CUDA_ERROR_INVALID_VALUE
    layout = gpu.checked("func_get_param_layout", gpu.args("func_get_param_layout", function=mystery),
                         out_cap=64)
    assert layout.result.count == 5 and layout.result.param_bytes == 34  # type: ignore[union-attr]
    assert list(struct.iter_unpack("<II", layout.out)) == expected


def test_a_kernel_nobody_wrote_a_twin_for_runs(gpu: GuestClient) -> None:
    module = load_module(gpu, (KERNELS / "test_kernels.ptx").read_bytes())
    mystery = get_function(gpu, module, MYSTERY)
    out = gpu.mem_alloc(4)
    params = struct.pack("<b7xdQii h6x", 1, 2.0, out, 3, 4, 5)
    assert launch(gpu, mystery, 1, 1, params, asynchronous=False) == 0
    assert struct.unpack("<f", gpu.memcpy_dtoh(out, 4))[0] == 1 + 2.0 + 3 * 4 + 5


def test_a_kernel_with_an_instruction_sim_does_not_implement_is_not_supported(gpu: GuestClient,
                                                                               backend: str) -> None:
    if backend != "sim":
        pytest.skip("a GPU implements every instruction")
    module = load_module(gpu, (KERNELS / "ptx_sync.compute_90.ptx").read_bytes())
    uses_mma_sp = get_function(gpu, module, "uses_mma_sp")  # the sparse tensor-core mma.sp
    a, d = gpu.mem_alloc(32), gpu.mem_alloc(128)
    params = struct.pack("<QQ", a, d)
    assert launch(gpu, uses_mma_sp, 1, 32, params, asynchronous=False) == CUresult.CUDA_ERROR_NOT_SUPPORTED
    gpu.ctx_synchronize()  # not sticky: the context carries on


def test_globals_are_initialized_readable_and_writable(gpu: GuestClient) -> None:
    module = load_module(gpu, (KERNELS / "test_kernels.fatbin").read_bytes())
    lut = gpu.checked("module_get_global", gpu.args("module_get_global", module=module), data=b"g_lut\0")
    ptr, size = lut.result.dptr, lut.result.bytes  # type: ignore[union-attr]
    assert size == 16 and gpu.memcpy_dtoh(ptr, 16) == struct.pack("<4i", 1, 2, 3, 4)
    scale = gpu.checked("module_get_global", gpu.args("module_get_global", module=module),
                        data=b"g_scale").result
    gpu.memcpy_htod(scale.dptr, struct.pack("<f", 3.0))  # type: ignore[union-attr]
    x = np.arange(64, dtype=np.float32)
    px = upload(gpu, x)
    launch(gpu, get_function(gpu, module, SCALE_BY_GLOBAL), 1, 64, struct.pack("<Qi4x", px, 64))
    gpu.ctx_synchronize()
    np.testing.assert_array_equal(download(gpu, px, x), 3 * x)
    # past the global's end is outside the VM's memory
    assert status_of(gpu, "memcpy_dtoh", gpu.args("memcpy_dtoh", src=ptr + 8, count=16, stream=0),
                     out_cap=16) == CUresult.CUDA_ERROR_INVALID_VALUE


def test_lookup_and_handle_errors(gpu: GuestClient) -> None:
    module = load_module(gpu, (KERNELS / "test_kernels.cubin").read_bytes())
    get = gpu.args("module_get_function", module=module)
    assert status_of(gpu, "module_get_function", get, data=b"no_such_kernel") == CUresult.CUDA_ERROR_NOT_FOUND
    assert status_of(gpu, "module_get_global", gpu.args("module_get_global", module=module),
                     data=b"g_nothing") == CUresult.CUDA_ERROR_NOT_FOUND
    assert status_of(gpu, "module_get_function", gpu.args("module_get_function", module=module + 99),
                     data=VECTOR_ADD.encode()) == CUresult.CUDA_ERROR_INVALID_HANDLE
    function = get_function(gpu, module, VECTOR_ADD)
    gpu.checked("module_unload", gpu.args("module_unload", module=module))
    assert status_of(gpu, "module_unload", gpu.args("module_unload", module=module)) == \
        CUresult.CUDA_ERROR_INVALID_HANDLE
    assert launch(gpu, function, 1, 1, bytes(28), asynchronous=False) == CUresult.CUDA_ERROR_INVALID_HANDLE


def test_bad_images_and_launches_are_refused(gpu: GuestClient) -> None:
    for image in (b"\x7fELF" + bytes(60), b"garbage that is not ptx", bytes(4096)):
        assert status_of(gpu, "module_load_data", data=image) in (
            CUresult.CUDA_ERROR_INVALID_IMAGE, CUresult.CUDA_ERROR_INVALID_PTX, CUresult.CUDA_ERROR_NO_BINARY_FOR_GPU)
    module = load_module(gpu, (KERNELS / "test_kernels.fatbin").read_bytes())
    function = get_function(gpu, module, VECTOR_ADD)
    assert launch(gpu, function, 1, 32, bytes(8), asynchronous=False) == CUresult.CUDA_ERROR_INVALID_VALUE


def test_a_kernel_that_writes_outside_the_vms_memory_is_a_sticky_fault(gpu: GuestClient, backend: str) -> None:
    if backend != "sim":
        pytest.skip("on a GPU this kills the context for the rest of the session's tests")
    module = load_module(gpu, (KERNELS / "test_kernels.fatbin").read_bytes())
    function = get_function(gpu, module, VECTOR_ADD)
    a = gpu.mem_alloc(1024)
    # synchronous, so the fault is this call's answer whatever the kernel's duration (after a
    # long drain the supervisor may rebuild the context before the guest's next call is read)
    params = struct.pack("<QQQi4x", a, a, 0x1000, 1024)
    assert launch(gpu, function, 4, 256, params, asynchronous=False) == CUresult.CUDA_ERROR_ILLEGAL_ADDRESS
    # sticky: every later call of this process's context fails the same way, as on a GPU, until the
    # process starts over (its channel reopened: a clean context; the VM's other processes never noticed)
    for _ in range(2):
        assert status_of(gpu, "mem_alloc", gpu.args("mem_alloc", bytesize=256)) == CUresult.CUDA_ERROR_ILLEGAL_ADDRESS
    gpu.reopen()
    gpu.init()
    assert gpu.mem_alloc(256)
