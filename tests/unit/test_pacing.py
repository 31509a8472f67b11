"""Capping a worker ahead of its peers on a crowded host: the policy (sans-I/O) and the shared board."""

from __future__ import annotations

import random
import statistics
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mediator._board import SLOTS, STALE_NS, Board
from mediator._pacing import (
    ACTIVE_RATE,
    AHEAD,
    EPOCH_NS,
    MAX_SLEEP_NS,
    MIN_CAP,
    QUANTUM_NS,
    SMOOTHING,
    Allowance,
    next_cap,
    smooth,
)

# -- the policy ------------------------------------------------------------------------------------

# (own rate, peers' rates, cpus, capped now) -> cap (calls per second) or None
CASES = [
    # a lone VM, or no more busy VMs than cores: never capped, and a capped one is freed at once
    (9000.0, [], 2, False, None),
    (9000.0, [], 2, True, None),
    (9000.0, [1000.0], 2, True, None),
    (9000.0, [1000.0, 1000.0, 1000.0], 4, True, None),
    # idle peers do not count as competing
    (9000.0, [0.0, 10.0, ACTIVE_RATE / 2], 2, False, None),
    # crowded (4 busy VMs on 2 cores): ahead of the typical rate is capped at AHEAD times it
    (9000.0, [1000.0, 2000.0, 2400.0], 2, False, AHEAD * 2000.0),
    (9000.0, [1000.0, 2000.0, 2400.0], 3, False, AHEAD * 2000.0),
    # the typical rate leaves out peers far ahead (3000 > AHEAD * 2000): the median of the rest
    (9000.0, [1000.0, 2000.0, 3000.0], 2, False, AHEAD * 1500.0),
    # a median, not a mean: one flooding peer does not make everyone else look behind
    (3000.0, [1000.0, 1000.0, 200_000.0], 2, False, AHEAD * 1000.0),
    (1000.0, [1000.0, 1000.0, 200_000.0], 2, False, None),
    # the lucky one of three well-behaved VMs beside a flood is held to the others' pace, not to the
    # faster of them alone (a plain median of its peers would be 8000: a cap of 10,000)
    (17000.0, [4000.0, 8000.0, 20000.0], 2, False, AHEAD * 6000.0),
    # ... and one slow VM does not drag the others down: it takes half the peers
    (9000.0, [100.0, 9000.0, 9500.0], 2, False, None),
    # between the median and AHEAD times it: a capped one stays capped, a free one stays free
    (1100.0, [1000.0, 1000.0, 1000.0], 2, True, AHEAD * 1000.0),
    (1100.0, [1000.0, 1000.0, 1000.0], 2, False, None),
    # at or below the median: freed
    (1000.0, [1000.0, 1000.0, 1000.0], 2, True, None),
    # never below MIN_CAP, however slow the peers (a tenant's slow VMs cannot hold the others to it)
    (5000.0, [60.0, 80.0, 100.0], 2, False, MIN_CAP),
    (MIN_CAP, [60.0, 80.0, 100.0], 2, False, None),
    (MIN_CAP + 100, [600.0, 600.0, 600.0], 2, True, MIN_CAP),
    (MIN_CAP, [600.0, 600.0, 600.0], 2, True, MIN_CAP),  # running at its cap: stays capped
    (700.0, [600.0, 600.0, 600.0], 2, True, MIN_CAP),  # a dip below the cap does not free it ...
    (600.0, [600.0, 600.0, 600.0], 2, True, None),  # ... down at the typical rate does
    # a worker that serves next to nothing is never capped
    (ACTIVE_RATE / 2, [1.0, 1.0, 1.0], 2, False, None),
]


@pytest.mark.parametrize(("own", "peers", "cpus", "capped", "expected"), CASES)
def test_next_cap(own: float, peers: list[float], cpus: int, capped: bool, expected: float | None) -> None:
    assert next_cap(own, peers, cpus, capped) == expected


def test_ahead_threshold() -> None:
    peers = [2000.0, 2000.0, 2000.0]
    assert next_cap(2000.0 * AHEAD * 1.01, peers, 2, False) == AHEAD * 2000.0
    assert next_cap(2000.0 * AHEAD * 0.99, peers, 2, False) is None


def test_a_cap_is_above_the_slowest_busy_peer() -> None:
    """Slowed to its peers' pace, never starved: whatever the rates, a cap is above the slowest busy
    peer's rate (by AHEAD at least)."""
    for own in (100.0, 5000.0, 1e6):
        for peers in ([60.0, 80.0, 1e5], [1e4, 1e4, 1e4, 1e4], [70.0, 1e6, 1e6], [60.0, 1e3, 2e3, 4e3, 8e3]):
            cap = next_cap(own, peers, 2, False)
            if cap is not None:
                assert cap >= AHEAD * min(peers)


@pytest.mark.parametrize("seed", range(5))
def test_equal_workers_with_noisy_epochs_are_never_capped(seed: int) -> None:
    """Four VMs serving the same rate on two cores, each epoch's count off by up to 25% either way
    (a loaded host's jitter): the smoothed rates stay within AHEAD of each other, so nobody is capped
    (a cap there would only cost calls)."""
    rng = random.Random(seed)
    rates = [8000.0] * 4
    caps: list[float | None] = [None] * 4
    for epoch in range(500):
        rates = [smooth(r, round(8000 * EPOCH_NS / 1e9 * rng.uniform(0.75, 1.25)), EPOCH_NS) for r in rates]
        if epoch < 20:
            continue  # the rates settle from the same start
        caps = [next_cap(own, rates[:i] + rates[i + 1 :], 2, cap is not None)
                for i, (own, cap) in enumerate(zip(rates, caps, strict=True))]
        assert caps == [None] * 4, (epoch, rates)


