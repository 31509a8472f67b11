"""``sim``'s pitched calls (0x00C8-0x00CF): a 2D memset over one strided view of the span, and box
copies between the caller's pinned memory and an array or pitched device memory, straight between the
region's pinned area and device memory (no payload). As the 1D forms, they run at once unless the
stream captures; a recorded node resolves and checks its ranges again when the graph runs (the guest
may have freed them since)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import numpy as np

from protocol.models import Memcpy3DPinnedArgs, Memset2DArgs, NoResult

from ._base import CallIO
from ._pitched import memset_2d_span, pinned_host_box
from ._sim_graph import StreamState
from ._sim_memory import fill_views
from ._sim_textures import SimTextures, _copy, _Side

__all__ = ["SimPitchedCalls"]

_NO_RESULT: Final = NoResult()


class SimPitchedCalls:
    """Mixed into :class:`~executor._sim.SimExecutor`."""

    textures: SimTextures
    enqueue: Callable[..., None]
    pinned_view: Callable[..., memoryview]
    _stream_work: Callable[..., StreamState]
    _stream: Callable[[int], StreamState]

    def memset_2d(self, args: Memset2DArgs, io: CallIO) -> NoResult:
        what, row, span = memset_2d_span(args)
        self._stream_work(args.stream, io, what)
        if not span:
            return _NO_RESULT
        tex, size, value = self.textures, args.element_bytes, args.value
        side = _Side(args.dst, 0, 0, 0, args.pitch, 1)

        def run() -> None:
            rows, commit = tex.box(side, row, args.height, 1, write=True, what=f"{what} destination")
            fill_views([rows], value & ((1 << 8 * size) - 1), size)
            if commit is not None:
                commit()

        if self._stream(args.stream).capture is not None:
            tex.box(side, row, args.height, 1, write=False, what=f"{what} destination")  # refused now too
        self.enqueue(args.stream, run, what)
        return _NO_RESULT

    def _pinned_box(self, args: Memcpy3DPinnedArgs, what: str) -> Callable[[], np.ndarray]:
        """The host side as a strided array over the pinned area, checked now and each time it is
        resolved (a graph's replay)."""
        box = pinned_host_box(args, what)
        shape = (args.depth, args.height, args.width_bytes)
        view = self.pinned_view

        def resolve() -> np.ndarray:
            flat = np.frombuffer(view(box.first, box.span, f"{what} pinned side"), dtype=np.uint8)
            return np.lib.stride_tricks.as_strided(flat, shape, (box.slice_stride, box.row_stride, 1))

        resolve()
        return resolve

    def _device_side(self, args: Memcpy3DPinnedArgs) -> _Side:
        return self.textures.side(
            args.array, args.x, args.y, args.z, args.device, args.pitch, args.layout_height
        )

    def memcpy_3d_htod_pinned(self, args: Memcpy3DPinnedArgs, io: CallIO) -> NoResult:
        what = "cuMemcpy3D (pinned to device)"
        self._stream_work(args.stream, io, what)
        w, h, d = args.width_bytes, args.height, args.depth
        if not (w and h and d):
            return _NO_RESULT
        host, tex, side = self._pinned_box(args, what), self.textures, self._device_side

        def run() -> None:
            _copy(tex.box(side(args), w, h, d, write=True, what=what), host())

        self.enqueue(args.stream, run, what)
        return _NO_RESULT

    def memcpy_3d_dtoh_pinned(self, args: Memcpy3DPinnedArgs, io: CallIO) -> NoResult:
        what = "cuMemcpy3D (device to pinned)"
        self._stream_work(args.stream, io, what)
        w, h, d = args.width_bytes, args.height, args.depth
        if not (w and h and d):
            return _NO_RESULT
        host, tex, side = self._pinned_box(args, what), self.textures, self._device_side

        def run() -> None:
            np.copyto(host(), tex.box(side(args), w, h, d, write=False, what=what)[0])

        self.enqueue(args.stream, run, what)
        return _NO_RESULT
