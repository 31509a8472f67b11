"""The daemon's files on the host (issue 16 item 5, issue 17 item 3): a socket directory it cannot
trust, paths it cannot use and configurations that cannot work are refused with one line on stderr and
exit status 2 — never a traceback, never a followed symlink — and a second daemon on the same
directory refuses and leaves the first one's sockets alone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from guest import GuestClient
from mediator._control_client import request
from mediator._launcher import running_mediator, write_config

from ._support import logged, wait_for

NOBODY = 65534


def _run_daemon(config: Path) -> subprocess.CompletedProcess[str]:
    """``vgpu-mediator run`` that must refuse to start: it exits by itself (the timeout says it did not)."""
    return subprocess.run([sys.executable, "-m", "mediator.cli", "run", "-c", str(config)],
                          capture_output=True, text=True, timeout=60, check=False)


def _refused(tmp_path: Path, sockets: Path | str, extra: str = "", vms: str = "") -> str:
    config = tmp_path / "config.toml"
    write_config(config, Path(sockets), backend="sim", vm_ids=[1], extra=extra)
    if vms:
        config.write_text(config.read_text() + vms)
    done = _run_daemon(config)
    assert done.returncode == 2, done
    assert "Traceback" not in done.stdout + done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("vgpu-mediator: "), done.stderr
    return lines[0]


def test_a_socket_dir_others_can_write_is_refused(tmp_path: Path) -> None:
    sockets = tmp_path / "sockets"
    sockets.mkdir(mode=0o755)
    for mode in (0o777, 0o775, 0o1777):
        sockets.chmod(mode)
        line = _refused(tmp_path, sockets)
        assert f"{sockets} is writable by its group or by everyone (mode {mode:04o})" in line
        assert list(sockets.iterdir()) == []  # nothing was created there


@pytest.mark.skipif(os.geteuid() != 0, reason="gives a directory to another user")
def test_a_socket_dir_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    sockets = tmp_path / "sockets"
    sockets.mkdir(mode=0o755)
    os.chown(sockets, NOBODY, NOBODY)
    assert f"{sockets} is owned by" in _refused(tmp_path, sockets)


def test_a_parent_others_can_write_is_refused_unless_sticky(tmp_path: Path) -> None:
    parent = tmp_path / "shared"
    parent.mkdir()
    parent.chmod(0o777)
    assert f"{parent} is writable by its group or by everyone" in _refused(tmp_path, parent / "sockets")
    parent.chmod(0o1777)  # as /tmp: nobody may rename or remove what is not theirs
    with running_mediator(parent, vms=1) as mediator:
        assert request(mediator.control, {"cmd": "status"})["ok"]


def test_a_socket_dir_that_is_a_symlink_or_a_file_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    assert "is a symbolic link" in _refused(tmp_path, tmp_path / "link")
    (tmp_path / "file").write_text("")
    assert f"socket_dir {tmp_path / 'file'} is not a directory" in _refused(tmp_path, tmp_path / "file")


def test_an_unwritable_socket_dir_is_one_line(tmp_path: Path) -> None:
    # /sys: root's, mode 0555, and sysfs refuses new files even to root
    assert "socket_dir /sys is not writable" in _refused(tmp_path, "/sys")


def test_a_socket_path_too_long_for_af_unix_is_one_line(tmp_path: Path) -> None:
    sockets = tmp_path / ("d" * 100)
    line = _refused(tmp_path, sockets)
    assert "a Unix socket path has at most 107" in line and "choose a shorter socket_dir" in line
    assert not sockets.exists()


def test_a_symlink_planted_at_a_socket_path_is_never_followed(tmp_path: Path) -> None:
    sockets = tmp_path / "sockets"
    sockets.mkdir(mode=0o755)
    victim = tmp_path / "victim"
    victim.write_text("precious")
    victim.chmod(0o600)
    (sockets / "vm1.sock").symlink_to(victim)
    line = _refused(tmp_path, sockets)
    assert f"{sockets / 'vm1.sock'} exists and is a symbolic link" in line
    assert victim.read_text() == "precious" and victim.stat().st_mode & 0o777 == 0o600
    assert (sockets / "vm1.sock").is_symlink()  # left for the operator to look at


def test_configurations_that_cannot_work_are_one_line(tmp_path: Path) -> None:
    sockets = tmp_path / "sockets"
    vm = '\n[[vm]]\nid = 9\nname = "{}"\n'
    assert "a VM may not be named 'control'" in _refused(tmp_path, sockets, vms=vm.format("control"))
    assert "a VM may not be named 'control-ro'" in _refused(tmp_path, sockets, vms=vm.format("control-ro"))
    line = _refused(tmp_path, sockets, extra=f'control_socket = "{sockets}/vm1.sock"')
    assert "VM 'vm1''s socket" in line and "is a control socket" in line
    line = _refused(tmp_path, sockets, vms=vm.format("big") + 'region_size = "3MiB"\n')
    assert "vm[1].region_size: 3145728 must be a power of two of at least 1 MiB" in line
    line = _refused(tmp_path, sockets, vms=vm.format("huge") + 'region_size = "1TiB"\n')
    assert "vm[1].region_size: 1099511627776 is more than this host can give one VM" in line
    line = _refused(tmp_path, sockets, vms=vm.format("q") + "memory_quota = true\n")
    assert "vm[1].memory_quota: True is not a size" in line
    assert "no user 'vgpu-test-no-such-user'" in _refused(
        tmp_path, sockets, vms=vm.format("u") + 'owner = "vgpu-test-no-such-user"\n')
    assert not (sockets / "vm1.sock").exists()  # a refused start leaves no socket behind


def test_a_second_daemon_on_the_same_socket_dir_refuses_and_leaves_the_first_alone(tmp_path: Path) -> None:
    with running_mediator(tmp_path, vms=1) as first, GuestClient.connect(first.vm_socket(1)) as gpu:
        gpu.init()
        before = {p.name: p.stat().st_ino for p in first.sockets.iterdir()}
        done = _run_daemon(first.config)
        assert done.returncode == 2, done
        assert done.stderr == (f"vgpu-mediator: another vgpu-mediator (pid {first.proc.pid}) is serving "
                               f"{first.sockets}; stop it first, or give this one another socket_dir\n")
        assert {p.name: p.stat().st_ino for p in first.sockets.iterdir()} == before
        gpu.nop()  # the first daemon still serves its guest
        assert request(first.control, {"cmd": "status"})["vms"][0]["connected"] is True
    # once the first has stopped, the directory is free again
    with running_mediator(tmp_path, vms=1) as second:
        assert request(second.control, {"cmd": "status"})["host"]["pid"] == second.proc.pid


def test_a_reload_cannot_move_the_sockets(tmp_path: Path) -> None:
    with running_mediator(tmp_path, vms=1) as mediator:
        elsewhere = tmp_path / "elsewhere"
        write_config(mediator.config, elsewhere, backend="sim", vm_ids=[1, 2])
        mediator.proc.send_signal(signal.SIGHUP)
        wait_for("the reload refused", lambda: logged(mediator, event="reload failed; keeping the running "
                                                      "configuration") == 1)
        assert "socket_dir and control_socket take effect only at a restart" in mediator.log
        assert not elsewhere.exists()
        assert [vm["name"] for vm in request(mediator.control, {"cmd": "status"})["vms"]] == ["vm1"]
