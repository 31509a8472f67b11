"""``tensor_map_encode_im2col`` (0x00CB) on both backends: sim's encoding of an im2col map, which the PTX
engine's decoder reads back field for field, CUDA's rules for ``cuTensorMapEncodeIm2col`` refused with
INVALID_VALUE (what sim does not serve: NOT_SUPPORTED), and on cuda the driver's map (a stand-in for
cuda.bindings.driver) after the tensor's whole extent is found in the VM's memory."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from executor import CallIO, CudaError, Executor
from executor._base import Allocation
from executor._sim import SimExecutor
from executor.ptx._tensor_map import IM2COL, TensorMap, decode
from protocol import CALLS_BY_NAME, CUresult

from .test_cuda_textures import _executor
from .test_tensor_maps import TensorMapDriver

INVALID, NOT_SUPPORTED = CUresult.CUDA_ERROR_INVALID_VALUE, CUresult.CUDA_ERROR_NOT_SUPPORTED
#: an NHWC f16 tensor of 2 x 9 x 14 x 64 (rows of 128 bytes), padding 1 for a 3x3 filter, 64 pixels of
#: 64 channels a copy
ARGS: dict[str, Any] = dict(
    global_address=0,
    dim0=64,
    dim1=14,
    dim2=9,
    dim3=2,
    dim4=0,
    stride1=128,
    stride2=128 * 14,
    stride3=128 * 14 * 9,
    stride4=0,
    data_type=6,
    rank=4,
    lower0=-1,
    lower1=-1,
    lower2=0,
    upper0=-1,
    upper1=-1,
    upper2=0,
    channels_per_pixel=64,
    pixels_per_column=64,
    elem_stride0=1,
    elem_stride1=1,
    elem_stride2=1,
    elem_stride3=1,
    elem_stride4=0,
    interleave=0,
    swizzle=3,
    l2_promotion=2,
    oob_fill=1,
)
EXTENT = 128 * 14 * 9 * 2


def _encode(ex: Executor, out_cap: int = 128, **changes: Any) -> bytes:
    spec = CALLS_BY_NAME["tensor_map_encode_im2col"]
    handler = ex.handler_for(spec)
    assert handler is not None
    out = bytearray(out_cap)
    io = CallIO(memoryview(b""), memoryview(out))
    handler(spec.args(**(ARGS | changes)), io)
    assert io.out_len == 128
    return bytes(out[:128])


def _refused(ex: Executor, status: CUresult, **changes: Any) -> str:
    with pytest.raises(CudaError) as caught:
        _encode(ex, **changes)
    assert caught.value.status == status, caught.value
    return caught.value.message


def test_sim_encodes_an_im2col_map_the_engine_decodes() -> None:
    ex = SimExecutor()
    address = ex.memory.alloc(EXTENT)
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
    _refused(ex, INVALID, **({"global_address": ex.memory.alloc(EXTENT)} | changes))


def test_what_sim_does_not_serve_is_not_supported_and_the_map_must_fit() -> None:
    ex = SimExecutor()
    address = ex.memory.alloc(EXTENT)
    assert "sim does not serve" in _refused(
        ex, NOT_SUPPORTED, global_address=address, data_type=11, channels_per_pixel=32
    )
    with pytest.raises(CudaError) as caught:
        _encode(ex, out_cap=64, global_address=address)
    assert caught.value.status == INVALID


class Im2colDriver(TensorMapDriver):
    def cuTensorMapEncodeIm2col(self, *args: Any) -> tuple[int, Any]:  # noqa: N802 (the bindings' name)
        self.calls.append(("cuTensorMapEncodeIm2col", args))
        return (0, SimpleNamespace(opaque=list(range(200, 216))))


def test_cuda_asks_the_driver_for_an_im2col_map_of_the_vms_memory_only() -> None:
    driver = Im2colDriver()
    ex = _executor(driver)
    ex.allocations.add(Allocation(0x10000, EXTENT, "alloc"))
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
