#!/usr/bin/env python3
"""How a real daemon answers a guest that holds its completion ring full (docs/reliability.md).

    .venv/bin/python scripts/backpressure_bench.py [--holds 0,0.01,0.1,0.5,3] [--rounds 3] [--kick]

For each hold: the guest queues a ring and 8 more synchronous nops without reading a completion,
waits until the ring is full, holds it full that long, then reads the ring's completions and times
how long the 8 held-back calls take to be answered (the worker looks for room after 1 ms, backing
off to ``max_sleep_ms``). ``--kick`` has the guest kick the doorbell after reading when the host says
it sleeps. Prints, per hold, the worker's CPU time while held and that recovery time; then the VM's
restarts and ``cq_full_waits``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from guest import GuestClient
from mediator._control_client import request
from mediator._launcher import running_mediator
from tests.reliability._support import cpu_seconds, queue_nops, take

HELD_BACK = 8


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--holds", default="0,0.01,0.1,0.5,3",
                        help="seconds to hold the ring full, comma-separated")
    parser.add_argument("--rounds", type=int, default=3, help="times each hold is measured")
    parser.add_argument("--kick", action="store_true", help="the guest kicks after reading, when asked to")
    opts = parser.parse_args()
    holds = [float(h) for h in opts.holds.split(",")] * opts.rounds
    with tempfile.TemporaryDirectory() as work, \
            running_mediator(Path(work), backend="sim", vms=1, extra="worker_timeout_s = 2.0") as mediator:

        def status() -> dict[str, object]:
            row: dict[str, object] = request(mediator.control, {"cmd": "status"})["vms"][0]
            return row

        with GuestClient.connect(mediator.vm_socket(1)) as gpu:
            gpu.init()
            pid = int(status()["worker_pid"])  # type: ignore[call-overload]
            entries = gpu.region.layout.cq_entries
            for hold in holds:
                seqs = queue_nops(gpu, entries + HELD_BACK)
                while gpu.cq.pending() < entries:
                    gpu.cq.spin(10_000_000, 0)
                held_at, cpu_at = time.monotonic(), cpu_seconds(pid)
                while time.monotonic() - held_at < hold:
                    time.sleep(0.005)
                held, cpu = time.monotonic() - held_at, cpu_seconds(pid) - cpu_at
                answered = take(gpu, entries)
                if opts.kick:
                    gpu._kick()
                room_at = time.monotonic()
                answered += take(gpu, HELD_BACK)
                recovery = time.monotonic() - room_at
                assert [c.seq for c in answered] == seqs and not any(c.status for c in answered)
                print(f"held {held:6.3f} s  worker CPU {cpu:5.2f} s  recovery {recovery * 1000:7.2f} ms",
                      flush=True)
            row = status()
            print(f"restarts {row['restarts']}  cq_full_waits {row['cq_full_waits']}  epoch {row['epoch']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
