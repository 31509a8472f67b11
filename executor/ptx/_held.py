"""Arrays the engine keeps from one launch to the next, within one byte bound.

A batch's shape arrays (``%tid``, ``%ctaid``, row numbers, a shuffle's source lanes) are functions
of the launch's shape only, so they are computed once and shared, read-only, by every batch and
launch of that shape (a decode step launches many small grids of the same few shapes). They are the
only NumPy memory the engine holds across launches outside a module's charged preparation, so they
are bounded together: :data:`HELD_BYTES` in all, least recently used let go first, and an array
too large for a fair share of it is made for its batch and not kept. The bound is a fixed part of a
worker's own memory, not a guest's to grow (tests/ptx/test_held.py)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import numpy as np

from ._heap import keep_heap

#: bytes of arrays kept across launches, all kinds together
HELD_BYTES = 8 << 20
#: the largest entry kept: a launch of one huge shape must not push out every small one
ENTRY_BYTES = HELD_BYTES // 8

T = TypeVar("T")

keep_heap()  # the arrays a batch makes and frees at every step reuse the heap's pages (_heap)

_entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
_lock = threading.Lock()
_bytes = [0]


def _arrays(value: object) -> list[np.ndarray[Any, Any]]:
    if isinstance(value, np.ndarray):
        return [value]
    if isinstance(value, tuple):
        return [a for item in value for a in _arrays(item)]
    return []


def held(key: Hashable, make: Callable[[], T]) -> T:
    """The value ``make()`` returns for ``key`` (an ndarray or a tuple of them, made read-only: it is
    shared), kept while it fits :data:`HELD_BYTES`."""
    with _lock:
        hit = _entries.get(key)
        if hit is not None:
            _entries.move_to_end(key)
            kept: T = hit[0]
            return kept
    value = make()
    arrays = _arrays(value)
    for array in arrays:
        array.flags.writeable = False
    nbytes = sum(a.nbytes for a in arrays)
    if nbytes > ENTRY_BYTES:
        return value
    with _lock:
        if key not in _entries:
            _entries[key] = (value, nbytes)
            _bytes[0] += nbytes
        while _bytes[0] > HELD_BYTES:
            _, (_, gone) = _entries.popitem(last=False)
            _bytes[0] -= gone
    return value


def held_bytes() -> int:
    """Bytes of arrays kept now."""
    return _bytes[0]
