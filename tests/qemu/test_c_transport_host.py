"""The C guest transport on the host: built with make, run through the same ivshmem handshake QEMU does.

No QEMU here: ``vgpu_selftest --socket`` connects to the mediator's VM socket as QEMU's
ivshmem-doorbell would, so everything but the PCI discovery runs exactly as in the VM.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import socket
import struct
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mediator._control_client import request
from mediator._ivshmem import send_refusal
from mediator._launcher import running_mediator
from protocol import ChannelField, RegionField

from ._support import CBuild, FakeIvshmemServer, SelftestReport

pytestmark = pytest.mark.timeout(180)

F_OFD_SETLK = 37  # <fcntl.h>; Python's fcntl module names it only from 3.12

API = {
    "cuda_transport_init", "cuda_transport_init_pci", "cuda_transport_init_socket",
    "cuda_transport_close", "cuda_transport_call", "cuda_transport_post",
    "cuda_transport_memcpy_htod", "cuda_transport_memcpy_dtoh", "cuda_transport_take_async_error",
    "cuda_transport_chunk_size", "cuda_transport_set_chunk_size", "cuda_transport_arena_size",
    "cuda_transport_region_size", "cuda_transport_backend", "cuda_transport_vm_id",
    "cuda_transport_peer_id", "cuda_transport_get_stats", "cuda_transport_last_error",
    "cuda_transport_strerror", "cuda_transport_shutdown", "cuda_transport_channel",
    "cuda_transport_channel_count", "cuda_transport_pinned_area", "cuda_transport_epoch",
    "cuda_transport_region_fd",
}


def run_selftest(c_build: CBuild, *args: str, env: dict[str, str] | None = None,
                 timeout: float = 120) -> tuple[int, SelftestReport, str]:
    proc = subprocess.run([str(c_build.selftest), *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, check=False)
    return proc.returncode, SelftestReport.parse(proc.stdout), proc.stdout + proc.stderr


def test_the_library_is_built_static_and_shared_and_exports_only_its_api(c_build: CBuild) -> None:
    assert c_build.static_lib.stat().st_size > 0
    nm = subprocess.run(["nm", "-D", "--defined-only", str(c_build.shared_lib)], capture_output=True,
                        text=True, check=True).stdout
    exported = {line.split()[-1] for line in nm.splitlines() if line.strip()}
    assert exported == API


def test_selftest_through_the_mediator_socket_passes_and_the_mediator_saw_every_call(
    c_build: CBuild, tmp_path: Path,
) -> None:
    with running_mediator(tmp_path, backend="sim", vms=1) as mediator:
        request(mediator.control, {"cmd": "trace", "vm": "vm1", "enable": True})
        code, report, output = run_selftest(c_build, "--socket", str(mediator.vm_socket(1)))
        assert code == 0, output
        report.check_all_passed()
        init = report["transport_init"].fields()
        assert init["backend"] == "socket" and init["vm_id"] == "1" and init["channels"] == "16"
        region = int(init["region"])
        assert region & (region - 1) == 0 and int(init["arena"]) >= 1 << 20  # a channel's share of the region
        copy = report["copy_16mib"].fields()
        assert copy["mismatches"] == "0" and int(copy["chunks"]) >= 2  # 16 MiB > a quarter arena

        vm = next(v for v in request(mediator.control, {"cmd": "status"})["vms"] if v["name"] == "vm1")
        assert vm["calls"] == report.stat("submitted")
        # the deliberately failed posted memset, and the synchronize that reported it (LATCHED)
        assert vm["errors"] == 2
        assert vm["memory_used"] == 0  # the selftest frees all it allocated

        trace = request(mediator.control, {"cmd": "trace", "vm": "vm1", "limit": 10000})
        calls = [record["call"] for record in trace["records"]]
        assert len(calls) == report.stat("submitted")
        for name in ("init", "device_get_count", "device_get_name", "device_total_mem", "mem_alloc",
                     "memcpy_htod", "memcpy_dtoh", "memset_d8", "memset_d32", "cublas_create",
                     "cublas_sgemm", "ctx_synchronize", "event_record", "event_synchronize",
                     "event_elapsed_time", "mem_free"):
            assert name in calls, f"{name} never reached the mediator"
        assert calls.count("memcpy_htod") == int(copy["chunks"]) + 3  # the copy + A, B, C of the GEMM


def test_copies_through_more_than_the_arena_reuse_its_space_and_stay_byte_exact(
    c_build: CBuild, tmp_path: Path,
) -> None:
    """6 × 16 MiB each way through a 64 MiB region (chunks of at most 1 MiB: the transport's rule gives
    736 KiB, sqrt(16 MiB × 32 KiB) in 32 KiB steps, so 23 of them): the arena wraps three times."""
    with running_mediator(tmp_path, backend="sim", vms=1) as mediator:
        code, report, output = run_selftest(c_build, "--socket", str(mediator.vm_socket(1)),
                                            "--chunk", str(1 << 20), "--copy-rounds", "6")
        assert code == 0, output
        report.check_all_passed()
        copy = report["copy_16mib"].fields()
        assert copy == {**copy, "rounds": "6", "chunks": "23", "mismatches": "0"}
        assert report.stat("bytes_htod") > 6 * (16 << 20) > int(report["transport_init"].fields()["arena"])


@pytest.fixture
def fake_server(tmp_path: Path) -> Iterator[FakeIvshmemServer]:
    server = FakeIvshmemServer(tmp_path / "fake.sock")
    yield server
    server.close()


def _put(buf: memoryview | mmap.mmap, offset: int, width: int, value: int) -> None:
    buf[offset:offset + width] = value.to_bytes(width, "little")


@pytest.mark.parametrize(("field", "width", "value", "complaint"), [
    (RegionField.MAGIC, 8, 0x1234, "magic is 0x0000000000001234"),
    (RegionField.VERSION_MAJOR, 2, 1, "protocol major version 1, this library speaks 2"),
    (RegionField.CHANNEL_COUNT, 4, 0, "channel_count is 0"),
    (RegionField.CHANNEL_SIZE, 8, 1 << 20, "2 channels of 1048576 bytes"),
    (RegionField.REGION_SIZE, 8, 1 << 21, "region_size says 2097152, the mapping has 1048576"),
])
def test_selftest_refuses_a_region_it_does_not_understand(
    c_build: CBuild, fake_server: FakeIvshmemServer, tmp_path: Path,
    field: RegionField, width: int, value: int, complaint: str,
) -> None:
    _put(fake_server.map, field, width, value)
    code, report, output = run_selftest(c_build, "--socket", str(tmp_path / "fake.sock"))
    assert code == 1, output
    init = report["transport_init"]
    assert not init.ok
    assert "region layout not understood" in init.value and complaint in init.value, init.value
    assert report.verdict == "SELFTEST FAIL 1"
    assert fake_server.word(0, ChannelField.OPEN_REQUEST) == 0  # nothing was claimed or opened


@pytest.mark.parametrize(("field", "width", "value", "complaint"), [
    (ChannelField.SQ_ENTRIES, 4, 100, "ring sizes 100/256 are not powers of two"),
    (ChannelField.ARENA_SIZE, 8, 1 << 30, "arena ["),
    (ChannelField.CHANNEL_INDEX, 4, 1, "index 1"),
])
def test_selftest_refuses_a_channel_the_host_opened_wrong(
    c_build: CBuild, fake_server: FakeIvshmemServer, tmp_path: Path,
    field: ChannelField, width: int, value: int, complaint: str,
) -> None:
    fake_server.on_open = lambda block: _put(block, field, width, value)
    code, report, output = run_selftest(c_build, "--socket", str(tmp_path / "fake.sock"))
    assert code == 1, output
    assert complaint in report["transport_init"].value, report["transport_init"].value
    # it asked the host to close the channel it could not use
    assert fake_server.word(0, ChannelField.CLOSE_REQUEST) == fake_server.word(0, ChannelField.OPEN_REQUEST) != 0


def test_selftest_claims_a_channel_opens_it_and_beats(c_build: CBuild, fake_server: FakeIvshmemServer,
                                                      tmp_path: Path) -> None:
    """Against the fake (which answers no calls) the open succeeds and the first call times out:
    by then the channel carries the owner's pid and peer and a heartbeat that moved."""
    code, report, output = run_selftest(c_build, "--socket", str(tmp_path / "fake.sock"),
                                        env={"VGPU_TRANSPORT_TIMEOUT_MS": "600"})
    assert code == 1
    init = report["transport_init"].fields()
    assert init["channel"] == "0" and init["channels"] == "2", report["transport_init"].value
    assert "timed out" in output
    assert fake_server.word(0, ChannelField.OWNER_PEER) == 3
    assert fake_server.word(0, ChannelField.OWNER_PID) > 0
    # lease_ms 800: a beat every 200 ms, so more than one within the 600 ms the call waited
    assert int.from_bytes(fake_server.channel(0)[ChannelField.HEARTBEAT:ChannelField.HEARTBEAT + 8], "little") >= 2


