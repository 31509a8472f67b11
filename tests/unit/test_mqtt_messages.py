"""MQTT payload rules without a broker: control requests, the bounded queue, error bursts, config."""

from __future__ import annotations

import pytest

from mediator._config import ConfigError, parse_config
from mediator._mqtt_messages import (
    ControlRefusedError,
    ErrorBurstDetector,
    Outgoing,
    OutgoingQueue,
    Topics,
    parse_control,
)


def test_topics_hang_under_prefix_and_host() -> None:
    topics = Topics("vgpu/", "gpu-a")
    assert (topics.status, topics.vm_status("vm1"), topics.events, topics.control, topics.response) == (
        "vgpu/gpu-a/status", "vgpu/gpu-a/vm/vm1/status", "vgpu/gpu-a/events", "vgpu/gpu-a/control",
        "vgpu/gpu-a/control/response")


@pytest.mark.parametrize(("payload", "expected"), [
    (b'{"cmd": "status", "id": 1}', ({"cmd": "status"}, 1)),
    (b'{"cmd": "trace", "vm": "vm1", "enable": true, "id": "a"}',
     ({"cmd": "trace", "vm": "vm1", "enable": True, "limit": 0}, "a")),
    (b'{"cmd": "set_quota", "vm": 2, "bytes": "4GiB"}', ({"cmd": "set_quota", "vm": 2, "bytes": 4 << 30}, None)),
    (b'{"cmd": "set_quota", "vm": 2, "bytes": null}', ({"cmd": "set_quota", "vm": 2, "bytes": None}, None)),
    (b'{"cmd": "reset", "vm": "vm1", "id": [1]}', ({"cmd": "reset", "vm": "vm1"}, [1])),
])
def test_valid_control_requests(payload: bytes, expected: tuple[dict[str, object], object]) -> None:
    request, request_id = parse_control(payload)
    assert (request.wire(), request_id) == expected


@pytest.mark.parametrize(("payload", "reason"), [
    (b"{", "not JSON"),
    (b"[1, 2]", "a JSON object"),
    (b'{"cmd": "rm -rf"}', "unknown cmd"),
    (b'{"cmd": "detach"}', "needs 'vm'"),
    (b'{"cmd": "detach", "vm": true}', "needs 'vm'"),
    (b'{"cmd": "trace", "vm": "vm1", "enable": "yes"}', "enable"),
    (b'{"cmd": "set_quota", "vm": "vm1"}', "needs 'bytes'"),
    (b'{"cmd": "set_quota", "vm": "vm1", "bytes": -1}', "non-negative"),
    (b'{"cmd": "set_quota", "vm": "vm1", "bytes": "lots"}', "not a size"),
    (b'{"cmd": "set_quota", "vm": "vm1", "bytes": 1.5}', "non-negative integer"),
    (b"x" * 5000, "limit"),
])
def test_refused_control_requests_say_why(payload: bytes, reason: str) -> None:
    with pytest.raises(ControlRefusedError) as refused:
        parse_control(payload)
    assert reason in refused.value.reason


def test_the_request_id_comes_back_with_a_refusal() -> None:
    with pytest.raises(ControlRefusedError) as refused:
        parse_control(b'{"id": "q7", "cmd": "explode"}')
    assert refused.value.request_id == "q7"


def test_the_outgoing_queue_drops_the_oldest_and_counts() -> None:
    queue = OutgoingQueue(limit=3)
    for i in range(5):
        queue.put(Outgoing("t", str(i).encode()))
    assert queue.dropped == 2 and len(queue) == 3
    assert [queue.pop().payload for _ in range(3)] == [b"2", b"3", b"4"]
    assert queue.peek() is None


def test_error_bursts_count_errors_since_the_last_look() -> None:
    bursts = ErrorBurstDetector(threshold=10)
    assert bursts.update("vm1", 500) is None  # the first look sets the baseline
    assert bursts.update("vm1", 509) is None
    assert bursts.update("vm1", 520) == 11
    assert bursts.update("vm1", 520) is None


def test_mqtt_and_metrics_config_errors_name_the_key() -> None:
    config = parse_config({"mqtt": {"enabled": True, "host": "b", "port": 8883, "tls": True},
                           "metrics": {"enabled": True}})
    assert config.mqtt.port == 8883 and config.metrics.bind == "127.0.0.1"
    for bad, key in (({"mqtt": {"port": 0}}, "mqtt.port"), ({"mqtt": {"topic_prefix": "a/#"}}, "mqtt.topic_prefix"),
                     ({"mqtt": {"password_file": "/x"}}, "mqtt"), ({"metrics": {"port": 70000}}, "metrics.port")):
        with pytest.raises(ConfigError) as error:
            parse_config(bad)
        assert key in str(error.value)
