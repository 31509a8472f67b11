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

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .pitched_copies import measure

PROGRAM = Path(__file__).with_suffix(".c")
CASES = (("memset2d", "floor_memset"), ("pinned_htod", "floor_htod"), ("pinned_dtoh", "floor_dtoh"))


def main(argv: Sequence[str] | None = None) -> int:
    rounds, found = measure(argv, PROGRAM, __doc__, "calls")
    for shape, rows in found.items():
        for case, floor_case in CASES:
            value, floor = rows[case], rows[floor_case]
            print(
                f"{shape:>10} {case:12} {value / 1e6:8.2f} ms  floor {floor / 1e6:8.2f} ms  "
                f"{value / floor:6.2f}x the floor"
            )
    print(f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; sim; best of {rounds})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
