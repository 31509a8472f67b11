"""The CLI's side of the control socket: one JSON request, one JSON reply."""

from __future__ import annotations

import json
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

from ._control import PROTOCOL_VERSION

__all__ = ["ControlError", "ControlUnreachableError", "request", "request_first"]


class ControlError(Exception):
    """The daemon cannot be reached, or answered with an error."""


class ControlUnreachableError(ControlError):
    """No connection to the control socket (absent, or its mode keeps us out)."""


def request(path: Path | str, payload: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    """One request and its reply; the daemon's greeting before it is checked and skipped."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall(json.dumps(payload).encode() + b"\n")  # the protocol lets us send at once
            lines = sock.makefile("rb")
            reply = _read(lines)
            if "greeting" in reply:
                protocol = reply["greeting"].get("protocol")
                if protocol != PROTOCOL_VERSION:
                    raise ControlError(f"the mediator speaks control protocol {protocol}; this client "
                                       f"{PROTOCOL_VERSION}")
                reply = _read(lines)
    except OSError as exc:
        raise ControlUnreachableError(f"cannot reach the mediator at {path}: {exc.strerror or exc}") from None
    if not reply.get("ok"):
        raise ControlError(str(reply.get("error", "request refused")))
    return reply


def _read(lines: BinaryIO) -> dict[str, Any]:
    line = lines.readline()
    if not line:
        raise ControlError("the mediator closed the control connection without answering")
    message: dict[str, Any] = json.loads(line)
    return message


def request_first(paths: Sequence[Path | str], payload: dict[str, Any],
                  timeout: float = 10.0) -> dict[str, Any]:
    """``request`` on the first of ``paths`` that lets us in (an operator's socket, then the read-only
    one a reader may use); the first path's error if none does."""
    first: ControlUnreachableError | None = None
    for path in paths:
        try:
            return request(path, payload, timeout)
        except ControlUnreachableError as exc:
            first = first or exc
    assert first is not None, "no control socket to ask"
    raise first
