"""The region layout (protocol 2.0): a region header and its channel blocks — laying out, validating
(with exact complaints), and the field tables the C header and the docs are generated from."""

from __future__ import annotations

import itertools
import struct
from collections.abc import Callable

import pytest

from protocol import (
    ALL_FEATURES,
    HEADER_SIZE,
    ChannelField,
    ChannelState,
    CloseReason,
    DeviceState,
    Features,
    LocalProtocolError,
    Region,
    RegionField,
    RegionHeader,
    RegionLayoutError,
    lay_out_channel,
    lay_out_region,
    plan_channel,
    plan_region,
    validate_channel,
    validate_region,
)
from protocol._cheader import CHANNEL_FIELDS, REGION_FIELDS, HeaderFieldInfo
from protocol._layout import _CHANNEL_STATIC, _REGION_STATIC

MIB = 1 << 20


def fresh(size: int = 4 * MIB, **kwargs: int) -> bytearray:
    buf = bytearray(size)
    lay_out_region(buf, vm_id=kwargs.pop("vm_id", 1), channels=kwargs.pop("channels", 4),
                   **kwargs)  # type: ignore[arg-type]
    return buf


def put(buf: bytearray, offset: int, fmt: str, value: int) -> None:
    struct.pack_into("<" + fmt, buf, offset, value)


def test_a_fresh_region_validates_to_the_layout_it_was_laid_out_with() -> None:
    buf = bytearray(16 * MIB)
    laid = lay_out_region(buf, vm_id=9, channels=3, vectors=2, lease_ms=500, epoch=5)
    assert validate_region(buf) == laid
    assert (laid.channel_count, laid.vectors, laid.lease_ms, laid.channels_offset) == (3, 2, 500, HEADER_SIZE)
    assert laid.channel_size % 4096 == 0
    assert laid.channels_offset + 3 * laid.channel_size <= len(buf)
    header = RegionHeader(memoryview(buf))
    assert (header.device_state, header.epoch) == (DeviceState.READY, 5)
    for index in range(3):
        block = header.channel_block(index)
        channel = validate_channel(block, index=index)
        assert channel.region_size == laid.channel_size and channel.channel_index == index
        assert channel.arena_offset + channel.arena_size == laid.channel_size
        region = Region(block[:])
        assert (region.channel_state, region.generation) == (ChannelState.FREE, 0)
        region.release()
    header.release()


def test_vectors_default_to_one_per_channel_and_the_lease_to_800_ms() -> None:
    laid = plan_region(4 * MIB, vm_id=1, channels=16)
    assert (laid.vectors, laid.lease_ms) == (16, 800)


def test_relaying_out_a_region_frees_every_channel_and_says_why() -> None:
    buf = fresh()
    header = RegionHeader(memoryview(buf))
    block = header.channel_block(1)
    lay_out_channel(block, vm_id=1, index=1, generation=7)
    put(buf, header.layout.channel_offset(1) + ChannelField.OWNER_PID, "I", 1234)
    header.release()
    del block
    lay_out_region(buf, vm_id=1, channels=4, epoch=1, close_reason=CloseReason.RESET)
    start = validate_region(buf).channel_offset(1)
    assert struct.unpack_from("<III", buf, start + ChannelField.CHANNEL_STATE) == (ChannelState.FREE, 0, 0)
    assert struct.unpack_from("<I", buf, start + ChannelField.CLOSE_REASON) == (CloseReason.RESET,)
    assert struct.unpack_from("<I", buf, start + ChannelField.OWNER_PID) == (0,)


def test_opening_a_channel_keeps_the_owner_words_and_zeroes_the_rings() -> None:
    block = bytearray(MIB)
    lay_out_channel(block, vm_id=1, index=0, state=ChannelState.FREE)
    layout = validate_channel(block)
    for field, value in ((ChannelField.OPEN_REQUEST, 77), (ChannelField.OWNER_PID, 42),
                         (ChannelField.OWNER_PEER, 3), (ChannelField.SQ_TAIL, 9), (ChannelField.CQ_HEAD, 4)):
        put(block, field, "I", value)
    put(block, ChannelField.HEARTBEAT, "Q", 1 << 40)
    block[layout.arena_offset] = 0xAB
    lay_out_channel(block, vm_id=1, index=0, generation=1, keep_guest_words=True)
    region = Region(memoryview(block))
    assert [region.u32(f) for f in (ChannelField.OPEN_REQUEST, ChannelField.OWNER_PID,
                                    ChannelField.OWNER_PEER)] == [77, 42, 3]
    assert region.u64(ChannelField.HEARTBEAT) == 1 << 40
    assert region.u32(ChannelField.SQ_TAIL) == region.u32(ChannelField.CQ_HEAD) == 0
    assert (region.channel_state, region.generation) == (ChannelState.OPEN, 1)
    assert block[layout.arena_offset] == 0xAB, "the arena is left as it is"
    region.release()


