"""One VM's endpoint and session: the listening socket, the handshake, the worker, the teardown.

The asyncio shell around a worker process. A session is the VM's region and worker with a set of
socket peers: QEMU is one, host programs on the Unix socket are peers too, several at once, each
with its own peer id; the guest processes behind them claim channels of the one region (docs/protocol.md
§1). A peer that disconnects has every channel it used closed at once (the worker frees them); the
session ends when its last peer has gone. A connection that arrives while a session is starting or
ending waits for it (it is then added, or starts the next session) instead of being refused; a
refusal that is still right (not the VM's owner, the VM being removed, too many peers) is sent to the
program with its reason (:func:`._ivshmem.send_refusal`). A session owns its region memfd, its
eventfds, its stats block and its worker; all of them are released when it ends, whichever way it
ends. The session's state lives in :mod:`._session`.

A session also outlives its supervisor: its fds are kept by name in :data:`._fdstore.FDS` (and in
systemd's fd store), its bookkeeping in a memfd beside them (:class:`._adopt.SessionRecord`). A
supervisor that is about to be replaced *parks* its sessions (they stop watching and close nothing);
the next one *adopts* them from the fds it inherits (:meth:`VmSession.adopt`), the worker serving the
guest all along.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import mmap
import os
import resource
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from protocol import ChannelState, CloseReason, DeviceState, RegionHeader, lay_out_region

from ._adopt import UNKNOWN_EXIT, AdoptedWorker, SessionRecord, WorkerProcess
from ._board import BOARD_NAME
from ._channel_status import channel_status
from ._config import MediatorConfig, VmConfig
from ._events import EVENTS
from ._fdstore import FDS, close_quietly
from ._ivshmem import HOST_PEER_ID, send_handshake, send_refusal
from ._lifetime import LifetimeCounters
from ._ratelimit import RateLimitedLog
from ._session import SessionState, SessionStateMachine
from ._sockets import SocketAccess, bind_unix, peer_credentials, socket_access
from ._stats import StatsBlock, WorkerCounters
from ._trace import TraceRing
from ._worker import WorkerSpec, worker_environment
from ._worker_memory import WorkerMemory, exit_reason, oom_kills, worker_memory

__all__ = ["MAX_PEERS", "VmEndpoint", "VmSession"]

#: socket peers one VM's session serves at once (QEMU and host programs); more are refused, saying why
MAX_PEERS = 64


@dataclass
class _Rate:
    """Calls per second from two samples a while apart."""

    last_calls: int = 0
    last_time: float = field(default_factory=time.monotonic)
    per_second: float = 0.0

    def sample(self, calls: int) -> None:
        now = time.monotonic()
        if now - self.last_time >= 0.5:
            self.per_second = (calls - self.last_calls) / (now - self.last_time)
            self.last_calls, self.last_time = calls, now


class VmSession:
    """One VM's region, eventfds and worker, and the socket peers it serves."""

    def __init__(self, vm: VmConfig, config: MediatorConfig, peer: socket.socket, client_id: int,
                 *, tracing: bool = False, memory_quota: int | None = None) -> None:
        self.vm = vm
        self.config = config
        self.client_id = client_id  # the first peer's id
        self.peers: dict[int, socket.socket] = {client_id: peer}
        self._peers_changed = asyncio.Event()
        self._log_peers: RateLimitedLog | None = None  # made in the loop (it schedules its flushes)
        self.serving = asyncio.Event()  # set once peers can be added (or the session has ended)
        self.ending = False  # the last peer has gone (or a stop was asked): no peer is added now
        self.fsm = SessionStateMachine()
        self.log = structlog.get_logger("session").bind(vm=vm.name, client=client_id)
        # the channels' share and the pinned area, in the smallest power of two holding both
        self.region_size, self.pinned_size = config.region_of(vm)
        self.memory_quota = memory_quota
        self.started = time.time()
        self.region_fd = -1
        self.doorbell_fds: list[int] = []  # one per vector
        self.guest_irq_fds: list[int] = []
        self.stats: StatsBlock | None = None
        self.process: WorkerProcess | None = None
        self.state_fd = -1  # the memfd with this session's SessionRecord
        self.worker_start = 0  # process_start() of the worker: a later supervisor checks it is the same
        self.parked = False  # handed over to the next supervisor: nothing is closed or stopped
        self.watched = asyncio.Event()  # an adopted session is watched again (or has ended)
        self.control: socket.socket | None = None
        self._control_reader: asyncio.StreamReader | None = None
        self._control_writer: asyncio.StreamWriter | None = None
        self._map: mmap.mmap | None = None
        self._region: RegionHeader | None = None
        self.final_counters = WorkerCounters()
        self.rate = _Rate()
        self._stop = asyncio.Event()
        self.exit_reason = ""
        self.tracing = tracing
        self.trace_ring = TraceRing.create(vm.name)
        self.restart_times: list[float] = []
        self._reset_requested: str | None = None
        self.restarts = 0
        self.calls_before_restart = 0
        self.errors_before_restart = 0
        # the end of the device addresses this attachment's workers may have handed out: the next
        # worker starts there, so an old pointer never names a new allocation (docs/threat-model.md)
        self.va_floor = 0
        self.memory: WorkerMemory | None = None  # the running worker's memory bounds
        self._oom_kills = oom_kills()

    # -- resources ----------------------------------------------------------------------------

    def _create_region(self) -> None:
        self.region_fd = os.memfd_create(f"vgpu-{self.vm.name}", os.MFD_CLOEXEC)
        os.ftruncate(self.region_fd, self.region_size)
        self._map = mmap.mmap(self.region_fd, self.region_size)
        self._lay_out()
        self._region = RegionHeader(memoryview(self._map))
        vectors = self.vm.doorbell_vectors
        self.doorbell_fds = [os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK) for _ in range(vectors)]
        self.guest_irq_fds = [os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK) for _ in range(vectors)]
        self.stats = StatsBlock.create(self.vm.name)

    def _lay_out(self, *, epoch: int = 0, state: DeviceState = DeviceState.READY,
                 close_reason: CloseReason = CloseReason.NONE) -> None:
        assert self._map is not None
        lay_out_region(memoryview(self._map), vm_id=self.vm.id, channels=self.vm.channels,
                       vectors=self.vm.doorbell_vectors, lease_ms=self.vm.channel_lease_ms, epoch=epoch,
                       state=state, host_peer_id=HOST_PEER_ID, close_reason=close_reason,
                       pinned_size=self.pinned_size)

    async def _spawn_worker(self) -> None:
        assert self.stats is not None
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.control = ours
        device = self.config.device.model_dump()
        device.pop("total_memory", None)
        device["total_memory"] = self.config.device.total_memory
        self.memory = memory = worker_memory(self.memory_quota, self.config.device.total_memory,
                                             self.config.mediator.worker_memory_overhead)
        self._oom_kills = oom_kills()
        spec = WorkerSpec(
            vm_id=self.vm.id, vm_name=self.vm.name, region_fd=self.region_fd,
            region_size=self.region_size, doorbell_fds=self.doorbell_fds,
            guest_irq_fds=self.guest_irq_fds, stats_fd=self.stats.fd, control_fd=theirs.fileno(),
            trace_fd=self.trace_ring.fd, trace=self.tracing,
            backend=self.config.mediator.backend, memory_quota=self.memory_quota, device=device,
            poll_us=self.config.mediator.poll_us, poll_max_us=self.config.mediator.poll_max_us,
            max_sleep_ms=self.config.mediator.max_sleep_ms,
            log_level=self.config.mediator.log_level, calls_per_s=self.vm.calls_per_s,
            max_async_inflight=self.config.mediator.max_async_inflight,
            host_budget=memory.host_budget, memory_limit=memory.data_limit,
            memory_limit_max=memory.data_limit_max, va_floor=self.va_floor,
            board=str(self.config.mediator.socket_dir / BOARD_NAME) if self.config.mediator.pace_workers
            else "",
        )
        fds = (self.region_fd, *self.doorbell_fds, *self.guest_irq_fds, self.stats.fd, theirs.fileno(),
               self.trace_ring.fd)
        # posix_spawn, not asyncio's subprocess: asyncio kills a child whose transport it closes, and a
        # worker must outlive this supervisor (a pidfd watches it, _adopt.AdoptedWorker)
        for fd in fds:
            os.set_inheritable(fd, True)
        try:
            pid = os.posix_spawn(sys.executable, [sys.executable, "-m", "mediator._worker", spec.to_json()],
                                 worker_environment())
        finally:
            for fd in fds:
                os.set_inheritable(fd, False)
            theirs.close()
        self.process = AdoptedWorker(pid)
        self.worker_start = process_start(pid) or 0
        self._control_reader, self._control_writer = await asyncio.open_unix_connection(sock=ours)

    # -- surviving the supervisor -----------------------------------------------------------------

    def _fd_name(self, kind: str) -> str:
        return f"vm{self.vm.id}.{kind}"

    def _keep_fds(self) -> None:
        """Everything the VM needs kept by name: from now on a new supervisor can adopt it."""
        assert self.stats is not None and self.control is not None
        if self.state_fd < 0:
            self.state_fd = os.memfd_create(f"vgpu-session-{self.vm.name}", os.MFD_CLOEXEC)
        self._save_record()
        kept = [("region", self.region_fd), ("stats", self.stats.fd), ("trace", self.trace_ring.fd),
                ("control", self.control.fileno()), ("state", self.state_fd)]
        kept += [(f"peer.{peer_id}", peer.fileno()) for peer_id, peer in self.peers.items()]
        kept += [(f"doorbell.{v}", fd) for v, fd in enumerate(self.doorbell_fds)]
        kept += [(f"irq.{v}", fd) for v, fd in enumerate(self.guest_irq_fds)]
        for kind, fd in kept:
            FDS.keep(self._fd_name(kind), fd)

    def _forget_fds(self) -> None:
        kinds = ["region", "stats", "trace", "control", "state"]
        kinds += [f"peer.{peer_id}" for peer_id in self.peers]
        kinds += [f"doorbell.{v}" for v in range(len(self.doorbell_fds))]
        kinds += [f"irq.{v}" for v in range(len(self.guest_irq_fds))]
        for kind in kinds:
            FDS.forget(self._fd_name(kind))

    def _save_record(self) -> None:
        if self.state_fd < 0 or self.process is None:
            return
        SessionRecord(vm_id=self.vm.id, client_id=self.client_id, region_size=self.region_size,
                      worker_pid=self.process.pid, worker_start=self.worker_start, started=self.started,
                      restarts=self.restarts,
                      calls_before_restart=self.calls_before_restart,
                      errors_before_restart=self.errors_before_restart, va_floor=self.va_floor,
                      tracing=self.tracing, memory_quota=self.memory_quota).write(self.state_fd)

    def park(self) -> None:
        """Stop watching this session and leave everything open and running for the next supervisor."""
        self.parked = True
        self.stop("parked for the next supervisor")

    @classmethod
    def adopt(cls, vm: VmConfig, config: MediatorConfig, fds: dict[str, int]) -> VmSession:
        """A session a previous supervisor parked (or left by crashing), from the fds it kept."""
        record = SessionRecord.read(fds["state"])
        peers = {int(kind.split(".", 1)[1]): fd for kind, fd in fds.items() if kind.startswith("peer.")}
        if not peers:
            raise KeyError("peer")
        sockets = {peer_id: socket.socket(fileno=fd) for peer_id, fd in peers.items()}
        for sock in sockets.values():
            sock.setblocking(False)
        first = record.client_id if record.client_id in sockets else min(sockets)
        session = cls(vm, config, sockets[first], first, tracing=record.tracing,
                      memory_quota=record.memory_quota)
        session.peers = sockets
        session.region_size = record.region_size
        session.started = record.started
        session.region_fd = fds["region"]
        session._map = mmap.mmap(session.region_fd, session.region_size)
        session._region = RegionHeader(memoryview(session._map))
        session.pinned_size = session._region.layout.pinned_size  # as laid out, whatever the config says now
        vectors = session._region.layout.vectors
        session.doorbell_fds = [fds[f"doorbell.{v}"] for v in range(vectors)]
        session.guest_irq_fds = [fds[f"irq.{v}"] for v in range(vectors)]
        session.stats = StatsBlock(fds["stats"])
        session.trace_ring.close()
        session.trace_ring = TraceRing(fds["trace"])
        session.control = socket.socket(fileno=fds["control"])
        session.state_fd = fds["state"]
        session.restarts = record.restarts
        session.calls_before_restart = record.calls_before_restart
        session.errors_before_restart = record.errors_before_restart
        session.va_floor = record.va_floor
        if process_start(record.worker_pid) == record.worker_start:  # still that worker, not a namesake
            with contextlib.suppress(ProcessLookupError):
                session.process = AdoptedWorker(record.worker_pid)
                session.worker_start = record.worker_start
        session.memory = worker_memory(record.memory_quota, config.device.total_memory,
                                       config.mediator.worker_memory_overhead)
        return session

    async def run_adopted(self) -> None:
        """Watch an adopted session as :meth:`run` watches a new one (a worker found gone is replaced:
        the guest sees a reset, as after a crash)."""
        self.fsm.transition(SessionState.HANDSHAKING)
        try:
            assert self.control is not None
            self._control_reader, self._control_writer = await asyncio.open_unix_connection(sock=self.control)
            self.fsm.transition(SessionState.SERVING)
            self.serving.set()
            if self.process is None:
                await self._restart_worker("worker ended while no supervisor watched it")
            assert self.process is not None
            self.watched.set()
            epoch = self._region.epoch if self._region else None
            self.log.info("vm adopted", pid=self.process.pid, epoch=epoch, restarts=self.restarts)
            EVENTS.publish("vm_adopted", vm=self.vm.name, vm_id=self.vm.id, client=self.client_id)
            await self._serve()
        except (OSError, RuntimeError, TimeoutError, ValueError) as exc:
            self.log.error("adopted session failed", error=str(exc))
            if self.fsm.state in (SessionState.HANDSHAKING, SessionState.SERVING):
                self.fsm.transition(SessionState.BROKEN, str(exc))
        finally:
            self.watched.set()
            self.serving.set()
            if not self.parked:
                await asyncio.shield(self._teardown())

    async def _read_control(self) -> dict[str, Any] | None:
        assert self._control_reader is not None
        line = await self._control_reader.readline()
        if not line:
            return None
        message: dict[str, Any] = json.loads(line)
        return message

    async def send_control(self, **message: Any) -> None:
        if self._control_writer is None or self._control_writer.is_closing():
            return
        self._control_writer.write(json.dumps(message).encode() + b"\n")
        with contextlib.suppress(ConnectionError):
            await self._control_writer.drain()

    # -- lifecycle ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve this peer until it disconnects, the worker ends, or ``stop`` is called."""
        self.fsm.transition(SessionState.HANDSHAKING)
        try:
            self._create_region()
            await self._spawn_worker()
            ready = await asyncio.wait_for(self._read_control(), timeout=60)
            if not ready or ready.get("event") != "ready":
                raise RuntimeError(f"worker did not start: {ready}")
            self._handshake(self.peers[self.client_id], self.client_id)
            self.fsm.transition(SessionState.SERVING)
            self.serving.set()
            self._keep_fds()
            self.log.info("vm attached", pid=ready.get("pid"), backend=ready.get("backend"),
                          region_size=self.region_size)
            EVENTS.publish("vm_attached", vm=self.vm.name, vm_id=self.vm.id, client=self.client_id,
                           backend=ready.get("backend"))
            await self._serve()
        except (OSError, RuntimeError, TimeoutError) as exc:
            self.log.error("session failed", error=str(exc))
            if self.fsm.state in (SessionState.HANDSHAKING, SessionState.SERVING):
                self.fsm.transition(SessionState.BROKEN, str(exc))
        finally:
            self.serving.set()
            if not self.parked:
                await asyncio.shield(self._teardown())

    def _handshake(self, peer: socket.socket, peer_id: int) -> None:
        peer.setblocking(True)
        peer.settimeout(5.0)  # a peer that does not read its handshake is not waited for long
        try:
            send_handshake(peer, client_id=peer_id, region_fd=self.region_fd,
                           host_vector_fds=self.doorbell_fds, guest_vector_fds=self.guest_irq_fds)
        finally:
            peer.setblocking(False)

    def _peer_log(self) -> RateLimitedLog:
        if self._log_peers is None:  # a program may connect at any rate: a line a second at most
            self._log_peers = RateLimitedLog(self.log.info)
        return self._log_peers

    def add_peer(self, peer: socket.socket, peer_id: int) -> None:
        """Serve one more peer (a second program, QEMU beside host programs) from the same region."""
        if self.fsm.state is not SessionState.SERVING or self.ending:
            raise RuntimeError(f"session is {'ending' if self.ending else self.fsm.state.value}")
        self._handshake(peer, peer_id)
        self.peers[peer_id] = peer
        if self.state_fd >= 0:
            FDS.keep(self._fd_name(f"peer.{peer_id}"), peer.fileno())
        self._peers_changed.set()
        self._peer_log()("peer attached", peer=peer_id, peers=len(self.peers))
        EVENTS.publish("peer_attached", vm=self.vm.name, vm_id=self.vm.id, client=peer_id)

    async def _drop_peer(self, peer_id: int) -> None:
        """A peer disconnected: every channel its processes used is closed by the worker at once."""
        peer = self.peers.pop(peer_id, None)
        if peer is None:
            return
        FDS.forget(self._fd_name(f"peer.{peer_id}"))
        with contextlib.suppress(OSError):
            peer.close()
        await self.send_control(op="peer_gone", peer=peer_id)
        self._peer_log()("peer detached", peer=peer_id, peers=len(self.peers))

    async def _watch_peers(self) -> str:
        """Until the last peer has disconnected (each one that goes has its channels closed)."""
        loop = asyncio.get_running_loop()

        async def eof(sock: socket.socket) -> None:
            with contextlib.suppress(OSError):
                while await loop.sock_recv(sock, 4096):
                    pass

        readers: dict[int, asyncio.Task[None]] = {}
        try:
            while True:
                for peer_id, sock in self.peers.items():
                    if peer_id not in readers:
                        readers[peer_id] = asyncio.create_task(eof(sock),
                                                               name=f"{self.vm.name}:peer{peer_id}")
                self._peers_changed.clear()
                changed = asyncio.create_task(self._peers_changed.wait())
                await asyncio.wait([*readers.values(), changed], return_when=asyncio.FIRST_COMPLETED)
                changed.cancel()
                for peer_id, task in list(readers.items()):
                    if task.done():
                        del readers[peer_id]
                        await self._drop_peer(peer_id)
                if not self.peers:
                    self.ending = True  # at once: a connection arriving now waits for the next session
                    return "peer disconnected"
        finally:
            for task in readers.values():
                task.cancel()
            await asyncio.gather(*readers.values(), return_exceptions=True)

    async def _serve(self) -> None:
        """Serve until the session ends; a worker that dies or hangs is replaced (epoch bumped)."""
        while True:
            reason = await self._serve_one_worker()
            if self.parked:
                return
            if not reason.startswith(("worker exited", "worker hung", "worker control")):
                break
            if self._reset_requested is not None:  # the operator's reset, not a failure
                reason, self._reset_requested = self._reset_requested, None
            elif not self._may_restart():
                reason = f"{reason}; restart limit reached"
                break
            else:
                self.log.error("worker lost; restarting it", reason=reason)
            await self._restart_worker(reason)
        broken = reason.startswith(("worker exited", "worker hung", "region broken", "worker control"))
        self.log.info("vm session ending", reason=reason)
        if broken:
            self.fsm.transition(SessionState.BROKEN, reason)
        else:
            self.fsm.transition(SessionState.DRAINING, reason)

    def _may_restart(self) -> bool:
        now = time.monotonic()
        self.restart_times = [t for t in self.restart_times if now - t < 60.0]
        if len(self.restart_times) >= self.config.mediator.restart_limit:
            return False
        self.restart_times.append(now)
        return True

    async def _restart_worker(self, reason: str) -> None:
        """A fresh worker behind a fresh ring: RESETTING, new epoch, READY once it serves."""
        assert self._region is not None and self._map is not None
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGKILL)
            await self.process.wait()
        await self._drain_control()
        if self._control_writer is not None:
            self._control_writer.close()
        epoch = self._region.epoch + 1
        self._region.set_device_state(DeviceState.RESETTING)
        self._lay_out(epoch=epoch, state=DeviceState.RESETTING, close_reason=CloseReason.RESET)
        assert self.stats is not None
        lost = self.stats.read()  # the dead worker's own counts
        self.calls_before_restart += lost.calls
        self.errors_before_restart += lost.errors
        await self._spawn_worker()
        ready = await asyncio.wait_for(self._read_control(), timeout=60)
        if not ready or ready.get("event") != "ready":
            raise RuntimeError(f"restarted worker did not start: {ready}")
        self.restarts += 1
        if self.state_fd >= 0:  # kept: the new worker's control socket replaces the old one's
            assert self.control is not None
            FDS.keep(self._fd_name("control"), self.control.fileno())
            self._save_record()
        self._region.set_device_state(DeviceState.READY)
        for fd in self.guest_irq_fds:  # wake the guests that sleep waiting for us
            os.eventfd_write(fd, 1)
        self.log.warning("vm reset: worker restarted", epoch=epoch, pid=ready.get("pid"),
                         restarts=self.restarts, reason=reason)
        EVENTS.publish("vm_reset", vm=self.vm.name, vm_id=self.vm.id, epoch=epoch, reason=reason)

    async def _serve_one_worker(self) -> str:
        assert self.process is not None

        async def peer_gone() -> str:
            return await self._watch_peers()

        async def worker_exit() -> str:
            assert self.process is not None
            code = await self.process.wait()
            if code == UNKNOWN_EXIT:
                return "worker exited (its status went to whoever reaps orphans: it outlived a supervisor)"
            killed = self._oom_kills is not None and (oom_kills() or 0) > self._oom_kills
            return exit_reason(code, oom_killed=killed,
                               data_limit=self.memory.data_limit if self.memory else None)

        async def worker_events() -> str:
            while True:
                message = await self._read_control()
                if message is None:  # the worker is gone, or about to be: say why when it can be known
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(2.0):
                            return await worker_exit()
                    return "worker control channel closed"
                if message.get("event") == "broken":
                    return f"region broken: {message.get('reason')}"
                if message.get("event") == "va_lease":
                    self._note_va_lease(message)
                    continue
                if message.get("event") == "sticky":  # that channel's context only (the worker logged it)
                    EVENTS.publish("channel_sticky", vm=self.vm.name, vm_id=self.vm.id,
                                   channel=message.get("channel"), status=message.get("status"))
                    continue
                details = {k: v for k, v in message.items() if k != "event"}
                self.log.info("worker event", worker_event=message.get("event"), **details)

        async def watchdog() -> str:
            timeout_ns = int(self.config.mediator.worker_timeout_s * 1e9)
            while True:
                await asyncio.sleep(min(1.0, self.config.mediator.worker_timeout_s / 4))
                beat = self.counters().heartbeat_ns
                if beat and time.monotonic_ns() - beat > timeout_ns:
                    assert self.process is not None
                    self.log.error("worker stopped answering; killing it", pid=self.process.pid,
                                   silent_s=(time.monotonic_ns() - beat) / 1e9)
                    with contextlib.suppress(ProcessLookupError):
                        self.process.send_signal(signal.SIGKILL)
                    await self.process.wait()
                    return "worker hung"

        async def stopped() -> str:
            await self._stop.wait()
            return self.exit_reason or "stopped"

        tasks = [asyncio.create_task(c(), name=f"{self.vm.name}:{c.__name__}")
                 for c in (peer_gone, worker_exit, worker_events, watchdog, stopped)]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            # Prefer the most telling reason when several finished together.
            reasons = [t.result() for t in done]
            return next((r for r in reasons if r.startswith("region broken")), reasons[0])
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def stop(self, reason: str) -> None:
        self.ending = True
        self.exit_reason = reason
        self._stop.set()

    def _note_va_lease(self, message: dict[str, Any]) -> None:
        end = message.get("end")
        if isinstance(end, int) and not isinstance(end, bool) and end > self.va_floor:
            self.va_floor = end
            self._save_record()

    async def _drain_control(self) -> None:
        """The lost worker's last words: the VA leases it reported before it died (its control
        socket reads to EOF now that it is gone; bounded, in case a child still holds it open)."""
        if self._control_reader is None:
            return
        with contextlib.suppress(TimeoutError, ValueError, OSError):
            async with asyncio.timeout(1.0):
                while (message := await self._read_control()) is not None:
                    if message.get("event") == "va_lease":
                        self._note_va_lease(message)

    async def _teardown(self) -> None:
        """Stop the worker (it releases the VM's GPU resources), then close everything we hold."""
        self._forget_fds()
        if self.process is not None and self.process.returncode is None:
            await self.send_control(op="stop")
            try:
                await asyncio.wait_for(self.process.wait(), self.config.mediator.drain_timeout_s)
            except TimeoutError:
                self.log.error("worker did not stop in time; killing it", pid=self.process.pid)
                with contextlib.suppress(ProcessLookupError):
                    self.process.send_signal(signal.SIGKILL)
                await self.process.wait()
        if self.stats is not None:
            self.final_counters = self.stats.read()
            self.final_counters.calls += self.calls_before_restart
            self.final_counters.errors += self.errors_before_restart
            self.stats.close()
            self.stats = None
        if self._region is not None:
            broken = self.fsm.state is SessionState.BROKEN
            self._region.set_device_state(DeviceState.BROKEN if broken else DeviceState.STOPPED)
            self._region.release()
            self._region = None
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._control_writer is not None:
            self._control_writer.close()
        for fd in (self.region_fd, *self.doorbell_fds, *self.guest_irq_fds):
            if fd >= 0:
                os.close(fd)
        self.region_fd = -1
        self.doorbell_fds, self.guest_irq_fds = [], []
        if self.state_fd >= 0:
            close_quietly(self.state_fd)
            self.state_fd = -1
        for peer in self.peers.values():
            with contextlib.suppress(OSError):
                peer.close()
        self.peers.clear()
        if self.fsm.state in (SessionState.DRAINING, SessionState.BROKEN):
            self.fsm.transition(SessionState.CLOSED)
        self.log.info("vm detached", state=self.fsm.state.value, reason=self.fsm.reason)
        EVENTS.publish("vm_detached", vm=self.vm.name, vm_id=self.vm.id, state=self.fsm.state.value,
                       reason=self.fsm.reason)

    def channels(self) -> list[dict[str, Any]]:
        """The channels in use or used since the worker started (status, metrics, MQTT): index, state,
        owner's pid and peer, generation, calls, errors, memory used, live handles, opened at."""
        if self.stats is None or self._region is None:
            return []
        stats = self.stats.read_channels(self._region.layout.channel_count)
        return [channel_status(c).model_dump() for c in stats if c.state != ChannelState.FREE or c.generation]

    def counters(self) -> WorkerCounters:
        """This worker's counters; calls and errors include the workers it replaced."""
        if self.stats is None:
            return self.final_counters
        counters = self.stats.read()
        counters.calls += self.calls_before_restart
        counters.errors += self.errors_before_restart
        return counters

    def reset(self, reason: str) -> None:
        """Replace the worker (fresh context, new epoch) as a crash would, but as a requested reset:
        the guest sees RESETTING and starts over; the restart limit does not count it."""
        if self.process is None or self.process.returncode is not None:
            raise RuntimeError("no worker to reset")
        self._reset_requested = reason
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGKILL)

    async def inject_fault(self, status: int, sticky: bool, channel: int | None = None) -> None:
        await self.send_control(op="inject", status=status, sticky=sticky, channel=channel)

    async def set_tracing(self, enable: bool) -> None:
        self.tracing = enable
        self._save_record()
        await self.send_control(op="trace", enable=enable)

    async def set_quota(self, quota: int | None) -> None:
        self.memory_quota = quota
        self._save_record()
        await self.send_control(op="set_quota", bytes=quota)
        self._follow_quota(quota)

    def _follow_quota(self, quota: int | None) -> None:
        """The worker's soft data limit follows its quota (up to the hard limit, which follows the
        device's memory), so a raised quota can be used without a new worker."""
        if self.memory is None or self.process is None or self.process.returncode is not None:
            return
        self.memory = memory = worker_memory(quota, self.config.device.total_memory,
                                             self.config.mediator.worker_memory_overhead)
        with contextlib.suppress(OSError, ValueError):  # not sim (no limit set), or the worker just ended
            _, hard = resource.prlimit(self.process.pid, resource.RLIMIT_DATA)
            if hard != resource.RLIM_INFINITY:
                resource.prlimit(self.process.pid, resource.RLIMIT_DATA, (min(memory.data_limit, hard), hard))


