"""Profile the hot path in one process (``benchmarks._loopback``): time per call, or a profile.

    python -m benchmarks.profile nop                    # µs per synchronous nop, both sides
    python -m benchmarks.profile memset --worker        # µs per async memset, the worker's share
    python -m benchmarks.profile htod --size 1048576    # µs per 1 MiB host-to-device copy
    python -m benchmarks.profile nop --pyinstrument     # where the time goes (pyinstrument)
    python -m benchmarks.profile nop --icount           # instructions per call (callgrind)

``--calls`` calls are measured after a warm-up of 500; ``memset`` posts them ASYNC and lets the
server drain every 256 (``--worker`` times only the drains). ``--icount`` runs the same workload under
valgrind's callgrind at two call counts and divides the difference in instructions by the difference
in calls: start-up cancels out, and the figure does not move with the machine's load.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

from protocol import CALLS_BY_NAME, SubmitFlags

from ._loopback import Loopback
from ._mediator import written

_ASYNC = int(SubmitFlags.ASYNC)


def workload(loop: Loopback, what: str, size: int, worker_only: bool) -> Callable[[int], float]:
    """A function that runs ``n`` calls and returns the seconds they (or the worker's share) took."""
    gpu, server = loop.guest, loop.server
    gpu.init()
    ptr = gpu.mem_alloc(max(size, 256))
    if what == "nop":
        def nops(n: int) -> float:
            started = time.perf_counter()
            for _ in range(n):
                gpu.nop()
            return time.perf_counter() - started
        return nops
    if what == "memset":
        spec = CALLS_BY_NAME["memset_d8"]
        args = gpu.args("memset_d8", dst=ptr, value=7, count=256, stream=0)

        def memsets(n: int) -> float:
            spent = 0.0
            started = time.perf_counter()
            for i in range(n):
                gpu.submit(spec, args, flags=_ASYNC)
                if i % 256 == 255 or i == n - 1:
                    drained = time.perf_counter()
                    while server.drain():
                        pass
                    spent += time.perf_counter() - drained
            total = time.perf_counter() - started
            return spent if worker_only else total
        return memsets
    data, back = written(size, 1), written(size, 0)  # not calloc's zero pages (_mediator.written)

    def copies(n: int) -> float:
        started = time.perf_counter()
        for _ in range(n):
            if what == "htod":
                gpu.memcpy_htod(ptr, data)
            else:
                gpu.memcpy_dtoh_into(ptr, back)
        return time.perf_counter() - started
    return copies


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["nop", "memset", "htod", "dtoh"])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=4096, help="copy size in bytes (htod, dtoh)")
    parser.add_argument("--worker", action="store_true", help="memset: time only the worker's drains")
    parser.add_argument("--pyinstrument", action="store_true", help="print a pyinstrument profile")
    parser.add_argument("--icount", action="store_true", help="instructions per call, under callgrind")
    opts = parser.parse_args(argv)
    if opts.icount:
        return icount(opts.what, opts.size, opts.worker)
    with Loopback() as loop:
        run = workload(loop, opts.what, opts.size, opts.worker)
        run(min(500, opts.calls))
        if opts.pyinstrument:
            from pyinstrument import Profiler

            with Profiler(interval=0.0001) as profiler:
                run(opts.calls)
            profiler.print()
            return 0
        seconds = run(opts.calls)
    rate = f", {opts.size * opts.calls / seconds / 2**20:,.0f} MiB/s" if opts.what in ("htod", "dtoh") else ""
    print(f"{opts.what}: {seconds / opts.calls * 1e6:.2f} µs per call{rate}")
    return 0


def icount(what: str, size: int, worker: bool, low: int = 1000, high: int = 3000) -> int:
    """Instructions per call: callgrind at ``low`` and ``high`` calls, the difference divided."""
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    counts = []
    for calls in (low, high):
        command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, "-m",
                   "benchmarks.profile", what, "--calls", str(calls), "--size", str(size)]
        run = subprocess.run(command + (["--worker"] if worker else []), capture_output=True, text=True,
                             check=True)
        found = re.search(r"Collected : (\d+)", run.stderr)
        if found is None:
            raise RuntimeError(f"no instruction count in callgrind's output:\n{run.stderr[-2000:]}")
        counts.append(int(found.group(1)))
    print(f"{what}: {(counts[1] - counts[0]) / (high - low):,.0f} instructions per call")
    return 0


if __name__ == "__main__":
    sys.exit(main())
