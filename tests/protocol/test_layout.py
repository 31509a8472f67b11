"""The region layout: laying out, validating (with exact complaints), and the header's field table."""

from __future__ import annotations

import itertools
import struct
from collections.abc import Callable

import pytest

from protocol import (
    ALL_FEATURES,
    HEADER_SIZE,
    DeviceState,
    Features,
    HeaderField,
    LocalProtocolError,
    Region,
    RegionLayoutError,
    lay_out_region,
    plan_layout,
    validate_region,
)
from protocol._cheader import HEADER_FIELDS
from protocol._layout import _STATIC

MIB = 1 << 20


def fresh(size: int = MIB, **kwargs: int) -> bytearray:
    buf = bytearray(size)
    lay_out_region(buf, vm_id=kwargs.pop("vm_id", 1), **kwargs)  # type: ignore[arg-type]
    return buf


def put(buf: bytearray, field: HeaderField, fmt: str, value: int) -> None:
    struct.pack_into("<" + fmt, buf, field, value)


def test_fresh_region_validates_to_the_layout_it_was_laid_out_with() -> None:
    buf = bytearray(4 * MIB)
    laid = lay_out_region(buf, vm_id=9, sq_entries=128, cq_entries=512, epoch=5)
    assert validate_region(buf) == laid
    assert laid.sq_offset == HEADER_SIZE
    for offset in (laid.sq_offset, laid.cq_offset, laid.arena_offset):
        assert offset % 4096 == 0
    assert laid.cq_offset >= laid.sq_offset + 128 * 192
    assert laid.arena_offset >= laid.cq_offset + 512 * 64
    assert laid.arena_offset + laid.arena_size == len(buf)
    region = Region(memoryview(buf))
    assert (region.device_state, region.epoch) == (DeviceState.READY, 5)
    assert len(region.arena) == laid.arena_size


def test_lay_out_can_leave_the_device_resetting() -> None:
    buf = bytearray(MIB)
    lay_out_region(buf, vm_id=1, state=DeviceState.RESETTING, epoch=0xFFFF_FFFF + 2)
    region = Region(memoryview(buf))
    assert region.device_state == DeviceState.RESETTING
    assert region.epoch == 1, "the epoch is a u32 and wraps"


def test_lay_out_clears_a_previous_header_but_not_the_arena() -> None:
    buf = fresh()
    layout = validate_region(buf)
    put(buf, HeaderField.SQ_TAIL, "I", 77)
    put(buf, HeaderField.HOST_NEED_WAKEUP, "I", 1)
    buf[layout.arena_offset] = 0xAB
    lay_out_region(buf, vm_id=1)
    assert Region(memoryview(buf)).u32(HeaderField.SQ_TAIL) == 0
    assert Region(memoryview(buf)).u32(HeaderField.HOST_NEED_WAKEUP) == 0
    assert buf[layout.arena_offset] == 0xAB


@pytest.mark.parametrize(
    ("size", "kwargs", "complaint"),
    [
        (3 * MIB, {}, "not a power of two"),
        (1 << 16, {}, "not a power of two in [128 KiB, 1 TiB]"),
        (MIB, {"sq_entries": 100}, "sq_entries=100 is not a power of two"),
        (MIB, {"cq_entries": 1 << 17}, "cq_entries=131072 is not a power of two ≤ 65536"),
        (1 << 17, {"sq_entries": 256, "cq_entries": 256}, "leaves 61440 for the arena"),
    ],
)
def test_plan_layout_refuses_what_cannot_fit(size: int, kwargs: dict[str, int], complaint: str) -> None:
    with pytest.raises(LocalProtocolError) as info:
        plan_layout(size, vm_id=1, **kwargs)  # type: ignore[arg-type]
    assert complaint in info.value.message


