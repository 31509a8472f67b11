"""The shared region (BAR2): a region header, ``channel_count`` channel blocks, the pinned area
(protocol 2.1).

Layout of a region of ``region_size`` bytes (a power of two)::

    0                  region header (4 KiB): what is global — version, channel geometry, lease,
                       vectors, pinned area, device state, epoch, the host's peer id
    channels_offset    channel 0: channel header (4 KiB), submission ring, completion ring, arena
    + channel_size     channel 1: …
    …                  channel channel_count − 1
    pinned_offset      the pinned area (``pinned_size`` bytes, the region's last; 0: none): the
                       guest's pinned host memory (cuMemHostAlloc), ranges handed out by the host

A channel block is laid out exactly like a version-1 region was (its own header page with the ring
words at the v1 offsets, its rings and its arena, every section on a 4 KiB boundary), so ring code
works on a channel by being pointed at the block instead of the region start. Each guest process
claims one channel (a lock only the guest sees), asks the host to open it (``open_request``), keeps it
alive with a heartbeat and closes it (``close_request``); the host gives every open channel its own
CUDA context. The host writes the region header once when it lays out the region, and each channel
header when it opens, closes or expires that channel; afterwards each side writes only its own words.

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
    "CHANNEL_MAGIC",
    "CQE_SIZE",
    "DEFAULT_LEASE_MS",
    "HEADER_SIZE",
    "MAGIC",
    "MAX_CHANNELS",
    "MIN_LEASE_MS",
    "SQE_SIZE",
    "VERSION_MAJOR",
    "VERSION_MINOR",
    "ChannelField",
    "ChannelLayout",
    "ChannelState",
    "CloseReason",
    "DeviceState",
    "Features",
    "RegionField",
    "RegionLayout",
    "channel_offset",
    "lay_out_channel",
    "lay_out_region",
    "plan_channel",
    "plan_region",
    "validate_channel",
    "validate_region",
]

MAGIC: Final = int.from_bytes(b"VGPUMED\0", "little")
CHANNEL_MAGIC: Final = int.from_bytes(b"VGPUCHN\0", "little")
VERSION_MAJOR: Final = 2
# 2.1: the pinned area (a 2.0 guest ignores it; a 2.0 host's reads as none); 2.2: guest nodes
VERSION_MINOR: Final = 2
HEADER_SIZE: Final = 4096  # the region header, and every channel header
SQE_SIZE: Final = 192
CQE_SIZE: Final = 64
ARENA_ALIGN: Final = 4096
MIN_ARENA: Final = 64 * 1024
MAX_RING_ENTRIES: Final = 1 << 16
MIN_REGION: Final = 1 << 17
MAX_REGION: Final = 1 << 40
MAX_CHANNELS: Final = 256
#: a channel whose heartbeat does not move for this long is closed by the host (per-VM configurable)
DEFAULT_LEASE_MS: Final = 800
#: the guest beats every lease_ms / 4, at least 10 ms apart: a shorter lease could not be kept
MIN_LEASE_MS: Final = 40
MAX_LEASE_MS: Final = 3_600_000


class Features(IntFlag):
    """Feature bits the host offers in ``features``; a guest acknowledges those it uses."""

    NEED_WAKEUP = 1 << 0  # the host sets host_need_wakeup before it sleeps; kick only then
    ASYNC_CALLS = 1 << 1  # calls flagged ASYNC get no completion unless they fail
    CHUNKED_COPY = 1 << 2  # copies larger than the arena ride in chunks (docs/protocol.md)
    GUEST_IRQ = 1 << 3  # the host kicks the guest's vector when a channel's guest_need_irq is set
    CHANNELS = 1 << 4  # the region holds channels (always set in 2.x; says so for tools that dump it)


ALL_FEATURES: Final = (Features.NEED_WAKEUP | Features.ASYNC_CALLS | Features.CHUNKED_COPY
                       | Features.GUEST_IRQ | Features.CHANNELS)


class DeviceState(IntEnum):
    """The host-owned ``device_state`` word of the region header; ``epoch`` counts re-layouts."""

    UNINITIALIZED = 0  # a zeroed region: nobody laid it out yet
    READY = 1  # serving: a process may claim and open a channel
    DRAINING = 2  # the host is stopping; calls in flight are answered, new ones are not taken
    STOPPED = 3  # no host serves this region (daemon stopped or VM detached)
    BROKEN = 4  # the region as a whole is no longer served (the host's own failure)
    RESETTING = 5  # the host is rebuilding this VM's worker; wait for READY with a new epoch


class ChannelState(IntEnum):
    """The host-owned ``channel_state`` word of a channel header."""

    FREE = 0  # no context: may be opened by the process that holds its claim
    OPEN = 1  # served: the context of generation ``generation`` lives
    CLOSED_BY_HOST = 2  # the host closed it (``close_reason``): the context is gone; reopen to use


class CloseReason(IntEnum):
    """Why the host last closed a channel (``close_reason``)."""

    NONE = 0
    GUEST_CLOSE = 1  # the owner asked (close_request)
    LEASE_EXPIRED = 2  # the owner's heartbeat stood still for lease_ms
    PEER_GONE = 3  # the owner's socket peer (its QEMU or host program) disconnected
    RESET = 4  # the VM's worker was rebuilt (new epoch)
    PROTOCOL_VIOLATION = 5  # an impossible ring index in this channel: only this channel is closed


class RegionField(IntEnum):
    """Byte offsets of the region header's fields (page 0; also generated into the C header)."""

    MAGIC = 0  # u64 "VGPUMED\0"
    VERSION_MAJOR = 8  # u16
    VERSION_MINOR = 10  # u16
    HEADER_SIZE = 12  # u32
    REGION_SIZE = 16  # u64
    FEATURES = 24  # u64
    VM_ID = 32  # u32
    CHANNEL_COUNT = 36  # u32
    CHANNEL_SIZE = 40  # u64
    CHANNELS_OFFSET = 48  # u64
    LEASE_MS = 56  # u32
    VECTORS = 60  # u32
    PINNED_OFFSET = 64  # u64: the pinned area's region offset (4 KiB aligned, after the channels)
    PINNED_SIZE = 72  # u64: its size (a multiple of 4 KiB); 0: the VM has no pinned area
    # host state line
    DEVICE_STATE = 128  # u32
    EPOCH = 132  # u32
    HOST_PEER_ID = 140  # u32: the mediator's ivshmem peer id (doorbell = id << 16 | vector)


