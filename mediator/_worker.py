"""A VM's worker process: map the region, build the executor, serve the ring, sleep when idle.

Spawned by the supervisor as ``python -m mediator._worker '<json>'`` with its file descriptors
passed (never forked: CUDA may be loaded). The loop polls the submission ring while work arrives —
a spin in C on the guest's tail (``SubmissionConsumer.spin``, without the GIL), flat out for
``SPIN_YIELD_NS`` and then yielding the CPU between looks; after ``poll_us`` of nothing, or as soon
as the spin sees the CPU contended (a yield that ran another task: more busy processes than cores,
where spinning only keeps the guest it waits for off the CPU), it sets the need-wakeup flag,
fences, looks once more, and sleeps on the doorbell eventfd and the control socket. The sleep is
bounded (``max_sleep_ms``) so that even a lost wakeup costs at most that long. A VM that keeps
its worker busy (``DRAIN_BUDGET`` calls served since the last yield, a flood or a tight loop of
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

import json
import mmap
import os
import select
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from time import perf_counter_ns
from typing import Any, Final

import setproctitle
import structlog

from executor import DeviceConfig, Executor, create_executor
from protocol import (
    CublasStatus,
    CUresult,
    DeviceState,
    HeaderField,
    Region,
    RemoteProtocolError,
    Submission,
    fence,
)

from ._limits import TokenBucket
from ._logging import configure_logging
from ._server import RingServer
from ._stats import StatsBlock, WorkerCounters
from ._trace import TraceRing, summarize
from ._worker_memory import EXIT_OUT_OF_MEMORY, apply_worker_limits

__all__ = ["DRAIN_BUDGET", "HEARTBEAT_NS", "IDLE_SLICE_NS", "SPIN_YIELD_NS", "WorkerSpec", "main"]

_NEED_IRQ: Final = HeaderField.GUEST_NEED_IRQ >> 2
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
#: events queued for a supervisor that is not reading (being restarted), at most
OUTBOX_LIMIT: Final = 1 << 20


@dataclass
class WorkerSpec:
    """What the supervisor tells a worker (serialised as JSON on its command line)."""

    vm_id: int
    vm_name: str
    region_fd: int
    region_size: int
    doorbell_fd: int
    guest_irq_fd: int
    stats_fd: int
    control_fd: int
    trace_fd: int = -1
    trace: bool = False
    backend: str = "sim"
    memory_quota: int | None = None
    device: dict[str, Any] = field(default_factory=dict)
    poll_us: int = 50
    max_sleep_ms: int = 100
    log_level: str = "info"
    calls_per_s: float | None = None
    max_async_inflight: int = 0
    # host memory bounds (mediator._worker_memory) and the lowest device address it may hand out
    host_budget: int | None = None
    memory_limit: int | None = None
    memory_limit_max: int | None = None
    va_floor: int = 0

    def to_json(self) -> str:
        return json.dumps(self.__dict__)

    @classmethod
    def from_json(cls, text: str) -> WorkerSpec:
        return cls(**json.loads(text))


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
        # populated up front: a first touch per arena page would fault on every new payload offset
        self._map = mmap.mmap(spec.region_fd, spec.region_size, flags=mmap.MAP_SHARED | mmap.MAP_POPULATE)
        self.region = Region(memoryview(self._map))
        self.stats = StatsBlock(spec.stats_fd)
        self.counters = WorkerCounters(pid=os.getpid())
        self.control = socket.socket(fileno=spec.control_fd)
        self.control.setblocking(False)
        self._control_buf = b""
        self._outbox = b""  # what the supervisor has not taken yet (it may be restarting)
        self._outbox_dropped = 0
        self.stopping = False
        self.executor: Executor = create_executor(
            spec.backend,  # type: ignore[arg-type]
            device=_device_config(spec.device), memory_quota=spec.memory_quota,
            host_budget=spec.host_budget, va_floor=spec.va_floor,
            on_va_lease=lambda end: self.send(event="va_lease", end=end))
        self.executor.between_ops = self.beat_between_ops
        attach = getattr(self.executor, "attach_arena", None)
        if callable(attach):
            attach(self.region.arena)
        self.server = RingServer(self.region, self.executor, self.counters, vm=spec.vm_name)
        if spec.calls_per_s:
            self.server.limiter = TokenBucket(spec.calls_per_s, now=time.monotonic())
        self.server.max_async_inflight = spec.max_async_inflight
        self._sticky_reported = False
        self._beat_at = 0  # perf_counter_ns of the last publish_stats
        self._words = self.region.u32_view
        self.trace_ring = TraceRing(spec.trace_fd) if spec.trace_fd >= 0 else None
        self.set_tracing(spec.trace)

    def set_tracing(self, enable: bool) -> None:
        ring = self.trace_ring
        if not enable or ring is None:
            self.server.trace = None
            return

        def record(sub: Submission, _name: str, status: int, duration_ns: int) -> None:
            ring.append(time.time_ns(), duration_ns, sub, status, summarize(sub))

        self.server.trace = record

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
            self.executor.inject_fault(code, sticky=bool(message.get("sticky", True)))
            self.log.warning("fault injected", status=int(code), sticky=bool(message.get("sticky", True)))
        elif op == "set_quota":
            setter = getattr(self.executor, "set_memory_quota", None)
            if callable(setter):
                setter(message.get("bytes"))
                self.send(event="quota_set", bytes=message.get("bytes"), id=message.get("id"))
            else:
                self.send(event="error", reason="backend has no quota control", id=message.get("id"))
        else:
            self.log.warning("unknown control message", message=message)

    # -- the loop -----------------------------------------------------------------------------

    def kick_guest(self) -> None:
        fence()
        if self._words[_NEED_IRQ]:
            os.eventfd_write(self.spec.guest_irq_fd, 1)

    def publish_stats(self) -> None:
        counters = self.counters
        counters.memory_used = self.executor.memory_used()
        counters.live_handles = self.executor.live_handles()
        counters.heartbeat_ns = time.monotonic_ns()
        self.stats.write(counters)
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

    def sleep(self, poller: select.poll, timeout_ms: int) -> None:
        """Sleep on the doorbell and the control socket, then take what woke us."""
        for fd, _ in poller.poll(timeout_ms):
            if fd == self.spec.doorbell_fd:
                os.eventfd_read(fd)
                self.counters.wakeups += 1
            else:
                self.poll_control()

    def wait_for_room(self, poller: select.poll) -> None:
        """Back-pressure: the guest's completion ring is full and its next entry needs a completion.

        A guest kicks after it submits, not after it consumes completions, so no doorbell says that
        room appeared: the worker looks again after 1 ms, then after twice as long each time, up to
        ``max_sleep_ms`` (a guest that consumes while ``host_need_wakeup`` is 1 may kick to end the
        wait at once). The heartbeat is published at least every ``HEARTBEAT_NS`` and the control
        socket is served while it sleeps: a guest that never reads its completions costs a wakeup per
        ``max_sleep_ms`` and is never mistaken for a hung worker. An impossible completion head
        raises, as in ``drain``.
        """
        region, cq = self.region, self.server.cq
        self.counters.cq_full_waits += 1
        timeout_ms = 1
        region.set_u32(HeaderField.HOST_NEED_WAKEUP, 1)
        fence()
        try:
            self.publish_stats()  # status shows the wait at once
            while not self.stopping and not cq.space():
                self.sleep(poller, timeout_ms)
                timeout_ms = min(timeout_ms * 2, self.spec.max_sleep_ms)
                self.beat_if_due(perf_counter_ns())  # (a doorbell storm wakes it at every kick)
        finally:
            region.set_u32(HeaderField.HOST_NEED_WAKEUP, 0)

    def run(self) -> int:
        spec = self.spec
        region = self.region
        server = self.server
        poller = select.poll()
        poller.register(spec.doorbell_fd, select.POLLIN)
        poller.register(self.control.fileno(), select.POLLIN)
        self.publish_stats()
        self.send(event="ready", pid=os.getpid(), backend=self.executor.backend_name)
        self.log.info("worker serving", backend=self.executor.backend_name)
        since_yield = 0  # calls served since this worker last yielded the CPU
        poll_ns = spec.poll_us * 1000
        idle_since = perf_counter_ns()
        try:
            while not self.stopping:
                served = server.drain(DRAIN_BUDGET)
                if server.sticky is not None and not self._sticky_reported:
                    # the context is poisoned: the supervisor rebuilds it (a reset, new epoch)
                    self._sticky_reported = True
                    self.kick_guest()
                    self.send(event="sticky", status=int(server.sticky.status),
                              reason=server.sticky.message)
                if server.rate_limited and not served:
                    assert server.limiter is not None
                    self.beat_if_due(perf_counter_ns())
                    time.sleep(min(server.limiter.wait_s(time.monotonic()), spec.max_sleep_ms / 1000))
                    continue
                if server.cq_blocked and not served:
                    self.wait_for_room(poller)
                    idle_since = perf_counter_ns()
                    continue
                if served:
                    if self.executor.memory_used() != self.counters.memory_used:
                        self.publish_stats()  # memory moved: status shows it now, not at the next idle
                    self.kick_guest()
                    now = perf_counter_ns()
                    if now - self._beat_at >= HEARTBEAT_NS:  # beat_if_due, inlined: once per batch
                        self.publish_stats()
                        self.poll_control()
                    since_yield += served
                    if since_yield >= DRAIN_BUDGET:
                        # this VM keeps the worker busy (a flood, or a guest in a tight loop of calls):
                        # let any other runnable worker or guest have the CPU before the next batch
                        # (returns at once when none is waiting), so busy VMs take turns instead of
                        # whole scheduler slices.
                        since_yield = 0
                        os.sched_yield()
                        now = perf_counter_ns()
                    idle_since = now
                    continue
                idle = perf_counter_ns() - idle_since
                if idle < poll_ns:
                    # Wait for the guest's next entry in C, without the GIL; after SPIN_YIELD_NS of
                    # nothing, yield the CPU between looks. The spin gives up early when it sees the
                    # CPU contended (more runnable workers and guests than cores): then this worker
                    # sleeps at once, and its guest's kick wakes it, instead of spinning in the way
                    # of the very guest it waits for.
                    window = min(poll_ns - idle, IDLE_SLICE_NS)
                    if server.sq.spin(window, max(0, SPIN_YIELD_NS - idle)):
                        continue
                    spent = perf_counter_ns() - idle_since - idle
                    if spent >= window and idle + spent < poll_ns:
                        self.poll_control()  # a slice of a longer poll: look at the control socket
                        continue
                    # the poll is over (or the CPU is contended): publish, then sleep, as below
                # Going to sleep: announce it, then look once more (see the module docstring).
                region.set_u32(HeaderField.HOST_NEED_WAKEUP, 1)
                fence()
                if server.sq.pending():
                    region.set_u32(HeaderField.HOST_NEED_WAKEUP, 0)
                    continue
                self.publish_stats()
                self.counters.sleeps += 1
                self.sleep(poller, spec.max_sleep_ms)
                region.set_u32(HeaderField.HOST_NEED_WAKEUP, 0)
                idle_since = perf_counter_ns()
        except RemoteProtocolError as exc:
            self.log.error("region broken by the guest; no longer served", reason=exc.message)
            region.set_device_state(DeviceState.BROKEN)
            self.publish_stats()
            self.send(event="broken", reason=exc.message)
            self.close()
            return 3
        # Stopping: answer what is already queued, then tell the guest nobody serves it now.
        region.set_device_state(DeviceState.DRAINING)
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and server.drain():
            self.kick_guest()
        region.set_device_state(DeviceState.STOPPED)
        self.kick_guest()
        self.close()
        return 0

    def close(self) -> None:
        self.executor.close()
        self.publish_stats()
        if self._outbox:  # the last words (``broken``, a lease) are worth a short wait
            try:
                self.control.settimeout(2.0)
                self.control.sendall(self._outbox)
            except OSError:
                pass
        self.log.info("worker released its resources", memory_used=self.executor.memory_used())


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    spec = WorkerSpec.from_json(args[0])
    setproctitle.setproctitle(f"vgpu-worker {spec.vm_name}")  # in ps, top and nvidia-smi
    configure_logging(spec.log_level)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides when we stop
    try:
        worker = Worker(spec)
        apply_worker_limits(worker.executor.backend_name, spec.memory_limit, spec.memory_limit_max)
        signal.signal(signal.SIGTERM, lambda *_: setattr(worker, "stopping", True))
        return worker.run()
    except MemoryError:  # past the hard limit: what it left half done cannot be trusted, so end here
        structlog.get_logger("worker").critical(
            "worker out of host memory: an allocation failed past its hard limit; exiting",
            vm=spec.vm_name, limit=spec.memory_limit)
        return EXIT_OUT_OF_MEMORY


if __name__ == "__main__":
    sys.exit(main())