def test_selftest_says_every_channel_is_held(c_build: CBuild, fake_server: FakeIvshmemServer,
                                             tmp_path: Path) -> None:
    """Both channels claimed by this process (OFD locks on its own description of the memfd, as the
    transport takes them): the selftest is refused, saying why, and touches no channel."""
    holder = os.open(f"/proc/self/fd/{fake_server.fd}", os.O_RDWR)
    try:
        fcntl.fcntl(holder, F_OFD_SETLK, struct.pack("hhqqi", fcntl.F_WRLCK, os.SEEK_SET, 0, 2, 0))
        code, report, _ = run_selftest(c_build, "--socket", str(tmp_path / "fake.sock"))
    finally:
        os.close(holder)
    assert code == 1
    value = report["transport_init"].value
    assert "every channel of the device is held by other processes" in value
    assert "all 2 channels of VM 9 are held by other processes" in value
    assert fake_server.word(0, ChannelField.OPEN_REQUEST) == fake_server.word(1, ChannelField.OPEN_REQUEST) == 0


def test_selftest_posts_nothing_to_a_device_that_is_not_ready(
    c_build: CBuild, fake_server: FakeIvshmemServer, tmp_path: Path,
) -> None:
    _put(fake_server.map, RegionField.DEVICE_STATE, 4, 3)
    code, report, _ = run_selftest(c_build, "--socket", str(tmp_path / "fake.sock"))
    assert code == 1
    assert "device state is 3, not READY" in report["transport_init"].value
    assert fake_server.word(0, ChannelField.SQ_TAIL) == 0
    assert fake_server.word(0, ChannelField.OPEN_REQUEST) == 0


