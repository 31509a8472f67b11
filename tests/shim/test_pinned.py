"""Pinned host memory in the region (#19) through the shim, against a real mediator (sim) on the
Unix-socket transport: ``cudaMallocHost`` memory lies in the region's pinned area and copies through it
are correct both ways, synchronous and asynchronous; an exhausted area falls back to ordinary memory;
a process that dies gives its pinned memory back; ``cudaHostRegister``'d memory moves into the area
(``pinned_probe.c``, NVIDIA's simpleZeroCopy)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mediator._control_client import request
from mediator._launcher import MediatorProcess, running_mediator

from ._support import SAMPLES_BIN, ShimBuild, Worker, across_reset, build_program, sample_verdict, shim_env

PROBE = Path(__file__).resolve().parent / "pinned_probe.c"
RESET_PROBE = Path(__file__).resolve().parent / "pinned_reset_probe.py"
DEVICE_UNAVAILABLE = 46


@pytest.fixture(scope="module")
def probe(shim: ShimBuild, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_program(shim, PROBE, tmp_path_factory.mktemp("pinned-probe"))


class Guest:
    """Processes of one VM's guest on the shim, against a mediator whose pinned area is ``pinned``."""

    def __init__(self, mediator: MediatorProcess, probe: Path, env: dict[str, str]) -> None:
        self.mediator = mediator
        self.probe = probe
        self.env = env
        self.workers: list[Worker] = []

    def start(self, *args: str) -> Worker:
        worker = Worker(self.probe, self.env, *args)
        self.workers.append(worker)
        return worker

    def run(self, *args: str) -> Worker:
        worker = self.start(*args)
        code = worker.finish(120)
        failed = [f"{r.name}: {r.value}" for r in worker.report.results.values() if not r.ok]
        assert code == 0 and not failed and worker.report.verdict == "SELFTEST PASS", (
            f"pinned_probe {' '.join(args)} exited {code}: {failed}\n{worker.text}\n{worker.stderr}")
        return worker

    def status(self) -> dict[str, Any]:
        row: dict[str, Any] = next(v for v in request(self.mediator.control, {"cmd": "status"})["vms"]
                                   if v["name"] == "vm1")
        return row

    def wait_closed(self, pid: int, timeout: float = 10) -> None:
        """Until the mediator holds no open channel of process ``pid``."""
        deadline = time.monotonic() + timeout
        while True:
            vm = self.status()
            if not any(c["owner_pid"] == pid and c["state"] == "open" for c in vm["channels"]):
                return
            assert time.monotonic() < deadline, f"process {pid}'s channel still open: {vm['channels']}"
            time.sleep(0.01)


@pytest.fixture
def guest(request: pytest.FixtureRequest, probe: Path, shim: ShimBuild, tmp_path: Path) -> Iterator[Guest]:
    pinned = getattr(request, "param", "64MiB")
    with running_mediator(tmp_path, backend="sim", vms=1, extra=f'pinned_size = "{pinned}"') as mediator:
        conf = tmp_path / "guest.conf"
        conf.write_text(f"socket = {mediator.vm_socket(1)}\nlog = stderr\ntrace = 1\n")
        machine = Guest(mediator, probe, shim_env(shim, conf))
        try:
            yield machine
        finally:
            for worker in machine.workers:
                worker.kill()


@pytest.mark.timeout(180)
def test_pinned_memory_lies_in_the_region_and_copies_through_it_are_correct(guest: Guest) -> None:
    worker = guest.run("copies")
    expected = ["pinned_in_region", "copy_sync", "copy_async_offsets", "copy_2d", "copy_default", "driver_api",
                "driver_free", "cublas_matrix", "pointer_attributes", "host_alloc_flags", "registered_in_region", "free"]
    assert list(worker.report.results) == expected
    # the shim's trace: pinned copies name their range (0x003a/0x003b), posted when asynchronous
    row = guest.status()  # pinned copies (over 10 MiB each way) count in the VM's bytes, as staged ones (4 MiB) do
    assert row["bytes_htod"] >= 14 << 20 and row["bytes_dtoh"] >= 14 << 20, row
    trace = worker.stderr
    for line in ("call 0x0038 -> 0", "call 0x003a -> 0", "call 0x003b -> 0", "post 0x003a -> 0", "post 0x003b -> 0",
                 "call 0x0039 -> 0"):
        assert line in trace, line


@pytest.mark.timeout(180)
def test_mapped_pinned_and_managed_memory_are_the_processs_own_bytes_at_its_own_pointers(guest: Guest) -> None:
    worker = guest.run("mapped")
    assert list(worker.report.results) == ["mapped_alloc", "mapped_device_access", "device_pointer_refusals",
                                           "managed_alloc", "pointer_attribute", "managed_device_access",
                                           "managed_prefetch_attach", "free"]
    assert "call 0x003c -> 0" in worker.stderr  # each range was mapped into the device (mem_host_alias)


