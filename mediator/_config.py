"""The daemon's configuration: one TOML file, validated by pydantic, errors naming the bad key.

::

    [mediator]
    socket_dir = "/run/vgpu-mediator"      # one <vm name>.sock per VM
    control_socket = "/run/vgpu-mediator/control.sock"
    backend = "auto"                        # sim | cuda | auto
    log_level = "info"
    region_size = "256MiB"                  # power of two: split into the VM's channels
    pinned_size = "256MiB"                  # the guest's pinned host memory (cudaMallocHost); 0: none
    poll_us = 50                            # how long a worker spins before sleeping
    poll_max_us = 200                       # ... at most, while the VM's bursts come this close
    control_group = "vgpu-operators"        # may change things on control.sock
    control_readers = "vgpu-monitoring"     # may read status and traces on control-ro.sock

    [device]                                # what the sim backend reports
    name = "vGPU Simulated H100"
    total_memory = "16GiB"

    [mqtt]                                  # fleet telemetry and control (off by default)
    enabled = true
    host = "broker.example"
    topic_prefix = "vgpu"

    [metrics]                               # Prometheus endpoint (off by default)
    enabled = true
    bind = "127.0.0.1"
    port = 9464

    [[vm]]
    id = 1
    name = "vm1"
    owner = "vgpu-qemu-vm1"                 # the only user whose processes may attach this VM
    memory_quota = "4GiB"
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from protocol import LocalProtocolError, plan_region

__all__ = [
    "ConfigError", "DeviceSection", "MediatorConfig", "MediatorSection", "MetricsSection", "MqttSection",
    "VmConfig", "host_memory", "load_config", "max_region_size", "parse_config", "parse_size", "region_bytes",
]

_UNITS = {"": 1, "b": 1, "k": 1024, "kib": 1024, "m": 1024**2, "mib": 1024**2, "g": 1024**3,
          "gib": 1024**3, "t": 1024**4, "tib": 1024**4}


def parse_size(value: Any) -> Any:
    """``"64MiB"`` → 67108864; ints pass through; ``true`` is not a size (bool is an int in Python)."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a size such as 4096, '64MiB' or '16GiB'")
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", value)
        if not match or match.group(2).lower() not in _UNITS:
            raise ValueError(f"{value!r} is not a size such as 4096, '64MiB' or '16GiB'")
        return int(match.group(1)) * _UNITS[match.group(2).lower()]
    return value


Size = Annotated[int, BeforeValidator(parse_size), Field(ge=0)]
#: a user or group, by name or number (resolved on the host when the daemon starts or reloads)
Principal = Annotated[str | int, Field(union_mode="left_to_right")]
#: sun_path holds 108 bytes with its terminating NUL
AF_UNIX_PATH_MAX = 107
#: VM names whose sockets would be the control sockets' (``control.sock``, ``control-ro.sock``)
RESERVED_VM_NAMES = frozenset({"control", "control-ro"})


