"""Many CUDA processes in one real VM: QEMU (TCG) boots the Debian kernel with an initramfs holding the
shim (installed as in tests/shim/test_vm.py) and ``mp_worker``, and /init runs, on the one
ivshmem-doorbell device:

1. two processes computing at once (copies, memsets, cuBLAS, a captured graph), each refused the
   other's memory; while both compute, the host reads the mediator's status (two channels, two owners);
2. a process SIGKILLed in the middle of a 64 MiB copy while another computes: the host measures how
   long its memory takes to come back (the guest has no driver: only its heartbeat stopping tells);
3. 1,000 short-lived processes one after the other, every other one exiting without freeing;
4. the Ollama pattern: a runner holding 1 GiB and computing while 50 discovery processes come and go.

The guest waits on the console (``read``) where the host must look; ``run_vm`` types the host's
replies. The console goes to ``artifacts/qemu/console-processes.log``, the figures to
``artifacts/qemu/processes-vm.json``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from mediator._control_client import request
from mediator._launcher import running_mediator
from tests.qemu._support import (
    INIT_POWEROFF,
    INIT_PREAMBLE,
    QemuKit,
    SelftestReport,
    build_initramfs_tree,
    qemu_command,
    run_vm,
)

from ._support import ShimBuild, build_mp_worker, guest_tree, sections

pytestmark = [pytest.mark.qemu, pytest.mark.slow, pytest.mark.timeout(1500)]

DEADLINE_S = float(os.environ.get("VGPU_QEMU_DEADLINE_S", "1200"))
SHORT_LIVED = 1000
DISCOVERIES = 50
MIB = 1 << 20

INIT_SCRIPT = INIT_PREAMBLE + """W=/mp_worker
mkdir -p /t
# until FILE has a line starting with WORD (the workers print them as they get there)
until_line() { until grep -q "^$2" "$1"; do sleep 0.05; done; }
show() { echo "VGPU-PROGRAM $1"; cat "$2"; echo "VGPU-PROGRAM-EXIT $1 $3"; }

# 1. two at once
mkfifo /t/a.in /t/b.in
$W pair < /t/a.in > /t/a.out 2>&1 &
A=$!
$W pair < /t/b.in > /t/b.out 2>&1 &
B=$!
exec 3>/t/a.in 4>/t/b.in
until_line /t/a.out READY
until_line /t/b.out READY
echo "peer $(sed -n 's/^READY ptr=//p' /t/b.out)" >&3
echo "peer $(sed -n 's/^READY ptr=//p' /t/a.out)" >&4
until_line /t/a.out COMPUTING
until_line /t/b.out COMPUTING
echo "VGPU-PAIR-COMPUTING $A $B"
read go
echo stop >&3
echo stop >&4
wait $A; CA=$?
wait $B; CB=$?
exec 3>&- 4>&-
show pair_a /t/a.out $CA
show pair_b /t/b.out $CB

# 2. SIGKILL in the middle of a copy, another process computing meanwhile
mkfifo /t/h.in
$W hold 16 < /t/h.in > /t/h.out 2>&1 &
H=$!
exec 5>/t/h.in
until_line /t/h.out COMPUTING
$W copy-loop 64 > /t/k.out 2>&1 &
K=$!
until [ "$(grep -c '^COPYING' /t/k.out)" -ge 2 ]; do sleep 0.01; done
echo "VGPU-KILL-READY $K $H"
read go
kill -9 $K
echo "VGPU-KILLED $K"
read go
echo stop >&5
wait $H; CH=$?
exec 5>&-
show holder /t/h.out $CH

# 3. short-lived processes in sequence, every other one leaving everything behind
echo "VGPU-SHORT-START uptime=$(cut -d' ' -f1 /proc/uptime)"
i=0; fails=0
while [ $i -lt %(short)d ]; do
    if [ $((i %% 2)) -eq 0 ]; then how=free; else how=leak; fi
    if ! $W short $how > /t/s.out 2>&1; then fails=$((fails + 1)); show short_$i /t/s.out 1; fi
    i=$((i + 1))
done
echo "VGPU-SHORT-DONE n=%(short)d fails=$fails uptime=$(cut -d' ' -f1 /proc/uptime)"
read go

# 4. the Ollama pattern
mkfifo /t/o.in
$W hold 1024 < /t/o.in > /t/o.out 2>&1 &
O=$!
exec 6>/t/o.in
until_line /t/o.out COMPUTING
i=0; fails=0
while [ $i -lt %(discoveries)d ]; do
    if ! $W discover > /t/d.out 2>&1; then fails=$((fails + 1)); show discover_$i /t/d.out 1; fi
    i=$((i + 1))
done
echo "VGPU-DISCOVER-DONE n=%(discoveries)d fails=$fails $O"
read go
echo stop >&6
wait $O; CO=$?
exec 6>&-
show runner /t/o.out $CO

