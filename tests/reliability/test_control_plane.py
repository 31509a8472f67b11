"""The control plane apart from the data plane, with real Unix users (issue 16 item 2).

A real daemon gives each VM's socket to that VM's QEMU user and checks every peer with SO_PEERCRED;
operators (control_group) may change things on ``control.sock``, readers (control_readers) may only
read on ``control-ro.sock``. The clients run as system users this test creates (it needs root, as CI
has; it skips otherwise): ``vgpu-test-qemu1`` and ``vgpu-test-qemu2`` (both in ``vgpu-test-kvm``, as
libvirt's QEMUs share a group), ``vgpu-test-op`` (in ``vgpu-test-ops``), ``vgpu-test-reader`` (in
``vgpu-test-readers``) and ``vgpu-test-nobody``.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from guest import GuestClient
from mediator._control_client import ControlError, request, request_first
from mediator._launcher import MediatorProcess, running_mediator

from ._support import logged, vm_status, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="creates system users and runs clients as them")

GROUPS = ("vgpu-test-kvm", "vgpu-test-ops", "vgpu-test-readers")
USERS = {  # user: supplementary groups its processes run with
    "vgpu-test-qemu1": ["vgpu-test-kvm"],
    "vgpu-test-qemu2": ["vgpu-test-kvm"],
    "vgpu-test-op": ["vgpu-test-ops"],
    "vgpu-test-reader": ["vgpu-test-readers"],
    "vgpu-test-nobody": [],
}

# What a client does, in a Python the test users can run (the standard library only): connect, send
# lines, and report what came back; one JSON object on stdout.
CLIENT = textwrap.dedent("""
    import json, socket, sys
    path, lines, repeat = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
    result = {"connected": 0, "replies": [], "handshake": None, "error": None, "greeting": None}
    for _ in range(repeat):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)  # blocking: a full backlog makes it wait, not fail
        except OSError as exc:
            result["error"] = exc.strerror
            break
        s.settimeout(30)
        result["connected"] += 1
        f = s.makefile("rwb")
        if lines:  # a control socket: the daemon's greeting comes first
            result["greeting"] = json.loads(f.readline() or b"null")
        for line in lines:
            f.write(line.encode() + b"\\n")
            f.flush()
            reply = f.readline()
            result["replies"].append(json.loads(reply) if reply else None)
        if not lines and repeat == 1:  # a VM socket: the ivshmem version (0), or a refusal (-2) and why
            msg, fds, _, _ = socket.recv_fds(s, 8, 4)
            version = int.from_bytes(msg, "little", signed=True) if len(msg) == 8 else None
            result["handshake"] = version == 0
            if version == -2:
                length = int.from_bytes(s.recv(8), "little", signed=True)
                result["refused"] = s.recv(length).decode()
            for fd in fds:
                import os; os.close(fd)
        s.close()
    print(json.dumps(result))
