"""The worker's channel table, sans I/O: a region in a bytearray, the host's ChannelTable over it with
real ``sim`` contexts, and guests played by writing their words and rings by hand. Pins what each
channel owner can rely on: open, close, lease expiry, peer gone, reopen, fairness between channels,
and the VM's quota and address space shared by its contexts."""

from __future__ import annotations

import itertools
import struct
import time
from typing import Any

import pytest
import structlog

from executor import DeviceConfig, VmShare
from mediator._channels import SCAN_NS, ChannelTable
from mediator._stats import WorkerCounters
from protocol import (
    CALLS_BY_NAME,
    ChannelField,
    ChannelState,
    CloseReason,
    CompletionConsumer,
    CUresult,
    Region,
    RegionHeader,
    SubmissionProducer,
    SubmitFlags,
    decode_result,
    encode_args,
    lay_out_region,
)

MIB = 1 << 20
LEASE_NS = 800_000_000


class Process:
    """One guest process on channel ``index``: its owner words, its rings, its calls."""

    _nonces = itertools.count(1000)

    def __init__(self, header: RegionHeader, index: int, *, pid: int, peer: int = 1) -> None:
        self.index = index
        self.region = Region(header.channel_block(index))
        self.pid, self.peer = pid, peer
        self.nonce = 0
        self.seq = 0

    def ask_open(self) -> None:
        self.region.set_u32(ChannelField.OWNER_PID, self.pid)
        self.region.set_u32(ChannelField.OWNER_PEER, self.peer)
        self.nonce = next(self._nonces)
        self.region.set_u32(ChannelField.OPEN_REQUEST, self.nonce)

    def opened(self) -> None:
        assert self.region.u32(ChannelField.OPEN_ACK) == self.nonce
        assert self.region.channel_state == ChannelState.OPEN
        self.sq = SubmissionProducer(self.region)
        self.cq = CompletionConsumer(self.region)

    def beat(self) -> None:
        self.region.set_u64(ChannelField.HEARTBEAT, self.region.u64(ChannelField.HEARTBEAT) + 1)

    def ask_close(self) -> None:
        self.region.set_u32(ChannelField.CLOSE_REQUEST, self.nonce)

    def submit(self, name: str, submit_flags: int = 0, **args: Any) -> int:
        spec = CALLS_BY_NAME[name]
        self.seq += 1
        assert self.sq.push(seq=self.seq, call_id=spec.call_id, args=encode_args(spec.args(**args)),
                            flags=submit_flags)
        return self.seq

    def answer(self, name: str) -> Any:
        completion = self.cq.pop()
        assert completion is not None
        if completion.status:
            return CUresult(completion.status)
        return decode_result(CALLS_BY_NAME[name], completion.results)


