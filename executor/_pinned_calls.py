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
_NO_RESULT: Final = NoResult()


class PinnedHostCalls:
    """Pinned host memory for one context: every range is portable (one VM's contexts share the area)
    and fit for DMA; mapped memory (DEVICEMAP) is not served — the GPU cannot address the guest."""

    pinned: PinnedClient | None

    def _pinned_client(self, what: str) -> PinnedClient:
        if self.pinned is None:
            raise CudaError(CUresult.CUDA_ERROR_NOT_SUPPORTED,
                            f"{what}: this VM's region has no pinned area (pinned_size 0)")
        return self.pinned

    def mem_host_alloc(self, args: MemHostAllocArgs, io: CallIO) -> MemHostAllocResult:
        if args.flags & CU_MEMHOSTALLOC_DEVICEMAP:
            raise CudaError(CUresult.CUDA_ERROR_NOT_SUPPORTED,
                            "cuMemHostAlloc(DEVICEMAP): guest memory cannot be mapped into the GPU")
        if args.flags & ~(CU_MEMHOSTALLOC_PORTABLE | CU_MEMHOSTALLOC_WRITECOMBINED):
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE, f"cuMemHostAlloc flags {args.flags:#x}")
        offset = self._pinned_client("cuMemHostAlloc").alloc(args.bytesize, "cuMemHostAlloc")
        return MemHostAllocResult(offset=offset)

    def mem_free_host(self, args: MemFreeHostArgs, io: CallIO) -> NoResult:
        self._pinned_client("cuMemFreeHost").free(args.offset, "cuMemFreeHost")
        return _NO_RESULT
