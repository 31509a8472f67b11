"""What the fuzz targets share: the exceptions a target may let escape, and logs that stay quiet but
still catch the crashes the ring server swallows.

The ring server answers ``CUDA_ERROR_UNKNOWN`` to a call whose handler raised something that is not a
:class:`executor.CudaError` (a bug of ours) and logs ``call crashed in the executor``, so that one VM's
bug never stops its worker. A fuzzer must see those bugs: :func:`quiet_logs` installs a structlog
processor that keeps the exception of every such event, and :func:`raise_swallowed` re-raises it after
the call, so libFuzzer reports it as the crash it is.
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import MutableMapping
from typing import Any

import structlog

from protocol import LocalProtocolError, ProtocolError

__all__ = ["ALLOWED", "SwallowedCrashError", "allowed", "quiet_logs", "raise_swallowed"]

#: the only exceptions untrusted bytes may raise: the protocol's own, for "the guest sent this wrong"
#: (LocalProtocolError, "we produced something invalid", is a bug and is re-raised by :func:`allowed`)
ALLOWED = (ProtocolError,)

_CRASH_EVENTS = frozenset({"call crashed in the executor"})
_swallowed: list[BaseException] = []


class SwallowedCrashError(AssertionError):
    """The ring server caught and answered an exception that no handler should ever raise."""


def _keep_crashes(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    if event.get("event") in _CRASH_EVENTS:
        exc = sys.exc_info()[1]
        _swallowed.append(exc if exc is not None else RuntimeError(str(event)))
    raise structlog.DropEvent


def quiet_logs() -> None:
    """Drop every log line (warnings cheaply, before formatting), keeping swallowed crashes.

    Warnings become errors as well: a NumPy overflow warning inside a handler is a handler that does
    not control its arithmetic, which a fuzzer should report rather than print.
    """
    structlog.configure(
        processors=[_keep_crashes],
        wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR),
        cache_logger_on_first_use=True,
    )
    warnings.simplefilter("error")


def raise_swallowed() -> None:
    """Re-raise the first crash the server swallowed since the last call (then forget them)."""
    if _swallowed:
        first = _swallowed[0]
        _swallowed.clear()
        raise SwallowedCrashError(f"the ring server swallowed {first!r}") from first


def allowed(exc: BaseException) -> bool:
    """Whether ``exc`` is an escape the protocol permits for untrusted input."""
    return isinstance(exc, ALLOWED) and not isinstance(exc, LocalProtocolError)
