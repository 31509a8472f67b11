"""A worker's channels: who may open, close and lose which channel of the VM's region, and when.

Theory of operation: the region holds ``channel_count`` channel blocks (protocol 2.0, docs/protocol.md
§1). A guest process claims one with a lock the host never sees, writes its owner words and a new
``open_request`` nonce, and kicks; :meth:`ChannelTable.scan` (run on every doorbell and at least every
``SCAN_NS``) then opens it: frees any context it still has, lays its header out afresh, creates a
context (its own executor and :class:`RingServer`), bumps the generation and stores ``open_ack`` last.
An open channel is closed when its owner asks (``close_request`` = its nonce: FREE), when its
heartbeat stands still for ``lease_ms`` (the owner died: CLOSED_BY_HOST, LEASE_EXPIRED), when the
socket peer it names goes away (PEER_GONE), or when its ring indices are impossible
(PROTOCOL_VIOLATION). Every close frees everything the context held. The table keeps each channel's
state, nonce and generation privately: the guest can scribble on the shared words, which the table
only ever writes, never trusts.
"""

from __future__ import annotations

import mmap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

import structlog

from executor import Executor, VmShare
from protocol import (
    ChannelField,
    ChannelState,
    CloseReason,
    Region,
    RegionHeader,
    RemoteProtocolError,
    lay_out_channel,
    validate_channel,
)

from ._busy import BusyBeacon
from ._ratelimit import RateLimitedLog
from ._server import RingServer
from ._stats import WorkerCounters

__all__ = ["SCAN_NS", "Channel", "ChannelContext", "ChannelTable", "populate"]

#: how often the host looks at every channel's requests and heartbeat, at least
SCAN_NS: Final = 50_000_000
_MASK32: Final = 0xFFFF_FFFF
_W_OPEN_REQUEST: Final = ChannelField.OPEN_REQUEST >> 2
_W_CLOSE_REQUEST: Final = ChannelField.CLOSE_REQUEST >> 2
_W_OWNER_PID: Final = ChannelField.OWNER_PID >> 2
_W_OWNER_PEER: Final = ChannelField.OWNER_PEER >> 2
_Q_HEARTBEAT: Final = ChannelField.HEARTBEAT >> 3
_W_HOST_BUSY: Final = ChannelField.HOST_BUSY >> 2
#: madvise(MADV_POPULATE_WRITE) (Linux 5.14): fault a range in at once (the mmap module may not name it)
MADV_POPULATE_WRITE: Final = getattr(mmap, "MADV_POPULATE_WRITE", 23)


def populate(mapping: mmap.mmap, start: int, length: int) -> None:
    """Fault ``[start, start + length)`` of a shared mapping in now: the region is mapped without
    populating (a VM's untouched channels cost no memory), and a channel being opened has its pages
    made present up front, as a first touch per arena page would fault on every new payload offset."""
    try:
        mapping.madvise(MADV_POPULATE_WRITE, start, length)
    except (OSError, ValueError):  # an older kernel: touch a byte per page instead
        view = memoryview(mapping)[start:start + length]
        try:
            for offset in range(0, length, mmap.PAGESIZE):
                view[offset] = view[offset]
        finally:
            view.release()


@dataclass(slots=True)
class ChannelContext:
    """One open channel's context: its rings, its executor, its server."""

    region: Region
    executor: Executor
    server: RingServer


class Channel:
    """One channel of the region, as the host keeps it (its own copy of every word it relies on)."""

    def __init__(self, index: int, block: memoryview) -> None:
        self.index = index
        self.block = block
        self._u32 = block[:4096].cast("I")
        self._u64 = block[:4096].cast("Q")
        self.state = ChannelState.FREE
        self.close_reason = CloseReason.NONE
        self.nonce = 0  # the open_request served last
        self.generation = 0
        self.owner_pid = 0
        self.owner_peer = 0
        self.opened_at = 0.0  # wall clock, for status
        self.beat = 0
        self.beat_ns = 0  # monotonic time the heartbeat last moved
        self.calls = 0
        self.errors = 0
        self.ctx: ChannelContext | None = None

    def word(self, index: int) -> int:
        return int(self._u32[index])

    def publish(self, field: ChannelField, value: int) -> None:
        self._u32[field >> 2] = value & _MASK32

    @property
    def heartbeat(self) -> int:
        return int(self._u64[_Q_HEARTBEAT])

    def bump_busy(self) -> None:
        """``host_busy`` + 1 (``mediator._busy``: the host is serving this channel's entries now)."""
        self._u32[_W_HOST_BUSY] = (self._u32[_W_HOST_BUSY] + 1) & _MASK32

    def release(self) -> None:
        for view in (self._u32, self._u64, self.block):
            view.release()


