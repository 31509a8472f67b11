"""On a lent GPU: the tensor-core kernels of the corpus give the same bits on the GPU (the ``cuda``
backend; the driver JIT-compiles the same nvcc PTX) as on the engine, from the same random inputs.

The engine and ``test_tensor_cores.py`` place fragment elements by the PTX ISA's tables, written out
twice by the same hands; this checks both against the hardware. Inputs are exact in every form (small
integers in float types, raw bits in integer ones), so a tensor core's own order of summation cannot
make a difference. ``wmma`` kernels are compared by what they store (their fragment layout is each
implementation's own). Skips where no GPU is usable.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from executor import CallIO, Executor, create_executor, resolve_backend
from protocol import CALLS_BY_NAME

from .conftest import CORPUS

pytestmark = pytest.mark.gpu

rng = np.random.default_rng(2026)
#: a parameter: ("in", kind, count) or ("out", dtype, count); counts are elements of the whole buffer
Param = tuple[str, Any, int]
W = 64  # threads of the mma kernels (two warps)


def _values(kind: str, count: int) -> npt.NDArray[Any]:
    """``count`` elements of ``kind``, exact in every form the kernels read them as."""
    small = rng.integers(-8, 8, size=count)
    if kind == "h2":  # 32-bit words of two small-integer f16
        return _pairs(small.astype(np.float16))
    if kind == "bf2":
        bf = (small.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
        return _pairs(bf)
    if kind in ("f16", "f32", "f64"):
        return small.astype({"f16": np.float16, "f32": np.float32, "f64": np.float64}[kind])
    if kind == "bf16":
        return (small.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
    if kind == "tf32":
        return (small * 8).astype(np.float32).view(np.uint32)
    if kind == "e5m2":  # the upper byte of a small integer's f16
        return (small.astype(np.float16).view(np.uint16) >> 8).astype(np.uint8)
    if kind == "e4m3":  # sign, exponent (bias 7), three fraction bits
        out = np.zeros(count, dtype=np.uint8)
        for k, v in enumerate(small):
            if v:
                exp = int(abs(v)).bit_length() - 1
                out[k] = (0x80 if v < 0 else 0) | ((exp + 7) << 3) | ((int(abs(v)) << 3 >> exp) & 7)
        return out
    if kind == "u8":
        return rng.integers(0, 256, size=count).astype(np.uint8)
    if kind == "u16":
        return rng.integers(0, 1 << 16, size=count).astype(np.uint16)
    return rng.integers(0, 1 << 32, size=count, dtype=np.uint64).astype(np.uint32)  # bits


def _pairs(halves: npt.NDArray[Any]) -> npt.NDArray[np.uint32]:
    """Words of two 16-bit values: the value and the next (wrapping), lower first."""
    raw = halves.view(np.uint16).astype(np.uint32)
    out: npt.NDArray[np.uint32] = raw | (np.roll(raw, 1) << np.uint32(16))
    return out


def _in(kind: str, per_thread: int, threads: int = W) -> Param:
    return ("in", kind, per_thread * threads)


def _out(dtype: Any, per_thread: int, threads: int = W) -> Param:
    return ("out", dtype, per_thread * threads)


# kernel -> (lowest architecture, grid, block, parameters)
CASES: dict[str, tuple[int, int, int, list[Param]]] = {
    "mma_f16_k8_f32": (75, 1, W, [_in("h2", 2), _in("h2", 1), _in("f32", 4), _out(np.float32, 4)]),
    "mma_f16_k16": (80, 1, W, [_in("h2", 4), _in("h2", 2), _in("f32", 4), _out(np.float32, 4), _in("h2", 2),
                               _out(np.uint32, 2)]),
    "mma_bf16_k16": (80, 1, W, [_in("bf2", 4), _in("bf2", 2), _in("f32", 4), _out(np.float32, 4)]),
    "mma_tf32_k8": (80, 1, W, [_in("tf32", 4), _in("tf32", 2), _in("f32", 4), _out(np.float32, 4)]),
    "mma_f64_k4": (80, 1, W, [_in("f64", 1), _in("f64", 1), _in("f64", 2), _out(np.float64, 2)]),
    "mma_s8_k32": (80, 1, W, [_in("bits", 4), _in("bits", 2), _in("bits", 4), _out(np.int32, 4),
                              _out(np.int32, 4)]),
    "mma_m8n8_int": (75, 1, W, [_in("bits", 1), _in("bits", 1), _in("bits", 2), _out(np.int32, 2),
                                _out(np.int32, 2)]),
    "mma_b1": (75, 1, W, [_in("bits", 4), _in("bits", 2), _in("bits", 4), _out(np.int32, 2), _out(np.int32, 4),
                          _out(np.int32, 4)]),
    "mma_sm90_forms": (90, 1, W, [_in("f64", 8), _in("f64", 4), _in("f64", 4), _in("e4m3", 16), _in("e5m2", 8),
                                  _in("f32", 4), _out(np.float64, 4), _out(np.float64, 4), _out(np.float64, 4),
                                  _out(np.float32, 4)]),
    "load_matrices": (75, 1, 32, [_in("u16", 8, 32), _out(np.uint32, 11, 32)]),
    "transpose_fragment": (75, 1, 32, [_in("bits", 1, 32), _out(np.uint32, 1, 32)]),
    "store_matrices": (90, 1, 32, [_in("bits", 4, 32), _out(np.uint16, 24, 32)]),
    "wmma_f16": (75, 2, 64, [_in("f16", 256, 4), _in("f16", 256, 4), _in("f32", 256, 4), _out(np.float32, 256, 4),
                             _out(np.float16, 256, 4)]),
    "wmma_f16_tall_wide": (75, 2, 64, [_in("f16", 512, 4), _in("f16", 512, 4), _in("f32", 512, 4),
                                       _out(np.float16, 512, 4), _out(np.float32, 512, 4)]),
    "wmma_int8": (75, 2, 64, [_in("u8", 256, 4), _in("u8", 256, 4), _in("bits", 256, 4), _out(np.int32, 256, 4),
                              _out(np.int32, 256, 4)]),
    "wmma_sub_byte": (75, 2, 64, [_in("bits", 32, 4), _in("bits", 32, 4), _in("bits", 64, 4),
                                  _out(np.int32, 64, 4), _out(np.int32, 64, 4), _out(np.int32, 64, 4)]),
    "wmma_sm80": (80, 2, 64, [_in("bf16", 256, 4), _in("bf16", 256, 4), _in("f32", 128, 4), _in("f32", 128, 4),
                              _in("f64", 32, 4), _in("f64", 32, 4), _in("f32", 256, 4), _in("f64", 64, 4),
                              _out(np.float32, 256, 4), _out(np.float32, 256, 4), _out(np.float64, 64, 4)]),
}
# mma_sm80_forms reads the same words as bf16, tf32, s8/u8 and s4/u4: exact only as integers
CASES["mma_sm80_forms"] = (80, 1, W, [_in("bits", 4), _in("bits", 2), _in("f32", 4), _in("bits", 4),
                                      _out(np.float32, 4), _out(np.float32, 4), _out(np.int32, 4),
                                      _out(np.int32, 4), _out(np.int32, 4)])
_INEXACT = {("mma_sm80_forms", 0), ("mma_sm80_forms", 1)}  # its float outputs, from raw bits


class Device:
    """One backend's executor, called as the worker calls it."""

    def __init__(self, backend: str) -> None:
        self.ex: Executor = create_executor(backend)  # type: ignore[arg-type]

    def __call__(self, name: str, *, inp: bytes = b"", out_cap: int = 64, **args: Any) -> tuple[Any, bytes]:
        spec = CALLS_BY_NAME[name]
        out = bytearray(out_cap)
        result = self.ex.execute(spec, spec.args(**args), CallIO(memoryview(inp), memoryview(out), True))
        return result, bytes(out)

    def run(self, arch: int, kernel: str, grid: int, block: int, inputs: list[Any], params: list[Param],
            corpus: Mapping[int, Path] = CORPUS) -> list[Any]:
        module = self("module_load_data", inp=corpus[arch].read_bytes() + b"\0")[0].module
        function = int(self("module_get_function", module=module, inp=kernel.encode())[0].function)
        ptrs, outs = [], []
        for (direction, kind, count), values in zip(params, inputs, strict=True):
            nbytes = values.nbytes if direction == "in" else np.dtype(kind).itemsize * count
            ptr = int(self("mem_alloc", bytesize=nbytes)[0].dptr)
            data = values.tobytes() if direction == "in" else bytes(nbytes)
            self("memcpy_htod", dst=ptr, stream=0, inp=data)
            ptrs.append(ptr)
            if direction == "out":
                outs.append((ptr, kind, count, nbytes))
        block_params = b"".join(int(p).to_bytes(8, "little") for p in ptrs)
        self("launch_kernel", function=function, grid_x=grid, grid_y=1, grid_z=1, block_x=block, block_y=1,
             block_z=1, shared_mem_bytes=0, stream=0, inp=block_params)
        self("ctx_synchronize")
        results = []
        for ptr, dtype, _count, nbytes in outs:
            _, raw = self("memcpy_dtoh", src=ptr, count=nbytes, stream=0, out_cap=nbytes)
            results.append(np.frombuffer(raw, dtype=dtype).copy())
        return results