class ChannelField(IntEnum):
    """Byte offsets of a channel header's fields, relative to the channel block (also generated into
    the C header). The ring words sit at their version-1 offsets."""

    MAGIC = 0  # u64 "VGPUCHN\0"
    VERSION_MAJOR = 8  # u16
    VERSION_MINOR = 10  # u16
    HEADER_SIZE = 12  # u32
    REGION_SIZE = 16  # u64: the block's size (channel_size): the "region" of its rings
    FEATURES = 24  # u64
    VM_ID = 32  # u32
    SQ_ENTRIES = 36  # u32
    CQ_ENTRIES = 40  # u32
    SQE_SIZE = 44  # u32
    CQE_SIZE = 48  # u32
    MAX_INLINE_ARGS = 52  # u32
    SQ_OFFSET = 56  # u64, block-relative
    CQ_OFFSET = 64  # u64
    ARENA_OFFSET = 72  # u64
    ARENA_SIZE = 80  # u64
    CHANNEL_INDEX = 88  # u32
    # host state line (host writes)
    CHANNEL_STATE = 128  # u32 ChannelState
    GENERATION = 132  # u32: +1 at every open served
    HOST_NEED_WAKEUP = 136  # u32
    CALLS_COMPLETED = 144  # u64
    CALLS_FAILED = 152  # u64
    LATCHED_ERROR = 160  # u32: first asynchronous error not yet reported, CUresult
    OPEN_ACK = 164  # u32: the open_request nonce the host has served (written last when opening)
    CLOSE_REASON = 168  # u32 CloseReason
    HOST_BUSY = 172  # u32: +1 every 0.5 s while the host serves this channel's entries (guests: progress)
    # guest state line (guest writes)
    GUEST_NEED_IRQ = 192  # u32
    GUEST_FEATURES = 200  # u64
    CALLS_SUBMITTED = 208  # u64
    OPEN_REQUEST = 216  # u32: a new non-zero nonce asks the host to (re)open the channel
    OWNER_PID = 220  # u32
    OWNER_PEER = 224  # u32: the ivshmem peer id the owner rings the doorbell through
    CLOSE_REQUEST = 228  # u32: = the open nonce: asks the host to close and free the channel
    HEARTBEAT = 232  # u64: bumped at least every lease_ms / 4 while open
    # ring indices, each on its own 64-byte line
    SQ_TAIL = 256  # u32, guest writes
    SQ_HEAD = 320  # u32, host writes
    CQ_TAIL = 384  # u32, host writes
    CQ_HEAD = 448  # u32, guest writes


