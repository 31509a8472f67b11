"""The Prometheus endpoint, scraped while a guest calls."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from guest import GuestClient
from mediator._control_client import request
from mediator._launcher import running_mediator


def scrape(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url, timeout=10) as reply:
        assert reply.headers["Content-Type"].startswith("text/plain")
        text = reply.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def test_metrics_are_scraped_during_a_run(tmp_path: Path) -> None:
    extra = '\n[metrics]\nenabled = true\nbind = "127.0.0.1"\nport = 0\n'
    with running_mediator(tmp_path, vms=2, extra=extra) as mediator:
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
            samples = scrape(url)
        assert samples['vgpu_calls_total{vm="vm1"}'] >= 104
        assert samples['vgpu_call_errors_total{vm="vm1"}'] == 1
        assert samples['vgpu_bytes_htod_total{vm="vm1"}'] == 1 << 20
        assert samples['vgpu_bytes_dtoh_total{vm="vm1"}'] == 1 << 19
        assert samples['vgpu_memory_used_bytes{vm="vm1"}'] >= 3 << 20
        assert samples['vgpu_memory_quota_bytes{vm="vm1"}'] == 2 << 30
        assert samples['vgpu_vm_connected{vm="vm1"}'] == 1 and samples['vgpu_vm_connected{vm="vm2"}'] == 0
        assert samples['vgpu_vms_attached'] == 1
        buckets = {k: v for k, v in samples.items() if k.startswith('vgpu_call_latency_seconds_bucket{vm="vm1"')}
        assert samples['vgpu_call_latency_seconds_bucket{le="+Inf",vm="vm1"}'] == \
            samples['vgpu_call_latency_seconds_count{vm="vm1"}'] >= 104
        counts = [v for _, v in sorted(((float(re.search(r'le="([^"]+)"', k).group(1)), v)  # type: ignore[union-attr]
                                        for k, v in buckets.items()))]
        assert counts == sorted(counts), "histogram buckets are cumulative"
        assert samples['vgpu_call_latency_seconds_sum{vm="vm1"}'] > 0
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(url.replace("/metrics", "/nothing"), timeout=10)
        assert missing.value.code == 404
        missing.value.close()
        assert request(mediator.control, {"cmd": "status"})["host"]["metrics"]["scrapes"] >= 1
