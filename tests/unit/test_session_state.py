"""The VM session state machine allows exactly the lifecycle its docstring describes."""

from __future__ import annotations

import pytest

from mediator import SessionState, SessionStateMachine
from mediator._session import SessionStateError

S = SessionState


def test_a_normal_session_listens_serves_drains_and_closes() -> None:
    fsm = SessionStateMachine()
    for state in (S.HANDSHAKING, S.SERVING, S.DRAINING, S.CLOSED, S.LISTENING):
        fsm.transition(state)
    assert fsm.state is S.LISTENING


def test_a_broken_session_can_only_close() -> None:
    fsm = SessionStateMachine()
    fsm.transition(S.HANDSHAKING)
    fsm.transition(S.BROKEN, "worker exited with -9")
    assert fsm.reason == "worker exited with -9"
    with pytest.raises(SessionStateError):
        fsm.transition(S.SERVING)
    fsm.transition(S.CLOSED)


@pytest.mark.parametrize(("start", "bad"), [(S.LISTENING, S.SERVING), (S.SERVING, S.HANDSHAKING),
                                            (S.CLOSED, S.SERVING), (S.DRAINING, S.SERVING)])
def test_transitions_outside_the_table_are_refused(start: SessionState, bad: SessionState) -> None:
    fsm = SessionStateMachine()
    fsm.state = start
    with pytest.raises(SessionStateError):
        fsm.transition(bad)
