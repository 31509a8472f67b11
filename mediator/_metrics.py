"""A Prometheus endpoint: per-VM calls, errors, latency histogram, bytes copied, memory and quota,
each VM's worker process, the supervisor's own process, and the build.

Every figure comes from the supervisor's status, which reads the workers' shared counter blocks, at
scrape time: the hot path pays nothing beyond the counters it keeps anyway. The HTTP server is a few
lines on the daemon's own event loop (``GET /metrics``), so a scrape never races the loop's state and
no thread is involved; it binds to localhost unless configured otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.metadata
import os
import platform
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

import structlog
from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from ._channel_status import ChannelStatus
from ._config import MetricsSection
from ._stats import latency_bounds_s

__all__ = ["MediatorCollector", "MetricsServer", "gpu_uuid"]

log = structlog.get_logger("metrics")
StatusSource = Callable[[], dict[str, Any]]
_CLOCK_TICKS: Final = os.sysconf("SC_CLK_TCK")
_PAGE_SIZE: Final = os.sysconf("SC_PAGE_SIZE")


def gpu_uuid(backend: str, device_uuid: str) -> str:
    """The GPU's UUID as NVIDIA's tools write it (``GPU-xxxxxxxx-…``), to join DCGM's metrics.

    sim: the simulated device's configured UUID. cuda: NVML's for device 0 (the workers use CUDA
    device 0; NVML counts in PCI order, CUDA fastest first unless CUDA_DEVICE_ORDER=PCI_BUS_ID: the
    same GPU on a host with one). "" (no label, to Prometheus) where NVML cannot say, logged once."""
    if backend != "cuda":
        h = device_uuid.lower()
        return f"GPU-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
    try:
        pynvml: Any = importlib.import_module("pynvml")  # nvidia-ml-py, the cuda extra
        pynvml.nvmlInit()
        try:
            uuid = pynvml.nvmlDeviceGetUUID(pynvml.nvmlDeviceGetHandleByIndex(0))
        finally:
            pynvml.nvmlShutdown()
    except Exception as exc:  # ImportError (no cuda extra), pynvml.NVMLError
        log.warning("gpu_uuid label left empty: NVML cannot say the GPU's UUID", error=str(exc))
        return ""
    return uuid.decode() if isinstance(uuid, bytes) else str(uuid)


def _build_info(backend: str) -> tuple[list[str], list[str]]:
    try:
        version = importlib.metadata.version("vgpu-mediator")
    except importlib.metadata.PackageNotFoundError:  # a tree that was never installed
        version = "unknown"
    return ["version", "python", "backend"], [version, platform.python_version(), backend]


def _process(pid: int) -> tuple[float, int] | None:
    """A process's CPU seconds (user + system) and resident bytes, from /proc; None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # after the command name, which may hold spaces
    utime, stime, rss = int(fields[11]), int(fields[12]), int(fields[21])
    return (utime + stime) / _CLOCK_TICKS, rss * _PAGE_SIZE


