"""A stand-in for systemd's side of a ``Type=notify`` service with an fd store, for tests on hosts where
systemd is not PID 1 (this development machine's PID 1 is not systemd).

It plays what sd_notify(3) and sd_listen_fds(3) describe and what the shipped unit asks for
(``FileDescriptorStoreMax=``, ``KillMode=process``, ``Restart=on-failure``): a datagram socket as
``$NOTIFY_SOCKET`` that takes ``READY=1``, ``STOPPING=1``, ``FDSTORE=1`` with ``FDNAME=`` and the fds by
``SCM_RIGHTS`` (an fd already stored, the same open file, is kept once, as systemd does), and
``FDSTOREREMOVE=1``; a start that passes the stored fds at 3 onwards with ``LISTEN_PID``,
``LISTEN_FDS`` and ``LISTEN_FDNAMES``; ``restart`` (SIGTERM to the main process only, wait, start),
``crash`` (SIGKILL, start again as ``Restart=on-failure`` would) and ``stop`` (SIGTERM, wait, then the
store is released: every stored fd closed).
"""

from __future__ import annotations

import array
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

# Runs in the child between fork and the daemon's exec: sd_listen_fds(3) wants the fds at 3 onwards
# and LISTEN_PID naming the process that reads them (exec keeps the pid).
_TRAMPOLINE = """
import fcntl, os, sys
fds = [int(f) for f in sys.argv[1].split(",") if f]
moved = [fcntl.fcntl(f, fcntl.F_DUPFD_CLOEXEC, 3 + len(fds)) for f in fds]
for i, f in enumerate(moved):
    os.dup2(f, 3 + i, inheritable=True)
for f in fds:  # the service gets 3..3+n-1 and nothing else (an fd left at its old number would leak)
    if f >= 3 + len(fds):
        os.close(f)
if fds:
    os.environ["LISTEN_PID"] = str(os.getpid())
    os.environ["LISTEN_FDS"] = str(len(fds))
    os.environ["LISTEN_FDNAMES"] = sys.argv[2]
os.execv(sys.argv[3], sys.argv[3:])
"""


_libc = ctypes.CDLL(None, use_errno=True)
_SYS_KCMP, _KCMP_FILE = 312, 0  # x86_64


def _same_file(a: int, b: int) -> bool:
    pid = os.getpid()
    return int(_libc.syscall(_SYS_KCMP, pid, pid, _KCMP_FILE, a, b)) == 0


class FakeSystemd:
    def __init__(self, workdir: Path, command: list[str], *, fdstore_max: int = 4096) -> None:
        self.workdir = workdir
        self.command = command
        self.fdstore_max = fdstore_max
        self.log_path = workdir / "service.log"
        self.notify_path = workdir / "notify.sock"
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(self.notify_path))
        self._lock = threading.Lock()
        self.store: list[tuple[str, int]] = []  # (name, fd), in the order stored
        self.messages: list[str] = []
        self._ready = threading.Event()
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._closed = False
        self._thread = threading.Thread(target=self._receive, name="fake-systemd", daemon=True)
        self._thread.start()

    # -- the notify socket --------------------------------------------------------------------

    def _receive(self) -> None:
        fd_size = array.array("i").itemsize
        while not self._closed:
            try:
                data, ancdata, _, _ = self._sock.recvmsg(4096, socket.CMSG_SPACE(253 * fd_size))
            except OSError:
                return
            fds: list[int] = []
            for level, kind, payload in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    received = array.array("i")
                    received.frombytes(payload[:len(payload) - len(payload) % fd_size])
                    fds.extend(received)
            self._handle(data.decode(errors="replace"), fds)

    def _handle(self, text: str, fds: list[int]) -> None:
        fields = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
        with self._lock:
            self.messages.append(text)
            if fields.get("FDSTORE") == "1":
                name = fields.get("FDNAME", "stored")
                for fd in fds:
                    if len(self.store) >= self.fdstore_max or self._stored_already(fd):
                        os.close(fd)
                    else:
                        self.store.append((name, fd))
                return
            for fd in fds:  # fds with any other message are not kept
                os.close(fd)
            if fields.get("FDSTOREREMOVE") == "1":
                removed = fields.get("FDNAME")
                for stored_name, fd in [e for e in self.store if e[0] == removed]:
                    self.store.remove((stored_name, fd))
                    os.close(fd)
            if fields.get("READY") == "1":
                self._ready.set()

    def _stored_already(self, fd: int) -> bool:
        """The same open file description is stored already (systemd compares with kcmp(2) too: an
        inode does not tell two eventfds apart)."""
        return any(_same_file(fd, other) for _, other in self.store)

    def stored_names(self) -> list[str]:
        with self._lock:
            return [name for name, _ in self.store]

    # -- the service ----------------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> None:
        self._ready.clear()
        with self._lock:
            names = [name for name, _ in self.store]
            fds = [fd for _, fd in self.store]
        env = {**os.environ, "NOTIFY_SOCKET": str(self.notify_path), "FDSTORE": str(self.fdstore_max)}
        for key in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
            env.pop(key, None)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _TRAMPOLINE, ",".join(map(str, fds)), ":".join(names), *self.command],
                pass_fds=fds, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.starts += 1
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.05):
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"the service exited with {self.proc.returncode}:\n{self.log[-4000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no READY=1 within {timeout} s:\n{self.log[-4000:]}")

    @property
    def main_pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def signal_main(self, sig: int) -> None:
        """A signal to the main process whose answer is a new READY=1 (SIGUSR2: the daemon re-executes)."""
        assert self.proc is not None
        self._ready.clear()
        self.proc.send_signal(sig)

    def _signal_and_wait(self, sig: int, timeout: float) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)  # KillMode=process: the main process only
        return self.proc.wait(timeout)

    def restart(self, timeout: float = 60.0) -> int:
        """``systemctl restart``: SIGTERM to the main process, then a start with the stored fds."""
        code = self._signal_and_wait(signal.SIGTERM, timeout)
        self.start(timeout)
        return code

    def crash(self, timeout: float = 60.0) -> int:
        """The main process SIGKILLed; ``Restart=on-failure`` starts it again with the stored fds."""
        code = self._signal_and_wait(signal.SIGKILL, timeout)
        self.start(timeout)
        return code

    def stop(self, timeout: float = 60.0) -> int:
        """``systemctl stop``: SIGTERM, wait, then the fd store is released."""
        code = self._signal_and_wait(signal.SIGTERM, timeout) if self.proc and self.proc.poll() is None \
            else (self.proc.returncode if self.proc else 0)
        self.release_store()
        return code

    def release_store(self) -> None:
        with self._lock:
            for _, fd in self.store:
                os.close(fd)
            self.store.clear()

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.release_store()
        self._closed = True
        self._sock.close()

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
