"""What the engine keeps across launches outside a module's charged preparation — the batch shapes'
arrays (``_held``) — stays within one byte bound however many shapes a guest launches, and a launch
whose arrays were let go computes them again, with the same results."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from executor.ptx import _held

from .conftest import ptx_device

SWAP = """
.version 8.0
.target sm_80
.address_size 64
.visible .entry swap(.param .u64 out)
{
    .reg .b32 %r<6>;
    .reg .b64 %rd<4>;
    ld.param.u64 %rd1, [out];
    mov.u32 %r1, %tid.x;
    mov.u32 %r2, %ctaid.x;
    mov.u32 %r3, %ntid.x;
    mad.lo.u32 %r4, %r2, %r3, %r1;
    shfl.sync.bfly.b32 %r5, %r4, 1, 31, -1;
    mul.wide.u32 %rd2, %r4, 4;
    add.s64 %rd3, %rd1, %rd2;
    st.global.u32 [%rd3], %r5;
    ret;
}
"""


@pytest.fixture(autouse=True)
def nothing_held() -> Iterator[None]:
    with _held._lock:
        _held._entries.clear()
        _held._bytes[0] = 0
    yield


def test_the_shapes_a_guest_launches_are_held_within_the_bound() -> None:
    device = ptx_device(SWAP)
    out = device.zeros(1 << 16, np.uint32)
    made = 0
    # each launch a shape of its own (at most 8192 threads a batch, two batches): about 0.5 MiB of arrays
    for k in range(1, 33):
        block = 32 * k
        grid = 2 * 8192 // block
        before = {key for key in _held._entries}
        device.run("swap", grid, block, out)
        made += sum(_held._entries[key][1] for key in set(_held._entries) - before)
        n = grid * block
        assert (device.get(out, n, np.uint32) == np.arange(n, dtype=np.uint32) ^ 1).all()
        assert _held.held_bytes() <= _held.HELD_BYTES
    assert made > _held.HELD_BYTES  # what an unbounded cache would hold now
    assert _held.held_bytes() == sum(nbytes for _, nbytes in _held._entries.values())
    # the first shapes were let go: launched again, they are made again, with the same results
    device.run("swap", 2 * 8192 // 32, 32, out)
    assert (device.get(out, 2 * 8192, np.uint32) == np.arange(2 * 8192, dtype=np.uint32) ^ 1).all()


def test_an_entry_larger_than_its_share_is_made_and_not_kept() -> None:
    big = _held.ENTRY_BYTES // 8 + 1
    first = _held.held(("test", "big"), lambda: np.zeros(big, dtype=np.int64))
    second = _held.held(("test", "big"), lambda: np.zeros(big, dtype=np.int64))
    assert first is not second and _held.held_bytes() == 0
    assert not first.flags.writeable  # shared values are read-only, kept or not
    def small() -> tuple[np.ndarray[tuple[int], np.dtype[np.int64]], np.ndarray[tuple[int], np.dtype[np.bool_]]]:
        return np.zeros(4, dtype=np.int64), np.ones(2, dtype=np.bool_)

    kept = _held.held(("test", "small"), small)
    assert _held.held(("test", "small"), small) is kept
    assert _held.held_bytes() == 34
