"""The ``cuda`` backend's pinned host memory: each range of the VM's pinned area that a channel takes
is registered with the driver in that channel's context (``cuMemHostRegister``), so copies from and
to it are DMA straight between the region's mapping and the GPU, with no staging.

Why per range and not the whole area at once: registering pins every page of it (the whole area
would be resident from the first allocation on, however little the guest uses), and a freed range's
pages are punched out of the memfd (``_pinned``), which must never happen under a registration (the
GPU would keep DMA-ing the old pages). So a range is registered when it is handed out and
unregistered — after the context has finished every copy that may touch it, as ``cuMemFreeHost``
synchronizes — before it is discarded; a closing context unregisters what it still holds before its
``cuCtxDestroy`` (``CudaExecutor.close``). Where the driver refuses a registration, the range is still
served, as pageable memory the driver stages (logged once). Not run on a GPU yet (none was lent).

Each range is registered with ``CU_MEMHOSTREGISTER_DEVICEMAP``, so ``mem_host_alias`` (mapped pinned
and managed memory) answers the driver's device pointer of it (``cuMemHostGetDevicePointer``; with
unified addressing, the worker's address of it); the alias is recorded as a ``"host"`` allocation so
that copies naming it pass the bounds checks, and goes with the registration. The driver chooses that
address: a guest asking for its own pointer gets INVALID_VALUE unless they happen to be equal.

Copies submitted ASYNC are truly asynchronous: the DMA reads or writes the region when the stream
runs it, and the guest may not touch the range until it has synchronized the stream, as in CUDA.
Pinned copies on a capturing stream are refused as every host copy is (``_host_copy_allowed``).
"""

from __future__ import annotations

from typing import Final

from protocol import CUresult
from protocol.models import (
    DevPtrResult,
    MemcpyDtoHPinnedArgs,
    MemcpyHtoDPinnedArgs,
    MemFreeHostArgs,
    MemHostAliasArgs,
    MemHostAllocArgs,
    MemHostAllocResult,
    NoResult,
)

from ._base import Allocation, CallIO
from ._cuda_base import CudaBase, host_address
from ._errors import CudaError
from ._pinned_calls import PinnedHostCalls

__all__ = ["CudaPinnedCalls"]

_NO_RESULT: Final = NoResult()
#: cuMemHostRegister's flag that maps the range into the device's address space
CU_MEMHOSTREGISTER_DEVICEMAP: Final = 0x02


class CudaPinnedCalls(PinnedHostCalls, CudaBase):
    """Mixed into :class:`CudaExecutor` (see the module's docstring)."""

    #: pinned offset -> (host address, size) of each range of ours the driver registered
    _pinned_registered: dict[int, tuple[int, int]]
    #: pinned offset -> the driver's device pointer of each registered range mapped so far
    _pinned_aliases: dict[int, int]
    _pinned_unregistered_logged: bool = False

    def pinned_address(self, offset: int, length: int, what: str = "pinned range") -> int:
        """The worker's host address of ``[offset, offset + length)`` of the VM's pinned area, after
        the checks of :meth:`Executor.pinned_view` (same errors); registered with the driver when the
        range could be, so a copy from it is DMA."""
        self.pinned_view(offset, length, what)
        return host_address(self._pinned_client(what).area.view) + offset

    def mem_host_alloc(self, args: MemHostAllocArgs, io: CallIO) -> MemHostAllocResult:
        result = PinnedHostCalls.mem_host_alloc(self, args, io)
        client = self._pinned_client("cuMemHostAlloc")
        start, size = client.area.allocator.find(client.owner, result.offset, 0) or (result.offset, 0)
        address = host_address(client.area.view[start:start + size])
        try:
            self._drv.mem_host_register(address, size, CU_MEMHOSTREGISTER_DEVICEMAP)
        except CudaError as exc:
            if not self._pinned_unregistered_logged:
                self._pinned_unregistered_logged = True
                self.log.warning("pinned range not registered with the driver: its copies are staged",
                                 bytes=size, reason=exc.message)
        else:
            self._pinned_registered[start] = (address, size)
        return result

    def mem_free_host(self, args: MemFreeHostArgs, io: CallIO) -> NoResult:
        client = self._pinned_client("cuMemFreeHost")
        if client.area.allocator.find(client.owner, args.offset, 0) is not None:
            self._drv.ctx_synchronize()  # no copy still running may touch it (cuMemFreeHost synchronizes)
            registered = self._pinned_registered.pop(args.offset, None)
            if registered is not None:
                alias = self._pinned_aliases.pop(args.offset, None)
                if alias is not None:
                    self.allocations.remove(alias, "host")
                self._drv.mem_host_unregister(registered[0])
        return PinnedHostCalls.mem_free_host(self, args, io)

    def mem_host_alias(self, args: MemHostAliasArgs, io: CallIO) -> DevPtrResult:
        what = "cuMemHostGetDevicePointer"
        _client, start, size = self._pinned_range(args.offset, what)
        registered = self._pinned_registered.get(start)
        if registered is None:
            raise CudaError(CUresult.CUDA_ERROR_NOT_SUPPORTED,
                            f"{what}: the driver did not register this pinned range, so it is not mapped")
        within = args.offset - start
        alias = self._pinned_aliases.get(start)
        if alias is None:
            alias = self._drv.mem_host_get_device_pointer(registered[0])
            self.allocations.add(Allocation(alias, size, "host"))
            self._pinned_aliases[start] = alias
        if args.address and args.address != alias + within:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"{what}: the driver mapped the range at {alias + within:#x}, not at "
                            f"{args.address:#x} (ask with address 0)")
        return DevPtrResult(dptr=alias + within)

    def unregister_pinned(self) -> list[tuple[int, int]]:
        """Forget every registration of ours (the context is closing): their (address, size), for the
        closing context to unregister before it is destroyed."""
        held = list(self._pinned_registered.values())
        self._pinned_registered.clear()
        for alias in self._pinned_aliases.values():
            self.allocations.remove(alias, "host")
        self._pinned_aliases.clear()
        return held

    def memcpy_htod_pinned(self, args: MemcpyHtoDPinnedArgs, io: CallIO) -> NoResult:
        what = "cuMemcpyHtoD"
        stream = self._stream(args.stream)
        source = self.pinned_address(args.offset, args.count, f"{what} source")
        if args.count:
            self._check_range(args.dst, args.count, write=True, what=f"{what} destination")
            self._host_copy_allowed(stream, args.stream, what)
            self._drv.memcpy_htod_async(args.dst, source, args.count, stream)
        if io.blocking:
            self._sync(stream, what)
        return _NO_RESULT

    def memcpy_dtoh_pinned(self, args: MemcpyDtoHPinnedArgs, io: CallIO) -> NoResult:
        what = "cuMemcpyDtoH"
        stream = self._stream(args.stream)
        target = self.pinned_address(args.offset, args.count, f"{what} destination")
        if args.count:
            self._check_range(args.src, args.count, write=False, what=f"{what} source")
            self._host_copy_allowed(stream, args.stream, what)
            self._drv.memcpy_dtoh_async(target, args.src, args.count, stream)
        if io.blocking:
            self._sync(stream, what)
        return _NO_RESULT
