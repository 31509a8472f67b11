"""Texture sampling as the CUDA programming guide's *Texture Fetching* appendix describes it, over the
active lanes at once: coordinates to texel indices (normalized coordinates, address modes), point and
linear filtering with the hardware's 8-bit weight fractions, cube-map face selection, and texels to
values (read modes, half floats, sRGB). Texels are read through the checked ``gather_device`` of
``_memory``: a layout pointing outside the VM's allocations faults as any load does.

Nothing here trusts the coordinates: NaN reads as 0, and every index is brought inside the resource
by the address mode (or marked as the border) before an address is formed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from numpy._core import umath as _umath

from .._errors import CudaError
from .._kernels import DeviceMemory
from ._memory import _span, gather_device
from ._numeric import uint_of
from ._texture_fast import border_color
from ._texture_fast import sample as sample_native
from ._texture_objects import AddressMode, Sampler, TexelLayout

__all__ = ["F64", "I64", "cube_face", "decode", "fetch", "gather4", "sample", "texel_addresses"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Bool = npt.NDArray[np.bool_]
#: coordinates: a float32 register's values, or float64 ones (a cube face's), rounded to float32 here
Floats = npt.NDArray[np.float32] | F64
#: np.clip's ufunc itself: the same values without the Python wrapper's checks (a tenth of a fetch)
_clip: np.ufunc = getattr(_umath, "clip")  # noqa: B009 -- no stub names it

#: coordinates past this magnitude (in texels) are clamped to it before they become integers: every
#: address mode answers the same for them as for any far coordinate (wrap's period aside)
_FAR = float(1 << 40)
#: linear filtering's weights: 9-bit fixed point with 8 fractional bits (the guide's appendix)
_WEIGHT_ONE = 256.0


def _finite(x: npt.NDArray[np.float32]) -> F64:
    """``x`` with NaN as 0 and magnitudes bounded (see :data:`_FAR`; exact in float32), as float64."""
    bounded: F64 = _clip(x, -_FAR, _FAR).astype(np.float64)  # infinities too
    nan = np.isnan(bounded)
    if nan.any():
        bounded[nan] = 0.0
    return bounded


def _scaled(coord: Floats, size: int, mode: AddressMode, normalized: bool) -> F64:
    """A coordinate in texels. Normalized coordinates wrap (``frac(x)``) or mirror (``frac(x)`` where
    ``floor(x)`` is even, ``1 - frac(x)`` where odd) as the programming guide says, then scale by the
    size; in float32, as the hardware's coordinate arithmetic is."""
    c = coord.astype(np.float32, copy=False)
    if normalized:
        if mode in (AddressMode.WRAP, AddressMode.MIRROR):
            whole = np.floor(c)
            c = c - whole
            if mode == AddressMode.MIRROR:
                c = np.where(np.fmod(whole, np.float32(2)) == 0, c, np.float32(1) - c)
        c = c * np.float32(size)
    return _finite(c)


def address(index: I64, size: int, mode: AddressMode, normalized: bool) -> tuple[I64, Bool | None]:
    """Integer texel indices brought inside ``[0, size)`` by ``mode``, and which are the border
    (``None``: none). Wrap and mirror apply only to normalized coordinates, otherwise they clamp, as
    the guide says; after :func:`_scaled` they matter only for a linear filter's texels beyond the
    edges (wrapped around, or mirrored back)."""
    if mode == AddressMode.BORDER:
        outside = (index < 0) | (index >= size)
        return _clip(index, 0, size - 1), outside
    if normalized and mode == AddressMode.WRAP:
        return np.mod(index, size), None
    if normalized and mode == AddressMode.MIRROR:
        period = np.mod(index, 2 * size)
        return np.where(period < size, period, 2 * size - 1 - period), None
    return _clip(index, 0, size - 1), None


