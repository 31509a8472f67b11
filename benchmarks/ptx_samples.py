"""One launch of NVIDIA's samples' hot kernels on the PTX engine, each beside a NumPy floor.

    python -m benchmarks.ptx_samples CHECKOUT                      # every kernel, best of 2
    python -m benchmarks.ptx_samples CHECKOUT --kernel blackscholes --scale 4 --repeat 3

CHECKOUT is a checkout of github.com/NVIDIA/cuda-samples (``c94ff366`` for the figures in
docs/benchmarks.md); each sample's source is compiled by nvcc 13 to compute_90 PTX and its kernel
launched in process on the simulator's memory with the sample's own grid (``--scale N``: 1/N of it)
and data of the same shape. Printed per kernel: wall and CPU (the launching thread's,
``time.thread_time``, which a loaded machine moves far less) of the best launch, and the NumPy floor
of the same arithmetic; results are checked against it.

* ``matrixmul``: ``MatrixMulCUDA<32>``, 320x320 times 320x640 (the sample's default: 200 blocks of
  1,024 threads); floor ``A @ B``.
* ``blackscholes``: ``BlackScholesGPU`` over 4 M options (2 M threads of 128); floor the same
  formulas in float32 NumPy (checked within 1e-3: the engine's ``ex2``/``lg2`` are more exact).
* ``scan``: ``scanExclusiveShared`` over 6.8 M uints in arrays of 1,024 (1.7 M threads); floor
  ``np.cumsum`` per array.
* ``streams``: simpleStreams' ``init_array`` over 16 Mi ints, 5 iterations; floor ``a + 5 * c``.
* ``largeparam``: LargeKernelParameter's ``kernelLargeParam``, one thread summing a 32,000-byte
  by-value parameter through its address; floor ``np.sum``.
* ``jacobi``: HSOpticalFlow's ``JacobiIteration<32, 6>`` at 640 x 480 (its finest pyramid level; a
  sample run launches it 7,500 times over five levels), halo rows and columns loaded on two sparse
  divergent paths; floor the same stencil in float32 NumPy.
"""

from __future__ import annotations

import argparse
import struct
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from executor._kernels import LaunchDims
from executor._sim_memory import DeviceMemory
from executor.ptx import Limits, LoadedModule, launch

NVCC = "/usr/local/bin/nvcc"
SOURCES = {
    "matrixmul": "0_Introduction/matrixMul/matrixMul.cu",
    "blackscholes": "5_Domain_Specific/BlackScholes/BlackScholes.cu",
    "scan": "2_Concepts_and_Techniques/scan/scan.cu",
    "streams": "0_Introduction/simpleStreams/simpleStreams.cu",
    "largeparam": "6_Performance/LargeKernelParameter/LargeKernelParameter.cu",
    "jacobi": "5_Domain_Specific/HSOpticalFlow/flowCUDA.cu",
}
LIMITS = Limits(seconds=600, instructions=10**12)

#: (kernel name, launch shape, parameter block, check of the results after k launches, floor, threads)
Case = tuple[str, LaunchDims, bytes, Callable[[int], None], Callable[[], object], int]


def _module(checkout: Path, kernel: str) -> LoadedModule:
    with tempfile.TemporaryDirectory() as tmp:
        ptx = Path(tmp) / "k.ptx"
        source = checkout / "Samples" / SOURCES[kernel]
        command = [NVCC, "-ptx", "-arch=compute_90", f"-I{checkout / 'Common'}", str(source), "-o", str(ptx)]
        subprocess.run(command, check=True, capture_output=True)
        return LoadedModule(ptx.read_text())


def _put(mem: DeviceMemory, values: npt.NDArray[np.generic]) -> int:
    ptr = mem.alloc(values.nbytes)
    mem.write(ptr, np.ascontiguousarray(values).view(np.uint8).reshape(-1))
    return ptr


