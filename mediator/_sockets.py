"""The host side of our Unix sockets: a socket directory we can trust, sockets bound without following
links, who is at the other end (``SO_PEERCRED``), and one daemon per directory (a lock).

Why each check: the daemon usually runs with more privilege than QEMU's user or an operator. A socket
directory someone else can write lets them swap a socket for a symlink between our ``unlink``, ``bind``
and ``chmod`` (a root daemon would then ``chmod`` whatever the link names), or put their own listener in
its place. So the directory must be ours (or root's), writable by nobody else, and every parent likewise
(or sticky, as ``/tmp`` is); a socket is created with its final mode (``umask`` around ``bind``) and
given away with ``lchown``, which never follows a link; a stale path is removed only if it is a socket.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import grp
import os
import pwd
import socket
import stat
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "AF_UNIX_PATH_MAX", "DirectoryLock", "HostSetupError", "PeerCredentials", "PeerPolicy", "SocketAccess",
    "bind_unix", "lock_socket_dir", "peer_credentials", "prepare_socket_dir", "resolve_group", "resolve_user",
    "socket_access",
]

#: sun_path is 108 bytes on Linux, one of them the terminating NUL
AF_UNIX_PATH_MAX = 107
_SO_PEERGROUPS = getattr(socket, "SO_PEERGROUPS", 59)  # Linux ≥ 4.13; Python 3.11 lacks the name
_MAX_PEER_GROUPS = 256


class HostSetupError(Exception):
    """The host is not set up so that the daemon can serve safely; the message says what to fix."""


# -- users and groups -------------------------------------------------------------------------------


def resolve_user(spec: str | int) -> int:
    if isinstance(spec, int) or spec.isdigit():
        return int(spec)
    try:
        return pwd.getpwnam(spec).pw_uid
    except KeyError:
        raise HostSetupError(f"no user {spec!r} on this host") from None


def resolve_group(spec: str | int) -> int:
    if isinstance(spec, int) or spec.isdigit():
        return int(spec)
    try:
        return grp.getgrnam(spec).gr_gid
    except KeyError:
        raise HostSetupError(f"no group {spec!r} on this host") from None


# -- who is at the other end ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PeerCredentials:
    """The connecting process as the kernel saw it at ``connect()``: not what it claims."""

    pid: int
    uid: int
    gid: int
    groups: frozenset[int]

    def describe(self) -> str:
        return f"pid {self.pid} uid {self.uid} gid {self.gid}"


def peer_credentials(sock: socket.socket) -> PeerCredentials | None:
    """The peer's pid, uid, gid and supplementary groups, or None where the kernel gives none."""
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    pid, uid, gid = struct.unpack("3i", raw)
    groups: frozenset[int] = frozenset()
    with contextlib.suppress(OSError):  # older kernels: the primary group only
        raw_groups = sock.getsockopt(socket.SOL_SOCKET, _SO_PEERGROUPS, 4 * _MAX_PEER_GROUPS)
        groups = frozenset(struct.unpack(f"{len(raw_groups) // 4}I", raw_groups[: len(raw_groups) // 4 * 4]))
    return PeerCredentials(pid, uid, gid, groups)


@dataclass(frozen=True, slots=True)
class PeerPolicy:
    """Who may use a socket: root and the daemon's own user always; then these users and groups."""

    uids: frozenset[int] = frozenset()
    gids: frozenset[int] = frozenset()

    def allows(self, peer: PeerCredentials | None) -> bool:
        if peer is None:  # no credentials from the kernel: file permissions are all we have
            return True
        if peer.uid in (0, os.geteuid()) or peer.uid in self.uids:
            return True
        return bool(self.gids & (peer.groups | {peer.gid}))


@dataclass(frozen=True, slots=True)
class SocketAccess:
    """A socket file's mode and owner (-1: the daemon's), and who may stay connected to it."""

    mode: int
    uid: int = -1
    gid: int = -1
    policy: PeerPolicy = PeerPolicy()


def socket_access(owner: str | int | None, group: str | int | None) -> SocketAccess:
    """A VM's socket: given to ``owner`` (0600), or to ``group`` (0660) when one is named; a peer
    must be ``owner``, or without an owner a member of ``group``; neither named: root's only."""
    uid = resolve_user(owner) if owner is not None else -1
    gid = resolve_group(group) if group is not None else -1
    if uid != -1:
        policy = PeerPolicy(uids=frozenset({uid}))
    else:
        policy = PeerPolicy(gids=frozenset({gid}) if gid != -1 else frozenset())
    return SocketAccess(mode=0o660 if gid != -1 else 0o600, uid=uid, gid=gid, policy=policy)


# -- the directory ----------------------------------------------------------------------------------


def _describe_owner(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def _check_trusted(path: Path, st: os.stat_result, *, allow_sticky: bool) -> None:
    if st.st_uid not in (0, os.geteuid()):
        raise HostSetupError(f"{path} is owned by {_describe_owner(st.st_uid)}, not by this daemon's user or "
                             "root; someone else could replace our sockets there")
    writable_by_others = st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    if writable_by_others and not (allow_sticky and st.st_mode & stat.S_ISVTX):
        raise HostSetupError(f"{path} is writable by its group or by everyone (mode "
                             f"{stat.S_IMODE(st.st_mode):04o}); make it 0755 or tighter")


def prepare_socket_dir(path: Path) -> None:
    """Create ``path`` (mode 0755) if absent, then check it and its parents can be trusted."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        parent = path.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            os.mkdir(path, 0o755)
            os.chmod(path, 0o755)  # the umask may have taken bits; a fresh directory is not a link
        except OSError as exc:
            raise HostSetupError(f"cannot create socket_dir {path}: {exc.strerror}") from None
        st = os.lstat(path)
    except OSError as exc:
        raise HostSetupError(f"cannot use socket_dir {path}: {exc.strerror}") from None
    if stat.S_ISLNK(st.st_mode):
        raise HostSetupError(f"socket_dir {path} is a symbolic link; name the directory itself")
    if not stat.S_ISDIR(st.st_mode):
        raise HostSetupError(f"socket_dir {path} is not a directory")
    _check_trusted(path, st, allow_sticky=False)
    for ancestor in _ancestors(Path(os.path.realpath(path.parent))):
        _check_trusted(ancestor, os.stat(ancestor), allow_sticky=True)
    if not os.access(path, os.W_OK | os.X_OK, effective_ids=True):
        raise HostSetupError(f"socket_dir {path} is not writable by this daemon's user "
                             f"({_describe_owner(os.geteuid())})")


def _ancestors(path: Path) -> Iterator[Path]:
    yield path
    yield from path.parents


# -- one daemon per directory -----------------------------------------------------------------------


class DirectoryLock:
    """An ``flock`` on ``<socket_dir>/.lock``, held for the daemon's life; the file names its pid."""

    def __init__(self, fd: int, path: Path) -> None:
        self.fd = fd
        self.path = path

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # the lock goes with the descriptor; the file stays (unlinking would race)
            self.fd = -1


def lock_socket_dir(directory: Path) -> DirectoryLock:
    path = directory / ".lock"
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise HostSetupError(f"{path} is a symbolic link; remove it") from None
        raise HostSetupError(f"socket_dir {directory} is not writable by this daemon's user "
                             f"({_describe_owner(os.geteuid())}): cannot create {path.name}: "
                             f"{exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EACCES):
            raise HostSetupError(f"another vgpu-mediator (pid {holder}) is serving {directory}; "
                                 "stop it first, or give this one another socket_dir") from None
        raise HostSetupError(f"cannot lock {path}: {exc.strerror}") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return DirectoryLock(fd, path)


# -- sockets ----------------------------------------------------------------------------------------


def _remove_stale(path: Path) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        kind = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "not a socket"
        raise HostSetupError(f"{path} exists and is {kind}; remove it (the daemon never follows or "
                             "replaces anything but its own sockets)")
    path.unlink()  # unlink removes the name, never what a link points at


def bind_unix(path: Path, *, mode: int, uid: int = -1, gid: int = -1, backlog: int = 16) -> socket.socket:
    """A listening socket at ``path`` with ``mode``, owned by ``uid``/``gid`` (-1: ours).

    It is bound under a temporary name, given its owner, made to listen, and only then renamed into
    place: whoever sees ``path`` appear can connect at once, and never finds it with a looser mode or
    another owner."""
    for name in (path, path.with_name(f".{os.getpid()}.tmp")):
        if len(os.fsencode(name)) > AF_UNIX_PATH_MAX:
            raise HostSetupError(f"{name} is {len(os.fsencode(name))} bytes; a Unix socket path may have at "
                                 f"most {AF_UNIX_PATH_MAX}")
    temporary = path.with_name(f".{os.getpid()}.tmp")
    _remove_stale(path)
    _remove_stale(temporary)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    old_umask = os.umask(0o777 & ~mode)  # born with its final mode: no window with a looser one
    try:
        sock.bind(str(temporary))
    except OSError as exc:
        sock.close()
        raise HostSetupError(f"cannot create {path}: {exc.strerror}") from None
    finally:
        os.umask(old_umask)
    try:
        if uid != -1 or gid != -1:
            os.chown(temporary, uid, gid, follow_symlinks=False)
        sock.listen(backlog)
        os.rename(temporary, path)  # rename replaces the name itself, never what a link points at
    except OSError as exc:
        sock.close()
        with contextlib.suppress(OSError):
            temporary.unlink()
        why = exc.strerror
        if exc.errno == errno.EPERM:
            why = f"{why} (giving a socket to another user needs root or CAP_CHOWN; see docs/operations.md)"
        raise HostSetupError(f"cannot create {path} (owner {uid}, group {gid}): {why}") from None
    sock.setblocking(False)
    return sock