# region header: magic … pinned_size (80 bytes)
_REGION_STATIC: Final = struct.Struct("<QHHIQQIIQQIIQQ")
assert _REGION_STATIC.size == 80
# channel header: magic … arena_size, channel_index (92 bytes)
_CHANNEL_STATIC: Final = struct.Struct("<QHHIQQIIIIIIQQQQI")
assert _CHANNEL_STATIC.size == 92
#: the guest's words that say who owns the channel and what it asked (kept when the host opens it)
_OWNER_WORDS: Final = slice(ChannelField.OPEN_REQUEST, ChannelField.HEARTBEAT + 8)


@dataclass(frozen=True, slots=True)
class ChannelLayout:
    """Where everything lies in one channel block (offsets relative to the block)."""

    region_size: int  # the block's size: the "region" its rings live in
    vm_id: int
    features: Features
    sq_entries: int
    cq_entries: int
    sq_offset: int
    cq_offset: int
    arena_offset: int
    arena_size: int
    channel_index: int = 0
    version_minor: int = VERSION_MINOR


@dataclass(frozen=True, slots=True)
class RegionLayout:
    """The region header's geometry, as validated (or as laid out)."""

    region_size: int
    vm_id: int
    features: Features
    channel_count: int
    channel_size: int
    channels_offset: int
    lease_ms: int
    vectors: int
    version_minor: int = VERSION_MINOR
    pinned_offset: int = 0
    pinned_size: int = 0

    def channel_offset(self, index: int) -> int:
        """Region offset of channel ``index``'s block."""
        return channel_offset(self, index)


def channel_offset(layout: RegionLayout, index: int) -> int:
    if not 0 <= index < layout.channel_count:
        raise LocalProtocolError(f"channel {index} outside 0..{layout.channel_count - 1}")
    return layout.channels_offset + index * layout.channel_size


def _align(value: int, to: int) -> int:
    return (value + to - 1) // to * to


