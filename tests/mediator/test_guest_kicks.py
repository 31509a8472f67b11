"""When the worker wakes a sleeping guest (#19): for a completion it wrote, never for posted calls, which
write none. A guest woken for nothing spins again for its spin time, on a CPU the worker may need: through
the C shim that made a posted 4 KiB pinned copy cost 1.8 us of host time instead of 0.2 us. And a little
before the end of a run of posted copies served in C when something is queued behind them (the call the
guest waits for): a sleeping vCPU takes ~20 us to run again, which otherwise added to every batch."""

from __future__ import annotations

import contextlib
import os
import select
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from guest import GuestClient
from mediator import _pinned_fast
from mediator._control_client import request
from mediator._launcher import MediatorProcess, running_mediator
from protocol import CALLS_BY_NAME, ChannelField, SubmitFlags, encode_args, fence
from protocol._catalog import MemcpyHtoDArgs
from tests.reliability._ring_pair import RingPair

if TYPE_CHECKING:
    from mediator._copyfast import FastCopy

pytestmark = pytest.mark.slow
_accelerated = pytest.mark.skipif(not _pinned_fast.ACCELERATED, reason="mediator._copyfast is not built")

_NEED_IRQ = ChannelField.GUEST_NEED_IRQ >> 2
_SQ_HEAD = ChannelField.SQ_HEAD >> 2


def _kicked(gpu: GuestClient, timeout: float) -> bool:
    return bool(select.select([gpu.irq_fd], [], [], timeout)[0])


def test_a_sleeping_guest_is_woken_for_a_completion_and_not_for_posted_calls(tmp_path: Path) -> None:
    with running_mediator(tmp_path, backend="sim", vms=1) as mediator, \
            GuestClient.connect(mediator.vm_socket(1)) as gpu:
        ptr = gpu.mem_alloc(256)
        memset, nop = CALLS_BY_NAME["memset_d8"], CALLS_BY_NAME["nop"]
        args = gpu.args("memset_d8", dst=ptr, value=7, count=256, stream=0)
        with contextlib.suppress(BlockingIOError):  # whatever woke us before
            os.eventfd_read(gpu.irq_fd)
        words = gpu.region.u32_view
        words[_NEED_IRQ] = 1  # as a guest does before it sleeps on its vector
        fence()
        try:
            for _ in range(200):  # several of the worker's passes
                gpu.submit(memset, args, flags=int(SubmitFlags.ASYNC))
            deadline = time.monotonic() + 30
            while words[_SQ_HEAD] != gpu.sq.index:  # the worker has served them all
                assert time.monotonic() < deadline, "the worker did not serve the posted calls"
                select.select([], [], [], 0.001)
            assert not _kicked(gpu, 0), "woken for posted calls, which wrote no completion"
            seq, _ = gpu.submit(nop, nop.args())
            assert _kicked(gpu, 30), "not woken for the completion of a call that waits"
        finally:
            words[_NEED_IRQ] = 0
        assert gpu.wait(seq).status == 0
        assert gpu.memcpy_dtoh(ptr, 4) == b"\x07" * 4
        assert not gpu.async_errors


# -- woken ahead of the end of a run of posted copies (native/copyfast.c, kick_early) ---------------

_COPY = CALLS_BY_NAME["memcpy_htod"]  # staged: its payload in the arena, served in C after the first
_COPIES = 8
_SIZE = 4096


@contextlib.contextmanager
def _copies_behind(*, need_irq: int, lead_ns: int | None) -> Iterator[tuple[RingPair, int, FastCopy]]:
    """A ring pair whose C copy path knows a device block, with the early kick set to ``lead_ns`` (None:
    never set) on an eventfd, the guest's flag at ``need_irq``, and ``_COPIES`` posted copies and a nop
    that waits queued (nothing served yet)."""
    pair = RingPair()
    irq = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
    try:
        dev = pair.call("mem_alloc", bytesize=_COPIES * _SIZE).result.dptr  # type: ignore[union-attr]
        assert pair.call("memcpy_htod", data=b"\1" * _SIZE, dst=dev, stream=0).status == 0  # learned
        fast = pair.server.pinned_fast
        assert fast is not None
        if lead_ns is not None:
            fast.c.kick_early(ChannelField.GUEST_NEED_IRQ, ChannelField.SQ_TAIL, irq, lead_ns)
        pair.region.u32_view[_NEED_IRQ] = need_irq
        for i in range(_COPIES):
            pair.region.arena[i * _SIZE:(i + 1) * _SIZE] = bytes([i + 2]) * _SIZE
            pair.seq += 1
            assert pair.sq.push(seq=pair.seq, call_id=_COPY.call_id, flags=int(SubmitFlags.ASYNC),
                                args=encode_args(MemcpyHtoDArgs(dst=dev + i * _SIZE, stream=0)),
                                in_off=i * _SIZE, in_len=_SIZE)
        pair.seq += 1
        assert pair.sq.push(seq=pair.seq, call_id=CALLS_BY_NAME["nop"].call_id, args=b"")
        yield pair, irq, fast.c
    finally:
        os.close(irq)
        pair.close()


