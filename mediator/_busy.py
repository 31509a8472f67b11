"""The host's word that it is still working on a channel's call: ``host_busy``.

A guest waiting for a completion gives up after its transport timeout in which the host made no
progress on its channel (``sq_head`` and ``cq_tail`` stood still). One call can take longer than that
by itself and still be well: a launch under a long launch bound, a synchronize that waits for a GPU's
queued work. While the worker serves a channel's entries, a daemon thread adds one to that channel's
``host_busy`` every :data:`BUSY_INTERVAL_S`, and guests count that as progress too. The worker
itself bounds every call (the launch bound, the watchdog that ends a hung worker), so the word only
says what is true: someone is serving this channel now. The thread runs only between ``serving`` and
``idle`` of a real call path and holds nothing else; the worker stops it before it lets the region go.
"""

from __future__ import annotations

import threading
from typing import Final, Protocol

#: how often a channel being served shows it (well under any transport timeout a guest would use)
BUSY_INTERVAL_S: Final = 0.5
#: the beacon's stack: it only calls one method (the default 8 MiB would count against RLIMIT_DATA)
_STACK_BYTES: Final = 256 * 1024


class Busy(Protocol):
    def bump_busy(self) -> None: ...


class BusyBeacon:
    """Bumps the ``host_busy`` word of the channel being served, every ``interval`` seconds."""

    def __init__(self, interval: float = BUSY_INTERVAL_S) -> None:
        self._interval = interval
        self._current: Busy | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()  # held while bumping: stop() returns only once none is under way
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def serving(self, channel: Busy) -> None:
        if self._thread is None:
            self._start()
        self._current = channel

    def idle(self) -> None:
        self._current = None  # a bump already under way lands on a word only the host writes

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            self._current = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _start(self) -> None:
        previous = threading.stack_size(_STACK_BYTES)
        try:
            self._thread = threading.Thread(target=self._run, name="host-busy", daemon=True)
            self._thread.start()
        finally:
            threading.stack_size(previous)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            with self._lock:
                channel = self._current
                if channel is not None:
                    channel.bump_busy()
