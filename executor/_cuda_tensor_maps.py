"""The ``cuda`` backend's ``tensor_map_encode_tiled`` and ``tensor_map_encode_im2col``: the driver's
``cuTensorMapEncodeTiled`` (``cuTensorMapEncodeIm2col``) for the
VM's device pointer, after CUDA's rules are checked here too and the tensor's whole extent (every
element any box can reach) is found to lie in the VM's memory, read and write (a store may target it):
the GPU's copy engine does not ask the mediator. The map's bytes are the driver's opaque format; a guest
that forges them reaches no further than its own context, as on a GPU. Not run on a GPU yet (none was
lent)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from protocol.models import NoResult, TensorMapEncodeIm2colArgs, TensorMapEncodeTiledArgs

from ._base import CallIO
from ._cuda_base import CudaBase
from ._cuda_driver import check
from ._tensor_map_args import WHAT, WHAT_IM2COL, checked_im2col_map, checked_map, write_map
from .ptx._tensor_map import TensorMap

__all__ = ["CudaTensorMapCalls"]


class CudaTensorMapCalls(CudaBase):
    """The 0x00Cx calls, mixed into :class:`~executor._cuda.CudaExecutor`."""

    def _check_extent(self, m: TensorMap, what: str) -> None:
        """Every element any copy through the map can reach is the VM's memory (read and write)."""
        strides = (m.element_bytes, *m.strides)
        extent = sum((d - 1) * s for d, s in zip(m.dims, strides, strict=True)) + m.element_bytes
        self._check_range(m.address, extent, write=True, what=f"{what} tensor")

    def tensor_map_encode_tiled(self, args: TensorMapEncodeTiledArgs, io: CallIO) -> NoResult:
        m = checked_map(args, io, sim=False)
        self._check_extent(m, WHAT)
        d = self._drv.module
        self._write_driver_map(io, m, WHAT, d.cuTensorMapEncodeTiled, [d.cuuint32_t(x) for x in m.box])
        return NoResult()

    def tensor_map_encode_im2col(self, args: TensorMapEncodeIm2colArgs, io: CallIO) -> NoResult:
        m = checked_im2col_map(args, io, sim=False)
        self._check_extent(m, WHAT_IM2COL)
        d = self._drv.module
        shape = (list(m.lower), list(m.upper), m.channels, m.pixels)
        self._write_driver_map(io, m, WHAT_IM2COL, d.cuTensorMapEncodeIm2col, *shape)
        return NoResult()

    def _write_driver_map(
        self, io: CallIO, m: TensorMap, what: str, encode: Callable[..., Any], *shape: Any
    ) -> None:
        """The driver's map of ``m`` into the output: both encode calls take the tensor's fields around
        ``shape``, what only their kind has (a box; an im2col map's corners, channels and pixels)."""
        d = self._drv.module
        u64 = d.cuuint64_t
        tensor_map = check(
            encode(
                d.CUtensorMapDataType(m.data_type),
                m.rank,
                m.address,
                [u64(x) for x in m.dims],
                [u64(x) for x in m.strides],
                *shape,
                [d.cuuint32_t(x) for x in m.element_strides],
                d.CUtensorMapInterleave(m.interleave),
                d.CUtensorMapSwizzle(m.swizzle),
                d.CUtensorMapL2promotion(m.l2_promotion),
                d.CUtensorMapFloatOOBfill(m.oob_fill),
            ),
            what,
        )
        write_map(io, b"".join(int(word).to_bytes(8, "little") for word in tensor_map.opaque))
