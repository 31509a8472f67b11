"""The C guest transport on the host: built with make, run through the same ivshmem handshake QEMU does.

No QEMU here: ``vgpu_selftest --socket`` connects to the mediator's VM socket as QEMU's
ivshmem-doorbell would, so everything but the PCI discovery runs exactly as in the VM.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mediator._control_client import request
from mediator._ivshmem import send_handshake
from mediator._launcher import running_mediator
from protocol import HeaderField, lay_out_region

from ._support import CBuild, SelftestReport

pytestmark = pytest.mark.timeout(180)

API = {
    "cuda_transport_init", "cuda_transport_init_pci", "cuda_transport_init_socket",
    "cuda_transport_close", "cuda_transport_call", "cuda_transport_post",
    "cuda_transport_memcpy_htod", "cuda_transport_memcpy_dtoh", "cuda_transport_take_async_error",
    "cuda_transport_chunk_size", "cuda_transport_set_chunk_size", "cuda_transport_arena_size",
    "cuda_transport_region_size", "cuda_transport_backend", "cuda_transport_vm_id",
    "cuda_transport_peer_id", "cuda_transport_get_stats", "cuda_transport_last_error",
    "cuda_transport_strerror",
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
        assert init["backend"] == "socket" and init["vm_id"] == "1" and init["region"] == str(64 << 20)
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
    """6 × 16 MiB each way in 1 MiB chunks through a 64 MiB region: the arena wraps three times."""
    with running_mediator(tmp_path, backend="sim", vms=1) as mediator:
        code, report, output = run_selftest(c_build, "--socket", str(mediator.vm_socket(1)),
                                            "--chunk", str(1 << 20), "--copy-rounds", "6")
        assert code == 0, output
        report.check_all_passed()
        copy = report["copy_16mib"].fields()
        assert copy == {**copy, "rounds": "6", "chunks": "16", "mismatches": "0"}
        assert report.stat("bytes_htod") > 6 * (16 << 20) > int(report["transport_init"].fields()["arena"])


class FakeIvshmemServer:
    """One ivshmem-server connection over a region the test controls (laid out, then spoiled)."""

    def __init__(self, path: Path, size: int = 1 << 20) -> None:
        self.fd = os.memfd_create("fake-region")
        os.ftruncate(self.fd, size)
        self.map = mmap.mmap(self.fd, size)
        lay_out_region(memoryview(self.map), vm_id=9)
        self.host_fd = os.eventfd(0, os.EFD_NONBLOCK)
        self.guest_fd = os.eventfd(0, os.EFD_NONBLOCK)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(1)
        self.listener.settimeout(30)
        self.thread = threading.Thread(target=self._serve_one, daemon=True)
        self.thread.start()

    def _serve_one(self) -> None:
        conn, _ = self.listener.accept()
        # A client that refuses the region hangs up before the eventfds are all sent: EPIPE.
        with conn, contextlib.suppress(OSError):
            send_handshake(conn, client_id=3, region_fd=self.fd, host_vector_fds=[self.host_fd],
                           guest_vector_fds=[self.guest_fd])
            conn.settimeout(30)
            conn.recv(1)  # hold the connection until the client goes

    def close(self) -> None:
        self.thread.join(30)
        self.listener.close()
        self.map.close()
        for fd in (self.fd, self.host_fd, self.guest_fd):
            os.close(fd)


@pytest.fixture
def fake_server(tmp_path: Path) -> Iterator[FakeIvshmemServer]:
    server = FakeIvshmemServer(tmp_path / "fake.sock")
    yield server
    server.close()


@pytest.mark.parametrize(("field", "value", "complaint"), [
    (HeaderField.MAGIC, 0x1234, "magic is 0x0000000000001234"),
    (HeaderField.VERSION_MAJOR, 2, "protocol major version 2"),
    (HeaderField.SQ_ENTRIES, 100, "ring sizes 100/256 are not powers of two"),
    (HeaderField.ARENA_SIZE, 1 << 30, "arena ["),
    (HeaderField.REGION_SIZE, 1 << 21, "region_size says 2097152, the mapping has 1048576"),
])
def test_selftest_refuses_a_region_it_does_not_understand(
    c_build: CBuild, fake_server: FakeIvshmemServer, tmp_path: Path,
    field: HeaderField, value: int, complaint: str,
) -> None:
    width = 2 if field == HeaderField.VERSION_MAJOR else 8 if field in (
        HeaderField.MAGIC, HeaderField.ARENA_SIZE, HeaderField.REGION_SIZE) else 4
    fake_server.map[field:field + width] = value.to_bytes(width, "little")
    code, report, output = run_selftest(c_build, "--socket", str(tmp_path / "fake.sock"))
    assert code == 1, output
    init = report["transport_init"]
    assert not init.ok
    assert "region layout not understood" in init.value and complaint in init.value, init.value
    assert report.verdict == "SELFTEST FAIL 1"


def test_selftest_posts_nothing_to_a_device_that_is_not_ready(
    c_build: CBuild, fake_server: FakeIvshmemServer, tmp_path: Path,
) -> None:
    fake_server.map[HeaderField.DEVICE_STATE:HeaderField.DEVICE_STATE + 4] = (3).to_bytes(4, "little")
    code, report, _ = run_selftest(c_build, "--socket", str(tmp_path / "fake.sock"))
    assert code == 1
    assert "device state is 3, not READY" in report["transport_init"].value
    assert int.from_bytes(fake_server.map[HeaderField.SQ_TAIL:HeaderField.SQ_TAIL + 4], "little") == 0


def test_pci_backend_names_the_device_it_could_not_find(c_build: CBuild) -> None:
    code, report, _ = run_selftest(c_build, env={"VGPU_PCI_DEVICE": "0000:ff:1f.7"})
    assert code == 1
    value = report["transport_init"].value
    assert "no vgpu device" in value and "/sys/bus/pci/devices/0000:ff:1f.7 is not an ivshmem device" in value


def test_selftest_cannot_reach_a_socket_nobody_listens_on(c_build: CBuild, tmp_path: Path) -> None:
    code, report, _ = run_selftest(c_build, env={"VGPU_TRANSPORT_SOCKET": str(tmp_path / "none.sock")})
    assert code == 1
    assert "connect " in report["transport_init"].value and "No such file" in report["transport_init"].value

