"""vgpu-mediator's daemon: per-VM endpoints, worker processes, control socket, CLI."""

from ._config import ConfigError, MediatorConfig, VmConfig, load_config, parse_config
from ._daemon import Daemon
from ._session import SessionState, SessionStateMachine

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
