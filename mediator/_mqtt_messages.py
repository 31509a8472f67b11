"""MQTT topics and payloads, sans I/O: what the publisher sends and how control requests are checked.

Topics, under ``<prefix>/<host>/``:

============================  =========  =====================================================
``status``                    retained   the host: ``state`` online/offline (the last-will), backend,
                                         VMs attached, MQTT connection figures
``vm/<name>/status``          retained   one VM: connected, state, calls, errors, memory, quota
``events``                    —          ``vm_attached``, ``vm_detached``, ``vm_reset``, ``error_burst``
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

from ._config import parse_size

__all__ = [
    "CONTROL_COMMANDS", "ControlRefusedError", "ErrorBurstDetector", "OutgoingQueue", "Outgoing", "Topics",
    "encode", "parse_control",
]

#: what the control topic accepts, and the fields each command needs
CONTROL_COMMANDS: Final = ("status", "trace", "set_quota", "reset", "detach")
MAX_CONTROL_BYTES: Final = 4096


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


class ControlRefusedError(Exception):
    """A control request that will not be carried out; ``reason`` goes back to the requester."""

    def __init__(self, reason: str, request_id: Any = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.request_id = request_id


def parse_control(payload: bytes) -> tuple[dict[str, Any], Any]:
    """A checked control request (in the control socket's own form) and its correlation id."""
    if len(payload) > MAX_CONTROL_BYTES:
        raise ControlRefusedError(f"request is {len(payload)} bytes, the limit is {MAX_CONTROL_BYTES}")
    try:
        request = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ControlRefusedError(f"not JSON: {exc}") from None
    if not isinstance(request, dict):
        raise ControlRefusedError("a request is a JSON object")
    request_id = request.get("id")
    cmd = request.get("cmd")
    if cmd not in CONTROL_COMMANDS:
        raise ControlRefusedError(f"unknown cmd {cmd!r}; one of {', '.join(CONTROL_COMMANDS)}", request_id)
    checked: dict[str, Any] = {"cmd": cmd}
    if cmd != "status":
        vm = request.get("vm")
        if not isinstance(vm, (str, int)) or isinstance(vm, bool):
            raise ControlRefusedError(f"{cmd} needs 'vm' (a VM's name or id)", request_id)
        checked["vm"] = vm
    if cmd == "trace":
        if not isinstance(request.get("enable"), bool):
            raise ControlRefusedError("trace needs 'enable': true or false", request_id)
        checked["enable"] = request["enable"]
        checked["limit"] = 0  # the control socket would return records; MQTT only switches
    elif cmd == "set_quota":
        if "bytes" not in request:
            raise ControlRefusedError("set_quota needs 'bytes' (an integer, a size such as '4GiB', or null)",
                                 request_id)
        quota = request["bytes"]
        if quota is not None:
            try:
                quota = parse_size(quota)
            except ValueError as exc:
                raise ControlRefusedError(f"bytes: {exc}", request_id) from None
            if not isinstance(quota, int) or isinstance(quota, bool) or quota < 0:
                raise ControlRefusedError("bytes must be a non-negative integer, a size, or null", request_id)
        checked["bytes"] = quota
    return checked, request_id


@dataclass(frozen=True, slots=True)
class Outgoing:
    topic: str
    payload: bytes
    retain: bool = False
    qos: int = 1
    correlation: bytes | None = None


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
