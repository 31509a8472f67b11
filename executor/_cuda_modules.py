"""Modules, functions and kernel launches of the ``cuda`` backend.

Theory of operation
-------------------
The driver loads every image itself (PTX text, cubin, fatbin); a PTX image without its terminating NUL
gets one, since the driver reads PTX as a C string. A module's functions and the globals the VM has
looked up are remembered with it: unloading the module invalidates those function handles and takes
the globals out of the VM's :class:`AllocationMap` (they were in it so copies to and from them are
bounds-checked like any other).

*Launch.* A kernel's parameters arrive as one packed block, laid out as ``cuFuncGetParamInfo``
describes (asked once per function and kept). The block goes to ``cuLaunchKernel`` through its
``extra`` argument (``CU_LAUNCH_PARAM_BUFFER_POINTER``/``_SIZE``, one array reused for every launch);
the driver copies it during the call, so the guest's payload is free again when the call returns. A
block shorter than the kernel's parameters is ``CUDA_ERROR_INVALID_VALUE``; what the parameters point
to cannot be checked (see ``_cuda_memory``). ``cuLaunchCooperativeKernel`` takes no ``extra``: its
``kernelParams`` are built as pointers into the same block, one per parameter at its offset; the
driver checks the grid against the occupancy (``CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE``).
"""

from __future__ import annotations

import ctypes
from typing import Final

import numpy as np

from protocol import CUresult
from protocol.models import (
    FuncArgs,
    FuncGetAttributeArgs,
    FuncParamInfoArgs,
    FuncParamInfoResult,
    FuncParamLayoutResult,
    FuncSetAttributeArgs,
    FunctionResult,
    GlobalResult,
    I32Result,
    LaunchClusterArgs,
    LaunchKernelArgs,
    ModuleArgs,
    ModuleLoadResult,
    NoArgs,
    NoResult,
    OccupancyArgs,
)

from ._base import Allocation, CallIO
from ._cuda_base import CudaBase, FunctionRecord, ModuleRecord, host_address
from ._errors import CudaError
from ._module_upload import ModuleUploadCalls

__all__ = ["CU_LAUNCH_PARAM_BUFFER_POINTER", "CU_LAUNCH_PARAM_BUFFER_SIZE", "CU_LAUNCH_PARAM_END",
           "ModuleCalls"]

_ELF_MAGIC: Final = b"\x7fELF"
_FATBIN_MAGIC: Final = b"\x50\xed\x55\xba"
CU_LAUNCH_PARAM_END: Final = 0
CU_LAUNCH_PARAM_BUFFER_POINTER: Final = 1
CU_LAUNCH_PARAM_BUFFER_SIZE: Final = 2


def _cstring(data: memoryview, what: str) -> bytes:
    raw = bytes(data).split(b"\0", 1)[0]
    if not raw:
        raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE, f"{what}: the name is empty")
    try:
        raw.decode()
    except UnicodeDecodeError:
        raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE, f"{what}: the name is not UTF-8") from None
    return raw


