"""Shared helpers for the PTX engine's tests: a device memory, kernel launches with parameters packed
by the kernel's own PTX layout, and exact rounding references."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from executor._errors import CudaError
from executor._kernels import LaunchDims
from executor._sim_memory import DeviceMemory
from executor.ptx import Limits, LoadedModule, launch
from executor.ptx._texture_objects import TextureObjects

KERNELS = Path(__file__).resolve().parents[1] / "kernels"
CORPUS = {arch: KERNELS / f"ptx_corpus.compute_{arch}.ptx" for arch in (75, 80, 90)}
TEST_KERNELS = KERNELS / "test_kernels.ptx"
ATTR_KERNELS = Path(__file__).resolve().parents[1] / "executor" / "attr_kernels" / "attr_kernels.ptx"

_PACK = {
    "u64": "Q",
    "s64": "q",
    "b64": "Q",
    "u32": "I",
    "s32": "i",
    "b32": "I",
    "f32": "f",
    "f64": "d",
    "u16": "H",
    "s16": "h",
    "b16": "H",
    "u8": "B",
    "s8": "b",
    "b8": "B",
}

Dim = int | tuple[int, int, int]


def _dim(d: Dim) -> tuple[int, int, int]:
    return d if isinstance(d, tuple) else (d, 1, 1)


class Device:
    """A VM's device memory (the simulator's own) and launches of one module's kernels on it."""

    def __init__(self, module: LoadedModule) -> None:
        self.module = module
        self.memory = DeviceMemory(1 << 30)

    def put(self, values: npt.NDArray[Any]) -> int:
        ptr = self.memory.alloc(max(values.nbytes, 1))
        if values.nbytes:
            self.memory.write(ptr, np.ascontiguousarray(values).view(np.uint8).reshape(-1))
        return ptr

    def zeros(self, count: int, dtype: type[np.generic] | np.dtype[Any]) -> int:
        return self.put(np.zeros(count, dtype=dtype))

    def get(self, ptr: int, count: int, dtype: type[np.generic] | np.dtype[Any]) -> npt.NDArray[Any]:
        size = np.dtype(dtype).itemsize * count
        return self.memory.read(ptr, size).view(dtype).copy()

    def params(self, kernel: str, *values: int | float | bytes) -> bytes:
        """The parameter block of ``kernel`` with ``values``, packed at its PTX offsets."""
        assert self.module.program is not None
        fn = self.module.program.module.functions[kernel]
        assert len(values) == len(fn.params), f"{kernel} takes {len(fn.params)} parameters"
        out = b""
        for var, value in zip(fn.params, values, strict=True):
            out += bytes(-len(out) % var.align)
            if isinstance(value, bytes):  # an aggregate (.b8 array) parameter, packed by the caller
                assert len(value) == var.size, f"{var.name} takes {var.size} bytes"
                out += value
            else:
                out += struct.pack("<" + _PACK[var.type], value)
        return out

    def run(
        self,
        kernel: str,
        grid: Dim,
        block: Dim,
        *values: int | float | bytes,
        shared: int = 0,
        limits: Limits | None = None,
        symbols: dict[str, int] | None = None,
        cluster: tuple[int, int, int] | None = None,
        textures: TextureObjects | None = None,
    ) -> None:
        launch(
            self.module,
            kernel,
            self.memory,
            LaunchDims(_dim(grid), _dim(block), shared),
            self.params(kernel, *values),
            symbols or {},
            limits,
            cluster=cluster,
            textures=textures,
        )

    def fails(
        self,
        kernel: str,
        grid: Dim,
        block: Dim,
        *values: int | float | bytes,
        shared: int = 0,
        limits: Limits | None = None,
        cluster: tuple[int, int, int] | None = None,
        textures: TextureObjects | None = None,
    ) -> CudaError:
        with pytest.raises(CudaError) as err:
            self.run(
                kernel, grid, block, *values, shared=shared, limits=limits, cluster=cluster, textures=textures
            )
        return err.value


