"""The shared region (BAR2): header, submission ring, completion ring, data arena.

Layout of a region of ``region_size`` bytes (a power of two)::

    0            header (4 KiB): static layout, host state line, guest state line, ring indices
    4096         submission ring: sq_entries × 192-byte entries      (guest → host)
    …            completion ring: cq_entries × 64-byte entries       (host → guest)
    …            data arena: payloads, up to the end of the region   (both ways)

Every section starts on a 4 KiB boundary (the arena is page aligned so it can be pinned for DMA).
Each ring index lives alone on its own 64-byte line. The host writes the header once when it lays
out the region; afterwards the host writes only its state line, ``sq_head`` and ``cq_tail``, and the
guest writes only its state line, ``sq_tail`` and ``cq_head``.

Everything here reads and writes a buffer; nothing does I/O.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import Final

from ._errors import LocalProtocolError, RegionLayoutError
from ._status import CUresult

__all__ = [
    "ARENA_ALIGN",
    "CQE_SIZE",
    "HEADER_SIZE",
    "MAGIC",
    "SQE_SIZE",
    "VERSION_MAJOR",
    "VERSION_MINOR",
    "DeviceState",
    "Features",
    "HeaderField",
    "RegionLayout",
    "lay_out_region",
    "validate_region",
]

MAGIC: Final = int.from_bytes(b"VGPUMED\0", "little")
VERSION_MAJOR: Final = 1
VERSION_MINOR: Final = 0
HEADER_SIZE: Final = 4096
SQE_SIZE: Final = 192
CQE_SIZE: Final = 64
ARENA_ALIGN: Final = 4096
MIN_ARENA: Final = 64 * 1024
MAX_RING_ENTRIES: Final = 1 << 16
MIN_REGION: Final = 1 << 17
MAX_REGION: Final = 1 << 40


class Features(IntFlag):
    """Feature bits the host offers in ``features``; a guest acknowledges those it uses."""

    NEED_WAKEUP = 1 << 0  # the host sets host_need_wakeup before it sleeps; kick only then
    ASYNC_CALLS = 1 << 1  # calls flagged ASYNC get no completion unless they fail
    CHUNKED_COPY = 1 << 2  # copies larger than the arena ride in chunks (docs/protocol.md)
    GUEST_IRQ = 1 << 3  # the host kicks the guest's vector 0 when guest_need_irq is set


ALL_FEATURES: Final = Features.NEED_WAKEUP | Features.ASYNC_CALLS | Features.CHUNKED_COPY | Features.GUEST_IRQ


class DeviceState(IntEnum):
    """The host-owned ``device_state`` word; ``epoch`` counts resets."""

    UNINITIALIZED = 0  # a zeroed region: nobody laid it out yet
    READY = 1  # serving: the guest may submit
    DRAINING = 2  # the host is stopping; calls in flight are answered, new ones are not taken
    STOPPED = 3  # no host serves this region (daemon stopped or VM detached)
    BROKEN = 4  # the guest broke the protocol; this VM's region is no longer served
    RESETTING = 5  # the host is rebuilding this VM's worker; wait for READY with a new epoch


class HeaderField(IntEnum):
    """Byte offsets of the header's fields (also generated into the C header)."""

    MAGIC = 0  # u64
    VERSION_MAJOR = 8  # u16
    VERSION_MINOR = 10  # u16
    HEADER_SIZE = 12  # u32
    REGION_SIZE = 16  # u64
    FEATURES = 24  # u64
    VM_ID = 32  # u32
    SQ_ENTRIES = 36  # u32
    CQ_ENTRIES = 40  # u32
    SQE_SIZE = 44  # u32
    CQE_SIZE = 48  # u32
    MAX_INLINE_ARGS = 52  # u32
    SQ_OFFSET = 56  # u64
    CQ_OFFSET = 64  # u64
    ARENA_OFFSET = 72  # u64
    ARENA_SIZE = 80  # u64
    # host state line (host writes)
    DEVICE_STATE = 128  # u32
    EPOCH = 132  # u32
    HOST_NEED_WAKEUP = 136  # u32
    HOST_PEER_ID = 140  # u32: the mediator's ivshmem peer id (doorbell = id << 16 | vector)
    CALLS_COMPLETED = 144  # u64
    CALLS_FAILED = 152  # u64
    LATCHED_ERROR = 160  # u32: first asynchronous error not yet reported, CUresult
    # guest state line (guest writes)
    GUEST_NEED_IRQ = 192  # u32
    GUEST_FEATURES = 200  # u64
    CALLS_SUBMITTED = 208  # u64
    # ring indices, each on its own 64-byte line
    SQ_TAIL = 256  # u32, guest writes
    SQ_HEAD = 320  # u32, host writes
    CQ_TAIL = 384  # u32, host writes
    CQ_HEAD = 448  # u32, guest writes


_STATIC: Final = struct.Struct("<QHHIQQIIIIIIQQQQ")
assert _STATIC.size == 88


@dataclass(frozen=True, slots=True)
class RegionLayout:
    """Where everything lies in one region, as validated (or as laid out)."""

    region_size: int
    vm_id: int
    features: Features
    sq_entries: int
    cq_entries: int
    sq_offset: int
    cq_offset: int
    arena_offset: int
    arena_size: int
    version_minor: int = VERSION_MINOR


def _align(value: int, to: int) -> int:
    return (value + to - 1) // to * to