echo "VGPU-SELFTEST-EXIT 0 uptime=$(cut -d' ' -f1 /proc/uptime)"
""" + INIT_POWEROFF


def test_many_processes_of_one_vm_share_its_gpu_and_a_killed_one_gives_its_memory_back(
    qemu_kit: QemuKit, shim: ShimBuild, tmp_path: Path, artifacts: Path,
) -> None:
    worker = build_mp_worker(shim, tmp_path)
    files, texts = guest_tree(shim, {"/mp_worker": worker})
    script = INIT_SCRIPT % {"short": SHORT_LIVED, "discoveries": DISCOVERIES}
    initrd = build_initramfs_tree(tmp_path / "initramfs", files, script, texts)
    seen: dict[str, Any] = {}
    with running_mediator(tmp_path, backend="sim", vms=1) as mediator:

        def vm() -> dict[str, Any]:
            row: dict[str, Any] = next(v for v in request(mediator.control, {"cmd": "status"})["vms"])
            return row

        def open_channels() -> dict[int, dict[str, Any]]:
            return {c["owner_pid"]: c for c in vm()["channels"] if c["state"] == "open"}

        def on_line(line: str) -> str | None:
            words = line.split()
            if line.startswith("VGPU-PAIR-COMPUTING"):
                seen["pair"] = ([int(pid) for pid in words[1:]], open_channels())
            elif line.startswith("VGPU-KILL-READY"):
                seen["before_kill"] = open_channels()
                seen["kill_sent"] = time.monotonic()  # the guest kills once it reads this reply
            elif line.startswith("VGPU-KILLED"):
                victim = seen["victim"] = int(words[1])
                deadline = seen["kill_sent"] + 10
                while True:
                    channels = open_channels()
                    if victim not in channels and vm()["memory_used"] == sum(c["memory_used"]
                                                                             for c in channels.values()):
                        seen["freed_after_s"] = time.monotonic() - seen["kill_sent"]
                        break
                    if time.monotonic() > deadline:
                        seen["freed_after_s"] = None
                        break
                    time.sleep(0.005)
            elif line.startswith(("VGPU-SHORT-DONE", "VGPU-DISCOVER-DONE")):
                seen[words[0]] = (dict(w.split("=", 1) for w in words[1:] if "=" in w), vm(), open_channels())
            else:
                return None
            return "go"

        def while_guest_waits() -> None:
            seen["final"] = vm()

        command = qemu_command(qemu_kit, initrd, mediator.vm_socket(1))
        run = run_vm(command, while_guest_waits, DEADLINE_S, on_line=on_line)
    log_path = artifacts / "console-processes.log"
    log_path.write_text(run.text + "\n")
    found = sections(run.text)
    short_start = float(run.first("VGPU-SHORT-START")[1].split("uptime=")[1])
    short_done, _, _ = seen.get("VGPU-SHORT-DONE", ({}, None, None))
    figures = {
        "sigkill_64mib_copy_freed_after_s": seen.get("freed_after_s"),
        "short_lived": SHORT_LIVED,
        "short_lived_guest_s": round(float(short_done["uptime"]) - short_start, 2) if short_done else None,
        "discoveries": DISCOVERIES, "accel": os.environ.get("VGPU_QEMU_ACCEL", "tcg"),
    }
    (artifacts / "processes-vm.json").write_text(json.dumps(figures, indent=2) + "\n")

    # 1. two at once, both right, each refused the other's memory; the host saw both channels
    for name in ("pair_a", "pair_b"):
        output, code = found[name]
        report = SelftestReport.parse(output)
        assert code == 0 and report.verdict == "SELFTEST PASS", f"{name}:\n{output}"
        assert report["peer_refused"].ok and report["rounds"].ok
    pids, channels = seen["pair"]
    assert sorted(channels) == sorted(pids), channels
    assert all(c["memory_used"] >= 3 * MIB for c in channels.values())
    assert len({c["index"] for c in channels.values()}) == 2

    # 2. the killed process's memory back within a second; the other finished right
    assert seen["before_kill"][seen["victim"]]["memory_used"] >= 64 * MIB
    assert seen["freed_after_s"] is not None and seen["freed_after_s"] < 1.0, figures
    output, code = found["holder"]
    assert code == 0 and SelftestReport.parse(output).verdict == "SELFTEST PASS", output

    # 3. none refused or wrong; nothing left behind by the ones that did not free
    done, row, left = seen["VGPU-SHORT-DONE"]
    assert done["fails"] == "0", {name: found[name] for name in found if name.startswith("short_")}
    assert row["memory_used"] == 0 and row["live_handles"] == 0 and not left, row

    # 4. every discovery served while the runner held its GiB; the runner right to the end
    done, row, channels = seen["VGPU-DISCOVER-DONE"]
    assert done["fails"] == "0", {name: found[name] for name in found if name.startswith("discover_")}
    runner = int(run.first("VGPU-DISCOVER-DONE")[1].split()[-1])
    assert channels[runner]["memory_used"] >= 1024 * MIB
    output, code = found["runner"]
    assert code == 0 and SelftestReport.parse(output).verdict == "SELFTEST PASS", output

    final = seen["final"]
    assert final["memory_used"] == 0 and final["live_handles"] == 0 and final["channels_open"] == 0, final
    assert "is not supported by the vgpu shim" not in run.text
    assert run.exit_code == 0 and "VGPU-POWEROFF" in run.text
