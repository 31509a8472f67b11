"""TMA copies and packed-half/vector atomics on the PTX engine, each beside a NumPy floor measured in the
same run (kernels: nvcc 13's PTX of ``tests/kernels/ptx_tma.cu`` and ``ptx_atomic_vec.cu``).

    python -m benchmarks.ptx_tma_atomics                    # every case, best of 3
    python -m benchmarks.ptx_tma_atomics --blocks 512 --threads 262144 --repeat 5

* ``tma``: ``--blocks`` blocks of 128 threads, each thread 0 loading a 16 x 32 float box (2 KiB) with
  ``cp.async.bulk.tensor.2d`` completing an mbarrier, every thread waiting on it and copying the box
  out (``tma_load_2d``); the floor is NumPy copying the same slice once per block.
* ``half2``: ``--threads`` threads ``atomicAdd`` a ``__half2`` into 256 slots (``atom.add.noftz.f16x2``,
  old values stored); the floor is ``np.add.at`` on the float16 halves (sequential, no old values).
* ``float4``: the same with ``float4`` (``atom.global.add.v4.f32``); the floor ``np.add.at`` on float32.

Results are checked against the floors'.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from executor._kernels import LaunchDims
from executor._sim_memory import DeviceMemory
from executor.ptx import LoadedModule, launch
from executor.ptx._tensor_map import TensorMap, encode

from .ptx_engine import _best, _put

KERNELS = Path(__file__).resolve().parents[1] / "tests" / "kernels"
SLOTS = 256


def _pack(*values: int | bytes) -> bytes:
    """Parameters as the corpus kernels take them: a 128-byte map first, then 8-byte pointers and ints."""
    out = b""
    for v in values:
        if isinstance(v, bytes):
            out += v
        elif v >= 1 << 32:
            out += bytes(-len(out) % 8) + v.to_bytes(8, "little")
        else:
            out += bytes(-len(out) % 4) + (v & 0xFFFFFFFF).to_bytes(4, "little")
    return out


def _line(name: str, work: str, seconds: float, floor: float) -> str:
    ratio = seconds / floor
    times = f"engine {seconds * 1e3:8.2f} ms   floor {floor * 1e3:7.3f} ms"
    return f"{name:10} {work:28} {times}   ratio {ratio:6.0f}x"


def tma(blocks: int, repeat: int) -> str:
    module = LoadedModule((KERNELS / "ptx_tma.compute_90.ptx").read_text())
    mem = DeviceMemory(1 << 32)
    values = np.random.default_rng(0).standard_normal((256, 256)).astype(np.float32)
    address = _put(mem, values)
    out = mem.alloc(16 * 32 * 4)
    m = TensorMap(7, 2, address, (256, 256), (1024,), (32, 16), (1, 1))
    params = _pack(encode(m), out, 16 * 32 * 4, 40, 100)
    dims = LaunchDims((blocks, 1, 1), (128, 1, 1), 0)
    seconds = _best(repeat, lambda: launch(module, "tma_load_2d", mem, dims, params, {}))
    box = np.empty((16, 32), dtype=np.float32)

    def floor() -> None:
        for _ in range(blocks):
            np.copyto(box, values[100:116, 40:72])

    floor_s = _best(repeat, floor)
    got = mem.read(out, box.nbytes).view(np.float32).reshape(16, 32)
    assert np.array_equal(got, values[100:116, 40:72])
    return _line("tma", f"{blocks} boxes of 2 KiB", seconds, floor_s)


def _atomics(kernel: str, threads: int, repeat: int, lanes: int, dtype: type[np.generic]) -> str:
    module = LoadedModule((KERNELS / "ptx_atomic_vec.compute_90.ptx").read_text())
    mem = DeviceMemory(1 << 32)
    values = np.random.default_rng(1).uniform(-1, 1, (threads, lanes)).astype(dtype)
    slots = mem.alloc(SLOTS * lanes * values.itemsize)
    old = mem.alloc(threads * lanes * values.itemsize)
    src = _put(mem, values)
    params = _pack(slots, src, threads, SLOTS, old)
    dims = LaunchDims(((threads + 255) // 256, 1, 1), (256, 1, 1), 0)
    zero = np.zeros(SLOTS * lanes * values.itemsize, dtype=np.uint8)

    def run() -> None:
        mem.write(slots, zero)
        launch(module, kernel, mem, dims, params, {})

    seconds = _best(repeat, run)
    target = np.zeros((SLOTS, lanes), dtype=dtype)
    index = np.arange(threads) % SLOTS

    def floor() -> None:
        target[...] = 0
        np.add.at(target, index, values)

    floor_s = _best(repeat, floor)
    got = mem.read(slots, target.nbytes).view(dtype).reshape(SLOTS, lanes)
    assert np.array_equal(got, target), "the engine's sums differ from np.add.at's"
    return _line(kernel, f"{threads} threads on {SLOTS} slots", seconds, floor_s)


def main(argv: list[str] | None = None) -> int:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("--case", choices=("tma", "half2", "float4"), action="append")
    parser.add_argument("--blocks", type=int, default=256)
    parser.add_argument("--threads", type=int, default=65536)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    cases: dict[str, Callable[[], str]] = {
        "tma": lambda: tma(args.blocks, args.repeat),
        "half2": lambda: _atomics("half2_add", args.threads, args.repeat, 2, np.float16),
        "float4": lambda: _atomics("float4_add", args.threads, args.repeat, 4, np.float32),
    }
    started = time.perf_counter()
    for name in args.case or list(cases):
        print(cases[name](), flush=True)
    print(f"({time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
