"""Fair shares between VMs' workers on a crowded host: when a worker is paced, and how hard (sans-I/O).

Theory of operation. Each worker measures the CPU it used (its process's CPU time over wall time,
smoothed, ``smooth``) and publishes it on a board all the mediator's workers share
(:mod:`._board`). Once per ``EPOCH_NS`` a worker reads its peers' shares and moves its pacing level
one step (``next_level``):

* Nothing happens unless the host is crowded: more *active* workers (share ≥ ``ACTIVE_SHARE``) than
  CPUs. A lone VM, or as many busy VMs as cores, keep their speed: level 0 at once.
* Crowded, a worker whose share is above ``AHEAD`` times the median of its active peers' steps up
  one level; one at or below the median steps down one. Between the two it stays (hysteresis).

What a level means (``Pace``): from level 1 up the worker does not poll the ring between calls (it
sleeps on its doorbell at once, as the VMs it is ahead of do: a VM whose guest and worker happen to
poll on two cores at once is the lucky one that the index measured), and for every nanosecond it
spends serving it owes ``debt_factor`` nanoseconds of sleep, paid in sleeps of at least
``MIN_SLEEP_NS`` (a flood, which never idles, thus runs at most 1 / (1 + factor) of the time). The
factors are bounded (``MAX_LEVEL``: 1 in 5), so a paced VM is slowed, never starved, and each step
is one epoch, so a burst is not punished at once.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

__all__ = [
    "ACTIVE_SHARE",
    "AHEAD",
    "EPOCH_NS",
    "MAX_LEVEL",
    "MIN_SLEEP_NS",
    "Pace",
    "next_level",
    "pace",
    "sleep_due",
    "smooth",
]

#: how often a worker publishes its share and reconsiders its level
EPOCH_NS: Final = 20_000_000
#: a worker using less of a CPU than this is not competing for one
ACTIVE_SHARE: Final = 0.02
#: paced above this multiple of the active peers' median share
AHEAD: Final = 1.25
#: the weight of the newest epoch in the smoothed share (about five epochs of memory)
SMOOTHING: Final = 0.2
#: sleep owed per nanosecond served, by level; the last bounds how hard a VM is ever paced
DEBT_FACTORS: Final = (0.0, 0.0, 0.25, 0.5, 1.0, 2.0, 4.0)
MAX_LEVEL: Final = len(DEBT_FACTORS) - 1
#: debts are paid in sleeps this long at least (a shorter sleep costs more than it gives back)
MIN_SLEEP_NS: Final = 200_000
#: and at most this long at once, so heartbeats and control messages keep their pace
MAX_SLEEP_NS: Final = 5_000_000


@dataclass(frozen=True)
class Pace:
    """What a level asks of the worker."""

    level: int
    polls: bool  # may spin on the ring between calls
    debt_factor: float  # sleep owed per nanosecond spent serving


def pace(level: int) -> Pace:
    level = max(0, min(MAX_LEVEL, level))
    return Pace(level, level == 0, DEBT_FACTORS[level])


def smooth(previous: float, cpu_ns: int, wall_ns: int) -> float:
    """The smoothed CPU share after an epoch in which ``cpu_ns`` of CPU were used in ``wall_ns``."""
    if wall_ns <= 0:
        return previous
    sample = min(max(cpu_ns / wall_ns, 0.0), 1.0)
    return previous + SMOOTHING * (sample - previous)


def next_level(level: int, own: float, peers: Sequence[float], cpus: int) -> int:
    """The next pacing level of a worker at ``level`` using ``own`` of a CPU, beside the shares its
    live peers published (``peers``, idle ones included), on a host of ``cpus`` CPUs."""
    active = [share for share in peers if share >= ACTIVE_SHARE]
    if own < ACTIVE_SHARE or len(active) + 1 <= max(1, cpus):
        return 0  # not crowded, or we use next to nothing: nobody waits on us
    median = statistics.median(active)
    if own > AHEAD * median:
        return min(level + 1, MAX_LEVEL)
    if own <= median:
        return max(level - 1, 0)
    return max(0, min(level, MAX_LEVEL))


def sleep_due(debt_ns: float) -> int:
    """How long to sleep now for ``debt_ns`` of debt: 0 until it reaches ``MIN_SLEEP_NS``, never more
    than ``MAX_SLEEP_NS``."""
    if debt_ns < MIN_SLEEP_NS:
        return 0
    return int(min(debt_ns, MAX_SLEEP_NS))
