"""Fair turns between VMs' workers on a crowded host: when a worker is capped, and at what rate (sans-I/O).

Theory of operation. Each worker counts the calls it serves, smooths them into a rate (``smooth``)
and publishes it on a board all the mediator's workers share (:mod:`._board`). Once per
``EPOCH_NS`` it reads its peers' rates and decides its cap (``next_cap``):

* Nothing happens unless the host is crowded: more *active* workers (rate ≥ ``ACTIVE_RATE``) than
  CPUs. A lone VM, or as many busy VMs as cores, keep their speed: no cap.
* Crowded, a worker whose rate is above ``AHEAD`` times its active peers' *typical* rate is capped
  at that. It stays capped while it is still above the typical rate, and is freed once it is at
  or below it, or the host is no longer crowded. The typical rate is the
  median of the peers' rates that are not themselves far ahead (at most ``AHEAD`` times the median
  of them all): with 4 VMs, one flooding, a plain median of a VM's three peers is the faster of its
  two well-behaved neighbours, and the lucky VM would be held only to that one's pace.

Why: with more busy processes than cores, which VM's guest and worker happen to run on two cores at
once decides which VM polls its way to many times its neighbours' rate while they wait for
wake-ups; and a flood takes whatever the scheduler gives it. A capped worker spends an
``Allowance``: its cap in calls per second, banked up to ``QUANTUM_NS`` worth. It serves as it always
does (polling, so that its calls cost what they cost uncapped) until the allowance is spent, and then
sleeps until a whole quantum is banked again, in sleeps of at most ``MAX_SLEEP_NS``: one sleep per
burst of calls, not one per call, so that the CPU it frees comes in pieces long enough for its peers
to use (its guest, finding no completion, stops spinning and sleeps too). A cap is always above the
slowest busy peer's rate (and it takes half the peers slow to bring the typical rate down), so a
capped VM is slowed to its peers' pace, never starved; and never below ``MIN_CAP``: a tenant holding
half the busy VMs and keeping them slow on purpose could otherwise hold everyone else's VMs to its
pace.

Calls, not CPU time, are what is equalised: a worker that sleeps between calls spends more CPU per
call than one that polls, so CPU time would keep a capped VM looking ahead; the cost is that a VM
making few heavy calls (long kernels) is not held back by this (the launch limits bound those).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Final

__all__ = [
    "ACTIVE_RATE",
    "AHEAD",
    "EPOCH_NS",
    "MAX_SLEEP_NS",
    "MIN_CAP",
    "QUANTUM_NS",
    "SMOOTHING",
    "Allowance",
    "next_cap",
    "smooth",
]

#: how often a worker publishes its rate and reconsiders its cap
EPOCH_NS: Final = 20_000_000
#: a worker serving fewer calls per second than this is not competing for the CPU
ACTIVE_RATE: Final = 50.0
#: capped above this multiple of the active peers' median rate, at this multiple of it
AHEAD: Final = 1.25
#: no worker is capped below this many calls per second, whatever its peers do
MIN_CAP: Final = 1000.0
#: the weight of the newest epoch in the smoothed rate (about five epochs of memory)
SMOOTHING: Final = 0.2
#: a capped worker banks at most this long's worth of its cap: it serves that many calls in a burst,
#: then sleeps until as many are banked again
QUANTUM_NS: Final = 5_000_000
#: the longest single sleep, so that heartbeats and control messages keep their pace (above
#: QUANTUM_NS, so that a bank emptied by a few calls more than it held fills in one sleep)
MAX_SLEEP_NS: Final = 10_000_000


def smooth(previous: float, calls: int, wall_ns: int) -> float:
    """The smoothed rate (calls per second) after ``calls`` were served in ``wall_ns``: an epoch's
    weight is ``SMOOTHING``, a longer stretch (a worker that slept) weighs as much longer."""
    if wall_ns <= 0:
        return previous
    weight = min(1.0, SMOOTHING * wall_ns / EPOCH_NS)
    return previous + weight * (max(calls, 0) * 1e9 / wall_ns - previous)


def next_cap(own: float, peers: Sequence[float], cpus: int, capped: bool) -> float | None:
    """The cap (calls per second) of a worker serving ``own`` calls per second beside the rates its
    live peers published (``peers``, idle ones included) on a host of ``cpus`` CPUs; ``capped``: it is
    capped now. None: not capped."""
    active = [rate for rate in peers if rate >= ACTIVE_RATE]
    if own < ACTIVE_RATE or len(active) + 1 <= max(1, cpus):
        return None  # not crowded, or we serve next to nothing: nobody waits on us
    median = statistics.median(active)
    # not empty: every rate at or below the median qualifies
    typical = statistics.median([rate for rate in active if rate <= AHEAD * median])
    cap = max(AHEAD * typical, MIN_CAP)
    if own > cap or (capped and own > typical):  # a capped worker runs at its cap: it stays
        return cap
    return None


class Allowance:
    """A capped worker's budget (a token bucket with time from the caller): ``cap`` calls per second,
    at most ``QUANTUM_NS`` worth banked (one call at least). Calls are paid after they are served;
    a worker in debt sleeps until the bank is full again."""

    def __init__(self, cap: float, now_ns: int) -> None:
        self.cap = cap
        self.tokens = self.depth
        self._at = now_ns
        self._owing = False  # overdrawn, and not yet full again

    @property
    def depth(self) -> float:
        return max(1.0, self.cap * QUANTUM_NS / 1e9)

    def _refill(self, now_ns: int) -> None:
        if now_ns > self._at:
            self.tokens = min(self.depth, self.tokens + self.cap * (now_ns - self._at) / 1e9)
            self._at = now_ns

    def recap(self, cap: float, now_ns: int) -> None:
        """A new cap from now on (what was banked at the old one is kept, up to the new depth)."""
        self._refill(now_ns)
        self.cap = cap
        self.tokens = min(self.tokens, self.depth)

    def spend(self, calls: int, now_ns: int) -> int:
        """Pay for ``calls`` served; how long (ns) to sleep now: 0 until the bank is overdrawn, and
        from then on until it is full again (``MAX_SLEEP_NS`` at most at once: call again after)."""
        self._refill(now_ns)
        self.tokens -= max(calls, 0)
        self._owing = self.tokens < 0 or (self._owing and self.tokens < self.depth)
        if not self._owing:
            return 0
        return min(int((self.depth - self.tokens) / self.cap * 1e9) + 1, MAX_SLEEP_NS)