@pytest.fixture(scope="module")
def devices() -> Iterator[tuple[Device, Device]]:
    backend, why = resolve_backend("auto")
    if backend != "cuda":
        pytest.skip(f"no usable GPU: {why}")
    gpu, sim = Device("cuda"), Device("sim")
    yield gpu, sim
    gpu.ex.close()
    sim.ex.close()


@pytest.mark.parametrize("arch", [75, 80, 90])
@pytest.mark.parametrize("kernel", sorted(CASES))
def test_the_gpu_and_the_engine_agree_bit_for_bit(devices: tuple[Device, Device], kernel: str, arch: int) -> None:
    lowest, grid, block, params = CASES[kernel]
    if arch < lowest:
        pytest.skip(f"{kernel} needs compute_{lowest}")
    inputs = [_values(kind, count) if direction == "in" else None for direction, kind, count in params]
    gpu, sim = devices
    on_gpu = gpu.run(arch, kernel, grid, block, inputs, params)
    on_sim = sim.run(arch, kernel, grid, block, inputs, params)
    for k, (a, b) in enumerate(zip(on_gpu, on_sim, strict=True)):
        if (kernel, k) in _INEXACT:
            continue
        np.testing.assert_array_equal(a.view(f"u{a.dtype.itemsize}"), b.view(f"u{b.dtype.itemsize}"),
                                      err_msg=f"{kernel} output {k} for compute_{arch}")
