"""The soak: N guest processes for M minutes against a real daemon, and what it cost the host.

``python -m soak --guests 4 --processes 3 --minutes 10`` (or ``scripts/soak``) starts ``vgpu-mediator
run`` on the sim backend with one VM per guest, gives every VM a quota, spawns each guest's processes
(``soak._guest``, several per VM at once, each on a channel of its own, sharing the VM's quota: random
valid and invalid traffic, every answer predicted, sessions that end cleanly, abandoned or broken),
and samples the daemon and every worker process once a second: resident memory (VmRSS), the daemon's
open file descriptors, the daemon's per-VM counters. At the end it reports calls served, errors by
kind, RSS of the daemon (start, peak, end) and of the workers, leaked allocations and handles, and
surprises; it exits non-zero if anything leaked, surprised, was corrupted or crashed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mediator._control_client import ControlError, request
from mediator._launcher import MediatorProcess, running_mediator

from ._guest import GuestSpec

MIB = 1 << 20


def rss_kib(pid: int) -> int | None:
    """Resident set size of ``pid`` in KiB, or None if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return None


def open_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except FileNotFoundError:
        return -1


def fd_kinds(pid: int) -> Counter[str]:
    """The daemon's open descriptors by what they are (socket, memfd:…, pipe, a path)."""
    kinds: Counter[str] = Counter()
    for fd in Path(f"/proc/{pid}/fd").glob("*"):
        try:
            target = os.readlink(fd)
        except FileNotFoundError:
            continue
        kinds[target.split("[")[0].rstrip(":") if "[" in target else target.split(" (")[0]] += 1
    return kinds


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except FileNotFoundError:
            continue
    return found


@dataclass
class Series:
    """First, peak and last value of one quantity over the run."""

    first: int | None = None
    peak: int = 0
    last: int = 0
    samples: int = 0

    def add(self, value: int) -> None:
        if self.first is None:
            self.first = value
        self.peak = max(self.peak, value)
        self.last = value
        self.samples += 1

    def as_dict(self) -> dict[str, int | None]:
        return {"start": self.first, "peak": self.peak, "end": self.last}


@dataclass
class Watch:
    daemon_rss: Series = field(default_factory=Series)
    daemon_fds: Series = field(default_factory=Series)
    workers: dict[int, tuple[str, Series]] = field(default_factory=dict)  # pid -> (vm, RSS)

    def sample(self, mediator: MediatorProcess) -> dict[str, Any] | None:
        pid = mediator.proc.pid
        rss = rss_kib(pid)
        if rss is not None:
            self.daemon_rss.add(rss)
            self.daemon_fds.add(open_fds(pid))
        try:
            status = request(mediator.control, {"cmd": "status"})
        except ControlError:
            return None
        for vm in status["vms"]:
            worker = vm.get("worker_pid")
            if worker:
                worker_rss = rss_kib(int(worker))
                if worker_rss is not None:
                    self.workers.setdefault(int(worker), (vm["name"], Series()))[1].add(worker_rss)
        return status


def _guest_report(workdir: Path, vm: int, process: int) -> dict[str, Any]:
    path = workdir / f"guest{vm}-{process}.json"
    if not path.exists():
        return {"vm": vm, "process": process, "crash": "the guest process wrote no report", "calls": 0}
    report: dict[str, Any] = json.loads(path.read_text())
    return report


