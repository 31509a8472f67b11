"""The ``sim`` backend's modules and functions: loaded images, their globals, kernel look-ups.

A loaded module is the parsed :class:`ModuleImage` (``_modules``) plus device memory for each of its
globals, allocated and initialized at load as the driver does, registered in the VM's
:class:`AllocationMap` as kind ``"global"`` so copies to and from them are bounds-checked like any
other. A function is a (module, kernel) pair; asking twice for the same name gives the same handle, as
``cuModuleGetFunction`` does. Unloading a module frees its globals and invalidates its functions.
Whether a kernel can *run* is decided at launch (:func:`reference_kernel`): loading and looking up
work for every kernel in the image, as on a GPU.

Function attributes (``cuFuncGetAttribute``/``cuFuncSetAttribute``) come from the image entry the
device would run, picked when the function is looked up as the driver picks it: a cubin of the same
major architecture and no newer minor one (the highest such), else PTX for the highest virtual
architecture not above the device's (which the driver would compile). A value is answered only when
that entry records it (see ``_modules``) or it follows from the device's limits; anything else is
``CUDA_ERROR_NOT_SUPPORTED`` with the reason. For a PTX entry the simulator's JIT compiler is its
PTX engine: what a driver's compilation decides (registers, static shared, const and local sizes,
the largest block) is what the engine lays out for it (``jit``, from the parse alone).
``MAX_THREADS_PER_BLOCK`` is the least of the device's limit, the launch bound, and what the register
file holds: registers are allocated per warp in units of 256 and, by the hardware's check (as
``cuda_occupancy.h`` states it), to warps in groups of four sub-partitions.
``MAX_DYNAMIC_SHARED_SIZE_BYTES`` defaults to the device's 48 KiB per block less the static shared
memory (0 when that is more) and may be raised to the opt-in limit less the static size; a launch
asking more dynamic shared memory than it is ``CUDA_ERROR_INVALID_VALUE``. Settings live with the
function and end with its module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from protocol import CUresult, FunctionAttribute

from ._base import HandleTable, HostBudget
from ._errors import CudaError
from ._modules import (
    DEFAULT_PARSE_BUDGET,
    KernelAttributes,
    KernelInfo,
    ModuleImage,
    parse_module_image,
    retained_bytes,
)
from ._sim_memory import DeviceMemory

__all__ = ["FunctionLimits", "SimFunction", "SimModule", "SimModules", "device_variant",
           "max_threads_per_block", "symbol_name"]

#: the longest kernel or global name we accept (mangled C++ names get long, not this long)
MAX_NAME_BYTES = 4096

A = FunctionAttribute
#: registers go to warps in units of this many; the hardware checks them per group of sub-partitions
_REGISTER_UNIT = 256
_SUB_PARTITIONS = 4
_CLUSTER_DIMS = (A.CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_WIDTH, A.CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_HEIGHT,
                 A.CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_DEPTH)
#: what cuFuncSetAttribute accepts, with the values CUDA allows (clusters: checked at launch)
_SETTABLE: dict[FunctionAttribute, range | None] = {
    A.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES: None,  # against the opt-in limit
    A.CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT: range(-1, 101),  # percent, -1 = no preference
    **dict.fromkeys(_CLUSTER_DIMS, range(0, 2**31)),
    A.CU_FUNC_ATTRIBUTE_NON_PORTABLE_CLUSTER_SIZE_ALLOWED: range(0, 2),
    A.CU_FUNC_ATTRIBUTE_CLUSTER_SCHEDULING_POLICY_PREFERENCE: range(0, 3),  # CUclusterSchedulingPolicy
}
#: why a PTX entry cannot say what the driver's JIT compilation would decide
_JIT_DECIDES = {
    A.CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK: "without a .maxntid or .reqntid it depends on the registers "
                                               "the JIT compiler allocates",
    A.CU_FUNC_ATTRIBUTE_NUM_REGS: "its register count is the JIT compiler's choice",
    A.CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES: "its local memory is the JIT compiler's choice",
    A.CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES: "the module declares static .shared variables, which the JIT "
                                           "compiler lays out",
    A.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES: "its default is the device's limit less the static "
                                                       "shared memory, which the JIT compiler lays out",
    A.CU_FUNC_ATTRIBUTE_CONST_SIZE_BYTES: "the module declares .const variables, which the JIT compiler "
                                          "lays out",
}


@dataclass(frozen=True, slots=True)
class FunctionLimits:
    """The device limits function attributes derive from (the simulated device's attributes)."""

    compute_capability: int  # major * 10 + minor
    max_threads_per_block: int
    registers_per_block: int
    shared_per_block: int
    shared_per_block_optin: int
    warp_size: int


@dataclass(eq=False, slots=True)
class SimModule:
    image: ModuleImage
    globals: dict[str, tuple[int, int]]  # name -> (device address, size)
    #: __managed__ globals moved to managed memory (module_global_alias): name -> the address loaded
    aliased: dict[str, int] = field(default_factory=dict)
    functions: dict[str, int] = field(default_factory=dict)  # kernel name -> function handle
    host_bytes: int = 0  # charged to the VM's host budget while the module is loaded


@dataclass(eq=False, slots=True)
class SimFunction:
    module: int
    kernel: KernelInfo
    variant: KernelAttributes | None  # the image entry the device runs; None when none fits it
    settings: dict[FunctionAttribute, int] = field(default_factory=dict)  # cuFuncSetAttribute's


def max_threads_per_block(v: KernelAttributes, limits: FunctionLimits) -> int | None:
    """The largest block a launch of the kernel may have: the device's limit, its launch bound, and
    for a cubin what the register file holds (None when that is unknown)."""
    most = min(limits.max_threads_per_block, v.max_threads or limits.max_threads_per_block)
    if v.source == "ptx":  # the JIT compiler allocates registers to honour a launch bound
        return most if v.max_threads is not None else None
    if v.num_regs is None:
        return None
    per_warp = -(-v.num_regs * limits.warp_size // _REGISTER_UNIT) * _REGISTER_UNIT
    if per_warp:
        warps = limits.registers_per_block // (per_warp * _SUB_PARTITIONS) * _SUB_PARTITIONS
        most = min(most, warps * limits.warp_size)
    return most


def device_variant(kernel: KernelInfo, compute_capability: int) -> KernelAttributes | None:
    """The entry the driver would use on a device of ``compute_capability`` (major * 10 + minor)."""
    cubins = [v for v in kernel.variants if v.source == "cubin"
              and v.arch // 10 == compute_capability // 10 and v.arch <= compute_capability]
    ptx = [v for v in kernel.variants if v.source == "ptx" and v.arch <= compute_capability]
    return max(cubins or ptx, key=lambda v: v.arch, default=None)


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

    def __init__(self, memory: DeviceMemory, limits: FunctionLimits, *,
                 ids: Iterator[int] | None = None, host: HostBudget | None = None,
                 jit: Callable[[SimFunction], KernelAttributes] | None = None) -> None:
        """``jit``: what the simulator's JIT compiler (the PTX engine) lays out for a function whose
        entry is PTX — its variant with registers, shared, const and local sizes filled in."""
        self._memory = memory
        self._jit = jit
        self.limits = limits
        self._host = host if host is not None else HostBudget(None)
        self.modules: HandleTable[SimModule] = HandleTable("module", ids=ids)
        self.functions: HandleTable[SimFunction] = HandleTable("function", ids=ids)

    def load(self, data: memoryview | bytes) -> tuple[int, SimModule]:
        """Parse, charge and place a module. Host memory is charged before it is spent: the parse
        may spend what the VM's host budget has left (the image's copy included), and what the
        parsed module keeps stays charged until it is unloaded; its globals are charged to the
        device quota, all of them before the first is backed, and only their initialized prefix is
        written (zero pages cost the host nothing until touched)."""
        budget = min(DEFAULT_PARSE_BUDGET, self._host.available)
        self._host.check(len(data), "cuModuleLoadData: a copy of the image")
        image = parse_module_image(data, compute_capability=self.limits.compute_capability,
                                   host_budget=max(budget - len(data), 0))
        self._memory.check_room(sum(g.size for g in image.globals.values()),
                                f"cuModuleLoadData: the module's {len(image.globals)} globals")
        host_bytes = retained_bytes(image)
        self._host.charge(host_bytes, "cuModuleLoadData: the parsed module")
        placed: dict[str, tuple[int, int]] = {}
        try:
            for name, info in image.globals.items():
                ptr, backing = self._memory.add_global(info.size)
                if info.init:
                    backing[:len(info.init)] = np.frombuffer(info.init, dtype=np.uint8)
                placed[name] = (ptr, info.size)
            module = SimModule(image, placed, host_bytes=host_bytes)
            return self.modules.add(module), module
        except CudaError:
            for ptr, _ in placed.values():
                self._memory.remove_global(ptr)
            self._host.release(host_bytes)
            raise

    def unload(self, handle: int) -> None:
        module = self.modules.pop(handle)
        for function in module.functions.values():
            if function in self.functions:
                self.functions.pop(function)
        for name, (ptr, _) in module.globals.items():
            self._memory.remove_global(module.aliased.get(name, ptr))  # never the managed range itself
        self._host.release(module.host_bytes)

    def function(self, handle: int, name: str) -> int:
        module = self.modules.get(handle)
        known = module.functions.get(name)
        if known is not None:
            return known
        kernel = module.image.kernels.get(name)
        if kernel is None:
            raise CudaError(CUresult.CUDA_ERROR_NOT_FOUND,
                            f"cuModuleGetFunction: module {handle} has no kernel {name!r}")
        variant = device_variant(kernel, self.limits.compute_capability)
        function = self.functions.add(SimFunction(handle, kernel, variant))
        module.functions[name] = function
        return function

    def global_(self, handle: int, name: str) -> tuple[int, int]:
        module = self.modules.get(handle)
        found = module.globals.get(name)
        if found is None:
            raise CudaError(CUresult.CUDA_ERROR_NOT_FOUND,
                            f"cuModuleGetGlobal: module {handle} has no global {name!r}")
        return found

    def alias_global(self, handle: int, name: str, address: int, size: int) -> None:
        """A ``__managed__`` variable: the global ``name`` is the VM's ``size`` bytes at ``address`` from
        now on (kernels launched after it and cuModuleGetGlobal name it there); its own bytes stay
        allocated until the module is unloaded. The range must be the VM's, readable and writable."""
        module = self.modules.get(handle)
        ptr, own = self.global_(handle, name)
        if size != own or name in module.aliased:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"__cudaRegisterManagedVar: {name!r} is {own} bytes, not {size}"
                            if size != own else f"__cudaRegisterManagedVar: {name!r} is managed already")
        self._memory.check(address, size, write=True, what=f"the managed range of {name!r}")
        module.aliased[name] = ptr
        module.globals[name] = (address, size)

    # -- function attributes ---------------------------------------------------------------------

    def attribute(self, handle: int, attrib: FunctionAttribute) -> int:
        """``cuFuncGetAttribute``: the value, or CUDA_ERROR_NOT_SUPPORTED when the image does not say."""
        function = self._compiled(self.functions.get(handle))
        value = self._value(function, attrib)
        if value is None:
            raise CudaError(CUresult.CUDA_ERROR_NOT_SUPPORTED,
                            f"cuFuncGetAttribute({attrib.name}) of {function.kernel.name}: "
                            f"{self._unknown(function, attrib)}")
        return value

    def set_attribute(self, handle: int, attrib: FunctionAttribute, value: int) -> None:
        """``cuFuncSetAttribute``, validated as CUDA validates it."""
        function = self._compiled(self.functions.get(handle))
        what = f"cuFuncSetAttribute({attrib.name}, {value}) of {function.kernel.name}"
        if attrib not in _SETTABLE:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE, f"{what}: the attribute is read-only")
        allowed = _SETTABLE[attrib]
        if allowed is not None and value not in allowed:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"{what}: the value must lie in [{allowed.start}, {allowed.stop - 1}]")
        variant = function.variant
        if attrib == A.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES:
            static = variant.static_shared if variant is not None else None
            if static is None:
                raise CudaError(CUresult.CUDA_ERROR_NOT_SUPPORTED,
                                f"{what}: the limit depends on the static shared memory, and "
                                f"{self._unknown(function, A.CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES)}")
            most = self.limits.shared_per_block_optin - static
            if not 0 <= value <= most:
                raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                                f"{what}: the kernel may use between 0 and {most} bytes of dynamic shared "
                                f"memory (the device's opt-in {self.limits.shared_per_block_optin} bytes per "
                                f"block less {static} static)")
        elif attrib in _CLUSTER_DIMS:
            if variant is None:
                raise CudaError(CUresult.CUDA_ERROR_NOT_SUPPORTED,
                                f"{what}: {self._unknown(function, attrib)}")
            if variant.cluster_dims != (0, 0, 0):
                raise CudaError(CUresult.CUDA_ERROR_NOT_PERMITTED,
                                f"{what}: the kernel was compiled with cluster dimensions "
                                f"{variant.cluster_dims}")
        function.settings[attrib] = value

    def dynamic_shared_limit(self, function: SimFunction) -> int:
        """The most dynamic shared memory a launch of ``function`` may ask for. Without a readable
        static size (PTX that declares shared variables) the device's per-block limit stands in."""
        chosen = function.settings.get(A.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES)
        if chosen is not None:
            return chosen
        function = self._compiled(function)
        static = function.variant.static_shared if function.variant is not None else None
        return self._default_dynamic(static or 0)

    def _compiled(self, function: SimFunction) -> SimFunction:
        """``function`` with its PTX entry's layout filled in by the JIT compiler, once."""
        v = function.variant
        if v is not None and v.source == "ptx" and v.num_regs is None and self._jit is not None:
            function.variant = self._jit(function)
        return function

    def _default_dynamic(self, static: int) -> int:
        return max(self.limits.shared_per_block - static, 0)

    def _value(self, function: SimFunction, attrib: FunctionAttribute) -> int | None:
        chosen = function.settings.get(attrib)
        if attrib == A.CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT:
            return -1 if chosen is None else chosen
        if attrib in (A.CU_FUNC_ATTRIBUTE_NON_PORTABLE_CLUSTER_SIZE_ALLOWED,
                      A.CU_FUNC_ATTRIBUTE_CLUSTER_SCHEDULING_POLICY_PREFERENCE):
            return chosen or 0
        v = function.variant
        if v is None:
            return None
        if attrib in _CLUSTER_DIMS:
            return v.cluster_dims[_CLUSTER_DIMS.index(attrib)] or chosen or 0
        if attrib == A.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES:
            if chosen is not None:
                return chosen
            return None if v.static_shared is None else self._default_dynamic(v.static_shared)
        binary = v.arch if v.source == "cubin" else self.limits.compute_capability  # PTX: built for us
        recorded: dict[FunctionAttribute, int | None] = {
            A.CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK: max_threads_per_block(v, self.limits),
            A.CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES: v.static_shared,
            A.CU_FUNC_ATTRIBUTE_CONST_SIZE_BYTES: v.const_bytes,
            A.CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES: v.local_bytes,
            A.CU_FUNC_ATTRIBUTE_NUM_REGS: v.num_regs,
            A.CU_FUNC_ATTRIBUTE_PTX_VERSION: v.ptx_version,
            A.CU_FUNC_ATTRIBUTE_BINARY_VERSION: binary,
            A.CU_FUNC_ATTRIBUTE_CACHE_MODE_CA: v.cache_mode_ca,
            A.CU_FUNC_ATTRIBUTE_CLUSTER_SIZE_MUST_BE_SET: int(v.explicit_cluster),
        }
        return recorded[attrib]

    def _unknown(self, function: SimFunction, attrib: FunctionAttribute) -> str:
        """Why the simulator cannot answer ``attrib`` for ``function``."""
        v = function.variant
        cc = self.limits.compute_capability
        if v is None:
            image = self.modules.get(function.module).image
            read = ", ".join(image.parts) or "none"
            skipped = f"; skipped: {'; '.join(image.skipped)}" if image.skipped else ""
            return (f"no entry of the module image that the simulator read runs on compute capability "
                    f"{cc // 10}.{cc % 10} (read: {read}{skipped})")
        if v.source == "ptx" and attrib in _JIT_DECIDES:
            return ("the kernel comes from PTX that the driver would compile at load time, and "
                    f"{_JIT_DECIDES[attrib]}")
        return f"its sm_{v.arch} cubin does not record it"

    def ptx_source(self, function: SimFunction) -> str:
        """The PTX text a launch of ``function`` runs (the entry a driver would compile for the
        simulated device), or CUDA_ERROR_NOT_SUPPORTED naming the entries the image has: a cubin
        cannot run on the CPU."""
        image = self.modules.get(function.module).image
        if image.ptx is not None:
            return image.ptx
        cc = self.limits.compute_capability
        read = ", ".join(image.parts) or "none"
        skipped = f"; skipped: {'; '.join(image.skipped)}" if image.skipped else ""
        raise CudaError(CUresult.CUDA_ERROR_NOT_SUPPORTED,
                        f"{function.kernel.name}: the module image has no PTX that compute capability "
                        f"{cc // 10}.{cc % 10} can run, and the simulator cannot run a cubin (the image "
                        f"has: {read}{skipped}); build it with PTX for compute_{cc} or lower")

    def symbols(self, function: SimFunction) -> dict[str, int]:
        """The device addresses of the function's module globals, by name (for reference kernels)."""
        return {name: ptr for name, (ptr, _) in self.modules.get(function.module).globals.items()}

    def clear(self) -> None:
        for handle in [handle for handle, _ in self.modules.items()]:
            self.unload(handle)
