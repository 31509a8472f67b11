"""The engine against the NumPy twins of executor/_kernels.py: the same kernels (tests/kernels/
test_kernels.ptx) on the same inputs. Integer and exactly rounded float kernels agree bitwise; the
ones that use approximate functions (GELU's tanh, SiLU's and softmax's exp, RMS norm's rsqrt, fused
multiply-adds the compiler contracted) agree within :data:`APPROX_ULPS` float32 ulps, or
:data:`APPROX_ABS` absolutely where the result cancels to near zero (GELU at x < -5: ``1 + tanh`` is
0 or one ulp of 1, depending on the last bit of ``tanh``)."""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pytest

from executor._kernels import REFERENCE_KERNELS, LaunchDims
from executor._sim_memory import DeviceMemory
from executor.ptx import LoadedModule, launch

from .conftest import TEST_KERNELS, ulps

#: how far a kernel with approximate functions may be from its twin (float32 ulps of the twin)
APPROX_ULPS = 8
APPROX_ABS = 2.0**-20

F32 = npt.NDArray[np.float32]


@dataclass
class Case:
    kernel: str
    grid: tuple[int, int, int]
    block: tuple[int, int, int]
    #: (memory) -> (params, {buffer name: (ptr, count, dtype)}); called once per memory
    setup: Callable[
        [DeviceMemory, dict[str, int]], tuple[bytes, dict[str, tuple[int, int, type[np.generic]]]]
    ]
    exact: bool = True


def _put(mem: DeviceMemory, values: npt.NDArray[np.generic]) -> int:
    ptr = mem.alloc(values.nbytes)
    mem.write(ptr, np.ascontiguousarray(values).view(np.uint8).reshape(-1))
    return ptr


def _rand(n: int, seed: int) -> F32:
    return (np.random.default_rng(seed).standard_normal(n) * 3).astype(np.float32)


