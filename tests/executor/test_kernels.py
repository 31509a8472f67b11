"""The NumPy twins of the test kernels (executor/_kernels.py) against straightforward NumPy, launch
geometry and faults. ``sim`` runs kernels on the PTX engine; tests/ptx/test_twins.py holds the engine
to these twins."""

from __future__ import annotations

import struct
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from executor._errors import CudaError
from executor._kernels import (
    MAX_SERIALIZED_REPEATS,
    REFERENCE_KERNELS,
    DeviceMemory,
    KernelImpl,
    LaunchDims,
    reference_kernel,
)
from executor._modules import parse_module_image
from executor._sim_memory import DeviceMemory as SimDeviceMemory
from protocol import CUresult

KERNELS = Path(__file__).resolve().parents[1] / "kernels"
Bytes = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]

VECTOR_ADD = "_Z10vector_addPKfS0_Pfi"
MUL = "_Z7mul_f32PKfS0_Pfi"
SCALE = "_Z9scale_f32Pffi"
ADD_BIAS = "_Z13add_bias_rowsPfPKfii"
RELU = "_Z8relu_f32PKfPfi"
GELU = "_Z8gelu_f32PKfPfi"
SILU = "_Z8silu_f32PKfPfi"
RMS_NORM = "_Z13rms_norm_rowsPKfPfiif"
SOFTMAX = "_Z12softmax_rowsPKfPfii"
SCALE_BY_GLOBAL = "_Z15scale_by_globalPfi"
ADD_LUT = "_Z7add_lutPii"
MYSTERY = "_Z14mystery_kernelcdPf4Pairs"


class FakeMemory:
    """A few bytearray-backed allocations at spaced-out addresses; reads and writes bounds-checked."""

    def __init__(self) -> None:
        self.blocks: dict[int, bytearray] = {}
        self._next = 0x10_0000

    def alloc(self, size: int) -> int:
        ptr = self._next
        self.blocks[ptr] = bytearray(size)
        self._next += (size + 0xFFFF) // 0x10000 * 0x10000 + 0x10000  # a gap after each block
        return ptr

    def put(self, values: npt.NDArray[np.generic]) -> int:
        ptr = self.alloc(values.nbytes)
        self.blocks[ptr][:] = values.tobytes()
        return ptr

    def _block(self, ptr: int, size: int) -> tuple[bytearray, int]:
        for start, block in self.blocks.items():
            if start <= ptr and ptr + size <= start + len(block):
                return block, ptr - start
        raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE, f"[{ptr:#x}, +{size}) is not allocated")

    def read(self, ptr: int, size: int, what: str = "pointer") -> Bytes:
        block, off = self._block(ptr, size)
        return np.frombuffer(bytes(block[off:off + size]), dtype=np.uint8).copy()

    def write(self, ptr: int, data: Bytes, what: str = "pointer") -> None:
        block, off = self._block(ptr, int(data.nbytes))
        block[off:off + data.nbytes] = data.tobytes()

    def f32(self, ptr: int, count: int) -> F32:
        return np.frombuffer(bytes(self.blocks[ptr][:4 * count]), dtype=np.float32).copy()

    def i32(self, ptr: int, count: int) -> npt.NDArray[np.int32]:
        return np.frombuffer(bytes(self.blocks[ptr][:4 * count]), dtype=np.int32).copy()


def dims(grid: int | tuple[int, int, int], block: int | tuple[int, int, int]) -> LaunchDims:
    g = grid if isinstance(grid, tuple) else (grid, 1, 1)
    b = block if isinstance(block, tuple) else (block, 1, 1)
    return LaunchDims(g, b)


def kernel(name: str) -> KernelImpl:
    impl = reference_kernel(name)
    assert impl is not None, name
    return impl


def rand(n: int, seed: int = 0, scale: float = 3.0) -> F32:
    return (np.random.default_rng(seed).standard_normal(n) * scale).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# names


