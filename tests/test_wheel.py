"""Installed, not only cloned: the built wheel, in a fresh venv outside the checkout, runs the demo,
a daemon and ``status``.

The wheel is built without build isolation (this venv's setuptools; no network) from a copy of the
tracked tree, and installed with ``--no-deps``; the venv reaches the dependencies through a ``.pth``
naming this venv's site-packages (a path line only: the checkout's editable hook there is not run), so
every import of ours must come from the wheel, which the test checks.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest

from mediator._launcher import write_config

REPO = Path(__file__).resolve().parents[1]


def _run(*args: str | Path, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, check=False,
                            timeout=timeout)
    assert result.returncode == 0, f"{args}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def test_the_demo_kernel_shipped_is_the_one_tests_build() -> None:
    shipped = REPO / "mediator" / "demo_kernels.fatbin"
    assert shipped.read_bytes() == (REPO / "tests" / "kernels" / "test_kernels.fatbin").read_bytes()


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh venv with the wheel installed; yields its bin directory."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for name in tracked.decode().split("\0"):
        if name and (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", work / "dist",
         source, cwd=work)
    wheel = next((work / "dist").glob("vgpu_mediator-*.whl"))
    venv = work / "venv"
    _run(sys.executable, "-m", "venv", venv, cwd=work)
    python = venv / "bin" / "python"
    purelib = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                        cwd=work).stdout.strip())
    (purelib / "deps-from-dev-venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run(python, "-m", "pip", "install", "--no-deps", "--no-index", "-q", wheel, cwd=work)
    yield venv / "bin"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_installed_wheel_runs_the_demo_a_daemon_and_status(installed: Path, tmp_path: Path) -> None:
    where = _run(installed / "python", "-c", "import mediator, guest, protocol; "
                 "print(mediator.__file__, guest.__file__, protocol.__file__)", cwd=tmp_path).stdout
    assert str(REPO) not in where and str(installed.parent) in where, where
    assert _run(installed / "vgpu-mediator", "--version", cwd=tmp_path).stdout.startswith("vgpu-mediator 0")

    demo = _run(installed / "vgpu-mediator", "demo", "--backend", "sim", "--size-mib", "1", cwd=tmp_path).stdout
    assert "graph (GemmEx + silu kernel from demo_kernels.fatbin)" in demo and "demo passed" in demo, demo

    config = tmp_path / "config.toml"
    write_config(config, tmp_path / "sockets", backend="sim", vm_ids=[1])
    daemon = subprocess.Popen([installed / "vgpu-mediator", "run", "-c", config], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert daemon.stdout is not None
        for line in daemon.stdout:  # its own JSON lines say when the control socket listens
            if b"control socket listening" in line and b"control-ro" in line:
                break
        status = _run(installed / "vgpu-mediator", "status", "-c", config, cwd=tmp_path).stdout
        assert "backend sim" in status and "vm1" in status and "listening" in status, status
    finally:
        daemon.terminate()
        assert daemon.wait(30) == 0
        if daemon.stdout is not None:
            daemon.stdout.close()
