"""Fixtures for the C transport and real-VM tests (helpers live in ``_support``)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ._support import GUEST_C, REPO, SETUP_HINT, CBuild, QemuKit, build_initramfs, find_kernel


@pytest.fixture(scope="session")
def c_build(tmp_path_factory: pytest.TempPathFactory) -> CBuild:
    """``make`` in guest/c, into a fresh directory (-Werror: a warning fails the build)."""
    out = tmp_path_factory.mktemp("guest-c")
    result = subprocess.run(["make", "-C", str(GUEST_C), f"BUILD={out}"], check=False,
                            capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, f"guest/c does not build:\n{result.stdout}\n{result.stderr}"
    return CBuild(out)


@pytest.fixture(scope="session")
def qemu_kit() -> QemuKit:
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        pytest.skip(f"no qemu-system-x86_64 binary: {SETUP_HINT}")
    kernel = find_kernel()
    if kernel is None:
        pytest.skip(f"no guest kernel image under build/qemu/kernel/boot: {SETUP_HINT}")
    return QemuKit(qemu, kernel)


@pytest.fixture
def initramfs(tmp_path: Path, c_build: CBuild, qemu_kit: QemuKit) -> Path:
    return build_initramfs(tmp_path / "initramfs", c_build.selftest)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where console logs and timings go (``artifacts/qemu/``, or ``$VGPU_ARTIFACTS/qemu``)."""
    path = Path(os.environ.get("VGPU_ARTIFACTS", REPO / "artifacts")) / "qemu"
    path.mkdir(parents=True, exist_ok=True)
    return path
