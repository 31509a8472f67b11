"""What pacing costs and gives: many VMs with workers paced and not, alternated within one run.

    python -m benchmarks.pacing                          # 4 and 8 VMs, with and without a flood, 3 rounds
    python -m benchmarks.pacing --vms 4 --rounds 5 --json pacing.json

``vgpu-bench --only multi`` against ``--no-pace`` compares two runs minutes apart, and on a shared
machine the load of those minutes decides more than pacing does. Here two mediators run side by
side, one with ``pace_workers`` (the default) and one without, and every case (VMs, flood or not) is
measured on one and then at once on the other, the order swapped each round, so that each pair of
figures shares its moment. Each round also measures the fairness floor of the case with a flood
(``_floors.fairness_floor``: eventfd pairs beside two busy processes, nothing of ours in it).

Per case it prints each round's figures and their medians: aggregate calls/s, the slowest VM that
does not flood (with a flood, the flooding VM is left out of it and of Jain's index), Jain's index,
the machine's busy CPU time per call served (other work on the machine included: compare within a
run), the workers' voluntary context switches per second (sleeps, mostly), and the paced figures as
a share of the not paced ones.
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
from typing import Any

from mediator._launcher import running_mediator

from ._floors import fairness_floor
from ._mediator import jain, multi_vm

MODES = ("paced", "not paced")


def _summary(run: dict[str, Any]) -> dict[str, float]:
    rates = run["per_vm_calls_per_s"]
    fair = rates[1:] if run["flood"] else rates
    return {"aggregate": run["aggregate_calls_per_s"], "slowest": min(fair), "jain": run["jain"],
            # the machine's busy CPU time per call served (other work on the machine included)
            "cpu_us": run["busy_cpus"] / max(run["aggregate_calls_per_s"], 1.0) * 1e6,
            "switches": run["worker_voluntary_switches_per_s"]}


def measure(vms_list: Sequence[int], rounds: int, seconds: float) -> list[dict[str, Any]]:
    """Every case, ``rounds`` times on both mediators back to back; the raw runs and floors per case."""
    cases: list[dict[str, Any]] = [{"vms": vms, "flood": flood, "paced": [], "not paced": [], "floor": []}
                                   for flood in (False, True) for vms in vms_list]
    with tempfile.TemporaryDirectory(prefix="vgpu-pacing-") as tmp, ExitStack() as stack:
        mediators = {}
        for mode in MODES:
            workdir = Path(tmp) / mode.replace(" ", "-")
            workdir.mkdir()
            mediators[mode] = stack.enter_context(running_mediator(
                workdir, vms=max(vms_list), extra="" if mode == "paced" else "pace_workers = false"))
        for round_ in range(rounds):
            for case in cases:
                order = MODES if round_ % 2 == 0 else MODES[::-1]
                for mode in order:
                    run = multi_vm(mediators[mode], case["vms"], seconds, flood=case["flood"])
                    case[mode].append(run)
                    s = _summary(run)
                    flood = ", VM 1 floods" if case["flood"] else ""
                    print(f"  round {round_ + 1}, {case['vms']} VMs{flood}, {mode}: {s['aggregate']:,.0f} "
                          f"calls/s, slowest {s['slowest']:,.0f}, Jain {s['jain']:.3f}, CPU "
                          f"{s['cpu_us']:.1f} us a call", file=sys.stderr, flush=True)
                if case["flood"]:
                    case["floor"].append(jain(fairness_floor(case["vms"] - 1, seconds)))
    return cases


def report(cases: list[dict[str, Any]]) -> str:
    def figures(runs: list[dict[str, float]], key: str) -> str:
        med = statistics.median(r[key] for r in runs)
        if key == "jain":
            return f"{med:.3f} (" + ", ".join(f"{r[key]:.3f}" for r in runs) + ")"
        if key == "cpu_us":
            return f"{med:.1f} (" + ", ".join(f"{r[key]:.1f}" for r in runs) + ")"
        if key == "switches":
            return f"{med:,.0f} (" + ", ".join(f"{r[key]:,.0f}" for r in runs) + ")"
        return f"{med:,.0f} (" + ", ".join(f"{r[key] / 1e3:.1f}k" for r in runs) + ")"

    lines = []
    for case in cases:
        label = f"{case['vms']} VMs" + (", VM 1 floods" if case["flood"] else "")
        runs = {mode: [_summary(r) for r in case[mode]] for mode in MODES}
        for mode in MODES:
            lines.append(f"{label:<19} {mode:<9}  aggregate {figures(runs[mode], 'aggregate')}; slowest "
                         f"{figures(runs[mode], 'slowest')}; Jain {figures(runs[mode], 'jain')}; CPU us a "
                         f"call {figures(runs[mode], 'cpu_us')}; workers' sleeps/s "
                         f"{figures(runs[mode], 'switches')}")
        share = {key: statistics.median(r[key] for r in runs["paced"])
                 / statistics.median(r[key] for r in runs["not paced"]) for key in ("aggregate", "slowest")}
        floor = f"; Jain's floor {statistics.median(case['floor']):.3f}" if case["floor"] else ""
        lines.append(f"{label:<19} paced/not  aggregate {share['aggregate']:.0%}; slowest "
                     f"{share['slowest']:.0%}{floor}")
    lines.append(f"(medians, each round's figure in brackets; load average {os.getloadavg()[0]:.2f} at "
                 f"the end; {os.cpu_count()} CPUs)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pacing", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vms", type=int, action="append", help="VMs at once (repeatable); default 4 and 8")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0, help="each measurement's length")
    parser.add_argument("--json", type=Path, help="write the raw runs here")
    opts = parser.parse_args(argv)
    print(f"load average {os.getloadavg()[0]:.2f} at the start", file=sys.stderr)
    cases = measure(opts.vms or [4, 8], opts.rounds, opts.seconds)
    if opts.json:
        opts.json.write_text(json.dumps(cases, indent=1))
    print(report(cases))
    return 0


if __name__ == "__main__":
    sys.exit(main())