def _breakers() -> list[tuple[str, Callable[[bytearray], bytearray], str]]:
    def poke(field: HeaderField, fmt: str, value: int) -> Callable[[bytearray], bytearray]:
        def apply(buf: bytearray) -> bytearray:
            put(buf, field, fmt, value)
            return buf
        return apply

    return [
        ("truncated", lambda buf: buf[:100], "region is 100 bytes, smaller than the 4096-byte header"),
        ("magic", poke(HeaderField.MAGIC, "Q", 0x1234), "magic is 0x0000000000001234, expected 0x0044454d55504756"),
        ("zeroed", lambda buf: bytearray(len(buf)), "magic is 0x0000000000000000"),
        ("major", poke(HeaderField.VERSION_MAJOR, "H", 2), "protocol major version 2, this side speaks 1"),
        ("header_size", poke(HeaderField.HEADER_SIZE, "I", 8192), "header_size is 8192, expected 4096"),
        ("region_size", poke(HeaderField.REGION_SIZE, "Q", 2 * MIB), "region_size says 2097152 bytes, the mapping has 1048576"),
        ("mapping", lambda buf: buf[:MIB - 4096], "region_size says 1048576 bytes, the mapping has 1044480"),
        ("sqe_size", poke(HeaderField.SQE_SIZE, "I", 128), "entry sizes 128/64, expected 192/64"),
        ("cqe_size", poke(HeaderField.CQE_SIZE, "I", 32), "entry sizes 192/32, expected 192/64"),
        ("max_inline_args", poke(HeaderField.MAX_INLINE_ARGS, "I", 200), "max_inline_args is 200, expected 160"),
        ("sq_entries", poke(HeaderField.SQ_ENTRIES, "I", 100), "sq_entries is 100, not a power of two ≤ 65536"),
        ("sq_entries zero", poke(HeaderField.SQ_ENTRIES, "I", 0), "sq_entries is 0, not a power of two"),
        ("cq_entries", poke(HeaderField.CQ_ENTRIES, "I", 1 << 17), "cq_entries is 131072, not a power of two ≤ 65536"),
        ("sq_offset misaligned", poke(HeaderField.SQ_OFFSET, "Q", 4100), "submission ring offset 4100 is not 4096-byte aligned"),
        ("sq_offset in header", poke(HeaderField.SQ_OFFSET, "Q", 0), "submission ring at 0 overlaps what precedes it (ends at 4096)"),
        ("cq overlaps sq", poke(HeaderField.CQ_OFFSET, "Q", 4096), "completion ring at 4096 overlaps what precedes it (ends at 53248)"),
        ("cq outside", poke(HeaderField.CQ_OFFSET, "Q", 1 << 40), "completion ring [1099511627776, +16384) does not lie inside the 1048576-byte region"),
        ("arena misaligned", poke(HeaderField.ARENA_OFFSET, "Q", 69632 + 64), "arena offset 69696 is not 4096-byte aligned"),
        ("arena too long", poke(HeaderField.ARENA_SIZE, "Q", MIB), "arena [69632, +1048576) does not lie inside the 1048576-byte region"),
        ("arena empty", poke(HeaderField.ARENA_SIZE, "Q", 0), "arena [69632, +0) does not lie inside"),
        ("features", poke(HeaderField.FEATURES, "Q", 0x30), "unknown feature bits 0x30"),
    ]


@pytest.mark.parametrize(("what", "breaker", "complaint"), _breakers(), ids=[b[0] for b in _breakers()])
def test_validate_region_names_exactly_what_is_wrong(
    what: str, breaker: Callable[[bytearray], bytearray], complaint: str,
) -> None:
    buf = breaker(fresh())
    with pytest.raises(RegionLayoutError) as info:
        validate_region(buf)
    assert complaint in info.value.message, f"{what}: {info.value.message}"


def test_validate_region_accepts_any_minor_version_and_a_subset_of_features() -> None:
    buf = fresh(features=Features.NEED_WAKEUP)
    put(buf, HeaderField.VERSION_MINOR, "H", 7)
    layout = validate_region(buf)
    assert layout.version_minor == 7
    assert layout.features == Features.NEED_WAKEUP


def test_header_field_table_covers_every_field_once_in_offset_order() -> None:
    assert [f.field for f in HEADER_FIELDS] == sorted(HeaderField, key=int)
    for before, after in itertools.pairwise(HEADER_FIELDS):
        assert before.offset + before.size <= after.offset, f"{before.name} overlaps {after.name}"
    for info in HEADER_FIELDS:
        assert info.offset % info.size == 0, f"{info.name} is not naturally aligned"
    assert HEADER_FIELDS[-1].offset + HEADER_FIELDS[-1].size <= HEADER_SIZE


def test_header_field_table_matches_the_struct_the_layout_packs() -> None:
    """The lay-out fields are packed with ``_STATIC``; its format must agree with the table."""
    codes = {"uint16_t": "H", "uint32_t": "I", "uint64_t": "Q"}
    static = [f for f in HEADER_FIELDS if f.writer == "host (lay-out)"]
    assert "<" + "".join(codes[f.ctype] for f in static) == _STATIC.format
    offset = 0
    for info in static:
        assert info.offset == offset
        offset += info.size


def test_each_ring_index_has_its_own_cache_line_and_the_right_writer() -> None:
    indices = {HeaderField.SQ_TAIL: "guest", HeaderField.SQ_HEAD: "host",
               HeaderField.CQ_TAIL: "host", HeaderField.CQ_HEAD: "guest"}
    lines = {int(f) // 64 for f in indices}
    assert len(lines) == 4
    for info in HEADER_FIELDS:
        if info.field in indices:
            assert info.writer == indices[info.field]
        else:
            assert info.offset // 64 not in lines, f"{info.name} shares a line with a ring index"
    host_lines = {i.offset // 64 for i in HEADER_FIELDS if i.writer == "host"}
    guest_lines = {i.offset // 64 for i in HEADER_FIELDS if i.writer == "guest"}
    assert not host_lines & guest_lines, "the host and the guest never write the same cache line"


def test_region_accessors_read_and_write_the_documented_offsets() -> None:
    buf = fresh()
    region = Region(memoryview(buf))
    region.set_u32(HeaderField.LATCHED_ERROR, 0x1_0000_02BC)
    region.set_u64(HeaderField.GUEST_FEATURES, int(ALL_FEATURES))
    region.set_device_state(DeviceState.DRAINING)
    assert struct.unpack_from("<I", buf, 160) == (0x2BC,), "values are masked to 32 bits"
    assert struct.unpack_from("<Q", buf, 200) == (0xF,)
    assert struct.unpack_from("<I", buf, 128) == (DeviceState.DRAINING,)
    region.release()