def cube_face(x: F64, y: F64, z: F64) -> tuple[I64, F64, F64]:
    """The face (0..5: +x -x +y -y +z -z) a direction selects and the face's normalized coordinates,
    by the guide's cubemap table; ties go to x, then y."""
    ax, ay, az = np.abs(x), np.abs(y), np.abs(z)
    on_x = (ax >= ay) & (ax >= az)
    on_y = ~on_x & (ay >= az)
    face = np.where(
        on_x, np.where(x >= 0, 0, 1), np.where(on_y, np.where(y >= 0, 2, 3), np.where(z >= 0, 4, 5))
    )
    major = np.where(on_x, ax, np.where(on_y, ay, az))
    s = np.where(on_x, np.where(x >= 0, -z, z), np.where(on_y, x, np.where(z >= 0, x, -x)))
    t = np.where(on_y, np.where(y >= 0, z, -z), -y)
    with np.errstate(all="ignore"):
        u = (s / major + 1.0) * 0.5
        v = (t / major + 1.0) * 0.5
    return face.astype(np.int64), np.nan_to_num(u, nan=0.5), np.nan_to_num(v, nan=0.5)


def texel_addresses(
    layout: TexelLayout, x: I64, y: I64 | None, z: I64 | None, layer: I64 | None
) -> npt.NDArray[np.uint64]:
    """Each texel's device address (indices already inside the resource: along a dimension of size
    1 they are 0, and that term is left out; ``None``: 0)."""
    at = x.astype(np.int64) * layout.texel_bytes
    for index, size, pitch in (
        (y, layout.height, layout.row_pitch),
        (z, layout.depth, layout.slice_pitch),
        (layer, layout.layers, layout.layer_pitch),
    ):
        if size > 1 and index is not None:
            at += index * pitch
    return at.astype(np.uint64) + np.uint64(layout.base & ((1 << 64) - 1))


