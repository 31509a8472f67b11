"""The CLI's side of the control socket: one JSON request, one JSON reply."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

__all__ = ["ControlError", "request"]


class ControlError(Exception):
    """The daemon cannot be reached, or answered with an error."""


def request(path: Path | str, payload: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall(json.dumps(payload).encode() + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                buf += chunk
    except OSError as exc:
        raise ControlError(f"cannot reach the mediator at {path}: {exc.strerror or exc}") from None
    if not buf:
        raise ControlError("the mediator closed the control connection without answering")
    reply: dict[str, Any] = json.loads(buf)
    if not reply.get("ok"):
        raise ControlError(str(reply.get("error", "request refused")))
    return reply
