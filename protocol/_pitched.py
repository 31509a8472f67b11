"""Argument models of the pitched calls in 0x00C8-0x00CF: a 2D memset (``cuMemsetD2D8/16/32``) and box
copies whose host side is the caller's pinned memory (``cuMemcpy2D``/``cuMemcpy3D`` from or into a
pinned range).

``memset_2d`` stores ``height`` rows of ``width`` elements of ``element_bytes`` (1, 2 or 4) each,
``pitch`` bytes apart, from ``dst``; the bytes between rows are not touched. The host checks every
field: the element size, ``width * element_bytes <= pitch`` when there is more than one row, the
destination's alignment, and that the whole span (``(height - 1) * pitch + width * element_bytes``
bytes) is the VM's memory.

The pinned box copies name the device side as ``protocol/_textures.py``'s ``Memcpy3DHostArgs`` do (an
array, or pitched device memory) and the host side by its offset in the caller's pinned area, laid out
as ``offset + z*host_pitch*host_layout_height + y*host_pitch + x`` (the box's bytes, ``width_bytes`` a
row); the whole span must lie in one of the caller's pinned ranges.
"""

from __future__ import annotations

from ._textures import ArrayH
from ._wire import U32, U64, DevPtr, StreamH, WireModel

__all__ = ["Memcpy3DPinnedArgs", "Memset2DArgs"]


class Memset2DArgs(WireModel):
    """``cuMemsetD2D8/16/32``: ``value``'s low ``element_bytes`` bytes over a ``width`` x ``height`` box
    of elements whose rows are ``pitch`` bytes apart."""

    dst: DevPtr
    pitch: U64
    width: U64
    height: U64
    value: U32
    element_bytes: U32
    stream: StreamH


class Memcpy3DPinnedArgs(WireModel):
    """A box between the caller's pinned memory (at ``offset``, rows ``host_pitch`` apart, slices
    ``host_pitch * host_layout_height``) and one device-side operand, in stream order; no payload."""

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
    offset: U64
    host_x: U64
    host_y: U64
    host_z: U64
    host_pitch: U64
    host_layout_height: U64
