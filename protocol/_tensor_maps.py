"""Argument models of the 0x00Cx area: tensor maps (``CUtensorMap``, what TMA copies read), and the
``__managed__`` variables' module globals placed in managed memory.

``tensor_map_encode_tiled`` carries ``cuTensorMapEncodeTiled``'s arguments with CUDA's meanings:
``data_type`` a ``CUtensorMapDataType``, ``interleave``/``swizzle``/``l2_promotion``/``oob_fill`` the
``CUtensorMap*`` enums; of the arrays the first ``rank`` entries count (``stride1..4`` are
``globalStrides[0..3]``, in bytes, for dimensions 1 to 4), the rest are 0. The host validates every
one of them and answers the 128-byte map in the output payload.

``tensor_map_encode_im2col`` carries ``cuTensorMapEncodeIm2col``'s: the same tensor fields, no box, and
the bounding box's corners (``lower0..2``/``upper0..2`` are ``pixelBoxLowerCorner``/``UpperCorner``
``[0..2]``, W first; the first ``rank - 2`` count, the rest are 0) with ``channels_per_pixel`` and
``pixels_per_column``.
"""

from __future__ import annotations

from ._wire import I32, U32, U64, DevPtr, ModuleH, WireModel

__all__ = [
    "TENSOR_MAP_BYTES",
    "ModuleGlobalAliasArgs",
    "TensorMapEncodeIm2colArgs",
    "TensorMapEncodeTiledArgs",
]

#: sizeof(CUtensorMap): 128 bytes, 64-byte aligned in the guest
TENSOR_MAP_BYTES = 128


class TensorMapEncodeTiledArgs(WireModel):
    """``cuTensorMapEncodeTiled``: the tensor in global memory and the box a copy moves."""

    global_address: DevPtr
    dim0: U64
    dim1: U64
    dim2: U64
    dim3: U64
    dim4: U64
    stride1: U64
    stride2: U64
    stride3: U64
    stride4: U64
    data_type: U32
    rank: U32
    box0: U32
    box1: U32
    box2: U32
    box3: U32
    box4: U32
    elem_stride0: U32
    elem_stride1: U32
    elem_stride2: U32
    elem_stride3: U32
    elem_stride4: U32
    interleave: U32
    swizzle: U32
    l2_promotion: U32
    oob_fill: U32


class TensorMapEncodeIm2colArgs(WireModel):
    """``cuTensorMapEncodeIm2col``: the tensor in global memory and the pixels a copy moves."""

    global_address: DevPtr
    dim0: U64
    dim1: U64
    dim2: U64
    dim3: U64
    dim4: U64
    stride1: U64
    stride2: U64
    stride3: U64
    stride4: U64
    data_type: U32
    rank: U32
    lower0: I32
    lower1: I32
    lower2: I32
    upper0: I32
    upper1: I32
    upper2: I32
    channels_per_pixel: U32
    pixels_per_column: U32
    elem_stride0: U32
    elem_stride1: U32
    elem_stride2: U32
    elem_stride3: U32
    elem_stride4: U32
    interleave: U32
    swizzle: U32
    l2_promotion: U32
    oob_fill: U32


class ModuleGlobalAliasArgs(WireModel):
    """A ``__managed__`` variable: the module's global (named in the input payload) from now on lives at
    ``address``, ``size`` bytes of the VM's managed memory (the guest copied its initial value there)."""

    module: ModuleH
    address: DevPtr
    size: U64
