"""Pinned host memory in a real VM (#19): QEMU (TCG) boots the Debian kernel with an initramfs holding the
shim (installed as in tests/shim/test_vm.py) and ``pinned_probe``, on a mediator (sim) whose VM has a
16 MiB pinned area. In the guest the region is BAR2 of the ivshmem-doorbell device: ``cudaMallocHost``
memory lies in the process's mapping of ``resource2``, and copies through it are correct (synchronous,
asynchronous at odd offsets, 2D, cudaMemcpyDefault, driver API); a full area falls back to ordinary
memory; and bandwidthTest-style figures, pinned beside pageable beside the guest's own memcpy, go to
``artifacts/qemu/pinned-vm.json`` (the console to ``artifacts/qemu/console-pinned.log``).
"""

from __future__ import annotations

import json
import os
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

from ._support import ShimBuild, build_program, guest_tree, sections

pytestmark = [pytest.mark.qemu, pytest.mark.slow, pytest.mark.timeout(900)]

DEADLINE_S = float(os.environ.get("VGPU_QEMU_DEADLINE_S", "600"))
PROBE = Path(__file__).resolve().parent / "pinned_probe.c"

INIT_SCRIPT = INIT_PREAMBLE + """mkdir -p /tmp
for mode in "copies" "mapped" "register" "exhaust 12" "bandwidth 4"; do
    name=${mode%% *}
    echo "VGPU-PROGRAM $name"
    /pinned_probe $mode 2>&1
    echo "VGPU-PROGRAM-EXIT $name $? uptime=$(cut -d' ' -f1 /proc/uptime)"
done
echo "VGPU-SELFTEST-EXIT 0 uptime=$(cut -d' ' -f1 /proc/uptime)"
""" + INIT_POWEROFF


def test_pinned_memory_in_a_vm_is_bar2_and_copies_through_it_are_correct(
    qemu_kit: QemuKit, shim: ShimBuild, tmp_path: Path, artifacts: Path,
) -> None:
    probe = build_program(shim, PROBE, tmp_path)
    files, texts = guest_tree(shim, {"/pinned_probe": probe})
    initrd = build_initramfs_tree(tmp_path / "initramfs", files, INIT_SCRIPT, texts)
    seen: dict[str, Any] = {}
    with running_mediator(tmp_path, backend="sim", vms=1, extra='pinned_size = "16MiB"') as mediator:

        def while_guest_waits() -> None:
            seen["status"] = next(v for v in request(mediator.control, {"cmd": "status"})["vms"])

        run = run_vm(qemu_command(qemu_kit, initrd, mediator.vm_socket(1)), while_guest_waits, DEADLINE_S)
    (artifacts / "console-pinned.log").write_text(run.text + "\n")
    found = sections(run.text)
    for name, checks in (("copies", ["pinned_in_region", "copy_sync", "copy_async_offsets", "copy_2d",
                                     "copy_default", "driver_api", "driver_free", "cublas_matrix", "pointer_attributes",
                                     "host_alloc_flags", "registered_in_region", "free"]),
                         ("mapped", ["mapped_alloc", "mapped_device_access", "device_pointer_refusals",
                                     "managed_alloc", "pointer_attribute", "managed_device_access",
                                     "managed_prefetch_attach", "free"]),
                         ("register", ["register_moves_pages", "registered_copies", "mapped_kernel", "overlap",
                                       "file_pages_staged", "unregister_restores"]),
                         ("exhaust", ["fallback", "mapped_exhausted", "copies_through_both", "free"]),
                         ("bandwidth", ["bandwidth_setup", "bandwidth"])):
        output, code = found[name]
        report = SelftestReport.parse(output)
        assert code == 0 and report.verdict == "SELFTEST PASS", f"{name}:\n{output}"
        assert list(report.results) == checks, output
    assert "pinned host memory falls back to ordinary memory" in found["exhaust"][0]
    rows = [dict((k, int(v)) for k, v in (w.split("=") for w in line.split()[1:]))
            for line in found["bandwidth"][0].splitlines() if line.startswith("BANDWIDTH ")]
    assert [r["bytes"] for r in rows] == [4096 << (2 * i) for i in range(6)]
    (artifacts / "pinned-vm.json").write_text(json.dumps(
        {"accel": os.environ.get("VGPU_QEMU_ACCEL", "tcg"), "loadavg": os.getloadavg(), "MiB_per_s": rows},
        indent=2) + "\n")
    final = seen["status"]  # every process has exited: its pinned memory and the rest are back
    assert final["memory_used"] == 0 and final["channels_open"] == 0, final
    assert run.exit_code == 0 and "VGPU-POWEROFF" in run.text
