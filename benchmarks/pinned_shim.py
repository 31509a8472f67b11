"""Pinned copies end to end through the C shim (#19), beside a C memcpy floor measured in the same run.

``python -m benchmarks.pinned_shim [--quick] [--rounds N] [--max-batch N] [--json PATH] [--bandwidth-test]
[--registered] [--apart] [--poll-us US] [--poll-max-us US]``
builds the shim (``guest/shim``, into a temporary directory) and ``benchmarks/pinned_shim.c`` against it,
starts a mediator on ``sim`` and runs the program as a guest application runs: ``cudaMallocHost``
memory, batches of ``cudaMemcpyAsync`` on one stream and one ``cudaStreamSynchronize`` (bandwidthTest's
pinned mode, which posts 100 at a time; here 64 MiB worth, at most ``--max-batch``, by default 200, which
the 256-entry submission ring holds), both directions, 4 KiB–64 MiB. Per size it prints the bandwidth
and its share of the floor (as many back-to-back ``memcpy`` of the size in the same process, in the same
round), and per copy what the guest's calls alone took (``submit``: the shim, the transport, the ring)
and what the host took between two events recorded around the batch (``host``). The best of
``--rounds`` rounds each.

Two more figures per size, as shares of the floor: ``steady``, the same batch issued again as soon as the
first is synchronized (the worker still polling, as bandwidthTest's back-to-back copies find it; the first
batch of a round finds it asleep after the floor, unless its polling window has grown past the floor's
time: ``--poll-max-us``, mediator/_polling.py), and ``handoff``, the machine's floor for a server that
sleeps: a thread of the program asleep in ``poll()`` on an eventfd, rung as the worker's doorbell is, does
the batch's ``memcpy`` between buffers of its own while the caller yields — one wake-up and no rings.

``--apart`` pins the mediator and its worker to the first CPU and the program to the second (the handoff
floor's thread to the first), as a host pins a VM's vCPUs apart from its workers; by default the
scheduler places them.

``--registered`` also runs the program on its own ``cudaHostRegister``'d memory (moved into the region's
pinned area, #19) on the same mediator, and prints its table after the first.

``--bandwidth-test`` also runs NVIDIA's ``bandwidthTest`` (checked in: tests/shim/samples/bin) in its pinned
range mode, 64 KiB–1 MiB, on the same mediator, and prints its table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mediator._launcher import running_mediator

REPO = Path(__file__).resolve().parents[1]
PROGRAM = Path(__file__).with_suffix(".c")
BANDWIDTH_TEST = REPO / "tests" / "shim" / "samples" / "bin" / "bandwidthTest"
BANDWIDTH_ARGS = ("--memory=pinned", "--mode=range", "--start=65536", "--end=1048576", "--increment=196608",
                  "--htod", "--dtoh")
KIB, MIB = 1 << 10, 1 << 20
SIZES = [4 * KIB << (2 * i) for i in range(8)]  # 4 KiB .. 64 MiB
QUICK_SIZES = [4 * KIB, 64 * KIB, 256 * KIB, MIB]
_ROW = re.compile(r"ROW bytes=(\d+) way=(\w+) batch=(\d+) total=([\d.]+) submit=([\d.]+) events=([\d.]+) "
                  r"floor=([\d.]+) steady=([\d.]+) handoff=([\d.]+)")


def build(workdir: Path, shim: Path | None, source: Path = PROGRAM) -> tuple[Path, Path]:
    """The shim's libraries (built into ``workdir`` unless ``shim`` names a build) and the program
    (``source``, a C program on libcudart; the other benchmarks' guests too)."""
    if shim is None:
        shim = workdir / "shim"
        subprocess.run(["make", "-s", "-C", str(REPO / "guest" / "shim"), f"BUILD={shim}"], check=True,
                       capture_output=True, timeout=600)
    shim = shim.resolve()  # the guest runs in workdir
    program = workdir / source.stem
    subprocess.run(["cc", "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-pthread", "-o", str(program),
                    str(source), f"-L{shim}", "-lcudart", "-lcuda"], check=True, capture_output=True,
                   timeout=120)
    return shim, program


def run_guest(argv: list[str], shim: Path, conf: Path, cwd: Path, cpus: tuple[int, int] | None = None) -> str:
    """Run one guest program on the shim (on CPU ``cpus[1]``, its handoff thread on ``cpus[0]``, when
    given); a handshake that timed out on a busy host (the VM's worker starting: its first peer waits for
    it) is retried."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("VGPU_")}
    env.update(LD_LIBRARY_PATH=str(shim), VGPU_GUEST_CONF=str(conf), LD_BIND_NOW="1")
    if cpus is not None:
        argv = ["taskset", "-c", str(cpus[1]), *argv]
        env["PINNED_SHIM_HANDOFF_CPU"] = str(cpus[0])
    for _ in range(5):
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=cwd, timeout=900,
                              check=False)
        if "handshake" not in proc.stderr:
            break
    if proc.returncode:
        raise RuntimeError(f"{Path(argv[0]).name} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def parse(output: str) -> list[dict[str, Any]]:
    rows: dict[int, dict[str, Any]] = {}
    for m in _ROW.finditer(output):
        size, way = int(m[1]), m[2]
        row = rows.setdefault(size, {"bytes": size, "batch": int(m[3])})
        total, submit, events, floor, steady, handoff = (float(m[i]) for i in range(4, 10))
        row[f"{way}_total_ns"], row[f"{way}_submit_ns"], row[f"{way}_host_ns"] = total, submit, events
        row[f"{way}_steady_ns"] = steady
        row["memcpy_ns"] = min(row.get("memcpy_ns", floor), floor)
        row["handoff_ns"] = min(row.get("handoff_ns", handoff), handoff)
    if "SELFTEST PASS" not in output:
        raise RuntimeError(f"pinned_shim did not pass:\n{output}")
    return list(rows.values())


def table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'size':>9} {'floor GB/s':>10} {'htod GB/s':>15} {'dtoh GB/s':>15} {'steady h/d':>11} "
             f"{'handoff':>8} {'submit ns':>13} {'host ns':>17} {'floor ns':>10}"]
    for row in rows:
        size = row["bytes"]
        label = f"{size // MIB} MiB" if size >= MIB else f"{size // KIB} KiB"
        floor = row["memcpy_ns"]
        cells = [f"{size / row[f'{way}_total_ns']:7.1f} {floor / row[f'{way}_total_ns']:5.0%}"
                 for way in ("htod", "dtoh")]
        steady = "/".join(f"{floor / row[f'{way}_steady_ns']:.0%}" for way in ("htod", "dtoh"))
        handoff = f"{floor / row['handoff_ns']:.0%}"
        submit = f"{row['htod_submit_ns']:,.0f}/{row['dtoh_submit_ns']:,.0f}"
        host = f"{row['htod_host_ns']:,.0f}/{row['dtoh_host_ns']:,.0f}"
        lines.append(f"{label:>9} {size / floor:10.1f} {cells[0]:>15} {cells[1]:>15} {steady:>11} "
                     f"{handoff:>8} {submit:>13} {host:>17} {floor:10,.0f}")
    return "\n".join(lines)


def run(sizes: list[int], rounds: int, workdir: Path, shim: Path | None = None, max_batch: int = 200,
        bandwidth_test: bool = False, registered: bool = False, apart: bool = False,
        poll_us: int | None = None, poll_max_us: int | None = None) -> dict[str, Any]:
    shim, program = build(workdir, shim)
    pinned = 1 << (max(sizes) - 1).bit_length()
    extra = f'pinned_size = "{max(2 * pinned, 4 * MIB) // MIB}MiB"'
    if poll_us is not None:
        extra += f"\npoll_us = {poll_us}"
    if poll_max_us is not None:
        extra += f"\npoll_max_us = {poll_max_us}"
    (workdir / "mediator").mkdir()
    cpus = tuple(sorted(os.sched_getaffinity(0))[:2]) if apart else None
    if cpus is not None and len(cpus) < 2:
        raise RuntimeError("--apart needs two CPUs")
    mine = os.sched_getaffinity(0)
    with contextlib.ExitStack() as stack:
        if cpus is not None:
            os.sched_setaffinity(0, {cpus[0]})  # the mediator, and the worker it spawns, inherit it
        try:
            mediator = stack.enter_context(running_mediator(workdir / "mediator", backend="sim", vms=1,
                                                            extra=extra))
        finally:
            os.sched_setaffinity(0, mine)
        conf = workdir / "guest.conf"
        conf.write_text(f"socket = {mediator.vm_socket(1)}\nlog = stderr\n")
        argv = [str(program), str(rounds), str(max_batch), *map(str, sizes)]
        pair = (cpus[0], cpus[1]) if cpus is not None else None
        rows = parse(run_guest(argv, shim, conf, workdir, pair))
        result: dict[str, Any] = {"loadavg": os.getloadavg(), "cpus": os.cpu_count(), "max_batch": max_batch,
                                  "apart": apart, "rows": rows}
        if registered:
            own = [argv[0], "--registered", *argv[1:]]
            result["registered_rows"] = parse(run_guest(own, shim, conf, workdir, pair))
        if bandwidth_test:
            out = run_guest([str(BANDWIDTH_TEST), *BANDWIDTH_ARGS], shim, conf, workdir)
            result["bandwidthTest"] = [line for line in out.splitlines() if line.strip()]
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pinned_shim", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="4 KiB, 64 KiB, 256 KiB and 1 MiB only")
    parser.add_argument("--size", type=int, action="append", metavar="BYTES",
                        help="this size only (repeat for more; default: 4 KiB-64 MiB, or --quick's)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per size; the best is kept (default 5)")
    parser.add_argument("--max-batch", type=int, default=200,
                        help="copies per batch at most (default 200; past 256 the guest waits for ring room)")
    parser.add_argument("--shim", type=Path, help="a guest/shim build directory (default: build one)")
    parser.add_argument("--bandwidth-test", action="store_true", help="also NVIDIA's bandwidthTest, pinned")
    parser.add_argument("--registered", action="store_true", help="also on cudaHostRegister'd memory")
    parser.add_argument("--apart", action="store_true",
                        help="the mediator on the first CPU, the program on the second (default: unpinned)")
    parser.add_argument("--poll-us", type=int, metavar="US",
                        help="the worker's poll_us (default: the mediator's, 50)")
    parser.add_argument("--poll-max-us", type=int, metavar="US",
                        help="the worker's poll_max_us (default: the mediator's, 200; 50: a fixed window)")
    parser.add_argument("--json", type=Path, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="vgpu-pinned-shim-") as tmp:
        sizes = args.size or (QUICK_SIZES if args.quick else SIZES)
        result = run(sizes, args.rounds, Path(tmp), args.shim, args.max_batch, args.bandwidth_test,
                     args.registered, args.apart, args.poll_us,
                     args.poll_max_us)
    print(table(result["rows"]))
    if "registered_rows" in result:
        print("cudaHostRegister'd memory:")
        print(table(result["registered_rows"]))
    print(f"(load average {result['loadavg'][0]:.1f} on {result['cpus']} CPUs; sim; GB/s = 1e9 B/s of "
          "submit-to-synchronized, and its share of the same run's memcpy floor; per copy: the guest's calls "
          "(htod/dtoh), the host's time between events; steady: the batch again at once, the worker awake; "
          "handoff: a thread of the guest woken from poll() does the memcpy, the machine's one-wake-up "
          "floor)")
    for line in result.get("bandwidthTest", []):
        if line.lstrip()[:1].isdigit() or "Bandwidth" in line or "Result" in line:
            print(line)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
