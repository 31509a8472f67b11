"""cudaMemset2D, and cudaMemcpy2D with a pinned host side, through the C shim, beside the contiguous call of
the same bytes in one run.

``python -m benchmarks.pitched_pinned [--rounds N] [--shape WIDTHxHEIGHT ...] [--shim DIR]`` builds the
shim (into a temporary directory; ``--shim``: one built already, e.g. from an older commit) and
``benchmarks/pitched_pinned.c`` against it, starts a mediator on ``sim`` and runs the program as a guest
application for each shape: a 2D memset of rows of WIDTH bytes in cudaMallocPitch memory, and the rows
between it and cudaMallocHost rows 64 bytes apart both ways, each beside its floor (cudaMemset /
cudaMemcpy of the same bytes, contiguous). Prints the best of ``--rounds`` calls and its ratio to the
floor.
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
_ROW = re.compile(r"ROW case=(\w+) ns=([\d.]+)")
SHAPES = ("2048x512", "8192x1024")
CASES = (("memset2d", "floor_memset"), ("pinned_htod", "floor_htod"), ("pinned_dtoh", "floor_dtoh"))


def run(rounds: int, shapes: Sequence[str], workdir: Path, shim: Path | None) -> dict[str, dict[str, float]]:
    shim, program = build(workdir, shim, PROGRAM)
    (workdir / "mediator").mkdir()
    found: dict[str, dict[str, float]] = {}
    with running_mediator(workdir / "mediator", backend="sim", vms=1) as mediator:
        conf = workdir / "guest.conf"
        conf.write_text(f"socket = {mediator.vm_socket(1)}\nlog = stderr\n")
        for shape in shapes:
            width, height = shape.split("x")
            out = run_guest([str(program), str(rounds), width, height], shim, conf, workdir)
            if "SELFTEST PASS" not in out:
                raise RuntimeError(f"pitched_pinned {shape} did not pass:\n{out}")
            found[shape] = {m[1]: float(m[2]) for m in _ROW.finditer(out)}
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.pitched_pinned",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rounds", type=int, default=5, help="calls per case, the best kept (default 5)")
    parser.add_argument(
        "--shape", action="append", help=f"WIDTHxHEIGHT in bytes (default {' '.join(SHAPES)})"
    )
    parser.add_argument("--shim", type=Path, help="a guest/shim build directory (default: build one)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="vgpu-pitched-pinned-") as tmp:
        found = run(args.rounds, args.shape or SHAPES, Path(tmp), args.shim)
    for shape, rows in found.items():
        for case, floor_case in CASES:
            value, floor = rows[case], rows[floor_case]
            print(
                f"{shape:>10} {case:12} {value / 1e6:8.2f} ms  floor {floor / 1e6:8.2f} ms  "
                f"{value / floor:6.2f}x the floor"
            )
    print(f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; sim; best of {args.rounds})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
