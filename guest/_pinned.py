"""Pinned host memory for the Python guest (protocol 2.1, docs/protocol.md §1): ranges of the region's
pinned area, handed out by the host, and copies that name them instead of carrying a payload — the host
moves the bytes itself, straight between the region and device memory."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from protocol import CALLS_BY_NAME

from ._client import CudaCallError, GuestClient

__all__ = ["PinnedBuffer", "host_alloc", "host_free", "memcpy_dtoh_pinned", "memcpy_htod_pinned"]

_HTOD: Final = CALLS_BY_NAME["memcpy_htod_pinned"].call_id
_DTOH: Final = CALLS_BY_NAME["memcpy_dtoh_pinned"].call_id
#: both pinned copies' arguments: (device pointer, pinned offset, count, stream)
_COPY_ARGS: Final = struct.Struct("<QQQI4x")


@dataclass(eq=False)
class PinnedBuffer:
    """``size`` bytes of pinned memory at pinned offset ``offset``; ``view`` is them in our mapping."""

    offset: int
    size: int
    view: memoryview


def host_alloc(gpu: GuestClient, size: int, flags: int = 0) -> PinnedBuffer:
    """``cuMemHostAlloc``: a range of the pinned area (CudaCallError OUT_OF_MEMORY when it is full,
    NOT_SUPPORTED when the region has none)."""
    offset = gpu.value("mem_host_alloc", "offset", gpu.args("mem_host_alloc", bytesize=size, flags=flags))
    layout = gpu.header.layout
    if offset + size > layout.pinned_size:
        raise CudaCallError("mem_host_alloc", 999)  # never from a sound host: CUDA_ERROR_UNKNOWN
    start = layout.pinned_offset + offset
    return PinnedBuffer(offset, size, gpu.header.buf[start:start + size])


def host_free(gpu: GuestClient, buf: PinnedBuffer) -> None:
    """``cuMemFreeHost``; the view is released first, whatever the host answers (the client's mapping
    cannot close while a view of it is alive)."""
    buf.view.release()
    gpu.checked("mem_free_host", gpu.args("mem_free_host", offset=buf.offset))


def _copy(gpu: GuestClient, call_id: int, name: str, device: int, buf: PinnedBuffer, start: int,
          count: int | None, stream: int, asynchronous: bool) -> None:
    count = buf.size - start if count is None else count
    raw = _COPY_ARGS.pack(device, buf.offset + start, count, stream)
    seq, _ = gpu._submit(call_id, raw, None, 0, 1 if asynchronous else 0)  # SubmitFlags.ASYNC
    if not asynchronous:
        completion = gpu.wait(seq)
        if completion.status:
            raise CudaCallError(name, completion.status, completion.flags)


def memcpy_htod_pinned(gpu: GuestClient, dst: int, buf: PinnedBuffer, count: int | None = None, *,
                       start: int = 0, stream: int = 0, asynchronous: bool = False) -> None:
    """Copy ``count`` bytes (default: the rest) of ``buf`` from ``start`` to device ``dst``; posted
    when ``asynchronous`` (``buf`` is the stream's until it is synchronized)."""
    _copy(gpu, _HTOD, "memcpy_htod_pinned", dst, buf, start, count, stream, asynchronous)


def memcpy_dtoh_pinned(gpu: GuestClient, src: int, buf: PinnedBuffer, count: int | None = None, *,
                       start: int = 0, stream: int = 0, asynchronous: bool = False) -> None:
    """Copy ``count`` bytes from device ``src`` into ``buf`` at ``start``; posted when ``asynchronous``
    (the bytes are there once the stream has been synchronized)."""
    _copy(gpu, _DTOH, "memcpy_dtoh_pinned", src, buf, start, count, stream, asynchronous)