class Host:
    def __init__(self, *, channels: int = 4, quota: int | None = None) -> None:
        self.buf = bytearray(16 * MIB)
        lay_out_region(self.buf, vm_id=1, channels=channels, lease_ms=LEASE_NS // 1_000_000)
        self.header = RegionHeader(memoryview(self.buf))
        self.share = VmShare("sim", device=DeviceConfig(), memory_quota=quota)
        self.counters = WorkerCounters()
        self.table = ChannelTable(self.header, self.share, self.counters, vm="test",
                                  log=structlog.wrap_logger(structlog.ReturnLogger()))
        self.now = 1_000_000_000

    def scan(self, after_ns: int = SCAN_NS) -> int:
        self.now += after_ns
        return self.table.scan(self.now)

    def advance(self, ns: int) -> None:
        """Let ``ns`` pass with the host looking every SCAN_NS, as the worker does."""
        for _ in range(ns // SCAN_NS):
            self.scan()

    def process(self, index: int, pid: int, peer: int = 1) -> Process:
        proc = Process(self.header, index, pid=pid, peer=peer)
        proc.ask_open()
        self.scan()
        proc.opened()
        return proc

    def serve(self, budget: int = 32) -> dict[int, int]:
        return {channel.index: served for channel, served in self.table.serve_pass(0, budget)}

    def call(self, proc: Process, name: str, **args: Any) -> Any:
        proc.submit(name, **args)
        self.serve(1 << 16)
        return proc.answer(name)


def test_an_open_is_acknowledged_last_with_a_fresh_context_and_a_new_generation() -> None:
    host = Host()
    proc = Process(host.header, 2, pid=4242, peer=7)
    proc.ask_open()
    assert host.scan() == 1
    proc.opened()
    channel = host.table.channels[2]
    assert (channel.owner_pid, channel.owner_peer, channel.generation) == (4242, 7, 1)
    assert proc.region.u32(ChannelField.CLOSE_REASON) == CloseReason.NONE
    assert [c.index for c in host.table.open] == [2]
    assert host.scan() == 0, "an open is served once"


def test_a_close_frees_everything_the_context_held_and_leaves_the_channel_free() -> None:
    host = Host()
    proc = host.process(0, pid=10)
    ptr = host.call(proc, "mem_alloc", bytesize=MIB).dptr
    assert ptr and host.share.memory_used() == MIB
    host.call(proc, "stream_create", flags=0)
    assert host.share.live_handles() == 1
    proc.ask_close()
    host.scan()
    assert host.share.memory_used() == 0 and host.share.live_handles() == 0
    assert proc.region.channel_state == ChannelState.FREE
    assert proc.region.u32(ChannelField.CLOSE_REASON) == CloseReason.GUEST_CLOSE
    assert host.table.open == []


def test_a_channel_whose_heartbeat_stands_still_is_expired_and_freed() -> None:
    host = Host()
    alive, dead = host.process(0, pid=1), host.process(1, pid=2)
    host.call(dead, "mem_alloc", bytesize=MIB)
    for _ in range(LEASE_NS // SCAN_NS + 2):  # the living one beats; the dead one does not
        alive.beat()
        host.scan()
    assert dead.region.channel_state == ChannelState.CLOSED_BY_HOST
    assert dead.region.u32(ChannelField.CLOSE_REASON) == CloseReason.LEASE_EXPIRED
    assert alive.region.channel_state == ChannelState.OPEN
    assert host.share.memory_used() == 0 and host.table.expired == 1


def test_a_lease_runs_for_lease_ms_from_the_last_beat() -> None:
    host = Host()
    proc = host.process(0, pid=1)
    host.advance(LEASE_NS - SCAN_NS)
    assert proc.region.channel_state == ChannelState.OPEN, "expired before its lease ran out"
    host.scan(SCAN_NS)
    assert proc.region.channel_state == ChannelState.CLOSED_BY_HOST


def test_time_the_host_itself_did_not_look_is_not_held_against_a_lease() -> None:
    """A worker busy in one long call (or a host starved of CPU, whose guests' heartbeat threads
    starve too) does not expire every channel when it next looks."""
    host = Host()
    proc = host.process(0, pid=1)
    host.scan(3 * LEASE_NS)
    assert proc.region.channel_state == ChannelState.OPEN
    host.advance(LEASE_NS)  # and a lease that then really stands still expires
    assert proc.region.channel_state == ChannelState.CLOSED_BY_HOST


def test_a_gone_peer_closes_its_processes_channels_only() -> None:
    host = Host()
    mine = [host.process(0, pid=1, peer=3), host.process(1, pid=2, peer=3)]
    other = host.process(2, pid=3, peer=4)
    assert host.table.peer_gone(3) == 2
    for proc in mine:
        assert proc.region.channel_state == ChannelState.CLOSED_BY_HOST
        assert proc.region.u32(ChannelField.CLOSE_REASON) == CloseReason.PEER_GONE
    assert other.region.channel_state == ChannelState.OPEN


def test_the_next_claimant_reopens_a_channel_afresh() -> None:
    host = Host()
    first = host.process(1, pid=1)
    stale = host.call(first, "mem_alloc", bytesize=MIB).dptr
    host.table.peer_gone(1)  # its process vanished
    second = host.process(1, pid=2)
    assert host.table.channels[1].generation == 2
    assert host.share.memory_used() == 0, "the previous owner's context is gone"
    assert host.call(second, "mem_free", dptr=stale) == CUresult.CUDA_ERROR_INVALID_VALUE


def test_a_flooding_channel_is_served_one_batch_per_pass_and_cannot_starve_another() -> None:
    host = Host()
    flood, quiet = host.process(0, pid=1), host.process(1, pid=2)
    ptr = host.call(flood, "mem_alloc", bytesize=MIB).dptr
    for i in range(200):
        flood.submit("memset_d8", submit_flags=int(SubmitFlags.ASYNC), dst=ptr, value=i % 256, count=4096, stream=0)
    quiet.submit("nop")
    assert host.serve(32) == {0: 32, 1: 1}, "one batch of the flood, then the other's call"
    assert quiet.answer("nop") is not None
    passes = 1
    while host.serve(32)[0]:
        passes += 1
    assert passes == 200 // 32 + 1


def test_the_vms_contexts_share_its_quota() -> None:
    host = Host(quota=2 * MIB)
    one, two = host.process(0, pid=1), host.process(1, pid=2)
    assert host.call(one, "mem_alloc", bytesize=3 * MIB // 2).dptr
    assert host.call(two, "mem_alloc", bytesize=MIB) == CUresult.CUDA_ERROR_OUT_OF_MEMORY
    assert host.call(two, "mem_get_info").free == MIB // 2  # what the VM's quota leaves, whoever holds it
    one.ask_close()
    host.scan()
    assert host.call(two, "mem_alloc", bytesize=MIB).dptr


def test_no_device_address_is_handed_out_twice_across_the_vms_contexts() -> None:
    host = Host()
    seen: list[tuple[int, int]] = []
    for round_ in range(3):
        procs = [host.process(i, pid=10 * round_ + i) for i in range(3)]
        for proc in procs:
            ptr = host.call(proc, "mem_alloc", bytesize=MIB).dptr
            assert all(ptr + MIB <= start or ptr >= end for start, end in seen), "an address was reused"
            seen.append((ptr, ptr + MIB))
        for proc in procs:
            proc.ask_close()
        host.scan()


def test_garbage_indices_close_only_their_channel() -> None:
    host = Host()
    bad, good = host.process(0, pid=1), host.process(1, pid=2)
    bad.region.set_u32(ChannelField.SQ_TAIL, 5000)
    good.submit("nop")
    assert host.serve() == {1: 1}
    assert bad.region.channel_state == ChannelState.CLOSED_BY_HOST
    assert bad.region.u32(ChannelField.CLOSE_REASON) == CloseReason.PROTOCOL_VIOLATION
    assert good.answer("nop") is not None and host.table.broken == 1


@pytest.mark.parametrize("word", ["open_ack", "channel_state", "generation"])
def test_the_host_never_trusts_what_a_guest_wrote_over_its_words(word: str) -> None:
    host = Host()
    proc = host.process(0, pid=1)
    struct.pack_into("<I", proc.region.buf, getattr(ChannelField, word.upper()), 0xDEAD)
    host.scan()
    assert host.table.channels[0].state is ChannelState.OPEN and host.table.channels[0].generation == 1
    assert host.call(proc, "nop") is not None


def test_a_guest_churning_its_channel_writes_the_log_at_most_once_a_second_per_kind() -> None:
    lines = structlog.testing.LogCapture()
    host = Host()
    host.table = ChannelTable(host.header, host.share, host.counters, vm="test",
                              log=structlog.wrap_logger(None, processors=[lines]))
    churner = Process(host.header, 0, pid=66)
    started = time.monotonic()
    for _ in range(200):  # an open and garbage indices every scan
        churner.ask_open()
        host.scan()
        churner.region.set_u32(ChannelField.SQ_TAIL, 5000)
        host.serve()
    allowed = int(time.monotonic() - started) + 1  # the limiter runs on the wall clock: a line a second
    assert host.table.opened == 200 and host.table.broken == 200, "the counters keep the totals"
    events = [line["event"] for line in lines.entries]
    assert events.count("channel opened") <= allowed
    assert events.count("channel broken by its guest; closed") <= allowed
    assert events.count("channel closed") <= allowed
