"""Function attributes through a guest: ``cuFuncGetAttribute``/``cuFuncSetAttribute`` round trips, the
values CUDA refuses, read-only attributes, wrong handles, and the dynamic shared memory limit a
launch is held to.

The expected figures are what ``ptxas -v`` printed for the sm_90 code of the images (the entry a
compute capability 9.0 device runs; see tests/executor/test_func_attributes.py), so a GPU of that
architecture must report the same: ``--backend cuda`` checks the simulator's reading against it.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest

from guest import GuestClient
from protocol import CUresult
from protocol import FunctionAttribute as A
from protocol.models import FuncGetAttributeArgs

from ._util import get_function, load_module, upload
from .conftest import KERNELS

ATTR_KERNELS = KERNELS.parent / "executor" / "attr_kernels"
SOFTMAX = "_Z12softmax_rowsPKfPfii"
SCALE = "_Z9scale_f32Pffi"
MAX_DYNAMIC = A.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
CARVEOUT = A.CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT
#: CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK and _OPTIN, COMPUTE_CAPABILITY_MAJOR and _MINOR
SHARED_PER_BLOCK, SHARED_OPTIN, CC_MAJOR, CC_MINOR = 8, 97, 75, 76


def get(gpu: GuestClient, function: int, attrib: A) -> int:
    return int(gpu.value("func_get_attribute", "value", gpu.args("func_get_attribute", attrib=attrib,
                                                                  function=function)))


def get_status(gpu: GuestClient, function: int, attrib: int) -> int:
    return gpu.call("func_get_attribute", FuncGetAttributeArgs.model_construct(attrib=attrib,
                                                                                function=function)).status


def set_status(gpu: GuestClient, function: int, attrib: A, value: int) -> int:
    return gpu.call("func_set_attribute", gpu.args("func_set_attribute", function=function, attrib=attrib,
                                                   value=value)).status


def launch_status(gpu: GuestClient, function: int, shared: int, params: bytes) -> int:
    args = gpu.args("launch_kernel", function=function, grid_x=1, grid_y=1, grid_z=1, block_x=32, block_y=1,
                    block_z=1, shared_mem_bytes=shared, stream=0)
    return gpu.call("launch_kernel", args, data=params).status


@pytest.fixture
def on_sm90(gpu: GuestClient) -> GuestClient:
    if (gpu.device_attribute(CC_MAJOR), gpu.device_attribute(CC_MINOR)) != (9, 0):
        pytest.skip("the expected figures are those of the images' sm_90 code")
    return gpu


def test_a_fatbin_kernel_reports_its_sm90_code(on_sm90: GuestClient) -> None:
    gpu = on_sm90
    softmax = get_function(gpu, load_module(gpu, (KERNELS / "test_kernels.fatbin").read_bytes()), SOFTMAX)
    per_block = gpu.device_attribute(SHARED_PER_BLOCK)
    assert {a: get(gpu, softmax, a) for a in (
        A.CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK, A.CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES,
        A.CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES, A.CU_FUNC_ATTRIBUTE_NUM_REGS, A.CU_FUNC_ATTRIBUTE_PTX_VERSION,
        A.CU_FUNC_ATTRIBUTE_BINARY_VERSION, MAX_DYNAMIC, CARVEOUT)} == {
        A.CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK: 1024,
        A.CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES: 8192,  # ptxas: 8192 bytes smem (two 1024-float arrays)
        A.CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES: 0,
        A.CU_FUNC_ATTRIBUTE_NUM_REGS: 20,
        A.CU_FUNC_ATTRIBUTE_PTX_VERSION: 90,
        A.CU_FUNC_ATTRIBUTE_BINARY_VERSION: 90,
        MAX_DYNAMIC: per_block - 8192,  # CUDA's default: the per-block limit less the static size
        CARVEOUT: -1,
    }


def test_launch_bounds_stack_frames_and_cluster_dimensions(on_sm90: GuestClient) -> None:
    gpu = on_sm90
    module = load_module(gpu, (ATTR_KERNELS / "attr_kernels.cubin").read_bytes())
    assert get(gpu, get_function(gpu, module, "bounded"), A.CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK) == 256
    assert get(gpu, get_function(gpu, module, "with_stack"), A.CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES) == 208
    clustered = get_function(gpu, module, "clustered")
    assert [get(gpu, clustered, a) for a in (A.CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_WIDTH,
                                             A.CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_HEIGHT,
                                             A.CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_DEPTH)] == [2, 1, 1]
    tile = get_function(gpu, module, "big_tile")  # 48 KiB static: no dynamic shared memory by default
    assert (get(gpu, tile, A.CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES), get(gpu, tile, MAX_DYNAMIC)) == (49152, 0)


def test_the_dynamic_shared_limit_holds_launches_and_is_raised_up_to_the_opt_in_limit(
        on_sm90: GuestClient) -> None:
    gpu = on_sm90
    softmax = get_function(gpu, load_module(gpu, (KERNELS / "test_kernels.fatbin").read_bytes()), SOFTMAX)
    x = upload(gpu, np.zeros(32, dtype=np.float32))
    params = struct.pack("<QQii", x, x, 1, 32)
    default = gpu.device_attribute(SHARED_PER_BLOCK) - 8192
    assert launch_status(gpu, softmax, default, params) == CUresult.CUDA_SUCCESS
    assert launch_status(gpu, softmax, default + 1, params) == CUresult.CUDA_ERROR_INVALID_VALUE
    most = gpu.device_attribute(SHARED_OPTIN) - 8192
    assert set_status(gpu, softmax, MAX_DYNAMIC, most + 1) == CUresult.CUDA_ERROR_INVALID_VALUE
    assert set_status(gpu, softmax, MAX_DYNAMIC, most) == CUresult.CUDA_SUCCESS
    assert get(gpu, softmax, MAX_DYNAMIC) == most
    assert launch_status(gpu, softmax, most, params) == CUresult.CUDA_SUCCESS
    assert launch_status(gpu, softmax, most + 1, params) == CUresult.CUDA_ERROR_INVALID_VALUE
    gpu.ctx_synchronize()  # the launches that ran left no error behind


def test_the_carveout_is_a_percentage(gpu: GuestClient) -> None:
    scale = get_function(gpu, load_module(gpu, (KERNELS / "test_kernels.fatbin").read_bytes()), SCALE)
    assert get(gpu, scale, CARVEOUT) == -1
    assert set_status(gpu, scale, CARVEOUT, 50) == CUresult.CUDA_SUCCESS
    assert get(gpu, scale, CARVEOUT) == 50
    assert set_status(gpu, scale, CARVEOUT, 101) == CUresult.CUDA_ERROR_INVALID_VALUE
    assert get(gpu, scale, CARVEOUT) == 50


@pytest.mark.parametrize("attrib", [A.CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK, A.CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES,
                                    A.CU_FUNC_ATTRIBUTE_NUM_REGS, A.CU_FUNC_ATTRIBUTE_BINARY_VERSION])
def test_read_only_attributes_refuse_to_be_set(gpu: GuestClient, attrib: A) -> None:
    scale = get_function(gpu, load_module(gpu, (KERNELS / "test_kernels.fatbin").read_bytes()), SCALE)
    before = get(gpu, scale, attrib)
    assert set_status(gpu, scale, attrib, before + 1) == CUresult.CUDA_ERROR_INVALID_VALUE
    assert get(gpu, scale, attrib) == before


def test_wrong_kinds_of_handle_stale_functions_and_unknown_attributes(gpu: GuestClient) -> None:
    module = load_module(gpu, (KERNELS / "test_kernels.cubin").read_bytes())
    scale = get_function(gpu, module, SCALE)
    for handle in (0, gpu.stream_create(), module):
        assert get_status(gpu, handle, A.CU_FUNC_ATTRIBUTE_NUM_REGS) == CUresult.CUDA_ERROR_INVALID_HANDLE
        assert set_status(gpu, handle, CARVEOUT, 10) == CUresult.CUDA_ERROR_INVALID_HANDLE
    assert get_status(gpu, scale, 99) == CUresult.CUDA_ERROR_INVALID_VALUE  # no such CUfunction_attribute
    gpu.checked("module_unload", gpu.args("module_unload", module=module))
    assert get_status(gpu, scale, A.CU_FUNC_ATTRIBUTE_NUM_REGS) == CUresult.CUDA_ERROR_INVALID_HANDLE


def test_a_ptx_image_is_laid_out_by_the_jit_compiler(gpu: GuestClient) -> None:
    """The driver compiles PTX at load; sim's compiler is its PTX engine. Both lay out the static
    shared memory as the source declares it, and the dynamic limit follows from it."""
    softmax = get_function(gpu, load_module(gpu, (KERNELS / "test_kernels.ptx").read_bytes()), SOFTMAX)
    assert get(gpu, softmax, A.CU_FUNC_ATTRIBUTE_PTX_VERSION) == 80
    static = get(gpu, softmax, A.CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES)
    assert static >= 8192  # two 1024-float arrays (a GPU may reserve more)
    assert 1 <= get(gpu, softmax, A.CU_FUNC_ATTRIBUTE_NUM_REGS) <= 255
    assert get(gpu, softmax, MAX_DYNAMIC) == 48 * 1024 - static
    assert set_status(gpu, softmax, MAX_DYNAMIC, 65536) == CUresult.CUDA_SUCCESS
