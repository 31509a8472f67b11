"""The ``sim`` backend's modules and functions: loaded images, their globals, kernel look-ups.

A loaded module is the parsed :class:`ModuleImage` (``_modules``) plus device memory for each of its
globals, allocated and initialized at load as the driver does, registered in the VM's
:class:`AllocationMap` as kind ``"global"`` so copies to and from them are bounds-checked like any
other. A function is a (module, kernel) pair; asking twice for the same name gives the same handle, as
``cuModuleGetFunction`` does. Unloading a module frees its globals and invalidates its functions.
Whether a kernel can *run* is decided at launch (:func:`reference_kernel`): loading and looking up
work for every kernel in the image, as on a GPU.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from protocol import CUresult

from ._base import HandleTable
from ._errors import CudaError
from ._modules import KernelInfo, ModuleImage, parse_module_image
from ._sim_memory import DeviceMemory

__all__ = ["SimFunction", "SimModule", "SimModules", "symbol_name"]

#: the longest kernel or global name we accept (mangled C++ names get long, not this long)
MAX_NAME_BYTES = 4096


@dataclass(eq=False, slots=True)
class SimModule:
    image: ModuleImage
    globals: dict[str, tuple[int, int]]  # name -> (device address, size)
    functions: dict[str, int] = field(default_factory=dict)  # kernel name -> function handle


@dataclass(eq=False, slots=True)
class SimFunction:
    module: int
    kernel: KernelInfo


def symbol_name(data: memoryview | bytes, what: str) -> str:
    """A kernel or global name from the guest: UTF-8, optionally NUL-terminated, non-empty."""
    raw = bytes(data[:MAX_NAME_BYTES + 1])
    end = raw.find(b"\0")
    if end >= 0:
        raw = raw[:end]
    elif len(raw) > MAX_NAME_BYTES:
        raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE, f"{what}: name longer than {MAX_NAME_BYTES} bytes")
    if not raw:
        raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE, f"{what}: empty name")
    try:
        return raw.decode()
    except UnicodeDecodeError as exc:
        raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE, f"{what}: name is not UTF-8") from exc


class SimModules:
    """One VM's loaded modules and the functions looked up in them."""

    def __init__(self, memory: DeviceMemory, *, ids: Iterator[int] | None = None) -> None:
        self._memory = memory
        self.modules: HandleTable[SimModule] = HandleTable("module", ids=ids)
        self.functions: HandleTable[SimFunction] = HandleTable("function", ids=ids)

    def load(self, data: memoryview | bytes) -> tuple[int, SimModule]:
        image = parse_module_image(data)
        placed: dict[str, tuple[int, int]] = {}
        try:
            for name, info in image.globals.items():
                ptr, backing = self._memory.add_global(info.size)
                backing[:] = np.frombuffer(info.init, dtype=np.uint8)
                placed[name] = (ptr, info.size)
        except CudaError:
            for ptr, _ in placed.values():
                self._memory.remove_global(ptr)
            raise
        module = SimModule(image, placed)
        return self.modules.add(module), module

    def unload(self, handle: int) -> None:
        module = self.modules.pop(handle)
        for function in module.functions.values():
            if function in self.functions:
                self.functions.pop(function)
        for ptr, _ in module.globals.values():
            self._memory.remove_global(ptr)

    def function(self, handle: int, name: str) -> int:
        module = self.modules.get(handle)
        known = module.functions.get(name)
        if known is not None:
            return known
        kernel = module.image.kernels.get(name)
        if kernel is None:
            raise CudaError(CUresult.CUDA_ERROR_NOT_FOUND,
                            f"cuModuleGetFunction: module {handle} has no kernel {name!r}")
        function = self.functions.add(SimFunction(handle, kernel))
        module.functions[name] = function
        return function

    def global_(self, handle: int, name: str) -> tuple[int, int]:
        module = self.modules.get(handle)
        found = module.globals.get(name)
        if found is None:
            raise CudaError(CUresult.CUDA_ERROR_NOT_FOUND,
                            f"cuModuleGetGlobal: module {handle} has no global {name!r}")
        return found

    def symbols(self, function: SimFunction) -> dict[str, int]:
        """The device addresses of the function's module globals, by name (for reference kernels)."""
        return {name: ptr for name, (ptr, _) in self.modules.get(function.module).globals.items()}

    def clear(self) -> None:
        for handle in [handle for handle, _ in self.modules.items()]:
            self.unload(handle)
