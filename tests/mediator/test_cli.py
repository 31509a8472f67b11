"""The operator's CLI against a running daemon: changes, version, help, pipes, finding the socket."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from guest import GuestClient
from mediator._launcher import MediatorProcess
from tests.reliability._support import vm_status, wait_for

pytestmark = pytest.mark.timeout(120)


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mediator.cli", *args], capture_output=True, text=True,
                          check=False, timeout=60, env=env)


def test_set_quota_reset_and_detach(mediator: MediatorProcess) -> None:
    config = str(mediator.config)
    done = cli("set-quota", "vm1", "1GiB", "-c", config)
    assert (done.returncode, done.stdout.strip()) == (0, "quota of vm1 set to 1GiB")
    assert vm_status(mediator, 1)["memory_quota"] == 1 << 30
    assert "1.0 GiB*" in cli("status", "-c", config).stdout  # marked as overriding the file
    assert cli("set-quota", "vm1", "none", "-c", config).returncode == 0
    assert vm_status(mediator, 1)["memory_quota"] is None
    refused = cli("set-quota", "vm1", "lots", "-c", config)
    assert refused.returncode == 1 and "'lots' is not a size" in refused.stderr

    with GuestClient.connect(mediator.vm_socket(1)) as gpu:
        gpu.nop()
        assert cli("reset", "1", "-c", config).stdout.strip() == "1 reset"
        wait_for("vm1 reset", lambda: vm_status(mediator, 1)["restarts"] == 1)
        assert cli("detach", "vm1", "-c", config).stdout.strip() == "vm1 detached"
        wait_for("vm1 detached", lambda: vm_status(mediator, 1)["state"] == "listening")
    not_attached = cli("detach", "vm2", "-c", config)
    assert not_attached.returncode == 1 and "is not attached" in not_attached.stderr


def test_changes_go_to_the_operators_socket_only(mediator: MediatorProcess) -> None:
    readonly = str(mediator.sockets / "control-ro.sock")
    refused = cli("reset", "vm1", "-s", readonly)
    assert refused.returncode == 1 and "needs an operator" in refused.stderr


def test_the_default_configuration_finds_the_daemon(mediator: MediatorProcess) -> None:
    env = {**os.environ, "VGPU_MEDIATOR_CONFIG": str(mediator.config)}  # stands in for /etc/…
    assert "vm1" in cli("status", env=env).stdout
    assert cli("trace", "--vm", "vm1", env=env).returncode == 0


def test_status_into_a_closed_pipe_is_quiet(mediator: MediatorProcess) -> None:
    # `status --json | head -0`: the reader is gone before the CLI writes
    read, write = os.pipe()
    os.close(read)
    try:
        result = subprocess.run([sys.executable, "-m", "mediator.cli", "status", "--json", "-c",
                                 str(mediator.config)], stdout=write, stderr=subprocess.PIPE, text=True,
                                check=False, timeout=60)
    finally:
        os.close(write)
    assert result.stderr == "" and result.returncode == 141


def test_version_and_plain_help() -> None:
    version = cli("--version")
    assert version.returncode == 0 and version.stdout.startswith("vgpu-mediator ")
    for args in ([], ["status"], ["trace"], ["set-quota"], ["reset"], ["detach"], ["run"], ["demo"]):
        text = cli(*args, "--help").stdout
        assert "usage: vgpu-mediator" in text and "``" not in text and ":mod:" not in text, args


def test_an_unknown_call_filter_is_an_error(tmp_path: Path) -> None:
    result = cli("trace", "--vm", "vm1", "--call", "mem_aloc", "-s", str(tmp_path / "none.sock"))
    assert result.returncode == 2 and "unknown call 'mem_aloc'" in result.stderr
    assert "mem_alloc" in result.stderr  # a suggestion


def test_workers_are_named_after_their_vm_in_ps(mediator: MediatorProcess) -> None:
    with GuestClient.connect(mediator.vm_socket(2)) as gpu:
        gpu.nop()
        pid = vm_status(mediator, 2)["worker_pid"]
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").replace(b"\0", b" ")
        assert cmdline == b"vgpu-worker vm2"  # ps, top and nvidia-smi show this
        assert Path(f"/proc/{pid}/comm").read_text().strip() == "vgpu-worker vm2"  # the kernel's 15 bytes
        ps = subprocess.run(["ps", "-o", "args=", "-p", str(pid)], capture_output=True, text=True, check=True)
        assert ps.stdout.strip() == "vgpu-worker vm2"