@pytest.mark.parametrize(
    ("size", "kwargs", "complaint"),
    [
        (3 * MIB, {}, "not a power of two"),
        (1 << 16, {}, "not a power of two in [128 KiB, 1 TiB]"),
        (MIB, {"channels": 0}, "channels=0 is not in 1..256"),
        (MIB, {"channels": 257}, "channels=257 is not in 1..256"),
        (MIB, {"vectors": 0}, "vectors=0 is not in 1..256"),
        (MIB, {"lease_ms": 39}, "lease_ms=39 is not in 40..3600000"),
        (MIB, {"channels": 16}, "split into 16 channels: channel of 61440 bytes leaves"),
        (MIB, {"channels": 1, "sq_entries": 100}, "sq_entries=100 is not a power of two"),
    ],
)
def test_plan_region_refuses_what_cannot_fit(size: int, kwargs: dict[str, int], complaint: str) -> None:
    with pytest.raises(LocalProtocolError) as info:
        plan_region(size, vm_id=1, **kwargs)  # type: ignore[arg-type]
    assert complaint in info.value.message


def test_plan_channel_refuses_a_block_that_is_not_whole_pages() -> None:
    with pytest.raises(LocalProtocolError, match="not a positive multiple of 4096"):
        plan_channel(MIB + 100, vm_id=1)


Breaker = Callable[[bytearray], bytearray]


def _poke(offset: int, fmt: str, value: int) -> Breaker:
    def apply(buf: bytearray) -> bytearray:
        put(buf, offset, fmt, value)
        return buf
    return apply


_R = RegionField
REGION_BREAKERS: list[tuple[str, Breaker, str]] = [
    ("truncated", lambda buf: buf[:100], "region is 100 bytes, smaller than the 4096-byte header"),
    ("magic", _poke(_R.MAGIC, "Q", 0x1234), "magic is 0x0000000000001234, expected 0x0044454d55504756"),
    ("zeroed", lambda buf: bytearray(len(buf)), "magic is 0x0000000000000000"),
    ("major", _poke(_R.VERSION_MAJOR, "H", 1), "protocol major version 1, this side speaks 2"),
    ("header_size", _poke(_R.HEADER_SIZE, "I", 8192), "header_size is 8192, expected 4096"),
    ("region_size", _poke(_R.REGION_SIZE, "Q", 2 * MIB), "region_size says 2097152 bytes, the mapping has"),
    ("features", _poke(_R.FEATURES, "Q", 0x40), "unknown feature bits 0x40"),
    ("no channels", _poke(_R.CHANNEL_COUNT, "I", 0), "channel_count is 0, not in 1..256"),
    ("channel size", _poke(_R.CHANNEL_SIZE, "Q", 4097), "channel_size 4097 is not a multiple of 4096"),
    ("channels offset", _poke(_R.CHANNELS_OFFSET, "Q", 0), "channels_offset 0 is not 4096-aligned past"),
    ("channels outside", _poke(_R.CHANNEL_COUNT, "I", 200), "200 channels of"),
    ("vectors", _poke(_R.VECTORS, "I", 0), "vectors is 0, not in 1..256"),
    ("lease", _poke(_R.LEASE_MS, "I", 5), "lease_ms is 5, shorter than 40"),
]


@pytest.mark.parametrize(("what", "breaker", "complaint"), REGION_BREAKERS, ids=[b[0] for b in REGION_BREAKERS])
def test_validate_region_names_exactly_what_is_wrong(what: str, breaker: Breaker, complaint: str) -> None:
    with pytest.raises(RegionLayoutError) as info:
        validate_region(breaker(fresh()))
    assert complaint in info.value.message, f"{what}: {info.value.message}"


_C = ChannelField
CHANNEL_BREAKERS: list[tuple[str, Breaker, str]] = [
    ("truncated", lambda buf: buf[:100], "channel block is 100 bytes"),
    ("magic", _poke(_C.MAGIC, "Q", 0x1234), "channel magic is 0x0000000000001234, expected 0x004e484355504756"),
    ("major", _poke(_C.VERSION_MAJOR, "H", 1), "channel protocol major version 1"),
    ("size", _poke(_C.REGION_SIZE, "Q", 2 * MIB), "channel region_size says 2097152 bytes, the block has"),
    ("index", _poke(_C.CHANNEL_INDEX, "I", 5), "channel_index is 5, expected 0"),
    ("sqe_size", _poke(_C.SQE_SIZE, "I", 128), "entry sizes 128/64, expected 192/64"),
    ("max_inline_args", _poke(_C.MAX_INLINE_ARGS, "I", 200), "max_inline_args is 200, expected 160"),
    ("sq_entries", _poke(_C.SQ_ENTRIES, "I", 100), "sq_entries is 100, not a power of two ≤ 65536"),
    ("sq_offset in header", _poke(_C.SQ_OFFSET, "Q", 0), "submission ring at 0 overlaps what precedes it"),
    ("cq outside", _poke(_C.CQ_OFFSET, "Q", 1 << 40), "completion ring [1099511627776, +16384) does not lie"),
    ("arena misaligned", _poke(_C.ARENA_OFFSET, "Q", 69632 + 64), "arena offset 69696 is not 4096-byte aligned"),
    ("arena empty", _poke(_C.ARENA_SIZE, "Q", 0), "arena [69632, +0) does not lie inside"),
    ("features", _poke(_C.FEATURES, "Q", 0x40), "unknown feature bits 0x40"),
]


