"""A full memory fence, for the need-wakeup handshake.

Both sides publish an index and then read the other side's sleep flag (the host: set flag, re-read
tail; the guest: publish tail, read flag). x86 may reorder a store with a later load, so without a
fence both sides can miss each other and the wakeup is lost. Python has no fence of its own; a
sequentially consistent atomic from libatomic is a locked instruction, which is one. Where libatomic
is missing, ``fence`` is a no-op and the host's bounded sleep (mediator) recovers any lost wakeup.
"""

from __future__ import annotations

import ctypes
import ctypes.util
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


_loaded = _load_fence()
HAVE_FENCE: bool = _loaded is not None
fence: Callable[[], None] = _loaded or _no_fence