class ModuleCalls(ModuleUploadCalls, CudaBase):
    """The module, function and launch calls (see the module's theory of operation)."""

    # chunked uploads of images past the arena: the buffer is the host's, the load the driver's
    # (_load_module_image); the same handlers as sim's, served by this backend
    module_upload_begin = ModuleUploadCalls.module_upload_begin
    module_upload_chunk = ModuleUploadCalls.module_upload_chunk
    module_load_upload = ModuleUploadCalls.module_load_upload

    def module_load_data(self, args: NoArgs, io: CallIO) -> ModuleLoadResult:
        return self._load_module_image(io.inp)

    def _load_module_image(self, data: memoryview | bytes) -> ModuleLoadResult:
        """An image from the payload, or a chunked upload (``_module_upload``)."""
        image = bytes(data)
        if not image:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_IMAGE, "cuModuleLoadData: the image is empty")
        if not image.startswith((_ELF_MAGIC, _FATBIN_MAGIC)) and not image.endswith(b"\0"):
            image += b"\0"  # PTX text: the driver reads it as a C string
        buffer = np.frombuffer(image, dtype=np.uint8)
        module = self._drv.module_load_data(buffer.ctypes.data)
        return ModuleLoadResult(module=self._modules.add(ModuleRecord(module)))

    def module_unload(self, args: ModuleArgs, io: CallIO) -> NoResult:
        record = self._modules.get(args.module)
        self._drv.module_unload(record.module)
        self._modules.pop(args.module)
        for handle in record.functions:
            if handle in self._functions:
                self._functions.pop(handle)
        for start in record.globals:
            self.allocations.remove(start, "global")
        return NoResult()

    def module_get_function(self, args: ModuleArgs, io: CallIO) -> FunctionResult:
        record = self._modules.get(args.module)
        name = _cstring(io.inp, "cuModuleGetFunction")
        function = self._drv.module_get_function(record.module, name)
        handle = self._functions.add(FunctionRecord(function, args.module))
        record.functions.append(handle)
        return FunctionResult(function=handle)

    def module_get_global(self, args: ModuleArgs, io: CallIO) -> GlobalResult:
        record = self._modules.get(args.module)
        name = _cstring(io.inp, "cuModuleGetGlobal")
        dptr, size = self._drv.module_get_global(record.module, name)
        if dptr not in record.globals and size:
            self.allocations.add(Allocation(dptr, size, "global", args.module))
            record.globals.append(dptr)
        return GlobalResult(dptr=dptr, bytes=size)

    def _layout(self, record: FunctionRecord) -> tuple[tuple[int, int], ...]:
        if record.layout is None:
            params: list[tuple[int, int]] = []
            while (param := self._drv.func_param_info_or_none(record.function, len(params))) is not None:
                params.append(param)
            record.layout = tuple(params)
            record.param_bytes = max((o + s for o, s in params), default=0)
        return record.layout

    def func_get_param_info(self, args: FuncParamInfoArgs, io: CallIO) -> FuncParamInfoResult:
        record = self._functions.get(args.function)
        offset, size = self._drv.func_get_param_info(record.function, args.index,
                                                      f"cuFuncGetParamInfo(index {args.index})")
        return FuncParamInfoResult(offset=offset, size=size)

    def func_get_param_layout(self, args: FuncArgs, io: CallIO) -> FuncParamLayoutResult:
        """Writes as many (offset, size) pairs as fit ``out_cap``; ``count`` is always the total."""
        record = self._functions.get(args.function)
        layout = self._layout(record)
        fit = min(len(layout), len(io.out) // 8)
        if fit:
            pairs = np.array(layout[:fit], dtype="<u4").reshape(-1)
            io.out[:8 * fit] = pairs.tobytes()
            io.out_len = 8 * fit
        return FuncParamLayoutResult(count=len(layout), param_bytes=record.param_bytes)

    def func_get_attribute(self, args: FuncGetAttributeArgs, io: CallIO) -> I32Result:
        record = self._functions.get(args.function)
        value = self._drv.func_get_attribute(int(args.attrib), record.function,
                                             f"cuFuncGetAttribute({args.attrib.name})")
        return I32Result(value=value)

    def func_set_attribute(self, args: FuncSetAttributeArgs, io: CallIO) -> NoResult:
        record = self._functions.get(args.function)
        self._drv.func_set_attribute(record.function, int(args.attrib), args.value,
                                     f"cuFuncSetAttribute({args.attrib.name}, {args.value})")
        return NoResult()

    def launch_kernel(self, args: LaunchKernelArgs, io: CallIO) -> NoResult:
        return self._launch_with_extra(args, io, None)

    def launch_cluster_kernel(self, args: LaunchClusterArgs, io: CallIO) -> NoResult:
        return self._launch_with_extra(args, io, (args.cluster_x, args.cluster_y, args.cluster_z))

    def _launch_with_extra(self, args: LaunchKernelArgs, io: CallIO, cluster: tuple[int, int, int] | None
                           ) -> NoResult:
        """cuLaunchKernel, or cuLaunchKernelEx in clusters, with the parameter block through ``extra``."""
        what = "cuLaunchKernel" if cluster is None else "cuLaunchKernelEx"
        record = self._functions.get(args.function)
        stream = self._stream(args.stream)
        self._layout(record)
        need = record.param_bytes
        if len(io.inp) < need:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"{what}: the parameter block has {len(io.inp)} bytes, the kernel takes {need}")
        extra = 0
        if need:
            self._extra[1] = host_address(io.inp)
            self._param_size.value = need
            extra = self._extra_address
        grid, block = (args.grid_x, args.grid_y, args.grid_z), (args.block_x, args.block_y, args.block_z)
        # the driver copies the parameter block during the call: the payload is free when it returns
        if cluster is None:
            self._drv.launch_kernel(record.function, grid, block, args.shared_mem_bytes, stream, extra)
        else:
            self._drv.launch_cluster_kernel(record.function, grid, block, args.shared_mem_bytes, stream,
                                            extra, cluster)
        if io.blocking:
            self._sync(stream, what)
        return NoResult()

    def func_occupancy(self, args: OccupancyArgs, io: CallIO) -> I32Result:
        record = self._functions.get(args.function)
        blocks = self._drv.occupancy(record.function, args.block_size, args.dynamic_smem, args.flags)
        return I32Result(value=blocks)

    def launch_cooperative_kernel(self, args: LaunchKernelArgs, io: CallIO) -> NoResult:
        record = self._functions.get(args.function)
        stream = self._stream(args.stream)
        layout = self._layout(record)
        if len(io.inp) < record.param_bytes:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"cuLaunchCooperativeKernel: the parameter block has {len(io.inp)} bytes, the "
                            f"kernel takes {record.param_bytes}")
        base = host_address(io.inp) if layout else 0
        pointers = (ctypes.c_void_p * max(len(layout), 1))(*(base + offset for offset, _ in layout))
        # the driver copies each parameter during the call: the payload and the array are free after it
        self._drv.launch_cooperative_kernel(record.function, (args.grid_x, args.grid_y, args.grid_z),
                                            (args.block_x, args.block_y, args.block_z), args.shared_mem_bytes,
                                            stream, ctypes.addressof(pointers) if layout else 0)
        if io.blocking:
            self._sync(stream, "cuLaunchCooperativeKernel")
        return NoResult()
