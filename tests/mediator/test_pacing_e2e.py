"""Pacing through the real daemon: each worker publishes its CPU share on the board in the socket
directory while it serves; a lone VM is never paced; a worker's row is cleared when it ends."""

from __future__ import annotations

import time

import numpy as np
import pytest

from guest import GuestClient
from mediator._board import BOARD_NAME, STALE_NS
from mediator._control_client import request
from mediator._launcher import MediatorProcess

pytestmark = pytest.mark.timeout(120)


def _rows(mediator: MediatorProcess) -> dict[int, tuple[int, float, int]]:
    """pid -> (published_ns, share, level) of every held row."""
    rows = np.fromfile(mediator.sockets / BOARD_NAME, dtype=np.uint64).reshape(-1, 4)
    return {int(r[0]): (int(r[1]), int(r[2]) / 1e6, int(r[3])) for r in rows if r[0]}


def test_a_lone_busy_vm_publishes_its_share_and_is_not_paced(mediator: MediatorProcess) -> None:
    with GuestClient.connect(mediator.vm_socket(1)) as gpu:
        gpu.init()
        vm = next(v for v in request(mediator.control, {"cmd": "status"})["vms"] if v["id"] == 1)
        pid = vm["worker_pid"]
        deadline = time.monotonic() + 30
        levels = []
        while time.monotonic() < deadline:
            for _ in range(200):  # busy: the worker serves flat out and publishes once an epoch
                gpu.nop()
            row = _rows(mediator).get(pid)
            if row is not None and row[0] + STALE_NS >= time.monotonic_ns() and row[1] > 0:
                levels.append(row[2])
                if len(levels) >= 5:
                    break
        assert len(levels) >= 5, "the busy worker did not publish its share"
        assert levels == [0] * len(levels)  # alone on the host: never paced
    # the session ended and its worker with it: the row is free again
    end = time.monotonic() + 30
    while pid in _rows(mediator):
        assert time.monotonic() < end, "the ended worker's row was not cleared"
        time.sleep(0.05)
