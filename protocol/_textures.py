"""Argument and result models of the 0x00Bx area: CUDA arrays, texture and surface objects, and the
copies that take an array as a side (``cuMemcpy2D``/``cuMemcpy3D`` with ``CU_MEMORYTYPE_ARRAY``).

Values keep CUDA's driver-API meaning: ``format`` is a ``CUarray_format`` (0x01 u8 … 0x20 f32),
``flags`` of an array are ``CUDA_ARRAY3D_*``, a texture's ``flags`` are ``CU_TRSF_*``, address modes
``CUaddress_mode`` and ``filter`` ``CUfilter_mode``. The host validates every one of them.

A copy *side* is an array when its array handle is not 0, else device memory laid out as
``device + z*pitch*layout_height + y*pitch + x``; ``x``/``width_bytes`` count bytes (for an array
side a whole number of its elements).
"""

from __future__ import annotations

from typing import Any

from ._wire import F32, U32, U64, DevPtr, StreamH, WireModel, _handle

__all__ = [
    "ArrayCreateArgs",
    "ArrayH",
    "ArrayArgs",
    "ArrayResult",
    "Memcpy3DArgs",
    "Memcpy3DHostArgs",
    "SurfObjH",
    "SurfObjectArgs",
    "SurfObjectCreateArgs",
    "SurfObjectResult",
    "TexObjH",
    "TexObjectArgs",
    "TexObjectCreateArgs",
    "TexObjectResult",
]

ArrayH: Any = _handle("array")
TexObjH: Any = _handle("texobject")
SurfObjH: Any = _handle("surfobject")


class ArrayCreateArgs(WireModel):
    """``cuArray3DCreate``'s ``CUDA_ARRAY3D_DESCRIPTOR``: height 0 is a 1D array, depth 0 a 1D or
    2D one (layered: depth is the layer count; cubemap: 6, or a multiple of 6 when layered)."""

    width: U64
    height: U64
    depth: U64
    format: U32
    channels: U32
    flags: U32


class ArrayResult(WireModel):
    array: ArrayH


class ArrayArgs(WireModel):
    array: ArrayH


class Memcpy3DArgs(WireModel):
    """A box of ``width_bytes`` x ``height`` x ``depth`` between two device-side operands (arrays or
    pitched device memory), in stream order."""

    src_array: ArrayH
    dst_array: ArrayH
    stream: StreamH
    src_x: U64
    src_y: U64
    src_z: U64
    src_device: DevPtr
    src_pitch: U64
    src_layout_height: U64
    dst_x: U64
    dst_y: U64
    dst_z: U64
    dst_device: DevPtr
    dst_pitch: U64
    dst_layout_height: U64
    width_bytes: U64
    height: U64
    depth: U64


class Memcpy3DHostArgs(WireModel):
    """A box between guest host memory and one device-side operand: the box's bytes, packed (rows of
    ``width_bytes`` one after another, slice after slice), ride in the input payload (to the device)
    or come back in the output payload (from it)."""

    array: ArrayH
    stream: StreamH
    x: U64
    y: U64
    z: U64
    device: DevPtr
    pitch: U64
    layout_height: U64
    width_bytes: U64
    height: U64
    depth: U64


class TexObjectCreateArgs(WireModel):
    """``cuTexObjectCreate``: the resource (``resource`` is a ``CUresourcetype``: 0 array, 2 linear,
    3 pitch 2D) and the texture description. For an array the format is the array's; for linear
    memory ``size_bytes`` bounds it; for pitch 2D ``width``/``height`` count elements."""

    resource: U32
    array: ArrayH
    device: DevPtr
    size_bytes: U64
    width: U64
    height: U64
    pitch: U64
    format: U32
    channels: U32
    address_x: U32
    address_y: U32
    address_z: U32
    filter: U32
    flags: U32
    border_r: F32
    border_g: F32
    border_b: F32
    border_a: F32


class TexObjectResult(WireModel):
    texture: TexObjH


class TexObjectArgs(WireModel):
    texture: TexObjH


class SurfObjectCreateArgs(WireModel):
    """``cuSurfObjectCreate`` of an array made with ``CUDA_ARRAY3D_SURFACE_LDST``."""

    array: ArrayH


class SurfObjectResult(WireModel):
    surface: SurfObjH


class SurfObjectArgs(WireModel):
    surface: SurfObjH
