"""NumPy twins of the kernels in ``tests/kernels/test_kernels.cu``, and the device-memory protocol.

The ``sim`` backend runs every kernel with the PTX engine (``executor/ptx``); these twins are an
independent implementation of the test kernels that ``tests/ptx/test_twins.py`` runs beside the
engine on the same inputs (bitwise equal where the arithmetic is exact). :func:`reference_kernel`
finds a twin by the kernel's real (mangled) name. :class:`DeviceMemory` and :class:`LaunchDims` are
what the engine uses too: it reaches device memory only through that checked interface.

Theory of operation
-------------------
* **Calling convention.** A :class:`KernelImpl` gets the VM's device memory (anything with the
  :class:`DeviceMemory` ``read``/``write`` methods, as the simulator's memory has), the launch's
  :class:`LaunchDims`, the packed parameter block exactly as the guest sent it (each parameter at its
  PTX offset) and the device addresses of the launching module's globals by name (a kernel that uses
  a ``__device__`` variable, such as ``scale_by_global``, reads it from device memory there).
* **Geometry is honoured as the CUDA source is written.** Elementwise kernels compute
  ``i = blockIdx.x * blockDim.x + threadIdx.x`` and guard ``if (i < n)``: exactly the first
  ``min(n, gridDim.x * blockDim.x)`` elements are touched, none when ``n <= 0`` (so a launch with
  ``n == 0`` touches no memory, whatever its pointers). ``i`` is a 32-bit ``int``: a grid of more
  than 2**31 threads wraps it negative, and the kernel indexes below its buffers (an illegal
  address). Row kernels run one row per block (``blockIdx.x``; rows past ``gridDim.x`` are left
  alone) and stride over the row by ``blockDim.x``; their block-wide reductions are simulated step
  by step as the tree in the source performs them, so a ``blockDim.x`` that is not a power of two
  loses partial sums exactly as the real kernel does.
* **Races are resolved by one legal schedule.** Threads that differ only in ``threadIdx.y/z`` or
  blocks that differ only in ``blockIdx.y/z`` repeat the same work. When that work is idempotent
  (outputs do not overlap inputs) it is done once; when it is not (in-place kernels, aliased
  buffers, the atomic counter of ``add_lut``) the repeats are serialized, each one reading what the
  previous one wrote, up to :data:`MAX_SERIALIZED_REPEATS` (beyond that the launch is
  ``CUDA_ERROR_NOT_SUPPORTED``). Within one pass all loads precede all stores.
* **Faults.** A pointer outside the VM's allocations (or without access) is what a kernel fault is
  on a GPU: ``CUDA_ERROR_ILLEGAL_ADDRESS``, sticky. So is a pointer not aligned to its element (on a
  GPU ``CUDA_ERROR_MISALIGNED_ADDRESS``, which the protocol's ``CUresult`` does not carry). A
  parameter block shorter than the kernel's is ``CUDA_ERROR_INVALID_VALUE``.
* **Arithmetic** is float32 as on the GPU; transcendental functions (``expf``, ``tanhf``, ``rsqrtf``)
  and fused multiply-adds differ from the GPU's in the last bits, so compare with a tolerance.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol

import numpy as np
import numpy.typing as npt

from protocol import CUresult

from ._errors import CudaError

__all__ = [
    "MAX_SERIALIZED_REPEATS",
    "REFERENCE_KERNELS",
    "DeviceMemory",
    "KernelImpl",
    "LaunchDims",
    "reference_kernel",
]

Bytes = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]

#: the most repeats of a non-idempotent pass that the simulator serializes (see the theory above)
MAX_SERIALIZED_REPEATS = 1024
_NO_SYMBOLS: Mapping[str, int] = MappingProxyType({})


class DeviceMemory(Protocol):
    """The device memory a kernel reads and writes: the VM's address space.

    Both methods raise :class:`CudaError` for a range outside the VM's allocations (the kernels turn
    that into a sticky ``CUDA_ERROR_ILLEGAL_ADDRESS``). The simulator's
    ``executor._sim_memory.DeviceMemory`` satisfies this protocol as it is.
    """

    def read(self, ptr: int, size: int, what: str = "pointer") -> Bytes:
        """A copy of the bytes ``[ptr, ptr + size)``."""
        ...

    def write(self, ptr: int, data: Bytes, what: str = "pointer") -> None:
        """Store ``data`` at ``ptr``."""
        ...


@dataclass(frozen=True, slots=True)
class LaunchDims:
    """A launch's geometry: grid and block dimensions (x, y, z) and dynamic shared memory bytes."""

    grid: tuple[int, int, int]
    block: tuple[int, int, int]
    shared_bytes: int = 0

    def __post_init__(self) -> None:
        if min(*self.grid, *self.block) < 1:
            raise ValueError(f"launch dimensions must be at least 1: grid {self.grid}, block {self.block}")

    @property
    def threads_x(self) -> int:
        """``gridDim.x * blockDim.x``: how many distinct ``blockIdx.x*blockDim.x + threadIdx.x``."""
        return self.grid[0] * self.block[0]

    @property
    def block_repeats(self) -> int:
        """Threads per block that share one ``threadIdx.x`` (``blockDim.y * blockDim.z``)."""
        return self.block[1] * self.block[2]

    @property
    def grid_repeats(self) -> int:
        """Blocks that share one ``blockIdx.x`` (``gridDim.y * gridDim.z``)."""
        return self.grid[1] * self.grid[2]


