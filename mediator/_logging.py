"""structlog set up for a service: one JSON object per line on stdout, at its priority for journald.

Every line the daemon and its workers write to stdout is one JSON object: structlog's own events,
the standard library's log records (asyncio, aiomqtt) and Python's warnings (``logging.captureWarnings``)
rendered alike, and an uncaught exception logged as one ``critical`` event with its traceback in
``exception``. Under systemd (``StandardOutput=journal``) each line starts with a syslog priority
prefix, ``<3>`` for an error, ``<4>`` a warning, ``<6>`` info: journald's stream reader takes it off
(``SyslogLevelPrefix=``, on by default) and files the line at that priority, so ``journalctl -p
warning`` shows warnings and errors and ``journalctl -o cat`` shows the JSON alone. The prefix is
written only when stdout *is* the journal: systemd sets ``JOURNAL_STREAM`` to the stream's
``device:inode``, which we compare with stdout's own (a terminal or a file gets plain JSON lines).
"""

from __future__ import annotations

import logging
import os
import sys
from types import TracebackType
from typing import Any, Final

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = ["SYSLOG_PRIORITY", "configure_logging", "stdout_is_journal"]

#: syslog priorities (RFC 5424) of our level names
SYSLOG_PRIORITY: Final = {"critical": 2, "error": 3, "exception": 3, "warning": 4, "warn": 4, "info": 6,
                          "debug": 7, "notset": 7}


def stdout_is_journal() -> bool:
    """Whether stdout is the journal stream systemd connected us to (``JOURNAL_STREAM=dev:ino``)."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    try:
        stat = os.fstat(sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return stream == f"{stat.st_dev}:{stat.st_ino}"


class _Render:
    """The last processor: the event as one JSON line, with journald's priority prefix if wanted."""

    def __init__(self, prefix: bool) -> None:
        self._json = structlog.processors.JSONRenderer()
        self._prefix = prefix

    def __call__(self, logger: WrappedLogger, name: str, event: EventDict) -> str:
        line = str(self._json(logger, name, event))
        if not self._prefix:
            return line
        return f"<{SYSLOG_PRIORITY.get(str(event.get('level', name)).lower(), 6)}>{line}"


def _shared() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def configure_logging(level: str = "info", *, json: bool = True, journal: bool | None = None) -> None:
    """Log JSON lines to stdout (``journal``: with priority prefixes; None: if stdout is the journal)."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    prefix = stdout_is_journal() if journal is None else journal
    renderer: Processor = _Render(prefix) if json else structlog.dev.ConsoleRenderer(colors=False)
    shared = _shared()
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )
    # the standard library's records (other libraries, warnings) as the same JSON lines
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, renderer]))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught


def _log_uncaught(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, tb)
        return
    log: Any = structlog.get_logger("uncaught")
    log.critical("uncaught exception", exc_info=(kind, value, tb))
