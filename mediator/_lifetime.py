"""A VM's counters over its whole life: every session and every worker, never going back.

A worker's stats block counts from zero, and a VM has a new worker at each attach and at each worker
restart; Prometheus counters and the operator's totals must not drop when that happens. The endpoint
folds each session's final counts in when it ends (exact). A worker replaced inside a session is
folded in as it was last seen (a status read, a scrape): that never goes back, and what it counted
after the last look is what a restart can lose — calls and errors excepted, which the session carries
over exactly.
"""

from __future__ import annotations

from typing import Final

from ._stats import LATENCY_BUCKETS, WorkerCounters

__all__ = ["LIFETIME_FIELDS", "LifetimeCounters"]

#: the counters summed over the VM's life (calls and errors are carried by the session and endpoint)
LIFETIME_FIELDS: Final = ("protocol_errors", "async_calls", "bytes_htod", "bytes_dtoh", "sleeps", "wakeups",
                          "throttles", "cq_full_waits", "latency_sum_ns")


class LifetimeCounters:
    def __init__(self) -> None:
        self.before = WorkerCounters()  # what ended workers counted
        self._seen: tuple[int, int] | None = None  # (session, worker pid) last looked at
        self._last = WorkerCounters()

    def _fold(self, counters: WorkerCounters) -> None:
        for name in LIFETIME_FIELDS:
            setattr(self.before, name, getattr(self.before, name) + getattr(counters, name))
        self.before.latency = [a + b for a, b in zip(self.before.latency, counters.latency, strict=True)]

    def observe(self, session: int, counters: WorkerCounters) -> WorkerCounters:
        """The lifetime totals, given the current worker's own ``counters`` in ``session``."""
        key = (session, counters.pid)
        if self._seen is not None and self._seen != key:  # a worker we saw is gone: as last seen
            self._fold(self._last)
        self._seen, self._last = key, counters
        return self.total(counters)

    def session_ended(self, session: int, final: WorkerCounters) -> None:
        """A session's last worker's final counts (exact): folded in, replacing its last look."""
        if self._seen is not None and self._seen != (session, final.pid):
            self._fold(self._last)
        self._seen = None
        self._fold(final)

    def total(self, current: WorkerCounters | None = None) -> WorkerCounters:
        total = WorkerCounters(latency=[0] * LATENCY_BUCKETS)
        for part in (self.before, current) if current is not None else (self.before,):
            for name in LIFETIME_FIELDS:
                setattr(total, name, getattr(total, name) + getattr(part, name))
            total.latency = [a + b for a, b in zip(total.latency, part.latency, strict=True)]
        return total
