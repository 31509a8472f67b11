"""The client side of the ivshmem-server handshake: what QEMU's ivshmem-doorbell does on connect."""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass, field

__all__ = ["HandshakeError", "IvshmemPeers", "RefusedError", "receive_handshake"]

_MSG = struct.Struct("<q")


class HandshakeError(Exception):
    """The server's messages do not follow the ivshmem-server protocol."""


class RefusedError(HandshakeError):
    """The mediator refused the connection and said why (in place of the version: -2, a length, text)."""


@dataclass
class IvshmemPeers:
    my_id: int
    region_fd: int
    peers: dict[int, list[int]] = field(default_factory=dict)  # peer id -> vector eventfds

    def close(self) -> None:
        import os

        for fds in self.peers.values():
            for fd in fds:
                os.close(fd)
        os.close(self.region_fd)


def _recv(sock: socket.socket, deadline: float) -> tuple[int, int | None]:
    sock.settimeout(max(deadline - time.monotonic(), 0.001))
    data, fds, _flags, _addr = socket.recv_fds(sock, _MSG.size, 4)
    if not data:
        raise HandshakeError("server closed the connection during the handshake")
    if len(data) != _MSG.size:
        raise HandshakeError(f"short message of {len(data)} bytes")
    for extra in fds[1:]:
        import os

        os.close(extra)
    return _MSG.unpack(data)[0], (fds[0] if fds else None)


def receive_handshake(sock: socket.socket, *, host_vectors: int = 1, my_vectors: int | None = None,
                      timeout: float = 5.0) -> IvshmemPeers:
    """Read version, id, region fd and eventfds until our own vectors have all arrived (as many as
    the host's, unless ``my_vectors`` says; the host sends all of its own first)."""
    deadline = time.monotonic() + timeout
    version, _ = _recv(sock, deadline)
    if version == -2:
        length, _ = _recv(sock, deadline)
        text = b""
        while len(text) < min(max(length, 0), 4096):
            chunk = sock.recv(min(length, 4096) - len(text))
            if not chunk:
                break
            text += chunk
        raise RefusedError(text.decode(errors="replace") or "the mediator refused the connection")
    if version != 0:
        raise HandshakeError(f"ivshmem protocol version {version}, expected 0")
    my_id, _ = _recv(sock, deadline)
    if my_id < 0 or my_id > 0xFFFF:
        raise HandshakeError(f"peer id {my_id} out of range")
    marker, region_fd = _recv(sock, deadline)
    if marker != -1 or region_fd is None:
        raise HandshakeError("expected -1 with the shared memory fd")
    result = IvshmemPeers(my_id, region_fd)
    def mine() -> int:
        return my_vectors if my_vectors is not None else max(len(result.peers.get(0, [])), 1)

    while len(result.peers.get(my_id, [])) < mine() or any(
        len(v) < host_vectors for k, v in result.peers.items() if k != my_id
    ) or len(result.peers) < 2:
        peer, fd = _recv(sock, deadline)
        if fd is None:
            result.peers.pop(peer, None)  # a peer went away
            continue
        result.peers.setdefault(peer, []).append(fd)
    sock.settimeout(None)
    return result
