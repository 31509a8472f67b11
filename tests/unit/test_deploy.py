"""The shipped unit and example configuration are valid as shipped."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from xml.etree import ElementTree

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


def test_the_unit_keeps_vms_serving_through_a_restart_and_ends_them_at_a_stop() -> None:
    """The fd store holds every VM's fds (9 each) and is released at a stop; only the daemon is
    signalled, so the workers outlive it; the daemon knows it has a store; the comments tell the
    truth about RemoveIPC= (the regions are memfds)."""
    unit = (DEPLOY / "vgpu-mediator.service").read_text()
    options = dict(line.split("=", 1) for line in unit.splitlines() if "=" in line and not line.startswith("#"))
    assert options["KillMode"] == "process"
    store = int(options["FileDescriptorStoreMax"])
    config = load_config(DEPLOY / "config.example.toml")
    assert store >= 9 * len(config.vm) and store <= int(options["LimitNOFILE"]) // 2
    assert options["Environment"] == f"FDSTORE={store}"
    assert options.get("FileDescriptorStorePreserve", "restart") == "restart"  # a stop releases it
    assert options["Restart"] == "on-failure" and options["RuntimeDirectoryPreserve"] == "restart"
    comments = " ".join(line for line in unit.splitlines() if line.startswith("#"))
    assert "would tear down shared memory" not in comments and "memfds" in comments


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


def test_the_shipped_files_keep_the_planes_apart() -> None:
    """QEMU's users are never put in the daemon's group; each VM's socket has its own owner; the
    control sockets have their own groups; fault injection is off."""
    unit = (DEPLOY / "vgpu-mediator.service").read_text()
    options = dict(line.split("=", 1) for line in unit.splitlines() if "=" in line and not line.startswith("#"))
    assert options["CapabilityBoundingSet"] == "CAP_CHOWN" == options["AmbientCapabilities"]
    assert options["RuntimeDirectoryMode"] == "0755"  # traversable; the sockets' own modes decide
    assert "to this group" not in unit and "SupplementaryGroups=video render" in unit

    config = load_config(DEPLOY / "config.example.toml")
    assert config.mediator.control_group and config.mediator.control_readers
    assert config.mediator.allow_fault_injection is False
    owners = [vm.owner for vm in config.vm]
    assert None not in owners and len(set(owners)) == len(owners)  # one QEMU user per VM

    domain = ElementTree.parse(DEPLOY / "qemu" / "libvirt-domain.xml").getroot()
    server = domain.find("devices/shmem/server")
    assert server is not None and server.get("path") == str(config.vm_socket(config.vm[0]))
    label = domain.find("seclabel[@model='dac']/label")
    assert label is not None and label.text == f"{owners[0]}:{owners[0]}"
