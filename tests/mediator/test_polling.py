"""The worker's polling window adapts to the VM's gaps (mediator/_polling.py): it grows while the next
call comes soon after the worker fell asleep, shrinks once calls come further apart than it may grow,
and polling longer spares the calls of a VM with such gaps the wake-up a sleeping worker costs."""

from __future__ import annotations

import select
import time
from pathlib import Path

import pytest

from guest import GuestClient
from mediator._config import load_config
from mediator._control_client import request
from mediator._launcher import MediatorProcess, running_mediator, write_config
from mediator._polling import PollWindow
from protocol import ChannelField

US = 1000


@pytest.mark.parametrize(("start_us", "gap_us", "steps_us"), [
    (50, 450, [100, 200, 400, 500, 500]),
    (500, 2_000, [250, 125, 62, 50, 50]),
], ids=["a call within the maximum doubles it, up to there", "a call later than the maximum halves it, down to the base"])
def test_each_wake_up_to_work_steps_the_window(start_us: int, gap_us: int, steps_us: list[int]) -> None:
    window = PollWindow(50 * US, 500 * US)
    window.ns = start_us * US
    steps = []
    for _ in range(5):
        window.woke(gap_us * US, found_work=True)
        steps.append(window.ns // US)
    assert steps == steps_us


def test_a_wake_up_for_nothing_shrinks_it_only_once_the_vm_is_quieter_than_the_maximum() -> None:
    window = PollWindow(50 * US, 500 * US)
    window.ns = 400 * US
    window.woke(300 * US, found_work=False)  # a control message while the VM pauses briefly
    assert window.ns == 400 * US
    window.woke(100_000 * US, found_work=False)  # the sleep's timeout: the VM is quiet
    assert window.ns == 200 * US


def test_a_sleep_within_the_window_changes_nothing() -> None:
    """The spin gave up early because the CPU was contended: a longer window would not have helped."""
    window = PollWindow(50 * US, 500 * US)
    window.ns = 200 * US
    window.woke(120 * US, found_work=True)
    assert window.ns == 200 * US


def test_a_maximum_at_or_below_the_base_keeps_the_window_fixed() -> None:
    window = PollWindow(50 * US, 20 * US)
    for gap in (30, 60, 5_000):
        window.woke(gap * US, found_work=True)
        assert window.ns == 50 * US


def test_a_worker_told_not_to_poll_never_starts() -> None:
    window = PollWindow(0, 500 * US)
    for _ in range(20):
        window.woke(100 * US, found_work=True)
    assert window.ns == 0


def test_poll_max_us_is_configured_and_defaults_to_200_us(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    write_config(config, tmp_path / "sockets", backend="sim", vm_ids=[1])
    assert load_config(config).mediator.poll_max_us == 200
    write_config(config, tmp_path / "sockets", backend="sim", vm_ids=[1], extra="poll_max_us = 1000")
    assert load_config(config).mediator.poll_max_us == 1000


_NEED_WAKEUP = ChannelField.HOST_NEED_WAKEUP >> 2


def _sleeps_over(mediator: MediatorProcess, gpu: GuestClient, calls: int, gap_s: float) -> int:
    """The worker's sleeps while the guest makes ``calls`` calls ``gap_s`` apart, counted from one sleep
    of the worker to the next (it publishes its counters as it goes to sleep)."""
    words = gpu.region.u32_view

    def asleep_then_sleeps() -> int:
        deadline = time.monotonic() + 30
        while words[_NEED_WAKEUP] == 0:
            assert time.monotonic() < deadline, "the worker did not go to sleep"
            select.select([], [], [], 0.001)
        return int(request(mediator.control, {"cmd": "status"})["vms"][0]["sleeps"])

    before = asleep_then_sleeps()
    for _ in range(calls):
        gpu.nop()
        select.select([], [], [], gap_s)  # the application's own work between its calls
    return asleep_then_sleeps() - before


@pytest.mark.slow
@pytest.mark.parametrize(("poll_max_us", "most_sleep"), [(50, True), (2_000, False)],
                         ids=["fixed window", "adaptive window"])
def test_a_vm_calling_every_300_us_stops_costing_a_sleep_a_call_once_the_window_has_grown_past_that(
        tmp_path: Path, poll_max_us: int, most_sleep: bool) -> None:
    """(The spin still gives up when it sees the CPU contended, a hypervisor's preemption of this vCPU
    included, and the worker sleeps then: 5–8 of the 40 here, quiet or beside a busy loop.)"""
    with running_mediator(tmp_path, backend="sim", vms=1, extra=f"poll_max_us = {poll_max_us}") as mediator, \
            GuestClient.connect(mediator.vm_socket(1)) as gpu:
        gpu.init()
        _sleeps_over(mediator, gpu, 10, 0.0003)  # 50 us doubled four times is past 300 us and the call
        sleeps = _sleeps_over(mediator, gpu, 40, 0.0003)
    if most_sleep:
        assert sleeps >= 32, f"{sleeps} sleeps for 40 calls 300 us apart with a 50 us window"
    else:
        assert sleeps <= 20, f"{sleeps} sleeps for 40 calls 300 us apart with a window that may grow to 2 ms"
