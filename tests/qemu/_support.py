"""Helpers for the C transport and real-VM tests: the C build, QEMU, the kernel, the initramfs,
and the selftest's output.

What comes from where (scripts/setup_qemu installs all of it on Debian 12):
  * ``qemu-system-x86_64`` (apt ``qemu-system-x86``), ``cpio`` and a static ``busybox``
    (apt ``busybox-static``), ``cc``/``make`` for ``guest/c``;
  * the Debian 6.1 kernel image, unpacked into ``build/qemu/kernel/boot/`` (or ``VGPU_QEMU_KERNEL``).

A test that needs QEMU skips, saying which of these is missing, only where QEMU cannot run at all.
"""

from __future__ import annotations

import contextlib
import gzip
import mmap
import os
import re
import selectors
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mediator._ivshmem import send_handshake
from protocol import (
    ChannelField,
    ChannelState,
    CompletionProducer,
    Region,
    SubmissionConsumer,
    SubmitFlags,
    lay_out_channel,
    lay_out_region,
)

REPO = Path(__file__).resolve().parents[2]
GUEST_C = REPO / "guest" / "c"
SETUP_HINT = "run scripts/setup_qemu (apt qemu-system-x86 busybox-static cpio + the Debian kernel)"

#: How every guest /init starts: devtmpfs, the serial console as its stdio, busybox's applets, /proc
#: and /sys, then the boot line (``VGPU-*`` lines are what the tests look for).
INIT_PREAMBLE = """#!/bin/busybox sh
/bin/busybox mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
echo "VGPU-BOOTED uptime=$(cut -d' ' -f1 /proc/uptime)"
"""
#: How an /init that waits for the host ends: the host's go-ahead (one line on the console) lets it
#: read the mediator's status while the VM is still attached, then the VM powers off.
INIT_POWEROFF = """read -t 60 go
echo "VGPU-POWEROFF"
poweroff -f
"""

#: The guest's /init: the selftest on the serial console, then the go-ahead and power off.
INIT_SCRIPT = INIT_PREAMBLE + """for dev in /sys/bus/pci/devices/*; do
    echo "VGPU-PCI $(basename $dev) $(cat $dev/vendor):$(cat $dev/device)"
done
/vgpu_selftest
echo "VGPU-SELFTEST-EXIT $? uptime=$(cut -d' ' -f1 /proc/uptime)"
""" + INIT_POWEROFF


@dataclass(frozen=True)
class CBuild:
    directory: Path

    @property
    def selftest(self) -> Path:
        return self.directory / "vgpu_selftest"

    @property
    def static_lib(self) -> Path:
        return self.directory / "libvgpu_transport.a"

    @property
    def shared_lib(self) -> Path:
        return self.directory / "libvgpu_transport.so"


@dataclass(frozen=True)
class QemuKit:
    qemu: str
    kernel: Path


def find_kernel() -> Path | None:
    override = os.environ.get("VGPU_QEMU_KERNEL")
    if override:
        return Path(override) if Path(override).is_file() else None
    images = sorted((REPO / "build" / "qemu" / "kernel" / "boot").glob("vmlinuz-*"))
    return images[-1] if images else None


def is_static_elf(path: Path) -> bool:
    """An ELF executable without a PT_INTERP program header needs no dynamic loader."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        return False
    phoff = int.from_bytes(data[32:40], "little")
    phentsize = int.from_bytes(data[54:56], "little")
    phnum = int.from_bytes(data[56:58], "little")
    for i in range(phnum):
        p_type = int.from_bytes(data[phoff + i * phentsize:phoff + i * phentsize + 4], "little")
        if p_type == 3:  # PT_INTERP
            return False
    return True





def static_busybox() -> Path | None:
    for candidate in ("/bin/busybox", "/usr/bin/busybox"):
        path = Path(candidate)
        if path.is_file() and is_static_elf(path):
            return path
    return None


def build_initramfs(dest: Path, selftest: Path) -> Path:
    """A gzipped newc cpio: busybox, the static selftest, /init."""
    assert is_static_elf(selftest), f"{selftest} must be statically linked to run in the initramfs"
    return build_initramfs_tree(dest, {"/vgpu_selftest": selftest}, INIT_SCRIPT)


def build_initramfs_tree(dest: Path, files: Mapping[str, Path], init_script: str,
                         texts: Mapping[str, str] | None = None) -> Path:
    """A gzipped newc cpio built with the ``cpio`` tool: busybox, ``files`` (guest path -> host file),
    ``texts`` (guest path -> contents) and ``/init``. When the tree has an ``/etc/ld.so.conf``, the
    host's ``ldconfig -r`` writes its ``/etc/ld.so.cache``, as ``ldconfig`` does in an installed guest."""
    busybox = static_busybox()
    if busybox is None:
        pytest.skip(f"no statically linked busybox: {SETUP_HINT}")
    cpio = shutil.which("cpio")
    if cpio is None:
        pytest.skip(f"no cpio: {SETUP_HINT}")
    root = dest / "root"
    for sub in ("bin", "dev", "proc", "sys", "etc"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy2(busybox, root / "bin" / "busybox")
    for guest_path, host_path in files.items():
        target = root / guest_path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(host_path, target)  # follows symlinks: the guest gets the file itself
    for guest_path, text in (texts or {}).items():
        target = root / guest_path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    if (root / "etc" / "ld.so.conf").is_file():
        ldconfig = shutil.which("ldconfig") or "/sbin/ldconfig"
        subprocess.run([ldconfig, "-r", str(root)], check=True, capture_output=True)
    init = root / "init"
    init.write_text(init_script)
    init.chmod(0o755)
    names = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    archive = subprocess.run([cpio, "-o", "-H", "newc", "--quiet"], cwd=root, check=True,
                             input="\n".join([".", *names]).encode() + b"\n", capture_output=True).stdout
    initrd = dest / "initrd.gz"
    initrd.write_bytes(gzip.compress(archive, compresslevel=1))
    return initrd


_LDD_LINE = re.compile(r"^\s*(?:(?P<name>\S+) => )?(?P<path>/\S+) \(0x[0-9a-f]+\)$")


def shared_library_closure(binaries: Iterable[Path], library_path: Path) -> dict[str, Path]:
    """What the dynamic ``binaries`` load, by ``ldd`` with ``LD_LIBRARY_PATH=library_path``: the
    loader and every library, each at the path it has here (guest path -> host file)."""
    found: dict[str, Path] = {}
    env = {**os.environ, "LD_LIBRARY_PATH": str(library_path)}
    for binary in binaries:
        out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True, env=env).stdout
        for line in out.splitlines():
            match = _LDD_LINE.match(line)
            if match:
                found[match["path"]] = Path(match["path"])
            elif "not found" in line:
                raise AssertionError(f"{binary}: {line.strip()}")
    return found


# -- running a VM ---------------------------------------------------------------------------------

def qemu_command(kit: QemuKit, initrd: Path, vm_socket: Path) -> list[str]:
    """The command line docs/qemu.md documents (plus -no-reboot so a panic ends the test)."""
    accel = os.environ.get("VGPU_QEMU_ACCEL", "tcg")
    return [
        kit.qemu, "-machine", f"q35,accel={accel}", "-m", "256", "-nographic", "-no-reboot", "-nic", "none",
        "-kernel", str(kit.kernel), "-initrd", str(initrd),
        "-append", "console=ttyS0 panic=-1 edd=off",
        "-chardev", f"socket,path={vm_socket},id=ivsh",
        "-device", "ivshmem-doorbell,chardev=ivsh,vectors=16",
    ]


@dataclass
class ConsoleRun:
    lines: list[tuple[float, str]] = field(default_factory=list)  # (seconds since start, line)
    exit_code: int | None = None

    def first(self, prefix: str) -> tuple[float, str]:
        for stamp, line in self.lines:
            if line.startswith(prefix):
                return stamp, line
        raise AssertionError(f"the console never printed {prefix!r}:\n{self.text[-6000:]}")

    @property
    def text(self) -> str:
        return "\n".join(line for _, line in self.lines)


def run_vm(command: list[str], on_waiting: Callable[[], None], deadline_s: float,
           on_line: Callable[[str], str | None] | None = None) -> ConsoleRun:
    """Boot, stream the console, call ``on_waiting()`` once the guest waits, then let it power off
    (``on_line``: called with every console line as it comes; what it returns, if anything, is typed
    on the console as a line, for a guest that waits for the host with ``read``)."""
    run = ConsoleRun()
    started = time.monotonic()
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    assert proc.stdout is not None and proc.stdin is not None
    os.set_blocking(proc.stdout.fileno(), False)
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    pending = b""
    released = False
    try:
        while True:
            remaining = started + deadline_s - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"the VM did not finish within {deadline_s} s:\n{run.text[-6000:]}")
            if not selector.select(min(remaining, 1.0)):
                continue
            chunk = proc.stdout.read()
            if not chunk:
                break  # QEMU exited (poweroff)
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for raw in complete:
                line = raw.decode(errors="replace").rstrip("\r")
                line = line[line.find("VGPU-"):] if "VGPU-" in line else line  # after escape codes
                run.lines.append((time.monotonic() - started, line))
                reply = on_line(line) if on_line is not None else None
                if reply is not None:
                    proc.stdin.write(reply.encode() + b"\n")
                    proc.stdin.flush()
                if line.startswith("VGPU-SELFTEST-EXIT") and not released:
                    released = True
                    try:
                        on_waiting()
                    finally:
                        proc.stdin.write(b"go\n")
                        proc.stdin.flush()
        if pending:
            run.lines.append((time.monotonic() - started, pending.decode(errors="replace")))
        run.exit_code = proc.wait(30)
        return run
    finally:
        selector.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdin.close()
        proc.stdout.close()