def test_every_reference_is_keyed_by_a_real_kernel_name_of_the_test_module() -> None:
    image = parse_module_image((KERNELS / "test_kernels.fatbin").read_bytes())
    assert set(REFERENCE_KERNELS) <= set(image.kernels)
    assert set(image.kernels) - set(REFERENCE_KERNELS) == {MYSTERY}


def test_a_kernel_without_a_reference_has_none() -> None:
    assert reference_kernel(MYSTERY) is None
    assert reference_kernel("vector_add") is None  # the unmangled name is not the kernel's name


# ---------------------------------------------------------------------------------------------
# elementwise kernels


def test_vector_add() -> None:
    mem = FakeMemory()
    a, b = rand(1000, 1), rand(1000, 2)
    pa, pb, pc = mem.put(a), mem.put(b), mem.alloc(4000)
    kernel(VECTOR_ADD)(mem, dims(4, 256), struct.pack("<QQQi", pa, pb, pc, 1000))
    np.testing.assert_array_equal(mem.f32(pc, 1000), a + b)


def test_elementwise_kernels_touch_only_the_threads_the_grid_has() -> None:
    mem = FakeMemory()
    a, b = rand(1000, 1), rand(1000, 2)
    pa, pb = mem.put(a), mem.put(b)
    pc = mem.put(np.full(1000, 7.0, dtype=np.float32))
    kernel(VECTOR_ADD)(mem, dims(2, 256), struct.pack("<QQQi", pa, pb, pc, 1000))  # 512 threads
    out = mem.f32(pc, 1000)
    np.testing.assert_array_equal(out[:512], a[:512] + b[:512])
    assert (out[512:] == 7.0).all()


def test_elementwise_kernels_stop_at_n() -> None:
    mem = FakeMemory()
    pa, pb = mem.put(rand(10, 1)), mem.put(rand(10, 2))
    pc = mem.put(np.full(10, 7.0, dtype=np.float32))
    kernel(MUL)(mem, dims(1, 1024), struct.pack("<QQQi", pa, pb, pc, 6))
    out = mem.f32(pc, 10)
    np.testing.assert_array_equal(out[:6], rand(10, 1)[:6] * rand(10, 2)[:6])
    assert (out[6:] == 7.0).all()


def test_mul_f32() -> None:
    mem = FakeMemory()
    x, y = rand(300, 3), rand(300, 4)
    px, py, pz = mem.put(x), mem.put(y), mem.alloc(1200)
    kernel(MUL)(mem, dims(3, 128), struct.pack("<QQQi", px, py, pz, 300))
    np.testing.assert_array_equal(mem.f32(pz, 300), x * y)


def test_scale_f32_in_place() -> None:
    mem = FakeMemory()
    x = rand(100)
    px = mem.put(x)
    kernel(SCALE)(mem, dims(1, 128), struct.pack("<Qfi", px, 0.5, 100))
    np.testing.assert_array_equal(mem.f32(px, 100), x * np.float32(0.5))


def test_add_bias_rows() -> None:
    mem = FakeMemory()
    rows, cols = 6, 10
    x, bias = rand(rows * cols, 5), rand(cols, 6)
    px, pb = mem.put(x), mem.put(bias)
    kernel(ADD_BIAS)(mem, dims(1, 64), struct.pack("<QQii", px, pb, rows, cols))  # 64 of 60 threads
    np.testing.assert_array_equal(mem.f32(px, rows * cols), (x.reshape(rows, cols) + bias).ravel())


def test_relu() -> None:
    mem = FakeMemory()
    x = rand(64)
    px, py = mem.put(x), mem.alloc(256)
    kernel(RELU)(mem, dims(2, 32), struct.pack("<QQi", px, py, 64))
    np.testing.assert_array_equal(mem.f32(py, 64), np.maximum(x, 0))


def test_gelu_is_ggmls_tanh_approximation() -> None:
    mem = FakeMemory()
    x = rand(256)
    px, py = mem.put(x), mem.alloc(1024)
    kernel(GELU)(mem, dims(1, 256), struct.pack("<QQi", px, py, 256))
    v = x.astype(np.float64)
    expected = 0.5 * v * (1 + np.tanh(np.sqrt(2 / np.pi) * v * (1 + 0.044715 * v * v)))
    np.testing.assert_allclose(mem.f32(py, 256), expected, rtol=1e-5, atol=1e-6)


