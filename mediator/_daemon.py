"""The supervisor: one endpoint per configured VM, the control socket, signals, systemd.

SIGTERM/SIGINT drain every session (queued calls are answered, regions marked STOPPED, GPU resources
released) and the daemon exits 0. SIGHUP re-reads the configuration file: new VMs get an endpoint,
removed VMs lose theirs once idle (a connected one keeps serving until its peer leaves), changed
quotas reach the running workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from executor import resolve_backend

from ._config import ConfigError, MediatorConfig, load_config
from ._notify import notify, watchdog_interval
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
        self._control: asyncio.Server | None = None
        self.backend, self.backend_reason = resolve_backend(config.mediator.backend)
        self.mqtt: MqttLink | None = None
        self.metrics: MetricsServer | None = None
        self._extras: list[asyncio.Task[None]] = []

    # -- run ------------------------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop, sig.name)
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.reload()))
        log.info("mediator starting", backend=self.backend, backend_reason=self.backend_reason,
                 vms=len(self.config.vm), socket_dir=str(self.config.mediator.socket_dir))
        for vm in self.config.vm:
            endpoint = VmEndpoint(vm, self.config)
            await endpoint.start()
            self.endpoints[vm.id] = endpoint
        await self._start_extras()  # before the control socket: a status request sees them running
        await self._start_control()
        notify("READY=1")
        self._notify_status()
        watchdog = asyncio.create_task(self._watchdog(), name="watchdog")
        await self._stop.wait()
        notify("STOPPING=1")
        log.info("mediator stopping: draining sessions")
        watchdog.cancel()
        await asyncio.gather(*(e.stop() for e in self.endpoints.values()), return_exceptions=True)
        await self._stop_extras()
        if self._control is not None:
            self._control.close()
            await self._control.wait_closed()
            with contextlib.suppress(FileNotFoundError):
                self.config.mediator.control_path.unlink()
        log.info("mediator stopped")
        return 0

    async def _start_extras(self) -> None:
        """MQTT and metrics: optional, and never in the way of serving VMs (their failures are logged)."""
        if self.config.mqtt.enabled:
            from ._mqtt import MqttLink

            self.mqtt = MqttLink(self.config.mqtt, self.status, self.handle)
            self._extras.append(asyncio.create_task(self.mqtt.run(), name="mqtt"))
        if self.config.metrics.enabled:
            from ._metrics import MetricsServer

            self.metrics = MetricsServer(self.config.metrics, self.status)
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
        except ConfigError as exc:
            log.error("reload failed; keeping the running configuration", error=str(exc))
            return
        notify("RELOADING=1")
        self.config = new
        wanted = {vm.id: vm for vm in new.vm}
        for vm_id, endpoint in list(self.endpoints.items()):
            if vm_id not in wanted:
                if endpoint.session is None:
                    await endpoint.stop("removed from configuration")
                    del self.endpoints[vm_id]
                    log.info("vm removed", vm=endpoint.vm.name)
                else:
                    endpoint.retiring = True
                    log.warning("vm removed from configuration but connected; it stays until detached",
                                vm=endpoint.vm.name)
        for vm_id, vm in wanted.items():
            existing = self.endpoints.get(vm_id)
            if existing is None:
                added = VmEndpoint(vm, new)
                await added.start()
                self.endpoints[vm_id] = added
                log.info("vm added", vm=vm.name)
                continue
            endpoint = existing
            if endpoint.vm.memory_quota != vm.memory_quota:
                await endpoint.set_quota(vm.memory_quota)
            endpoint.vm = vm
            endpoint.config = new
        notify("READY=1")
        self._notify_status()
        log.info("configuration reloaded", vms=len(self.endpoints))

    # -- control socket ---------------------------------------------------------------------------

    async def _start_control(self) -> None:
        path = self.config.mediator.control_path
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.bind(str(path))
        os.chmod(path, 0o660)
        self._control = await asyncio.start_unix_server(self._serve_control, sock=sock)

    async def _serve_control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                try:
                    request = json.loads(line)
                    reply = await self.handle(request)
                except (ValueError, KeyError, TypeError) as exc:
                    reply = {"ok": False, "error": f"bad request: {exc}"}
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        cmd = request.get("cmd")
        if cmd == "status":
            return {"ok": True, **self.status()}
        if cmd == "set_quota":
            endpoint = self._endpoint(request["vm"])
            if endpoint is None:
                return {"ok": False, "error": f"no VM {request['vm']!r}"}
            quota = request.get("bytes")
            if quota is not None and (not isinstance(quota, int) or quota < 0):
                return {"ok": False, "error": "bytes must be a non-negative integer or null"}
            await endpoint.set_quota(quota)
            return {"ok": True}
        if cmd == "trace":
            endpoint = self._endpoint(request["vm"])
            if endpoint is None:
                return {"ok": False, "error": f"no VM {request['vm']!r}"}
            if "enable" in request:
                if not isinstance(request["enable"], bool):
                    return {"ok": False, "error": "enable must be true or false"}
                await endpoint.set_tracing(request["enable"])
                log.info("tracing switched", vm=endpoint.vm.name, enable=request["enable"])
            ring = endpoint.trace_ring
            after = int(request.get("after", 0))
            limit = request.get("limit")
            records, next_index = ring.read(after, int(limit) if limit else None) if ring else ([], 0)
            return {"ok": True, "vm": endpoint.vm.name, "tracing": endpoint.tracing,
                    "next": next_index, "records": [r.as_dict() for r in records]}
        if cmd == "inject_fault":  # drills and tests: the VM's next call fails with this status
            endpoint = self._endpoint(request["vm"])
            if endpoint is None or endpoint.session is None:
                return {"ok": False, "error": f"VM {request['vm']!r} is not attached"}
            status = request.get("status", 700)
            if not isinstance(status, int) or isinstance(status, bool) or not 0 < status < 1 << 31:
                return {"ok": False, "error": "status must be a positive CUresult value"}
            await endpoint.session.inject_fault(status, bool(request.get("sticky", True)))
            log.warning("fault injected by operator", vm=endpoint.vm.name, status=status)
            return {"ok": True}
        if cmd == "reset":
            endpoint = self._endpoint(request["vm"])
            if endpoint is None or endpoint.session is None:
                return {"ok": False, "error": f"VM {request['vm']!r} is not attached"}
            try:
                endpoint.session.reset("reset by operator")
            except RuntimeError as exc:
                return {"ok": False, "error": str(exc)}
            return {"ok": True}
        if cmd == "detach":
            endpoint = self._endpoint(request["vm"])
            if endpoint is None or endpoint.session is None:
                return {"ok": False, "error": f"VM {request['vm']!r} is not attached"}
            endpoint.session.stop("detached by operator")
            return {"ok": True}
        return {"ok": False, "error": f"unknown command {cmd!r}"}

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
                "mqtt": self.mqtt.describe() if self.mqtt is not None else {"state": "disabled"},
                "metrics": ({"bind": self.config.metrics.bind, "port": self.metrics.port,
                             "scrapes": self.metrics.scrapes}
                            if self.metrics is not None else {"state": "disabled"}),
            },
            "vms": vms,
        }