def _is_pow2(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0


def _max_inline_args() -> int:
    from ._frames import MAX_INLINE_ARGS

    return MAX_INLINE_ARGS


# -- channels ---------------------------------------------------------------------------------------

def plan_channel(
    size: int, *, vm_id: int, index: int = 0, sq_entries: int = 256, cq_entries: int = 256,
    features: Features = ALL_FEATURES,
) -> ChannelLayout:
    """The layout of a channel block of ``size`` bytes; raises :class:`LocalProtocolError` if it
    cannot fit."""
    if size % ARENA_ALIGN or size <= 0:
        raise LocalProtocolError(f"channel size {size} is not a positive multiple of {ARENA_ALIGN}")
    for name, entries in (("sq_entries", sq_entries), ("cq_entries", cq_entries)):
        if not _is_pow2(entries) or entries > MAX_RING_ENTRIES:
            raise LocalProtocolError(f"{name}={entries} is not a power of two ≤ {MAX_RING_ENTRIES}")
    sq_offset = HEADER_SIZE
    cq_offset = _align(sq_offset + sq_entries * SQE_SIZE, ARENA_ALIGN)
    arena_offset = _align(cq_offset + cq_entries * CQE_SIZE, ARENA_ALIGN)
    arena_size = size - arena_offset
    if arena_size < MIN_ARENA:
        raise LocalProtocolError(f"channel of {size} bytes leaves {arena_size} for the arena")
    return ChannelLayout(size, vm_id, Features(features), sq_entries, cq_entries,
                         sq_offset, cq_offset, arena_offset, arena_size, index)


def lay_out_channel(
    block: memoryview | bytearray, *, vm_id: int, index: int = 0, sq_entries: int = 256,
    cq_entries: int = 256, features: Features = ALL_FEATURES, generation: int = 0,
    state: ChannelState = ChannelState.OPEN, close_reason: CloseReason = CloseReason.NONE,
    keep_guest_words: bool = False,
) -> ChannelLayout:
    """Write a fresh channel header into ``block`` (the whole channel block) and return its layout.

    Indices, counters, the latched error and the guest's words start at zero, except what the caller
    keeps: ``generation``, ``state`` and ``close_reason`` (the host opening a channel passes OPEN and
    then writes ``open_ack`` itself, last). The arena is left as it is.
    """
    layout = plan_channel(len(block), vm_id=vm_id, index=index, sq_entries=sq_entries,
                          cq_entries=cq_entries, features=features)
    view = memoryview(block)
    kept = bytes(view[_OWNER_WORDS]) if keep_guest_words else None
    view[:HEADER_SIZE] = bytes(HEADER_SIZE)
    if kept is not None:
        view[_OWNER_WORDS] = kept
    _CHANNEL_STATIC.pack_into(
        view, 0, CHANNEL_MAGIC, VERSION_MAJOR, VERSION_MINOR, HEADER_SIZE, layout.region_size,
        int(layout.features), vm_id, sq_entries, cq_entries, SQE_SIZE, CQE_SIZE, _max_inline_args(),
        layout.sq_offset, layout.cq_offset, layout.arena_offset, layout.arena_size, index,
    )
    struct.pack_into("<I", view, ChannelField.GENERATION, generation & 0xFFFF_FFFF)
    struct.pack_into("<I", view, ChannelField.CLOSE_REASON, close_reason)
    struct.pack_into("<I", view, ChannelField.CHANNEL_STATE, state)
    return layout


def _bad(message: str) -> RegionLayoutError:
    return RegionLayoutError(message, CUresult.CUDA_ERROR_INVALID_VALUE)


def validate_channel(block: memoryview | bytes | bytearray, *, index: int | None = None) -> ChannelLayout:
    """Check a channel header and return its layout, or raise :class:`RegionLayoutError` saying
    exactly which field is wrong. ``index``: the channel the caller expects this block to be."""
    size = len(block)
    if size < HEADER_SIZE:
        raise _bad(f"channel block is {size} bytes, smaller than the {HEADER_SIZE}-byte header")
    (magic, major, minor, header_size, block_size, features, vm_id, sq_entries, cq_entries,
     sqe_size, cqe_size, max_args, sq_offset, cq_offset, arena_offset, arena_size, channel_index,
     ) = _CHANNEL_STATIC.unpack_from(block, 0)
    if magic != CHANNEL_MAGIC:
        raise _bad(f"channel magic is {magic:#018x}, expected {CHANNEL_MAGIC:#018x}")
    if major != VERSION_MAJOR:
        raise _bad(f"channel protocol major version {major}, this side speaks {VERSION_MAJOR}")
    if header_size != HEADER_SIZE:
        raise _bad(f"channel header_size is {header_size}, expected {HEADER_SIZE}")
    if block_size != size:
        raise _bad(f"channel region_size says {block_size} bytes, the block has {size}")
    if block_size % ARENA_ALIGN:
        raise _bad(f"channel size {block_size} is not a multiple of {ARENA_ALIGN}")
    if index is not None and channel_index != index:
        raise _bad(f"channel_index is {channel_index}, expected {index}")
    if sqe_size != SQE_SIZE or cqe_size != CQE_SIZE:
        raise _bad(f"entry sizes {sqe_size}/{cqe_size}, expected {SQE_SIZE}/{CQE_SIZE}")
    if max_args != _max_inline_args():
        raise _bad(f"max_inline_args is {max_args}, expected {_max_inline_args()}")
    for name, entries in (("sq_entries", sq_entries), ("cq_entries", cq_entries)):
        if not _is_pow2(entries) or entries > MAX_RING_ENTRIES:
            raise _bad(f"{name} is {entries}, not a power of two ≤ {MAX_RING_ENTRIES}")
    sections = [
        ("submission ring", sq_offset, sq_entries * SQE_SIZE),
        ("completion ring", cq_offset, cq_entries * CQE_SIZE),
        ("arena", arena_offset, arena_size),
    ]
    end_of_previous = HEADER_SIZE
    for name, offset, length in sections:
        if offset % ARENA_ALIGN:
            raise _bad(f"{name} offset {offset} is not {ARENA_ALIGN}-byte aligned")
        if offset < end_of_previous:
            raise _bad(f"{name} at {offset} overlaps what precedes it (ends at {end_of_previous})")
        if length <= 0 or offset + length > block_size:
            raise _bad(f"{name} [{offset}, +{length}) does not lie inside the {block_size}-byte channel")
        end_of_previous = offset + length
    if features & ~int(ALL_FEATURES):
        raise _bad(f"unknown feature bits {features & ~int(ALL_FEATURES):#x}")
    return ChannelLayout(block_size, vm_id, Features(features), sq_entries, cq_entries,
                         sq_offset, cq_offset, arena_offset, arena_size, channel_index, minor)


# -- the region ---------------------------------------------------------------------------------------

def plan_region(
    region_size: int, *, vm_id: int, channels: int = 16, vectors: int | None = None,
    lease_ms: int = DEFAULT_LEASE_MS, sq_entries: int = 256, cq_entries: int = 256,
    features: Features = ALL_FEATURES, pinned_size: int = 0,
) -> RegionLayout:
    """The geometry of a fresh region: the pinned area is its last ``pinned_size`` bytes, and
    ``channels`` equal blocks, each a multiple of 4096 bytes, share what lies between the region
    header and it; raises :class:`LocalProtocolError` if a channel cannot fit."""
    if not _is_pow2(region_size) or not MIN_REGION <= region_size <= MAX_REGION:
        raise LocalProtocolError(f"region size {region_size} is not a power of two in [128 KiB, 1 TiB]")
    if not 1 <= channels <= MAX_CHANNELS:
        raise LocalProtocolError(f"channels={channels} is not in 1..{MAX_CHANNELS}")
    vectors = channels if vectors is None else vectors
    if not 1 <= vectors <= MAX_CHANNELS:
        raise LocalProtocolError(f"vectors={vectors} is not in 1..{MAX_CHANNELS}")
    if not MIN_LEASE_MS <= lease_ms <= MAX_LEASE_MS:
        raise LocalProtocolError(f"lease_ms={lease_ms} is not in {MIN_LEASE_MS}..{MAX_LEASE_MS}")
    if pinned_size < 0 or pinned_size % ARENA_ALIGN or pinned_size >= region_size - HEADER_SIZE:
        raise LocalProtocolError(f"pinned_size {pinned_size} is not a multiple of {ARENA_ALIGN} that leaves "
                                 f"room for channels in a region of {region_size} bytes")
    pinned_offset = region_size - pinned_size if pinned_size else 0
    channel_size = (region_size - pinned_size - HEADER_SIZE) // channels // ARENA_ALIGN * ARENA_ALIGN
    try:
        plan_channel(channel_size, vm_id=vm_id, sq_entries=sq_entries, cq_entries=cq_entries,
                     features=features)
    except LocalProtocolError as exc:
        raise LocalProtocolError(f"a region of {region_size} bytes split into {channels} channels: "
                                 f"{exc}") from None
    return RegionLayout(region_size, vm_id, Features(features), channels, channel_size, HEADER_SIZE,
                        lease_ms, vectors, VERSION_MINOR, pinned_offset, pinned_size)


def lay_out_region(
    buf: memoryview | bytearray, *, vm_id: int, channels: int = 16, vectors: int | None = None,
    lease_ms: int = DEFAULT_LEASE_MS, sq_entries: int = 256, cq_entries: int = 256,
    features: Features = ALL_FEATURES, epoch: int = 0, state: DeviceState = DeviceState.READY,
    host_peer_id: int = 0, close_reason: CloseReason = CloseReason.NONE, pinned_size: int = 0,
) -> RegionLayout:
    """Write a fresh region header and every channel header (FREE, generation 0) into ``buf`` (the
    whole region) and return the region's layout.

    ``close_reason`` is what every channel header says (RESET when a worker is rebuilt behind live
    guests). The device state goes last: a guest that sees READY sees complete headers. The arenas
    and the pinned area are left as they are.
    """
    layout = plan_region(len(buf), vm_id=vm_id, channels=channels, vectors=vectors, lease_ms=lease_ms,
                         sq_entries=sq_entries, cq_entries=cq_entries, features=features,
                         pinned_size=pinned_size)
    view = memoryview(buf)
    view[:HEADER_SIZE] = bytes(HEADER_SIZE)
    struct.pack_into("<I", view, RegionField.DEVICE_STATE, DeviceState.UNINITIALIZED)
    for index in range(channels):
        start = layout.channel_offset(index)
        lay_out_channel(view[start:start + layout.channel_size], vm_id=vm_id, index=index,
                        sq_entries=sq_entries, cq_entries=cq_entries, features=features,
                        state=ChannelState.FREE, close_reason=close_reason)
    _REGION_STATIC.pack_into(
        view, 0, MAGIC, VERSION_MAJOR, VERSION_MINOR, HEADER_SIZE, layout.region_size,
        int(layout.features), vm_id, channels, layout.channel_size, layout.channels_offset,
        lease_ms, layout.vectors, layout.pinned_offset, layout.pinned_size,
    )
    struct.pack_into("<I", view, RegionField.EPOCH, epoch & 0xFFFF_FFFF)
    struct.pack_into("<I", view, RegionField.HOST_PEER_ID, host_peer_id & 0xFFFF_FFFF)
    struct.pack_into("<I", view, RegionField.DEVICE_STATE, state)
    return layout


def validate_region(buf: memoryview | bytes | bytearray) -> RegionLayout:
    """Check a region header and return its layout, or raise :class:`RegionLayoutError` saying
    exactly which field is wrong. Channel headers are checked one by one (:func:`validate_channel`)
    by whoever uses the channel."""
    size = len(buf)
    if size < HEADER_SIZE:
        raise _bad(f"region is {size} bytes, smaller than the {HEADER_SIZE}-byte header")
    (magic, major, minor, header_size, region_size, features, vm_id, channel_count, channel_size,
     channels_offset, lease_ms, vectors, pinned_offset, pinned_size) = _REGION_STATIC.unpack_from(buf, 0)
    if magic != MAGIC:
        raise _bad(f"magic is {magic:#018x}, expected {MAGIC:#018x}")
    if major != VERSION_MAJOR:
        raise _bad(f"protocol major version {major}, this side speaks {VERSION_MAJOR}")
    if header_size != HEADER_SIZE:
        raise _bad(f"header_size is {header_size}, expected {HEADER_SIZE}")
    if region_size != size:
        raise _bad(f"region_size says {region_size} bytes, the mapping has {size}")
    if not _is_pow2(region_size):
        raise _bad(f"region_size {region_size} is not a power of two")
    if features & ~int(ALL_FEATURES):
        raise _bad(f"unknown feature bits {features & ~int(ALL_FEATURES):#x}")
    if not 1 <= channel_count <= MAX_CHANNELS:
        raise _bad(f"channel_count is {channel_count}, not in 1..{MAX_CHANNELS}")
    if channel_size < HEADER_SIZE or channel_size % ARENA_ALIGN:
        raise _bad(f"channel_size {channel_size} is not a multiple of {ARENA_ALIGN} of at least one page")
    if channels_offset < HEADER_SIZE or channels_offset % ARENA_ALIGN:
        raise _bad(f"channels_offset {channels_offset} is not {ARENA_ALIGN}-aligned past the header")
    if channels_offset + channel_count * channel_size > region_size:
        raise _bad(f"{channel_count} channels of {channel_size} bytes from {channels_offset} do not lie "
                   f"inside the {region_size}-byte region")
    if not 1 <= vectors <= MAX_CHANNELS:
        raise _bad(f"vectors is {vectors}, not in 1..{MAX_CHANNELS}")
    if lease_ms < MIN_LEASE_MS:
        raise _bad(f"lease_ms is {lease_ms}, shorter than {MIN_LEASE_MS}")
    if pinned_size:
        channels_end = channels_offset + channel_count * channel_size
        if pinned_offset % ARENA_ALIGN or pinned_size % ARENA_ALIGN:
            raise _bad(f"pinned area [{pinned_offset}, +{pinned_size}) is not {ARENA_ALIGN}-byte aligned")
        if pinned_offset < channels_end or pinned_offset + pinned_size > region_size:
            raise _bad(f"pinned area [{pinned_offset}, +{pinned_size}) does not lie between the channels' "
                       f"end ({channels_end}) and the region's ({region_size})")
    else:
        pinned_offset = 0
    return RegionLayout(region_size, vm_id, Features(features), channel_count, channel_size,
                        channels_offset, lease_ms, vectors, minor, pinned_offset, pinned_size)
