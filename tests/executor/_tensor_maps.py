"""Shared set-up of the tensor-map tests: an encode call served straight by an executor's handler, the
im2col map that the executor and conformance tests both encode, and the cuda stand-in's driver calls."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest

from executor import CallIO, CudaError, Executor
from protocol import CALLS_BY_NAME, CUresult

from .test_cuda_textures import FakeDriver

#: an NHWC f16 tensor of 2 x 9 x 14 x 64 (rows of 128 bytes), padding 1 for a 3x3 filter, 64 pixels of
#: 64 channels a copy
IM2COL_ARGS: dict[str, Any] = dict(
    global_address=0,
    dim0=64,
    dim1=14,
    dim2=9,
    dim3=2,
    dim4=0,
    stride1=128,
    stride2=128 * 14,
    stride3=128 * 14 * 9,
    stride4=0,
    data_type=6,
    rank=4,
    lower0=-1,
    lower1=-1,
    lower2=0,
    upper0=-1,
    upper1=-1,
    upper2=0,
    channels_per_pixel=64,
    pixels_per_column=64,
    elem_stride0=1,
    elem_stride1=1,
    elem_stride2=1,
    elem_stride3=1,
    elem_stride4=0,
    interleave=0,
    swizzle=3,
    l2_promotion=2,
    oob_fill=1,
)
#: the bytes IM2COL_ARGS' tensor spans
IM2COL_EXTENT = 128 * 14 * 9 * 2


@dataclass(frozen=True)
class EncodeCall:
    """One tensor-map encode call (``name``) with its arguments (``args``), run through ``ex``'s
    handler with ``changes`` applied; a map is always 128 bytes."""

    name: str
    args: dict[str, Any]

    def encode(self, ex: Executor, out_cap: int = 128, **changes: Any) -> bytes:
        spec = CALLS_BY_NAME[self.name]
        handler = ex.handler_for(spec)
        assert handler is not None
        out = bytearray(out_cap)
        io = CallIO(memoryview(b""), memoryview(out))
        handler(spec.args(**(self.args | changes)), io)
        assert io.out_len == 128
        return bytes(out[:128])

    def refused(self, ex: Executor, status: CUresult, **changes: Any) -> str:
        """The message of the CudaError the call fails with, which must carry ``status``."""
        with pytest.raises(CudaError) as caught:
            self.encode(ex, **changes)
        assert caught.value.status == status, caught.value
        return caught.value.message


class TensorMapDriver(FakeDriver):
    """The stand-in with the tensor-map calls and the types they take; each call's map is 16 words
    counting up from 100 (tiled) or 200 (im2col)."""

    cuuint64_t = cuuint32_t = staticmethod(int)
    CUtensorMapDataType = CUtensorMapInterleave = CUtensorMapSwizzle = staticmethod(int)
    CUtensorMapL2promotion = CUtensorMapFloatOOBfill = staticmethod(int)

    def cuTensorMapEncodeTiled(self, *args: Any) -> tuple[int, Any]:  # noqa: N802 (the bindings' name)
        self.calls.append(("cuTensorMapEncodeTiled", args))
        return (0, SimpleNamespace(opaque=list(range(100, 116))))

    def cuTensorMapEncodeIm2col(self, *args: Any) -> tuple[int, Any]:  # noqa: N802 (the bindings' name)
        self.calls.append(("cuTensorMapEncodeIm2col", args))
        return (0, SimpleNamespace(opaque=list(range(200, 216))))
