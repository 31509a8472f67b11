"""The workers' board: a small shared table in which each worker publishes the rate it serves calls at.

A file in the mediator's socket directory (mode 0600: the mediator's workers only), ``SLOTS`` rows
of four u64s: the worker's pid, when it last published (``CLOCK_MONOTONIC`` ns), its smoothed rate
and its cap (0: none; for readers and tests), both in thousandths of a call per second. A worker
claims a row when it starts (under ``flock``, taking one whose pid is 0 or dead) and clears it when
it closes; a file, not an fd the supervisor hands out, so that workers adopted by a restarted
supervisor and the ones it spawns share one board. Rows are written without a lock: a reader may
see a torn row, which can misplace one cap for one epoch (:mod:`._pacing`). Rows not published for
``STALE_NS`` (an idle worker sleeps; a dead one is gone) are not counted.
"""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import os
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = ["BOARD_NAME", "SLOTS", "STALE_NS", "Board"]

#: the board's file name in the socket directory
BOARD_NAME: Final = "workers.board"

SLOTS: Final = 256
_FIELDS: Final = 4  # pid, published_ns, rate and cap in milli-calls per second
_SIZE: Final = SLOTS * _FIELDS * 8
#: a row older than this is an idle or dead worker's (an idle worker wakes at least every
#: ``max_sleep_ms``, 100 ms by default, and publishes only when it serves)
STALE_NS: Final = 200_000_000


def _milli(rate: float) -> int:
    return int(min(max(rate, 0.0), 1e12) * 1e3)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # somebody else's process by now: not a worker of ours
        return False
    return True


class Board:
    """One worker's view of the board: its own row to write, everybody's to read."""

    def __init__(self, map_: mmap.mmap, slot: int, pid: int) -> None:
        self._map = map_
        self.rows: npt.NDArray[np.uint64] = np.frombuffer(map_, dtype=np.uint64).reshape(SLOTS, _FIELDS)
        self.slot = slot
        self.pid = pid

    @classmethod
    def claim(cls, path: Path, pid: int | None = None) -> Board | None:
        """Open (creating) the board at ``path`` and claim a row for ``pid`` (default: this process);
        None when every row is held by a live process. Raises OSError if the file cannot be used."""
        pid = os.getpid() if pid is None else pid
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.fstat(fd).st_size != _SIZE:  # new, or not ours: start it over
                os.ftruncate(fd, 0)
                os.ftruncate(fd, _SIZE)
            map_ = mmap.mmap(fd, _SIZE)
            rows = np.frombuffer(map_, dtype=np.uint64).reshape(SLOTS, _FIELDS)
            for slot in range(SLOTS):
                holder = int(rows[slot, 0])
                if holder in (0, pid) or not _alive(holder):
                    rows[slot] = (pid, 0, 0, 0)
                    del rows
                    return cls(map_, slot, pid)
            del rows
            map_.close()
            return None
        finally:
            # unlocked by hand: the mapping holds a duplicate of fd, and with it the lock
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def publish(self, now_ns: int, rate: float, cap: float | None) -> None:
        row = self.rows[self.slot]
        row[0] = self.pid  # taken back if a claimer saw us as dead (pid reuse aside, it cannot)
        row[2] = _milli(rate)
        row[3] = _milli(cap or 0.0)
        row[1] = now_ns

    def peers(self, now_ns: int) -> list[float]:
        """The rates of the other workers that published in the last ``STALE_NS``."""
        rows = self.rows
        fresh = (rows[:, 0] != 0) & (rows[:, 1] + np.uint64(STALE_NS) >= np.uint64(max(now_ns, 0)))
        fresh[self.slot] = False
        return [float(v) / 1e3 for v in rows[fresh, 2]]

    def close(self) -> None:
        if self._map.closed:
            return
        if int(self.rows[self.slot, 0]) == self.pid:
            self.rows[self.slot] = 0
        del self.rows
        with contextlib.suppress(BufferError):
            self._map.close()