class ChannelTable:
    """The channels of one region and their contexts (see the module's theory of operation)."""

    def __init__(self, header: RegionHeader, share: VmShare, counters: WorkerCounters, *,
                 vm: str, setup: Callable[[ChannelContext], None] | None = None,
                 log: Any = None) -> None:
        self.header = header
        self.share = share
        self.counters = counters
        self.lease_ns = header.layout.lease_ms * 1_000_000
        self.vm_id = header.layout.vm_id
        self.setup = setup  # what the worker adds to a fresh context (tracing, limits, hooks)
        self.vm = vm
        self.log = (log if log is not None else structlog.get_logger("worker")).bind(vm=vm)
        self.channels = [Channel(i, header.channel_block(i)) for i in range(header.layout.channel_count)]
        self.open: list[Channel] = []  # in index order
        self.opened = self.closed = self.expired = self.broken = 0
        # a guest can open, break and abandon channels at any rate: the counters above hold the
        # totals, the log at most a line a second per kind of event (with how many it left out)
        self._log_opened = RateLimitedLog(self.log.info)
        self._log_not_opened = RateLimitedLog(self.log.error)
        self._log_closed = RateLimitedLog(self.log.info)
        self._log_expired = RateLimitedLog(self.log.warning)
        self._log_broken = RateLimitedLog(self.log.error)
        self._last_scan = 0
        self.busy = BusyBeacon()  # host_busy of the channel being served (stopped by release)

    # -- scanning the guests' requests -------------------------------------------------------------

    def scan_due(self, now_ns: int) -> bool:
        return now_ns - self._last_scan >= SCAN_NS

    def scan(self, now_ns: int | None = None) -> int:
        """Serve every open and close request and expire the channels whose heartbeat stood still;
        returns how many channels changed state."""
        now = time.monotonic_ns() if now_ns is None else now_ns
        gap = now - self._last_scan
        if self._last_scan and gap > 2 * SCAN_NS:
            # the host did not look for a while (one long call, or a host starved of CPU, which starves
            # the owners' heartbeat threads too): that time is not held against the owners' leases
            for channel in self.open:
                channel.beat_ns += gap - SCAN_NS
        self._last_scan = now
        changed = 0
        for channel in self.channels:
            request = channel.word(_W_OPEN_REQUEST)
            if request and request != channel.nonce:
                self._open(channel, request, now)
                changed += 1
            elif channel.state is ChannelState.OPEN:
                if channel.word(_W_CLOSE_REQUEST) == channel.nonce:
                    self.close(channel, CloseReason.GUEST_CLOSE)
                    changed += 1
                    continue
                beat = channel.heartbeat
                if beat != channel.beat:
                    channel.beat, channel.beat_ns = beat, now
                elif now - channel.beat_ns >= self.lease_ns:
                    self.expired += 1
                    self._log_expired("channel lease expired: its process stopped beating; freeing its "
                                     "context", channel=channel.index, owner_pid=channel.owner_pid,
                                     silent_ms=(now - channel.beat_ns) // 1_000_000)
                    self.close(channel, CloseReason.LEASE_EXPIRED)
                    changed += 1
        return changed

    def serve_pass(self, start: int, budget: int) -> list[tuple[Channel, int]]:
        """One turn of every open channel, from the ``start``-th (mod their number) on, at most
        ``budget`` entries each: a channel flooding work delays another by one batch at most. Returns
        each channel served and how many entries; one with impossible indices is closed instead."""
        channels = self.open
        count = len(channels)
        counters, busy = self.counters, self.busy
        turns: list[tuple[Channel, int]] = []
        for k in range(count):
            channel = channels[(start + k) % count]
            ctx = channel.ctx
            if ctx is None:
                continue
            calls, errors = counters.calls, counters.errors
            try:
                if ctx.server.sq.pending():  # (raises for an impossible tail, as drain would)
                    ctx.executor.activate()  # its calls run in its own context (cuda: cuCtxSetCurrent)
                busy.serving(channel)  # one call may outlast a guest's timeout: show we work on it
                try:
                    served = ctx.server.drain(budget)
                finally:
                    busy.idle()
            except RemoteProtocolError as exc:  # impossible indices: only this channel is closed
                self.broke(channel, exc)
                continue
            channel.calls += counters.calls - calls
            channel.errors += counters.errors - errors
            turns.append((channel, served))
        return turns

    def next_deadline_ns(self) -> int | None:
        """When the worker must look again (monotonic ns): the next scan while a channel is open (its
        lease may run out), None while none is (an open request comes with a kick)."""
        if not self.open:
            return None
        return min(*(c.beat_ns + self.lease_ns for c in self.open), self._last_scan + SCAN_NS)

    def _open(self, channel: Channel, nonce: int, now: int) -> None:
        if channel.ctx is not None:  # the previous owner's context: gone before the new one starts
            self._free(channel)
        channel.nonce = nonce
        try:
            lay_out_channel(channel.block, vm_id=self.vm_id, index=channel.index,
                            generation=channel.generation, state=ChannelState.FREE,
                            close_reason=CloseReason.NONE, keep_guest_words=True)
            # a view of its own: releasing the context's region must not release the channel's block
            region = Region(channel.block[:], validate_channel(channel.block, index=channel.index))
            executor = self.share.create_context()
        except Exception as exc:  # a context that cannot be made: the open is not acknowledged
            channel.state = ChannelState.FREE
            channel.publish(ChannelField.CHANNEL_STATE, ChannelState.FREE)
            self._log_not_opened("channel not opened: its context could not be created",
                                 channel=channel.index, error=repr(exc))
            return
        server = RingServer(region, executor, self.counters, vm=self.vm)
        ctx = ChannelContext(region, executor, server)
        if self.setup is not None:
            self.setup(ctx)
        channel.ctx = ctx
        channel.generation = (channel.generation + 1) & _MASK32
        channel.owner_pid = channel.word(_W_OWNER_PID)
        channel.owner_peer = channel.word(_W_OWNER_PEER)
        channel.beat, channel.beat_ns = channel.heartbeat, now
        channel.opened_at = time.time()
        channel.calls = channel.errors = 0
        channel.state = ChannelState.OPEN
        channel.close_reason = CloseReason.NONE
        self.open = [c for c in self.channels if c.state is ChannelState.OPEN]
        self.opened += 1
        channel.publish(ChannelField.GENERATION, channel.generation)
        channel.publish(ChannelField.CHANNEL_STATE, ChannelState.OPEN)
        channel.publish(ChannelField.OPEN_ACK, nonce)  # last: the guest may submit once it sees it
        self._log_opened("channel opened", channel=channel.index, owner_pid=channel.owner_pid,
                      owner_peer=channel.owner_peer, generation=channel.generation)

    # -- closing ----------------------------------------------------------------------------------

    def close(self, channel: Channel, reason: CloseReason) -> None:
        """Free everything the channel's context holds; FREE after a guest close, else CLOSED_BY_HOST."""
        if channel.ctx is not None:
            try:  # what is already queued in a channel its owner closes is answered first
                if reason is CloseReason.GUEST_CLOSE and channel.ctx.server.sq.pending():
                    channel.ctx.executor.activate()  # in its own context, as serve_pass runs it
                    channel.ctx.server.drain(channel.ctx.server.sq.entries)
            except RemoteProtocolError:
                pass
            self._free(channel)
        state = ChannelState.FREE if reason is CloseReason.GUEST_CLOSE else ChannelState.CLOSED_BY_HOST
        channel.state = state
        channel.close_reason = reason
        channel.publish(ChannelField.CLOSE_REASON, reason)
        channel.publish(ChannelField.CHANNEL_STATE, state)
        self.open = [c for c in self.channels if c.state is ChannelState.OPEN]
        self.closed += 1
        self._log_closed("channel closed", channel=channel.index, owner_pid=channel.owner_pid,
                      reason=reason.name.lower(), calls=channel.calls)

    def broke(self, channel: Channel, exc: RemoteProtocolError) -> None:
        """Impossible ring indices in one channel: that channel is closed, nothing else."""
        self.broken += 1
        self.counters.protocol_errors += 1
        self._log_broken("channel broken by its guest; closed", channel=channel.index,
                       owner_pid=channel.owner_pid, reason=exc.message)
        self.close(channel, CloseReason.PROTOCOL_VIOLATION)

    def peer_gone(self, peer: int) -> int:
        """Close every channel whose owner used socket peer ``peer``; returns how many."""
        gone = [c for c in self.open if c.owner_peer == peer]
        for channel in gone:
            self.close(channel, CloseReason.PEER_GONE)
        return len(gone)

    def _free(self, channel: Channel) -> None:
        ctx, channel.ctx = channel.ctx, None
        if ctx is None:
            return
        try:
            self.share.close_context(ctx.executor)
        finally:
            ctx.region.release()

    def close_all(self, reason: CloseReason) -> None:
        for channel in list(self.open):
            self.close(channel, reason)

    def release(self) -> None:
        self.busy.stop()
        for channel in self.channels:
            self._free(channel)
            channel.release()

    def __iter__(self) -> Iterator[Channel]:
        return iter(self.channels)
