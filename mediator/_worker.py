"""A VM's worker process: map the region, serve every open channel with its own context, sleep when idle.

Channels (protocol 2.0): the region holds several ring pairs, one per guest process; the
:class:`~mediator._channels.ChannelTable` opens, closes and expires them and gives each open one its own
context (executor and ring server), all sharing the VM's quota, host budget and address space
(:class:`executor.VmShare`). The loop serves the open channels in turn, at most ``DRAIN_BUDGET`` entries
from each per pass (starting one further each pass; a run of copies served in C may go on past it for
``FAST_SLICE_NS``, about a budget of Python calls' time, see ``_server.py``), so a channel flooding
asynchronous work delays another by one batch at most. What follows describes one channel's rings;
with several open the loop spins only while exactly one is open, and otherwise polls them all.

Spawned by the supervisor as ``python -m mediator._worker '<json>'`` with its file descriptors
passed (never forked: CUDA may be loaded). The loop polls the submission ring while work arrives —
a spin in C on the guest's tail (``SubmissionConsumer.spin``, without the GIL), flat out for
``SPIN_YIELD_NS`` and then yielding the CPU between looks; after its polling window of nothing
(``poll_us``, grown up to ``poll_max_us`` while the VM's work comes in bursts that close, see
``_polling.py``), or as soon as the spin sees the CPU contended (a yield that ran another task: more
busy processes than cores, where spinning only keeps the guest it waits for off the CPU), it sets the
need-wakeup flag, fences, looks once more, and sleeps on the doorbell eventfd and the control socket.
The sleep is bounded (``max_sleep_ms``) so that even a lost wakeup costs at most that long. A VM that
keeps its worker busy (``DRAIN_BUDGET`` calls served since the last yield, a flood or a tight loop of
calls) has the worker yield the CPU between batches, so that on a crowded host it takes turns with
the other VMs' calls. However busy, it publishes its heartbeat and looks at its control socket
at least every ``HEARTBEAT_NS`` (a drain returns after ``BATCH_NS`` of calls, see ``_server.py``).
A guest that leaves its completion ring full while the next entry needs a completion gets
back-pressure, not a reset: the worker sleeps on its doorbell and control socket, looking for room
after 1 ms and then backing off to ``max_sleep_ms``, its heartbeat kept (``wait_for_room``). The
control socket (JSON lines) carries ``stop``, ``set_quota`` and ``trace`` from the supervisor. The
supervisor may go away and come back (a restart or a crash: the supervisor's end of this socket is
kept in systemd's fd store or handed to its re-executed image, ``mediator/_fdstore.py``): the worker
goes on serving, queues what it has to say (``send`` never blocks), and a new supervisor picks the
socket up. Its EOF means the last copy of the other end is closed — no supervisor and no store hold
it, so nobody can adopt this worker: it drains, releases everything and exits.
"""

from __future__ import annotations

import contextlib
import json
import mmap
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter_ns
from typing import Any, Final

import setproctitle
import structlog

from executor import DeviceConfig, VmShare
from protocol import (
    ChannelField,
    CublasStatus,
    CUresult,
    DeviceState,
    RegionHeader,
    RemoteProtocolError,
    Submission,
    fence,
)

from ._board import Board
from ._channels import Channel, ChannelContext, ChannelTable, populate
from ._limits import TokenBucket
from ._logging import configure_logging
from ._pacing import EPOCH_NS, Allowance, next_cap, smooth
from ._pinned_region import pinned_area
from ._polling import PollWindow
from ._stats import ChannelStats, StatsBlock, WorkerCounters
from ._trace import TraceRing, printf_recorder, summarize
from ._worker_memory import EXIT_OUT_OF_MEMORY, apply_worker_limits

__all__ = ["DRAIN_BUDGET", "HANDOFF_AFTER_NS", "HEARTBEAT_NS", "IDLE_SLICE_NS", "KICK_LEAD_NS",
           "PROGRESS_NS", "SPIN_YIELD_NS", "WorkerSpec", "main", "worker_environment"]