@pytest.mark.parametrize(("what", "breaker", "complaint"), CHANNEL_BREAKERS, ids=[b[0] for b in CHANNEL_BREAKERS])
def test_validate_channel_names_exactly_what_is_wrong(what: str, breaker: Breaker, complaint: str) -> None:
    block = bytearray(MIB)
    lay_out_channel(block, vm_id=1, index=0)
    with pytest.raises(RegionLayoutError) as info:
        validate_channel(breaker(block), index=0)
    assert complaint in info.value.message, f"{what}: {info.value.message}"


def test_validate_region_accepts_any_minor_version_and_a_subset_of_features() -> None:
    buf = fresh(features=Features.NEED_WAKEUP)
    put(buf, RegionField.VERSION_MINOR, "H", 7)
    layout = validate_region(buf)
    assert layout.version_minor == 7
    assert layout.features == Features.NEED_WAKEUP


@pytest.mark.parametrize(("table", "enum"), [(REGION_FIELDS, RegionField), (CHANNEL_FIELDS, ChannelField)],
                         ids=["region", "channel"])
def test_field_tables_cover_every_field_once_in_offset_order(
    table: tuple[HeaderFieldInfo, ...], enum: type[RegionField] | type[ChannelField],
) -> None:
    assert [f.field for f in table] == sorted(enum, key=int)
    for before, after in itertools.pairwise(table):
        assert before.offset + before.size <= after.offset, f"{before.name} overlaps {after.name}"
    for info in table:
        assert info.offset % info.size == 0, f"{info.name} is not naturally aligned"
    assert table[-1].offset + table[-1].size <= HEADER_SIZE


@pytest.mark.parametrize(("table", "packed"), [(REGION_FIELDS, _REGION_STATIC), (CHANNEL_FIELDS, _CHANNEL_STATIC)],
                         ids=["region", "channel"])
def test_field_tables_match_the_structs_the_layout_packs(
    table: tuple[HeaderFieldInfo, ...], packed: struct.Struct,
) -> None:
    codes = {"uint16_t": "H", "uint32_t": "I", "uint64_t": "Q"}
    static = [f for f in table if f.writer == "host (lay-out)"]
    assert "<" + "".join(codes[f.ctype] for f in static) == packed.format
    offset = 0
    for info in static:
        assert info.offset == offset
        offset += info.size


def test_in_a_channel_each_ring_index_has_its_own_line_and_host_and_guest_never_share_one() -> None:
    indices: dict[RegionField | ChannelField, str] = {ChannelField.SQ_TAIL: "guest", ChannelField.SQ_HEAD: "host",
               ChannelField.CQ_TAIL: "host", ChannelField.CQ_HEAD: "guest"}
    lines = {int(f) // 64 for f in indices}
    assert len(lines) == 4
    for info in CHANNEL_FIELDS:
        if info.field in indices:
            assert info.writer == indices[info.field]
        else:
            assert info.offset // 64 not in lines, f"{info.name} shares a line with a ring index"
    host_lines = {i.offset // 64 for i in CHANNEL_FIELDS if i.writer == "host"}
    guest_lines = {i.offset // 64 for i in CHANNEL_FIELDS if i.writer == "guest"}
    assert not host_lines & guest_lines, "the host and the guest never write the same cache line"


def test_the_ring_words_sit_at_their_protocol_1_offsets() -> None:
    """What lets ring code written for a version-1 region serve a channel block unchanged."""
    assert [int(f) for f in (ChannelField.HOST_NEED_WAKEUP, ChannelField.LATCHED_ERROR,
                             ChannelField.GUEST_NEED_IRQ, ChannelField.SQ_TAIL, ChannelField.SQ_HEAD,
                             ChannelField.CQ_TAIL, ChannelField.CQ_HEAD)] == [136, 160, 192, 256, 320, 384, 448]


def test_channel_accessors_read_and_write_the_documented_offsets() -> None:
    block = bytearray(MIB)
    lay_out_channel(block, vm_id=1)
    region = Region(memoryview(block))
    region.set_u32(ChannelField.LATCHED_ERROR, 0x1_0000_02BC)
    region.set_u64(ChannelField.GUEST_FEATURES, int(ALL_FEATURES))
    region.set_channel_state(ChannelState.CLOSED_BY_HOST)
    assert struct.unpack_from("<I", block, 160) == (0x2BC,), "values are masked to 32 bits"
    assert struct.unpack_from("<Q", block, 200) == (0x1F,)
    assert struct.unpack_from("<I", block, 128) == (ChannelState.CLOSED_BY_HOST,)
    region.release()