""")


def _ensure_users() -> None:
    for group in GROUPS:
        if not _exists(grp.getgrnam, group):
            subprocess.run(["groupadd", "--system", "-f", group], check=True)
    for user in USERS:
        if not _exists(pwd.getpwnam, user):
            subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                            "--user-group", user], check=True)


def _exists(lookup: Any, name: str) -> bool:
    try:
        lookup(name)
    except KeyError:
        return False
    return True


def _python_for(user: str) -> str:
    """A Python interpreter ``user`` can run (the test's own may live under /root)."""
    for candidate in (os.path.realpath(shutil.which("python3") or ""), "/usr/bin/python3"):
        try:
            if subprocess.run([candidate, "-c", "pass"], user=user, check=False,
                              capture_output=True).returncode == 0:
                return candidate
        except OSError:
            continue
    pytest.skip(f"no Python interpreter that {user} may run")


@dataclass
class Client:
    user: str
    python: str

    def run(self, path: Path, *lines: dict[str, Any] | str, repeat: int = 1) -> dict[str, Any]:
        encoded = [line if isinstance(line, str) else json.dumps(line) for line in lines]
        done = subprocess.run([self.python, "-c", CLIENT, str(path), json.dumps(encoded), str(repeat)],
                              user=self.user, group=self.user, extra_groups=USERS[self.user],
                              capture_output=True, text=True, timeout=120, check=True)
        result: dict[str, Any] = json.loads(done.stdout)
        return result


@pytest.fixture(scope="module")
def clients() -> dict[str, Client]:
    _ensure_users()
    python = _python_for("vgpu-test-nobody")
    return {user: Client(user, python) for user in USERS}


@pytest.fixture
def hardened() -> Iterator[MediatorProcess]:
    """Two VMs: vm1 given to qemu1 alone (0600), vm2 to qemu2 through the shared group (0660, as a host
    whose QEMUs all share libvirt's group would have it); operators and readers apart."""
    workdir = Path(tempfile.mkdtemp(prefix="vgpu-cp-", dir="/tmp"))
    workdir.chmod(0o755)  # the test users must reach the sockets below it
    vms = ('[[vm]]\nid = 1\nname = "vm1"\nowner = "vgpu-test-qemu1"\n'
           '[[vm]]\nid = 2\nname = "vm2"\nowner = "vgpu-test-qemu2"\ngroup = "vgpu-test-kvm"\n')
    extra = f'control_group = "vgpu-test-ops"\ncontrol_readers = "vgpu-test-readers"\n{vms}'
    try:
        with running_mediator(workdir, vms=0, extra=extra) as running:
            running.wait_for(running.vm_socket(1), running.vm_socket(2), running.sockets / "control-ro.sock")
            yield running
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _mode(path: Path) -> tuple[str, str, int]:
    st = path.lstat()
    return pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name, st.st_mode & 0o777


def test_each_vm_socket_admits_only_that_vms_qemu(hardened: MediatorProcess, clients: dict[str, Client]) -> None:
    assert _mode(hardened.vm_socket(1)) == ("vgpu-test-qemu1", "root", 0o600)
    assert _mode(hardened.vm_socket(2)) == ("vgpu-test-qemu2", "vgpu-test-kvm", 0o660)

    attached = clients["vgpu-test-qemu1"].run(hardened.vm_socket(1))
    assert attached["handshake"] is True, attached
    # vm1's socket is qemu1's alone: the kernel keeps the others out
    for user in ("vgpu-test-qemu2", "vgpu-test-op", "vgpu-test-nobody"):
        assert clients[user].run(hardened.vm_socket(1))["error"] == "Permission denied", user
    # vm2's socket is open to the shared group, but the daemon admits only qemu2's processes
    refused = clients["vgpu-test-qemu1"].run(hardened.vm_socket(2))
    assert refused["connected"] == 1 and refused["handshake"] is False, refused
    assert refused["refused"] == "vgpu-mediator: vm vm2: peer is not this VM's owner", refused
    wait_for("vm2 counted the refused peer", lambda: vm_status(hardened, 2)["refused_peers"] == 1)
    assert vm_status(hardened, 2)["connected"] is False and vm_status(hardened, 2)["sessions"] == 0
    assert logged(hardened, event="connection refused: peer is not this VM's owner", vm="vm2") == 1
    # ... and qemu2 attaches to its own VM afterwards: nothing of its slot was taken
    assert clients["vgpu-test-qemu2"].run(hardened.vm_socket(2))["handshake"] is True


def test_a_refused_peer_flood_is_counted_and_logged_once_a_second(
        hardened: MediatorProcess, clients: dict[str, Client]) -> None:
    result = clients["vgpu-test-qemu1"].run(hardened.vm_socket(2), repeat=500)
    assert result["connected"] == 500, result
    wait_for("every refusal counted", lambda: vm_status(hardened, 2)["refused_peers"] == 500)
    lines = logged(hardened, event="connection refused: peer is not this VM's owner")
    assert 1 <= lines <= 3, f"{lines} log lines for 500 refused connections"


def test_qemus_and_strangers_cannot_reach_the_control_sockets(
        hardened: MediatorProcess, clients: dict[str, Client]) -> None:
    control, readonly = hardened.control, hardened.sockets / "control-ro.sock"
    assert _mode(control) == ("root", "vgpu-test-ops", 0o660)
    assert _mode(readonly) == ("root", "vgpu-test-readers", 0o660)
    for user in ("vgpu-test-qemu1", "vgpu-test-qemu2", "vgpu-test-nobody"):
        for path in (control, readonly):
            assert clients[user].run(path, {"cmd": "status"})["error"] == "Permission denied", (user, path)


def test_operators_change_things_readers_only_read(hardened: MediatorProcess, clients: dict[str, Client]) -> None:
    operator, reader = clients["vgpu-test-op"], clients["vgpu-test-reader"]
    readonly = hardened.sockets / "control-ro.sock"

    done = operator.run(hardened.control, {"cmd": "status"},
                        {"cmd": "set_quota", "vm": "vm1", "bytes": "1GiB"},
                        {"cmd": "trace", "vm": "vm1", "enable": True},
                        {"cmd": "inject_fault", "vm": "vm1", "status": 700})
    assert done["greeting"]["greeting"]["role"] == "operator"
    assert "set_quota" in done["greeting"]["greeting"]["commands"]
    status, quota, trace, fault = done["replies"]
    assert status["ok"] and [vm["name"] for vm in status["vms"]] == ["vm1", "vm2"]
    assert quota == {"ok": True} and trace["ok"] and trace["tracing"] is True
    assert fault["ok"] is False and "fault injection is disabled" in fault["error"]
    assert vm_status(hardened, 1)["memory_quota"] == 1 << 30

    assert reader.run(hardened.control, {"cmd": "status"})["error"] == "Permission denied"
    done = reader.run(readonly, {"cmd": "status"}, {"cmd": "trace", "vm": "vm1"},
                      {"cmd": "set_quota", "vm": "vm1", "bytes": None},
                      {"cmd": "trace", "vm": "vm1", "enable": False},
                      {"cmd": "detach", "vm": "vm1"})
    assert done["greeting"]["greeting"] == {"service": "vgpu-mediator", "version": version("vgpu-mediator"),
                                            "protocol": 1, "role": "reader", "commands": ["status", "trace"]}
    status, trace, *refused = done["replies"]
    assert status["ok"] and trace["ok"] and trace["tracing"] is True
    for reply in refused:
        assert reply["ok"] is False and "needs an operator" in reply["error"], reply
    assert vm_status(hardened, 1)["memory_quota"] == 1 << 30 and vm_status(hardened, 1)["tracing"] is True


def test_fault_injection_is_refused_unless_the_configuration_enables_it(tmp_path: Path) -> None:
    with running_mediator(tmp_path, vms=1) as mediator:
        greeting = json.loads(_raw_lines(mediator.control, b"")[0])["greeting"]
        assert greeting["role"] == "operator" and "inject_fault" not in greeting["commands"]
        reply = _raw(mediator.control, b'{"cmd": "inject_fault", "vm": "vm1", "status": 700}\n')
        assert reply == [{"ok": False, "error": "fault injection is disabled; it is for drills and tests "
                                                "([mediator] allow_fault_injection = true)"}]


def _raw(path: Path, data: bytes) -> list[dict[str, Any]]:
    """Send raw bytes on a control socket; every reply line after the greeting, until the daemon closes."""
    greeting, *replies = [json.loads(line) for line in _raw_lines(path, data)]
    assert greeting["greeting"]["protocol"] == 1, greeting
    return replies


def _raw_lines(path: Path, data: bytes) -> list[bytes]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(path))
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        buf = b""
        while chunk := sock.recv(65536):
            buf += chunk
    return buf.splitlines()


