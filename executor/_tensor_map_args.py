"""``tensor_map_encode_tiled``'s and ``tensor_map_encode_im2col``'s arguments as a
:class:`~executor.ptx._tensor_map.TensorMap`, and their output: shared by both backends' handlers
(``_sim_tensor_maps``, ``_cuda_tensor_maps``)."""

from __future__ import annotations

from protocol import CUresult
from protocol.models import TENSOR_MAP_BYTES, TensorMapEncodeIm2colArgs, TensorMapEncodeTiledArgs

from ._base import CallIO
from ._errors import CudaError
from .ptx._tensor_map import IM2COL, TensorMap, TensorMapError, check

__all__ = ["WHAT", "WHAT_IM2COL", "checked_im2col_map", "checked_map", "write_map"]

WHAT = "cuTensorMapEncodeTiled"
WHAT_IM2COL = "cuTensorMapEncodeIm2col"


def checked_map(args: TensorMapEncodeTiledArgs, io: CallIO, *, sim: bool) -> TensorMap:
    """The map the arguments describe, checked by CUDA's rules (INVALID_VALUE) and by what is served
    (NOT_SUPPORTED: on ``sim`` what the engine serves); the output area must hold the 128 bytes."""
    if len(io.out) < TENSOR_MAP_BYTES:
        raise CudaError(
            CUresult.CUDA_ERROR_INVALID_VALUE, f"{WHAT}: out_cap {len(io.out)} < {TENSOR_MAP_BYTES}"
        )
    rank = max(1, min(args.rank, 5))  # a rank outside 1-5 is refused by check() below
    dims = (args.dim0, args.dim1, args.dim2, args.dim3, args.dim4)
    strides = (args.stride1, args.stride2, args.stride3, args.stride4)
    box = (args.box0, args.box1, args.box2, args.box3, args.box4)
    element_strides = (
        args.elem_stride0,
        args.elem_stride1,
        args.elem_stride2,
        args.elem_stride3,
        args.elem_stride4,
    )
    m = TensorMap(
        args.data_type,
        args.rank,
        args.global_address,
        dims[:rank],
        strides[: rank - 1],
        box[:rank],
        element_strides[:rank],
        args.interleave,
        args.swizzle,
        args.l2_promotion,
        args.oob_fill,
    )
    return _checked(m, WHAT, sim)


def checked_im2col_map(args: TensorMapEncodeIm2colArgs, io: CallIO, *, sim: bool) -> TensorMap:
    """As :func:`checked_map`, for ``cuTensorMapEncodeIm2col`` (rank 3 to 5: ``rank - 2`` corners)."""
    if len(io.out) < TENSOR_MAP_BYTES:
        raise CudaError(
            CUresult.CUDA_ERROR_INVALID_VALUE, f"{WHAT_IM2COL}: out_cap {len(io.out)} < {TENSOR_MAP_BYTES}"
        )
    rank = max(3, min(args.rank, 5))  # a rank outside 3-5 is refused by check() below
    spatial = rank - 2
    dims = (args.dim0, args.dim1, args.dim2, args.dim3, args.dim4)
    strides = (args.stride1, args.stride2, args.stride3, args.stride4)
    element_strides = (
        args.elem_stride0,
        args.elem_stride1,
        args.elem_stride2,
        args.elem_stride3,
        args.elem_stride4,
    )
    m = TensorMap(
        args.data_type,
        args.rank,
        args.global_address,
        dims[:rank],
        strides[: rank - 1],
        (),
        element_strides[:rank],
        args.interleave,
        args.swizzle,
        args.l2_promotion,
        args.oob_fill,
        IM2COL,
        (args.lower0, args.lower1, args.lower2)[:spatial],
        (args.upper0, args.upper1, args.upper2)[:spatial],
        args.channels_per_pixel,
        args.pixels_per_column,
    )
    return _checked(m, WHAT_IM2COL, sim)


def _checked(m: TensorMap, what: str, sim: bool) -> TensorMap:
    """``m`` after CUDA's rules (INVALID_VALUE) and what is served (NOT_SUPPORTED)."""
    try:
        check(m, engine=sim)
    except TensorMapError as exc:
        if exc.supported:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE, f"{what}: {exc}") from None
        served = "sim does not serve" if sim else "the mediator does not serve"
        raise CudaError(CUresult.CUDA_ERROR_NOT_SUPPORTED, f"{what}: {served} {exc}") from None
    return m


def write_map(io: CallIO, raw: bytes) -> None:
    io.out[:TENSOR_MAP_BYTES] = raw
    io.out_len = TENSOR_MAP_BYTES
