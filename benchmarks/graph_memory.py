"""Graph memory nodes' cost per launch through the C shim, beside a graph without them in the same run.

``python -m benchmarks.graph_memory [--rounds N] [--launches N] [--shim DIR]`` builds the shim (into a
temporary directory) and ``benchmarks/graph_memory.c`` against it, starts a mediator on ``sim`` and runs
the program as a guest application: three captured graphs doing the same work (a 4 KiB memset and a
copy), on a ``cudaMalloc`` buffer (the floor), on a ``cudaMallocAsync`` block the graph also frees
(alloc and free nodes), and on one it does not free, freed by ``cudaFreeAsync`` after every launch (CUDA's
rule before the next launch). Prints the best round's time per launch (launches posted back to back, one
synchronize) and its ratio to the floor.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from mediator._launcher import running_mediator

from .pinned_shim import build, run_guest

PROGRAM = Path(__file__).with_suffix(".c")
_ROW = re.compile(r"ROW graph=(\w+) launch_ns=([\d.]+)")


def run(rounds: int, launches: int, workdir: Path, shim: Path | None) -> dict[str, float]:
    shim, program = build(workdir, shim, PROGRAM)
    (workdir / "mediator").mkdir()
    with running_mediator(workdir / "mediator", backend="sim", vms=1) as mediator:
        conf = workdir / "guest.conf"
        conf.write_text(f"socket = {mediator.vm_socket(1)}\nlog = stderr\n")
        out = run_guest([str(program), str(rounds), str(launches)], shim, conf, workdir)
    if "SELFTEST PASS" not in out:
        raise RuntimeError(f"graph_memory did not pass:\n{out}")
    return {m[1]: float(m[2]) for m in _ROW.finditer(out)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.graph_memory", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="rounds per graph, the best kept (default 5)")
    parser.add_argument("--launches", type=int, default=200, help="launches per round (default 200)")
    parser.add_argument("--shim", type=Path, help="a guest/shim build directory (default: build one)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="vgpu-graph-memory-") as tmp:
        rows = run(args.rounds, args.launches, Path(tmp), args.shim)
    floor = rows["plain"]
    for name, per in rows.items():
        print(f"{name:>8} {per / 1000:8.1f} us per launch {per / floor:6.2f}x the plain graph")
    print(f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; sim; best of {args.rounds} "
          f"rounds of {args.launches} launches)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
