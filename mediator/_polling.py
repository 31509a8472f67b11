"""How long an idle worker polls before it sleeps: a window that adapts to the VM's gaps (sans-I/O).

Theory of operation. After serving, a worker polls its rings for the next entry (a spin in C, see
``_worker.py``) and, once its *window* has passed with nothing, sleeps on its doorbell. A sleep costs
the next call a wake-up: on these hosts 37–53 µs from the guest's kick to the worker running (a halted
vCPU woken by an IPI, docs/benchmarks.md), as much as 200 back-to-back 64 KiB copies leave for
everything else at 90% of memcpy speed. A VM whose work comes in bursts a few hundred µs apart (a copy
batch after some CPU work, a decode step after sampling) pays it on every burst with a fixed window.

So the window adapts, as QEMU's event loop adapts its polling (``poll-max-ns``): each time the worker
wakes and finds work, it looks at the *gap*, the time from the last call it served to now.

* gap within ``max_ns`` but past the window: polling a little longer would have caught it — the window
  doubles (up to ``max_ns``);
* gap past ``max_ns``: no window we allow would have caught it — the window halves (down to
  ``base_ns``);
* gap within the window: the worker slept early because its spin saw the CPU contended (another task
  ran when it yielded), and a longer window would change nothing — no change.

A wake-up that finds nothing (the sleep's timeout, a control message) with the gap already past
``max_ns`` halves the window too, so a VM gone quiet costs its short window again within a few of the
worker's bounded sleeps. The spin still gives up at once when the CPU is contended, however long the
window: polling never holds a CPU another runnable task wants. ``max_ns`` at ``base_ns`` (or below)
keeps the window fixed: the operator's ``poll_max_us``; and a window of 0 (``poll_us = 0``) stays 0,
a worker that never polls.
"""

from __future__ import annotations

__all__ = ["PollWindow"]


class PollWindow:
    """The current polling window of one worker, in ns (see the module's docstring)."""

    __slots__ = ("base_ns", "max_ns", "ns")

    def __init__(self, base_ns: int, max_ns: int) -> None:
        self.base_ns = base_ns
        self.max_ns = max(base_ns, max_ns)
        self.ns = base_ns

    def woke(self, gap_ns: int, found_work: bool) -> None:
        """The worker woke from a sleep ``gap_ns`` after it last served, and found work or not."""
        if gap_ns > self.max_ns:
            self.ns = max(self.base_ns, self.ns // 2)
        elif found_work and gap_ns > self.ns:
            self.ns = min(self.max_ns, 2 * self.ns)
