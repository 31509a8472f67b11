"""Thread-instructions per second of the PTX engine on several kinds of kernel, each beside a NumPy floor.

    python -m benchmarks.ptx_engine                     # all of them, best of 3 each
    python -m benchmarks.ptx_engine --kernel elementwise --elements 4194304 --repeat 5

* ``elementwise``: ``vector_add`` of ``tests/kernels/test_kernels.ptx`` (nvcc 13) over ``--elements``
  floats in blocks of 256; the floor is ``np.add`` on the same arrays.
* ``reduction``: a warp-shuffle sum (``shfl.sync.bfly`` five times, lane 0 stores its warp's sum) over
  the same number of floats; the floor is ``reshape(-1, 32).sum(axis=1)``.
* ``gemm``: a tensor-core GEMM, one warp per 16x8 tile of C looping ``mma.sync.m16n8k8`` (f16 inputs,
  f32 accumulators) over K, ``--gemm M N K``; the floor is NumPy's float32 ``A @ B.T``.
* ``wmma``: the same GEMM through ``nvcuda::wmma`` as nvcc lowers it, one warp per 16x16 tile of C looping
  ``wmma.load.a``/``wmma.load.b`` (from global memory) and ``wmma.mma.m16n16k16`` (f16 inputs, f32
  accumulators) over K, then ``wmma.store.d``, ``--wmma M N K`` (CUDA's ``simple_wmma_gemm`` shape);
  the floor is NumPy's float32 ``A @ B.T``.
* ``tensorcore`` (with ``--tensor-core CHECKOUT``, a cuda-samples checkout): NVIDIA's cudaTensorCoreGemm
  ``compute_gemm`` (wmma from shared memory, chunks of A and B copied in by ``ld.global.v4``), its tile
  counts set by ``--tensor-core-tiles M N K`` (64 64 128: 1024 x 1024 x 2048; the sample's 256 each), one
  batch of 32 blocks; the floor is NumPy's float32 ``A @ B.T + C``.
* ``atomics``: every one of ``--elements`` threads ``atom.global.add.u32`` on one counter (the shape of
  simpleAtomicIntrinsics), storing the old value; the floor is the exclusive prefix sum ``np.cumsum``.
* ``warp``: per thread ``match.any.sync`` on its value's low 3 bits, ``popc`` of the mask,
  ``vote.sync.ballot``, ``redux.sync.add`` of the ballot (the warp-aggregation shape of cooperative
  groups); the floor is NumPy's per-warp 32 x 32 comparison, ``packbits`` and sums.
* ``tiled``: a float32 GEMM through 16x16 tiles in shared memory, blocks of 16x16 threads, the inner
  product unrolled into ``ld.shared``/``fma.rn.f32`` (``benchmarks/tiled_gemm.cu``, nvcc 13's
  compute_80 PTX beside it: the shape of the CUDA samples' ``matrixMul``), ``--tiled M N K``; the
  floor is NumPy's float32 ``A @ B``.

The reduction, the tensor-core GEMMs and the atomics are hand-written PTX in the form nvcc emits. No
kernel diverges, so its thread-instructions are the path of one thread (a launch of one block counts
it) times the threads. Results are checked against the floor's.
"""

from __future__ import annotations

import argparse
import re
import shutil
import struct
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from executor._kernels import LaunchDims
from executor._sim_memory import DeviceMemory
from executor.ptx import Limits, LoadedModule, launch

PTX = Path(__file__).resolve().parents[1] / "tests" / "kernels" / "test_kernels.ptx"
TILED = Path(__file__).resolve().parent / "tiled_gemm.ptx"
VECTOR_ADD = "_Z10vector_addPKfS0_Pfi"