class KernelImpl(Protocol):
    """A reference kernel: ``(memory, dims, packed params, module globals' addresses) -> None``."""

    def __call__(self, mem: DeviceMemory, dims: LaunchDims, params: bytes,
                 symbols: Mapping[str, int] = _NO_SYMBOLS, /) -> None: ...


# ---------------------------------------------------------------------------------------------
# helpers shared by the kernels

_CODES = {"P": ("<Q", 8), "i": ("<i", 4), "f": ("<f", 4)}


def _unpack(kernel: str, params: bytes, layout: str) -> list[int | float]:
    """The parameters of ``layout`` (P pointer, i int, f float) at their natural alignments."""
    values: list[int | float] = []
    offset = 0
    for code in layout:
        fmt, size = _CODES[code]
        offset = -(-offset // size) * size
        if offset + size > len(params):
            total = sum(_CODES[c][1] for c in layout)
            raise CudaError(CUresult.CUDA_ERROR_INVALID_VALUE,
                            f"{kernel}: the parameter block has {len(params)} bytes; the kernel's "
                            f"parameters ({layout}) need at least {total}")
        values.append(struct.unpack_from(fmt, params, offset)[0])
        offset += size
    return values


def _wrap_i32(value: int) -> int:
    return (value + (1 << 31)) % (1 << 32) - (1 << 31)


@contextmanager
def _faults_as_kernel_faults(kernel: str) -> Iterator[None]:
    """A bad pointer inside a kernel is a sticky illegal address, whatever the memory said."""
    try:
        yield
    except CudaError as exc:
        raise CudaError(CUresult.CUDA_ERROR_ILLEGAL_ADDRESS,
                        f"kernel {kernel} faulted: {exc.message}", sticky=True) from exc


class _Access:
    """Typed loads and stores of one kernel's buffers, with GPU fault semantics."""

    def __init__(self, kernel: str, mem: DeviceMemory) -> None:
        self.kernel = kernel
        self.mem = mem

    def _check_aligned(self, ptr: int, itemsize: int, what: str) -> None:
        if ptr % itemsize:
            raise CudaError(CUresult.CUDA_ERROR_ILLEGAL_ADDRESS,
                            f"kernel {self.kernel} faulted: misaligned address {ptr:#x} for {what} "
                            f"({itemsize}-byte elements)", sticky=True)

    def load(self, ptr: int, count: int, dtype: type[np.generic], what: str) -> npt.NDArray[np.generic]:
        itemsize = np.dtype(dtype).itemsize
        if count <= 0:
            return np.zeros(0, dtype=dtype)
        self._check_aligned(ptr, itemsize, what)
        with _faults_as_kernel_faults(self.kernel):
            raw = self.mem.read(ptr, count * itemsize, what)
        return np.ascontiguousarray(raw).view(dtype).copy()

    def store(self, ptr: int, values: npt.NDArray[np.generic], what: str) -> None:
        if values.size == 0:
            return
        self._check_aligned(ptr, values.dtype.itemsize, what)
        data = np.ascontiguousarray(values).view(np.uint8).reshape(-1)
        with _faults_as_kernel_faults(self.kernel):
            self.mem.write(ptr, data, what)

    def f32(self, ptr: int, count: int, what: str) -> F32:
        return self.load(ptr, count, np.float32, what).astype(np.float32, copy=False)


def _elementwise_count(kernel: str, dims: LaunchDims, n: int) -> int:
    """How many elements ``if (i < n)`` lets through, with ``i`` a wrapped 32-bit int."""
    if n <= 0:
        return 0
    if dims.threads_x > 1 << 31:
        raise CudaError(CUresult.CUDA_ERROR_ILLEGAL_ADDRESS,
                        f"kernel {kernel} faulted: {dims.threads_x} threads along x overflow the 32-bit "
                        "index, which wraps negative and addresses memory below the buffers", sticky=True)
    return min(n, dims.threads_x)


def _overlaps(a: int, a_len: int, b: int, b_len: int) -> bool:
    return a_len > 0 and b_len > 0 and a < b + b_len and b < a + a_len


def _repeat(kernel: str, times: int, one_pass: Callable[[], None]) -> None:
    """Run a non-idempotent pass ``times`` times, serialized."""
    if times > MAX_SERIALIZED_REPEATS:
        raise CudaError(CUresult.CUDA_ERROR_NOT_SUPPORTED,
                        f"kernel {kernel}: {times} racing repeats of a non-idempotent pass (threads or "
                        f"blocks that differ only in y/z); the simulator serializes at most "
                        f"{MAX_SERIALIZED_REPEATS}")
    for _ in range(times):
        one_pass()


def _symbol(kernel: str, symbols: Mapping[str, int], name: str) -> int:
    try:
        return symbols[name]
    except KeyError:
        raise CudaError(CUresult.CUDA_ERROR_NOT_SUPPORTED,
                        f"kernel {kernel} uses the module global {name}, but the launch did not say "
                        "where the module's globals are") from None


# ---------------------------------------------------------------------------------------------
# elementwise kernels


def _unary(name: str, fn: Callable[[F32], F32]) -> KernelImpl:
    """``kernel(const float* x, float* y, int n)``: ``y[i] = fn(x[i])``."""

    def run(mem: DeviceMemory, dims: LaunchDims, params: bytes,
            symbols: Mapping[str, int] = _NO_SYMBOLS, /) -> None:
        x, y, n = _unpack(name, params, "PPi")
        count = _elementwise_count(name, dims, int(n))
        if count == 0:
            return
        io = _Access(name, mem)

        def one_pass() -> None:
            with np.errstate(all="ignore"):
                io.store(int(y), fn(io.f32(int(x), count, "x")), "y")

        aliased = _overlaps(int(x), 4 * count, int(y), 4 * count)
        _repeat(name, dims.grid_repeats * dims.block_repeats if aliased else 1, one_pass)

    run.__name__ = run.__qualname__ = name
    return run


def _binary(name: str, fn: Callable[[F32, F32], F32]) -> KernelImpl:
    """``kernel(const float* a, const float* b, float* c, int n)``: ``c[i] = fn(a[i], b[i])``."""

    def run(mem: DeviceMemory, dims: LaunchDims, params: bytes,
            symbols: Mapping[str, int] = _NO_SYMBOLS, /) -> None:
        a, b, c, n = (int(v) for v in _unpack(name, params, "PPPi"))
        count = _elementwise_count(name, dims, n)
        if count == 0:
            return
        io = _Access(name, mem)

        def one_pass() -> None:
            with np.errstate(all="ignore"):
                io.store(c, fn(io.f32(a, count, "a"), io.f32(b, count, "b")), "c")

        aliased = _overlaps(a, 4 * count, c, 4 * count) or _overlaps(b, 4 * count, c, 4 * count)
        _repeat(name, dims.grid_repeats * dims.block_repeats if aliased else 1, one_pass)

    run.__name__ = run.__qualname__ = name
    return run


_GELU_COEF_A = np.float32(0.044715)
_SQRT_2_OVER_PI = np.float32(0.79788456080286535587989211986876)
_HALF = np.float32(0.5)
_ONE = np.float32(1.0)


def _gelu(x: F32) -> F32:
    inner = _SQRT_2_OVER_PI * x * (_ONE + _GELU_COEF_A * x * x)
    return (_HALF * x * (_ONE + np.tanh(inner))).astype(np.float32)


def _silu(x: F32) -> F32:
    return (x / (_ONE + np.exp(-x))).astype(np.float32)


def _relu(x: F32) -> F32:
    return np.where(x > 0, x, np.float32(0.0)).astype(np.float32)


def scale_f32(mem: DeviceMemory, dims: LaunchDims, params: bytes,
              symbols: Mapping[str, int] = _NO_SYMBOLS, /) -> None:
    """``scale_f32(float* x, float s, int n)``: ``x[i] *= s``."""
    name = "scale_f32"
    x, s, n = _unpack(name, params, "Pfi")
    count = _elementwise_count(name, dims, int(n))
    if count == 0:
        return
    io = _Access(name, mem)
    factor = np.float32(s)

    def one_pass() -> None:
        with np.errstate(all="ignore"):
            io.store(int(x), io.f32(int(x), count, "x") * factor, "x")

    _repeat(name, dims.grid_repeats * dims.block_repeats, one_pass)


def add_bias_rows(mem: DeviceMemory, dims: LaunchDims, params: bytes,
                  symbols: Mapping[str, int] = _NO_SYMBOLS, /) -> None:
    """``add_bias_rows(float* x, const float* bias, int rows, int cols)``: ``x[i] += bias[i % cols]``
    for ``i < rows * cols`` (a 32-bit product)."""
    name = "add_bias_rows"
    x, bias, rows, cols = (int(v) for v in _unpack(name, params, "PPii"))
    count = _elementwise_count(name, dims, _wrap_i32(rows * cols))
    if count == 0:
        return
    io = _Access(name, mem)
    period = abs(cols)  # C's % keeps the dividend's sign; i >= 0 here
    index = np.arange(count, dtype=np.int64) % period

    def one_pass() -> None:
        b = io.f32(bias, min(count, period), "bias")
        with np.errstate(all="ignore"):
            io.store(x, io.f32(x, count, "x") + b[index], "x")

    _repeat(name, dims.grid_repeats * dims.block_repeats, one_pass)


def scale_by_global(mem: DeviceMemory, dims: LaunchDims, params: bytes,
                    symbols: Mapping[str, int] = _NO_SYMBOLS, /) -> None:
    """``scale_by_global(float* x, int n)``: ``x[i] *= g_scale`` (a ``__device__`` global)."""
    name = "scale_by_global"
    x, n = (int(v) for v in _unpack(name, params, "Pi"))
    count = _elementwise_count(name, dims, n)
    if count == 0:
        return
    io = _Access(name, mem)
    g_scale = _symbol(name, symbols, "g_scale")

    def one_pass() -> None:
        factor = io.f32(g_scale, 1, "g_scale")[0]
        with np.errstate(all="ignore"):
            io.store(x, io.f32(x, count, "x") * factor, "x")

    _repeat(name, dims.grid_repeats * dims.block_repeats, one_pass)


def add_lut(mem: DeviceMemory, dims: LaunchDims, params: bytes,
            symbols: Mapping[str, int] = _NO_SYMBOLS, /) -> None:
    """``add_lut(int* x, int n)``: ``x[i] += g_lut[i % 4]`` and ``atomicAdd(&g_counters[0], 1)``
    once per thread that passes the guard."""
    name = "add_lut"
    x, n = (int(v) for v in _unpack(name, params, "Pi"))
    count = _elementwise_count(name, dims, n)
    if count == 0:
        return
    io = _Access(name, mem)
    g_lut = _symbol(name, symbols, "g_lut")
    g_counters = _symbol(name, symbols, "g_counters")
    index = np.arange(count, dtype=np.int64) % 4

    def one_pass() -> None:
        lut = io.load(g_lut, 4, np.int32, "g_lut").astype(np.int64)
        values = io.load(x, count, np.int32, "x").astype(np.int64) + lut[index]
        io.store(x, values.astype(np.uint32).view(np.int32), "x")  # wraps as int32 does
        counter = io.load(g_counters, 1, np.uint32, "g_counters").astype(np.int64)
        io.store(g_counters, ((counter + count) % (1 << 32)).astype(np.uint32), "g_counters")

    _repeat(name, dims.grid_repeats * dims.block_repeats, one_pass)


# ---------------------------------------------------------------------------------------------
# row kernels: one block per row, the block's threads striding over the columns


def _per_thread(rows: F32, block_x: int, pad: float) -> F32:
    """``[r, k, t]``: the columns thread ``t`` visits, in order (``t, t + B, …``), padded."""
    n_rows, cols = rows.shape
    k = -(-cols // block_x)
    padded = np.full((n_rows, k * block_x), np.float32(pad), dtype=np.float32)
    padded[:, :cols] = rows
    return padded.reshape(n_rows, k, block_x)


def _thread_sums(rows: F32, block_x: int) -> F32:
    """Each thread's running ``sum += v`` over its columns, in its order."""
    lanes = _per_thread(rows, block_x, 0.0)
    acc = np.zeros((lanes.shape[0], block_x), dtype=np.float32)
    for k in range(lanes.shape[1]):
        acc += lanes[:, k, :]
    return acc


def _tree(partial: F32, combine: Callable[[F32, F32], F32], repeats: int) -> F32:
    """``block_sum``/``block_max`` of the source: ``for (s = blockDim.x/2; s > 0; s >>= 1)
    if (tid < s) partial[tid] = combine(partial[tid], partial[tid + s])``, each step done by
    ``repeats`` threads per ``tid`` (serialized). Returns ``partial[0]`` per row."""
    partial = partial.copy()
    s = partial.shape[1] // 2
    while s > 0:
        for _ in range(repeats):
            partial[:, :s] = combine(partial[:, :s], partial[:, s:2 * s])
        s //= 2
    return partial[:, 0]


def _row_geometry(kernel: str, dims: LaunchDims, rows: int, cols: int) -> int:
    """Rows that get a block (``blockIdx.x < rows``); 0 when nothing is touched."""
    if rows <= 0 or cols <= 0:
        return 0
    if dims.block_repeats > MAX_SERIALIZED_REPEATS:
        raise CudaError(CUresult.CUDA_ERROR_NOT_SUPPORTED,
                        f"kernel {kernel}: {dims.block_repeats} threads share each threadIdx.x in a "
                        f"racing reduction; the simulator serializes at most {MAX_SERIALIZED_REPEATS}")
    return min(rows, dims.grid[0])


def rms_norm_rows(mem: DeviceMemory, dims: LaunchDims, params: bytes,
                  symbols: Mapping[str, int] = _NO_SYMBOLS, /) -> None:
    """``rms_norm_rows(const float* x, float* y, int rows, int cols, float eps)``."""
    name = "rms_norm_rows"
    xv, yv, rv, cv, eps = _unpack(name, params, "PPiif")
    x, y, rows, cols = int(xv), int(yv), int(rv), int(cv)
    done = _row_geometry(name, dims, rows, cols)
    if done == 0:
        return
    io = _Access(name, mem)
    nbytes = 4 * done * cols

    def one_pass() -> None:
        data = io.f32(x, done * cols, "x").reshape(done, cols)
        with np.errstate(all="ignore"):
            sums = _tree(_thread_sums(data * data, dims.block[0]), np.add, dims.block_repeats)
            scale = (_ONE / np.sqrt(sums / np.float32(cols) + np.float32(eps))).astype(np.float32)
            io.store(y, (data * scale[:, None]).astype(np.float32), "y")

    _repeat(name, dims.grid_repeats if _overlaps(x, nbytes, y, nbytes) else 1, one_pass)


def softmax_rows(mem: DeviceMemory, dims: LaunchDims, params: bytes,
                 symbols: Mapping[str, int] = _NO_SYMBOLS, /) -> None:
    """``softmax_rows(const float* x, float* y, int rows, int cols)``, numerically stable."""
    name = "softmax_rows"
    x, y, rows, cols = (int(v) for v in _unpack(name, params, "PPii"))
    done = _row_geometry(name, dims, rows, cols)
    if done == 0:
        return
    io = _Access(name, mem)
    nbytes = 4 * done * cols
    block_x = dims.block[0]

    def one_pass() -> None:
        data = io.f32(x, done * cols, "x").reshape(done, cols)
        with np.errstate(all="ignore"):
            lanes = _per_thread(data, block_x, -np.inf)
            thread_max = np.full((done, block_x), -np.inf, dtype=np.float32)
            for k in range(lanes.shape[1]):
                thread_max = np.fmax(thread_max, lanes[:, k, :])
            row_max = _tree(thread_max, np.fmax, 1)
            e = np.exp(data - row_max[:, None]).astype(np.float32)
            total = _tree(_thread_sums(e, block_x), np.add, dims.block_repeats)
            for _ in range(dims.block_repeats):  # every thread sharing threadIdx.x divides once
                e = (e / total[:, None]).astype(np.float32)
            io.store(y, e, "y")

    _repeat(name, dims.grid_repeats if _overlaps(x, nbytes, y, nbytes) else 1, one_pass)


# ---------------------------------------------------------------------------------------------

#: every reference kernel, by the mangled name nvcc gives the kernel in test_kernels.cu
REFERENCE_KERNELS: Mapping[str, KernelImpl] = MappingProxyType({
    "_Z10vector_addPKfS0_Pfi": _binary("vector_add", lambda a, b: (a + b).astype(np.float32)),
    "_Z7mul_f32PKfS0_Pfi": _binary("mul_f32", lambda a, b: (a * b).astype(np.float32)),
    "_Z8relu_f32PKfPfi": _unary("relu_f32", _relu),
    "_Z8gelu_f32PKfPfi": _unary("gelu_f32", _gelu),
    "_Z8silu_f32PKfPfi": _unary("silu_f32", _silu),
    "_Z9scale_f32Pffi": scale_f32,
    "_Z13add_bias_rowsPfPKfii": add_bias_rows,
    "_Z13rms_norm_rowsPKfPfiif": rms_norm_rows,
    "_Z12softmax_rowsPKfPfii": softmax_rows,
    "_Z15scale_by_globalPfi": scale_by_global,
    "_Z7add_lutPii": add_lut,
})


def reference_kernel(name: str) -> KernelImpl | None:
    """The reference implementation of the kernel with this (mangled) name, if the simulator has one."""
    return REFERENCE_KERNELS.get(name)