def matrixmul(mem: DeviceMemory, scale: int) -> Case:
    wa, ha, wb = 320, 320 // scale // 32 * 32 or 32, 640
    rng = np.random.default_rng(0)
    a = rng.standard_normal((ha, wa)).astype(np.float32)
    b = rng.standard_normal((wa, wb)).astype(np.float32)
    pa, pb, pc = _put(mem, a), _put(mem, b), mem.alloc(4 * ha * wb)

    def check(k: int) -> None:
        got = mem.read(pc, 4 * ha * wb).view(np.float32).reshape(ha, wb)
        assert np.allclose(got, a @ b, rtol=1e-3, atol=1e-3)

    dims = LaunchDims((wb // 32, ha // 32, 1), (32, 32, 1))
    params = struct.pack("<QQQii", pc, pa, pb, wa, wb)
    return "_Z13MatrixMulCUDAILi32EEvPfS0_S0_ii", dims, params, check, lambda: a @ b, ha * wb


def blackscholes(mem: DeviceMemory, scale: int) -> Case:
    count = 4_000_000 // scale
    rng = np.random.default_rng(0)
    s = rng.uniform(5, 30, count).astype(np.float32)
    x = rng.uniform(1, 100, count).astype(np.float32)
    t = rng.uniform(0.25, 10, count).astype(np.float32)
    ps, px, pt = _put(mem, s), _put(mem, x), _put(mem, t)
    call, put = mem.alloc(4 * count), mem.alloc(4 * count)
    r, v = np.float32(0.02), np.float32(0.30)

    def cnd(d: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        k = np.float32(1) / (np.float32(1) + np.float32(0.2316419) * np.abs(d))
        a1, a2, a3, a4, a5 = 0.31938153, -0.356563782, 1.781477937, -1.821255978, 1.330274429
        poly = k * (a1 + k * (a2 + k * (a3 + k * (a4 + k * a5))))
        c = np.float32(0.3989422804) * np.exp(np.float32(-0.5) * d * d) * poly.astype(np.float32)
        out: npt.NDArray[np.float32] = np.where(d > 0, np.float32(1) - c, c).astype(np.float32)
        return out

    def floor() -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        sq = np.sqrt(t)
        d1 = (np.log(s / x) + (r + np.float32(0.5) * v * v) * t) / (v * sq)
        d2 = d1 - v * sq
        e = np.exp(-r * t)
        one = np.float32(1)
        return s * cnd(d1) - x * e * cnd(d2), x * e * (one - cnd(d2)) - s * (one - cnd(d1))

    def check(k: int) -> None:
        want_call, want_put = floor()
        assert np.allclose(mem.read(call, 4 * count).view(np.float32), want_call, rtol=1e-3, atol=1e-3)
        assert np.allclose(mem.read(put, 4 * count).view(np.float32), want_put, rtol=1e-3, atol=1e-3)

    dims = LaunchDims(((count // 2 + 127) // 128, 1, 1), (128, 1, 1))
    params = struct.pack("<QQQQQffi4x", call, put, ps, px, pt, r, v, count)
    return "_Z15BlackScholesGPUP6float2S0_S0_S0_S0_ffi", dims, params, check, floor, count // 2


def scan(mem: DeviceMemory, scale: int) -> Case:
    n = (13 * 1048576 // 2) // scale // 1024 * 1024
    src = np.random.default_rng(0).integers(0, 1 << 20, n).astype(np.uint32)
    ps, pd = _put(mem, src), mem.alloc(4 * n)
    rows = src.reshape(-1, 1024)

    def floor() -> npt.NDArray[np.uint32]:
        out: npt.NDArray[np.uint32] = np.cumsum(rows, axis=1, dtype=np.uint32) - rows
        return out

    def check(k: int) -> None:
        assert np.array_equal(mem.read(pd, 4 * n).view(np.uint32).reshape(-1, 1024), floor())

    dims = LaunchDims((n // 1024, 1, 1), (256, 1, 1))
    params = struct.pack("<QQi4x", pd, ps, 1024)
    return "_Z19scanExclusiveSharedP5uint4S0_j", dims, params, check, floor, n // 4


def streams(mem: DeviceMemory, scale: int) -> Case:
    n = (16 << 20) // scale
    a, c = _put(mem, np.zeros(n, np.int32)), _put(mem, np.full(1, 5, np.int32))
    host = np.zeros(n, np.int32)

    def check(k: int) -> None:  # each launch adds 5 x 5 to every element
        assert (mem.read(a, 4 * n).view(np.int32) == 25 * k).all()

    dims = LaunchDims((n // 512, 1, 1), (512, 1, 1))
    params = struct.pack("<QQi4x", a, c, 5)
    return "_Z10init_arrayPiS_i", dims, params, check, lambda: host + np.int32(25), n


def largeparam(mem: DeviceMemory, scale: int) -> Case:
    values = (np.arange(8000) & 0xFF).astype(np.int32)
    result = mem.alloc(4)

    def check(k: int) -> None:
        assert int(mem.read(result, 4).view(np.int32)[0]) == int(values.sum())

    params = values.tobytes() + struct.pack("<Q", result)
    dims = LaunchDims((1, 1, 1), (1, 1, 1))
    return "_Z16kernelLargeParam13param_large_tPi", dims, params, check, values.sum, 1


def jacobi(mem: DeviceMemory, scale: int) -> Case:
    w, h = 640 // scale, 480 // scale
    s = -(-w // 32) * 32  # the sample's row stride (iAlignUp)
    rng = np.random.default_rng(0)
    du0, dv0, ix, iy, iz = (rng.standard_normal((h, s), dtype=np.float32) for _ in range(5))
    pdu0, pdv0, pix, piy, piz = (_put(mem, a) for a in (du0, dv0, ix, iy, iz))
    pdu1, pdv1 = mem.alloc(4 * h * s), mem.alloc(4 * h * s)
    alpha = np.float32(0.2)

    def floor() -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        def avg(d: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
            p = np.pad(d[:, :w], 1, mode="edge")  # the sample clamps at the borders
            total = p[1:-1, :-2] + p[1:-1, 2:] + p[2:, 1:-1] + p[:-2, 1:-1]
            out: npt.NDArray[np.float32] = total * np.float32(0.25)
            return out

        su, sv = avg(du0), avg(dv0)
        x, y, z = ix[:, :w], iy[:, :w], iz[:, :w]
        frac = (x * su + y * sv + z) / (x * x + y * y + alpha)
        return (su - x * frac).astype(np.float32, copy=False), (sv - y * frac).astype(np.float32, copy=False)

    def check(k: int) -> None:
        want_u, want_v = floor()
        got_u = mem.read(pdu1, 4 * h * s).view(np.float32).reshape(h, s)[:, :w]
        got_v = mem.read(pdv1, 4 * h * s).view(np.float32).reshape(h, s)[:, :w]
        assert np.allclose(got_u, want_u, rtol=1e-4, atol=1e-4)
        assert np.allclose(got_v, want_v, rtol=1e-4, atol=1e-4)

    dims = LaunchDims((-(-w // 32), -(-h // 6), 1), (32, 6, 1))
    params = struct.pack("<QQQQQiiifQQ", pdu0, pdv0, pix, piy, piz, w, h, s, alpha, pdu1, pdv1)
    return "_Z15JacobiIterationILi32ELi6EEvPKfS1_S1_S1_S1_iiifPfS2_", dims, params, check, floor, w * h


CASES: dict[str, Callable[[DeviceMemory, int], Case]] = {
    "matrixmul": matrixmul,
    "blackscholes": blackscholes,
    "scan": scan,
    "streams": streams,
    "largeparam": largeparam,
    "jacobi": jacobi,
}


def run(checkout: Path, kernel: str, scale: int, repeat: int) -> str:
    module = _module(checkout, kernel)
    mem = DeviceMemory(1 << 34)
    name, dims, params, check, floor, threads = CASES[kernel](mem, scale)
    wall = cpu = best_floor = float("inf")
    for k in range(1, repeat + 1):
        c0, t0 = time.thread_time(), time.perf_counter()
        launch(module, name, mem, dims, params, {}, LIMITS)
        wall, cpu = min(wall, time.perf_counter() - t0), min(cpu, time.thread_time() - c0)
        check(k)
        f0 = time.perf_counter()
        floor()
        best_floor = min(best_floor, time.perf_counter() - f0)
    return (
        f"{kernel:12s} {name}: {threads} threads\n"
        f"  engine      {wall * 1e3:9.1f} ms wall, {cpu * 1e3:9.1f} ms CPU "
        f"({cpu / threads * 1e9:.1f} ns a thread)\n"
        f"  NumPy floor {best_floor * 1e3:9.1f} ms"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path)
    parser.add_argument("--kernel", choices=("all", *CASES), default="all")
    parser.add_argument("--scale", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args(argv)
    for kernel in CASES if args.kernel == "all" else (args.kernel,):
        print(run(args.checkout, kernel, args.scale, args.repeat), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