def host_memory() -> int:
    """Physical memory of this host in bytes."""
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def max_region_size() -> int:
    """The largest region one VM may have: the largest power of two within an eighth of the host's
    memory (every VM's region is shared memory the host holds for the VM's whole session)."""
    eighth = max(host_memory() // 8, 1 << 20)
    return 1 << (eighth.bit_length() - 1)


def check_region_size(size: int) -> int:
    if size < 1 << 20 or size & (size - 1):
        raise ValueError(f"{size} must be a power of two of at least 1 MiB")
    if size > max_region_size():
        raise ValueError(f"{size} is more than this host can give one VM (at most "
                         f"{max_region_size()} bytes, an eighth of its memory)")
    return size


def check_pinned_size(size: int) -> int:
    if size % (1 << 20):
        raise ValueError(f"{size} must be a whole number of MiB (0: no pinned memory)")
    return size


def region_bytes(channels_size: int, pinned_size: int) -> int:
    """The VM's region: the smallest power of two that holds ``channels_size`` for its channels and
    ``pinned_size`` for its pinned area (the region's last bytes; docs/protocol.md §1)."""
    need = channels_size + pinned_size
    return 1 << (need - 1).bit_length()


class ConfigError(Exception):
    """The configuration file cannot be used; the message names the key."""


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MediatorSection(_Section):
    socket_dir: Path = Path("/run/vgpu-mediator")
    control_socket: Path | None = None
    backend: Literal["sim", "cuda", "auto"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    region_size: Size = 256 * 1024**2  # 16 channels of 16 MiB; pages cost nothing until a channel is used
    # the guest's pinned host memory (cudaMallocHost & co.), the region's last bytes: the region grows
    # to the power of two that holds both; pages cost nothing until the guest touches them
    pinned_size: Size = 256 * 1024**2
    poll_us: int = Field(default=50, ge=0, le=1_000_000)
    # the window grows up to this while a VM's work comes in bursts closer together (mediator/_polling.py)
    poll_max_us: int = Field(default=200, ge=0, le=1_000_000)
    max_sleep_ms: int = Field(default=100, ge=1, le=10_000)
    # cap a worker serving well ahead of its peers when busy VMs outnumber CPUs (mediator/_pacing.py)
    pace_workers: bool = True
    drain_timeout_s: float = Field(default=5.0, gt=0)
    worker_timeout_s: float = Field(default=30.0, gt=0)  # no heartbeat for this long: kill, restart
    restart_limit: int = Field(default=5, ge=0)  # worker restarts allowed per VM per minute
    max_async_inflight: int = Field(default=4096, ge=0)  # async calls before the server syncs (0: no cap)
    # host memory a worker may use beyond its VM's device memory: half for what the guest's calls make
    # it keep (modules, graphs), half for the interpreter (mediator/_worker_memory.py has the formula)
    worker_memory_overhead: Size = Field(default=512 * 1024**2, ge=128 * 1024**2)
    # Who may use the control sockets (docs/operations.md, "Who may do what"): besides root and the
    # daemon's own user, members of control_group may do everything on control.sock; members of
    # control_readers (and of control_group) may read status and traces on control-ro.sock.
    control_group: Principal | None = None
    control_readers: Principal | None = None
    allow_fault_injection: bool = False  # inject_fault is for drills and tests only

    @field_validator("region_size")
    @classmethod
    def _region(cls, size: int) -> int:
        return check_region_size(size)

    @field_validator("pinned_size")
    @classmethod
    def _pinned(cls, size: int) -> int:
        return check_pinned_size(size)

    @property
    def control_path(self) -> Path:
        return self.control_socket or self.socket_dir / "control.sock"

    @property
    def control_ro_path(self) -> Path:
        """The read-only control socket: beside the control socket, ``-ro`` added to its name."""
        path = self.control_path
        return path.with_name(f"{path.stem}-ro{path.suffix}")


class DeviceSection(_Section):
    name: str = "vGPU Simulated H100"
    total_memory: Size = 16 * 1024**3
    compute_capability: tuple[int, int] = (9, 0)
    uuid: str = "5647505553494d000000000000000001"
    pci_bus_id: str = "0000:00:05.0"
    multiprocessor_count: int = Field(default=132, ge=1)
    # the CUDA driver version sim reports (cuDriverGetVersion, NVML), 1000 * major + 10 * minor: at
    # least 13000, since the guest's CUDA 13 runtime refuses a driver older than itself
    driver_version: int = Field(default=13000, ge=13000, lt=100_000)
    # sim's PTX engine, per launch: past either bound CUDA_ERROR_LAUNCH_TIMEOUT (sticky); the device
    # printf output kept (log and trace), the rest counted as dropped. A launch runs on the worker's
    # thread, so launch_timeout_s must stay under [mediator] worker_timeout_s (checked below).
    launch_timeout_s: float = Field(default=5.0, gt=0, le=3600)
    launch_instructions: int = Field(default=50_000_000, ge=1000)
    printf_bytes: Size = Field(default=64 * 1024, ge=0, le=16 * 1024**2)
    printf_lines: int = Field(default=1024, ge=0, le=1_000_000)
    # the largest module image a guest process loads: one larger than its channel's arena is uploaded
    # in chunks into a buffer of the VM's host memory (charged to its host budget on sim)
    module_bytes: Size = Field(default=64 * 1024**2, ge=1024**2, le=1024**3)

    @model_validator(mode="after")
    def _uuid_hex(self) -> Self:
        if not re.fullmatch(r"[0-9a-fA-F]{32}", self.uuid):
            raise ValueError("uuid must be 32 hex digits")
        if self.driver_version % 10:
            raise ValueError(f"driver_version {self.driver_version} is not 1000 * major + 10 * minor")
        return self


class VmConfig(_Section):
    id: int = Field(ge=1, le=65535)
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
    memory_quota: Size | None = None
    region_size: Size | None = None
    pinned_size: Size | None = None  # None: [mediator] pinned_size
    trace: bool = False  # trace this VM's calls from the start
    calls_per_s: float | None = Field(default=None, gt=0)  # served no faster than this (None: no limit)
    # Who may attach (docs/operations.md, "Who may do what"): the socket is given to owner (mode
    # 0600), or to group (0660) when one is named; a connecting process must be owner, or without an
    # owner a member of group (root and the daemon's own user always may). Neither: root only.
    owner: Principal | None = None
    group: Principal | None = None
    # Channels (docs/protocol.md §1): how many guest processes may hold a CUDA context at once, the
    # doorbell vectors the host listens on (QEMU's ivshmem-doorbell needs vectors >= this), and how long
    # a channel whose process stopped beating keeps its context
    channels: int = Field(default=16, ge=1, le=256)
    vectors: int | None = Field(default=None, ge=1, le=256)  # None: one per channel
    channel_lease_ms: int = Field(default=800, ge=40, le=3_600_000)

    @property
    def doorbell_vectors(self) -> int:
        return self.vectors if self.vectors is not None else self.channels

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, name: str) -> str:
        if name in RESERVED_VM_NAMES:
            raise ValueError(f"a VM may not be named {name!r}: its socket would be a control socket")
        return name

    @field_validator("region_size")
    @classmethod
    def _region(cls, size: int | None) -> int | None:
        return None if size is None else check_region_size(size)

    @field_validator("pinned_size")
    @classmethod
    def _pinned(cls, size: int | None) -> int | None:
        return None if size is None else check_pinned_size(size)


class MqttSection(_Section):
    """Fleet telemetry and control over MQTT (``aiomqtt``); off unless ``enabled``."""

    enabled: bool = False
    host: str = "localhost"
    port: int = Field(default=1883, ge=1, le=65535)
    tls: bool = False
    ca_file: Path | None = None  # TLS trust anchors (default: the system's)
    username: str | None = None
    password_file: Path | None = None  # read at connect time, so rotating it needs no reload
    topic_prefix: str = Field(default="vgpu", pattern=r"^[^#+]+$")
    host_name: str | None = Field(default=None, pattern=r"^[^/#+]+$")  # default: the machine's hostname
    status_interval_s: float = Field(default=10.0, gt=0)
    keepalive_s: int = Field(default=30, ge=5)
    queue_limit: int = Field(default=1000, ge=10)  # outgoing messages kept while the broker is away
    error_burst: int = Field(default=100, ge=1)  # errors within one status interval that make an event

    @model_validator(mode="after")
    def _credentials(self) -> Self:
        if self.password_file is not None and self.username is None:
            raise ValueError("password_file needs a username")
        return self


class MetricsSection(_Section):
    """A Prometheus text endpoint; off unless ``enabled``; localhost unless told otherwise."""

    enabled: bool = False
    bind: str = "127.0.0.1"
    port: int = Field(default=9464, ge=0, le=65535)  # 0: any free port (tests)


class MediatorConfig(_Section):
    mediator: MediatorSection = MediatorSection()
    device: DeviceSection = DeviceSection()
    mqtt: MqttSection = MqttSection()
    metrics: MetricsSection = MetricsSection()
    vm: list[VmConfig] = []

    @model_validator(mode="after")
    def _launch_inside_watchdog(self) -> Self:
        # checked when set: the default stands beside a short watchdog kept for tests and drills
        if "launch_timeout_s" in self.device.model_fields_set and \
                self.device.launch_timeout_s >= self.mediator.worker_timeout_s:
            raise ValueError(f"[device] launch_timeout_s ({self.device.launch_timeout_s}) must be less "
                             f"than [mediator] worker_timeout_s ({self.mediator.worker_timeout_s}): a launch "
                             "runs on the worker's thread, which beats no heartbeat meanwhile")
        return self

    @model_validator(mode="after")
    def _unique_vms(self) -> Self:
        for attr in ("id", "name"):
            seen: set[object] = set()
            for vm in self.vm:
                value = getattr(vm, attr)
                if value in seen:
                    raise ValueError(f"two VMs share {attr} {value!r}")
                seen.add(value)
        return self

    @model_validator(mode="after")
    def _sockets(self) -> Self:
        section = self.mediator
        control = {section.control_path, section.control_ro_path}
        paths = [section.control_path, section.control_ro_path]
        for vm in self.vm:
            path = self.vm_socket(vm)
            if path in control:
                raise ValueError(f"VM {vm.name!r}'s socket {path} is a control socket; rename the VM or "
                                 "move control_socket")
            paths.append(path)
        for path in paths:
            if len(os.fsencode(path)) > AF_UNIX_PATH_MAX:
                raise ValueError(f"socket path {path} is {len(os.fsencode(path))} bytes; a Unix socket path "
                                 f"has at most {AF_UNIX_PATH_MAX}: choose a shorter socket_dir")
        for vm in self.vm:  # every channel must keep rings and an arena; the pinned area counts too
            size, pinned = self.region_of(vm)
            if size > max_region_size():
                raise ValueError(f"vm {vm.name}: its region of {size} bytes (channels and a pinned_size of "
                                 f"{pinned}) is more than this host can give one VM (at most "
                                 f"{max_region_size()} bytes, an eighth of its memory)")
            try:
                plan_region(size, vm_id=vm.id, channels=vm.channels, vectors=vm.doorbell_vectors,
                            lease_ms=vm.channel_lease_ms, pinned_size=pinned)
            except LocalProtocolError as exc:
                raise ValueError(f"vm {vm.name}: {exc.message}") from None
        regions = sum(self.region_of(vm)[0] for vm in self.vm)
        if regions > host_memory() // 2:
            raise ValueError(f"the VMs' regions take {regions} bytes together, more than half of this "
                             f"host's {host_memory()} bytes of memory")
        return self

    def region_of(self, vm: VmConfig) -> tuple[int, int]:
        """The VM's region size and its pinned area's size (:func:`region_bytes`)."""
        channels = vm.region_size or self.mediator.region_size
        pinned = self.mediator.pinned_size if vm.pinned_size is None else vm.pinned_size
        return region_bytes(channels, pinned), pinned

    def vm_socket(self, vm: VmConfig) -> Path:
        return self.mediator.socket_dir / f"{vm.name}.sock"


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        parts: list[str] = []
        for part in err["loc"]:
            if isinstance(part, int) and parts:
                parts[-1] += f"[{part}]"
            else:
                parts.append(str(part))
        message = err["msg"].removeprefix("Value error, ")
        lines.append(f"{'.'.join(parts)}: {message}" if parts else message)
    return "; ".join(lines)


def parse_config(data: dict[str, Any], source: str = "<config>") -> MediatorConfig:
    try:
        return MediatorConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_describe(exc)}") from None


def load_config(path: Path | str) -> MediatorConfig:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_config(data, str(path))
