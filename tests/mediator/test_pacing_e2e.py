"""Pacing through the real daemon: each worker publishes its call rate on the board in the socket
directory while it serves; a lone VM is never capped; one far ahead of busy peers that outnumber the
CPUs is capped, and held to its cap; a worker's row is cleared when it ends."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from guest import GuestClient
from mediator._board import BOARD_NAME, STALE_NS, Board
from mediator._control_client import request
from mediator._launcher import MediatorProcess
from mediator._pacing import MIN_CAP, QUANTUM_NS

pytestmark = pytest.mark.timeout(120)


def _rows(mediator: MediatorProcess) -> dict[int, tuple[int, float, int]]:
    """pid -> (published_ns, rate, cap) of every held row (0: no cap)."""
    rows = np.fromfile(mediator.sockets / BOARD_NAME, dtype=np.uint64).reshape(-1, 4)
    return {int(r[0]): (int(r[1]), int(r[2]) / 1e3, int(r[3]) // 1000) for r in rows if r[0]}


def _worker_pid(mediator: MediatorProcess, vm_id: int) -> int:
    vm = next(v for v in request(mediator.control, {"cmd": "status"})["vms"] if v["id"] == vm_id)
    return int(vm["worker_pid"])


def test_a_lone_busy_vm_publishes_its_rate_and_is_not_capped(mediator: MediatorProcess) -> None:
    with GuestClient.connect(mediator.vm_socket(1)) as gpu:
        gpu.init()
        pid = _worker_pid(mediator, 1)
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
        assert len(levels) >= 5, "the busy worker did not publish its rate"
        assert levels == [0] * len(levels)  # alone on the host: never capped
    # the session ended and its worker with it: the row is free again
    end = time.monotonic() + 30
    while pid in _rows(mediator):
        assert time.monotonic() < end, "the ended worker's row was not cleared"
        time.sleep(0.05)


@pytest.fixture
def crowd(mediator: MediatorProcess) -> Iterator[int]:
    """Busy peers on the board, one more than this host's CPUs, each at 500 calls/s (rows this test
    process holds and keeps fresh, as live workers would): the host looks crowded, and a VM serving
    more than 1.25 times that is far ahead. Yields how many."""
    board = Board.claim(mediator.sockets / BOARD_NAME)
    assert board is not None
    peers = len(os.sched_getaffinity(0)) + 1
    slots = range(board.slot, board.slot + peers)
    stop = threading.Event()

    def keep_fresh() -> None:
        while not stop.is_set():
            for slot in slots:
                board.rows[slot] = (os.getpid(), time.monotonic_ns(), 500_000, 0)
            stop.wait(0.02)

    keep_fresh_thread = threading.Thread(target=keep_fresh, daemon=True)
    keep_fresh_thread.start()
    yield peers
    stop.set()
    keep_fresh_thread.join()
    board.rows[slots.start : slots.stop] = 0
    board.close()


def test_a_vm_far_ahead_of_a_crowd_is_capped_and_held_to_its_cap(
    mediator: MediatorProcess, crowd: int
) -> None:
    with GuestClient.connect(mediator.vm_socket(1)) as gpu:
        gpu.init()
        pid = _worker_pid(mediator, 1)
        deadline = time.monotonic() + 30
        while _rows(mediator).get(pid, (0, 0.0, 0))[2] == 0:  # nops flat out until it is capped
            if time.monotonic() > deadline:
                rate = _rows(mediator).get(pid, (0, 0.0, 0))[1]
                if rate < 1.5 * MIN_CAP:  # nothing to hold back: the host is too loaded to serve more
                    pytest.skip(f"the worker served {rate:.0f} calls/s, never far ahead of the cap")
                raise AssertionError(f"the worker serves {rate:.0f} calls/s and was never capped")
            for _ in range(50):
                gpu.nop()
        # the typical peer serves 500 calls/s: capped at the floor, MIN_CAP
        assert _rows(mediator)[pid][2] == MIN_CAP
        rates = []
        for _ in range(5):  # the median of five windows: a stall of the host can free it for an epoch
            started, calls = time.monotonic(), 0
            while time.monotonic() - started < 0.3:
                gpu.nop()
                calls += 1
            rates.append(calls / (time.monotonic() - started))
        # held to its cap (a window may take one quantum's bank more), however fast the host could serve it
        assert sorted(rates)[2] <= 1.1 * (MIN_CAP + MIN_CAP * QUANTUM_NS / 1e9 / 0.3), rates