def test_silu() -> None:
    mem = FakeMemory()
    x = rand(256)
    px, py = mem.put(x), mem.alloc(1024)
    kernel(SILU)(mem, dims(1, 256), struct.pack("<QQi", px, py, 256))
    v = x.astype(np.float64)
    np.testing.assert_allclose(mem.f32(py, 256), v / (1 + np.exp(-v)), rtol=1e-5, atol=1e-6)


def test_threads_that_differ_only_in_y_repeat_an_in_place_update_serially() -> None:
    mem = FakeMemory()
    x = rand(16)
    px = mem.put(x)
    kernel(SCALE)(mem, dims((1, 3, 1), (16, 2, 1)), struct.pack("<Qfi", px, 2.0, 16))
    np.testing.assert_array_equal(mem.f32(px, 16), x * np.float32(64.0))  # 6 serialized x*=2


def test_repeats_of_an_aliased_unary_kernel_reapply_it() -> None:
    mem = FakeMemory()
    x = rand(16)
    px = mem.put(x)
    kernel(SILU)(mem, dims((1, 2, 1), 16), struct.pack("<QQi", px, px, 16))
    v = x.astype(np.float64)
    once = v / (1 + np.exp(-v))
    np.testing.assert_allclose(mem.f32(px, 16), once / (1 + np.exp(-once)), rtol=1e-5, atol=1e-6)


def test_repeats_of_an_idempotent_kernel_change_nothing() -> None:
    mem = FakeMemory()
    a, b = rand(50, 1), rand(50, 2)
    pa, pb, pc = mem.put(a), mem.put(b), mem.alloc(200)
    kernel(VECTOR_ADD)(mem, dims((1, 5, 5), (64, 4, 1)), struct.pack("<QQQi", pa, pb, pc, 50))
    np.testing.assert_array_equal(mem.f32(pc, 50), a + b)


def test_too_many_racing_repeats_are_not_simulated() -> None:
    mem = FakeMemory()
    px = mem.put(rand(4))
    with pytest.raises(CudaError) as err:
        kernel(SCALE)(mem, dims((1, MAX_SERIALIZED_REPEATS + 1, 1), 4), struct.pack("<Qfi", px, 2.0, 4))
    assert err.value.status == CUresult.CUDA_ERROR_NOT_SUPPORTED


# ---------------------------------------------------------------------------------------------
# faults and bad parameters


def test_n_zero_touches_no_memory_even_through_null_pointers() -> None:
    kernel(VECTOR_ADD)(FakeMemory(), dims(1, 32), struct.pack("<QQQi", 0, 0, 0, 0))
    kernel(RMS_NORM)(FakeMemory(), dims(1, 32), struct.pack("<QQiif", 0, 0, 0, 8, 1e-6))


@pytest.mark.parametrize("where", ["input", "output", "overrun"])
def test_a_pointer_outside_the_allocations_is_a_sticky_illegal_address(where: str) -> None:
    mem = FakeMemory()
    pa, pb, pc = mem.put(rand(64)), mem.put(rand(64)), mem.alloc(256)
    n = 64
    if where == "input":
        pa = 0xDEAD_0000
    elif where == "output":
        pc = 0
    else:
        n = 65
    with pytest.raises(CudaError) as err:
        kernel(VECTOR_ADD)(mem, dims(1, 128), struct.pack("<QQQi", pa, pb, pc, n))
    assert err.value.status == CUresult.CUDA_ERROR_ILLEGAL_ADDRESS
    assert err.value.sticky
    assert "vector_add" in err.value.message


def test_a_misaligned_float_pointer_is_a_sticky_fault() -> None:
    mem = FakeMemory()
    px = mem.put(rand(16))
    with pytest.raises(CudaError) as err:
        kernel(SCALE)(mem, dims(1, 32), struct.pack("<Qfi", px + 2, 2.0, 4))
    assert err.value.status == CUresult.CUDA_ERROR_ILLEGAL_ADDRESS
    assert err.value.sticky
    assert "misaligned" in err.value.message