_NEED_IRQ: Final = ChannelField.GUEST_NEED_IRQ >> 2
_NEED_WAKEUP: Final = ChannelField.HOST_NEED_WAKEUP >> 2
#: submissions served per pass of the loop; a full pass yields the CPU before the next (a flooding
#: VM takes turns: with 256, its neighbours' Jain's index was 0.66-0.79 here, with 32 0.85-0.99)
DRAIN_BUDGET: Final = 32
#: while polling, how long one spin in C lasts before the loop looks at its control socket
IDLE_SLICE_NS: Final = 1_000_000
#: how long an idle worker spins flat out before it yields the CPU between looks at the ring
SPIN_YIELD_NS: Final = 10_000
#: a busy worker publishes its stats (the supervisor's watchdog reads the heartbeat in them) and
#: looks at its control socket at least this often, whatever its guest keeps it doing
HEARTBEAT_NS: Final = 50_000_000
#: a guest asleep behind a run of posted copies is kicked this long before the run ends (native/copyfast.c,
#: ``kick_early``): a sleeping vCPU here runs ~20 us after its kick (perf sched's scheduling delay, 21-22
#: us), so it wakes while the last copies run instead of after its completion (#19)
KICK_LEAD_NS: Final = 30_000
#: a worker that has served without a break for this long yields the CPU once after writing a completion
#: for a guest that is awake: that guest has spun past its flat spin and yields between looks, perhaps on
#: this CPU (a batch's end, #19); a call served at once (a round trip) never yields for it
HANDOFF_AFTER_NS: Final = 20_000
#: while a run of copies is served in C, the submission head is published at least this often
#: (native/copyfast.c, ``publish_progress``): a guest waiting behind the run sees the host consume its queue
#: and keeps spinning (yielding) rather than sleep, so that no wake-up is needed at the run's end (#19)
PROGRESS_NS: Final = 10_000
#: events queued for a supervisor that is not reading (being restarted), at most
OUTBOX_LIMIT: Final = 1 << 20


#: glibc's memcpy uses ``rep movsb`` from 4 KiB up to the L2 size; on AMD Zen 3 (this host) that is 10-15x
#: slower (1.7 against 17-27 GiB/s for 256 KiB) when the destination is 1-31 bytes past the source modulo
#: 4 KiB, which a staged copy between the arena and device memory hits whenever their page offsets differ
#: so. With the threshold above any copy size glibc takes its vector loop, here as fast or faster at every
#: offset (docs/benchmarks.md, pageable copies). Workers are spawned with it (``worker_environment``).
MEMCPY_TUNABLE: Final = "glibc.cpu.x86_rep_movsb_threshold=4294967295"