def test_a_refused_connection_says_why(c_build: CBuild, tmp_path: Path) -> None:
    """The mediator refuses with -2, a length and a reason in place of the version: the program's own
    log line carries the reason."""
    path = tmp_path / "refusing.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(path))
        listener.listen(1)

        def refuse() -> None:
            conn, _ = listener.accept()
            with conn:
                send_refusal(conn, "vgpu-mediator: vm vm1: it already serves 64 peers")

        thread = threading.Thread(target=refuse, daemon=True)
        thread.start()
        code, report, _ = run_selftest(c_build, "--socket", str(path))
        thread.join(30)
    assert code == 1
    value = report["transport_init"].value
    assert "the mediator refused the connection" in value
    assert "the mediator refused this connection: vgpu-mediator: vm vm1: it already serves 64 peers" in value


def test_pci_backend_names_the_device_it_could_not_find(c_build: CBuild) -> None:
    code, report, _ = run_selftest(c_build, env={"VGPU_PCI_DEVICE": "0000:ff:1f.7"})
    assert code == 1
    value = report["transport_init"].value
    assert "no vgpu device" in value and "/sys/bus/pci/devices/0000:ff:1f.7 is not an ivshmem device" in value


def test_selftest_cannot_reach_a_socket_nobody_listens_on(c_build: CBuild, tmp_path: Path) -> None:
    code, report, _ = run_selftest(c_build, env={"VGPU_TRANSPORT_SOCKET": str(tmp_path / "none.sock")})
    assert code == 1
    assert "connect " in report["transport_init"].value and "No such file" in report["transport_init"].value