HEADER = ".version 8.0\n.target sm_80\n.address_size 64\n"
REDUCTION = (
    HEADER
    + """
.visible .entry warp_sum(.param .u64 in_ptr, .param .u64 out_ptr) {
    .reg .pred %p<2>; .reg .b32 %r<20>; .reg .f32 %f<12>; .reg .b64 %rd<8>;
    ld.param.u64 %rd1, [in_ptr];
    ld.param.u64 %rd2, [out_ptr];
    cvta.to.global.u64 %rd1, %rd1;
    cvta.to.global.u64 %rd2, %rd2;
    mov.u32 %r1, %ctaid.x;
    mov.u32 %r2, %ntid.x;
    mov.u32 %r3, %tid.x;
    mad.lo.s32 %r4, %r1, %r2, %r3;
    mul.wide.u32 %rd3, %r4, 4;
    add.s64 %rd4, %rd1, %rd3;
    ld.global.f32 %f1, [%rd4];
    mov.b32 %r5, %f1;
    shfl.sync.bfly.b32 %r6, %r5, 16, 31, -1;
    mov.b32 %f2, %r6;
    add.f32 %f3, %f1, %f2;
    mov.b32 %r7, %f3;
    shfl.sync.bfly.b32 %r8, %r7, 8, 31, -1;
    mov.b32 %f4, %r8;
    add.f32 %f5, %f3, %f4;
    mov.b32 %r9, %f5;
    shfl.sync.bfly.b32 %r10, %r9, 4, 31, -1;
    mov.b32 %f6, %r10;
    add.f32 %f7, %f5, %f6;
    mov.b32 %r11, %f7;
    shfl.sync.bfly.b32 %r12, %r11, 2, 31, -1;
    mov.b32 %f8, %r12;
    add.f32 %f9, %f7, %f8;
    mov.b32 %r13, %f9;
    shfl.sync.bfly.b32 %r14, %r13, 1, 31, -1;
    mov.b32 %f10, %r14;
    add.f32 %f11, %f9, %f10;
    and.b32 %r15, %r3, 31;
    setp.eq.u32 %p1, %r15, 0;
    shr.u32 %r16, %r4, 5;
    mul.wide.u32 %rd5, %r16, 4;
    add.s64 %rd6, %rd2, %rd5;
    @%p1 st.global.f32 [%rd6], %f11;
    ret;
}
"""
)
GEMM = (
    HEADER
    + """
.visible .entry mma_gemm(.param .u64 a_ptr, .param .u64 b_ptr, .param .u64 c_ptr, .param .u32 k_dim,
                         .param .u32 n_dim) {
    .reg .pred %p<2>; .reg .b32 %r<24>; .reg .f32 %f<4>; .reg .b64 %rd<14>;
    ld.param.u64 %rd1, [a_ptr];
    ld.param.u64 %rd2, [b_ptr];
    ld.param.u64 %rd3, [c_ptr];
    ld.param.u32 %r1, [k_dim];
    ld.param.u32 %r2, [n_dim];
    mov.u32 %r3, %tid.x;
    shr.u32 %r4, %r3, 2;
    and.b32 %r5, %r3, 3;
    mov.u32 %r6, %ctaid.y;
    shl.b32 %r7, %r6, 4;
    add.s32 %r8, %r7, %r4;
    add.s32 %r9, %r8, 8;
    mov.u32 %r10, %ctaid.x;
    shl.b32 %r11, %r10, 3;
    add.s32 %r12, %r11, %r4;
    shl.b32 %r13, %r5, 1;
    mad.lo.s32 %r14, %r8, %r1, %r13;
    mul.wide.u32 %rd4, %r14, 2;
    add.s64 %rd5, %rd1, %rd4;
    mad.lo.s32 %r15, %r9, %r1, %r13;
    mul.wide.u32 %rd6, %r15, 2;
    add.s64 %rd7, %rd1, %rd6;
    mad.lo.s32 %r16, %r12, %r1, %r13;
    mul.wide.u32 %rd8, %r16, 2;
    add.s64 %rd9, %rd2, %rd8;
    mov.f32 %f0, 0f00000000;
    mov.f32 %f1, 0f00000000;
    mov.f32 %f2, 0f00000000;
    mov.f32 %f3, 0f00000000;
    mov.u32 %r17, 0;
$L_loop:
    ld.global.b32 %r18, [%rd5];
    ld.global.b32 %r19, [%rd7];
    ld.global.b32 %r20, [%rd9];
    mma.sync.aligned.m16n8k8.row.col.f32.f16.f16.f32 {%f0, %f1, %f2, %f3}, {%r18, %r19}, {%r20},
        {%f0, %f1, %f2, %f3};
    add.s64 %rd5, %rd5, 16;
    add.s64 %rd7, %rd7, 16;
    add.s64 %rd9, %rd9, 16;
    add.s32 %r17, %r17, 8;
    setp.lt.u32 %p1, %r17, %r1;
    @%p1 bra $L_loop;
    add.s32 %r21, %r11, %r13;
    mad.lo.s32 %r22, %r8, %r2, %r21;
    mul.wide.u32 %rd10, %r22, 4;
    add.s64 %rd11, %rd3, %rd10;
    st.global.v2.f32 [%rd11], {%f0, %f1};
    mad.lo.s32 %r23, %r9, %r2, %r21;
    mul.wide.u32 %rd12, %r23, 4;
    add.s64 %rd13, %rd3, %rd12;
    st.global.v2.f32 [%rd13], {%f2, %f3};
    ret;
}
"""
)