def worker_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment a worker is spawned with: ``base`` (default ``os.environ``) with
    ``MEMCPY_TUNABLE`` added to ``GLIBC_TUNABLES`` unless the operator already set that tunable."""
    env = dict(os.environ if base is None else base)
    tunables = env.get("GLIBC_TUNABLES", "")
    if "x86_rep_movsb_threshold" not in tunables:
        env["GLIBC_TUNABLES"] = f"{tunables}:{MEMCPY_TUNABLE}" if tunables else MEMCPY_TUNABLE
    return env


@dataclass
class WorkerSpec:
    """What the supervisor tells a worker (serialised as JSON on its command line)."""

    vm_id: int
    vm_name: str
    region_fd: int
    region_size: int
    doorbell_fds: list[int]  # one per vector: the guest kicks vector channel % vectors
    guest_irq_fds: list[int]  # one per vector: the host interrupts the channel's owner on them
    stats_fd: int
    control_fd: int
    trace_fd: int = -1
    trace: bool = False
    backend: str = "sim"
    memory_quota: int | None = None
    device: dict[str, Any] = field(default_factory=dict)
    poll_us: int = 50
    poll_max_us: int = 200
    max_sleep_ms: int = 100
    log_level: str = "info"
    calls_per_s: float | None = None
    max_async_inflight: int = 0
    # host memory bounds (mediator._worker_memory) and the lowest device address it may hand out
    host_budget: int | None = None
    memory_limit: int | None = None
    memory_limit_max: int | None = None
    va_floor: int = 0
    # the workers' board (mediator._board) that paces a worker ahead of its peers on a crowded host;
    # empty: this worker is never paced
    board: str = ""

    def to_json(self) -> str:
        return json.dumps(self.__dict__)

    @classmethod
    def from_json(cls, text: str) -> WorkerSpec:
        return cls(**json.loads(text))


def _channel_stats(channel: Channel) -> ChannelStats:
    ctx = channel.ctx
    return ChannelStats(
        channel.index, int(channel.state), channel.generation, channel.owner_pid, channel.owner_peer,
        channel.calls, channel.errors, ctx.executor.memory_used() if ctx else 0,
        ctx.executor.live_handles() if ctx else 0, int(channel.opened_at * 1e9))


def _device_config(raw: dict[str, Any]) -> DeviceConfig:
    values = dict(raw)
    if "uuid" in values:
        values["uuid"] = bytes.fromhex(values["uuid"])
    if "compute_capability" in values:
        values["compute_capability"] = tuple(values["compute_capability"])
    return DeviceConfig(**values)


class Worker:
    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self.log = structlog.get_logger("worker").bind(vm=spec.vm_name, pid=os.getpid())
        # not populated: each channel's pages are made present when it is opened (_set_up_context)
        self._map = mmap.mmap(spec.region_fd, spec.region_size, flags=mmap.MAP_SHARED)
        self.stats = StatsBlock(spec.stats_fd)
        self.counters = WorkerCounters(pid=os.getpid())
        self.control = socket.socket(fileno=spec.control_fd)
        self.control.setblocking(False)
        self._control_buf = b""
        self._outbox = b""  # what the supervisor has not taken yet (it may be restarting)
        self._outbox_dropped = 0
        self.stopping = False
        self._doorbells: set[int] = set()
        self.header = RegionHeader(memoryview(self._map))
        self.share = VmShare(
            spec.backend,  # type: ignore[arg-type]
            device=_device_config(spec.device), memory_quota=spec.memory_quota,
            host_budget=spec.host_budget, va_floor=spec.va_floor,
            on_va_lease=lambda end: self.send(event="va_lease", end=end))
        self.backend_name = self.share.backend
        self.share.pinned = pinned_area(self._map, self.header.buf, self.header.layout)
        self.limiter = TokenBucket(spec.calls_per_s, now=time.monotonic()) if spec.calls_per_s else None
        self._trace_hook: Callable[[Submission, str, int, int], None] | None = None
        self.table = ChannelTable(self.header, self.share, self.counters, vm=spec.vm_name,
                                  setup=self._set_up_context)
        self._sticky_reported: set[tuple[int, int]] = set()  # (channel, generation) already logged
        self._kicked: dict[int, tuple[int, int]] = {}  # channel: (generation, completion index) kicked
        self._beat_at = 0  # perf_counter_ns of the last publish_stats
        self.trace_ring = TraceRing(spec.trace_fd) if spec.trace_fd >= 0 else None
        self.set_tracing(spec.trace)
        # pacing (mediator._pacing): the rate this worker serves at, measured once an epoch and
        # published beside its peers'; capped when it is ahead of them on a crowded host
        self.board = self._claim_board(spec.board)
        self.cpus = len(os.sched_getaffinity(0))
        self.cap: float | None = None
        self.allowance: Allowance | None = None  # while capped
        self._paid = 0  # self.counters.calls when the allowance was last paid
        self._rate = 0.0
        self._epoch_at = perf_counter_ns()
        self._calls_at = 0  # self.counters.calls when the epoch began

    def _claim_board(self, path: str) -> Board | None:
        if not path:
            return None
        try:
            board = Board.claim(Path(path))
        except OSError as exc:
            self.log.warning("workers' board unusable: this worker is never paced", path=path, error=str(exc))
            return None
        if board is None:
            self.log.warning("workers' board full: this worker is never paced", path=path)
        return board

    def _set_up_context(self, ctx: ChannelContext) -> None:
        """What every fresh context gets: its pages present, the worker's heartbeat hook, the pinned
        arena, the VM's limits."""
        layout = self.header.layout
        populate(self._map, layout.channel_offset(ctx.region.layout.channel_index), layout.channel_size)
        ctx.executor.between_ops = self.beat_between_ops
        ctx.executor.kernel_output = printf_recorder(self.trace_ring, lambda: self._trace_hook is not None)
        ctx.executor.vm_processes = self.vm_processes
        attach = getattr(ctx.executor, "attach_arena", None)
        if callable(attach):
            attach(ctx.region.arena)
        ctx.server.limiter = self.limiter
        ctx.server.max_async_inflight = self.spec.max_async_inflight
        ctx.server.trace = self._channel_trace(ctx.region.layout.channel_index)
        fast, fds = ctx.server.pinned_fast, self.spec.guest_irq_fds
        if fast is not None:
            fast.c.publish_progress(ChannelField.SQ_HEAD, PROGRESS_NS)
        if fast is not None and fds:
            fd = fds[ctx.region.layout.channel_index % len(fds)]
            fast.c.kick_early(ChannelField.GUEST_NEED_IRQ, ChannelField.SQ_TAIL, fd, KICK_LEAD_NS)

    def vm_processes(self) -> list[tuple[int, int]]:
        """The owning process and device memory of every open channel whose process made a CUDA
        context (NVML's running compute processes)."""
        return [(channel.owner_pid, channel.ctx.executor.memory_used()) for channel in self.table.open
                if channel.ctx is not None and channel.ctx.executor.holds_context()]

    def set_tracing(self, enable: bool) -> None:
        ring = self.trace_ring
        if not enable or ring is None:
            self._trace_hook = None
        else:
            def record(sub: Submission, _name: str, status: int, duration_ns: int) -> None:
                ring.append(time.time_ns(), duration_ns, sub, status, summarize(sub))

            self._trace_hook = record
        for channel in self.table.open:
            if channel.ctx is not None:
                channel.ctx.server.trace = self._channel_trace(channel.index)

    def _channel_trace(self, index: int) -> Callable[[Submission, str, int, int], None] | None:
        """The trace hook of channel ``index``'s server: its records say which channel made the call."""
        ring = self.trace_ring
        if self._trace_hook is None or ring is None:
            return None

        def record(sub: Submission, _name: str, status: int, duration_ns: int) -> None:
            ring.append(time.time_ns(), duration_ns, sub, status, summarize(sub), channel=index)

        return record

    # -- control channel --------------------------------------------------------------------

    def send(self, **message: Any) -> None:
        """Queue ``message`` for the supervisor and send what the socket takes now, without waiting: a
        supervisor being replaced reads it later. Past ``OUTBOX_LIMIT`` unread bytes the newest is
        dropped and counted (only advisory events are sent while serving)."""
        line = json.dumps(message).encode() + b"\n"
        if len(self._outbox) + len(line) > OUTBOX_LIMIT:
            self._outbox_dropped += 1
            if self._outbox_dropped == 1:
                self.log.warning("supervisor not reading its control socket; dropping events",
                                 event=message.get("event"))
            return
        self._outbox += line
        self._flush_outbox()

    def _flush_outbox(self) -> None:
        while self._outbox:
            try:
                sent = self.control.send(self._outbox)
            except BlockingIOError:
                return
            except OSError:  # the other end is closed for good: the EOF in poll_control ends us
                self._outbox = b""
                return
            self._outbox = self._outbox[sent:]

    def poll_control(self) -> None:
        self._flush_outbox()
        try:
            data = self.control.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.log.warning("supervisor gone and no fd store holds its end: nobody can adopt this "
                             "worker; draining and releasing everything")
            self.stopping = True
            return
        self._control_buf += data
        while b"\n" in self._control_buf:
            line, self._control_buf = self._control_buf.split(b"\n", 1)
            self.handle(json.loads(line))

    def handle(self, message: dict[str, Any]) -> None:
        op = message.get("op")
        if op == "trace":
            self.set_tracing(bool(message.get("enable")))
        elif op == "stop":
            self.stopping = True
        elif op == "inject":
            status = int(message.get("status", CUresult.CUDA_ERROR_ILLEGAL_ADDRESS))
            code: CUresult | CublasStatus = CUresult.CUDA_ERROR_UNKNOWN
            for domain in (CUresult, CublasStatus):
                if status in domain._value2member_map_:
                    code = domain(status)
                    break
            wanted = message.get("channel")
            targets = [c for c in self.table.open if wanted is None or c.index == wanted]
            for channel in targets:
                assert channel.ctx is not None
                channel.ctx.executor.inject_fault(code, sticky=bool(message.get("sticky", True)))
            self.log.warning("fault injected", status=int(code), sticky=bool(message.get("sticky", True)),
                             channels=[c.index for c in targets])
        elif op == "set_quota":
            self.share.set_memory_quota(message.get("bytes"))
            self.send(event="quota_set", bytes=message.get("bytes"), id=message.get("id"))
        elif op == "peer_gone":
            peer = message.get("peer")
            if isinstance(peer, int) and not isinstance(peer, bool):
                closed = self.table.peer_gone(peer)
                self.log.info("socket peer gone; its channels closed", peer=peer, channels=closed)
                self.publish_stats()
        else:
            self.log.warning("unknown control message", message=message)

    # -- the loop -----------------------------------------------------------------------------

    def kick_guest(self, channel: Channel) -> bool:
        """Wake the channel's guest if it sleeps; True when it does not (it spins, or is busy)."""
        ctx = channel.ctx
        fence()
        if ctx is not None and ctx.region.u32_view[_NEED_IRQ]:
            fds = self.spec.guest_irq_fds
            os.eventfd_write(fds[channel.index % len(fds)], 1)
            return False
        return True

    def publish_stats(self) -> None:
        counters, table = self.counters, self.table
        counters.memory_used = self.share.memory_used()
        counters.pinned_used = self.share.pinned_used()
        counters.live_handles = self.share.live_handles()
        counters.heartbeat_ns = time.monotonic_ns()
        counters.channels_open = len(table.open)
        counters.channels_opened, counters.channels_closed = table.opened, table.closed
        counters.channels_expired, counters.channels_broken = table.expired, table.broken
        self.stats.write(counters)
        self.stats.write_channels([_channel_stats(c) for c in table])
        self._beat_at = perf_counter_ns()

    def beat_between_ops(self) -> None:
        """Inside one long call (a graph's nodes, one after another): the heartbeat, at most
        ``HEARTBEAT_NS`` apart, so that only a worker that is truly stuck looks hung."""
        if perf_counter_ns() - self._beat_at >= HEARTBEAT_NS:
            self.publish_stats()

    def beat_if_due(self, now_ns: int) -> None:
        """While busy: the heartbeat and a look at control, at most ``HEARTBEAT_NS`` apart."""
        if now_ns - self._beat_at >= HEARTBEAT_NS:
            self.publish_stats()
            self.poll_control()

    def sleep(self, poller: select.poll, timeout_ms: int, *, drained: bool = False) -> None:
        """Sleep on the doorbells and the control socket, then take what woke us. ``drained``: the
        doorbells were read just before the sleep was announced (``drain_doorbells``), so a kick that
        wakes us is left in its eventfd for the next drain, off the way from the wake-up to the first
        entry (0.5-0.8 us there, quiet; more while a guest's kicks hit the same eventfd, #19)."""
        doorbells = self._doorbells
        for fd, _ in poller.poll(timeout_ms):
            if fd in doorbells:
                if not drained:
                    with contextlib.suppress(BlockingIOError):
                        os.eventfd_read(fd)
                self.counters.wakeups += 1
            else:
                self.poll_control()

    def drain_doorbells(self) -> None:
        """Reset every doorbell before announcing a sleep: a kick can only follow the announcement, so
        none is lost, and one left from while we were awake does not end the sleep at once."""
        for fd in self._doorbells:
            with contextlib.suppress(BlockingIOError):
                os.eventfd_read(fd)

    def reconsider_pace(self, now_ns: int) -> None:
        """Once an epoch: this worker's rate, published beside its peers', and its cap."""
        calls = self.counters.calls
        self._rate = smooth(self._rate, calls - self._calls_at, now_ns - self._epoch_at)
        self._calls_at, self._epoch_at = calls, now_ns
        board = self.board
        if board is None:
            return
        monotonic = time.monotonic_ns()
        self.cap = next_cap(self._rate, board.peers(monotonic), self.cpus, self.cap is not None)
        board.publish(monotonic, self._rate, self.cap)
        if self.cap is None:
            self.allowance = None
        elif self.allowance is None:
            self.allowance, self._paid = Allowance(self.cap, now_ns), calls
        else:
            self.allowance.recap(self.cap, now_ns)

    def keep_to_cap(self, allowance: Allowance) -> None:
        """Capped: pay for the calls served since the last payment; overdrawn, sleep until a whole
        quantum is banked again (the heartbeat and control kept between sleeps)."""
        calls = self.counters.calls
        due = allowance.spend(calls - self._paid, perf_counter_ns())
        self._paid = calls
        while due and not self.stopping:
            time.sleep(due / 1e9)
            self.beat_if_due(perf_counter_ns())
            due = allowance.spend(0, perf_counter_ns())

    def _set_need_wakeup(self, value: int) -> None:
        for channel in self.table.open:
            if channel.ctx is not None:
                channel.ctx.region.u32_view[_NEED_WAKEUP] = value

    def _pending(self) -> bool:
        try:
            return any(c.ctx is not None and c.ctx.server.sq.pending() for c in self.table.open)
        except RemoteProtocolError:  # an impossible tail: the next pass closes that channel
            return True

    def serve_pass(self, start: int) -> tuple[int, bool, bool, bool]:
        """One pass over the open channels from the ``start``-th on, ``DRAIN_BUDGET`` entries from each
        at most; returns (served, some channel waits for completion room, some waits for tokens, a
        completion was written for a guest that is awake: it may be spinning for it on this CPU)."""
        served_all = 0
        blocked = limited = handed = False
        for channel, served in self.table.serve_pass(start, DRAIN_BUDGET):
            ctx = channel.ctx
            if ctx is None:  # closed by its own garbage during the pass
                continue
            server = ctx.server
            if served:
                served_all += served
                # a guest sleeps only until a completion comes: wake it when this pass wrote one (a
                # run of posted copies writes none, and a guest woken for nothing spins again for its
                # spin_ns, on a CPU this worker may need: #19, 1.8 us a 4 KiB pinned copy instead of 0.2)
                mark = (channel.generation, server.cq.index)
                if self._kicked.get(channel.index) != mark:
                    self._kicked[channel.index] = mark
                    handed = self.kick_guest(channel) or handed
            blocked = blocked or server.cq_blocked
            limited = limited or server.rate_limited
            if server.sticky is not None and (channel.index, channel.generation) not in self._sticky_reported:
                # the context is poisoned: every later call of this channel fails with it, as a process's
                # context on a GPU; the channel's next open (the process's successor) starts clean
                self._sticky_reported.add((channel.index, channel.generation))
                self.kick_guest(channel)
                self.log.warning("sticky CUDA error: the channel's context fails every later call until "
                                 "it is reopened", channel=channel.index, owner_pid=channel.owner_pid,
                                 status=int(server.sticky.status), reason=server.sticky.message)
                self.send(event="sticky", channel=channel.index, status=int(server.sticky.status),
                          reason=server.sticky.message)
        return served_all, blocked, limited, handed

    def run(self) -> int:
        spec = self.spec
        table = self.table
        poller = select.poll()
        self._doorbells = set(spec.doorbell_fds)
        for fd in spec.doorbell_fds:
            poller.register(fd, select.POLLIN)
        poller.register(self.control.fileno(), select.POLLIN)
        table.scan()
        self.publish_stats()
        self.send(event="ready", pid=os.getpid(), backend=self.backend_name)
        self.log.info("worker serving", backend=self.backend_name, channels=len(table.channels))
        since_yield = 0  # calls served since this worker last yielded the CPU
        busy_since = 0  # when the passes that served something without a break began (0: idle)
        poll = PollWindow(spec.poll_us * 1000, spec.poll_max_us * 1000)  # adapts to the VM's gaps
        idle_since = last_served = perf_counter_ns()
        woken = False  # the worker has just come back from a sleep on its doorbells
        fresh = True  # the counters published since the last call served
        self.counters.poll_window_ns = poll.ns
        room_wait_ms = 0  # back-pressure: how long the last look for completion room waited
        turn = 0
        rescan = False  # a kick woke us: scan once a pass finds nothing queued (below)
        epoch_end = self._epoch_at + EPOCH_NS  # when this worker next reconsiders its pace
        while not self.stopping:
            now = perf_counter_ns()
            if now >= epoch_end:
                self.reconsider_pace(now)
                epoch_end = now + EPOCH_NS
            if table.scan_due(time.monotonic_ns()):
                rescan = False
                if table.scan():
                    self.publish_stats()  # a channel opened or closed: status shows it now
            served, blocked, limited, handed = self.serve_pass(turn)
            turn += 1
            if woken:
                woken = False
                poll.woke(now - last_served, served > 0)
                self.counters.poll_window_ns = poll.ns  # published with the rest, at the latest at a sleep
            if rescan and not served:  # the kick queued nothing: an open or a close, most likely
                rescan = False
                if table.scan():
                    self.publish_stats()
            if served:
                busy_since = busy_since or now
                room_wait_ms = 0
                share, counters = self.share, self.counters
                if share.memory_used() != counters.memory_used or share.pinned_used() != counters.pinned_used:
                    self.publish_stats()  # memory moved: status shows it now, not at the next idle
                now = perf_counter_ns()
                if self.allowance is not None:
                    self.keep_to_cap(self.allowance)
                    now = perf_counter_ns()
                if now - self._beat_at >= HEARTBEAT_NS:
                    self.publish_stats()
                    self.poll_control()
                since_yield += served
                if since_yield >= DRAIN_BUDGET or (handed and now - busy_since >= HANDOFF_AFTER_NS):
                    # the VM keeps the worker busy, or a guest that waited long spins for the completion
                    # just written (HANDOFF_AFTER_NS): let any other runnable worker or guest have the
                    # CPU before the next batch (returns at once when none is waiting)
                    since_yield = 0
                    os.sched_yield()
                idle_since = last_served = perf_counter_ns()
                fresh = False
                continue
            busy_since = 0
            if limited and self.limiter is not None:
                self.beat_if_due(now)
                time.sleep(min(self.limiter.wait_s(time.monotonic()), spec.max_sleep_ms / 1000))
                continue
            if blocked:
                # Back-pressure: a channel's completion ring is full and its next entry needs a
                # completion. A guest kicks after it submits, not after it consumes, so the worker looks
                # again after 1 ms, then twice as long each time, up to max_sleep_ms (the others'
                # kicks wake it sooner); the heartbeat and control are kept.
                if room_wait_ms == 0:
                    self.counters.cq_full_waits += 1
                    self.publish_stats()
                room_wait_ms = min(max(room_wait_ms * 2, 1), spec.max_sleep_ms)
                self.sleep(poller, room_wait_ms)
                self.beat_if_due(perf_counter_ns())
                idle_since = perf_counter_ns()
                continue
            idle = now - idle_since
            if idle < poll.ns and table.open:
                if not fresh and idle >= poll.base_ns:
                    # the VM has paused: status shows its calls now, as when the worker slept after poll_us
                    self.publish_stats()
                    fresh = True
                window = min(poll.ns - idle, IDLE_SLICE_NS, IDLE_SLICE_NS if fresh else poll.base_ns - idle)
                only = table.open[0].ctx if len(table.open) == 1 else None
                if only is not None:
                    # one process: wait for its next entry in C, without the GIL (see the docstring)
                    try:
                        if only.server.sq.spin(window, max(0, SPIN_YIELD_NS - idle)):
                            continue
                    except RemoteProtocolError:
                        continue  # the next pass closes that channel
                else:
                    os.sched_yield()
                    if self._pending():
                        continue
                spent = perf_counter_ns() - idle_since - idle
                if spent >= window and idle + spent < poll.ns:
                    self.poll_control()
                    continue
            # Going to sleep: announce it in every open channel, then look once more.
            self.drain_doorbells()
            self._set_need_wakeup(1)
            fence()
            if self._pending():
                self._set_need_wakeup(0)
                continue
            self.publish_stats()
            fresh = True
            self.counters.sleeps += 1
            until_ms = spec.max_sleep_ms
            look_at = table.next_deadline_ns()
            if look_at is not None:  # a channel is open: look again before its lease may run out
                until_ms = (look_at - time.monotonic_ns()) // 1_000_000 + 1
            self.sleep(poller, max(1, min(spec.max_sleep_ms, until_ms)), drained=True)
            self._set_need_wakeup(0)
            woken = True
            # a kick is often an open or a close: scan as soon as a pass finds nothing queued, at once
            # for those, after the batch for a kick that queued work (the scan of every channel cost a
            # wake-up 5 us on its way to the first copy, quiet; a pass with nothing queued ~1 us)
            rescan = True
            idle_since = perf_counter_ns()
        # Stopping: answer what is already queued, then tell the guests nobody serves them now.
        self.header.set_device_state(DeviceState.DRAINING)
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and self.serve_pass(0)[0]:
            pass
        self.header.set_device_state(DeviceState.STOPPED)
        for channel in table.open:
            self.kick_guest(channel)
        self.close()
        return 0

    def close(self) -> None:
        if self.board is not None:
            self.board.close()
        self.table.release()
        self.share.close_pinned()
        self.publish_stats()
        if self._outbox:  # the last words (``broken``, a lease) are worth a short wait
            try:
                self.control.settimeout(2.0)
                self.control.sendall(self._outbox)
            except OSError:
                pass
        self.log.info("worker released its resources", memory_used=self.share.memory_used())


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    spec = WorkerSpec.from_json(args[0])
    setproctitle.setproctitle(f"vgpu-worker {spec.vm_name}")  # in ps, top and nvidia-smi
    configure_logging(spec.log_level)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides when we stop
    try:
        worker = Worker(spec)
        apply_worker_limits(worker.backend_name, spec.memory_limit, spec.memory_limit_max)
        signal.signal(signal.SIGTERM, lambda *_: setattr(worker, "stopping", True))
        return worker.run()
    except MemoryError:  # past the hard limit: what it left half done cannot be trusted, so end here
        structlog.get_logger("worker").critical(
            "worker out of host memory: an allocation failed past its hard limit; exiting",
            vm=spec.vm_name, limit=spec.memory_limit)
        return EXIT_OUT_OF_MEMORY


if __name__ == "__main__":
    sys.exit(main())
