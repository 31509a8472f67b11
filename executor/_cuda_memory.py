"""Memory calls of the ``cuda`` backend: ``cuMemAlloc`` blocks, memsets and copies, and the VMM API.

Theory of operation
-------------------
*Isolation.* Device pointers are real. Every pointer a copy, memset or GEMM names is checked against
the VM's :class:`AllocationMap` (``cuMemAlloc`` blocks, mapped VMM ranges, module globals the VM has
looked up) *before* the driver sees it (:meth:`CudaBase._check_range`): outside them is
``CUDA_ERROR_INVALID_VALUE``; a mapped range without the access the operation needs is
``CUDA_ERROR_ILLEGAL_ADDRESS`` (not sticky: we refuse it, the copy engine never faults). A range may
run from one VMM mapping into the next adjacent one (GGML's pool grows by mapping chunks back to
back), never out of a ``cuMemAlloc`` block. Kernels are the one thing we cannot bound-check (their
parameters are opaque bytes); there the GPU's per-process address space is the wall: a kernel of this
VM's worker can reach only this process's memory, and a fault is a sticky error of this VM's context
alone.

*Copies.* ``CudaExecutor.attach_arena`` registers the region's data arena as pinned host memory
(``cuMemHostRegister``), so ``memcpy_htod``/``memcpy_dtoh`` DMA straight from/to the guest's payload,
with no staging copy; without it (registration failed, or no arena attached) the same calls run as
pageable copies, which the driver stages. Because the guest may reuse an input payload as soon as the
call returns (the host advancing ``sq_head``), a host-to-device copy always waits for its DMA before
returning, ASYNC or not — the wait CUDA itself makes for ``cuMemcpyHtoDAsync`` from pageable memory.
A device-to-host copy submitted ASYNC is only enqueued: its bytes are valid once the guest has
synchronized the stream, as the catalog says. Host copies on a capturing stream are refused
(``_cuda_streams``).

*Accounting.* ``cuMemAlloc`` blocks and ``cuMemCreate`` physical memory count against the VM's quota
until freed (physical memory: until released *and* unmapped, as in CUDA); mapping and reserving
addresses cost nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from protocol import CUresult
from protocol.models import (
    AddressFreeArgs,
    AddressReserveArgs,
    DevPtrResult,
    GranularityArgs,
    GranularityResult,
    MemAllocArgs,
    MemcpyDtoDArgs,
    MemcpyDtoHArgs,
    MemcpyHtoDArgs,
    MemCreateArgs,
    MemFreeArgs,
    MemGetInfoResult,
    MemHandleArgs,
    MemHandleResult,
    MemMapArgs,
    MemSetAccessArgs,
    MemsetD8Args,
    MemsetD16Args,
    MemsetD32Args,
    MemUnmapArgs,
    NoArgs,
    NoResult,
)

from ._base import Allocation, CallIO
from ._cuda_base import CudaBase, Mapping, Physical, host_address
from ._errors import CudaError

__all__ = ["MemoryCalls"]


class MemoryCalls(CudaBase):
    """The memory, copy and VMM calls (see the module's theory of operation)."""

    def _charge(self, size: int, what: str) -> None:
        quota = self.memory_quota
        used = self.memory_used() + self.memory_others()  # the VM's other contexts share the quota
        if quota is not None and used + size > quota:
            raise CudaError(CUresult.CUDA_ERROR_OUT_OF_MEMORY,
                            f"{what} of {size} bytes exceeds the VM's quota ({used} of "
                            f"{quota} bytes in use)")

    def mem_get_info(self, args: NoArgs, io: CallIO) -> MemGetInfoResult:
        free, total = self._drv.mem_get_info()
        if self.memory_quota is not None:
            total = min(total, self.memory_quota)
            free = min(free, max(0, total - self.memory_used() - self.memory_others()))
        return MemGetInfoResult(free=free, total=total)

    # -- blocks, memsets and copies ---------------------------------------------------------------

    def mem_alloc(self, args: MemAllocArgs, io: CallIO) -> DevPtrResult:
        return self._block_alloc(args.bytesize, "cuMemAlloc", self._drv.mem_alloc)

    def mem_free(self, args: MemFreeArgs, io: CallIO) -> NoResult:
        if args.dptr == 0:
            return NoResult()  # cuMemFree(0) is CUDA's no-op
        self._block_free(args.dptr, "cuMemFree", self._drv.mem_free)
        return NoResult()

    def graph_mem_alloc(self, args: MemAllocArgs, io: CallIO) -> DevPtrResult:
        """A graph memory node's block: a cuMemAlloc block, made with the capture mode relaxed."""
        with self._drv.relaxed_capture():
            return self._block_alloc(args.bytesize, "graph_mem_alloc", self._drv.mem_alloc)

    def graph_mem_free(self, args: MemFreeArgs, io: CallIO) -> NoResult:
        with self._drv.relaxed_capture():
            self._block_free(args.dptr, "graph_mem_free", self._drv.mem_free)
        return NoResult()

    def _block_alloc(self, size: int, what: str, alloc: Callable[[int], int]) -> DevPtrResult:
        if size == 0:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE, f"{what} of 0 bytes")
        self._charge(size, what)
        dptr = alloc(size)
        self.allocations.add(Allocation(dptr, size, "alloc"))
        self._alloc_bytes += size
        return DevPtrResult(dptr=dptr)

    def _block_free(self, dptr: int, what: str, free: Callable[[int], None]) -> None:
        alloc = self.allocations.find(dptr)
        if alloc is None or alloc.kind != "alloc" or alloc.start != dptr:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"{what}({dptr:#x}): not the start of a live cuMemAlloc block of this VM")
        free(dptr)
        self.allocations.remove(dptr, "alloc")
        self._alloc_bytes -= alloc.size

    def _memset(self, dst: int, count: int, value: int, width: int, handle: int, io: CallIO) -> NoResult:
        what = f"cuMemsetD{width * 8}"
        stream = self._stream(handle)
        if count:
            if dst % width:
                raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                                f"{what} destination {dst:#x} is not {width}-byte aligned")
            self._check_range(dst, count * width, write=True, what=f"{what} destination")
            self._drv.memset_async(width, dst, value, count, stream, what)
        if io.blocking:
            self._sync(stream, what)
        return NoResult()

    def memset_d8(self, args: MemsetD8Args, io: CallIO) -> NoResult:
        return self._memset(args.dst, args.count, args.value, 1, args.stream, io)

    def memset_d16(self, args: MemsetD16Args, io: CallIO) -> NoResult:
        return self._memset(args.dst, args.count, args.value, 2, args.stream, io)

    def memset_d32(self, args: MemsetD32Args, io: CallIO) -> NoResult:
        return self._memset(args.dst, args.count, args.value, 4, args.stream, io)

    def memcpy_htod(self, args: MemcpyHtoDArgs, io: CallIO) -> NoResult:
        stream = self._stream(args.stream)
        count = len(io.inp)
        if count == 0:
            if io.blocking:
                self._sync(stream, "cuMemcpyHtoD")
            return NoResult()
        self._check_range(args.dst, count, write=True, what="cuMemcpyHtoD destination")
        self._host_copy_allowed(stream, args.stream, "cuMemcpyHtoD")
        self._drv.memcpy_htod_async(args.dst, host_address(io.inp), count, stream)
        # the payload is the guest's again once we return: wait for the DMA (theory of operation)
        self._sync(stream, "cuMemcpyHtoD")
        return NoResult()

    def memcpy_dtoh(self, args: MemcpyDtoHArgs, io: CallIO) -> NoResult:
        count = args.count
        if count > len(io.out):
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"cuMemcpyDtoH of {count} bytes into a {len(io.out)}-byte output area")
        stream = self._stream(args.stream)
        if count:
            self._check_range(args.src, count, write=False, what="cuMemcpyDtoH source")
            self._host_copy_allowed(stream, args.stream, "cuMemcpyDtoH")
            self._drv.memcpy_dtoh_async(host_address(io.out), args.src, count, stream)
            io.out_len = count
        if io.blocking:
            self._sync(stream, "cuMemcpyDtoH")
        return NoResult()

    def memcpy_dtod(self, args: MemcpyDtoDArgs, io: CallIO) -> NoResult:
        stream = self._stream(args.stream)
        if args.count:
            self._check_range(args.src, args.count, write=False, what="cuMemcpyDtoD source")
            self._check_range(args.dst, args.count, write=True, what="cuMemcpyDtoD destination")
            self._drv.memcpy_dtod_async(args.dst, args.src, args.count, stream)
        if io.blocking:
            self._sync(stream, "cuMemcpyDtoD")
        return NoResult()

    # -- virtual memory management ----------------------------------------------------------------

    def mem_get_allocation_granularity(self, args: GranularityArgs, io: CallIO) -> GranularityResult:
        self._device(args.device)
        value = self._drv.mem_get_allocation_granularity(self._alloc_prop(), int(args.option))
        return GranularityResult(granularity=value)

    def mem_create(self, args: MemCreateArgs, io: CallIO) -> MemHandleResult:
        self._device(args.device)
        if args.flags:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"cuMemCreate flags must be 0, not {args.flags}")
        self._charge(args.size, "cuMemCreate")
        handle = self._drv.mem_create(args.size, self._alloc_prop())
        self._physical_bytes += args.size
        return MemHandleResult(handle=self._physicals.add(Physical(handle, args.size)))

    def _drop_physical(self, physical: Physical) -> None:
        if physical.released and physical.mappings == 0 and physical.size:
            self._physical_bytes -= physical.size
            physical.size = 0

    def mem_release(self, args: MemHandleArgs, io: CallIO) -> NoResult:
        physical = self._physicals.get(args.handle)
        self._drv.mem_release(physical.handle)
        self._physicals.pop(args.handle)
        physical.released = True
        self._drop_physical(physical)
        return NoResult()

    def mem_address_reserve(self, args: AddressReserveArgs, io: CallIO) -> DevPtrResult:
        ptr = self._drv.mem_address_reserve(args.size, args.alignment, args.addr, args.flags)
        self._reservations[ptr] = args.size
        return DevPtrResult(dptr=ptr)

    def _mappings_in(self, start: int, end: int) -> Iterator[Allocation]:
        return (a for a in self.allocations if a.kind == "vmm" and a.start < end and a.end > start)

    def mem_address_free(self, args: AddressFreeArgs, io: CallIO) -> NoResult:
        if self._reservations.get(args.ptr) != args.size:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"cuMemAddressFree({args.ptr:#x}, {args.size}) does not name a reservation of "
                            "this VM: ptr and size must be what cuMemAddressReserve returned and was given")
        if any(True for _ in self._mappings_in(args.ptr, args.ptr + args.size)):
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"cuMemAddressFree({args.ptr:#x}): mappings are still in the range; "
                            "cuMemUnmap them first")
        self._drv.mem_address_free(args.ptr, args.size)
        del self._reservations[args.ptr]
        return NoResult()

    def mem_map(self, args: MemMapArgs, io: CallIO) -> NoResult:
        if args.flags:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE, f"cuMemMap flags must be 0, not {args.flags}")
        physical = self._physicals.get(args.handle)
        if args.size == 0 or not any(start <= args.ptr and args.ptr + args.size <= start + size
                                     for start, size in self._reservations.items()):
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"cuMemMap range [{args.ptr:#x}, +{args.size}) is not inside one address "
                            "reservation of this VM")
        granularity = self._vmm_granularity()
        mapping = Mapping(physical, bytearray(-(-args.size // granularity)))
        alloc = Allocation(args.ptr, args.size, "vmm", mapping)
        self.allocations.add(alloc)  # CUDA_ERROR_ALREADY_MAPPED on overlap, before the driver
        try:
            self._drv.mem_map(args.ptr, args.size, args.offset, physical.handle)
        except CudaError:
            self.allocations.remove(args.ptr, "vmm")
            raise
        physical.mappings += 1
        return NoResult()

    def _walk_mapped(self, ptr: int, size: int, what: str, whole: bool) -> list[Allocation]:
        found: list[Allocation] = []
        cur, end = ptr, ptr + size
        if size == 0:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE, f"{what} of 0 bytes")
        while cur < end:
            alloc = self.allocations.find(cur)
            if alloc is None or alloc.kind != "vmm":
                raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                                f"{what}({ptr:#x}, {size}): {cur:#x} is not mapped")
            if whole and (alloc.start != cur or alloc.end > end):
                raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                                f"{what}({ptr:#x}, {size}) would split the mapping [{alloc.start:#x}, "
                                f"+{alloc.size}); a mapping is unmapped whole")
            found.append(alloc)
            cur = alloc.end
        return found

    def mem_unmap(self, args: MemUnmapArgs, io: CallIO) -> NoResult:
        found = self._walk_mapped(args.ptr, args.size, "cuMemUnmap", whole=True)
        self._drv.mem_unmap(args.ptr, args.size)
        for alloc in found:
            self.allocations.remove(alloc.start, "vmm")
            physical = alloc.obj.physical
            physical.mappings -= 1
            self._drop_physical(physical)
        return NoResult()

    def mem_set_access(self, args: MemSetAccessArgs, io: CallIO) -> NoResult:
        self._device(args.device)
        found = self._walk_mapped(args.ptr, args.size, "cuMemSetAccess", whole=False)
        self._drv.mem_set_access(args.ptr, args.size, self.device_ordinal, int(args.flags))
        granularity = self._vmm_granularity()
        end = args.ptr + args.size
        for alloc in found:
            mapping: Mapping = alloc.obj
            first = (max(args.ptr, alloc.start) - alloc.start) // granularity
            last = -(-(min(end, alloc.end) - alloc.start) // granularity)
            mapping.access[first:last] = bytes([int(args.flags)]) * (last - first)
        return NoResult()
