"""Device memory of the ``sim`` backend: one VM's address space, ``cuMemAlloc`` blocks and the VMM API.

Theory of operation
-------------------
* **Addresses.** Device pointers are real-looking GPU virtual addresses handed out by a bump allocator
  that starts at :data:`VA_BASE`; a range is never handed out twice in a session (a stale pointer is
  always recognised as such), except that ``cuMemAddressReserve`` honours an address hint that names a
  free, aligned range, as CUDA does. *Across resets too*: a worker that replaces another starts at
  the ``va_floor`` its supervisor passes it, and hands out nothing below (a hint below it is not
  honoured), so a pointer of the VM's earlier worker never names a new allocation. The floor comes
  from this allocator's leases: before it hands out an address past the last lease it takes a new
  one (:data:`VA_LEASE` at a time, at least what is asked for) and reports its end through
  ``on_lease`` — the worker sends it to the supervisor before the address reaches the guest, so
  even a worker killed the next instant has told where its addresses end. *Across contexts*: the
  contexts of one VM (one per channel, one per guest process) share one :class:`AddressSpace`
  (:meth:`DeviceMemory.join`): one bump pointer, one lease, one set of claimed ranges, so no two
  contexts ever hold the same address and a new context starts above every address handed out
  before it (a dead process's pointers never name a new process's memory).
* **Blocks** (``cuMemAlloc``) are zero-filled NumPy byte arrays, registered in the
  :class:`AllocationMap` as kind ``"alloc"``.
* **The virtual memory API.** ``cuMemCreate`` makes a :class:`Physical` allocation (a byte array, its
  handle in a :class:`HandleTable`). ``cuMemAddressReserve`` claims a range of addresses
  (:class:`Reservation`). ``cuMemMap`` places a :class:`Mapping` of a physical allocation (at an offset)
  inside a reservation and registers it in the :class:`AllocationMap` as kind ``"vmm"``; two mappings
  of one handle alias the same bytes. A new mapping has no access until ``cuMemSetAccess`` grants it,
  per granule. ``cuMemRelease`` drops the handle; the physical memory lives on until its last mapping
  is unmapped, as in CUDA.
* **Access.** Every copy, memset and GEMM goes through :meth:`DeviceMemory.segments`: it walks the
  allocations that hold ``[ptr, ptr + size)``. A range may run from one VMM mapping into the next
  adjacent one (GGML's pool grows by mapping chunks back to back, and tensors straddle them), never
  out of a ``cuMemAlloc`` block. A range outside the VM's allocations fails with
  ``CUDA_ERROR_INVALID_VALUE`` (the bounds check every copy gets); a mapped range without the access it
  needs fails with ``CUDA_ERROR_ILLEGAL_ADDRESS`` (on a GPU the copy engine faults). The simulator does
  not make that error sticky: it poisons nothing.
* **Host memory in the device's address space** (mapped pinned and managed memory, ``mem_host_alias``):
  a pinned range of the VM's region registered as kind ``"host"``, its bytes the region's own (no
  copy: what a kernel stores, the guest reads in its mapping). Its address is the guest's own pointer
  to the range when the guest asks for it and those addresses are free (unified addressing: host
  pointer == device pointer; like a ``cuMemAddressReserve`` hint, it is not honoured among the addresses
  the VM's allocator handed out before the context began, and it is in no lease: the range dies with
  its context, a reset included), else one the allocator hands out. Only ranges so registered are
  reachable, each through the same checked access as every block; the alias goes before its range is
  freed.
* **Accounting.** :attr:`DeviceMemory.used` counts block bytes, live physical bytes and module
  globals (device memory on a GPU too: a guest must not get memory past its quota by loading modules
  full of globals); allocation fails with ``CUDA_ERROR_OUT_OF_MEMORY`` beyond the device's memory or
  the VM's quota.
"""

from __future__ import annotations

import bisect
import mmap
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from protocol import CUresult, GranularityOption, MemAccessFlags

from ._base import Allocation, AllocationMap, HandleTable
from ._errors import CudaError