def _serve_the_copies_only(pair: RingPair) -> None:
    assert pair.server.drain(_COPIES) == _COPIES  # the run, in C; the nop stays queued
    assert pair.server.sq.pending() == 1 and not pair.cq.pending()


@_accelerated
def test_a_sleeping_guest_is_woken_while_the_last_posted_copies_run_before_the_call_it_waits_for() -> None:
    with _copies_behind(need_irq=1, lead_ns=10**9) as (pair, irq, fast):
        _serve_the_copies_only(pair)
        assert _kicked_fd(irq), "not woken ahead of the call queued behind the copies"
        assert fast.early_kicks == 1, "one early kick a run, not one a copy"
        assert pair.server.drain() == 1 and pair.cq.pop().status == 0  # the nop, answered as always


@_accelerated
def test_an_early_kick_waits_until_what_is_queued_behind_fits_the_lead() -> None:
    # a lead shorter than any copy: nothing queued behind a copy ever fits it
    with _copies_behind(need_irq=1, lead_ns=1) as (pair, irq, fast):
        _serve_the_copies_only(pair)
        assert not _kicked_fd(irq) and fast.early_kicks == 0


@_accelerated
def test_no_early_kick_for_a_guest_that_does_not_sleep_or_a_worker_that_never_set_it() -> None:
    with _copies_behind(need_irq=0, lead_ns=10**9) as (pair, irq, fast):
        _serve_the_copies_only(pair)
        assert not _kicked_fd(irq) and fast.early_kicks == 0
    with _copies_behind(need_irq=1, lead_ns=None) as (pair, irq, fast):
        _serve_the_copies_only(pair)
        assert not _kicked_fd(irq) and fast.early_kicks == 0


@_accelerated
def test_kick_early_refuses_words_outside_the_region_and_bad_fds() -> None:
    with _copies_behind(need_irq=0, lead_ns=None) as (pair, _irq, fast):
        size = len(pair.region.buf)
        for irq_offset, tail_offset, fd in ((size, ChannelField.SQ_TAIL, 0), (ChannelField.GUEST_NEED_IRQ, 2, 0),
                                            (2**64 - 4, ChannelField.SQ_TAIL, 0),  # wraps past the end
                                            (ChannelField.GUEST_NEED_IRQ, ChannelField.SQ_TAIL, -2)):
            with pytest.raises(ValueError):
                fast.kick_early(irq_offset, tail_offset, fd, 1000)
        with pytest.raises(OSError):  # not an open descriptor
            fast.kick_early(ChannelField.GUEST_NEED_IRQ, ChannelField.SQ_TAIL, 1 << 20, 1000)
        fast.kick_early(ChannelField.GUEST_NEED_IRQ, ChannelField.SQ_TAIL, -1, 1000)  # off


# -- the submission head published from inside a run (native/copyfast.c, publish_progress) ----------


@_accelerated
def test_a_run_of_copies_publishes_the_submission_head_as_it_goes_when_asked() -> None:
    """The run itself moves sq_head (before the server advances past it), so that a guest waiting behind it
    sees the host consume its queue; never set, only the server's advance does."""
    for every_ns, published in ((0, _COPIES), (None, 0)):
        with _copies_behind(need_irq=0, lead_ns=None) as (pair, _irq, fast):
            if every_ns is not None:
                fast.publish_progress(ChannelField.SQ_HEAD, every_ns)
            head = pair.server.sq.index
            words = pair.region.u32_view
            assert words[_SQ_HEAD] == head
            assert fast.serve(head, _COPIES, 0, 0, 10**12) == _COPIES  # C alone: no advance by the server
            assert words[_SQ_HEAD] == head + published
            pair.server.sq.advance(_COPIES)
            assert words[_SQ_HEAD] == head + _COPIES
            assert pair.server.drain() == 1 and pair.cq.pop().status == 0  # the nop behind, as always


