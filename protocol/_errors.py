"""The protocol package's exceptions.

::

    ProtocolError                 root; carries the CUresult the guest should be answered with
    ├── RemoteProtocolError       the guest wrote something wrong (untrusted input refused)
    │   ├── RegionLayoutError     the region header is not one we can serve
    │   └── MalformedSubmissionError  one entry's header is malformed; that entry fails (_frames.py)
    └── LocalProtocolError        we were asked to produce something invalid (our bug)

Decoding untrusted bytes raises nothing but ``RemoteProtocolError`` (and its subclasses).
"""

from __future__ import annotations

from ._status import CUresult

__all__ = ["LocalProtocolError", "ProtocolError", "RegionLayoutError", "RemoteProtocolError"]


class ProtocolError(Exception):
    """Root of the protocol's errors; ``status`` is what the guest's call should return."""

    def __init__(self, message: str, status: CUresult = CUresult.CUDA_ERROR_INVALID_VALUE) -> None:
        super().__init__(message)
        self.status = status

    @property
    def message(self) -> str:
        return str(self.args[0])


class RemoteProtocolError(ProtocolError):
    """The peer (a guest) sent bytes that break the protocol or a call's contract."""


class RegionLayoutError(RemoteProtocolError):
    """The shared region's header does not describe a region we can serve."""


class LocalProtocolError(ProtocolError):
    """This side tried to encode something the protocol cannot carry."""
