"""Fixtures shared by the end-to-end tests: a real daemon process and real guests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mediator._launcher import MediatorProcess, running_mediator


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--backend", action="append", choices=("sim", "cuda"), default=None,
                     help="backend(s) the conformance suite runs on (default: sim); repeat for several")


@pytest.fixture
def mediator(tmp_path: Path) -> Iterator[MediatorProcess]:
    """A running ``vgpu-mediator run`` with two VMs on the sim backend."""
    with running_mediator(tmp_path, backend="sim", vms=2) as running:
        yield running
