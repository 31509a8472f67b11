"""Many CUDA processes on one VM at once, each on a channel of its own (docs/guest.md, "Processes"):
``mp_worker`` processes on the shim against a real mediator (sim) through the Unix-socket transport,
exactly as processes of one guest share its ivshmem device. The mediator's status shows the channels,
their owners and what each holds; a process that dies gives everything back; a stopped process
comes back to a closed channel and says why."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mediator._control_client import request
from mediator._launcher import MediatorProcess, running_mediator

from ._support import ShimBuild, Worker, build_mp_worker, shim_env

DEVICE_UNAVAILABLE = 46  # cudaErrorDevicesUnavailable
MIB = 1 << 20


@pytest.fixture(scope="module")
def mp_worker(shim: ShimBuild, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_mp_worker(shim, tmp_path_factory.mktemp("mp-worker"))


class Vm:
    """A mediator with one VM (sim), and processes of that VM's guest on the shim."""

    def __init__(self, mediator: MediatorProcess, binary: Path, env: dict[str, str]) -> None:
        self.mediator = mediator
        self.binary = binary
        self.env = env
        self.workers: list[Worker] = []

    def start(self, *args: str) -> Worker:
        worker = Worker(self.binary, self.env, *args)
        self.workers.append(worker)
        return worker

    def status(self) -> dict[str, Any]:
        row: dict[str, Any] = next(v for v in request(self.mediator.control, {"cmd": "status"})["vms"]
                                   if v["name"] == "vm1")
        return row

    def channel_of(self, pid: int) -> dict[str, Any] | None:
        """The open channel whose owner is ``pid``, if any."""
        return next((c for c in self.status()["channels"] if c["owner_pid"] == pid and c["state"] == "open"), None)

    def wait(self, what: str, done: Callable[[dict[str, Any]], bool], timeout: float = 30) -> float:
        """Poll the VM's status until ``done(status)``; returns the seconds it took."""
        started = time.monotonic()
        while not done(row := self.status()):
            if time.monotonic() - started > timeout:
                raise AssertionError(f"{what}: not within {timeout} s; status: {json.dumps(row, indent=1)}")
            time.sleep(0.005)
        return time.monotonic() - started

    def empty(self, row: dict[str, Any]) -> bool:
        return bool(row["memory_used"] == 0 and row["live_handles"] == 0 and row["channels_open"] == 0)


@pytest.fixture
def vm(mp_worker: Path, shim: ShimBuild, tmp_path: Path) -> Iterator[Vm]:
    with running_mediator(tmp_path, backend="sim", vms=1) as mediator:
        conf = tmp_path / "guest.conf"
        conf.write_text(f"socket = {mediator.vm_socket(1)}\nlog = stderr\n")
        machine = Vm(mediator, mp_worker, shim_env(shim, conf))
        try:
            yield machine
        finally:
            for worker in machine.workers:
                worker.kill()


def passed(worker: Worker, timeout: float = 120) -> None:
    code = worker.finish(timeout)
    report = worker.report
    failed = [f"{r.name}: {r.value}" for r in report.results.values() if not r.ok]
    assert code == 0 and not failed and report.verdict == "SELFTEST PASS", (
        f"pid {worker.pid} exited {code}: {failed}\n{worker.text}\n{worker.stderr}")


@pytest.mark.timeout(240)
def test_two_processes_compute_at_once_each_on_its_own_channel_with_its_own_handles(vm: Vm) -> None:
    a, b = vm.start("pair"), vm.start("pair")
    ptr_a = a.expect("READY").split("ptr=")[1]
    ptr_b = b.expect("READY").split("ptr=")[1]
    assert ptr_a != ptr_b  # device addresses are never shared between contexts of a VM
    a.send(f"peer {ptr_b}")
    b.send(f"peer {ptr_a}")
    a.expect("COMPUTING")
    b.expect("COMPUTING")
    row = vm.status()  # both are between rounds or in one: both channels open, each holding its own
    mine = {c["owner_pid"]: c for c in row["channels"] if c["state"] == "open"}
    assert set(mine) == {a.pid, b.pid}, row["channels"]
    assert mine[a.pid]["index"] != mine[b.pid]["index"]
    assert all(c["memory_used"] >= 3 * MIB and c["live_handles"] >= 1 for c in mine.values()), mine
    assert row["memory_used"] == sum(c["memory_used"] for c in mine.values())
    a.send("stop")
    b.send("stop")
    passed(a)
    passed(b)
    # each tried the other's buffer (a copy from it, a free of it) and was refused, and computed on
    assert a.report["peer_refused"].ok and b.report["peer_refused"].ok
    vm.wait("both channels closed and everything freed", vm.empty)


