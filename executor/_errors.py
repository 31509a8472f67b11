"""The executor package's exceptions.

::

    ExecutorError             root
    ├── CudaError             a call fails with a CUDA (or cuBLAS) status, as the driver would fail it
    └── BackendUnavailableError    the backend cannot run here (no driver, no GPU, missing package)
"""

from __future__ import annotations

from protocol import CublasStatus, CUresult

__all__ = ["BackendUnavailableError", "CudaError", "ExecutorError"]


class ExecutorError(Exception):
    """Root of the executor's errors."""


class CudaError(ExecutorError):
    """A call's failure: ``status`` is what the guest gets, ``message`` says why (for the log).

    ``sticky`` marks errors that corrupt the context (an illegal address in a kernel): every later
    call of the VM fails with it until the context is rebuilt.
    """

    def __init__(self, status: CUresult | CublasStatus, message: str, *, sticky: bool = False) -> None:
        super().__init__(f"{status.name}: {message}")
        self.status = status
        self.message = message
        self.sticky = sticky


class BackendUnavailableError(ExecutorError):
    """The backend cannot be used on this machine; the message says why."""
