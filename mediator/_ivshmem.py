"""The ivshmem-server protocol (QEMU ``docs/specs/ivshmem-spec.rst``), server side.

On connect the server sends, as little-endian int64 messages with file descriptors attached by
``SCM_RIGHTS``: the protocol version (0); the client's own peer id; ``-1`` with the shared memory fd;
then for every other peer, its id once per vector with that vector's eventfd; finally the client's
own id once per vector with its own eventfds. The mediator is itself peer 0 and the only other peer,
so a guest's doorbell write of ``0 << 16 | vector`` lands on the mediator's eventfd. Several peers may
share one VM's region (QEMU, host programs): each gets its own peer id, the region, the host's
vector eventfds and the VM's guest vector eventfds.

A connection the mediator refuses gets, in place of the protocol version, :data:`REFUSED` (-2), then
the length of a UTF-8 reason and the reason itself (an int64 and that many bytes), so that a program
can log why; QEMU logs a version mismatch.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Sequence
from typing import Final

__all__ = ["HOST_PEER_ID", "IVSHMEM_PROTOCOL_VERSION", "REFUSED", "send_handshake", "send_message",
           "send_refusal"]

IVSHMEM_PROTOCOL_VERSION: Final = 0
HOST_PEER_ID: Final = 0
REFUSED: Final = -2
MAX_REASON: Final = 1024
_MSG = struct.Struct("<q")


def send_message(sock: socket.socket, value: int, fd: int | None = None) -> None:
    data = _MSG.pack(value)
    if fd is None:
        sock.sendall(data)
    else:
        socket.send_fds(sock, [data], [fd])


def send_handshake(
    sock: socket.socket, *, client_id: int, region_fd: int,
    host_vector_fds: Sequence[int], guest_vector_fds: Sequence[int],
) -> None:
    """Everything a freshly connected client must receive, in the spec's order."""
    send_message(sock, IVSHMEM_PROTOCOL_VERSION)
    send_message(sock, client_id)
    send_message(sock, -1, region_fd)
    for fd in host_vector_fds:
        send_message(sock, HOST_PEER_ID, fd)
    for fd in guest_vector_fds:
        send_message(sock, client_id, fd)


def send_refusal(sock: socket.socket, reason: str) -> None:
    """Tell a connection why it is refused (best effort: it may be gone already)."""
    text = reason.encode()[:MAX_REASON]
    try:
        sock.setblocking(True)
        sock.settimeout(0.5)
        sock.sendall(_MSG.pack(REFUSED) + _MSG.pack(len(text)) + text)
    except OSError:
        pass