__all__ = [
    "ALIAS_ALIGNMENT",
    "ALLOC_ALIGNMENT",
    "GRANULARITY",
    "VA_BASE",
    "VA_LEASE",
    "AddressSpace",
    "DeviceMemory",
    "Mapping",
    "Physical",
    "Reservation",
    "fill_views",
]

Bytes = npt.NDArray[np.uint8]

#: where the simulated device's virtual addresses start (a 47-bit user address, as real ones are)
VA_BASE = 0x7F00_0000_0000
#: the top of the simulated address space
VA_LIMIT = 1 << 47
#: addresses the allocator claims from its supervisor at a time (a reset costs at most this much of
#: the VM's 1 TiB address space; one report per lease keeps it off the allocation path)
VA_LEASE = 1 << 30
#: cuMemAlloc's guaranteed alignment
ALLOC_ALIGNMENT = 256
#: host memory in the device's address space starts on a page, as the pinned range it aliases does
ALIAS_ALIGNMENT = 4096
#: the VMM granularity, minimum and recommended alike (2 MiB, as on current GPUs)
GRANULARITY = 2 << 20

_READ = int(MemAccessFlags.CU_MEM_ACCESS_FLAGS_PROT_READ)
_READWRITE = int(MemAccessFlags.CU_MEM_ACCESS_FLAGS_PROT_READWRITE)


_FILL_DTYPES: Final[dict[int, np.dtype[np.unsignedinteger[Any]]]] = {
    1: np.dtype("u1"), 2: np.dtype("<u2"), 4: np.dtype("<u4")}


def fill_views(views: list[Bytes], value: int, width: int) -> None:
    """Store ``value`` as ``width``-byte elements over checked views (a memset's work)."""
    if width == 1:  # ndarray.fill: a sixth of the cost of a typed view and a slice assignment
        for view in views:
            view.fill(value)
        return
    dtype = _FILL_DTYPES[width]
    for view in views:
        view.view(dtype).fill(value)


def _nothing() -> int:
    return 0


