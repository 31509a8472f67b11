"""cudaMemcpy2D of pitched rows through the C shim, beside cudaMemcpy of the same bytes in one run.

``python -m benchmarks.pitched_copies [--rounds N] [--shape WIDTHxHEIGHT ...] [--shim DIR]`` builds the
shim (into a temporary directory; ``--shim``: one built already, e.g. from an older commit) and
``benchmarks/pitched_copies.c`` against it, starts a mediator on ``sim`` and runs the program as a guest
application for each shape: rows of WIDTH bytes between cudaMallocPitch memory and host rows 64 bytes
apart (host to device, device to host), and between two pitches on the device, each beside the floor,
a contiguous cudaMemcpy of the same bytes. Prints the best of ``--rounds`` copies and its ratio to
the floor.
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
SHAPES = ("2048x512", "8192x1024")  # a 512 x 512 float image (1 MiB), 1024 rows of 2048 floats (8 MiB)


def run(
    rounds: int, shapes: Sequence[str], workdir: Path, shim: Path | None, source: Path = PROGRAM
) -> dict[str, dict[str, float]]:
    """Each shape's figures, ``{case: best ns}``, of the C program ``source`` (its argv: rounds, width,
    height; its output: ``ROW case=… ns=…`` lines and ``SELFTEST PASS``) as a guest of a mediator on sim."""
    shim, program = build(workdir, shim, source)
    (workdir / "mediator").mkdir()
    found: dict[str, dict[str, float]] = {}
    with running_mediator(workdir / "mediator", backend="sim", vms=1) as mediator:
        conf = workdir / "guest.conf"
        conf.write_text(f"socket = {mediator.vm_socket(1)}\nlog = stderr\n")
        for shape in shapes:
            width, height = shape.split("x")
            out = run_guest([str(program), str(rounds), width, height], shim, conf, workdir)
            if "SELFTEST PASS" not in out:
                raise RuntimeError(f"{source.stem} {shape} did not pass:\n{out}")
            found[shape] = {m[1]: float(m[2]) for m in _ROW.finditer(out)}
    return found


def measure(
    argv: Sequence[str] | None, source: Path, description: str | None, calls: str
) -> tuple[int, dict[str, dict[str, float]]]:
    """The command line the pitched benchmarks share (``--rounds``, ``--shape``, ``--shim``; ``calls``
    names what a round times), and :func:`run` of ``source`` by it in a temporary directory: the rounds
    and the figures."""
    name = source.stem
    parser = argparse.ArgumentParser(
        prog=f"python -m benchmarks.{name}",
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rounds", type=int, default=5, help=f"{calls} per case, the best kept (default 5)")
    parser.add_argument(
        "--shape", action="append", help=f"WIDTHxHEIGHT in bytes (default {' '.join(SHAPES)})"
    )
    parser.add_argument("--shim", type=Path, help="a guest/shim build directory (default: build one)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix=f"vgpu-{name.replace('_', '-')}-") as tmp:
        return args.rounds, run(args.rounds, args.shape or SHAPES, Path(tmp), args.shim, source)


def main(argv: Sequence[str] | None = None) -> int:
    rounds, found = measure(argv, PROGRAM, __doc__, "copies")
    for shape, rows in found.items():
        for way in ("htod", "dtoh", "dtod"):
            floor, pitched = rows[f"floor_{way}"], rows[f"pitched_{way}"]
            print(
                f"{shape:>10} {way}  pitched {pitched / 1e6:8.2f} ms  floor {floor / 1e6:8.2f} ms  "
                f"{pitched / floor:6.2f}x the floor"
            )
    print(f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; sim; best of {rounds})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
