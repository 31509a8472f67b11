"""Fixtures for the guest shim's tests (helpers live in ``_support``)."""

from __future__ import annotations

import subprocess

import pytest

from tests.qemu.conftest import artifacts, qemu_kit

from ._support import SHIM, ShimBuild

__all__ = ["artifacts", "qemu_kit", "shim"]  # the real-VM fixtures are shared with tests/qemu


@pytest.fixture(scope="session")
def shim(tmp_path_factory: pytest.TempPathFactory) -> ShimBuild:
    """``make`` in guest/shim, into a fresh directory (-Werror: a warning fails the build)."""
    out = tmp_path_factory.mktemp("guest-shim")
    result = subprocess.run(["make", "-s", "-C", str(SHIM), f"BUILD={out}"], check=False, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, f"guest/shim does not build:\n{result.stdout}\n{result.stderr}"
    return ShimBuild(out)
