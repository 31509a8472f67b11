"""A Python guest for vgpu-mediator: the handshake QEMU does, the rings, and driver-shaped calls."""

from ._client import CallResult, CudaCallError, DeviceGoneError, GuestClient
from ._handshake import HandshakeError, IvshmemPeers, receive_handshake
from ._pinned import PinnedBuffer, host_alloc, host_free, memcpy_dtoh_pinned, memcpy_htod_pinned

__all__ = [
    "CallResult",
    "CudaCallError",
    "DeviceGoneError",
    "GuestClient",
    "HandshakeError",
    "IvshmemPeers",
    "PinnedBuffer",
    "host_alloc",
    "host_free",
    "memcpy_dtoh_pinned",
    "memcpy_htod_pinned",
    "receive_handshake",
]