def _align_up(value: int, alignment: int) -> int:
    return -(-value // alignment) * alignment


#: blocks of at least this size are private anonymous mappings of their own: page-aligned, where NumPy's
#: large arrays start 16 bytes into a page; a copy into one from the page-aligned region (a pinned or
#: staged copy) ran 2-4x slower on this host than into a page-aligned one (docs/benchmarks.md). Private
#: mappings count in RLIMIT_DATA as malloc's do (mediator/_worker_memory.py); zero-filled, lazily.
MAPPED_FROM: Final = 1 << 20


#: smaller blocks start on a cache line: NumPy's start wherever calloc puts them (a 64 KiB one 32 bytes
#: into a line), and a copy into a block whose lines straddle took 6-11% longer at 64-256 KiB here
#: (docs/benchmarks.md, pinned copies end to end through the C shim)
LINE: Final = 64


def _zeros(size: int, what: str) -> Bytes:
    try:
        if size >= MAPPED_FROM:
            mapping = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
            return np.frombuffer(mapping, dtype=np.uint8)  # unmapped when the last view of it goes
        raw = np.zeros(size + LINE - 1, dtype=np.uint8)
        start = -raw.ctypes.data % LINE
        return raw[start:start + size]
    except (MemoryError, ValueError, OSError) as exc:
        raise CudaError(CUresult.CUDA_ERROR_OUT_OF_MEMORY,
                        f"the host cannot back a {size}-byte {what}: {exc}") from None


@dataclass(eq=False, slots=True)
class Physical:
    """A ``cuMemCreate`` allocation."""

    size: int
    data: Bytes
    released: bool = False
    mappings: int = 0


@dataclass(eq=False, slots=True)
class Reservation:
    """A ``cuMemAddressReserve`` range."""

    start: int
    size: int

    @property
    def end(self) -> int:
        return self.start + self.size


@dataclass(eq=False, slots=True)
class Mapping:
    """Part of a physical allocation mapped at ``start``; ``access`` holds one flag per granule."""

    start: int
    size: int
    physical: Physical
    offset: int
    access: Bytes = field(default_factory=lambda: np.zeros(0, dtype=np.uint8))

    def bytes(self) -> Bytes:
        return self.physical.data[self.offset:self.offset + self.size]


class AddressSpace:
    """The device addresses of one VM: a bump pointer, the lease reported to the supervisor, and every
    range claimed by any of the VM's contexts (sorted starts and their ends)."""

    def __init__(self, va_floor: int = 0, on_lease: Callable[[int], None] | None = None) -> None:
        self.next_va = max(VA_BASE, _align_up(va_floor, ALLOC_ALIGNMENT))
        self.lease_end = va_floor  # addresses below it may be handed out without a new report
        self.on_lease = on_lease
        self.starts: list[int] = []
        self.ends: list[int] = []


class DeviceMemory:
    """One VM's device memory. Every method raises :class:`CudaError` with CUDA's status on misuse."""

    def __init__(self, total: int, quota: int | None = None, *, ids: Iterator[int] | None = None,
                 va_floor: int = 0, on_lease: Callable[[int], None] | None = None) -> None:
        self.total = total
        self.quota = quota
        self.allocations = AllocationMap()
        self.handles: HandleTable[Physical] = HandleTable("memory handle", ids=ids)
        self._block_bytes = 0
        self._physical_bytes = 0
        self._global_bytes = 0
        self.va_floor = va_floor  # earlier workers of the VM handed out addresses below it: never again
        self.space = AddressSpace(va_floor, on_lease)
        self._own_claims: set[int] = set()  # starts of the ranges this context claimed in the space
        #: device memory the VM's other contexts hold: they share its quota (set by the worker)
        self.others: Callable[[], int] = _nothing
        self._reservations: dict[int, Reservation] = {}
        self._reservation_starts: list[int] = []
        self._live_physical: set[Physical] = set()
        #: pinned offset of a range -> the device address of its alias (``alias_host``)
        self.host_aliases: dict[int, int] = {}
        #: bumped whenever an allocation goes or a mapping's access changes: what was learned about
        #: live blocks (the C copy path's cache, ``mediator._pinned_fast``) holds only while it is unchanged
        self.version = 0
        #: called whenever ``version`` moves: the C copy path drops the blocks it holds exported then,
        #: not at its next copy, so that a freed block's host memory goes with the free
        self.on_move: Callable[[], None] | None = None

    def _moved(self) -> None:
        """Something learned about live blocks may no longer hold (see ``version``)."""
        self.version += 1
        if self.on_move is not None:
            self.on_move()

    # -- accounting ----------------------------------------------------------------------------

    @property
    def used(self) -> int:
        return self._block_bytes + self._physical_bytes + self._global_bytes

    @property
    def va_high(self) -> int:
        """The end of the addresses this allocator may have handed out (its last lease)."""
        return self.space.lease_end

    def join(self, space: AddressSpace) -> None:
        """Take addresses from the VM's shared ``space`` from now on, above everything it handed out
        so far (called on a fresh context, before it claims anything)."""
        if self._own_claims:
            raise RuntimeError("a context joins its VM's address space before it claims addresses")
        self.space = space
        self.va_floor = space.next_va

    @property
    def limit(self) -> int:
        """What this context may hold: the VM's quota (or the device) less what its other contexts hold."""
        base = self.total if self.quota is None else min(self.total, self.quota)
        return max(base - self.others(), 0)

    def _charge(self, size: int, what: str) -> None:
        if self.used + size > self.limit:
            others = self.others()
            bound = self.total if self.quota is None else min(self.total, self.quota)
            raise CudaError(CUresult.CUDA_ERROR_OUT_OF_MEMORY,
                            f"{what} of {size} bytes: {self.used + others} of {bound} bytes already in use"
                            + (" (the VM's quota)" if bound != self.total else "")
                            + (f", {others} of them by the VM's other processes" if others else ""))

    def check_room(self, size: int, what: str) -> None:
        """OUT_OF_MEMORY unless ``size`` more bytes fit the quota (charges nothing): for a request
        that allocates in several steps, refused before the first."""
        self._charge(size, what)

    # -- the address space ---------------------------------------------------------------------

    def _is_free(self, start: int, size: int) -> bool:
        starts, ends = self.space.starts, self.space.ends
        i = bisect.bisect_right(starts, start)
        if i > 0 and ends[i - 1] > start:
            return False
        return not (i < len(starts) and starts[i] < start + size)

    def _claim(self, size: int, alignment: int, hint: int = 0) -> int:
        if (hint >= self.va_floor and hint % alignment == 0 and hint + size <= VA_LIMIT
                and self._is_free(hint, size)) and hint:
            start = hint
        else:
            space = self.space
            start = _align_up(space.next_va, alignment)
            while not self._is_free(start, size):  # only a hinted range can be in the way
                i = bisect.bisect_right(space.starts, start + size) - 1
                start = _align_up(space.ends[i], alignment)
            if start + size > VA_LIMIT:
                raise CudaError(CUresult.CUDA_ERROR_OUT_OF_MEMORY, "the device address space is exhausted")
            space.next_va = start + size
        space = self.space
        if start + size > space.lease_end:
            space.lease_end = min(_align_up(start + size, VA_LEASE), VA_LIMIT)
            if space.on_lease is not None:
                space.on_lease(space.lease_end)  # told before the address is handed out
        i = bisect.bisect_right(space.starts, start)
        space.starts.insert(i, start)
        space.ends.insert(i, start + size)
        self._own_claims.add(start)
        return start

    def _unclaim(self, start: int) -> None:
        if start not in self._own_claims:
            return
        self._own_claims.discard(start)
        starts = self.space.starts
        i = bisect.bisect_left(starts, start)
        if i < len(starts) and starts[i] == start:
            del starts[i]
            del self.space.ends[i]

    # -- cuMemAlloc blocks ---------------------------------------------------------------------

    def alloc(self, size: int) -> int:
        if size == 0:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE, "cuMemAlloc of 0 bytes")
        self._charge(size, "cuMemAlloc")
        data = _zeros(size, "allocation")
        start = self._claim(_align_up(size, ALLOC_ALIGNMENT), ALLOC_ALIGNMENT)
        self.allocations.add(Allocation(start, size, "alloc", data))
        self._block_bytes += size
        return start

    def free(self, ptr: int) -> None:
        alloc = self.allocations.find(ptr)
        if alloc is None or alloc.start != ptr or alloc.kind != "alloc":
            if alloc is None:
                why = "is not a live allocation of this VM (never allocated, or already freed)"
            elif alloc.kind != "alloc":
                why = f"lies in a {alloc.kind} range, not in a cuMemAlloc allocation"
            else:
                why = f"points inside the allocation at {alloc.start:#x}, not at its start"
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE, f"cuMemFree({ptr:#x}): the pointer {why}")
        self.allocations.remove(ptr, "alloc")
        self._moved()
        self._unclaim(ptr)
        self._block_bytes -= alloc.size

    def add_global(self, size: int) -> tuple[int, Bytes]:
        """Device memory for a module global (registered as kind ``"global"``, charged like a block)."""
        self._charge(size, "module global")
        data = _zeros(max(size, 1), "module global")[:size]
        start = self._claim(_align_up(max(size, 1), ALLOC_ALIGNMENT), ALLOC_ALIGNMENT)
        self.allocations.add(Allocation(start, size, "global", data))
        self._global_bytes += size
        return start, data

    def remove_global(self, ptr: int) -> None:
        alloc = self.allocations.remove(ptr, "global")
        self._moved()
        self._unclaim(ptr)
        self._global_bytes -= alloc.size

    # -- host memory in the device's address space ----------------------------------------------

    def alias_host(self, key: int, data: Bytes, address: int) -> int:
        """Register ``data`` (the bytes of the pinned range at pinned offset ``key``) as device memory
        at ``address``, or where the allocator chooses when it is 0; its device address. Not charged:
        the pinned area is the VM's own share. INVALID_VALUE when ``address`` is not page-aligned, lies
        below the floor or past the address space, or overlaps anything claimed."""
        size = int(data.size)
        if address:
            if (address % ALIAS_ALIGNMENT or VA_BASE <= address < self.va_floor or address + size > VA_LIMIT
                    or not self._is_free(address, size)):
                raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                                f"cannot map host memory at [{address:#x}, +{size}): not page-aligned, "
                                "outside the device's address space, among addresses handed out before "
                                "or overlapping device memory")
            space = self.space
            i = bisect.bisect_right(space.starts, address)
            space.starts.insert(i, address)
            space.ends.insert(i, address + size)
            self._own_claims.add(address)
            start = address
        else:
            start = self._claim(size, ALIAS_ALIGNMENT)
        self.allocations.add(Allocation(start, size, "host", data))
        self.host_aliases[key] = start
        return start

    def unalias_host(self, key: int) -> None:
        """Drop the alias of the pinned range at ``key`` (if any): its addresses fault from now on."""
        start = self.host_aliases.pop(key, None)
        if start is None:
            return
        self.allocations.remove(start, "host")
        self._moved()
        self._unclaim(start)

    # -- the virtual memory API ----------------------------------------------------------------

    @staticmethod
    def granularity(option: GranularityOption) -> int:
        del option  # minimum and recommended are the same here
        return GRANULARITY

    def create(self, size: int, flags: int) -> int:
        if flags:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE, f"cuMemCreate flags must be 0, not {flags}")
        if size == 0 or size % GRANULARITY:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"cuMemCreate size {size} is not a positive multiple of the granularity "
                            f"({GRANULARITY})")
        self._charge(size, "cuMemCreate")
        physical = Physical(size, _zeros(size, "physical allocation"))
        handle = self.handles.add(physical)
        self._physical_bytes += size
        self._live_physical.add(physical)
        return handle

    def _drop_physical(self, physical: Physical) -> None:
        if physical.released and physical.mappings == 0 and physical in self._live_physical:
            self._live_physical.discard(physical)
            self._physical_bytes -= physical.size
            physical.data = np.zeros(0, dtype=np.uint8)

    def release(self, handle: int) -> None:
        physical = self.handles.pop(handle)
        physical.released = True
        self._drop_physical(physical)

    def reserve(self, size: int, alignment: int, hint: int, flags: int) -> int:
        if flags:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"cuMemAddressReserve flags must be 0, not {flags}")
        if size == 0 or size % GRANULARITY:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"cuMemAddressReserve size {size} is not a positive multiple of the "
                            f"granularity ({GRANULARITY})")
        if alignment & (alignment - 1):
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE, f"alignment {alignment} is not a power of two")
        start = self._claim(size, max(alignment, GRANULARITY), hint)
        reservation = Reservation(start, size)
        self._reservations[start] = reservation
        bisect.insort(self._reservation_starts, start)
        return start

    def _reservation_holding(self, ptr: int, size: int) -> Reservation | None:
        i = bisect.bisect_right(self._reservation_starts, ptr) - 1
        if i < 0:
            return None
        reservation = self._reservations[self._reservation_starts[i]]
        return reservation if ptr + size <= reservation.end else None

    def _mappings_in(self, start: int, end: int) -> list[Allocation]:
        return [a for a in self.allocations if a.kind == "vmm" and a.start < end and a.end > start]

    def address_free(self, ptr: int, size: int) -> None:
        reservation = self._reservations.get(ptr)
        if reservation is None or reservation.size != size:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"cuMemAddressFree({ptr:#x}, {size}) does not name a reservation: ptr and size "
                            "must be exactly what cuMemAddressReserve returned and was given")
        mapped = self._mappings_in(ptr, ptr + size)
        if mapped:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"cuMemAddressFree({ptr:#x}): {len(mapped)} mapping(s) are still in the range; "
                            "cuMemUnmap them first")
        del self._reservations[ptr]
        self._reservation_starts.remove(ptr)
        self._unclaim(ptr)

    def map(self, ptr: int, size: int, offset: int, handle: int, flags: int) -> None:
        if flags:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE, f"cuMemMap flags must be 0, not {flags}")
        physical = self.handles.get(handle)
        if size == 0 or ptr % GRANULARITY or size % GRANULARITY or offset % GRANULARITY:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"cuMemMap({ptr:#x}, size={size}, offset={offset}): ptr, size and offset must "
                            f"be multiples of the granularity ({GRANULARITY}) and size positive")
        if offset + size > physical.size:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"cuMemMap offset {offset} + size {size} runs past the {physical.size}-byte "
                            "allocation")
        if self._reservation_holding(ptr, size) is None:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"cuMemMap range [{ptr:#x}, +{size}) is not inside one address reservation")
        mapping = Mapping(ptr, size, physical, offset, np.zeros(size // GRANULARITY, dtype=np.uint8))
        self.allocations.add(Allocation(ptr, size, "vmm", mapping))  # CUDA_ERROR_ALREADY_MAPPED
        physical.mappings += 1

    def _walk_mapped(self, ptr: int, size: int, what: str, whole: bool) -> list[Allocation]:
        """The mappings that cover ``[ptr, ptr + size)`` with no hole (and exactly, when ``whole``)."""
        found: list[Allocation] = []
        cur, end = ptr, ptr + size
        while cur < end:
            alloc = self.allocations.find(cur)
            if alloc is None or alloc.kind != "vmm":
                raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                                f"{what}({ptr:#x}, {size}): {cur:#x} is not mapped")
            if whole and (alloc.start != cur or alloc.end > end):
                raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                                f"{what}({ptr:#x}, {size}) would split the mapping "
                                f"[{alloc.start:#x}, +{alloc.size}); a mapping is unmapped whole")
            found.append(alloc)
            cur = alloc.end
        return found

    def unmap(self, ptr: int, size: int) -> None:
        if size == 0:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE, "cuMemUnmap of 0 bytes")
        for alloc in self._walk_mapped(ptr, size, "cuMemUnmap", whole=True):
            self.allocations.remove(alloc.start, "vmm")
            self._moved()
            mapping: Mapping = alloc.obj
            mapping.physical.mappings -= 1
            self._drop_physical(mapping.physical)

    def set_access(self, ptr: int, size: int, flags: int) -> None:
        if size == 0 or ptr % GRANULARITY or size % GRANULARITY:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"cuMemSetAccess({ptr:#x}, {size}): ptr and size must be multiples of the "
                            f"granularity ({GRANULARITY}) and size positive")
        end = ptr + size
        self._moved()
        for alloc in self._walk_mapped(ptr, size, "cuMemSetAccess", whole=False):
            mapping: Mapping = alloc.obj
            first = (max(ptr, alloc.start) - alloc.start) // GRANULARITY
            last = (min(end, alloc.end) - alloc.start) // GRANULARITY
            mapping.access[first:last] = flags

    # -- access --------------------------------------------------------------------------------

    def segments(self, ptr: int, size: int, *, write: bool, what: str = "pointer") -> list[Bytes]:
        """Writable byte views, in order, of ``[ptr, ptr + size)``; see the module's theory."""
        if size == 0:
            return []
        alloc = self.allocations.find(ptr)
        if alloc is not None and alloc.kind != "vmm" and ptr + size <= alloc.start + alloc.size:
            lo = ptr - alloc.start  # the common case, every copy's: inside one block, no access bits
            return [alloc.obj[lo:lo + size]]
        views: list[Bytes] = []
        cur, left = ptr, size
        while True:
            alloc = self.allocations.find(cur)
            if alloc is None:
                if cur == ptr:
                    raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                                    f"{what} {ptr:#x} is not inside any allocation of this VM")
                raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                                f"{what} range [{ptr:#x}, +{size}) runs past the end of the mapped range "
                                f"at {cur:#x}")
            take = min(left, alloc.end - cur)
            lo = cur - alloc.start
            if alloc.kind == "vmm":
                mapping: Mapping = alloc.obj
                need = _READWRITE if write else _READ
                granted = mapping.access[lo // GRANULARITY:(lo + take - 1) // GRANULARITY + 1]
                if not bool(np.all((granted & need) == need)):
                    raise CudaError(CUresult.CUDA_ERROR_ILLEGAL_ADDRESS,
                                    f"{what} range [{ptr:#x}, +{size}) touches mapped memory without "
                                    f"{'read-write' if write else 'read'} access (cuMemSetAccess grants it)")
                views.append(mapping.physical.data[mapping.offset + lo:mapping.offset + lo + take])
            else:
                data: Bytes = alloc.obj
                views.append(data[lo:lo + take])
            cur += take
            left -= take
            if not left:
                return views
            nxt = self.allocations.find(cur)
            if alloc.kind != "vmm" or nxt is None or nxt.kind != "vmm":
                raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                                f"{what} range [{ptr:#x}, +{size}) runs past the end of its allocation "
                                f"[{alloc.start:#x}, +{alloc.size})")

    def check(self, ptr: int, size: int, *, write: bool, what: str = "pointer") -> None:
        self.segments(ptr, size, write=write, what=what)

    def view(self, ptr: int, size: int, *, write: bool = True, what: str = "pointer") -> Bytes:
        """One contiguous byte view of ``[ptr, ptr + size)``.

        A range that straddles two separately mapped VMM chunks has no single view: it raises
        ``CUDA_ERROR_NOT_SUPPORTED`` (use :meth:`read`/:meth:`write`, which split).
        """
        views = self.segments(ptr, size, write=write, what=what)
        if not views:
            return np.zeros(0, dtype=np.uint8)
        if len(views) > 1:
            raise CudaError(CUresult.CUDA_ERROR_NOT_SUPPORTED,
                            f"{what} range [{ptr:#x}, +{size}) spans {len(views)} separately mapped "
                            "chunks; the simulator has no single view of it")
        if not write:
            ro = views[0].view()
            ro.flags.writeable = False
            return ro
        return views[0]

    def read(self, ptr: int, size: int, what: str = "pointer") -> Bytes:
        """A copy of ``[ptr, ptr + size)``."""
        views = self.segments(ptr, size, write=False, what=what)
        if len(views) == 1:
            return views[0].copy()
        return np.concatenate(views) if views else np.zeros(0, dtype=np.uint8)

    def write(self, ptr: int, data: Bytes, what: str = "pointer") -> None:
        """Store ``data`` (bytes) at ``ptr``."""
        pos = 0
        for view in self.segments(ptr, int(data.nbytes), write=True, what=what):
            view[:] = data[pos:pos + view.size]
            pos += view.size

    def read_into(self, ptr: int, out: Bytes, what: str = "pointer") -> None:
        pos = 0
        for view in self.segments(ptr, int(out.nbytes), write=False, what=what):
            out[pos:pos + view.size] = view
            pos += view.size

    def copy(self, dst: int, src: int, size: int) -> None:
        """``cuMemcpyDtoD``: overlapping ranges behave as ``memmove``."""
        sources = self.segments(src, size, write=False, what="source")
        targets = self.segments(dst, size, write=True, what="destination")
        if len(sources) == 1 and len(targets) == 1:
            targets[0][:] = sources[0]  # NumPy copies overlapping views as memmove does
            return
        data = np.concatenate(sources) if len(sources) > 1 else sources[0].copy()
        pos = 0
        for view in targets:
            view[:] = data[pos:pos + view.size]
            pos += view.size

    def fill(self, dst: int, count: int, value: int, width: int) -> None:
        """``cuMemsetD8/D16/D32``: ``count`` elements of ``width`` bytes."""
        if dst % width:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"cuMemsetD{width * 8} destination {dst:#x} is not {width}-byte aligned")
        fill_views(self.segments(dst, count * width, write=True, what="destination"), value, width)

    # -- teardown ------------------------------------------------------------------------------

    def close(self) -> None:
        self._moved()
        self.allocations = AllocationMap()
        self.handles.clear()
        self._reservations.clear()
        self._reservation_starts.clear()
        for start in list(self._own_claims):  # this context's ranges only: the others' stay claimed
            self._unclaim(start)
        self._live_physical.clear()
        self.host_aliases.clear()
        self._block_bytes = 0
        self._physical_bytes = 0
        self._global_bytes = 0
