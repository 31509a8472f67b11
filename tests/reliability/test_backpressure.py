"""A guest that does not read its completions gets back-pressure, never a reset; and nothing a guest
queues keeps its worker from the heartbeat the supervisor's watchdog reads.

Each daemon here declares a worker hung after ``WORKER_TIMEOUT_S`` without a heartbeat, so a worker
loop that spun on a full completion ring, or served a rate-limited queue without beating, would be
killed (a VM reset: restarts 1, a new epoch) well inside the test.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from guest import GuestClient
from mediator._launcher import MediatorProcess, running_mediator
from protocol import CALLS_BY_NAME, ChannelField

from ._support import applied, cpu_seconds, holds, queue_nops, take, vm_status, wait_for

pytestmark = pytest.mark.timeout(120)

WORKER_TIMEOUT_S = 2.0
MIB = 1 << 20
NOP = CALLS_BY_NAME["nop"].call_id


@pytest.fixture
def impatient(tmp_path: Path) -> Iterator[MediatorProcess]:
    """One sim VM whose worker is declared hung after WORKER_TIMEOUT_S without a heartbeat."""
    with running_mediator(tmp_path, backend="sim", vms=1, extra=f"worker_timeout_s = {WORKER_TIMEOUT_S}") as running:
        yield running


def test_a_full_completion_ring_is_back_pressure_not_a_reset(impatient: MediatorProcess) -> None:
    mediator = impatient
    with GuestClient.connect(mediator.vm_socket(1)) as gpu:
        gpu.init()
        before = vm_status(mediator, 1)
        entries = gpu.region.layout.cq_entries
        # a whole ring of answers nobody reads, and half a ring more calls waiting for room
        seqs = queue_nops(gpu, entries + entries // 2)
        wait_for("the completion ring full", lambda: gpu.cq.pending() == entries)
        wait_for("the worker waiting for room", lambda: vm_status(mediator, 1)["cq_full_waits"] >= 1)
        pid = before["worker_pid"]
        blocked_at, cpu_before = time.monotonic(), cpu_seconds(pid)
        # blocked for twice the watchdog's limit: the worker keeps its heartbeat and its control socket
        applied(mediator, {"cmd": "set_quota", "vm": "vm1", "bytes": 64 * MIB},
                event="worker event", worker_event="quota_set", vm="vm1", bytes=64 * MIB)

        def unchanged() -> bool:
            row = vm_status(mediator, 1)
            return (row["restarts"], row["worker_pid"], row["state"]) == (0, pid, "serving")

        holds("no reset while the guest holds its completion ring full", unchanged, 2 * WORKER_TIMEOUT_S)
        blocked_s = time.monotonic() - blocked_at
        cpu = cpu_seconds(pid) - cpu_before
        assert cpu < 0.25 * blocked_s, f"the blocked worker used {cpu:.2f} s of CPU in {blocked_s:.2f} s"
        assert gpu.region.u32(ChannelField.SQ_TAIL) - gpu.region.u32(ChannelField.SQ_HEAD) == entries // 2
        # the guest reads its completions: every call is answered, in order, nothing lost
        answered = take(gpu, entries)
        room_at = time.monotonic()
        rest = take(gpu, entries // 2)
        recovery_s = time.monotonic() - room_at
        assert [c.seq for c in answered + rest] == seqs
        assert all(c.status == 0 and c.call_id == NOP for c in answered + rest)
        gpu.nop()
        after = vm_status(mediator, 1)
        assert (after["restarts"], after["epoch"], after["worker_pid"]) == (0, before["epoch"], pid)
        assert after["cq_full_waits"] >= 1
        assert gpu.header.epoch == gpu.epoch
    assert "worker stopped answering" not in mediator.log
    # the worker looks for room at most max_sleep_ms (100 ms) apart; a loaded 2-core box adds to it
    assert recovery_s < 5.0, recovery_s


def test_a_rate_limited_queue_keeps_the_heartbeat(tmp_path: Path) -> None:
    """Four calls a second and a queue of three seconds' worth: served slowly, the worker still beats."""
    vm = 'worker_timeout_s = 1.0\n\n[[vm]]\nid = 1\nname = "vm1"\nmemory_quota = "1GiB"\ncalls_per_s = 4\n'
    with running_mediator(tmp_path, backend="sim", vms=0, extra=vm) as mediator:
        mediator.wait_for(mediator.vm_socket(1))
        with GuestClient.connect(mediator.vm_socket(1)) as gpu:
            gpu.nop()
            pid = vm_status(mediator, 1)["worker_pid"]
            seqs = queue_nops(gpu, 12)
            answered = take(gpu, len(seqs))
            assert [c.seq for c in answered] == seqs and all(c.status == 0 for c in answered)
            row = vm_status(mediator, 1)
            assert (row["restarts"], row["worker_pid"]) == (0, pid)
        assert "worker stopped answering" not in mediator.log
