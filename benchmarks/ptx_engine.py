"""Thread-instructions per second of the PTX engine on a wide elementwise kernel, beside a NumPy floor.

    python -m benchmarks.ptx_engine                     # vector_add over 1 Mi elements, 256 per block
    python -m benchmarks.ptx_engine --elements 4194304 --block 128 --repeat 5

The kernel is ``vector_add`` of ``tests/kernels/test_kernels.ptx`` (nvcc 13): every thread runs the
same straight path, so thread-instructions are that path's length (a one-thread launch counts it)
times the threads. The floor is the same arithmetic as NumPy does it with no engine at all: the two
loads, the add and the store (``np.add(a, b, out=c)`` on arrays already in memory), per element.
Best of ``--repeat`` runs each.
"""

from __future__ import annotations

import argparse
import struct
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from executor._kernels import LaunchDims
from executor._sim_memory import DeviceMemory
from executor.ptx import LoadedModule, launch

KERNEL = "_Z10vector_addPKfS0_Pfi"
PTX = Path(__file__).resolve().parents[1] / "tests" / "kernels" / "test_kernels.ptx"


def _best(repeat: int, fn: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--elements", type=int, default=1 << 20)
    parser.add_argument("--block", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    n, block = args.elements, args.block
    module = LoadedModule(PTX.read_text())
    mem = DeviceMemory(1 << 32)
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(n, dtype=np.float32), rng.standard_normal(n, dtype=np.float32)
    pa, pb, pc = mem.alloc(4 * n), mem.alloc(4 * n), mem.alloc(4 * n)
    mem.write(pa, a.view(np.uint8))
    mem.write(pb, b.view(np.uint8))
    params = struct.pack("<QQQi4x", pa, pb, pc, n)
    path = launch(module, KERNEL, mem, LaunchDims((1, 1, 1), (1, 1, 1)), params, {})
    grid = (n + block - 1) // block
    seconds = _best(
        args.repeat, lambda: launch(module, KERNEL, mem, LaunchDims((grid, 1, 1), (block, 1, 1)), params, {})
    )
    assert np.array_equal(mem.read(pc, 4 * n).view(np.float32), a + b)
    out = np.empty_like(a)
    floor = _best(args.repeat, lambda: np.add(a, b, out=out))
    thread_instructions = path * n
    print(f"vector_add, {n} elements, blocks of {block}: {path} instructions per thread")
    rate = thread_instructions / seconds / 1e6
    print(f"  engine      {seconds * 1e3:9.1f} ms  {rate:9.1f} M thread-instructions/s"
          f"  {n / seconds / 1e6:8.2f} M elements/s")
    print(f"  NumPy floor {floor * 1e3:9.1f} ms  {n / floor / 1e6:8.2f} M elements/s"
          f"  (the engine takes {seconds / floor:.0f}x the floor's time)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
