"""TMA im2col loads on the PTX engine beside a NumPy floor in the same run (kernel: nvcc 13's PTX of
``tests/kernels/ptx_tma_im2col.cu``).

    python -m benchmarks.ptx_tma_im2col                  # 64 blocks, best of 3
    python -m benchmarks.ptx_tma_im2col --blocks 256 --repeat 5

``--blocks`` blocks of 64 threads, thread 0 of each loading 128 pixels of 32 f32 channels (16 KiB) from
a 2 x 32 x 32 x 32 NHWC tensor with padding 1 (``im2col_load_4d``), every thread waiting on the mbarrier
and copying the tile out; once with the start on the traversal's lattice (unit strides) and once off it
(a W stride of 3 from W 0, walked pixel by pixel). The floor is NumPy gathering the same tile from the
padded tensor once per block. Times are CPU seconds of this process (``time.process_time``); the
engine's tile is checked against the floor's.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from executor._kernels import LaunchDims
from executor._sim_memory import DeviceMemory
from executor.ptx import LoadedModule, launch
from executor.ptx._tensor_map import IM2COL, TensorMap, encode

from .ptx_engine import _put
from .ptx_tma_atomics import _pack

KERNELS = Path(__file__).resolve().parents[1] / "tests" / "kernels"
PIXELS, CHANNELS = 128, 32


def _cpu_best(repeat: int, fn: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def _walk(steps: tuple[int, int], start: tuple[int, int]) -> npt.NDArray[np.intp]:
    """The (n, h, w) of each pixel: the box [-1, 30] in H and W, W fastest, back to -1 past 30."""
    (sw, sh), (w, h) = steps, start
    rows, n = [], 0
    for _ in range(PIXELS):
        rows.append((n, h, w))
        w += sw
        if w > 30:
            w, h = -1, h + sh
            if h > 30:
                h, n = -1, n + 1
    return np.array(rows, dtype=np.intp)


def case(label: str, steps: tuple[int, int], start: tuple[int, int], blocks: int, repeat: int) -> str:
    module = LoadedModule((KERNELS / "ptx_tma_im2col.compute_90.ptx").read_text())
    mem = DeviceMemory(1 << 32)
    values = np.random.default_rng(0).standard_normal((2, 32, 32, CHANNELS)).astype(np.float32)
    address = _put(mem, values)
    nbytes = PIXELS * CHANNELS * 4
    out = mem.alloc(nbytes)
    dims, strides = tuple(reversed(values.shape)), tuple(values.strides[::-1][1:])
    m = TensorMap(
        7,
        4,
        address,
        dims,
        strides,
        (),
        (1, *steps, 1),
        mode=IM2COL,
        lower=(-1, -1),
        upper=(-1, -1),
        channels=CHANNELS,
        pixels=PIXELS,
    )
    params = _pack(encode(m), out, nbytes, 0, *start, 0, 1, 1)  # c, w, h, n, the (1, 1) tap
    launch_dims = LaunchDims((blocks, 1, 1), (64, 1, 1), 0)
    seconds = _cpu_best(repeat, lambda: launch(module, "im2col_load_4d", mem, launch_dims, params, {}))
    padded = np.zeros((2, 34, 34, CHANNELS), dtype=np.float32)
    padded[:, 1:33, 1:33] = values
    where = _walk(steps, start) + np.array([0, 2, 2])  # the tap (1, 1), plus the padding of 1
    tile = np.empty((PIXELS, CHANNELS), dtype=np.float32)

    def floor() -> None:
        for _ in range(blocks):
            np.copyto(tile, padded[where[:, 0], where[:, 1], where[:, 2]])

    floor_s = _cpu_best(repeat, floor)
    got = mem.read(out, nbytes).view(np.float32).reshape(PIXELS, CHANNELS)
    assert np.array_equal(got, tile), "the engine's tile differs from the floor's"
    per_block = f"{seconds / blocks * 1e3:6.3f} ms a block"
    return (
        f"{label:14} {blocks} loads of 16 KiB: engine {seconds * 1e3:8.1f} ms ({per_block})   "
        f"floor {floor_s * 1e3:6.2f} ms   ratio {seconds / floor_s:5.0f}x"
    )


def main(argv: list[str] | None = None) -> int:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("--blocks", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    print(case("on the lattice", (1, 1), (-1, -1), args.blocks, args.repeat))
    print(case("walked", (3, 1), (0, -1), args.blocks, args.repeat))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
