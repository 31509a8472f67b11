"""Operator-facing events of the supervisor (VM attached, detached, reset, removed, renamed, error
bursts).

A small in-process hub: the places that log these moments also publish them here, and whoever wants
them (the MQTT publisher) subscribes. Subscribers are called synchronously on the event loop and must
not block: the MQTT publisher only appends to its bounded queue.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

__all__ = ["EVENTS", "Event", "EventHub"]

Event = dict[str, Any]


class EventHub:
    def __init__(self) -> None:
        self._subscribers: list[Callable[[Event], None]] = []

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``callback`` for every event from now on; returns the function that unsubscribes."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)

    def publish(self, kind: str, **fields: Any) -> None:
        event: Event = {"event": kind, "time": round(time.time(), 3), **fields}
        for callback in list(self._subscribers):
            callback(event)


#: the supervisor's hub (one daemon per process)
EVENTS = EventHub()
