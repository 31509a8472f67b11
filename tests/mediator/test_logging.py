"""What reaches journald: one JSON object per line on stdout, each at its priority under systemd."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from guest import GuestClient
from mediator._launcher import running_mediator
from tests.reliability._support import wait_for

pytestmark = pytest.mark.timeout(120)

# journald's stream reader (SyslogLevelPrefix=yes): an optional "<digit>" at the start is the priority
_PREFIX = re.compile(rb"^<([0-7])>")


def _journal_view(line: bytes) -> tuple[int | None, dict[str, object]]:
    """What journald files for one stdout line: (priority, the message parsed as JSON)."""
    match = _PREFIX.match(line)
    message = line[match.end():] if match else line
    return (int(match.group(1)) if match else None), json.loads(message)


def _exercise(workdir: Path, *, journal: bool) -> list[bytes]:
    """Start a daemon, attach a guest (a worker starts), let its lease run out (a warning), stop."""
    with running_mediator(workdir, vms=1, journal=journal) as mediator:
        with GuestClient.connect(mediator.vm_socket(1)) as gpu:
            gpu.nop()
            gpu._stop_heartbeat()  # as a process that stopped: the worker expires its channel
            wait_for("the expiry logged", lambda: "channel lease expired" in mediator.log)
        mediator.proc.terminate()
        assert mediator.proc.wait(20) == 0
        return mediator.log_path.read_bytes().splitlines()


def test_every_stdout_line_is_json_including_the_workers(tmp_path: Path) -> None:
    lines = _exercise(tmp_path, journal=False)
    events = [_journal_view(line) for line in lines]  # json.loads raises on any other line
    assert all(priority is None for priority, _ in events)
    assert any(event["event"] == "worker serving" for _, event in events)  # a worker's lines among them
    assert not any(b"RuntimeWarning" in line for line in lines)


def test_under_systemd_each_line_carries_its_priority(tmp_path: Path) -> None:
    events = [_journal_view(line) for line in _exercise(tmp_path, journal=True)]
    assert all(priority is not None for priority, _ in events)
    by_level = {(event["level"], priority) for priority, event in events}
    assert ("info", 6) in by_level and ("warning", 4) in by_level
    assert all(priority == {"debug": 7, "info": 6, "warning": 4, "error": 3, "critical": 2}[str(level)]
               for level, priority in by_level)


def test_python_warnings_and_foreign_log_records_are_json_too() -> None:
    script = ("import logging, warnings, structlog\n"
              "from mediator._logging import configure_logging\n"
              "configure_logging('info', journal=True)\n"
              "warnings.warn('careful', RuntimeWarning)\n"
              "logging.getLogger('asyncio').error('loop trouble')\n"
              "raise ValueError('unhandled')\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, check=False, timeout=60)
    assert result.returncode == 1 and result.stderr == b""
    events = [_journal_view(line) for line in result.stdout.splitlines()]
    assert [(p, e["level"]) for p, e in events] == [(4, "warning"), (3, "error"), (2, "critical")]
    assert "careful" in str(events[0][1]["event"]) and events[1][1]["logger"] == "asyncio"
    assert "ValueError: unhandled" in str(events[2][1]["exception"])
