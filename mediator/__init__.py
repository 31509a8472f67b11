"""vgpu-mediator's daemon: per-VM endpoints, worker processes, control socket, CLI."""

from typing import TYPE_CHECKING, Any

from ._config import ConfigError, MediatorConfig, VmConfig, load_config, parse_config
from ._session import SessionState, SessionStateMachine

if TYPE_CHECKING:
    from ._daemon import Daemon


def __getattr__(name: str) -> Any:
    # The daemon (and the worker module it imports) only when asked: ``python -m mediator._worker``
    # must not find itself imported by the package already (runpy's RuntimeWarning on stderr).
    if name == "Daemon":
        from ._daemon import Daemon

        return Daemon
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "ConfigError",
    "Daemon",
    "MediatorConfig",
    "SessionState",
    "SessionStateMachine",
    "VmConfig",
    "load_config",
    "parse_config",
]
