"""``tensor_map_encode_tiled`` (0x00C0) on both backends: sim's own 128-byte encoding, which the PTX
engine's decoder reads back field for field, and CUDA's rules refused with INVALID_VALUE (what sim does
not serve: NOT_SUPPORTED); on cuda the driver's map (a stand-in for cuda.bindings.driver), after the
tensor's whole extent is found in the VM's memory."""

from __future__ import annotations

from typing import Any

import pytest

from executor import CudaError
from executor._base import Allocation
from executor._sim import SimExecutor
from executor.ptx._tensor_map import TensorMap, decode
from protocol import CUresult

from ._tensor_maps import EncodeCall, TensorMapDriver
from .test_cuda_textures import _executor

INVALID, NOT_SUPPORTED = CUresult.CUDA_ERROR_INVALID_VALUE, CUresult.CUDA_ERROR_NOT_SUPPORTED
#: a 2D float32 tensor of 100 x 40 elements, rows 512 bytes apart, 32 x 16 boxes
ARGS: dict[str, Any] = dict(
    global_address=0,
    dim0=100,
    dim1=40,
    dim2=0,
    dim3=0,
    dim4=0,
    stride1=512,
    stride2=0,
    stride3=0,
    stride4=0,
    data_type=7,
    rank=2,
    box0=32,
    box1=16,
    box2=0,
    box3=0,
    box4=0,
    elem_stride0=1,
    elem_stride1=2,
    elem_stride2=0,
    elem_stride3=0,
    elem_stride4=0,
    interleave=0,
    swizzle=3,
    l2_promotion=2,
    oob_fill=1,
)


_CALL = EncodeCall("tensor_map_encode_tiled", ARGS)
_encode, _refused = _CALL.encode, _CALL.refused


def test_sim_encodes_a_map_the_engine_decodes() -> None:
    ex = SimExecutor()
    address = ex.memory.alloc(40 * 512)
    m = decode(_encode(ex, global_address=address))
    assert m == TensorMap(7, 2, address, (100, 40), (512,), (32, 16), (1, 2), 0, 3, 2, 1)
    assert m.loaded == (32, 8) and m.box_bytes == 32 * 8 * 4


@pytest.mark.parametrize(
    "changes",
    [
        dict(rank=0),
        dict(rank=6),
        dict(data_type=16),
        dict(global_address=0x1008),
        dict(dim1=0),
        dict(dim0=(1 << 32) + 1),
        dict(stride1=500),
        dict(stride1=1 << 40),
        dict(box0=0),
        dict(box1=257),
        dict(box0=2),
        dict(elem_stride1=9),
        dict(swizzle=7),
        dict(swizzle=2),
        dict(oob_fill=1, data_type=2),
        dict(l2_promotion=5),
        dict(interleave=3),
        dict(global_address=(1 << 64) - 4096, dim1=4000),
    ],
    ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()),
)
def test_what_cuda_refuses_is_invalid_value(changes: dict[str, int]) -> None:
    ex = SimExecutor()
    base = dict(global_address=0x7F00_0000_0000) | changes
    assert _refused(ex, INVALID, **base).startswith("cuTensorMapEncodeTiled")


@pytest.mark.parametrize(
    "changes",
    [
        dict(interleave=1, rank=3, dim2=2, stride2=512 * 40, box2=1, elem_stride2=1),
        dict(data_type=10),
        dict(data_type=11),
        dict(swizzle=4),
    ],
)
def test_what_sim_does_not_serve_is_not_supported(changes: dict[str, int]) -> None:
    message = _refused(SimExecutor(), NOT_SUPPORTED, **(dict(global_address=0x7F00_0000_0000) | changes))
    assert "sim does not serve" in message


def test_the_output_area_must_hold_the_map() -> None:
    with pytest.raises(CudaError) as caught:
        _encode(SimExecutor(), out_cap=64, global_address=0x7F00_0000_0000)
    assert caught.value.status == INVALID


def test_cuda_asks_the_driver_for_a_map_of_the_vms_memory_only() -> None:
    driver = TensorMapDriver()
    ex = _executor(driver)
    ex.allocations.add(Allocation(0x10000, 40 * 512, "alloc"))
    raw = _encode(ex, global_address=0x10000)
    assert raw == b"".join(x.to_bytes(8, "little") for x in range(100, 116))
    (args,) = driver.called("cuTensorMapEncodeTiled")
    assert args == (7, 2, 0x10000, [100, 40], [512], [32, 16], [1, 2], 0, 3, 2, 1)
    # the last row's end past the allocation, another VM's address, CUDA's rules: never the driver's
    _refused(ex, INVALID, global_address=0x10000, dim1=41)
    _refused(ex, INVALID, global_address=0x80000)
    _refused(ex, INVALID, global_address=0x10000, stride1=500)
    assert len(driver.called("cuTensorMapEncodeTiled")) == 1
    # what only the driver serves reaches it on cuda (a TF32 map of the same bytes); packed sub-byte
    # types, whose footprint is not checked here, do not
    _encode(ex, global_address=0x10000, data_type=11)
    assert _refused(ex, NOT_SUPPORTED, global_address=0x10000, data_type=13, oob_fill=0).endswith(
        "(packed sub-byte)"
    )
    assert len(driver.called("cuTensorMapEncodeTiled")) == 2
