"""The ``cuda`` backend's CUDA arrays, texture and surface objects and the copies with an array as a side.

Arrays are the driver's (``cuArray3DCreate``), charged to the VM's quota by their texel bytes as a
``cuMemAlloc`` of that size would be. A texture or surface object's handle is the driver's own
``CUtexObject``/``CUsurfObject`` value — kernels receive it as a parameter and the GPU resolves it in
the VM's context — so it must fit the protocol's 32 bits (the driver's are small indices; a larger
one is refused, not truncated). Linear and pitch-2D resources are checked to lie in the VM's memory
before the driver sees them, as every copy's device range is; what a kernel reads through an object
whose memory was freed afterwards stays inside the VM's own context (its address space), as on a GPU.
Host sides of copies are the call's payload, packed, and wait for the copy (the payload is the
guest's again when the call returns). Not run on a GPU yet (none was lent): tested against a stand-in
for ``cuda.bindings.driver``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any, Final

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

from ._base import CallIO, HandleTable
from ._cuda_base import CudaBase, host_address
from ._cuda_driver import DriverHandle, check
from ._errors import CudaError
from ._sim_textures import RESOURCE_ARRAY, RESOURCE_LINEAR, RESOURCE_PITCH2D, texel_format

__all__ = ["CudaTextureCalls", "CudaTextures"]

_NO_RESULT: Final = NoResult()
_ARRAY, _DEVICE, _HOST = 3, 2, 1  # CUmemorytype
#: live texture objects, and live surface objects, a VM may hold: the bound every handle kind has
#: (``HandleTable``), so that the records no quota sees stay bounded
MAX_OBJECTS: Final = 1 << 20


@dataclass(eq=False, slots=True)
class CudaArray:
    array: DriverHandle
    nbytes: int  # charged to the VM's quota
    texel_bytes: int


class CudaTextures:
    """The VM's arrays (our handles) and the driver's texture and surface objects it made."""

    def __init__(self, ids: Iterator[int]) -> None:
        self.arrays: HandleTable[CudaArray] = HandleTable("array", ids=ids)
        self.textures: dict[int, DriverHandle] = {}
        self.surfaces: dict[int, DriverHandle] = {}

    def __len__(self) -> int:
        return len(self.arrays) + len(self.textures) + len(self.surfaces)


def _destroy(call: Callable[[Any], Any], obj: DriverHandle, what: str) -> None:
    check(call(obj), what)


def _room(objects: dict[int, DriverHandle], what: str) -> None:
    """Refuse a new object, before the driver makes it, when ``objects`` holds :data:`MAX_OBJECTS`."""
    if len(objects) >= MAX_OBJECTS:
        raise CudaError(CUresult.CUDA_ERROR_OUT_OF_MEMORY,
                        f"{what}: {MAX_OBJECTS} objects of this kind are live")


def _struct(driver: Any, name: str, **fields: Any) -> Any:
    """A cuda-bindings struct with ``fields`` set (nested ones by ``a__b`` names)."""
    obj = getattr(driver, name)()
    for key, value in fields.items():
        *path, last = key.split("__")
        target = obj
        for part in path:
            target = getattr(target, part)
        setattr(target, last, value)
    return obj


class CudaTextureCalls(CudaBase):
    """The 0x00Bx calls, mixed into :class:`CudaExecutor`."""

    _textures: CudaTextures
    _charge: Callable[[int, str], None]

    # -- arrays -----------------------------------------------------------------------------------

    def array_create(self, args: ArrayCreateArgs, io: CallIO) -> ArrayResult:
        what = "cuArray3DCreate"
        bits, _ = texel_format(args.format, args.channels, what)
        texel = args.channels * bits // 8
        nbytes = args.width * texel * max(args.height, 1) * max(args.depth, 1)
        self._charge(nbytes, what)
        d = self._drv.module
        desc = _struct(d, "CUDA_ARRAY3D_DESCRIPTOR", Width=args.width, Height=args.height, Depth=args.depth,
                       Format=d.CUarray_format(args.format), NumChannels=args.channels, Flags=args.flags)
        array = check(d.cuArray3DCreate(desc), what)
        try:
            handle = self._textures.arrays.add(CudaArray(array, nbytes, texel))
        except CudaError:
            check(d.cuArrayDestroy(array), "cuArrayDestroy")
            raise
        self._alloc_bytes += nbytes
        return ArrayResult(array=handle)

    def array_destroy(self, args: ArrayArgs, io: CallIO) -> NoResult:
        record = self._textures.arrays.get(args.array)
        check(self._drv.module.cuArrayDestroy(record.array), "cuArrayDestroy")
        self._textures.arrays.pop(args.array)
        self._alloc_bytes -= record.nbytes
        return _NO_RESULT

    def release_textures(self) -> list[tuple[str, Callable[[], None]]]:
        """The context is closing: the steps that destroy its texture and surface objects, then its
        arrays (the objects name them), each raising a ``CudaError`` naming its call; the records are
        forgotten now (nothing of them may count as held once the context is gone)."""
        d, tex = self._drv.module, self._textures
        kinds = (("cuTexObjectDestroy", tex.textures), ("cuSurfObjectDestroy", tex.surfaces))
        steps: list[tuple[str, Callable[[], None]]] = [
            (what, partial(_destroy, getattr(d, what), obj, what)) for what, objects in kinds
            for obj in objects.values()]
        steps += [("cuArrayDestroy", partial(_destroy, d.cuArrayDestroy, record.array, "cuArrayDestroy"))
                  for record in tex.arrays.clear()]
        tex.textures.clear()
        tex.surfaces.clear()
        return steps

    # -- objects ----------------------------------------------------------------------------------

    def _resource(self, args: TexObjectCreateArgs, what: str) -> Any:
        d = self._drv.module
        kind = d.CUresourcetype
        if args.resource == RESOURCE_ARRAY:
            array = self._textures.arrays.get(args.array).array
            return _struct(d, "CUDA_RESOURCE_DESC", resType=kind(RESOURCE_ARRAY), res__array__hArray=array)
        if args.resource not in (RESOURCE_LINEAR, RESOURCE_PITCH2D):
            mipmapped = args.resource == 1
            status = CUresult.CUDA_ERROR_NOT_SUPPORTED if mipmapped else CUresult.CUDA_ERROR_INVALID_VALUE
            raise CudaError(status, f"{what}: resource type {args.resource} (array 0, linear 2, pitch 2D 3; "
                            "mipmapped arrays are not served)")
        texel_format(args.format, args.channels, what)
        fmt = d.CUarray_format(args.format)
        if args.resource == RESOURCE_LINEAR:
            self._check_range(args.device, args.size_bytes, write=False, what=f"{what} linear resource")
            return _struct(d, "CUDA_RESOURCE_DESC", resType=kind(RESOURCE_LINEAR),
                           res__linear__devPtr=args.device, res__linear__format=fmt,
                           res__linear__numChannels=args.channels,
                           res__linear__sizeInBytes=args.size_bytes)
        self._check_range(args.device, args.pitch * args.height, write=False,
                          what=f"{what} pitch-2D resource")
        return _struct(d, "CUDA_RESOURCE_DESC", resType=kind(RESOURCE_PITCH2D),
                       res__pitch2D__devPtr=args.device, res__pitch2D__format=fmt,
                       res__pitch2D__numChannels=args.channels,
                       res__pitch2D__width=args.width, res__pitch2D__height=args.height,
                       res__pitch2D__pitchInBytes=args.pitch)

    def tex_object_create(self, args: TexObjectCreateArgs, io: CallIO) -> TexObjectResult:
        what = "cuTexObjectCreate"
        d = self._drv.module
        _room(self._textures.textures, what)
        resource = self._resource(args, what)
        try:
            modes = [d.CUaddress_mode(m) for m in (args.address_x, args.address_y, args.address_z)]
            filter_mode = d.CUfilter_mode(args.filter)
        except ValueError as exc:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE, f"{what}: {exc}") from None
        desc = _struct(d, "CUDA_TEXTURE_DESC", addressMode=modes, filterMode=filter_mode, flags=args.flags,
                       borderColor=[args.border_r, args.border_g, args.border_b, args.border_a])
        obj = check(d.cuTexObjectCreate(resource, desc, None), what)
        return TexObjectResult(texture=self._keep(self._textures.textures, obj, what, "cuTexObjectDestroy"))

    def tex_object_destroy(self, args: TexObjectArgs, io: CallIO) -> NoResult:
        return self._drop(self._textures.textures, args.texture, "texture object", "cuTexObjectDestroy")

    def surf_object_create(self, args: SurfObjectCreateArgs, io: CallIO) -> SurfObjectResult:
        what = "cuSurfObjectCreate"
        d = self._drv.module
        _room(self._textures.surfaces, what)
        array = self._textures.arrays.get(args.array).array
        resource = _struct(d, "CUDA_RESOURCE_DESC", resType=d.CUresourcetype(RESOURCE_ARRAY),
                           res__array__hArray=array)
        obj = check(d.cuSurfObjectCreate(resource), what)
        return SurfObjectResult(surface=self._keep(self._textures.surfaces, obj, what, "cuSurfObjectDestroy"))

    def surf_object_destroy(self, args: SurfObjectArgs, io: CallIO) -> NoResult:
        return self._drop(self._textures.surfaces, args.surface, "surface object", "cuSurfObjectDestroy")

    def _keep(self, objects: dict[int, DriverHandle], obj: DriverHandle, what: str, destroy: str) -> int:
        """The driver's object under its own value, which must fit the protocol's 32 bits."""
        value = int(obj)
        if not 0 < value <= 0xFFFF_FFFF:
            check(getattr(self._drv.module, destroy)(obj), destroy)
            raise CudaError(CUresult.CUDA_ERROR_NOT_SUPPORTED,
                            f"{what}: the driver's handle {value:#x} does not fit the protocol's 32 bits")
        objects[value] = obj
        return value

    def _drop(self, objects: dict[int, DriverHandle], handle: int, kind: str, destroy: str) -> NoResult:
        obj = objects.get(handle)
        if obj is None:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_HANDLE,
                            f"{kind} handle {handle} was never issued to this VM or is already destroyed")
        check(getattr(self._drv.module, destroy)(obj), destroy)
        del objects[handle]
        return _NO_RESULT

    # -- copies -----------------------------------------------------------------------------------

    def _side(self, prefix: str, array: int, x: int, y: int, z: int, device: int, pitch: int, height: int,
              box: tuple[int, int, int], write: bool, what: str) -> dict[str, Any]:
        """CUDA_MEMCPY3D's fields for one device-side operand, its device range checked."""
        fields: dict[str, Any] = {f"{prefix}XInBytes": x, f"{prefix}Y": y, f"{prefix}Z": z}
        if array:
            return fields | {f"{prefix}MemoryType": _ARRAY,
                             f"{prefix}Array": self._textures.arrays.get(array).array}
        w, h, d = box
        if ((h > 1 or d > 1) and x + w > pitch) or (d > 1 and y + h > height):
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"{what}: a {w}x{h}x{d} box at ({x}, {y}, {z}) does not fit pitch {pitch} and "
                            f"height {height}")
        first = device + z * pitch * height + y * pitch + x
        self._check_range(first, (d - 1) * pitch * height + (h - 1) * pitch + w, write=write, what=what)
        return fields | {f"{prefix}MemoryType": _DEVICE, f"{prefix}Device": device, f"{prefix}Pitch": pitch,
                         f"{prefix}Height": height}

    def _copy(self, fields: dict[str, Any], box: tuple[int, int, int], stream: int, wait: bool,
              what: str) -> None:
        d = self._drv.module
        w, h, depth = box
        kinds = {k: d.CUmemorytype(v) for k, v in fields.items() if k.endswith("MemoryType")}
        params = _struct(d, "CUDA_MEMCPY3D", **(fields | kinds), WidthInBytes=w, Height=h, Depth=depth)
        handle = self._stream(stream)
        check(d.cuMemcpy3DAsync(params, handle), what)
        if wait:
            self._sync(handle, what)

    def memcpy_3d(self, args: Memcpy3DArgs, io: CallIO) -> NoResult:
        what = "cuMemcpy3D"
        box = (args.width_bytes, args.height, args.depth)
        if not all(box):
            return _NO_RESULT
        src = self._side("src", args.src_array, args.src_x, args.src_y, args.src_z, args.src_device,
                         args.src_pitch, args.src_layout_height, box, False, f"{what} source")
        dst = self._side("dst", args.dst_array, args.dst_x, args.dst_y, args.dst_z, args.dst_device,
                         args.dst_pitch, args.dst_layout_height, box, True, f"{what} destination")
        self._copy(src | dst, box, args.stream, io.blocking, what)
        return _NO_RESULT

    def _host_copy(self, args: Memcpy3DHostArgs, buffer: memoryview, to_device: bool, what: str) -> None:
        box = (args.width_bytes, args.height, args.depth)
        prefix, host = ("dst", "src") if to_device else ("src", "dst")
        side = self._side(prefix, args.array, args.x, args.y, args.z, args.device, args.pitch,
                          args.layout_height, box, to_device, what)
        self._host_copy_allowed(self._stream(args.stream), args.stream, what)
        packed = {f"{host}MemoryType": _HOST, f"{host}Host": host_address(buffer), f"{host}Pitch": box[0],
                  f"{host}Height": box[1]}
        self._copy(side | packed, box, args.stream, True, what)  # the payload is the guest's on return

    def memcpy_3d_htod(self, args: Memcpy3DHostArgs, io: CallIO) -> NoResult:
        what = "cuMemcpy3D (host to device)"
        count = args.width_bytes * args.height * args.depth
        if count != len(io.inp):
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"{what}: a {args.width_bytes}x{args.height}x{args.depth}-byte box with "
                            f"{len(io.inp)} bytes of payload")
        if count:
            self._host_copy(args, io.inp, True, what)
        return _NO_RESULT

    def memcpy_3d_dtoh(self, args: Memcpy3DHostArgs, io: CallIO) -> NoResult:
        what = "cuMemcpy3D (device to host)"
        count = args.width_bytes * args.height * args.depth
        if count > len(io.out):
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"{what}: a {args.width_bytes}x{args.height}x{args.depth}-byte box into a "
                            f"{len(io.out)}-byte output area")
        if count:
            self._host_copy(args, io.out, False, what)
            io.out_len = count
        return _NO_RESULT
