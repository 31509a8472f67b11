"""Per-VM limits on the hot path, sans I/O: a token bucket for calls per second.

The worker asks the bucket how many submissions it may serve now; what it may not serve waits in
the VM's own ring (the guest sees a slower device, never an error), so one VM flooding the mediator
cannot take more than its configured rate of the host's time.
"""

from __future__ import annotations

__all__ = ["TokenBucket"]


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` banked; time comes from the caller."""

    def __init__(self, rate: float, burst: float | None = None, now: float = 0.0) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate / 10)  # a tenth of a second
        self.tokens = self.burst
        self._stamp = now

    def _refill(self, now: float) -> None:
        if now > self._stamp:
            self.tokens = min(self.burst, self.tokens + (now - self._stamp) * self.rate)
        self._stamp = max(self._stamp, now)

    def available(self, now: float) -> int:
        """Whole calls that may be served now."""
        self._refill(now)
        return int(self.tokens)

    def take(self, count: int, now: float) -> None:
        self._refill(now)
        self.tokens -= count

    def wait_s(self, now: float) -> float:
        """Seconds until the next whole token."""
        self._refill(now)
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate
