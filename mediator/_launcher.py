"""Start a real ``vgpu-mediator run`` on a fresh configuration (demo, tests, benchmarks)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MediatorProcess", "running_mediator", "write_config"]


@dataclass
class MediatorProcess:
    config: Path
    sockets: Path
    workdir: Path
    proc: subprocess.Popen[bytes]
    log_path: Path

    def vm_socket(self, n: int = 1) -> Path:
        return self.sockets / f"vm{n}.sock"

    @property
    def control(self) -> Path:
        return self.sockets / "control.sock"

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, *paths: Path, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not all(p.exists() for p in paths):
            if self.proc.poll() is not None:
                raise RuntimeError(f"mediator exited with {self.proc.returncode}:\n{self.log[-4000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{[str(p) for p in paths]} did not appear:\n{self.log[-4000:]}")
            time.sleep(0.02)


def write_config(path: Path, sockets: Path, *, backend: str, vm_ids: list[int], extra: str = "",
                 quota: str = "2GiB", vm_extra: str = "") -> None:
    """``extra``: lines of ``[mediator]`` (and tables after it); ``vm_extra``: lines of every ``[[vm]]``."""
    vm_tables = "".join(f'\n[[vm]]\nid = {i}\nname = "vm{i}"\nmemory_quota = "{quota}"\n{vm_extra}'
                        for i in vm_ids)
    path.write_text(f'[mediator]\nsocket_dir = "{sockets}"\nbackend = "{backend}"\n'
                    f'region_size = "256MiB"\n{extra}\n{vm_tables}')


@contextlib.contextmanager
def running_mediator(workdir: Path, *, backend: str = "sim", vms: int = 1, extra: str = "",
                     journal: bool = False, vm_extra: str = "") -> Iterator[MediatorProcess]:
    """``journal``: tell the daemon its stdout is the journal (as systemd's ``JOURNAL_STREAM`` does)."""
    sockets = workdir / "sockets"
    config = workdir / "config.toml"
    log_path = workdir / "mediator.log"
    write_config(config, sockets, backend=backend, vm_ids=list(range(1, vms + 1)), extra=extra,
                 vm_extra=vm_extra)
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    with open(log_path, "wb") as log:
        if journal:
            stat = os.fstat(log.fileno())
            env["JOURNAL_STREAM"] = f"{stat.st_dev}:{stat.st_ino}"
        proc = subprocess.Popen([sys.executable, "-m", "mediator.cli", "run", "-c", str(config)],
                                stdout=log, stderr=subprocess.STDOUT, env=env)
    mediator = MediatorProcess(config, sockets, workdir, proc, log_path)
    try:
        mediator.wait_for(mediator.control, *(mediator.vm_socket(i) for i in range(1, vms + 1)))
        yield mediator
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
