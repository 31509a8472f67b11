"""``vgpu-bench``: start a mediator and guests, measure, and print each figure beside its floor.

    vgpu-bench                 # the full run (a few minutes), a table
    vgpu-bench --quick         # seconds: what CI's smoke test runs
    vgpu-bench --json out.json --plots docs/img

Floors come from the same run on the same machine (these machines are noisy): a raw ring ping-pong
between two processes and an eventfd ping-pong for round trips, raw ring produce/consume for
asynchronous streams, an in-process memcpy for copies (and, with ``--backend cuda``, a native pinned
copy to and from the GPU beside it).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from guest import GuestClient
from mediator._control_client import request
from mediator._launcher import running_mediator
from protocol import ACCELERATED

from . import _two_copy
from ._floors import (
    eventfd_pingpong,
    fairness_floor,
    memcpy_bandwidth,
    native_copy_bandwidth,
    ring_pingpong,
    ring_throughput,
    staged_copy_bandwidth,
)
from ._mediator import async_throughput, bandwidth, jain, multi_vm, sleeping_round_trips, sync_round_trips
from .pinned import run as pinned_run

KIB, MIB = 1 << 10, 1 << 20
FULL = {"rtt": 20_000, "async": 200_000, "sizes": [4 * KIB << (2 * i) for i in range(9)],  # 4 KiB..256 MiB
        "vms": [1, 2, 4, 8], "seconds": 3.0}
QUICK = {"rtt": 1_000, "async": 5_000, "sizes": [4 * KIB, 64 * KIB, MIB, 4 * MIB], "vms": [1, 2],
         "seconds": 0.5}


def percentiles(samples: list[int]) -> dict[str, float]:
    ordered = sorted(samples)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000

    return {"p50_us": pick(0.5), "p99_us": pick(0.99), "p999_us": pick(0.999),
            "mean_us": statistics.fmean(ordered) / 1000}


PARTS = ("rtt", "async", "copies", "multi", "pinned")


def pin_plan(pin: bool) -> tuple[set[int], set[int]] | None:
    """With ``pin``: (the guest's CPU, the others) for the single-VM parts, or None."""
    cpus = sorted(os.sched_getaffinity(0))
    if not pin or len(cpus) < 2:
        return None
    return {cpus[0]}, set(cpus[1:])


def run(plan: dict[str, Any], workdir: Path, parts: Sequence[str] = PARTS,
        backend: str = "sim", pin: bool = False, pace: bool = True) -> dict[str, Any]:
    for name in ("polling", "sleeping", "multi"):
        (workdir / name).mkdir()
    results: dict[str, Any] = {"plan": plan, "parts": list(parts), "loadavg_start": os.getloadavg(),
                               "cpus": os.cpu_count(), "accelerated": ACCELERATED, "backend": backend,
                               "pinned": pin, "paced": pace}
    everywhere = os.sched_getaffinity(0)
    pins = pin_plan(pin)
    host_cpus = pins[1] if pins else None
    if pins:  # the guest (this process) on one CPU, the mediator or the floor's host on the others
        os.sched_setaffinity(0, pins[0])
    n = plan["rtt"]
    if "rtt" in parts:
        results["floor_ring_pingpong"] = percentiles(ring_pingpong(n, host_cpus))
        results["floor_eventfd_pingpong"] = percentiles(eventfd_pingpong(n, host_cpus))
    if "async" in parts:
        results["floor_ring_calls_per_s"] = ring_throughput(plan["async"])

    if {"rtt", "async", "copies"} & set(parts):
        with running_mediator(workdir / "polling", backend=backend, vms=1,
                              extra="poll_us = 1000000") as mediator:
            if host_cpus:
                os.sched_setaffinity(mediator.proc.pid, host_cpus)  # its workers inherit it
            with GuestClient.connect(mediator.vm_socket(1)) as gpu:
                gpu.init()
                if "rtt" in parts:
                    results["rtt_polling"] = percentiles(sync_round_trips(gpu, n))
                    request(mediator.control, {"cmd": "trace", "vm": 1, "enable": True, "limit": 0})
                    results["rtt_polling_traced"] = percentiles(sync_round_trips(gpu, n))
                    request(mediator.control, {"cmd": "trace", "vm": 1, "enable": False, "limit": 0})
                if "async" in parts:
                    results["async_calls_per_s"] = async_throughput(gpu, plan["async"])
                if "copies" in parts:
                    copies = bandwidth(gpu, plan["sizes"])
                    chunks = {size: gpu._copy_chunk(size) for size in copies}
        if "copies" in parts:
            # two floors: one copy in one process, and the two copies of any staged design on two cores
            results["bandwidth"] = [{"bytes": size, "htod_Bps": up, "dtoh_Bps": down,
                                     "memcpy_Bps": memcpy_bandwidth(size, 20),
                                     "staged_Bps": staged_copy_bandwidth(size, chunks[size], host_cpus)}
                                    for size, (up, down) in copies.items()]
            if _two_copy.available():  # whether the memory gives two copies at once what it gives one
                # (both in C; from 256 KiB, where the two processes' start barrier is small beside a copy)
                for b in [b for b in results["bandwidth"] if b["bytes"] >= 256 << 10]:
                    b["one_memcpy_c_Bps"] = b["bytes"] / _two_copy.one_copy_ns(b["bytes"]) * 1e9
                    b["two_memcpy_Bps"] = b["bytes"] / _two_copy.concurrent_ns(b["bytes"], host_cpus) * 1e9
            if backend == "cuda":  # the GPU's own floor: a pinned copy with no mediator in the way
                native = native_copy_bandwidth(list(copies))
                for b in results["bandwidth"]:
                    b["native_htod_Bps"], b["native_dtoh_Bps"] = native[b["bytes"]]

    if "rtt" in parts:
        # a worker that never polls (mediator/_polling.py: a window of 0 stays 0)
        with running_mediator(workdir / "sleeping", backend=backend, vms=1, extra="poll_us = 0") as mediator:
            if host_cpus:
                os.sched_setaffinity(mediator.proc.pid, host_cpus)
            with GuestClient.connect(mediator.vm_socket(1)) as gpu:
                gpu.init()
                results["rtt_sleeping"] = percentiles(sleeping_round_trips(gpu, min(n, 5000)))
            results["worker_sleeps"] = request(mediator.control, {"cmd": "status"})["vms"][0]["sleeps"]
    os.sched_setaffinity(0, everywhere)  # many VMs: the scheduler places every process

    if "multi" in parts:
        results["multi_vm"] = []
        # pace: a worker far ahead of its peers is capped once busy VMs outnumber CPUs (mediator/_pacing.py)
        with running_mediator(workdir / "multi", backend=backend, vms=max(plan["vms"]),
                              extra="" if pace else "pace_workers = false") as mediator:
            for vms in plan["vms"]:
                results["multi_vm"].append(multi_vm(mediator, vms, plan["seconds"], flood=False))
            for vms in [v for v in plan["vms"] if v > 1]:
                results["multi_vm"].append(multi_vm(mediator, vms, plan["seconds"], flood=True))
        # the scheduler's own fairness for the same shape, nothing of ours in it: the machine's part
        results["fairness_floor"] = []
        for vms in [v for v in plan["vms"] if v > 1]:
            rates = fairness_floor(vms - 1, plan["seconds"])
            results["fairness_floor"].append({"pairs": vms - 1, "per_pair_per_s": rates, "jain": jain(rates)})
    if "pinned" in parts:  # cudaMallocHost memory: the region's pinned area, one copy (benchmarks/pinned.py)
        results["pinned_copies"] = pinned_run(plan["sizes"], workdir / "pinned", backend)["pinned"]
    results["loadavg_end"] = os.getloadavg()
    return results


def table(r: dict[str, Any]) -> str:
    rows = [("figure", "value", "floor", "vs floor")]
    if "rtt_polling" in r:
        ring, evfd = r["floor_ring_pingpong"], r["floor_eventfd_pingpong"]
        for key, floor, label in (("rtt_polling", ring, "sync nop, worker polling"),
                                  ("rtt_polling_traced", ring, "… with tracing on"),
                                  ("rtt_sleeping", evfd, "sync nop, worker asleep")):
            for q in ("p50_us", "p99_us", "p999_us"):
                rows.append((f"{label} {q[:-3]}", f"{r[key][q]:.1f} µs", f"{floor[q]:.1f} µs",
                             f"+{r[key][q] - floor[q]:.1f} µs"))
        rows.append(("tracing on costs (p50)",
                     f"{r['rtt_polling_traced']['p50_us'] - r['rtt_polling']['p50_us']:+.1f} µs", "", ""))
    if "async_calls_per_s" in r:
        rows.append(("async memsets (calls/s, one VM)", f"{r['async_calls_per_s']:,.0f}",
                     f"{r['floor_ring_calls_per_s']:,.0f}",
                     f"{r['async_calls_per_s'] / r['floor_ring_calls_per_s']:.0%}"))
    for b in r.get("bandwidth", []):
        size = f"{b['bytes'] // MIB} MiB" if b["bytes"] >= MIB else f"{b['bytes'] // KIB} KiB"
        if "two_memcpy_Bps" in b:
            two, one = b["two_memcpy_Bps"], b["one_memcpy_c_Bps"]
            rows.append((f"{size}: two memcpys at once vs one, in C (MiB/s each)", f"{two / MIB:,.0f}",
                         f"{one / MIB:,.0f}", f"{two / one:.0%}"))
        for way in ("htod", "dtoh"):
            rate, floor = b[way + "_Bps"], b["memcpy_Bps"]
            rows.append((f"{way} {size} (MiB/s)", f"{rate / MIB:,.0f}", f"{floor / MIB:,.0f}",
                         f"{rate / floor:.0%}"))
            if "staged_Bps" in b:
                staged = b["staged_Bps"]
                rows.append((f"{way} {size} vs staged floor", f"{rate / MIB:,.0f}", f"{staged / MIB:,.0f}",
                             f"{rate / staged:.0%}"))
            if f"native_{way}_Bps" in b:
                native = b[f"native_{way}_Bps"]
                rows.append((f"{way} {size} vs native pinned copy", f"{rate / MIB:,.0f}",
                             f"{native / MIB:,.0f}", f"{rate / native:.0%}"))
    for b in r.get("pinned_copies", []):
        size = f"{b['bytes'] // MIB} MiB" if b["bytes"] >= MIB else f"{b['bytes'] // KIB} KiB"
        for key, label in (("htod", "sync"), ("dtoh", "sync"), ("htod_batch", "bandwidthTest-style"),
                           ("dtoh_batch", "bandwidthTest-style")):
            rate, floor = b[key + "_Bps"], b["memcpy_Bps"]
            rows.append((f"pinned {key.split('_')[0]} {size} {label} (MiB/s)", f"{rate / MIB:,.0f}",
                         f"{floor / MIB:,.0f}", f"{rate / floor:.0%}"))
    for m in r.get("multi_vm", []):
        label = f"{m['vms']} VMs{' (VM 1 floods)' if m['flood'] else ''}"
        rates = m["per_vm_calls_per_s"][1:] if m["flood"] else m["per_vm_calls_per_s"]
        rows.append((f"{label}: aggregate calls/s", f"{m['aggregate_calls_per_s']:,.0f}", "",
                     f"{min(rates):,.0f}-{max(rates):,.0f} per VM" if len(rates) > 1 else ""))
        floors = [f["jain"] for f in r.get("fairness_floor", []) if m["flood"] and f["pairs"] == m["vms"] - 1]
        floor = f"{floors[0]:.3f}" if floors else "1.000"
        rows.append((f"{label}: Jain's index", f"{m['jain']:.3f}", floor,
                     "floor: eventfd pairs beside 2 busy processes" if floors else ""))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.append(f"(load average {r['loadavg_start'][0]:.2f} at start, {r['loadavg_end'][0]:.2f} at end; "
                 f"{r['cpus']} CPUs; C rings {'on' if r.get('accelerated') else 'off'}; "
                 f"backend {r.get('backend', 'sim')}{'; single-VM parts pinned' if r.get('pinned') else ''}"
                 f"{'; workers not paced' if 'multi_vm' in r and not r.get('paced', True) else ''})")
    return "\n".join(lines)


def plots(r: dict[str, Any], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    made: list[Path] = []
    if "bandwidth" in r:
        made.append(_plot_bandwidth(plt, r, out))
    if "rtt_polling" in r:
        made.append(_plot_rtt(plt, r, out))
    if "multi_vm" in r:
        made.append(_plot_multi(plt, r, out))
    return made


def _plot_bandwidth(plt: Any, r: dict[str, Any], out: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4))
    sizes = [b["bytes"] for b in r["bandwidth"]]
    for key, label in (("htod_Bps", "HtoD through the mediator"), ("dtoh_Bps", "DtoH through the mediator"),
                       ("memcpy_Bps", "memcpy floor"), ("native_htod_Bps", "native pinned HtoD"),
                       ("native_dtoh_Bps", "native pinned DtoH")):
        if key in r["bandwidth"][0]:
            ax.plot(sizes, [b[key] / MIB for b in r["bandwidth"]], marker="o", label=label)
    ax.set(xscale="log", yscale="log", xlabel="copy size (bytes)", ylabel="MiB/s", title="Copy bandwidth")
    ax.legend()
    fig.tight_layout()
    path = out / "bench-bandwidth.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _plot_rtt(plt: Any, r: dict[str, Any], out: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4))
    keys = [("floor_ring_pingpong", "ring ping-pong floor"), ("rtt_polling", "nop, worker polling"),
            ("rtt_polling_traced", "nop, polling, traced"), ("floor_eventfd_pingpong", "eventfd floor"),
            ("rtt_sleeping", "nop, worker asleep")]
    for i, (key, _) in enumerate(keys):
        ax.bar([i - 0.2, i, i + 0.2], [r[key]["p50_us"], r[key]["p99_us"], r[key]["p999_us"]], width=0.2)
    ax.set_xticks(range(len(keys)), [label for _, label in keys], rotation=20, ha="right")
    ax.set(ylabel="µs (p50, p99, p99.9)", yscale="log", title="Synchronous round trip")
    fig.tight_layout()
    path = out / "bench-rtt.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _plot_multi(plt: Any, r: dict[str, Any], out: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4))
    runs = r["multi_vm"]
    labels = [f"{m['vms']}{'F' if m['flood'] else ''}" for m in runs]
    ax.bar(labels, [m["aggregate_calls_per_s"] for m in runs])
    for i, m in enumerate(runs):
        ax.annotate(f"J={m['jain']:.2f}", (i, m["aggregate_calls_per_s"]), ha="center", va="bottom")
    ax.set(xlabel="VMs (F: VM 1 floods)", ylabel="aggregate calls/s", title="Many VMs at once")
    fig.tight_layout()
    path = out / "bench-multi-vm.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vgpu-bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a few seconds: small counts and sizes")
    parser.add_argument("--json", type=Path, help="write every figure as JSON here ('-': stdout)")
    parser.add_argument("--plots", type=Path, help="write PNG plots into this directory")
    parser.add_argument("--backend", default="sim", choices=["sim", "cuda"],
                        help="the mediator's executor (cuda: a physical GPU; see docs/benchmarks.md)")
    parser.add_argument("--pin", action="store_true",
                        help="single-VM parts: the guest on one CPU, the mediator (and each floor's "
                             "other side) on the rest, as a host pins vCPUs and workers")
    parser.add_argument("--only", action="append", choices=PARTS,
                        help="run only this part (repeatable): rtt, async, copies, multi, pinned")
    parser.add_argument("--no-pace", action="store_true",
                        help="many VMs: never cap a worker that is ahead of its peers (pace_workers = false)")
    opts = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="vgpu-bench-") as tmp:
        results = run(QUICK if opts.quick else FULL, Path(tmp), opts.only or PARTS, opts.backend, opts.pin,
                      not opts.no_pace)
    if opts.json is not None and str(opts.json) == "-":
        json.dump(results, sys.stdout, indent=2)
        print()
    else:
        print(table(results))
        if opts.json is not None:
            opts.json.write_text(json.dumps(results, indent=2))
    if opts.plots is not None:
        for path in plots(results, opts.plots):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
