"""The control requests' typed model (one for the control sockets and MQTT), the roles, and the
rate-limited log line used for refusals."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from mediator._control import (
    ControlRefusedError,
    InjectFaultRequest,
    Role,
    SetQuotaRequest,
    TraceRequest,
    greeting,
    parse_request,
)
from mediator._ratelimit import RateLimitedLog


@pytest.mark.parametrize(("payload", "wire", "role"), [
    (b'{"cmd": "status"}', {"cmd": "status"}, Role.READER),
    (b'{"cmd": "trace", "vm": "vm1", "after": 10, "limit": 5}', {"cmd": "trace", "vm": "vm1", "after": 10, "limit": 5},
     Role.READER),
    (b'{"cmd": "trace", "vm": 1, "enable": false}', {"cmd": "trace", "vm": 1, "enable": False}, Role.OPERATOR),
    (b'{"cmd": "set_quota", "vm": "vm1", "bytes": "4GiB"}', {"cmd": "set_quota", "vm": "vm1", "bytes": 4 << 30},
     Role.OPERATOR),
    (b'{"cmd": "set_quota", "vm": "vm1", "bytes": 4096}', {"cmd": "set_quota", "vm": "vm1", "bytes": 4096},
     Role.OPERATOR),
    (b'{"cmd": "reset", "vm": "vm1", "id": "r1"}', {"cmd": "reset", "vm": "vm1"}, Role.OPERATOR),
    (b'{"cmd": "detach", "vm": 2}', {"cmd": "detach", "vm": 2}, Role.OPERATOR),
    (b'{"cmd": "inject_fault", "vm": 1}', {"cmd": "inject_fault", "vm": 1}, Role.OPERATOR),
])
def test_valid_requests_and_the_role_each_needs(payload: bytes, wire: dict[str, Any], role: Role) -> None:
    request = parse_request(payload)
    assert request.wire() == wire
    assert request.required_role is role


def test_defaults_are_what_the_daemon_carries_out() -> None:
    fault = parse_request(b'{"cmd": "inject_fault", "vm": "vm1"}')
    assert isinstance(fault, InjectFaultRequest) and (fault.status, fault.sticky) == (700, True)
    trace = parse_request(b'{"cmd": "trace", "vm": "vm1"}')
    assert isinstance(trace, TraceRequest) and (trace.after, trace.limit, trace.enable) == (0, None, None)
    lifted = parse_request(b'{"cmd": "set_quota", "vm": "vm1", "bytes": null}')
    assert isinstance(lifted, SetQuotaRequest) and lifted.bytes is None


@pytest.mark.parametrize(("payload", "reason"), [
    (b"[]", "a request is a JSON object, not list"),
    (b"1e400", "a request is a JSON object, not float"),
    (b"\xc3\x28", "not JSON"),
    (b"[" * 2000, "not JSON"),
    (b"{" + b" " * 5000 + b"}", "request is 5002 bytes, the limit is 4096"),
    (b'{"cmd": 5}', "unknown cmd 5"),
    (b'{"cmd": "set_quota", "vm": "vm1", "bytes": true}', "bytes must be a non-negative integer"),
    (b'{"cmd": "set_quota", "vm": "vm1", "bytes": false}', "bytes must be a non-negative integer"),
    (b'{"cmd": "set_quota", "vm": "vm1", "bytes": -1}', "bytes must be a non-negative integer"),
    (b'{"cmd": "set_quota", "vm": "vm1", "bytes": 1e3}', "bytes must be a non-negative integer"),
    (b'{"cmd": "set_quota", "vm": "vm1", "bytes": "8 gigs"}', "bytes: '8 gigs' is not a size"),
    (b'{"cmd": "inject_fault", "vm": "vm1", "status": 0}', "inject_fault needs 'status'"),
    (b'{"cmd": "inject_fault", "vm": "vm1", "status": true}', "inject_fault needs 'status'"),
    (b'{"cmd": "inject_fault", "vm": "vm1", "sticky": 1}', "inject_fault needs 'sticky'"),
    (b'{"cmd": "trace", "vm": "vm1", "limit": "5"}', "trace needs 'limit'"),
    (b'{"cmd": "reset", "vm": null}', "reset needs 'vm'"),
    (b'{"cmd": "reset", "vm": "vm1", "force": true}', "reset has no field 'force'"),
])
def test_malformed_requests_are_refused_with_a_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(ControlRefusedError) as refused:
        parse_request(payload)
    assert reason in refused.value.reason


def test_a_refusal_carries_the_request_id() -> None:
    with pytest.raises(ControlRefusedError) as refused:
        parse_request(b'{"id": 9, "cmd": "set_quota", "vm": "vm1", "bytes": true}')
    assert refused.value.request_id == 9


def test_the_greeting_lists_what_the_connection_may_send() -> None:
    reader = greeting(Role.READER, fault_injection=True)["greeting"]
    assert (reader["protocol"], reader["role"], reader["commands"]) == (1, "reader", ["status", "trace"])
    operator = greeting(Role.OPERATOR, fault_injection=False)["greeting"]
    assert operator["commands"] == ["status", "trace", "set_quota", "reset", "detach"]
    assert "inject_fault" in greeting(Role.OPERATOR, fault_injection=True)["greeting"]["commands"]


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_repeated_event_is_logged_once_an_interval_with_the_count_left_out() -> None:
    lines: list[tuple[str, dict[str, Any]]] = []
    clock = _Clock()
    limited = RateLimitedLog(lambda event, **fields: lines.append((event, fields)), interval_s=1.0, clock=clock)
    assert limited("refused", n=1) is True
    for n in range(2, 1001):  # a thousand within the same second
        clock.now += 0.0005
        assert limited("refused", n=n) is False
    assert lines == [("refused", {"n": 1})] and limited.suppressed == 999
    clock.now = 101.0
    assert limited("refused", n=1001) is True
    assert lines[-1] == ("refused", {"n": 1001, "suppressed_since_last": 999})
    assert limited.suppressed == 0


def test_in_an_event_loop_a_burst_that_stops_is_summed_up() -> None:
    lines: list[tuple[str, dict[str, Any]]] = []
    summed = asyncio.Event()

    def emit(event: str, **fields: Any) -> None:
        lines.append((event, fields))
        if fields.get("summary"):
            summed.set()

    async def burst() -> None:
        limited = RateLimitedLog(emit, interval_s=0.05)
        for n in range(500):
            limited("refused", n=n)
        await asyncio.wait_for(summed.wait(), timeout=10)

    asyncio.run(burst())
    assert lines == [("refused", {"n": 0}), ("refused", {"n": 499, "summary": True, "suppressed_since_last": 499})]
