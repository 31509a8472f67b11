"""``sim``'s CUDA arrays, texture and surface objects, and the copies that take an array as a side.

A CUDA array is dense device memory of the VM: one allocation (kind ``"global"``, so ``cuMemFree``
refuses it and the quota counts it as ``cuMemAlloc`` would), rows of ``width * texel bytes``, slices
of ``height`` rows, and layers (or a cube's faces) as slices. The guest never receives its address.
A texture or surface object is a :class:`~executor.ptx.TextureObject`/``SurfaceObject`` fixed at
creation: for an array its layout's base is the array's allocation, for linear and pitch-2D
resources the guest's own pointer (no copy). The PTX engine reads texels through the checked
``DeviceMemory``, so an object whose array was destroyed, or whose pointer was freed, faults with
``CUDA_ERROR_ILLEGAL_ADDRESS`` when a kernel uses it (addresses are never reused), as on a GPU.

Everything the guest sends is checked against CUDA's rules and the limits the device reports
(``_sim_device``): formats (1, 2 or 4 channels of 8/16/32-bit integers, half or float), sizes per
array kind, pitches and alignments, boxes of copies, handles.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final, TypeVar

import numpy as np

from protocol import CUresult
from protocol.models import (
    ArrayArgs,
    ArrayCreateArgs,
    ArrayResult,
    Memcpy3DArgs,
    Memcpy3DHostArgs,
    NoResult,
    SurfObjectArgs,
    SurfObjectCreateArgs,
    SurfObjectResult,
    TexObjectArgs,
    TexObjectCreateArgs,
    TexObjectResult,
)

from ._base import CallIO, HandleTable, HostBudget
from ._errors import CudaError
from ._sim_graph import StreamState
from ._sim_memory import Bytes, DeviceMemory
from .ptx._texture_objects import (
    AddressMode,
    ChannelKind,
    Geometry,
    Sampler,
    SurfaceObject,
    TexelLayout,
    TextureObject,
)

__all__ = ["FORMATS", "SimArray", "SimTextureCalls", "SimTextures", "texel_format"]

_NO_RESULT: Final = NoResult()
_T = TypeVar("_T", TextureObject, SurfaceObject)
#: host bytes each array, texture or surface object is charged to the VM's host budget: its records in
#: the worker (448 bytes a texture object, 716 an array with its allocation's entry, measured; rounded
#: up), which no device-memory quota sees
OBJECT_BYTES: Final = 1024
_INVALID: Final = CUresult.CUDA_ERROR_INVALID_VALUE

#: ``CUarray_format`` -> (bits per channel, kind): the formats the engine samples
FORMATS: Final[dict[int, tuple[int, ChannelKind]]] = {
    0x01: (8, "unsigned"), 0x02: (16, "unsigned"), 0x03: (32, "unsigned"),
    0x08: (8, "signed"), 0x09: (16, "signed"), 0x0A: (32, "signed"),
    0x10: (16, "float"), 0x20: (32, "float"),
}
#: CUDA 13's other formats (video, block-compressed, normalized-integer and packed ones): real, not served
_UNSERVED_FORMATS: Final = frozenset({0x50, 0xB0, *range(0x91, 0xA0), *range(0xA1, 0xAA), *range(0xB1, 0xB6),
                                      *range(0xC0, 0xCC)})

# CUDA_ARRAY3D_* flags
LAYERED: Final = 0x01
SURFACE_LDST: Final = 0x02
CUBEMAP: Final = 0x04
TEXTURE_GATHER: Final = 0x08
_SERVED_FLAGS: Final = LAYERED | SURFACE_LDST | CUBEMAP | TEXTURE_GATHER
#: depth textures, colour attachments, sparse, deferred-mapping and video arrays: real, not served
_UNSERVED_FLAGS: Final = 0x10 | 0x20 | 0x40 | 0x80 | 0x100

# CU_TRSF_* flags of a texture object
READ_AS_INTEGER: Final = 0x01
NORMALIZED_COORDINATES: Final = 0x02
SRGB: Final = 0x10
_TEXTURE_FLAGS: Final = READ_AS_INTEGER | NORMALIZED_COORDINATES | SRGB | 0x20 | 0x40  # + trilinear, seamless

# CUresourcetype
RESOURCE_ARRAY: Final = 0
RESOURCE_MIPMAPPED_ARRAY: Final = 1
RESOURCE_LINEAR: Final = 2
RESOURCE_PITCH2D: Final = 3

#: per geometry: the device attributes bounding (width, height, depth or layers) of a texture and of
#: a surface (``CUdevice_attribute`` numbers; 0: that dimension must be 1)
_TEXTURE_LIMITS: Final[dict[Geometry, tuple[int, int, int]]] = {
    "1d": (21, 0, 0), "2d": (22, 23, 0), "3d": (24, 25, 26), "1d_layered": (42, 0, 43),
    "2d_layered": (27, 28, 29), "cube": (52, 52, 0), "cube_layered": (53, 53, 54),
}
_SURFACE_LIMITS: Final[dict[Geometry, tuple[int, int, int]]] = {
    "1d": (55, 0, 0), "2d": (56, 57, 0), "3d": (58, 59, 60), "1d_layered": (61, 0, 62),
    "2d_layered": (63, 64, 65), "cube": (66, 66, 0), "cube_layered": (67, 67, 68),
}
#: a 3D texture array may instead be within the alternate limits (thin and deep: 8192 x 8192 x 32768)
_ALTERNATE_3D: Final = (47, 48, 49)
#: a 2D array made for texture gather (tld4)
_GATHER_LIMITS: Final = (45, 46, 0)
# linear and pitch-2D resources: elements of a 1D linear texture, width, height and pitch of a 2D one,
# and the alignments of base pointers and pitches
_LINEAR_WIDTH, _PITCH_WIDTH, _PITCH_HEIGHT, _PITCH_BYTES = 69, 70, 71, 72
_TEXTURE_ALIGNMENT, _PITCH_ALIGNMENT = 14, 51


def _fail(message: str, status: CUresult = _INVALID) -> CudaError:
    return CudaError(status, message)


def texel_format(fmt: int, channels: int, what: str) -> tuple[int, ChannelKind]:
    """(bits per channel, kind) of a ``CUarray_format`` with ``channels`` channels, or why not."""
    if fmt in _UNSERVED_FORMATS:
        raise _fail(f"{what}: array format {fmt:#x} (video, block-compressed or packed) is not served "
                    "by sim", CUresult.CUDA_ERROR_NOT_SUPPORTED)
    if fmt not in FORMATS:
        raise _fail(f"{what}: {fmt:#x} is not a CUarray_format")
    if channels not in (1, 2, 4):
        raise _fail(f"{what}: {channels} channels (a texel has 1, 2 or 4)")
    return FORMATS[fmt]


def _geometry(args: ArrayCreateArgs) -> Geometry:
    flags = args.flags
    if flags & ~(_SERVED_FLAGS | _UNSERVED_FLAGS):
        raise _fail(f"cuArray3DCreate: unknown flags {flags:#x}")
    if flags & _UNSERVED_FLAGS:
        raise _fail(f"cuArray3DCreate: flags {flags & _UNSERVED_FLAGS:#x} (depth texture, colour attachment, "
                    "sparse, deferred mapping or video) are not served by sim",
                    CUresult.CUDA_ERROR_NOT_SUPPORTED)
    width, height, depth = args.width, args.height, args.depth
    if width == 0:
        raise _fail("cuArray3DCreate: width 0")
    if flags & CUBEMAP:
        if width != height or depth == 0 or depth % 6 or (not flags & LAYERED and depth != 6):
            raise _fail(f"cuArray3DCreate: a cubemap is square with 6 faces (6*n when layered), not "
                        f"{width}x{height}x{depth}")
        return "cube_layered" if flags & LAYERED else "cube"
    if flags & LAYERED:
        if depth == 0:
            raise _fail("cuArray3DCreate: a layered array with 0 layers")
        return "2d_layered" if height else "1d_layered"
    if flags & TEXTURE_GATHER and (height == 0 or depth):
        raise _fail("cuArray3DCreate: texture gather needs a 2D array")
    if depth:
        if height == 0:
            raise _fail(f"cuArray3DCreate: depth {depth} with height 0")
        return "3d"
    return "2d" if height else "1d"


@dataclass(frozen=True, slots=True)
class SimArray:
    """A live CUDA array: its allocation and shape (``height``/``depth`` at least 1: a 1D array is
    one row, a layered or cubemap array's layers are its slices)."""

    ptr: int
    geometry: Geometry
    width: int
    height: int
    depth: int
    channels: int
    channel_bits: int
    kind: ChannelKind
    flags: int

    @property
    def texel_bytes(self) -> int:
        return self.channels * self.channel_bits // 8

    @property
    def row_bytes(self) -> int:
        return self.width * self.texel_bytes

    def layout(self) -> TexelLayout:
        row = self.row_bytes
        slice_ = row * self.height
        layered = self.geometry not in ("1d", "2d", "3d")
        depth, layers = (1, self.depth) if layered else (self.depth, 1)
        return TexelLayout(self.ptr, self.geometry, self.width, self.height, depth, layers, row, slice_,
                           slice_ * depth, self.channels, self.channel_bits, self.kind)


@dataclass(frozen=True, slots=True)
class _Side:
    """One operand of a box copy: bytes at ``base + z*pitch*layout_height + y*pitch + x``."""

    base: int
    x: int
    y: int
    z: int
    pitch: int
    layout_height: int
    array: SimArray | None = None


class SimTextures:
    """One VM's arrays, texture objects and surface objects (the engine's ``TextureObjects``)."""

    def __init__(self, memory: DeviceMemory, attributes: dict[int, int], ids: Iterator[int],
                 host: HostBudget) -> None:
        """``ids``: the VM's one id space (a handle of another kind is never mistaken for these);
        ``host``: the budget each object's records are charged to."""
        self.memory = memory
        self.attributes = attributes
        self.host = host
        self.arrays: HandleTable[SimArray] = HandleTable("array", ids=ids)
        self.textures: HandleTable[TextureObject] = HandleTable("texture object", ids=ids)
        self.surfaces: HandleTable[SurfaceObject] = HandleTable("surface object", ids=ids)

    # -- TextureObjects ---------------------------------------------------------------------------

    def texture(self, handle: int) -> TextureObject | None:
        return self.textures._objects.get(handle)

    def surface(self, handle: int) -> SurfaceObject | None:
        return self.surfaces._objects.get(handle)

    # -- arrays -----------------------------------------------------------------------------------

    def create_array(self, args: ArrayCreateArgs) -> int:
        what = "cuArray3DCreate"
        geometry = _geometry(args)
        bits, kind = texel_format(args.format, args.channels, what)
        height, depth = max(args.height, 1), max(args.depth, 1)
        limits = _SURFACE_LIMITS if args.flags & SURFACE_LDST else _TEXTURE_LIMITS
        bounds = _GATHER_LIMITS if args.flags & TEXTURE_GATHER else limits[geometry]
        sizes = (args.width, height, depth)
        alternate = geometry == "3d" and not args.flags & SURFACE_LDST and all(
            size <= self.attributes[attribute] for size, attribute in zip(sizes, _ALTERNATE_3D, strict=True))
        for size, attribute, name in zip(sizes, bounds, ("width", "height", "depth"), strict=True):
            bound = self.attributes[attribute] if attribute else 6 if geometry == "cube" else 1
            if size > bound and not alternate:
                raise _fail(f"{what}: {name} {size} exceeds the device's {bound} for a {geometry} "
                            f"{'surface' if args.flags & SURFACE_LDST else 'texture'} array")
        nbytes = args.width * args.channels * bits // 8 * height * depth
        self.host.check(OBJECT_BYTES, what)
        ptr, _ = self.memory.add_global(nbytes)  # charged to the quota, zero-filled
        try:
            handle = self.arrays.add(SimArray(ptr, geometry, args.width, height, depth, args.channels, bits,
                                              kind, args.flags))
        except CudaError:
            self.memory.remove_global(ptr)
            raise
        self.host.charge(OBJECT_BYTES, what)
        return handle

    def destroy_array(self, handle: int) -> None:
        array = self.arrays.pop(handle)
        self.memory.remove_global(array.ptr)
        self.host.release(OBJECT_BYTES)

    def _add(self, table: HandleTable[_T], obj: _T, what: str) -> int:
        self.host.charge(OBJECT_BYTES, what)
        try:
            return table.add(obj)
        except CudaError:
            self.host.release(OBJECT_BYTES)
            raise

    def destroy(self, table: HandleTable[_T], handle: int) -> None:
        table.pop(handle)
        self.host.release(OBJECT_BYTES)

    # -- objects ----------------------------------------------------------------------------------

    def create_texture(self, args: TexObjectCreateArgs) -> int:
        what = "cuTexObjectCreate"
        layout = self._resource_layout(args, what)
        modes = (args.address_x, args.address_y, args.address_z)
        if any(mode > AddressMode.BORDER for mode in modes):
            raise _fail(f"{what}: address modes {modes} (CUaddress_mode is 0..3)")
        if args.filter > 1:
            raise _fail(f"{what}: filter mode {args.filter} (point 0 or linear 1)")
        if args.flags & ~_TEXTURE_FLAGS:
            raise _fail(f"{what}: unknown flags {args.flags:#x}")
        # integers of 8 and 16 bits read as [0, 1] / [-1, 1] floats unless CU_TRSF_READ_AS_INTEGER
        normalized_read = (not args.flags & READ_AS_INTEGER and layout.kind != "float"
                           and layout.channel_bits < 32)
        sampler = Sampler(tuple(AddressMode(m) for m in modes), args.filter == 1,  # type: ignore[arg-type]
                          bool(args.flags & NORMALIZED_COORDINATES), normalized_read, bool(args.flags & SRGB),
                          (args.border_r, args.border_g, args.border_b, args.border_a))
        return self._add(self.textures, TextureObject(layout, sampler), what)

    def _resource_layout(self, args: TexObjectCreateArgs, what: str) -> TexelLayout:
        if args.resource == RESOURCE_ARRAY:
            return self.arrays.get(args.array).layout()
        if args.resource == RESOURCE_MIPMAPPED_ARRAY:
            raise _fail(f"{what}: mipmapped arrays are not served by sim", CUresult.CUDA_ERROR_NOT_SUPPORTED)
        if args.resource not in (RESOURCE_LINEAR, RESOURCE_PITCH2D):
            raise _fail(f"{what}: resource type {args.resource} (array 0, linear 2, pitch 2D 3)")
        bits, kind = texel_format(args.format, args.channels, what)
        texel = args.channels * bits // 8
        attrs = self.attributes
        if args.device == 0 or args.device % attrs[_TEXTURE_ALIGNMENT]:
            raise _fail(f"{what}: device pointer {args.device:#x} is not aligned to the texture alignment "
                        f"({attrs[_TEXTURE_ALIGNMENT]})")
        if args.resource == RESOURCE_LINEAR:
            width = args.size_bytes // texel
            if width == 0 or width > attrs[_LINEAR_WIDTH]:
                raise _fail(f"{what}: a linear resource of {args.size_bytes} bytes holds {width} texels "
                            f"(1 to {attrs[_LINEAR_WIDTH]})")
            return TexelLayout(args.device, "1d", width, 1, 1, 1, width * texel, width * texel, width * texel,
                               args.channels, bits, kind)
        width, height, pitch = args.width, args.height, args.pitch
        if not (0 < width <= attrs[_PITCH_WIDTH] and 0 < height <= attrs[_PITCH_HEIGHT]):
            raise _fail(f"{what}: a pitch-2D resource of {width}x{height} texels (at most "
                        f"{attrs[_PITCH_WIDTH]}x{attrs[_PITCH_HEIGHT]})")
        if pitch < width * texel or pitch > attrs[_PITCH_BYTES] or pitch % attrs[_PITCH_ALIGNMENT]:
            raise _fail(f"{what}: pitch {pitch} for rows of {width * texel} bytes (a multiple of "
                        f"{attrs[_PITCH_ALIGNMENT]}, at most {attrs[_PITCH_BYTES]})")
        return TexelLayout(args.device, "2d", width, height, 1, 1, pitch, pitch * height, pitch * height,
                           args.channels, bits, kind)

    def create_surface(self, args: SurfObjectCreateArgs) -> int:
        array = self.arrays.get(args.array)
        if not array.flags & SURFACE_LDST:
            raise _fail(f"cuSurfObjectCreate: array {args.array} was not created with "
                        "CUDA_ARRAY3D_SURFACE_LDST")
        return self._add(self.surfaces, SurfaceObject(array.layout()), "cuSurfObjectCreate")

    def clear(self) -> None:
        self.host.release(OBJECT_BYTES * len(self))
        for table in (self.textures, self.surfaces):
            table.clear()
        self.arrays.clear()  # their memory goes with DeviceMemory.close

    def __len__(self) -> int:
        return len(self.arrays) + len(self.textures) + len(self.surfaces)

    # -- copies -----------------------------------------------------------------------------------

    def side(self, array: int, x: int, y: int, z: int, device: int, pitch: int, layout_height: int) -> _Side:
        """An array operand (``array`` not 0: resolved now) or pitched device memory."""
        if array == 0:
            return _Side(device, x, y, z, pitch, layout_height)
        found = self.arrays.get(array)
        return _Side(found.ptr, x, y, z, found.row_bytes, found.height, found)

    def box(self, side: _Side, width: int, height: int, depth: int, *, write: bool, what: str
            ) -> tuple[np.ndarray, Callable[[], None] | None]:
        """The ``depth x height x width`` bytes of ``side`` as one strided array, checked, and what
        stores it back when it is a copy (a range across separately mapped VMM chunks)."""
        array = side.array
        if array is not None:
            texel = array.texel_bytes
            if side.x % texel or width % texel:
                raise _fail(f"{what}: x {side.x} and width {width} bytes are not whole {texel}-byte texels")
            if (side.x + width > array.row_bytes or side.y + height > array.height
                    or side.z + depth > array.depth):
                raise _fail(f"{what}: box ({side.x}, {side.y}, {side.z}) + ({width}, {height}, {depth}) runs "
                            f"outside the {array.row_bytes}x{array.height}x{array.depth}-byte array")
        elif (height > 1 or depth > 1) and side.x + width > side.pitch:
            raise _fail(f"{what}: x {side.x} + width {width} exceeds the pitch {side.pitch}")
        elif depth > 1 and side.y + height > side.layout_height:
            raise _fail(f"{what}: y {side.y} + height {height} exceeds the layout's height "
                        f"{side.layout_height}")
        pitch, slice_ = side.pitch, side.pitch * side.layout_height
        first = side.base + side.z * slice_ + side.y * pitch + side.x
        span = (depth - 1) * slice_ + (height - 1) * pitch + width
        memory = self.memory
        try:
            flat: Bytes = memory.view(first, span, write=write, what=what)
            commit = None
        except CudaError as exc:
            if exc.status != CUresult.CUDA_ERROR_NOT_SUPPORTED:
                raise
            flat = memory.read(first, span, what)  # across VMM chunks: work on a copy

            def commit() -> None:
                memory.write(first, flat, what)

        # a dimension of one step never moves: stride 0, not a guest's pitch or slice past int64 (the
        # others lie within the span just checked)
        strides = (slice_ if depth > 1 else 0, pitch if height > 1 else 0, 1)
        strided = np.lib.stride_tricks.as_strided(flat, (depth, height, width), strides, writeable=write)
        return strided, commit if write else None


def _copy(dst: tuple[np.ndarray, Callable[[], None] | None], src: np.ndarray) -> None:
    np.copyto(dst[0], src)
    if dst[1] is not None:
        dst[1]()


class SimTextureCalls:
    """The 0x00Bx calls, mixed into :class:`SimExecutor`."""

    textures: SimTextures
    enqueue: Callable[..., None]
    _stream_work: Callable[..., StreamState]
    _unsafe: Callable[[str], None]

    def array_create(self, args: ArrayCreateArgs, io: CallIO) -> ArrayResult:
        self._unsafe("cuArray3DCreate")
        return ArrayResult(array=self.textures.create_array(args))

    def array_destroy(self, args: ArrayArgs, io: CallIO) -> NoResult:
        self._unsafe("cuArrayDestroy")
        self.textures.destroy_array(args.array)
        return _NO_RESULT

    def tex_object_create(self, args: TexObjectCreateArgs, io: CallIO) -> TexObjectResult:
        return TexObjectResult(texture=self.textures.create_texture(args))

    def tex_object_destroy(self, args: TexObjectArgs, io: CallIO) -> NoResult:
        self.textures.destroy(self.textures.textures, args.texture)
        return _NO_RESULT

    def surf_object_create(self, args: SurfObjectCreateArgs, io: CallIO) -> SurfObjectResult:
        return SurfObjectResult(surface=self.textures.create_surface(args))

    def surf_object_destroy(self, args: SurfObjectArgs, io: CallIO) -> NoResult:
        self.textures.destroy(self.textures.surfaces, args.surface)
        return _NO_RESULT

    def memcpy_3d(self, args: Memcpy3DArgs, io: CallIO) -> NoResult:
        what = "cuMemcpy3D"
        self._stream_work(args.stream, io, what)
        w, h, d = args.width_bytes, args.height, args.depth
        if not (w and h and d):
            return _NO_RESULT
        tex = self.textures

        def run() -> None:  # handles and ranges resolved when it runs: a graph may outlive them
            src = tex.side(args.src_array, args.src_x, args.src_y, args.src_z, args.src_device,
                           args.src_pitch, args.src_layout_height)
            dst = tex.side(args.dst_array, args.dst_x, args.dst_y, args.dst_z, args.dst_device,
                           args.dst_pitch, args.dst_layout_height)
            source, _ = tex.box(src, w, h, d, write=False, what=f"{what} source")
            _copy(tex.box(dst, w, h, d, write=True, what=f"{what} destination"), source)

        self.enqueue(args.stream, run, what)
        return _NO_RESULT

    def _host_side(self, args: Memcpy3DHostArgs) -> _Side:
        return self.textures.side(args.array, args.x, args.y, args.z, args.device, args.pitch,
                                  args.layout_height)

    def memcpy_3d_htod(self, args: Memcpy3DHostArgs, io: CallIO) -> NoResult:
        what = "cuMemcpy3D (host to device)"
        self._stream_work(args.stream, io, what, host=True)
        w, h, d = args.width_bytes, args.height, args.depth
        if w * h * d != len(io.inp):
            raise _fail(f"{what}: a {w}x{h}x{d}-byte box with {len(io.inp)} bytes of payload")
        if not len(io.inp):
            return _NO_RESULT
        data = np.frombuffer(io.inp, dtype=np.uint8).reshape(d, h, w)
        tex = self.textures
        side = self._host_side

        def run() -> None:
            _copy(tex.box(side(args), w, h, d, write=True, what=what), data)

        self.enqueue(args.stream, run, what)
        return _NO_RESULT

    def memcpy_3d_dtoh(self, args: Memcpy3DHostArgs, io: CallIO) -> NoResult:
        what = "cuMemcpy3D (device to host)"
        w, h, d = args.width_bytes, args.height, args.depth
        count = w * h * d
        if count > len(io.out):
            raise _fail(f"{what}: a {w}x{h}x{d}-byte box into a {len(io.out)}-byte output area")
        self._stream_work(args.stream, io, what, host=True)
        if not count:
            return _NO_RESULT
        out = np.frombuffer(io.out, dtype=np.uint8, count=count).reshape(d, h, w)
        tex = self.textures
        self.enqueue(args.stream, lambda: np.copyto(out, tex.box(self._host_side(args), w, h, d, write=False,
                                                                  what=what)[0]), what)
        io.out_len = count
        return _NO_RESULT
