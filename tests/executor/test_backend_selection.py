"""Backend selection where there is no GPU: the cuda backend imports, refuses clearly, auto picks sim."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from executor import BackendUnavailableError, SimExecutor, create_executor, cuda_available, resolve_backend

pytestmark = pytest.mark.skipif(cuda_available()[0], reason="a usable GPU is present: these pin the GPU-less case")


def test_the_cuda_backend_imports_and_says_why_it_cannot_run() -> None:
    import executor._cuda  # noqa: F401  (importing must not fail without a driver)

    usable, why = cuda_available()
    assert not usable and why


def test_auto_picks_sim_and_says_why() -> None:
    backend, why = resolve_backend("auto")
    assert backend == "sim" and why
    assert isinstance(create_executor("auto"), SimExecutor)


def test_asking_for_cuda_explicitly_is_a_clear_error() -> None:
    with pytest.raises(BackendUnavailableError) as caught:
        create_executor("cuda")
    assert "cuda" in str(caught.value).lower()


def test_the_daemon_refuses_to_start_with_cuda_configured(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[mediator]\nsocket_dir = "{tmp_path}"\nbackend = "cuda"\n\n[[vm]]\nid = 1\nname = "vm1"\n')
    run = subprocess.run([sys.executable, "-m", "mediator.cli", "run", "-c", str(config)],
                         check=False, capture_output=True, text=True, timeout=60)
    assert run.returncode == 3
    assert 'backend = "cuda" is configured but cannot run here' in run.stderr
