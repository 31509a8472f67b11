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
wake-ups; and a flood takes whatever the scheduler gives it. A capped worker does not poll between
calls (it sleeps on its doorbell, as the VMs it is ahead of do), and once it has served more than its
cap allows since the epoch began (``BURST`` calls of slack) it sleeps the difference off
(``sleep_due``), in sleeps of ``MIN_SLEEP_NS`` to ``MAX_SLEEP_NS``. A cap is always above the slowest
busy peer's rate (and it takes half the peers slow to bring the typical rate down), so a capped VM
is slowed to its peers' pace, never starved; and never below ``MIN_CAP``: a tenant holding half the
busy VMs and keeping them slow on purpose could otherwise hold everyone else's VMs to its pace.

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
    "BURST",
    "EPOCH_NS",
    "MAX_SLEEP_NS",
    "MIN_CAP",
    "MIN_SLEEP_NS",
    "SMOOTHING",
    "next_cap",
    "sleep_due",
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
#: calls a capped worker may serve beyond its cap within an epoch before it sleeps (each epoch grants
#: it anew: BURST / EPOCH_NS, 50 calls/s, is how far past its cap a capped worker can get)
BURST: Final = 1
#: a debt is slept off only from this long (a shorter sleep costs about as much as it gives back)
MIN_SLEEP_NS: Final = 100_000
#: and at most this long at once, so heartbeats and control messages keep their pace
MAX_SLEEP_NS: Final = 5_000_000


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


def sleep_due(calls: int, elapsed_ns: int, cap: float) -> int:
    """How long (ns) a worker capped at ``cap`` calls per second sleeps now, having served ``calls`` in
    the ``elapsed_ns`` since its epoch began: 0 while within the cap and ``BURST``."""
    allowed = cap * max(elapsed_ns, 0) / 1e9 + BURST
    if calls <= allowed:
        return 0
    due = (calls - allowed) / cap * 1e9
    return 0 if due < MIN_SLEEP_NS else int(min(due, MAX_SLEEP_NS))