@pytest.mark.parametrize(("line", "reason"), [
    (b"[]", "a request is a JSON object, not list"),
    (b'"x"', "a request is a JSON object, not str"),
    (b"42", "a request is a JSON object, not int"),
    (b"1e400", "a request is a JSON object, not float"),
    (b"\xff\xfe{}", "not JSON"),
    (b"{", "not JSON"),
    (b"[" * 3000, "not JSON"),
    (b"{}", "unknown cmd None"),
    (b'{"cmd": "status", "extra": 1}', "status has no field 'extra'"),
    (b'{"cmd": "set_quota", "vm": "vm1", "bytes": true}', "bytes must be a non-negative integer"),
    (b'{"cmd": "set_quota", "vm": "vm1", "bytes": "4 lots"}', "is not a size"),
    (b'{"cmd": "trace", "vm": "vm1", "after": -1}', "trace needs 'after'"),
    (b'{"cmd": "detach", "vm": [1]}', "detach needs 'vm'"),
])
def test_every_malformed_control_request_gets_an_error_reply(mediator: MediatorProcess, line: bytes,
                                                             reason: str) -> None:
    # the same connection then still answers a good request
    replies = _raw(mediator.control, line + b'\n{"cmd": "status", "id": 7}\n')
    assert len(replies) == 2 and replies[0]["ok"] is False and reason in replies[0]["error"], replies
    assert replies[1]["ok"] is True and replies[1]["id"] == 7
    assert replies[1]["host"]["control_errors"] == 1  # counted, as the log line says
    assert "Traceback" not in mediator.log