def run(guests: int, minutes: float, quota: int, seed: int, workdir: Path,
        processes: int = 1) -> dict[str, Any]:
    watch = Watch()
    with running_mediator(workdir, backend="sim", vms=guests, extra="restart_limit = 100") as mediator:
        time.sleep(0.5)  # let the daemon finish starting before its "start" figures are taken
        watch.sample(mediator)
        fds_at_start = fd_kinds(mediator.proc.pid)
        for vm in range(1, guests + 1):
            request(mediator.control, {"cmd": "set_quota", "vm": vm, "bytes": quota})
        procs = []
        for vm in range(1, guests + 1):
            for process in range(1, processes + 1):
                spec = GuestSpec(vm=vm, socket=str(mediator.vm_socket(vm)), control=str(mediator.control),
                                 seconds=minutes * 60, seed=seed + 1000 * vm + process,
                                 out=str(workdir / f"guest{vm}-{process}.json"), process=process,
                                 processes=processes, quota=quota)
                argv = [sys.executable, "-m", "soak._guest", json.dumps(spec.__dict__)]
                procs.append(subprocess.Popen(argv, cwd=Path(__file__).resolve().parent.parent))
        started = time.monotonic()
        while any(p.poll() is None for p in procs):
            watch.sample(mediator)
            time.sleep(1.0)
        elapsed = time.monotonic() - started
        time.sleep(1.0)
        final = watch.sample(mediator) or {"vms": []}
        leftover_workers = children(mediator.proc.pid)
        fds_at_end = fd_kinds(mediator.proc.pid)
        daemon_alive = mediator.proc.poll() is None
    results = [_guest_report(workdir, vm, process) for vm in range(1, guests + 1)
               for process in range(1, processes + 1)]
    statuses: Counter[str] = Counter()
    sessions: Counter[str] = Counter()
    checks: Counter[str] = Counter()
    for result in results:
        statuses.update(result.get("statuses", {}))
        sessions.update(result.get("sessions", {}))
        checks.update(result.get("checks", {}))
    vms = final["vms"]
    kept = ("calls", "errors", "sessions", "state", "memory_used", "live_handles", "channels_opened",
            "channels_expired", "channels_broken")
    per_vm = {vm["name"]: {key: vm.get(key) for key in kept} for vm in vms}
    worker_rss = {str(pid): {"vm": vm, **series.as_dict()} for pid, (vm, series) in watch.workers.items()}
    leaks = [leak | {"vm": r["vm"]} for r in results for leak in r.get("leaks", [])]
    leaks += [{"vm": name, "when": "after the run", "memory_used": row["memory_used"],
               "live_handles": row["live_handles"]}
              for name, row in per_vm.items() if row["memory_used"] or row["live_handles"]]
    return {
        "guests": guests, "processes_per_guest": processes, "minutes": round(elapsed / 60, 2), "quota": quota,
        "seed": seed,
        "calls_served": sum(vm["calls"] for vm in vms),
        "calls_by_guests": sum(r.get("calls", 0) for r in results),
        "errors_by_kind": dict(statuses.most_common()),
        "daemon_errors": sum(vm["errors"] for vm in vms),
        "sessions": dict(sessions), "checks": dict(checks),
        "daemon_rss_kib": watch.daemon_rss.as_dict(), "daemon_fds": watch.daemon_fds.as_dict(),
        "daemon_fds_gained": dict(fds_at_end - fds_at_start),
        "workers": len(watch.workers),
        "worker_rss_kib": {"peak": max((s.peak for _, s in watch.workers.values()), default=0),
                           "by_worker": worker_rss},
        "leaks": leaks, "corruption": sum(r.get("corruption", 0) for r in results),
        "surprises": [s for r in results for s in r.get("surprises", [])],
        "surprise_count": sum(r.get("surprise_count", 0) for r in results),
        "crashes": [f"vm{r['vm']} process {r.get('process')}: {r['crash']}"
                    for r in results if r.get("crash")],
        "leftover_workers": leftover_workers, "daemon_alive_at_end": daemon_alive,
        "vms": per_vm,
    }


def failed(report: dict[str, Any]) -> list[str]:
    problems = []
    for key in ("leaks", "surprises", "crashes", "leftover_workers"):
        if report[key]:
            problems.append(f"{key}: {report[key]}")
    if report["corruption"]:
        problems.append(f"corruption: {report['corruption']}")
    if not report["daemon_alive_at_end"]:
        problems.append("the daemon died")
    return problems


def describe(report: dict[str, Any]) -> str:
    rss, fds = report["daemon_rss_kib"], report["daemon_fds"]
    workers = sorted(report["worker_rss_kib"]["by_worker"].values(), key=lambda w: -int(w["peak"]))
    lines = [
        f"soak: {report['guests']} guests x {report['processes_per_guest']} processes x "
        f"{report['minutes']} min on the sim backend, quota {report['quota'] // MIB} MiB per VM "
        "(shared by its processes)",
        f"calls served: {report['calls_served']} ({report['calls_by_guests']} submitted by the guests), "
        f"daemon-counted errors: {report['daemon_errors']}",
        f"sessions: {report['sessions']}",
        "errors by kind: " + ", ".join(f"{k} {v}" for k, v in report["errors_by_kind"].items()),
        f"daemon RSS KiB start/peak/end: {rss['start']}/{rss['peak']}/{rss['end']}; "
        f"open fds start/peak/end: {fds['start']}/{fds['peak']}/{fds['end']} "
        f"(gained: {report['daemon_fds_gained']})",
        f"workers: {report['workers']}, peak worker RSS {report['worker_rss_kib']['peak']} KiB; largest: "
        + ", ".join(f"{w['vm']} {w['start']}/{w['peak']}/{w['end']}" for w in workers[:4]),
        f"checks: {report['checks']}",
        f"leaks: {len(report['leaks'])}, corruption: {report['corruption']}, surprises: "
        f"{report['surprise_count']}, crashes: {len(report['crashes'])}, leftover workers: "
        f"{len(report['leftover_workers'])}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="soak", description=__doc__.splitlines()[0])
    parser.add_argument("--guests", type=int, default=4)
    parser.add_argument("--processes", type=int, default=3,
                        help="processes per guest at once, each on a channel of its own")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--quota-mib", type=int, default=64, help="each VM's memory quota")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="write the full report here")
    parser.add_argument("--workdir", type=Path, help="keep the daemon's config and log here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="vgpu-soak-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        report = run(args.guests, args.minutes, args.quota_mib * MIB, args.seed, workdir, args.processes)
    print(describe(report))
    problems = failed(report)
    report["problems"] = problems
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
