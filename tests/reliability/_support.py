"""Helpers for the reliability tests: read a VM's row of the daemon's status, wait for a condition.

The daemon's per-VM figures come from the worker's stats block, which the worker publishes when it
goes idle (and every 64 batches while busy): a test that reads them right after a call waits for them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from mediator._control_client import request
from mediator._launcher import MediatorProcess

__all__ = ["vm_status", "wait_for"]


def vm_status(mediator: MediatorProcess, vm: int) -> dict[str, Any]:
    status: dict[str, Any] = request(mediator.control, {"cmd": "status"})["vms"][vm - 1]
    return status


def wait_for(what: str, check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)
