"""The simulator's ``tensor_map_encode_tiled`` and ``tensor_map_encode_im2col``: the map in sim's own
128-byte encoding (``executor/ptx/_tensor_map.py``), which the PTX engine decodes and checks again at
every TMA instruction. As CUDA's driver, it does not look at the memory the map names: each element a
copy moves is checked then, as every kernel access is."""

from __future__ import annotations

from protocol.models import NoResult, TensorMapEncodeIm2colArgs, TensorMapEncodeTiledArgs

from ._base import CallIO
from ._tensor_map_args import checked_im2col_map, checked_map, write_map
from .ptx._tensor_map import encode

__all__ = ["SimTensorMapCalls"]


class SimTensorMapCalls:
    """The 0x00Cx calls, mixed into :class:`~executor._sim.SimExecutor`."""

    def tensor_map_encode_tiled(self, args: TensorMapEncodeTiledArgs, io: CallIO) -> NoResult:
        write_map(io, encode(checked_map(args, io, sim=True)))
        return NoResult()

    def tensor_map_encode_im2col(self, args: TensorMapEncodeIm2colArgs, io: CallIO) -> NoResult:
        write_map(io, encode(checked_im2col_map(args, io, sim=True)))
        return NoResult()
