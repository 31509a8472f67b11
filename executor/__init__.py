"""Executor backends: where a VM's calls are replayed (``sim`` on the CPU, ``cuda`` on the GPU)."""

from ._base import Allocation, AllocationMap, CallIO, DeviceConfig, Executor, HandleTable
from ._cuda import CudaExecutor, cuda_available
from ._errors import BackendUnavailableError, CudaError, ExecutorError
from ._factory import BackendName, VmShare, create_executor, resolve_backend
from ._kernels import KernelImpl, LaunchDims, reference_kernel
from ._modules import GlobalInfo, KernelInfo, ModuleImage, ParamInfo, parse_module_image
from ._pinned import PinnedAllocator, PinnedArea, PinnedClient
from ._sim import SimExecutor

__all__ = [
    "Allocation",
    "AllocationMap",
    "BackendName",
    "BackendUnavailableError",
    "CallIO",
    "CudaExecutor",
    "CudaError",
    "DeviceConfig",
    "Executor",
    "ExecutorError",
    "GlobalInfo",
    "HandleTable",
    "KernelImpl",
    "KernelInfo",
    "LaunchDims",
    "ModuleImage",
    "ParamInfo",
    "PinnedAllocator",
    "PinnedArea",
    "PinnedClient",
    "SimExecutor",
    "VmShare",
    "create_executor",
    "cuda_available",
    "parse_module_image",
    "reference_kernel",
    "resolve_backend",
]