# -- the selftest's output -----------------------------------------------------------------------

_RESULT = re.compile(r"^RESULT name=(?P<name>\S+) ok=(?P<ok>[01]) value=(?P<value>.*)$")

#: every check vgpu_selftest makes, in order; a missing one fails the test as surely as a failed one
SELFTEST_CHECKS = (
    "transport_init", "init", "device_count", "device_name", "device_total_mem", "mem_alloc",
    "copy_16mib", "memset_d8", "mem_free", "cublas_create", "gemm", "cublas_destroy", "gemm_free",
    "event_create", "events", "memset_d32", "event_destroy", "async_error_latched",
    "transport_stats", "workload_ms",
)


@dataclass(frozen=True)
class SelftestResult:
    name: str
    ok: bool
    value: str

    def fields(self) -> dict[str, str]:
        """``key=value`` words of the value (free text that is not of that form is left out)."""
        return dict(word.split("=", 1) for word in self.value.split() if "=" in word)


@dataclass(frozen=True)
class SelftestReport:
    results: dict[str, SelftestResult]
    verdict: str  # "SELFTEST PASS" or "SELFTEST FAIL n", "" if none was printed

    @classmethod
    def parse(cls, text: str) -> SelftestReport:
        results: dict[str, SelftestResult] = {}
        verdict = ""
        for raw in text.splitlines():
            line = raw.strip("\r")
            match = _RESULT.match(line)
            if match:
                results[match["name"]] = SelftestResult(match["name"], match["ok"] == "1", match["value"])
            elif line.startswith("SELFTEST "):
                verdict = line
        return cls(results, verdict)

    def __getitem__(self, name: str) -> SelftestResult:
        return self.results[name]

    def check_all_passed(self) -> None:
        missing = [name for name in SELFTEST_CHECKS if name not in self.results]
        failed = [f"{r.name}: {r.value}" for r in self.results.values() if not r.ok]
        assert not missing, f"selftest checks never reported: {missing}"
        assert not failed, "selftest checks failed:\n" + "\n".join(failed)
        assert self.verdict == "SELFTEST PASS", self.verdict

    def stat(self, key: str) -> int:
        return int(self["transport_stats"].fields()[key])


# -- the command lines the documentation gives --------------------------------------------------

#: every file that tells an operator how to attach a VM
ATTACH_DOCS = (REPO / "README.md", REPO / "docs" / "qemu.md", REPO / "docs" / "operations.md",
               REPO / "docs" / "guest.md", REPO / "deploy" / "qemu" / "run-vm.sh")
_CHARDEV = re.compile(r"-chardev\s+([^\s`\\]+)")
_DEVICE = re.compile(r"-device\s+(ivshmem[^\s`\\]*)")


@dataclass(frozen=True)
class AttachLine:
    """One ``-chardev``/``-device`` pair as a document gives it."""

    where: str
    chardev: str
    device: str

    def at(self, vm_socket: Path) -> tuple[str, str]:
        """The pair with its ``path=`` pointed at ``vm_socket`` (the only change made to it)."""
        options = [f"path={vm_socket}" if option.startswith("path=") else option
                   for option in self.chardev.split(",")]
        return ",".join(options), self.device


def documented_attach_lines() -> list[AttachLine]:
    """Every ``-chardev … -device ivshmem…`` pair in :data:`ATTACH_DOCS`, verbatim (a device is paired
    with the chardev its ``chardev=`` names, searching back from it)."""
    found: list[AttachLine] = []
    for path in ATTACH_DOCS:
        text = path.read_text()
        for device in _DEVICE.finditer(text):
            wanted = dict(o.split("=", 1) for o in device[1].split(",") if "=" in o).get("chardev")
            chardevs = [c for c in _CHARDEV.finditer(text, 0, device.start())
                        if f"id={wanted}" in c[1].split(",")]
            assert chardevs, f"{path.name}: -device {device[1]} names chardev {wanted!r}, which is not given"
            found.append(AttachLine(f"{path.relative_to(REPO)}:{text.count(chr(10), 0, device.start()) + 1}",
                                    chardevs[-1][1], device[1]))
    return found


