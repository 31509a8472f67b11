"""A worker the supervisor did not start itself: one a previous supervisor started and left running.

After a re-exec the worker is still our child (same pid); after a restart by systemd or a crash it
belongs to whoever reaps orphans. Either way a pidfd (pidfd_open(2)) says when it exits and sends it
signals without the risk of a recycled pid; the exit code is known only for our own child.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import signal
from dataclasses import asdict, dataclass
from typing import Protocol

__all__ = ["UNKNOWN_EXIT", "AdoptedWorker", "SessionRecord", "WorkerProcess"]

#: the exit code reported for an adopted worker that was not our child (its real one is not ours to read)
UNKNOWN_EXIT = -255


class WorkerProcess(Protocol):
    """What a session needs of its worker (asyncio's Process, or an adopted one)."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    async def wait(self) -> int: ...

    def send_signal(self, sig: int) -> None: ...


class AdoptedWorker:
    def __init__(self, pid: int) -> None:
        self._pid = pid
        self._returncode: int | None = None
        self._pidfd = os.pidfd_open(pid)  # ProcessLookupError: it is gone already
        os.set_inheritable(self._pidfd, False)
        self._exited: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def pid(self) -> int:
        return self._pid

    @property
    def returncode(self) -> int | None:
        if self._returncode is None and self._pidfd >= 0:
            self._poll()
        return self._returncode

    def _poll(self) -> None:
        """Reap it if it has ended (a pidfd is readable once the process has exited)."""
        if not select.select([self._pidfd], [], [], 0)[0]:
            return
        code = UNKNOWN_EXIT
        with contextlib.suppress(ChildProcessError):
            pid, status = os.waitpid(self._pid, os.WNOHANG)
            if pid:
                code = os.waitstatus_to_exitcode(status)
        self._returncode = code
        if self._loop is not None:
            self._loop.remove_reader(self._pidfd)
            self._loop = None
        os.close(self._pidfd)
        self._pidfd = -1
        if self._exited is not None and not self._exited.done():
            self._exited.set_result(None)

    async def wait(self) -> int:
        if self.returncode is None:
            if self._exited is None:
                self._loop = asyncio.get_running_loop()
                self._exited = self._loop.create_future()
                self._loop.add_reader(self._pidfd, self._poll)
            await asyncio.shield(self._exited)
        assert self._returncode is not None
        return self._returncode

    def send_signal(self, sig: int) -> None:
        if self._pidfd < 0:
            raise ProcessLookupError(self._pid)
        signal.pidfd_send_signal(self._pidfd, sig)


@dataclass
class SessionRecord:
    """A session's bookkeeping, kept in a memfd beside its other fds so a new supervisor can adopt it."""

    vm_id: int
    client_id: int
    region_size: int
    worker_pid: int
    started: float
    worker_start: int = 0  # the worker's start time (mediator._vm.process_start): pid reuse is told apart
    restarts: int = 0
    calls_before_restart: int = 0
    errors_before_restart: int = 0
    va_floor: int = 0
    tracing: bool = False
    memory_quota: int | None = None

    def write(self, fd: int) -> None:
        data = json.dumps(asdict(self)).encode()
        os.pwrite(fd, data.ljust(os.fstat(fd).st_size, b" "), 0)  # never a moment with a short file
        os.ftruncate(fd, len(data))

    @classmethod
    def read(cls, fd: int) -> SessionRecord:
        size = os.fstat(fd).st_size
        return cls(**json.loads(os.pread(fd, size, 0)))