def _binary(name: str, exact: bool = True) -> Case:
    n = 1000

    def setup(
        mem: DeviceMemory, symbols: dict[str, int]
    ) -> tuple[bytes, dict[str, tuple[int, int, type[np.generic]]]]:
        a, b, c = _put(mem, _rand(n, 1)), _put(mem, _rand(n, 2)), _put(mem, np.zeros(n, np.float32))
        return struct.pack("<QQQi4x", a, b, c, n), {"c": (c, n, np.float32)}

    return Case(name, ((n + 127) // 128, 1, 1), (128, 1, 1), setup, exact)


def _unary(name: str, exact: bool = True, block: tuple[int, int, int] = (256, 1, 1)) -> Case:
    n = 777

    def setup(
        mem: DeviceMemory, symbols: dict[str, int]
    ) -> tuple[bytes, dict[str, tuple[int, int, type[np.generic]]]]:
        x, y = _put(mem, _rand(n, 3)), _put(mem, np.zeros(n, np.float32))
        return struct.pack("<QQi4x", x, y, n), {"y": (y, n, np.float32)}

    return Case(name, (4, 1, 1), block, setup, exact)


def _rows(name: str, block: int, eps: bool) -> Case:
    rows, cols = 6, 300

    def setup(
        mem: DeviceMemory, symbols: dict[str, int]
    ) -> tuple[bytes, dict[str, tuple[int, int, type[np.generic]]]]:
        x, y = _put(mem, _rand(rows * cols, 4)), _put(mem, np.zeros(rows * cols, np.float32))
        params = (
            struct.pack("<QQiif", x, y, rows, cols, 1e-5) if eps else struct.pack("<QQii", x, y, rows, cols)
        )
        return params, {"y": (y, rows * cols, np.float32)}

    return Case(name, (rows, 1, 1), (block, 1, 1), setup, exact=False)


def _scale() -> Case:
    n = 500

    def setup(
        mem: DeviceMemory, symbols: dict[str, int]
    ) -> tuple[bytes, dict[str, tuple[int, int, type[np.generic]]]]:
        x = _put(mem, _rand(n, 5))
        return struct.pack("<Qfi", x, 1.5, n), {"x": (x, n, np.float32)}

    return Case("_Z9scale_f32Pffi", (2, 1, 1), (256, 1, 1), setup)


def _bias() -> Case:
    rows, cols = 7, 33

    def setup(
        mem: DeviceMemory, symbols: dict[str, int]
    ) -> tuple[bytes, dict[str, tuple[int, int, type[np.generic]]]]:
        x, b = _put(mem, _rand(rows * cols, 6)), _put(mem, _rand(cols, 7))
        return struct.pack("<QQii", x, b, rows, cols), {"x": (x, rows * cols, np.float32)}

    return Case("_Z13add_bias_rowsPfPKfii", (1, 1, 1), (256, 1, 1), setup)


def _globals(mem: DeviceMemory, symbols: dict[str, int]) -> None:
    symbols["g_scale"] = _put(mem, np.array([2.5], np.float32))
    symbols["g_lut"] = _put(mem, np.array([1, 2, 3, 4], np.int32))
    symbols["g_counters"] = _put(mem, np.zeros(16, np.uint32))


def _scale_by_global() -> Case:
    n = 300

    def setup(
        mem: DeviceMemory, symbols: dict[str, int]
    ) -> tuple[bytes, dict[str, tuple[int, int, type[np.generic]]]]:
        _globals(mem, symbols)
        x = _put(mem, _rand(n, 8))
        return struct.pack("<Qi4x", x, n), {"x": (x, n, np.float32)}

    return Case("_Z15scale_by_globalPfi", (3, 1, 1), (128, 1, 1), setup)


def _add_lut() -> Case:
    n = 300

    def setup(
        mem: DeviceMemory, symbols: dict[str, int]
    ) -> tuple[bytes, dict[str, tuple[int, int, type[np.generic]]]]:
        _globals(mem, symbols)
        x = _put(mem, np.random.default_rng(9).integers(-1000, 1000, n).astype(np.int32))
        return struct.pack("<Qi4x", x, n), {
            "x": (x, n, np.int32),
            "counters": (symbols["g_counters"], 16, np.uint32),
        }

    return Case("_Z7add_lutPii", (3, 1, 1), (128, 1, 1), setup)


CASES = [
    _binary("_Z10vector_addPKfS0_Pfi"),
    _binary("_Z7mul_f32PKfS0_Pfi"),
    _unary("_Z8relu_f32PKfPfi"),
    _unary("_Z8relu_f32PKfPfi", block=(64, 2, 2)),  # repeats in y/z: idempotent, the same result
    _unary("_Z8gelu_f32PKfPfi", exact=False),
    _unary("_Z8silu_f32PKfPfi", exact=False),
    _scale(),
    _bias(),
    _scale_by_global(),
    _add_lut(),
    _rows("_Z13rms_norm_rowsPKfPfiif", 128, eps=True),
    _rows("_Z13rms_norm_rowsPKfPfiif", 64, eps=True),
    _rows("_Z12softmax_rowsPKfPfii", 256, eps=False),
    _rows("_Z12softmax_rowsPKfPfii", 32, eps=False),
]


def test_every_twin_is_cross_checked() -> None:
    assert {case.kernel for case in CASES} == set(REFERENCE_KERNELS)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.kernel}-{c.block[0]}x{c.block[1]}x{c.block[2]}")
def test_the_engine_agrees_with_the_numpy_twin(case: Case) -> None:
    module = LoadedModule(TEST_KERNELS.read_text())
    results = []
    for run in ("engine", "twin"):
        mem = DeviceMemory(1 << 28)
        symbols: dict[str, int] = {}
        params, buffers = case.setup(mem, symbols)
        dims = LaunchDims(case.grid, case.block)
        if run == "engine":
            launch(module, case.kernel, mem, dims, params, symbols)
        else:
            REFERENCE_KERNELS[case.kernel](mem, dims, params, symbols)
        results.append(
            {
                name: mem.read(ptr, count * np.dtype(dt).itemsize).view(dt).copy()
                for name, (ptr, count, dt) in buffers.items()
            }
        )
    engine, twin = results
    for name in twin:
        if case.exact:
            np.testing.assert_array_equal(engine[name], twin[name], err_msg=name)
        else:
            close = ulps(engine[name], twin[name].astype(np.float64)) <= APPROX_ULPS
            near_zero = np.abs(engine[name] - twin[name]) <= APPROX_ABS
            assert (close | near_zero).all(), name
