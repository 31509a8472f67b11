"""The checked-in CUDA programs inside a real VM: QEMU (TCG) boots the Debian kernel with an initramfs
that is a minimal installed guest — the dynamic loader, libc, libm, libstdc++, libgcc_s, the shim in
/usr/local/lib/vgpu registered with ``ldconfig`` (an ``ld.so.cache``), no environment variable and no
configuration file — and /init runs each program on the ivshmem-doorbell device (PCI 1af4:1110).

The mediator (sim) serves the VM; while the guest waits for the go-ahead the test reads the
mediator's status and trace. The console goes to ``artifacts/qemu/console-shim.log``.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
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

from ._support import PROGRAMS, ShimBuild, check_program, guest_tree, sections

pytestmark = [pytest.mark.qemu, pytest.mark.slow, pytest.mark.timeout(600)]

NAMES = ("vector_add", "gemm", "streams_events", "graph", "host_funcs")
BOOT_DEADLINE_S = float(os.environ.get("VGPU_QEMU_DEADLINE_S", "480"))
HERE = Path(__file__).resolve().parent

INIT_SCRIPT = INIT_PREAMBLE + """echo "VGPU-PROGRAM held"
/hold_device /programs/vector_add
echo "VGPU-PROGRAM-EXIT held $? uptime=$(cut -d' ' -f1 /proc/uptime)"
for program in %(names)s; do
    echo "VGPU-PROGRAM $program"
    /programs/$program
    echo "VGPU-PROGRAM-EXIT $program $? uptime=$(cut -d' ' -f1 /proc/uptime)"
done
echo "VGPU-SELFTEST-EXIT 0 uptime=$(cut -d' ' -f1 /proc/uptime)"
""" + INIT_POWEROFF


def test_the_programs_run_unchanged_in_a_vm_on_the_shim(
    qemu_kit: QemuKit, shim: ShimBuild, tmp_path: Path, artifacts: Path,
) -> None:
    hold_device = tmp_path / "hold_device"
    subprocess.run(["cc", "-static", "-O2", "-o", str(hold_device), str(HERE / "hold_device.c")], check=True)
    files, texts = guest_tree(shim, {"/hold_device": hold_device,
                                     **{f"/programs/{name}": PROGRAMS / name for name in NAMES}})
    initrd = build_initramfs_tree(tmp_path / "initramfs", files, INIT_SCRIPT % {"names": " ".join(NAMES)}, texts)
    with running_mediator(tmp_path, backend="sim", vms=1) as mediator:
        request(mediator.control, {"cmd": "trace", "vm": "vm1", "enable": True})
        seen: dict[str, Any] = {}

        def while_guest_waits() -> None:
            seen["status"] = next(v for v in request(mediator.control, {"cmd": "status"})["vms"]
                                  if v["name"] == "vm1")
            seen["trace"] = request(mediator.control, {"cmd": "trace", "vm": "vm1", "limit": 100000})["records"]

        command = qemu_command(qemu_kit, initrd, mediator.vm_socket(1))
        run = run_vm(command, while_guest_waits, BOOT_DEADLINE_S)
    log_path = artifacts / "console-shim.log"
    log_path.write_text(run.text + "\n")
    timings = {name: stamp for stamp, line in run.lines if line.startswith("VGPU-PROGRAM-EXIT")
               for name in [line.split()[1]]}
    found = sections(run.text)
    figures = SelftestReport.parse(found["vector_add"][0]).results.get("timings") if "vector_add" in found else None
    (artifacts / "timings-shim.json").write_text(json.dumps(
        {"host_s_at_exit": timings, "vector_add": figures.fields() if figures else None,
         "qemu_exit_code": run.exit_code, "command": command}, indent=2) + "\n")

    for name in (*NAMES, "held"):
        assert name in found, f"{name} never ran; console in {log_path}"
    for name in NAMES:
        output, code = found[name]
        assert code == 0, f"{name} exited {code}:\n{output}"
        check_program(name, SelftestReport.parse(output))
    # every channel held by another process of the guest: refused, saying so, not sharing their rings
    held_output, held_code = found["held"]
    assert held_code != 0
    assert SelftestReport.parse(held_output)["device_count"].fields()["status"] == "46"  # DevicesUnavailable
    assert "all 16 channels of VM 1 are held by other processes" in held_output
    assert "is not supported by the vgpu shim" not in run.text
    assert run.exit_code == 0 and "VGPU-POWEROFF" in run.text

    status, trace = seen["status"], seen["trace"]
    calls = Counter(record["call"] for record in trace)
    assert calls["init"] == len(NAMES)  # one runtime initialization per program
    assert {"module_load_data", "launch_kernel", "cublas_sgemm", "cublas_gemm_batched_ex", "graph_launch",
            "event_elapsed_time", "stream_wait_event", "stream_add_guest_node", "graph_launch_phase"} <= set(calls)
    assert status["calls"] == len(trace)
    assert status["memory_used"] == 0  # every program freed what it allocated
