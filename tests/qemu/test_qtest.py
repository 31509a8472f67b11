"""The ivshmem-doorbell device as QEMU implements it, driven through qtest: no guest kernel at all.

``-qtest stdio`` answers commands on stdio, but it does not stop the CPU: a QEMU built without the
qtest accelerator (Debian's) runs the machine under TCG, and SeaBIOS's PCI setup, about 0.1 s in, would
scan configuration space between our 0xcf8 and 0xcfc accesses and move BAR0 and BAR2 to addresses of its
choosing (0xfebfd000, 0xe0000000), so our BAR2 address would read zeros and drop writes. ``-S`` keeps the
CPU stopped for good: no firmware runs and the test is the only guest. It finds the device in PCI
configuration space (ports 0xcf8/0xcfc), programs BAR0 and BAR2, enables memory decoding, and then
reads and writes the region and the doorbell register with qtest's ``readq``/``writel``. A mismatch between our ivshmem server side and QEMU's client (message order,
fds, peer ids, BAR layout) shows up here in seconds.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import select
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mediator._control_client import request
from mediator._ivshmem import send_handshake
from mediator._launcher import running_mediator
from protocol import CHANNEL_MAGIC, CQE_SIZE, MAGIC, SQE_SIZE, ChannelField, RegionField, lay_out_region

from ._support import SETUP_HINT

pytestmark = [pytest.mark.qemu, pytest.mark.timeout(120)]

BAR0_ADDR = 0xFE00_0000  # inside q35's 32-bit PCI hole
BAR2_ADDR = 0x10_0000_0000  # 64 GiB: BAR2 is a 64-bit prefetchable BAR
IVPOSITION, DOORBELL = 8, 12
GUEST_ID = 7


class Qtest:
    """QEMU started with ``-qtest stdio``: one command line in, one ``OK …`` line out."""

    def __init__(self, vm_socket: Path, log: Path, vectors: int = 1) -> None:
        qemu = _qemu()
        self.log = log
        self._log_file = open(log, "wb")  # noqa: SIM115 (closed in close())
        self.proc = subprocess.Popen(
            [qemu, "-machine", "q35", "-S", "-qtest", "stdio", "-qtest-log", "/dev/null", "-display", "none",
             "-nodefaults", "-m", "64", "-chardev", f"socket,path={vm_socket},id=ivsh",
             "-device", f"ivshmem-doorbell,chardev=ivsh,vectors={vectors}"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log_file)

    def cmd(self, line: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        assert ready, f"qtest did not answer {line!r}: {self.log.read_text()}"
        reply = self.proc.stdout.readline().decode().strip()
        assert reply.startswith("OK"), f"{line!r} -> {reply!r}: {self.log.read_text()}"
        return reply[2:].strip()

    def read(self, kind: str, addr: int) -> int:
        return int(self.cmd(f"{kind} {addr:#x}"), 16)

    def config_read(self, devfn: int, offset: int) -> int:
        self.cmd(f"outl 0xcf8 {0x8000_0000 | devfn << 8 | offset:#x}")
        return int(self.cmd("inl 0xcfc"), 16)

    def config_write(self, devfn: int, offset: int, value: int) -> None:
        self.cmd(f"outl 0xcf8 {0x8000_0000 | devfn << 8 | offset:#x}")
        self.cmd(f"outl 0xcfc {value:#x}")

    def find_ivshmem(self) -> int:
        seen = {}
        for device in range(32):
            devfn = device << 3
            seen[device] = self.config_read(devfn, 0)
            if seen[device] == 0x1110_1AF4:
                return devfn
        found = {slot: f"{value:#010x}" for slot, value in seen.items() if value != 0xFFFF_FFFF}
        raise AssertionError(f"no 1af4:1110 device on bus 0: {found}; log: {self.log.read_text()}")

    def map_bars(self, devfn: int) -> None:
        bar2 = self.config_read(devfn, 0x18)
        assert bar2 & 0x1 == 0 and bar2 & 0x6 == 0x4 and bar2 & 0x8, (
            f"BAR2 is not 64-bit prefetchable memory: {bar2:#x}")
        wanted = {0x10: BAR0_ADDR, 0x18: BAR2_ADDR & 0xFFFF_FFFF | (bar2 & 0xF), 0x1C: BAR2_ADDR >> 32}
        for offset, value in wanted.items():
            self.config_write(devfn, offset, value & ~0xF)
        self.config_write(devfn, 0x04, 0x0002)  # command: memory space enable
        got = {offset: self.config_read(devfn, offset) for offset in wanted}
        assert got == wanted and self.config_read(devfn, 0x04) & 0x0002, (
            f"BARs did not take: wanted {wanted}, read {got}; log: {self.log.read_text()}")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()
        self._log_file.close()


def _qemu() -> str:
    import shutil

    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        pytest.skip(f"no qemu-system-x86_64 binary: {SETUP_HINT}")
    return qemu


class Server:
    """The test as the ivshmem server: a 1 MiB region of two channels, our vector eventfd, QEMU's vector
    eventfd."""

    def __init__(self, path: Path) -> None:
        self.size = 1 << 20
        self.fd = os.memfd_create("qtest-region")
        os.ftruncate(self.fd, self.size)
        self.map = mmap.mmap(self.fd, self.size)
        self.layout = lay_out_region(memoryview(self.map), vm_id=5, channels=2, vectors=1)
        self.host_fd = os.eventfd(0, os.EFD_NONBLOCK)
        self.guest_fd = os.eventfd(0, os.EFD_NONBLOCK)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(1)
        self.listener.settimeout(30)
        self.conn: socket.socket | None = None

    def accept(self) -> None:
        self.conn, _ = self.listener.accept()
        send_handshake(self.conn, client_id=GUEST_ID, region_fd=self.fd, host_vector_fds=[self.host_fd],
                       guest_vector_fds=[self.guest_fd])

    def doorbell_count(self, wait_s: float) -> int:
        ready, _, _ = select.select([self.host_fd], [], [], wait_s)
        if not ready:
            return 0
        with contextlib.suppress(BlockingIOError):
            return os.eventfd_read(self.host_fd)
        return 0

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.listener.close()
        self.map.close()
        for fd in (self.fd, self.host_fd, self.guest_fd):
            os.close(fd)


@pytest.fixture
def qtest_with_server(tmp_path: Path) -> Iterator[tuple[Qtest, Server]]:
    server = Server(tmp_path / "vm.sock")
    qtest = Qtest(tmp_path / "vm.sock", tmp_path / "qemu.log")
    try:
        server.accept()
        yield qtest, server
    finally:
        qtest.close()
        server.close()


def test_qemu_maps_our_region_as_bar2_and_rings_our_eventfd_from_bar0(
    qtest_with_server: tuple[Qtest, Server],
) -> None:
    qtest, server = qtest_with_server
    devfn = qtest.find_ivshmem()
    qtest.map_bars(devfn)

    # BAR2 is our memfd, both ways: the region header, and a channel's ring words in its block
    assert qtest.read("readq", BAR2_ADDR + RegionField.MAGIC) == MAGIC
    assert qtest.read("readl", BAR2_ADDR + RegionField.VM_ID) == 5
    channel = server.layout.channel_offset(1)
    assert qtest.read("readq", BAR2_ADDR + channel + ChannelField.MAGIC) == CHANNEL_MAGIC
    qtest.cmd(f"writel {BAR2_ADDR + channel + ChannelField.SQ_TAIL:#x} 0x2a")
    tail = channel + ChannelField.SQ_TAIL
    assert int.from_bytes(server.map[tail:tail + 4], "little") == 0x2A
    cq_tail = channel + ChannelField.CQ_TAIL
    server.map[cq_tail:cq_tail + 4] = (0x1234).to_bytes(4, "little")
    assert qtest.read("readl", BAR2_ADDR + cq_tail) == 0x1234
    # the region's last byte is there too: BAR2 is the whole power-of-two region
    server.map[server.size - 1] = 0x5A
    assert qtest.read("readb", BAR2_ADDR + server.size - 1) == 0x5A

    # BAR0: IVPosition is the id we gave QEMU; a doorbell for peer 0 vector 0 fires our eventfd
    assert qtest.read("readl", BAR0_ADDR + IVPOSITION) == GUEST_ID
    assert server.doorbell_count(0) == 0
    qtest.cmd(f"writel {BAR0_ADDR + DOORBELL:#x} {0 << 16 | 0:#x}")
    assert server.doorbell_count(5.0) == 1
    # a doorbell for a peer or vector that does not exist rings nothing
    qtest.cmd(f"writel {BAR0_ADDR + DOORBELL:#x} {3 << 16 | 0:#x}")
    qtest.cmd(f"writel {BAR0_ADDR + DOORBELL:#x} {0 << 16 | 1:#x}")
    assert server.doorbell_count(0.2) == 0


def test_a_doorbell_through_qemu_wakes_the_sleeping_mediator_which_opens_a_channel_and_answers_in_it(
    tmp_path: Path,
) -> None:
    # The worker sleeps up to 10 s when idle; only the doorbell gets it to answer within 3 s.
    with running_mediator(tmp_path, backend="sim", vms=1, extra="max_sleep_ms = 10000") as mediator:
        qtest = Qtest(mediator.vm_socket(1), tmp_path / "qemu.log", vectors=16)
        try:
            qtest.map_bars(qtest.find_ivshmem())
            assert qtest.read("readq", BAR2_ADDR + RegionField.MAGIC) == MAGIC
            host_peer = qtest.read("readl", BAR2_ADDR + RegionField.HOST_PEER_ID)
            first = qtest.read("readq", BAR2_ADDR + RegionField.CHANNELS_OFFSET)
            size = qtest.read("readq", BAR2_ADDR + RegionField.CHANNEL_SIZE)
            base = BAR2_ADDR + first + 3 * size  # channel 3, which rings vector 3
            # open it, as a guest process does once it holds the channel's claim
            qtest.cmd(f"writel {base + ChannelField.OWNER_PID:#x} 4242")
            qtest.cmd(f"writel {base + ChannelField.OWNER_PEER:#x} {qtest.read('readl', BAR0_ADDR + IVPOSITION)}")
            beats = [0, 0.0]  # count, when

            def beat() -> None:
                """As the shim's heartbeat thread does (every lease / 4): an open channel that does
                not beat expires. Called between the steps below, which each take a few ms."""
                if time.monotonic() - beats[1] >= 0.1:
                    beats[0] += 1
                    beats[1] = time.monotonic()
                    qtest.cmd(f"writeq {base + ChannelField.HEARTBEAT:#x} {beats[0]}")

            assert qtest.read("readq", base + ChannelField.MAGIC) == CHANNEL_MAGIC, "QEMU does not show channel 3"
            qtest.cmd(f"writel {base + ChannelField.OPEN_REQUEST:#x} 0x5eed")
            qtest.cmd(f"writel {BAR0_ADDR + DOORBELL:#x} {host_peer << 16 | 3:#x}")
            rung = time.monotonic()
            while qtest.read("readl", base + ChannelField.OPEN_ACK) != 0x5EED:
                assert time.monotonic() - rung < 10.0, "the channel was not opened"
                beat()
            assert qtest.read("readl", base + ChannelField.CHANNEL_STATE) == 1  # OPEN
            deadline = time.monotonic() + 10
            while qtest.read("readl", base + ChannelField.HOST_NEED_WAKEUP) != 1:
                assert time.monotonic() < deadline, "the mediator never went to sleep"
                beat()
            beat()
            sq_offset = qtest.read("readq", base + ChannelField.SQ_OFFSET)
            cq_offset = qtest.read("readq", base + ChannelField.CQ_OFFSET)
            # one nop: seq 77, call 0x0001, no flags, no payloads, no arguments
            sqe = (77).to_bytes(4, "little") + (1).to_bytes(2, "little") + bytes(SQE_SIZE - 6)
            qtest.cmd(f"write {base + sq_offset:#x} {SQE_SIZE} 0x{sqe.hex()}")
            beat()
            qtest.cmd(f"writel {base + ChannelField.SQ_TAIL:#x} 0x1")
            rung = time.monotonic()
            qtest.cmd(f"writel {BAR0_ADDR + DOORBELL:#x} {host_peer << 16 | 3:#x}")
            while qtest.read("readl", base + ChannelField.CQ_TAIL) != 1:
                assert time.monotonic() - rung < 3.0, "the doorbell did not wake the mediator"
                beat()
            answered = time.monotonic() - rung
            cqe = bytes.fromhex(qtest.cmd(f"read {base + cq_offset:#x} {CQE_SIZE}")[2:])
            assert int.from_bytes(cqe[0:4], "little") == 77  # seq echoed
            assert int.from_bytes(cqe[4:6], "little") == 1  # call id
            assert int.from_bytes(cqe[8:12], "little") == 0  # CUDA_SUCCESS
            assert qtest.read("readl", base + ChannelField.SQ_HEAD) == 1
            assert answered < 3.0
            channels = next(v for v in request(mediator.control, {"cmd": "status"})["vms"])["channels"]
            assert [(c["index"], c["owner_pid"]) for c in channels if c["state"] == "open"] == [(3, 4242)]
        finally:
            qtest.close()
