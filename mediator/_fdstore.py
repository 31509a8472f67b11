"""File descriptors that outlive the supervisor: systemd's fd store, and a re-exec by hand.

What a VM needs to keep running through a restart of the supervisor is a set of file descriptors:
its listening socket, QEMU's connection, the region memfd, the two eventfds, the stats and trace
memfds, the worker's control socket and a small memfd with the session's bookkeeping. The supervisor
keeps every one of them by name in :data:`FDS`. Under systemd (``$NOTIFY_SOCKET``, and ``$FDSTORE``
above 0: ``FileDescriptorStoreMax=`` in the unit) each is also sent to the service manager when it is
created (``FDSTORE=1`` + ``FDNAME=``, the fd by ``SCM_RIGHTS``, see sd_notify(3)) and withdrawn when
it is closed (``FDSTOREREMOVE=1``); systemd hands the stored ones to the next process of the unit,
after a restart or a crash, as sd_listen_fds(3) describes: at fd 3 onwards, with ``LISTEN_PID``,
``LISTEN_FDS`` and ``LISTEN_FDNAMES``. A re-exec by hand (SIGUSR2) hands them over the same way
(:func:`reexec`), so the starting supervisor has a single way in (:func:`inherited`).

A worker's control socket is in the store too: while any copy of the supervisor's end is open the
worker sees no end of file and keeps serving, waiting to be adopted; when systemd releases the store
(``systemctl stop``) or no store exists, the last copy closes and the worker drains and exits.
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import os
import socket
import sys
from typing import NoReturn

import structlog

__all__ = ["FDS", "FdKeeper", "inherited", "reexec", "store_enabled"]

log = structlog.get_logger("fdstore")

#: the first fd sd_listen_fds(3) passes
LISTEN_FDS_START = 3
_LISTEN_ENV = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


def _notify_socket() -> str | None:
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return None
    return "\0" + address[1:] if address.startswith("@") else address


def store_enabled() -> bool:
    """Whether systemd keeps our fds: under systemd with ``$FDSTORE`` (systemd 254 and later set it
    from ``FileDescriptorStoreMax=``; the shipped unit sets it too, for older ones) above 0."""
    try:
        return _notify_socket() is not None and int(os.environ.get("FDSTORE", "0")) > 0
    except ValueError:
        return False


def _send(message: str, fds: list[int]) -> bool:
    address = _notify_socket()
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
            sock.sendmsg([message.encode()], ancillary, 0, address)
    except OSError as exc:
        log.error("fd store message not sent", message=message.splitlines()[0], error=str(exc))
        return False
    return True


class FdKeeper:
    """The fds that must survive the supervisor, by name (one fd per name). The keeper holds its own
    duplicate of each: whatever the event loop does with the fd a session works with (closing it
    when a transport goes away), the kept one stays open until :meth:`forget`."""

    def __init__(self) -> None:
        self._fds: dict[str, int] = {}
        self._handed_over: set[str] = set()  # inherited and not yet claimed

    def keep(self, name: str, fd: int) -> None:
        """Keep a duplicate of ``fd`` as ``name`` (replacing one of that name) and, under systemd,
        store it."""
        if name in self._fds:
            self.forget(name)
        own = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, LISTEN_FDS_START)
        self._fds[name] = own
        if store_enabled():
            _send(f"FDSTORE=1\nFDNAME={name}", [own])

    def forget(self, name: str) -> None:
        """``name`` is done with: withdrawn from the store and the kept duplicate closed."""
        self._handed_over.discard(name)
        own = self._fds.pop(name, None)
        if own is None:
            return
        close_quietly(own)
        if store_enabled():
            _send(f"FDSTOREREMOVE=1\nFDNAME={name}", [])

    def adopt(self, fds: dict[str, int]) -> None:
        """Fds handed over at start: kept as they are (already in the store, if there is one)."""
        self._fds.update(fds)
        self._handed_over.update(fds)

    def take(self, name: str) -> int | None:
        """A duplicate of the handed-over fd ``name`` for whoever will use it (None: none was handed
        over, or it was claimed already); the keeper goes on keeping the original."""
        if name not in self._handed_over:
            return None
        self._handed_over.discard(name)
        return os.dup(self._fds[name])

    def take_group(self, prefix: str) -> dict[str, int]:
        """:meth:`take` of every handed-over fd whose name starts with ``prefix``, by the rest of its name."""
        names = sorted(n for n in self._handed_over if n.startswith(prefix))
        return {n[len(prefix):]: fd for n in names if (fd := self.take(n)) is not None}

    def unclaimed(self) -> list[str]:
        return sorted(self._handed_over)

    def snapshot(self) -> dict[str, int]:
        return dict(self._fds)


#: the supervisor's keeper (one per process, as systemd's store is one per unit)
FDS = FdKeeper()


def inherited() -> dict[str, int]:
    """The fds systemd (or our own re-exec) passed to this process, by name; made close-on-exec and
    the environment variables cleared, so that no child takes them for its own."""
    try:
        pid = int(os.environ.get("LISTEN_PID", "0"))
        count = int(os.environ.get("LISTEN_FDS", "0"))
    except ValueError:
        pid, count = 0, 0
    names = os.environ.get("LISTEN_FDNAMES", "").split(":")
    for key in _LISTEN_ENV:
        os.environ.pop(key, None)
    if pid != os.getpid() or count <= 0:
        return {}
    fds: dict[str, int] = {}
    for index in range(count):
        fd = LISTEN_FDS_START + index
        name = names[index] if index < len(names) and names[index] else f"unknown-{index}"
        try:
            os.set_inheritable(fd, False)
        except OSError:
            continue
        if name in fds:  # the store may hold a name twice: keep the first, close the rest
            os.close(fd)
            continue
        fds[name] = fd
    return fds


def reexec(fds: dict[str, int], argv: list[str] | None = None) -> NoReturn:
    """Replace this process by a fresh supervisor (the installed code, as it is now on disk) that
    inherits ``fds`` at 3 onwards with the environment sd_listen_fds(3) reads. Same pid: the workers
    stay our children and systemd's main pid does not change."""
    names = []
    for name, fd in fds.items():
        try:
            os.fstat(fd)
        except OSError:  # our bug: a kept fd was closed without forget(); the rest still goes over
            log.error("kept fd is closed; not handed over", name=name, fd=fd)
            continue
        names.append(name)
    # first out of the way of the target numbers, then into place: no fd clobbers another
    moved = [fcntl_dup_above(fds[n], LISTEN_FDS_START + len(names)) for n in names]
    for index, fd in enumerate(moved):
        target = LISTEN_FDS_START + index
        os.dup2(fd, target, inheritable=True)
        os.close(fd)
    os.environ["LISTEN_PID"] = str(os.getpid())
    os.environ["LISTEN_FDS"] = str(len(names))
    os.environ["LISTEN_FDNAMES"] = ":".join(names)
    command = argv if argv is not None else [sys.executable, *sys.orig_argv[1:]]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(command[0], command)


def fcntl_dup_above(fd: int, lowest: int) -> int:
    """A close-on-exec duplicate of ``fd`` numbered ``lowest`` or higher."""
    return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, lowest)


def close_quietly(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)
