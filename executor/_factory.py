"""Pick and build a backend by name: ``sim``, ``cuda`` or ``auto`` (cuda when a GPU is usable); and the
contexts of one VM, one per channel, sharing what the VM owns (:class:`VmShare`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import structlog

from ._base import DeviceConfig, Executor, HostBudget
from ._errors import BackendUnavailableError
from ._pinned import PinnedArea

__all__ = ["BackendName", "VmShare", "create_executor", "resolve_backend"]

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
    return CudaExecutor(device_ordinal, memory_quota=memory_quota,
                        module_bytes=(device or DeviceConfig()).module_bytes)


class VmShare:
    """What the contexts of one VM share — one context per open channel, as a GPU gives each process
    its own: the device-memory quota (each context may hold the quota less what the others hold),
    the host budget (each context's charges count against the VM's), and on ``sim`` the device
    address space (no address is handed out twice in the VM's attachment, whichever context asks).
    """

    def __init__(self, backend: BackendName, *, device: DeviceConfig | None = None,
                 memory_quota: int | None = None, host_budget: int | None = None, va_floor: int = 0,
                 on_va_lease: Callable[[int], None] | None = None) -> None:
        self.backend, _ = resolve_backend(backend)
        self.device = device
        self.memory_quota = memory_quota
        self.host = HostBudget(host_budget)
        self.va_floor = va_floor
        self.on_va_lease = on_va_lease
        self.contexts: list[Executor] = []
        #: the region's pinned area (the worker sets it): each context gets a handle of its own, and its
        #: ranges come back when the context closes
        self.pinned: PinnedArea | None = None
        self._space: object | None = None  # the sim AddressSpace, made with the first sim context

    def create_context(self) -> Executor:
        """A fresh context of this VM (a channel being opened)."""
        executor = create_executor(self.backend, device=self.device, memory_quota=self.memory_quota,
                                   va_floor=self.va_floor, on_va_lease=self.on_va_lease)
        others = self._others_of(executor)
        from ._sim import SimExecutor

        if isinstance(executor, SimExecutor):
            from ._sim_memory import AddressSpace

            if self._space is None:
                self._space = executor.memory.space  # the first context's space becomes the VM's
            else:
                assert isinstance(self._space, AddressSpace)
                executor.memory.join(self._space)
            executor.memory.others = others
            executor.host.parent = self.host
        else:
            executor.memory_others = others  # type: ignore[attr-defined]
        if self.pinned is not None:
            executor.pinned = self.pinned.client()
        self.contexts.append(executor)
        return executor

    def close_context(self, executor: Executor) -> None:
        """Release everything a context holds and take it out of the VM's totals."""
        try:
            executor.close()
        finally:
            if executor.pinned is not None:  # a dead process's pinned memory comes back with its context
                executor.pinned.close()
            if executor in self.contexts:
                self.contexts.remove(executor)
            # a closing backend may zero its own count without releasing charge by charge: the VM's
            # budget is what its live contexts hold
            self.host.used = sum(_host_used(e) for e in self.contexts)

    def close_pinned(self) -> None:
        """The worker is going: undo what backends set up for the pinned area (cuda: its registration)."""
        if self.pinned is not None:
            self.pinned.close()

    def pinned_used(self) -> int:
        return self.pinned.allocator.used if self.pinned is not None else 0

    def _others_of(self, executor: Executor) -> Callable[[], int]:
        def others() -> int:
            return sum(e.memory_used() for e in self.contexts if e is not executor)

        return others

    def memory_used(self) -> int:
        return sum(e.memory_used() for e in self.contexts)

    def live_handles(self) -> int:
        return sum(e.live_handles() for e in self.contexts)

    def set_memory_quota(self, quota: int | None) -> None:
        self.memory_quota = quota
        for executor in self.contexts:
            setter = getattr(executor, "set_memory_quota", None)
            if callable(setter):
                setter(quota)


def _host_used(executor: Executor) -> int:
    host = getattr(executor, "host", None)
    return host.used if isinstance(host, HostBudget) else 0
