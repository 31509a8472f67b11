"""The shipped unit and example configuration are valid as shipped."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from mediator import load_config

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_example_config_loads() -> None:
    config = load_config(DEPLOY / "config.example.toml")
    assert [vm.name for vm in config.vm] == ["vm1", "vm2"]
    assert config.vm[0].memory_quota == 8 * 2**30


def test_unit_keeps_the_contract_options() -> None:
    unit = (DEPLOY / "vgpu-mediator.service").read_text()
    lines = [line for line in unit.splitlines() if "=" in line and not line.startswith("#")]
    options = {line.split("=", 1)[0] for line in lines}
    for required in ("Type", "WatchdogSec", "Restart", "User", "Group", "RuntimeDirectory", "DeviceAllow",
                     "ExecReload", "NoNewPrivileges", "ProtectSystem"):
        assert required in options
    assert "Type=notify" in unit
    assert "DynamicUser" not in options and "RemoveIPC" not in options


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    # verify checks that ExecStart exists; point it at a stand-in of the installed path.
    unit = (DEPLOY / "vgpu-mediator.service").read_text()
    fake_exec = tmp_path / "vgpu-mediator"
    fake_exec.write_text("#!/bin/sh\n")
    fake_exec.chmod(0o755)
    unit = unit.replace("/opt/vgpu-mediator/.venv/bin/vgpu-mediator", str(fake_exec))
    target = tmp_path / "vgpu-mediator.service"
    target.write_text(unit)
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", str(target)],
                            capture_output=True, text=True, check=False)
    problems = [line for line in (result.stdout + result.stderr).splitlines()
                if "vgpu-mediator.service" in line and "libvirtd.service" not in line]
    assert result.returncode == 0 or not problems, result.stderr
    assert not problems, problems