def test_a_quota_is_parsed_alike_on_the_socket_and_over_mqtt(mediator: MediatorProcess) -> None:
    assert request(mediator.control, {"cmd": "set_quota", "vm": "vm1", "bytes": "4GiB"}) == {"ok": True}
    assert vm_status(mediator, 1)["memory_quota"] == 4 << 30


def test_an_over_long_request_is_answered_and_the_connection_ended(mediator: MediatorProcess) -> None:
    replies = _raw(mediator.control, b'{"cmd": "status", "pad": "' + b"x" * 100_000 + b'"}\n{"cmd": "status"}\n')
    assert len(replies) == 1 and replies[0]["ok"] is False and "longer than 4096 bytes" in replies[0]["error"]
    assert request(mediator.control, {"cmd": "status"})["ok"]  # the daemon serves the next connection
    assert "Traceback" not in mediator.log


def _refusal_lines(mediator: MediatorProcess, event: str) -> list[dict[str, Any]]:
    events = (json.loads(line) for line in mediator.log.splitlines() if line.startswith("{"))
    return [e for e in events if e.get("event") == event]


def test_a_flood_of_connections_that_come_and_go_is_served_and_leaves_nothing(mediator: MediatorProcess) -> None:
    with GuestClient.connect(mediator.vm_socket(1)) as gpu:
        gpu.init()
        started = time.monotonic()
        for _ in range(300):  # each is a peer of vm1's session for a moment: attached, then dropped
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.connect(str(mediator.vm_socket(1)))
        def all_seen() -> bool:  # attached and detached, or gone before their handshake was through
            row = vm_status(mediator, 1)
            return bool(row["peers_served"] + row["peers_lost"] == 301 and row["peers"] == 1)

        wait_for("every short peer served and detached", all_seen)
        elapsed = time.monotonic() - started
        row = vm_status(mediator, 1)
        lines = len(_refusal_lines(mediator, "peer not attached")) + len(_refusal_lines(mediator, "peer attached"))
        print(f"300 connections that came and went in {elapsed:.2f} s: {row['peers_served'] - 1} attached and "
              f"detached, {row['peers_lost']} gone before their handshake; {lines} log lines")
        assert lines <= 2 * int(elapsed) + 6
        assert row["refused"] == 0 and row["sessions"] == 0 and row["channels_open"] == 1
        gpu.nop()  # the VM's own process never noticed


def test_a_reload_gives_a_vm_to_another_owner(hardened: MediatorProcess, clients: dict[str, Client]) -> None:
    config = hardened.config.read_text()
    hardened.config.write_text(config.replace('name = "vm1"\nowner = "vgpu-test-qemu1"',
                                              'name = "vm1"\nowner = "vgpu-test-qemu2"'))
    hardened.proc.send_signal(signal.SIGHUP)
    wait_for("vm1 re-owned", lambda: logged(hardened, event="vm socket access changed", vm="vm1") == 1)
    assert _mode(hardened.vm_socket(1)) == ("vgpu-test-qemu2", "root", 0o600)
    assert clients["vgpu-test-qemu1"].run(hardened.vm_socket(1))["error"] == "Permission denied"
    assert clients["vgpu-test-qemu2"].run(hardened.vm_socket(1))["handshake"] is True


def test_the_cli_falls_back_to_the_read_only_socket(mediator: MediatorProcess, tmp_path: Path) -> None:
    readonly = mediator.sockets / "control-ro.sock"
    mediator.wait_for(readonly)
    # the operators' socket out of reach (as for a reader): status comes from the read-only one
    assert request_first([tmp_path / "absent.sock", readonly], {"cmd": "status"})["ok"]
    with pytest.raises(ControlError, match="needs an operator"):  # and it is read-only
        request_first([tmp_path / "absent.sock", readonly], {"cmd": "set_quota", "vm": 1, "bytes": 1})
    with pytest.raises(ControlError, match=r"cannot reach the mediator at .*absent\.sock"):
        request_first([tmp_path / "absent.sock"], {"cmd": "status"})
