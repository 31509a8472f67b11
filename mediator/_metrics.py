"""A Prometheus endpoint: per-VM calls, errors, latency histogram, bytes copied, memory and quota.

Every figure comes from the supervisor's status, which reads the workers' shared counter blocks, at
scrape time: the hot path pays nothing beyond the counters it keeps anyway. The HTTP server is a few
lines on the daemon's own event loop (``GET /metrics``), so a scrape never races the loop's state and
no thread is involved; it binds to localhost unless configured otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from ._config import MetricsSection
from ._stats import latency_bounds_s

__all__ = ["MediatorCollector", "MetricsServer"]

log = structlog.get_logger("metrics")
StatusSource = Callable[[], dict[str, Any]]


class MediatorCollector(Collector):
    def __init__(self, status: StatusSource) -> None:
        self._status = status

    def collect(self) -> Iterator[Metric]:
        status = self._status()
        labels = ["vm"]
        calls = CounterMetricFamily("vgpu_calls", "CUDA calls served", labels=labels)
        errors = CounterMetricFamily("vgpu_call_errors", "calls answered with a non-zero status",
                                     labels=labels)
        protocol = CounterMetricFamily("vgpu_protocol_errors", "malformed frames refused", labels=labels)
        htod = CounterMetricFamily("vgpu_bytes_htod", "bytes copied host to device", labels=labels)
        dtoh = CounterMetricFamily("vgpu_bytes_dtoh", "bytes copied device to host", labels=labels)
        used = GaugeMetricFamily("vgpu_memory_used_bytes", "device memory the VM holds", labels=labels)
        quota = GaugeMetricFamily("vgpu_memory_quota_bytes", "the VM's memory quota (absent: none)",
                                  labels=labels)
        connected = GaugeMetricFamily("vgpu_vm_connected", "1 while a guest is attached", labels=labels)
        restarts = CounterMetricFamily("vgpu_worker_restarts", "worker restarts in the current session",
                                       labels=labels)
        latency = HistogramMetricFamily("vgpu_call_latency_seconds",
                                        "time to serve one call in the worker (current session)",
                                        labels=labels)
        bounds = latency_bounds_s()
        for vm in status["vms"]:
            name = [vm["name"]]
            calls.add_metric(name, vm["calls"])
            errors.add_metric(name, vm["errors"])
            protocol.add_metric(name, vm["protocol_errors"])
            htod.add_metric(name, vm["bytes_htod"])
            dtoh.add_metric(name, vm["bytes_dtoh"])
            used.add_metric(name, vm["memory_used"])
            if vm["memory_quota"] is not None:
                quota.add_metric(name, vm["memory_quota"])
            connected.add_metric(name, 1 if vm["connected"] else 0)
            restarts.add_metric(name, vm["restarts"])
            cumulative, buckets = 0, []
            for bound, count in zip(bounds, vm.get("latency", [0] * len(bounds)), strict=True):
                cumulative += count
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
            latency.add_metric(name, buckets, vm.get("latency_sum_ns", 0) / 1e9)
        host = status["host"]
        attached = GaugeMetricFamily("vgpu_vms_attached", "VMs with a guest attached")
        attached.add_metric([], host["attached"])
        yield from (calls, errors, protocol, htod, dtoh, used, quota, connected, restarts, latency, attached)


class MetricsServer:
    """``GET /metrics`` on the daemon's event loop."""

    def __init__(self, config: MetricsSection, status: StatusSource) -> None:
        self.config = config
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(MediatorCollector(status))
        self._server: asyncio.Server | None = None
        self.scrapes = 0

    @property
    def port(self) -> int | None:
        if self._server is None or not self._server.sockets:
            return None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.config.bind, self.config.port)
        log.info("metrics endpoint listening", bind=self.config.bind, port=self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10):
                request = await reader.readline()
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass  # headers: nothing in them changes the answer
            parts = request.split()
            if len(parts) >= 2 and parts[0] == b"GET" and parts[1].split(b"?")[0] in (b"/metrics", b"/"):
                body = generate_latest(self.registry)
                self.scrapes += 1
                head = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                        b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body))
            else:
                body = b"only GET /metrics here\n"
                head = (b"HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                        % len(body))
            writer.write(head + body)
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
