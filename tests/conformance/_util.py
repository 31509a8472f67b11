"""Small helpers for conformance tests: calls that must fail, and typed shortcuts."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from guest import GuestClient
from protocol import WireModel


def status_of(gpu: GuestClient, name: str, args: WireModel | None = None, **kwargs: Any) -> int:
    """The status a synchronous call completes with (the call is expected to be rejected or not)."""
    return gpu.call(name, args, **kwargs).status


def upload(gpu: GuestClient, array: npt.NDArray[Any]) -> int:
    data = np.ascontiguousarray(array)
    ptr = gpu.mem_alloc(max(data.nbytes, 1))
    gpu.memcpy_htod(ptr, data.tobytes())
    return ptr


def download(gpu: GuestClient, ptr: int, like: npt.NDArray[Any]) -> npt.NDArray[Any]:
    raw = gpu.memcpy_dtoh(ptr, like.nbytes)
    return np.frombuffer(raw, dtype=like.dtype).reshape(like.shape)
