"""NVIDIA's ``scan`` sample's kernels on the PTX engine at the sample's own sizes, and what they make of
the whole sample.

    python -m benchmarks.ptx_scan CHECKOUT                 # best of 3 launches of each
    python -m benchmarks.ptx_scan CHECKOUT --repeat 1 --all  # every one of the 17 array lengths

CHECKOUT is a checkout of github.com/NVIDIA/cuda-samples (``c94ff366`` for docs/benchmarks.md);
``Samples/2_Concepts_and_Techniques/scan/scan.cu`` is compiled by nvcc 13 to compute_90 PTX and its three
kernels launched in process on the simulator's memory over the sample's 6.8 M random uints, each result
checked against NumPy's exclusive scan. Printed: the launching thread's CPU (``time.thread_time``) of
the best launch of ``scanExclusiveShared`` at the short lengths 4 and 1,024 (or all nine), and of the
large-array trio (``scanExclusiveShared``, ``scanExclusiveShared2``, ``uniformUpdate``) at 2,048 (or
all eight), and the engine CPU the sample's 100 launches per length would take (lengths not run are
taken as the mean of the two measured, which brackets them).
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

NVCC = "/usr/local/cuda/bin/nvcc"
SOURCE = "Samples/2_Concepts_and_Techniques/scan/scan.cu"
LIMITS = Limits(seconds=600, instructions=10**12)
N = 13 * 1048576 // 2  # the sample's element count
BLOCK = 256  # its THREADBLOCK_SIZE
SHORT = [1 << k for k in range(2, 11)]
LARGE = [1 << k for k in range(11, 19)]


class Scan:
    """The sample's buffers on a simulator's memory and its kernels' launches."""

    def __init__(self, checkout: Path) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            ptx = Path(tmp) / "scan.ptx"
            command = [NVCC, "-ptx", "-arch=compute_90", f"-I{checkout / 'Common'}", str(checkout / SOURCE)]
            subprocess.run([*command, "-o", str(ptx)], check=True, capture_output=True)
            self.module = LoadedModule(ptx.read_text())
        self.mem = DeviceMemory(1 << 34)
        self.src = np.random.default_rng(2009).integers(0, 1 << 31, N).astype(np.uint32)
        self.ps, self.pd = self.mem.alloc(4 * N), self.mem.alloc(4 * N)
        self.mem.write(self.ps, self.src.view(np.uint8))
        self.pb = self.mem.alloc(4 * (64 * 1048576 // (4 * BLOCK)))

    def _launch(self, kernel: str, blocks: int, params: bytes) -> float:
        c0 = time.thread_time()
        launch(self.module, kernel, self.mem, LaunchDims((blocks, 1, 1), (BLOCK, 1, 1)), params, {}, LIMITS)
        return time.thread_time() - c0

    def short(self, length: int) -> list[float]:
        params = struct.pack("<QQI4x", self.pd, self.ps, length)
        return [self._launch("_Z19scanExclusiveSharedP5uint4S0_j", N // (4 * BLOCK), params)]

    def large(self, length: int) -> list[float]:
        blocks = N // (4 * BLOCK)
        return [
            self._launch(
                "_Z19scanExclusiveSharedP5uint4S0_j",
                blocks,
                struct.pack("<QQI4x", self.pd, self.ps, 4 * BLOCK),
            ),
            self._launch(
                "_Z20scanExclusiveShared2PjS_S_jj",
                -(-blocks // BLOCK),
                struct.pack("<QQQII", self.pb, self.pd, self.ps, blocks, length // (4 * BLOCK)),
            ),
            self._launch("_Z13uniformUpdateP5uint4Pj", blocks, struct.pack("<QQ", self.pd, self.pb)),
        ]

    def check(self, length: int) -> None:
        rows = self.src.reshape(-1, length).astype(np.uint64)
        want: npt.NDArray[np.uint32] = ((np.cumsum(rows, axis=1) - rows) & 0xFFFFFFFF).astype(np.uint32)
        assert np.array_equal(self.mem.read(self.pd, 4 * N).view(np.uint32), want.reshape(-1)), length


def _best(run: Callable[[int], list[float]], length: int, repeat: int) -> list[float]:
    return [min(column) for column in zip(*(run(length) for _ in range(repeat)), strict=True)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--all", action="store_true", help="every array length, not the ends of each range")
    args = parser.parse_args(argv)
    scan = Scan(args.checkout)
    scan.short(4)  # the kernel's preparation, outside the figures
    total = 0.0
    for name, lengths, run in (("short", SHORT, scan.short), ("large", LARGE, scan.large)):
        measured = lengths if args.all else [lengths[0], lengths[-1]]
        seconds = []
        for length in measured:
            best = _best(run, length, args.repeat)
            scan.check(length)
            seconds.append(sum(best))
            print(
                f"{name} {length:7d}: " + " + ".join(f"{t * 1e3:6.1f}" for t in best) + " ms of CPU",
                flush=True,
            )
        total += 100 * (sum(seconds) if args.all else len(lengths) * sum(seconds) / len(seconds))
    print(f"the sample's 3,300 launches: about {total:.0f} s of the engine's CPU")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
