"""Pick and build a backend by name: ``sim``, ``cuda`` or ``auto`` (cuda when a GPU is usable)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import structlog

from ._base import DeviceConfig, Executor
from ._errors import BackendUnavailableError

__all__ = ["BackendName", "create_executor", "resolve_backend"]

BackendName = Literal["sim", "cuda", "auto"]
log = structlog.get_logger("executor")


def resolve_backend(name: BackendName) -> tuple[Literal["sim", "cuda"], str]:
    """The concrete backend for ``name`` and why it was picked."""
    if name != "auto":
        return name, "configured"
    try:
        from ._cuda import cuda_available
    except ImportError as exc:
        return "sim", f"cuda backend not importable: {exc}"
    usable, why = cuda_available()
    return ("cuda", why) if usable else ("sim", why)


def create_executor(name: BackendName, *, device: DeviceConfig | None = None,
                    memory_quota: int | None = None, device_ordinal: int = 0,
                    host_budget: int | None = None, va_floor: int = 0,
                    on_va_lease: Callable[[int], None] | None = None) -> Executor:
    """A backend for one VM. ``host_budget``, ``va_floor`` and ``on_va_lease`` bound the host memory
    the VM's calls may make the backend keep, and keep its device addresses apart from an earlier
    worker's (``sim``; the ``cuda`` backend's addresses are the driver's, see docs/threat-model.md)."""
    backend, why = resolve_backend(name)
    if name == "auto":
        log.info("backend picked", requested=name, backend=backend, reason=why)
    if backend == "sim":
        from ._sim import SimExecutor

        return SimExecutor(device or DeviceConfig(), memory_quota=memory_quota, host_budget=host_budget,
                           va_floor=va_floor, on_va_lease=on_va_lease)
    try:
        from ._cuda import CudaExecutor
    except ImportError as exc:
        raise BackendUnavailableError(f"the cuda backend cannot be imported: {exc}") from exc
    return CudaExecutor(device_ordinal, memory_quota=memory_quota)
