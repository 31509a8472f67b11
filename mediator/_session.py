"""A VM session's lifecycle: the one place that knows which state may follow which.

Theory of operation: a VM's endpoint is LISTENING until a peer connects. The handshake
(HANDSHAKING) creates the region and eventfds, sends them, and spawns the worker; when the worker
reports ready the session is SERVING. The peer's socket closing, a detach, or the daemon stopping
moves it to DRAINING: the worker answers what is queued, marks the region STOPPED, releases every
GPU resource and exits, and the session is CLOSED (the endpoint then listens again). A worker that
dies or reports the region broken makes the session BROKEN; it is torn down like a closed one.
Other code asks ``Session.state`` and calls ``transition``; nothing else assigns a state.
"""

from __future__ import annotations

from enum import Enum

__all__ = ["SessionState", "SessionStateError", "SessionStateMachine"]


class SessionState(Enum):
    LISTENING = "listening"
    HANDSHAKING = "handshaking"
    SERVING = "serving"
    DRAINING = "draining"
    CLOSED = "closed"
    BROKEN = "broken"


class SessionStateError(Exception):
    """A transition the table does not allow (our bug, not the guest's)."""


_S = SessionState
_ALLOWED: dict[SessionState, frozenset[SessionState]] = {
    _S.LISTENING: frozenset({_S.HANDSHAKING, _S.CLOSED}),
    _S.HANDSHAKING: frozenset({_S.SERVING, _S.DRAINING, _S.BROKEN}),
    _S.SERVING: frozenset({_S.DRAINING, _S.BROKEN}),
    _S.DRAINING: frozenset({_S.CLOSED, _S.BROKEN}),
    _S.BROKEN: frozenset({_S.CLOSED}),
    _S.CLOSED: frozenset({_S.LISTENING}),
}


class SessionStateMachine:
    def __init__(self) -> None:
        self.state = SessionState.LISTENING
        self.reason = ""

    def transition(self, new: SessionState, reason: str = "") -> None:
        if new not in _ALLOWED[self.state]:
            raise SessionStateError(f"{self.state.value} -> {new.value} is not allowed")
        self.state = new
        if reason:
            self.reason = reason

    @property
    def connected(self) -> bool:
        return self.state in (_S.HANDSHAKING, _S.SERVING, _S.DRAINING)