@pytest.fixture(params=sorted(CORPUS), ids=lambda arch: f"compute_{arch}")
def corpus(request: pytest.FixtureRequest) -> Iterator[Device]:
    """The kernel corpus as nvcc 13 compiles it for each virtual architecture."""
    yield Device(LoadedModule(CORPUS[request.param].read_text()))


@pytest.fixture
def corpus90() -> Device:
    return Device(LoadedModule(CORPUS[90].read_text()))


#: the header of a hand-written module for sm_80
SM80 = ".version 8.0\n.target sm_80\n.address_size 64\n"


def indexed_entry(name: str, registers: str, body: str) -> str:
    """A hand-written kernel ``name(in_ptr, out_ptr)`` (after :data:`SM80`): ``%rd1``/``%rd2`` hold
    the pointers, ``%r1`` ``%tid.x``, ``%r4`` the thread's index in the grid, then ``body``
    (``registers`` declares at least ``%r<5>`` and ``%rd<3>``)."""
    return f"""
.visible .entry {name}(.param .u64 in_ptr, .param .u64 out_ptr)
{{
    {registers}
    ld.param.u64 %rd1, [in_ptr];
    ld.param.u64 %rd2, [out_ptr];
    mov.u32 %r1, %tid.x;
    mov.u32 %r2, %ctaid.x;
    mov.u32 %r3, %ntid.x;
    mad.lo.u32 %r4, %r2, %r3, %r1;
{body}
}}
"""


def ptx_device(text: str) -> Device:
    """A device running a module written in the test (a ``.entry`` or two of hand-written PTX)."""
    return Device(LoadedModule(text))


# -- exact references -----------------------------------------------------------------------


def round_exact(value: Fraction, mode: str, dtype: type[np.floating[Any]]) -> float:
    """``value`` rounded to ``dtype`` by ``mode`` (rn ties-to-even, rz, rm, rp), exactly; ``value``
    must lie within ``dtype``'s finite range."""
    with np.errstate(over="ignore"):
        near = dtype(float(value))
        candidates = {
            float(near),
            float(np.nextafter(near, dtype(np.inf))),
            float(np.nextafter(near, dtype(-np.inf))),
        }
    # float(value) rounds once to float64, so the narrower answer is one of these neighbours
    finite = sorted(c for c in candidates if np.isfinite(c))
    below = [c for c in finite if Fraction(c) <= value]
    above = [c for c in finite if Fraction(c) >= value]
    assert below and above, f"{value} is outside the finite range of {dtype}"
    lo, hi = max(below), min(above)
    result = _pick(value, lo, hi, mode, dtype)
    return -0.0 if result == 0 and value < 0 else result  # a negative value that rounds to zero is -0


def _pick(value: Fraction, lo: float, hi: float, mode: str, dtype: type[np.floating[Any]]) -> float:
    if lo == hi:
        return lo
    if mode == "rz":
        return lo if value > 0 else hi
    if mode == "rm":
        return lo
    if mode == "rp":
        return hi
    dlo, dhi = value - Fraction(lo), Fraction(hi) - value
    if dlo != dhi:
        return lo if dlo < dhi else hi
    bits = np.array([lo], dtype=dtype).view(f"u{np.dtype(dtype).itemsize}")[0]
    return lo if int(bits) % 2 == 0 else hi


def rounded(values: list[Fraction], mode: str, dtype: type[np.floating[Any]]) -> npt.NDArray[Any]:
    return np.array([round_exact(v, mode, dtype) for v in values], dtype=dtype)


def ulps(got: npt.NDArray[np.float32], want: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """How many float32 ulps of ``want`` separate ``got`` from it."""
    spacing = np.spacing(np.abs(want).astype(np.float32)).astype(np.float64)
    return np.abs(got.astype(np.float64) - want) / spacing