@_accelerated
def test_publish_progress_refuses_a_word_outside_the_region() -> None:
    with _copies_behind(need_irq=0, lead_ns=None) as (pair, _irq, fast):
        size = len(pair.region.buf)
        for offset in (size, 2, 2**64 - 4):
            with pytest.raises(ValueError):
                fast.publish_progress(offset, 0)
        fast.publish_progress(0, 0)  # off


@_accelerated
def test_the_worker_wakes_a_guest_asleep_behind_posted_copies_before_any_completion(tmp_path: Path) -> None:
    """Through a worker: with the completion ring full, the nop behind the copies cannot be answered, so
    only the early kick can wake the guest."""
    with running_mediator(tmp_path, backend="sim", vms=1) as mediator, \
            GuestClient.connect(mediator.vm_socket(1)) as gpu:
        ptr = gpu.mem_alloc(_COPIES * _SIZE)
        gpu.memcpy_htod(ptr, b"\1" * _SIZE)  # the C path learns the block
        nop = CALLS_BY_NAME["nop"]
        words = gpu.region.u32_view
        for _ in range(gpu.region.layout.cq_entries):  # fill the completion ring, popping none
            gpu.submit(nop, nop.args())
        _wait_served(gpu)
        with contextlib.suppress(BlockingIOError):  # whatever woke us before
            os.eventfd_read(gpu.irq_fd)
        words[_NEED_IRQ] = 1
        fence()
        try:
            for i in range(_COPIES):
                gpu.submit(_COPY, gpu.args("memcpy_htod", dst=ptr + i * _SIZE, stream=0),
                           data=bytes([i + 2]) * _SIZE, flags=int(SubmitFlags.ASYNC))
            seq, _ = gpu.submit(nop, nop.args())
            assert _kicked(gpu, 30), "a guest asleep behind posted copies was not woken ahead of its call"
        finally:
            words[_NEED_IRQ] = 0
        assert gpu.wait(seq).status == 0  # room made: the nop is answered
        assert gpu.memcpy_dtoh(ptr, _COPIES * _SIZE) == b"".join(bytes([i + 2]) * _SIZE for i in range(_COPIES))
        assert not gpu.async_errors


def _wait_served(gpu: GuestClient) -> None:
    deadline = time.monotonic() + 30
    while gpu.region.u32_view[_SQ_HEAD] != gpu.sq.index:
        assert time.monotonic() < deadline, "the worker did not serve what was submitted"
        select.select([], [], [], 0.001)


def _kicked_fd(fd: int) -> bool:
    return bool(select.select([fd], [], [], 0)[0])



# -- the worker's own doorbell (mediator/_worker.py): read before it announces a sleep, not after it wakes --

_NEED_WAKEUP = ChannelField.HOST_NEED_WAKEUP >> 2


def _worker_counts(mediator: MediatorProcess) -> tuple[int, int]:
    """(doorbell wake-ups, sleeps) as the worker last published them (before each sleep)."""
    vm = request(mediator.control, {"cmd": "status"})["vms"][0]
    return int(vm["wakeups"]), int(vm["sleeps"])


def test_a_kick_rung_while_the_worker_is_awake_does_not_wake_it_from_its_next_sleep(tmp_path: Path) -> None:
    """The worker reads its doorbell just before it announces a sleep (a guest kicks only after that), so
    a kick rung while it polls is gone by then; one that read its doorbell only on waking woke from that
    sleep at once, for nothing."""
    with running_mediator(tmp_path, backend="sim", vms=1, extra="poll_us = 200000") as mediator, \
            GuestClient.connect(mediator.vm_socket(1)) as gpu:
        nop = CALLS_BY_NAME["nop"]
        words = gpu.region.u32_view
        while True:
            kicks = gpu.kicks
            wakeups, sleeps = _worker_counts(mediator)
            seq, _ = gpu.submit(nop, nop.args())
            assert gpu.wait(seq).status == 0  # served: the worker polls for 200 ms now
            os.eventfd_write(gpu.doorbell_fd, 1)
            fence()
            if words[_NEED_WAKEUP] == 0:  # rung before it announced its next sleep
                break
        deadline = time.monotonic() + 30
        while _worker_counts(mediator)[1] < sleeps + 3:  # the next sleep and its wake-up are published
            assert time.monotonic() < deadline, "the worker did not sleep"
            select.select([], [], [], 0.01)
        assert _worker_counts(mediator)[0] - wakeups <= gpu.kicks - kicks, "woken by the kick rung while awake"
