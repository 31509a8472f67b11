"""``mem_host_alloc`` and ``mem_free_host``: the guest's pinned host memory, a range of the VM's
pinned area (``_pinned``), the same on every backend; mixed into the executors."""

from __future__ import annotations

from typing import Final

from protocol import CUresult
from protocol.models import MemFreeHostArgs, MemHostAllocArgs, MemHostAllocResult, NoResult

from ._base import CallIO
from ._errors import CudaError
from ._pinned import PinnedClient

__all__ = ["PinnedHostCalls"]

CU_MEMHOSTALLOC_PORTABLE: Final = 0x01
CU_MEMHOSTALLOC_DEVICEMAP: Final = 0x02
CU_MEMHOSTALLOC_WRITECOMBINED: Final = 0x04
_HOST_ALLOC_FLAGS: Final = (CU_MEMHOSTALLOC_PORTABLE | CU_MEMHOSTALLOC_DEVICEMAP
                             | CU_MEMHOSTALLOC_WRITECOMBINED)
_NO_RESULT: Final = NoResult()


class PinnedHostCalls:
    """Pinned host memory for one context: every range is portable (one VM's contexts share the area)
    and fit for DMA; a backend that can map a range into the device's address space (DEVICEMAP,
    managed memory) does it in ``mem_host_alias``, so the flag itself changes nothing here."""

    pinned: PinnedClient | None

    def _pinned_client(self, what: str) -> PinnedClient:
        if self.pinned is None:
            raise CudaError(CUresult.CUDA_ERROR_NOT_SUPPORTED,
                            f"{what}: this VM's region has no pinned area (pinned_size 0)")
        return self.pinned

    def _pinned_range(self, offset: int, what: str) -> tuple[PinnedClient, int, int]:
        """This context's client and the (start, size) of its live range holding ``offset``
        (INVALID_VALUE when there is none)."""
        client = self._pinned_client(what)
        found = client.area.allocator.find(client.owner, offset, 0)
        if found is None:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"{what}: pinned offset {offset:#x} is not inside a live pinned allocation "
                            "of this process")
        return client, found[0], found[1]

    def mem_host_alloc(self, args: MemHostAllocArgs, io: CallIO) -> MemHostAllocResult:
        if args.flags & ~_HOST_ALLOC_FLAGS:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE, f"cuMemHostAlloc flags {args.flags:#x}")
        offset = self._pinned_client("cuMemHostAlloc").alloc(args.bytesize, "cuMemHostAlloc")
        return MemHostAllocResult(offset=offset)

    def mem_free_host(self, args: MemFreeHostArgs, io: CallIO) -> NoResult:
        self._pinned_client("cuMemFreeHost").free(args.offset, "cuMemFreeHost")
        return _NO_RESULT