def test_a_32_bit_index_that_wraps_negative_faults() -> None:
    mem = FakeMemory()
    px = mem.put(rand(16))
    with pytest.raises(CudaError) as err:
        kernel(SCALE)(mem, dims(2**31 // 512 + 1, 1024), struct.pack("<Qfi", px, 2.0, 16))
    assert err.value.status == CUresult.CUDA_ERROR_ILLEGAL_ADDRESS
    assert err.value.sticky


def test_a_short_parameter_block_is_invalid_value() -> None:
    mem = FakeMemory()
    with pytest.raises(CudaError) as err:
        kernel(VECTOR_ADD)(mem, dims(1, 32), struct.pack("<QQQ", 1, 2, 3))
    assert err.value.status == CUresult.CUDA_ERROR_INVALID_VALUE
    assert not err.value.sticky


# ---------------------------------------------------------------------------------------------
# row kernels


def rms_norm(x: F32, eps: float) -> npt.NDArray[np.float64]:
    v = x.astype(np.float64)
    out: npt.NDArray[np.float64] = v / np.sqrt((v * v).mean(axis=1, keepdims=True) + eps)
    return out


@pytest.mark.parametrize("block", [1, 32, 128, 1024])
def test_rms_norm_rows(block: int) -> None:
    mem = FakeMemory()
    rows, cols = 5, 100
    x = rand(rows * cols, 7)
    px, py = mem.put(x), mem.alloc(4 * rows * cols)
    kernel(RMS_NORM)(mem, dims(rows, block), struct.pack("<QQiif", px, py, rows, cols, 1e-5))
    np.testing.assert_allclose(mem.f32(py, rows * cols).reshape(rows, cols),
                               rms_norm(x.reshape(rows, cols), 1e-5), rtol=1e-5, atol=1e-6)


def test_row_kernels_leave_rows_beyond_the_grid_alone() -> None:
    mem = FakeMemory()
    rows, cols = 5, 8
    x = rand(rows * cols, 8)
    px = mem.put(x)
    py = mem.put(np.full(rows * cols, -1.0, dtype=np.float32))
    kernel(RMS_NORM)(mem, dims(3, 8), struct.pack("<QQiif", px, py, rows, cols, 1e-6))
    out = mem.f32(py, rows * cols).reshape(rows, cols)
    np.testing.assert_allclose(out[:3], rms_norm(x.reshape(rows, cols)[:3], 1e-6), rtol=1e-5)
    assert (out[3:] == -1.0).all()


def test_a_block_that_is_not_a_power_of_two_loses_partial_sums_as_the_source_does() -> None:
    # blockDim.x = 3: threads sum 1, 4 and 9; the tree does s = 1 only: partial[0] += partial[1],
    # and thread 2's 9 never reaches the total
    mem = FakeMemory()
    px, py = mem.put(np.array([1, 2, 3], dtype=np.float32)), mem.alloc(12)
    kernel(RMS_NORM)(mem, dims(1, 3), struct.pack("<QQiif", px, py, 1, 3, 0.0))
    np.testing.assert_allclose(mem.f32(py, 3), np.array([1, 2, 3]) / np.sqrt(5 / 3), rtol=1e-6)


def test_rms_norm_in_place() -> None:
    mem = FakeMemory()
    x = rand(4 * 64, 9)
    px = mem.put(x)
    kernel(RMS_NORM)(mem, dims(4, 64), struct.pack("<QQiif", px, px, 4, 64, 1e-6))
    np.testing.assert_allclose(mem.f32(px, 256).reshape(4, 64), rms_norm(x.reshape(4, 64), 1e-6),
                               rtol=1e-5, atol=1e-6)


def softmax(x: F32) -> npt.NDArray[np.float64]:
    v = x.astype(np.float64)
    e = np.exp(v - v.max(axis=1, keepdims=True))
    out: npt.NDArray[np.float64] = e / e.sum(axis=1, keepdims=True)
    return out


@pytest.mark.parametrize("block", [1, 64, 256])
def test_softmax_rows_is_numerically_stable(block: int) -> None:
    mem = FakeMemory()
    rows, cols = 4, 200
    x = rand(rows * cols, 10, scale=10.0) + np.float32(1000.0)  # exp(1000) would overflow
    px, py = mem.put(x), mem.alloc(4 * rows * cols)
    kernel(SOFTMAX)(mem, dims(rows, block), struct.pack("<QQii", px, py, rows, cols))
    out = mem.f32(py, rows * cols).reshape(rows, cols)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, softmax(x.reshape(rows, cols)), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)


def test_softmax_in_place() -> None:
    mem = FakeMemory()
    x = rand(3 * 50, 11)
    px = mem.put(x)
    kernel(SOFTMAX)(mem, dims(3, 32), struct.pack("<QQii", px, px, 3, 50))
    np.testing.assert_allclose(mem.f32(px, 150).reshape(3, 50), softmax(x.reshape(3, 50)),
                               rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------------------------------------
# kernels that use module globals


def globals_in(mem: FakeMemory, values: Mapping[str, npt.NDArray[np.generic]]) -> dict[str, int]:
    return {name: mem.put(value) for name, value in values.items()}


def test_scale_by_global_reads_the_global_from_device_memory() -> None:
    mem = FakeMemory()
    x = rand(32)
    px = mem.put(x)
    symbols = globals_in(mem, {"g_scale": np.array([3.0], dtype=np.float32)})
    kernel(SCALE_BY_GLOBAL)(mem, dims(1, 32), struct.pack("<Qi", px, 32), symbols)
    np.testing.assert_array_equal(mem.f32(px, 32), x * np.float32(3.0))


def test_a_kernel_that_needs_globals_fails_clearly_without_them() -> None:
    mem = FakeMemory()
    px = mem.put(rand(32))
    with pytest.raises(CudaError) as err:
        kernel(SCALE_BY_GLOBAL)(mem, dims(1, 32), struct.pack("<Qi", px, 32))
    assert err.value.status == CUresult.CUDA_ERROR_NOT_SUPPORTED
    assert "g_scale" in err.value.message


def test_add_lut_adds_the_constant_table_and_counts_its_threads_atomically() -> None:
    mem = FakeMemory()
    x = np.arange(10, dtype=np.int32)
    px = mem.put(x)
    symbols = globals_in(mem, {"g_lut": np.array([1, 2, 3, 4], dtype=np.int32),
                               "g_counters": np.zeros(16, dtype=np.uint32)})
    kernel(ADD_LUT)(mem, dims((1, 2, 1), 16), struct.pack("<Qi", px, 10), symbols)
    lut = np.array([1, 2, 3, 4] * 3, dtype=np.int32)[:10]
    np.testing.assert_array_equal(mem.i32(px, 10), x + 2 * lut)  # two blocks share blockIdx.x
    assert mem.i32(symbols["g_counters"], 16).tolist() == [20] + [0] * 15


# ---------------------------------------------------------------------------------------------
# the simulator's own memory


def test_the_simulators_device_memory_is_a_kernel_memory() -> None:
    sim = SimDeviceMemory(total=1 << 30)
    memory: DeviceMemory = sim  # structural: the protocol is what the simulator already offers
    a, b = rand(100, 1), rand(100, 2)
    pa, pb, pc = sim.alloc(400), sim.alloc(400), sim.alloc(400)
    sim.write(pa, a.view(np.uint8))
    sim.write(pb, b.view(np.uint8))
    kernel(VECTOR_ADD)(memory, dims(1, 128), struct.pack("<QQQi", pa, pb, pc, 100))
    np.testing.assert_array_equal(sim.read(pc, 400).view(np.float32), a + b)
    with pytest.raises(CudaError) as err:
        kernel(VECTOR_ADD)(memory, dims(1, 128), struct.pack("<QQQi", pa, pb, pc, 101))
    assert err.value.status == CUresult.CUDA_ERROR_ILLEGAL_ADDRESS
    assert err.value.sticky
