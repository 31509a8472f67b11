"""A full memory fence, for the need-wakeup handshake.

Both sides publish an index and then read the other side's sleep flag (the host: set flag, re-read
tail; the guest: publish tail, read flag). x86 may reorder a store with a later load, so without a
fence both sides can miss each other and the wakeup is lost. Python has no fence of its own. The C
ring extension (``protocol._cring``) has one (``__atomic_thread_fence``, tens of nanoseconds); without
it, a sequentially consistent atomic from libatomic through ctypes is a locked instruction, which is
one too (half a microsecond a call). Where neither exists, ``fence`` is a no-op and the host's bounded
sleep (mediator) recovers any lost wakeup.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Callable

__all__ = ["HAVE_FENCE", "fence"]

_cell = ctypes.c_uint32(0)
_cell_addr = ctypes.addressof(_cell)
_SEQ_CST = 5


def _load_fence() -> Callable[[], None] | None:
    name = ctypes.util.find_library("atomic")
    if name is None:
        return None
    try:
        lib = ctypes.CDLL(name)
        fetch_add = lib.__atomic_fetch_add_4
    except (OSError, AttributeError):
        return None
    fetch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int]
    fetch_add.restype = ctypes.c_uint32

    def fence() -> None:
        fetch_add(_cell_addr, 0, _SEQ_CST)

    return fence


def _no_fence() -> None:
    return None


def _c_fence() -> Callable[[], None] | None:
    if os.environ.get("VGPU_PURE_PYTHON") == "1":
        return None
    try:
        from ._cring import fence
    except ImportError:
        return None
    return fence


_loaded = _c_fence() or _load_fence()
HAVE_FENCE: bool = _loaded is not None
fence: Callable[[], None] = _loaded or _no_fence
