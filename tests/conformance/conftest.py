"""The conformance suite: every call family through a guest over the real rings, per backend.

Run on the simulator by default; ``pytest tests/conformance --backend cuda`` (or both, repeating
``--backend``) runs it against the physical GPU. One daemon per backend serves the whole suite; each
test gets a fresh guest session (a fresh worker, a fresh context).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from guest import GuestClient
from mediator._control_client import request
from mediator._launcher import MediatorProcess, running_mediator

KERNELS = Path(__file__).resolve().parents[1] / "kernels"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        backends = metafunc.config.getoption("--backend") or ["sim"]
        metafunc.parametrize("backend", backends, scope="session")


@pytest.fixture(scope="session")
def conformance_mediator(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MediatorProcess]:
    if backend == "cuda":
        from executor._cuda import cuda_available

        usable, why = cuda_available()
        if not usable:
            pytest.skip(f"no usable GPU for the cuda backend: {why}")
    workdir = tmp_path_factory.mktemp(f"conformance-{backend}")
    with running_mediator(workdir, backend=backend, vms=1) as running:
        yield running


@pytest.fixture
def gpu(conformance_mediator: MediatorProcess) -> Iterator[GuestClient]:
    """A fresh guest session on the suite's daemon (waits until the previous one is torn down)."""
    deadline = time.monotonic() + 60
    while request(conformance_mediator.control, {"cmd": "status"})["vms"][0]["state"] != "listening":
        if time.monotonic() > deadline:
            raise TimeoutError("the previous guest session did not end")
        time.sleep(0.01)
    with GuestClient.connect(conformance_mediator.vm_socket(1)) as client:
        client.init()
        yield client
