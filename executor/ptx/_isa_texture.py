"""Texture and surface instructions: ``tex`` (``.level``/``.grad`` too), ``tld4``, ``txq``, ``suld.b``,
``sust.b``/``sust.p``, ``suq`` and ``istypep``.

A kernel names a texture or surface by the 64-bit handle of an object the VM created; the launch's
:class:`~._texture_objects.TextureObjects` resolves it (``Batch.textures``). An unknown handle is
``CUDA_ERROR_ILLEGAL_ADDRESS``, sticky, as a GPU faults on a descriptor that is not one. Lanes are
grouped by handle (usually one); each group's texels are read in one checked gather (``_texture_sample``),
so a layout pointing at freed memory faults as a load does. Resources have one mip level (the interface
has no mipmaps), so ``.level``/``.grad`` read level 0, as the hardware does for a texture of one level.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, NoReturn

import numpy as np
import numpy.typing as npt

from ._compiler import (
    Compiler,
    Getter,
    InstructionCompiler,
    Mask,
    Runner,
    Setter,
    UnsupportedError,
    active_rows,
    select_rows,
)
from ._memory import check_aligned, gather_device, illegal, scatter_device
from ._numeric import DTYPES
from ._parse import Addr, Instruction, Operand, Reg, Sym, TexAddr, Vec
from ._state import Frame
from ._texture_objects import AddressMode, SurfaceObject, TexelLayout, TextureObject, TextureObjects
from ._texture_sample import F64, I64, Floats, cube_face, decode, fetch, gather4, sample, texel_addresses

__all__ = ["TEXTURE"]

#: coordinates per geometry: (layer first?, spatial coordinates, vector length as written)
_GEOMETRY = {
    "1d": (False, 1, 1),
    "2d": (False, 2, 2),
    "3d": (False, 3, 4),
    "a1d": (True, 1, 2),
    "a2d": (True, 2, 4),
    "cube": (False, 3, 4),
    "acube": (True, 3, 4),
}
#: the resource geometries each instruction geometry reads
_FITS = {
    "1d": ("1d",),
    "2d": ("2d",),
    "3d": ("3d",),
    "a1d": ("1d_layered",),
    "a2d": ("2d_layered",),
    "cube": ("cube",),
    "acube": ("cube_layered",),
}
U64 = npt.NDArray[np.uint64]
#: each distinct handle of the lanes and which lanes hold it (``None``: all of them)
Groups = list[tuple[int, npt.NDArray[np.intp] | None]]


def _textures(f: Frame) -> TextureObjects | None:
    return f.batch.textures


def _groups(handles: U64) -> Groups:
    """The distinct handles of the lanes and which lanes hold each (``None``: all of them)."""
    first = int(handles[0]) if handles.size else 0
    if not handles.size or handles.strides == (0,) or bool((handles == np.uint64(first)).all()):
        return [(first, None)]
    return [(int(h), np.flatnonzero(handles == h)) for h in np.unique(handles)]


def _handle_groups(f: Frame, get: Getter, rows: npt.NDArray[np.intp]) -> Groups:
    """:func:`_groups` of the active lanes' handles; a uniform handle (a kernel parameter's, the common
    case) without an array of it."""
    value = get(f)
    if not (isinstance(value, np.ndarray) and value.ndim):
        return [(int(np.asarray(value).astype(np.uint64)), None)]
    return _groups(_lanes(f, get, rows).astype(np.uint64, copy=False))


def _texture(f: Frame, handle: int) -> TextureObject:
    table = _textures(f)
    found = None if table is None else table.texture(handle)
    return found if found is not None else _unknown("texture fetch", handle)


def _surface(f: Frame, handle: int) -> SurfaceObject:
    table = _textures(f)
    found = None if table is None else table.surface(handle)
    return found if found is not None else _unknown("surface access", handle)


def _unknown(what: str, handle: int) -> NoReturn:
    """An unknown handle: a GPU faults on a descriptor that is none."""
    raise illegal(f"{what} through {handle:#x}, which is no such object of the VM")


def _handle(c: Compiler, operand: Operand) -> Getter:
    """The getter of a handle operand (a 64-bit register; texture references by name are not served)."""
    if not isinstance(operand, Reg) or operand.negated:
        raise UnsupportedError(
            "a texture or surface named by a .texref/.surfref variable (only object handles)"
        )
    return c.read(operand, DTYPES["u64"])


def _rows_of(f: Frame, m: Mask | None) -> npt.NDArray[np.intp]:
    return active_rows(m, f.batch.n)


def _lanes(f: Frame, get: Getter, rows: npt.NDArray[np.intp]) -> npt.NDArray[Any]:
    return np.asarray(select_rows(get(f), rows, f.batch.n))


def _put_lanes(
    f: Frame, put: Setter, values: npt.NDArray[Any], rows: npt.NDArray[np.intp], m: Mask | None
) -> None:
    """Write each active lane's value (``values`` in ``rows``' order) to a destination register."""
    n = f.batch.n
    if rows.size == n:
        put(f, values, m)
        return
    full = np.zeros(n, dtype=values.dtype)
    full[rows] = values
    put(f, full, m)


#: a surface's cube faces are layers to suld/sust (surfCubemap* compile to ``.a2d``, face = layer)
_SURFACE_FITS = {**_FITS, "a2d": ("2d_layered", "cube", "cube_layered")}


def _check_geometry(layout: TexelLayout, geometry: str, what: str) -> None:
    fits = _SURFACE_FITS if what in ("suld", "sust") else _FITS
    if layout.geometry not in fits[geometry]:
        raise illegal(f"{what}.{geometry} on a {layout.geometry} resource")


# -- tex, tld4 ---------------------------------------------------------------------------------


def _compile_tex(c: Compiler, ins: Instruction) -> Runner:
    """``tex{.level,.grad}.geom.v4.dtype.ctype d, [h, {c}]{, lod | , dPdx, dPdy}`` and
    ``tld4.comp.2d.v4.dtype.f32 d, [h, {c}]``."""
    gather = ins.opcode == "tld4"
    mods = list(ins.mods)
    component = 0
    if gather:
        if not mods or mods[0] not in "rgba" or len(mods[0]) != 1:
            raise UnsupportedError("tld4.{r,g,b,a}")
        component = "rgba".index(mods.pop(0))
    extra = 0
    if mods and mods[0] in ("level", "grad"):
        extra = 1 if mods[0] == "level" else 2
        mods.pop(0)
    if len(mods) != 4 or mods[1] != "v4":
        raise UnsupportedError(f"{ins.opcode}.geom.v4.dtype.ctype")
    geometry, _, dtype, ctype = mods
    if geometry not in _GEOMETRY or (gather and geometry != "2d"):
        raise UnsupportedError(f"{ins.opcode}.{geometry}")
    if dtype not in ("f32", "s32", "u32") or ctype not in ("f32", "s32"):
        raise UnsupportedError(f"{ins.opcode} .{dtype}.{ctype}")
    if gather and (dtype != "f32" or ctype != "f32"):
        raise UnsupportedError("tld4 .v4.f32.f32")
    if ctype == "s32" and (geometry != "1d" or extra):
        raise UnsupportedError("integer coordinates other than tex.1d (tex1Dfetch)")
    if len(ins.operands) != 2 + extra:
        raise UnsupportedError(f"{ins.opcode} takes {2 + extra} operands")
    dest, at = ins.operands[0], ins.operands[1]
    layered, spatial, written = _GEOMETRY[geometry]
    if not isinstance(dest, Vec) or len(dest.items) != 4:
        raise UnsupportedError("a .v4 destination")
    if not isinstance(at, TexAddr) or len(at.coords.items) != written:
        raise UnsupportedError(f"{written} coordinates for .{geometry}")
    for operand in ins.operands[2:]:  # the level or the gradients: one level, read and unused
        for item in operand.items if isinstance(operand, Vec) else (operand,):
            c.read(item, DTYPES["f32"])
    out_dt = DTYPES[dtype]
    puts = [c.write(d, out_dt) for d in dest.items]
    get_handle = _handle(c, at.handle)
    items = list(at.coords.items)
    get_layer = c.read(items.pop(0), DTYPES["s32"]) if layered else None
    gets = [c.read(item, DTYPES[ctype]) for item in items[:spatial]]
    as_float = dtype == "f32"

    def run(f: Frame, m: Mask | None) -> None:
        rows = _rows_of(f, m)
        if not rows.size:
            return
        groups = _handle_groups(f, get_handle, rows)
        coords = [_lanes(f, g, rows) for g in gets]
        layer = _lanes(f, get_layer, rows).astype(np.int64) if get_layer is not None else None
        out = np.empty((rows.size, 4), dtype=np.float64) if len(groups) > 1 else np.empty((0, 0))
        for handle, lanes in groups:
            obj = _texture(f, handle)
            _check_geometry(obj.layout, geometry, ins.opcode)
            lay = layer if layer is not None else _no_layers(rows.size)  # every operand is (rows,)
            sub = coords if lanes is None else [cv[lanes] for cv in coords]
            lay = lay if lanes is None else lay[lanes]
            got = _sample(
                f, obj, geometry, ctype, sub, lay, as_float, component if gather else None, lanes is not None
            )
            if lanes is None:
                out = got
            else:
                out[lanes] = got
        for j, put in enumerate(puts):
            if j < out.shape[1]:
                _put_lanes(f, put, _to_register(out[:, j], dtype), rows, m)
            else:  # a channel the texture lacks: the same constant in every lane (0, alpha 1)
                _put_lanes(f, put, _to_register(np.array(float(j == 3)), dtype)[()], rows, m)

    return run


def _sample(
    f: Frame,
    obj: TextureObject,
    geometry: str,
    ctype: str,
    coords: list[npt.NDArray[Any]],
    layer: I64,
    as_float: bool,
    component: int | None,
    full: bool,
) -> F64:
    """Each lane's four channels, or without ``full`` maybe only the texture's (the rest constants)."""
    layout, sampler, mem = obj.layout, obj.sampler, f.batch.memory
    if ctype == "s32":  # tex1Dfetch: the element itself; outside the resource reads 0
        x = coords[0].astype(np.int64)
        outside = (x < 0) | (x >= layout.width)
        got = decode(fetch(mem, layout, np.where(outside, 0, x), None, None, None), layout, sampler, as_float)
        got[outside] = 0.0
        return got
    if geometry in ("cube", "acube"):
        floats: list[F64] = [np.asarray(cv, dtype=np.float64) for cv in coords]
        face, u, v = cube_face(floats[0], floats[1], floats[2])
        cubes = max(layout.layers // 6, 1)
        layer = np.clip(layer, 0, cubes - 1) * 6 + face
        return sample(mem, layout, sampler, [u, v], layer, as_float, force_normalized=True, force_clamp=True)
    # float32 registers as they are: sampling works on their float32 values
    singles: list[Floats] = [np.asarray(cv, dtype=np.float32) for cv in coords]
    layer = np.clip(layer, 0, layout.layers - 1) if layout.layers > 1 else _no_layers(layer.shape[0])
    if component is not None:
        return gather4(mem, layout, sampler, singles, layer, component)
    return sample(mem, layout, sampler, singles, layer, as_float, full=full)


@lru_cache(maxsize=16)
def _no_layers(k: int) -> I64:
    """Layer 0 for ``k`` lanes: a read-only view of one zero (no array a fetch)."""
    return np.broadcast_to(np.int64(0), (k,))


def _to_register(values: F64, dtype: str) -> npt.NDArray[Any]:
    """A channel's values as the destination type: float32, or the integer (wrapped to 32 bits; an
    integer destination's values are whole numbers within 64 bits: texels, or float texels' bits)."""
    if dtype == "f32":
        return values.astype(np.float32)
    return values.astype(np.int64).astype(np.uint32).view(np.int32 if dtype == "s32" else np.uint32)


# -- txq, suq, istypep ---------------------------------------------------------------------------

#: OpenCL's cl_channel_type for a texel format (the ISA answers "the source language's" type; CUDA has
#: none of its own, so the engine answers OpenCL's, which the ISA's texture model follows)
_CL_TYPE = {
    ("signed", 8, True): 0x10D0,
    ("signed", 16, True): 0x10D1,
    ("unsigned", 8, True): 0x10D2,
    ("unsigned", 16, True): 0x10D3,
    ("signed", 8, False): 0x10D7,
    ("signed", 16, False): 0x10D8,
    ("signed", 32, False): 0x10D9,
    ("unsigned", 8, False): 0x10DA,
    ("unsigned", 16, False): 0x10DB,
    ("unsigned", 32, False): 0x10DC,
    ("float", 16, False): 0x10DD,
    ("float", 32, False): 0x10DE,
}
#: OpenCL's cl_channel_order: CL_R, CL_RG, CL_RGBA
_CL_ORDER = {1: 0x10B0, 2: 0x10B2, 4: 0x10B5}
#: the ISA's addressing-mode enumeration: wrap, mirror, clamp_ogl, clamp_to_edge, clamp_to_border
_ISA_ADDRESS = {AddressMode.WRAP: 0, AddressMode.MIRROR: 1, AddressMode.CLAMP: 3, AddressMode.BORDER: 4}


def _layout_query(layout: TexelLayout, what: str, normalized_read: bool) -> int | None:
    if what == "width":
        return layout.width
    if what == "height":
        return layout.height
    if what == "depth":
        return layout.depth
    if what == "array_size":
        return layout.layers // 6 if layout.geometry.startswith("cube") else layout.layers
    if what == "channel_data_type":
        key = (
            layout.kind,
            layout.channel_bits,
            normalized_read and layout.kind != "float" and layout.channel_bits < 32,
        )
        return _CL_TYPE.get(key, 0)
    if what == "channel_order":
        return _CL_ORDER.get(layout.channels, 0)
    return None


def _texture_query(obj: TextureObject, what: str) -> int:
    sampler = obj.sampler
    if what == "normalized_coords":
        return int(sampler.normalized_coords)
    if what == "force_unnormalized_coords":
        return int(not sampler.normalized_coords)
    if what == "filter_mode":
        return int(sampler.linear_filter)
    if what.startswith("addr_mode_"):
        return _ISA_ADDRESS[sampler.address_modes[int(what[-1])]]
    if what == "num_mipmap_levels":
        return 1
    if what == "num_samples":
        return 0
    got = _layout_query(obj.layout, what, sampler.normalized_float_read)
    assert got is not None
    return got


_TXQ = {
    "width",
    "height",
    "depth",
    "channel_data_type",
    "channel_order",
    "normalized_coords",
    "array_size",
    "num_mipmap_levels",
    "num_samples",
    "force_unnormalized_coords",
    "filter_mode",
    "addr_mode_0",
    "addr_mode_1",
    "addr_mode_2",
}
_SUQ = {"width", "height", "depth", "channel_data_type", "channel_order", "array_size"}


def _compile_query(c: Compiler, ins: Instruction) -> Runner:
    """``txq.query.b32 d, [h]`` and ``suq.query.b32 d, [h]``."""
    texture = ins.opcode == "txq"
    known = _TXQ if texture else _SUQ
    if len(ins.mods) != 2 or ins.mods[0] not in known or ins.mods[1] != "b32" or len(ins.operands) != 2:
        raise UnsupportedError(f"{ins.opcode}.{{{','.join(sorted(known))}}}.b32 d, [h]")
    what = ins.mods[0]
    dest, at = ins.operands
    if not isinstance(at, Addr) or at.offset or at.base is None or isinstance(at.base, Sym):
        raise UnsupportedError(f"{ins.opcode} of an object handle in a register")
    get_handle = _handle(c, at.base)
    put = c.write(dest, DTYPES["u32"])

    def run(f: Frame, m: Mask | None) -> None:
        rows = _rows_of(f, m)
        if not rows.size:
            return
        handles = _lanes(f, get_handle, rows).astype(np.uint64, copy=False)
        out = np.empty(rows.size, dtype=np.uint32)
        for handle, lanes in _groups(handles):
            if texture:
                value = _texture_query(_texture(f, handle), what)
            else:
                got = _layout_query(_surface(f, handle).layout, what, False)
                assert got is not None
                value = got
            out[slice(None) if lanes is None else lanes] = value & 0xFFFFFFFF
        _put_lanes(f, put, out, rows, m)

    return run


def _compile_istypep(c: Compiler, ins: Instruction) -> Runner:
    """``istypep.{texref,samplerref,surfref} p, h``: whether ``h`` is such an object of the VM
    (there are no independent samplers: samplerref is false)."""
    if len(ins.mods) != 1 or ins.mods[0] not in ("texref", "samplerref", "surfref") or len(ins.operands) != 2:
        raise UnsupportedError("istypep.{texref,samplerref,surfref} p, a")
    kind = ins.mods[0]
    dest, handle = ins.operands
    get_handle = _handle(c, handle)
    put = c.write(dest, np.dtype(np.bool_))

    def run(f: Frame, m: Mask | None) -> None:
        rows = _rows_of(f, m)
        if not rows.size:
            return
        handles = _lanes(f, get_handle, rows).astype(np.uint64, copy=False)
        out = np.zeros(rows.size, dtype=np.bool_)
        table = _textures(f)
        if table is not None and kind != "samplerref":
            for h, lanes in _groups(handles):
                found = table.texture(h) if kind == "texref" else table.surface(h)
                out[slice(None) if lanes is None else lanes] = found is not None
        _put_lanes(f, put, out, rows, m)

    return run


# -- suld, sust --------------------------------------------------------------------------------

_SURFACE_GEOMETRY = {g: _GEOMETRY[g] for g in ("1d", "2d", "3d", "a1d", "a2d")}
_ELEMENT = {"b8": 1, "b16": 2, "b32": 4, "b64": 8}


def _surface_form(ins: Instruction, formatted_ok: bool) -> tuple[str, str, int, int, str]:
    """``.b|.p``, the geometry, the vector length, the element bytes and the out-of-range mode."""
    mods = list(ins.mods)
    if not mods or mods[0] not in (("b", "p") if formatted_ok else ("b",)):
        raise UnsupportedError(f"{ins.opcode}.{'b|p' if formatted_ok else 'b'}")
    form = mods.pop(0)
    mode = mods.pop() if mods and mods[-1] in ("trap", "clamp", "zero") else "trap"
    vec = 1
    if len(mods) == 3 and mods[1] in ("v2", "v4"):
        vec = int(mods.pop(1)[1])
    if len(mods) != 2 or mods[0] not in _SURFACE_GEOMETRY or mods[1] not in _ELEMENT:
        raise UnsupportedError(f"{ins.opcode}.{form}.{{1d,2d,3d,a1d,a2d}}{{.v2,.v4}}.{{b8,b16,b32,b64}}.mode")
    if form == "p" and mods[1] != "b32":
        raise UnsupportedError("sust.p with .b32 elements")
    return form, mods[0], vec, _ELEMENT[mods[1]], mode


def _surface_addresses(
    layout: TexelLayout, geometry: str, coords: list[I64], layer: I64, size: int, mode: str
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.bool_]]:
    """Each lane's address and whether it is inside the surface (``.clamp`` brings it inside;
    ``.trap`` and ``.zero`` leave that to the caller). ``x`` is in bytes."""
    zero = np.zeros_like(layer)
    x = coords[0]
    y = coords[1] if len(coords) > 1 else zero
    z = coords[2] if len(coords) > 2 else zero
    row = layout.width * layout.texel_bytes
    limits = ((x, row - size), (y, layout.height - 1), (z, layout.depth - 1), (layer, layout.layers - 1))
    inside = np.ones(x.shape, dtype=np.bool_)
    for v, top in limits:
        inside &= (v >= 0) & (v <= top)
    if mode == "clamp" or not bool(inside.all()):
        x, y, z, layer = (np.clip(v, 0, max(top, 0)) for v, top in limits)
    if mode == "clamp":
        x = x - x % size  # the nearest location the access fits
        inside = np.ones(x.shape, dtype=np.bool_)
    addrs = texel_addresses(layout, np.zeros_like(x), y, z, layer) + x.astype(np.uint64)
    return addrs, inside


def _compile_surface(c: Compiler, ins: Instruction) -> Runner:
    """``suld.b.geom{.v2,.v4}.bN.mode d, [h, {x, …}]`` and ``sust.{b,p}.geom… [h, {x, …}], v``."""
    load = ins.opcode == "suld"
    form, geometry, vec, esize, mode = _surface_form(ins, formatted_ok=not load)
    if len(ins.operands) != 2:
        raise UnsupportedError(f"{ins.opcode} takes 2 operands")
    at, values = (ins.operands[1], ins.operands[0]) if load else ins.operands
    layered, spatial, written = _SURFACE_GEOMETRY[geometry]
    if not isinstance(at, TexAddr) or len(at.coords.items) != written:
        raise UnsupportedError(f"{written} coordinates for .{geometry}")
    items = values.items if isinstance(values, Vec) else (values,)
    if len(items) != vec:
        raise UnsupportedError(f"{vec} values")
    et = np.dtype(f"<u{esize}")
    get_handle = _handle(c, at.handle)
    coords = list(at.coords.items)
    get_layer = c.read(coords.pop(0), DTYPES["s32"]) if layered else None
    gets = [c.read(item, DTYPES["s32"]) for item in coords[:spatial]]
    size = vec * esize
    if load:
        puts = [c.write(item, et) for item in items]
    else:
        sources = [c.read(item, et) for item in items]

    def run(f: Frame, m: Mask | None) -> None:
        rows = _rows_of(f, m)
        if not rows.size:
            return
        handles = _lanes(f, get_handle, rows).astype(np.uint64, copy=False)
        xs = [_lanes(f, g, rows).astype(np.int64) for g in gets]
        xs = [np.broadcast_to(v, (rows.size,)) for v in xs]
        layer = (
            np.broadcast_to(_lanes(f, get_layer, rows).astype(np.int64), (rows.size,))
            if get_layer is not None
            else np.zeros(rows.size, np.int64)
        )
        data = (
            np.empty((rows.size, size), dtype=np.uint8)
            if load
            else np.stack(
                [np.broadcast_to(_lanes(f, s, rows).astype(et), (rows.size,)) for s in sources], axis=1
            ).view(np.uint8)
        )
        for handle, lanes in _groups(handles):
            layout = _surface(f, handle).layout
            _check_geometry(layout, geometry, ins.opcode)
            sel = slice(None) if lanes is None else lanes
            span = layout.texel_bytes if form == "p" else size  # sust.p stores one formatted texel
            addrs, inside = _surface_addresses(layout, geometry, [v[sel] for v in xs], layer[sel], span, mode)
            if mode == "trap" and not bool(inside.all()):
                bad = int(np.flatnonzero(~inside)[0])
                raise illegal(
                    f"{ins.opcode}.{mode} outside the surface (coordinates {[int(v[sel][bad]) for v in xs]})"
                )
            check_aligned(addrs, esize if form == "b" else layout.channel_bits // 8, "surface")
            if load:
                got = np.zeros((addrs.size, size), dtype=np.uint8)
                if bool(inside.any()):
                    got[inside] = gather_device(f.batch.memory, addrs[inside], size)
                data[sel] = got
            else:
                chunk = data[sel]
                if form == "p":
                    chunk = _formatted(chunk.view(np.uint32).reshape(-1, vec), layout)
                scatter_device(f.batch.memory, addrs[inside], np.ascontiguousarray(chunk[inside]))
        if load:
            for j, put in enumerate(puts):
                _put_lanes(f, put, data[:, j * esize : (j + 1) * esize].copy().view(et).reshape(-1), rows, m)

    return run


def _formatted(words: npt.NDArray[np.uint32], layout: TexelLayout) -> npt.NDArray[np.uint8]:
    """``sust.p``: 32-bit components (f32 for float surfaces, s32/u32 for integer ones) converted to
    the surface's texel format (integers saturate to the channel); missing components are 0."""
    k, vec = words.shape
    comps = np.zeros((k, layout.channels), dtype=np.uint32)
    take = min(vec, layout.channels)
    comps[:, :take] = words[:, :take]
    bits = layout.channel_bits
    if layout.kind == "float":
        as_float = comps.view(np.float32)
        out: npt.NDArray[Any] = as_float.astype(np.float16) if bits == 16 else as_float
    elif layout.kind == "signed":
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        out = np.clip(comps.view(np.int32).astype(np.int64), lo, hi).astype(f"<i{bits // 8}")
    else:
        out = np.clip(comps.astype(np.int64), 0, (1 << bits) - 1).astype(f"<u{bits // 8}")
    return np.ascontiguousarray(out).view(np.uint8).reshape(k, layout.texel_bytes)


TEXTURE: dict[str, InstructionCompiler] = {
    "tex": _compile_tex,
    "tld4": _compile_tex,
    "txq": _compile_query,
    "suq": _compile_query,
    "istypep": _compile_istypep,
    "suld": _compile_surface,
    "sust": _compile_surface,
}
