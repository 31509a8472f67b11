"""The fd keeper speaks systemd's fd-store protocol, and a re-exec hands fds over as sd_listen_fds(3) reads them."""

from __future__ import annotations

import array
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mediator._fdstore import FdKeeper


def _receive(sock: socket.socket) -> tuple[str, list[int]]:
    data, ancdata, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(16 * 4))
    fds: list[int] = []
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            got = array.array("i")
            got.frombytes(payload[:len(payload) - len(payload) % 4])
            fds.extend(got)
    return data.decode(), fds


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(tmp_path / "notify"))
        sock.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
        yield sock


def test_kept_fds_go_to_the_store_by_name_and_forgotten_ones_are_withdrawn(
        notify_socket: socket.socket, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FDSTORE", "16")
    keeper = FdKeeper()
    doorbell = os.eventfd(0)
    keeper.keep("vm1.doorbell", doorbell)
    text, fds = _receive(notify_socket)
    assert text == "FDSTORE=1\nFDNAME=vm1.doorbell" and len(fds) == 1
    os.eventfd_write(fds[0], 5)  # the stored fd is the same eventfd
    assert os.eventfd_read(doorbell) == 5
    os.close(doorbell)  # the keeper holds its own duplicate: the fd stays usable through it
    kept = keeper.snapshot()["vm1.doorbell"]
    os.eventfd_write(kept, 1)
    assert os.eventfd_read(fds[0]) == 1
    keeper.forget("vm1.doorbell")
    assert _receive(notify_socket) == ("FDSTOREREMOVE=1\nFDNAME=vm1.doorbell", [])
    with pytest.raises(OSError):
        os.fstat(kept)
    os.close(fds[0])


def test_without_a_store_nothing_is_sent(notify_socket: socket.socket, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FDSTORE", raising=False)  # systemd without FileDescriptorStoreMax=
    keeper = FdKeeper()
    fd = os.eventfd(0)
    keeper.keep("vm1.irq", fd)
    notify_socket.settimeout(0.2)
    with pytest.raises(TimeoutError):
        notify_socket.recv(4096)
    keeper.forget("vm1.irq")
    os.close(fd)


def test_a_reexec_hands_fds_over_at_3_with_their_names_and_the_new_image_reads_them() -> None:
    program = """
import os, sys
from mediator._fdstore import reexec
r, w = os.pipe()
os.write(w, b"kept")
spare = os.eventfd(7)
reexec({"vm1.peer": r, "vm1.irq": spare}, [sys.executable, "-c", '''
import os, json
from mediator._fdstore import inherited
fds = inherited()
print(json.dumps({"fds": fds, "data": os.read(fds["vm1.peer"], 4).decode(),
                  "irq": os.eventfd_read(fds["vm1.irq"]), "cloexec": os.get_inheritable(fds["vm1.peer"]),
                  "env": [k for k in os.environ if k.startswith("LISTEN_")]}))
'''])
"""
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2], timeout=60).stdout
    import json

    result = json.loads(out.strip().splitlines()[-1])
    assert result == {"fds": {"vm1.peer": 3, "vm1.irq": 4}, "data": "kept", "irq": 7, "cloexec": False,
                      "env": []}


def test_fds_for_another_pid_are_not_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    from mediator._fdstore import inherited

    monkeypatch.setenv("LISTEN_PID", str(os.getpid() + 1))
    monkeypatch.setenv("LISTEN_FDS", "2")
    monkeypatch.setenv("LISTEN_FDNAMES", "a:b")
    assert inherited() == {}
    assert "LISTEN_FDS" not in os.environ  # cleared either way: no child takes them for its own