WMMA_GEMM = (
    HEADER
    + """
.visible .entry wmma_gemm(.param .u64 a_ptr, .param .u64 b_ptr, .param .u64 c_ptr, .param .u32 k_dim,
                          .param .u32 n_dim) {
    .reg .pred %p<2>; .reg .b32 %r<40>; .reg .f32 %f<8>; .reg .b64 %rd<10>;
    ld.param.u64 %rd1, [a_ptr];
    ld.param.u64 %rd2, [b_ptr];
    ld.param.u64 %rd3, [c_ptr];
    ld.param.u32 %r1, [k_dim];
    ld.param.u32 %r2, [n_dim];
    mov.u32 %r3, %ctaid.x;
    mov.u32 %r4, %ctaid.y;
    shl.b32 %r5, %r4, 4;
    mul.lo.u32 %r6, %r5, %r1;
    mul.wide.u32 %rd4, %r6, 2;
    add.s64 %rd5, %rd1, %rd4;
    shl.b32 %r7, %r3, 4;
    mul.lo.u32 %r8, %r7, %r1;
    mul.wide.u32 %rd6, %r8, 2;
    add.s64 %rd7, %rd2, %rd6;
    mov.f32 %f0, 0f00000000;
    mov.f32 %f1, 0f00000000;
    mov.f32 %f2, 0f00000000;
    mov.f32 %f3, 0f00000000;
    mov.f32 %f4, 0f00000000;
    mov.f32 %f5, 0f00000000;
    mov.f32 %f6, 0f00000000;
    mov.f32 %f7, 0f00000000;
    mov.u32 %r9, 0;
$L_loop:
    wmma.load.a.sync.aligned.row.m16n16k16.global.f16
        {%r10, %r11, %r12, %r13, %r14, %r15, %r16, %r17}, [%rd5], %r1;
    wmma.load.b.sync.aligned.col.m16n16k16.global.f16
        {%r20, %r21, %r22, %r23, %r24, %r25, %r26, %r27}, [%rd7], %r1;
    wmma.mma.sync.aligned.row.col.m16n16k16.f32.f32 {%f0, %f1, %f2, %f3, %f4, %f5, %f6, %f7},
        {%r10, %r11, %r12, %r13, %r14, %r15, %r16, %r17},
        {%r20, %r21, %r22, %r23, %r24, %r25, %r26, %r27}, {%f0, %f1, %f2, %f3, %f4, %f5, %f6, %f7};
    add.s64 %rd5, %rd5, 32;
    add.s64 %rd7, %rd7, 32;
    add.s32 %r9, %r9, 16;
    setp.lt.u32 %p1, %r9, %r1;
    @%p1 bra $L_loop;
    mul.lo.u32 %r30, %r5, %r2;
    add.u32 %r31, %r30, %r7;
    mul.wide.u32 %rd8, %r31, 4;
    add.s64 %rd9, %rd3, %rd8;
    wmma.store.d.sync.aligned.row.m16n16k16.global.f32 [%rd9], {%f0, %f1, %f2, %f3, %f4, %f5, %f6, %f7}, %r2;
    ret;
}
"""
)


