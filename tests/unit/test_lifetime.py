"""A VM's lifetime counters: exact across sessions, never going back across worker restarts."""

from __future__ import annotations

from mediator._lifetime import LifetimeCounters
from mediator._stats import LATENCY_BUCKETS, WorkerCounters


def worker(pid: int, htod: int, calls_in_bucket_3: int = 0) -> WorkerCounters:
    latency = [0] * LATENCY_BUCKETS
    latency[3] = calls_in_bucket_3
    return WorkerCounters(pid=pid, bytes_htod=htod, latency_sum_ns=10 * calls_in_bucket_3, latency=latency)


def test_sessions_add_up_exactly() -> None:
    life = LifetimeCounters()
    assert life.observe(1, worker(100, 5, 2)).bytes_htod == 5
    life.session_ended(1, worker(100, 7, 3))  # the final count, past the last look
    assert life.total().bytes_htod == 7
    assert life.observe(2, worker(200, 1, 1)).bytes_htod == 8
    life.session_ended(2, worker(200, 4, 1))
    total = life.total()
    assert (total.bytes_htod, total.latency[3], total.latency_sum_ns) == (11, 4, 40)


def test_a_replaced_worker_counts_as_last_seen_and_nothing_goes_back() -> None:
    life = LifetimeCounters()
    seen = [life.observe(1, worker(100, 50)).bytes_htod]
    seen.append(life.observe(1, worker(101, 2)).bytes_htod)  # restarted: the new worker counts from 0
    seen.append(life.observe(1, worker(101, 9)).bytes_htod)
    life.session_ended(1, worker(101, 10))
    seen.append(life.total().bytes_htod)
    assert seen == [50, 52, 59, 60]
    assert seen == sorted(seen)


def test_a_session_ended_after_an_unseen_restart_keeps_the_earlier_worker() -> None:
    life = LifetimeCounters()
    life.observe(1, worker(100, 30))
    life.session_ended(1, worker(101, 4))  # worker 100 was replaced by 101, never looked at
    assert life.total().bytes_htod == 34
