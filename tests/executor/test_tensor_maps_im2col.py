"""``tensor_map_encode_im2col`` (0x00CB) on both backends: sim's encoding of an im2col map, which the PTX
engine's decoder reads back field for field, CUDA's rules for ``cuTensorMapEncodeIm2col`` refused with
INVALID_VALUE (what sim does not serve: NOT_SUPPORTED), and on cuda the driver's map (a stand-in for
cuda.bindings.driver) after the tensor's whole extent is found in the VM's memory."""

from __future__ import annotations

import pytest

from executor import CudaError
from executor._base import Allocation
from executor._sim import SimExecutor
from executor.ptx._tensor_map import IM2COL, TensorMap, decode
from protocol import CUresult

from ._tensor_maps import IM2COL_ARGS, IM2COL_EXTENT, EncodeCall, TensorMapDriver
from .test_cuda_textures import _executor

INVALID, NOT_SUPPORTED = CUresult.CUDA_ERROR_INVALID_VALUE, CUresult.CUDA_ERROR_NOT_SUPPORTED
_CALL = EncodeCall("tensor_map_encode_im2col", IM2COL_ARGS)
_encode, _refused = _CALL.encode, _CALL.refused


def test_sim_encodes_an_im2col_map_the_engine_decodes() -> None:
    ex = SimExecutor()
    address = ex.memory.alloc(IM2COL_EXTENT)
    m = decode(_encode(ex, global_address=address))
    assert m == TensorMap(
        6,
        4,
        address,
        (64, 14, 9, 2),
        (128, 1792, 16128),
        (),
        (1, 1, 1, 1),
        0,
        3,
        2,
        1,
        IM2COL,
        (-1, -1),
        (-1, -1),
        64,
        64,
    )
    assert m.loaded == (64, 64) and m.box_bytes == 64 * 64 * 2 and m.inner_bytes == 128
    three = decode(
        _encode(
            ex,
            global_address=address,
            rank=3,
            dim2=18,
            dim3=0,
            stride3=0,
            lower1=0,
            upper1=0,
            elem_stride3=0,
            lower0=-300,
            upper0=200,
        )
    )
    assert three.lower == (-300,) and three.upper == (200,) and three.dims == (64, 14, 18)


@pytest.mark.parametrize(
    "changes",
    [
        {"rank": 2, "dim2": 0, "dim3": 0, "stride2": 0, "stride3": 0},  # im2col needs N, a spatial dim, C
        {"rank": 6},
        {"lower0": -129},  # 4D corners: signed 8-bit
        {"upper1": 128},
        {"lower0": 5, "upper0": -10},  # no area
        {"channels_per_pixel": 0},
        {"channels_per_pixel": 257},
        {"pixels_per_column": 1025},
        {"channels_per_pixel": 4},  # 8 bytes: not a multiple of 16
        {"swizzle": 2},  # 128-byte pixels past the 64B swizzle
        {"elem_stride1": 9},
        {"oob_fill": 1, "data_type": 2},  # a NaN fill for an integer type
        {"global_address": 8},
    ],
)
def test_what_cuda_refuses_is_invalid_value(changes: dict[str, int]) -> None:
    ex = SimExecutor()
    _refused(ex, INVALID, **({"global_address": ex.memory.alloc(IM2COL_EXTENT)} | changes))


def test_what_sim_does_not_serve_is_not_supported_and_the_map_must_fit() -> None:
    ex = SimExecutor()
    address = ex.memory.alloc(IM2COL_EXTENT)
    assert "sim does not serve" in _refused(
        ex, NOT_SUPPORTED, global_address=address, data_type=11, channels_per_pixel=32
    )
    with pytest.raises(CudaError) as caught:
        _encode(ex, out_cap=64, global_address=address)
    assert caught.value.status == INVALID


def test_cuda_asks_the_driver_for_an_im2col_map_of_the_vms_memory_only() -> None:
    driver = TensorMapDriver()
    ex = _executor(driver)
    ex.allocations.add(Allocation(0x10000, IM2COL_EXTENT, "alloc"))
    raw = _encode(ex, global_address=0x10000)
    assert raw == b"".join(x.to_bytes(8, "little") for x in range(200, 216))
    (args,) = driver.called("cuTensorMapEncodeIm2col")
    assert args == (
        6,
        4,
        0x10000,
        [64, 14, 9, 2],
        [128, 1792, 16128],
        [-1, -1],
        [-1, -1],
        64,
        64,
        [1, 1, 1, 1],
        0,
        3,
        2,
        1,
    )
    _refused(ex, INVALID, global_address=0x10000, dim3=3)  # the last image past the allocation
    _refused(ex, INVALID, global_address=0x80000)
    _refused(ex, INVALID, global_address=0x10000, lower0=-200)
    assert len(driver.called("cuTensorMapEncodeIm2col")) == 1