@pytest.mark.timeout(240)
def test_a_process_killed_mid_copy_gives_its_memory_back_within_a_second(vm: Vm, artifacts: Path) -> None:
    other = vm.start("hold", "16")
    other.expect("READY")
    victim = vm.start("copy-loop", "256")
    victim.expect("COPYING round=2")  # the first copy finished, the second is going on
    held = vm.channel_of(victim.pid)
    assert held is not None and held["memory_used"] >= 256 * MIB, held
    others = vm.channel_of(other.pid)
    assert others is not None
    os.kill(victim.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    vm.wait("the killed process's memory back",
            lambda row: row["memory_used"] == others["memory_used"] and vm.channel_of(victim.pid) is None, timeout=10)
    freed_after = time.monotonic() - killed_at
    victim.proc.wait()
    (artifacts / "sigkill-free-host.json").write_text(json.dumps(
        {"transport": "socket", "freed_after_s": round(freed_after, 3), "bytes": held["memory_used"]}) + "\n")
    assert freed_after < 1.0, f"freed {freed_after:.3f} s after the kill"
    other.send("stop")
    passed(other)  # undisturbed: every round it computed was right
    vm.wait("everything freed", vm.empty)


@pytest.mark.timeout(120)
def test_a_stopped_process_past_its_lease_finds_its_channel_closed_and_says_why(vm: Vm) -> None:
    worker = vm.start("wait")
    worker.expect("READY")
    os.kill(worker.pid, signal.SIGSTOP)
    try:
        # the heartbeat stood still for the lease: the host closes the channel and frees its memory
        vm.wait("the stopped process's channel expired", lambda row: row["channels_expired"] == 1, timeout=10)
        vm.wait("its memory freed", vm.empty, timeout=10)
    finally:
        os.kill(worker.pid, signal.SIGCONT)
    worker.send("go")
    assert worker.expect("AFTER") == f"AFTER status={DEVICE_UNAVAILABLE}"
    assert worker.finish() == 0
    said = [line for line in worker.stderr.splitlines() if "lease expired" in line]
    assert len(said) == 1 and "was the process stopped" in said[0], worker.stderr


@pytest.mark.timeout(120)
def test_a_forked_child_cannot_use_its_parents_channel_nor_close_it(vm: Vm) -> None:
    worker = vm.start("fork")
    passed(worker)
    assert "forked from process" in worker.stderr
    vm.wait("everything freed", vm.empty)


@pytest.mark.timeout(240)
def test_when_every_channel_is_held_the_next_process_is_refused_saying_so(vm: Vm) -> None:
    count = vm.status()["channel_count"]
    holders = [vm.start("wait") for _ in range(count)]
    for holder in holders:
        holder.expect("READY")
    late = vm.start("discover")
    assert late.finish() != 0
    assert late.report["count"].fields()["status"] == str(DEVICE_UNAVAILABLE), late.text
    assert f"all {count} channels of VM 1 are held by other processes" in late.stderr
    holders[0].send("go")
    assert holders[0].expect("AFTER") == "AFTER status=0"
    holders[0].finish()
    again = vm.start("discover")  # a channel is free again
    passed(again)
    for holder in holders[1:]:
        holder.send("go")
        holder.finish()
    vm.wait("everything freed", vm.empty)


def short_lived(vm: Vm, count: int) -> float:
    """``count`` processes one after the other, every other one exiting without freeing anything, while
    another process of the guest stays connected (as QEMU stays attached for a VM's guest: the VM's
    session and worker live on, each process only opens and closes a channel)."""
    anchor = vm.start("wait")
    anchor.expect("READY")
    started = time.monotonic()
    for i in range(count):
        worker = vm.start("short", "leak" if i % 2 else "free")
        passed(worker, timeout=60)
        vm.workers.remove(worker)
    seconds = time.monotonic() - started
    held = vm.channel_of(anchor.pid)
    assert held is not None and held["memory_used"] == MIB, held  # the anchor's own megabyte, nothing more
    assert vm.status()["memory_used"] == MIB
    anchor.send("go")
    assert anchor.expect("AFTER") == "AFTER status=0"
    assert anchor.finish() == 0
    return seconds


@pytest.mark.timeout(240)
def test_short_lived_processes_in_sequence_leave_nothing_behind(vm: Vm) -> None:
    short_lived(vm, 20)
    vm.wait("nothing left", vm.empty)
    assert vm.status()["channels_opened"] == 21  # one session: the anchor and the twenty


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_thousand_short_lived_processes_leave_nothing_behind(vm: Vm, artifacts: Path) -> None:
    seconds = short_lived(vm, 1000)
    vm.wait("nothing left", vm.empty)
    row = vm.status()
    (artifacts / "short-lived-host.json").write_text(json.dumps(
        {"processes": 1000, "seconds": round(seconds, 1), "memory_used": row["memory_used"],
         "live_handles": row["live_handles"], "channels_opened": row["channels_opened"]}) + "\n")
    assert row["channels_opened"] == 1001


@pytest.mark.timeout(600)
def test_ollama_pattern_a_runner_holds_a_gib_while_fifty_discoveries_come_and_go(vm: Vm) -> None:
    runner = vm.start("hold", "1024")
    runner.expect("READY", timeout=120)
    runner.expect("COMPUTING")
    for _ in range(25):  # two at a time, as a scheduler probing GPUs in parallel would
        pair = [vm.start("discover"), vm.start("discover")]
        for discovery in pair:
            passed(discovery)
            vm.workers.remove(discovery)
    held = vm.channel_of(runner.pid)
    assert held is not None and held["memory_used"] >= 1024 * MIB
    runner.send("stop")
    passed(runner)
    vm.wait("everything freed", vm.empty)
    assert vm.status()["channels_opened"] == 51
