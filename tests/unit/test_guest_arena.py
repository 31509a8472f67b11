"""The guest's payload arena: spans come back once the host consumed them, an output area the guest
has not copied out yet stays held, and an idle arena starts over at its first byte."""

from __future__ import annotations

from guest._client import _Arena

SIZE = 1 << 20


def reserve(arena: _Arena, length: int, sq_index: int) -> int:
    """Place ``length`` bytes for the submission that leaves the ring index at ``sq_index``."""
    start = arena.place(length)
    assert start is not None, "no room"
    arena.tail = start + length
    arena.inflight.append((sq_index, arena.tail))
    return start % arena.size


def test_spans_are_reused_only_after_the_host_consumed_them() -> None:
    arena = _Arena(SIZE)
    first = reserve(arena, SIZE // 2, sq_index=1)
    second = reserve(arena, SIZE // 2 - 64, sq_index=2)
    assert (first, second) == (0, SIZE // 2)
    assert arena.place(4096) is None, "full until the host moves its head"
    arena.reclaim(consumed=1)
    start = arena.place(4096)
    assert start is not None and start % SIZE == 0, "the first span's bytes, now free"


def test_an_idle_arena_starts_over_at_its_first_byte() -> None:
    arena = _Arena(SIZE)
    reserve(arena, 3000, sq_index=1)
    reserve(arena, 5000, sq_index=2)
    arena.reclaim(consumed=2)
    assert reserve(arena, 4096, sq_index=3) == 0, "nothing in flight: back to offset 0, still in cache"


def test_a_held_output_area_survives_the_hosts_head_passing_it() -> None:
    arena = _Arena(SIZE)
    reserve(arena, SIZE // 4, sq_index=1)  # an input payload, consumed below
    held = reserve(arena, SIZE // 4, sq_index=2)  # an output area the guest has yet to copy out
    reserve(arena, SIZE // 4, sq_index=3)
    arena.hold = 2
    arena.reclaim(consumed=3)
    assert [index for index, _ in arena.inflight] == [2, 3], "only what was pushed before the hold is freed"
    start = arena.place(SIZE // 4)
    assert start is not None and start % SIZE != held
    arena.hold = None
    arena.reclaim(consumed=3)
    assert not arena.inflight


def test_reclaiming_follows_the_ring_index_through_its_wrap() -> None:
    arena = _Arena(SIZE)
    reserve(arena, 4096, sq_index=0xFFFF_FFFF)
    reserve(arena, 4096, sq_index=0)  # the index wrapped between the two submissions
    arena.hold = 0
    arena.reclaim(consumed=0)
    assert [index for index, _ in arena.inflight] == [0]


def test_a_phased_payload_starts_at_the_application_buffers_offset_within_a_page() -> None:
    arena = _Arena(SIZE)
    reserve(arena, 100, sq_index=1)
    start = arena.place(64 << 10, phase=0x30)
    assert start is not None and start % 4096 == 0x30 and start >= 100
    arena.tail = start + (64 << 10)
    arena.inflight.append((2, arena.tail))
    wrapped = arena.place(SIZE - 4096, phase=0x7C0)
    assert wrapped is None, "no room until the host consumed the first two"
    arena.reclaim(consumed=2)
    again = arena.place(SIZE - 4096, phase=0x7C0)
    assert again is not None and again % SIZE == 0x7C0, "after the wrap, the same offset within a page"
