"""What a texture or surface object handle stands for, as the engine reads it at a launch.

A kernel names a texture or surface by a 64-bit handle (``cudaTextureObject_t``,
``cudaSurfaceObject_t``) it received as a parameter; ``tex``/``tld4``/``txq`` and ``suld``/``sust``/
``suq`` resolve it through the :class:`TextureObjects` the backend passes to ``launch``. The texels
themselves live in the VM's device memory — a CUDA array is an allocation of ``sim`` the guest cannot
name by address, a linear or pitch-2D resource is the guest's own allocation — so the engine reads and
writes them through the same checked ``DeviceMemory`` as any global access: a resource freed under a
live object, or a layout pointing outside the VM's allocations, is ``CUDA_ERROR_ILLEGAL_ADDRESS``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Literal, Protocol

#: how a resource's texels are arranged: CUDA's array kinds; ``cube`` holds 6 faces as layers,
#: ``cube_layered`` 6 per layer; ``1d``/``2d`` also describe linear and pitch-2D resources
Geometry = Literal["1d", "2d", "3d", "1d_layered", "2d_layered", "cube", "cube_layered"]
#: a channel's numeric kind (``cudaChannelFormatKind``): float channels are 16 (half) or 32 bits
ChannelKind = Literal["signed", "unsigned", "float"]


class AddressMode(IntEnum):
    """``cudaTextureAddressMode`` / ``CUaddress_mode``, same values."""

    WRAP = 0
    CLAMP = 1
    MIRROR = 2
    BORDER = 3


@dataclass(frozen=True, slots=True)
class TexelLayout:
    """Where a resource's texels are: element ``(x, y, z, layer)`` starts at
    ``base + layer*layer_pitch + z*slice_pitch + y*row_pitch + x*texel_bytes``. Unused dimensions
    are 1 (``height``/``depth``/``layers``)."""

    base: int
    geometry: Geometry
    width: int
    height: int
    depth: int
    layers: int
    row_pitch: int
    slice_pitch: int
    layer_pitch: int
    channels: int  # 1, 2 or 4
    channel_bits: int  # 8, 16 or 32 (every channel the same width)
    kind: ChannelKind

    @property
    def texel_bytes(self) -> int:
        return self.channels * self.channel_bits // 8


@dataclass(frozen=True, slots=True)
class Sampler:
    """A texture object's ``cudaTextureDesc``: how coordinates become texels and texels values."""

    address_modes: tuple[AddressMode, AddressMode, AddressMode]
    linear_filter: bool  # cudaFilterModeLinear
    normalized_coords: bool
    normalized_float_read: bool  # cudaReadModeNormalizedFloat: 8/16-bit integers read in [0,1]/[-1,1]
    srgb: bool
    border_color: tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class TextureObject:
    layout: TexelLayout
    sampler: Sampler


@dataclass(frozen=True, slots=True)
class SurfaceObject:
    layout: TexelLayout


class TextureObjects(Protocol):
    """The launching VM's live texture and surface objects, by handle (``None``: no such object)."""

    def texture(self, handle: int) -> TextureObject | None: ...

    def surface(self, handle: int) -> SurfaceObject | None: ...
