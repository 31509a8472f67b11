"""Point and linear texture sampling of every lane in C (``native/ptxtex.c``, the optional
``executor.ptx._texfast``), bitwise what :func:`._texture_sample.sample` computes in NumPy: one pass
over the lanes instead of a few dozen array passes per fetch. The texture's constants (sizes,
pitches, modes, read mode, border color) are formed once per object (:func:`_config`).

It reads only the span the caller checked as the resource's extent of the VM's device memory (the C
checks that the extent fits the span, and every texel offset against it). Where it does not serve a
texture -- half floats, sRGB reads, no extension, ``VGPU_PURE_PYTHON=1`` -- or a texel would fall
outside the span, :func:`sample` answers ``None`` and the NumPy form decides.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt

from ._extensions import optional_extension
from ._texture_objects import AddressMode, Sampler, TexelLayout

__all__ = ["border_color", "sample"]

F64 = npt.NDArray[np.float64]
_KIND = {"signed": 0, "unsigned": 1, "float": 2}
Config = tuple[Any, ...]


_native = optional_extension("_texfast")


def border_color(sampler: Sampler, as_float: bool) -> F64:
    """The border color a lane reads: the floats, or for an integer register their float32 bits."""
    color = np.array(sampler.border_color, dtype=np.float64)
    if not as_float:
        color = np.array(sampler.border_color, dtype=np.float32).view(np.int32).astype(np.float64)
    return color


@lru_cache(maxsize=256)
def _config(
    layout: TexelLayout, sampler: Sampler, as_float: bool, normalized: bool, modes: tuple[AddressMode, ...]
) -> Config | None:
    """The C sampler's constants for one texture read one way (see ``CONFIG_FORMAT`` in the C), or
    ``None`` where the NumPy form serves it."""
    if layout.channels not in (1, 2, 4) or layout.channel_bits not in (8, 16, 32) or layout.kind not in _KIND:
        return None  # no such format: NumPy's form decides what it is
    if layout.kind == "float" and layout.channel_bits != 32:
        return None  # half floats: NumPy's conversion is the reference (NaN payloads)
    norm_read = sampler.normalized_float_read
    if as_float and norm_read and sampler.srgb and layout.kind == "unsigned" and layout.channel_bits == 8:
        return None  # sRGB: NumPy's power is the reference
    all_modes = (*modes, *(AddressMode.CLAMP,) * (3 - len(modes)))
    return (
        len(modes),
        layout.width,
        layout.height,
        layout.depth,
        layout.layers,
        layout.texel_bytes,
        layout.row_pitch,
        layout.slice_pitch,
        layout.layer_pitch,
        layout.channels,
        layout.channel_bits,
        _KIND[layout.kind],
        *(int(m) for m in all_modes),
        int(sampler.linear_filter),
        int(normalized),
        int(norm_read),
        int(as_float),
        int(AddressMode.BORDER in modes),
        *(float(v) for v in border_color(sampler, as_float)),
    )


def sample(
    span: npt.NDArray[np.uint8],
    layout: TexelLayout,
    sampler: Sampler,
    coords: list[npt.NDArray[Any]],
    layer: npt.NDArray[np.int64],
    as_float: bool,
    normalized: bool,
    modes: list[AddressMode],
) -> F64 | None:
    """Each lane's values, ``(k, channels)`` (``(k, 4)`` with a border mode, missing channels 0 and
    alpha 1), from ``span``, the resource's checked extent; ``None``: the NumPy form decides."""
    if _native is None:
        return None
    config = _config(layout, sampler, as_float, normalized, tuple(modes))
    if config is None:
        return None
    k = layer.shape[0]
    out = np.empty((k, 4 if config[19] else layout.channels), dtype=np.float64)
    # a uniform coordinate (a broadcast view) as its one value: the C reads it for every lane
    xs: list[npt.NDArray[np.float32] | None] = [
        np.ascontiguousarray(c[:1] if c.strides == (0,) else c, dtype=np.float32) for c in coords
    ]
    xs += [None] * (3 - len(xs))
    layers = np.ascontiguousarray(layer, dtype=np.int64) if layout.layers > 1 else None
    if _native.sample(span, out, xs[0], xs[1], xs[2], layers, config) is not None:
        return None  # a texel outside the span: the checked gather names the fault
    return out
