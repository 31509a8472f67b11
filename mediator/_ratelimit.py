"""A log line for an event that can repeat at any rate (refused connections, malformed requests): the
first is logged at once, then at most one line per interval, carrying how many were left unlogged.

Anything a peer can trigger at will must not be able to write the journal at that rate; the exact
totals live in counters (``status``), the log says that it is happening and how much. Inside an
event loop, a burst that stops is summed up one interval after its last line (2,000 refused
connections in 0.4 s: two lines, the second a ``summary`` with ``suppressed_since_last=1999``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

__all__ = ["RateLimitedLog"]


class RateLimitedLog:
    def __init__(self, emit: Callable[..., Any], interval_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._emit = emit  # a bound logger method, e.g. log.warning
        self.interval_s = interval_s
        self._clock = clock
        self._last: float | None = None
        self.suppressed = 0  # events since the last line that were not logged
        self._pending: tuple[str, dict[str, Any]] | None = None  # the latest suppressed event
        self._flush: asyncio.TimerHandle | None = None

    def __call__(self, event: str, **fields: Any) -> bool:
        """Log ``event`` unless a line went out less than an interval ago; True if it was logged."""
        now = self._clock()
        if self._last is not None and now - self._last < self.interval_s:
            self.suppressed += 1
            self._pending = (event, fields)
            self._schedule_flush(self._last + self.interval_s - now)
            return False
        self._line(event, fields, now)
        return True

    def _line(self, event: str, fields: dict[str, Any], now: float) -> None:
        """One line: this event's (or, as a summary, the last suppressed one's) fields and the count."""
        if self.suppressed:
            fields = {**fields, "suppressed_since_last": self.suppressed}
        self._emit(event, **fields)
        self._last, self.suppressed, self._pending = now, 0, None

    def _schedule_flush(self, delay: float) -> None:
        if self._flush is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop: the next line carries the count
            return
        self._flush = loop.call_later(max(delay, 0.0), self._flush_pending)

    def _flush_pending(self) -> None:
        self._flush = None
        if self._pending is not None:
            event, fields = self._pending
            self._line(event, {**fields, "summary": True}, self._clock())