class MediatorCollector(Collector):
    """Prometheus names by convention: ``_total`` counters, base units in the name's suffix; every
    per-VM counter is the VM's lifetime total (sessions and workers come and go; it never goes back)."""

    def __init__(self, status: StatusSource, backend: str = "sim", gpu: str = "") -> None:
        self._status = status
        self._backend = backend
        self._gpu = gpu

    def collect(self) -> Iterator[Metric]:
        status = self._status()
        labels = ["vm", "gpu_uuid"]
        calls = CounterMetricFamily("vgpu_calls", "CUDA calls served", labels=labels)
        errors = CounterMetricFamily("vgpu_call_errors", "calls answered with a non-zero status",
                                     labels=labels)
        protocol = CounterMetricFamily("vgpu_protocol_errors", "malformed frames refused", labels=labels)
        htod = CounterMetricFamily("vgpu_htod_bytes", "bytes copied host to device", labels=labels)
        dtoh = CounterMetricFamily("vgpu_dtoh_bytes", "bytes copied device to host", labels=labels)
        used = GaugeMetricFamily("vgpu_memory_used_bytes", "device memory the VM holds", labels=labels)
        pinned = GaugeMetricFamily("vgpu_pinned_used_bytes", "bytes of the VM's pinned area its processes "
                                   "hold (cudaMallocHost)", labels=labels)
        quota = GaugeMetricFamily("vgpu_memory_quota_bytes", "the VM's memory quota (absent: none)",
                                  labels=labels)
        connected = GaugeMetricFamily("vgpu_vm_connected", "1 while a guest is attached", labels=labels)
        restarts = CounterMetricFamily("vgpu_worker_restarts", "worker restarts (crash, hang, reset)",
                                       labels=labels)
        sessions = CounterMetricFamily("vgpu_sessions", "guest sessions ended", labels=labels)
        latency = HistogramMetricFamily("vgpu_call_latency_seconds", "time to serve one call in the worker",
                                        labels=labels)
        cpu = CounterMetricFamily("vgpu_worker_cpu_seconds", "the VM's current worker's CPU time "
                                  "(user and system; a new worker starts from 0)", labels=labels)
        rss = GaugeMetricFamily("vgpu_worker_resident_memory_bytes", "the VM's current worker's resident "
                                "memory", labels=labels)
        window = GaugeMetricFamily("vgpu_worker_poll_window_seconds", "how long the VM's worker polls after "
                                   "its last call before it sleeps (grows while calls come close together)",
                                   labels=labels)
        open_channels = GaugeMetricFamily("vgpu_channels_open", "channels with a live context (guest "
                                          "processes using the GPU)", labels=labels)
        expired = CounterMetricFamily("vgpu_channels_expired", "channels closed because their process "
                                      "stopped beating (it died without a word)", labels=labels)
        channel_labels = ["vm", "gpu_uuid", "channel", "owner_pid"]
        channel_calls = CounterMetricFamily("vgpu_channel_calls", "calls served on an open channel (its "
                                            "current context)", labels=channel_labels)
        channel_used = GaugeMetricFamily("vgpu_channel_memory_used_bytes", "device memory an open "
                                         "channel's context holds", labels=channel_labels)
        channel_handles = GaugeMetricFamily("vgpu_channel_live_handles", "handles an open channel's "
                                            "context holds", labels=channel_labels)
        bounds = latency_bounds_s()
        for vm in status["vms"]:
            name = [vm["name"], self._gpu]
            calls.add_metric(name, vm["calls"])
            errors.add_metric(name, vm["errors"])
            protocol.add_metric(name, vm["protocol_errors"])
            htod.add_metric(name, vm["bytes_htod"])
            dtoh.add_metric(name, vm["bytes_dtoh"])
            used.add_metric(name, vm["memory_used"])
            pinned.add_metric(name, vm.get("pinned_used", 0))
            if vm["memory_quota"] is not None:
                quota.add_metric(name, vm["memory_quota"])
            connected.add_metric(name, 1 if vm["connected"] else 0)
            restarts.add_metric(name, vm["worker_restarts"])
            open_channels.add_metric(name, vm["channels_open"])
            window.add_metric(name, vm.get("poll_window_us", 0) / 1e6)
            expired.add_metric(name, vm["channels_expired"])
            for raw in vm["channels"]:
                channel = ChannelStatus.model_validate(raw)
                if channel.state != "open":
                    continue
                who = [*name, str(channel.index), str(channel.owner_pid)]
                channel_calls.add_metric(who, channel.calls)
                channel_used.add_metric(who, channel.memory_used)
                channel_handles.add_metric(who, channel.live_handles)
            sessions.add_metric(name, vm["sessions"])
            cumulative, buckets = 0, []
            for bound, count in zip(bounds, vm["latency"], strict=True):
                cumulative += count
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
            latency.add_metric(name, buckets, vm["latency_sum_ns"] / 1e9)
            process = _process(vm["worker_pid"]) if vm["worker_pid"] else None
            if process is not None:
                cpu.add_metric(name, process[0])
                rss.add_metric(name, process[1])
        host = status["host"]
        attached = GaugeMetricFamily("vgpu_vms_attached", "VMs with a guest attached")
        attached.add_metric([], host["attached"])
        info_labels, info_values = _build_info(self._backend)
        info = GaugeMetricFamily("vgpu_build_info", "the mediator's version, Python and backend (always 1)",
                                 labels=info_labels)
        info.add_metric(info_values, 1)
        yield from (calls, errors, protocol, htod, dtoh, used, pinned, quota, connected, restarts, sessions,
                    latency, cpu, rss, window, open_channels, expired, channel_calls, channel_used,
                    channel_handles, attached, info)


class MetricsServer:
    """``GET /metrics`` on the daemon's event loop."""

    def __init__(self, config: MetricsSection, status: StatusSource, *, backend: str = "sim",
                 gpu: str = "") -> None:
        self.config = config
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(MediatorCollector(status, backend, gpu))
        # the supervisor's own process_* (CPU, memory, open fds, start time), as every exporter has
        self.registry.register(ProcessCollector(registry=None))
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
