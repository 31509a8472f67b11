"""A Python guest for vgpu-mediator: the handshake QEMU does, the rings, and driver-shaped calls."""

from ._client import CallResult, CudaCallError, DeviceGoneError, GuestClient
from ._handshake import HandshakeError, IvshmemPeers, receive_handshake

__all__ = [
    "CallResult",
    "CudaCallError",
    "DeviceGoneError",
    "GuestClient",
    "HandshakeError",
    "IvshmemPeers",
    "receive_handshake",
]
