"""The Prometheus endpoint, scraped while a guest calls."""

from __future__ import annotations

import os
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from guest import GuestClient
from mediator._control_client import request
from mediator._launcher import running_mediator
from tests.reliability._support import wait_for

pytestmark = pytest.mark.timeout(120)

_SAMPLE = re.compile(r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})? (?P<value>\S+)$')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
#: the simulated device's configured UUID as NVIDIA's tools write it
SIM_GPU = "GPU-56475055-5349-4d00-0000-000000000001"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=10) as reply:
        assert reply.headers["Content-Type"].startswith("text/plain")
        text = reply.read().decode()
    samples: Samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            match = _SAMPLE.match(line)
            assert match, line
            labels = frozenset(_LABEL.findall(match["labels"] or ""))
            samples[match["name"], labels] = float(match["value"])
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[name, frozenset(labels.items())]


def vm(name: str, **more: str) -> dict[str, str]:
    return {"vm": name, "gpu_uuid": SIM_GPU, **more}


EXTRA = '\n[metrics]\nenabled = true\nbind = "127.0.0.1"\nport = 0\n'


def test_metrics_are_scraped_during_a_run(tmp_path: Path) -> None:
    with running_mediator(tmp_path, vms=2, extra=EXTRA) as mediator:
        metrics = request(mediator.control, {"cmd": "status"})["host"]["metrics"]
        assert metrics["bind"] == "127.0.0.1" and metrics["port"]
        url = f"http://127.0.0.1:{metrics['port']}/metrics"
        with GuestClient.connect(mediator.vm_socket(1)) as gpu:
            gpu.init()
            ptr = gpu.mem_alloc(3 << 20)
            gpu.memcpy_htod(ptr, bytes(1 << 20))
            gpu.memcpy_dtoh(ptr, 1 << 19)
            for _ in range(100):
                gpu.nop()
            assert gpu.call("mem_free", gpu.args("mem_free", dptr=ptr + 8)).status != 0
            # the worker publishes its counters once the VM pauses (poll_us): at once, unless loaded
            wait_for("the calls published", lambda: scrape(url)[
                "vgpu_call_errors_total", frozenset(vm("vm1").items())] == 1)
            samples = scrape(url)
        assert value(samples, "vgpu_calls_total", **vm("vm1")) >= 104
        assert value(samples, "vgpu_call_errors_total", **vm("vm1")) == 1
        assert value(samples, "vgpu_htod_bytes_total", **vm("vm1")) == 1 << 20
        assert value(samples, "vgpu_dtoh_bytes_total", **vm("vm1")) == 1 << 19
        assert value(samples, "vgpu_memory_used_bytes", **vm("vm1")) >= 3 << 20
        assert value(samples, "vgpu_memory_quota_bytes", **vm("vm1")) == 2 << 30
        assert value(samples, "vgpu_vm_connected", **vm("vm1")) == 1
        assert value(samples, "vgpu_vm_connected", **vm("vm2")) == 0
        assert value(samples, "vgpu_vms_attached") == 1
        # the worker's polling window: poll_us (50 us) at least, poll_max_us (200 us) at most
        assert 50e-6 <= value(samples, "vgpu_worker_poll_window_seconds", **vm("vm1")) <= 200e-6
        # the guest process holding the context: its channel, its pid, what it did and holds
        assert value(samples, "vgpu_channels_open", **vm("vm1")) == 1
        assert value(samples, "vgpu_channels_expired_total", **vm("vm1")) == 0
        process = {**vm("vm1"), "channel": str(gpu.channel), "owner_pid": str(os.getpid())}
        assert value(samples, "vgpu_channel_calls_total", **process) >= 104
        assert value(samples, "vgpu_channel_memory_used_bytes", **process) == 3 << 20
        assert value(samples, "vgpu_channel_live_handles", **process) >= 0  # present (KeyError if not)
        assert not any(name.startswith("vgpu_bytes_") for name, _ in samples)  # the old names are gone
        buckets = sorted((float(dict(labels)["le"]), v) for (name, labels), v in samples.items()
                         if name == "vgpu_call_latency_seconds_bucket" and dict(labels)["vm"] == "vm1")
        assert buckets[-1] == (float("inf"), value(samples, "vgpu_call_latency_seconds_count", **vm("vm1")))
        assert buckets[-1][1] >= 104
        assert [v for _, v in buckets] == sorted(v for _, v in buckets), "histogram buckets are cumulative"
        assert value(samples, "vgpu_call_latency_seconds_sum", **vm("vm1")) > 0
        # the worker's own process, and the supervisor's (process_*), and the build
        assert value(samples, "vgpu_worker_cpu_seconds_total", **vm("vm1")) > 0
        assert value(samples, "vgpu_worker_resident_memory_bytes", **vm("vm1")) > 10 << 20
        assert ("vgpu_worker_cpu_seconds_total", frozenset(vm("vm2").items())) not in samples  # no worker
        assert value(samples, "process_resident_memory_bytes") > 10 << 20
        assert value(samples, "process_open_fds") > 0
        build = [dict(labels) for (name, labels), v in samples.items() if name == "vgpu_build_info" and v == 1]
        assert len(build) == 1 and build[0]["backend"] == "sim" and build[0]["version"]
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(url.replace("/metrics", "/nothing"), timeout=10)
        assert missing.value.code == 404
        missing.value.close()
        assert request(mediator.control, {"cmd": "status"})["host"]["metrics"]["scrapes"] >= 1


def test_counters_never_go_back_across_detaches_and_resets(tmp_path: Path) -> None:
    with running_mediator(tmp_path, vms=1, extra=EXTRA) as mediator:
        url = f"http://127.0.0.1:{request(mediator.control, {'cmd': 'status'})['host']['metrics']['port']}/metrics"
        counters = ("vgpu_calls_total", "vgpu_htod_bytes_total", "vgpu_dtoh_bytes_total",
                    "vgpu_call_latency_seconds_count", "vgpu_call_latency_seconds_sum")
        seen: list[dict[str, float]] = []

        def look() -> dict[str, float]:
            samples = scrape(url)
            now = {name: value(samples, name, **vm("vm1")) for name in counters}
            for before in seen:
                assert all(now[name] >= before[name] for name in counters), (before, now)
            seen.append(now)
            return now

        for session in range(2):
            with GuestClient.connect(mediator.vm_socket(1)) as gpu:
                ptr = gpu.mem_alloc(1 << 20)
                gpu.memcpy_htod(ptr, bytes(1 << 20))
                gpu.memcpy_dtoh(ptr, 1 << 20)
                look()
            wait_for("detached", lambda: request(mediator.control, {"cmd": "status"})["vms"][0]["state"]
                     == "listening")
            after = look()
            assert after["vgpu_htod_bytes_total"] == (session + 1) << 20  # exact across detaches
        with GuestClient.connect(mediator.vm_socket(1)) as gpu:
            gpu.memcpy_htod(gpu.mem_alloc(4096), bytes(4096))
            look()
            assert request(mediator.control, {"cmd": "reset", "vm": "vm1"})["ok"]
            wait_for("vm1 reset", lambda: request(mediator.control, {"cmd": "status"})["vms"][0]["restarts"] == 1)
            gpu.recover(timeout=30)
            gpu.nop()
            assert look()["vgpu_htod_bytes_total"] == (2 << 20) + 4096  # the replaced worker's bytes kept
        assert value(scrape(url), "vgpu_worker_restarts_total", **vm("vm1")) == 1
