"""The cuda backend's answers to the NVML calls (``nvml_*``), mixed into :class:`CudaExecutor`.

Memory is the VM's view, from the backend's own accounting: its quota (the device's memory when it
has none) as the total, what its allocations hold as used. The driver's version string is NVML's,
read through NVIDIA's maintained binding (``nvidia-ml-py``, the ``cuda`` extra); NVML is initialized
once per worker, on first use, and a host without it answers ``CUDA_ERROR_NOT_SUPPORTED`` saying why.
"""

from __future__ import annotations

import importlib
from typing import Any

from protocol import CUresult
from protocol.models import DeviceArgs, NoArgs, NoResult, NvmlMemoryResult, NvmlProcessesResult

from ._base import CallIO
from ._cuda_base import CudaBase
from ._errors import CudaError
from ._nvml_processes import compute_processes

__all__ = ["NvmlCalls"]


class NvmlCalls(CudaBase):
    """NVML handlers over the backend's state; ``_nvml`` is the binding (None until first used)."""

    _nvml: Any = None

    def _nvml_module(self) -> Any:
        if self._nvml is None:
            try:
                module = importlib.import_module("pynvml")
                module.nvmlInit()
            except ImportError as exc:
                raise CudaError(CUresult.CUDA_ERROR_NOT_SUPPORTED,
                                "NVML queries need nvidia-ml-py on the host (the cuda extra)") from exc
            except Exception as exc:  # pynvml.NVMLError and its subclasses
                raise CudaError(CUresult.CUDA_ERROR_NOT_SUPPORTED,
                                f"the host's NVML did not start: {exc}") from exc
            self._nvml = module
        return self._nvml

    def nvml_memory_info(self, args: DeviceArgs, io: CallIO) -> NvmlMemoryResult:
        total = self._drv.device_total_mem(self._device(args.device))
        if self.memory_quota is not None:
            total = min(total, self.memory_quota)
        return NvmlMemoryResult(total=total, used=self.memory_used())

    def nvml_driver_version(self, args: NoArgs, io: CallIO) -> NoResult:
        nvml = self._nvml_module()
        try:
            version = nvml.nvmlSystemGetDriverVersion()
        except Exception as exc:
            raise CudaError(CUresult.CUDA_ERROR_NOT_SUPPORTED, f"nvmlSystemGetDriverVersion: {exc}") from exc
        text = (version.decode() if isinstance(version, bytes) else str(version)).encode()
        if len(io.out) == 0:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            "nvmlSystemGetDriverVersion: no room for the string (out_cap 0)")
        data = text[:len(io.out) - 1] + b"\0"
        io.out[:len(data)] = data
        io.out_len = len(data)
        return NoResult()

    def nvml_compute_processes(self, args: DeviceArgs, io: CallIO) -> NvmlProcessesResult:
        """The VM's own processes with a context (the worker's channels), see ``_nvml_processes``."""
        return compute_processes(args, io, self.vm_processes)
