"""Helpers for the reliability tests: read a VM's row of the daemon's status, wait for a condition,
and drive a guest's rings by hand (queue calls without reading their answers, then read them).

The daemon's per-VM figures come from the worker's stats block, which the worker publishes when it
goes idle (and at least every 50 ms while busy): a test that reads them right after a call waits for
them.
Likewise the control requests that change a worker (``set_quota``, ``inject_fault``) are answered once
sent, and the worker applies them when it next looks at its control socket: a test that needs one in
force waits for the worker's acknowledgement in the daemon's log (:func:`logged`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

from guest import GuestClient
from mediator._control_client import request
from mediator._launcher import MediatorProcess
from protocol import CALLS_BY_NAME, Completion

__all__ = ["applied", "cpu_seconds", "holds", "logged", "queue_nops", "take", "vm_status", "wait_for"]

_NOP = CALLS_BY_NAME["nop"].call_id


def vm_status(mediator: MediatorProcess, vm: int) -> dict[str, Any]:
    status: dict[str, Any] = request(mediator.control, {"cmd": "status"})["vms"][vm - 1]
    return status


def logged(mediator: MediatorProcess, **fields: Any) -> int:
    """How many of the daemon's (and its workers') log events carry all of ``fields``."""
    count = 0
    for line in mediator.log.splitlines():
        if not line.startswith("{"):
            continue
        event = json.loads(line)
        count += all(event.get(key) == value for key, value in fields.items())
    return count


def applied(mediator: MediatorProcess, payload: dict[str, Any], **ack: Any) -> None:
    """Send a control request and wait until the worker has logged ``ack`` once more than before."""
    before = logged(mediator, **ack)
    assert request(mediator.control, payload)["ok"]
    wait_for(f"the worker applied {payload}", lambda: logged(mediator, **ack) > before)


def wait_for(what: str, check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def holds(what: str, check: Callable[[], bool], duration: float) -> None:
    """Poll ``check`` for ``duration`` seconds: it must stay true throughout (that nothing happens)."""
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        assert check(), what
        time.sleep(0.02)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used (``/proc/<pid>/stat``)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def queue_nops(gpu: GuestClient, count: int) -> list[int]:
    """Publish ``count`` synchronous nops without reading a single completion; returns their seqs."""
    seqs = []
    for _ in range(count):
        gpu.seq += 1
        wait_for("room in the submission ring", lambda: gpu.sq.space() > 0)
        assert gpu.sq.push(seq=gpu.seq, call_id=_NOP)
        gpu._kick()
        seqs.append(gpu.seq)
    return seqs


def take(gpu: GuestClient, count: int, timeout: float = 30.0) -> list[Completion]:
    """Consume the next ``count`` completions in ring order, waiting (bounded spins) for each."""
    taken: list[Completion] = []
    deadline = time.monotonic() + timeout
    while len(taken) < count:
        if gpu.cq.pending() or gpu.cq.spin(50_000_000, 0):
            taken.append(gpu.cq.pop())
        assert time.monotonic() < deadline, f"{len(taken)} of {count} completions arrived"
    return taken
