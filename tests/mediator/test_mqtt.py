"""MQTT telemetry and control against a real mosquitto that the tests start, watched by a paho
subscriber that collects what the mediator publishes."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from paho.mqtt import client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from guest import GuestClient
from mediator._control_client import request
from mediator._launcher import MediatorProcess, running_mediator, write_config

pytestmark = [pytest.mark.mqtt, pytest.mark.timeout(120)]
PREFIX, HOST = "vgpu-test", "host-a"
BASE = f"{PREFIX}/{HOST}"

MOSQUITTO = shutil.which("mosquitto") or next(
    (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()), None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Broker:
    """mosquitto on 127.0.0.1:<port>, anonymous, no persistence; can be killed and started again."""

    def __init__(self, workdir: Path) -> None:
        if MOSQUITTO is None:
            pytest.skip("mosquitto is not installed (scripts/setup installs Debian's package)")
        self.port = free_port()
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        self.log = workdir / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert MOSQUITTO is not None
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"mosquitto did not listen: {self.log.read_text()}") from None
                time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Watcher:
    """A subscriber to everything under the mediator's topics (MQTT 5)."""

    def __init__(self, port: int, topic: str) -> None:
        self.messages: queue.Queue[tuple[str, Any, bool, Properties | None]] = queue.Queue()
        self.retained: dict[str, Any] = {}
        self.client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(topic, qos=1)
        self.client.loop_start()

    def _on_message(self, _client: Any, _userdata: Any, message: Any) -> None:
        try:
            payload = json.loads(message.payload)
        except ValueError:
            payload = message.payload
        if message.retain:
            self.retained[message.topic] = payload
        self.messages.put((message.topic, payload, bool(message.retain), getattr(message, "properties", None)))

    def wait_for(self, match: Callable[[str, Any], bool],
                 timeout: float = 15.0) -> tuple[str, Any, Properties | None]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no matching MQTT message")
            try:
                topic, payload, _, properties = self.messages.get(timeout=left)
            except queue.Empty:
                continue
            if match(topic, payload):
                return topic, payload, properties

    def publish(self, topic: str, payload: dict[str, Any] | bytes, *, response_topic: str | None = None,
                correlation: bytes | None = None) -> None:
        properties = None
        if response_topic or correlation:
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            if response_topic:
                properties.ResponseTopic = response_topic
            if correlation:
                properties.CorrelationData = correlation
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.client.publish(topic, data, qos=1, properties=properties).wait_for_publish(10)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    broker = Broker(tmp_path)
    broker.start()
    yield broker
    broker.kill()


def mqtt_section(broker: Broker, interval: float = 0.3) -> str:
    return (f'\n[mqtt]\nenabled = true\nhost = "127.0.0.1"\nport = {broker.port}\ntopic_prefix = "{PREFIX}"\n'
            f'host_name = "{HOST}"\nstatus_interval_s = {interval}\nkeepalive_s = 5\nerror_burst = 5\n')


@pytest.fixture
def watcher(broker: Broker) -> Iterator[Watcher]:
    watcher = Watcher(broker.port, f"{PREFIX}/#")
    yield watcher
    watcher.close()


@pytest.fixture
def mediator(tmp_path: Path, broker: Broker) -> Iterator[MediatorProcess]:
    with running_mediator(tmp_path, vms=2, extra=mqtt_section(broker)) as mediator:
        yield mediator


def mqtt_state(mediator: MediatorProcess) -> dict[str, Any]:
    state: dict[str, Any] = request(mediator.control, {"cmd": "status"})["host"]["mqtt"]
    return state