def _is_pow2(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0


def plan_layout(
    region_size: int, *, vm_id: int, sq_entries: int = 256, cq_entries: int = 256,
    features: Features = ALL_FEATURES,
) -> RegionLayout:
    """Compute the layout of a fresh region; raises :class:`LocalProtocolError` if it cannot fit."""
    if not _is_pow2(region_size) or not MIN_REGION <= region_size <= MAX_REGION:
        raise LocalProtocolError(f"region size {region_size} is not a power of two in [128 KiB, 1 TiB]")
    for name, entries in (("sq_entries", sq_entries), ("cq_entries", cq_entries)):
        if not _is_pow2(entries) or entries > MAX_RING_ENTRIES:
            raise LocalProtocolError(f"{name}={entries} is not a power of two ≤ {MAX_RING_ENTRIES}")
    sq_offset = HEADER_SIZE
    cq_offset = _align(sq_offset + sq_entries * SQE_SIZE, ARENA_ALIGN)
    arena_offset = _align(cq_offset + cq_entries * CQE_SIZE, ARENA_ALIGN)
    arena_size = region_size - arena_offset
    if arena_size < MIN_ARENA:
        raise LocalProtocolError(f"region of {region_size} bytes leaves {arena_size} for the arena")
    return RegionLayout(
        region_size, vm_id, Features(features), sq_entries, cq_entries,
        sq_offset, cq_offset, arena_offset, arena_size,
    )


def lay_out_region(
    buf: memoryview | bytearray, *, vm_id: int, sq_entries: int = 256, cq_entries: int = 256,
    features: Features = ALL_FEATURES, epoch: int = 0, state: DeviceState = DeviceState.READY,
) -> RegionLayout:
    """Write a fresh header into ``buf`` (the whole region) and return its layout.

    Indices and counters start at zero; the device state is ``state`` (READY, or RESETTING while a
    new worker starts behind it). The arena is left as it is.
    """
    layout = plan_layout(
        len(buf), vm_id=vm_id, sq_entries=sq_entries, cq_entries=cq_entries, features=features,
    )
    view = memoryview(buf)
    view[:HEADER_SIZE] = bytes(HEADER_SIZE)
    # The state word goes last: a guest that sees READY sees a complete header.
    _STATIC.pack_into(
        view, 0, MAGIC, VERSION_MAJOR, VERSION_MINOR, HEADER_SIZE, layout.region_size,
        int(layout.features), vm_id, sq_entries, cq_entries, SQE_SIZE, CQE_SIZE,
        _max_inline_args(), layout.sq_offset, layout.cq_offset, layout.arena_offset,
        layout.arena_size,
    )
    struct.pack_into("<I", view, HeaderField.EPOCH, epoch & 0xFFFF_FFFF)
    struct.pack_into("<I", view, HeaderField.DEVICE_STATE, state)
    return layout


def _max_inline_args() -> int:
    from ._frames import MAX_INLINE_ARGS

    return MAX_INLINE_ARGS


def validate_region(buf: memoryview | bytes | bytearray) -> RegionLayout:
    """Check a region's header and return its layout, or raise :class:`RegionLayoutError`
    saying exactly which field is wrong."""

    def bad(message: str) -> RegionLayoutError:
        return RegionLayoutError(message, CUresult.CUDA_ERROR_INVALID_VALUE)

    size = len(buf)
    if size < HEADER_SIZE:
        raise bad(f"region is {size} bytes, smaller than the {HEADER_SIZE}-byte header")
    (magic, major, minor, header_size, region_size, features, vm_id, sq_entries, cq_entries,
     sqe_size, cqe_size, max_args, sq_offset, cq_offset, arena_offset, arena_size,
     ) = _STATIC.unpack_from(buf, 0)
    if magic != MAGIC:
        raise bad(f"magic is {magic:#018x}, expected {MAGIC:#018x}")
    if major != VERSION_MAJOR:
        raise bad(f"protocol major version {major}, this side speaks {VERSION_MAJOR}")
    if header_size != HEADER_SIZE:
        raise bad(f"header_size is {header_size}, expected {HEADER_SIZE}")
    if region_size != size:
        raise bad(f"region_size says {region_size} bytes, the mapping has {size}")
    if not _is_pow2(region_size):
        raise bad(f"region_size {region_size} is not a power of two")
    if sqe_size != SQE_SIZE or cqe_size != CQE_SIZE:
        raise bad(f"entry sizes {sqe_size}/{cqe_size}, expected {SQE_SIZE}/{CQE_SIZE}")
    if max_args != _max_inline_args():
        raise bad(f"max_inline_args is {max_args}, expected {_max_inline_args()}")
    for name, entries in (("sq_entries", sq_entries), ("cq_entries", cq_entries)):
        if not _is_pow2(entries) or entries > MAX_RING_ENTRIES:
            raise bad(f"{name} is {entries}, not a power of two ≤ {MAX_RING_ENTRIES}")
    sections = [
        ("submission ring", sq_offset, sq_entries * SQE_SIZE),
        ("completion ring", cq_offset, cq_entries * CQE_SIZE),
        ("arena", arena_offset, arena_size),
    ]
    end_of_previous = HEADER_SIZE
    for name, offset, length in sections:
        if offset % ARENA_ALIGN:
            raise bad(f"{name} offset {offset} is not {ARENA_ALIGN}-byte aligned")
        if offset < end_of_previous:
            raise bad(f"{name} at {offset} overlaps what precedes it (ends at {end_of_previous})")
        if length <= 0 or offset + length > region_size:
            raise bad(f"{name} [{offset}, +{length}) does not lie inside the {region_size}-byte region")
        end_of_previous = offset + length
    if features & ~int(ALL_FEATURES):
        raise bad(f"unknown feature bits {features & ~int(ALL_FEATURES):#x}")
    return RegionLayout(
        region_size, vm_id, Features(features), sq_entries, cq_entries,
        sq_offset, cq_offset, arena_offset, arena_size, minor,
    )
