"""MQTT topics and payloads, sans I/O: what the publisher sends and how control requests are checked.

Topics, under ``<prefix>/<host>/``:

============================  =========  =====================================================
``status``                    retained   the host: ``state`` online/offline (the last-will), backend,
                                         VMs attached, MQTT connection figures
``vm/<name>/status``          retained   one VM: connected, state, calls, errors, memory, quota,
                                         ``host_state``; expires after three status intervals, is
                                         cleared when the VM is removed (or renamed)
``events``                    —          ``vm_attached``, ``vm_detached``, ``vm_reset``, ``vm_removed``,
                                         ``vm_renamed``, ``error_burst``
``control``                   (in)       JSON requests: ``{"id": …, "cmd": …, "vm": …, …}``
``control/response``          —          ``{"id": …, "ok": …, …}``; an MQTT 5 request's
                                         ``ResponseTopic``/``CorrelationData`` are honoured
============================  =========  =====================================================
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass
from typing import Any, Final

from ._control import ControlRefusedError, ControlRequest, TraceRequest, parse_request

__all__ = [
    "CONTROL_COMMANDS", "ControlRefusedError", "ErrorBurstDetector", "OutgoingQueue", "Outgoing", "Topics",
    "encode", "parse_control",
]

#: what the control topic accepts (the fields each needs: :mod:`._control`)
CONTROL_COMMANDS: Final = ("status", "trace", "set_quota", "reset", "detach")


@dataclass(frozen=True, slots=True)
class Topics:
    prefix: str
    host: str

    @property
    def base(self) -> str:
        return f"{self.prefix.rstrip('/')}/{self.host}"

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    def vm_status(self, vm: str) -> str:
        return f"{self.base}/vm/{vm}/status"

    @property
    def events(self) -> str:
        return f"{self.base}/events"

    @property
    def control(self) -> str:
        return f"{self.base}/control"

    @property
    def response(self) -> str:
        return f"{self.base}/control/response"


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def parse_control(payload: bytes) -> tuple[ControlRequest, Any]:
    """A checked control request (the control socket's own model) and its correlation id.

    MQTT carries what the control socket does, less fault injection (the broker's ACL is the only
    gate here) and less trace reading (a reply is one message): ``trace`` only switches."""
    request = parse_request(payload)
    if request.cmd not in CONTROL_COMMANDS:
        raise ControlRefusedError(f"{request.cmd} is not available over MQTT; one of "
                                  f"{', '.join(CONTROL_COMMANDS)}", request.id)
    if isinstance(request, TraceRequest):
        if request.enable is None:
            raise ControlRefusedError("trace needs 'enable': true or false", request.id)
        request = request.model_copy(update={"limit": 0})
    return request, request.id


@dataclass(frozen=True, slots=True)
class Outgoing:
    topic: str
    payload: bytes
    retain: bool = False
    qos: int = 1
    correlation: bytes | None = None
    expiry_s: int | None = None  # MQTT 5 message expiry: the broker drops it (retained too) after this


class OutgoingQueue:
    """Messages waiting for the broker: bounded, and the oldest go first when it overflows (a broker
    that is away must cost memory we chose, never the daemon)."""

    def __init__(self, limit: int) -> None:
        self._items: deque[Outgoing] = deque()
        self.limit = limit
        self.dropped = 0

    def put(self, item: Outgoing) -> None:
        if len(self._items) >= self.limit:
            self._items.popleft()
            self.dropped += 1
        self._items.append(item)

    def peek(self) -> Outgoing | None:
        return self._items[0] if self._items else None

    def pop(self) -> Outgoing:
        return self._items.popleft()

    def __len__(self) -> int:
        return len(self._items)


class ErrorBurstDetector:
    """Per VM: the errors since the last look; a burst when they reach ``threshold``."""

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        self._last: dict[str, int] = {}

    def update(self, vm: str, errors_total: int) -> int | None:
        """The number of new errors if they make a burst, else None."""
        previous = self._last.get(vm, errors_total)
        self._last[vm] = errors_total
        fresh = errors_total - previous
        return fresh if fresh >= self.threshold else None
