"""The supervisor: one endpoint per configured VM, the control socket, signals, systemd.

Before it listens anywhere the daemon checks its socket directory (ours, writable by nobody else),
takes the directory's lock (one daemon per directory) and resolves every configured user and group;
any failure is one line on stderr and exit status 2 (:class:`HostSetupError`). Two control sockets:
``control.sock`` for operators and ``control-ro.sock`` for readers (status, traces), each checked
against the peer's credentials (:mod:`._control` has the roles).

SIGTERM/SIGINT drain every session (queued calls are answered, regions marked STOPPED, GPU resources
released) and the daemon exits 0. Two ways to replace the supervisor under running VMs
(docs/operations.md, "Upgrading and restarting"): SIGUSR2 re-executes it (the code on disk now)
handing every VM's fds to the new image; and under systemd with an fd store (``$FDSTORE``), SIGTERM
*parks* the sessions and exits 0 — systemd keeps their fds and gives them to the next start (a
restart), or closes them (a stop: the workers, seeing their control sockets end, drain and exit).
The workers keep serving throughout; the next supervisor adopts them (:mod:`._fdstore`, :mod:`._adopt`).
SIGHUP re-reads the configuration file: new VMs get an endpoint,
removed VMs lose theirs once idle (a connected one keeps serving until its peer leaves), changed
quotas reach the running workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from executor import resolve_backend

from ._config import ConfigError, MediatorConfig, VmConfig, load_config
from ._control import (
    MAX_REQUEST_BYTES,
    ControlRefusedError,
    ControlRequest,
    DetachRequest,
    InjectFaultRequest,
    ResetRequest,
    Role,
    SetQuotaRequest,
    StatusRequest,
    TraceRequest,
    greeting,
    parse_request,
)
from ._events import EVENTS
from ._fdstore import FDS, inherited, reexec, store_enabled
from ._notify import notify, watchdog_interval
from ._ratelimit import RateLimitedLog
from ._sockets import (
    DirectoryLock,
    HostSetupError,
    PeerCredentials,
    PeerPolicy,
    SocketAccess,
    bind_unix,
    lock_socket_dir,
    peer_credentials,
    prepare_socket_dir,
    resolve_group,
    socket_access,
)
from ._vm import VmEndpoint

if TYPE_CHECKING:
    from ._metrics import MetricsServer
    from ._mqtt import MqttLink

__all__ = ["Daemon"]

log = structlog.get_logger("daemon")


class Daemon:
    def __init__(self, config: MediatorConfig, config_path: Path | None = None) -> None:
        self.config = config
        self.config_path = config_path
        self.endpoints: dict[int, VmEndpoint] = {}
        self.started = time.time()
        self._stop = asyncio.Event()
        self._handover: str | None = None  # "reexec" or "exit": leave the VMs serving (see run)
        self._control: list[asyncio.Server] = []
        self._locks: list[DirectoryLock] = []
        self.operators = PeerPolicy()  # set from control_group by _prepare_host
        self.readers = PeerPolicy()
        self.control_refused = 0  # connections refused on the control sockets
        self.control_errors = 0  # malformed or refused control requests
        self._log_control_refused = RateLimitedLog(log.warning)
        self._log_control_error = RateLimitedLog(log.warning)
        self.backend, self.backend_reason = resolve_backend(config.mediator.backend)
        self.mqtt: MqttLink | None = None
        self.metrics: MetricsServer | None = None
        self._extras: list[asyncio.Task[None]] = []
        self._retirements: set[asyncio.Task[None]] = set()  # removed VMs waiting for their guest

    # -- run ------------------------------------------------------------------------------------

    def _prepare_host(self) -> dict[int, SocketAccess]:
        """Check the socket directories, take the lock, resolve users and groups (HostSetupError)."""
        section = self.config.mediator
        directories = dict.fromkeys((section.socket_dir, section.control_path.parent))
        for directory in directories:
            prepare_socket_dir(directory)
        accesses = self._resolve_accesses(self.config)
        self.operators, self.readers = self._control_policies(self.config)
        try:
            for directory in directories:  # a control socket elsewhere is ours alone too
                self._locks.append(lock_socket_dir(directory))
        except HostSetupError:
            self._release_locks()
            raise
        return accesses

    def _release_locks(self) -> None:
        for lock in self._locks:
            lock.release()
        self._locks = []

    @staticmethod
    def _resolve_accesses(config: MediatorConfig) -> dict[int, SocketAccess]:
        accesses = {}
        for index, vm in enumerate(config.vm):
            try:
                accesses[vm.id] = socket_access(vm.owner, vm.group)
            except HostSetupError as exc:
                raise HostSetupError(f"vm[{index}] ({vm.name}): {exc}") from None
        return accesses

    @staticmethod
    def _control_policies(config: MediatorConfig) -> tuple[PeerPolicy, PeerPolicy]:
        section = config.mediator
        try:
            ops = frozenset({resolve_group(section.control_group)}) if section.control_group is not None \
                else frozenset()
            readers = frozenset({resolve_group(section.control_readers)}) \
                if section.control_readers is not None else frozenset()
        except HostSetupError as exc:
            raise HostSetupError(f"mediator.control_group/control_readers: {exc}") from None
        return PeerPolicy(gids=ops), PeerPolicy(gids=ops | readers)

    async def run(self) -> int:
        # What the previous supervisor handed over (none at a first start). A start that fails (a
        # configuration mistake) leaves it in systemd's store for the next try: only a stop ends VMs.
        FDS.adopt(inherited())
        accesses = self._prepare_host()
        try:
            code = await self._run(accesses)
        finally:
            self._release_locks()
        if self._handover == "reexec":
            log.info("re-executing the supervisor", fds=len(FDS.snapshot()))
            reexec(FDS.snapshot())
        return code

    def request_handover(self, why: str, how: str) -> None:
        """Leave the VMs serving for the next supervisor: ``reexec`` now, or ``exit`` (systemd's store
        keeps the fds)."""
        log.info("handover requested", signal=why, how=how)
        self._handover = how
        self._stop.set()

    def _on_sigterm(self) -> None:
        if store_enabled():
            self.request_handover("SIGTERM", "exit")
        else:
            self.request_stop("SIGTERM")

    def _close_unclaimed(self) -> None:
        """Fds handed over for no configured VM: closed (a worker among them drains and exits)."""
        leftover = FDS.unclaimed()
        if leftover:
            log.warning("handed-over fds for no configured VM closed", names=leftover)
        for name in leftover:
            FDS.forget(name)

    async def _run(self, accesses: dict[int, SocketAccess]) -> int:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, self.request_stop, "SIGINT")
        loop.add_signal_handler(signal.SIGTERM, self._on_sigterm)
        loop.add_signal_handler(signal.SIGUSR2, self.request_handover, "SIGUSR2", "reexec")
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.reload()))
        log.info("mediator starting", backend=self.backend, backend_reason=self.backend_reason,
                 vms=len(self.config.vm), socket_dir=str(self.config.mediator.socket_dir))
        if self.config.mediator.allow_fault_injection:
            log.warning("fault injection is enabled (allow_fault_injection): for drills and tests only")
        try:
            for vm in self.config.vm:
                endpoint = VmEndpoint(vm, self.config, accesses[vm.id])
                self.endpoints[vm.id] = endpoint
                await endpoint.start()
            self._close_unclaimed()
            # READY=1 says every VM handed over is watched again (a restart is over for systemd)
            await asyncio.gather(*(e.adopted() for e in self.endpoints.values()))
            await self._start_extras()  # before the control socket: a status request sees them running
            await self._start_control()
        except HostSetupError:
            # with a store, adopted VMs are left to it (parked) for a start that succeeds
            keep = store_enabled()
            await asyncio.gather(*((e.park() if keep else e.stop()) for e in self.endpoints.values()),
                                 return_exceptions=True)
            await self._stop_extras()
            self._close_control()
            raise
        notify("READY=1")
        self._notify_status()
        watchdog = asyncio.create_task(self._watchdog(), name="watchdog")
        await self._stop.wait()
        watchdog.cancel()
        for task in self._retirements:
            task.cancel()
        if self._handover is not None:
            if self._handover == "exit":
                notify("STOPPING=1")
            log.info("mediator handing over: VMs keep serving", attached=sum(
                1 for e in self.endpoints.values() if e.session is not None))
            await asyncio.gather(*(e.park() for e in self.endpoints.values()), return_exceptions=True)
        else:
            notify("STOPPING=1")
            log.info("mediator stopping: draining sessions")
            await asyncio.gather(*(e.stop() for e in self.endpoints.values()), return_exceptions=True)
        await self._stop_extras()
        self._close_control()
        log.info("mediator stopped" if self._handover is None else "mediator handed over")
        return 0

    async def _start_extras(self) -> None:
        """MQTT and metrics: optional, and never in the way of serving VMs (their failures are logged)."""
        if self.config.mqtt.enabled:
            from ._mqtt import MqttLink

            self.mqtt = MqttLink(self.config.mqtt, self.status, self.handle)
            self._extras.append(asyncio.create_task(self.mqtt.run(), name="mqtt"))
        if self.config.metrics.enabled:
            from ._metrics import MetricsServer, gpu_uuid

            self.metrics = MetricsServer(self.config.metrics, self.status, backend=self.backend,
                                         gpu=gpu_uuid(self.backend, self.config.device.uuid))
            try:
                await self.metrics.start()
            except OSError as exc:
                log.error("metrics endpoint could not start; serving VMs without it",
                          bind=self.config.metrics.bind, port=self.config.metrics.port, error=str(exc))
                self.metrics = None

    async def _stop_extras(self) -> None:
        if self.mqtt is not None:
            await self.mqtt.goodbye()
        for task in self._extras:
            task.cancel()
        await asyncio.gather(*self._extras, return_exceptions=True)
        if self.metrics is not None:
            await self.metrics.stop()

    def request_stop(self, why: str = "requested") -> None:
        log.info("stop requested", signal=why)
        self._stop.set()

    async def _watchdog(self) -> None:
        interval = watchdog_interval()
        while True:
            await asyncio.sleep(interval or 5.0)
            if interval:
                notify("WATCHDOG=1")
            self._notify_status()

    def _notify_status(self) -> None:
        attached = sum(1 for e in self.endpoints.values() if e.session is not None)
        notify(f"STATUS=serving {attached}/{len(self.endpoints)} VMs on {self.backend}")

    # -- reload -----------------------------------------------------------------------------------

    async def reload(self) -> None:
        if self.config_path is None:
            log.warning("SIGHUP ignored: no configuration file")
            return
        try:
            new = load_config(self.config_path)
            old_paths = (self.config.mediator.socket_dir, self.config.mediator.control_path)
            if (new.mediator.socket_dir, new.mediator.control_path) != old_paths:
                raise ConfigError("socket_dir and control_socket take effect only at a restart (the "
                                  "directory is checked and locked when the daemon starts)")
            accesses = self._resolve_accesses(new)
            operators, readers = self._control_policies(new)
        except (ConfigError, HostSetupError) as exc:
            log.error("reload failed; keeping the running configuration", error=str(exc))
            return
        notify("RELOADING=1")
        self.operators, self.readers = operators, readers  # socket paths and modes need a restart
        self.config = new
        wanted = {vm.id: vm for vm in new.vm}
        for vm_id, endpoint in list(self.endpoints.items()):
            if vm_id not in wanted:
                if endpoint.session is None:
                    await self._remove(endpoint, "removed from configuration")
                elif not endpoint.retiring:
                    endpoint.retiring = True
                    log.warning("vm removed from configuration but connected; it goes when detached",
                                vm=endpoint.vm.name)
                    self._retirements.add(asyncio.create_task(self._retire(endpoint),
                                                              name=f"{endpoint.vm.name}:retire"))
        for vm_id, vm in wanted.items():
            existing = self.endpoints.get(vm_id)
            if existing is None:
                added = VmEndpoint(vm, new, accesses[vm_id])
                try:
                    await added.start()
                except HostSetupError as exc:
                    log.error("vm not added", vm=vm.name, error=str(exc))
                    continue
                self.endpoints[vm_id] = added
                log.info("vm added", vm=vm.name)
                continue
            await self._update(existing, vm, new, accesses[vm_id])
        notify("READY=1")
        self._notify_status()
        log.info("configuration reloaded", vms=len(self.endpoints))

    async def _update(self, endpoint: VmEndpoint, vm: VmConfig, config: MediatorConfig,
                      access: SocketAccess) -> None:
        """A VM still (or again) in the file: its name, quota and owner from the file."""
        if endpoint.retiring:  # removed and re-added while its guest stayed attached: it stays
            endpoint.retiring = False
            log.info("vm re-added before its guest detached; it stays", vm=vm.name)
        if vm.name != endpoint.vm.name:
            old_name = endpoint.vm.name
            try:
                endpoint.rename(vm, config.vm_socket(vm))
            except OSError as exc:
                log.error("vm not renamed; it keeps its old name until the next reload", vm=old_name,
                          new_name=vm.name, error=str(exc))
                vm = vm.model_copy(update={"name": old_name})
            else:
                EVENTS.publish("vm_renamed", vm=vm.name, vm_id=vm.id, old_name=old_name)
        if endpoint.vm.memory_quota != vm.memory_quota:  # the file's change wins over an operator's
            await endpoint.set_quota(vm.memory_quota)
        try:
            endpoint.set_access(access)
        except OSError as exc:
            log.error("vm socket access not changed", vm=vm.name, error=exc.strerror)
        endpoint.vm = vm
        endpoint.config = config

    async def _remove(self, endpoint: VmEndpoint, reason: str) -> None:
        if self.endpoints.get(endpoint.vm.id) is not endpoint:
            return  # already gone (removed, re-added and removed again while attached)
        await endpoint.stop(reason)  # first: its socket file is unlinked before the id is free again
        del self.endpoints[endpoint.vm.id]
        log.info("vm removed", vm=endpoint.vm.name)
        EVENTS.publish("vm_removed", vm=endpoint.vm.name, vm_id=endpoint.vm.id)

    async def _retire(self, endpoint: VmEndpoint) -> None:
        """A VM removed while attached goes once its guest detaches (unless re-added meanwhile)."""
        try:
            if endpoint.session_task is not None:
                await asyncio.wait({endpoint.session_task})  # its outcome is the session's to log
            if endpoint.retiring and not self._stop.is_set():
                await self._remove(endpoint, "removed from configuration")
        finally:
            self._retirements.discard(asyncio.current_task())

    # -- control socket ---------------------------------------------------------------------------

    async def _start_control(self) -> None:
        """``control.sock`` for operators (control_group), ``control-ro.sock`` for readers too."""
        section = self.config.mediator
        for path, role, group in ((section.control_path, Role.OPERATOR, section.control_group),
                                  (section.control_ro_path, Role.READER,
                                   section.control_readers if section.control_readers is not None
                                   else section.control_group)):
            gid = resolve_group(group) if group is not None else -1
            sock = bind_unix(path, mode=0o660 if gid != -1 else 0o600, gid=gid)
            serve = functools.partial(self._serve_control, role=role)
            # the limit is the longest line readline() takes: a request and its newline
            server = await asyncio.start_unix_server(serve, sock=sock, limit=MAX_REQUEST_BYTES + 1)
            self._control.append(server)
            log.info("control socket listening", path=str(path), role=role.name.lower(),
                     gid=gid if gid != -1 else None)

    def _close_control(self) -> None:
        section = self.config.mediator
        for server in self._control:
            server.close()
        if self._control:
            for path in (section.control_path, section.control_ro_path):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        self._control = []

    def _peer_role(self, peer: PeerCredentials | None, ceiling: Role) -> Role | None:
        """What this peer may do on a socket that allows at most ``ceiling``; None: nothing."""
        if peer is None:  # no credentials from the kernel: the socket file's mode decides
            return ceiling
        if self.operators.allows(peer):
            return ceiling
        if self.readers.allows(peer):
            return Role.READER
        return None

    async def _serve_control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                             role: Role) -> None:
        peer = peer_credentials(writer.get_extra_info("socket"))
        allowed = self._peer_role(peer, role)
        try:
            if allowed is None:
                self.control_refused += 1
                self._log_control_refused("control connection refused: peer is not an operator or reader",
                                          peer=peer.describe() if peer else None,
                                          refused=self.control_refused)
                await self._reply(writer, {"ok": False, "error": "permission denied: not a member of "
                                           "control_group or control_readers"})
                return
            await self._reply(writer, greeting(allowed,
                                               fault_injection=self.config.mediator.allow_fault_injection))
            while True:
                try:
                    line = await reader.readline()
                except ValueError:  # longer than a request may be: answer, and end the connection
                    await self._reply(writer, self._refused(ControlRefusedError(
                        f"request is longer than {MAX_REQUEST_BYTES} bytes")))
                    return
                if not line:
                    return
                try:
                    request = parse_request(line.rstrip(b"\r\n"))
                except ControlRefusedError as refused:
                    await self._reply(writer, self._refused(refused))
                    continue
                reply = await self.handle(request, allowed)
                if not reply.get("ok"):
                    self._refused(ControlRefusedError(str(reply.get("error")), request.id), cmd=request.cmd)
                await self._reply(writer, reply if request.id is None else {"id": request.id, **reply})
        except ConnectionError:
            pass
        finally:
            writer.close()

    def _refused(self, refused: ControlRefusedError, cmd: str | None = None) -> dict[str, Any]:
        self.control_errors += 1
        self._log_control_error("control request refused", reason=refused.reason, cmd=cmd,
                                refused_requests=self.control_errors)
        reply: dict[str, Any] = {"ok": False, "error": refused.reason}
        if refused.request_id is not None:
            reply["id"] = refused.request_id
        return reply

    @staticmethod
    async def _reply(writer: asyncio.StreamWriter, reply: dict[str, Any]) -> None:
        writer.write(json.dumps(reply).encode() + b"\n")
        await writer.drain()

    async def handle(self, request: ControlRequest, role: Role = Role.OPERATOR) -> dict[str, Any]:
        """Carry out a checked request for a sender of ``role`` (MQTT: an operator)."""
        if request.required_role > role:
            return {"ok": False, "error": f"{request.cmd} changes the daemon: it needs an operator "
                    "(control_group, on the control socket); this connection may only read"}
        if isinstance(request, StatusRequest):
            return {"ok": True, **self.status()}
        endpoint = self._endpoint(request.vm)
        if isinstance(request, SetQuotaRequest):
            if endpoint is None:
                return {"ok": False, "error": f"no VM {request.vm!r}"}
            await endpoint.set_quota(request.bytes, by_operator=True)
            log.info("quota set by operator", vm=endpoint.vm.name, bytes=request.bytes)
            return {"ok": True}
        if isinstance(request, TraceRequest):
            if endpoint is None:
                return {"ok": False, "error": f"no VM {request.vm!r}"}
            if request.enable is not None:
                await endpoint.set_tracing(request.enable)
                log.info("tracing switched", vm=endpoint.vm.name, enable=request.enable)
            ring = endpoint.trace_ring
            records, next_index = ring.read(request.after, request.limit) if ring else ([], 0)
            return {"ok": True, "vm": endpoint.vm.name, "tracing": endpoint.tracing,
                    "next": next_index, "records": [r.as_dict() for r in records]}
        if isinstance(request, InjectFaultRequest) and not self.config.mediator.allow_fault_injection:
            return {"ok": False, "error": "fault injection is disabled; it is for drills and tests "
                    "([mediator] allow_fault_injection = true)"}
        if endpoint is None or endpoint.session is None:
            return {"ok": False, "error": f"VM {request.vm!r} is not attached"}
        session = endpoint.session
        if isinstance(request, InjectFaultRequest):  # the VM's next call fails with this status
            await session.inject_fault(request.status, request.sticky, request.channel)
            log.warning("fault injected by operator", vm=endpoint.vm.name, status=request.status)
            return {"ok": True}
        if isinstance(request, ResetRequest):
            try:
                session.reset("reset by operator")
            except RuntimeError as exc:
                return {"ok": False, "error": str(exc)}
            return {"ok": True}
        assert isinstance(request, DetachRequest)
        session.stop("detached by operator")
        return {"ok": True}

    def _endpoint(self, key: int | str) -> VmEndpoint | None:
        for endpoint in self.endpoints.values():
            if key in (endpoint.vm.id, endpoint.vm.name, str(endpoint.vm.id)):
                return endpoint
        return None

    def status(self) -> dict[str, Any]:
        vms = [e.status() for e in sorted(self.endpoints.values(), key=lambda e: e.vm.id)]
        return {
            "host": {
                "pid": os.getpid(),
                "uptime_s": round(time.time() - self.started, 1),
                "backend": self.backend,
                "backend_reason": self.backend_reason,
                "vms": len(vms),
                "attached": sum(1 for v in vms if v["connected"]),
                # control connections refused for their peer, and requests refused (malformed or not allowed)
                "control_refused": self.control_refused,
                "control_errors": self.control_errors,
                "mqtt": self.mqtt.describe() if self.mqtt is not None else {"state": "disabled"},
                "metrics": ({"bind": self.config.metrics.bind, "port": self.metrics.port,
                             "scrapes": self.metrics.scrapes}
                            if self.metrics is not None else {"state": "disabled"}),
            },
            "vms": vms,
        }
