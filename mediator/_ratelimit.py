"""A log line for an event that can repeat at any rate (refused connections, malformed requests): the
first is logged at once, then at most one line per interval, carrying how many were left unlogged.

Anything a peer can trigger at will must not be able to write the journal at that rate; the exact
totals live in counters (``status``), the log only says that it is happening and how much.
"""

from __future__ import annotations

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

    def __call__(self, event: str, **fields: Any) -> bool:
        """Log ``event`` unless a line went out less than an interval ago; True if it was logged."""
        now = self._clock()
        if self._last is not None and now - self._last < self.interval_s:
            self.suppressed += 1
            return False
        if self.suppressed:
            fields["suppressed_since_last"] = self.suppressed
        self._emit(event, **fields)
        self._last, self.suppressed = now, 0
        return True
