"""What the worker's adaptive polling window gives and costs (mediator/_polling.py), alternated in one run.

    python -m benchmarks.poll_window                       # gaps 20 µs-3 ms, 3 rounds of 2 s each
    python -m benchmarks.poll_window --gap-us 300 --rounds 5 --json poll.json

A guest (the Python test guest, in this process) makes one synchronous call (``nop``) after each gap
of CPU work of its own (a busy loop, as an application's preparation between a GPU step's calls), for
``--seconds`` per gap. Two mediators run side by side: one with a fixed window (``poll_max_us`` =
``poll_us`` = 50) and one with the default (``poll_us`` 50, ``poll_max_us`` 200); every gap is measured
on one and then at once on the other, the order swapped each round, so that a pair shares its moment.
A third mediator lets the window grow to 500 µs.

Per gap and mediator it prints the call's round trip (p50 and p90 over every round's calls: the
wake-up a sleeping worker adds shows here) and what the worker spent: its CPU seconds per second of
the measurement (polling shows here), and its sleeps per call.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from time import perf_counter_ns
from typing import Any

from guest import GuestClient
from mediator._launcher import MediatorProcess, running_mediator

from ._mediator import _cpu_now

MODES = {"fixed 50 us": "poll_max_us = 50", "up to 200 us (default)": "", "up to 500 us": "poll_max_us = 500"}
GAPS_US = (20, 100, 150, 250, 400, 1000, 3000)


def one(mediator: MediatorProcess, gap_us: int, seconds: float) -> dict[str, Any]:
    """Calls after gaps of ``gap_us`` for ``seconds``: every round trip (ns), the worker's CPU seconds
    per second and its sleeps (voluntary context switches) per call."""
    trips: list[int] = []
    with GuestClient.connect(str(mediator.vm_socket(1))) as gpu:
        gpu.init()
        for _ in range(200):  # the worker serving this channel, its window settled for this gap
            gpu.nop()
        _, cpu0, switches0 = _cpu_now(mediator.proc.pid)
        started = perf_counter_ns()
        end = started + int(seconds * 1e9)
        gap_ns = gap_us * 1000
        while True:
            now = perf_counter_ns()
            if now >= end:
                break
            until = now + gap_ns
            while perf_counter_ns() < until:  # the application's own work
                pass
            t0 = perf_counter_ns()
            gpu.nop()
            trips.append(perf_counter_ns() - t0)
        wall = (perf_counter_ns() - started) / 1e9
        _, cpu1, switches1 = _cpu_now(mediator.proc.pid)
    return {"gap_us": gap_us, "trips_ns": trips, "worker_cpu_per_s": (cpu1 - cpu0) / wall,
            "sleeps_per_call": (switches1 - switches0) / max(len(trips), 1)}


def measure(gaps: Sequence[int], rounds: int, seconds: float) -> dict[str, dict[int, list[dict[str, Any]]]]:
    results: dict[str, dict[int, list[dict[str, Any]]]] = {mode: {gap: [] for gap in gaps} for mode in MODES}
    with tempfile.TemporaryDirectory(prefix="vgpu-poll-window-") as tmp, ExitStack() as stack:
        mediators = {}
        for n, (mode, extra) in enumerate(MODES.items()):
            workdir = Path(tmp) / f"m{n}"
            workdir.mkdir()
            mediators[mode] = stack.enter_context(running_mediator(workdir, extra=extra))
        for round_ in range(rounds):
            for gap in gaps:
                order = list(MODES) if round_ % 2 == 0 else list(MODES)[::-1]
                for mode in order:
                    run = one(mediators[mode], gap, seconds)
                    results[mode][gap].append(run)
                    p50 = statistics.median(run["trips_ns"]) / 1e3
                    print(f"  round {round_ + 1}, gap {gap} us, {mode}: p50 {p50:.1f} us, worker CPU "
                          f"{run['worker_cpu_per_s']:.0%}", file=sys.stderr, flush=True)
    return results


def report(results: dict[str, dict[int, list[dict[str, Any]]]]) -> str:
    lines = [f"{'gap':>8}  {'window':<22} {'calls':>7} {'p50 us':>7} {'p90 us':>7} {'worker CPU':>11} "
             f"{'sleeps/call':>12}"]
    for gap in next(iter(results.values())):
        for mode, by_gap in results.items():
            runs = by_gap[gap]
            trips = sorted(t for r in runs for t in r["trips_ns"])
            cpu = statistics.median(r["worker_cpu_per_s"] for r in runs)
            sleeps = statistics.median(r["sleeps_per_call"] for r in runs)
            lines.append(f"{gap:>5} us  {mode:<22} {len(trips):>7} {trips[len(trips) // 2] / 1e3:>7.1f} "
                         f"{trips[len(trips) * 9 // 10] / 1e3:>7.1f} {cpu:>11.0%} {sleeps:>12.2f}")
    lines.append(f"(round trips over every round; worker CPU and sleeps: medians of the rounds; load average "
                 f"{os.getloadavg()[0]:.2f} at the end; {os.cpu_count()} CPUs; sim)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.poll_window", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gap-us", type=int, action="append", help="gap between calls (repeatable)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0, help="each measurement's length")
    parser.add_argument("--json", type=Path, help="write the raw figures here")
    opts = parser.parse_args(argv)
    print(f"load average {os.getloadavg()[0]:.2f} at the start", file=sys.stderr)
    results = measure(opts.gap_us or GAPS_US, opts.rounds, opts.seconds)
    if opts.json:
        opts.json.write_text(json.dumps(results, indent=1))
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