@pytest.mark.timeout(180)
def test_a_range_whose_own_pointers_are_taken_on_the_device_is_mapped_elsewhere(guest: Guest) -> None:
    worker = guest.run("collide")
    assert list(worker.report.results) == ["reserve_in_the_way", "mapped_elsewhere", "reached_through_it",
                                           "managed_refused", "free"]
    # the guest asked for its own pointer, was refused (counted), and let the host choose
    assert "call 0x003c -> 1" in worker.stderr and "cannot have the same device address" in worker.stderr


@pytest.mark.timeout(180)
def test_registered_memory_moves_into_the_region_at_its_own_addresses(guest: Guest) -> None:
    worker = guest.run("register")
    assert list(worker.report.results) == ["register_moves_pages", "registered_copies", "mapped_kernel", "overlap",
                                           "file_pages_staged", "unregister_restores"]
    trace = worker.stderr
    # its copies named the range (pinned htod/dtoh, posted when asynchronous); it was mapped into the
    # device (mem_host_alias) and handed back at unregister (mem_free_host)
    for line in ("call 0x003a -> 0", "call 0x003b -> 0", "post 0x003a -> 0", "post 0x003b -> 0",
                 "call 0x003c -> 0", "call 0x0039 -> 0"):
        assert line in trace, line
    assert guest.status()["pinned_used"] == 0  # the pages went back with the unregister
    assert trace.count("are not all private anonymous read-write memory") == 1


@pytest.mark.timeout(180)
def test_nvidias_simplezerocopy_on_its_own_registered_memory_passes(guest: Guest) -> None:
    """simpleZeroCopy --use_generic_memory: cudaHostRegister(cudaHostRegisterMapped) of its own page-aligned
    memory, and a kernel adding the vectors through cudaHostGetDevicePointer's pointers."""
    worker = Worker(SAMPLES_BIN / "simpleZeroCopy", guest.env, "--use_generic_memory")
    guest.workers.append(worker)
    code = worker.finish(150)
    assert sample_verdict(code, worker.text + worker.stderr) == "PASS", worker.text + worker.stderr[-4000:]
    assert "Generic System Paged Memory" in worker.text
    assert worker.stderr.count("call 0x003c -> 0") == 3  # its three vectors mapped into the device


@pytest.mark.timeout(180)
@pytest.mark.parametrize("guest", ["4MiB"], indirect=True)
def test_memory_registered_beyond_the_area_is_staged_and_cannot_be_mapped(guest: Guest) -> None:
    worker = guest.run("register_full", "8")
    assert worker.stderr.count("their copies are staged (logged once)") == 1, worker.stderr
    assert "cuMemHostRegister(DEVICEMAP) of" in worker.stderr


@pytest.mark.timeout(180)
@pytest.mark.parametrize("guest", ["4MiB"], indirect=True)
def test_an_exhausted_pinned_area_falls_back_to_ordinary_memory_once_logged(guest: Guest) -> None:
    worker = guest.run("exhaust", "3")
    assert worker.stderr.count("pinned host memory falls back to ordinary memory") == 1, worker.stderr


@pytest.mark.timeout(180)
@pytest.mark.parametrize("guest", ["8MiB"], indirect=True)
def test_a_killed_processs_pinned_memory_comes_back_for_the_next(guest: Guest) -> None:
    victim = guest.start("hold", "6")
    assert victim.expect("READY") == "READY in_region=1"
    held = guest.status()  # the operator sees it (status, and the vgpu_pinned_used_bytes metric)
    assert (held["pinned_used"], held["pinned_size"]) == (6 << 20, 8 << 20), held
    os.kill(victim.pid, signal.SIGKILL)  # its channel closes with its connection: the range is free again
    victim.proc.wait()
    guest.wait_closed(victim.pid)
    heir = guest.start("hold", "6")  # would fall back (in_region=0) if the dead process's 6 MiB were held
    assert heir.expect("READY") == "READY in_region=1"
    heir.send("done")
    assert heir.finish(60) == 0, heir.text
    guest.wait_closed(heir.pid)
    assert guest.status()["pinned_used"] == 0


@pytest.mark.timeout(180)
def test_pinned_memory_from_before_a_reset_is_ordinary_memory_after_it(shim: ShimBuild, tmp_path: Path) -> None:
    with running_mediator(tmp_path, backend="sim", vms=1, extra='pinned_size = "8MiB"') as mediator:
        conf = tmp_path / "guest.conf"
        conf.write_text(f"socket = {mediator.vm_socket(1)}\n")
        after, stderr = across_reset(mediator, RESET_PROBE, shim, conf,
                                    ["ready", "0", "0", "0", "0", "0"])
        # noticed (device unavailable); the old buffer reads zeros (the area was punched out, no process's
        # bytes survive a reset); then: alloc, staged copies both ways right, the free only forgets it, a
        # fresh pinned allocation and a copy through it; managed memory of before is only forgotten too, and
        # fresh managed memory is served
        assert after == ["after", str(DEVICE_UNAVAILABLE), "1", "0", "0", "0", "1", "0", "0", "0", "0", "0", "0"], \
            stderr
        deadline = time.monotonic() + 10  # the fresh range goes with the process's channel
        while next(v for v in request(mediator.control, {"cmd": "status"})["vms"])["pinned_used"]:
            assert time.monotonic() < deadline, "the exited process's pinned range was not freed"
            time.sleep(0.01)