def fetch(
    mem: DeviceMemory, layout: TexelLayout, x: I64, y: I64 | None, z: I64 | None, layer: I64 | None
) -> npt.NDArray[np.uint8]:
    """Each texel's bytes, ``(k, texel_bytes)``: from the resource's own view of device memory where
    there is one (:func:`_resource`), else through the checked gather (one bulk read where the texels
    lie in one span)."""
    view = _resource(mem, layout)
    if view is not None:
        index = x
        for i, size, pitch in (
            (y, layout.height, layout.row_pitch),
            (z, layout.depth, layout.slice_pitch),
            (layer, layout.layers, layout.layer_pitch),
        ):
            if size > 1 and i is not None:
                index = index + i * (pitch // layout.texel_bytes)
        got = _take(view, index)
        if got is not None:
            return got
    return _gather(mem, layout, texel_addresses(layout, x, y, z, layer))


def _resource(mem: DeviceMemory, layout: TexelLayout) -> npt.NDArray[Any] | None:
    """The whole resource as one array of texels (:func:`_extent`'s span, typed); else ``None``."""
    span = _extent(mem, layout)
    if span is None:
        return None
    tb = layout.texel_bytes
    if tb <= 8:
        return span.view(uint_of(tb))
    return span.view(np.uint64).reshape(-1, tb // 8)  # 16 bytes: rows of two words


def _extent(mem: DeviceMemory, layout: TexelLayout) -> npt.NDArray[np.uint8] | None:
    """The resource's bytes -- a view of device memory, checked for reading as any load is -- when
    the memory offers its extent in one piece and every pitch is a whole number of texels (indices
    are inside the resource, so every texel read lies in it); else ``None``."""
    tb = layout.texel_bytes
    pitches = (layout.row_pitch, layout.slice_pitch, layout.layer_pitch)
    if (
        any(p < 0 or p % tb for p in pitches)
        or min(layout.width, layout.height, layout.depth, layout.layers) < 1
    ):
        return None  # (an empty dimension would clamp indices to -1, which take reads from the end)
    extent = tb * layout.width + sum(
        (n - 1) * p for n, p in zip((layout.height, layout.depth, layout.layers), pitches, strict=True)
    )
    try:
        span = _span(mem, layout.base, extent, False)
    except CudaError:
        return None  # a part is not the VM's: the gather below names the texel that faults
    if span is None or span.size != extent:
        return None
    return span


def _take(view: npt.NDArray[Any], index: I64) -> npt.NDArray[np.uint8] | None:
    """The texels at ``index`` of :func:`_resource`'s view, as bytes ``(k, texel_bytes)``; ``None``
    where an index is past the view (no layout makes one: the checked gather then decides)."""
    try:
        got = view.take(index, axis=0)
    except IndexError:
        return None
    out: npt.NDArray[np.uint8] = got.view(np.uint8).reshape(index.size, -1)
    return out


def _strides_aligned(layout: TexelLayout, size: int) -> bool:
    """Whether every texel address is a multiple of ``size`` because the base and every pitch are."""
    steps = (layout.base, layout.texel_bytes, layout.row_pitch, layout.slice_pitch, layout.layer_pitch)
    return not any(step % size for step in steps)


def _gather(mem: DeviceMemory, layout: TexelLayout, addrs: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint8]:
    size = layout.texel_bytes
    if size in (1, 2, 4, 8) and _strides_aligned(layout, size):
        return gather_device(mem, addrs, size, aligned=True)
    if size == 16 and addrs.size and not int(np.bitwise_or.reduce(addrs)) & 7:
        # four 32-bit channels: as two 8-byte halves, the gather's one-span fast path (a 16-byte
        # element takes its per-cluster path, several times slower)
        halves = gather_device(mem, np.concatenate([addrs, addrs + np.uint64(8)]), 8, aligned=True)
        texels: npt.NDArray[np.uint8] = halves.reshape(2, -1, 8).transpose(1, 0, 2).reshape(-1, 16)
        return texels
    aligned = size in (1, 2, 4, 8) and not (int(np.bitwise_or.reduce(addrs)) if addrs.size else 0) & (
        size - 1
    )
    return gather_device(mem, addrs, size, aligned=aligned)


def _channel_dtype(layout: TexelLayout) -> np.dtype[Any]:
    if layout.kind == "float":
        return np.dtype(np.float16 if layout.channel_bits == 16 else np.float32)
    prefix = "i" if layout.kind == "signed" else "u"
    return np.dtype(f"<{prefix}{layout.channel_bits // 8}")


def _srgb_to_linear(c: F64) -> F64:
    linear: F64 = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return linear


def decode(
    raw: npt.NDArray[np.uint8],
    layout: TexelLayout,
    sampler: Sampler | None,
    as_float: bool,
    full: bool = True,
) -> F64:
    """Texels' bytes as channel values, float64 holding either the float a float destination
    receives (read mode applied: half to float, 8/16-bit integers normalized, sRGB) or the integer an
    integer destination receives (its bits for float texels): ``(k, 4)``, missing channels reading as
    0 and alpha as 1 (:func:`complete`), or without ``full`` only the texture's channels."""
    k = raw.shape[0]
    channels = np.ascontiguousarray(raw).view(_channel_dtype(layout)).reshape(k, layout.channels)
    if layout.kind == "float":
        if as_float:
            values = channels.astype(np.float64)
        else:  # a float texel into an integer register: its float32 bits
            values = channels.astype(np.float32).view(np.int32).astype(np.float64)
        return complete(values) if full else values
    values = channels.astype(np.float64)
    normalize = (
        as_float and sampler is not None and sampler.normalized_float_read and layout.channel_bits < 32
    )
    if normalize:
        bits = layout.channel_bits
        if layout.kind == "unsigned":
            values = values / float((1 << bits) - 1)
            if sampler is not None and sampler.srgb and bits == 8:
                rgb = min(layout.channels, 3)
                values[:, :rgb] = _srgb_to_linear(values[:, :rgb])
        else:
            values = np.maximum(values / float((1 << (bits - 1)) - 1), -1.0)
    return complete(values) if full else values


def complete(values: F64) -> F64:
    """Channel values ``(k, c)`` as four: the missing ones 0, alpha 1."""
    k, c = values.shape
    if c == 4:
        return values
    out = np.zeros((k, 4), dtype=np.float64)
    out[:, 3] = 1.0
    out[:, :c] = values
    return out


def _point(coord: Floats, size: int, mode: AddressMode, normalized: bool) -> tuple[I64, Bool | None]:
    index = np.floor(_scaled(coord, size, mode, normalized)).astype(np.int64)
    return address(index, size, mode, normalized)


def _linear(
    coord: Floats, size: int, mode: AddressMode, normalized: bool
) -> tuple[tuple[I64, I64], tuple[Bool | None, Bool | None], F64]:
    """The two texels a linear filter blends along one axis, their border masks, and the weight of
    the second (``frac(x - 0.5)`` rounded to 8 fractional bits)."""
    xb = _scaled(coord, size, mode, normalized) - 0.5
    base = np.floor(xb)
    alpha = np.round((xb - base) * _WEIGHT_ONE) / _WEIGHT_ONE
    i0 = base.astype(np.int64)
    a, oa = address(i0, size, mode, normalized)
    b, ob = address(i0 + 1, size, mode, normalized)
    return (a, b), (oa, ob), alpha


def sample(
    mem: DeviceMemory,
    layout: TexelLayout,
    sampler: Sampler,
    coords: list[Floats],
    layer: I64,
    as_float: bool,
    *,
    force_normalized: bool = False,
    force_clamp: bool = False,
    full: bool = True,
) -> F64:
    """The filtered value of each lane, ``(k, 4)``; ``coords`` are the spatial coordinates (1 to 3),
    ``layer`` each lane's layer (or cube face) inside the resource. A cube face's coordinates are
    normalized and clamp (``force_*``). Without ``full``, where no lane can read the border, only
    the texture's channels ``(k, channels)``: the missing ones read 0 and alpha 1 (:func:`complete`)."""
    normalized = sampler.normalized_coords or force_normalized
    sizes = (layout.width, layout.height, layout.depth)
    k = layer.shape[0]
    modes = [AddressMode.CLAMP if force_clamp else sampler.address_modes[a] for a in range(len(coords))]
    span = _extent(mem, layout)
    if span is not None:  # the C form, where it serves the texture
        got = sample_native(span, layout, sampler, coords, layer, as_float, normalized, modes)
        if got is not None:
            return complete(got) if full else got
    border = border_color(sampler, as_float)
    # linear filtering blends floats; integers a register receives as they are come from the nearest
    if not sampler.linear_filter or not as_float:
        picks = [_point(c, sizes[a], modes[a], normalized) for a, c in enumerate(coords)]
        index = [p[0] for p in picks]
        outside = _any_outside([p[1] for p in picks])
        out = _texels(mem, layout, sampler, index, layer, as_float, full or outside is not None)
        if outside is not None:
            out[outside] = border
        return out
    axes = [_linear(c, sizes[a], modes[a], normalized) for a, c in enumerate(coords)]
    corners = 1 << len(axes)
    # without a border, only the texture's own channels are blended (the missing ones are constants,
    # and the weights sum to 1 exactly: 8-bit fractions)
    bordered = AddressMode.BORDER in modes
    view = _resource(mem, layout)
    pairs = [a[0] for a in axes]
    raw = None if view is None else _take(view, _corner_offsets(layout, pairs, layer, layout.texel_bytes))
    if raw is None:
        start = np.uint64(layout.base & ((1 << 64) - 1))
        raw = _gather(mem, layout, _corner_offsets(layout, pairs, layer, 1).view(np.uint64) + start)
    if not bordered and as_float and layout.kind == "float" and layout.channel_bits == 32:
        # float32 texels as they are: each product below widens them to float64, as decode would
        values: npt.NDArray[Any] = raw.view(np.float32).reshape(corners, k, -1)
    else:
        values = decode(raw, layout, sampler, as_float, bordered).reshape(corners, k, -1)
    for c in range(corners):
        outside = _any_outside([axes[a][1][(c >> a) & 1] for a in range(len(axes))])
        if outside is not None:
            values[c][outside] = border
    keep = [(1.0 - a[2], a[2]) for a in axes]  # each axis's weights of its first and second texel
    out = np.zeros((k, values.shape[2]), dtype=np.float64)
    for c in range(corners):  # bit a of the corner: axis a's second texel
        weight = keep[0][c & 1]
        for a in range(1, len(axes)):
            weight = weight * keep[a][(c >> a) & 1]
        out += weight[:, None] * values[c]
    return out if bordered or not full else complete(out)


def _corner_offsets(layout: TexelLayout, pairs: list[tuple[I64, I64]], layer: I64, unit: int) -> I64:
    """The offsets from the base, in ``unit`` bytes (a divisor of every pitch), of every corner of
    every lane's filter footprint, corner by corner (bit ``a`` of the corner picks the second texel
    on axis ``a``): one broadcast sum of each axis's two offsets (and the layer's, where there are
    layers: else it is 0)."""
    dims = len(pairs)
    k = layer.shape[0]
    shape = (1,) * dims + (k,)
    total: I64 = (
        (layer * (layout.layer_pitch // unit)).reshape(shape)
        if layout.layers > 1
        else np.zeros(shape, np.int64)
    )
    for a, (first, second) in enumerate(pairs):
        pitch = (layout.texel_bytes, layout.row_pitch, layout.slice_pitch)[a] // unit
        axis = [1] * dims + [k]
        axis[dims - 1 - a] = 2
        offsets = np.empty((2, k), dtype=np.int64)
        np.multiply(first, pitch, out=offsets[0])
        np.multiply(second, pitch, out=offsets[1])
        total = total + offsets.reshape(axis)
    return total.reshape(-1)


def gather4(
    mem: DeviceMemory, layout: TexelLayout, sampler: Sampler, coords: list[Floats], layer: I64, component: int
) -> F64:
    """``tld4``: one component of the four texels a bilinear filter would blend, counter-clockwise
    from the lower left: (i, j+1), (i+1, j+1), (i+1, j), (i, j)."""
    normalized = sampler.normalized_coords
    (xa, xb), (oxa, oxb), _ = _linear(coords[0], layout.width, sampler.address_modes[0], normalized)
    (ya, yb), (oya, oyb), _ = _linear(coords[1], layout.height, sampler.address_modes[1], normalized)
    k = layer.shape[0]
    order = ((xa, yb, oxa, oyb), (xb, yb, oxb, oyb), (xb, ya, oxb, oya), (xa, ya, oxa, oya))
    xs = np.concatenate([o[0] for o in order])
    ys = np.concatenate([o[1] for o in order])
    values = _texels(mem, layout, sampler, [xs, ys], np.tile(layer, 4), True).reshape(4, k, 4)
    border = border_color(sampler, True)
    out = np.empty((k, 4), dtype=np.float64)
    for j, (_, _, ox, oy) in enumerate(order):
        got = values[j][:, component].copy()
        outside = _any_outside([ox, oy])
        if outside is not None:
            got[outside] = border[component]
        out[:, j] = got
    return out


def _any_outside(masks: list[Bool | None]) -> Bool | None:
    present = [m for m in masks if m is not None]
    if not present:
        return None
    out = present[0]
    for m in present[1:]:
        out = out | m
    return out


def _texels(
    mem: DeviceMemory,
    layout: TexelLayout,
    sampler: Sampler | None,
    index: list[I64],
    layer: I64,
    as_float: bool,
    full: bool = True,
) -> F64:
    x = index[0]
    y = index[1] if len(index) > 1 else None
    z = index[2] if len(index) > 2 else None
    return decode(fetch(mem, layout, x, y, z, layer), layout, sampler, as_float, full)
