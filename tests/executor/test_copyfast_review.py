"""What a guest can make the C copy path (``mediator._pinned_fast``, native/copyfast.c) hold on to.

The C path keeps the device blocks it has learned exported (their bytes stay valid however stale the
entry). Whatever the guest frees must go at once, as it does without the C path: a freed block held
until the next copy stays mapped in the worker, where ``RLIMIT_DATA`` (the VM's device memory plus a
margin) counts it, so a legal allocation of the freed size would fail or end the worker."""

from __future__ import annotations

import gc
import struct
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from executor._sim_memory import MAPPED_FROM
from mediator import _pinned_fast
from tests.executor.test_pinned_fast import (
    ASYNC,
    BLOCK,
    COPY_ARGS,
    DTOH,
    HTOD,
    PAGE,
    STAGED_DTOH,
    STAGED_HTOD,
    Side,
    both,
    fresh_sides,
)
from tests.reliability._ring_pair import RingPair

pytestmark = pytest.mark.skipif(not _pinned_fast.ACCELERATED, reason="mediator._copyfast is not built")

GRANULARITY = 2 << 20


@pytest.fixture
def pair() -> Iterator[RingPair]:
    p = RingPair()
    try:
        yield p
    finally:
        p.close()


def _alloc(pair: RingPair) -> tuple[int, Callable[[], None]]:
    """A cuMemAlloc block (mmap-backed, as large ones are) and how the guest frees it."""
    dev = pair.call("mem_alloc", bytesize=MAPPED_FROM).result.dptr  # type: ignore[union-attr]
    return dev, lambda: _ok(pair, "mem_free", dptr=dev)


def _vmm(pair: RingPair) -> tuple[int, Callable[[], None]]:
    """A read-write VMM mapping of a physical allocation, and how the guest unmaps and releases it."""
    handle = pair.call("mem_create", size=GRANULARITY, device=0, flags=0).result.handle  # type: ignore[union-attr]
    reserved = pair.call("mem_address_reserve", size=GRANULARITY, alignment=0, addr=0, flags=0)
    va = reserved.result.dptr  # type: ignore[union-attr]
    _ok(pair, "mem_map", ptr=va, size=GRANULARITY, offset=0, handle=handle, flags=0)
    _ok(pair, "mem_set_access", ptr=va, size=GRANULARITY, device=0, flags=3)

    def free() -> None:
        _ok(pair, "mem_unmap", ptr=va, size=GRANULARITY)
        _ok(pair, "mem_release", handle=handle)

    return va, free


def _ok(pair: RingPair, name: str, **args: Any) -> None:
    answer = pair.call(name, **args)
    assert answer.status == 0, (name, answer)


@pytest.mark.parametrize("make", [_alloc, _vmm], ids=["cuMemAlloc", "vmm"])
def test_a_freed_block_is_not_held_by_the_c_path(
    pair: RingPair, make: Callable[..., tuple[int, Any]]
) -> None:
    dev, free = make(pair)
    found = pair.executor.fast_copy_block(dev)
    assert found is not None and found[2] is not None
    backing = weakref.ref(found[2].base if found[2].base is not None else found[2])
    del found
    _ok(pair, "memcpy_htod", data=b"\x5a" * 4096, dst=dev, stream=0)  # served in Python: learned
    _ok(pair, "memcpy_htod", data=b"\xa5" * 4096, dst=dev, stream=0)  # served in C
    fast = pair.server.pinned_fast
    assert fast is not None and fast.c.cached[0] == 1
    free()  # and no copy after it
    gc.collect()
    assert backing() is None, "the freed block's memory is still held (by the C path's cache)"
    assert fast.c.cached[0] == 0


def test_wrapping_pointers_offsets_and_counts_are_answered_as_the_python_path_answers_them() -> None:
    """64-bit values whose sums wrap: a device pointer or pinned offset near 2^64 with a count that
    brings the end back inside the learned block or range, and counts past it from inside."""
    top = 1 << 64

    def script(side: Side) -> None:
        side.submit([side.copy(HTOD), side.staged(STAGED_HTOD)])  # block and range learned
        dev, host = side.dev, side.host
        raws = [
            (top - PAGE, host, 2 * PAGE),
            (dev + BLOCK - 1, host, top - BLOCK + 2),
            (dev, top - PAGE, PAGE + 1),
            (dev, host + PAGE, top - PAGE),
            (dev + 8, host, top - 8),
            (top - 1, host, 1),
            (dev - top + PAGE if dev >= PAGE else 0, host, PAGE),
        ]
        for way in (HTOD, DTOH):
            side.submit(
                [{**side.copy(way), "raw": COPY_ARGS.pack(d % top, o % top, c % top, 0)} for d, o, c in raws]
            )
        side.submit(
            [
                {**side.staged(STAGED_DTOH, count=PAGE), "raw": struct.pack("<QQI4x", d, c, 0)}
                for d, c in ((top - PAGE, 2 * PAGE), (dev + 8, top - 8), (dev, top - 1))
            ]
        )
        side.submit([side.copy(HTOD), side.copy(DTOH, flags=ASYNC)])  # and it serves again

    with fresh_sides() as pair:
        both(pair, script)


def test_after_a_free_the_c_path_learns_from_the_next_copy_and_serves_again() -> None:
    side = Side(fast=True)
    try:
        side.submit([side.copy(HTOD)] * 2)  # the first teaches block and range, the second is served in C
        other = side.value("mem_alloc", "dptr", bytesize=PAGE)
        side.pair.call("mem_free", dptr=other)  # forgets everything the C path knew
        fast = side.pair.server.pinned_fast
        assert fast is not None and fast.c.cached == (0, 0)
        side.submit([side.copy(HTOD), side.copy(DTOH, flags=ASYNC), side.copy(HTOD)])
        assert side.python_copies == 2 and fast.c.cached == (1, 1)  # one copy taught both again
    finally:
        side.close()