def process_start(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot, /proc/PID/stat): with the pid, it names one
    process for good (a pid may be given to another process once the first has ended)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return int(stat.read().rsplit(b") ", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


class VmEndpoint:
    """A configured VM: its listening socket, its current session, and totals across sessions."""

    def __init__(self, vm: VmConfig, config: MediatorConfig, access: SocketAccess | None = None) -> None:
        self.vm = vm
        self.config = config
        self.path: Path = config.vm_socket(vm)
        # who may attach: resolved by the daemon (it refuses to start on an unknown user)
        self.access = access if access is not None else socket_access(vm.owner, vm.group)
        self.log = structlog.get_logger("endpoint").bind(vm=vm.name)
        # a peer can connect at any rate: one line a second at most, the counters hold the totals
        self._log_refused = RateLimitedLog(self.log.warning)
        self.refused_peers = 0  # connections from a process that is not this VM's owner
        self.session: VmSession | None = None
        self.session_task: asyncio.Task[None] | None = None
        self._listener: socket.socket | None = None
        self._accept_task: asyncio.Task[None] | None = None
        self._adopting: VmSession | None = None  # handed over at start(), until adopted() has waited
        self._adopting_task: asyncio.Task[None] | None = None
        self._next_client = 1
        self.sessions_served = 0
        self.peers_served = 0  # connections served (each a peer of a session), over the VM's life
        self.peers_lost = 0  # connections that ended before their handshake was through
        self._log_lost = RateLimitedLog(self.log.info)
        self.refused = 0
        self.calls_before = 0
        self.errors_before = 0
        self.retiring = False
        self.tracing = vm.trace
        self.memory_quota = vm.memory_quota  # the configured quota, or the operator's since
        self.quota_set_by_operator = False  # set_quota at run time overrides the file until it changes
        self.last_trace: TraceRing | None = None
        # what the last session's worker still held after releasing everything (both must be 0)
        self.last_session: dict[str, Any] | None = None
        self.lifetime = LifetimeCounters()  # bytes, latency, …: over every session and worker
        self.restarts_before = 0  # worker restarts in ended sessions

    async def start(self) -> None:
        """Listen on the VM's socket (the daemon has checked its directory: see :mod:`._sockets`); a
        listener and session handed over by the previous supervisor are taken up where they are."""
        access = self.access
        inherited = FDS.take(f"vm{self.vm.id}.listen")
        if inherited is not None and self.path.exists():  # (the file gone: bind a fresh one)
            self._listener = socket.socket(fileno=inherited)
            self._listener.setblocking(False)
        else:
            if inherited is not None:
                close_quietly(inherited)
            self._listener = bind_unix(self.path, mode=access.mode, uid=access.uid, gid=access.gid)
        FDS.keep(f"vm{self.vm.id}.listen", self._listener.fileno())
        self._accept_task = asyncio.create_task(self._accept_loop(), name=f"{self.vm.name}:accept")
        self.log.info("vm endpoint listening", path=str(self.path), mode=f"{access.mode:04o}",
                      uid=access.uid if access.uid != -1 else None,
                      gid=access.gid if access.gid != -1 else None, inherited=inherited is not None)
        handed_over = FDS.take_group(f"vm{self.vm.id}.")
        if handed_over:
            self._adopt(handed_over)

    async def adopted(self) -> None:
        """Until a session handed over at :meth:`start` is watched again (at once if there is none)."""
        session, task, self._adopting = self._adopting, self._adopting_task, None
        if session is not None and task is not None:
            waiter = asyncio.ensure_future(session.watched.wait())
            await asyncio.wait([waiter, task], return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()

    def _adopt(self, fds: dict[str, int]) -> None:
        """Take up the session the previous supervisor left serving; one that cannot be taken up is
        closed (its worker sees its control socket end, drains and exits; QEMU sees the device stop)."""
        try:
            session = VmSession.adopt(self.vm, self.config, fds)
        except (KeyError, OSError, ValueError, TypeError) as exc:
            self.log.error("handed-over session not adopted; closing it", error=repr(exc), fds=sorted(fds))
            for kind, fd in fds.items():
                FDS.forget(f"vm{self.vm.id}.{kind}")
                close_quietly(fd)
            return
        self.session = session
        self._next_client = session.client_id % 0xFFFF + 1
        self.session_task = asyncio.create_task(self._run_session(session, adopted=True),
                                                name=f"{self.vm.name}:session")
        self._adopting, self._adopting_task = session, self.session_task

    def set_access(self, access: SocketAccess) -> None:
        """New owner/group from a reload: the socket file's, and the check of later peers."""
        if access == self.access:
            return
        os.chown(self.path, access.uid, access.gid, follow_symlinks=False)
        os.chmod(self.path, access.mode)  # our own socket in a directory only we can write
        self.access = access
        self.log.info("vm socket access changed", mode=f"{access.mode:04o}", uid=access.uid, gid=access.gid)

    def _refuse(self, conn: socket.socket, reason: str, **details: Any) -> None:
        """Refuse a connection, telling the program why (it logs it) and logging it here, rate-limited."""
        self._log_refused(f"connection refused: {reason}", **details)
        send_refusal(conn, f"vgpu-mediator: vm {self.vm.name}: {reason}")
        conn.close()

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._listener is not None
        while True:
            conn, _ = await loop.sock_accept(self._listener)
            peer = peer_credentials(conn)
            described = peer.describe() if peer else None
            if not self.access.policy.allows(peer):
                self.refused_peers += 1
                self._refuse(conn, "peer is not this VM's owner", peer=described,
                             refused_peers=self.refused_peers)
                continue
            await self._attach(conn, described)

    async def _attach(self, conn: socket.socket, described: str | None) -> None:
        """Add the connection to the session being served, or start one. A session still starting is
        waited for, and one ending is waited out: back-to-back programs are all served."""
        while True:
            if self.retiring:
                self.refused += 1
                self._refuse(conn, "the VM is being removed", peer=described, refused=self.refused)
                return
            session, task = self.session, self.session_task
            if session is None or task is None:
                break
            if session.fsm.state is SessionState.HANDSHAKING:
                waiter = asyncio.ensure_future(session.serving.wait())
                await asyncio.wait([waiter, task], return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                continue
            if session.fsm.state is SessionState.SERVING and not session.ending:
                if len(session.peers) >= MAX_PEERS:
                    self.refused += 1
                    self._refuse(conn, f"it already serves {MAX_PEERS} peers", peer=described,
                                 refused=self.refused)
                    return
                client_id = self._take_client_id()
                try:
                    session.add_peer(conn, client_id)
                except (OSError, RuntimeError) as exc:
                    self.peers_lost += 1
                    self._log_lost("peer not attached", peer=described, error=str(exc),
                                   peers_lost=self.peers_lost)
                    conn.close()
                else:
                    self.peers_served += 1
                return
            await asyncio.shield(task)  # draining or closed: the next session starts once it has ended
        client_id = self._take_client_id()
        self.peers_served += 1
        self.session = VmSession(self.vm, self.config, conn, client_id, tracing=self.tracing,
                                 memory_quota=self.memory_quota)
        self.session_task = asyncio.create_task(self._run_session(self.session),
                                                name=f"{self.vm.name}:session")

    def _take_client_id(self) -> int:
        in_use = set(self.session.peers) if self.session is not None else set()
        while True:
            client_id = self._next_client
            self._next_client = self._next_client % 0xFFFF + 1
            if client_id not in in_use and client_id != HOST_PEER_ID:
                return client_id

    async def _run_session(self, session: VmSession, *, adopted: bool = False) -> None:
        try:
            await (session.run_adopted() if adopted else session.run())
        finally:
            counters = session.counters()
            self.last_session = {"memory_used": counters.memory_used, "live_handles": counters.live_handles,
                                 "calls": counters.calls, "reason": session.fsm.reason}
            self.calls_before += counters.calls
            self.lifetime.session_ended(id(session), counters)
            self.restarts_before += session.restarts
            self.errors_before += counters.errors
            self.sessions_served += 1
            if self.session is session:
                self.session = None
            if self.last_trace is not None:
                self.last_trace.close()
            self.last_trace = session.trace_ring  # kept for the operator until the next session ends

    async def stop(self, reason: str = "daemon stopping") -> None:
        """Stop listening and end the current session (draining it)."""
        if self._accept_task is not None:
            self._accept_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._accept_task
        if self._listener is not None:
            FDS.forget(f"vm{self.vm.id}.listen")
            self._listener.close()
            self._listener = None
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        if self.session is not None and self.session_task is not None:
            self.session.stop(reason)
            await asyncio.shield(self.session_task)

    async def park(self) -> None:
        """Hand over to the next supervisor: stop accepting and watching, keep everything open (the
        socket file stays; connections wait in the listen backlog)."""
        if self._accept_task is not None:
            self._accept_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._accept_task
        if self.session is not None and self.session_task is not None:
            self.session.park()
            await asyncio.shield(self.session_task)

    async def set_quota(self, quota: int | None, *, by_operator: bool = False) -> None:
        """The VM's quota from now on: for the attached session at once, and for later ones."""
        self.memory_quota = quota
        self.quota_set_by_operator = by_operator
        if self.session is not None:
            await self.session.set_quota(quota)

    async def set_tracing(self, enable: bool) -> None:
        self.tracing = enable
        if self.session is not None:
            await self.session.set_tracing(enable)

    def rename(self, vm: VmConfig, path: Path) -> None:
        """A reload gave this VM (same id) a new name: its socket file moves, the listener stays.

        A Unix socket is reached through its file's inode, so renaming the file keeps the bound socket
        (and an attached guest) serving; OSError (the new name is taken) leaves everything as it was."""
        if path.exists():
            raise FileExistsError(f"{path} exists")
        os.rename(self.path, path)
        self.log.info("vm renamed", new_name=vm.name, path=str(path))
        self.path = path
        self.log = structlog.get_logger("endpoint").bind(vm=vm.name)
        self._log_refused = RateLimitedLog(self.log.warning)

    @property
    def trace_ring(self) -> TraceRing | None:
        return self.session.trace_ring if self.session is not None else self.last_trace

    def status(self) -> dict[str, Any]:
        session = self.session
        counters = session.counters() if session else WorkerCounters()
        if session:
            session.rate.sample(counters.calls)
        life = self.lifetime.observe(id(session), counters) if session else self.lifetime.total()
        quota = session.memory_quota if session else self.memory_quota
        return {
            "id": self.vm.id,
            "name": self.vm.name,
            "socket": str(self.path),
            "state": session.fsm.state.value if session else "listening",
            "connected": session is not None,
            "worker_pid": counters.pid or None,
            "calls": self.calls_before + counters.calls,
            "errors": self.errors_before + counters.errors,
            "protocol_errors": life.protocol_errors,  # this and the counts below: the VM's lifetime
            "session_calls": counters.calls,
            "calls_per_s": round(session.rate.per_second, 1) if session else 0.0,
            "memory_used": counters.memory_used,
            "pinned_used": counters.pinned_used,  # of the region's pinned area (cudaMallocHost)
            "pinned_size": session.pinned_size if session else self.config.region_of(self.vm)[1],
            "live_handles": counters.live_handles,
            "poll_window_us": counters.poll_window_ns // 1000,  # adapts to its gaps (mediator/_polling.py)
            "peers": len(session.peers) if session else 0,
            "peers_served": self.peers_served,
            "peers_lost": self.peers_lost,
            "channel_count": self.vm.channels,
            "channels_open": counters.channels_open,
            "channels_opened": counters.channels_opened,
            "channels_expired": counters.channels_expired,
            "channels_broken": counters.channels_broken,
            "channels": session.channels() if session else [],
            "last_session": self.last_session,
            "memory_quota": quota,
            # where the quota comes from: "operator" (set_quota at run time, until the file's changes)
            # or "config"; config_memory_quota is the file's
            "memory_quota_source": "operator" if self.quota_set_by_operator else "config",
            "config_memory_quota": self.vm.memory_quota,
            "retiring": self.retiring,
            "calls_per_s_limit": self.vm.calls_per_s,
            "sessions": self.sessions_served,
            "restarts": session.restarts if session else 0,  # in this session
            "worker_restarts": self.restarts_before + (session.restarts if session else 0),
            "epoch": session._region.epoch if session and session._region else None,
            "refused": self.refused,
            "refused_peers": self.refused_peers,
            "tracing": self.tracing,
            "wakeups": life.wakeups,
            "sleeps": life.sleeps,
            "bytes_htod": life.bytes_htod,
            "bytes_dtoh": life.bytes_dtoh,
            "throttles": life.throttles,
            "cq_full_waits": life.cq_full_waits,
            "latency_sum_ns": life.latency_sum_ns,
            "latency": life.latency,
        }
