"""The simulator's answers to the NVML calls (``nvml_*``), mixed into :class:`SimExecutor`.

NVML in the guest reports the VM's view of the device: its quota as the total memory and its own
allocations as used (``DeviceMemory.limit`` and ``.used``), and the driver as the simulator
describes itself (its CUDA driver version; there is no kernel-mode driver to name).
"""

from __future__ import annotations

from collections.abc import Callable

from protocol import CUresult
from protocol.models import DeviceArgs, NoArgs, NoResult, NvmlMemoryResult, NvmlProcessesResult

from ._base import CallIO, DeviceConfig
from ._errors import CudaError
from ._nvml_processes import compute_processes
from ._sim_memory import DeviceMemory

__all__ = ["SimNvmlCalls", "sim_driver_version"]


def sim_driver_version(config: DeviceConfig) -> str:
    """What the simulator calls its driver: the CUDA driver version it reports, and what it is."""
    major, minor = divmod(config.driver_version, 1000)
    return f"{major}.{minor // 10} (vgpu-mediator simulator)"


class SimNvmlCalls:
    """NVML handlers over the simulator's state (its configuration and the VM's device memory)."""

    config: DeviceConfig
    memory: DeviceMemory
    vm_processes: Callable[[], list[tuple[int, int]]] | None

    def nvml_memory_info(self, args: DeviceArgs, io: CallIO) -> NvmlMemoryResult:
        if args.device != 0:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_DEVICE,
                            f"device {args.device} does not exist (the VM has one device, 0)")
        return NvmlMemoryResult(total=self.memory.limit, used=self.memory.used)

    def nvml_driver_version(self, args: NoArgs, io: CallIO) -> NoResult:
        if len(io.out) == 0:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            "nvmlSystemGetDriverVersion: no room for the string (out_cap 0)")
        data = sim_driver_version(self.config).encode()[:len(io.out) - 1] + b"\0"
        io.out[:len(data)] = data
        io.out_len = len(data)
        return NoResult()

    def nvml_compute_processes(self, args: DeviceArgs, io: CallIO) -> NvmlProcessesResult:
        """The VM's own processes with a context (the worker's channels), see ``_nvml_processes``."""
        return compute_processes(args, io, self.vm_processes)
