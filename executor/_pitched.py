"""The checks both backends make on the pitched calls of 0x00C8-0x00CF (``protocol/_pitched.py``):
every field is the guest's, so a row wider than its pitch, an element size CUDA has no memset for, a
misaligned destination or a span past 2^64 is ``CUDA_ERROR_INVALID_VALUE`` before any memory is named.
Whether the span is the VM's memory (or the caller's pinned range) each backend checks itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from protocol import CUresult
from protocol.models import Memcpy3DPinnedArgs, Memset2DArgs

from ._errors import CudaError

__all__ = ["HostBox", "memset_2d_span", "pinned_host_box"]

_ADDRESS_LIMIT: Final = 1 << 64
MEMSET_2D_NAMES: Final = {1: "cuMemsetD2D8", 2: "cuMemsetD2D16", 4: "cuMemsetD2D32"}


def _fail(message: str) -> CudaError:
    return CudaError(CUresult.CUDA_ERROR_INVALID_VALUE, message)


def memset_2d_span(args: Memset2DArgs) -> tuple[str, int, int]:
    """The call's name, a row's bytes and the span's bytes (``(height - 1) * pitch + row``; 0 when
    there is nothing to set), after CUDA's checks of the fields."""
    size = args.element_bytes
    what = MEMSET_2D_NAMES.get(size)
    if what is None:
        raise _fail(f"cuMemsetD2D: element size {size} (1, 2 or 4)")
    row = args.width * size
    if args.width == 0 or args.height == 0:
        return what, row, 0
    if args.dst % size or (args.height > 1 and args.pitch % size):
        raise _fail(f"{what}: destination {args.dst:#x} or pitch {args.pitch} is not {size}-byte aligned")
    if args.height > 1 and row > args.pitch:
        raise _fail(f"{what}: a row of {row} bytes is wider than the pitch {args.pitch}")
    span = (args.height - 1) * args.pitch + row
    if args.dst + span > _ADDRESS_LIMIT:
        raise _fail(f"{what}: {args.height} rows of pitch {args.pitch} run past the end of the address space")
    return what, row, span


@dataclass(frozen=True, slots=True)
class HostBox:
    """Where a pinned box copy's host side lies in the pinned area: ``span`` bytes from ``first``,
    rows ``row_stride`` and slices ``slice_stride`` apart (0 along a dimension of one step)."""

    first: int
    span: int
    row_stride: int
    slice_stride: int


def pinned_host_box(args: Memcpy3DPinnedArgs, what: str) -> HostBox:
    """The host side of a pinned box copy, checked as a pitched side is (its rows inside the pitch,
    its slices inside the layout height, the span below 2^64)."""
    w, h, d = args.width_bytes, args.height, args.depth
    pitch, height = args.host_pitch, args.host_layout_height
    if (h > 1 or d > 1) and args.host_x + w > pitch:
        raise _fail(f"{what}: host x {args.host_x} + width {w} exceeds the host pitch {pitch}")
    if d > 1 and args.host_y + h > height:
        raise _fail(f"{what}: host y {args.host_y} + height {h} exceeds the host layout's height {height}")
    first = args.offset + args.host_z * pitch * height + args.host_y * pitch + args.host_x
    span = (d - 1) * pitch * height + (h - 1) * pitch + w
    if first + span > _ADDRESS_LIMIT:
        raise _fail(f"{what}: the host box runs past the end of the address space")
    return HostBox(first, span, pitch if h > 1 else 0, pitch * height if d > 1 else 0)
