"""Module images larger than a channel's arena, uploaded in chunks (``module_upload_begin``,
``module_upload_chunk``, ``module_load_upload``): the same load as ``module_load_data`` once every
byte is there.

An upload is a buffer of the size the guest announced, at most ``DeviceConfig.module_bytes`` (and all
of a context's uploads together at most that too), charged to the VM's host budget where the backend
has one (``sim``) before it is allocated. Chunks arrive in order: each must start where the last
ended and end within the announced size, so the buffer is written once, without gaps, and never past
its end. ``module_load_upload`` loads a complete upload and lets it go whatever the load answers; an
incomplete one is ``CUDA_ERROR_INVALID_VALUE`` and let go too, so a guest always has a way to drop
what it started. A context that closes lets its uploads go (``close``).
"""

from __future__ import annotations

import itertools
from abc import abstractmethod
from dataclasses import dataclass
from typing import Protocol

from protocol import CUresult
from protocol.models import (
    ModuleLoadResult,
    ModuleUploadArgs,
    ModuleUploadBeginArgs,
    ModuleUploadChunkArgs,
    ModuleUploadResult,
    NoResult,
)

from ._base import CallIO
from ._errors import CudaError

__all__ = ["MAX_UPLOADS", "ModuleUploadCalls", "ModuleUploads"]

#: uploads one context may have under way at once
MAX_UPLOADS = 4


class Budget(Protocol):
    """The VM's host budget (``executor._base.HostBudget``)."""

    def charge(self, nbytes: int, what: str) -> None: ...

    def release(self, nbytes: int) -> None: ...


@dataclass(eq=False, slots=True)
class _Upload:
    data: bytearray
    received: int = 0


class ModuleUploads:
    """One context's uploads under way (see the module docstring)."""

    def __init__(self, limit: int, budget: Budget | None = None) -> None:
        self.limit = limit
        self._budget = budget
        self._uploads: dict[int, _Upload] = {}
        self._ids = itertools.count(1)  # never reused: a stale handle is always refused
        self._held = 0

    def begin(self, size: int) -> int:
        if not 0 < size <= self.limit:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"a module image of {size} bytes; this device loads images of 1 to {self.limit} "
                            "bytes (device.module_bytes)")
        if self._held + size > self.limit:
            raise CudaError(CUresult.CUDA_ERROR_OUT_OF_MEMORY,
                            f"a module upload of {size} bytes beside {self._held} already under way: at most "
                            f"{self.limit} bytes at once (device.module_bytes)")
        if len(self._uploads) >= MAX_UPLOADS:
            raise CudaError(CUresult.CUDA_ERROR_OUT_OF_MEMORY,
                            f"more than {MAX_UPLOADS} module uploads under way at once")
        if self._budget is not None:
            self._budget.charge(size, f"a module image of {size} bytes, uploaded in chunks")
        try:
            upload = _Upload(bytearray(size))
        except MemoryError as exc:
            self._release(size)
            raise CudaError(CUresult.CUDA_ERROR_OUT_OF_MEMORY, f"a module upload of {size} bytes") from exc
        handle = next(self._ids)
        self._uploads[handle] = upload
        self._held += size
        return handle

    def _get(self, handle: int) -> _Upload:
        upload = self._uploads.get(handle)
        if upload is None:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"module upload {handle} was never begun by this context or is already loaded")
        return upload

    def chunk(self, handle: int, offset: int, data: memoryview) -> None:
        upload = self._get(handle)
        size = len(upload.data)
        if offset != upload.received or len(data) > size - offset or not data:
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"module upload {handle}: a chunk of {len(data)} bytes at offset {offset}; the "
                            f"next must start at {upload.received} and end by {size}")
        upload.data[offset:offset + len(data)] = data
        upload.received += len(data)

    def take(self, handle: int) -> bytes:
        """The complete image; the upload is let go whatever this answers."""
        upload = self._get(handle)
        del self._uploads[handle]
        self._held -= len(upload.data)
        self._release(len(upload.data))
        if upload.received != len(upload.data):
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"module upload {handle} has {upload.received} of its {len(upload.data)} bytes")
        return bytes(upload.data)

    def close(self) -> None:
        for upload in self._uploads.values():
            self._release(len(upload.data))
        self._uploads.clear()
        self._held = 0

    def _release(self, size: int) -> None:
        if self._budget is not None:
            self._budget.release(size)


class ModuleUploadCalls:
    """The upload calls of a backend: it provides ``module_uploads`` and ``_load_module_image``."""

    module_uploads: ModuleUploads

    @abstractmethod  # enforced: the backends' Executor is an ABC
    def _load_module_image(self, image: memoryview | bytes) -> ModuleLoadResult: ...

    def module_upload_begin(self, args: ModuleUploadBeginArgs, io: CallIO) -> ModuleUploadResult:
        return ModuleUploadResult(upload=self.module_uploads.begin(args.bytes))

    def module_upload_chunk(self, args: ModuleUploadChunkArgs, io: CallIO) -> NoResult:
        self.module_uploads.chunk(args.upload, args.offset, io.inp)
        return NoResult()

    def module_load_upload(self, args: ModuleUploadArgs, io: CallIO) -> ModuleLoadResult:
        return self._load_module_image(self.module_uploads.take(args.upload))