def test_a_flood_among_noisy_workers_is_capped_at_once() -> None:
    """The same noise beside a flood at twenty times their rate: the flood is capped from its first
    epoch, at AHEAD times the others' typical rate, and none of the others is."""
    rng = random.Random(7)
    served = [8000.0] * 3 + [160_000.0]  # calls per second, each epoch's count about that
    rates = list(served)
    for _ in range(500):
        rates = [smooth(r, round(s * EPOCH_NS / 1e9 * rng.uniform(0.75, 1.25)), EPOCH_NS)
                 for r, s in zip(rates, served, strict=True)]
        caps = [next_cap(own, rates[:i] + rates[i + 1 :], 2, False) for i, own in enumerate(rates)]
        assert caps[:3] == [None] * 3
        assert caps[3] == pytest.approx(AHEAD * statistics.median(rates[:3]))


def test_smooth() -> None:
    rate = 0.0
    for _ in range(60):
        rate = smooth(rate, 100, 20_000_000)  # 100 calls an epoch of 20 ms, epoch after epoch
    assert rate == pytest.approx(5000.0, rel=1e-3)
    assert smooth(5000.0, 0, 0) == 5000.0  # no time passed: nothing learned
    assert smooth(5000.0, 0, EPOCH_NS) == pytest.approx(5000.0 * (1 - SMOOTHING))  # an idle epoch
    assert smooth(5000.0, 0, 10 * EPOCH_NS) == 0.0  # a worker that slept long starts over


def test_allowance_bank() -> None:
    cap = 10_000.0  # a call every 100 us: a quantum of 5 ms banks 50
    bank = Allowance(cap, now_ns=0)
    assert bank.depth == cap * QUANTUM_NS / 1e9 == 50
    assert bank.spend(50, 0) == 0  # a full bank is served at once, without a sleep
    # overdrawn by one: sleep until the bank is full again (51 calls at 100 us), not for one call
    assert bank.spend(1, 0) == 5_100_000 + 1
    assert bank.spend(0, 2_000_000) == 3_100_000 + 1  # woken early: still owing, sleeps on
    assert bank.spend(0, 5_100_001) == 0  # full: serve again
    assert bank.spend(0, 10**12) == 0 and bank.tokens == 50  # idle time banks one quantum at most
    # overdrawn by a whole drain of calls: one sleep, at most MAX_SLEEP_NS
    assert bank.spend(90, 10**12) == 9_000_000 + 1
    assert bank.spend(150, 10**12 + 1) == MAX_SLEEP_NS  # a longer debt: in sleeps of MAX_SLEEP_NS
    # a lower cap: what is banked is kept up to the new depth
    bank = Allowance(cap, now_ns=0)
    bank.recap(2000.0, 0)
    assert bank.depth == 10 and bank.tokens == 10
    assert Allowance(MIN_CAP / 100, 0).depth == 1  # at least one call


def _serve_flat_out(cap: float, call_ns: int, seconds: float) -> tuple[int, int]:
    """A capped worker whose guest always has the next call ready (each served in ``call_ns``),
    sleeping when its allowance says: (calls served, sleeps) over ``seconds``."""
    bank = Allowance(cap, now_ns=0)
    now = calls = sleeps = 0
    while now < seconds * 1e9:
        now += call_ns
        calls += 1
        due = bank.spend(1, now)
        while due:
            sleeps += 1
            now += due
            due = bank.spend(0, now)
    return calls, sleeps


@pytest.mark.parametrize(("cap", "call_ns"), [(MIN_CAP, 5_000), (10_000.0, 5_000), (50_000.0, 2_000)])
def test_a_capped_worker_serves_its_cap_in_bursts(cap: float, call_ns: int) -> None:
    """Held to its cap over a second (a quantum's worth of slack), and one sleep per quantum, not one
    per call: a worker that slept after every call would spend the CPU it frees on waking up."""
    calls, sleeps = _serve_flat_out(cap, call_ns, 1.0)
    depth = max(1.0, cap * QUANTUM_NS / 1e9)
    assert cap - depth <= calls <= cap + 2 * depth
    assert sleeps <= 1.1 * calls / depth


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
    mine.publish(now, 5000.5, 2000.0)
    other.publish(now, 250.0, None)
    assert mine.peers(now) == [250.0]
    assert other.peers(now + STALE_NS) == [5000.5]
    assert int(mine.rows[mine.slot, 3]) == 2_000_000  # the cap, in milli-calls per second
    assert other.peers(now + STALE_NS + 1) == []  # not published lately: idle or gone
    other.close()
    mine.publish(now + 1, 5000.5, 2000.0)
    again = Board.claim(path, pid=other_pid)
    assert again is not None and again.slot == other.slot  # the row it cleared is free again
    mine.close()
    mine.close()  # idempotent


def test_board_reclaims_dead_workers_rows(tmp_path: Path) -> None:
    path = tmp_path / "board"
    dead = Board.claim(path, pid=_dead_pid())
    assert dead is not None
    dead.publish(STALE_NS, 9000.0, None)
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
