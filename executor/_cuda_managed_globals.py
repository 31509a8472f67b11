"""The ``cuda`` backend's ``module_global_alias``: refused. The driver places a module's ``__managed__``
variables in managed memory of its own, in the worker's process, which the guest cannot address; a
module global cannot be moved to the guest's managed range."""

from __future__ import annotations

from protocol import CUresult
from protocol.models import ModuleGlobalAliasArgs, NoResult

from ._base import CallIO
from ._errors import CudaError

__all__ = ["CudaManagedGlobalCalls"]


class CudaManagedGlobalCalls:
    """The call, mixed into :class:`~executor._cuda.CudaExecutor`."""

    def module_global_alias(self, args: ModuleGlobalAliasArgs, io: CallIO) -> NoResult:
        raise CudaError(
            CUresult.CUDA_ERROR_NOT_SUPPORTED,
            "__managed__ variables on the cuda backend: the driver keeps them in the worker's own managed "
            "memory, which the guest cannot address",
        )
