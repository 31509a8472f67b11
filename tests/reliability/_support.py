"""Helpers for the reliability tests: read a VM's row of the daemon's status, wait for a condition,
and drive a guest's rings by hand (queue calls without reading their answers, then read them).

The daemon's per-VM figures come from the worker's stats block, which the worker publishes when it
goes idle (and at least every 50 ms while busy): a test that reads them right after a call waits for
them.
Likewise the control requests that change a worker (``set_quota``, ``inject_fault``) are answered once
sent, and the worker applies them when it next looks at its control socket: a test that needs one in
force waits for the worker's acknowledgement in the daemon's log (:func:`logged`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

from guest import GuestClient
from mediator._control_client import request
from mediator._launcher import MediatorProcess
from protocol import CALLS_BY_NAME, Completion

__all__ = ["applied", "churn", "cpu_seconds", "holds", "logged", "queue_nops", "take", "vm_status", "wait_for"]

_NOP = CALLS_BY_NAME["nop"].call_id


def vm_status(mediator: MediatorProcess, vm: int) -> dict[str, Any]:
    status: dict[str, Any] = request(mediator.control, {"cmd": "status"})["vms"][vm - 1]
    return status


def logged(mediator: MediatorProcess, **fields: Any) -> int:
    """How many of the daemon's (and its workers') log events carry all of ``fields``."""
    count = 0
    for line in mediator.log.splitlines():
        if not line.startswith("{"):
            continue
        event = json.loads(line)
        count += all(event.get(key) == value for key, value in fields.items())
    return count


def applied(mediator: MediatorProcess, payload: dict[str, Any], **ack: Any) -> None:
    """Send a control request and wait until the worker has logged ``ack`` once more than before."""
    before = logged(mediator, **ack)
    assert request(mediator.control, payload)["ok"]
    wait_for(f"the worker applied {payload}", lambda: logged(mediator, **ack) > before)


def wait_for(what: str, check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def holds(what: str, check: Callable[[], bool], duration: float) -> None:
    """Poll ``check`` for ``duration`` seconds: it must stay true throughout (that nothing happens)."""
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        assert check(), what
        time.sleep(0.02)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used (``/proc/<pid>/stat``)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def queue_nops(gpu: GuestClient, count: int) -> list[int]:
    """Publish ``count`` synchronous nops without reading a single completion; returns their seqs."""
    seqs = []
    for _ in range(count):
        gpu.seq += 1
        wait_for("room in the submission ring", lambda: gpu.sq.space() > 0)
        assert gpu.sq.push(seq=gpu.seq, call_id=_NOP)
        gpu._kick()
        seqs.append(gpu.seq)
    return seqs


def take(gpu: GuestClient, count: int, timeout: float = 30.0) -> list[Completion]:
    """Consume the next ``count`` completions in ring order, waiting (bounded spins) for each."""
    taken: list[Completion] = []
    deadline = time.monotonic() + timeout
    while len(taken) < count:
        if gpu.cq.pending() or gpu.cq.spin(50_000_000, 0):
            taken.append(gpu.cq.pop())
        assert time.monotonic() < deadline, f"{len(taken)} of {count} completions arrived"
    return taken


def churn(path: str, count: int, mode: str, at_once: int = 1) -> None:
    """Run ``count`` short-lived guest processes against the VM socket ``path``, ``at_once`` at a
    time, and print one JSON line of figures. Forked from this driver (which has loaded no CUDA and
    holds no client: the guest is pure Python), each is a whole process that connects, claims and
    opens a channel, and exits:

    * ``compute``: allocates 1 MiB, memsets, copies back and checks it; the even ones close their
      client (close request: the host frees the channel), the odd ones exit without freeing or
      closing anything (``os._exit``: their socket closes, the host closes their channel);
    * ``discovery``: what a GPU-discovery child does (init, device queries, cuMemGetInfo) and exits.

    A child that fails exits non-zero with its reason on stderr; the driver counts them."""
    started = time.monotonic()
    failed = 0
    done = 0
    while done < count:
        wave = []
        for i in range(done, min(done + at_once, count)):
            pid = os.fork()
            if pid == 0:  # the child: never returns
                code = 1
                try:
                    code = _short_life(path, i, mode)
                except BaseException as exc:  # reported by the driver, whatever it was
                    os.write(2, f"child {i}: {exc!r}\n".encode())
                os._exit(code)
            wave.append(pid)
        for pid in wave:
            _, status = os.waitpid(pid, 0)
            failed += status != 0
        done += len(wave)
    elapsed = time.monotonic() - started
    print(json.dumps({"count": count, "failed": failed, "seconds": round(elapsed, 2),
                      "per_process_ms": round(elapsed / count * 1000, 1)}), flush=True)


def _short_life(path: str, i: int, mode: str) -> int:
    gpu = GuestClient.connect(path)
    gpu.init()
    if mode == "discovery":
        free, total = gpu.mem_get_info()
        if gpu.device_count() != 1 or not gpu.device_name() or not 0 < free <= total:
            return 2
        gpu.device_total_mem()
        gpu.close()
        return 0
    ptr = gpu.mem_alloc(1 << 20)
    gpu.memset_d8(ptr, i % 251, 1 << 20)
    if gpu.memcpy_dtoh(ptr, 4096) != bytes([i % 251]) * 4096:
        return 3
    if i % 2:
        os._exit(0)  # no free, no close: the process just ends
    gpu.close()
    return 0
