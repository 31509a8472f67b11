"""``__managed__`` variables through the shim on ``sim`` (``programs/managed_vars.cu``, nvcc 13): the
initial values, host writes a kernel sees, kernel writes the host sees, symbol copies and the pointer's
attributes — and what the mediator was asked: one ``module_global_alias`` per variable, after the
module's load."""

from __future__ import annotations

from pathlib import Path

import pytest

from mediator._control_client import request
from mediator._launcher import running_mediator
from tests.qemu._support import SelftestReport

from ._support import ShimBuild, run_program

CHECKS = ("initial_values", "kernel_sees_host_writes", "symbol_copies", "managed_pointer")


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_managed_variables_live_in_managed_memory(shim: ShimBuild, tmp_path: Path) -> None:
    with running_mediator(tmp_path, backend="sim", vms=1) as mediator:
        request(mediator.control, {"cmd": "trace", "vm": "vm1", "enable": True})
        conf = tmp_path / "guest.conf"
        conf.write_text(f"socket = {mediator.vm_socket(1)}\nlog = stderr\n")
        code, output = run_program("managed_vars", shim, conf)
        calls = [r["call"] for r in request(mediator.control, {"cmd": "trace", "vm": "vm1", "limit": 100000})["records"]]
    report = SelftestReport.parse(output)
    assert [name for name in CHECKS if name not in report.results] == [], output
    assert [f"{r.name}: {r.value}" for r in report.results.values() if not r.ok] == [], output
    assert code == 0 and report.verdict == "SELFTEST PASS", output
    assert calls.count("module_global_alias") == 3  # counter, data, scale
    loaded = min(i for i, call in enumerate(calls) if call.startswith("module_load"))
    assert loaded < calls.index("module_global_alias") < calls.index("launch_kernel")