class FakeIvshmemServer:
    """One ivshmem-server connection over a region the test controls (laid out, then spoiled): two
    channels, one vector. It serves channel opens as the host does (a fresh channel header, then
    open_ack), through ``on_open`` so a test can spoil the header the guest is about to read."""

    def __init__(self, path: Path, size: int = 1 << 20) -> None:
        self.fd = os.memfd_create("fake-region")
        os.ftruncate(self.fd, size)
        self.map = mmap.mmap(self.fd, size)
        self.layout = lay_out_region(memoryview(self.map), vm_id=9, channels=2, vectors=1)
        self.on_open: Callable[[memoryview], None] = lambda block: None
        self.host_fd = os.eventfd(0, os.EFD_NONBLOCK)
        self.guest_fd = os.eventfd(0, os.EFD_NONBLOCK)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(1)
        self.listener.settimeout(30)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve_one, daemon=True)
        self.thread.start()

    def channel(self, index: int) -> memoryview:
        start = self.layout.channel_offset(index)
        return memoryview(self.map)[start:start + self.layout.channel_size]

    def word(self, index: int, field: ChannelField) -> int:
        return int.from_bytes(self.channel(index)[field:field + 4], "little")

    def _serve_opens(self) -> None:
        for index in range(self.layout.channel_count):
            request = self.word(index, ChannelField.OPEN_REQUEST)
            if request and request != self.word(index, ChannelField.OPEN_ACK):
                block = self.channel(index)
                lay_out_channel(block, vm_id=9, index=index, keep_guest_words=True,
                                generation=self.word(index, ChannelField.GENERATION) + 1)
                self.on_open(block)
                block[ChannelField.OPEN_ACK:ChannelField.OPEN_ACK + 4] = request.to_bytes(4, "little")

    def _serve_one(self) -> None:
        conn, _ = self.listener.accept()
        # A client that refuses the region hangs up before the eventfds are all sent: EPIPE.
        with conn, contextlib.suppress(OSError):
            send_handshake(conn, client_id=3, region_fd=self.fd, host_vector_fds=[self.host_fd],
                           guest_vector_fds=[self.guest_fd])
            conn.setblocking(False)
            while not self.done.is_set():  # until the client goes
                self._serve_opens()
                with contextlib.suppress(BlockingIOError):
                    if conn.recv(1) == b"":
                        return
                self.done.wait(0.001)

    def close(self) -> None:
        self.done.set()
        self.thread.join(30)
        self.listener.close()
        self.map.close()
        for fd in (self.fd, self.host_fd, self.guest_fd):
            os.close(fd)


class SlowHost:
    """Serves channel 0 of a :class:`FakeIvshmemServer` as the worker does, slowly: each entry takes
    ``step`` seconds, then ``sq_head`` moves past it and a synchronous one is answered (status 0).
    After ``serve`` entries (None: never) it stops making progress, as a hung host would, while the
    channel stays open and the device READY. With ``busy`` it bumps ``host_busy`` that often during
    each entry, as the worker's beacon does (``mediator._busy``). Stop it (``close``) before the server."""

    def __init__(self, server: FakeIvshmemServer, step: float, serve: int | None = None,
                 busy: float | None = None) -> None:
        self.server = server
        self.step = step
        self.serve = serve
        self.busy = busy
        self.served = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="slow-host", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not (self.server.word(0, ChannelField.OPEN_ACK)
                   and self.server.word(0, ChannelField.CHANNEL_STATE) == ChannelState.OPEN):
            if self._stop.wait(0.001):
                return
        region = Region(self.server.channel(0))
        sq, cq = SubmissionConsumer(region), CompletionProducer(region)
        try:
            while not self._stop.is_set():
                if self.served == self.serve or not sq.pending():
                    self._stop.wait(0.001)
                    continue
                seq, call_id, flags, *_ = sq.read()
                if self._work(region):
                    return
                sq.advance()
                self.served += 1
                if not flags & SubmitFlags.ASYNC:
                    cq.push(seq=seq, call_id=call_id, status=0)
                    if region.u32(ChannelField.GUEST_NEED_IRQ):
                        os.eventfd_write(self.server.guest_fd, 1)
        finally:
            del sq, cq
            region.release()

    def _work(self, region: Region) -> bool:
        """The entry's work (``step`` seconds, ``host_busy`` bumped every ``busy``); True when stopped."""
        if self.busy is None:
            return self._stop.wait(self.step)
        end = time.monotonic() + self.step
        words = region.u32_view
        while (left := end - time.monotonic()) > 0:
            if self._stop.wait(min(self.busy, left)):
                return True
            words[ChannelField.HOST_BUSY >> 2] = (words[ChannelField.HOST_BUSY >> 2] + 1) & 0xFFFF_FFFF
        return False

    def close(self) -> None:
        self._stop.set()
        self._thread.join(30)
