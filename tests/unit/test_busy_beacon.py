"""The worker's host_busy beacon bumps the channel being served, and only while it is served."""

from __future__ import annotations

import threading

from mediator._busy import BusyBeacon


class _Word:
    def __init__(self) -> None:
        self.bumps = 0
        self.bumped = threading.Event()

    def bump_busy(self) -> None:
        self.bumps += 1
        self.bumped.set()


def test_the_channel_being_served_is_bumped_and_an_idle_one_is_not() -> None:
    beacon = BusyBeacon(interval=0.01)
    served, other = _Word(), _Word()
    try:
        beacon.serving(served)
        assert served.bumped.wait(5)
        beacon.idle()
        count = served.bumps
        beacon.serving(other)
        assert other.bumped.wait(5)
        beacon.idle()
    finally:
        beacon.stop()
    assert served.bumps in (count, count + 1)  # at most one bump was already under way at idle()
    assert not beacon.running


def test_stop_ends_the_thread_and_a_beacon_never_served_starts_none() -> None:
    beacon = BusyBeacon(interval=0.01)
    assert not beacon.running
    beacon.serving(_Word())
    assert beacon.running
    beacon.stop()
    assert not beacon.running
