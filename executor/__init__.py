"""Executor backends: where a VM's calls are replayed (``sim`` on the CPU, ``cuda`` on the GPU)."""

from ._base import Allocation, AllocationMap, CallIO, DeviceConfig, Executor, HandleTable
from ._errors import BackendUnavailableError, CudaError, ExecutorError
from ._factory import BackendName, create_executor, resolve_backend

__all__ = [
    "Allocation",
    "AllocationMap",
    "BackendName",
    "BackendUnavailableError",
    "CallIO",
    "CudaError",
    "DeviceConfig",
    "Executor",
    "ExecutorError",
    "HandleTable",
    "create_executor",
    "resolve_backend",
]