def wait_state(mediator: MediatorProcess, state: str, connects: int = 1, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not (mqtt_state(mediator)["state"] == state and mqtt_state(mediator)["connects"] >= connects):
        assert time.monotonic() < deadline, mqtt_state(mediator)
        time.sleep(0.05)


def test_retained_status_per_host_and_vm_and_attach_detach_events(mediator: MediatorProcess,
                                                                   broker: Broker, watcher: Watcher) -> None:
    watcher.wait_for(lambda t, p: t == f"{BASE}/status" and p["state"] == "online" and p["vms"] == 2)
    with GuestClient.connect(mediator.vm_socket(1)) as gpu:
        gpu.init()
        watcher.wait_for(lambda t, p: t == f"{BASE}/events" and p["event"] == "vm_attached" and p["vm"] == "vm1")
        ptr = gpu.mem_alloc(1 << 20)
        _, vm, _ = watcher.wait_for(lambda t, p: t == f"{BASE}/vm/vm1/status" and p["memory_used"] >= 1 << 20)
        assert vm["connected"] and vm["state"] == "serving" and vm["memory_quota"] == 2 << 30
        gpu.mem_free(ptr)
    watcher.wait_for(lambda t, p: t == f"{BASE}/events" and p["event"] == "vm_detached" and p["vm"] == "vm1")
    # a late subscriber gets the retained picture at once
    late = Watcher(broker.port, f"{BASE}/vm/+/status")
    try:
        late.wait_for(lambda t, p: t == f"{BASE}/vm/vm2/status" and p["connected"] is False, timeout=5)
    finally:
        late.close()


def test_an_error_burst_is_an_event(mediator: MediatorProcess, watcher: Watcher) -> None:
    with GuestClient.connect(mediator.vm_socket(2)) as gpu:
        gpu.init()
        for _ in range(20):
            assert gpu.call("mem_free", gpu.args("mem_free", dptr=0x1234)).status != 0
        _, event, _ = watcher.wait_for(lambda t, p: t == f"{BASE}/events" and p["event"] == "error_burst")
        assert event["vm"] == "vm2" and event["errors"] >= 5


def test_control_round_trips_carry_the_correlation_id_and_refusals_say_why(
        mediator: MediatorProcess, watcher: Watcher) -> None:
    wait_state(mediator, "connected")
    control = f"{BASE}/control"

    def ask(payload: dict[str, Any] | bytes, match_id: Any) -> dict[str, Any]:
        watcher.publish(control, payload)
        _, reply, _ = watcher.wait_for(lambda t, p: t == f"{BASE}/control/response" and p.get("id") == match_id)
        return dict(reply)

    with GuestClient.connect(mediator.vm_socket(1)) as gpu:
        gpu.init()
        assert ask({"id": "t1", "cmd": "trace", "vm": "vm1", "enable": True}, "t1")["ok"] is True
        gpu.nop()
        assert request(mediator.control, {"cmd": "trace", "vm": "vm1"})["records"], "tracing is on"
        assert ask({"id": "q1", "cmd": "set_quota", "vm": "vm1", "bytes": "1MiB"}, "q1")["ok"] is True
        assert gpu.call("mem_alloc", gpu.args("mem_alloc", bytesize=2 << 20)).status == 2  # OUT_OF_MEMORY
        refused = ask({"id": "q2", "cmd": "set_quota", "vm": "vm1", "bytes": "lots"}, "q2")
        assert refused["ok"] is False and "bytes" in refused["error"]
        refused = ask({"id": "x1", "cmd": "format_disk", "vm": "vm1"}, "x1")
        assert refused["ok"] is False and "unknown cmd" in refused["error"]
        refused = ask({"id": "v1", "cmd": "reset", "vm": "vm9"}, "v1")
        assert refused["ok"] is False and "not attached" in refused["error"]
        assert ask(b"not json", None)["ok"] is False
        # an MQTT 5 request names its own response topic and correlation data
        watcher.publish(control, {"cmd": "status"}, response_topic=f"{BASE}/replies/me", correlation=b"abc")
        _, reply, props = watcher.wait_for(lambda t, p: t == f"{BASE}/replies/me")
        assert reply["ok"] and reply["host"]["vms"] == 2
        assert props is not None and getattr(props, "CorrelationData", None) == b"abc"
        # reset: the guest sees a new epoch and starts over; detach ends the session
        epoch = request(mediator.control, {"cmd": "status"})["vms"][0]["epoch"]
        assert ask({"id": "r1", "cmd": "reset", "vm": "vm1"}, "r1")["ok"] is True
        watcher.wait_for(lambda t, p: t == f"{BASE}/events" and p["event"] == "vm_reset")
        gpu.recover(timeout=30)
        gpu.init()
        assert request(mediator.control, {"cmd": "status"})["vms"][0]["epoch"] == epoch + 1
        assert ask({"id": "d1", "cmd": "detach", "vm": "vm1"}, "d1")["ok"] is True
        watcher.wait_for(lambda t, p: t == f"{BASE}/events" and p["event"] == "vm_detached")


def retained_vm_statuses(broker: Broker) -> dict[str, Any]:
    """What a subscriber arriving now is given for the VMs: the broker sends the retained messages at
    once (flagged retained), so a live message or the first quiet half second after them ends them. The
    first may take seconds on a loaded machine (the subscriber's connect and subscribe): a final CI run
    read an empty set after a 0.5 s wait for it."""
    late = Watcher(broker.port, f"{BASE}/vm/+/status")
    try:
        with contextlib.suppress(queue.Empty):
            wait = 10.0
            while late.messages.get(timeout=wait)[2]:
                wait = 0.5
        return dict(late.retained)
    finally:
        late.close()


def test_the_last_will_marks_the_host_offline_when_the_daemon_dies(mediator: MediatorProcess, broker: Broker,
                                                                   watcher: Watcher) -> None:
    watcher.wait_for(lambda t, p: t == f"{BASE}/vm/vm1/status" and p["host_state"] == "online")
    with GuestClient.connect(mediator.vm_socket(1)) as gpu:
        gpu.nop()
        watcher.wait_for(lambda t, p: t == f"{BASE}/vm/vm1/status" and p["connected"] is True)
        os.kill(mediator.proc.pid, signal.SIGKILL)
        watcher.wait_for(lambda t, p: t == f"{BASE}/status" and p["state"] == "offline", timeout=30)
        # no VM is left "connected" on the broker: their retained statuses expire (3 status intervals)
        deadline = time.monotonic() + 30
        while retained_vm_statuses(broker):
            assert time.monotonic() < deadline, "the VMs' retained statuses outlived their host"


def test_a_clean_stop_says_offline_for_the_host_and_each_vm(mediator: MediatorProcess, broker: Broker,
                                                            watcher: Watcher) -> None:
    wait_state(mediator, "connected")
    watcher.wait_for(lambda t, p: t == f"{BASE}/vm/vm2/status")
    mediator.proc.terminate()
    assert mediator.proc.wait(20) == 0
    watcher.wait_for(lambda t, p: t == f"{BASE}/status" and p["state"] == "offline")
    retained = retained_vm_statuses(broker)
    assert set(retained) == {f"{BASE}/vm/vm1/status", f"{BASE}/vm/vm2/status"}
    assert all(vm["host_state"] == "offline" and vm["connected"] is False for vm in retained.values())


def test_a_removed_vm_has_its_retained_status_cleared(mediator: MediatorProcess, broker: Broker,
                                                      watcher: Watcher) -> None:
    watcher.wait_for(lambda t, p: t == f"{BASE}/vm/vm2/status")
    write_config(mediator.config, mediator.sockets, backend="sim", vm_ids=[1], extra=mqtt_section(broker))
    mediator.proc.send_signal(signal.SIGHUP)
    watcher.wait_for(lambda t, p: t == f"{BASE}/events" and p["event"] == "vm_removed" and p["vm"] == "vm2")
    watcher.wait_for(lambda t, p: t == f"{BASE}/vm/vm2/status" and p == b"")  # the clearing message
    assert set(retained_vm_statuses(broker)) == {f"{BASE}/vm/vm1/status"}


def test_a_renamed_vm_moves_its_retained_status(mediator: MediatorProcess, broker: Broker,
                                                watcher: Watcher) -> None:
    watcher.wait_for(lambda t, p: t == f"{BASE}/vm/vm2/status")
    mediator.config.write_text(mediator.config.read_text().replace('name = "vm2"', 'name = "gpu-b"'))
    mediator.proc.send_signal(signal.SIGHUP)
    _, event, _ = watcher.wait_for(lambda t, p: t == f"{BASE}/events" and p["event"] == "vm_renamed")
    assert (event["vm"], event["old_name"]) == ("gpu-b", "vm2")
    watcher.wait_for(lambda t, p: t == f"{BASE}/vm/gpu-b/status" and p["name"] == "gpu-b")
    assert set(retained_vm_statuses(broker)) == {f"{BASE}/vm/vm1/status", f"{BASE}/vm/gpu-b/status"}


def test_a_refused_request_says_why_in_its_reply_and_the_log(mediator: MediatorProcess,
                                                             watcher: Watcher) -> None:
    wait_state(mediator, "connected")
    watcher.publish(f"{BASE}/control", {"id": "s1", "cmd": "set_quota", "vm": "nope", "bytes": 1})
    _, reply, _ = watcher.wait_for(lambda t, p: t == f"{BASE}/control/response" and p.get("id") == "s1")
    assert reply == {"id": "s1", "ok": False, "error": "no VM 'nope'"}
    deadline = time.monotonic() + 10
    while '"error": "no VM \'nope\'"' not in mediator.log:
        assert time.monotonic() < deadline, mediator.log[-2000:]
        time.sleep(0.02)


@pytest.mark.slow
def test_a_broker_that_goes_away_and_comes_back_costs_no_call(mediator: MediatorProcess, broker: Broker,
                                                              watcher: Watcher) -> None:
    wait_state(mediator, "connected")
    stop = threading.Event()
    served: list[int] = []
    failures: list[BaseException] = []
    serving = threading.Event()  # the guest's first call was answered (its worker is up)

    def guest() -> None:
        try:
            with GuestClient.connect(mediator.vm_socket(1)) as gpu:
                gpu.init()
                ptr = gpu.mem_alloc(4096)
                n = 0
                while not stop.is_set():
                    n += 1
                    gpu.memset_d32(ptr, n, 1024)
                    assert gpu.memcpy_dtoh(ptr, 4) == n.to_bytes(4, "little")
                    served.append(n)
                    serving.set()
        except BaseException as exc:
            failures.append(exc)
            serving.set()

    def served_more_than(count: int, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and thread.is_alive():
            if len(served) > count:
                return True
            time.sleep(0.05)
        return len(served) > count

    thread = threading.Thread(target=guest)
    thread.start()
    try:
        assert serving.wait(60), "the guest was never served"
        assert not failures, failures
        watcher.close()
        broker.kill()
        wait_state(mediator, "disconnected")
        before = len(served)
        # the guest keeps being served while the broker is away
        assert served_more_than(before), "calls stalled while the broker was down"
        broker.start()
        wait_state(mediator, "connected", connects=2)
        fresh = Watcher(broker.port, f"{PREFIX}/#")
        try:
            fresh.wait_for(lambda t, p: t == f"{BASE}/status" and p["state"] == "online")
        finally:
            fresh.close()
    finally:
        stop.set()
        thread.join(30)
    assert not failures, failures
    assert served == list(range(1, len(served) + 1)), "a call was lost or repeated"
    status = request(mediator.control, {"cmd": "status"})
    assert status["vms"][0]["errors"] == 0
