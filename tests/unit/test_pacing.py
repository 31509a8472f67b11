"""Pacing a worker ahead of its peers on a crowded host: the policy (sans-I/O) and the shared board."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mediator._board import SLOTS, STALE_NS, Board
from mediator._pacing import (
    ACTIVE_SHARE,
    AHEAD,
    MAX_LEVEL,
    MAX_SLEEP_NS,
    MIN_SLEEP_NS,
    next_level,
    pace,
    sleep_due,
    smooth,
)

# -- the policy ------------------------------------------------------------------------------------

# (level, own share, peers' shares, cpus) -> next level
CASES = [
    # a lone VM, or no more busy VMs than cores: never paced, and a paced one is freed at once
    (0, 0.9, [], 2, 0),
    (4, 0.9, [], 2, 0),
    (3, 0.9, [0.1], 2, 0),
    (3, 0.9, [0.1, 0.1, 0.1], 4, 0),
    # idle peers do not count as competing
    (2, 0.9, [0.001, 0.0, ACTIVE_SHARE / 2], 2, 0),
    # crowded (4 busy on 2 cores): ahead of the median steps up, one level an epoch
    (0, 0.5, [0.1, 0.1, 0.1], 2, 1),
    (1, 0.5, [0.1, 0.1, 0.1], 2, 2),
    (MAX_LEVEL, 0.5, [0.1, 0.1, 0.1], 2, MAX_LEVEL),
    # the median, not the mean: one flooding peer does not make everyone else look behind
    (0, 0.3, [0.1, 0.1, 0.9], 2, 1),
    (0, 0.1, [0.1, 0.1, 0.9], 2, 0),
    # between the median and AHEAD times it: stays where it is
    (3, 0.11, [0.1, 0.1, 0.1], 2, 3),
    (0, 0.11, [0.1, 0.1, 0.1], 2, 0),
    # at or below the median: steps down
    (3, 0.1, [0.1, 0.1, 0.1], 2, 2),
    (1, 0.05, [0.1, 0.1, 0.1], 2, 0),
    # a worker that uses next to nothing is never paced
    (2, ACTIVE_SHARE / 2, [0.5, 0.5, 0.5], 2, 0),
]


@pytest.mark.parametrize(("level", "own", "peers", "cpus", "expected"), CASES)
def test_next_level(level: int, own: float, peers: list[float], cpus: int, expected: int) -> None:
    assert next_level(level, own, peers, cpus) == expected


def test_ahead_threshold() -> None:
    peers = [0.2, 0.2, 0.2]
    assert next_level(0, 0.2 * AHEAD * 1.01, peers, 2) == 1
    assert next_level(0, 0.2 * AHEAD * 0.99, peers, 2) == 0


def test_levels_are_bounded() -> None:
    """Level 0 polls and owes nothing; every level above stops polling, and no level owes more than
    four times its serving time (a paced VM runs at least a fifth of the time: slowed, not starved)."""
    assert pace(0).polls and pace(0).debt_factor == 0
    factors = [pace(level).debt_factor for level in range(MAX_LEVEL + 1)]
    assert factors == sorted(factors)
    assert all(not pace(level).polls for level in range(1, MAX_LEVEL + 1))
    assert max(factors) <= 4.0
    assert pace(MAX_LEVEL + 5) == pace(MAX_LEVEL) and pace(-1) == pace(0)


def test_smooth() -> None:
    share = 0.0
    for _ in range(40):
        share = smooth(share, 10_000_000, 20_000_000)  # half a CPU, epoch after epoch
    assert share == pytest.approx(0.5, abs=1e-3)
    assert smooth(0.5, 0, 0) == 0.5  # no time passed: nothing learned
    assert smooth(0.0, 10**12, 1) <= 1.0  # several threads' CPU: capped at one CPU's worth


def test_sleep_due() -> None:
    assert sleep_due(MIN_SLEEP_NS - 1) == 0
    assert sleep_due(MIN_SLEEP_NS) == MIN_SLEEP_NS
    assert sleep_due(10 * MAX_SLEEP_NS) == MAX_SLEEP_NS


# -- the board -------------------------------------------------------------------------------------


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def other_pid() -> Iterator[int]:
    """A live process of ours that is not this one (as another worker is)."""
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    yield proc.pid
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait()


def test_board_rows(tmp_path: Path, other_pid: int) -> None:
    path = tmp_path / "board"
    mine = Board.claim(path)
    other = Board.claim(path, pid=other_pid)
    assert mine is not None and other is not None and mine.slot != other.slot
    assert path.stat().st_mode & 0o777 == 0o600
    now = 10 * STALE_NS
    mine.publish(now, 0.5, 2)
    other.publish(now, 0.25, 0)
    assert mine.peers(now) == [0.25]
    assert other.peers(now + STALE_NS) == [0.5]
    assert other.peers(now + STALE_NS + 1) == []  # not published lately: idle or gone
    other.close()
    mine.publish(now + 1, 0.5, 2)
    again = Board.claim(path, pid=other_pid)
    assert again is not None and again.slot == other.slot  # the row it cleared is free again
    mine.close()
    mine.close()  # idempotent


def test_board_reclaims_dead_workers_rows(tmp_path: Path) -> None:
    path = tmp_path / "board"
    dead = Board.claim(path, pid=_dead_pid())
    assert dead is not None
    dead.publish(STALE_NS, 0.9, 3)
    fresh = Board.claim(path)
    assert fresh is not None and fresh.slot == dead.slot


def test_board_full(tmp_path: Path, other_pid: int) -> None:
    path = tmp_path / "board"
    board = Board.claim(path, pid=other_pid)
    assert board is not None
    board.rows[:, 0] = other_pid  # every row held by a live process that is not us
    assert Board.claim(path) is None
    board.rows[SLOTS - 1, 0] = _dead_pid()
    last = Board.claim(path)
    assert last is not None and last.slot == SLOTS - 1


def test_board_not_ours_is_reset(tmp_path: Path) -> None:
    path = tmp_path / "board"
    path.write_bytes(b"\xff" * 100)  # a stray file of another size: started over, not trusted
    board = Board.claim(path)
    assert board is not None and board.peers(STALE_NS) == []