@dataclass(frozen=True, slots=True)
class Result:
    name: str
    what: str
    path: int  # instructions per thread
    threads: int
    seconds: float
    floor: float

    def line(self) -> str:
        rate = self.path * self.threads / self.seconds / 1e6
        times = self.seconds / self.floor
        return (
            f"{self.name:12s} {self.what}: {self.path} instructions x {self.threads} threads\n"
            f"  engine      {self.seconds * 1e3:9.1f} ms  {rate:9.1f} M thread-instructions/s\n"
            f"  NumPy floor {self.floor * 1e3:9.1f} ms  (the engine takes {times:.0f}x)"
        )


def _best(repeat: int, fn: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _put(mem: DeviceMemory, values: npt.NDArray[np.generic]) -> int:
    ptr = mem.alloc(values.nbytes)
    mem.write(ptr, np.ascontiguousarray(values).view(np.uint8).reshape(-1))
    return ptr


def elementwise(n: int, repeat: int) -> Result:
    module = LoadedModule(PTX.read_text())
    mem = DeviceMemory(1 << 32)
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(n, dtype=np.float32), rng.standard_normal(n, dtype=np.float32)
    pa, pb, pc = _put(mem, a), _put(mem, b), mem.alloc(4 * n)
    params = struct.pack("<QQQi4x", pa, pb, pc, n)
    path = launch(module, VECTOR_ADD, mem, LaunchDims((1, 1, 1), (1, 1, 1)), params, {})
    dims = LaunchDims(((n + 255) // 256, 1, 1), (256, 1, 1))
    seconds = _best(repeat, lambda: launch(module, VECTOR_ADD, mem, dims, params, {}))
    assert np.array_equal(mem.read(pc, 4 * n).view(np.float32), a + b)
    out = np.empty_like(a)
    floor = _best(repeat, lambda: np.add(a, b, out=out))
    return Result("elementwise", f"vector_add, {n} floats", path, n, seconds, floor)


def reduction(n: int, repeat: int) -> Result:
    module = LoadedModule(REDUCTION)
    mem = DeviceMemory(1 << 32)
    x = np.random.default_rng(1).standard_normal(n, dtype=np.float32)
    px, po = _put(mem, x), mem.alloc(n // 32 * 4)
    params = struct.pack("<QQ", px, po)
    path = launch(module, "warp_sum", mem, LaunchDims((1, 1, 1), (32, 1, 1)), params, {})
    dims = LaunchDims((n // 256, 1, 1), (256, 1, 1))
    seconds = _best(repeat, lambda: launch(module, "warp_sum", mem, dims, params, {}))
    got = mem.read(po, n // 32 * 4).view(np.float32)
    floor = _best(repeat, lambda: x.reshape(-1, 32).sum(axis=1))
    assert np.allclose(got, x.reshape(-1, 32).sum(axis=1), rtol=1e-5, atol=1e-5)
    return Result("reduction", f"warp shuffle sum, {n} floats", path, n, seconds, floor)


def _f16_gemm(
    ptx: str, kernel: str, tile: tuple[int, int], seed: int, m: int, n: int, k: int, repeat: int
) -> tuple[int, int, float, float]:
    """A tensor-core GEMM kernel of one warp per ``tile`` (rows, columns) of C over f16 A (row-major)
    and B (column-major), checked against NumPy: its path, threads, best seconds and the floor's."""
    module = LoadedModule(ptx)
    mem = DeviceMemory(1 << 32)
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((m, k)).astype(np.float16)
    b = rng.standard_normal((n, k)).astype(np.float16)  # B's columns, each contiguous in k
    pa, pb, pc = _put(mem, a), _put(mem, b), mem.alloc(4 * m * n)
    params = struct.pack("<QQQII", pa, pb, pc, k, n)
    path = launch(module, kernel, mem, LaunchDims((1, 1, 1), (32, 1, 1)), params, {})
    dims = LaunchDims((n // tile[1], m // tile[0], 1), (32, 1, 1))
    seconds = _best(repeat, lambda: launch(module, kernel, mem, dims, params, {}))
    got = mem.read(pc, 4 * m * n).view(np.float32).reshape(m, n)
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    floor = _best(repeat, lambda: a32 @ b32.T)
    assert np.allclose(got, a32 @ b32.T, rtol=1e-3, atol=1e-3)
    return path, (n // tile[1]) * (m // tile[0]) * 32, seconds, floor


def gemm(m: int, n: int, k: int, repeat: int) -> Result:
    path, threads, seconds, floor = _f16_gemm(GEMM, "mma_gemm", (16, 8), 2, m, n, k, repeat)
    return Result("gemm", f"mma.m16n8k8 f16->f32, {m}x{n}x{k}", path, threads, seconds, floor)


def wmma_gemm(m: int, n: int, k: int, repeat: int) -> Result:
    path, threads, seconds, floor = _f16_gemm(WMMA_GEMM, "wmma_gemm", (16, 16), 3, m, n, k, repeat)
    return Result("wmma", f"wmma.m16n16k16 f16->f32, {m}x{n}x{k}", path, threads, seconds, floor)


#: the dynamic shared memory cudaTensorCoreGemm gives compute_gemm (its SHMEM_SZ with CHUNK_K 8)
TENSOR_CORE_SHARED = 69632


def tensor_core(checkout: Path, tiles: tuple[int, int, int], repeat: int) -> Result:
    """NVIDIA's cudaTensorCoreGemm ``compute_gemm`` from a cuda-samples checkout, its tile counts set to
    ``tiles`` (the sample's are 256 each), compiled by nvcc 13 to compute_90 PTX, run as one batch of 32
    blocks of 256 threads (the sample launches one block per SM, 132)."""
    source = (checkout / "Samples/3_CUDA_Features/cudaTensorCoreGemm/cudaTensorCoreGemm.cu").read_text()
    for name, value in zip(("M_TILES", "N_TILES", "K_TILES"), tiles, strict=True):
        source = re.sub(rf"#define {name} \d+", f"#define {name} {value}", source)
    with tempfile.TemporaryDirectory() as tmp:
        cu, ptx = Path(tmp) / "gemm.cu", Path(tmp) / "gemm.ptx"
        cu.write_text(source)
        nvcc = shutil.which("nvcc") or "/usr/local/cuda-13.0/bin/nvcc"
        cmd = [nvcc, "-arch=compute_90", "-ptx", f"-I{checkout / 'Common'}", str(cu), "-o", str(ptx)]
        subprocess.run(cmd, check=True)
        module = LoadedModule(ptx.read_text())
    m, n, k = (16 * t for t in tiles)
    mem = DeviceMemory(1 << 33)
    rng = np.random.default_rng(4)
    a = rng.standard_normal((m, k)).astype(np.float16)
    b = rng.standard_normal((n, k)).astype(np.float16)  # B's columns, each contiguous in k
    c = rng.standard_normal((m, n)).astype(np.float32)
    pa, pb, pc, pd = _put(mem, a), _put(mem, b), _put(mem, c), mem.alloc(4 * m * n)
    params = struct.pack("<QQQQff", pa, pb, pc, pd, 1.0, 1.0)  # alpha = beta = 1: D = A B + C
    name = "_Z12compute_gemmPK6__halfS1_PKfPfff"
    dims = LaunchDims((32, 1, 1), (256, 1, 1), TENSOR_CORE_SHARED)
    limits = Limits(seconds=3600.0, instructions=1 << 40)
    path = launch(module, name, mem, dims, params, {}, limits)  # one batch: its instructions are a thread's
    seconds = _best(repeat, lambda: launch(module, name, mem, dims, params, {}, limits))
    got = mem.read(pd, 4 * m * n).view(np.float32).reshape(m, n)
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    floor = _best(repeat, lambda: a32 @ b32.T + c)
    assert np.allclose(got, a32 @ b32.T + c, rtol=1e-3, atol=1e-3)
    return Result(
        "tensorcore", f"cudaTensorCoreGemm compute_gemm, {m}x{n}x{k}", path, 32 * 256, seconds, floor
    )


ATOMICS = (
    HEADER
    + """
.visible .entry count(.param .u64 counter, .param .u64 old)
{
    .reg .b32 %r<6>;
    .reg .b64 %rd<5>;
    ld.param.u64 %rd1, [counter];
    ld.param.u64 %rd2, [old];
    mov.u32 %r1, %tid.x;
    mov.u32 %r2, %ctaid.x;
    mov.u32 %r3, %ntid.x;
    mad.lo.s32 %r4, %r2, %r3, %r1;
    atom.global.add.u32 %r5, [%rd1], 1;
    mul.wide.u32 %rd3, %r4, 4;
    add.s64 %rd4, %rd2, %rd3;
    st.global.u32 [%rd4], %r5;
    ret;
}
"""
)


def atomics(n: int, repeat: int) -> Result:
    module = LoadedModule(ATOMICS)
    mem = DeviceMemory(1 << 32)
    counter, old = _put(mem, np.zeros(1, dtype=np.uint32)), mem.alloc(4 * n)
    params = struct.pack("<QQ", counter, old)
    path = launch(module, "count", mem, LaunchDims((1, 1, 1), (1, 1, 1)), params, {})
    dims = LaunchDims((n // 256, 1, 1), (256, 1, 1))
    mem.write(counter, np.zeros(4, dtype=np.uint8))
    seconds = _best(1, lambda: launch(module, "count", mem, dims, params, {}))  # one: the counter grows
    assert np.array_equal(mem.read(old, 4 * n).view(np.uint32), np.arange(n, dtype=np.uint32))
    ones = np.ones(n, dtype=np.uint32)
    floor = _best(repeat, lambda: np.cumsum(ones) - ones)
    return Result("atomics", f"atom.add on one counter, {n} threads", path, n, seconds, floor)


WARP = (
    HEADER
    + """
.visible .entry groups(.param .u64 in_ptr, .param .u64 out_ptr)
{
    .reg .pred %p<2>;
    .reg .b32 %r<12>;
    .reg .b64 %rd<6>;
    ld.param.u64 %rd1, [in_ptr];
    ld.param.u64 %rd2, [out_ptr];
    mov.u32 %r1, %tid.x;
    mov.u32 %r2, %ctaid.x;
    mov.u32 %r3, %ntid.x;
    mad.lo.s32 %r4, %r2, %r3, %r1;
    mul.wide.u32 %rd3, %r4, 4;
    add.s64 %rd4, %rd1, %rd3;
    ld.global.u32 %r5, [%rd4];
    and.b32 %r6, %r5, 7;
    match.any.sync.b32 %r7, %r6, -1;
    popc.b32 %r8, %r7;
    setp.gt.u32 %p1, %r6, 3;
    vote.sync.ballot.b32 %r9, %p1, -1;
    redux.sync.add.u32 %r10, %r9, -1;
    add.s32 %r11, %r8, %r10;
    add.s64 %rd5, %rd2, %rd3;
    st.global.u32 [%rd5], %r11;
    ret;
}
"""
)


def warp(n: int, repeat: int) -> Result:
    module = LoadedModule(WARP)
    mem = DeviceMemory(1 << 32)
    v = np.random.default_rng(4).integers(0, 1 << 16, n).astype(np.uint32)
    pv, po = _put(mem, v), mem.alloc(4 * n)
    params = struct.pack("<QQ", pv, po)
    path = launch(module, "groups", mem, LaunchDims((1, 1, 1), (32, 1, 1)), params, {})
    dims = LaunchDims((n // 256, 1, 1), (256, 1, 1))
    seconds = _best(repeat, lambda: launch(module, "groups", mem, dims, params, {}))

    def numpy() -> npt.NDArray[np.uint32]:  # the same per warp: group sizes, ballot, its 32-lane sum
        key = (v & 7).reshape(-1, 32)
        sizes = (key[:, :, None] == key[:, None, :]).sum(axis=2, dtype=np.uint32)
        ballot = np.packbits(key > 3, axis=1, bitorder="little").view("<u4").reshape(-1, 1)
        out: npt.NDArray[np.uint32] = (sizes + ballot * np.uint32(32)).reshape(-1)
        return out

    floor = _best(repeat, numpy)
    assert np.array_equal(mem.read(po, 4 * n).view(np.uint32), numpy())
    return Result("warp", f"match.any, popc, vote.ballot, redux.add, {n} threads", path, n, seconds, floor)


def tiled(m: int, n: int, k: int, repeat: int) -> Result:
    module = LoadedModule(TILED.read_text())
    mem = DeviceMemory(1 << 32)
    rng = np.random.default_rng(3)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    pa, pb, pc = _put(mem, a), _put(mem, b), mem.alloc(4 * m * n)
    params = struct.pack("<QQQii", pc, pa, pb, k, n)
    path = launch(module, "tiled_gemm", mem, LaunchDims((1, 1, 1), (16, 16, 1)), params, {})
    dims = LaunchDims((n // 16, m // 16, 1), (16, 16, 1))
    seconds = _best(repeat, lambda: launch(module, "tiled_gemm", mem, dims, params, {}))
    got = mem.read(pc, 4 * m * n).view(np.float32).reshape(m, n)
    floor = _best(repeat, lambda: a @ b)
    assert np.allclose(got, a @ b, rtol=1e-4, atol=1e-4)
    return Result("tiled", f"shared-memory tiles, fma.rn.f32, {m}x{n}x{k}", path, m * n, seconds, floor)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    kernels = ("all", "elementwise", "reduction", "gemm", "wmma", "atomics", "tiled", "warp", "tensorcore")
    parser.add_argument("--kernel", choices=kernels, default="all")
    parser.add_argument("--elements", type=int, default=1 << 20)
    parser.add_argument("--gemm", type=int, nargs=3, default=(256, 256, 256), metavar=("M", "N", "K"))
    parser.add_argument("--wmma", type=int, nargs=3, default=(256, 256, 256), metavar=("M", "N", "K"))
    parser.add_argument("--tensor-core", type=Path, default=None, metavar="CHECKOUT")
    parser.add_argument(
        "--tensor-core-tiles", type=int, nargs=3, default=(64, 64, 128), metavar=("M", "N", "K")
    )
    parser.add_argument("--tiled", type=int, nargs=3, default=(256, 256, 256), metavar=("M", "N", "K"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    runs: list[Callable[[], Result]] = []
    if args.kernel in ("all", "elementwise"):
        runs.append(lambda: elementwise(args.elements, args.repeat))
    if args.kernel in ("all", "reduction"):
        runs.append(lambda: reduction(args.elements, args.repeat))
    if args.kernel in ("all", "gemm"):
        m, n, k = args.gemm
        runs.append(lambda: gemm(m, n, k, args.repeat))
    if args.kernel in ("all", "wmma"):
        wm, wn, wk = args.wmma
        runs.append(lambda: wmma_gemm(wm, wn, wk, args.repeat))
    if args.kernel in ("all", "atomics"):
        runs.append(lambda: atomics(args.elements, args.repeat))
    if args.kernel in ("all", "tiled"):
        tm, tn, tk = args.tiled
        runs.append(lambda: tiled(tm, tn, tk, args.repeat))
    if args.kernel in ("all", "warp"):
        runs.append(lambda: warp(args.elements, args.repeat))
    if args.kernel in ("all", "tensorcore") and args.tensor_core is not None:
        tiles = args.tensor_core_tiles
        runs.append(lambda: tensor_core(args.tensor_core, tiles, args.repeat))
    for run in runs:
        print(run().line(), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
