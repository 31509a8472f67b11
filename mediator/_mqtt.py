"""Fleet telemetry and control over MQTT: one asyncio task in the supervisor.

The hot path never waits for it: VMs are served by worker processes, and this task only reads the
supervisor's status and queues messages in a bounded :class:`OutgoingQueue`. A broker that is down or
goes away is retried with exponential backoff (1 s doubling to 30 s); while it is away, events queue
(the oldest are dropped, and counted, past ``queue_limit``) and the retained status is sent afresh on
every connect. The last-will marks the host offline if the daemon dies without saying goodbye.

A VM's retained status says ``host_state``: ``online`` while the daemon publishes it, ``offline`` in
the last one a clean stop publishes. One connection has one will, so a daemon that dies cannot mark
each VM: their retained statuses carry an MQTT 5 message expiry (three status intervals) and vanish
from the broker soon after the host's will has marked it offline; a VM removed from the configuration
has its retained status cleared (an empty retained message), a renamed one its old name's.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from ._config import MqttSection
from ._control import ControlRequest
from ._events import EVENTS, Event
from ._mqtt_messages import (
    ControlRefusedError,
    ErrorBurstDetector,
    Outgoing,
    OutgoingQueue,
    Topics,
    encode,
    parse_control,
)

__all__ = ["MqttLink"]

log = structlog.get_logger("mqtt")

StatusSource = Callable[[], dict[str, Any]]
ControlHandler = Callable[[ControlRequest], Awaitable[dict[str, Any]]]
MAX_BACKOFF_S = 30.0


class MqttLink:
    def __init__(self, config: MqttSection, status: StatusSource, handle: ControlHandler) -> None:
        self.config = config
        self.topics = Topics(config.topic_prefix, config.host_name or socket.gethostname())
        self._status = status
        self._handle = handle
        self.queue = OutgoingQueue(config.queue_limit)
        self._wake = asyncio.Event()
        self._bursts = ErrorBurstDetector(config.error_burst)
        self.state = "connecting"
        self.connects = 0
        self.last_error: str | None = None
        self.published = 0
        self.requests = 0
        self._unsubscribe: Callable[[], None] | None = None
        self._active: Any = None  # the connected aiomqtt client, while there is one
        self._closing = False
        self._sent = asyncio.Event()  # set while the queue is empty (all handed to the broker)

    # -- what the daemon sees ----------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        return {"state": self.state, "broker": f"{self.config.host}:{self.config.port}",
                "connects": self.connects, "queued": len(self.queue), "dropped": self.queue.dropped,
                "published": self.published, "requests": self.requests, "last_error": self.last_error,
                "topic": self.topics.base}

    def _enqueue(self, item: Outgoing) -> None:
        if self._closing:  # after goodbye's offline statuses nothing may overwrite them
            return
        self.queue.put(item)
        self._sent.clear()
        self._wake.set()

    def _on_event(self, event: Event) -> None:
        self._enqueue(Outgoing(self.topics.events, encode({"host": self.topics.host, **event})))
        gone = {"vm_removed": event.get("vm"), "vm_renamed": event.get("old_name")}.get(event["event"])
        if gone:  # an empty retained message clears the broker's retained status for that topic
            self._enqueue(Outgoing(self.topics.vm_status(str(gone)), b"", retain=True))

    @property
    def vm_status_expiry_s(self) -> int:
        """How long the broker keeps a VM's retained status unless it is published again."""
        return max(math.ceil(3 * self.config.status_interval_s), 1)

    # -- the task ----------------------------------------------------------------------------------

    async def run(self) -> None:
        self._unsubscribe = EVENTS.subscribe(self._on_event)
        backoff = 1.0
        try:
            while True:
                try:
                    await self._session()
                except Exception as exc:  # aiomqtt.MqttError, OSError, TLS errors: all mean "retry"
                    self.state = "disconnected"
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    log.warning("mqtt broker unreachable; retrying", broker=f"{self.config.host}:"
                                f"{self.config.port}", error=self.last_error, retry_in_s=backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF_S)
                    continue
                backoff = 1.0
        finally:
            if self._unsubscribe is not None:
                self._unsubscribe()
            self.state = "stopped"

    def _client(self) -> Any:
        import aiomqtt

        password = None
        if self.config.password_file is not None:
            password = self.config.password_file.read_text().strip()
        tls_context = None
        if self.config.tls:
            tls_context = ssl.create_default_context(
                cafile=str(self.config.ca_file) if self.config.ca_file else None)
        will = aiomqtt.Will(self.topics.status, encode(self._host_status("offline")), qos=1, retain=True)
        return aiomqtt.Client(
            self.config.host, self.config.port, username=self.config.username, password=password,
            identifier=f"vgpu-mediator-{self.topics.host}", will=will, keepalive=self.config.keepalive_s,
            tls_context=tls_context, protocol=aiomqtt.ProtocolVersion.V5, timeout=10)

    async def _session(self) -> None:
        self.state = "connecting"
        async with self._client() as client:
            self._active = client
            self.state = "connected"
            self.connects += 1
            self.last_error = None
            log.info("mqtt connected", broker=f"{self.config.host}:{self.config.port}",
                     topic=self.topics.base)
            await client.subscribe(self.topics.control, qos=1)
            self._publish_status()
            tasks = [asyncio.create_task(self._sender(client), name="mqtt:send"),
                     asyncio.create_task(self._receiver(client), name="mqtt:receive"),
                     asyncio.create_task(self._telemetry(), name="mqtt:status")]
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
                for task in done:
                    task.result()  # re-raise what ended the session
            finally:
                self._active = None
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    async def goodbye(self, timeout: float = 2.0) -> None:
        """On a clean stop: say offline ourselves, the host and each VM (the will is only for when we
        cannot)."""
        client = self._active
        if client is None:
            return
        self._closing = True
        with contextlib.suppress(Exception):
            async with asyncio.timeout(timeout):
                with contextlib.suppress(TimeoutError):  # what is queued (the last events) goes first
                    async with asyncio.timeout(timeout / 2):
                        await self._sent.wait()
                for vm in self._status()["vms"]:
                    await client.publish(self.topics.vm_status(vm["name"]),
                                         encode({**vm, "host_state": "offline"}), qos=1, retain=True)
                await client.publish(self.topics.status, encode(self._host_status("offline")), qos=1,
                                     retain=True)

    async def _sender(self, client: Any) -> None:
        while True:
            item = self.queue.peek()
            if item is None:
                self._sent.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            properties = None
            if item.correlation is not None or item.expiry_s is not None:
                from paho.mqtt.packettypes import PacketTypes
                from paho.mqtt.properties import Properties

                properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
                if item.correlation is not None:
                    properties.CorrelationData = item.correlation
                if item.expiry_s is not None:
                    properties.MessageExpiryInterval = item.expiry_s
            await client.publish(item.topic, item.payload, qos=item.qos, retain=item.retain,
                                 properties=properties)
            self.queue.pop()  # only once the broker has it: a failed publish is retried on reconnect
            self.published += 1

    async def _receiver(self, client: Any) -> None:
        async for message in client.messages:
            self.requests += 1
            properties = getattr(message, "properties", None)
            correlation = getattr(properties, "CorrelationData", None) if properties else None
            response_topic = getattr(properties, "ResponseTopic", None) if properties else None
            payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
            try:
                request, request_id = parse_control(payload)
            except ControlRefusedError as refused:
                reply: dict[str, Any] = {"id": refused.request_id, "ok": False, "error": refused.reason}
                log.warning("mqtt control request refused", reason=refused.reason)
            else:
                try:
                    reply = {"id": request_id, **await self._handle(request)}
                except Exception as exc:  # a bug of ours: the sender still gets an answer saying so
                    log.exception("mqtt control request failed", cmd=request.cmd, id=request_id)
                    reply = {"id": request_id, "ok": False, "error": f"internal error: {exc!r}"}
                (log.info if reply.get("ok") else log.warning)(
                    "mqtt control request", cmd=request.cmd, vm=getattr(request, "vm", None),
                    ok=reply.get("ok"), error=reply.get("error"), id=request_id)
            reply.pop("records", None)
            self._enqueue(Outgoing(response_topic or self.topics.response, encode(reply),
                                   correlation=correlation))

    async def _telemetry(self) -> None:
        while True:
            await asyncio.sleep(self.config.status_interval_s)
            self._publish_status()

    # -- payloads ------------------------------------------------------------------------------

    def _host_status(self, state: str) -> dict[str, Any]:
        return {"state": state, "host": self.topics.host, "time": round(time.time(), 3)}

    def _publish_status(self) -> None:
        status = self._status()
        host = {**self._host_status("online"), **status["host"], "mqtt": self.describe()}
        self._enqueue(Outgoing(self.topics.status, encode(host), retain=True))
        for vm in status["vms"]:
            self._enqueue(Outgoing(self.topics.vm_status(vm["name"]), encode({**vm, "host_state": "online"}),
                                   retain=True, expiry_s=self.vm_status_expiry_s))
            burst = self._bursts.update(vm["name"], vm["errors"])
            if burst is not None:
                EVENTS.publish("error_burst", vm=vm["name"], vm_id=vm["id"], errors=burst,
                               interval_s=self.config.status_interval_s)
