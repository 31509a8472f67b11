"""Every way the documentation tells an operator to attach a VM works, verbatim.

The ``-chardev``/``-device`` pairs are read out of the documents themselves (README, docs/*.md,
deploy/qemu/run-vm.sh), so a line edited into a document is tested as written; only the socket path
is pointed at the test's mediator. Each is realized by the real QEMU against a real mediator under
qtest (no guest kernel: realizing the device is where QEMU reads the server's messages, and where a
line that cannot work hangs), and the VM must show as attached. The libvirt ``<shmem>`` XML is checked
against what libvirt's schema allows and turned into the QEMU arguments libvirt generates for it.
``deploy/qemu/run-vm.sh`` itself boots a guest kernel and runs the selftest (slow).
"""

from __future__ import annotations

import os
import select
import subprocess
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree

import pytest

from mediator._control_client import request
from mediator._launcher import MediatorProcess, running_mediator

from ..reliability._support import wait_for
from ._support import REPO, AttachLine, QemuKit, SelftestReport, documented_attach_lines, run_vm

pytestmark = [pytest.mark.qemu, pytest.mark.timeout(300)]

LINES = documented_attach_lines()
REALIZE_S = 30.0  # QEMU under qtest realizes the device in well under a second here


def _qtest(qemu: str, chardev: str, device: str, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as err:
        return subprocess.Popen([qemu, "-machine", "q35", "-qtest", "stdio", "-qtest-log", "/dev/null",
                                 "-display", "none", "-nodefaults", "-m", "64", "-chardev", chardev,
                                 "-device", device], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)


def _answers(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """Whether QEMU, its machine built, answers a qtest command within ``timeout``."""
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(b"outl 0xcf8 0x80000000\n")
    proc.stdin.flush()
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return bool(ready) and proc.stdout.readline().startswith(b"OK")


def _end(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            stream.close()


def _attached(mediator: MediatorProcess) -> bool:
    vm = request(mediator.control, {"cmd": "status"})["vms"][0]
    return bool(vm["connected"]) and vm["state"] == "serving"


@pytest.fixture(scope="module")
def mediator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MediatorProcess]:
    with running_mediator(tmp_path_factory.mktemp("documented"), backend="sim", vms=1) as running:
        yield running


def _detached(mediator: MediatorProcess) -> None:
    """The previous QEMU's session is over: the VM listens again (one peer per VM at a time)."""
    wait_for("the VM detached", lambda: not request(mediator.control, {"cmd": "status"})["vms"][0]["connected"])


def _realize(qemu_kit: QemuKit, mediator: MediatorProcess, chardev: str, device: str, log: Path) -> None:
    _detached(mediator)
    proc = _qtest(qemu_kit.qemu, chardev, device, log)
    try:
        assert _answers(proc, REALIZE_S), (
            f"QEMU did not come up within {REALIZE_S} s with -chardev {chardev} -device {device}: "
            f"{log.read_text()}")
        wait_for("the VM attached", lambda: _attached(mediator))
    finally:
        _end(proc)
    _detached(mediator)


def test_the_documents_give_attach_lines_and_none_asks_for_reconnect() -> None:
    where = {line.where.split(":")[0] for line in LINES}
    assert {"README.md", "docs/qemu.md", "docs/operations.md", "deploy/qemu/run-vm.sh"} <= where, where
    # QEMU 7.2's ivshmem reads the server's messages at realize time; an asynchronous (reconnecting)
    # chardev hangs it (/work/shared/notes/qemu.md). No document may offer it.
    assert not [line for line in LINES if "reconnect" in line.chardev]
    for path in (REPO / "docs" / "operations.md", REPO / "docs" / "qemu.md", REPO / "README.md"):
        assert "<reconnect" not in path.read_text(), path  # libvirt's spelling of the same


@pytest.mark.parametrize("line", LINES, ids=[line.where for line in LINES])
def test_a_documented_attach_line_realizes_and_attaches(
        line: AttachLine, qemu_kit: QemuKit, mediator: MediatorProcess, tmp_path: Path) -> None:
    chardev, device = line.at(mediator.vm_socket(1))
    _realize(qemu_kit, mediator, chardev, device, tmp_path / "qemu.log")


def test_the_line_the_docs_used_to_give_hangs_qemu_7_2(
        qemu_kit: QemuKit, mediator: MediatorProcess, tmp_path: Path) -> None:
    """The negative control: with ``reconnect=1`` this QEMU never comes up (so the check above can fail)."""
    version = subprocess.run([qemu_kit.qemu, "--version"], capture_output=True, text=True, check=True).stdout
    if "version 7.2" not in version:
        pytest.skip(f"the hang is QEMU 7.2's: this is {version.splitlines()[0]}")
    _detached(mediator)
    proc = _qtest(qemu_kit.qemu, f"socket,path={mediator.vm_socket(1)},id=vgpu0,reconnect=1",
                  "ivshmem-doorbell,chardev=vgpu0,vectors=1", tmp_path / "qemu.log")
    try:
        assert not _answers(proc, 10.0)
    finally:
        _end(proc)
    _detached(mediator)


# -- libvirt --------------------------------------------------------------------------------------

def _documented_shmem() -> list[tuple[str, ElementTree.Element]]:
    found = [("deploy/qemu/libvirt-domain.xml",
              ElementTree.parse(REPO / "deploy" / "qemu" / "libvirt-domain.xml").getroot().find("devices/shmem"))]
    text = (REPO / "docs" / "qemu.md").read_text()
    block = text.split("```xml\n", 1)[1].split("```", 1)[0]
    found.append(("docs/qemu.md", ElementTree.fromstring(block)))
    return [(where, element) for where, element in found if element is not None]


def _libvirt_args(shmem: ElementTree.Element, vm_socket: Path) -> tuple[str, str]:
    """What libvirt's schema allows in ``<shmem>`` (domaincommon.rng), checked, and the ``-chardev`` and
    ``-device`` libvirt's QEMU driver builds from it (``qemuBuildShmemCommandLine``)."""
    assert shmem.tag == "shmem" and shmem.get("name"), "shmem needs a name"
    assert set(shmem.attrib) <= {"name", "role"}
    assert {child.tag for child in shmem} <= {"model", "size", "server", "msi", "address", "alias"}
    model = shmem.find("model")
    assert model is not None and model.get("type") == "ivshmem-doorbell"
    server = shmem.find("server")
    assert server is not None and set(server.attrib) <= {"path"} and server.get("path", "").startswith("/")
    assert shmem.find("size") is None, "with a server the size is the server's region"
    msi = shmem.find("msi")
    assert msi is not None and set(msi.attrib) <= {"enabled", "vectors", "ioeventfd"}
    assert msi.get("ioeventfd", "on") in ("on", "off") and msi.get("enabled", "yes") in ("yes", "no")
    vectors = int(msi.get("vectors", "1"))
    device = f"ivshmem-doorbell,id=shmem0,chardev=charshmem0,vectors={vectors}"
    if msi.get("ioeventfd"):
        device += f",ioeventfd={msi.get('ioeventfd')}"
    return f"socket,id=charshmem0,path={vm_socket}", device


@pytest.mark.parametrize(("where", "shmem"), _documented_shmem(), ids=lambda v: v if isinstance(v, str) else "")
def test_the_documented_libvirt_shmem_is_valid_and_attaches(
        where: str, shmem: ElementTree.Element, qemu_kit: QemuKit, mediator: MediatorProcess,
        tmp_path: Path) -> None:
    server = shmem.find("server")
    assert server is not None and server.get("path") == "/run/vgpu-mediator/vm1.sock", where
    chardev, device = _libvirt_args(shmem, mediator.vm_socket(1))
    _realize(qemu_kit, mediator, chardev, device, tmp_path / "qemu.log")


# -- deploy/qemu/run-vm.sh, booted ------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.timeout(420)
def test_run_vm_sh_boots_a_guest_that_passes_the_selftest(
        qemu_kit: QemuKit, initramfs: Path, tmp_path: Path) -> None:
    with running_mediator(tmp_path, backend="sim", vms=1) as mediator:
        env = {"SOCKET": str(mediator.vm_socket(1)), "ACCEL": os.environ.get("VGPU_QEMU_ACCEL", "tcg"),
               "MEM": "256", "CPUS": "1", "KERNEL": str(qemu_kit.kernel), "INITRD": str(initramfs),
               "APPEND": "panic=-1 edd=off", "PATH": f"{Path(qemu_kit.qemu).parent}:{os.environ['PATH']}"}
        command = ["env", *(f"{k}={v}" for k, v in env.items()), "sh", str(REPO / "deploy" / "qemu" / "run-vm.sh")]
        run = run_vm(command, lambda: None, 300)
        report = SelftestReport.parse(run.text)
        report.check_all_passed()
        assert run.exit_code == 0
