"""The ``cuda`` backend's pitched calls (0x00C8-0x00CF): ``cuMemsetD2D8/16/32Async`` over a span
checked to be the VM's memory, and ``cuMemcpy3DAsync`` between the caller's pinned range (registered
with the driver: DMA, as ``_cuda_pinned``'s copies) and an array or pitched device memory. Host copies
on a capturing stream are refused as every host copy is (``_host_copy_allowed``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from protocol.models import Memcpy3DPinnedArgs, Memset2DArgs, NoResult

from ._base import CallIO
from ._cuda_base import CudaBase
from ._cuda_driver import check
from ._pitched import memset_2d_span, pinned_host_box

__all__ = ["CudaPitchedCalls"]

_NO_RESULT: Final = NoResult()
_HOST: Final = 1  # CU_MEMORYTYPE_HOST


class CudaPitchedCalls(CudaBase):
    """Mixed into :class:`~executor._cuda.CudaExecutor`."""

    pinned_address: Callable[..., int]  # CudaPinnedCalls'
    _side: Callable[..., dict[str, Any]]  # CudaTextureCalls'
    _copy: Callable[..., None]

    def memset_2d(self, args: Memset2DArgs, io: CallIO) -> NoResult:
        what, row, span = memset_2d_span(args)
        stream = self._stream(args.stream)
        if span:
            self._check_range(args.dst, span, write=True, what=f"{what} destination")
            m = self._drv.module
            fn = {1: m.cuMemsetD2D8Async, 2: m.cuMemsetD2D16Async, 4: m.cuMemsetD2D32Async}[
                args.element_bytes
            ]
            pitch = args.pitch if args.height > 1 else row
            check(
                fn(
                    args.dst,
                    pitch,
                    args.value & ((1 << 8 * args.element_bytes) - 1),
                    args.width,
                    args.height,
                    stream,
                ),
                what,
            )
        if io.blocking:
            self._sync(stream, what)
        return _NO_RESULT

    def _pinned_copy(self, args: Memcpy3DPinnedArgs, io: CallIO, to_device: bool, what: str) -> None:
        box = (args.width_bytes, args.height, args.depth)
        if not all(box):
            if io.blocking:
                self._sync(self._stream(args.stream), what)
            return
        host = pinned_host_box(args, what)
        address = self.pinned_address(host.first, host.span, f"{what} pinned side")
        prefix, side = ("dst", "src") if to_device else ("src", "dst")
        device = self._side(
            prefix,
            args.array,
            args.x,
            args.y,
            args.z,
            args.device,
            args.pitch,
            args.layout_height,
            box,
            to_device,
            what,
        )
        self._host_copy_allowed(self._stream(args.stream), args.stream, what)
        pitch = args.host_pitch if args.height > 1 or args.depth > 1 else args.width_bytes
        fields = {
            f"{side}MemoryType": _HOST,
            f"{side}Host": address,
            f"{side}Pitch": pitch,
            f"{side}Height": args.host_layout_height if args.depth > 1 else args.height,
        }
        self._copy(device | fields, box, args.stream, io.blocking, what)

    def memcpy_3d_htod_pinned(self, args: Memcpy3DPinnedArgs, io: CallIO) -> NoResult:
        self._pinned_copy(args, io, True, "cuMemcpy3D (pinned to device)")
        return _NO_RESULT

    def memcpy_3d_dtoh_pinned(self, args: Memcpy3DPinnedArgs, io: CallIO) -> NoResult:
        self._pinned_copy(args, io, False, "cuMemcpy3D (device to pinned)")
        return _NO_RESULT
